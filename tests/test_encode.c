/* test_encode.c - the encoder (spec 6.4-6.6), number formatting, the standalone
 * validator, and the catalogue's encode -> decode -> encode identity. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Expected strings are what ECMAScript's Number.prototype.toString gives. */
Test(encode, format_double_like_ecmascript)
{
    static const struct {
        double d;
        const char *js;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-1, "-1"},
        {0.1, "0.1"},
        {1.5, "1.5"},
        {100, "100"},
        {123.456, "123.456"},
        {12345678.9, "12345678.9"},
        {1e20, "100000000000000000000"},
        {1.2345678901234568e20, "123456789012345680000"},
        {1e21, "1e+21"},
        {1.1e21, "1.1e+21"},
        {1e-6, "0.000001"},
        {0.000123, "0.000123"},
        {1e-7, "1e-7"},
        {1.5e-7, "1.5e-7"},
        {-1e-7, "-1e-7"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {0.30000000000000004, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {1735930800000.0, "1735930800000"},
        {9007199254740992.0, "9007199254740992"},
        {2.5e-5, "0.000025"},
        {-123e-20, "-1.23e-18"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        int n = dcs_format_double(buf, cases[i].d);
        cr_assert_eq(n, (int)strlen(cases[i].js), "case %zu", i);
        cr_assert_str_eq(buf, cases[i].js, "case %zu (%.17g)", i, cases[i].d);
        cr_assert_eq(strtod(buf, NULL), fabs(cases[i].d) == 0 ? 0 : cases[i].d);
    }
    {
        char buf[32];
        cr_assert_eq(dcs_format_double(buf, NAN), DCS_ENOT_FINITE);
        cr_assert_eq(dcs_format_double(buf, INFINITY), DCS_ENOT_FINITE);
        cr_assert_eq(dcs_format_double(buf, -INFINITY), DCS_ENOT_FINITE);
    }
}

static void check_string(const char *in, size_t len, const char *want)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_encode_string(&b, in, len), 0);
    cr_assert_eq(b.len, strlen(want), "got %.*s", (int)b.len, b.data);
    cr_assert(memcmp(b.data, want, b.len) == 0, "got %.*s want %s", (int)b.len, b.data, want);
    dcs_buf_free(&b);
}

