/* client.c - the client (web-app side) state machine (spec section 8).
 *
 * Inputs record what happened; dcs_client_next() then hands out one action at
 * a time from the action list of actions.h (texts and copied bytes in an
 * arena reset once the list has been drained). The
 * decoder is advanced one event per dcs_client_next() call, and only when no
 * action is waiting, so a DELIVER action's message stays valid until the next
 * call. Messages handed to the shell in WRITE actions stay in the in-flight
 * list until the shell reports them written or the connection ends (spec
 * 8.6); buffers of a connection that ended are freed only once the actions
 * that may point at them have been handed out (graveyard).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "dcs/client.h"
#include "util.h"
#include "wire.h"

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

enum { K_APP, K_REPLY, K_CONTROL }; /* what an in-flight write is (spec 8.6) */

struct dcs_client {
    dcs_client_config cfg;
    char *id, *server_id, *client_type;
    unsigned char *secret;
    const dcs_allocator *al;

    int state;
    unsigned failures;
    int attempting; /* a connect attempt is in progress (CONNECTING, HALF_OPEN) */
    uint64_t gen;   /* connection generation; the current one while connected */
    int connected;
    dcs_ms t_state, t_heartbeat, t_liveness;

    dcs_decoder *dec;
    int input_pending;
    dcs_message msg;
    dcs_error err;

    dcs_queue *queue;
    dcs__flight fl;
    uint64_t next_id;

    dcs_dedup *dedup_progress, *dedup_token;

    dcs__actions q;
    char **graveyard;
    size_t n_grave, cap_grave;
    dcs_buf scratch, enc;

    dcs_ms connected_at_wall, last_activity, t_sweep;
    int64_t server_uid_seen;
    dcs_client_stats stats;
};

#define NOW_WALL(c, now) ((now) + (c)->cfg.wall_offset)

static const char *const dcs__state_names[] = {
    "DISCONNECTED", "CONNECTING", "REGISTERING", "OPEN", "BACKOFF",
    "BREAKER_OPEN", "BREAKER_HALF_OPEN", "STOPPING", "CLOSED",
};

const char *dcs_client_state_name(int state)
{
    if (state < 0 || (size_t)state >= sizeof dcs__state_names / sizeof dcs__state_names[0])
        return "UNKNOWN";
    return dcs__state_names[state];
}

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

static struct dcs__act *dcs__push(dcs_client *c, int kind)
{
    return dcs__actions_push(&c->q, kind, c->gen);
}

