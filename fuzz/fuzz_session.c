/*
 * fuzz_session.c - the client and server state machines (spec 8, 9, 10)
 * driven by events decoded from the input.
 *
 * Byte 0 is the configuration: bit 7 set selects the building blocks mode
 * (blocks.h: the outbound queue and the dedup cache against reference
 * models); otherwise bit 0 gives both peers a shared secret, bit 1 makes
 * the client's secret differ, bit 2 makes the server lenient (without a
 * secret), bit 3 makes the client require the handshake. Limits are small so
 * that the fuzzer reaches them: 8 queued messages, 2 KiB queued, 4 dedup
 * keys, 3 pending requests, 4 connections, 4 KiB messages, flood burst 40.
 *
 * The rest is a list of events, one opcode byte and its argument bytes each:
 * time advances (every deadline on the way handled), connect results, the
 * client's and the server's bytes delivered to the other in pieces, raw
 * bytes injected into the link or into other server connections, writes
 * reported done, connections ended from either side, messages and requests
 * the applications send (catalogue templates with values from the input, or
 * raw payloads), replies to delivered requests, stop, start, shutdown.
 *
 * After every event both machines are drained and these must hold, else the
 * harness aborts:
 * - every WRITE is exactly one valid envelope within the size limit;
 * - register first: on each client connection the first write is register
 *   (or the close notice of a failed handshake, and then nothing more); the
 *   server writes nothing but a challenge or a close notice to a connection
 *   before it is OPEN, and (not lenient) delivers nothing from it before;
 * - nothing is written, delivered or opened on a server connection after its
 *   CLOSE; a request gets at most one RESULT, a message at most one DROP, and
 *   only ids the machine handed out;
 * - queue bound: the client's queue and the server's queues stay within their
 *   count and byte bounds; the server's connections within max_connections;
 * - timers: after a drain at time t, no deadline is at or before t;
 * - no unbounded growth: live memory stays under a bound; nothing leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dcs/client.h"
#include "dcs/server.h"

void fz_blocks_run(fz_in *in); /* fuzz_session_blocks.c */

#define MAX_OPS 1500
#define MAX_CONNS 64
#define MAX_IDS 1024
#define MAX_UNACKED 256
#define MEM_BOUND (48u << 20)
#define OWN_UID 1000
#define OTHER_UID 1001
#define BAD_UID 4242

/* FZ_TRACE=1 in the environment: print every event and action (fuzz/repro). */
static int trace = -1;
#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace > 0) fprintf(stderr, __VA_ARGS__);                                               \
    } while (0)

/* FZ_IGNORE=name,name: checks of known open bugs to skip, so that a campaign
 * goes on finding others (fuzz/README.md). Off by default. */
static const char *ignore_list;

static int ignored(const char *name)
{
    const char *p = ignore_list;
    size_t n = strlen(name);
    while (p && *p) {
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
        p = strchr(p, ',');
        if (p) p++;
    }
    return 0;
}

static const char *const act_names[] = {"?",    "CONNECT", "WRITE", "CLOSE", "DELIVER",
                                        "DROP", "LOG",     "OPEN",  "LOST",  "RESULT"};

static void trace_action(const char *who, dcs_ms now, const dcs_action *a)
{
    if (trace <= 0) return;
    fprintf(stderr, "  %8lld %s %-7s conn %llu id %llu", (long long)now, who,
            a->kind >= 1 && a->kind <= 9 ? act_names[a->kind] : "?", (unsigned long long)a->conn,
            (unsigned long long)a->id);
    if (a->reason) fprintf(stderr, " reason %s", a->reason);
    if (a->kind == DCS_ACT_WRITE || a->kind == DCS_ACT_DROP)
        fprintf(stderr, " %.*s", (int)(a->data.len > 160 ? 160 : a->data.len), a->data.ptr);
    if (a->kind == DCS_ACT_DELIVER && a->msg)
        fprintf(stderr, " %.*s", (int)(a->msg->raw.len > 160 ? 160 : a->msg->raw.len),
                a->msg->raw.ptr);
    if (a->kind == DCS_ACT_LOG) fprintf(stderr, " [%s] %s", a->category, a->text);
    fputc('\n', stderr);
}

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef";
static const unsigned char SECRET2[] = "fedcba9876543210fedcba9876543210";

typedef struct pipe_ {
    dcs_buf b; /* bytes written, not yet delivered */
    size_t head;
} pipe_;

struct sconn {
    int used, opened, closed;
    int raw; /* not the client's link */
};

struct id_entry {
    uint64_t id;
    int done;
};

typedef struct sim {
    fz_in *in;
    dcs_ms now;
    double u;
    unsigned char rng_k;
    dcs_client *c;
    dcs_server *s;
    fz_alloc ca, sa;
    dcs_session_config limits;
    int lenient;

    /* The pair's link. */
    int attempt;        /* the client asked to connect */
    uint64_t link;      /* the server's id of the link, 0: none */
    int c_connected;    /* the client was told the connect worked */
    int c_gone, s_gone; /* that side closed its end */
    pipe_ c2s, s2c;
    uint64_t gen; /* the client's current connection */
    int gen_registered, gen_noticed;

    uint64_t next_conn;
    struct sconn conns[MAX_CONNS + 1];
    uint64_t raw[8];
    size_t n_raw;

    uint64_t c_unacked[MAX_UNACKED];
    size_t n_c_unacked;
    struct {
        uint64_t conn, id;
    } s_unacked[MAX_UNACKED];
    size_t n_s_unacked;

    struct id_entry c_ids[MAX_IDS], s_ids[MAX_IDS], reqs[MAX_IDS];
    size_t n_c_ids, n_s_ids, n_reqs;
    struct {
        uint64_t conn, id;
    } s_drops[MAX_IDS];
    size_t n_s_drops;

    /* The last request the client delivered, for a reply. */
    char last_rid[64];
    char last_key[32];
    uint64_t last_conn;

    dcs_buf scratch;
} sim;

