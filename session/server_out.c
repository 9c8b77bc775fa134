/* server_out.c - what the server writes on the application's behalf:
 * messages addressed to a client id or "*" (spec 9.7), kept in a queue per
 * destination while no registered connection matches; requests with their
 * pending entries, timeouts and results (7.20, 9.4, 9.6); the pause rule of
 * 9.5 on the way out.
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"

/* ------------------------------------------------------------------------ */
/* Writing an application message to one connection                         */

/* Write unless the connection has more unacknowledged bytes than allowed: a
 * peer that does not read loses messages (queue-bytes), not our memory. */
static void dcs__write_app(dcs_server *s, dcs__conn *c, uint64_t id, const char *data, size_t len)
{
    int rc;
    if (c->fl.n && c->fl.bytes + len > s->cfg.max_inflight_bytes) {
        s->stats.drop_queue_bytes++;
        dcs__srv_drop(s, c, id, "queue-bytes", data, len);
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "queue-bytes",
                     "message %llu for connection %llu dropped: %zu bytes not yet written",
                     (unsigned long long)id, (unsigned long long)c->id, c->fl.bytes);
        return;
    }
    rc = dcs__srv_write(s, c, DCS__W_APP, id, data, len);
    if (rc) {
        s->stats.drop_refused++;
        dcs__srv_drop(s, c, id, dcs_err_name(rc), data, len);
        dcs__srv_log(s, c, DCS_LOG_ERROR, DCS_CAT_SERVER, dcs_err_name(rc),
                     "message %llu for connection %llu dropped: %s", (unsigned long long)id,
                     (unsigned long long)c->id, dcs_strerror(rc));
    }
}

/* ------------------------------------------------------------------------ */
/* Queues for absent clients (9.7)                                           */

static void dcs__on_qdrop(void *ud, const dcs_queue_item *it, const char *reason)
{
    dcs_server *s = ud;
    if (strcmp(reason, "queue-count") == 0)
        s->stats.drop_queue_count++;
    else if (strcmp(reason, "queue-bytes") == 0)
        s->stats.drop_queue_bytes++;
    else
        s->stats.drop_queue_age++;
    dcs__srv_drop(s, NULL, it->id, reason, it->data, it->len);
    dcs__srv_log(s, NULL, DCS_LOG_WARN, DCS_CAT_SERVER, reason,
                 "queued message %llu (%zu bytes) dropped", (unsigned long long)it->id, it->len);
}

static struct dcs__squeue *dcs__queue_find(const dcs_server *s, const char *dest, size_t len)
{
    size_t i;
    for (i = 0; i < s->n_queues; i++)
        if (s->queues[i].dest_len == len && memcmp(s->queues[i].dest, dest, len) == 0)
            return &s->queues[i];
    return NULL;
}

/* The queue for dest, created if needed. NULL with *rc = DCS_ENOMEM, or
 * DCS_SERVER_NO_CLIENT when there are already max_connections queues (the
 * number of destinations kept is bounded like the number of clients). */
static struct dcs__squeue *dcs__queue_get(dcs_server *s, const char *dest, size_t len, int *rc)
{
    struct dcs__squeue *sq = dcs__queue_find(s, dest, len);
    if (sq)
        return sq;
    if (s->n_queues >= s->cfg.s.max_connections) {
        *rc = DCS_SERVER_NO_CLIENT;
        return NULL;
    }
    *rc = DCS_ENOMEM;
    if (s->n_queues == s->cap_queues) {
        size_t cap = s->cap_queues ? s->cap_queues * 2 : 4;
        struct dcs__squeue *v = s->al->realloc(s->al->ud, s->queues, cap * sizeof *v);
        if (!v)
            return NULL;
        s->queues = v;
        s->cap_queues = cap;
    }
    sq = &s->queues[s->n_queues];
    sq->dest = dcs__memdup(s->al, dest, len);
    sq->dest_len = len;
    sq->q = sq->dest ? dcs_queue_new(&s->cfg.s, s->al, dcs__on_qdrop, s) : NULL;
    if (!sq->q) {
        s->al->free(s->al->ud, sq->dest);
        return NULL;
    }
    s->n_queues++;
    return sq;
}