static void dcs__log(dcs_client *c, int level, const char *category, const char *reason,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void dcs__log(dcs_client *c, int level, const char *category, const char *reason,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dcs__actions_logv(&c->q, c->gen, level, category, reason, fmt, ap);
    va_end(ap);
}

static void dcs__drop(dcs_client *c, uint64_t id, const char *reason, const char *data, size_t len)
{
    dcs__actions_drop(&c->q, c->gen, id, reason, data, len);
}

static void dcs__simple(dcs_client *c, int kind, const char *reason, unsigned flags)
{
    dcs__actions_simple(&c->q, c->gen, kind, reason, flags);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

/* Hand bytes to the shell: keep them in flight and emit a WRITE. */
static int dcs__write(dcs_client *c, int kind, uint64_t id, dcs_ms enqueued, const char *data,
                      size_t len)
{
    int rc = dcs__flight_write(&c->fl, &c->q, c->gen, kind, id, enqueued, data, len);
    if (rc == 0) {
        c->stats.messages_out++;
        c->stats.bytes_out += len;
        c->stats.out_by_type[dcs_msg_type_of(data, len)]++;
    }
    return rc;
}

/* Build a control message in enc and write it. */
static void dcs__write_control(dcs_client *c, int rc)
{
    if (rc == 0)
        rc = dcs__write(c, K_CONTROL, ++c->next_id, 0, c->enc.data, c->enc.len);
    if (rc)
        dcs__log(c, DCS_LOG_ERROR, DCS_CAT_CLIENT, dcs_err_name(rc),
                 "cannot write a control message: %s", dcs_strerror(rc));
}

static void dcs__close_notice(dcs_client *c, dcs_ms now, const char *reason)
{
    c->enc.len = 0;
    dcs__write_control(c, dcs__wire_close(&c->enc, c->id, c->server_id, reason, NOW_WALL(c, now)));
    dcs__simple(c, DCS_ACT_CLOSE, reason, DCS_CLOSE_AFTER_WRITES);
}

static void dcs__on_queue_drop(void *ud, const dcs_queue_item *item, const char *reason)
{
    dcs_client *c = ud;
    if (strcmp(reason, "queue-count") == 0)
        c->stats.drop_queue_count++;
    else if (strcmp(reason, "queue-bytes") == 0)
        c->stats.drop_queue_bytes++;
    else
        c->stats.drop_queue_age++;
    dcs__drop(c, item->id, reason, item->data, item->len);
    /* The DROP action is the report; this line is detail for debugging. */
    dcs__log(c, DCS_LOG_DEBUG, DCS_CAT_CLIENT, reason, "dropped queued message %llu (%zu bytes)",
             (unsigned long long)item->id, item->len);
}

/* Move queued messages to the socket while OPEN (spec 8.6 flush). */
static void dcs__flush(dcs_client *c, dcs_ms now)
{
    size_t max = c->cfg.max_inflight_bytes;
    dcs_queue_expire(c->queue, now);
    while (c->fl.bytes < max) {
        const dcs_queue_item *it = dcs_queue_peek(c->queue);
        if (!it)
            break;
        if (dcs__write(c, K_APP, it->id, it->enqueued, it->data, it->len))
            break;
        dcs_queue_pop(c->queue);
    }
}

/* ------------------------------------------------------------------------ */
/* Connection life cycle                                                     */

static void dcs__attempt(dcs_client *c, dcs_ms now, int state)
{
    c->state = state;
    c->attempting = 1;
    c->t_state = now + c->cfg.s.connect_timeout;
    c->stats.connect_attempts++;
    dcs__simple(c, DCS_ACT_CONNECT, NULL, 0);
}

static dcs_ms dcs__delay(dcs_client *c, unsigned failures)
{
    return dcs_backoff_delay(&c->cfg.s, failures, c->cfg.rng.uniform(c->cfg.rng.ud));
}

/* A failed attempt (spec 8.1 "fail", row 8). */
static void dcs__fail(dcs_client *c, dcs_ms now, const char *why)
{
    int half_open = c->state == DCS_CLIENT_BREAKER_HALF_OPEN;
    c->attempting = 0;
    c->failures++;
    c->stats.connect_failures++;
    if (half_open || c->failures >= c->cfg.s.breaker_threshold) {
        c->state = DCS_CLIENT_BREAKER_OPEN;
        c->t_state = now + c->cfg.s.breaker_open;
        c->stats.breaker_opens++;
        dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, why,
                 "connect attempt failed (%s); circuit breaker open for %lld ms after %u failures",
                 why, (long long)c->cfg.s.breaker_open, c->failures);
    } else {
        dcs_ms d = dcs__delay(c, c->failures);
        c->state = DCS_CLIENT_BACKOFF;
        c->t_state = now + d;
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, why,
                 "connect attempt failed (%s); next attempt in %lld ms", why, (long long)d);
    }
}

/* Report the decoding error in c->err (spec 11.2 f): reason, offset and
 * message offset. */
static void dcs__bad_input(dcs_client *c)
{
    char at[32];
    c->stats.decode_errors++;
    if (c->err.msg_offset == DCS_NO_OFFSET)
        snprintf(at, sizeof at, "none");
    else
        snprintf(at, sizeof at, "%llu", (unsigned long long)c->err.msg_offset);
    dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, dcs_err_name(c->err.code),
             "bad input at byte %llu (message at %s) of connection %llu: %s",
             (unsigned long long)c->err.offset, at, (unsigned long long)c->gen, c->err.message);
}

/* The connection-lost actions (spec 8.1 "lost"). */
static void dcs__lost(dcs_client *c, dcs_ms now, const char *reason)
{
    size_t i, n_back = 0;
    if (!c->connected)
        return;
    c->connected = 0;
    c->input_pending = 0;
    c->t_heartbeat = c->t_liveness = c->t_sweep = DCS_NEVER;
    while (dcs_decoder_finish(c->dec, &c->err) == DCS_ERROR)
        dcs__bad_input(c);
    /* In-flight writes: queueable ones go back to the head of the queue in
     * their order, the others are lost (spec 8.6). */
    for (i = c->fl.n; i-- > 0;) {
        struct dcs__inflight *f = &c->fl.v[i];
        if (f->kind == K_APP &&
            dcs_queue_push_front(c->queue, f->enqueued, f->id, f->data, f->len) == 0) {
            n_back++;
        } else {
            c->stats.drop_lost_in_flight++;
            if (f->kind != K_CONTROL)
                dcs__drop(c, f->id, "lost-in-flight", f->data, f->len);
        }
    }
    for (i = 0; i < c->fl.n; i++) {
        /* A WRITE action not yet handed out may point at this buffer. */
        if (c->n_grave == c->cap_grave) {
            size_t cap = c->cap_grave ? c->cap_grave * 2 : 16;
            char **v = c->al->realloc(c->al->ud, c->graveyard, cap * sizeof *v);
            if (v) {
                c->graveyard = v;
                c->cap_grave = cap;
            }
        }
        if (c->n_grave < c->cap_grave) {
            c->graveyard[c->n_grave++] = c->fl.v[i].data;
        } else {
            /* Out of memory: cancel the WRITE actions that point at it. */
            dcs__actions_cancel_writes(&c->q, c->fl.v[i].data);
            c->al->free(c->al->ud, c->fl.v[i].data);
        }
    }
    c->fl.n = 0;
    c->fl.bytes = 0;
    c->stats.connections_lost++;
    dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, reason,
             "connection %llu ended (%s); %zu unfinished messages re-queued",
             (unsigned long long)c->gen, reason, n_back);
    dcs__log(c, DCS_LOG_INFO, DCS_CAT_AUTH, "unregistered", "server %s removed from the registry",
             c->server_id);
    dcs__simple(c, DCS_ACT_LOST, reason, 0);
    (void)now;
}

