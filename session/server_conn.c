/* server_conn.c - the server's connections from accept to close: the
 * credential check and the challenge (spec 9.1, 10.1, 10.3.2), the shell's
 * inputs, the timers of each connection (register deadline 9.2, liveness and
 * heartbeats 9.3, request timeouts 9.4, the registry sweep 10.2), shutdown
 * (13.1) and the registry as the application sees it (10.2).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "server_int.h"

/* ------------------------------------------------------------------------ */
/* Accepting (9.1, 10.1, 10.3.2)                                             */

static int dcs__uid_allowed(const dcs_server *s, int64_t uid)
{
    size_t i;
    if (uid == s->cfg.own_uid)
        return 1;
    for (i = 0; i < s->cfg.n_allowed_uids; i++)
        if (s->allowed[i] == uid)
            return 1;
    return 0;
}

/* Refuse a connection the machine does not keep: log, count, close at once
 * without writing (10.1: nothing is read from it, nothing written). */
/* A close notice for a connection the machine refuses at accept and keeps
 * no state for (7.15): the WRITE's bytes live in the action arena. 1 if it
 * was handed out. */
static int dcs__refuse_notice(dcs_server *s, const dcs__conn *c, dcs_ms now, const char *reason)
{
    struct dcs__act *x;
    size_t off;
    s->enc.len = 0;
    if (dcs__wire_close(&s->enc, s->id, "*", reason, DCS__WALL(s, now)) != 0 ||
        (off = dcs__actions_keep(&s->q, s->enc.data, s->enc.len)) == SIZE_MAX ||
        !(x = dcs__actions_push(&s->q, DCS_ACT_WRITE, c->id)))
        return 0;
    x->a.id = ++s->next_id;
    x->data_off = off;
    x->data_in_arena = 1;
    x->a.data.len = s->enc.len;
    return 1;
}

/* Refuse a connection at accept: count, log, close. notice: the refusal is
 * the server's own choice (too many connections, shutting down), so a close
 * notice says why (7.15); a peer refused for its credentials gets nothing. */
static int dcs__refuse(dcs_server *s, const dcs__conn *c, dcs_ms now, uint64_t *counter,
                       const char *category, const char *reason, const char *what, int notice)
{
    char peer[96];
    int wrote;
    (*counter)++;
    dcs__srv_log(s, c, DCS_LOG_WARN, category, reason, "connection %llu (%s) refused: %s",
                 (unsigned long long)c->id, dcs__srv_peer(c, peer, sizeof peer), what);
    wrote = notice && dcs__refuse_notice(s, c, now, reason);
    dcs__srv_simple(s, c, DCS_ACT_CLOSE, reason, wrote ? DCS_CLOSE_AFTER_WRITES : 0);
    return DCS_SERVER_REFUSED;
}

static void dcs__arm_sweep(dcs_server *s, dcs_ms now)
{
    if (s->t_sweep == DCS_NEVER)
        s->t_sweep = now + s->cfg.s.auth_sweep;
}

static uint64_t dcs__bucket_cap(const dcs_server *s)
{
    uint64_t burst = s->cfg.s.flood_burst, period = (uint64_t)s->cfg.s.flood_period;
    return burst > UINT64_MAX / period ? UINT64_MAX : burst * period;
}

