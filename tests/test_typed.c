/* test_typed.c - typed views (include/dcs/typed.h): payload JSON to the
 * protobuf-c structs of spec/dcs.proto and back.
 *
 * Most cases are data: the files tests/data/typed/NAME.tsv, one payload per line with the
 * expected re-encoding or error (the format is described at the top of
 * catalogue.tsv). Every case runs with its input placed against a guard page
 * and with a counting allocator that must end with no live block; the
 * successful ones are also run with the allocator failing at every call in
 * turn, and mutated at random to feed the decoder garbage. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs.pb-c.h"
#include "dcs/typed.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* The data files                                                            */

typedef struct tcase {
    const char *file;
    int line;
    const char *type, *key, *input, *expect;
    const ProtobufCMessageDescriptor *d;
    dcs_typed_shape shape;
} tcase;

typedef struct tfile {
    char *text;
    tcase cases[128];
    size_t n;
} tfile;

static void view_of(tcase *c)
{
    const dcs_typed_view *v;
    dcs_slice t = {c->type, strlen(c->type)}, k = {c->key, strlen(c->key)};
    if (strcmp(c->type, "@") == 0) {
        cr_assert_str_eq(c->key, "Envelope", "%s:%d: unknown pseudo-view", c->file, c->line);
        c->d = &dcs__envelope__descriptor;
        c->shape = DCS_TYPED_OBJECT;
        return;
    }
    v = dcs_typed_lookup(t, k);
    cr_assert_not_null(v, "%s:%d: no view for %s/%s", c->file, c->line, c->type, c->key);
    c->d = v->descriptor;
    c->shape = v->shape;
}

static void load(tfile *tf, const char *rel)
{
    size_t len;
    char *p, *nl;
    int line = 0;
    tf->text = read_file(data_path(rel), &len);
    tf->n = 0;
    for (p = tf->text; *p; p = nl + 1) {
        char *f[4];
        tcase *c;
        nl = strchr(p, '\n');
        cr_assert_not_null(nl, "%s: the last line has no newline", rel);
        *nl = '\0';
        line++;
        if (*p == '\0' || *p == '#')
            continue;
        cr_assert_eq(split_tabs(p, f, 4), 4, "%s:%d: expected 4 tab-separated columns", rel, line);
        cr_assert_lt(tf->n, sizeof tf->cases / sizeof tf->cases[0]);
        c = &tf->cases[tf->n++];
        c->file = rel;
        c->line = line;
        c->type = f[0];
        c->key = f[1];
        c->input = f[2];
        c->expect = f[3];
        view_of(c);
    }
}

static const char *want_text(const tcase *c)
{
    if (strcmp(c->expect, "=") == 0)
        return c->input;
    cr_assert(strncmp(c->expect, "> ", 2) == 0, "%s:%d: bad expectation", c->file, c->line);
    return c->expect + 2;
}

/* Decode text as c's view and return the message; fails the test on error. */
static ProtobufCMessage *decode_ok(const tcase *c, const char *text, size_t len,
                                   const dcs_allocator *a)
{
    ProtobufCMessage *m = NULL;
    dcs_error err;
    int rc;
    memset(&err, 0, sizeof err);
    rc = dcs_typed_decode(c->d, c->shape, text, len, a, &m, &err);
    cr_assert_eq(rc, 0, "%s:%d: %s at %llu: %s", c->file, c->line, dcs_err_name(rc),
                 (unsigned long long)err.offset, err.message);
    cr_assert_not_null(m);
    return m;
}

