/* test_server.c - the server state machine (spec 9, 10.1-10.3, 13.1) on a
 * fake clock with injected randomness. Each test cites the rule it checks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/server.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */

struct rec {
    int kind, level;
    char reason[64], category[48], text[320], rid[64], key[64];
    char *data; /* WRITE/DROP bytes; DELIVER/RESULT the message; NUL-terminated */
    uint64_t id, conn;
    unsigned flags;
};

struct fx {
    dcs_server *s;
    dcs_ms now;
    struct rec *r;
    size_t n, cap;
    test_alloc ta;
    int ack;                    /* acknowledge writes as they are handed out */
    const char *nonce_hex;      /* what rng.bytes returns for a nonce ... */
    int nonce_left;             /* ... this many times; then distinct bytes */
    unsigned counter;
};

#define B6_SECRET "k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa"
#define B6_NONCE "e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c"
#define B6_HMAC "b850465c891badd1d9b0fc42f9a82fc2a13b7e3ff1c0f46b90433091b2805c55"
#define WALL0 1735930800000LL
#define UID 1000

static int hexv(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

static void fx_bytes(void *ud, void *buf, size_t n)
{
    struct fx *f = ud;
    unsigned char *b = buf;
    size_t i;
    if (n == DCS_NONCE_BYTES && f->nonce_hex && f->nonce_left > 0) {
        f->nonce_left--;
        for (i = 0; i < n; i++)
            b[i] = (unsigned char)(hexv(f->nonce_hex[2 * i]) << 4 | hexv(f->nonce_hex[2 * i + 1]));
        return;
    }
    f->counter++;
    for (i = 0; i < n; i++)
        b[i] = (unsigned char)(f->counter * 31u + i);
}

static double fx_uniform(void *ud)
{
    (void)ud;
    return 0.5;
}

static void fx_config(struct fx *f, dcs_server_config *cfg)
{
    dcs_server_config_init(cfg);
    cfg->own_uid = UID;
    cfg->rng.bytes = fx_bytes;
    cfg->rng.uniform = fx_uniform;
    cfg->rng.ud = f;
    cfg->wall_offset = WALL0 - 1000;
    cfg->allocator = &f->ta.a;
}

static void fx_init(struct fx *f, void (*tweak)(dcs_server_config *))
{
    dcs_server_config cfg;
    memset(f, 0, sizeof *f);
    f->now = 1000;
    f->ack = 1;
    test_alloc_init(&f->ta, 0);
    fx_config(f, &cfg);
    if (tweak)
        tweak(&cfg);
    f->s = dcs_server_new(&cfg, NULL);
    cr_assert_not_null(f->s);
}

static void fx_fini(struct fx *f)
{
    size_t i;
    dcs_server_free(f->s);
    for (i = 0; i < f->n; i++)
        free(f->r[i].data);
    free(f->r);
    cr_assert_eq(f->ta.live, 0, "the server leaked %ld blocks", f->ta.live);
}

static char *dup_slice(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void fx_drain(struct fx *f)
{
    dcs_action a;
    while (dcs_server_next(f->s, f->now, &a)) {
        struct rec *r;
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 256;
            f->r = realloc(f->r, f->cap * sizeof *f->r);
        }
        r = &f->r[f->n++];
        memset(r, 0, sizeof *r);
        r->kind = a.kind;
        r->id = a.id;
        r->conn = a.conn;
        r->flags = a.flags;
        r->level = a.level;
        if (a.reason)
            snprintf(r->reason, sizeof r->reason, "%s", a.reason);
        if (a.category)
            snprintf(r->category, sizeof r->category, "%s", a.category);
        if (a.kind == DCS_ACT_LOG)
            snprintf(r->text, sizeof r->text, "%s", a.text);
        if (a.kind == DCS_ACT_WRITE || a.kind == DCS_ACT_DROP)
            r->data = dup_slice(a.data.ptr, a.data.len);
        if ((a.kind == DCS_ACT_DELIVER || a.kind == DCS_ACT_RESULT) && a.msg) {
            r->data = dup_slice(a.msg->raw.ptr, a.msg->raw.len);
            snprintf(r->key, sizeof r->key, "%.*s", (int)a.msg->key.len, a.msg->key.ptr);
        }
        if (a.kind == DCS_ACT_RESULT)
            snprintf(r->rid, sizeof r->rid, "%.*s", (int)a.data.len, a.data.ptr);
        if (a.kind == DCS_ACT_OPEN)
            snprintf(r->key, sizeof r->key, "%.*s", (int)a.peer_id.len, a.peer_id.ptr);
        if (a.kind == DCS_ACT_WRITE && f->ack)
            dcs_server_written(f->s, f->now, a.conn, a.id);
    }
}

/* Advance the fake clock to t, handling every deadline on the way. */
static void fx_advance(struct fx *f, dcs_ms t)
{
    for (;;) {
        dcs_ms d;
        fx_drain(f);
        d = dcs_server_deadline(f->s);
        if (d > t)
            break;
        f->now = d;
        fx_drain(f);
        cr_assert(dcs_server_deadline(f->s) > d, "a deadline at %lld was not handled",
                  (long long)d);
    }
    f->now = t;
    fx_drain(f);
}

/* Index of the first record of kind (on conn, if not 0) at or after from
 * whose data contains needle or whose reason is needle; -1 if none. */
static long fx_find_on(struct fx *f, size_t from, int kind, uint64_t conn, const char *needle)
{
    size_t i;
    for (i = from; i < f->n; i++)
        if (f->r[i].kind == kind && (!conn || f->r[i].conn == conn) &&
            (!needle || (f->r[i].data && strstr(f->r[i].data, needle)) ||
             strcmp(f->r[i].reason, needle) == 0))
            return (long)i;
    return -1;
}

static long fx_find(struct fx *f, size_t from, int kind, const char *needle)
{
    return fx_find_on(f, from, kind, 0, needle);
}

static size_t fx_count_on(struct fx *f, size_t from, int kind, uint64_t conn, const char *needle)
{
    size_t n = 0;
    long i = (long)from - 1;
    while ((i = fx_find_on(f, (size_t)(i + 1), kind, conn, needle)) >= 0)
        n++;
    return n;
}

static size_t fx_count(struct fx *f, size_t from, int kind, const char *needle)
{
    return fx_count_on(f, from, kind, 0, needle);
}

static int fx_accept_as(struct fx *f, uint64_t conn, int64_t uid, int64_t pid)
{
    int rc = dcs_server_accept(f->s, f->now, conn, uid, pid, 100);
    fx_drain(f);
    return rc;
}

static void fx_accept(struct fx *f, uint64_t conn)
{
    cr_assert_eq(fx_accept_as(f, conn, UID, 4242), 0);
}

static void fx_input(struct fx *f, uint64_t conn, const char *s)
{
    cr_assert_eq(dcs_server_input(f->s, f->now, conn, s, strlen(s)), 0);
    fx_drain(f);
}

static uint64_t C(struct fx *f, const char *name)
{
    return dcs_server_counter(f->s, name);
}

static dcs_slice S(const char *s)
{
    dcs_slice r = {s, s ? strlen(s) : 0};
    return r;
}

static dcs_envelope ENV(const char *type, const char *key, const char *dest, const char *payload)
{
    dcs_envelope e;
    memset(&e, 0, sizeof e);
    e.type = S(type);
    e.key = S(key);
    e.destination = S(dest);
    if (payload)
        e.payload = S(payload);
    return e;
}

#define SID "external-crawler"
#define MSG(origin, dest, type, key, payload)                                                      \
    "{\"origin\":\"" origin "\",\"destination\":\"" dest "\",\"type\":\"" type "\",\"key\":\"" key \
    "\",\"payload\":" payload ",\"timestamp\":1}"
#define CLI(type, key, payload) MSG("web-server", SID, type, key, payload)
#define REGISTER_AS(id)                                                                            \
    MSG(id, SID, "command", "register", "{\"id\":\"" id "\",\"pid\":4242,\"type\":\"copilot-study\"}")
#define REGISTER REGISTER_AS("web-server")
#define HB CLI("heartbeat", "heartbeat", "{}")

static void fx_registered(struct fx *f, uint64_t conn)
{
    size_t mark = f->n;
    fx_accept(f, conn);
    fx_input(f, conn, REGISTER);
    cr_assert_geq(fx_find_on(f, mark, DCS_ACT_OPEN, conn, NULL), 0, "conn %llu did not register",
                  (unsigned long long)conn);
}

/* A request and its requestId (read back from the written message). */
static uint64_t fx_request(struct fx *f, uint64_t conn, const char *type, const char *key,
                           const char *payload, char rid[64])
{
    dcs_envelope e = ENV(type, key, NULL, payload);
    uint64_t req = 0;
    size_t mark = f->n;
    long w;
    const char *p;
    cr_assert_eq(dcs_server_request(f->s, f->now, conn, NULL, &e, &req), 0);
    fx_drain(f);
    w = fx_find_on(f, mark, DCS_ACT_WRITE, conn, "\"requestId\":\"");
    cr_assert_geq(w, 0, "the request was not written");
    p = strstr(f->r[w].data, "\"requestId\":\"") + 13;
    snprintf(rid, 64, "%.*s", (int)(strchr(p, '"') - p), p);
    return req;
}

/* ------------------------------------------------------------------------ */
/* 9.2 Register first, within a deadline                                     */

Test(server, register_one_ms_before_the_deadline_is_accepted)
{
    struct fx f;
    long o;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_advance(&f, f.now + 4999);
    fx_input(&f, 1, REGISTER);
    o = fx_find(&f, 0, DCS_ACT_OPEN, NULL);
    cr_assert_geq(o, 0, "9.2: registered at accept + deadline - 1");
    cr_assert_str_eq(f.r[o].key, "web-server", "the id comes from the payload");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0);
    fx_advance(&f, f.now + 1000);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "no register-timeout once registered");
    cr_assert_eq(C(&f, "registered"), 1);
    fx_fini(&f);
}