int dcs_server_accept(dcs_server *s, dcs_ms now, uint64_t conn, int64_t peer_uid, int64_t peer_pid,
                      int64_t peer_gid)
{
    dcs__conn probe, *c;
    dcs_decoder_config dc;
    char peer[96];

    if (conn == 0 || dcs__srv_find(s, conn))
        return DCS_EINVAL;
    memset(&probe, 0, sizeof probe);
    probe.id = conn;
    probe.uid = peer_uid;
    probe.pid = peer_pid;
    probe.gid = peer_gid;
    dcs__arm_sweep(s, now);
    if (s->shutting_down)
        return dcs__refuse(s, &probe, now, &s->stats.refused_shutdown, DCS_CAT_SERVER, "shutdown",
                           "the server is shutting down", 1);
    if (s->n_conns >= s->cfg.s.max_connections)
        return dcs__refuse(s, &probe, now, &s->stats.too_many_connections, DCS_CAT_SERVER,
                           "too-many-connections", "too many connections", 1);
    if (peer_uid < 0)
        return dcs__refuse(s, &probe, now, &s->stats.peer_credentials_unavailable, DCS_CAT_AUTH,
                           "peer-credentials-unavailable", "its credentials could not be read", 0);
    if (!dcs__uid_allowed(s, peer_uid))
        return dcs__refuse(s, &probe, now, &s->stats.peer_uid_refused, DCS_CAT_AUTH,
                           "peer-uid-refused", "its uid is not allowed", 0);

    if (s->n_conns == s->cap_conns) {
        size_t cap = s->cap_conns ? s->cap_conns * 2 : 8;
        dcs__conn **v = s->al->realloc(s->al->ud, s->conns, cap * sizeof *v);
        if (!v)
            return DCS_ENOMEM;
        s->conns = v;
        s->cap_conns = cap;
    }
    c = s->al->alloc(s->al->ud, sizeof *c);
    if (!c)
        return DCS_ENOMEM;
    *c = probe;
    dcs_decoder_config_init(&dc);
    dc.max_message_size = s->cfg.s.max_message_size;
    dc.max_depth = s->cfg.s.max_depth;
    dc.allocator = s->al;
    c->dec = dcs_decoder_new(&dc, NULL);
    if (!c->dec) {
        s->al->free(s->al->ud, c);
        return DCS_ENOMEM;
    }
    s->conns[s->n_conns++] = c;
    c->state = DCS__C_AWAIT;
    c->t_register = now + s->cfg.s.register_deadline;
    c->t_liveness = now + s->cfg.s.heartbeat_timeout;
    c->t_heartbeat = c->t_grace = DCS_NEVER;
    c->connected_wall = DCS__WALL(s, now);
    c->last_activity = now;
    c->tokens = dcs__bucket_cap(s);
    c->bucket_t = now;
    s->stats.accepted++;
    dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_AUTH, "accepted", "connection %llu accepted (%s)",
                 (unsigned long long)conn, dcs__srv_peer(c, peer, sizeof peer));

    if (s->secret) {
        unsigned char raw[DCS_NONCE_BYTES];
        s->cfg.rng.bytes(s->cfg.rng.ud, raw, sizeof raw);
        sodium_bin2hex(c->nonce, sizeof c->nonce, raw, sizeof raw);
        c->has_nonce = 1;
        c->nonce_sent = now;
        s->enc.len = 0;
        if (dcs__srv_control(s, c, dcs__wire_challenge(&s->enc, s->id, c->nonce, DCS__WALL(s, now)))) {
            dcs__srv_close(s, c, now, "nomem", 0);
            return DCS_ENOMEM;
        }
    }
    if (s->cfg.lenient)
        dcs__srv_register_done(s, c, now);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Inputs from the shell                                                     */

int dcs_server_input(dcs_server *s, dcs_ms now, uint64_t conn, const void *data, size_t len)
{
    dcs__conn *c = dcs__srv_find(s, conn);
    (void)now;
    if (!c)
        return 0;
    if (c->input_pending)
        return DCS_EBUSY;
    s->stats.bytes_in += len;
    dcs_decoder_feed(c->dec, data, len);
    c->input_pending = 1;
    return 0;
}

void dcs_server_written(dcs_server *s, dcs_ms now, uint64_t conn, uint64_t write_id)
{
    dcs__conn *c = dcs__srv_find(s, conn);
    if (!c)
        return;
    dcs__flight_done(&c->fl, s->al, write_id);
    if (c->state == DCS__C_SHUTTING && c->fl.n == 0) {
        s->stats.shutdown_closes++;
        dcs__srv_close(s, c, now, "shutdown", 0);
    }
}

void dcs_server_ended(dcs_server *s, dcs_ms now, uint64_t conn)
{
    dcs__conn *c = dcs__srv_find(s, conn);
    (void)now;
    if (!c)
        return;
    if (dcs_decoder_finish(c->dec, &c->err) == DCS_ERROR)
        dcs__srv_on_error(s, c, now);
    s->stats.connections_ended++;
    dcs__srv_teardown(s, c, "ended", 0);
}

