/* server_in.c - what the server does with each event of a connection's
 * decoder, in the order of spec 9.8: flood control (9.6), decoding errors
 * (11.2), liveness and registry activity (8.5, 10.2), register first (9.2,
 * 10.3.4), the destination filter (8.8), then dispatch: commands (9.5),
 * replies and their correlation (7.20, 9.4), the rest (11.3).
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"

#define TK(m) (int)(m)->type.len, (m)->type.ptr, (int)(m)->key.len, (m)->key.ptr

/* ------------------------------------------------------------------------ */
/* Flood control (9.6)                                                       */

/* The bucket holds tokens in units of 1/flood_period of a token: refilling
 * flood_rate tokens per flood_period ms is then flood_rate units per ms, and
 * one message costs flood_period units. Integer arithmetic, no drift. */
int dcs__srv_take_token(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    uint64_t period = (uint64_t)s->cfg.s.flood_period, rate = s->cfg.s.flood_rate;
    uint64_t cap = s->cfg.s.flood_burst > UINT64_MAX / period ? UINT64_MAX
                                                              : s->cfg.s.flood_burst * period;
    if (now > c->bucket_t) {
        uint64_t dt = (uint64_t)(now - c->bucket_t), room = cap - c->tokens;
        if (dt > room / rate)
            c->tokens = cap;
        else
            c->tokens += dt * rate;
        c->bucket_t = now;
    }
    if (c->tokens >= period) {
        c->tokens -= period;
        return 1;
    }
    s->stats.flood_rate++;
    {
        char peer[96];
        dcs__srv_log(s, c, DCS_LOG_ERROR, DCS_CAT_SERVER, "flood-rate",
                     "connection %llu (%s) sent more than %zu messages at once or %zu per %lld "
                     "ms; closing",
                     (unsigned long long)c->id, dcs__srv_peer(c, peer, sizeof peer),
                     s->cfg.s.flood_burst, s->cfg.s.flood_rate, (long long)s->cfg.s.flood_period);
    }
    dcs__srv_close(s, c, now, "flood-rate", 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding errors (11.2)                                                    */

void dcs__srv_on_error(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    const dcs_error *e = &c->err;
    char mo[24] = "none";
    (void)now;
    s->stats.decode_errors++;
    if (e->code > DCS__E_BASE && e->code < DCS__E_END)
        s->codec_errors[e->code - DCS__E_BASE]++;
    if (e->msg_offset != DCS_NO_OFFSET)
        snprintf(mo, sizeof mo, "%llu", (unsigned long long)e->msg_offset);
    /* Offsets and the reason only: the bytes may hold secrets (15.3). */
    dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, dcs_err_name(e->code),
                 "bad input on connection %llu at byte %llu (message at %s): %s",
                 (unsigned long long)c->id, (unsigned long long)e->offset, mo, e->message);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* The decoded string member name of the object obj into out (replacing its
 * contents): 1, 0 when absent or not a string (or obj is not an object),
 * DCS_ENOMEM. */
static int dcs__str(dcs_slice obj, const char *name, dcs_buf *out)
{
    int rc;
    out->len = 0;
    if (!obj.ptr || obj.len == 0 || obj.ptr[0] != '{')
        return 0;
    rc = dcs_json_member_string(obj.ptr, obj.len, name, out);
    if (rc == 1)
        return 1;
    return rc == DCS_ENOMEM ? DCS_ENOMEM : 0;
}

static int dcs__eq(const dcs_buf *b, const char *p, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

static void dcs__deliver(dcs_server *s, dcs__conn *c, const char *reason)
{
    struct dcs__act *x = dcs__srv_push(s, c, DCS_ACT_DELIVER);
    if (x) {
        x->a.msg = &c->msg;
        x->a.reason = reason;
        x->a.peer_id.ptr = c->cid ? c->cid : "";
        x->a.peer_id.len = c->cid ? c->cid_len : 0;
        s->stats.delivered++;
    }
}

/* Set the connection's client id. 0 or DCS_ENOMEM (id unchanged). */
static int dcs__set_cid(dcs_server *s, dcs__conn *c, const char *p, size_t n)
{
    char *d = dcs__memdup(s->al, p, n);
    if (!d)
        return DCS_ENOMEM;
    s->al->free(s->al->ud, c->cid);
    c->cid = d;
    c->cid_len = n;
    return 0;
}

static void dcs__nomem(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    dcs__srv_log(s, c, DCS_LOG_ERROR, DCS_CAT_SERVER, "nomem",
                 "out of memory while handling a message on connection %llu; closing",
                 (unsigned long long)c->id);
    dcs__srv_close(s, c, now, "nomem", 1);
}

/* ------------------------------------------------------------------------ */
/* Register (9.2, 10.3.4)                                                    */

static void dcs__refuse_register(dcs_server *s, dcs__conn *c, dcs_ms now, uint64_t *counter,
                                 const char *reason, const char *what)
{
    char peer[96];
    (*counter)++;
    dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_AUTH, reason,
                 "register on connection %llu (%s) refused: %s", (unsigned long long)c->id,
                 dcs__srv_peer(c, peer, sizeof peer), what);
    dcs__srv_close(s, c, now, reason, 1);
}

/* The first register of a connection (in AWAIT_REGISTER, or in lenient
 * mode before any register was accepted). */
static void dcs__on_register(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    dcs_message *m = &c->msg;
    const char *why = NULL;
    dcs_slice pid;
    int rc;

    /* 1. The register fits 7.3. */
    if (dcs_fit_check(m, &why) != 0) {
        dcs__refuse_register(s, c, now, &s->stats.register_invalid, "register-invalid", why);
        return;
    }
    if ((rc = dcs__str(m->payload, "id", &s->pl)) != 1) {
        dcs__nomem(s, c, now);
        return;
    }
    if (s->secret) {
        int rn = dcs__str(m->payload, "nonce", &s->scratch);
        int rh = rn == 1 ? dcs__str(m->payload, "hmac", &s->scratch2) : 0;
        if (rn < 0 || rh < 0) {
            dcs__nomem(s, c, now);
            return;
        }
        /* 2. String members nonce and hmac. */
        if (rn != 1 || rh != 1) {
            dcs__refuse_register(s, c, now, &s->stats.hmac_missing, "hmac-missing",
                                 "the register carries no nonce and hmac");
            return;
        }
        /* 3. This connection's nonce, not answered before; consumed now. */
        if (!c->has_nonce || !dcs__eq(&s->scratch, c->nonce, strlen(c->nonce))) {
            dcs__refuse_register(s, c, now, &s->stats.hmac_replayed, "hmac-replayed",
                                 "the nonce is not this connection's challenge");
            return;
        }
        if (c->nonce_used) {
            dcs__refuse_register(s, c, now, &s->stats.hmac_replayed, "hmac-replayed",
                                 "the nonce was answered before");
            return;
        }
        c->nonce_used = 1;
        /* 4. Not expired. */
        if (now - c->nonce_sent >= s->cfg.s.nonce_lifetime) {
            dcs__refuse_register(s, c, now, &s->stats.hmac_stale, "hmac-stale",
                                 "the nonce has expired");
            return;
        }
        /* 5. The MAC, compared in constant time. */
        if (!dcs_handshake_verify(s->secret, s->cfg.secret_len, s->scratch.data, s->scratch.len,
                                  s->pl.data, s->pl.len, s->scratch2.data, s->scratch2.len)) {
            dcs__refuse_register(s, c, now, &s->stats.hmac_invalid, "hmac-invalid",
                                 "the hmac does not match");
            return;
        }
    }
    if (dcs__set_cid(s, c, s->pl.data, s->pl.len)) {
        dcs__nomem(s, c, now);
        return;
    }
    if (m->origin.len != c->cid_len || memcmp(m->origin.ptr, c->cid, c->cid_len) != 0)
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "origin-mismatch",
                     "register origin \"%.*s\" differs from its id \"%s\"; using the id",
                     (int)m->origin.len, m->origin.ptr, c->cid);
    /* The self-declared pid is only compared, never used (3.3, 15.2). */
    if (c->pid > 0 && dcs_json_member(m->payload.ptr, m->payload.len, "pid", &pid) == 1) {
        char want[24];
        int n = snprintf(want, sizeof want, "%lld", (long long)c->pid);
        if (pid.len != (size_t)n || memcmp(pid.ptr, want, pid.len) != 0)
            dcs__srv_log(s, c, DCS_LOG_DEBUG, DCS_CAT_AUTH, "pid-mismatch",
                         "register pid %.*s differs from the peer pid %s (pid namespaces?)",
                         (int)(pid.len > 20 ? 20 : pid.len), pid.ptr, want);
    }
    c->got_register = 1;
    c->t_register = DCS_NEVER;
    s->stats.registered++;
    dcs__srv_register_done(s, c, now);
}

/* ------------------------------------------------------------------------ */
/* Replies (7.20, 9.4)                                                       */

/* The reply's correlation id into s->scratch: 1 found, 0 none, DCS_ENOMEM. */
static int dcs__correlation(dcs_server *s, const dcs_message *m)
{
    size_t i;
    int rc = dcs__str(m->payload, "requestId", &s->scratch);
    if (rc != 0)
        return rc;
    for (i = 0; i < m->n_unknown; i++) {
        const dcs_member *u = &m->unknown[i];
        if (dcs__slice_is(u->name, "requestId") && u->value.len >= 2 && u->value.ptr[0] == '"') {
            s->scratch.len = 0;
            rc = dcs_unescape(&s->scratch, u->value.ptr + 1, u->value.len - 2);
            return rc == 0 ? 1 : rc == DCS_ENOMEM ? DCS_ENOMEM : 0;
        }
    }
    return 0;
}

static void dcs__pending_remove(dcs__conn *c, size_t i)
{
    memmove(&c->pending[i], &c->pending[i + 1], (c->n_pending - i - 1) * sizeof c->pending[0]);
    c->n_pending--;
}

/* A catalogue reply (jobs_available, jobs_error: kind JOBS; TOKEN_REFRESH_
 * RESPONSE: kind TOKEN), or a generic message that may answer a generic
 * request (kind GENERIC: delivered plainly when it answers none). */
static void dcs__on_reply(dcs_server *s, dcs__conn *c, dcs_ms now, int kind)
{
    dcs_message *m = &c->msg;
    const char *why = NULL;
    size_t i;
    int rc;

    if (kind != DCS__R_GENERIC && dcs_fit_check(m, &why) != 0) {
        s->stats.payload_mismatch++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "payload_mismatch",
                     "%.*s/%.*s dropped: %s", TK(m), why);
        return;
    }
    rc = kind == DCS__R_GENERIC ? dcs__str(m->payload, "requestId", &s->scratch)
                                : dcs__correlation(s, m);
    if (rc < 0) {
        dcs__nomem(s, c, now);
        return;
    }
    for (i = 0; i < c->n_pending; i++) {
        const struct dcs__pending *p = &c->pending[i];
        if (p->kind != kind)
            continue;
        /* Uncorrelated jobs_* answer the oldest request_jobs (7.20). */
        if (rc == 1 ? dcs__eq(&s->scratch, p->rid, strlen(p->rid)) : kind == DCS__R_JOBS)
            break;
    }
    if (i < c->n_pending) {
        s->stats.replies++;
        dcs__srv_result(s, c, &c->pending[i], "reply", m);
        dcs__pending_remove(c, i);
        return;
    }
    if (kind == DCS__R_GENERIC) {
        dcs__deliver(s, c, NULL);
        return;
    }
    s->stats.unmatched_reply++;
    dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "unmatched-reply",
                 "%.*s/%.*s on connection %llu answers no pending request (requestId %s); "
                 "delivered as uncorrelated",
                 TK(m), (unsigned long long)c->id, rc == 1 ? "given" : "absent");
    dcs__deliver(s, c, "unmatched-reply");
}

