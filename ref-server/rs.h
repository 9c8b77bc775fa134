/* rs.h - dcs-server, the reference server (it plays the crawler, crawlz).
 *
 * A thin I/O shell around the server state machine of dcs/server.h:
 * listen.c creates (or inherits) the listening socket; loop.c owns the
 * libuv loop, the connections, the machine's timer and the signals, and
 * carries out the machine's actions; crawl.c is the crawler the machine
 * delivers to (asks for jobs, "crawls" them by emitting PROGRESS_UPDATE,
 * honours the commands); main.c reads the command line; stats.c writes the
 * statistics. Every protocol decision is the machine's. */
#ifndef DCS_REF_SERVER_RS_H
#define DCS_REF_SERVER_RS_H

#include <stdio.h>
#include <sys/types.h>

#include "dcs/server.h"
#include "uvshell.h"

#define RS_PROG "dcs-server"
#define RS_EXIT_IN_USE 3 /* another server is listening on the socket */

/* The crawler's behaviour (--scenario FILE, README.md). Times are ms before
 * DCS_TIME_SCALE; rs_setup scales them. */
struct rs_scenario {
    unsigned steps;           /* processing steps between started and completed */
    uint64_t items_per_step;  /* processedItems grows by this much per step */
    dcs_ms interval;          /* between two progress reports of one job */
    dcs_ms idle_pause;        /* before asking again after an empty jobs array */
    dcs_ms retry_pause;       /* after jobs_error, a timeout or a refused request */
    int token_refresh;        /* send TOKEN_REFRESH_REQUEST before crawling a job */
    char provider[64];        /* providerId of that request */
    unsigned max_jobs;        /* "maxJobs" hint in request_jobs; 0: none */
    int fail_every;           /* every Nth job ends failed instead; 0: never */
};

/* One job being crawled. */
struct rs_job {
    struct rs_job *next;
    char *task_id;
    uint64_t conn;     /* the connection it came from */
    unsigned step;     /* 0: started next; 1..steps: processing; steps+1: end */
    dcs_ms due;        /* time of the next report */
    dcs_ms last_ts;    /* wall ms of the last report (kept strictly growing) */
    int failing;
};

struct rs;

struct rs_conn {
    dsh_conn io; /* the socket, its linger timer, its close state and writes */
    struct rs *rs;
    struct rs_conn *next;
    uint64_t id;
    int need_ended;  /* tell the machine it ended, between two actions */
    /* the crawler's view */
    int open;         /* OPEN seen, no LOST yet */
    char *client_id;  /* the peer's id (may be empty in lenient mode) */
    int asking;       /* a request_jobs is pending */
    dcs_ms next_ask;  /* when to send request_jobs; DCS_NEVER: not now */
    uint64_t load_seq; /* --rate: messages generated for this connection */
};

struct rs {
    /* configuration */
    char socket_path[128];
    const char *id;
    const char *stats_path;
    dcs_server_config cfg;
    int64_t *allowed;
    size_t n_allowed;
    unsigned char *secret;
    size_t secret_len;
    double scale;
    int64_t started_wall;
    int group_set;
    gid_t group;
    struct rs_scenario sc;
    double rate;       /* --rate N; 0: off */
    int rate_max;      /* --rate max */

    /* the machine */
    dcs_server *srv;
    uint64_t next_conn_id;

    /* the crawler */
    struct rs_job *jobs;
    uint64_t jobs_received, jobs_started, jobs_completed, jobs_failed, jobs_abandoned;
    uint64_t requests_sent, requests_refused, empty_replies, token_requests, start_jobs;
    uint64_t progress_sent, progress_paused, load_sent, drops;
    dcs_buf scratch, scratch2;
    int crawl_dirty;   /* an action changed the crawler's state: run it soon */
    int in_crawl;      /* rs_crawl_run is pumping */
    dcs_ms load_last;  /* --rate N: time of the last generation */
    double load_credit;

    /* the loop */
    uv_loop_t loop;
    int loop_inited;
    uv_pipe_t listener;
    int listening;       /* the listener handle is open */
    int created_socket;  /* we created the socket file: remove it on exit */
    int inherited;       /* socket activation */
    uv_timer_t timer;    /* the machine's deadline */
    uv_timer_t crawl_timer;
    dsh_signals sig;
    struct rs_conn *conns;
    int stopping;
    int torn_down;
    int exit_code;
};

/* listen.c: create, probe, inherit and remove the listening socket.
 * 0, -1 (configuration error, why set), or RS_EXIT_IN_USE (why set). */
int rs_listen(struct rs *rs, char *why, size_t n);
void rs_unlink_socket(struct rs *rs);

/* loop.c */
int rs_loop_init(struct rs *rs, char *why, size_t n);
int rs_loop_run(struct rs *rs);
void rs_loop_fini(struct rs *rs);
dcs_ms rs_now(struct rs *rs);
struct rs_conn *rs_conn_find(struct rs *rs, uint64_t id);
/* Run the machine's actions now (after the crawler handed something over). */
void rs_pump(struct rs *rs);

/* crawl.c */
int rs_scenario_load(struct rs_scenario *sc, const char *path, char *why, size_t n);
void rs_scenario_default(struct rs_scenario *sc);
void rs_scenario_scale(struct rs_scenario *sc, double factor);
/* DELIVER, RESULT, DROP, LOG, OPEN, LOST. */
void rs_app_action(struct rs *rs, dcs_ms now, const dcs_action *a);
/* Do what is due, then re-arm the crawler's timer. */
void rs_crawl_run(struct rs *rs);
/* --rate max: top up the connections whose writes have drained. */
void rs_load_topup(struct rs *rs, dcs_ms now);
/* After a pump: run the crawler at once if an action changed its state. */
void rs_crawl_kick(struct rs *rs);
void rs_crawl_fini(struct rs *rs);

/* stats.c */
void rs_stats_write(struct rs *rs, int to_stderr);

#endif /* DCS_REF_SERVER_RS_H */
