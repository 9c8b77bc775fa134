/* runner_int.h - what runner.c (connections, sockets, variables) and
 * steps.c (the steps) share. */
#ifndef DCS_CONFORM_RUNNER_INT_H
#define DCS_CONFORM_RUNNER_INT_H

#include "internal.h"
#include "runner.h"

#define CX_MAX_CONNS 256u
#define CX_MAX_IGNORE 32u
#define CX_MAX_EXTRA 64u

enum { STEP_OK = 0, STEP_FAIL = 1, STEP_SKIP = 2, STEP_ERROR = -1 };
enum { EV_MSG = 1, EV_ERR = 2, EV_EOF = 3 };

/* Something the IUT did on a connection, in arrival order. */
typedef struct cev {
    int kind;       /* EV_* */
    int64_t t;      /* monotonic us when the harness read it (its last byte) */
    int64_t t_first; /* when the harness read its first byte; EV_EOF: the
                        earliest the IUT may have closed (conn_ended) */
    uint64_t offset;
    char *raw;      /* EV_MSG: the message as written */
    size_t len;
    char type[64], key[96]; /* EV_MSG: decoded, truncated */
    char reason[32];        /* EV_ERR */
    char msg[192];
} cev;

typedef struct conn {
    int fd;               /* -1 once closed */
    int n;                /* number from 1, in arrival order */
    int taken;            /* made current by accept, connect or expect-reconnect */
    int registered;       /* register passed: keepalive may run */
    int writing;          /* a step is writing: no keepalive in between */
    int64_t t_open, t_end;
    int64_t next_hb;
    int64_t msg_start_t;  /* when the first byte of the partial message came */
    dcs_decoder *dec, *odec; /* what the IUT wrote; what the harness wrote */
    uint64_t in_off, out_off;
    cev *evs;
    size_t n_evs, cap_evs, cursor;
} conn;

typedef struct cx_div {
    int line;
    char step[512];
    char expected[2048];
    char actual[4096];
    int conn;
    uint64_t offset;
    int has_offset;
    int64_t elapsed_ms;
} cx_div;

typedef struct cx {
    const conf_opts *o;
    const dcs_case *c;
    dcs_case_result *r;
    conf_iut own_iut, *iut;
    char dir[256], sock[300];
    int lfd, lfd_shared;
    conn *conns[CX_MAX_CONNS];
    size_t n_conns;
    conn *cur;
    int64_t t_case0, last_end, startup_until, hb_period;
    int64_t t_ref; /* the last event seen before the current step (0: none) */
    int keepalive, killed;
    char ignore[CX_MAX_IGNORE][160];
    size_t n_ignore;
    const char *iut_id, *peer_id;
    char *extra[CX_MAX_EXTRA];
    size_t n_extra;
    long log_start, step_log_from;
    dcs_vars vars;
    size_t wire_cap, wire_bytes;
    cx_div div;
    char error[1024];
} cx;

int64_t cx_scaled(const cx *x, int64_t ms);
int cx_fail(cx *x, const dcs_step *st, int64_t t0, const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int cx_error(cx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cx_wire(cx *x, int cn, int dir, uint64_t offset, const char *data, size_t len);
void cx_note(cx *x, int cn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
conn *cx_conn_new(cx *x, int fd);
void cx_conn_close(cx *x, conn *c, const char *why);
int cx_write(cx *x, conn *c, const char *data, size_t len);
int cx_drain(cx *x, conn *c, int64_t limit_us);
int cx_pump(cx *x, int64_t until, int wfd);
int cx_sleep(cx *x, int64_t until);
int cx_listen(cx *x);
int cx_listen_plain(cx *x, char *why, size_t whylen);
void cx_unlisten(cx *x);
int cx_connect_once(const char *path);
int cx_set_number_var(cx *x, const char *name, long long v);
/* Set $HMAC from $NONCE and the client's id (spec 10.3.3). */
int cx_compute_hmac(cx *x);
int cx_subst(cx *x, const char *s, size_t len, dcs_buf *out);
int cx_complete(cx *x, const char *s, size_t len, dcs_buf *out);
int cx_run_steps(cx *x, const dcs_step_list *l, int64_t t_first);

#endif