/* ------------------------------------------------------------------------ */
/* Commands (9.5)                                                            */

static void dcs__on_command(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    dcs_message *m = &c->msg;
    const char *why = NULL;
    (void)now;
    if (!dcs__slice_is(m->key, "START_JOB") && !dcs__slice_is(m->key, "PAUSE_CRAWLER") &&
        !dcs__slice_is(m->key, "RESUME_CRAWLER")) {
        s->stats.unknown_command++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "unknown-command",
                     "unknown command %.*s on connection %llu ignored", (int)m->key.len,
                     m->key.ptr, (unsigned long long)c->id);
        return;
    }
    if (dcs_fit_check(m, &why) != 0) {
        s->stats.payload_mismatch++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "payload_mismatch",
                     "command %.*s not carried out: %s", (int)m->key.len, m->key.ptr, why);
        return;
    }
    s->stats.commands++;
    if (dcs__slice_is(m->key, "PAUSE_CRAWLER") || dcs__slice_is(m->key, "RESUME_CRAWLER")) {
        int pause = dcs__slice_is(m->key, "PAUSE_CRAWLER");
        dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, pause ? "paused" : "resumed",
                     "crawler %s by client \"%s\"%s", pause ? "paused" : "resumed",
                     c->cid ? c->cid : "",
                     s->paused == pause ? (pause ? " (already paused)" : " (was running)") : "");
        s->paused = pause;
    }
    dcs__deliver(s, c, NULL);
}

