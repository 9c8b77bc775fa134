/* test_report.c - the reports of dcs-conform (conformance/result.h,
 * report.c): a synthetic run with one case of every verdict, in two
 * categories, whose strings and wire bytes hold NUL, control characters,
 * invalid UTF-8, "]]>", "<script>" and '#'. The JSON must parse (jansson)
 * and give the facts back; the JUnit XML must be well-formed, structurally
 * right and (when xmllint exists) valid against a Surefire-shaped schema;
 * the TAP must have its plan, one line per case and balanced YAML blocks;
 * the HTML must escape everything. Also: records are freed completely,
 * empty runs, truncation of long wire logs, unknown verdicts and failed
 * writes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "result.h"
#include "transcript.h"

/* ------------------------------------------------------------------------ */
/* A synthetic run                                                           */

#define SCRIPT "<script>alert(1)</script>"
/* Wire bytes of the IN event of every case: NUL, ESC, invalid UTF-8, CDATA
 * end, a script tag, a backslash. */
static const char wire_in[] = "{\"a\":\"\x00\x1b\xff\xfe]]>" SCRIPT "\\\"}";
#define WIRE_IN_LEN (sizeof wire_in - 1)

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert_not_null(d);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *sdup(const char *s)
{
    return dup_n(s, strlen(s));
}

static void add_wire(dcs_case_result *c, int64_t t_us, int conn, int dir, uint64_t offset,
                     const char *data, size_t len)
{
    c->wire = realloc(c->wire, (c->n_wire + 1) * sizeof *c->wire);
    cr_assert_not_null(c->wire);
    c->wire[c->n_wire++] = (dcs_wire_event){t_us, conn, dir, offset, dup_n(data, len), len};
}

/* A case with every member set; the verdict decides only the reason. */
static void fill_case(dcs_case_result *c, int verdict, const char *category, int n)
{
    char b[64];
    memset(c, 0, sizeof *c);
    snprintf(b, sizeof b, "4.%d-case-%s", n, dcs_verdict_name(verdict));
    c->id = sdup(b);
    c->title = sdup("title # SKIP not really <b>&amp; \x01 \xc3\x28 ]]> " SCRIPT);
    c->category = sdup(category);
    c->file = sdup("cases/framing/odd \"name\".dcst");
    c->source = sdup("id 4.2-x\r\ntitle T " SCRIPT "\n# ]]> \x02 \xff\nexpect {\"type\":\"x\"}\n");
    c->n_cites = 2;
    c->cites = malloc(2 * sizeof *c->cites);
    cr_assert_not_null(c->cites);
    c->cites[0] = sdup("4.2");
    c->cites[1] = sdup("8.3\"><x>");
    c->role = DCS_ROLE_CLIENT;
    c->level = verdict == DCS_V_NONSTRICT ? DCS_LEVEL_SHOULD : DCS_LEVEL_MUST;
    c->verdict = verdict;
    if (verdict != DCS_V_PASS)
        c->reason = sdup("why: \x01\x7f \xe2\x82 ]]> " SCRIPT " #1");
    c->has_divergence = verdict == DCS_V_FAIL || verdict == DCS_V_NONSTRICT;
    c->div = (dcs_divergence){.line = 4,
                              .step = sdup("expect {\"type\":\"x\"}"),
                              .expected = sdup("{\"type\":\"x\"} within 0..2s"),
                              .actual = sdup("{\"type\":\"y\x1b"),
                              .conn = 1,
                              .offset = 7,
                              .has_offset = 1,
                              .elapsed_ms = 2013};
    c->duration_us = 12345 + n;
    c->started_unix_ms = 1714564800123;
    add_wire(c, 0, 0, DCS_WIRE_EVENT, 0, "accept conn 1 <ok>", 18);
    add_wire(c, 1500, 1, DCS_WIRE_IN, 0, wire_in, WIRE_IN_LEN);
    add_wire(c, 2250, 1, DCS_WIRE_OUT, 0, "{\"type\":\"heartbeat\"}", 20);
    c->wire_truncated = verdict == DCS_V_ERROR;
    c->iut_log = sdup("\x1b[31mpanic\x1b[0m ]]> " SCRIPT " \xc0\xaf\n");
}