/* ------------------------------------------------------------------------ */
/* Randomness                                                                */

static double rng_uniform(void *ud)
{
    return ((sim *)ud)->u;
}

static void rng_bytes(void *ud, void *buf, size_t n)
{
    sim *S = ud;
    memset(buf, 0x5a ^ S->rng_k++, n); /* deterministic: AFL++ needs stable runs */
}

/* ------------------------------------------------------------------------ */
/* Bookkeeping                                                               */

static void ids_add(struct id_entry *v, size_t *n, uint64_t id)
{
    if (*n < MAX_IDS) {
        v[*n].id = id;
        v[*n].done = 0;
        (*n)++;
    }
}

/* Mark id done: it must be known (if the table did not overflow) and not
 * done before. */
static void ids_done(struct id_entry *v, size_t n, uint64_t id, const char *what)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v[i].id == id) {
            FZ_CHECK(!v[i].done, "%s %llu reported twice", what, (unsigned long long)id);
            v[i].done = 1;
            return;
        }
    FZ_CHECK(n >= MAX_IDS, "%s for id %llu that was never handed out", what,
             (unsigned long long)id);
}

static void pipe_clear(pipe_ *p)
{
    p->b.len = 0;
    p->head = 0;
}

static size_t pipe_avail(const pipe_ *p)
{
    return p->b.len - p->head;
}

/* The type and key of a written message, which must be one valid envelope. */
static void parse_write(sim *S, dcs_slice data, char *type, char *key)
{
    dcs_decoder_config cfg;
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    int ev, n = 0;
    FZ_CHECK(data.ptr && data.len > 0, "empty WRITE");
    FZ_CHECK(data.len <= S->limits.max_message_size, "WRITE of %zu bytes over the limit", data.len);
    dcs_decoder_config_init(&cfg);
    cfg.max_message_size = S->limits.max_message_size;
    cfg.max_depth = S->limits.max_depth;
    d = dcs_decoder_new(&cfg, NULL);
    FZ_CHECK(d != NULL, "decoder");
    dcs_decoder_feed(d, data.ptr, data.len);
    while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
        FZ_CHECK(ev == DCS_MESSAGE, "a WRITE is not a valid envelope: %s: %s\n%.*s",
                 dcs_err_name(e.code), e.message, (int)data.len, data.ptr);
        FZ_CHECK(++n == 1 && m.offset == 0 && m.raw.len == data.len,
                 "a WRITE is not exactly one envelope");
        snprintf(type, 32, "%.*s", (int)m.type.len, m.type.ptr);
        snprintf(key, 32, "%.*s", (int)m.key.len, m.key.ptr);
    }
    FZ_CHECK(n == 1, "a WRITE holds no envelope");
    FZ_CHECK(dcs_decoder_finish(d, &e) == DCS_AGAIN, "a WRITE ends inside a message");
    dcs_decoder_free(d);
}

static void check_action_common(const dcs_action *a)
{
    FZ_CHECK(a->kind >= DCS_ACT_CONNECT && a->kind <= DCS_ACT_RESULT, "action kind %d", a->kind);
    if (a->kind == DCS_ACT_LOG) {
        FZ_CHECK(a->text && a->category && a->reason, "LOG without text, category or reason");
        FZ_CHECK(a->level >= DCS_LOG_ERROR && a->level <= DCS_LOG_DEBUG, "LOG level %d", a->level);
        FZ_CHECK(strlen(a->text) < 4096, "LOG text");
    }
    if (a->kind == DCS_ACT_CLOSE || a->kind == DCS_ACT_DROP || a->kind == DCS_ACT_LOST ||
        a->kind == DCS_ACT_RESULT)
        FZ_CHECK(a->reason != NULL, "action %d without a reason", a->kind);
    if (a->kind == DCS_ACT_DELIVER) {
        FZ_CHECK(a->msg != NULL, "DELIVER without a message");
        FZ_CHECK(a->msg->raw.len >= 2 && a->msg->raw.ptr[0] == '{' &&
                     a->msg->raw.ptr[a->msg->raw.len - 1] == '}',
                 "DELIVER of a message that is not an object");
        FZ_CHECK(dcs_json_validate(a->msg->raw.ptr, a->msg->raw.len, 0, NULL) == 0,
                 "DELIVER of invalid JSON");
    }
}

/* ------------------------------------------------------------------------ */
/* Draining the machines                                                     */

static void server_gone_for_client(sim *S);

