/* loop.c - dcs-client's event loop: one libuv loop with the socket, one
 * timer armed to the machine's deadline, signals and standard input.
 *
 * Every event ends in rc_pump(): it hands the event to the machine, then
 * carries out the machine's actions until there are none, and re-arms the
 * timer to dcs_client_deadline(). The time given to the machine is uv_now()
 * after uv_update_time(); the wall clock is that plus a fixed offset taken at
 * start-up (rc->cfg.wall_offset), so the machine's timers and timestamps
 * agree. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rc.h"

#define RC_MAX_LINE (DCS_DEFAULT_MAX_MESSAGE_SIZE + 4096)

static void rc_pump(struct rc *rc);

dcs_ms rc_now(struct rc *rc)
{
    return dsh_now(&rc->loop);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static void rc_conn_freed(dsh_conn *c)
{
    struct rc_conn *conn = c->owner, **pp;
    for (pp = &conn->rc->conns; *pp; pp = &(*pp)->next)
        if (*pp == conn) {
            *pp = conn->next;
            break;
        }
    free(conn);
}

/* Stop using conn. With after_writes, the writes already handed to libuv go
 * out first (uv_shutdown), for at most the shutdown grace. */
static void rc_conn_close(struct rc_conn *conn, int after_writes)
{
    struct rc *rc = conn->rc;
    if (rc->conn == conn)
        rc->conn = NULL;
    dsh_conn_close(&conn->io, after_writes, rc->cfg.s.shutdown_grace);
}

/* The connection ended under the machine: close it and say so. */
static void rc_conn_ended(struct rc_conn *conn, const char *what)
{
    struct rc *rc = conn->rc;
    dsh_log(DCS_LOG_DEBUG, DCS_CAT_CLIENT, "ended", NULL, 0, "connection ended: %s", what);
    rc_conn_close(conn, 0);
    dcs_client_ended(rc->cl, rc_now(rc));
}

static void rc_conn_data(dsh_conn *c, const char *p, size_t n)
{
    struct rc *rc = ((struct rc_conn *)c->owner)->rc;
    if (dcs_client_input(rc->cl, rc_now(rc), p, n) == DCS_EBUSY) {
        /* Cannot happen: every pump consumes the input. Keep the bytes by
         * consuming the earlier input first. */
        rc_pump(rc);
        dcs_client_input(rc->cl, rc_now(rc), p, n);
    }
    rc_pump(rc);
}

static void rc_conn_read_ended(dsh_conn *c, const char *what)
{
    struct rc_conn *conn = c->owner;
    struct rc *rc = conn->rc;
    rc_conn_ended(conn, what);
    rc_pump(rc);
}

static void rc_conn_written(dsh_conn *c, uint64_t id, int status)
{
    struct rc_conn *conn = c->owner;
    struct rc *rc = conn->rc;
    if (c->dead)
        return; /* the machine has already re-queued or counted what was unfinished */
    if (status == 0) {
        dcs_client_written(rc->cl, rc_now(rc), id);
    } else {
        rc_conn_ended(conn, uv_strerror(status));
    }
    rc_pump(rc);
}

static const dsh_conn_ops rc_conn_ops = {
    rc_conn_freed,
    rc_conn_data,
    rc_conn_read_ended,
    rc_conn_written,
};

static void rc_connect_cb(uv_connect_t *req, int status)
{
    struct rc_conn *conn = req->data;
    struct rc *rc = conn->rc;
    dsh_peer peer = {0, -1, -1};
    int fd = -1, result;

    if (conn->io.dead)
        return; /* the machine gave up on this attempt (connect timeout, stop) */
    if (status == 0) {
        conn->io.connected = 1;
        if (uv_fileno((uv_handle_t *)&conn->io.pipe, &fd) != 0 ||
            dsh_peer_credentials(fd, &peer) != 0) {
            peer.uid = -1;
            dsh_log(DCS_LOG_WARN, DCS_CAT_AUTH, "peer-credentials-unavailable", NULL, 0,
                    "cannot read the server's credentials");
        } else {
            dsh_field f[] = {DSH_INT("pid", peer.pid), DSH_INT("uid", peer.uid),
                             DSH_INT("gid", peer.gid)};
            dsh_log(DCS_LOG_DEBUG, DCS_CAT_AUTH, "peer-credentials", f, 3, "connected to %s",
                    rc->socket_path);
        }
        dsh_conn_read_start(&conn->io);
        dcs_client_connect_result(rc->cl, rc_now(rc), DCS_CONNECT_OK, peer.uid);
    } else {
        dsh_field f[] = {DSH_STR("error", uv_err_name(status))};
        result = (status == UV_ENOENT || status == UV_ENOTDIR) ? DCS_CONNECT_MISSING
                                                               : DCS_CONNECT_FAILED;
        dsh_log(DCS_LOG_DEBUG, DCS_CAT_CLIENT, "connect-error", f, 1, "connect to %s: %s",
                rc->socket_path, uv_strerror(status));
        rc_conn_close(conn, 0);
        dcs_client_connect_result(rc->cl, rc_now(rc), result, -1);
    }
    rc_pump(rc);
}