Test(server, register_timeout_at_exactly_the_deadline)
{
    struct fx f;
    long cl, notice;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_advance(&f, f.now + 4999);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.2: still open at deadline - 1");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, NULL), 0, "9.2: nothing written before register");
    fx_advance(&f, f.now + 1);
    cl = fx_find(&f, 0, DCS_ACT_CLOSE, "register-timeout");
    notice = fx_find(&f, 0, DCS_ACT_WRITE, "\"key\":\"close\"");
    cr_assert_geq(cl, 0, "9.2: closed at the deadline");
    cr_assert_geq(notice, 0, "7.15: a close notice first");
    cr_assert_lt(notice, cl);
    cr_assert(strstr(f.r[notice].data, "\"reason\":\"register-timeout\""));
    cr_assert_eq(f.r[cl].flags, DCS_CLOSE_AFTER_WRITES);
    cr_assert_eq(C(&f, "register-timeout"), 1);
    /* the machine has forgotten the connection */
    cr_assert_eq(dcs_server_input(f.s, f.now, 1, REGISTER, strlen(REGISTER)), 0);
    fx_drain(&f);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    fx_fini(&f);
}

Test(server, another_message_first_is_register_expected)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_input(&f, 1, CLI("message", "hello", "{}") REGISTER);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "register-expected"), 0, "9.2");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"reason\":\"register-expected\""), 0);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 0, "9.2: nothing delivered");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0, "the register after it is not read");
    cr_assert_eq(C(&f, "register-expected"), 1);
    fx_fini(&f);
}

Test(server, decode_errors_before_register_are_reported_but_do_not_close)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_input(&f, 1, "xyz {\"origin\":1} ");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.2: errors are not a first message");
    cr_assert_eq(C(&f, "decode-errors"), 2);
    cr_assert_eq(C(&f, "garbage"), 1);
    cr_assert_eq(C(&f, "wrong_type"), 1);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "garbage"), 0, "reported");
    fx_input(&f, 1, REGISTER);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    fx_fini(&f);
}

Test(server, register_that_does_not_fit_is_register_invalid)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_input(&f, 1, CLI("command", "register", "{\"id\":\"\",\"pid\":1,\"type\":\"t\"}"));
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "register-invalid"), 0, "9.2, 7.3: empty id");
    fx_accept(&f, 2);
    fx_input(&f, 2, CLI("command", "register", "{\"id\":\"w\",\"pid\":\"1\",\"type\":\"t\"}"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "register-invalid"), 0, "pid not a number");
    cr_assert_eq(C(&f, "register-invalid"), 2);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "register-invalid"), 0);
    fx_fini(&f);
}

Test(server, a_second_register_is_counted_and_ignored)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_input(&f, 1, REGISTER_AS("someone-else"));
    cr_assert_eq(C(&f, "register-repeated"), 1, "9.2");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_OPEN, NULL), 1);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0);
    {
        dcs_registry_entry e;
        cr_assert_eq(dcs_server_registry(f.s, f.now, &e, 1), 1);
        cr_assert_eq(e.id.len, strlen("web-server"), "the id does not change");
    }
    fx_fini(&f);
}

Test(server, origin_differing_from_id_is_logged_and_the_id_is_used)
{
    struct fx f;
    long o;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_input(&f, 1, MSG("other", SID, "command", "register",
                        "{\"id\":\"web-server\",\"pid\":1,\"type\":\"x\"}"));
    o = fx_find(&f, 0, DCS_ACT_OPEN, NULL);
    cr_assert_geq(o, 0);
    cr_assert_str_eq(f.r[o].key, "web-server", "7.3: the server uses id");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "origin-mismatch"), 0);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 10.1 Peer credentials, 9.1 accepting                                      */

Test(server, peer_uid_refused_without_reading_or_writing)
{
    struct fx f;
    long l;
    fx_init(&f, NULL);
    cr_assert_eq(fx_accept_as(&f, 7, 0, 0), DCS_SERVER_REFUSED, "10.1: not even uid 0");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "peer-uid-refused"), 0);
    cr_assert_eq(f.r[fx_find(&f, 0, DCS_ACT_CLOSE, NULL)].flags, 0, "closed at once");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, NULL), 0, "10.1: nothing written");
    l = fx_find(&f, 0, DCS_ACT_LOG, "peer-uid-refused");
    cr_assert_geq(l, 0);
    cr_assert_str_eq(f.r[l].category, DCS_CAT_AUTH);
    cr_assert(strstr(f.r[l].text, "pid unknown uid 0 gid 100"), "3.3: %s", f.r[l].text);
    cr_assert_eq(C(&f, "peer-uid-refused"), 1);
    /* nothing it sends is read */
    cr_assert_eq(dcs_server_input(f.s, f.now, 7, REGISTER, strlen(REGISTER)), 0);
    fx_drain(&f);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 0);
    fx_fini(&f);
}

static void allow_2000(dcs_server_config *c)
{
    static const int64_t uids[] = {2000};
    c->allowed_uids = uids;
    c->n_allowed_uids = 1;
}

Test(server, allow_list_and_unreadable_credentials)
{
    struct fx f;
    long l;
    fx_init(&f, allow_2000);
    cr_assert_eq(fx_accept_as(&f, 1, 2000, 55), 0, "10.1: an allow-listed uid");
    cr_assert_eq(fx_accept_as(&f, 2, UID, -1), 0, "own uid; pid unknown");
    cr_assert_eq(fx_accept_as(&f, 3, 3000, 1), DCS_SERVER_REFUSED);
    cr_assert_eq(fx_accept_as(&f, 4, -1, 1), DCS_SERVER_REFUSED, "3.3");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "peer-credentials-unavailable"), 0);
    l = fx_find(&f, 0, DCS_ACT_LOG, "peer-uid-refused");
    cr_assert(strstr(f.r[l].text, "pid 1 uid 3000 gid 100"), "%s", f.r[l].text);
    cr_assert_eq(dcs_server_accept(f.s, f.now, 1, UID, 1, 1), DCS_EINVAL, "a known conn id");
    cr_assert_eq(dcs_server_accept(f.s, f.now, 0, UID, 1, 1), DCS_EINVAL, "conn 0");
    fx_fini(&f);
}

static void three_connections(dcs_server_config *c)
{
    c->s.max_connections = 3;
}