/* One case of every verdict: the even ones in "framing", the odd ones in
 * "env <&>". */
static void fill_run(dcs_run_report *r)
{
    memset(r, 0, sizeof *r);
    r->version = "0.1.0";
    r->role = "client";
    r->command = "dcs-client --socket '/tmp/x y' \x01 <&>";
    r->time_scale = 0.1;
    r->time_mode = "scale";
    r->started_unix_ms = 1714564800000;
    r->duration_us = 2500000;
    r->spec_url = "../spec/PROTOCOL.md";
    r->n_cases = DCS_V__COUNT;
    r->cases = calloc(r->n_cases, sizeof *r->cases);
    cr_assert_not_null(r->cases);
    for (int v = 0; v < DCS_V__COUNT; v++) {
        fill_case(&r->cases[v], v, v % 2 ? "env <&>" : "framing", v);
        r->counts[v]++;
    }
}

static void free_run(dcs_run_report *r)
{
    for (size_t i = 0; i < r->n_cases; i++)
        dcs_case_result_clear(&r->cases[i]);
    free(r->cases);
}

typedef int (*writer)(FILE *, const dcs_run_report *);

/* The report as a NUL-terminated string; *len excludes the NUL. */
static char *render(writer w, const dcs_run_report *r, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cr_assert_not_null(f);
    cr_assert_eq(w(f, r), 0, "writer failed: %s", strerror(errno));
    cr_assert_eq(fclose(f), 0);
    if (len)
        *len = n;
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Every byte is valid UTF-8 and no control character other than newline
 * and tab appears raw. */
static void assert_clean_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    cr_assert_eq(strlen(s), len, "NUL in the output at %zu", strlen(s));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        cr_assert(c >= 0x20 || c == '\n' || c == '\t', "raw control 0x%02x at %zu", c, i);
        cr_assert(c != 0x7f, "raw DEL at %zu", i);
        if (c < 0x80)
            continue;
        size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        cr_assert(c >= 0xC2 && c <= 0xF4, "bad UTF-8 lead 0x%02x at %zu", c, i);
        for (size_t j = 1; j <= k; j++)
            cr_assert(i + j < len && (p[i + j] & 0xC0) == 0x80, "bad UTF-8 at %zu", i);
        cr_assert(!(c == 0xC2 && p[i + 1] < 0xA0), "raw C1 control at %zu", i);
        i += k;
    }
}

/* ------------------------------------------------------------------------ */
/* Verdicts and records                                                      */

Test(report, verdict_names)
{
    cr_expect_str_eq(dcs_verdict_name(DCS_V_PASS), "PASS");
    cr_expect_str_eq(dcs_verdict_name(DCS_V_NONSTRICT), "NON-STRICT");
    cr_expect_str_eq(dcs_verdict_name(DCS_V_INFO), "INFORMATIONAL");
    cr_expect_str_eq(dcs_verdict_name(DCS_V_XPASS), "XPASS");
    cr_expect_str_eq(dcs_verdict_name(-1), "unknown");
    cr_expect_str_eq(dcs_verdict_name(DCS_V__COUNT), "unknown");
    for (int v = 0; v < DCS_V__COUNT; v++)
        cr_expect_eq(dcs_verdict_fails_run(v),
                     v == DCS_V_FAIL || v == DCS_V_ERROR || v == DCS_V_XPASS, "%s",
                     dcs_verdict_name(v));
}

