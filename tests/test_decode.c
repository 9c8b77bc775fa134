/* test_decode.c - the streaming decoder: bad inputs, valid edge cases,
 * chunking invariance, guard pages, limits, allocation failure (spec 4, 5, 6, 11). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define SENTINEL "{\"origin\":\"s\",\"destination\":\"d\",\"type\":\"t\",\"key\":\"sentinel\"}"

/* ------------------------------------------------------------------------ */
/* Table-driven cases                                                        */

typedef void (*row_fn)(char **fields, size_t n, int lineno);

static int for_each_row(const char *rel, size_t nfields, row_fn fn)
{
    size_t len;
    char *text = read_file(data_path(rel), &len), *line, *save = NULL;
    int lineno = 0, rows = 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[8];
        size_t n;
        lineno++;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        n = split_tabs(line, f, 8);
        cr_assert(n == nfields || (n == nfields - 1 && nfields == 4), "%s:%d: %zu fields", rel,
                  lineno, n);
        if (n < nfields)
            f[nfields - 1] = "";
        fn(f, nfields, lineno);
        rows++;
    }
    free(text);
    return rows;
}

/* The log lines of decode_log, one event each. */
static size_t log_lines(char *log, char **lines, size_t max)
{
    size_t n = 0;
    char *save = NULL, *l;
    for (l = strtok_r(log, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* Decode whole, byte by byte and from a guard page; all must agree. */
static char *decode_everywhere(const char *in, size_t len, const char *name)
{
    char *whole = decode_log(NULL, in, len, NULL, 0);
    char *bytes = decode_log_bytewise(NULL, in, len);
    guarded g;
    char *gw, *gb;
    guard_place(&g, in, len);
    gw = decode_log(NULL, g.data, len, NULL, 0);
    gb = decode_log_bytewise(NULL, g.data, len);
    guard_release(&g);
    cr_assert_str_eq(bytes, whole, "%s: 1-byte chunks differ from whole input", name);
    cr_assert_str_eq(gw, whole, "%s: guard-page copy differs", name);
    cr_assert_str_eq(gb, whole, "%s: guard-page 1-byte chunks differ", name);
    free(bytes);
    free(gw);
    free(gb);
    return whole;
}

static void bad_row(char **f, size_t n, int lineno)
{
    const char *name = f[0], *mode = f[1];
    char *expected = f[2], *tok, *save = NULL;
    size_t marks[16], nmarks = 16, len, nl, i = 0, k = 0, mk = 0;
    char *in = expand_input(f[3], &len, marks, &nmarks), *log, *lines[64];
    int resync = strcmp(mode, "resync") == 0;
    (void)n;

    cr_assert(resync || strcmp(mode, "eof") == 0, "line %d: bad mode %s", lineno, mode);
    if (resync) {
        in = realloc(in, len + sizeof SENTINEL);
        memcpy(in + len, SENTINEL, sizeof SENTINEL);
    }
    log = decode_everywhere(in, len + (resync ? sizeof SENTINEL - 1 : 0), name);
    nl = log_lines(log, lines, 64);
    for (tok = strtok_r(expected, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++) {
        cr_assert(i < nl, "%s: expected event %zu (%s) missing; log:\n%s", name, i, tok, log);
        if (strcmp(tok, "M") == 0) {
            cr_assert(lines[i][0] == 'M', "%s: event %zu: expected a message, got: %s", name, i,
                      lines[i]);
            continue;
        }
        {
            char want[128];
            cr_assert(mk < nmarks, "%s: no %%! marker for error %s", name, tok);
            snprintf(want, sizeof want, "E %s %zu ", tok, marks[mk++]);
            cr_assert(strncmp(lines[i], want, strlen(want)) == 0,
                      "%s: event %zu: expected '%s...', got '%s'", name, i, want, lines[i]);
            k++;
        }
    }
    cr_assert_eq(mk, nmarks, "%s: %zu markers but %zu errors expected", name, nmarks, mk);
    if (resync) {
        char want[128];
        snprintf(want, sizeof want, "M %zu " SENTINEL, len);
        cr_assert_eq(nl, i + 1, "%s: expected %zu events then the sentinel; log:\n%s", name, i, log);
        cr_assert_str_eq(lines[i], want, "%s: no resynchronisation onto the next message", name);
    } else {
        cr_assert_eq(nl, i, "%s: unexpected extra events; log:\n%s", name, log);
    }
    free(log);
    free(in);
}

Test(decode, bad_inputs_table)
{
    int rows = for_each_row("codec/bad-inputs.tsv", 4, bad_row);
    cr_assert_geq(rows, 60, "the bad-input table has only %d rows", rows);
}

static void valid_row(char **f, size_t n, int lineno)
{
    size_t len, elen;
    char *in = expand_input(f[1], &len, NULL, NULL);
    char *exp = expand_input(f[2], &elen, NULL, NULL);
    char *log, *again, want[8192];
    size_t first = strcspn(in, "{");
    (void)n;
    (void)lineno;
    exp = realloc(exp, elen + 1);
    exp[elen] = '\0';
    log = decode_everywhere(in, len, f[0]);
    snprintf(want, sizeof want, "M %zu %s\n", first, exp);
    cr_assert_str_eq(log, want, "%s: wrong decoding", f[0]);
    /* encode -> decode -> encode is stable */
    again = decode_log(NULL, exp, elen, NULL, 0);
    snprintf(want, sizeof want, "M 0 %s\n", exp);
    cr_assert_str_eq(again, want, "%s: canonical form does not round-trip", f[0]);
    free(again);
    free(log);
    free(in);
    free(exp);
}

Test(decode, valid_inputs_table)
{
    int rows = for_each_row("codec/valid-inputs.tsv", 3, valid_row);
    cr_assert_geq(rows, 30, "the valid-input table has only %d rows", rows);
}

/* ------------------------------------------------------------------------ */
/* Chunking invariance (spec 4.2)                                            */

static const char *const streams[] = {
    "streams/catalogue.dcs", "streams/compact.dcs", "streams/whitespace.dcs",
    "streams/mixed-errors.dcs",
};

Test(chunking, every_stream_bytewise_and_guarded)
{
    size_t i;
    for (i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        size_t len;
        char *in = read_file(data_path(streams[i]), &len);
        free(decode_everywhere(in, len, streams[i]));
        free(in);
    }
}

Test(chunking, every_stream_split_in_two_everywhere)
{
    size_t i, cut;
    for (i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        size_t len;
        char *in = read_file(data_path(streams[i]), &len);
        char *whole = decode_log(NULL, in, len, NULL, 0);
        for (cut = 0; cut <= len; cut++) {
            char *log = decode_log(NULL, in, len, &cut, 1);
            cr_assert_str_eq(log, whole, "%s split at %zu differs", streams[i], cut);
            free(log);
        }
        free(whole);
        free(in);
    }
}

/* http-parser's test: three pieces, split at every pair i < j. */
Test(chunking, three_pieces_every_pair)
{
    static const char stream[] =
        "{" TEST_ENVELOPE ",\"payload\":{\"s\":\"}{\\\"\\u00e9\xc3\xa9\",\"n\":[-1.5e3,true]}}"
        " x{" TEST_ENVELOPE ",\"payload\":01}\n"
        "{" TEST_ENVELOPE ",\"payload\":\"\\ud83d\\ude00\",\"timestamp\":17}";
    size_t len = sizeof stream - 1, cuts[2];
    char *whole = decode_log(NULL, stream, len, NULL, 0);
    cr_assert(strstr(whole, "E garbage") && strstr(whole, "E bad_number"), "%s", whole);
    for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
        for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1]++) {
            char *log = decode_log(NULL, stream, len, cuts, 2);
            if (strcmp(log, whole) != 0)
                cr_assert_fail("split at %zu,%zu:\n%s\nwhole:\n%s", cuts[0], cuts[1], log, whole);
            free(log);
        }
    }
    free(whole);
}

/* ------------------------------------------------------------------------ */
/* Limits (spec 4.4, 11.2 c, d)                                              */

/* A message of exactly n bytes: {%E,"payload":"xxx..."} */
static char *message_of_size(size_t n)
{
    static const char head[] = "{" TEST_ENVELOPE ",\"payload\":\"";
    size_t h = sizeof head - 1;
    char *m = malloc(n + 1);
    cr_assert(n >= h + 2);
    memcpy(m, head, h);
    memset(m + h, 'x', n - h - 2);
    memcpy(m + n - 2, "\"}", 2);
    m[n] = '\0';
    return m;
}

static void check_size_limit(size_t max, size_t chunk)
{
    dcs_decoder_config cfg;
    char *ok = message_of_size(max), *big = message_of_size(max + 1), *stream, *log, want[256];
    size_t len, *cuts = NULL, ncuts = 0, i;
    dcs_decoder_config_init(&cfg);
    cfg.max_message_size = max;
    len = 2 * max + 1 + sizeof SENTINEL - 1;
    stream = malloc(len + 1);
    memcpy(stream, ok, max);
    memcpy(stream + max, big, max + 1);
    memcpy(stream + 2 * max + 1, SENTINEL, sizeof SENTINEL);
    if (chunk) {
        cuts = malloc(len / chunk * sizeof *cuts + 1);
        for (i = chunk; i < len; i += chunk)
            cuts[ncuts++] = i;
    }
    log = decode_log(&cfg, stream, len, cuts, ncuts);
    snprintf(want, sizeof want, "M 0 %.60s", ok);
    cr_assert(strncmp(log, want, strlen(want)) == 0, "a message of exactly max bytes: %.200s", log);
    snprintf(want, sizeof want, "\nE too_large %zu %zu message exceeds the maximum size of %zu bytes\nM %zu " SENTINEL "\n",
             2 * max, max, max, 2 * max + 1);
    cr_assert(strstr(log, want) != NULL, "max %zu chunk %zu: expected%s\ngot:\n%.400s", max, chunk,
              want, log);
    free(log);
    free(cuts);
    free(stream);
    free(ok);
    free(big);
}

Test(limits, message_size_exact_and_one_over)
{
    check_size_limit(200, 0);
    check_size_limit(200, 1);
    check_size_limit(200, 7);
    check_size_limit(4096, 1000);
    check_size_limit(DCS_DEFAULT_MAX_MESSAGE_SIZE, 0);
    check_size_limit(DCS_DEFAULT_MAX_MESSAGE_SIZE, 65536);
}

Test(limits, oversize_message_with_later_syntax_error_reports_once)
{
    dcs_decoder_config cfg;
    char stream[512], *log;
    int n;
    dcs_decoder_config_init(&cfg);
    cfg.max_message_size = 80;
    n = snprintf(stream, sizeof stream,
                 "{" TEST_ENVELOPE ",\"payload\":\"%s\",\"x\":01}" SENTINEL,
                 "0123456789012345678901234567890123456789");
    log = decode_log(&cfg, stream, (size_t)n, NULL, 0);
    cr_assert_str_eq(log,
                     "E too_large 80 0 message exceeds the maximum size of 80 bytes\n"
                     "M 113 " SENTINEL "\n");
    free(log);
}

static char *nested(unsigned depth, const char *inner)
{
    /* depth arrays around inner, as a payload */
    size_t n = strlen(inner), i;
    char *s = malloc(2 * depth + n + 1);
    for (i = 0; i < depth; i++)
        s[i] = '[';
    memcpy(s + depth, inner, n);
    for (i = 0; i < depth; i++)
        s[depth + n + i] = ']';
    s[2 * depth + n] = '\0';
    return s;
}

Test(limits, depth_exactly_max_and_one_over)
{
    static const char head[] = "{" TEST_ENVELOPE ",\"payload\":";
    char *ok = nested(DCS_DEFAULT_MAX_DEPTH - 1, "\"]]\""), *deep = nested(DCS_DEFAULT_MAX_DEPTH, "\"[\"");
    char stream[1024], want[1024], *log;
    int n = snprintf(stream, sizeof stream, "%s%s}%s%s,\"after\":1}" SENTINEL, head, ok, head, deep);
    size_t second = sizeof head - 1 + strlen(ok) + 1;
    log = decode_everywhere(stream, (size_t)n, "depth");
    snprintf(want, sizeof want,
             "M 0 %s%s}\nE too_deep %zu %zu nesting deeper than 64 levels\nM %zu " SENTINEL "\n",
             head, ok, second + sizeof head - 1 + DCS_DEFAULT_MAX_DEPTH - 1, second, (size_t)n - (sizeof SENTINEL - 1));
    cr_assert_str_eq(log, want);
    free(log);
    free(ok);
    free(deep);
}

Test(limits, configured_depth_two)
{
    dcs_decoder_config cfg;
    static const char first[] = "{" TEST_ENVELOPE ",\"payload\":{}}";
    static const char second_head[] = "{" TEST_ENVELOPE ",\"payload\":{\"a\":";
    char stream[512], want[512], *log;
    int n = snprintf(stream, sizeof stream, "%s%s{\"s\":\"}]}\"}}}" SENTINEL, first, second_head);
    dcs_decoder_config_init(&cfg);
    cfg.max_depth = 2;
    log = decode_log(&cfg, stream, (size_t)n, NULL, 0);
    /* The over-deep value is skipped string-aware ("}]}" is text), the rest
     * of the message parsed and dropped, and the sentinel follows. */
    snprintf(want, sizeof want,
             "M 0 %s\nE too_deep %zu %zu nesting deeper than 2 levels\nM %zu " SENTINEL "\n", first,
             sizeof first - 1 + sizeof second_head - 1, sizeof first - 1,
             (size_t)n - (sizeof SENTINEL - 1));
    cr_assert_str_eq(log, want);
    free(log);
}

Test(limits, config_rejected)
{
    dcs_decoder_config cfg;
    int err = 0;
    dcs_decoder_config_init(&cfg);
    cfg.max_depth = 1;
    cr_assert_null(dcs_decoder_new(&cfg, &err));
    cr_assert_eq(err, DCS_EINVAL);
    cfg.max_depth = DCS_MAX_DEPTH_LIMIT + 1;
    cr_assert_null(dcs_decoder_new(&cfg, &err));
    cfg.max_depth = DCS_MAX_DEPTH_LIMIT;
    cfg.max_message_size = 1;
    cr_assert_null(dcs_decoder_new(&cfg, &err));
}

/* ------------------------------------------------------------------------ */
/* API contract                                                              */

Test(api, feed_while_busy_and_reset)
{
    static const char a[] = "{" TEST_ENVELOPE "}{" TEST_ENVELOPE "}";
    static const char half[] = "{\"origin\":\"o\",\"desti";
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_message m;
    dcs_error e;
    cr_assert_eq(dcs_decoder_feed(d, a, sizeof a - 1), 0);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert_eq(dcs_decoder_feed(d, a, sizeof a - 1), DCS_EBUSY);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert_eq(m.offset, (sizeof a - 1) / 2);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
    /* A half message, then a new connection: nothing glues (spec 4.6). */
    cr_assert_eq(dcs_decoder_feed(d, half, sizeof half - 1), 0);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
    cr_assert_not(dcs_decoder_idle(d));
    dcs_decoder_reset(d);
    cr_assert(dcs_decoder_idle(d));
    cr_assert_eq(dcs_decoder_feed(d, a, sizeof a - 1), 0);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert_eq(m.offset, 0, "offsets restart at 0 on a new stream");
    cr_assert_eq(m.raw.ptr, a, "a message inside one chunk is not copied");
    cr_assert_eq(dcs_decoder_get_stats(d)->bytes_skipped, sizeof half - 1);
    cr_assert_eq(dcs_decoder_get_stats(d)->messages, 3);
    dcs_decoder_free(d);
}

/* The inline one-byte path of codec.h defers bytes without counting them:
 * everything the API shows must still count every byte fed. */
Test(api, one_byte_deferral_is_invisible)
{
    static const char half[] = "{\"origin\":\"o\",\"desti";
    static const char a[] = "{" TEST_ENVELOPE "}";
    /* the exported definitions, called through pointers (never inlined) */
    int (*feed)(dcs_decoder *, const void *, size_t) = dcs_decoder_feed;
    int (*next)(dcs_decoder *, dcs_message *, dcs_error *) = dcs_decoder_next;
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_message m;
    dcs_error e;
    size_t i;
    int round;
    for (round = 0; round < 2; round++) {
        uint64_t skipped = dcs_decoder_get_stats(d)->bytes_skipped;
        uint64_t in = dcs_decoder_get_stats(d)->bytes_in;
        for (i = 0; i < sizeof half - 1; i++) {
            cr_assert_eq(round ? feed(d, half + i, 1) : dcs_decoder_feed(d, half + i, 1), 0);
            cr_assert_eq(round ? next(d, &m, &e) : dcs_decoder_next(d, &m, &e), DCS_AGAIN);
            cr_assert_eq(dcs_decoder_get_stats(d)->bytes_in, in + i + 1,
                         "bytes_in after %zu one-byte chunks", i + 1);
            cr_assert_not(dcs_decoder_idle(d));
        }
        /* A new connection: the deferred bytes were never delivered. */
        dcs_decoder_reset(d);
        cr_assert(dcs_decoder_idle(d));
        cr_assert_eq(dcs_decoder_get_stats(d)->bytes_skipped, skipped + sizeof half - 1);
        /* Offsets restart at 0 and count every deferred byte. */
        cr_assert_eq(dcs_decoder_feed(d, " ", 1), 0);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        for (i = 0; i < sizeof a - 1; i++) {
            int ev;
            cr_assert_eq(dcs_decoder_feed(d, a + i, 1), 0);
            ev = dcs_decoder_next(d, &m, &e);
            if (i + 2 < sizeof a)
                cr_assert_eq(ev, DCS_AGAIN, "at byte %zu", i);
            else
                cr_assert_eq(ev, DCS_MESSAGE);
        }
        cr_assert_eq(m.offset, 1);
        cr_assert_eq(m.raw.len, sizeof a - 1);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        cr_assert_eq(dcs_decoder_get_stats(d)->bytes_in, in + (sizeof half - 1) + sizeof a);
        /* The stream ends inside deferred bytes: truncated, at the right offset. */
        for (i = 0; i < 5; i++) {
            cr_assert_eq(dcs_decoder_feed(d, a + i, 1), 0);
            cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        }
        cr_assert_eq(dcs_decoder_finish(d, &e), DCS_ERROR);
        cr_assert_eq(e.code, DCS_ETRUNCATED);
        cr_assert_eq(e.offset, sizeof a + 5, "truncated at %llu", (unsigned long long)e.offset);
        cr_assert_eq(e.msg_offset, sizeof a);
        cr_assert_eq(dcs_decoder_finish(d, &e), DCS_AGAIN);
        /* Deferred bytes cut off by a reset nobody asked the statistics
         * about in between are counted all the same. */
        in = dcs_decoder_get_stats(d)->bytes_in;
        skipped = dcs_decoder_get_stats(d)->bytes_skipped;
        cr_assert_eq(dcs_decoder_feed(d, half, 2), 0);
        cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        for (i = 2; i < sizeof half - 1; i++) {
            cr_assert_eq(dcs_decoder_feed(d, half + i, 1), 0);
            cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_AGAIN);
        }
        dcs_decoder_reset(d);
        cr_assert_eq(dcs_decoder_get_stats(d)->bytes_in, in + sizeof half - 1);
        cr_assert_eq(dcs_decoder_get_stats(d)->bytes_skipped, skipped + sizeof half - 1);
    }
    dcs_decoder_free(d);
}