Test(server, connections_beyond_the_maximum_are_closed)
{
    struct fx f;
    fx_init(&f, three_connections);
    fx_accept(&f, 1);
    fx_accept(&f, 2);
    fx_accept(&f, 3);
    cr_assert_eq(fx_accept_as(&f, 4, UID, 1), DCS_SERVER_REFUSED, "9.1");
    {
        /* 7.15: the refusal is the server's choice, so a close notice says
         * why, and the close waits for it */
        long w = fx_find_on(&f, 0, DCS_ACT_WRITE, 4, "\"reason\":\"too-many-connections\"");
        long cl = fx_find_on(&f, 0, DCS_ACT_CLOSE, 4, "too-many-connections");
        cr_assert_geq(w, 0);
        cr_assert_gt(cl, w);
        cr_assert_eq(f.r[cl].flags, DCS_CLOSE_AFTER_WRITES);
        cr_assert(strstr(f.r[w].data, "\"key\":\"close\"") && strstr(f.r[w].data, "\"destination\":\"*\""));
    }
    cr_assert_eq(C(&f, "too-many-connections"), 1);
    dcs_server_ended(f.s, f.now, 2);
    fx_drain(&f);
    cr_assert_eq(fx_accept_as(&f, 5, UID, 1), 0, "room again after one ended");
    cr_assert_eq(dcs_server_get_stats(f.s)->connections, 3);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 10.3 Shared-secret handshake (Appendix B.6)                               */

static void with_secret(dcs_server_config *c)
{
    c->secret = (const unsigned char *)B6_SECRET;
    c->secret_len = 32;
}

static void secret_short_nonce(dcs_server_config *c)
{
    with_secret(c);
    c->s.nonce_lifetime = 1000;
}

#define B6_REGISTER_WITH(id, nonce, hmac)                                                          \
    "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\","     \
    "\"key\":\"register\",\"payload\":{\"id\":\"" id "\",\"pid\":4242,\"type\":\"copilot-study\"," \
    "\"nonce\":\"" nonce "\",\"hmac\":\"" hmac "\"},\"timestamp\":1735930800004}"
#define B6_REGISTER B6_REGISTER_WITH("web-server", B6_NONCE, B6_HMAC)

static void fx_secret(struct fx *f, void (*tweak)(dcs_server_config *), int b6_nonces)
{
    fx_init(f, tweak);
    f->nonce_hex = B6_NONCE;
    f->nonce_left = b6_nonces;
}

Test(server, challenge_first_then_the_b6_register_is_accepted)
{
    struct fx f;
    fx_secret(&f, with_secret, 1);
    fx_accept(&f, 1);
    cr_assert_eq(f.r[fx_find(&f, 0, DCS_ACT_WRITE, NULL)].kind, DCS_ACT_WRITE);
    cr_assert_str_eq(f.r[fx_find(&f, 0, DCS_ACT_WRITE, NULL)].data,
                     "{\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"command\","
                     "\"key\":\"challenge\",\"payload\":{\"nonce\":\"" B6_NONCE
                     "\",\"alg\":\"HMAC-SHA256\"},\"timestamp\":1735930800000}",
                     "10.3.2, B.6: the challenge is the first message");
    fx_advance(&f, f.now + 4);
    fx_input(&f, 1, B6_REGISTER);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0, "10.3.4: accepted");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_CLOSE, NULL), 0);
    cr_assert_eq(dcs_server_authorized(f.s, 1), 1);
    fx_fini(&f);
}

Test(server, register_without_mac_is_hmac_missing)
{
    struct fx f;
    long l;
    fx_secret(&f, with_secret, 1);
    fx_accept(&f, 1);
    fx_input(&f, 1, REGISTER);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "hmac-missing"), 0, "10.3.4 step 2, 10.3.6");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"reason\":\"hmac-missing\""), 0);
    l = fx_find(&f, 0, DCS_ACT_LOG, "hmac-missing");
    cr_assert_str_eq(f.r[l].category, DCS_CAT_AUTH);
    cr_assert(strstr(f.r[l].text, "pid 4242 uid 1000"), "%s", f.r[l].text);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 0, "never in the registry");
    fx_fini(&f);
}

Test(server, the_b6_register_on_another_connection_is_hmac_replayed)
{
    struct fx f;
    fx_secret(&f, with_secret, 1);
    fx_accept(&f, 1); /* gets the B.6 nonce */
    fx_accept(&f, 2); /* gets another one */
    fx_input(&f, 2, B6_REGISTER);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "hmac-replayed"), 0, "B.6, 10.3.4 step 3");
    fx_input(&f, 1, B6_REGISTER);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_OPEN, 1, NULL), 0, "the nonce's own connection");
    cr_assert_eq(C(&f, "hmac-replayed"), 1);
    fx_fini(&f);
}

Test(server, nonce_lifetime_one_ms_either_side)
{
    struct fx f;
    fx_secret(&f, secret_short_nonce, 2);
    fx_accept(&f, 1);
    fx_advance(&f, f.now + 999);
    fx_input(&f, 1, B6_REGISTER);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_OPEN, 1, NULL), 0, "10.3.2: within the lifetime");
    fx_accept(&f, 2);
    fx_advance(&f, f.now + 1000);
    fx_input(&f, 2, B6_REGISTER);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "hmac-stale"), 0, "10.3.4 step 4");
    cr_assert_eq(C(&f, "hmac-stale"), 1);
    fx_fini(&f);
}

Test(server, wrong_mac_is_hmac_invalid)
{
    struct fx f;
    fx_secret(&f, with_secret, 3);
    fx_accept(&f, 1);
    fx_input(&f, 1, B6_REGISTER_WITH("copilot-study", B6_NONCE, B6_HMAC));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 1, "hmac-invalid"), 0, "B.6: another id");
    fx_accept(&f, 2);
    fx_input(&f, 2, B6_REGISTER_WITH("web-server", B6_NONCE,
                                     "B850465C891BADD1D9B0FC42F9A82FC2A13B7E3FF1C0F46B90433091B2805C55"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "hmac-invalid"), 0, "upper case hex");
    fx_accept(&f, 3);
    fx_input(&f, 3, B6_REGISTER_WITH("copilot-study", B6_NONCE,
                                     "c4ab0e09ef527a059e9f8a2ca9cad377c6a63c1022f461068af3d552255a4d8e"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_OPEN, 3, NULL), 0, "B.6: the right MAC for that id");
    cr_assert_eq(C(&f, "hmac-invalid"), 2);
    fx_fini(&f);
}

Test(server, verification_order_is_that_of_10_3_4)
{
    struct fx f;
    fx_secret(&f, with_secret, 0); /* no connection gets the B.6 nonce */
    fx_accept(&f, 1);              /* 1 before 2: misfit and no MAC */
    fx_input(&f, 1, CLI("command", "register", "{\"id\":\"web-server\",\"pid\":null,\"type\":\"t\"}"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 1, "register-invalid"), 0);
    fx_accept(&f, 2); /* 2 before 3: a nonce but no hmac */
    fx_input(&f, 2, CLI("command", "register",
                        "{\"id\":\"web-server\",\"pid\":1,\"type\":\"t\",\"nonce\":\"" B6_NONCE "\"}"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "hmac-missing"), 0);
    fx_accept(&f, 3); /* 3 before 5: foreign nonce and wrong MAC */
    fx_input(&f, 3, B6_REGISTER_WITH("web-server", B6_NONCE, "00"));
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 3, "hmac-replayed"), 0);
    fx_fini(&f);
}

Test(server, lenient_mode_and_a_secret_are_refused_at_creation)
{
    struct fx f;
    dcs_server_config cfg;
    char why[160];
    int err = 0;
    memset(&f, 0, sizeof f);
    test_alloc_init(&f.ta, 0);
    fx_config(&f, &cfg);
    with_secret(&cfg);
    cfg.lenient = 1;
    cr_assert_eq(dcs_server_config_check(&cfg, why, sizeof why), DCS_EINVAL, "9.2, 12.3");
    cr_assert(strstr(why, "lenient"), "%s", why);
    cr_assert_null(dcs_server_new(&cfg, &err));
    cr_assert_eq(err, DCS_EINVAL);
    cfg.lenient = 0;
    cfg.s.server_heartbeat = 15000; /* not less than half of 30000 */
    cr_assert_eq(dcs_server_config_check(&cfg, why, sizeof why), DCS_EINVAL, "12.3");
    cr_assert(strstr(why, "DCS_T_SERVER_HEARTBEAT"), "%s", why);
    cr_assert_eq(f.ta.live, 0);
}

/* ------------------------------------------------------------------------ */
/* 9.3 Heartbeats and liveness                                               */

Test(server, heartbeats_every_interval_after_register_only)
{
    struct fx f;
    size_t mark;
    fx_init(&f, NULL);
    fx_accept(&f, 2); /* never registers: gets no heartbeat */
    fx_registered(&f, 1);
    mark = f.n;
    fx_advance(&f, f.now + 4999);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "\"type\":\"heartbeat\""), 0);
    fx_advance(&f, f.now + 1);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, "\"type\":\"heartbeat\""), 1, "9.3");
    cr_assert(strstr(f.r[fx_find(&f, mark, DCS_ACT_WRITE, "heartbeat")].data,
                     "\"destination\":\"web-server\""),
              "2.3: addressed to the client's id");
    fx_input(&f, 1, HB);
    fx_advance(&f, f.now + 5000);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, "\"type\":\"heartbeat\""), 2);
    cr_assert_eq(fx_count_on(&f, 0, DCS_ACT_WRITE, 2, "\"type\":\"heartbeat\""), 0,
                 "9.2: nothing but a close notice before register");
    cr_assert_eq(C(&f, "heartbeats-out"), 2);
    fx_fini(&f);
}

