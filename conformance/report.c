/* report.c - the reports of dcs-conform (result.h): JUnit XML for CI
 * dashboards, JSON for programs, TAP version 13 for TAP consumers and one
 * self-contained HTML page for people. conformance/REPORTS.md describes what
 * each one contains.
 *
 * The writers only read the run. Every write goes through one output with a
 * sticky error (struct out): after the first failed write the rest are
 * skipped, and the writer returns -1 with errno set to that failure. Bytes
 * from the records are never trusted: each format escapes them, and bytes
 * that are not UTF-8 never reach an output raw. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "result.h"
#include "transcript.h"

/* How many bytes of wire data a case shows: failed cases (JUnit, HTML) and
 * the others (HTML only). */
#define WIRE_CAP_FAILED (64 * 1024)
#define WIRE_CAP_OTHER (8 * 1024)

/* ------------------------------------------------------------------------ */
/* Verdicts and records                                                      */

const char *dcs_verdict_name(int verdict)
{
    switch (verdict) {
#define DCS__VERDICT_CASE(name, word) \
    case DCS_V_##name: return word;
        DCS_VERDICT_MAP(DCS__VERDICT_CASE)
#undef DCS__VERDICT_CASE
    default: return "unknown";
    }
}

/* The verdict's enum name ("NONSTRICT"), used as a CSS class. */
static const char *verdict_key(int verdict)
{
    switch (verdict) {
#define DCS__VERDICT_KEY(name, word) \
    case DCS_V_##name: return #name;
        DCS_VERDICT_MAP(DCS__VERDICT_KEY)
#undef DCS__VERDICT_KEY
    default: return "ERROR";
    }
}

int dcs_verdict_fails_run(int verdict)
{
    return verdict == DCS_V_FAIL || verdict == DCS_V_ERROR || verdict == DCS_V_XPASS;
}

/* A verdict out of range counts as an ERROR. */
static int verdict_index(int verdict)
{
    return verdict >= 0 && verdict < DCS_V__COUNT ? verdict : DCS_V_ERROR;
}

/* The cases a person should look at: those that fail the run, and NON-STRICT. */
static int needs_attention(int verdict)
{
    return verdict_index(verdict) == DCS_V_ERROR || dcs_verdict_fails_run(verdict) ||
           verdict == DCS_V_NONSTRICT;
}

void dcs_case_result_clear(dcs_case_result *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->title);
    free(r->category);
    free(r->file);
    free(r->source);
    for (size_t i = 0; i < r->n_cites; i++)
        free(r->cites[i]);
    free(r->cites);
    free(r->reason);
    free(r->div.step);
    free(r->div.expected);
    free(r->div.actual);
    for (size_t i = 0; i < r->n_wire; i++)
        free(r->wire[i].data);
    free(r->wire);
    free(r->iut_log);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Output with a sticky error                                                */

typedef struct out {
    FILE *f;
    int err; /* errno of the first failed write; later writes are skipped */
} out;

static void out_failed(out *o)
{
    if (!o->err)
        o->err = errno ? errno : EIO;
}

static void put_n(out *o, const char *s, size_t n)
{
    if (o->err || n == 0)
        return;
    errno = 0;
    if (fwrite(s, 1, n, o->f) != n)
        out_failed(o);
}

static void put(out *o, const char *s)
{
    put_n(o, s, strlen(s));
}

static void putf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out *o, const char *fmt, ...)
{
    va_list ap;
    if (o->err)
        return;
    errno = 0;
    va_start(ap, fmt);
    int rc = vfprintf(o->f, fmt, ap);
    va_end(ap);
    if (rc < 0)
        out_failed(o);
}

