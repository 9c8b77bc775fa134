/* server.c - the server (crawler side) state machine (spec 9, 10.1-10.3,
 * 13.1): actions, writing, closing, registration, the action pump, stats and
 * creation. The connections' life cycle and timers are in server_conn.c,
 * inbound processing in server_in.c, outbound messages and requests in
 * server_out.c.
 *
 * As in client.c, inputs record events and dcs_server_next() hands out one
 * action at a time from the action list of actions.h (texts in an arena
 * reset when the list has been drained). A connection's decoder is advanced one event per
 * call, and only when no action is waiting, so a DELIVER or RESULT action's
 * message stays valid until the next call. A closed connection leaves the
 * connection list at once but is freed only once the actions that may point
 * into it (its decoder's message, its in-flight buffers, its client id) have
 * been handed out (the dead list).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server_int.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* "pid 12 uid 1000 gid 1000", the pid as "unknown" when not positive (3.3). */
const char *dcs__srv_peer(const dcs__conn *c, char *buf, size_t n)
{
    char pid[24];
    if (c->pid > 0)
        snprintf(pid, sizeof pid, "%lld", (long long)c->pid);
    else
        snprintf(pid, sizeof pid, "unknown");
    snprintf(buf, n, "pid %s uid %lld gid %lld", pid, (long long)c->uid, (long long)c->gid);
    return buf;
}

/* Where the server addresses a connection: its client id, or "*" (9.7). */
const char *dcs__srv_dest(const dcs__conn *c)
{
    return c->cid ? c->cid : "*";
}