Test(server, heartbeat_timeout_at_exactly_the_deadline)
{
    struct fx f;
    dcs_ms t;
    long cl;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    t = f.now + 12345;
    fx_advance(&f, t);
    fx_input(&f, 1, HB);
    fx_advance(&f, t + 29999);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "8.5: open at t + timeout - 1");
    fx_advance(&f, t + 30000);
    cl = fx_find(&f, 0, DCS_ACT_CLOSE, "heartbeat-timeout");
    cr_assert_geq(cl, 0, "9.3: closed at t + timeout");
    cr_assert_eq(f.r[cl].flags, 0, "at once");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_WRITE, "\"key\":\"close\""), 0,
                 "7.15: no close notice for heartbeat-timeout");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOST, "heartbeat-timeout"), 0);
    cr_assert_eq(C(&f, "heartbeat-timeout"), 1);
    fx_fini(&f);
}

Test(server, any_valid_message_counts_for_liveness_errors_do_not)
{
    struct fx f;
    dcs_ms t;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    t = f.now + 20000;
    fx_advance(&f, t);
    fx_input(&f, 1, MSG("web-server", "nobody", "message", "x", "{}")); /* dropped, but alive */
    fx_advance(&f, t + 29999);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "8.5: any message");
    fx_input(&f, 1, "}}}{\"origin\":1}");
    fx_advance(&f, t + 30000);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "heartbeat-timeout"), 0,
                  "8.5: decoding errors do not move the deadline");
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 9.2, 9.3 Lenient mode                                                     */

static void lenient(dcs_server_config *c)
{
    c->lenient = 1;
}

Test(server, lenient_mode_tolerates_and_logs_each_deviation_once)
{
    struct fx f;
    size_t mark;
    long o;
    fx_init(&f, lenient);
    fx_accept(&f, 1);
    o = fx_find(&f, 0, DCS_ACT_OPEN, NULL);
    cr_assert_geq(o, 0, "9.2: registered from accept");
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 1, "in the registry at accept");
    fx_input(&f, 1, CLI("message", "early", "{}") CLI("message", "early2", "{}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 2, "delivered before register");
    cr_assert_eq(C(&f, "register-late"), 1, "logged once per connection");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "register-late"), 0);
    cr_assert_eq(f.r[fx_find(&f, 0, DCS_ACT_LOG, "register-late")].level, DCS_LOG_WARN);
    o = fx_find(&f, (size_t)o + 1, DCS_ACT_OPEN, NULL);
    cr_assert_geq(o, 0);
    cr_assert_str_eq(f.r[o].key, "web-server", "the first origin is the id until register");
    fx_advance(&f, f.now + 5000);
    cr_assert_eq(C(&f, "register-missing"), 1, "no register within the deadline: logged");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "not closed");
    cr_assert_geq(fx_count(&f, 0, DCS_ACT_WRITE, "\"type\":\"heartbeat\""), 1);
    mark = f.n;
    fx_advance(&f, f.now + 100000);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.3: no close for silence");
    cr_assert_eq(C(&f, "client-silent"), 1, "9.3: logged once");
    fx_input(&f, 1, MSG("web-server", "elsewhere", "message", "x", "{}"));
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_DELIVER, NULL), 1, "wrong destination accepted");
    cr_assert_eq(C(&f, "wrong-destination"), 1);
    fx_input(&f, 1, REGISTER_AS("crawler-ui"));
    o = fx_find(&f, mark, DCS_ACT_OPEN, NULL);
    cr_assert_geq(o, 0);
    cr_assert_str_eq(f.r[o].key, "crawler-ui", "a late register names the client");
    cr_assert_eq(C(&f, "register-late"), 1);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 10.2 Registry                                                             */

static void long_liveness(dcs_server_config *c)
{
    c->s.heartbeat_timeout = 200000;
}

Test(server, registry_entry_fields_and_status)
{
    struct fx f;
    dcs_registry_entry e;
    fx_init(&f, long_liveness);
    cr_assert_eq(dcs_server_accept(f.s, f.now, 9, UID, 0, 100), 0);
    fx_drain(&f);
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 0, "not before register");
    cr_assert_eq(dcs_server_authorized(f.s, 9), 0, "10.4: not authorized before register");
    fx_advance(&f, f.now + 10);
    fx_input(&f, 9, REGISTER);
    fx_advance(&f, f.now + 59999);
    cr_assert_eq(dcs_server_registry(f.s, f.now, &e, 1), 1);
    cr_assert_eq(e.conn, 9);
    cr_assert_eq(e.uid, UID);
    cr_assert_eq(e.pid, 0, "unknown pid");
    cr_assert_eq(e.connected_at, WALL0, "wall clock of the connection");
    cr_assert_eq(e.last_activity, WALL0 + 10);
    cr_assert_eq(e.uptime, 60009);
    cr_assert_eq(e.idle, 59999);
    cr_assert_eq(e.active, 1, "10.2: active below DCS_T_AUTH_ACTIVE");
    dcs_server_registry(f.s, f.now + 1, &e, 1);
    cr_assert_eq(e.active, 0, "stale at DCS_T_AUTH_ACTIVE");
    cr_assert_eq(dcs_server_authorized(f.s, 9), 1);
    dcs_server_ended(f.s, f.now, 9);
    fx_drain(&f);
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 0, "removed when it ends");
    cr_assert_eq(dcs_server_authorized(f.s, 9), 0);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "unregistered"), 0);
    fx_fini(&f);
}

Test(server, idle_entries_are_swept_within_the_window)
{
    struct fx f;
    size_t mark;
    dcs_ms t0;
    fx_init(&f, lenient);
    t0 = f.now;
    fx_accept(&f, 1); /* the sweep runs every 60000 ms from here */
    fx_advance(&f, t0 + 1000);
    fx_input(&f, 1, HB); /* last activity: t0 + 1000; idle from t0 + 301000 */
    fx_advance(&f, t0 + 359999);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "10.2: kept until the next sweep");
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 1);
    mark = f.n;
    fx_advance(&f, t0 + 360000);
    cr_assert_geq(fx_find(&f, mark, DCS_ACT_CLOSE, "auth-idle"), 0,
                  "10.2: removed between idle and idle + sweep");
    cr_assert_geq(fx_find(&f, mark, DCS_ACT_WRITE, "\"reason\":\"auth-idle\""), 0);
    cr_assert_eq(dcs_server_registry(f.s, f.now, NULL, 0), 0);
    cr_assert_eq(C(&f, "auth-idle"), 1);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 9.6 Flood control                                                         */

static char *repeat(const char *s, size_t n)
{
    size_t len = strlen(s), i;
    char *b = malloc(len * n + 1);
    for (i = 0; i < n; i++)
        memcpy(b + i * len, s, len);
    b[len * n] = '\0';
    return b;
}

Test(server, burst_of_2000_then_refusal_at_the_next_message)
{
    struct fx f;
    char *burst = repeat(HB, 1999);
    fx_init(&f, NULL);
    fx_registered(&f, 1); /* the register takes the first token */
    fx_input(&f, 1, burst);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.6: 2000 messages at once");
    cr_assert_eq(C(&f, "messages-in"), 2000);
    fx_input(&f, 1, HB);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "flood-rate"), 0, "the 2001st");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\"reason\":\"flood-rate\""), 0);
    cr_assert_eq(C(&f, "flood-rate"), 1);
    free(burst);
    fx_fini(&f);
}

Test(server, bucket_refills_continuously_and_errors_take_tokens)
{
    struct fx f;
    char *burst = repeat(HB, 1998);
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_input(&f, 1, burst);
    fx_input(&f, 1, "x"); /* a decoding error takes the 2000th token */
    fx_advance(&f, f.now + 2);
    fx_input(&f, 1, HB HB); /* 2 ms at 1000 per second: 2 tokens */
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.6: refilled");
    fx_input(&f, 1, "{");
    fx_input(&f, 1, "}");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "flood-rate"), 0, "the error found the bucket empty");
    free(burst);
    fx_fini(&f);
}

static void slow_flood(dcs_server_config *c)
{
    c->s.flood_rate = 3; /* 3 per 1000 ms: one token every 333.3 ms */
    c->s.flood_burst = 2;
}