Test(api, message_fields)
{
    static const char s[] = "{\"x\":[1],\"origin\":\"a\\u00e9\",\"destination\":\"*\",\"type\":\"message\","
                            "\"key\":\"k\",\"payload\":{ \"a\" : 1 },\"timestamp\":1735930800000,\"y\":null}";
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_message m;
    dcs_error e;
    dcs_decoder_feed(d, s, sizeof s - 1);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert_eq(m.origin.len, 3);
    cr_assert(memcmp(m.origin.ptr, "a\xc3\xa9", 3) == 0);
    cr_assert(m.destination.len == 1 && m.destination.ptr[0] == '*');
    cr_assert(m.payload.len == 11 && memcmp(m.payload.ptr, "{ \"a\" : 1 }", 11) == 0);
    cr_assert(m.has_timestamp && m.timestamp.kind == DCS_NUM_INT && m.timestamp.i == 1735930800000LL);
    cr_assert_eq(m.n_members, 8);
    cr_assert_eq(m.n_unknown, 2);
    cr_assert(m.unknown[0].name.len == 1 && m.unknown[0].name.ptr[0] == 'x');
    cr_assert(m.unknown[0].value.len == 3 && memcmp(m.unknown[0].value.ptr, "[1]", 3) == 0);
    cr_assert(m.unknown[1].value.len == 4 && memcmp(m.unknown[1].value.ptr, "null", 4) == 0);
    cr_assert_eq(m.raw.len, sizeof s - 1);
    dcs_decoder_free(d);
}