/* Register and enter OPEN (spec 8.1 rows 2, 9, 10). */
static void dcs__open(dcs_client *c, dcs_ms now, const char *nonce, const char *mac)
{
    struct dcs__act *x;
    c->enc.len = 0;
    dcs__write_control(c, dcs__wire_register(&c->enc, c->id, c->server_id, c->id, c->cfg.pid,
                                             c->client_type, nonce, mac, NOW_WALL(c, now)));
    c->state = DCS_CLIENT_OPEN;
    c->failures = 0;
    c->t_state = DCS_NEVER;
    c->t_heartbeat = now + c->cfg.s.client_heartbeat;
    c->t_sweep = now + c->cfg.s.auth_sweep;
    c->last_activity = now;
    x = dcs__push(c, DCS_ACT_OPEN);
    if (x) {
        x->a.peer_id.ptr = c->server_id;
        x->a.peer_id.len = strlen(c->server_id);
    }
    dcs__log(c, DCS_LOG_INFO, DCS_CAT_AUTH, "registered",
             "server %s added to the registry (connection %llu)", c->server_id,
             (unsigned long long)c->gen);
    dcs__flush(c, now);
}

void dcs_client_connect_result(dcs_client *c, dcs_ms now, int result, int64_t peer_uid)
{
    if (!c->attempting)
        return;
    c->attempting = 0;
    if (result == DCS_CONNECT_MISSING) {
        dcs_ms d = dcs__delay(c, c->failures);
        c->stats.connect_skipped++;
        if (c->state != DCS_CLIENT_BREAKER_HALF_OPEN)
            c->state = DCS_CLIENT_BACKOFF;
        c->t_state = now + d;
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "socket-missing",
                 "socket file missing; next attempt in %lld ms (not a failure)", (long long)d);
        return;
    }
    if (result != DCS_CONNECT_OK) {
        dcs__fail(c, now, "connect-failed");
        return;
    }
    c->gen++;
    c->connected = 1;
    c->stats.connections++;
    dcs_decoder_reset(c->dec);
    c->t_liveness = now + c->cfg.s.heartbeat_timeout;
    c->connected_at_wall = NOW_WALL(c, now);
    c->server_uid_seen = peer_uid;
    if (c->cfg.server_uid >= 0 && peer_uid != c->cfg.server_uid) {
        dcs__log(c, DCS_LOG_ERROR, DCS_CAT_AUTH, "peer-uid-refused",
                 "server uid %lld is not the expected %lld", (long long)peer_uid,
                 (long long)c->cfg.server_uid);
        dcs__simple(c, DCS_ACT_CLOSE, "peer-uid-refused", 0);
        dcs__lost(c, now, "peer-uid-refused");
        dcs__fail(c, now, "peer-uid-refused");
        return;
    }
    if (c->secret) {
        c->state = DCS_CLIENT_REGISTERING;
        c->t_state = now + c->cfg.s.challenge_wait;
        return;
    }
    dcs__open(c, now, NULL, NULL);
}

void dcs_client_start(dcs_client *c, dcs_ms now)
{
    if (c->state != DCS_CLIENT_DISCONNECTED)
        return;
    dcs__attempt(c, now, DCS_CLIENT_CONNECTING);
}

/* Drop every queued message with reason shutdown and enter CLOSED. */
static void dcs__closed(dcs_client *c, dcs_ms now)
{
    const dcs_queue_item *it;
    while ((it = dcs_queue_peek(c->queue)) != NULL) {
        c->stats.drop_shutdown++;
        dcs__drop(c, it->id, "shutdown", it->data, it->len);
        dcs_queue_pop(c->queue);
    }
    if (c->connected) {
        dcs__close_notice(c, now, "shutdown");
        dcs__lost(c, now, "shutdown");
    } else if (c->attempting) {
        dcs__simple(c, DCS_ACT_CLOSE, "shutdown", 0);
    }
    c->attempting = 0;
    c->state = DCS_CLIENT_CLOSED;
    c->t_state = c->t_heartbeat = c->t_liveness = c->t_sweep = DCS_NEVER;
}