static void on_client_action(sim *S, const dcs_action *a)
{
    char type[32], key[32];
    trace_action("client", S->now, a);
    check_action_common(a);
    switch (a->kind) {
    case DCS_ACT_CONNECT:
        /* The old link, if any, is over: the server reads what is left. */
        if (S->link && !S->conns[S->link].closed) {
            if (pipe_avail(&S->c2s)) {
                int rc = dcs_server_input(S->s, S->now, S->link, S->c2s.b.data + S->c2s.head,
                                          pipe_avail(&S->c2s));
                FZ_CHECK(rc == 0, "server input: %d", rc);
                S->c2s.head = S->c2s.b.len;
            }
            dcs_server_ended(S->s, S->now, S->link);
        }
        S->link = 0;
        S->attempt = 1;
        break;
    case DCS_ACT_WRITE:
        parse_write(S, a->data, type, key);
        if (!(a->conn == S->gen && S->c_connected) && ignored("write-after-ended")) {
            dcs_client_written(S->c, S->now, a->id);
            break;
        }
        FZ_CHECK(a->conn == S->gen && S->c_connected,
                 "client WRITE on connection %llu, current "
                 "%llu (%s): written after the shell "
                 "reported it ended",
                 (unsigned long long)a->conn, (unsigned long long)S->gen,
                 S->c_connected ? "connected" : "not connected");
        FZ_CHECK(!S->gen_noticed, "client WRITE %s/%s after its close notice", type, key);
        if (!S->gen_registered) {
            if (strcmp(type, "command") == 0 && strcmp(key, "register") == 0)
                S->gen_registered = 1;
            else if (strcmp(type, "message") == 0 && strcmp(key, "close") == 0)
                S->gen_noticed = 1;
            else
                FZ_CHECK(0, "register first: the client wrote %s/%s first on connection %llu", type,
                         key, (unsigned long long)a->conn);
        }
        /* A later register may be the application's own message: not checked. */
        if (S->n_c_unacked < MAX_UNACKED)
            S->c_unacked[S->n_c_unacked++] = a->id;
        else
            dcs_client_written(S->c, S->now, a->id);
        if (!S->c_gone) dcs_buf_append(&S->c2s.b, a->data.ptr, a->data.len);
        break;
    case DCS_ACT_CLOSE:
        if (S->c_connected && a->conn == S->gen) {
            S->c_gone = 1;
            S->c_connected = 0;
            if (S->link && !S->conns[S->link].closed && pipe_avail(&S->c2s) == 0) {
                dcs_server_ended(S->s, S->now, S->link);
                S->link = 0;
            }
        }
        if (S->attempt && !S->c_connected)
            S->attempt = 0; /* the attempt in progress is abandoned */
        break;
    case DCS_ACT_DELIVER: {
        dcs_slice pl = a->msg->payload;
        snprintf(S->last_key, sizeof S->last_key, "%.*s", (int)a->msg->key.len, a->msg->key.ptr);
        S->last_rid[0] = '\0';
        S->last_conn = a->conn;
        if (pl.ptr && pl.len && pl.ptr[0] == '{') {
            S->scratch.len = 0;
            if (dcs_json_member_string(pl.ptr, pl.len, "requestId", &S->scratch) == 1 &&
                S->scratch.len < sizeof S->last_rid && !memchr(S->scratch.data, 0, S->scratch.len))
                snprintf(S->last_rid, sizeof S->last_rid, "%.*s", (int)S->scratch.len,
                         S->scratch.data);
        }
        break;
    }
    case DCS_ACT_DROP:
        ids_done(S->c_ids, S->n_c_ids, a->id, "client DROP");
        break;
    case DCS_ACT_LOST:
        break;
    case DCS_ACT_OPEN:
        FZ_CHECK(S->c_connected && a->conn == S->gen, "client OPEN while not connected");
        break;
    default:
        break;
    }
}

static void on_server_action(sim *S, const dcs_action *a)
{
    char type[32], key[32];
    struct sconn *sc = a->conn && a->conn <= MAX_CONNS ? &S->conns[a->conn] : NULL;
    trace_action("server", S->now, a);
    check_action_common(a);
    FZ_CHECK(a->kind != DCS_ACT_CONNECT, "the server asked to connect");
    if (a->kind == DCS_ACT_WRITE || a->kind == DCS_ACT_DELIVER || a->kind == DCS_ACT_OPEN ||
        a->kind == DCS_ACT_CLOSE)
        FZ_CHECK(sc && sc->used, "server action %d on unknown connection %llu", a->kind,
                 (unsigned long long)a->conn);
    if (sc && (a->kind == DCS_ACT_WRITE || a->kind == DCS_ACT_DELIVER || a->kind == DCS_ACT_OPEN))
        FZ_CHECK(!sc->closed, "server action %d on connection %llu after its CLOSE", a->kind,
                 (unsigned long long)a->conn);
    switch (a->kind) {
    case DCS_ACT_WRITE:
        parse_write(S, a->data, type, key);
        if (!sc->opened)
            FZ_CHECK((strcmp(type, "command") == 0 && strcmp(key, "challenge") == 0) ||
                         (strcmp(type, "message") == 0 && strcmp(key, "close") == 0),
                     "register first: the server wrote %s/%s to connection %llu before OPEN", type,
                     key, (unsigned long long)a->conn);
        if (S->n_s_unacked < MAX_UNACKED) {
            S->s_unacked[S->n_s_unacked].conn = a->conn;
            S->s_unacked[S->n_s_unacked++].id = a->id;
        } else {
            dcs_server_written(S->s, S->now, a->conn, a->id);
        }
        if (a->conn == S->link && !S->s_gone) dcs_buf_append(&S->s2c.b, a->data.ptr, a->data.len);
        break;
    case DCS_ACT_OPEN:
        sc->opened = 1;
        break;
    case DCS_ACT_DELIVER:
        if (!S->lenient)
            FZ_CHECK(sc->opened,
                     "register first: the server delivered %.*s/%.*s from "
                     "connection %llu before OPEN",
                     (int)a->msg->type.len, a->msg->type.ptr, (int)a->msg->key.len, a->msg->key.ptr,
                     (unsigned long long)a->conn);
        break;
    case DCS_ACT_CLOSE:
        sc->closed = 1;
        if (a->conn == S->link) {
            S->s_gone = 1;
            if (pipe_avail(&S->s2c) == 0) server_gone_for_client(S);
        } else {
            size_t i;
            for (i = 0; i < S->n_raw; i++)
                if (S->raw[i] == a->conn) S->raw[i] = S->raw[--S->n_raw];
        }
        break;
    case DCS_ACT_RESULT:
        ids_done(S->reqs, S->n_reqs, a->id, "RESULT");
        if (strcmp(a->reason, "reply") == 0)
            FZ_CHECK(a->msg != NULL, "RESULT reply without a message");
        break;
    case DCS_ACT_DROP: {
        /* A message for "*" is written to every registered connection: it
         * may be dropped once per connection. */
        size_t i;
        int known = S->n_s_ids >= MAX_IDS;
        for (i = 0; i < S->n_s_ids; i++)
            known |= S->s_ids[i].id == a->id;
        FZ_CHECK(known, "server DROP of id %llu that was never handed out",
                 (unsigned long long)a->id);
        for (i = 0; i < S->n_s_drops; i++)
            FZ_CHECK(!(S->s_drops[i].conn == a->conn && S->s_drops[i].id == a->id),
                     "server DROP of %llu on connection %llu reported twice",
                     (unsigned long long)a->id, (unsigned long long)a->conn);
        if (S->n_s_drops < MAX_IDS) {
            S->s_drops[S->n_s_drops].conn = a->conn;
            S->s_drops[S->n_s_drops++].id = a->id;
        }
        break;
    }
    default:
        break;
    }
}

