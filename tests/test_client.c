/* test_client.c - the client state machine (spec 8, 10.3, 13.3) on a fake
 * clock with injected randomness. Each test cites the rule it checks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/client.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */

#define MAXACT 4096

struct rec {
    int kind;
    char reason[64];
    char *data; /* WRITE/DROP bytes, NUL-terminated copy */
    uint64_t id, conn;
    unsigned flags;
    char key[64]; /* DELIVER: the message's key */
};

struct fx {
    dcs_client *c;
    dcs_ms now;
    double u; /* what rng.uniform returns */
    struct rec r[MAXACT];
    size_t n;
    test_alloc ta;
};

static double fx_uniform(void *ud)
{
    return ((struct fx *)ud)->u;
}

static void fx_bytes(void *ud, void *buf, size_t n)
{
    (void)ud;
    memset(buf, 0x5a, n);
}

static void fx_init(struct fx *f, void (*tweak)(dcs_client_config *))
{
    dcs_client_config cfg;
    memset(f, 0, sizeof *f);
    f->u = 0.5;
    f->now = 1000;
    test_alloc_init(&f->ta, 0);
    dcs_client_config_init(&cfg);
    cfg.rng.uniform = fx_uniform;
    cfg.rng.bytes = fx_bytes;
    cfg.rng.ud = f;
    cfg.wall_offset = 1735930800000LL - 1000;
    cfg.pid = 4242;
    cfg.allocator = &f->ta.a;
    if (tweak)
        tweak(&cfg);
    f->c = dcs_client_new(&cfg, NULL);
    cr_assert_not_null(f->c);
}

static void fx_fini(struct fx *f)
{
    size_t i;
    dcs_client_free(f->c);
    for (i = 0; i < f->n; i++)
        free(f->r[i].data);
    cr_assert_eq(f->ta.live, 0, "the client leaked %ld blocks", f->ta.live);
}

/* Collect every action, acknowledging writes unless hold is set. */
static void fx_drain_opt(struct fx *f, int ack)
{
    dcs_action a;
    while (dcs_client_next(f->c, f->now, &a)) {
        struct rec *r;
        cr_assert_lt(f->n, (size_t)MAXACT);
        r = &f->r[f->n++];
        memset(r, 0, sizeof *r);
        r->kind = a.kind;
        r->id = a.id;
        r->conn = a.conn;
        r->flags = a.flags;
        if (a.reason)
            snprintf(r->reason, sizeof r->reason, "%s", a.reason);
        if (a.kind == DCS_ACT_WRITE || a.kind == DCS_ACT_DROP) {
            r->data = malloc(a.data.len + 1);
            memcpy(r->data, a.data.ptr, a.data.len);
            r->data[a.data.len] = '\0';
        }
        if (a.kind == DCS_ACT_DELIVER)
            snprintf(r->key, sizeof r->key, "%.*s", (int)a.msg->key.len, a.msg->key.ptr);
        if (a.kind == DCS_ACT_WRITE && ack)
            dcs_client_written(f->c, f->now, a.id);
    }
}

static void fx_drain(struct fx *f)
{
    fx_drain_opt(f, 1);
}

/* Advance the fake clock to t, handling every deadline on the way. */
static void fx_advance(struct fx *f, dcs_ms t)
{
    for (;;) {
        dcs_ms d;
        fx_drain(f);
        d = dcs_client_deadline(f->c);
        if (d > t)
            break;
        f->now = d;
        fx_drain(f);
        cr_assert(dcs_client_deadline(f->c) > d, "a deadline at %lld was not handled",
                  (long long)d);
    }
    f->now = t;
    fx_drain(f);
}

/* Index of the first record of kind at or after from, or -1. */
static long fx_find(struct fx *f, size_t from, int kind, const char *needle)
{
    size_t i;
    for (i = from; i < f->n; i++)
        if (f->r[i].kind == kind &&
            (!needle || (f->r[i].data && strstr(f->r[i].data, needle)) ||
             strcmp(f->r[i].reason, needle) == 0))
            return (long)i;
    return -1;
}

static size_t fx_count(struct fx *f, size_t from, int kind, const char *needle)
{
    size_t n = 0;
    long i = (long)from - 1;
    while ((i = fx_find(f, (size_t)(i + 1), kind, needle)) >= 0)
        n++;
    return n;
}

