/* loop.c - dcs-server's event loop: one libuv loop with the listening
 * socket, the accepted connections, one timer armed to the machine's
 * deadline, the crawler's timer and the signals.
 *
 * Every event ends in rs_pump(): it hands the event to the machine, carries
 * out the machine's actions until there are none, and re-arms the timer to
 * dcs_server_deadline(). The machine's clock is uv_now() after
 * uv_update_time(); the wall clock is that plus a fixed offset. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rs.h"

dcs_ms rs_now(struct rs *rs)
{
    return dsh_now(&rs->loop);
}

struct rs_conn *rs_conn_find(struct rs *rs, uint64_t id)
{
    struct rs_conn *c;
    for (c = rs->conns; c; c = c->next)
        if (c->id == id && !c->io.dead)
            return c;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static void rs_conn_freed(dsh_conn *c)
{
    struct rs_conn *conn = c->owner, **pp;
    for (pp = &conn->rs->conns; *pp; pp = &(*pp)->next)
        if (*pp == conn) {
            *pp = conn->next;
            break;
        }
    free(conn->client_id);
    free(conn);
}

/* The connection ended under the machine (EOF, error): close it and say so
 * (at once, or between two actions when inside the pump). */
static void rs_conn_ended(struct rs_conn *conn, const char *what, int in_pump)
{
    struct rs *rs = conn->rs;
    uint64_t id = conn->id;
    dsh_field f[] = {DSH_INT("conn", id)};
    dsh_log(DCS_LOG_DEBUG, DCS_CAT_SERVER, "ended", f, 1, "connection ended: %s", what);
    dsh_conn_close(&conn->io, 0, rs->cfg.s.shutdown_grace);
    if (in_pump)
        conn->need_ended = 1;
    else
        dcs_server_ended(rs->srv, rs_now(rs), id);
}

static void rs_conn_data(dsh_conn *c, const char *p, size_t n)
{
    struct rs_conn *conn = c->owner;
    struct rs *rs = conn->rs;
    if (dcs_server_input(rs->srv, rs_now(rs), conn->id, p, n) == DCS_EBUSY) {
        rs_pump(rs);
        dcs_server_input(rs->srv, rs_now(rs), conn->id, p, n);
    }
    /* The machine reads from rbuf until the pump has consumed it. */
    rs_pump(rs);
}

static void rs_conn_read_ended(dsh_conn *c, const char *what)
{
    struct rs_conn *conn = c->owner;
    struct rs *rs = conn->rs;
    rs_conn_ended(conn, what, 0);
    rs_pump(rs);
}

static void rs_conn_written(dsh_conn *c, uint64_t id, int status)
{
    struct rs_conn *conn = c->owner;
    struct rs *rs = conn->rs;
    if (c->dead || rs->torn_down)
        return;
    if (status == 0)
        dcs_server_written(rs->srv, rs_now(rs), conn->id, id);
    else
        rs_conn_ended(conn, uv_strerror(status), 0);
    rs_pump(rs);
}

static const dsh_conn_ops rs_conn_ops = {
    rs_conn_freed,
    rs_conn_data,
    rs_conn_read_ended,
    rs_conn_written,
};

static void rs_connection_cb(uv_stream_t *server, int status)
{
    struct rs *rs = server->data;
    struct rs_conn *conn;
    dsh_peer peer = {0, -1, -1};
    int fd = -1, r;
    if (status < 0) {
        dsh_field f[] = {DSH_STR("error", uv_err_name(status))};
        dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, "accept-error", f, 1, "accept failed: %s",
                uv_strerror(status));
        return;
    }
    conn = calloc(1, sizeof *conn);
    if (!conn) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_SERVER, "nomem", NULL, 0, "out of memory for a connection");
        return;
    }
    conn->rs = rs;
    dsh_conn_init(&conn->io, &rs->loop, &rs_conn_ops, conn);
    conn->next_ask = DCS_NEVER;
    conn->next = rs->conns;
    rs->conns = conn;
    conn->id = ++rs->next_conn_id;
    if ((r = uv_accept(server, (uv_stream_t *)&conn->io.pipe)) != 0) {
        dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, "accept-error", NULL, 0, "accept failed: %s",
                uv_strerror(r));
        dsh_conn_close_now(&conn->io);
        return;
    }
    conn->io.connected = 1;
    /* Credentials once, right after accept, before reading (spec 3.3). */
    if (uv_fileno((uv_handle_t *)&conn->io.pipe, &fd) != 0 || dsh_peer_credentials(fd, &peer) != 0)
        peer.uid = -1;
    {
        dsh_field f[] = {DSH_INT("conn", conn->id), DSH_INT("pid", peer.pid),
                         DSH_INT("uid", peer.uid), DSH_INT("gid", peer.gid)};
        dsh_log(DCS_LOG_DEBUG, DCS_CAT_AUTH, "accepted", f, 4, "connection accepted");
    }
    r = dcs_server_accept(rs->srv, rs_now(rs), conn->id, peer.uid, peer.pid, peer.gid);
    if (r == 0)
        dsh_conn_read_start(&conn->io);
    else if (r < 0)
        dsh_conn_close_now(&conn->io); /* the machine did not take it */
    /* DCS_SERVER_REFUSED: a CLOSE action follows; nothing is read. */
    rs_pump(rs);
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                    */