Test(report, clear_frees_and_zeroes)
{
    dcs_case_result c, zero;
    memset(&zero, 0, sizeof zero);
    fill_case(&c, DCS_V_FAIL, "framing", 1);
    dcs_case_result_clear(&c);
    cr_assert_eq(memcmp(&c, &zero, sizeof c), 0, "the record is not zeroed");
    dcs_case_result_clear(&c); /* a cleared record clears again: no double free */
    dcs_case_result_clear(NULL);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static json_t *load_json(const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, &err);
    cr_assert_not_null(j, "JSON does not parse: %s at line %d column %d\n%s", err.text, err.line,
                       err.column, text);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

static void check_json_wire(json_t *wire)
{
    cr_assert_eq(json_array_size(wire), 3);
    json_t *ev = json_array_get(wire, 0), *in = json_array_get(wire, 1);
    json_t *o = json_array_get(wire, 2);
    cr_expect_str_eq(jstr(ev, "dir"), "event");
    cr_expect(json_is_null(json_object_get(ev, "offset")));
    cr_expect_str_eq(jstr(ev, "data"), "accept conn 1 <ok>");
    cr_expect_str_eq(jstr(in, "dir"), "in");
    cr_expect_eq(json_real_value(json_object_get(in, "t_ms")), 1.5);
    cr_expect_eq(json_integer_value(json_object_get(in, "len")), (json_int_t)WIRE_IN_LEN);
    /* Not UTF-8: the hex gives the exact bytes back. */
    const char *hex = jstr(in, "hex");
    cr_assert_eq(strlen(hex), 2 * WIRE_IN_LEN);
    for (size_t i = 0; i < WIRE_IN_LEN; i++) {
        unsigned byte;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
        cr_assert_eq(byte, (unsigned char)wire_in[i], "hex byte %zu", i);
    }
    /* Valid UTF-8: the string is the bytes, and there is no hex. */
    cr_expect_str_eq(jstr(o, "data"), "{\"type\":\"heartbeat\"}");
    cr_expect_null(json_object_get(o, "hex"));
    cr_expect_eq(json_integer_value(json_object_get(o, "offset")), 0);
}

static void check_json_case(json_t *c, int v)
{
    char id[64];
    snprintf(id, sizeof id, "4.%d-case-%s", v, dcs_verdict_name(v));
    cr_expect_str_eq(jstr(c, "id"), id);
    cr_expect_str_eq(jstr(c, "verdict"), dcs_verdict_name(v));
    cr_expect_str_eq(jstr(c, "category"), v % 2 ? "env <&>" : "framing");
    cr_expect_str_eq(jstr(c, "role"), "client");
    cr_expect_str_eq(jstr(c, "level"), v == DCS_V_NONSTRICT ? "should" : "must");
    cr_expect_eq(json_array_size(json_object_get(c, "cites")), 2);
    json_t *cites = json_object_get(c, "cites");
    cr_expect_str_eq(json_string_value(json_array_get(cites, 1)), "8.3\"><x>");
    cr_expect_eq(json_real_value(json_object_get(c, "duration_ms")), (12345 + v) / 1000.0);
    if (v == DCS_V_PASS)
        cr_expect(json_is_null(json_object_get(c, "reason")));
    else /* control characters survive; the broken sequence becomes U+FFFD */
        cr_expect_str_eq(jstr(c, "reason"),
                         "why: \x01\x7f \xef\xbf\xbd\xef\xbf\xbd ]]> " SCRIPT " #1");
    json_t *d = json_object_get(c, "divergence");
    if (v == DCS_V_FAIL || v == DCS_V_NONSTRICT) {
        cr_assert(json_is_object(d));
        cr_expect_eq(json_integer_value(json_object_get(d, "line")), 4);
        cr_expect_eq(json_integer_value(json_object_get(d, "offset")), 7);
        cr_expect_eq(json_integer_value(json_object_get(d, "elapsed_ms")), 2013);
        cr_expect_str_eq(jstr(d, "actual"), "{\"type\":\"y\x1b");
    } else {
        cr_expect(json_is_null(d));
    }
    cr_expect_eq(json_is_true(json_object_get(c, "wire_truncated")), v == DCS_V_ERROR);
    cr_expect_str_eq(jstr(c, "iut_log"),
                     "\x1b[31mpanic\x1b[0m ]]> " SCRIPT " \xef\xbf\xbd\xef\xbf\xbd\n");
    check_json_wire(json_object_get(c, "wire"));
}

Test(report, json_parses_and_round_trips)
{
    dcs_run_report r;
    size_t len;
    fill_run(&r);
    char *text = render(dcs_report_json, &r, &len);
    assert_clean_text(text, len);
    json_t *j = load_json(text, len);
    cr_expect_str_eq(jstr(j, "version"), "0.1.0");
    cr_expect_str_eq(jstr(j, "role"), "client");
    cr_expect_str_eq(jstr(j, "command"), r.command);
    cr_expect_str_eq(jstr(j, "time_mode"), "scale");
    cr_expect_str_eq(jstr(j, "started"), "2024-05-01T12:00:00.000Z");
    cr_expect_eq(json_real_value(json_object_get(j, "time_scale")), 0.1);
    cr_expect_eq(json_real_value(json_object_get(j, "duration_ms")), 2500.0);
    json_t *counts = json_object_get(j, "counts");
    for (int v = 0; v < DCS_V__COUNT; v++)
        cr_expect_eq(json_integer_value(json_object_get(counts, dcs_verdict_name(v))), 1);
    json_t *cases = json_object_get(j, "cases");
    cr_assert_eq(json_array_size(cases), DCS_V__COUNT);
    for (int v = 0; v < DCS_V__COUNT; v++)
        check_json_case(json_array_get(cases, v), v);
    json_decref(j);
    free(text);
    free_run(&r);
}

/* ------------------------------------------------------------------------ */
/* JUnit                                                                     */

/* A small well-formedness check: tags nest and match, attribute values are
 * quoted and hold no '<', every '&' starts a known reference. Returns NULL
 * or what is wrong. */
static const char *xml_check_ref(const char *p)
{
    static const char *const refs[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&#39;", "&#10;", "&#9;"};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (strncmp(p, refs[i], strlen(refs[i])) == 0)
            return NULL;
    return "unknown entity";
}

static const char *xml_well_formed(const char *p)
{
    char stack[16][64];
    int depth = 0, root_seen = 0;
    if (strncmp(p, "<?xml ", 6) != 0)
        return "no XML declaration";
    p = strstr(p, "?>") + 2;
    while (*p) {
        if (*p == '&' && xml_check_ref(p))
            return xml_check_ref(p);
        if (*p == '>')
            return "raw > in text";
        if (*p++ != '<')
            continue;
        int close = *p == '/';
        p += close;
        size_t n = strcspn(p, " />");
        if (n == 0 || n >= 64)
            return "bad tag name";
        if (close) {
            if (depth == 0 || strncmp(stack[depth - 1], p, n) != 0 || stack[depth - 1][n])
                return "mismatched end tag";
            depth--;
            p += n + 1;
            continue;
        }
        if (depth == 0 && root_seen++)
            return "two root elements";
        if (depth == 16)
            return "too deep";
        memcpy(stack[depth], p, n);
        stack[depth][n] = 0;
        for (p += n; *p != '>' && *p != '/';) {
            p += strspn(p, " ");
            size_t a = strcspn(p, "=");
            if (p[a] != '=' || p[a + 1] != '"')
                return "unquoted attribute";
            p += a + 2;
            size_t v = strcspn(p, "\"<");
            if (p[v] != '"')
                return "< or end in an attribute value";
            for (size_t i = 0; i < v; i++)
                if (p[i] == '&' && xml_check_ref(p + i))
                    return "unknown entity in an attribute";
            p += v + 1;
        }
        if (*p == '/')
            p++;
        else
            depth++;
        if (*p++ != '>')
            return "bad empty-element tag";
    }
    return depth ? "unclosed element" : root_seen ? NULL : "no root";
}

/* A schema with the content model of Maven Surefire's test report (element
 * order, required attributes, the time format) under a testsuites root. */
static const char surefire_xsd[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n"
    "<xs:simpleType name=\"time\"><xs:restriction base=\"xs:string\">"
    "<xs:pattern value=\"[0-9]+(\\.[0-9]{1,3})?\"/></xs:restriction></xs:simpleType>\n"
    "<xs:complexType name=\"problem\"><xs:simpleContent><xs:extension base=\"xs:string\">"
    "<xs:attribute name=\"message\" type=\"xs:string\"/>"
    "<xs:attribute name=\"type\" type=\"xs:string\" use=\"required\"/>"
    "</xs:extension></xs:simpleContent></xs:complexType>\n"
    "<xs:complexType name=\"skip\"><xs:simpleContent><xs:extension base=\"xs:string\">"
    "<xs:attribute name=\"message\" type=\"xs:string\"/>"
    "</xs:extension></xs:simpleContent></xs:complexType>\n"
    "<xs:element name=\"testsuites\"><xs:complexType><xs:sequence>"
    "<xs:element ref=\"testsuite\" minOccurs=\"0\" maxOccurs=\"unbounded\"/></xs:sequence>"
    "<xs:attribute name=\"name\" type=\"xs:string\"/>"
    "<xs:attribute name=\"tests\" type=\"xs:nonNegativeInteger\"/>"
    "<xs:attribute name=\"failures\" type=\"xs:nonNegativeInteger\"/>"
    "<xs:attribute name=\"errors\" type=\"xs:nonNegativeInteger\"/>"
    "<xs:attribute name=\"skipped\" type=\"xs:nonNegativeInteger\"/>"
    "<xs:attribute name=\"time\" type=\"time\"/></xs:complexType></xs:element>\n"
    "<xs:element name=\"testsuite\"><xs:complexType><xs:sequence>"
    "<xs:element name=\"properties\" minOccurs=\"0\"><xs:complexType><xs:sequence>"
    "<xs:element name=\"property\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType>"
    "<xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/>"
    "<xs:attribute name=\"value\" type=\"xs:string\" use=\"required\"/>"
    "</xs:complexType></xs:element></xs:sequence></xs:complexType></xs:element>\n"
    "<xs:element name=\"testcase\" minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:complexType>"
    "<xs:sequence>"
    "<xs:element name=\"failure\" type=\"problem\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>"
    "<xs:element name=\"skipped\" type=\"skip\" minOccurs=\"0\"/>"
    "<xs:element name=\"error\" type=\"problem\" minOccurs=\"0\"/>"
    "<xs:element name=\"system-out\" type=\"xs:string\" minOccurs=\"0\"/>"
    "<xs:element name=\"system-err\" type=\"xs:string\" minOccurs=\"0\"/></xs:sequence>"
    "<xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/>"
    "<xs:attribute name=\"classname\" type=\"xs:string\"/>"
    "<xs:attribute name=\"time\" type=\"time\" use=\"required\"/>"
    "</xs:complexType></xs:element></xs:sequence>\n"
    "<xs:attribute name=\"name\" type=\"xs:string\" use=\"required\"/>"
    "<xs:attribute name=\"tests\" type=\"xs:nonNegativeInteger\" use=\"required\"/>"
    "<xs:attribute name=\"failures\" type=\"xs:nonNegativeInteger\" use=\"required\"/>"
    "<xs:attribute name=\"errors\" type=\"xs:nonNegativeInteger\" use=\"required\"/>"
    "<xs:attribute name=\"skipped\" type=\"xs:nonNegativeInteger\" use=\"required\"/>"
    "<xs:attribute name=\"time\" type=\"time\"/></xs:complexType></xs:element>\n"
    "</xs:schema>\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static int have_xmllint(void)
{
    return system("command -v xmllint >/dev/null 2>&1") == 0;
}

/* Validates the report with xmllint against surefire_xsd. */
static void xmllint_validate(const char *xml)
{
    char dir[] = "/tmp/dcs-report-XXXXXX", xsd[64], doc[64], cmd[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(xsd, sizeof xsd, "%s/s.xsd", dir);
    snprintf(doc, sizeof doc, "%s/r.xml", dir);
    write_file(xsd, surefire_xsd);
    write_file(doc, xml);
    snprintf(cmd, sizeof cmd, "xmllint --noout --schema %s %s 2>&1", xsd, doc);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char said[4096];
    size_t n = fread(said, 1, sizeof said - 1, p);
    said[n] = 0;
    int rc = pclose(p);
    unlink(xsd);
    unlink(doc);
    rmdir(dir);
    cr_assert_eq(rc, 0, "xmllint rejected the report: %s\n%s", said, xml);
}

Test(report, junit_structure)
{
    dcs_run_report r;
    size_t len;
    fill_run(&r);
    char *x = render(dcs_report_junit, &r, &len);
    assert_clean_text(x, len);
    const char *why = xml_well_formed(x);
    cr_assert_null(why, "%s:\n%s", why, x);
    cr_expect_eq(count(x, "<testsuite "), 2);
    cr_expect_eq(count(x, "<testcase "), DCS_V__COUNT);
    cr_expect_eq(count(x, "<failure "), 2); /* FAIL, XPASS */
    cr_expect_eq(count(x, "<error "), 1);
    cr_expect_eq(count(x, "<skipped "), 2); /* SKIP, XFAIL */
    cr_expect_eq(count(x, "<system-out>"), 5); /* FAIL NON-STRICT INFO ERROR XPASS */
    cr_expect_eq(count(x, "<system-err>"), 4); /* FAIL NON-STRICT ERROR XPASS */
    cr_expect(strstr(x, "<testsuites name=\"dcs-conform\" tests=\"8\" failures=\"2\" errors=\"1\" "
                        "skipped=\"2\" time=\"2.500\">"));
    cr_expect(strstr(x, "<testsuite name=\"env &lt;&amp;&gt;\" tests=\"4\" failures=\"2\" "
                        "errors=\"1\" "
                        "skipped=\"0\" time=\"0.049\">"));
    cr_expect(strstr(x, "name=\"4.1-case-FAIL\" classname=\"env &lt;&amp;&gt;\" time=\"0.012\">"));
    cr_expect(strstr(x, "<testcase name=\"4.0-case-PASS\" classname=\"framing\" time=\"0.012\"/>"));
    cr_expect(strstr(x, "<skipped message=\"expected failure: why: \\u0001\\u007F"));
    cr_expect(strstr(x, "step (line 4): expect {&quot;type&quot;:&quot;x&quot;}\nexpected:"));
    cr_expect(strstr(x, "offset: 7\nelapsed: 2013 ms"));
    cr_expect(strstr(x, "\\x00\\x1B\\xFF\\xFE]]&gt;&lt;script&gt;"), "wire bytes escaped");
    cr_expect(strstr(x, "NON-STRICT: a SHOULD was not met: why:"));
    cr_expect(strstr(x, "[the harness stopped recording"), "ERROR's truncated log noted");
    cr_expect_eq(count(x, "]]>"), 0);
    cr_expect_eq(count(x, "<script"), 0);
    free(x);
    free_run(&r);
}

/* Well-formed and valid against the Surefire-shaped schema, checked by
 * xmllint when it is installed. */
Test(report, junit_valid_by_xmllint)
{
    if (!have_xmllint())
        cr_skip_test("xmllint is not installed (package libxml2-utils)");
    dcs_run_report r;
    fill_run(&r);
    char *x = render(dcs_report_junit, &r, NULL);
    xmllint_validate(x);
    free(x);
    r.cases[0].verdict = 42; /* an unknown verdict is an <error> */
    x = render(dcs_report_junit, &r, NULL);
    xmllint_validate(x);
    free(x);
    free_run(&r);
}

/* ------------------------------------------------------------------------ */
/* TAP                                                                       */

Test(report, tap_plan_and_lines)
{
    dcs_run_report r;
    size_t len;
    fill_run(&r);
    char *t = render(dcs_report_tap, &r, &len);
    assert_clean_text(t, len);
    cr_assert_eq(strncmp(t, "TAP version 13\n1..8\n", 20), 0, "%s", t);
    size_t n = 0, ok = 0, open_yaml = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char expect[32];
        int is_ok = strncmp(line, "ok ", 3) == 0;
        if (is_ok || strncmp(line, "not ok ", 7) == 0) {
            cr_assert_eq(open_yaml, 0, "test line inside a YAML block");
            snprintf(expect, sizeof expect, "%s %zu - 4.%zu-case-", is_ok ? "ok" : "not ok", n + 1,
                     n);
            cr_expect_eq(strncmp(line, expect, strlen(expect)), 0, "%s", line);
            cr_expect(strstr(line, "title \\# SKIP not really"), "'#' escaped: %s", line);
            ok += is_ok;
            int v = (int)n++;
            cr_expect_eq(is_ok, !dcs_verdict_fails_run(v) && v != DCS_V_XFAIL, "%s", line);
            if (v == DCS_V_SKIP)
                cr_expect(strstr(line, " # SKIP why: ") && strstr(line, "</script> #1"), "%s",
                          line);
            if (v == DCS_V_XFAIL)
                cr_expect(strstr(line, " # TODO expected failure: why:"), "%s", line);
            if (v == DCS_V_NONSTRICT)
                cr_expect(strstr(line, "[NON-STRICT]") && !strstr(line, " # TODO"), "%s", line);
        } else if (strcmp(line, "  ---") == 0) {
            open_yaml++;
        } else if (strcmp(line, "  ...") == 0) {
            cr_assert_eq(open_yaml--, 1, "unbalanced YAML block");
        } else if (strncmp(line, "TAP", 3) && strncmp(line, "1..", 3)) {
            cr_assert_eq(open_yaml, 1, "stray line: %s", line);
        }
    }
    cr_expect_eq(n, DCS_V__COUNT);
    cr_expect_eq(ok, 4); /* PASS NON-STRICT INFORMATIONAL SKIP */
    cr_expect_eq(open_yaml, 0);
    free(t);
    free_run(&r);
}

Test(report, tap_yaml_fields)
{
    dcs_run_report r;
    fill_run(&r);
    char *t = render(dcs_report_tap, &r, NULL);
    const char *fail = strstr(t, "not ok 2 - 4.1-case-FAIL");
    cr_assert_not_null(fail);
    cr_expect(strstr(fail, "\n  ---\n  verdict: \"FAIL\"\n  message: \"why: \\u0001\\u007f \\ufffd"
                           "\\ufffd ]]> <script>alert(1)</script> #1\"\n"),
              "%s", fail);
    cr_expect(strstr(fail, "  line: 4\n  step: \"expect {\\\"type\\\":\\\"x\\\"}\"\n"), "%s", fail);
    cr_expect(strstr(fail, "  conn: 1\n  offset: 7\n  elapsed_ms: 2013\n"), "%s", fail);
    free(t);
    free_run(&r);
}

/* ------------------------------------------------------------------------ */
/* HTML                                                                      */

Test(report, html_escapes_and_structure)
{
    dcs_run_report r;
    size_t len;
    fill_run(&r);
    char *h = render(dcs_report_html, &r, &len);
    assert_clean_text(h, len);
    cr_expect_eq(strncmp(h, "<!DOCTYPE html>", 15), 0);
    cr_expect(strstr(h, "</html>\n"));
    cr_expect_eq(count(h, "<script"), 0, "raw <script> from the data");
    cr_expect_eq(count(h, "<x>"), 0);
    cr_expect_eq(count(h, "<b>"), 0);
    cr_expect(count(h, "&lt;script&gt;alert(1)&lt;/script&gt;") >= DCS_V__COUNT);
    cr_expect_eq(count(h, "<details class=\"case "), DCS_V__COUNT);
    cr_expect_eq(count(h, "<details class=\"case bad\""), 4); /* FAIL NON-STRICT ERROR XPASS */
    cr_expect_eq(count(h, "\" open>\n<summary><span class=\"badge"), 4);
    cr_expect_eq(count(h, "<section id=\"cat-"), 2);
    cr_expect(strstr(h, "<a href=\"#cat-1\">env &lt;&amp;&gt;</a>"));
    cr_expect(strstr(h, "<a href=\"../spec/PROTOCOL.md#s4.2\">\xC2\xA7" "4.2</a>"));
    cr_expect(strstr(h, "<a href=\"../spec/PROTOCOL.md#s8.3x\">\xC2\xA7"
                        "8.3&quot;&gt;&lt;x&gt;</a>"));
    /* The failing step's line is highlighted, once per case with a divergence. */
    cr_expect_eq(count(h, "<span class=\"l hl\"><span class=\"n\">4</span>expect"), 2);
    cr_expect(strstr(h, "<span class=\"e\">\\x00</span><span class=\"e\">\\x1B</span>"
                        "<span class=\"e\">\\xFF</span><span class=\"e\">\\xFE</span>]]&gt;"));
    cr_expect(strstr(h, "<tr class=\"in hl\">"), "the divergence's wire row is marked");
    cr_expect(strstr(h, "<td class=\"c-FAIL\">1</td>"));
    free(h);
    free_run(&r);
}

/* ------------------------------------------------------------------------ */
/* Edges                                                                     */

Test(report, empty_run)
{
    dcs_run_report r;
    memset(&r, 0, sizeof r);
    char *j = render(dcs_report_json, &r, NULL);
    json_t *root = load_json(j, strlen(j));
    cr_expect_eq(json_array_size(json_object_get(root, "cases")), 0);
    cr_expect(json_is_null(json_object_get(root, "version")));
    json_decref(root);
    char *x = render(dcs_report_junit, &r, NULL);
    cr_expect_null(xml_well_formed(x), "%s", x);
    char *t = render(dcs_report_tap, &r, NULL);
    cr_expect_str_eq(t, "TAP version 13\n1..0\n");
    char *h = render(dcs_report_html, &r, NULL);
    cr_expect(strstr(h, "</html>"));
    free(j), free(x), free(t), free(h);
}

Test(report, long_wire_log_is_bounded)
{
    dcs_run_report r;
    size_t big = 200 * 1024, len;
    fill_run(&r);
    char *blob = malloc(big);
    cr_assert_not_null(blob);
    memset(blob, 'a', big);
    dcs_case_result *c = &r.cases[DCS_V_FAIL];
    for (int i = 0; i < 3; i++)
        add_wire(c, 3000 + i, 1, DCS_WIRE_IN, 100 + i * big, blob, big);
    free(blob);
    char *x = render(dcs_report_junit, &r, &len);
    cr_expect_null(xml_well_formed(x));
    cr_expect(len < 150 * 1024, "JUnit is %zu bytes", len);
    cr_expect(strstr(x, "more bytes]\n[wire log truncated: 4 of 6 entries shown]"));
    free(x);
    char *h = render(dcs_report_html, &r, &len);
    cr_expect(len < 200 * 1024, "HTML is %zu bytes", len);
    cr_expect(strstr(h, "Truncated: 4 of 6 entries shown."));
    free(h);
    char *j = render(dcs_report_json, &r, &len); /* JSON keeps everything */
    cr_expect(len > 3 * big);
    json_decref(load_json(j, len));
    free(j);
    free_run(&r);
}

Test(report, unknown_verdict_is_an_error)
{
    dcs_run_report r;
    fill_run(&r);
    r.cases[0].verdict = 42;
    char *x = render(dcs_report_junit, &r, NULL);
    cr_expect_eq(count(x, "<error "), 2);
    cr_expect_null(xml_well_formed(x));
    char *t = render(dcs_report_tap, &r, NULL);
    cr_expect(strstr(t, "not ok 1 - 4.0-case-PASS"));
    cr_expect(strstr(t, "[unknown]\n"));
    char *j = render(dcs_report_json, &r, NULL);
    json_t *root = load_json(j, strlen(j));
    cr_expect_str_eq(jstr(json_array_get(json_object_get(root, "cases"), 0), "verdict"), "unknown");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(root, "counts"), "ERROR")), 2);
    json_decref(root);
    free(x), free(t), free(j);
    free_run(&r);
}

static void expect_write_error(FILE *f, int err)
{
    static const writer writers[] = {dcs_report_junit, dcs_report_json, dcs_report_tap,
                                     dcs_report_html};
    static const char *const names[] = {"junit", "json", "tap", "html"};
    dcs_run_report r;
    fill_run(&r);
    for (size_t i = 0; i < 4; i++) {
        errno = 0;
        cr_expect_eq(writers[i](f, &r), -1, "%s did not fail", names[i]);
        cr_expect_eq(errno, err, "%s: errno %d (%s)", names[i], errno, strerror(errno));
        clearerr(f);
    }
    free_run(&r);
}

Test(report, write_errors_are_reported)
{
    FILE *ro = fopen("/dev/null", "r");
    cr_assert_not_null(ro);
    expect_write_error(ro, EBADF);
    fclose(ro);
    FILE *full = fopen("/dev/full", "w");
    if (!full)
        cr_skip_test("no /dev/full");
    expect_write_error(full, ENOSPC);
    fclose(full);
}