Test(encode, strings_like_json_stringify)
{
    check_string("plain", 5, "\"plain\"");
    check_string("", 0, "\"\"");
    check_string("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_string("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    check_string("\x01\x1f\x00", 3, "\"\\u0001\\u001f\\u0000\"");
    check_string("/\x7f", 2, "\"/\x7f\"");
    check_string("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\xe2\x80\xa8\xe2\x80\xa9\"");
    check_string("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    check_string("0123456789abcdef0123456789\"abcdef", 33, "\"0123456789abcdef0123456789\\\"abcdef\"");
}

Test(encode, invalid_utf8_refused_and_nothing_appended)
{
    static const char *bad[] = {"\xc3", "a\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
    size_t i;
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    dcs_buf_append(&b, "x", 1);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(dcs_encode_string(&b, bad[i], strlen(bad[i])), DCS_EUTF8, "case %zu", i);
        cr_assert_eq(b.len, 1);
    }
    dcs_buf_free(&b);
}

static dcs_slice S(const char *s)
{
    dcs_slice r = {s, strlen(s)};
    return r;
}

Test(encode, envelope_wire_order_and_errors)
{
    dcs_envelope env;
    dcs_member extra[1];
    dcs_buf b;
    memset(&env, 0, sizeof env);
    env.origin = S("web-server");
    env.destination = S("external-crawler");
    env.type = S("command");
    env.key = S("register");
    env.payload = S("{\"id\":\"web-server\",\"pid\":42,\"type\":\"copilot-study\"}");
    env.has_timestamp = 1;
    env.timestamp.kind = DCS_NUM_INT;
    env.timestamp.i = 1735930800000LL;
    extra[0].name = S("x-trace");
    extra[0].value = S("[1]");
    env.extra = extra;
    env.n_extra = 1;
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_encode(&b, &env, DCS_ENCODE_VALIDATE), 0);
    dcs_buf_append(&b, "", 1);
    cr_assert_str_eq(b.data, "{\"origin\":\"web-server\",\"destination\":\"external-crawler\","
                             "\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":"
                             "\"web-server\",\"pid\":42,\"type\":\"copilot-study\"},"
                             "\"timestamp\":1735930800000,\"x-trace\":[1]}");
    b.len = 0;
    env.timestamp.kind = DCS_NUM_DOUBLE;
    env.timestamp.d = 0.5;
    env.n_extra = 0;
    env.payload.ptr = NULL;
    cr_assert_eq(dcs_encode(&b, &env, 0), 0);
    cr_assert(b.len > 20 && memcmp(b.data + b.len - 16, "\"timestamp\":0.5}", 16) == 0);

    b.len = 0;
    env.timestamp.d = NAN;
    cr_assert_eq(dcs_encode(&b, &env, 0), DCS_ENOT_FINITE);
    cr_assert_eq(b.len, 0);
    env.has_timestamp = 0;
    env.payload = S("{\"a\":01}");
    cr_assert_eq(dcs_encode(&b, &env, DCS_ENCODE_VALIDATE), DCS_EBAD_JSON);
    cr_assert_eq(b.len, 0);
    env.payload = S("{\"a\":1}");
    extra[0].name = S("bad\"name");
    env.n_extra = 1;
    cr_assert_eq(dcs_encode(&b, &env, DCS_ENCODE_VALIDATE), DCS_EBAD_JSON);
    env.n_extra = 0;
    env.origin.ptr = "\xc3";
    env.origin.len = 1;
    cr_assert_eq(dcs_encode(&b, &env, 0), DCS_EUTF8);
    cr_assert_eq(b.len, 0);
    dcs_buf_free(&b);
}

/* A payload sits at depth 2: with the limit L it may nest L - 1 deep, and a
 * message the encoder accepts is one a decoder with the same limit accepts. */
static const char *nested_payload(dcs_buf *b, unsigned depth)
{
    unsigned i;
    b->len = 0;
    for (i = 0; i < depth; i++)
        dcs_buf_append(b, "[", 1);
    for (i = 0; i < depth; i++)
        dcs_buf_append(b, "]", 1);
    dcs_buf_append(b, "", 1);
    return b->data;
}

static int decodes_under(const dcs_buf *msg, unsigned max_depth)
{
    dcs_decoder_config cfg;
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    int ev;
    dcs_decoder_config_init(&cfg);
    cfg.max_depth = max_depth;
    d = dcs_decoder_new(&cfg, NULL);
    cr_assert_not_null(d);
    dcs_decoder_feed(d, msg->data, msg->len);
    ev = dcs_decoder_next(d, &m, &e);
    dcs_decoder_free(d);
    return ev == DCS_MESSAGE ? 0 : e.code;
}