/* The data of the n-th WRITE at or after from (NULL if there is none). */
static const char *fx_write(struct fx *f, size_t from, size_t n)
{
    size_t i;
    for (i = from; i < f->n; i++)
        if (f->r[i].kind == DCS_ACT_WRITE && n-- == 0)
            return f->r[i].data;
    return NULL;
}

static void fx_input(struct fx *f, const char *s)
{
    cr_assert_eq(dcs_client_input(f->c, f->now, s, strlen(s)), 0);
    fx_drain(f);
}

/* start + successful connect; returns the index of the register write. */
static size_t fx_connect(struct fx *f)
{
    size_t mark = f->n;
    long i;
    if (dcs_client_state(f->c) == DCS_CLIENT_DISCONNECTED)
        dcs_client_start(f->c, f->now);
    fx_drain(f);
    cr_assert_geq(fx_find(f, mark, DCS_ACT_CONNECT, NULL), 0, "no connect attempt");
    dcs_client_connect_result(f->c, f->now, DCS_CONNECT_OK, -1);
    fx_drain(f);
    i = fx_find(f, mark, DCS_ACT_WRITE, NULL);
    cr_assert_geq(i, 0);
    return (size_t)i;
}

static dcs_slice S(const char *s)
{
    dcs_slice r = {s, strlen(s)};
    return r;
}

static void fx_send(struct fx *f, const char *key, const char *payload)
{
    dcs_envelope e;
    memset(&e, 0, sizeof e);
    e.type = S("message");
    e.key = S(key);
    e.payload = S(payload);
    cr_assert_eq(dcs_client_send(f->c, f->now, &e, NULL), 0);
}

#define SRV(type, key, payload)                                                                    \
    "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"" type            \
    "\",\"key\":\"" key "\",\"payload\":" payload ",\"timestamp\":1}"

/* ------------------------------------------------------------------------ */
/* 8.2 Register first                                                        */

Test(client, register_is_first_on_the_first_connection)
{
    struct fx f;
    fx_init(&f, NULL);
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    cr_assert_eq(f.r[0].kind, DCS_ACT_CONNECT);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_CONNECTING);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    cr_assert_eq(f.r[1].kind, DCS_ACT_WRITE);
    cr_assert_str_eq(f.r[1].data,
                     "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":"
                     "\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":"
                     "4242,\"type\":\"copilot-study\"},\"timestamp\":1735930800000}");
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    /* statistics by type */
    fx_input(&f, SRV("heartbeat", "heartbeat", "{}"));
    cr_assert_eq(dcs_client_get_stats(f.c)->out_by_type[DCS_MT_COMMAND], 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->in_by_type[DCS_MT_HEARTBEAT], 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->in_by_type[DCS_MT_MESSAGE], 0);
    cr_assert_str_eq(dcs_msg_type_name(DCS_MT_JOBREQUEST), "jobRequest");
    fx_fini(&f);
}

Test(client, queued_messages_follow_register_in_order)
{
    struct fx f;
    size_t after, i;
    fx_init(&f, NULL);
    fx_send(&f, "m1", "1");
    fx_send(&f, "m2", "2");
    fx_send(&f, "m3", "3");
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, NULL), 0, "nothing is written before a connection");
    after = fx_connect(&f);
    cr_assert(strstr(fx_write(&f, after, 0), "\"key\":\"register\""), "register first");
    for (i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"key\":\"m%zu\"", i + 1);
        cr_assert(strstr(fx_write(&f, after, i + 1), want), "queued message %zu out of order", i + 1);
    }
    fx_fini(&f);
}

Test(client, register_first_again_after_reconnect_and_queue_flush)
{
    struct fx f;
    size_t mark, after;
    fx_init(&f, NULL);
    fx_connect(&f);
    dcs_client_ended(f.c, f.now);
    fx_drain(&f);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOST, NULL), 0, "the application hears of the loss");
    fx_send(&f, "queued", "{}");
    mark = f.n;
    fx_advance(&f, f.now + 6000); /* delay(0) <= 6000 */
    cr_assert_geq(fx_find(&f, mark, DCS_ACT_CONNECT, NULL), 0);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    after = (size_t)fx_find(&f, mark, DCS_ACT_WRITE, NULL);
    cr_assert(strstr(fx_write(&f, after, 0), "\"key\":\"register\""));
    cr_assert(strstr(fx_write(&f, after, 1), "\"key\":\"queued\""));
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 8.3 Reconnect, 8.4 breaker                                                */