/* Free the queues that are empty. */
static void dcs__queues_compact(dcs_server *s)
{
    size_t i = 0;
    while (i < s->n_queues) {
        if (dcs_queue_count(s->queues[i].q) == 0) {
            dcs_queue_free(s->queues[i].q);
            s->al->free(s->al->ud, s->queues[i].dest);
            s->queues[i] = s->queues[--s->n_queues];
        } else {
            i++;
        }
    }
}

/* 1 if the serialized message (our own compact encoding) is a
 * PROGRESS_UPDATE. The origin and destination before the type are escaped
 * JSON strings, which cannot contain this run of bytes. */
static int dcs__queued_progress(const dcs_queue_item *it)
{
    static const char pat[] = "\",\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",";
    size_t n = sizeof pat - 1, i;
    for (i = 0; i + n <= it->len; i++)
        if (memcmp(it->data + i, pat, n) == 0)
            return 1;
    return 0;
}

/* Right after a register: write what was kept for "*" and for the client's
 * id, in the order it was handed over (message ids grow with time). While
 * the crawler is paused, no PROGRESS_UPDATE may be written (9.5): queued
 * ones are dropped (reason paused). */
void dcs__srv_flush_queued(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    struct dcs__squeue *all = dcs__queue_find(s, "*", 1);
    struct dcs__squeue *mine = c->cid ? dcs__queue_find(s, c->cid, c->cid_len) : NULL;
    if (!all && !mine)
        return;
    if (all)
        dcs_queue_expire(all->q, now);
    if (mine)
        dcs_queue_expire(mine->q, now);
    for (;;) {
        const dcs_queue_item *a = all ? dcs_queue_peek(all->q) : NULL;
        const dcs_queue_item *b = mine ? dcs_queue_peek(mine->q) : NULL;
        struct dcs__squeue *from;
        const dcs_queue_item *it;
        if (!a && !b)
            break;
        from = !b || (a && a->id < b->id) ? all : mine;
        it = from == all ? a : b;
        if (s->paused && dcs__queued_progress(it)) {
            s->stats.paused_refused++;
            dcs__srv_drop(s, c, it->id, "paused", it->data, it->len);
            dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "paused",
                         "queued PROGRESS_UPDATE %llu dropped: the crawler is paused (spec 9.5)",
                         (unsigned long long)it->id);
        } else {
            dcs__write_app(s, c, it->id, it->data, it->len);
        }
        dcs_queue_pop(from->q);
    }
    dcs__queues_compact(s);
}

void dcs__srv_queue_timers(dcs_server *s, dcs_ms now)
{
    size_t i;
    int any = 0;
    for (i = 0; i < s->n_queues; i++)
        if (dcs_queue_next_expiry(s->queues[i].q) <= now)
            any |= dcs_queue_expire(s->queues[i].q, now) > 0;
    if (any)
        dcs__queues_compact(s);
}

dcs_ms dcs__srv_queue_deadline(const dcs_server *s)
{
    dcs_ms d = DCS_NEVER;
    size_t i;
    for (i = 0; i < s->n_queues; i++)
        if (dcs_queue_next_expiry(s->queues[i].q) < d)
            d = dcs_queue_next_expiry(s->queues[i].q);
    return d;
}

/* Shutdown: everything still queued is dropped (reason shutdown). */
void dcs__srv_queues_shutdown(dcs_server *s)
{
    size_t i;
    for (i = 0; i < s->n_queues; i++) {
        const dcs_queue_item *it;
        while ((it = dcs_queue_peek(s->queues[i].q)) != NULL) {
            s->stats.drop_shutdown++;
            dcs__srv_drop(s, NULL, it->id, "shutdown", it->data, it->len);
            dcs_queue_pop(s->queues[i].q);
        }
    }
    dcs__queues_compact(s);
}

void dcs__srv_queues_free(dcs_server *s)
{
    size_t i;
    for (i = 0; i < s->n_queues; i++) {
        dcs_queue_free(s->queues[i].q);
        s->al->free(s->al->ud, s->queues[i].dest);
    }
    s->al->free(s->al->ud, s->queues);
    s->queues = NULL;
    s->n_queues = s->cap_queues = 0;
}

/* ------------------------------------------------------------------------ */
/* Sending (9.7)                                                             */