Test(encode, validate_refuses_what_the_depth_limit_refuses)
{
    static const unsigned limits[] = {2, 3, 16, 0, 300};
    dcs_envelope env;
    dcs_buf p, b;
    size_t i;
    memset(&env, 0, sizeof env);
    env.origin = S("a");
    env.destination = S("b");
    env.type = S("message");
    env.key = S("k");
    dcs_buf_init(&p, NULL);
    dcs_buf_init(&b, NULL);
    for (i = 0; i < sizeof limits / sizeof *limits; i++) {
        unsigned lim = limits[i] ? limits[i] : DCS_DEFAULT_MAX_DEPTH;
        env.payload = S(nested_payload(&p, lim - 1));
        b.len = 0;
        cr_assert_eq(dcs_encode_limit(&b, &env, DCS_ENCODE_VALIDATE, limits[i]), 0, "limit %u", lim);
        cr_assert_eq(decodes_under(&b, lim), 0, "limit %u: the peer refuses what was written", lim);
        env.payload = S(nested_payload(&p, lim));
        b.len = 0;
        cr_assert_eq(dcs_encode_limit(&b, &env, DCS_ENCODE_VALIDATE, limits[i]), DCS_ETOO_DEEP,
                     "limit %u", lim);
        cr_assert_eq(b.len, 0);
        /* The same message, written unvalidated, is what the peer refuses. */
        cr_assert_eq(dcs_encode_limit(&b, &env, 0, limits[i]), 0);
        cr_assert_eq(decodes_under(&b, lim), DCS_ETOO_DEEP, "limit %u", lim);
    }
    /* dcs_encode is the default limit; an extra member's value counts too. */
    env.payload = S(nested_payload(&p, DCS_DEFAULT_MAX_DEPTH));
    b.len = 0;
    cr_assert_eq(dcs_encode(&b, &env, DCS_ENCODE_VALIDATE), DCS_ETOO_DEEP);
    {
        dcs_member extra = {S("x"), S(nested_payload(&p, 16))};
        env.payload = S("{}");
        env.extra = &extra;
        env.n_extra = 1;
        cr_assert_eq(dcs_encode_limit(&b, &env, DCS_ENCODE_VALIDATE, 16), DCS_ETOO_DEEP);
        cr_assert_eq(dcs_encode_limit(&b, &env, DCS_ENCODE_VALIDATE, 17), 0);
        env.n_extra = 0;
    }
    cr_assert_eq(dcs_encode_limit(&b, &env, 0, 1), DCS_EINVAL);
    cr_assert_eq(dcs_encode_limit(&b, &env, 0, DCS_MAX_DEPTH_LIMIT + 1), DCS_EINVAL);
    dcs_buf_free(&p);
    dcs_buf_free(&b);
}

Test(encode, catalogue_encode_decode_encode_identical)
{
    size_t len, count = 0;
    char *in = read_file(data_path("streams/catalogue.dcs"), &len), *line, *save = NULL;
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_buf a, b;
    dcs_buf_init(&a, NULL);
    dcs_buf_init(&b, NULL);
    for (line = strtok_r(in, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        dcs_message m;
        dcs_error e;
        dcs_envelope env;
        size_t n = strlen(line);
        /* decode the catalogue line, encode it: identical to the line */
        dcs_decoder_feed(d, line, n);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE, "line %zu", count);
        dcs_envelope_from_message(&env, &m);
        a.len = 0;
        cr_assert_eq(dcs_encode(&a, &env, DCS_ENCODE_VALIDATE), 0);
        cr_assert_eq(a.len, n);
        cr_assert(memcmp(a.data, line, n) == 0, "line %zu re-encodes differently", count);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        /* and once more from the encoder's own output */
        dcs_decoder_feed(d, a.data, a.len);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
        dcs_envelope_from_message(&env, &m);
        b.len = 0;
        cr_assert_eq(dcs_encode(&b, &env, 0), 0);
        cr_assert(b.len == a.len && memcmp(a.data, b.data, a.len) == 0);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        count++;
    }
    cr_assert_geq(count, 19, "every catalogue entry has an example");
    dcs_buf_free(&a);
    dcs_buf_free(&b);
    dcs_decoder_free(d);
    free(in);
}