static dcs_ms next_connect_delay(struct fx *f)
{
    dcs_ms t0 = f->now;
    size_t mark = f->n;
    dcs_ms d = dcs_client_deadline(f->c);
    f->now = d;
    fx_drain(f);
    cr_assert_geq(fx_find(f, mark, DCS_ACT_CONNECT, NULL), 0, "no attempt at the deadline");
    return d - t0;
}

Test(client, backoff_and_breaker_with_jitter_extremes)
{
    static const double us[] = {0.0, 0.9999999, 0.5};
    size_t k;
    for (k = 0; k < 3; k++) {
        struct fx f;
        double j;
        dcs_ms d;
        fx_init(&f, NULL);
        f.u = us[k];
        j = 0.8 + 0.4 * f.u;
        dcs_client_start(f.c, f.now);
        fx_drain(&f);
        /* failures 1..4: BACKOFF with delay(failures) */
        {
            static const double raw[] = {7500, 11250, 16875, 25312.5};
            int i;
            for (i = 0; i < 4; i++) {
                dcs_client_connect_result(f.c, f.now, DCS_CONNECT_FAILED, -1);
                fx_drain(&f);
                cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
                d = next_connect_delay(&f);
                cr_assert_eq(d, (dcs_ms)(raw[i] * j), "u=%g failure %d: delay %lld", f.u, i + 1,
                             (long long)d);
            }
        }
        /* the 5th failure opens the breaker for exactly 30000 ms, no jitter */
        dcs_client_connect_result(f.c, f.now, DCS_CONNECT_FAILED, -1);
        fx_drain(&f);
        cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BREAKER_OPEN);
        cr_assert_eq(dcs_client_deadline(f.c) - f.now, 30000);
        d = next_connect_delay(&f);
        cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BREAKER_HALF_OPEN);
        /* a failed probe re-opens it for a full period */
        dcs_client_connect_result(f.c, f.now, DCS_CONNECT_FAILED, -1);
        fx_drain(&f);
        cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BREAKER_OPEN);
        cr_assert_eq(dcs_client_deadline(f.c) - f.now, 30000);
        next_connect_delay(&f);
        /* a successful probe closes it and resets the count */
        dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
        fx_drain(&f);
        cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN);
        cr_assert_eq(dcs_client_get_stats(f.c)->failures, 0);
        cr_assert_eq(dcs_client_get_stats(f.c)->breaker_opens, 2);
        fx_fini(&f);
    }
}

Test(client, missing_socket_is_not_a_failure)
{
    struct fx f;
    int i;
    fx_init(&f, NULL);
    f.u = 0.0;
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    for (i = 0; i < 20; i++) {
        dcs_client_connect_result(f.c, f.now, DCS_CONNECT_MISSING, -1);
        fx_drain(&f);
        cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
        cr_assert_eq(next_connect_delay(&f), 4000, "delay(0) with u=0 every time");
    }
    cr_assert_eq(dcs_client_get_stats(f.c)->failures, 0);
    cr_assert_eq(dcs_client_get_stats(f.c)->connect_skipped, 20);
    fx_fini(&f);
}

Test(client, connect_timeout_is_a_failure)
{
    struct fx f;
    fx_init(&f, NULL);
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    fx_advance(&f, f.now + 4999);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_CONNECTING);
    fx_advance(&f, f.now + 1);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "connect-timeout"), 0);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
    cr_assert_eq(dcs_client_get_stats(f.c)->failures, 1);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 8.5 Heartbeat and liveness                                                */

Test(client, liveness_closes_at_exactly_the_deadline)
{
    struct fx f;
    dcs_ms t;
    fx_init(&f, NULL);
    fx_connect(&f);
    t = f.now + 20000;
    fx_advance(&f, t);
    fx_input(&f, SRV("heartbeat", "heartbeat", "{\"timestamp\":1}"));
    fx_advance(&f, t + 29999);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN, "still open at t + timeout - 1");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, "heartbeat-timeout"), 0);
    fx_advance(&f, t + 30000);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "heartbeat-timeout"), 0, "closed at t + timeout");
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
    cr_assert_eq(dcs_client_get_stats(f.c)->heartbeat_timeouts, 1);
    fx_fini(&f);
}