static dcs_slice dcs__cs(const char *p)
{
    dcs_slice r;
    r.ptr = p;
    r.len = strlen(p);
    return r;
}

/* A message the server refuses to write: counted as drop_refused and logged
 * with its reason (spec 11.4) and why. */
static void dcs__srv_refused(dcs_server *s, dcs__conn *c, const dcs_envelope *e,
                             const char *reason, const char *why)
{
    s->stats.drop_refused++;
    dcs__srv_log(s, c, DCS_LOG_ERROR, DCS_CAT_SERVER, reason, "%.*s/%.*s refused before sending: %s",
                 (int)e->type.len, e->type.ptr, (int)e->key.len, e->key.ptr, why);
}

/* Encode env into s->enc with the server's defaults and the size limit.
 * A refusal is counted and logged. */
static int dcs__encode(dcs_server *s, dcs_ms now, dcs_envelope *e)
{
    int rc;
    if (!e->origin.ptr || !e->origin.len)
        e->origin = dcs__cs(s->id);
    if (!e->destination.ptr || !e->destination.len)
        e->destination = dcs__cs("*");
    if (!e->has_timestamp) {
        e->has_timestamp = 1;
        memset(&e->timestamp, 0, sizeof e->timestamp);
        e->timestamp.kind = DCS_NUM_INT;
        e->timestamp.i = DCS__WALL(s, now);
    }
    s->enc.len = 0;
    rc = dcs_encode_limit(&s->enc, e, DCS_ENCODE_VALIDATE, s->cfg.s.max_depth);
    if (rc == 0 && s->enc.len > s->cfg.s.max_message_size)
        rc = DCS_ETOO_LARGE;
    if (rc)
        dcs__srv_refused(s, NULL, e, dcs__refusal_reason(rc), dcs_strerror(rc));
    return rc;
}

static int dcs__is_progress(const dcs_envelope *env)
{
    return dcs__slice_is(env->type, "message") && dcs__slice_is(env->key, "PROGRESS_UPDATE");
}