/* The server closed the link and the client has read everything: EOF. */
static void server_gone_for_client(sim *S)
{
    if (S->c_connected) {
        S->c_connected = 0;
        dcs_client_ended(S->c, S->now);
    }
    S->link = 0;
}

static void drain(sim *S)
{
    dcs_action a;
    int more = 1, rounds = 0;
    while (more) {
        more = 0;
        while (dcs_client_next(S->c, S->now, &a)) {
            on_client_action(S, &a);
            more = 1;
            FZ_CHECK(++rounds < 1000000, "the client hands out actions forever");
        }
        while (dcs_server_next(S->s, S->now, &a)) {
            on_server_action(S, &a);
            more = 1;
            FZ_CHECK(++rounds < 1000000, "the server hands out actions forever");
        }
    }
}

static void check_invariants(sim *S)
{
    const dcs_client_stats *cs = dcs_client_get_stats(S->c);
    const dcs_server_stats *ss = dcs_server_get_stats(S->s);
    FZ_CHECK(cs->queue_depth <= S->limits.queue_max_messages,
             "queue bound: the client queues %zu messages, bound %zu", cs->queue_depth,
             S->limits.queue_max_messages);
    FZ_CHECK(cs->queue_bytes <= S->limits.queue_max_bytes || cs->queue_depth <= 1,
             "queue bound: the client queues %zu bytes, bound %zu", cs->queue_bytes,
             S->limits.queue_max_bytes);
    FZ_CHECK(cs->state >= DCS_CLIENT_DISCONNECTED && cs->state <= DCS_CLIENT_CLOSED,
             "client state %d", cs->state);
    FZ_CHECK(ss->queued_messages <= S->limits.max_connections * S->limits.queue_max_messages,
             "queue bound: the server queues %zu messages", ss->queued_messages);
    FZ_CHECK(ss->queued_bytes <= S->limits.max_connections * S->limits.queue_max_bytes +
                                     S->limits.max_connections * S->limits.max_message_size,
             "queue bound: the server queues %zu bytes", ss->queued_bytes);
    FZ_CHECK(ss->connections <= S->limits.max_connections, "the server keeps %zu connections",
             ss->connections);
    FZ_CHECK(ss->registered_now <= ss->connections, "more registered than connections");
    FZ_CHECK(dcs_client_deadline(S->c) > S->now || ignored("stale-deadline"),
             "a client deadline at %lld is not handled at %lld (state %s)",
             (long long)dcs_client_deadline(S->c), (long long)S->now,
             dcs_client_state_name(cs->state));
    FZ_CHECK(dcs_server_deadline(S->s) > S->now || ignored("stale-deadline"),
             "a server deadline at %lld is not handled at %lld",
             (long long)dcs_server_deadline(S->s), (long long)S->now);
    FZ_CHECK(S->ca.bytes < MEM_BOUND, "the client holds %zu bytes", S->ca.bytes);
    FZ_CHECK(S->sa.bytes < MEM_BOUND, "the server holds %zu bytes", S->sa.bytes);
}