Test(client, any_valid_message_counts_for_liveness)
{
    struct fx f;
    dcs_ms t;
    fx_init(&f, NULL);
    fx_connect(&f);
    t = f.now + 25000;
    fx_advance(&f, t);
    /* not for us: dropped, but it still shows the peer is alive */
    fx_input(&f, "{\"origin\":\"x\",\"destination\":\"someone-else\",\"type\":\"message\",\"key\":"
                 "\"k\"}");
    fx_advance(&f, t + 29999);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN);
    /* a decoding error does not count */
    fx_input(&f, "garbage");
    fx_advance(&f, t + 30000);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
    cr_assert_eq(dcs_client_get_stats(f.c)->wrong_destination, 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->decode_errors, 1);
    fx_fini(&f);
}

Test(client, heartbeats_every_interval)
{
    struct fx f;
    size_t mark;
    int i;
    fx_init(&f, NULL);
    fx_connect(&f);
    mark = f.n;
    for (i = 1; i <= 2; i++) {
        fx_advance(&f, f.now + 9999);
        cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "\"type\":\"heartbeat\""), (size_t)i - 1);
        fx_advance(&f, f.now + 1);
        cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "\"type\":\"heartbeat\""), (size_t)i);
        fx_input(&f, SRV("heartbeat", "heartbeat", "{}"));
    }
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 8.6 Outbound queue                                                        */

Test(client, queue_overflow_keeps_newest_800_and_reports_201)
{
    struct fx f;
    size_t after, i, drops;
    fx_init(&f, NULL);
    for (i = 1; i <= 1001; i++) {
        char key[16];
        snprintf(key, sizeof key, "m%zu", i);
        fx_send(&f, key, "{}");
    }
    fx_drain(&f);
    drops = fx_count(&f, 0, DCS_ACT_DROP, "queue-count");
    cr_assert_eq(drops, 201);
    cr_assert_eq(dcs_client_get_stats(f.c)->drop_queue_count, 201);
    cr_assert(strstr(f.r[fx_find(&f, 0, DCS_ACT_DROP, NULL)].data, "\"key\":\"m1\""),
              "the oldest go first");
    cr_assert_eq(dcs_client_get_stats(f.c)->queue_depth, 800);
    after = fx_connect(&f);
    for (i = 0; i < 800; i++) {
        char want[32];
        const char *w = fx_write(&f, after, i + 1);
        snprintf(want, sizeof want, "\"key\":\"m%zu\"", 202 + i);
        cr_assert(w && strstr(w, want), "message %zu: %s", i, w ? w : "(none)");
    }
    cr_assert_null(fx_write(&f, after, 801));
    fx_fini(&f);
}

Test(client, queue_age_bound)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_send(&f, "old", "{}");
    fx_advance(&f, f.now + 299999);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "queue-age"), 0);
    fx_advance(&f, f.now + 1);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "queue-age"), 1, "dropped at exactly the age bound");
    fx_fini(&f);
}

Test(client, message_cut_by_a_broken_connection_is_resent_whole)
{
    struct fx f;
    size_t mark;
    long w;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_send(&f, "inflight", "{\"n\":1}");
    fx_drain_opt(&f, 0); /* the shell never confirms this write */
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"key\":\"inflight\""), 0);
    dcs_client_ended(f.c, f.now);
    fx_drain(&f);
    mark = f.n;
    fx_advance(&f, f.now + 6000);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    w = fx_find(&f, mark, DCS_ACT_WRITE, NULL);
    cr_assert(strstr(fx_write(&f, (size_t)w, 0), "\"key\":\"register\""));
    cr_assert(strstr(fx_write(&f, (size_t)w, 1), "\"key\":\"inflight\""),
              "re-sent whole after register");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, "\"key\":\"inflight\""), 2);
    fx_fini(&f);
}