Test(server, refill_is_continuous_at_a_fractional_rate)
{
    struct fx f;
    dcs_ms t0;
    fx_init(&f, slow_flood);
    t0 = f.now;
    fx_registered(&f, 1);
    fx_registered(&f, 2);
    fx_input(&f, 1, HB); /* both buckets empty at t0 */
    fx_input(&f, 2, HB);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0);
    fx_advance(&f, t0 + 333);
    fx_input(&f, 1, HB);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 1, "flood-rate"), 0,
                  "9.6: 0.999 of a token is less than one");
    fx_advance(&f, t0 + 334);
    fx_input(&f, 2, HB);
    cr_assert_lt(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, NULL), 0, "1.002 tokens after 334 ms");
    fx_input(&f, 2, HB);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "flood-rate"), 0);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 9.4, 7.20 Requests and correlation                                        */

Test(server, replies_are_correlated_by_payload_then_envelope_request_id)
{
    struct fx f;
    char r1[64], r2[64], r3[64], in[512];
    uint64_t q1, q2, q3;
    long x;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    q1 = fx_request(&f, 1, "jobRequest", "request_jobs", NULL, r1);
    q2 = fx_request(&f, 1, "message", "TOKEN_REFRESH_REQUEST", "{\"providerId\":\"gitlab\"}", r2);
    q3 = fx_request(&f, 1, "jobRequest", "request_jobs", "{ \"max\" : 2 }", r3);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE,
                          "\"destination\":\"web-server\",\"type\":\"jobRequest\""),
                  0);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_WRITE, "\",\"max\" : 2 }"), 0, "members kept");
    /* TOKEN_REFRESH_RESPONSE: payload requestId */
    snprintf(in, sizeof in,
             CLI("message", "TOKEN_REFRESH_RESPONSE", "{\"requestId\":\"%s\",\"success\":false}"),
             r2);
    fx_input(&f, 1, in);
    x = fx_find(&f, 0, DCS_ACT_RESULT, NULL);
    cr_assert_geq(x, 0, "9.4");
    cr_assert_eq(f.r[x].id, q2);
    cr_assert_str_eq(f.r[x].reason, "reply");
    cr_assert_str_eq(f.r[x].rid, r2);
    cr_assert_str_eq(f.r[x].key, "TOKEN_REFRESH_RESPONSE");
    /* jobs_available: envelope requestId after timestamp (answers q3, not the older q1) */
    snprintf(in, sizeof in,
             "{\"origin\":\"web-server\",\"destination\":\"" SID "\",\"type\":\"jobResponse\","
             "\"key\":\"jobs_available\",\"payload\":[],\"timestamp\":1,\"requestId\":\"%s\"}",
             r3);
    fx_input(&f, 1, in);
    x = fx_find(&f, (size_t)x + 1, DCS_ACT_RESULT, NULL);
    cr_assert_eq(f.r[x].id, q3, "7.20: envelope requestId");
    /* jobs_error: payload requestId */
    snprintf(in, sizeof in, CLI("jobResponse", "jobs_error", "{\"error\":\"db\",\"requestId\":\"%s\"}"),
             r1);
    fx_input(&f, 1, in);
    x = fx_find(&f, (size_t)x + 1, DCS_ACT_RESULT, NULL);
    cr_assert_eq(f.r[x].id, q1);
    cr_assert_eq(C(&f, "replies"), 3);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 0, "replies come as RESULT");
    fx_fini(&f);
}

Test(server, uncorrelated_jobs_available_answers_the_oldest_request_jobs)
{
    struct fx f;
    char r1[64], r2[64], r3[64];
    uint64_t q1, q3;
    long x;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_request(&f, 1, "message", "TOKEN_REFRESH_REQUEST", "{\"providerId\":\"p\"}", r2);
    q1 = fx_request(&f, 1, "jobRequest", "request_jobs", "{}", r1);
    q3 = fx_request(&f, 1, "jobRequest", "request_jobs", "{}", r3);
    cr_assert_str_neq(r1, r3, "7.20: a fresh requestId each time");
    fx_input(&f, 1, CLI("jobResponse", "jobs_available", "[{\"taskId\":\"t-1\"}]"));
    x = fx_find(&f, 0, DCS_ACT_RESULT, NULL);
    cr_assert_eq(f.r[x].id, q1, "7.20, 9.4: the oldest request_jobs");
    fx_input(&f, 1, CLI("jobResponse", "jobs_error", "{\"error\":\"e\"}"));
    x = fx_find(&f, (size_t)x + 1, DCS_ACT_RESULT, NULL);
    cr_assert_eq(f.r[x].id, q3);
    fx_input(&f, 1, CLI("jobResponse", "jobs_available", "[]"));
    x = fx_find(&f, 0, DCS_ACT_DELIVER, "unmatched-reply");
    cr_assert_geq(x, 0, "9.4: no request_jobs pending: delivered as uncorrelated");
    cr_assert_eq(C(&f, "unmatched-reply"), 1);
    fx_fini(&f);
}

Test(server, unmatched_replies_are_reported_and_still_delivered)
{
    struct fx f;
    char r1[64], in[512];
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_request(&f, 1, "jobRequest", "request_jobs", NULL, r1);
    fx_input(&f, 1, CLI("message", "TOKEN_REFRESH_RESPONSE", "{\"requestId\":\"nope\",\"success\":false}"));
    snprintf(in, sizeof in,
             "{\"origin\":\"web-server\",\"destination\":\"" SID "\",\"type\":\"jobResponse\","
             "\"key\":\"jobs_available\",\"payload\":[{\"taskId\":\"t\"}],\"timestamp\":1,"
             "\"requestId\":\"unknown-%s\"}",
             r1);
    fx_input(&f, 1, in);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, "unmatched-reply"), 2, "9.4");
    cr_assert(strstr(f.r[fx_find(&f, 0, DCS_ACT_DELIVER, "taskId")].data, "\"taskId\":\"t\""),
              "jobs are not discarded");
    cr_assert_eq(C(&f, "unmatched-reply"), 2);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_RESULT, NULL), 0, "the request is still pending");
    fx_input(&f, 1, CLI("jobResponse", "jobs_available", "{}"));
    cr_assert_eq(C(&f, "payload_mismatch"), 1, "11.3: a reply that does not fit is dropped");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_RESULT, NULL), 0);
    fx_fini(&f);
}

Test(server, request_timeout_one_ms_either_side)
{
    struct fx f;
    char r[64];
    uint64_t q;
    dcs_ms t;
    long x;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    t = f.now;
    q = fx_request(&f, 1, "jobRequest", "request_jobs", NULL, r);
    fx_advance(&f, t + 29999);
    fx_input(&f, 1, HB);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_RESULT, NULL), 0, "9.4: still pending");
    fx_advance(&f, t + 30000);
    x = fx_find(&f, 0, DCS_ACT_RESULT, "request-timeout");
    cr_assert_geq(x, 0, "9.4: DCS_T_REQUEST_TIMEOUT");
    cr_assert_eq(f.r[x].id, q);
    cr_assert_eq(C(&f, "request-timeout"), 1);
    fx_input(&f, 1, CLI("jobResponse", "jobs_available", "[]"));
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_DELIVER, "unmatched-reply"), 0, "a late reply");
    fx_fini(&f);
}

Test(server, pending_requests_end_with_their_connection)
{
    struct fx f;
    char r[64];
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_request(&f, 1, "jobRequest", "request_jobs", NULL, r);
    fx_request(&f, 1, "message", "TOKEN_REFRESH_REQUEST", "{\"providerId\":\"p\"}", r);
    dcs_server_ended(f.s, f.now, 1);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_RESULT, "connection-closed"), 2, "9.4");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOST, "ended"), 0);
    cr_assert_eq(C(&f, "connection-closed"), 2);
    fx_fini(&f);
}

Test(server, pending_limit_per_connection)
{
    struct fx f;
    dcs_envelope e = ENV("jobRequest", "request_jobs", NULL, NULL);
    uint64_t q;
    size_t i, mark;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_registered(&f, 2);
    for (i = 0; i < 64; i++)
        cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), 0);
    fx_drain(&f);
    mark = f.n;
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_SERVER_PENDING_LIMIT, "9.6");
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, NULL), 0, "not written");
    cr_assert_eq(f.r[fx_find(&f, mark, DCS_ACT_LOG, "pending-limit")].conn, 1,
                 "reported against the connection");
    cr_assert_eq(C(&f, "pending-limit"), 1);
    cr_assert_eq(dcs_server_request(f.s, f.now, 2, NULL, &e, &q), 0, "other connections unaffected");
    fx_fini(&f);
}