void dcs_client_stop(dcs_client *c, dcs_ms now)
{
    if (c->state == DCS_CLIENT_CLOSED || c->state == DCS_CLIENT_STOPPING)
        return;
    if (c->state == DCS_CLIENT_OPEN) {
        c->state = DCS_CLIENT_STOPPING;
        c->t_state = now + c->cfg.s.shutdown_grace;
        /* no heartbeat or registry sweep while the queue drains (13.3):
         * their timers are only handled in OPEN */
        c->t_heartbeat = c->t_sweep = DCS_NEVER;
        dcs__flush(c, now);
        return;
    }
    dcs__closed(c, now);
}

void dcs_client_ended(dcs_client *c, dcs_ms now)
{
    switch (c->state) {
    case DCS_CLIENT_REGISTERING:
        dcs__lost(c, now, "ended");
        dcs__fail(c, now, "ended-before-open");
        break;
    case DCS_CLIENT_OPEN:
        dcs__lost(c, now, "ended");
        c->state = DCS_CLIENT_BACKOFF;
        c->t_state = now + dcs__delay(c, 0);
        break;
    case DCS_CLIENT_STOPPING:
        /* the connection is gone: nothing more is written on it, not even
         * a close notice */
        dcs__lost(c, now, "ended");
        dcs__closed(c, now);
        break;
    default:
        if (c->connected)
            dcs__lost(c, now, "ended");
        break;
    }
}

void dcs_client_written(dcs_client *c, dcs_ms now, uint64_t write_id)
{
    (void)now;
    dcs__flight_done(&c->fl, c->al, write_id);
}

int dcs_client_input(dcs_client *c, dcs_ms now, const void *data, size_t len)
{
    (void)now;
    if (!c->connected)
        return 0; /* bytes from a connection we no longer have */
    if (c->input_pending)
        return DCS_EBUSY;
    c->stats.bytes_in += len;
    dcs_decoder_feed(c->dec, data, len);
    c->input_pending = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

static int dcs__encode_app(dcs_client *c, dcs_ms now, const dcs_envelope *env)
{
    dcs_envelope e = *env;
    int rc;
    if (!e.origin.ptr || !e.origin.len) {
        e.origin.ptr = c->id;
        e.origin.len = strlen(c->id);
    }
    if (!e.destination.ptr || !e.destination.len) {
        e.destination.ptr = c->server_id;
        e.destination.len = strlen(c->server_id);
    }
    if (!e.has_timestamp) {
        e.has_timestamp = 1;
        memset(&e.timestamp, 0, sizeof e.timestamp);
        e.timestamp.kind = DCS_NUM_INT;
        e.timestamp.i = NOW_WALL(c, now);
    }
    c->enc.len = 0;
    rc = dcs_encode_limit(&c->enc, &e, DCS_ENCODE_VALIDATE, c->cfg.s.max_depth);
    if (rc == 0 && c->enc.len > c->cfg.s.max_message_size)
        rc = DCS_ETOO_LARGE;
    if (rc) {
        c->stats.drop_refused++;
        dcs__log(c, DCS_LOG_ERROR, DCS_CAT_CLIENT, dcs__refusal_reason(rc),
                 "message refused before sending: %s", dcs_strerror(rc));
    }
    return rc;
}

int dcs_client_send(dcs_client *c, dcs_ms now, const dcs_envelope *env, uint64_t *id)
{
    int rc;
    uint64_t mid;
    if (c->state == DCS_CLIENT_CLOSED || c->state == DCS_CLIENT_STOPPING)
        return DCS_EINVAL;
    if ((rc = dcs__encode_app(c, now, env)))
        return rc;
    mid = ++c->next_id;
    if (id)
        *id = mid;
    if (c->state == DCS_CLIENT_OPEN && dcs_queue_count(c->queue) == 0 &&
        c->fl.bytes < c->cfg.max_inflight_bytes)
        return dcs__write(c, K_APP, mid, now, c->enc.data, c->enc.len);
    return dcs_queue_push(c->queue, now, mid, c->enc.data, c->enc.len);
}

int dcs_client_reply(dcs_client *c, dcs_ms now, uint64_t conn, const dcs_envelope *env,
                     uint64_t *id)
{
    int rc;
    uint64_t mid;
    if ((rc = dcs__encode_app(c, now, env)))
        return rc;
    mid = ++c->next_id;
    if (id)
        *id = mid;
    if (conn != c->gen || !c->connected ||
        (c->state != DCS_CLIENT_OPEN && c->state != DCS_CLIENT_STOPPING)) {
        c->stats.drop_stale_reply++;
        dcs__drop(c, mid, "stale-reply", c->enc.data, c->enc.len);
        dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, "stale-reply",
                 "reply to a request of connection %llu dropped: that connection has ended",
                 (unsigned long long)conn);
        return 0;
    }
    return dcs__write(c, K_REPLY, mid, now, c->enc.data, c->enc.len);
}