Test(client, half_message_does_not_glue_onto_the_next_connection)
{
    struct fx f;
    size_t mark;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_input(&f, "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"mess");
    dcs_client_ended(f.c, f.now);
    fx_drain(&f);
    fx_advance(&f, f.now + 6000);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    mark = f.n;
    fx_input(&f, "age\",\"key\":\"x\"}" SRV("message", "hello", "{}"));
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_DELIVER, NULL), 1);
    cr_assert_str_eq(f.r[fx_find(&f, mark, DCS_ACT_DELIVER, NULL)].key, "hello");
    cr_assert_geq(dcs_client_get_stats(f.c)->decode_errors, 2, "truncated + garbage");
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 8.7 Dedup, 8.8 destination, 8.9 replies                                   */

#define PROGRESS(ts) SRV("message", "PROGRESS_UPDATE", "{\"taskId\":\"t1\",\"status\":\"processing\",\"timestamp\":\"" ts "\"}")

Test(client, dedup_window_for_progress_updates)
{
    struct fx f;
    dcs_ms t;
    fx_init(&f, NULL);
    fx_connect(&f);
    t = f.now;
    fx_input(&f, PROGRESS("2025-01-03T19:00:00Z"));
    fx_advance(&f, t + 999);
    fx_input(&f, PROGRESS("2025-01-03T19:00:00Z")); /* duplicate within the window */
    fx_input(&f, PROGRESS("2025-01-03T19:00:01Z")); /* another key */
    fx_advance(&f, t + 1000);
    fx_input(&f, PROGRESS("2025-01-03T19:00:00Z")); /* window over: delivered again */
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 3);
    cr_assert_eq(dcs_client_get_stats(f.c)->duplicates, 1);
    fx_fini(&f);
}

Test(client, dedup_token_requests_by_request_id)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_input(&f, SRV("message", "TOKEN_REFRESH_REQUEST", "{\"requestId\":\"r1\",\"providerId\":\"p\"}"));
    fx_advance(&f, f.now + 4999);
    fx_input(&f, SRV("message", "TOKEN_REFRESH_REQUEST", "{\"requestId\":\"r1\",\"providerId\":\"p\"}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 1);
    fx_advance(&f, f.now + 1);
    fx_input(&f, SRV("message", "TOKEN_REFRESH_REQUEST", "{\"requestId\":\"r1\",\"providerId\":\"p\"}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 2);
    fx_fini(&f);
}

Test(client, destination_filter_and_wrong_direction_and_fit)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_input(&f, "{\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"message\",\"key\":\"any\"}");
    fx_input(&f, "{\"origin\":\"external-crawler\",\"destination\":\"other\",\"type\":\"message\",\"key\":\"any\"}");
    fx_input(&f, SRV("command", "register", "{\"id\":\"x\",\"pid\":1,\"type\":\"t\"}"));
    fx_input(&f, SRV("message", "PROGRESS_UPDATE", "{\"taskId\":1}"));
    fx_input(&f, SRV("progressUpdate", "x", "{}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 2, "the broadcast and the unknown type");
    cr_assert_eq(dcs_client_get_stats(f.c)->wrong_destination, 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->wrong_direction, 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->payload_mismatch, 1);
    cr_assert_eq(dcs_client_get_stats(f.c)->unknown_type, 1);
    fx_fini(&f);
}

static void depth_16(dcs_client_config *c)
{
    c->s.max_depth = 16;
}

/* Fuzzing found the client writing a payload nested deeper than its own
 * max_depth (fuzz/regressions/session/): such a message is refused, counted
 * and logged, and nothing is written. */
Test(client, send_refuses_a_message_deeper_than_its_own_limit)
{
    static const char ok[] = "{\"a\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}";   /* 15 deep */
    static const char deep[] = "{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"; /* 16 deep */
    struct fx f;
    dcs_envelope e;
    size_t from;
    fx_init(&f, depth_16);
    fx_connect(&f);
    memset(&e, 0, sizeof e);
    e.type = S("message");
    e.key = S("statusUpdate");
    e.payload = S(deep);
    from = f.n;
    cr_assert_eq(dcs_client_send(f.c, f.now, &e, NULL), DCS_ETOO_DEEP);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, from, DCS_ACT_WRITE, NULL), 0);
    cr_assert_geq(fx_find(&f, from, DCS_ACT_LOG, "too-deep"), 0, "logged with the reason of spec 11.4");
    cr_assert_eq(dcs_client_get_stats(f.c)->drop_refused, 1);
    e.payload = S(ok);
    cr_assert_eq(dcs_client_send(f.c, f.now, &e, NULL), 0);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, from, DCS_ACT_WRITE, "statusUpdate"), 1);
    fx_fini(&f);
}