Test(server, requests_need_a_registered_connection)
{
    struct fx f;
    dcs_envelope e = ENV("jobRequest", "request_jobs", NULL, NULL);
    uint64_t q;
    long l;
    fx_init(&f, NULL);
    cr_assert_eq(dcs_server_request(f.s, f.now, 0, NULL, &e, &q), DCS_SERVER_NO_CLIENT, "9.7");
    fx_accept(&f, 1);
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_SERVER_NO_CLIENT,
                 "not before register");
    fx_input(&f, 1, REGISTER);
    cr_assert_eq(dcs_server_request(f.s, f.now, 0, "someone", &e, &q), DCS_SERVER_NO_CLIENT);
    cr_assert_eq(C(&f, "no-client"), 3);
    cr_assert_eq(dcs_server_request(f.s, f.now, 0, "web-server", &e, &q), 0);
    e = ENV("command", "START_JOB", NULL, "{}");
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_EINVAL, "7.16: client to server");
    e = ENV("message", "TOKEN_REFRESH_REQUEST", NULL, "{\"providerId\":\"p\",\"requestId\":\"mine\"}");
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_EINVAL, "the machine names it");
    cr_assert_eq(dcs_server_get_stats(f.s)->drop_refused, 1, "counted");
    fx_drain(&f);
    l = fx_find(&f, 0, DCS_ACT_LOG, "invalid_argument");
    cr_assert_geq(l, 0, "and logged");
    cr_assert(strstr(f.r[l].text, "has a requestId already"), "with why: %s", f.r[l].text);
    e = ENV("message", "TOKEN_REFRESH_REQUEST", NULL, "{}");
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_EPAYLOAD, "7.10: providerId");
    e = ENV("jobRequest", "request_jobs", NULL, "[]");
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &e, &q), DCS_EINVAL);
    cr_assert_eq(dcs_server_get_stats(f.s)->drop_refused, 3, "each refusal counted");
    fx_fini(&f);
}

Test(server, request_goes_to_the_most_recently_registered_connection)
{
    struct fx f;
    dcs_envelope e = ENV("jobRequest", "request_jobs", NULL, NULL);
    uint64_t q;
    size_t mark;
    fx_init(&f, NULL);
    fx_registered(&f, 5);
    fx_registered(&f, 3);
    mark = f.n;
    cr_assert_eq(dcs_server_request(f.s, f.now, 0, "web-server", &e, &q), 0);
    fx_drain(&f);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 3, "request_jobs"), 1, "9.7");
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "request_jobs"), 1, "exactly one connection");
    fx_fini(&f);
}

Test(server, request_ids_are_unique_across_restarts)
{
    struct fx f, g;
    char a[64], b[64];
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_request(&f, 1, "jobRequest", "request_jobs", NULL, a);
    fx_init(&g, NULL);
    g.counter = 77; /* another process: other random bytes */
    dcs_server_free(g.s);
    {
        dcs_server_config cfg;
        fx_config(&g, &cfg);
        g.s = dcs_server_new(&cfg, NULL);
    }
    fx_registered(&g, 1);
    fx_request(&g, 1, "jobRequest", "request_jobs", NULL, b);
    cr_assert_str_neq(a, b, "7.20: a counter that restarts at 1 is not enough");
    cr_assert_eq(strlen(a), 18, "16 hex digits of randomness, '-', a counter: %s", a);
    fx_fini(&f);
    fx_fini(&g);
}

Test(server, generic_request_answered_by_a_message_with_its_request_id)
{
    struct fx f;
    char r[64], in[512];
    uint64_t q;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    q = fx_request(&f, 1, "message", "ping", "{\"x\":1}", r);
    fx_input(&f, 1, CLI("message", "pong", "{\"requestId\":\"other\"}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 1, "7.18: a generic message");
    snprintf(in, sizeof in, CLI("message", "pong", "{\"requestId\":\"%s\"}"), r);
    fx_input(&f, 1, in);
    cr_assert_eq(f.r[fx_find(&f, 0, DCS_ACT_RESULT, "reply")].id, q);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 9.5 Commands                                                              */

#define START_JOB                                                                                  \
    CLI("command", "START_JOB",                                                                    \
        "{\"type\":\"START_JOB\",\"jobId\":\"t-2\",\"fullPath\":\"org/app\",\"command\":\"COMMITS\"}")
#define PROGRESS "{\"taskId\":\"t-2\",\"status\":\"processing\",\"timestamp\":\"2025-01-03T19:00:00Z\"}"

Test(server, commands_are_delivered_and_pause_stops_progress)
{
    struct fx f;
    dcs_envelope p = ENV("message", "PROGRESS_UPDATE", "*", PROGRESS);
    dcs_envelope rj = ENV("jobRequest", "request_jobs", NULL, NULL);
    dcs_envelope st = ENV("message", "statusUpdate", "*", "{\"paused\":true}");
    uint64_t q;
    size_t mark;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_input(&f, 1, START_JOB);
    cr_assert_str_eq(f.r[fx_find(&f, 0, DCS_ACT_DELIVER, NULL)].key, "START_JOB", "9.5");
    fx_input(&f, 1, CLI("command", "START_JOB", "{\"type\":\"START_JOB\",\"jobId\":\"t\"}"));
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 1, "9.5: a misfit is not carried out");
    cr_assert_eq(C(&f, "payload_mismatch"), 1);
    cr_assert_eq(dcs_server_send(f.s, f.now, &p, NULL), 0);
    fx_input(&f, 1, CLI("command", "PAUSE_CRAWLER", "{\"type\":\"PAUSE_CRAWLER\"}"));
    cr_assert_eq(dcs_server_paused(f.s), 1);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_DELIVER, "PAUSE_CRAWLER"), 0);
    mark = f.n;
    cr_assert_eq(dcs_server_send(f.s, f.now, &p, NULL), DCS_SERVER_PAUSED, "9.5");
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &rj, &q), DCS_SERVER_PAUSED,
                 "9.5: SHOULD NOT send request_jobs");
    cr_assert_eq(dcs_server_send(f.s, f.now, &st, NULL), 0, "other messages continue");
    fx_advance(&f, f.now + 5000);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "PROGRESS_UPDATE"), 0);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "statusUpdate"), 1);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "\"type\":\"heartbeat\""), 1, "heartbeats continue");
    cr_assert_eq(C(&f, "paused"), 2);
    fx_input(&f, 1, CLI("command", "PAUSE_CRAWLER", "{\"type\":\"PAUSE_CRAWLER\"}"));
    cr_assert_eq(dcs_server_paused(f.s), 1, "pausing a paused crawler is not an error");
    fx_input(&f, 1, CLI("command", "RESUME_CRAWLER", "{\"type\":\"RESUME_CRAWLER\",\"requestId\":\"c1\"}"));
    cr_assert_eq(dcs_server_paused(f.s), 0);
    cr_assert_eq(dcs_server_send(f.s, f.now, &p, NULL), 0, "progress resumes");
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "PROGRESS_UPDATE"), 1);
    cr_assert_eq(C(&f, "commands"), 4);
    fx_fini(&f);
}

Test(server, queued_progress_is_not_written_while_paused)
{
    struct fx f;
    dcs_envelope p = ENV("message", "PROGRESS_UPDATE", "late", PROGRESS);
    dcs_envelope m = ENV("message", "note", "late", "{}");
    size_t mark;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    cr_assert_eq(dcs_server_send(f.s, f.now, &p, NULL), 0, "kept for the absent client");
    cr_assert_eq(dcs_server_send(f.s, f.now, &m, NULL), 0);
    fx_input(&f, 1, CLI("command", "PAUSE_CRAWLER", "{\"type\":\"PAUSE_CRAWLER\"}"));
    mark = f.n;
    fx_accept(&f, 2);
    fx_input(&f, 2, REGISTER_AS("late"));
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "PROGRESS_UPDATE"), 0,
                 "9.5: not on any connection while paused");
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_DROP, "paused"), 1);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 2, "\"key\":\"note\""), 1, "the rest flows");
    fx_fini(&f);
}

Test(server, unknown_command_is_reported_and_not_fatal)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_input(&f, 1, CLI("command", "FLY", "{\"type\":\"FLY\"}") CLI("message", "after", "{}"));
    cr_assert_eq(C(&f, "unknown-command"), 1, "9.5");
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "unknown-command"), 0);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "9.5: MUST NOT close");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 1, "not carried out; the next one is");
    cr_assert_str_eq(f.r[fx_find(&f, 0, DCS_ACT_DELIVER, NULL)].key, "after");
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 9.7 Addressing, 9.8 order, 11.3                                           */