/* ------------------------------------------------------------------------ */
/* Receiving (spec 8.11)                                                     */

static void dcs__deliver(dcs_client *c)
{
    struct dcs__act *x = dcs__push(c, DCS_ACT_DELIVER);
    if (x) {
        x->a.msg = &c->msg;
        c->stats.delivered++;
    }
}

/* Dedup (spec 8.7): 1 if the message is a duplicate. */
static int dcs__duplicate(dcs_client *c, dcs_ms now, int progress)
{
    const dcs_slice pl = c->msg.payload;
    uint64_t evicted = 0;
    int rc;
    c->scratch.len = 0;
    if (progress) {
        if (dcs_json_member_string(pl.ptr, pl.len, "taskId", &c->scratch) != 1 ||
            dcs_buf_append(&c->scratch, "", 1) ||
            dcs_json_member_string(pl.ptr, pl.len, "timestamp", &c->scratch) != 1)
            return 0;
    } else if (dcs_json_member_string(pl.ptr, pl.len, "requestId", &c->scratch) != 1) {
        return 0;
    }
    rc = dcs_dedup_check(progress ? c->dedup_progress : c->dedup_token, now, c->scratch.data,
                         c->scratch.len, &evicted);
    c->stats.dedup_evicted += evicted;
    if (rc == DCS_DEDUP_DUPLICATE) {
        c->stats.duplicates++;
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "duplicate", "duplicate %.*s dropped",
                 (int)c->msg.key.len, c->msg.key.ptr);
        return 1;
    }
    return 0;
}