/* ------------------------------------------------------------------------ */
/* Dispatch (9.8)                                                            */

static void dcs__wrong_direction(dcs_server *s, dcs__conn *c)
{
    dcs_message *m = &c->msg;
    s->stats.wrong_direction++;
    dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "wrong-direction",
                 "%.*s/%.*s is not sent to a server; dropped", TK(m));
}

static void dcs__unknown_key(dcs_server *s, dcs__conn *c)
{
    dcs_message *m = &c->msg;
    s->stats.unknown_key++;
    dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "unknown-key",
                 "%.*s/%.*s delivered as a generic message", TK(m));
    dcs__deliver(s, c, NULL);
}

/* Keys of type message that only a server writes (7.9-7.17). */
static int dcs__server_only_key(dcs_slice k)
{
    static const char *const keys[] = {"PROGRESS_UPDATE", "TOKEN_REFRESH_REQUEST",
                                       "statusUpdate",    "jobUpdate",
                                       "shutdown",        "commandResult"};
    size_t i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (dcs__slice_is(k, keys[i]))
            return 1;
    return 0;
}

static void dcs__dispatch(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    dcs_message *m = &c->msg;
    if (dcs__slice_is(m->type, "heartbeat")) {
        if (!dcs__slice_is(m->key, "heartbeat"))
            dcs__unknown_key(s, c);
        return; /* liveness is done */
    }
    if (dcs__slice_is(m->type, "command")) {
        if (dcs__slice_is(m->key, "register")) {
            s->stats.register_repeated++;
            dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "register-repeated",
                         "connection %llu is already registered as \"%s\"; register ignored",
                         (unsigned long long)c->id, c->cid ? c->cid : "");
        } else if (dcs__slice_is(m->key, "challenge")) {
            dcs__wrong_direction(s, c);
        } else {
            dcs__on_command(s, c, now);
        }
        return;
    }
    if (dcs__slice_is(m->type, "jobResponse")) {
        if (dcs__slice_is(m->key, "jobs_available") || dcs__slice_is(m->key, "jobs_error"))
            dcs__on_reply(s, c, now, DCS__R_JOBS);
        else
            dcs__unknown_key(s, c);
        return;
    }
    if (dcs__slice_is(m->type, "jobRequest")) {
        if (dcs__slice_is(m->key, "request_jobs"))
            dcs__wrong_direction(s, c);
        else
            dcs__unknown_key(s, c);
        return;
    }
    if (dcs__slice_is(m->type, "message")) {
        if (dcs__slice_is(m->key, "TOKEN_REFRESH_RESPONSE")) {
            dcs__on_reply(s, c, now, DCS__R_TOKEN);
        } else if (dcs__slice_is(m->key, "close")) {
            int rc = dcs__str(m->payload, "reason", &s->scratch);
            dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "close-notice",
                         "client \"%s\" is closing connection %llu: %.*s", c->cid ? c->cid : "",
                         (unsigned long long)c->id, rc == 1 ? (int)s->scratch.len : 0,
                         rc == 1 ? s->scratch.data : "");
        } else if (dcs__server_only_key(m->key)) {
            dcs__wrong_direction(s, c);
        } else {
            dcs__on_reply(s, c, now, DCS__R_GENERIC); /* a generic message (7.18) */
        }
        return;
    }
    s->stats.unknown_type++;
    dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "unknown-type",
                 "type %.*s delivered as a generic message", (int)m->type.len, m->type.ptr);
    dcs__deliver(s, c, NULL);
}