static void run_case(const tcase *c)
{
    size_t len = strlen(c->input);
    guarded g;
    test_alloc ta;
    ProtobufCMessage *m = (ProtobufCMessage *)&ta; /* must be reset to NULL on failure */
    dcs_error err;
    int rc;

    guard_place(&g, c->input, len);
    test_alloc_init(&ta, 0);
    memset(&err, 0, sizeof err);
    rc = dcs_typed_decode(c->d, c->shape, g.data, len, &ta.a, &m, &err);
    if (c->expect[0] == '!') {
        char reason[64];
        unsigned long long off;
        int n = 0;
        const char *msg;
        cr_assert_eq(sscanf(c->expect, "! %63s %llu %n", reason, &off, &n), 2, "%s:%d: bad '!'",
                     c->file, c->line);
        msg = c->expect + n;
        cr_expect_str_eq(dcs_err_name(rc), reason, "%s:%d: got %s (%s)", c->file, c->line,
                         dcs_err_name(rc), err.message);
        cr_expect_eq(err.code, rc, "%s:%d", c->file, c->line);
        cr_expect_eq(err.offset, off, "%s:%d: offset %llu, want %llu (%s)", c->file, c->line,
                     (unsigned long long)err.offset, off, err.message);
        cr_expect_eq(err.msg_offset, DCS_NO_OFFSET, "%s:%d", c->file, c->line);
        if (strcmp(msg, "*") != 0)
            cr_expect_str_eq(err.message, msg, "%s:%d", c->file, c->line);
        cr_expect_null(m, "%s:%d", c->file, c->line);
    } else {
        const char *want = want_text(c);
        dcs_buf b, b2;
        ProtobufCMessage *m2;
        cr_assert_eq(rc, 0, "%s:%d: %s at %llu: %s", c->file, c->line, dcs_err_name(rc),
                     (unsigned long long)err.offset, err.message);
        dcs_buf_init(&b, NULL);
        rc = dcs_typed_encode(&b, m);
        cr_assert_eq(rc, 0, "%s:%d: encode: %s", c->file, c->line, dcs_err_name(rc));
        cr_expect(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                  "%s:%d:\n got  %.*s\n want %s", c->file, c->line, (int)b.len, b.data, want);
        /* The output is a fixed point: it decodes and re-encodes to itself. */
        m2 = decode_ok(c, b.data, b.len, &ta.a);
        dcs_buf_init(&b2, NULL);
        cr_assert_eq(dcs_typed_encode(&b2, m2), 0);
        cr_expect(b2.len == b.len && memcmp(b2.data, b.data, b.len) == 0, "%s:%d: not stable",
                  c->file, c->line);
        dcs_typed_free(m2, &ta.a);
        dcs_typed_free(m, &ta.a);
        dcs_buf_free(&b);
        dcs_buf_free(&b2);
    }
    cr_expect_eq(ta.live, 0, "%s:%d: %ld blocks leaked", c->file, c->line, ta.live);
    guard_release(&g);
}

static void run_file(const char *rel)
{
    tfile *tf = malloc(sizeof *tf);
    size_t i;
    cr_assert_not_null(tf);
    load(tf, rel);
    cr_assert_gt(tf->n, 0);
    for (i = 0; i < tf->n; i++)
        run_case(&tf->cases[i]);
    free(tf->text);
    free(tf);
}

Test(typed, catalogue_round_trips_byte_for_byte)
{
    run_file("typed/catalogue.tsv");
}

Test(typed, unknown_members_survive)
{
    run_file("typed/unknown.tsv");
}

Test(typed, values)
{
    run_file("typed/values.tsv");
}

Test(typed, errors_name_the_member_path)
{
    run_file("typed/errors.tsv");
}

/* ------------------------------------------------------------------------ */
/* Lookup                                                                    */

Test(typed, lookup)
{
    static const struct {
        const char *type, *key;
        const ProtobufCMessageDescriptor *d;
    } cat[] = {
        {"command", "register", &dcs__register__descriptor},
        {"command", "challenge", &dcs__challenge__descriptor},
        {"heartbeat", "heartbeat", &dcs__heartbeat__descriptor},
        {"jobRequest", "request_jobs", &dcs__request_jobs__descriptor},
        {"jobResponse", "jobs_available", &dcs__jobs_available__descriptor},
        {"jobResponse", "jobs_error", &dcs__jobs_error__descriptor},
        {"message", "PROGRESS_UPDATE", &dcs__progress_update__descriptor},
        {"message", "TOKEN_REFRESH_REQUEST", &dcs__token_refresh_request__descriptor},
        {"message", "TOKEN_REFRESH_RESPONSE", &dcs__token_refresh_response__descriptor},
        {"message", "statusUpdate", &dcs__status_update__descriptor},
        {"message", "jobUpdate", &dcs__job_update__descriptor},
        {"message", "shutdown", &dcs__shutdown__descriptor},
        {"message", "close", &dcs__close__descriptor},
        {"message", "commandResult", &dcs__command_result__descriptor},
        {"command", "START_JOB", &dcs__start_job__descriptor},
        {"command", "PAUSE_CRAWLER", &dcs__pause_crawler__descriptor},
        {"command", "RESUME_CRAWLER", &dcs__resume_crawler__descriptor},
    };
    static const char *const generic[][2] = {
        {"message", "customNotice"}, {"command", "FLY"},     {"message", "register"},
        {"Message", "shutdown"},     {"message", "Shutdown"}, {"progressUpdate", "PROGRESS_UPDATE"},
        {"", ""},                    {"message", "shutdow"},  {"message", "shutdownX"},
    };
    /* Slices are not NUL-terminated: look up inside a longer buffer. */
    static const char buf[] = "messageshutdownXX";
    dcs_slice t = {buf, 7}, k = {buf + 7, 8};
    size_t i, n = 0;
    const dcs_typed_view *all = dcs_typed_views(&n), *v;

    cr_assert_eq(n, sizeof cat / sizeof cat[0]);
    for (i = 0; i < sizeof cat / sizeof cat[0]; i++) {
        dcs_slice ts = {cat[i].type, strlen(cat[i].type)}, ks = {cat[i].key, strlen(cat[i].key)};
        v = dcs_typed_lookup(ts, ks);
        cr_assert_not_null(v, "%s/%s", cat[i].type, cat[i].key);
        cr_expect_eq(v->descriptor, cat[i].d, "%s/%s", cat[i].type, cat[i].key);
        cr_expect_eq(v->shape, cat[i].d == &dcs__jobs_available__descriptor ? DCS_TYPED_ARRAY
                                                                            : DCS_TYPED_OBJECT);
        cr_expect(v >= all && v < all + n);
    }
    for (i = 0; i < sizeof generic / sizeof generic[0]; i++) {
        dcs_slice ts = {generic[i][0], strlen(generic[i][0])};
        dcs_slice ks = {generic[i][1], strlen(generic[i][1])};
        cr_expect_null(dcs_typed_lookup(ts, ks), "%s/%s", generic[i][0], generic[i][1]);
    }
    v = dcs_typed_lookup(t, k);
    cr_assert_not_null(v);
    cr_expect_eq(v->descriptor, &dcs__shutdown__descriptor);
    cr_expect_eq(dcs_typed_views(NULL), all);
}

