/*
 * shell/uvshell.h - the libuv parts that dcs-client and dcs-server share:
 * one connection's Unix socket (a uv_pipe) with its linger timer, writes
 * that copy their bytes, a graceful close bounded by the shutdown grace, and
 * the small pieces of an event loop (the clock, the deadline timer, the
 * three signals, start and end of the loop).
 *
 * Only these files use libuv; shell.h stays free of it. What a connection
 * means to a machine (which bytes go where, when it ended) is the
 * program's: the connection calls the program back through dsh_conn_ops.
 */
#ifndef DCS_UVSHELL_H
#define DCS_UVSHELL_H

#include <uv.h>

#include "shell.h"

/* ------------------------------------------------------------------------ */
/* One connection                                                            */

typedef struct dsh_conn dsh_conn;

/* What a connection calls back. Every member must be set. */
typedef struct dsh_conn_ops {
    /* Both handles are closed: unlink the program's connection and free it.
     * The dsh_conn must not be used after this. */
    void (*freed)(dsh_conn *c);
    /* Bytes read; they stay valid until the next read. Not called once the
     * connection is dead. */
    void (*data)(dsh_conn *c, const char *p, size_t n);
    /* The peer ended the connection (what: "end of file" or the read
     * error). Not called once the connection is dead. */
    void (*ended)(dsh_conn *c, const char *what);
    /* A write of dsh_conn_write completed (status 0) or failed. Called even
     * when the connection is dead. */
    void (*written)(dsh_conn *c, uint64_t id, int status);
} dsh_conn_ops;

struct dsh_conn {
    uv_pipe_t pipe;
    uv_timer_t linger; /* ends a graceful close that takes too long */
    uv_shutdown_t shutdown_req;
    const dsh_conn_ops *ops;
    void *owner;    /* the program's connection */
    int connected;  /* the socket is connected (or accepted) */
    int dead;       /* the machine no longer counts on this connection */
    int shutting;   /* a graceful close (uv_shutdown) is under way */
    int closing;    /* uv_close has been called */
    int handles;    /* handles not yet closed */
    size_t writes;  /* writes handed to libuv and not yet completed */
    char rbuf[65536];
};

/* Initialise the pipe and the linger timer of c on loop. */
void dsh_conn_init(dsh_conn *c, uv_loop_t *loop, const dsh_conn_ops *ops, void *owner);

/* Start reading: ops->data and ops->ended are called from now on. The
 * result of uv_read_start. */
int dsh_conn_read_start(dsh_conn *c);

/* Close both handles now; pending writes are cancelled. ops->freed follows
 * once both are closed. */
void dsh_conn_close_now(dsh_conn *c);

/* Stop using c: it is dead from now on. With after_writes, the writes
 * already handed to libuv go out first (uv_shutdown), for at most grace
 * milliseconds; otherwise (or if the shutdown cannot start) close now. */
void dsh_conn_close(dsh_conn *c, int after_writes, dcs_ms grace);

/* Write a copy of data[0..len); ops->written reports id when it is done.
 * 0, or a negative libuv error: UV_ENOMEM means the copy could not be
 * allocated, anything else is the error of uv_write. On an error nothing
 * was handed to libuv and ops->written is not called. */
int dsh_conn_write(dsh_conn *c, const char *data, size_t len, uint64_t id);

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

/* The stop and statistics signals: SIGINT, SIGTERM and SIGUSR1. */
typedef struct dsh_signals {
    uv_signal_t sig_int, sig_term, sig_usr1;
} dsh_signals;

/* uv_loop_init. 0, or -1 with a one-line reason. */
int dsh_loop_init(uv_loop_t *loop, char *why, size_t n);

/* Run the loop until no handle is active. 0, or -1 (logged under category)
 * if it ended for another reason before the program tore it down (*torn_down
 * is still 0). */
int dsh_loop_run(uv_loop_t *loop, const int *torn_down, const char *category);

/* Close what teardown left open (one more turn of the loop), then the loop
 * itself; a loop that still has handles is logged under category. */
void dsh_loop_fini(uv_loop_t *loop, const char *category);

/* The loop's clock after uv_update_time(): the machines' time. */
dcs_ms dsh_now(uv_loop_t *loop);

/* Arm t to fire cb at deadline (at once if it has passed), or stop it if
 * deadline is DCS_NEVER. */
void dsh_timer_arm(uv_timer_t *t, uv_timer_cb cb, dcs_ms deadline, dcs_ms now);

/* Initialise the three signal handles with data as their data. */
void dsh_signals_init(dsh_signals *s, uv_loop_t *loop, void *data);
/* Watch SIGINT, SIGTERM and SIGUSR1 with cb. */
void dsh_signals_start(dsh_signals *s, uv_signal_cb cb);
/* Close the three handles. */
void dsh_signals_close(dsh_signals *s);

#endif /* DCS_UVSHELL_H */