static void rc_do_connect(struct rc *rc)
{
    struct rc_conn *conn;
    if (rc->conn)
        rc_conn_close(rc->conn, 0);
    conn = calloc(1, sizeof *conn);
    if (!conn) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_CLIENT, "nomem", NULL, 0, "out of memory for a connection");
        dcs_client_connect_result(rc->cl, rc_now(rc), DCS_CONNECT_FAILED, -1);
        return;
    }
    conn->rc = rc;
    dsh_conn_init(&conn->io, &rc->loop, &rc_conn_ops, conn);
    conn->connect_req.data = conn;
    conn->next = rc->conns;
    rc->conns = conn;
    rc->conn = conn;
    uv_pipe_connect(&conn->connect_req, &conn->io.pipe, rc->socket_path, rc_connect_cb);
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                    */

static void rc_do_write(struct rc *rc, const dcs_action *a)
{
    struct rc_conn *conn = rc->conn;
    int err;
    if (!conn || !conn->io.connected || conn->io.dead)
        return; /* the connection is gone; the machine will hear of it */
    err = dsh_conn_write(&conn->io, a->data.ptr, a->data.len, a->id);
    if (err == UV_ENOMEM) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_CLIENT, "nomem", NULL, 0, "out of memory for a write");
        rc_conn_close(conn, 0);
        rc->need_ended = 1;
        return;
    }
    if (err) {
        dsh_log(DCS_LOG_INFO, DCS_CAT_CLIENT, "write-error", NULL, 0, "write failed: %s",
                uv_strerror(err));
        rc_conn_close(conn, 0);
        rc->need_ended = 1;
        return;
    }
    rc_count_written(rc, a->data.ptr, a->data.len);
}

/* ------------------------------------------------------------------------ */
/* The pump                                                                  */

static void rc_teardown(struct rc *rc, int force);

static void rc_timer_cb(uv_timer_t *t)
{
    rc_pump(t->data);
}

static void rc_do(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    switch (a->kind) {
    case DCS_ACT_CONNECT:
        rc_do_connect(rc);
        break;
    case DCS_ACT_WRITE:
        rc_do_write(rc, a);
        break;
    case DCS_ACT_CLOSE:
        if (rc->conn)
            rc_conn_close(rc->conn, (a->flags & DCS_CLOSE_AFTER_WRITES) != 0);
        rc->need_ended = 1;
        break;
    default:
        rc_app_action(rc, now, a);
        break;
    }
}

static void rc_pump(struct rc *rc)
{
    dcs_action a;
    dcs_ms now;
    if (rc->torn_down)
        return;
    now = rc_now(rc);
    while (dcs_client_next(rc->cl, now, &a)) {
        rc_do(rc, now, &a);
        /* Inputs that an action caused are given between two actions, when
         * no pointer of the last action is in use any more. */
        if (rc->need_ended) {
            rc->need_ended = 0;
            dcs_client_ended(rc->cl, now);
        }
        if (rc->want_stop) {
            rc->want_stop = 0;
            dcs_client_stop(rc->cl, now);
        }
    }
    rc_app_flush(rc);
    if (dcs_client_state(rc->cl) == DCS_CLIENT_CLOSED) {
        rc_teardown(rc, 0);
        return;
    }
    dsh_timer_arm(&rc->timer, rc_timer_cb, dcs_client_deadline(rc->cl), now);
}

/* ------------------------------------------------------------------------ */
/* Standard input: one command per line                                      */

static void rc_stdin_close(struct rc *rc)
{
    if (!rc->in_open)
        return;
    rc->in_open = 0;
    uv_close((uv_handle_t *)&rc->in, NULL);
}

/* One line of standard input: blank lines and # comments are skipped. */
static void rc_stdin_line(struct rc *rc, const char *p, size_t n)
{
    size_t i = 0;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n || p[i] == '#')
        return;
    if (rc->stopping) {
        dsh_log(DCS_LOG_WARN, DCS_CAT_MANAGER, "stopping", NULL, 0,
                "command ignored: the client is stopping");
        return;
    }
    rc_command_send(rc, rc_now(rc), p + i, n - i);
}

/* Split data into lines, keeping an unfinished line in rc->line. */
static void rc_stdin_feed(struct rc *rc, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!rc->in_skipping) {
            if (rc->line.len + take > RC_MAX_LINE) {
                dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, "bad-command", NULL, 0,
                        "a line of standard input is longer than %u bytes; ignored",
                        (unsigned)RC_MAX_LINE);
                rc->in_skipping = 1;
                rc->line.len = 0;
            } else if (dcs_buf_append(&rc->line, data, take)) {
                rc->in_skipping = 1;
                rc->line.len = 0;
            }
        }
        if (!nl)
            return;
        if (!rc->in_skipping)
            rc_stdin_line(rc, rc->line.data ? rc->line.data : "", rc->line.len);
        rc->in_skipping = 0;
        rc->line.len = 0;
        data = nl + 1;
        len -= take + 1;
    }
}