/* ------------------------------------------------------------------------ */
/* Shutdown (13.1)                                                           */

void dcs_server_shutdown(dcs_server *s, dcs_ms now, const char *signal)
{
    size_t i;
    if (s->shutting_down) {
        /* A second signal during the grace period ends everything at once. */
        while (s->n_conns) {
            s->stats.shutdown_closes++;
            dcs__srv_close(s, s->conns[s->n_conns - 1], now, "shutdown", 0);
        }
        return;
    }
    s->shutting_down = 1;
    dcs__srv_log(s, NULL, DCS_LOG_INFO, DCS_CAT_SERVER, "shutdown",
                 "shutting down (%s): closing %zu connections", signal ? signal : "no signal",
                 s->n_conns);
    dcs__srv_queues_shutdown(s);
    for (i = s->n_conns; i-- > 0;) {
        dcs__conn *c = s->conns[i];
        if (c->state != DCS__C_REGISTERED) {
            s->stats.shutdown_closes++;
            dcs__srv_close(s, c, now, "shutdown", 1);
            continue;
        }
        s->pl.len = 0;
        if (signal) {
            int rc = dcs_buf_append(&s->pl, "{\"signal\":", 10);
            if (rc == 0)
                rc = dcs_encode_string(&s->pl, signal, strlen(signal));
            if (rc == 0)
                rc = dcs_buf_append(&s->pl, "}", 1);
            if (rc)
                s->pl.len = 0;
        }
        if (s->pl.len == 0 && dcs_buf_append(&s->pl, "{}", 2))
            s->pl.len = 0;
        s->enc.len = 0;
        dcs__srv_control(s, c,
                     s->pl.len ? dcs__wire_message(&s->enc, s->id, dcs__srv_dest(c), "message",
                                                   "shutdown", s->pl.data, s->pl.len,
                                                   DCS__WALL(s, now))
                               : DCS_ENOMEM);
        s->enc.len = 0;
        dcs__srv_control(s, c,
                     dcs__wire_close(&s->enc, s->id, dcs__srv_dest(c), "shutdown",
                                     DCS__WALL(s, now)));
        c->state = DCS__C_SHUTTING;
        c->t_grace = now + s->cfg.s.shutdown_grace;
        c->t_heartbeat = DCS_NEVER;
        if (c->fl.n == 0) {
            s->stats.shutdown_closes++;
            dcs__srv_close(s, c, now, "shutdown", 0);
        }
    }
}

int dcs_server_done(const dcs_server *s)
{
    return s->shutting_down && s->n_conns == 0;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

static void dcs__conn_timers(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    char peer[96];
    if (c->t_register <= now) {
        c->t_register = DCS_NEVER;
        if (c->state == DCS__C_AWAIT) {
            s->stats.register_timeout++;
            dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_AUTH, "register-timeout",
                         "no register on connection %llu (%s) within %lld ms",
                         (unsigned long long)c->id, dcs__srv_peer(c, peer, sizeof peer),
                         (long long)s->cfg.s.register_deadline);
            dcs__srv_close(s, c, now, "register-timeout", 1);
            return;
        }
        if (s->cfg.lenient && !c->got_register && !(c->warned & DCS__WARN_MISSING)) {
            c->warned |= DCS__WARN_MISSING;
            s->stats.register_missing++;
            dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "register-missing",
                         "lenient mode: no register on connection %llu within %lld ms; "
                         "kept open",
                         (unsigned long long)c->id, (long long)s->cfg.s.register_deadline);
        }
    }
    if (c->t_grace <= now) {
        s->stats.shutdown_closes++;
        dcs__srv_close(s, c, now, "shutdown", 0);
        return;
    }
    if (c->t_liveness <= now) {
        c->t_liveness = DCS_NEVER;
        if (c->state != DCS__C_AWAIT && !s->cfg.lenient) {
            s->stats.heartbeat_timeout++;
            dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "heartbeat-timeout",
                         "nothing received on connection %llu for %lld ms; closing",
                         (unsigned long long)c->id, (long long)s->cfg.s.heartbeat_timeout);
            dcs__srv_close(s, c, now, "heartbeat-timeout", 0); /* no notice (7.15) */
            return;
        }
        if (s->cfg.lenient && !(c->warned & DCS__WARN_SILENT)) {
            c->warned |= DCS__WARN_SILENT;
            s->stats.client_silent++;
            dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "client-silent",
                         "lenient mode: nothing received on connection %llu for %lld ms; "
                         "kept open",
                         (unsigned long long)c->id, (long long)s->cfg.s.heartbeat_timeout);
        }
    }
    dcs__srv_pending_timers(s, c, now);
    if (c->t_heartbeat <= now && c->state == DCS__C_REGISTERED) {
        c->t_heartbeat = now + s->cfg.s.server_heartbeat;
        s->enc.len = 0;
        if (dcs__srv_control(s, c,
                         dcs__wire_heartbeat(&s->enc, s->id, dcs__srv_dest(c), DCS__WALL(s, now))) ==
            0)
            s->stats.heartbeats_out++;
    }
}