Test(client, replies_on_the_same_connection_stale_after_it_ended)
{
    struct fx f;
    dcs_envelope e;
    long d;
    uint64_t conn;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_input(&f, SRV("jobRequest", "request_jobs", "{\"requestId\":\"q1\"}"));
    d = fx_find(&f, 0, DCS_ACT_DELIVER, NULL);
    cr_assert_geq(d, 0);
    conn = f.r[d].conn;
    memset(&e, 0, sizeof e);
    e.type = S("jobResponse");
    e.key = S("jobs_error");
    e.payload = S("{\"error\":\"none\",\"requestId\":\"q1\"}");
    cr_assert_eq(dcs_client_reply(f.c, f.now, conn, &e, NULL), 0);
    fx_drain(&f);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "jobs_error"), 0);
    dcs_client_ended(f.c, f.now);
    fx_drain(&f);
    cr_assert_eq(dcs_client_reply(f.c, f.now, conn, &e, NULL), 0);
    fx_drain(&f);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_DROP, "stale-reply"), 0);
    cr_assert_eq(dcs_client_get_stats(f.c)->drop_stale_reply, 1);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 10.3 Handshake                                                            */

static void with_secret(dcs_client_config *c)
{
    c->secret = (const unsigned char *)"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa";
    c->secret_len = 32;
}

#define CHALLENGE(nonce)                                                                           \
    "{\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"command\",\"key\":"      \
    "\"challenge\",\"payload\":{\"nonce\":\"" nonce "\",\"alg\":\"HMAC-SHA256\"},\"timestamp\":1}"

Test(client, handshake_answers_the_challenge_as_appendix_b6)
{
    struct fx f;
    fx_init(&f, with_secret);
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_REGISTERING);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, NULL), 0, "nothing before the challenge");
    fx_input(&f, CHALLENGE("e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c"));
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE,
                          "\"nonce\":\"e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c\","
                          "\"hmac\":\"b850465c891badd1d9b0fc42f9a82fc2a13b7e3ff1c0f46b90433091b2805c55\""),
                  0);
    fx_fini(&f);
}

Test(client, handshake_without_challenge_and_with_a_bad_one)
{
    struct fx f;
    fx_init(&f, with_secret);
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_advance(&f, f.now + 1999);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_REGISTERING);
    fx_advance(&f, f.now + 1);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN, "registers plainly after the wait");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "no-challenge"), 0);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_WRITE, "hmac"), 0);
    fx_fini(&f);

    fx_init(&f, with_secret);
    dcs_client_start(f.c, f.now);
    fx_drain(&f);
    dcs_client_connect_result(f.c, f.now, DCS_CONNECT_OK, -1);
    fx_drain(&f);
    fx_input(&f, CHALLENGE("NOT-HEX"));
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "challenge-invalid"), 0);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_BACKOFF);
    cr_assert_eq(dcs_client_get_stats(f.c)->failures, 1, "a bad challenge is a failed attempt");
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 13.3 Stop                                                                 */

Test(client, stop_flushes_then_closes_and_counts_the_rest)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_send(&f, "last", "{}");
    dcs_client_stop(f.c, f.now);
    fx_drain(&f);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"key\":\"last\""), 0);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"reason\":\"shutdown\""), 0, "close notice");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "shutdown"), 0);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_CLOSED);
    cr_assert_eq(dcs_client_send(f.c, f.now, &(dcs_envelope){0}, NULL), DCS_EINVAL);
    fx_fini(&f);

    fx_init(&f, NULL);
    fx_send(&f, "never", "{}");
    dcs_client_stop(f.c, f.now);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "shutdown"), 1);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_CLOSED);
    fx_fini(&f);
}

/* Found by fuzz/ (regressions/session): in STOPPING the heartbeat timer
 * stayed in the deadline but was never handled; an ended connection got a
 * close notice written on it. */
