/* uvconn.c - one connection's libuv handles (the socket and its linger
 * timer), its reads and writes and its graceful close, and the small pieces
 * of an event loop that both programs share. See uvshell.h. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "uvshell.h"

/* ------------------------------------------------------------------------ */
/* One connection                                                            */

static void dsh_conn_close_cb(uv_handle_t *h)
{
    dsh_conn *c = h->data;
    if (--c->handles > 0)
        return;
    c->ops->freed(c);
}

void dsh_conn_init(dsh_conn *c, uv_loop_t *loop, const dsh_conn_ops *ops, void *owner)
{
    c->ops = ops;
    c->owner = owner;
    uv_pipe_init(loop, &c->pipe, 0);
    uv_timer_init(loop, &c->linger);
    c->pipe.data = c->linger.data = c;
    c->handles = 2;
}

void dsh_conn_close_now(dsh_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->dead = 1;
    uv_close((uv_handle_t *)&c->pipe, dsh_conn_close_cb);
    uv_close((uv_handle_t *)&c->linger, dsh_conn_close_cb);
}

static void dsh_conn_linger_cb(uv_timer_t *t)
{
    dsh_conn_close_now(t->data);
}

static void dsh_conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    dsh_conn_close_now(req->data);
}

void dsh_conn_close(dsh_conn *c, int after_writes, dcs_ms grace)
{
    c->dead = 1;
    if (c->closing)
        return;
    if (c->connected)
        uv_read_stop((uv_stream_t *)&c->pipe);
    if (after_writes && c->connected && !c->shutting) {
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->pipe, dsh_conn_shutdown_cb) == 0) {
            c->shutting = 1;
            uv_timer_start(&c->linger, dsh_conn_linger_cb, (uint64_t)grace, 0);
            return;
        }
    }
    dsh_conn_close_now(c);
}

static void dsh_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dsh_conn *c = h->data;
    (void)suggested;
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void dsh_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    dsh_conn *c = s->data;
    if (c->dead || nread == 0)
        return; /* a closing connection's bytes are ignored; 0 means try later */
    if (nread < 0)
        c->ops->ended(c, nread == UV_EOF ? "end of file" : uv_strerror((int)nread));
    else
        c->ops->data(c, buf->base, (size_t)nread);
}

int dsh_conn_read_start(dsh_conn *c)
{
    return uv_read_start((uv_stream_t *)&c->pipe, dsh_conn_alloc_cb, dsh_conn_read_cb);
}

/* A write request with its own copy of the bytes. */
struct dsh_write {
    uv_write_t req;
    dsh_conn *conn;
    uint64_t id;
    char data[];
};

static void dsh_conn_write_cb(uv_write_t *req, int status)
{
    struct dsh_write *w = req->data;
    dsh_conn *c = w->conn;
    uint64_t id = w->id;
    free(w);
    c->writes--;
    c->ops->written(c, id, status);
}

int dsh_conn_write(dsh_conn *c, const char *data, size_t len, uint64_t id)
{
    struct dsh_write *w = malloc(sizeof *w + len);
    uv_buf_t buf;
    int err;
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, data, len);
    w->conn = c;
    w->id = id;
    w->req.data = w;
    buf = uv_buf_init(w->data, (unsigned)len);
    err = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, dsh_conn_write_cb);
    if (err) {
        free(w);
        return err;
    }
    c->writes++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

int dsh_loop_init(uv_loop_t *loop, char *why, size_t n)
{
    int err = uv_loop_init(loop);
    if (err) {
        snprintf(why, n, "cannot start the event loop: %s", uv_strerror(err));
        return -1;
    }
    return 0;
}

int dsh_loop_run(uv_loop_t *loop, const int *torn_down, const char *category)
{
    if (uv_run(loop, UV_RUN_DEFAULT) != 0 && !*torn_down) {
        dsh_log(DCS_LOG_ERROR, category, "loop", NULL, 0, "the event loop ended early");
        return -1;
    }
    return 0;
}

void dsh_loop_fini(uv_loop_t *loop, const char *category)
{
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0)
        dsh_log(DCS_LOG_WARN, category, "loop", NULL, 0, "event loop closed with handles open");
}

dcs_ms dsh_now(uv_loop_t *loop)
{
    uv_update_time(loop);
    return (dcs_ms)uv_now(loop);
}

void dsh_timer_arm(uv_timer_t *t, uv_timer_cb cb, dcs_ms deadline, dcs_ms now)
{
    if (deadline == DCS_NEVER)
        uv_timer_stop(t);
    else
        uv_timer_start(t, cb, deadline > now ? (uint64_t)(deadline - now) : 0, 0);
}

void dsh_signals_init(dsh_signals *s, uv_loop_t *loop, void *data)
{
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_usr1);
    s->sig_int.data = s->sig_term.data = s->sig_usr1.data = data;
}

void dsh_signals_start(dsh_signals *s, uv_signal_cb cb)
{
    uv_signal_start(&s->sig_int, cb, SIGINT);
    uv_signal_start(&s->sig_term, cb, SIGTERM);
    uv_signal_start(&s->sig_usr1, cb, SIGUSR1);
}

void dsh_signals_close(dsh_signals *s)
{
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_usr1, NULL);
}