static void advance(sim *S, dcs_ms dt)
{
    dcs_ms target = S->now + dt;
    int loops = 0;
    for (;;) {
        dcs_ms d = dcs_client_deadline(S->c), ds = dcs_server_deadline(S->s);
        if (ds < d) d = ds;
        if (d > target) break;
        if (d > S->now) {
            S->now = d;
        } else if (ignored("stale-deadline")) {
            if (S->now >= target) break;
            S->now = S->now + 100 < target ? S->now + 100 : target; /* step over it */
        }
        drain(S);
        check_invariants(S);
        FZ_CHECK(++loops < 200000, "timers fire forever");
    }
    S->now = target;
    drain(S);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void ev_connect_result(sim *S, unsigned b)
{
    unsigned r = b & 3, who = (b >> 2) & 3;
    int64_t uid = who == 0 || who == 3 ? OWN_UID : who == 1 ? OTHER_UID : BAD_UID;
    if (!S->attempt) return;
    S->attempt = 0;
    if (r == 2 || r == 3) {
        dcs_client_connect_result(S->c, S->now, r == 2 ? DCS_CONNECT_MISSING : DCS_CONNECT_FAILED,
                                  -1);
        return;
    }
    if (S->next_conn >= MAX_CONNS) {
        dcs_client_connect_result(S->c, S->now, DCS_CONNECT_FAILED, -1);
        return;
    }
    S->link = ++S->next_conn;
    S->conns[S->link].used = 1;
    pipe_clear(&S->c2s);
    pipe_clear(&S->s2c);
    S->c_gone = S->s_gone = 0;
    S->gen_registered = S->gen_noticed = 0;
    S->c_connected = 1;
    S->gen = dcs_client_get_stats(S->c)->connections + 1;
    /* The client's connect() returns; the server accepts a moment later. */
    dcs_client_connect_result(S->c, S->now, DCS_CONNECT_OK, who == 2 ? BAD_UID : OWN_UID);
    drain(S);
    if (S->link)
        dcs_server_accept(S->s, S->now, S->link, who == 3 ? -1 : (int64_t)uid, 321, OWN_UID);
}

static void deliver(sim *S, pipe_ *p, int to_server, size_t n)
{
    size_t avail = pipe_avail(p);
    const char *placed;
    int rc;
    if (n == 0 || n > avail) n = avail;
    if (n) {
        placed = fz_place(0, p->b.data + p->head, n);
        if (to_server) {
            if (S->link && !S->conns[S->link].closed) {
                rc = dcs_server_input(S->s, S->now, S->link, placed, n);
                FZ_CHECK(rc == 0, "server input: %s", dcs_err_name(rc));
            }
        } else if (S->c_connected) {
            rc = dcs_client_input(S->c, S->now, placed, n);
            FZ_CHECK(rc == 0, "client input: %s", dcs_err_name(rc));
        }
        p->head += n;
        drain(S);
        fz_retire(0);
    }
    if (pipe_avail(p) == 0) {
        if (to_server && S->c_gone && S->link && !S->conns[S->link].closed) {
            dcs_server_ended(S->s, S->now, S->link);
            S->link = 0;
        } else if (!to_server && S->s_gone) {
            server_gone_for_client(S);
        }
    }
}

/* An envelope from a template; payload text goes into S->scratch. */
static const char *const c_dest[4] = {"", "*", "external-crawler", "nobody"};
static const char *const s_dest[4] = {"", "*", "web-server", "other-client"};

static void set_env(dcs_envelope *e, const char *type, const char *key, const char *dest,
                    const dcs_buf *pl)
{
    memset(e, 0, sizeof *e);
    e->type.ptr = type;
    e->type.len = strlen(type);
    e->key.ptr = key;
    e->key.len = strlen(key);
    e->destination.ptr = dest;
    e->destination.len = strlen(dest);
    if (pl) {
        e->payload.ptr = pl->len ? pl->data : "";
        e->payload.len = pl->len;
    }
}

static void payf(dcs_buf *b, const char *fmt, unsigned x)
{
    char t[512];
    int n = snprintf(t, sizeof t, fmt, x, x, x);
    b->len = 0;
    dcs_buf_append(b, t, (size_t)n);
}

/* A payload of n bytes of the input, or a long string. */
static void pay_raw(sim *S, dcs_buf *b, unsigned n)
{
    const uint8_t *p;
    size_t got = fz_take(S->in, n, &p);
    b->len = 0;
    dcs_buf_append(b, p, got);
}

static void pay_big(dcs_buf *b, unsigned n)
{
    size_t i;
    b->len = 0;
    dcs_buf_append(b, "{\"blob\":\"", 9);
    for (i = 0; i < (size_t)n * 24; i++)
        dcs_buf_append(b, "x", 1);
    dcs_buf_append(b, "\"}", 2);
}

static void ev_client_send(sim *S, unsigned t, unsigned x, unsigned dsel)
{
    dcs_buf pl;
    dcs_envelope e;
    dcs_member extra;
    char rid[80];
    uint64_t id = 0;
    const char *type = "message", *key = "customNotice";
    int rc;
    dcs_buf_init(&pl, NULL);
    snprintf(rid, sizeof rid, "\"%s\"", S->last_rid[0] ? S->last_rid : "r-1");
    switch (t % 12) {
    case 0:
        key = "TOKEN_REFRESH_RESPONSE";
        payf(&pl, "{\"requestId\":\"r-%u\",\"success\":true,\"accessToken\":\"a%u\"}", x % 4);
        break;
    case 1:
        type = "jobResponse";
        key = "jobs_available";
        payf(&pl, "[{\"taskId\":\"t-%u\",\"command\":\"GROUP_PROJECT_DISCOVERY\"}]", x % 4);
        break;
    case 2:
        type = "jobResponse";
        key = "jobs_error";
        payf(&pl, "{\"error\":\"none %u\"}", x);
        break;
    case 3:
        type = "command";
        key = x & 1 ? "PAUSE_CRAWLER" : "RESUME_CRAWLER";
        payf(&pl, x & 1 ? "{\"type\":\"PAUSE_CRAWLER\"}" : "{\"type\":\"RESUME_CRAWLER\"}", 0);
        break;
    case 4:
        type = "command";
        key = "START_JOB";
        payf(&pl,
             "{\"type\":\"START_JOB\",\"jobId\":\"j%u\",\"fullPath\":\"g/p\","
             "\"command\":\"crawl\"}",
             x);
        break;
    case 5:
        payf(&pl, "{\"requestId\":\"r-%u\",\"answer\":42}", x % 4);
        break;
    case 6:
        pay_big(&pl, x);
        break;
    case 7:
        payf(&pl, "{\"unclosed\":%u", x);
        break;
    case 8:
        type = "command";
        key = "register";
        payf(&pl, "{\"id\":\"web-server\",\"pid\":%u,\"type\":\"copilot-study\"}", x);
        break;
    case 9:
        key = "PROGRESS_UPDATE";
        payf(&pl, "{\"taskId\":\"t\",\"status\":\"done\",\"timestamp\":\"%u\"}", x);
        break;
    case 10:
        type = x & 1 ? "heartbeat" : "nonsense";
        key = x & 2 ? "heartbeat" : "x";
        payf(&pl, "{}", 0);
        break;
    default:
        pay_raw(S, &pl, x);
        break;
    }
    set_env(&e, type, key, c_dest[dsel & 3], &pl);
    if (t % 12 == 1 && (x & 4)) {
        extra.name.ptr = "requestId";
        extra.name.len = 9;
        extra.value.ptr = rid;
        extra.value.len = strlen(rid);
        e.extra = &extra;
        e.n_extra = 1;
    }
    rc = dcs_client_send(S->c, S->now, &e, &id);
    if (rc == 0) ids_add(S->c_ids, &S->n_c_ids, id);
    dcs_buf_free(&pl);
}

static void ev_client_reply(sim *S, unsigned x)
{
    dcs_buf pl;
    dcs_envelope e;
    dcs_member extra;
    char rid[80];
    uint64_t id = 0, conn = S->last_conn - (x & 1);
    int rc;
    dcs_buf_init(&pl, NULL);
    snprintf(rid, sizeof rid, "\"%s\"", S->last_rid);
    if (strcmp(S->last_key, "request_jobs") == 0) {
        payf(&pl, "[{\"taskId\":\"t-%u\"}]", x);
        set_env(&e, "jobResponse", "jobs_available", "", &pl);
        extra.name.ptr = "requestId";
        extra.name.len = 9;
        extra.value.ptr = rid;
        extra.value.len = strlen(rid);
        if (S->last_rid[0]) {
            e.extra = &extra;
            e.n_extra = 1;
        }
    } else {
        char t[160];
        int n = snprintf(t, sizeof t, "{\"requestId\":%s,\"success\":%s,\"accessToken\":\"a\"}",
                         rid, x & 2 ? "false" : "true");
        dcs_buf_append(&pl, t, (size_t)n);
        set_env(&e, "message",
                strcmp(S->last_key, "TOKEN_REFRESH_REQUEST") == 0 ? "TOKEN_REFRESH_RESPONSE"
                                                                  : "genericReply",
                "", &pl);
    }
    rc = dcs_client_reply(S->c, S->now, conn, &e, &id);
    if (rc == 0) ids_add(S->c_ids, &S->n_c_ids, id);
    dcs_buf_free(&pl);
}

static void ev_server_send(sim *S, unsigned t, unsigned x, unsigned dsel)
{
    dcs_buf pl;
    dcs_envelope e;
    uint64_t id = 0;
    int rc, request = 0;
    const char *type = "message", *key = "statusUpdate";
    dcs_buf_init(&pl, NULL);
    switch (t % 10) {
    case 0:
        key = "PROGRESS_UPDATE";
        pl.len = 0;
        {
            char b[160];
            int n =
                snprintf(b, sizeof b,
                         "{\"taskId\":\"t-%u\",\"status\":\"processing\",\"timestamp\":\"T%u\"}",
                         x & 3, (x >> 2) & 3);
            dcs_buf_append(&pl, b, (size_t)n);
        }
        break;
    case 1:
        key = "TOKEN_REFRESH_REQUEST";
        payf(&pl, "{\"providerId\":\"gitlab\",\"userId\":\"u%u\"}", x % 3);
        request = 1;
        break;
    case 2:
        type = "jobRequest";
        key = "request_jobs";
        payf(&pl, "{}", 0);
        request = 1;
        break;
    case 3:
        key = "shutdown";
        payf(&pl, "{\"signal\":\"SIGTERM\"}", 0);
        break;
    case 4:
        payf(&pl, "{\"status\":\"idle\",\"n\":%u}", x);
        break;
    case 5:
        key = "customQuery";
        payf(&pl, "{\"q\":%u}", x);
        request = 1;
        break;
    case 6:
        pay_big(&pl, x);
        break;
    case 7:
        key = "TOKEN_REFRESH_REQUEST";
        payf(&pl, "{\"requestId\":\"r-%u\",\"providerId\":\"gitlab\"}", x % 3);
        break;
    case 8:
        type = "command";
        key = "PAUSE_CRAWLER";
        payf(&pl, "{\"type\":\"PAUSE_CRAWLER\"}", 0);
        break;
    default:
        pay_raw(S, &pl, x);
        request = (x & 1) != 0;
        break;
    }
    set_env(&e, type, key, s_dest[dsel & 3], &pl);
    if (request) {
        uint64_t conn = (dsel >> 2) & 1 ? S->link : 0;
        const char *cid = (dsel >> 3) & 1 ? "web-server" : NULL;
        rc = dcs_server_request(S->s, S->now, conn, cid, &e, &id);
        if (rc == 0) ids_add(S->reqs, &S->n_reqs, id);
    } else {
        rc = dcs_server_send(S->s, S->now, &e, &id);
        if (rc == 0) ids_add(S->s_ids, &S->n_s_ids, id);
    }
    dcs_buf_free(&pl);
}

static void ev_raw(sim *S, unsigned where, unsigned n)
{
    const uint8_t *p;
    size_t got = fz_take(S->in, n, &p);
    const char *placed;
    int rc;
    switch (where % 3) {
    case 0: /* into the link, client to server */
        if (S->link && !S->c_gone) dcs_buf_append(&S->c2s.b, p, got);
        break;
    case 1: /* into the link, server to client */
        if (S->c_connected && !S->s_gone) dcs_buf_append(&S->s2c.b, p, got);
        break;
    default: /* into another server connection */
        if (S->n_raw == 0) break;
        placed = fz_place(0, p, got);
        rc = dcs_server_input(S->s, S->now, S->raw[(where / 3) % S->n_raw], placed, got);
        FZ_CHECK(rc == 0, "server input: %s", dcs_err_name(rc));
        drain(S);
        fz_retire(0);
        break;
    }
}

static void ev_raw_accept(sim *S, unsigned b)
{
    int64_t uid = (b & 3) == 0 ? BAD_UID : (b & 3) == 1 ? -1 : OWN_UID;
    uint64_t id;
    int rc;
    if (S->next_conn >= MAX_CONNS || S->n_raw >= 8) return;
    id = ++S->next_conn;
    S->conns[id].used = 1;
    S->conns[id].raw = 1;
    rc = dcs_server_accept(S->s, S->now, id, uid, b & 4 ? 0 : 77, OWN_UID);
    FZ_CHECK(rc == 0 || rc == DCS_SERVER_REFUSED, "accept: %d", rc);
    if (rc == 0) S->raw[S->n_raw++] = id;
}

static void ev_ack(sim *S, int server, unsigned b)
{
    size_t k = b & 1 ? SIZE_MAX : (b >> 1) + 1, i;
    if (!server) {
        if (k > S->n_c_unacked) k = S->n_c_unacked;
        for (i = 0; i < k; i++)
            dcs_client_written(S->c, S->now, S->c_unacked[i]);
        memmove(S->c_unacked, S->c_unacked + k, (S->n_c_unacked - k) * sizeof S->c_unacked[0]);
        S->n_c_unacked -= k;
    } else {
        if (k > S->n_s_unacked) k = S->n_s_unacked;
        for (i = 0; i < k; i++)
            dcs_server_written(S->s, S->now, S->s_unacked[i].conn, S->s_unacked[i].id);
        memmove(S->s_unacked, S->s_unacked + k, (S->n_s_unacked - k) * sizeof S->s_unacked[0]);
        S->n_s_unacked -= k;
    }
}

static void ev_end(sim *S, unsigned b)
{
    switch (b % 4) {
    case 0: /* both ends see the link break */
        if (S->c_connected) {
            S->c_connected = 0;
            dcs_client_ended(S->c, S->now);
        }
        if (S->link && !S->conns[S->link].closed) dcs_server_ended(S->s, S->now, S->link);
        S->link = 0;
        break;
    case 1: /* the client's end closes: the server reads the rest, then EOF */
        if (S->c_connected) {
            S->c_gone = 1;
            S->c_connected = 0;
            dcs_client_ended(S->c, S->now);
        }
        break;
    case 2: /* the server's end closes */
        if (S->link && !S->conns[S->link].closed) {
            S->s_gone = 1;
            dcs_server_ended(S->s, S->now, S->link);
            S->conns[S->link].closed = 1;
        }
        break;
    default: /* another connection ends */
        if (S->n_raw) {
            size_t i = (b / 4) % S->n_raw;
            dcs_server_ended(S->s, S->now, S->raw[i]);
            S->conns[S->raw[i]].closed = 1;
            S->raw[i] = S->raw[--S->n_raw];
        }
        break;
    }
}

static dcs_ms step_ms(unsigned b)
{
    static const dcs_ms steps[16] = {0,    1,    9,     100,   499,   1000,  2000,   4999,
                                     5000, 9999, 10000, 15000, 30000, 60000, 300000, 1};
    return steps[b & 15] * (b >> 4 ? (dcs_ms)(b >> 4) : 1);
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

static void small_limits(dcs_session_config *s)
{
    dcs_session_config_init(s);
    s->queue_max_messages = 8;
    s->queue_max_bytes = 2048;
    s->dedup_max_keys = 4;
    s->max_pending_requests = 3;
    s->max_connections = 4;
    s->flood_rate = 20;
    s->flood_burst = 40;
    s->max_message_size = 4096;
    s->max_depth = 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sim S; /* large: not on the stack */
    fz_in in = {data, size};
    unsigned cfgb = fz_u8(&in), ops = 0;
    dcs_client_config cc;
    dcs_server_config sc;
    int rc;

    if (trace < 0) {
        trace = getenv("FZ_TRACE") && *getenv("FZ_TRACE") ? 1 : 0;
        ignore_list = getenv("FZ_IGNORE");
    }
    if (cfgb & 0x80) {
        fz_blocks_run(&in);
        return 0;
    }
    memset(&S, 0, sizeof S);
    S.in = &in;
    S.now = 1000;
    S.u = 0.5;
    dcs_buf_init(&S.c2s.b, NULL);
    dcs_buf_init(&S.s2c.b, NULL);
    dcs_buf_init(&S.scratch, NULL);
    small_limits(&S.limits);
    fz_alloc_init(&S.ca, 0);
    fz_alloc_init(&S.sa, 0);

    dcs_client_config_init(&cc);
    cc.s = S.limits;
    cc.rng.uniform = rng_uniform;
    cc.rng.bytes = rng_bytes;
    cc.rng.ud = &S;
    cc.wall_offset = 1735930800000LL;
    cc.pid = 321;
    cc.server_uid = OWN_UID;
    cc.max_inflight_bytes = 1024;
    cc.allocator = &S.ca.a;
    dcs_server_config_init(&sc);
    sc.s = S.limits;
    sc.own_uid = OWN_UID;
    {
        static const int64_t allowed[1] = {OTHER_UID};
        sc.allowed_uids = allowed;
        sc.n_allowed_uids = 1;
    }
    sc.rng.uniform = rng_uniform;
    sc.rng.bytes = rng_bytes;
    sc.rng.ud = &S;
    sc.wall_offset = 1735930800000LL;
    sc.max_inflight_bytes = 1024;
    sc.allocator = &S.sa.a;
    if (cfgb & 1) {
        sc.secret = SECRET;
        sc.secret_len = sizeof SECRET - 1;
        cc.secret = cfgb & 2 ? SECRET2 : SECRET;
        cc.secret_len = sizeof SECRET - 1;
    } else if (cfgb & 4) {
        sc.lenient = 1;
        S.lenient = 1;
    }
    cc.require_handshake = (cfgb & 8) != 0;
    S.c = dcs_client_new(&cc, &rc);
    FZ_CHECK(S.c != NULL, "dcs_client_new: %s", dcs_err_name(rc));
    S.s = dcs_server_new(&sc, &rc);
    FZ_CHECK(S.s != NULL, "dcs_server_new: %s", dcs_err_name(rc));

    dcs_client_start(S.c, S.now);
    drain(&S);
    while (in.n > 0 && ops++ < MAX_OPS) {
        unsigned op = fz_u8(&in), a = fz_u8(&in);
        TRACE("event %u at %lld: op %u arg %u\n", ops, (long long)S.now, op % 16, a);
        switch (op % 16) {
        case 0:
            advance(&S, step_ms(a));
            break;
        case 1:
            ev_connect_result(&S, a);
            break;
        case 2:
            deliver(&S, &S.c2s, 1, a ? a * (size_t)(1 + (op >> 6)) : 0);
            break;
        case 3:
            deliver(&S, &S.s2c, 0, a ? a * (size_t)(1 + (op >> 6)) : 0);
            break;
        case 4:
            ev_client_send(&S, a, fz_u8(&in), op >> 4);
            break;
        case 5:
            ev_server_send(&S, a, fz_u8(&in), op >> 4);
            break;
        case 6:
            ev_ack(&S, 0, a);
            break;
        case 7:
            ev_ack(&S, 1, a);
            break;
        case 8:
            ev_end(&S, a);
            break;
        case 9:
            ev_raw_accept(&S, a);
            break;
        case 10:
            ev_raw(&S, op >> 4, a);
            break;
        case 11:
            if (a % 8 == 0)
                dcs_client_stop(S.c, S.now);
            else if (a % 8 == 1)
                dcs_client_start(S.c, S.now);
            break;
        case 12:
            if (a % 4 == 0) dcs_server_shutdown(S.s, S.now, a & 4 ? "SIGINT" : "SIGTERM");
            break;
        case 13:
            ev_client_reply(&S, a);
            break;
        case 14:
            S.u = a / 256.0;
            break;
        default:
            /* Deliver everything both ways. */
            deliver(&S, &S.c2s, 1, 0);
            deliver(&S, &S.s2c, 0, 0);
            break;
        }
        drain(&S);
        check_invariants(&S);
    }

    /* The end: shut both down; every request gets its result. */
    dcs_client_stop(S.c, S.now);
    dcs_server_shutdown(S.s, S.now, "SIGTERM");
    drain(&S);
    advance(&S, 10 * S.limits.shutdown_grace + S.limits.request_timeout);
    if (S.link && !S.conns[S.link].closed) dcs_server_ended(S.s, S.now, S.link);
    while (S.n_raw) {
        dcs_server_ended(S.s, S.now, S.raw[--S.n_raw]);
    }
    dcs_server_shutdown(S.s, S.now, "SIGTERM");
    drain(&S);
    advance(&S, 10 * S.limits.shutdown_grace);
    check_invariants(&S);
    FZ_CHECK(dcs_client_state(S.c) == DCS_CLIENT_CLOSED, "client not CLOSED after stop: %s",
             dcs_client_state_name(dcs_client_state(S.c)));
    FZ_CHECK(dcs_server_done(S.s), "server not done after shutdown");
    {
        size_t i;
        for (i = 0; i < S.n_reqs && S.n_reqs < MAX_IDS; i++)
            FZ_CHECK(S.reqs[i].done, "request %llu never got a RESULT",
                     (unsigned long long)S.reqs[i].id);
    }
    dcs_client_free(S.c);
    dcs_server_free(S.s);
    FZ_CHECK(S.ca.live == 0, "the client leaked %ld blocks", S.ca.live);
    FZ_CHECK(S.sa.live == 0, "the server leaked %ld blocks", S.sa.live);
    dcs_buf_free(&S.c2s.b);
    dcs_buf_free(&S.s2c.b);
    dcs_buf_free(&S.scratch);
    return 0;
}