Test(encode, unescape_errors)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_unescape(&b, "a\\u00e9\\ud83d\\ude00\\n", 21), 0);
    cr_assert(b.len == 8 && memcmp(b.data, "a\xc3\xa9\xf0\x9f\x98\x80\n", 8) == 0);
    b.len = 0;
    cr_assert_eq(dcs_unescape(&b, "\\q", 2), DCS_EESCAPE);
    cr_assert_eq(dcs_unescape(&b, "\\u12", 4), DCS_EESCAPE);
    cr_assert_eq(dcs_unescape(&b, "\\udc00", 6), DCS_ESURROGATE);
    cr_assert_eq(dcs_unescape(&b, "\\ud800x", 7), DCS_ESURROGATE);
    cr_assert_eq(dcs_unescape(&b, "\\ud800\\u0041", 12), DCS_ESURROGATE);
    cr_assert_eq(dcs_unescape(&b, "a\"", 2), DCS_EUNEXPECTED);
    cr_assert_eq(dcs_unescape(&b, "\x01", 1), DCS_ECONTROL);
    cr_assert_eq(dcs_unescape(&b, "\xc3", 1), DCS_EUTF8);
    cr_assert_eq(dcs_unescape(&b, "\\", 1), DCS_EESCAPE);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(dcs_unescape(NULL, "ok\\t", 4), 0);
    dcs_buf_free(&b);
}

Test(validate, values)
{
    static const char *good[] = {"1", " \"a\" ", "[]", "{\"a\":[1,{}]}", "-0.5e-3", "null",
                                 "\"\\ud83d\\ude00\"", "\n{ }\n", "0"};
    static const struct {
        const char *in;
        int code;
        size_t off;
    } bad[] = {
        {"", DCS_ETRUNCATED, 0},   {"1 2", DCS_EUNEXPECTED, 2}, {"[1,]", DCS_EUNEXPECTED, 3},
        {"{\"a\"}", DCS_EUNEXPECTED, 4}, {"\"\\ud800\"", DCS_ESURROGATE, 7},
        {"[1", DCS_ETRUNCATED, 2}, {"01", DCS_ENUMBER, 1}, {"tru", DCS_ETRUNCATED, 3},
        {"\"\xc0\"", DCS_EUTF8, 1}, {"{}}", DCS_EUNEXPECTED, 2},
    };
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(dcs_json_validate(good[i], strlen(good[i]), 0, NULL), 0, "%s", good[i]);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dcs_error e;
        int rc = dcs_json_validate(bad[i].in, strlen(bad[i].in), 0, &e);
        cr_assert_eq(rc, bad[i].code, "case %zu: %s", i, dcs_err_name(rc));
        cr_assert_eq(e.offset, bad[i].off, "case %zu: offset %llu", i, (unsigned long long)e.offset);
    }
}

Test(validate, depth)
{
    char s[300];
    dcs_error e;
    memset(s, '[', 100);
    memset(s + 100, ']', 100);
    cr_assert_eq(dcs_json_validate(s + 36, 128, 0, NULL), 0, "64 levels pass by default");
    cr_assert_eq(dcs_json_validate(s + 35, 130, 0, &e), DCS_ETOO_DEEP);
    cr_assert_eq(e.offset, 64);
    cr_assert_eq(dcs_json_validate(s, 200, 100, NULL), 0);
    cr_assert_eq(dcs_json_validate(s, 200, 99, NULL), DCS_ETOO_DEEP);
    cr_assert_eq(dcs_json_validate(s, 200, 300, NULL), 0, "depth above 256 uses the heap");
}

Test(errors, names_and_sentences)
{
    cr_assert_str_eq(dcs_err_name(DCS_EGARBAGE), "garbage");
    cr_assert_str_eq(dcs_err_name(DCS_ETRUNCATED), "truncated");
    cr_assert_str_eq(dcs_err_name(DCS_EPAYLOAD), "payload_mismatch");
    cr_assert_str_eq(dcs_err_name(0), "ok");
    cr_assert_str_eq(dcs_err_name(-1), "unknown");
    cr_assert_str_eq(dcs_err_name(5), "unknown");
    cr_assert(strlen(dcs_strerror(DCS_EUTF8)) > 10);
    cr_assert(DCS_EGARBAGE < 0 && DCS_EPAYLOAD < 0);
}