static void dcs__on_message(dcs_client *c, dcs_ms now)
{
    dcs_message *m = &c->msg;
    const char *why = NULL;

    c->stats.messages_in++;
    c->stats.in_by_type[dcs_msg_type_index(m->type)]++;
    c->t_liveness = now + c->cfg.s.heartbeat_timeout;
    c->last_activity = now;

    if (c->state == DCS_CLIENT_REGISTERING) {
        if (dcs__slice_is(m->type, "command") && dcs__slice_is(m->key, "challenge")) {
            dcs_slice nonce;
            char mac[65], nz[129];
            if (dcs_fit_check(m, &why) != 0) {
                dcs__log(c, DCS_LOG_ERROR, DCS_CAT_AUTH, "challenge-invalid",
                         "challenge refused: %s", why);
                dcs__close_notice(c, now, "challenge-invalid");
                dcs__lost(c, now, "challenge-invalid");
                dcs__fail(c, now, "challenge-invalid");
                return;
            }
            dcs_json_member(m->payload.ptr, m->payload.len, "nonce", &nonce);
            memcpy(nz, nonce.ptr + 1, nonce.len - 2);
            nz[nonce.len - 2] = '\0';
            dcs_handshake_mac(c->secret, c->cfg.secret_len, nz, nonce.len - 2, c->id,
                              strlen(c->id), mac);
            dcs__open(c, now, nz, mac);
            return;
        }
        c->stats.no_challenge++;
        if (c->cfg.require_handshake) {
            dcs__log(c, DCS_LOG_ERROR, DCS_CAT_AUTH, "challenge-missing",
                     "the server sent no challenge and the handshake is required");
            dcs__close_notice(c, now, "challenge-missing");
            dcs__lost(c, now, "challenge-missing");
            dcs__fail(c, now, "challenge-missing");
            return;
        }
        dcs__log(c, DCS_LOG_WARN, DCS_CAT_AUTH, "no-challenge",
                 "the server sent no challenge; registering without the handshake");
        dcs__open(c, now, NULL, NULL);
    }

    /* Destination filter (spec 8.8). */
    if (!dcs__slice_is(m->destination, "*") && !dcs__slice_is(m->destination, c->id)) {
        c->stats.wrong_destination++;
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "wrong-destination",
                 "message %.*s/%.*s for \"%.*s\" dropped", (int)m->type.len, m->type.ptr,
                 (int)m->key.len, m->key.ptr, (int)m->destination.len, m->destination.ptr);
        return;
    }

    if (dcs__slice_is(m->type, "heartbeat")) {
        if (!dcs__slice_is(m->key, "heartbeat")) {
            c->stats.unknown_key++;
            dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "unknown-key",
                     "heartbeat with key %.*s delivered as a generic message", (int)m->key.len,
                     m->key.ptr);
            dcs__deliver(c);
        }
        return;
    }
    if (dcs__slice_is(m->type, "command")) {
        if (dcs__slice_is(m->key, "challenge")) {
            c->stats.unexpected_challenge++;
            dcs__log(c, DCS_LOG_WARN, DCS_CAT_AUTH, "unexpected-challenge",
                     "challenge ignored: %s", c->secret ? "already registered" : "no secret");
            return;
        }
        goto wrong_direction; /* commands go from the client to the server */
    }
    if (dcs__slice_is(m->type, "jobResponse"))
        goto wrong_direction;
    if (dcs__slice_is(m->type, "jobRequest")) {
        if (!dcs__slice_is(m->key, "request_jobs")) {
            c->stats.unknown_key++;
            dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "unknown-key",
                     "jobRequest with key %.*s delivered as a generic message", (int)m->key.len,
                     m->key.ptr);
            dcs__deliver(c);
            return;
        }
    } else if (dcs__slice_is(m->type, "message")) {
        if (dcs__slice_is(m->key, "TOKEN_REFRESH_RESPONSE"))
            goto wrong_direction;
        if (dcs__slice_is(m->key, "close")) {
            dcs_buf_reserve(&c->scratch, 1);
            c->scratch.len = 0;
            dcs_json_member_string(m->payload.ptr, m->payload.len, "reason", &c->scratch);
            dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "close-notice",
                     "the server is closing the connection: %.*s", (int)c->scratch.len,
                     c->scratch.data);
            return;
        }
    } else {
        c->stats.unknown_type++;
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "unknown-type",
                 "type %.*s delivered as a generic message", (int)m->type.len, m->type.ptr);
        dcs__deliver(c);
        return;
    }

    /* A catalogue message for the client, or a generic message. */
    if (dcs_fit_check(m, &why) != 0) {
        c->stats.payload_mismatch++;
        dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, "payload_mismatch", "%.*s/%.*s dropped: %s",
                 (int)m->type.len, m->type.ptr, (int)m->key.len, m->key.ptr, why);
        return;
    }
    if (dcs__slice_is(m->type, "message") && dcs__slice_is(m->key, "PROGRESS_UPDATE") &&
        dcs__duplicate(c, now, 1))
        return;
    if (dcs__slice_is(m->type, "message") && dcs__slice_is(m->key, "TOKEN_REFRESH_REQUEST") &&
        dcs__duplicate(c, now, 0))
        return;
    dcs__deliver(c);
    if (dcs__slice_is(m->type, "message") && dcs__slice_is(m->key, "shutdown"))
        dcs__log(c, DCS_LOG_INFO, DCS_CAT_CLIENT, "shutdown",
                 "the server announced a shutdown; the client will reconnect");
    return;

wrong_direction:
    c->stats.wrong_direction++;
    dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, "wrong-direction",
             "%.*s/%.*s is not sent to a client; dropped", (int)m->type.len, m->type.ptr,
             (int)m->key.len, m->key.ptr);
}

/* ------------------------------------------------------------------------ */
/* Timers and the action pump                                                */