/* The registry sweep (10.2). */
static void dcs__sweep(dcs_server *s, dcs_ms now)
{
    size_t i;
    dcs_ms sweep = s->cfg.s.auth_sweep;
    s->t_sweep += ((now - s->t_sweep) / sweep + 1) * sweep;
    for (i = s->n_conns; i-- > 0;) {
        dcs__conn *c = s->conns[i];
        char peer[96];
        if (!c->in_registry || now - c->last_activity < s->cfg.s.auth_idle)
            continue;
        s->stats.auth_idle++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_AUTH, "auth-idle",
                     "client \"%s\" (connection %llu, %s) idle for %lld ms; removed",
                     c->cid ? c->cid : "", (unsigned long long)c->id,
                     dcs__srv_peer(c, peer, sizeof peer), (long long)(now - c->last_activity));
        dcs__srv_close(s, c, now, "auth-idle", 1);
    }
}

void dcs__srv_timers(dcs_server *s, dcs_ms now)
{
    size_t i;
    /* Backwards: closing a connection removes it and shifts later ones. */
    for (i = s->n_conns; i-- > 0;)
        dcs__conn_timers(s, s->conns[i], now);
    if (s->t_sweep <= now)
        dcs__sweep(s, now);
    dcs__srv_queue_timers(s, now);
}

dcs_ms dcs_server_deadline(const dcs_server *s)
{
    dcs_ms d = s->t_sweep, q;
    size_t i;
    for (i = 0; i < s->n_conns; i++) {
        const dcs__conn *c = s->conns[i];
        if (c->t_register < d)
            d = c->t_register;
        if (c->t_liveness < d)
            d = c->t_liveness;
        if (c->t_heartbeat < d && c->state == DCS__C_REGISTERED)
            d = c->t_heartbeat;
        if (c->t_grace < d)
            d = c->t_grace;
        if (c->n_pending && c->pending[0].deadline < d)
            d = c->pending[0].deadline;
    }
    q = dcs__srv_queue_deadline(s);
    return q < d ? q : d;
}

/* ------------------------------------------------------------------------ */
/* Registry (10.2)                                                           */

size_t dcs_server_registry(const dcs_server *s, dcs_ms now, dcs_registry_entry *out, size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < s->n_conns; i++) {
        const dcs__conn *c = s->conns[i];
        if (!c->in_registry)
            continue;
        if (n < max && out) {
            dcs_registry_entry *e = &out[n];
            e->conn = c->id;
            e->id.ptr = c->cid ? c->cid : "";
            e->id.len = c->cid ? c->cid_len : 0;
            e->uid = c->uid;
            e->pid = c->pid;
            e->connected_at = c->connected_wall;
            e->last_activity = DCS__WALL(s, c->last_activity);
            e->uptime = DCS__WALL(s, now) - c->connected_wall;
            e->idle = now - c->last_activity;
            e->active = e->idle < s->cfg.s.auth_active;
        }
        n++;
    }
    return n;
}

int dcs_server_authorized(const dcs_server *s, uint64_t conn)
{
    const dcs__conn *c = dcs__srv_find(s, conn);
    return c && c->in_registry;
}