/* Feed data and then end the last line even without a newline. */
static void rc_stdin_lines(struct rc *rc, const char *data, size_t len)
{
    rc_stdin_feed(rc, data, len);
    if (rc->line.len && !rc->in_skipping)
        rc_stdin_line(rc, rc->line.data, rc->line.len);
    rc->line.len = 0;
}

static void rc_stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[65536]; /* consumed before the next read */
    (void)h;
    (void)suggested;
    buf->base = chunk;
    buf->len = sizeof chunk;
}

static void rc_stdin_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rc *rc = s->data;
    if (nread > 0) {
        rc_stdin_feed(rc, buf->base, (size_t)nread);
    } else if (nread < 0) {
        rc_stdin_lines(rc, "", 0); /* a last line without a newline */
        rc_stdin_close(rc);
    }
    rc_pump(rc);
}

/* Watch standard input if it is a pipe, socket or terminal. A regular file
 * is read at once; anything else (such as /dev/null) is left alone. */
static void rc_stdin_open(struct rc *rc)
{
    struct stat st;
    uv_handle_type t = uv_guess_handle(0);
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) {
        char chunk[65536];
        for (;;) {
            ssize_t r = read(0, chunk, sizeof chunk);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            rc_stdin_feed(rc, chunk, (size_t)r);
        }
        rc_stdin_lines(rc, "", 0);
        return;
    }
    if (t == UV_TTY) {
        if (uv_tty_init(&rc->loop, &rc->in.tty, 0, 1) != 0)
            return;
    } else if (t == UV_NAMED_PIPE) {
        if (uv_pipe_init(&rc->loop, &rc->in.pipe, 0) != 0)
            return;
        if (uv_pipe_open(&rc->in.pipe, 0) != 0) {
            uv_close((uv_handle_t *)&rc->in.pipe, NULL);
            return;
        }
    } else {
        return;
    }
    rc->in_open = 1;
    rc->in.pipe.data = rc;
    if (uv_read_start((uv_stream_t *)&rc->in, rc_stdin_alloc, rc_stdin_read) != 0)
        rc_stdin_close(rc);
}

/* ------------------------------------------------------------------------ */
/* Signals, start and end                                                    */

static void rc_signal_cb(uv_signal_t *s, int signum)
{
    struct rc *rc = s->data;
    if (signum == SIGUSR1) {
        rc_stats_write(rc, rc->stats_path == NULL);
        return;
    }
    if (rc->stopping) {
        dsh_log(DCS_LOG_WARN, DCS_CAT_MANAGER, "signal", NULL, 0,
                "second %s: stopping without waiting", signum == SIGINT ? "SIGINT" : "SIGTERM");
        dcs_client_stop(rc->cl, rc_now(rc));
        rc_teardown(rc, 1);
        return;
    }
    rc->stopping = 1;
    dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "signal", NULL, 0, "%s: stopping",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    rc_stdin_close(rc);
    dcs_client_stop(rc->cl, rc_now(rc));
    rc_pump(rc);
}

/* Close every handle so that uv_run returns. A connection that is still
 * writing its last bytes (a close notice) may finish, within its linger
 * timer, unless force is set. */
static void rc_teardown(struct rc *rc, int force)
{
    struct rc_conn *conn;
    for (conn = rc->conns; conn; conn = conn->next)
        if (force || !conn->io.shutting)
            dsh_conn_close_now(&conn->io);
    rc->conn = NULL; /* it was closed: only a dead connection is shutting */
    if (rc->torn_down)
        return;
    rc->torn_down = 1;
    rc_app_flush(rc);
    rc_stdin_close(rc);
    uv_close((uv_handle_t *)&rc->timer, NULL);
    dsh_signals_close(&rc->sig);
}

int rc_loop_init(struct rc *rc, char *why, size_t n)
{
    if (dsh_loop_init(&rc->loop, why, n))
        return -1;
    uv_timer_init(&rc->loop, &rc->timer);
    rc->timer.data = rc;
    dsh_signals_init(&rc->sig, &rc->loop, rc);
    dcs_buf_init(&rc->line, NULL);
    rc->loop_inited = 1;
    return 0;
}

int rc_loop_run(struct rc *rc)
{
    dcs_ms now = rc_now(rc);
    dsh_signals_start(&rc->sig, rc_signal_cb);
    dcs_client_start(rc->cl, now);
    rc_stdin_open(rc);
    rc_pump(rc);
    if (dsh_loop_run(&rc->loop, &rc->torn_down, DCS_CAT_CLIENT))
        return DSH_EXIT_RUNTIME;
    return rc->exit_code;
}

void rc_loop_fini(struct rc *rc)
{
    /* Handles closed by teardown need one more turn of the loop. */
    rc_teardown(rc, 1);
    dsh_loop_fini(&rc->loop, DCS_CAT_CLIENT);
    dcs_buf_free(&rc->line);
}