static void dcs__timers(dcs_client *c, dcs_ms now)
{
    if (c->t_state <= now) {
        c->t_state = DCS_NEVER;
        switch (c->state) {
        case DCS_CLIENT_CONNECTING:
        case DCS_CLIENT_BREAKER_HALF_OPEN:
            if (c->attempting) {
                dcs__simple(c, DCS_ACT_CLOSE, "connect-timeout", 0);
                dcs__fail(c, now, "connect-timeout");
            } else {
                dcs__attempt(c, now, c->state);
            }
            break;
        case DCS_CLIENT_BACKOFF:
            dcs__attempt(c, now, DCS_CLIENT_CONNECTING);
            break;
        case DCS_CLIENT_BREAKER_OPEN:
            dcs__attempt(c, now, DCS_CLIENT_BREAKER_HALF_OPEN);
            break;
        case DCS_CLIENT_REGISTERING:
            c->stats.no_challenge++;
            if (c->cfg.require_handshake) {
                dcs__close_notice(c, now, "challenge-missing");
                dcs__lost(c, now, "challenge-missing");
                dcs__fail(c, now, "challenge-missing");
            } else {
                dcs__log(c, DCS_LOG_WARN, DCS_CAT_AUTH, "no-challenge",
                         "no challenge within %lld ms; registering without the handshake",
                         (long long)c->cfg.s.challenge_wait);
                dcs__open(c, now, NULL, NULL);
            }
            break;
        case DCS_CLIENT_STOPPING:
            dcs__closed(c, now);
            break;
        default:
            break;
        }
    }
    if (c->t_liveness <= now && c->connected) {
        c->t_liveness = DCS_NEVER;
        if (c->state == DCS_CLIENT_REGISTERING) {
            dcs__simple(c, DCS_ACT_CLOSE, "heartbeat-timeout", 0);
            dcs__lost(c, now, "heartbeat-timeout");
            dcs__fail(c, now, "heartbeat-timeout");
        } else if (c->state == DCS_CLIENT_OPEN || c->state == DCS_CLIENT_STOPPING) {
            c->stats.heartbeat_timeouts++;
            dcs__log(c, DCS_LOG_WARN, DCS_CAT_CLIENT, "heartbeat-timeout",
                     "nothing received for %lld ms; closing", (long long)c->cfg.s.heartbeat_timeout);
            dcs__simple(c, DCS_ACT_CLOSE, "heartbeat-timeout", 0);
            if (c->state == DCS_CLIENT_STOPPING) {
                dcs__lost(c, now, "heartbeat-timeout");
                dcs__closed(c, now);
            } else {
                dcs__lost(c, now, "heartbeat-timeout");
                c->state = DCS_CLIENT_BACKOFF;
                c->t_state = now + dcs__delay(c, 0);
            }
        }
    }
    if (c->t_sweep <= now && c->state == DCS_CLIENT_OPEN) {
        /* The registry sweep (spec 10.2): with heartbeats, liveness closes a
         * silent connection long before this; it matters when the timers are
         * configured otherwise. */
        c->t_sweep = now + c->cfg.s.auth_sweep;
        if (now - c->last_activity >= c->cfg.s.auth_idle) {
            dcs__log(c, DCS_LOG_WARN, DCS_CAT_AUTH, "auth-idle",
                     "server %s idle for %lld ms; removed from the registry", c->server_id,
                     (long long)(now - c->last_activity));
            dcs__close_notice(c, now, "auth-idle");
            dcs__lost(c, now, "auth-idle");
            c->state = DCS_CLIENT_BACKOFF;
            c->t_state = now + dcs__delay(c, 0);
        }
    }
    if (c->t_heartbeat <= now && c->state == DCS_CLIENT_OPEN) {
        c->t_heartbeat = now + c->cfg.s.client_heartbeat;
        c->enc.len = 0;
        dcs__write_control(c, dcs__wire_heartbeat(&c->enc, c->id, c->server_id, NOW_WALL(c, now)));
        c->stats.heartbeats_out++;
    }
    if (dcs_queue_next_expiry(c->queue) <= now)
        dcs_queue_expire(c->queue, now);
}

dcs_ms dcs_client_deadline(const dcs_client *c)
{
    dcs_ms d = c->t_state;
    if (c->t_liveness < d)
        d = c->t_liveness;
    if (c->t_heartbeat < d)
        d = c->t_heartbeat;
    if (c->t_sweep < d)
        d = c->t_sweep;
    if (dcs_queue_next_expiry(c->queue) < d)
        d = dcs_queue_next_expiry(c->queue);
    return d;
}

static int dcs__pop(dcs_client *c, dcs_action *a)
{
    return dcs__actions_pop(&c->q, a);
}

int dcs_client_next(dcs_client *c, dcs_ms now, dcs_action *a)
{
    if (dcs__actions_reset_if_drained(&c->q)) {
        size_t i;
        for (i = 0; i < c->n_grave; i++)
            c->al->free(c->al->ud, c->graveyard[i]);
        c->n_grave = 0;
    }
    if (dcs__pop(c, a))
        return 1;
    dcs__timers(c, now);
    if (dcs__pop(c, a))
        return 1;
    while (c->input_pending && c->connected) {
        int ev = dcs_decoder_next(c->dec, &c->msg, &c->err);
        if (ev == DCS_AGAIN) {
            c->input_pending = 0;
            break;
        }
        if (ev == DCS_ERROR) {
            dcs__bad_input(c);
        } else {
            dcs__on_message(c, now);
        }
        if (dcs__pop(c, a))
            return 1;
    }
    if (c->state == DCS_CLIENT_OPEN || c->state == DCS_CLIENT_STOPPING)
        dcs__flush(c, now);
    if (c->state == DCS_CLIENT_STOPPING && dcs_queue_count(c->queue) == 0 && c->fl.n == 0)
        dcs__closed(c, now);
    c->stats.queue_depth = dcs_queue_count(c->queue);
    c->stats.queue_bytes = dcs_queue_bytes(c->queue);
    return dcs__pop(c, a);
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

void dcs_client_config_init(dcs_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dcs_session_config_init(&cfg->s);
    cfg->server_uid = -1;
}

void dcs_client_registry(const dcs_client *c, dcs_ms now, dcs_client_registry_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!c->connected || (c->state != DCS_CLIENT_OPEN && c->state != DCS_CLIENT_STOPPING))
        return;
    e->present = 1;
    e->id = c->server_id;
    e->uid = c->server_uid_seen;
    e->connected_at = c->connected_at_wall;
    e->last_activity = NOW_WALL(c, c->last_activity);
    e->active = now - c->last_activity < c->cfg.s.auth_active;
}