Test(server, broadcast_and_addressed_messages)
{
    struct fx f;
    dcs_envelope all = ENV("message", "statusUpdate", "*", "{}");
    dcs_envelope one = ENV("message", "jobUpdate", "b", "{\"taskId\":\"t\",\"status\":\"queued\"}");
    size_t mark;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    fx_input(&f, 1, REGISTER_AS("a"));
    fx_accept(&f, 2);
    fx_input(&f, 2, REGISTER_AS("b"));
    fx_accept(&f, 3); /* not registered */
    mark = f.n;
    cr_assert_eq(dcs_server_send(f.s, f.now, &all, NULL), 0);
    cr_assert_eq(dcs_server_send(f.s, f.now, &one, NULL), 0);
    fx_drain(&f);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, "statusUpdate"), 1, "9.7: \"*\"");
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 2, "statusUpdate"), 1);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 3, NULL), 0, "9.2: not before register");
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 2, "\"destination\":\"b\""), 1);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, "jobUpdate"), 0);
    fx_fini(&f);
}

static void depth_16(dcs_server_config *c)
{
    c->s.max_depth = 16;
}

/* As the client's: a message deeper than the server's own max_depth is
 * refused before anything is written, a send and a request alike. */
Test(server, send_and_request_refuse_a_message_deeper_than_its_own_limit)
{
    struct fx f;
    dcs_envelope ok = ENV("message", "statusUpdate", "*", "{\"a\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}");
    dcs_envelope deep =
        ENV("message", "statusUpdate", "*", "{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}");
    dcs_envelope req = ENV("jobRequest", "request_jobs", "a", "{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}");
    size_t mark;
    uint64_t q;
    fx_init(&f, depth_16);
    fx_accept(&f, 1);
    fx_input(&f, 1, REGISTER_AS("a"));
    mark = f.n;
    cr_assert_eq(dcs_server_send(f.s, f.now, &deep, NULL), DCS_ETOO_DEEP);
    cr_assert_eq(dcs_server_request(f.s, f.now, 1, NULL, &req, &q), DCS_ETOO_DEEP);
    fx_drain(&f);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, NULL), 0);
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_LOG, "too-deep"), 2, "each logged (spec 11.4)");
    cr_assert_eq(dcs_server_get_stats(f.s)->drop_refused, 2, "each counted");
    cr_assert_eq(dcs_server_send(f.s, f.now, &ok, NULL), 0);
    fx_drain(&f);
    cr_assert_eq(fx_count_on(&f, mark, DCS_ACT_WRITE, 1, "statusUpdate"), 1);
    fx_fini(&f);
}

Test(server, messages_for_absent_clients_follow_their_register_in_order)
{
    struct fx f;
    dcs_envelope e;
    size_t mark;
    long o, w;
    int i;
    fx_init(&f, NULL);
    for (i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "m%d", i);
        e = ENV("message", key, i == 1 ? "*" : "web-server", "{}");
        cr_assert_eq(dcs_server_send(f.s, f.now, &e, NULL), 0);
        fx_advance(&f, f.now + 1);
    }
    e = ENV("message", "other", "someone-else", "{}");
    cr_assert_eq(dcs_server_send(f.s, f.now, &e, NULL), 0);
    cr_assert_eq(dcs_server_get_stats(f.s)->queued_messages, 4);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, NULL), 0);
    mark = f.n;
    fx_registered(&f, 1);
    o = fx_find(&f, mark, DCS_ACT_OPEN, NULL);
    w = fx_find(&f, mark, DCS_ACT_WRITE, NULL);
    cr_assert_gt(w, o, "9.7: right after the register");
    for (i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "\"key\":\"m%d\"", i);
        cr_assert(strstr(f.r[w + i].data, want), "in order: %s", f.r[w + i].data);
    }
    cr_assert_eq(fx_count(&f, mark, DCS_ACT_WRITE, "\"key\":\"other\""), 0);
    cr_assert_eq(dcs_server_get_stats(f.s)->queued_messages, 1);
    fx_advance(&f, f.now + 300000);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "queue-age"), 1, "8.6 bounds apply");
    cr_assert_eq(dcs_server_get_stats(f.s)->queued_messages, 0);
    fx_fini(&f);
}

Test(server, destination_filter_and_messages_in_the_wrong_direction)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    fx_input(&f, 1, MSG("web-server", "other-crawler", "message", "x", "{}"));
    cr_assert_eq(C(&f, "wrong-destination"), 1, "8.8, 9.8");
    fx_input(&f, 1, MSG("web-server", "*", "message", "x", "{}"));
    fx_input(&f, 1, CLI("message", "PROGRESS_UPDATE", PROGRESS));
    fx_input(&f, 1, CLI("jobRequest", "request_jobs", "{}"));
    fx_input(&f, 1, CLI("command", "challenge", "{}"));
    cr_assert_eq(C(&f, "wrong-direction"), 3, "11.3");
    fx_input(&f, 1, CLI("progressUpdate", "x", "{}"));
    fx_input(&f, 1, CLI("jobResponse", "other", "{}"));
    cr_assert_eq(C(&f, "unknown-type"), 1, "7.19");
    cr_assert_eq(C(&f, "unknown-key"), 1);
    fx_input(&f, 1, CLI("message", "close", "{\"reason\":\"shutdown\"}"));
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_LOG, "close-notice"), 0, "7.15: logged");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DELIVER, NULL), 3, "the broadcast, unknown type and key");
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0, "11.3: none of these closes");
    fx_fini(&f);
}

Test(server, inbound_order_of_9_8)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_accept(&f, 1);
    /* step 4 before step 5: the register's destination is not filtered */
    fx_input(&f, 1, MSG("web-server", "elsewhere", "command", "register",
                        "{\"id\":\"web-server\",\"pid\":1,\"type\":\"t\"}"));
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_OPEN, NULL), 0);
    /* step 5 before step 6: a misdirected register is not register-repeated */
    fx_input(&f, 1, MSG("web-server", "elsewhere", "command", "register",
                        "{\"id\":\"web-server\",\"pid\":1,\"type\":\"t\"}"));
    cr_assert_eq(C(&f, "wrong-destination"), 1);
    cr_assert_eq(C(&f, "register-repeated"), 0);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* Writes in flight                                                          */

static void small_inflight(dcs_server_config *c)
{
    c->max_inflight_bytes = 500; /* three messages of 164 bytes */
}

Test(server, unacknowledged_writes_are_bounded_and_lost_at_the_end)
{
    struct fx f;
    dcs_envelope e = ENV("message", "bulk", "*", "{\"pad\":\"0123456789012345678901234567890123456789\"}");
    uint64_t id;
    int i;
    fx_init(&f, small_inflight);
    fx_registered(&f, 1);
    f.ack = 0; /* the peer reads nothing */
    for (i = 0; i < 5; i++)
        cr_assert_eq(dcs_server_send(f.s, f.now, &e, &id), 0);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_WRITE, "bulk"), 3);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "queue-bytes"), 2);
    dcs_server_ended(f.s, f.now, 1);
    fx_drain(&f);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "lost-in-flight"), 3, "4.7");
    cr_assert_eq(C(&f, "lost-in-flight"), 3);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* 13.1 Shutdown                                                             */

Test(server, shutdown_announces_then_closes_each_connection)
{
    struct fx f;
    dcs_envelope e = ENV("message", "kept", "absent", "{}");
    long sh, cn, cl;
    fx_init(&f, NULL);
    cr_assert_eq(dcs_server_send(f.s, f.now, &e, NULL), 0);
    fx_registered(&f, 1);
    fx_registered(&f, 2);
    fx_accept(&f, 3); /* not registered */
    f.ack = 0;
    dcs_server_shutdown(f.s, f.now, "SIGTERM");
    fx_drain(&f);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 3, "shutdown"), 0, "13.1: unregistered at once");
    sh = fx_find_on(&f, 0, DCS_ACT_WRITE, 1, "\"key\":\"shutdown\"");
    cr_assert_geq(sh, 0, "13.1 step 2");
    cr_assert(strstr(f.r[sh].data, "\"payload\":{\"signal\":\"SIGTERM\"}"), "%s", f.r[sh].data);
    cn = fx_find_on(&f, 0, DCS_ACT_WRITE, 1, "\"reason\":\"shutdown\"");
    cr_assert_gt(cn, sh, "the close notice after it");
    cr_assert_lt(fx_find_on(&f, 0, DCS_ACT_CLOSE, 1, NULL), 0, "not before its writes are done");
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_DROP, "shutdown"), 1, "the queue is dropped");
    cr_assert_eq(fx_accept_as(&f, 9, UID, 1), DCS_SERVER_REFUSED, "13.1 step 1");
    cr_assert_eq(dcs_server_send(f.s, f.now, &e, NULL), DCS_SERVER_SHUTTING_DOWN);
    /* connection 1 acknowledges its writes: closed then */
    dcs_server_written(f.s, f.now, 1, f.r[sh].id);
    dcs_server_written(f.s, f.now, 1, f.r[cn].id);
    fx_drain(&f);
    cl = fx_find_on(&f, 0, DCS_ACT_CLOSE, 1, "shutdown");
    cr_assert_geq(cl, 0, "13.1 step 3: once its writes are done");
    cr_assert_eq(dcs_server_done(f.s), 0);
    /* connection 2 never does: closed at the grace */
    fx_advance(&f, f.now + 1999);
    cr_assert_lt(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, NULL), 0);
    fx_advance(&f, f.now + 1);
    cr_assert_geq(fx_find_on(&f, 0, DCS_ACT_CLOSE, 2, "shutdown"), 0, "after DCS_T_SHUTDOWN_GRACE");
    cr_assert_eq(dcs_server_done(f.s), 1);
    cr_assert_eq(fx_count(&f, 0, DCS_ACT_LOST, "shutdown"), 2);
    fx_fini(&f);
}