Test(api, timestamp_kinds)
{
    static const char s[] = "{" TEST_ENVELOPE ",\"timestamp\":1.5e3}{" TEST_ENVELOPE
                            ",\"timestamp\":123456789012345678901234567890}";
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_message m;
    dcs_error e;
    dcs_decoder_feed(d, s, sizeof s - 1);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert(m.timestamp.kind == DCS_NUM_DOUBLE && m.timestamp.d == 1500.0);
    cr_assert_eq(dcs_decoder_next(d, &m, &e), DCS_MESSAGE);
    cr_assert(m.timestamp.kind == DCS_NUM_DOUBLE && m.timestamp.d > 1.2e29);
    cr_assert(m.timestamp.raw.len == 30);
    dcs_decoder_free(d);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */

static void run_with_failing_alloc(long fail_at, const char *in, size_t len, long *calls,
                                   int *saw_nomem)
{
    test_alloc ta;
    dcs_decoder_config cfg;
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    int err = 0, ev;
    size_t i;
    test_alloc_init(&ta, fail_at);
    dcs_decoder_config_init(&cfg);
    cfg.allocator = &ta.a;
    d = dcs_decoder_new(&cfg, &err);
    *saw_nomem = 0;
    if (!d) {
        cr_assert_eq(err, DCS_ENOMEM);
        *saw_nomem = 1;
    } else {
        /* 1-byte chunks force every message through the buffer. */
        for (i = 0; i < len; i++) {
            cr_assert_eq(dcs_decoder_feed(d, in + i, 1), 0);
            while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
                if (ev == DCS_ERROR) {
                    cr_assert_eq(e.code, DCS_ENOMEM, "unexpected error %s", dcs_err_name(e.code));
                    *saw_nomem = 1;
                }
            }
        }
        cr_assert_eq(dcs_decoder_finish(d, &e), DCS_AGAIN);
        dcs_decoder_free(d);
    }
    cr_assert_eq(ta.live, 0, "fail_at=%ld: %ld blocks leaked", fail_at, ta.live);
    if (ta.failed)
        cr_assert(*saw_nomem, "fail_at=%ld: an allocation failed but nothing reported it", fail_at);
    *calls = ta.calls;
}

Test(alloc, every_allocation_fails_in_turn)
{
    size_t len, i, n = 0;
    char *cat = read_file(data_path("streams/catalogue.dcs"), &len);
    char many[4096];
    long calls, k;
    int nomem;
    /* Plus one message with many unknown members (grows the member table). */
    n += (size_t)snprintf(many, sizeof many, "{" TEST_ENVELOPE);
    for (i = 0; i < 100; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, ",\"m%zu\":\"\\u00e9%zu\"", i, i);
    n += (size_t)snprintf(many + n, sizeof many - n, "}");
    cat = realloc(cat, len + n);
    memcpy(cat + len, many, n);
    len += n;
    run_with_failing_alloc(0, cat, len, &calls, &nomem);
    cr_assert_not(nomem);
    cr_assert_gt(calls, 5, "the scenario should allocate several times");
    for (k = 1; k <= calls; k++)
        run_with_failing_alloc(k, cat, len, &calls, &nomem);
    free(cat);
}