dcs__conn *dcs__srv_find(const dcs_server *s, uint64_t id)
{
    size_t i;
    for (i = 0; i < s->n_conns; i++)
        if (s->conns[i]->id == id)
            return s->conns[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

struct dcs__act *dcs__srv_push(dcs_server *s, const dcs__conn *c, int kind)
{
    return dcs__actions_push(&s->q, kind, c ? c->id : 0);
}

void dcs__srv_log(dcs_server *s, const dcs__conn *c, int level, const char *category,
                  const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dcs__actions_logv(&s->q, c ? c->id : 0, level, category, reason, fmt, ap);
    va_end(ap);
}

void dcs__srv_drop(dcs_server *s, const dcs__conn *c, uint64_t id, const char *reason,
                   const char *data, size_t len)
{
    dcs__actions_drop(&s->q, c ? c->id : 0, id, reason, data, len);
}

void dcs__srv_simple(dcs_server *s, const dcs__conn *c, int kind, const char *reason,
                     unsigned flags)
{
    dcs__actions_simple(&s->q, c ? c->id : 0, kind, reason, flags);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

int dcs__srv_write(dcs_server *s, dcs__conn *c, int kind, uint64_t id, const char *data,
                   size_t len)
{
    int rc = dcs__flight_write(&c->fl, &s->q, c->id, kind, id, 0, data, len);
    if (rc == 0) {
        s->stats.messages_out++;
        s->stats.bytes_out += len;
        s->stats.out_by_type[dcs_msg_type_of(data, len)]++;
    }
    return rc;
}

/* Write the control message built in s->enc (rc: how building went). */
int dcs__srv_control(dcs_server *s, dcs__conn *c, int rc)
{
    if (rc == 0)
        rc = dcs__srv_write(s, c, DCS__W_CONTROL, ++s->next_id, s->enc.data, s->enc.len);
    if (rc)
        dcs__srv_log(s, c, DCS_LOG_ERROR, DCS_CAT_SERVER, dcs_err_name(rc),
                     "cannot write a control message: %s", dcs_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

static void dcs__conn_free(dcs_server *s, dcs__conn *c)
{
    const dcs_allocator *a = s->al;
    dcs__flight_free(&c->fl, a);
    a->free(a->ud, c->pending);
    a->free(a->ud, c->cid);
    dcs_decoder_free(c->dec);
    a->free(a->ud, c);
}

/* The connection is gone (closed by us or ended): tell the application, and
 * forget the connection. writes_go: the shell still writes what it was
 * handed (a CLOSE after writes), so in-flight messages are not lost. */
void dcs__srv_teardown(dcs_server *s, dcs__conn *c, const char *reason, int writes_go)
{
    size_t i;
    dcs__srv_pending_closed(s, c);
    if (!writes_go) {
        for (i = 0; i < c->fl.n; i++) {
            struct dcs__inflight *f = &c->fl.v[i];
            if (f->kind == DCS__W_CONTROL)
                continue;
            s->stats.drop_lost_in_flight++;
            if (f->kind == DCS__W_APP)
                dcs__srv_drop(s, c, f->id, "lost-in-flight", f->data, f->len);
        }
    }
    if (c->in_registry) {
        char peer[96];
        c->in_registry = 0;
        dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_AUTH, "unregistered",
                     "client \"%s\" (connection %llu, %s) removed from the registry: %s",
                     c->cid ? c->cid : "", (unsigned long long)c->id,
                     dcs__srv_peer(c, peer, sizeof peer), reason);
    }
    if (c->announced)
        dcs__srv_simple(s, c, DCS_ACT_LOST, reason, 0);
    dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, reason, "connection %llu closed (%s)",
                 (unsigned long long)c->id, reason);
    c->input_pending = 0;
    for (i = 0; i < s->n_conns; i++) {
        if (s->conns[i] == c) {
            memmove(&s->conns[i], &s->conns[i + 1], (s->n_conns - i - 1) * sizeof s->conns[0]);
            s->n_conns--;
            break;
        }
    }
    c->next_dead = s->dead;
    s->dead = c;
}

void dcs__srv_close(dcs_server *s, dcs__conn *c, dcs_ms now, const char *reason, int notice)
{
    int wrote = 0;
    if (notice) {
        s->enc.len = 0;
        wrote = dcs__srv_control(s, c,
                             dcs__wire_close(&s->enc, s->id, dcs__srv_dest(c), reason,
                                             DCS__WALL(s, now))) == 0;
    }
    if (!dcs__actions_simple(&s->q, c->id, DCS_ACT_CLOSE, reason,
                             wrote ? DCS_CLOSE_AFTER_WRITES : 0))
        c->close_unsent = reason; /* handed out later, before c is freed */
    dcs__srv_teardown(s, c, reason, wrote);
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

/* The connection is registered (9.2): registry, heartbeats, OPEN, flush.
 * Called again in lenient mode when the client's id becomes known. */
void dcs__srv_register_done(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    char peer[96];
    struct dcs__act *x;
    c->state = DCS__C_REGISTERED;
    c->reg_seq = ++s->reg_seq;
    dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_AUTH, "registered",
                 "client \"%s\" (connection %llu, %s) %s the registry", c->cid ? c->cid : "",
                 (unsigned long long)c->id, dcs__srv_peer(c, peer, sizeof peer),
                 c->in_registry ? "updated in" : "added to");
    c->in_registry = 1;
    if (c->t_heartbeat == DCS_NEVER)
        c->t_heartbeat = now + s->cfg.s.server_heartbeat;
    c->announced = 1;
    x = dcs__srv_push(s, c, DCS_ACT_OPEN);
    if (x) {
        x->a.peer_id.ptr = c->cid ? c->cid : "";
        x->a.peer_id.len = c->cid ? c->cid_len : 0;
    }
    dcs__srv_flush_queued(s, c, now);
}

/* ------------------------------------------------------------------------ */
/* The action pump                                                           */

/* Free the closed connections (no action points into them any more). One
 * whose CLOSE could not be queued for lack of memory gets it now, so that
 * the shell never keeps a socket the machine has forgotten. */
static void dcs__free_dead(dcs_server *s)
{
    dcs__conn **p = &s->dead;
    while (*p) {
        dcs__conn *c = *p;
        if (c->close_unsent &&
            !dcs__actions_simple(&s->q, c->id, DCS_ACT_CLOSE, c->close_unsent, 0)) {
            p = &c->next_dead;
            continue;
        }
        *p = c->next_dead;
        dcs__conn_free(s, c);
    }
}

int dcs_server_next(dcs_server *s, dcs_ms now, dcs_action *a)
{
    if (dcs__actions_reset_if_drained(&s->q)) {
        dcs__free_dead(s);
    }
    if (dcs__actions_pop(&s->q, a))
        return 1;
    dcs__srv_timers(s, now);
    if (dcs__actions_pop(&s->q, a))
        return 1;
    for (;;) {
        dcs__conn *c = NULL;
        size_t i;
        int ev;
        for (i = 0; i < s->n_conns && !c; i++)
            if (s->conns[i]->input_pending)
                c = s->conns[i];
        if (!c)
            break;
        ev = dcs_decoder_next(c->dec, &c->msg, &c->err);
        if (ev == DCS_AGAIN) {
            c->input_pending = 0;
            continue;
        }
        if (!dcs__srv_take_token(s, c, now))
            continue; /* flood-rate: the connection is closed */
        if (ev == DCS_ERROR)
            dcs__srv_on_error(s, c, now);
        else
            dcs__srv_on_message(s, c, now);
        if (dcs__actions_pop(&s->q, a))
            return 1;
    }
    return dcs__actions_pop(&s->q, a);
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                     */

int dcs_server_paused(const dcs_server *s)
{
    return s->paused;
}

const dcs_server_stats *dcs_server_get_stats(const dcs_server *s)
{
    dcs_server_stats *st = (dcs_server_stats *)&s->stats;
    size_t i;
    st->connections = s->n_conns;
    st->registered_now = 0;
    for (i = 0; i < s->n_conns; i++)
        st->registered_now += s->conns[i]->in_registry ? 1 : 0;
    st->queued_messages = st->queued_bytes = 0;
    for (i = 0; i < s->n_queues; i++) {
        st->queued_messages += dcs_queue_count(s->queues[i].q);
        st->queued_bytes += dcs_queue_bytes(s->queues[i].q);
    }
    st->paused = s->paused;
    st->shutting_down = s->shutting_down;
    return st;
}

uint64_t dcs_server_counter(const dcs_server *s, const char *reason)
{
    int code;
#define DCS__COUNTER_BY_NAME(field, name)                                                  \
    if (strcmp(reason, name) == 0)                                                         \
        return s->stats.field;
    DCS_SERVER_COUNTERS(DCS__COUNTER_BY_NAME)
#undef DCS__COUNTER_BY_NAME
    for (code = DCS__E_BASE + 1; code < DCS__E_END; code++)
        if (strcmp(reason, dcs_err_name(code)) == 0)
            return s->codec_errors[code - DCS__E_BASE];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

void dcs_server_config_init(dcs_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dcs_session_config_init(&cfg->s);
}

int dcs_server_config_check(const dcs_server_config *cfg, char *why, size_t n)
{
    const char *bad = NULL;
    if (dcs_session_config_check(&cfg->s, why, n))
        return DCS_EINVAL;
    if (!cfg->rng.bytes)
        bad = "the server needs a random source (rng.bytes)";
    else if (cfg->lenient && cfg->secret)
        bad = "lenient mode and a shared secret cannot be combined (spec 9.2)";
    else if (cfg->secret && cfg->secret_len == 0)
        bad = "the shared secret is empty";
    else if (cfg->id && cfg->id[0] == '\0')
        bad = "the server id must not be empty";
    else if (cfg->n_allowed_uids && !cfg->allowed_uids)
        bad = "allowed_uids is NULL but n_allowed_uids is not 0";
    if (!bad)
        return 0;
    if (why && n)
        snprintf(why, n, "%s", bad);
    return DCS_EINVAL;
}

void dcs_server_free(dcs_server *s)
{
    const dcs_allocator *a;
    size_t i;
    if (!s)
        return;
    a = s->al;
    for (i = 0; i < s->n_conns; i++)
        dcs__conn_free(s, s->conns[i]);
    while (s->dead) {
        dcs__conn *c = s->dead;
        s->dead = c->next_dead;
        dcs__conn_free(s, c);
    }
    dcs__srv_queues_free(s);
    a->free(a->ud, s->conns);
    dcs__actions_free(&s->q);
    dcs_buf_free(&s->scratch);
    dcs_buf_free(&s->scratch2);
    dcs_buf_free(&s->enc);
    dcs_buf_free(&s->pl);
    a->free(a->ud, s->id);
    if (s->secret) {
        sodium_memzero(s->secret, s->cfg.secret_len);
        a->free(a->ud, s->secret);
    }
    a->free(a->ud, s->allowed);
    a->free(a->ud, s);
}

dcs_server *dcs_server_new(const dcs_server_config *cfg, int *err)
{
    const dcs_allocator *a = cfg->allocator ? cfg->allocator : &dcs_default_allocator;
    unsigned char prefix[8];
    const char *id = cfg->id ? cfg->id : "external-crawler";
    dcs_server *s;

    if (err)
        *err = DCS_EINVAL;
    if (dcs_server_config_check(cfg, NULL, 0))
        return NULL;
    if (err)
        *err = DCS_ENOMEM;
    s = a->alloc(a->ud, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->al = a;
    s->cfg = *cfg;
    if (!s->cfg.max_inflight_bytes)
        s->cfg.max_inflight_bytes = cfg->s.queue_max_bytes;
    dcs__actions_init(&s->q, a);
    dcs_buf_init(&s->scratch, a);
    dcs_buf_init(&s->scratch2, a);
    dcs_buf_init(&s->enc, a);
    dcs_buf_init(&s->pl, a);
    s->t_sweep = DCS_NEVER;
    s->id = dcs__memdup(a, id, strlen(id));
    if (cfg->secret) {
        s->secret = a->alloc(a->ud, cfg->secret_len);
        if (s->secret)
            memcpy(s->secret, cfg->secret, cfg->secret_len);
    }
    if (cfg->n_allowed_uids) {
        s->allowed = a->alloc(a->ud, cfg->n_allowed_uids * sizeof *s->allowed);
        if (s->allowed)
            memcpy(s->allowed, cfg->allowed_uids, cfg->n_allowed_uids * sizeof *s->allowed);
    }
    if (!s->id || (cfg->secret && !s->secret) || (cfg->n_allowed_uids && !s->allowed)) {
        dcs_server_free(s);
        return NULL;
    }
    s->cfg.id = s->id;
    s->cfg.secret = s->secret;
    s->cfg.allowed_uids = s->allowed;
    /* requestIds are "<prefix>-<counter>": the random prefix makes them
     * unique across restarts (7.20). */
    cfg->rng.bytes(cfg->rng.ud, prefix, sizeof prefix);
    sodium_bin2hex(s->rid_prefix, sizeof s->rid_prefix, prefix, sizeof prefix);
    if (err)
        *err = 0;
    return s;
}