int dcs_client_state(const dcs_client *c)
{
    return c->state;
}

const dcs_client_stats *dcs_client_get_stats(const dcs_client *c)
{
    dcs_client_stats *s = (dcs_client_stats *)&c->stats;
    s->failures = c->failures;
    s->state = c->state;
    s->queue_depth = dcs_queue_count(c->queue);
    s->queue_bytes = dcs_queue_bytes(c->queue);
    return s;
}

void dcs_client_free(dcs_client *c)
{
    const dcs_allocator *a;
    size_t i;
    if (!c)
        return;
    a = c->al;
    dcs__flight_free(&c->fl, a);
    for (i = 0; i < c->n_grave; i++)
        a->free(a->ud, c->graveyard[i]);
    a->free(a->ud, c->graveyard);
    dcs__actions_free(&c->q);
    dcs_buf_free(&c->scratch);
    dcs_buf_free(&c->enc);
    dcs_queue_free(c->queue);
    dcs_dedup_free(c->dedup_progress);
    dcs_dedup_free(c->dedup_token);
    dcs_decoder_free(c->dec);
    a->free(a->ud, c->id);
    a->free(a->ud, c->server_id);
    a->free(a->ud, c->client_type);
    if (c->secret)
        a->free(a->ud, c->secret);
    a->free(a->ud, c);
}

dcs_client *dcs_client_new(const dcs_client_config *cfg, int *err)
{
    const dcs_allocator *a = cfg->allocator ? cfg->allocator : &dcs_default_allocator;
    dcs_decoder_config dc;
    unsigned char seed[16];
    char why[160];
    dcs_client *c;

    if (err)
        *err = DCS_EINVAL;
    if (!cfg->rng.uniform || !cfg->rng.bytes || dcs_session_config_check(&cfg->s, why, sizeof why))
        return NULL;
    if (cfg->secret && cfg->secret_len == 0)
        return NULL;
    if (err)
        *err = DCS_ENOMEM;
    c = a->alloc(a->ud, sizeof *c);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->al = a;
    c->cfg = *cfg;
    if (!c->cfg.max_inflight_bytes)
        c->cfg.max_inflight_bytes = 1u << 20;
    dcs__actions_init(&c->q, a);
    dcs_buf_init(&c->scratch, a);
    dcs_buf_init(&c->enc, a);
    c->id = dcs__dupstr(a, cfg->id ? cfg->id : "web-server");
    c->server_id = dcs__dupstr(a, cfg->server_id ? cfg->server_id : "external-crawler");
    c->client_type = dcs__dupstr(a, cfg->client_type ? cfg->client_type : "copilot-study");
    if (cfg->secret) {
        c->secret = a->alloc(a->ud, cfg->secret_len);
        if (c->secret)
            memcpy(c->secret, cfg->secret, cfg->secret_len);
    }
    dcs_decoder_config_init(&dc);
    dc.max_message_size = cfg->s.max_message_size;
    dc.max_depth = cfg->s.max_depth;
    dc.allocator = a;
    c->dec = dcs_decoder_new(&dc, NULL);
    c->queue = dcs_queue_new(&c->cfg.s, a, dcs__on_queue_drop, c);
    cfg->rng.bytes(cfg->rng.ud, seed, sizeof seed);
    c->dedup_progress = dcs_dedup_new(cfg->s.dedup_max_keys, cfg->s.dedup_progress, seed, a);
    c->dedup_token = dcs_dedup_new(cfg->s.dedup_max_keys, cfg->s.dedup_token, seed, a);
    if (!c->id || !c->server_id || !c->client_type || (cfg->secret && !c->secret) || !c->dec ||
        !c->queue || !c->dedup_progress || !c->dedup_token) {
        dcs_client_free(c);
        return NULL;
    }
    c->cfg.id = c->id;
    c->cfg.server_id = c->server_id;
    c->cfg.client_type = c->client_type;
    c->cfg.secret = c->secret;
    c->state = DCS_CLIENT_DISCONNECTED;
    c->t_state = c->t_heartbeat = c->t_liveness = c->t_sweep = DCS_NEVER;
    c->server_uid_seen = -1;
    if (err)
        *err = 0;
    return c;
}