/* Flushes; returns 0, or -1 with errno set when any write failed. */
static int out_done(out *o)
{
    errno = 0;
    if (!o->err && fflush(o->f) != 0)
        out_failed(o);
    if (!o->err && ferror(o->f))
        o->err = EIO;
    if (o->err) {
        errno = o->err;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and escaping                                                        */

/* The markup a string is written into. */
enum mk {
    MK_XML,  /* XML element content */
    MK_ATTR, /* XML or HTML attribute value between double quotes */
    MK_HTML, /* HTML element content: visible escapes get <span class="e"> */
    MK_JSON, /* JSON string contents (also YAML double-quoted scalars) */
    MK_TAP,  /* a TAP test line's description: one line, '#' escaped */
    MK_LINE, /* one line of plain text (a TAP directive's reason) */
};

/* The length of the valid UTF-8 sequence at s[0..n) and its code point, or
 * 0 when s does not start with one (overlong forms, surrogates and values
 * above U+10FFFF are not valid). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, v = s[0] & 0x1F, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, v = s[0] & 0x0F, min = 0x800;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq((const unsigned char *)s + i, n - i, &cp)) == 0)
            return 0;
    return 1;
}

/* Characters no output shows raw: C0 and C1 controls, DEL, and the two
 * non-characters XML 1.0 forbids. */
static int is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFFFE || cp == 0xFFFF;
}

/* A visible escape such as \x00; HTML marks it so it stands out. */
static void put_mark(out *o, int mk, const char *text)
{
    if (mk == MK_HTML)
        putf(o, "<span class=\"e\">%s</span>", text);
    else
        put(o, text);
}

/* A control character (or, in wire mode, a backslash). Text mode keeps
 * newlines and tabs and shows the others as \u0000; wire mode shows all of
 * them the way C writes them: \n, \x00, \u0085. */
static void put_control(out *o, int mk, int wire, uint32_t cp)
{
    char b[16];
    if (!wire && (cp == '\n' || cp == '\t')) {
        if (mk == MK_ATTR)
            put(o, cp == '\n' ? "&#10;" : "&#9;");
        else
            put(o, mk == MK_TAP || mk == MK_LINE ? " " : cp == '\n' ? "\n" : "\t");
        return;
    }
    if (wire && (cp == '\n' || cp == '\r' || cp == '\t' || cp == '\\'))
        snprintf(b, sizeof b, "\\%c",
                 cp == '\n' ? 'n' : cp == '\r' ? 'r' : cp == '\t' ? 't' : '\\');
    else if (wire && cp < 0x80)
        snprintf(b, sizeof b, "\\x%02X", (unsigned)cp);
    else
        snprintf(b, sizeof b, "\\u%04X", (unsigned)cp);
    put_mark(o, mk, b);
}

/* A byte that does not start valid UTF-8: \xNN in wire mode, else U+FFFD. */
static void put_bad_byte(out *o, int mk, int wire, unsigned char byte)
{
    char b[8];
    if (mk == MK_JSON) {
        put(o, "\\ufffd");
    } else if (wire) {
        snprintf(b, sizeof b, "\\x%02X", byte);
        put_mark(o, mk, b);
    } else {
        put(o, "\xEF\xBF\xBD");
    }
}

/* The replacement of a printable character in mk, or NULL. */
static const char *entity(int mk, uint32_t cp)
{
    if (mk == MK_TAP || mk == MK_LINE)
        return mk == MK_TAP && cp == '#' ? "\\#" : NULL;
    if (mk == MK_JSON) {
        switch (cp) {
        case '"': return "\\\"";
        case '\\': return "\\\\";
        case 0x2028: return "\\u2028"; /* line separators: not raw in JavaScript */
        case 0x2029: return "\\u2029";
        default: return NULL;
        }
    }
    switch (cp) {
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '&': return "&amp;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

static void put_json_control(out *o, uint32_t cp)
{
    switch (cp) {
    case '\n': put(o, "\\n"); break;
    case '\r': put(o, "\\r"); break;
    case '\t': put(o, "\\t"); break;
    case '\b': put(o, "\\b"); break;
    case '\f': put(o, "\\f"); break;
    default: putf(o, "\\u%04x", (unsigned)cp);
    }
}

/* Writes s[0..n) escaped for mk. wire: the bytes are data from the wire, so
 * controls, backslashes and bytes that are not UTF-8 are shown as C escapes;
 * otherwise they are text (see put_control and put_bad_byte). JSON escapes
 * exactly and ignores wire. Runs of plain characters go out in one write. */
static void put_esc(out *o, int mk, int wire, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n && !o->err) {
        uint32_t cp = 0;
        size_t k = utf8_seq(p + i, n - i, &cp);
        const char *ent = k ? entity(mk, cp) : NULL;
        int special = k == 0 || ent || is_control(cp) || (wire && mk != MK_JSON && cp == '\\');
        if (!special) {
            i += k;
            continue;
        }
        put_n(o, s + run, i - run);
        if (k == 0) {
            put_bad_byte(o, mk, wire, p[i]);
            k = 1;
        } else if (ent) {
            put(o, ent);
        } else if (mk == MK_JSON) {
            put_json_control(o, cp);
        } else {
            put_control(o, mk, wire, cp);
        }
        i += k;
        run = i;
    }
    put_n(o, s + run, i - run);
}

/* A NUL-terminated text (NULL writes nothing). */
static void put_text(out *o, int mk, const char *s)
{
    if (s)
        put_esc(o, mk, 0, s, strlen(s));
}

/* A JSON string, or null for NULL. */
static void put_json(out *o, const char *s)
{
    if (!s) {
        put(o, "null");
        return;
    }
    put(o, "\"");
    put_text(o, MK_JSON, s);
    put(o, "\"");
}

/* ------------------------------------------------------------------------ */
/* Facts shared by the formats                                               */

static const char *nonempty(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

static const char *role_name(int role)
{
    return role == DCS_ROLE_CLIENT ? "client" : role == DCS_ROLE_SERVER ? "server" : "unknown";
}

static const char *level_name(int level)
{
    return level == DCS_LEVEL_MUST     ? "must"
           : level == DCS_LEVEL_SHOULD ? "should"
           : level == DCS_LEVEL_INFO   ? "info"
                                       : "unknown";
}

static const char *dir_name(int dir)
{
    return dir == DCS_WIRE_IN ? "in" : dir == DCS_WIRE_OUT ? "out" : "event";
}

/* The arrow of a wire event, relative to the IUT. */
static const char *dir_arrow(int dir)
{
    return dir == DCS_WIRE_IN    ? "\xE2\x86\x90 IUT" /* <- IUT: written by the IUT */
           : dir == DCS_WIRE_OUT ? "\xE2\x86\x92 IUT" /* -> IUT: written to the IUT */
                                 : "\xE2\x80\xA2";    /* a bullet: an event */
}

static const char *cat_of(const dcs_case_result *c)
{
    return nonempty(c->category, "uncategorized");
}

/* True when case i is the first of its category: categories are listed in
 * the order they first appear. */
static int first_of_category(const dcs_run_report *r, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(cat_of(&r->cases[j]), cat_of(&r->cases[i])) == 0)
            return 0;
    return 1;
}

typedef struct tally {
    size_t n;
    size_t v[DCS_V__COUNT];
    int64_t us;
} tally;

/* Counts the cases of category cat (NULL: all). The counts always come from
 * the case list, so no report can disagree with it. */
static tally count_cases(const dcs_run_report *r, const char *cat)
{
    tally t;
    memset(&t, 0, sizeof t);
    for (size_t i = 0; i < r->n_cases; i++) {
        const dcs_case_result *c = &r->cases[i];
        if (cat && strcmp(cat_of(c), cat) != 0)
            continue;
        t.n++;
        t.v[verdict_index(c->verdict)]++;
        t.us += c->duration_us > 0 ? c->duration_us : 0;
    }
    return t;
}

static size_t failed_count(const tally *t)
{
    return t->v[DCS_V_FAIL] + t->v[DCS_V_ERROR] + t->v[DCS_V_XPASS];
}

/* v / div with three decimals, truncated toward zero, without the locale:
 * fixed3(b, 12345, 1000) is "12.345". div is 1000 or 1000000. */
static const char *fixed3(char b[32], int64_t v, int64_t div)
{
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v, d = (uint64_t)div;
    unsigned frac = (unsigned)(u % d / (d / 1000)) % 1000;
    snprintf(b, 32, "%s%" PRIu64 ".%03u", v < 0 ? "-" : "", u / d, frac);
    return b;
}

/* A duration for people: "12.345 ms" or "1.234 s". */
static const char *human_us(char b[40], int64_t us)
{
    char t[32];
    if (us < 1000000 && us > -1000000)
        snprintf(b, 40, "%s ms", fixed3(t, us, 1000));
    else
        snprintf(b, 40, "%s s", fixed3(t, us, 1000000));
    return b;
}

/* "2024-05-01T12:00:00.123Z", or "" when unknown. */
static const char *iso_time(char b[40], int64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    b[0] = 0;
    if (unix_ms <= 0 || !gmtime_r(&t, &tm) || !strftime(b, 40, "%Y-%m-%dT%H:%M:%S", &tm))
        return b;
    snprintf(b + strlen(b), 40 - strlen(b), ".%03dZ", (int)(unix_ms % 1000));
    return b;
}

/* A double as JSON (null when not finite), whatever the locale. */
static const char *json_double(char b[40], double d)
{
    if (!isfinite(d))
        return strcpy(b, "null");
    snprintf(b, 40, "%.6g", d);
    for (char *p = b; *p; p++)
        if (*p == ',')
            *p = '.';
    return b;
}

/* ------------------------------------------------------------------------ */
/* JUnit XML                                                                 */

static void junit_attr(out *o, const char *name, const char *value)
{
    putf(o, " %s=\"", name);
    put_text(o, MK_ATTR, value);
    put(o, "\"");
}

/* The first divergence as text: the step, what was expected, what arrived. */
static void junit_divergence(out *o, const dcs_case_result *c)
{
    const dcs_divergence *d = &c->div;
    putf(o, "step (line %d): ", d->line);
    put_text(o, MK_XML, d->step);
    put(o, "\nexpected: ");
    put_text(o, MK_XML, d->expected);
    put(o, "\nactual: ");
    if (d->actual)
        put_esc(o, MK_XML, 1, d->actual, strlen(d->actual));
    putf(o, "\nconn: %d\n", d->conn);
    if (d->has_offset)
        putf(o, "offset: %" PRIu64 "\n", d->offset);
    putf(o, "elapsed: %" PRId64 " ms\n", d->elapsed_ms);
}

/* One line per wire event, at most cap bytes of data in all. */
static void text_wire(out *o, int mk, const dcs_case_result *c, size_t cap)
{
    char t[32];
    size_t i;
    for (i = 0; i < c->n_wire && cap > 0; i++) {
        const dcs_wire_event *e = &c->wire[i];
        size_t k = e->len < cap ? e->len : cap;
        cap -= k;
        putf(o, "%12s ms  c%d  %s ", fixed3(t, e->t_us, 1000), e->conn,
             e->dir == DCS_WIRE_EVENT ? "event" : dir_arrow(e->dir));
        if (e->dir != DCS_WIRE_EVENT)
            putf(o, "@%" PRIu64 "  ", e->offset);
        if (e->data)
            put_esc(o, mk, 1, e->data, k);
        if (k < e->len)
            putf(o, " [... %zu more bytes]", e->len - k);
        put(o, "\n");
    }
    if (i < c->n_wire)
        putf(o, "[wire log truncated: %zu of %zu entries shown]\n", i, c->n_wire);
    if (c->wire_truncated)
        put(o, "[the harness stopped recording: the wire log hit its bound]\n");
}

static void junit_outcome(out *o, const dcs_case_result *c)
{
    const char *reason = nonempty(c->reason, dcs_verdict_name(c->verdict));
    switch (c->verdict) {
    case DCS_V_PASS:
    case DCS_V_NONSTRICT:
    case DCS_V_INFO: return;
    case DCS_V_SKIP:
    case DCS_V_XFAIL:
        put(o, "      <skipped message=\"");
        if (c->verdict == DCS_V_XFAIL)
            put(o, c->reason && *c->reason ? "expected failure: " : "expected failure");
        put_text(o, MK_ATTR, c->verdict == DCS_V_XFAIL ? c->reason : reason);
        put(o, "\"/>\n");
        return;
    case DCS_V_FAIL:
    case DCS_V_XPASS:
        put(o, "      <failure");
        junit_attr(o, "message",
                   c->verdict == DCS_V_XPASS ? "passed, but the case is expected to fail" : reason);
        junit_attr(o, "type", dcs_verdict_name(c->verdict));
        put(o, ">");
        if (c->has_divergence)
            junit_divergence(o, c);
        else
            put_text(o, MK_XML, reason);
        put(o, "</failure>\n");
        return;
    default:
        put(o, "      <error");
        junit_attr(o, "message", reason);
        junit_attr(o, "type", "ERROR");
        put(o, ">");
        put_text(o, MK_XML, reason);
        put(o, "</error>\n");
    }
}

/* system-out: what a passing NON-STRICT or INFORMATIONAL case noted, and the
 * wire log of failed cases; system-err: the IUT's output. */
static void junit_output(out *o, const dcs_case_result *c)
{
    int failed = needs_attention(c->verdict);
    int note = c->verdict == DCS_V_NONSTRICT || c->verdict == DCS_V_INFO;
    if (note || (failed && c->n_wire)) {
        put(o, "      <system-out>");
        if (note) {
            put(o, c->verdict == DCS_V_NONSTRICT ? "NON-STRICT: a SHOULD was not met: "
                                                 : "INFORMATIONAL: ");
            put_text(o, MK_XML, nonempty(c->reason, "(no reason given)"));
            put(o, "\n");
            if (c->has_divergence)
                junit_divergence(o, c);
        }
        if (failed && c->n_wire) {
            put(o, "wire log (ms since the case started, connection, direction, offset, bytes):\n");
            text_wire(o, MK_XML, c, WIRE_CAP_FAILED);
        }
        put(o, "</system-out>\n");
    }
    if (failed && c->iut_log && *c->iut_log) {
        put(o, "      <system-err>");
        put_text(o, MK_XML, c->iut_log);
        put(o, "</system-err>\n");
    }
}

static void junit_case(out *o, const dcs_case_result *c)
{
    char t[32];
    put(o, "    <testcase");
    junit_attr(o, "name", nonempty(c->id, "(no id)"));
    junit_attr(o, "classname", cat_of(c));
    putf(o, " time=\"%s\"", fixed3(t, c->duration_us > 0 ? c->duration_us : 0, 1000000));
    if (c->verdict == DCS_V_PASS) { /* nothing to say */
        put(o, "/>\n");
        return;
    }
    put(o, ">\n");
    junit_outcome(o, c);
    junit_output(o, c);
    put(o, "    </testcase>\n");
}

static void junit_property(out *o, const char *name, const char *value)
{
    put(o, "      <property");
    junit_attr(o, "name", name);
    junit_attr(o, "value", value ? value : "");
    put(o, "/>\n");
}

static void junit_suite(out *o, const dcs_run_report *r, const char *cat)
{
    tally t = count_cases(r, cat);
    char b[40];
    put(o, "  <testsuite");
    junit_attr(o, "name", cat);
    putf(o, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%s\">\n", t.n,
         t.v[DCS_V_FAIL] + t.v[DCS_V_XPASS], t.v[DCS_V_ERROR], t.v[DCS_V_SKIP] + t.v[DCS_V_XFAIL],
         fixed3(b, t.us, 1000000));
    put(o, "    <properties>\n");
    junit_property(o, "dcs-conform.version", r->version);
    junit_property(o, "iut.role", r->role);
    junit_property(o, "iut.command", r->command);
    junit_property(o, "time.scale", json_double(b, r->time_scale));
    junit_property(o, "time.mode", r->time_mode);
    junit_property(o, "started", iso_time(b, r->started_unix_ms));
    put(o, "    </properties>\n");
    for (size_t i = 0; i < r->n_cases; i++)
        if (strcmp(cat_of(&r->cases[i]), cat) == 0)
            junit_case(o, &r->cases[i]);
    put(o, "  </testsuite>\n");
}

int dcs_report_junit(FILE *f, const dcs_run_report *r)
{
    out o = {f, 0};
    tally all = count_cases(r, NULL);
    char t[32];
    put(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    putf(&o, "<testsuites name=\"dcs-conform\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
             "skipped=\"%zu\" time=\"%s\">\n",
         all.n, all.v[DCS_V_FAIL] + all.v[DCS_V_XPASS], all.v[DCS_V_ERROR],
         all.v[DCS_V_SKIP] + all.v[DCS_V_XFAIL],
         fixed3(t, r->duration_us > 0 ? r->duration_us : 0, 1000000));
    for (size_t i = 0; i < r->n_cases; i++)
        if (first_of_category(r, i))
            junit_suite(&o, r, cat_of(&r->cases[i]));
    put(&o, "</testsuites>\n");
    return out_done(&o);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static void json_wire_event(out *o, const dcs_wire_event *e)
{
    char t[32];
    const char *data = e->data ? e->data : "";
    size_t len = e->data ? e->len : 0;
    putf(o, "{\"t_ms\":%s,\"conn\":%d,\"dir\":\"%s\",\"offset\":", fixed3(t, e->t_us, 1000),
         e->conn, dir_name(e->dir));
    if (e->dir == DCS_WIRE_EVENT)
        put(o, "null");
    else
        putf(o, "%" PRIu64, e->offset);
    putf(o, ",\"len\":%zu,\"data\":\"", len);
    put_esc(o, MK_JSON, 0, data, len);
    put(o, "\"");
    if (!utf8_valid(data, len)) {
        put(o, ",\"hex\":\"");
        for (size_t i = 0; i < len; i++)
            putf(o, "%02x", (unsigned char)data[i]);
        put(o, "\"");
    }
    put(o, "}");
}

static void json_divergence(out *o, const dcs_case_result *c)
{
    const dcs_divergence *d = &c->div;
    if (!c->has_divergence) {
        put(o, "null");
        return;
    }
    putf(o, "{\"line\":%d,\"step\":", d->line);
    put_json(o, d->step);
    put(o, ",\"expected\":");
    put_json(o, d->expected);
    put(o, ",\"actual\":");
    put_json(o, d->actual);
    putf(o, ",\"conn\":%d,\"offset\":", d->conn);
    if (d->has_offset)
        putf(o, "%" PRIu64, d->offset);
    else
        put(o, "null");
    putf(o, ",\"elapsed_ms\":%" PRId64 "}", d->elapsed_ms);
}

static void json_case(out *o, const dcs_case_result *c)
{
    char t[40];
    put(o, "{\"id\":");
    put_json(o, c->id);
    put(o, ",\"title\":");
    put_json(o, c->title);
    put(o, ",\"category\":");
    put_json(o, c->category);
    put(o, ",\"file\":");
    put_json(o, c->file);
    put(o, ",\"cites\":[");
    for (size_t i = 0; i < c->n_cites; i++) {
        put(o, i ? "," : "");
        put_json(o, c->cites[i]);
    }
    putf(o, "],\"role\":\"%s\",\"level\":\"%s\",\"verdict\":\"%s\",\"reason\":", role_name(c->role),
         level_name(c->level), dcs_verdict_name(c->verdict));
    put_json(o, c->reason);
    put(o, ",\"started\":");
    put_json(o, c->started_unix_ms > 0 ? iso_time(t, c->started_unix_ms) : NULL);
    putf(o, ",\"duration_ms\":%s,\"divergence\":", fixed3(t, c->duration_us, 1000));
    json_divergence(o, c);
    put(o, ",\"wire\":[");
    for (size_t i = 0; i < c->n_wire; i++) {
        put(o, i ? "," : "");
        json_wire_event(o, &c->wire[i]);
    }
    putf(o, "],\"wire_truncated\":%s,\"iut_log\":", c->wire_truncated ? "true" : "false");
    put_json(o, c->iut_log);
    put(o, "}");
}

int dcs_report_json(FILE *f, const dcs_run_report *r)
{
    out o = {f, 0};
    tally all = count_cases(r, NULL);
    char t[40];
    put(&o, "{\"version\":");
    put_json(&o, r->version);
    put(&o, ",\"role\":");
    put_json(&o, r->role);
    put(&o, ",\"command\":");
    put_json(&o, r->command);
    putf(&o, ",\"time_scale\":%s,\"time_mode\":", json_double(t, r->time_scale));
    put_json(&o, r->time_mode);
    put(&o, ",\"started\":");
    put_json(&o, r->started_unix_ms > 0 ? iso_time(t, r->started_unix_ms) : NULL);
    putf(&o, ",\"started_unix_ms\":%" PRId64 ",\"duration_ms\":%s,\"spec_url\":",
         r->started_unix_ms, fixed3(t, r->duration_us, 1000));
    put_json(&o, r->spec_url);
    putf(&o, ",\"total\":%zu,\"counts\":{", all.n);
    for (int v = 0; v < DCS_V__COUNT; v++)
        putf(&o, "%s\"%s\":%zu", v ? "," : "", dcs_verdict_name(v), all.v[v]);
    put(&o, "},\n\"cases\":[");
    for (size_t i = 0; i < r->n_cases; i++) {
        put(&o, i ? ",\n" : "\n");
        json_case(&o, &r->cases[i]);
    }
    put(&o, "\n]}\n");
    return out_done(&o);
}

/* ------------------------------------------------------------------------ */
/* TAP version 13                                                            */

/* A YAML string member of the diagnostic block (JSON strings are YAML). */
static void tap_yaml_str(out *o, const char *key, const char *value)
{
    if (!value)
        return;
    putf(o, "  %s: ", key);
    put_json(o, value);
    put(o, "\n");
}

static void tap_yaml(out *o, const dcs_case_result *c)
{
    char t[32];
    const dcs_divergence *d = &c->div;
    put(o, "  ---\n");
    tap_yaml_str(o, "verdict", dcs_verdict_name(c->verdict));
    tap_yaml_str(o, "message", c->reason);
    tap_yaml_str(o, "file", c->file);
    if (c->has_divergence) {
        putf(o, "  line: %d\n", d->line);
        tap_yaml_str(o, "step", d->step);
        tap_yaml_str(o, "expected", d->expected);
        tap_yaml_str(o, "actual", d->actual);
        putf(o, "  conn: %d\n", d->conn);
        if (d->has_offset)
            putf(o, "  offset: %" PRIu64 "\n", d->offset);
        putf(o, "  elapsed_ms: %" PRId64 "\n", d->elapsed_ms);
    }
    putf(o, "  duration_ms: %s\n", fixed3(t, c->duration_us, 1000));
    put(o, "  ...\n");
}

/* The directive or marker after the description: SKIP and TODO are TAP
 * directives; the other verdicts are a bracketed word in the description
 * (TAP knows no other directive, so a consumer reads them as plain text). */
static void tap_suffix(out *o, const dcs_case_result *c)
{
    switch (c->verdict) {
    case DCS_V_PASS:
    case DCS_V_FAIL: return;
    case DCS_V_SKIP:
        put(o, " # SKIP ");
        put_text(o, MK_LINE, nonempty(c->reason, "skipped"));
        return;
    case DCS_V_XFAIL:
        put(o, c->reason && *c->reason ? " # TODO expected failure: " : " # TODO expected failure");
        put_text(o, MK_LINE, c->reason);
        return;
    default: putf(o, " [%s]", dcs_verdict_name(c->verdict));
    }
}

static void tap_case(out *o, const dcs_case_result *c, size_t n)
{
    int v = c->verdict;
    int ok = v == DCS_V_PASS || v == DCS_V_NONSTRICT || v == DCS_V_INFO || v == DCS_V_SKIP;
    putf(o, "%s %zu - ", ok ? "ok" : "not ok", n);
    put_text(o, MK_TAP, nonempty(c->id, "(no id)"));
    if (c->title && *c->title) {
        put(o, " ");
        put_text(o, MK_TAP, c->title);
    }
    tap_suffix(o, c);
    put(o, "\n");
    if (v != DCS_V_PASS && v != DCS_V_SKIP)
        tap_yaml(o, c);
}

int dcs_report_tap(FILE *f, const dcs_run_report *r)
{
    out o = {f, 0};
    putf(&o, "TAP version 13\n1..%zu\n", r->n_cases);
    for (size_t i = 0; i < r->n_cases; i++)
        tap_case(&o, &r->cases[i], i + 1);
    return out_done(&o);
}

/* ------------------------------------------------------------------------ */
/* HTML                                                                      */

static const char html_css[] =
    ":root{--PASS:#1a7f37;--FAIL:#cf222e;--NONSTRICT:#9a6700;--INFO:#0969da;--SKIP:#6e7781;"
    "--ERROR:#8250df;--XFAIL:#57606a;--XPASS:#bc4c00;--line:#d0d7de;--dim:#57606a;--bg:#f6f8fa}\n"
    "body{font:14px/1.45 system-ui,sans-serif;color:#1f2328;margin:0 auto;max-width:1500px;"
    "padding:1em 2em}\n"
    "code,pre,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\n"
    "h1{margin:.2em 0}h2{margin:1.2em 0 .3em;border-bottom:1px solid var(--line)}\n"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em}"
    "dl.facts dt{color:var(--dim)}dl.facts dd{margin:0;overflow-wrap:anywhere}\n"
    ".outcome{display:inline-block;color:#fff;font-weight:600;padding:.3em .8em;border-radius:6px}"
    ".outcome.pass{background:var(--PASS)}.outcome.fail{background:var(--FAIL)}\n"
    "table{border-collapse:collapse}table.sum{margin:.8em 0}"
    "table.sum th,table.sum td{padding:.2em .7em;text-align:right;"
    "border-bottom:1px solid var(--line)}"
    "table.sum th:first-child,table.sum td:first-child{text-align:left}"
    "table.sum tr.all td{font-weight:600}.z{color:#c8d1da}\n"
    ".badge{display:inline-block;min-width:10.5em;text-align:center;color:#fff;font:600 12px/1.6 "
    "system-ui,sans-serif;border-radius:4px}\n"
    ".b-PASS{background:var(--PASS)}.b-FAIL{background:var(--FAIL)}"
    ".b-NONSTRICT{background:var(--NONSTRICT)}.b-INFO{background:var(--INFO)}"
    ".b-SKIP{background:var(--SKIP)}.b-ERROR{background:var(--ERROR)}"
    ".b-XFAIL{background:var(--XFAIL)}.b-XPASS{background:var(--XPASS)}\n"
    ".c-PASS{color:var(--PASS)}.c-FAIL{color:var(--FAIL)}.c-NONSTRICT{color:var(--NONSTRICT)}"
    ".c-INFO{color:var(--INFO)}.c-SKIP{color:var(--SKIP)}.c-ERROR{color:var(--ERROR)}"
    ".c-XFAIL{color:var(--XFAIL)}.c-XPASS{color:var(--XPASS)}\n"
    "details.case{border:1px solid var(--line);border-radius:6px;margin:.3em 0}"
    "details.case>summary{cursor:pointer;padding:.3em .6em;display:flex;gap:.7em;"
    "align-items:baseline}"
    "details.case[open]>summary{background:var(--bg);border-bottom:1px solid var(--line)}"
    ".dur{margin-left:auto;color:var(--dim);white-space:nowrap}.body{padding:.4em .8em .8em}\n"
    ".meta{color:var(--dim);margin:.2em 0}.reason{font-weight:600;margin:.3em 0}"
    "table.div th{text-align:left;color:var(--dim);padding:.1em 1em .1em 0;vertical-align:top}"
    "table.div td{white-space:pre-wrap;overflow-wrap:anywhere}\n"
    ".sbs{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.4fr);gap:1em;margin-top:.6em}"
    "@media(max-width:1000px){.sbs{grid-template-columns:minmax(0,1fr)}}\n"
    ".pane{border:1px solid var(--line);border-radius:4px;overflow:auto;max-height:40em}"
    ".pane h4{margin:0;padding:.2em .6em;background:var(--bg);position:sticky;top:0}"
    ".pane p{margin:.4em .6em;color:var(--dim)}\n"
    "pre.src{margin:0;padding:.3em 0}pre.src .l{display:block;padding:0 .6em;white-space:pre-wrap}"
    "pre.src .hl{background:#ffebe9;box-shadow:inset 3px 0 var(--FAIL)}"
    ".n{display:inline-block;min-width:2.5em;margin-right:1em;text-align:right;color:#8c959f;"
    "user-select:none}\n"
    "table.wire{width:100%}table.wire td,table.wire th{padding:0 .5em;vertical-align:top;"
    "text-align:left;white-space:nowrap}table.wire td.b{white-space:pre-wrap;word-break:break-all;"
    "width:100%}tr.in .d{color:var(--INFO)}tr.out .d{color:var(--PASS)}"
    "tr.event td{color:var(--dim);font-style:italic}tr.hl td{background:#ffebe9}\n"
    ".e{color:var(--FAIL);background:#fff0f0;border-radius:2px}"
    "pre.log{margin:.3em 0;padding:.4em;background:var(--bg);overflow:auto;max-height:25em}\n"
    "#only:checked~main details.ok{display:none}"
    "#only:checked~main section:not(:has(details.bad)){display:none}\n";

static void html_text(out *o, const char *s)
{
    put_text(o, MK_HTML, s);
}

static void html_head(out *o, const dcs_run_report *r, const tally *all)
{
    put(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>");
    putf(o, "dcs-conform %s: ", failed_count(all) ? "FAILED" : "passed");
    html_text(o, nonempty(r->role, "?"));
    putf(o, ", %zu cases</title>\n<style>\n%s</style>\n</head>\n<body>\n", all->n, html_css);
}

static void html_fact(out *o, const char *name, const char *value, int code)
{
    putf(o, "<dt>%s</dt><dd>%s", name, code ? "<code>" : "");
    html_text(o, nonempty(value, "-"));
    putf(o, "%s</dd>\n", code ? "</code>" : "");
}

static void html_facts(out *o, const dcs_run_report *r, const tally *all)
{
    char b[40], d[40];
    put(o, "<header>\n<h1>dcs-conform report</h1>\n<dl class=\"facts\">\n");
    html_fact(o, "IUT role", r->role, 0);
    html_fact(o, "IUT command", r->command, 1);
    html_fact(o, "started", iso_time(b, r->started_unix_ms), 0);
    html_fact(o, "duration", human_us(d, r->duration_us), 0);
    snprintf(d, sizeof d, "%s (mode: %s)", json_double(b, r->time_scale),
             nonempty(r->time_mode, "?"));
    html_fact(o, "time scale", d, 0);
    html_fact(o, "dcs-conform", r->version, 0);
    html_fact(o, "specification", r->spec_url, 1);
    put(o, "</dl>\n");
    if (failed_count(all))
        putf(o,
             "<p class=\"outcome fail\">FAILED: %zu FAIL, %zu ERROR, %zu XPASS of %zu cases</p>\n",
             all->v[DCS_V_FAIL], all->v[DCS_V_ERROR], all->v[DCS_V_XPASS], all->n);
    else
        putf(o, "<p class=\"outcome pass\">PASSED: no case of %zu failed</p>\n", all->n);
}

static void html_sum_row(out *o, const char *cls, const char *name, size_t first, const tally *t)
{
    putf(o, "<tr%s><td>", cls);
    if (name) {
        putf(o, "<a href=\"#cat-%zu\">", first);
        html_text(o, name);
        put(o, "</a>");
    } else {
        put(o, "all");
    }
    put(o, "</td>");
    for (int v = 0; v < DCS_V__COUNT; v++)
        if (t->v[v])
            putf(o, "<td class=\"c-%s\">%zu</td>", verdict_key(v), t->v[v]);
        else
            put(o, "<td class=\"z\">0</td>");
    putf(o, "<td>%zu</td></tr>\n", t->n);
}

static void html_summary(out *o, const dcs_run_report *r, const tally *all)
{
    put(o, "<table class=\"sum\">\n<tr><th>category</th>");
    for (int v = 0; v < DCS_V__COUNT; v++)
        putf(o, "<th class=\"c-%s\">%s</th>", verdict_key(v), dcs_verdict_name(v));
    put(o, "<th>total</th></tr>\n");
    for (size_t i = 0; i < r->n_cases; i++) {
        if (!first_of_category(r, i))
            continue;
        tally t = count_cases(r, cat_of(&r->cases[i]));
        html_sum_row(o, "", cat_of(&r->cases[i]), i, &t);
    }
    html_sum_row(o, " class=\"all\"", NULL, 0, all);
    put(o, "</table>\n</header>\n");
}

/* A citation links to the spec with the fragment #sN.M (see REPORTS.md). */
static void html_cite(out *o, const char *spec_url, const char *cite)
{
    if (!spec_url || !*spec_url) {
        put(o, "\xC2\xA7");
        html_text(o, cite);
        return;
    }
    put(o, "<a href=\"");
    put_text(o, MK_ATTR, spec_url);
    put(o, "#s");
    for (const char *p = cite; *p; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            *p == '.' || *p == '-')
            put_n(o, p, 1);
    put(o, "\">\xC2\xA7");
    html_text(o, cite);
    put(o, "</a>");
}

static void html_meta(out *o, const dcs_run_report *r, const dcs_case_result *c)
{
    char b[40];
    put(o, "<p class=\"meta\"><code>");
    html_text(o, nonempty(c->file, "(no file)"));
    put(o, "</code>");
    for (size_t i = 0; i < c->n_cites; i++) {
        put(o, i ? " " : " \xC2\xB7 ");
        html_cite(o, r->spec_url, nonempty(c->cites[i], "?"));
    }
    putf(o, " \xC2\xB7 level %s \xC2\xB7 IUT %s", level_name(c->level), role_name(c->role));
    if (c->started_unix_ms > 0)
        putf(o, " \xC2\xB7 started %s", iso_time(b, c->started_unix_ms));
    put(o, "</p>\n");
    if (c->reason && *c->reason) {
        put(o, "<p class=\"reason\">");
        html_text(o, c->reason);
        put(o, "</p>\n");
    }
}

static void html_div_row(out *o, const char *name, const char *value, int wire)
{
    putf(o, "<tr><th>%s</th><td class=\"mono\">", name);
    if (value)
        put_esc(o, MK_HTML, wire, value, strlen(value));
    put(o, "</td></tr>\n");
}

static void html_divergence(out *o, const dcs_case_result *c)
{
    const dcs_divergence *d = &c->div;
    char b[40];
    if (!c->has_divergence)
        return;
    put(o, "<table class=\"div\">\n");
    snprintf(b, sizeof b, "step (line %d)", d->line);
    html_div_row(o, b, d->step, 0);
    html_div_row(o, "expected", d->expected, 0);
    html_div_row(o, "actual", d->actual, 1);
    putf(o, "<tr><th>where</th><td>connection %d", d->conn);
    if (d->has_offset)
        putf(o, ", stream offset %" PRIu64, d->offset);
    putf(o, ", %" PRId64 " ms after the step started</td></tr>\n</table>\n", d->elapsed_ms);
}

/* The case file with line numbers; the failed step's line highlighted. */
static void html_source(out *o, const dcs_case_result *c)
{
    const char *s = c->source;
    int hl = c->has_divergence ? c->div.line : 0;
    put(o, "<div class=\"pane\"><h4>case</h4>");
    if (!s || !*s) {
        put(o, "<p>(source not recorded)</p></div>\n");
        return;
    }
    put(o, "<pre class=\"src\">");
    for (int line = 1; *s; line++) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        size_t shown = len && s[len - 1] == '\r' ? len - 1 : len; /* CRLF files */
        putf(o, "<span class=\"l%s\"><span class=\"n\">%d</span>", line == hl ? " hl" : "", line);
        put_esc(o, MK_HTML, 0, s, shown);
        put(o, "</span>");
        s += len + (nl != NULL);
    }
    put(o, "</pre></div>\n");
}

/* True when e holds the byte of the IUT's stream that the divergence names. */
static int wire_is_divergence(const dcs_case_result *c, const dcs_wire_event *e)
{
    const dcs_divergence *d = &c->div;
    if (!c->has_divergence || !d->has_offset || e->dir != DCS_WIRE_IN || e->conn != d->conn)
        return 0;
    return d->offset >= e->offset && (d->offset < e->offset + e->len || d->offset == e->offset);
}

static void html_wire_row(out *o, const dcs_case_result *c, const dcs_wire_event *e, size_t k)
{
    char t[32];
    putf(o, "<tr class=\"%s%s\"><td>%s</td><td>", dir_name(e->dir),
         wire_is_divergence(c, e) ? " hl" : "", fixed3(t, e->t_us, 1000));
    if (e->conn)
        putf(o, "%d", e->conn);
    putf(o, "</td><td class=\"d\">%s</td><td>", dir_arrow(e->dir));
    if (e->dir != DCS_WIRE_EVENT)
        putf(o, "%" PRIu64, e->offset);
    put(o, "</td><td class=\"b\">");
    if (e->data)
        put_esc(o, MK_HTML, e->dir != DCS_WIRE_EVENT, e->data, k);
    if (k < e->len)
        putf(o, " <span class=\"e\">[... %zu more bytes]</span>", e->len - k);
    put(o, "</td></tr>\n");
}

/* The wire log, at most cap bytes of data. */
static void html_wire(out *o, const dcs_case_result *c, size_t cap)
{
    size_t i;
    put(o, "<div class=\"pane\"><h4>wire log</h4>");
    if (!c->n_wire) {
        put(o, "<p>(no traffic recorded)</p></div>\n");
        return;
    }
    put(o, "<table class=\"wire mono\">\n<tr><th>ms</th><th>conn</th><th></th><th>offset</th>"
           "<th>bytes</th></tr>\n");
    for (i = 0; i < c->n_wire && cap > 0; i++) {
        size_t k = c->wire[i].len < cap ? c->wire[i].len : cap;
        cap -= k;
        html_wire_row(o, c, &c->wire[i], k);
    }
    put(o, "</table>\n");
    if (i < c->n_wire)
        putf(o, "<p>Truncated: %zu of %zu entries shown.</p>", i, c->n_wire);
    if (c->wire_truncated)
        put(o, "<p>The harness stopped recording here: the wire log hit its bound.</p>");
    put(o, "</div>\n");
}

static void html_case(out *o, const dcs_run_report *r, size_t i)
{
    const dcs_case_result *c = &r->cases[i];
    int bad = needs_attention(c->verdict);
    char b[40];
    putf(o, "<details class=\"case %s\" id=\"c%zu\"%s>\n<summary>", bad ? "bad" : "ok", i,
         bad ? " open" : "");
    putf(o, "<span class=\"badge b-%s\">%s</span> <code>", verdict_key(c->verdict),
         dcs_verdict_name(c->verdict));
    html_text(o, nonempty(c->id, "(no id)"));
    put(o, "</code> <span>");
    html_text(o, c->title);
    putf(o, "</span><span class=\"dur\">%s</span></summary>\n<div class=\"body\">\n",
         human_us(b, c->duration_us));
    html_meta(o, r, c);
    html_divergence(o, c);
    put(o, "<div class=\"sbs\">\n");
    html_source(o, c);
    html_wire(o, c, bad ? WIRE_CAP_FAILED : WIRE_CAP_OTHER);
    put(o, "</div>\n");
    if (c->iut_log && *c->iut_log) {
        putf(o, "<details%s><summary>output of the IUT</summary><pre class=\"log\">",
             bad ? " open" : "");
        html_text(o, c->iut_log);
        put(o, "</pre></details>\n");
    }
    put(o, "</div>\n</details>\n");
}

static void html_category(out *o, const dcs_run_report *r, size_t first)
{
    const char *cat = cat_of(&r->cases[first]);
    tally t = count_cases(r, cat);
    putf(o, "<section id=\"cat-%zu\">\n<h2>", first);
    html_text(o, cat);
    size_t bad = failed_count(&t) + t.v[DCS_V_NONSTRICT];
    putf(o, " <small class=\"%s\">%zu of %zu need attention</small></h2>\n",
         failed_count(&t) ? "c-FAIL" : bad ? "c-NONSTRICT" : "c-PASS", bad, t.n);
    for (size_t i = first; i < r->n_cases; i++)
        if (strcmp(cat_of(&r->cases[i]), cat) == 0)
            html_case(o, r, i);
    put(o, "</section>\n");
}

int dcs_report_html(FILE *f, const dcs_run_report *r)
{
    out o = {f, 0};
    tally all = count_cases(r, NULL);
    html_head(&o, r, &all);
    html_facts(&o, r, &all);
    html_summary(&o, r, &all);
    put(&o, "<input type=\"checkbox\" id=\"only\"> <label for=\"only\">show only the cases that "
            "need attention (FAIL, ERROR, XPASS, NON-STRICT)</label>\n<main>\n");
    for (size_t i = 0; i < r->n_cases; i++)
        if (first_of_category(r, i))
            html_category(&o, r, i);
    put(&o, "</main>\n</body>\n</html>\n");
    return out_done(&o);
}