Test(server, a_second_signal_closes_at_once)
{
    struct fx f;
    fx_init(&f, NULL);
    fx_registered(&f, 1);
    f.ack = 0;
    dcs_server_shutdown(f.s, f.now, "SIGINT");
    fx_drain(&f);
    cr_assert_lt(fx_find(&f, 0, DCS_ACT_CLOSE, NULL), 0);
    dcs_server_shutdown(f.s, f.now, "SIGINT");
    fx_drain(&f);
    cr_assert_geq(fx_find(&f, 0, DCS_ACT_CLOSE, "shutdown"), 0, "13.1");
    cr_assert_eq(dcs_server_done(f.s), 1);
    fx_fini(&f);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */

/* Returns a bit mask of the connections that got a CLOSE action; requires
 * that the machine knows no connection at the end. */
static unsigned run_everything(struct fx *f, int secret)
{
    dcs_envelope p = ENV("message", "PROGRESS_UPDATE", "*", PROGRESS);
    dcs_envelope a = ENV("message", "m", "absent", "{}");
    dcs_envelope rj = ENV("jobRequest", "request_jobs", NULL, NULL);
    dcs_action act;
    uint64_t q;
    const char *reg = secret ? B6_REGISTER : REGISTER;
    dcs_server *s = f->s;
    dcs_ms t = 1000;
    unsigned closed = 0;
#define PUMP()                                                                                     \
    while (dcs_server_next(s, t, &act)) {                                                          \
        if (act.kind == DCS_ACT_WRITE && act.id % 2)                                               \
            dcs_server_written(s, t, act.conn, act.id);                                            \
        if (act.kind == DCS_ACT_CLOSE)                                                             \
            closed |= 1u << act.conn;                                                              \
    }
    dcs_server_send(s, t, &a, NULL);
    dcs_server_send(s, t, &p, NULL);
    if (dcs_server_accept(s, t, 1, UID, 1, 1) != 0)
        closed |= 1u << 1; /* not taken: the shell closes it */
    dcs_server_accept(s, t, 2, UID, 1, 1);
    dcs_server_accept(s, t, 3, 5, 1, 1);
    PUMP();
    dcs_server_input(s, t, 1, reg, strlen(reg));
    PUMP();
    dcs_server_input(s, t, 2, "{\"x\":", 5);
    PUMP();
    dcs_server_send(s, t, &p, NULL);
    dcs_server_request(s, t, 0, NULL, &rj, &q);
    dcs_server_request(s, t, 0, NULL, &rj, &q);
    PUMP();
    {
        const char *in = CLI("jobResponse", "jobs_available", "[]") START_JOB
            CLI("message", "TOKEN_REFRESH_RESPONSE", "{\"requestId\":\"x\",\"success\":false}") HB;
        dcs_server_input(s, t, 1, in, strlen(in));
    }
    PUMP();
    t += 4000;
    PUMP();
    dcs_server_ended(s, t, 2);
    PUMP();
    t += 2000; /* a heartbeat */
    PUMP();
    dcs_server_shutdown(s, t, "SIGTERM");
    PUMP();
    t += 3000;
    PUMP();
    cr_assert(dcs_server_done(s), "every connection is closed at the end");
    return closed;
#undef PUMP
}

Test(server, every_allocation_may_fail)
{
    int secret;
    for (secret = 0; secret <= 1; secret++) {
        long k;
        for (k = 1; k < 2000; k++) {
            dcs_server_config cfg;
            struct fx f;
            memset(&f, 0, sizeof f);
            test_alloc_init(&f.ta, k);
            f.nonce_hex = B6_NONCE;
            f.nonce_left = 1;
            fx_config(&f, &cfg);
            if (secret)
                with_secret(&cfg);
            f.s = dcs_server_new(&cfg, NULL);
            if (f.s) {
                unsigned closed = run_everything(&f, secret);
                cr_assert(closed & (1u << 1), "secret=%d fail_at=%ld: connection 1 was never "
                          "closed", secret, k);
                dcs_server_free(f.s);
            }
            cr_assert_eq(f.ta.live, 0, "secret=%d fail_at=%ld leaked %ld blocks", secret, k,
                         f.ta.live);
            if (!f.ta.failed)
                break;
        }
        cr_assert_lt(k, 2000, "the scenario should run out of allocations to fail");
    }
}

/* Many connections closed in one timer pass (the registry sweep of 20 idle
 * lenient connections), with each allocation from there on failing in
 * turn: every connection still gets its CLOSE action, so the shell never
 * keeps a socket the machine has forgotten. */
Test(server, every_close_reaches_the_shell_despite_allocation_failures)
{
    long k;
    int hit = 0;
    for (k = 1; k < 3000; k++) {
        dcs_server_config cfg;
        struct fx f;
        dcs_action act;
        uint64_t closed = 0, i;
        dcs_ms t = 1000;
        memset(&f, 0, sizeof f);
        test_alloc_init(&f.ta, 0);
        fx_config(&f, &cfg);
        lenient(&cfg);
        f.s = dcs_server_new(&cfg, NULL);
        cr_assert_not_null(f.s);
        for (i = 1; i <= 20; i++)
            cr_assert_eq(dcs_server_accept(f.s, t, i, UID, 1, 1), 0);
        while (t < 1000 + 300000) {
            dcs_ms d;
            while (dcs_server_next(f.s, t, &act))
                if (act.kind == DCS_ACT_WRITE)
                    dcs_server_written(f.s, t, act.conn, act.id);
            d = dcs_server_deadline(f.s);
            cr_assert_gt(d, t, "a deadline at %lld was not handled", (long long)t);
            t = d;
        }
        cr_assert_eq(t, 1000 + 300000, "the sweep that finds them idle");
        f.ta.fail_at = f.ta.calls + k;
        for (i = 0; i < 3; i++)
            while (dcs_server_next(f.s, t, &act))
                if (act.kind == DCS_ACT_CLOSE)
                    closed |= 1ull << act.conn;
        cr_assert_eq(closed, ((1ull << 21) - 1) & ~1ull, "fail_at=+%ld: closes %llx", k,
                     (unsigned long long)closed);
        cr_assert(dcs_server_done(f.s) || dcs_server_get_stats(f.s)->connections == 0);
        hit |= f.ta.failed > 0;
        dcs_server_free(f.s);
        cr_assert_eq(f.ta.live, 0, "fail_at=+%ld leaked %ld blocks", k, f.ta.live);
        if (!f.ta.failed)
            break;
    }
    cr_assert(hit && k < 3000);
}

Test(server, the_scenario_without_failures_does_everything)
{
    struct fx f;
    dcs_server_config cfg;
    memset(&f, 0, sizeof f);
    test_alloc_init(&f.ta, 0);
    f.nonce_hex = B6_NONCE;
    f.nonce_left = 1;
    fx_config(&f, &cfg);
    with_secret(&cfg);
    f.s = dcs_server_new(&cfg, NULL);
    cr_assert_eq(run_everything(&f, 1), (1u << 1) | (1u << 3));
    cr_assert_eq(C(&f, "registered"), 1, "the allocation test reaches the interesting paths");
    cr_assert_eq(C(&f, "requests"), 2);
    cr_assert_eq(C(&f, "replies"), 1);
    cr_assert_eq(C(&f, "commands"), 1);
    cr_assert_eq(C(&f, "peer-uid-refused"), 1);
    cr_assert_eq(C(&f, "register-timeout"), 0, "conn 2 ended first");
    cr_assert_eq(C(&f, "truncated"), 1);
    cr_assert_eq(C(&f, "shutdown"), 1);
    dcs_server_free(f.s);
    cr_assert_eq(f.ta.live, 0);
}