Test(client, stopping_handles_its_deadlines_and_writes_nothing_after_ended)
{
    struct fx f;
    dcs_ms d;
    size_t mark;
    fx_init(&f, NULL);
    fx_connect(&f);
    fx_advance(&f, f.now + 9999); /* the first heartbeat is due in 1 ms */
    fx_send(&f, "last", "{}");
    dcs_client_stop(f.c, f.now);
    fx_drain_opt(&f, 0); /* "last" stays in flight: the client is STOPPING */
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_STOPPING);
    d = dcs_client_deadline(f.c);
    f.now = d;
    fx_drain_opt(&f, 0);
    cr_assert_gt(dcs_client_deadline(f.c), d, "a deadline in STOPPING that is never handled");
    mark = f.n;
    dcs_client_ended(f.c, f.now);
    fx_drain_opt(&f, 0);
    cr_assert_eq(fx_find(&f, mark, DCS_ACT_WRITE, NULL), -1, "nothing is written on an ended connection");
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_CLOSED);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */

Test(client, every_allocation_may_fail)
{
    long k;
    for (k = 1; k < 400; k++) {
        dcs_client_config cfg;
        test_alloc ta;
        dcs_client *c;
        struct fx f;
        dcs_action a;
        int i;
        test_alloc_init(&ta, k);
        dcs_client_config_init(&cfg);
        memset(&f, 0, sizeof f);
        f.u = 0.5;
        cfg.rng.uniform = fx_uniform;
        cfg.rng.bytes = fx_bytes;
        cfg.rng.ud = &f;
        cfg.allocator = &ta.a;
        c = dcs_client_new(&cfg, NULL);
        if (c) {
            dcs_envelope e;
            memset(&e, 0, sizeof e);
            e.type = S("message");
            e.key = S("k");
            e.payload = S("{}");
            dcs_client_send(c, 1, &e, NULL);
            dcs_client_start(c, 1);
            while (dcs_client_next(c, 1, &a))
                ;
            dcs_client_connect_result(c, 1, DCS_CONNECT_OK, -1);
            for (i = 0; i < 3; i++)
                dcs_client_send(c, 1, &e, NULL);
            while (dcs_client_next(c, 1, &a))
                ;
            dcs_client_input(c, 1, PROGRESS("x"), strlen(PROGRESS("x")));
            while (dcs_client_next(c, 1, &a))
                ;
            dcs_client_ended(c, 2);
            while (dcs_client_next(c, 2, &a))
                ;
            dcs_client_free(c);
        }
        cr_assert_eq(ta.live, 0, "fail_at=%ld leaked %ld blocks", k, ta.live);
        if (!ta.failed)
            break;
    }
}

/* ------------------------------------------------------------------------ */
/* 10.2 Registry                                                             */

static void short_idle(dcs_client_config *c)
{
    c->s.auth_idle = 1000;
    c->s.auth_sweep = 500;
    c->s.auth_active = 300;
    c->s.heartbeat_timeout = 100000;
}

Test(client, registry_entry_and_idle_sweep)
{
    struct fx f;
    dcs_client_registry_entry e;
    dcs_ms t0;
    fx_init(&f, short_idle);
    dcs_client_registry(f.c, f.now, &e);
    cr_assert_not(e.present, "no entry before OPEN");
    fx_connect(&f);
    t0 = f.now;
    dcs_client_registry(f.c, f.now, &e);
    cr_assert(e.present && e.active);
    cr_assert_str_eq(e.id, "external-crawler");
    cr_assert_eq(e.connected_at, 1735930800000LL);
    fx_advance(&f, t0 + 300);
    dcs_client_registry(f.c, f.now, &e);
    cr_assert(e.present && !e.active, "stale after DCS_T_AUTH_ACTIVE");
    fx_advance(&f, t0 + 999);
    cr_assert_eq(dcs_client_state(f.c), DCS_CLIENT_OPEN);
    fx_advance(&f, t0 + 1000); /* the sweep at 1000 finds it idle for 1000 ms */
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "auth-idle"), 0);
    dcs_client_registry(f.c, f.now, &e);
    cr_assert_not(e.present);
    fx_fini(&f);
}