/* ------------------------------------------------------------------------ */
/* The structs                                                               */

static ProtobufCMessage *decode_view(const char *type, const char *key, const char *json)
{
    dcs_slice t = {type, strlen(type)}, k = {key, strlen(key)};
    const dcs_typed_view *v = dcs_typed_lookup(t, k);
    ProtobufCMessage *m = NULL;
    dcs_error err;
    int rc;
    cr_assert_not_null(v);
    rc = dcs_typed_decode(v->descriptor, v->shape, json, strlen(json), NULL, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", dcs_err_name(rc), err.message);
    return m;
}

static void expect_bytes(const ProtobufCBinaryData *b, const char *want)
{
    cr_expect(b->len == strlen(want) && memcmp(b->data, want, b->len) == 0, "got %.*s, want %s",
              (int)b->len, (const char *)b->data, want);
    cr_expect_eq(b->data[b->len], 0, "bytes are followed by a NUL");
}

Test(typed, jobs_available_is_an_array_of_jobs)
{
    Dcs__JobsAvailable *ja = (Dcs__JobsAvailable *)decode_view(
        "jobResponse", "jobs_available",
        "[{\"taskId\":\"t-1\",\"command\":\"GROUP_PROJECT_DISCOVERY\",\"credentials\":{"
        "\"accessToken\":\"glpat-AAAA\",\"tokenType\":\"oauth2\",\"scope\":\"read_api\","
        "\"expiresIn\":7200},\"resourceId\":1234,\"dataTypes\":[\"groups\",\"projects\"],"
        "\"outputConfig\":{\"storageType\":\"filesystem\",\"basePath\":\"/d\",\"format\":"
        "\"json\"},\"lastProcessedId\":\"c-9\",\"customParameters\":{\"depth\":2},\"priority\":5},"
        "{\"taskId\":\"t-2\",\"lastProcessedId\":991}]");
    Dcs__Job *j;

    cr_assert_eq(ja->base.descriptor, &dcs__jobs_available__descriptor);
    cr_assert_eq(ja->n_jobs, 2);
    cr_expect_not(ja->has_dcs_unknown);
    j = ja->jobs[0];
    cr_expect_str_eq(j->taskid, "t-1");
    cr_expect_str_eq(j->command, "GROUP_PROJECT_DISCOVERY");
    cr_expect_null(j->gitlabapiurl);
    cr_assert_not_null(j->credentials);
    cr_expect_str_eq(j->credentials->accesstoken, "glpat-AAAA");
    cr_expect_str_eq(j->credentials->tokentype, "oauth2");
    cr_expect_null(j->credentials->refreshtoken);
    cr_assert(j->credentials->has_dcs_unknown);
    expect_bytes(&j->credentials->dcs_unknown, "{\"scope\":\"read_api\",\"expiresIn\":7200}");
    cr_assert(j->has_resourceid);
    expect_bytes(&j->resourceid, "1234");
    cr_assert_eq(j->n_datatypes, 2);
    cr_expect_str_eq(j->datatypes[0], "groups");
    cr_expect_str_eq(j->datatypes[1], "projects");
    cr_assert_not_null(j->outputconfig);
    cr_expect_str_eq(j->outputconfig->basepath, "/d");
    cr_expect_not(j->outputconfig->has_dcs_unknown);
    expect_bytes(&j->lastprocessedid, "\"c-9\"");
    expect_bytes(&j->customparameters, "{\"depth\":2}");
    expect_bytes(&j->dcs_unknown, "{\"priority\":5}");
    j = ja->jobs[1];
    cr_expect_str_eq(j->taskid, "t-2");
    cr_expect_null(j->credentials);
    cr_expect_eq(j->n_datatypes, 0);
    expect_bytes(&j->lastprocessedid, "991");
    cr_expect_not(j->has_dcs_unknown);
    dcs_typed_free(&ja->base, NULL);
}

Test(typed, progress_fields)
{
    Dcs__ProgressUpdate *p = (Dcs__ProgressUpdate *)decode_view(
        "message", "PROGRESS_UPDATE",
        "{\"taskId\":\"t-1\",\"status\":\"new_areas_discovered\",\"timestamp\":"
        "\"2025-01-03T19:00:07.000Z\",\"processedItems\":2,\"areas\":[{\"type\":\"group\","
        "\"name\":\"Forschung & Lehre\",\"gitlabId\":\"77\",\"description\":\"f\\u00fcr "
        "\\\"F\\\"\",\"visibility\":\"private\"},{\"type\":\"project\",\"name\":\"\xc3\x9c\","
        "\"gitlabId\":1001}],\"itemsByType\":{\"projects\":2},\"trace\":[1]}");
    cr_expect_str_eq(p->taskid, "t-1");
    cr_expect_str_eq(p->timestamp, "2025-01-03T19:00:07.000Z");
    cr_expect(p->has_processeditems && p->processeditems == 2);
    cr_expect_not(p->has_totalitems);
    cr_expect_null(p->message);
    cr_assert_eq(p->n_areas, 2);
    cr_expect_str_eq(p->areas[0]->name, "Forschung & Lehre");
    cr_expect_str_eq(p->areas[0]->description, "f\xc3\xbcr \"F\"");
    expect_bytes(&p->areas[0]->gitlabid, "\"77\"");
    expect_bytes(&p->areas[0]->dcs_unknown, "{\"visibility\":\"private\"}");
    cr_expect_str_eq(p->areas[1]->name, "\xc3\x9c");
    expect_bytes(&p->areas[1]->gitlabid, "1001");
    cr_expect_not(p->areas[1]->has_dcs_unknown);
    expect_bytes(&p->itemsbytype, "{\"projects\":2}");
    expect_bytes(&p->dcs_unknown, "{\"trace\":[1]}");
    dcs_typed_free(&p->base, NULL);
}

Test(typed, strings_are_unescaped_and_nul_terminated)
{
    Dcs__Shutdown *s = (Dcs__Shutdown *)decode_view(
        "message", "shutdown",
        "{\"signal\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u00e9\\ud83d\\ude00\xe2\x80\xa8\"}");
    cr_expect_str_eq(s->signal,
                     "a\"b\\c/d\b\f\n\r\t\x01\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xa8");
    dcs_typed_free(&s->base, NULL);
}

Test(typed, whitespace_around_and_inside)
{
    static const char in[] = "\t\r\n {\n\t\"signal\"\r:\t\"SIGTERM\"\n,\"x\" :\n[1,\t2]\n}\r\n";
    Dcs__Shutdown *s = (Dcs__Shutdown *)decode_view("message", "shutdown", in);
    dcs_buf b;
    cr_expect_str_eq(s->signal, "SIGTERM");
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_typed_encode(&b, &s->base), 0);
    cr_expect(b.len == strlen("{\"signal\":\"SIGTERM\",\"x\":[1,\t2]}") &&
              memcmp(b.data, "{\"signal\":\"SIGTERM\",\"x\":[1,\t2]}", b.len) == 0,
              "%.*s", (int)b.len, b.data);
    dcs_buf_free(&b);
    dcs_typed_free(&s->base, NULL);
}