void dcs__srv_on_message(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    dcs_message *m = &c->msg;
    int is_register = dcs__slice_is(m->type, "command") && dcs__slice_is(m->key, "register");

    /* 3. Liveness and registry activity. */
    s->stats.messages_in++;
    s->stats.in_by_type[dcs_msg_type_index(c->msg.type)]++;
    c->t_liveness = now + s->cfg.s.heartbeat_timeout;
    c->last_activity = now;

    /* 4. Register first. */
    if (c->state == DCS__C_AWAIT) {
        char peer[96];
        if (is_register) {
            dcs__on_register(s, c, now);
            return;
        }
        s->stats.register_expected++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_AUTH, "register-expected",
                     "first message on connection %llu (%s) is %.*s/%.*s, not register",
                     (unsigned long long)c->id, dcs__srv_peer(c, peer, sizeof peer), TK(m));
        dcs__srv_close(s, c, now, "register-expected", 1);
        return;
    }
    if (s->cfg.lenient && !c->got_register) {
        if (is_register) {
            dcs__on_register(s, c, now);
            return;
        }
        if (!(c->warned & DCS__WARN_LATE)) {
            c->warned |= DCS__WARN_LATE;
            s->stats.register_late++;
            dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "register-late",
                         "lenient mode: %.*s/%.*s before register on connection %llu; accepted",
                         TK(m), (unsigned long long)c->id);
        }
        /* Until a register names it, the first origin is the client's id. */
        if (!c->cid && m->origin.len) {
            if (dcs__set_cid(s, c, m->origin.ptr, m->origin.len)) {
                dcs__nomem(s, c, now);
                return;
            }
            dcs__srv_register_done(s, c, now);
        }
    }

    /* 5. The destination filter. */
    if (!dcs__slice_is(m->destination, "*") && !dcs__slice_is(m->destination, s->id)) {
        s->stats.wrong_destination++;
        if (!s->cfg.lenient) {
            dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "wrong-destination",
                         "%.*s/%.*s for \"%.*s\" dropped", TK(m), (int)m->destination.len,
                         m->destination.ptr);
            return;
        }
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "wrong-destination",
                     "lenient mode: %.*s/%.*s for \"%.*s\" accepted", TK(m),
                     (int)m->destination.len, m->destination.ptr);
    }

    /* 6. Dispatch. */
    dcs__dispatch(s, c, now);
}