static void rs_do_write(struct rs *rs, const dcs_action *a)
{
    struct rs_conn *conn = rs_conn_find(rs, a->conn);
    int err;
    if (!conn)
        return;
    err = dsh_conn_write(&conn->io, a->data.ptr, a->data.len, a->id);
    if (err == UV_ENOMEM) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_SERVER, "nomem", NULL, 0, "out of memory for a write");
        rs_conn_ended(conn, "out of memory", 1);
    } else if (err) {
        rs_conn_ended(conn, uv_strerror(err), 1);
    }
}

/* ------------------------------------------------------------------------ */
/* The pump                                                                  */

static void rs_teardown(struct rs *rs, int force);

static void rs_timer_cb(uv_timer_t *t)
{
    rs_pump(t->data);
}

static void rs_do(struct rs *rs, dcs_ms now, const dcs_action *a)
{
    struct rs_conn *conn;
    switch (a->kind) {
    case DCS_ACT_WRITE:
        rs_do_write(rs, a);
        break;
    case DCS_ACT_CLOSE:
        if ((conn = rs_conn_find(rs, a->conn)) != NULL) {
            dsh_field f[] = {DSH_INT("conn", a->conn)};
            dsh_log(DCS_LOG_DEBUG, DCS_CAT_SERVER, a->reason ? a->reason : "close", f, 1,
                    "closing connection");
            dsh_conn_close(&conn->io, (a->flags & DCS_CLOSE_AFTER_WRITES) != 0,
                           rs->cfg.s.shutdown_grace);
        }
        break;
    default:
        rs_app_action(rs, now, a);
        break;
    }
}

void rs_pump(struct rs *rs)
{
    dcs_action a;
    dcs_ms now;
    struct rs_conn *c;
    int again = 1;
    if (rs->torn_down)
        return;
    now = rs_now(rs);
    while (again) {
        again = 0;
        while (dcs_server_next(rs->srv, now, &a)) {
            rs_do(rs, now, &a);
            for (c = rs->conns; c; c = c->next)
                if (c->need_ended) {
                    c->need_ended = 0;
                    dcs_server_ended(rs->srv, now, c->id);
                }
        }
        if (rs->rate_max && !rs->stopping) {
            uint64_t before = rs->load_sent;
            rs_load_topup(rs, now);
            again = rs->load_sent != before;
        }
    }
    if (rs->stopping && dcs_server_done(rs->srv)) {
        rs_teardown(rs, 0);
        return;
    }
    rs_crawl_kick(rs);
    dsh_timer_arm(&rs->timer, rs_timer_cb, dcs_server_deadline(rs->srv), now);
}

/* ------------------------------------------------------------------------ */
/* Signals, start and end                                                    */

static void rs_stop_listening(struct rs *rs)
{
    if (rs->listening) {
        rs->listening = 0;
        uv_close((uv_handle_t *)&rs->listener, NULL);
    }
    rs_unlink_socket(rs);
}

static void rs_signal_cb(uv_signal_t *s, int signum)
{
    struct rs *rs = s->data;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (signum == SIGUSR1) {
        rs_stats_write(rs, rs->stats_path == NULL);
        return;
    }
    if (rs->stopping) {
        dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, "signal", NULL, 0,
                "second %s: closing every connection now", name);
        dcs_server_shutdown(rs->srv, rs_now(rs), name);
        rs_pump(rs);
        rs_teardown(rs, 1);
        return;
    }
    rs->stopping = 1;
    dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "signal", NULL, 0, "%s: shutting down", name);
    rs_stop_listening(rs);
    uv_timer_stop(&rs->crawl_timer);
    dcs_server_shutdown(rs->srv, rs_now(rs), name);
    rs_pump(rs);
}

static void rs_teardown(struct rs *rs, int force)
{
    struct rs_conn *conn;
    for (conn = rs->conns; conn; conn = conn->next)
        if (force || !conn->io.shutting)
            dsh_conn_close_now(&conn->io);
    if (rs->torn_down)
        return;
    rs->torn_down = 1;
    rs_stop_listening(rs);
    uv_close((uv_handle_t *)&rs->timer, NULL);
    uv_close((uv_handle_t *)&rs->crawl_timer, NULL);
    dsh_signals_close(&rs->sig);
}

int rs_loop_init(struct rs *rs, char *why, size_t n)
{
    if (dsh_loop_init(&rs->loop, why, n))
        return -1;
    uv_timer_init(&rs->loop, &rs->timer);
    uv_timer_init(&rs->loop, &rs->crawl_timer);
    dsh_signals_init(&rs->sig, &rs->loop, rs);
    uv_pipe_init(&rs->loop, &rs->listener, 0);
    rs->listening = 1;
    rs->timer.data = rs->crawl_timer.data = rs->listener.data = rs;
    rs->loop_inited = 1;
    return 0;
}

int rs_loop_run(struct rs *rs)
{
    int err;
    dsh_signals_start(&rs->sig, rs_signal_cb);
    err = uv_listen((uv_stream_t *)&rs->listener, 128, rs_connection_cb);
    if (err) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_SERVER, "listen", NULL, 0, "cannot listen on %s: %s",
                rs->socket_path, uv_strerror(err));
        rs_teardown(rs, 1);
        return DSH_EXIT_RUNTIME;
    }
    rs_pump(rs);
    rs_crawl_run(rs);
    if (dsh_loop_run(&rs->loop, &rs->torn_down, DCS_CAT_SERVER))
        return DSH_EXIT_RUNTIME;
    return rs->exit_code;
}

void rs_loop_fini(struct rs *rs)
{
    rs_teardown(rs, 1);
    dsh_loop_fini(&rs->loop, DCS_CAT_SERVER);
}