Test(member, lookup)
{
    static const char obj[] = " { \"a\" : [1, {\"requestId\":\"x\"}], \"requestId\" : \"r-\\u00e9\" ,"
                              " \"n\": -1.5e3, \"s\":\"}{\\\"\" , \"o\":{\"k\":[]} } ";
    dcs_slice v;
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_json_member(obj, sizeof obj - 1, "n", &v), 1);
    cr_assert(v.len == 6 && memcmp(v.ptr, "-1.5e3", 6) == 0);
    cr_assert_eq(dcs_json_member(obj, sizeof obj - 1, "o", &v), 1);
    cr_assert(v.len == 8 && memcmp(v.ptr, "{\"k\":[]}", 8) == 0);
    cr_assert_eq(dcs_json_member(obj, sizeof obj - 1, "missing", &v), 0);
    cr_assert_eq(dcs_json_member_string(obj, sizeof obj - 1, "requestId", &b), 1,
                 "the nested requestId is not the member");
    cr_assert(b.len == 4 && memcmp(b.data, "r-\xc3\xa9", 4) == 0);
    cr_assert_eq(dcs_json_member_string(obj, sizeof obj - 1, "n", &b), DCS_ETYPE);
    cr_assert_eq(dcs_json_member(obj, sizeof obj - 1, "s", &v), 1);
    cr_assert(v.len == 6);
    cr_assert_eq(dcs_json_member("[1]", 3, "a", &v), DCS_EBAD_JSON);
    /* 5.6: names are compared decoded */
    {
        static const char esc[] = "{\"re\\u0071uestId\":\"q\",\"\\u00e9\\ud83d\\ude00\":2,\"a\\/b\":3,"
                                  "\"\\ud800x\":4,\"t\\t\":5}";
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "requestId", &v), 1);
        cr_assert(v.len == 3 && memcmp(v.ptr, "\"q\"", 3) == 0);
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "\xc3\xa9\xf0\x9f\x98\x80", &v), 1);
        cr_assert(v.len == 1 && v.ptr[0] == '2');
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "a/b", &v), 1);
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "t\t", &v), 1);
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "reqestId", &v), 0);
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "requestIdX", &v), 0);
        cr_assert_eq(dcs_json_member(esc, sizeof esc - 1, "\xed\xa0\x80x", &v), 0, "a lone surrogate is no name");
    }
    /* A raw name with escapes is never compared raw (found by fuzz json-diff:
     * the raw \n of the first name equalled the decoded name backslash-n). */
    {
        static const char bs[] = "{\"\\nation\":1,\"\\\\nation\":2,\"\\\\\":3,\"\\\\\\\\\":4}";
        cr_assert_eq(dcs_json_member(bs, sizeof bs - 1, "\\nation", &v), 1);
        cr_assert(v.len == 1 && v.ptr[0] == '2', "backslash-n found the member whose name is a line feed");
        cr_assert_eq(dcs_json_member(bs, sizeof bs - 1, "\nation", &v), 1);
        cr_assert(v.len == 1 && v.ptr[0] == '1');
        cr_assert_eq(dcs_json_member(bs, sizeof bs - 1, "\\", &v), 1);
        cr_assert(v.len == 1 && v.ptr[0] == '3');
        cr_assert_eq(dcs_json_member(bs, sizeof bs - 1, "\\\\", &v), 1);
        cr_assert(v.len == 1 && v.ptr[0] == '4');
    }
    cr_assert_eq(dcs_json_member("{}", 2, "a", &v), 0);
    dcs_buf_free(&b);
}

Test(member, never_reads_outside_on_garbage)
{
    static const char *bad[] = {"{", "{\"a", "{\"a\"", "{\"a\":", "{\"a\":\"x", "{\"a\":[1,",
                                "{\"a\":1,", "{\"a\"1}", "{\"a\":]", "{\"a\\", "{\"a\":\"\\"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        guarded g;
        dcs_slice v;
        guard_place(&g, bad[i], strlen(bad[i]));
        cr_assert_eq(dcs_json_member(g.data, strlen(bad[i]), "zz", &v), DCS_EBAD_JSON, "%s", bad[i]);
        guard_release(&g);
    }
}