int dcs_server_send(dcs_server *s, dcs_ms now, const dcs_envelope *env, uint64_t *id)
{
    dcs_envelope e = *env;
    uint64_t mid;
    size_t i, matched = 0;
    int rc;

    if (s->shutting_down)
        return DCS_SERVER_SHUTTING_DOWN;
    if (dcs__slice_is(e.type, "command"))
        return DCS_EINVAL; /* commands go from the client to the server (7.16) */
    if (s->paused && dcs__is_progress(&e)) {
        s->stats.paused_refused++;
        dcs__srv_log(s, NULL, DCS_LOG_INFO, DCS_CAT_SERVER, "paused",
                     "PROGRESS_UPDATE not sent: the crawler is paused (spec 9.5)");
        return DCS_SERVER_PAUSED;
    }
    if ((rc = dcs__encode(s, now, &e)))
        return rc;
    mid = ++s->next_id;
    if (id)
        *id = mid;
    for (i = 0; i < s->n_conns; i++) {
        dcs__conn *c = s->conns[i];
        if (c->state != DCS__C_REGISTERED)
            continue;
        if (!dcs__slice_is(e.destination, "*") &&
            !(c->cid && e.destination.len == c->cid_len &&
              memcmp(e.destination.ptr, c->cid, c->cid_len) == 0))
            continue;
        dcs__write_app(s, c, mid, s->enc.data, s->enc.len);
        matched++;
    }
    if (!matched) {
        struct dcs__squeue *sq = dcs__queue_get(s, e.destination.ptr, e.destination.len, &rc);
        if (sq)
            rc = dcs_queue_push(sq->q, now, mid, s->enc.data, s->enc.len);
        if (rc == DCS_SERVER_NO_CLIENT) {
            s->stats.no_client++;
            dcs__srv_log(s, NULL, DCS_LOG_WARN, DCS_CAT_SERVER, "no-client",
                         "no client \"%.*s\" and no room to keep messages for another absent "
                         "client; dropped",
                         (int)e.destination.len, e.destination.ptr);
        }
        if (sq && dcs_queue_count(sq->q) == 0)
            dcs__queues_compact(s);
        return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Requests (9.4, 9.6)                                                       */

void dcs__srv_result(dcs_server *s, dcs__conn *c, const struct dcs__pending *p,
                     const char *reason, const dcs_message *msg)
{
    struct dcs__act *x = dcs__srv_push(s, c, DCS_ACT_RESULT);
    size_t off, n = strlen(p->rid);
    if (!x)
        return;
    x->a.id = p->req;
    x->a.reason = reason;
    x->a.msg = msg;
    x->a.peer_id.ptr = c->cid ? c->cid : "";
    x->a.peer_id.len = c->cid ? c->cid_len : 0;
    off = dcs__actions_keep(&s->q, p->rid, n);
    if (off != SIZE_MAX) {
        x->data_off = off;
        x->a.data.len = n;
    }
    x->data_in_arena = 1;
}

void dcs__srv_pending_timers(dcs_server *s, dcs__conn *c, dcs_ms now)
{
    size_t i = 0;
    while (i < c->n_pending) {
        struct dcs__pending *p = &c->pending[i];
        if (p->deadline > now) {
            i++;
            continue;
        }
        s->stats.request_timeout++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "request-timeout",
                     "request %s on connection %llu got no reply within %lld ms", p->rid,
                     (unsigned long long)c->id, (long long)s->cfg.s.request_timeout);
        dcs__srv_result(s, c, p, "request-timeout", NULL);
        memmove(p, p + 1, (c->n_pending - i - 1) * sizeof *p);
        c->n_pending--;
    }
}

void dcs__srv_pending_closed(dcs_server *s, dcs__conn *c)
{
    size_t i;
    for (i = 0; i < c->n_pending; i++) {
        s->stats.connection_closed++;
        dcs__srv_result(s, c, &c->pending[i], "connection-closed", NULL);
    }
    if (c->n_pending)
        dcs__srv_log(s, c, DCS_LOG_INFO, DCS_CAT_SERVER, "connection-closed",
                     "%zu pending requests of connection %llu will get no reply", c->n_pending,
                     (unsigned long long)c->id);
    c->n_pending = 0;
}

static dcs__conn *dcs__target(const dcs_server *s, uint64_t conn, const char *client_id)
{
    dcs__conn *best = NULL;
    size_t i, n = client_id ? strlen(client_id) : 0;
    for (i = 0; i < s->n_conns; i++) {
        dcs__conn *c = s->conns[i];
        if (c->state != DCS__C_REGISTERED)
            continue;
        if (conn) {
            if (c->id == conn)
                return c;
            continue;
        }
        if (client_id && !(c->cid && c->cid_len == n && memcmp(c->cid, client_id, n) == 0))
            continue;
        if (!best || c->reg_seq > best->reg_seq)
            best = c;
    }
    return best;
}

static int dcs__ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* s->pl = payload with {"requestId":rid} as its first member. */
static int dcs__request_payload(dcs_server *s, dcs_slice p, const char *rid)
{
    dcs_slice v;
    int rc;
    s->pl.len = 0;
    if ((rc = dcs_buf_append(&s->pl, "{\"requestId\":", 13)) ||
        (rc = dcs_encode_string(&s->pl, rid, strlen(rid))))
        return rc;
    if (p.ptr) {
        const char *b = p.ptr, *e = p.ptr + p.len;
        /* The payload sits at depth 2 of the message (dcs_encode_limit). */
        if ((rc = dcs_json_validate(p.ptr, p.len, s->cfg.s.max_depth - 1, NULL)) != 0)
            return rc == DCS_ETOO_DEEP ? rc : DCS_EBAD_JSON;
        while (b < e && dcs__ws(*b))
            b++;
        while (e > b && dcs__ws(e[-1]))
            e--;
        if (b == e || *b != '{')
            return DCS_EINVAL;
        if (dcs_json_member(b, (size_t)(e - b), "requestId", &v) != 0)
            return DCS_EINVAL;
        b++;
        while (b < e && dcs__ws(*b))
            b++;
        if (*b != '}' && ((rc = dcs_buf_append(&s->pl, ",", 1)) != 0))
            return rc;
        return dcs_buf_append(&s->pl, b, (size_t)(e - b));
    }
    return dcs_buf_append(&s->pl, "}", 1);
}

int dcs_server_request(dcs_server *s, dcs_ms now, uint64_t conn, const char *client_id,
                       const dcs_envelope *env, uint64_t *request)
{
    dcs_envelope e = *env;
    dcs_message probe;
    struct dcs__pending *p;
    dcs__conn *c;
    char rid[DCS__RID_MAX], peer[96];
    const char *why = NULL;
    int kind, rc;

    if (s->shutting_down)
        return DCS_SERVER_SHUTTING_DOWN;
    if (dcs__slice_is(e.type, "command"))
        return DCS_EINVAL;
    if (dcs__slice_is(e.type, "jobRequest") && dcs__slice_is(e.key, "request_jobs"))
        kind = DCS__R_JOBS;
    else if (dcs__slice_is(e.type, "message") && dcs__slice_is(e.key, "TOKEN_REFRESH_REQUEST"))
        kind = DCS__R_TOKEN;
    else
        kind = DCS__R_GENERIC;
    if (s->paused && kind == DCS__R_JOBS) {
        s->stats.paused_refused++;
        dcs__srv_log(s, NULL, DCS_LOG_INFO, DCS_CAT_SERVER, "paused",
                     "request_jobs not sent: the crawler is paused (spec 9.5)");
        return DCS_SERVER_PAUSED;
    }
    c = dcs__target(s, conn, client_id);
    if (!c) {
        s->stats.no_client++;
        dcs__srv_log(s, NULL, DCS_LOG_WARN, DCS_CAT_SERVER, "no-client",
                     "%.*s/%.*s not sent: no registered connection matches", (int)e.type.len,
                     e.type.ptr, (int)e.key.len, e.key.ptr);
        return DCS_SERVER_NO_CLIENT;
    }
    if (c->n_pending >= s->cfg.s.max_pending_requests) {
        s->stats.pending_limit++;
        dcs__srv_log(s, c, DCS_LOG_WARN, DCS_CAT_SERVER, "pending-limit",
                     "%.*s/%.*s not sent: client \"%s\" (connection %llu, %s) leaves %zu "
                     "requests unanswered",
                     (int)e.type.len, e.type.ptr, (int)e.key.len, e.key.ptr,
                     c->cid ? c->cid : "", (unsigned long long)c->id,
                     dcs__srv_peer(c, peer, sizeof peer), c->n_pending);
        return DCS_SERVER_PENDING_LIMIT;
    }
    snprintf(rid, sizeof rid, "%s-%llu", s->rid_prefix, (unsigned long long)(s->rid_counter + 1));
    if ((rc = dcs__request_payload(s, e.payload, rid))) {
        dcs__srv_refused(s, c, &e, dcs__refusal_reason(rc),
                         rc == DCS_EINVAL ? "the payload is not an object, or has a requestId already"
                                          : dcs_strerror(rc));
        return rc;
    }
    e.payload.ptr = s->pl.data;
    e.payload.len = s->pl.len;
    memset(&probe, 0, sizeof probe);
    probe.type = e.type;
    probe.key = e.key;
    probe.payload = e.payload;
    if (dcs_fit_check(&probe, &why) != 0) {
        dcs__srv_refused(s, c, &e, "payload_mismatch", why);
        return DCS_EPAYLOAD;
    }
    e.destination = dcs__cs(dcs__srv_dest(c));
    if ((rc = dcs__encode(s, now, &e)))
        return rc;
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 4;
        struct dcs__pending *v;
        if (cap > s->cfg.s.max_pending_requests)
            cap = s->cfg.s.max_pending_requests;
        v = s->al->realloc(s->al->ud, c->pending, cap * sizeof *v);
        if (!v)
            return DCS_ENOMEM;
        c->pending = v;
        c->cap_pending = cap;
    }
    if ((rc = dcs__srv_write(s, c, DCS__W_REQUEST, s->next_id + 1, s->enc.data, s->enc.len)))
        return rc;
    p = &c->pending[c->n_pending++];
    p->req = ++s->next_id;
    p->kind = kind;
    p->deadline = now + s->cfg.s.request_timeout;
    memcpy(p->rid, rid, sizeof rid);
    s->rid_counter++;
    s->stats.requests++;
    if (request)
        *request = p->req;
    return 0;
}