/* A bytes value may nest as deep as the payload limit allows. */
Test(typed, nesting_depth)
{
    char in[256];
    size_t i, n;
    ProtobufCMessage *m;
    dcs_error err;
    for (int depth = 62; depth <= 64; depth++) {
        n = (size_t)snprintf(in, sizeof in, "{\"signal\":\"s\",\"x\":");
        for (i = 0; i < (size_t)depth; i++)
            in[n++] = '[';
        for (i = 0; i < (size_t)depth; i++)
            in[n++] = ']';
        in[n++] = '}';
        m = NULL;
        int rc = dcs_typed_decode(&dcs__shutdown__descriptor, DCS_TYPED_OBJECT, in, n, NULL, &m,
                                  &err);
        /* The payload object is depth 1 and the limit is DCS_DEFAULT_MAX_DEPTH. */
        if (depth + 1 <= (int)DCS_DEFAULT_MAX_DEPTH) {
            cr_expect_eq(rc, 0, "depth %d: %s", depth, err.message);
        } else {
            cr_expect_eq(rc, DCS_ETOO_DEEP, "depth %d: %s", depth, dcs_err_name(rc));
            cr_expect_null(m);
        }
        dcs_typed_free(m, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Encoding messages built by hand                                           */

static void expect_encoded(const ProtobufCMessage *m, const char *want)
{
    dcs_buf b;
    int rc;
    dcs_buf_init(&b, NULL);
    rc = dcs_typed_encode(&b, m);
    cr_assert_eq(rc, 0, "%s", dcs_err_name(rc));
    cr_expect(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0, "\n got  %.*s\n want %s",
              (int)b.len, b.data, want);
    dcs_buf_free(&b);
}

static void expect_encode_error(const ProtobufCMessage *m, int code)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    cr_assert_eq(dcs_buf_append(&b, "prefix", 6), 0);
    cr_expect_eq(dcs_typed_encode(&b, m), code, "want %s", dcs_err_name(code));
    cr_expect(b.len == 6 && memcmp(b.data, "prefix", 6) == 0, "nothing appended on error");
    dcs_buf_free(&b);
}

#define BYTES(s) ((ProtobufCBinaryData){sizeof(s) - 1, (uint8_t *)(s)})

Test(typed, encode_hand_built)
{
    Dcs__ProgressUpdate p = DCS__PROGRESS_UPDATE__INIT;
    Dcs__Area a0 = DCS__AREA__INIT, a1 = DCS__AREA__INIT, *areas[2] = {&a0, &a1};
    Dcs__Heartbeat h = DCS__HEARTBEAT__INIT;
    Dcs__TokenRefreshResponse r = DCS__TOKEN_REFRESH_RESPONSE__INIT;
    Dcs__JobsAvailable ja = DCS__JOBS_AVAILABLE__INIT;
    Dcs__Job j = DCS__JOB__INIT, *jobs[1] = {&j};
    char *types[2] = {"issues", "commits"};

    p.taskid = "t-1";
    p.status = "processing";
    p.timestamp = "2025-01-03T19:00:00.000Z";
    p.has_processeditems = 1;
    p.processeditems = -40;
    p.message = "caf\xc3\xa9 \"quoted\"\n\x01";
    p.has_progress = 1;
    p.progress = BYTES("{\"page\":2}");
    a0.type = "project";
    a0.has_gitlabid = 1;
    a0.gitlabid = BYTES("501");
    a1.name = "";
    a1.has_dcs_unknown = 1;
    a1.dcs_unknown = BYTES(" {\n} ");
    p.n_areas = 2;
    p.areas = areas;
    p.has_dcs_unknown = 1;
    p.dcs_unknown = BYTES("{\"x\":1,\"y\":[true]}");
    expect_encoded(&p.base, "{\"taskId\":\"t-1\",\"status\":\"processing\",\"timestamp\":"
                            "\"2025-01-03T19:00:00.000Z\",\"processedItems\":-40,\"message\":"
                            "\"caf\xc3\xa9 \\\"quoted\\\"\\n\\u0001\",\"progress\":{\"page\":2},"
                            "\"areas\":[{\"type\":\"project\",\"gitlabId\":501},{\"name\":\"\"}],"
                            "\"x\":1,\"y\":[true]}");

    h.has_uptime = 1;
    h.uptime = 0.1 + 0.2;
    h.has_timestamp = 1;
    h.timestamp = INT64_MIN;
    expect_encoded(&h.base, "{\"timestamp\":-9223372036854775808,\"uptime\":0.30000000000000004}");
    h.has_timestamp = 0;
    h.uptime = 1e21;
    h.has_dcs_unknown = 1;
    h.dcs_unknown = BYTES("{\"a\":null}");
    expect_encoded(&h.base, "{\"uptime\":1e+21,\"a\":null}");
    h.has_uptime = 0;
    expect_encoded(&h.base, "{\"a\":null}");
    h.dcs_unknown = BYTES("{}");
    expect_encoded(&h.base, "{}");

    /* Raw JSON is written without the whitespace around it. */
    {
        Dcs__JobUpdate u = DCS__JOB_UPDATE__INIT;
        u.has_progress = 1;
        u.progress = BYTES(" \n0.5\t");
        u.has_error = 1;
        u.error = BYTES("{ \"a\" : 1 } ");
        expect_encoded(&u.base, "{\"progress\":0.5,\"error\":{ \"a\" : 1 }}");
    }

    /* A required bool is always written, false included. */
    r.requestid = "r-1";
    expect_encoded(&r.base, "{\"requestId\":\"r-1\",\"success\":false}");

    /* The array shape: an empty list is still written. */
    expect_encoded(&ja.base, "[]");
    ja.has_dcs_unknown = 1;
    ja.dcs_unknown = BYTES("{ }");
    expect_encoded(&ja.base, "[]");
    ja.has_dcs_unknown = 0;
    j.taskid = "t";
    j.n_datatypes = 2;
    j.datatypes = types;
    ja.n_jobs = 1;
    ja.jobs = jobs;
    expect_encoded(&ja.base, "[{\"taskId\":\"t\",\"dataTypes\":[\"issues\",\"commits\"]}]");
}

Test(typed, encode_errors)
{
    Dcs__Close c = DCS__CLOSE__INIT;
    Dcs__Shutdown s = DCS__SHUTDOWN__INIT;
    Dcs__Heartbeat h = DCS__HEARTBEAT__INIT;
    Dcs__JobUpdate u = DCS__JOB_UPDATE__INIT;
    Dcs__JobsAvailable ja = DCS__JOBS_AVAILABLE__INIT;
    Dcs__Job j = DCS__JOB__INIT, *jobs[1] = {&j};
    Dcs__ProgressUpdate p = DCS__PROGRESS_UPDATE__INIT;
    dcs_buf b;

    expect_encode_error(&c.base, DCS_EINVAL); /* required reason is NULL */
    s.signal = "\xff";
    expect_encode_error(&s.base, DCS_EUTF8);
    h.has_uptime = 1;
    h.uptime = NAN;
    expect_encode_error(&h.base, DCS_ENOT_FINITE);
    h.uptime = -INFINITY;
    expect_encode_error(&h.base, DCS_ENOT_FINITE);
    u.has_progress = 1;
    u.progress = BYTES("{\"a\":");
    expect_encode_error(&u.base, DCS_EBAD_JSON);
    u.progress = BYTES("");
    expect_encode_error(&u.base, DCS_EBAD_JSON);
    u.progress.data = NULL;
    expect_encode_error(&u.base, DCS_EBAD_JSON);
    u.has_progress = 0;
    u.has_dcs_unknown = 1;
    u.dcs_unknown = BYTES("[1]");
    expect_encode_error(&u.base, DCS_EBAD_JSON);
    u.dcs_unknown = BYTES("\"a\":1");
    expect_encode_error(&u.base, DCS_EBAD_JSON);
    ja.has_dcs_unknown = 1;
    ja.dcs_unknown = BYTES("{\"a\":1}");
    expect_encode_error(&ja.base, DCS_EINVAL); /* an array has no members */
    ja.has_dcs_unknown = 0;
    ja.n_jobs = 1;
    ja.jobs = jobs; /* the job's required taskId is NULL */
    expect_encode_error(&ja.base, DCS_EINVAL);
    ja.jobs = NULL;
    expect_encode_error(&ja.base, DCS_EINVAL);
    /* A NULL element of a repeated message field. */
    {
        Dcs__Area *areas[1] = {NULL};
        p.taskid = p.status = p.timestamp = "x";
        p.n_areas = 1;
        p.areas = areas;
        expect_encode_error(&p.base, DCS_EINVAL);
    }
    dcs_buf_init(&b, NULL);
    cr_expect_eq(dcs_typed_encode(&b, NULL), DCS_EINVAL);
    cr_expect_eq(dcs_typed_encode(NULL, &s.base), DCS_EINVAL);
    dcs_buf_free(&b);
}

Test(typed, invalid_arguments)
{
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    dcs_error err;
    const char *json = "{\"signal\":\"x\"}";
    size_t len = strlen(json);

    cr_expect_eq(dcs_typed_decode(NULL, DCS_TYPED_OBJECT, json, len, NULL, &m, &err), DCS_EINVAL);
    cr_expect_null(m);
    cr_expect_eq(err.code, DCS_EINVAL);
    cr_expect_eq(dcs_typed_decode(&dcs__shutdown__descriptor, DCS_TYPED_OBJECT, json, len, NULL,
                                  NULL, NULL),
                 DCS_EINVAL);
    cr_expect_eq(dcs_typed_decode(&dcs__shutdown__descriptor, DCS_TYPED_OBJECT, NULL, 3, NULL, &m,
                                  NULL),
                 DCS_EINVAL);
    cr_expect_eq(dcs_typed_decode(&dcs__shutdown__descriptor, DCS_TYPED_OBJECT, NULL, 0, NULL, &m,
                                  &err),
                 DCS_ETRUNCATED);
    cr_expect_eq(dcs_typed_decode(&dcs__shutdown__descriptor, (dcs_typed_shape)7, json, len, NULL,
                                  &m, NULL),
                 DCS_EINVAL);
    /* The array shape needs a first field that is repeated. */
    cr_expect_eq(dcs_typed_decode(&dcs__shutdown__descriptor, DCS_TYPED_ARRAY, "[]", 2, NULL, &m,
                                  NULL),
                 DCS_EINVAL);
    cr_expect_null(m);
    dcs_typed_free(NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */

static const char *const all_files[] = {
    "typed/catalogue.tsv", "typed/unknown.tsv", "typed/values.tsv", "typed/errors.tsv"};

/* Fail the 1st, 2nd, ... allocation of decoding, then of encoding, each
 * successful case: every call returns DCS_ENOMEM and leaves nothing live. */
Test(typed, allocation_failure_at_every_call)
{
    size_t fi, i;
    long total = 0;
    for (fi = 0; fi < sizeof all_files / sizeof all_files[0]; fi++) {
        tfile *tf = malloc(sizeof *tf);
        cr_assert_not_null(tf);
        load(tf, all_files[fi]);
        for (i = 0; i < tf->n; i++) {
            const tcase *c = &tf->cases[i];
            size_t len = strlen(c->input);
            ProtobufCMessage *m = NULL;
            long n;
            int rc;
            if (c->expect[0] == '!')
                continue;
            for (n = 1;; n++) {
                test_alloc ta;
                dcs_error err;
                test_alloc_init(&ta, n);
                m = (ProtobufCMessage *)&ta;
                rc = dcs_typed_decode(c->d, c->shape, c->input, len, &ta.a, &m, &err);
                if (rc == 0) {
                    cr_assert_eq(ta.failed, 0, "%s:%d: success despite a failed call", c->file,
                                 c->line);
                    dcs_typed_free(m, &ta.a);
                    cr_assert_eq(ta.live, 0);
                    break;
                }
                cr_assert_eq(rc, DCS_ENOMEM, "%s:%d: fail at %ld: %s", c->file, c->line, n,
                             dcs_err_name(rc));
                cr_assert_eq(err.code, DCS_ENOMEM);
                cr_assert_null(m);
                cr_assert_eq(ta.live, 0, "%s:%d: fail at %ld: %ld leaked", c->file, c->line, n,
                             ta.live);
                total++;
            }
            m = decode_ok(c, c->input, len, NULL);
            for (n = 1;; n++) {
                test_alloc ta;
                dcs_buf b;
                test_alloc_init(&ta, n);
                dcs_buf_init(&b, &ta.a);
                rc = dcs_typed_encode(&b, m);
                if (rc == 0) {
                    cr_assert_eq(ta.failed, 0);
                    dcs_buf_free(&b);
                    break;
                }
                cr_assert_eq(rc, DCS_ENOMEM, "%s:%d", c->file, c->line);
                cr_assert_eq(b.len, 0);
                dcs_buf_free(&b);
                cr_assert_eq(ta.live, 0);
                total++;
            }
            dcs_typed_free(m, NULL);
        }
        free(tf->text);
        free(tf);
    }
    cr_expect_gt(total, 300, "only %ld failure points exercised", total);
}

/* ------------------------------------------------------------------------ */
/* Garbage                                                                   */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Decode in as d/shape against a guard page; whatever comes back, nothing
 * leaks, and a success re-encodes to a fixed point. */
static void decode_anything(const ProtobufCMessageDescriptor *d, dcs_typed_shape shape,
                            const char *in, size_t len)
{
    guarded g;
    test_alloc ta;
    ProtobufCMessage *m = NULL, *m2 = NULL;
    dcs_error err;
    int rc;

    guard_place(&g, in, len);
    test_alloc_init(&ta, 0);
    rc = dcs_typed_decode(d, shape, g.data, len, &ta.a, &m, &err);
    if (rc == 0) {
        dcs_buf b, b2;
        dcs_buf_init(&b, NULL);
        dcs_buf_init(&b2, NULL);
        cr_assert_eq(dcs_typed_encode(&b, m), 0, "%.*s", (int)len, in);
        cr_assert_eq(dcs_typed_decode(d, shape, b.data, b.len, &ta.a, &m2, &err), 0,
                     "%.*s -> %.*s: %s", (int)len, in, (int)b.len, b.data, err.message);
        cr_assert_eq(dcs_typed_encode(&b2, m2), 0);
        cr_assert(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0, "%.*s", (int)len, in);
        dcs_typed_free(m2, &ta.a);
        dcs_typed_free(m, &ta.a);
        dcs_buf_free(&b);
        dcs_buf_free(&b2);
    } else {
        cr_assert_lt(rc, 0);
        cr_assert_null(m);
        cr_assert_eq(err.code, rc);
        cr_assert_leq(err.offset, len, "offset %llu beyond %zu", (unsigned long long)err.offset,
                      len);
        cr_assert_not_null(memchr(err.message, '\0', sizeof err.message));
    }
    cr_assert_eq(ta.live, 0, "%.*s", (int)len, in);
    guard_release(&g);
}

Test(typed, garbage_never_crashes)
{
    static const char *const junk[] = {
        "", " ", "{", "}", "[", "]", "{\"", "{\"a\"", "{\"a\":", "{\"a\":1,", "{\"a\":1,}",
        "[1,]", "{\"a\" 1}", "nul", "tru", "\"", "\"\\", "\"\\u12", "\"\\ud800\\u0041\"",
        "{\"signal\":\"\xc3\"}", "{\"signal\":\"\xed\xa0\x80\"}", "{\"signal\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}",
        "{}{}", "{} x", "\xef\xbb\xbf{}", "{\"a\":[}", "{\"a\":{]}", "[[[[[[[[[[", "]]]]",
        "{\"taskId\":\"t\"", "{\"\\u0000\":1}", "\x00", "{\"a\":\"\x00\"}",
    };
    char deep[4096];
    size_t i, j, n;
    const dcs_typed_view *views = dcs_typed_views(&n);

    memset(deep, '[', sizeof deep);
    for (i = 0; i < n; i++) {
        for (j = 0; j < sizeof junk / sizeof junk[0]; j++)
            decode_anything(views[i].descriptor, views[i].shape, junk[j],
                            j == sizeof junk / sizeof junk[0] - 2 ? 1 : strlen(junk[j]));
        decode_anything(views[i].descriptor, views[i].shape, deep, sizeof deep);
    }
    /* Random bytes, biased towards JSON's structural characters. */
    for (i = 0; i < 20000; i++) {
        static const char alphabet[] = "{}[]\":,\\ 0123456789.eE+-tfnulrsa\xc3\xa9\x80\xff";
        char buf[48];
        size_t len = rng() % sizeof buf;
        const dcs_typed_view *v = &views[rng() % n];
        for (j = 0; j < len; j++)
            buf[j] = (rng() & 1) ? alphabet[rng() % (sizeof alphabet - 1)] : (char)rng();
        if (len && (rng() & 1))
            buf[0] = v->shape == DCS_TYPED_ARRAY ? '[' : '{';
        decode_anything(v->descriptor, v->shape, buf, len);
    }
}

/* Valid payloads, mutated: flipped, inserted, deleted and duplicated bytes,
 * truncation; decoded as their own view and as another one. */
Test(typed, mutated_payloads_never_crash)
{
    static const char specials[] = "{}[]\",:\\0-.e1nt \xc3\xa9";
    tfile *tf[4];
    const tcase *pool[512];
    size_t np = 0, fi, i, nv;
    const dcs_typed_view *views = dcs_typed_views(&nv);
    char *buf = malloc(8192);

    cr_assert_not_null(buf);
    for (fi = 0; fi < 4; fi++) {
        tf[fi] = malloc(sizeof *tf[fi]);
        cr_assert_not_null(tf[fi]);
        load(tf[fi], all_files[fi]);
        for (i = 0; i < tf[fi]->n; i++)
            pool[np++] = &tf[fi]->cases[i];
    }
    for (i = 0; i < 30000; i++) {
        const tcase *c = pool[rng() % np];
        size_t len = strlen(c->input), k, ops = 1 + rng() % 4;
        memcpy(buf, c->input, len);
        for (k = 0; k < ops; k++) {
            size_t at = len ? rng() % len : 0, span = 1 + rng() % 8;
            switch (rng() % 6) {
            case 0: /* replace */
                if (len)
                    buf[at] = (rng() & 1) ? specials[rng() % (sizeof specials - 1)] : (char)rng();
                break;
            case 1: /* insert */
                if (len < 4000) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = specials[rng() % (sizeof specials - 1)];
                    len++;
                }
                break;
            case 2: /* delete */
                if (span > len - at)
                    span = len - at;
                memmove(buf + at, buf + at + span, len - at - span);
                len -= span;
                break;
            case 3: /* truncate */
                len = at;
                break;
            case 4: /* duplicate a span */
                if (span > len - at)
                    span = len - at;
                if (len + span < 4000) {
                    memmove(buf + at + span, buf + at, len - at);
                    len += span;
                }
                break;
            default: /* swap two bytes */
                if (len) {
                    size_t o = rng() % len;
                    char t = buf[at];
                    buf[at] = buf[o];
                    buf[o] = t;
                }
            }
        }
        decode_anything(c->d, c->shape, buf, len);
        {
            const dcs_typed_view *v = &views[rng() % nv];
            decode_anything(v->descriptor, v->shape, buf, len);
        }
    }
    for (fi = 0; fi < 4; fi++) {
        free(tf[fi]->text);
        free(tf[fi]);
    }
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* With the envelope decoder                                                 */

/* Every message of the shared catalogue stream that has a typed view fits
 * it, and its re-encoding decodes again. */
Test(typed, catalogue_stream_fits_its_views)
{
    size_t len, fits = 0;
    char *in = read_file(data_path("streams/catalogue.dcs"), &len);
    dcs_decoder *dec = dcs_decoder_new(NULL, NULL);
    dcs_message msg;
    dcs_error err;
    int ev;

    cr_assert_not_null(dec);
    cr_assert_eq(dcs_decoder_feed(dec, in, len), 0);
    while ((ev = dcs_decoder_next(dec, &msg, &err)) != DCS_AGAIN) {
        const dcs_typed_view *v;
        ProtobufCMessage *m = NULL;
        dcs_buf b;
        int rc;
        cr_assert_eq(ev, DCS_MESSAGE, "%s", err.message);
        v = dcs_typed_lookup(msg.type, msg.key);
        if (!v)
            continue;
        rc = dcs_typed_decode(v->descriptor, v->shape, msg.payload.ptr, msg.payload.len, NULL, &m,
                              &err);
        cr_expect_eq(rc, 0, "%.*s/%.*s at %llu: %s", (int)msg.type.len, msg.type.ptr,
                     (int)msg.key.len, msg.key.ptr, (unsigned long long)err.offset, err.message);
        if (rc)
            continue;
        dcs_buf_init(&b, NULL);
        cr_expect_eq(dcs_typed_encode(&b, m), 0);
        cr_expect_eq(dcs_json_validate(b.data, b.len, 0, NULL), 0);
        dcs_buf_free(&b);
        dcs_typed_free(m, NULL);
        fits++;
    }
    cr_expect_gt(fits, 10);
    dcs_decoder_free(dec);
    free(in);
}
