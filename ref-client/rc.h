/* rc.h - dcs-client, the reference client (it plays the web application).
 *
 * The program is a thin I/O shell around the client state machine of
 * dcs/client.h: loop.c owns the libuv loop, the socket, the timer, signals
 * and standard input, and carries out the machine's actions; app.c is the
 * application the machine delivers to (jobs, tokens, the deliveries file,
 * commands, statistics); main.c reads the command line. Every protocol
 * decision (when to connect, what to write, when to give up on a peer) is
 * the machine's. */
#ifndef DCS_REF_CLIENT_RC_H
#define DCS_REF_CLIENT_RC_H

#include <stdio.h>

#include "dcs/client.h"
#include "uvshell.h"

#define RC_PROG "dcs-client"

/* ------------------------------------------------------------------------ */
/* The application's state                                                   */

enum rc_job_state { RC_JOB_QUEUED = 0, RC_JOB_RUNNING, RC_JOB_COMPLETED, RC_JOB_FAILED };

struct rc_job {
    char *task_id;   /* decoded taskId */
    const char *raw; /* the job object as it appears in the jobs file */
    size_t len;
    int state;         /* enum rc_job_state */
    uint64_t reply_id; /* the jobs_available message that handed it out */
};

struct rc_token {
    char *provider;    /* decoded provider id */
    const char *inner; /* the record's members, without the braces */
    size_t inner_len;
    int has_provider; /* the record has its own providerId member */
};

/* A counter per message type/key, bounded so that a peer that invents keys
 * cannot grow it: past RC_MAX_KINDS distinct kinds, the rest count as
 * "other". */
#define RC_MAX_KINDS 64
struct rc_kinds {
    char *name[RC_MAX_KINDS];
    uint64_t n[RC_MAX_KINDS];
    size_t used;
    uint64_t other;
};

/* ------------------------------------------------------------------------ */
/* One connection (attempt) and its libuv handles                            */

struct rc;

struct rc_conn {
    dsh_conn io; /* the socket, its linger timer and its close state */
    uv_connect_t connect_req;
    struct rc *rc;
    struct rc_conn *next; /* every connection not yet freed */
};

/* ------------------------------------------------------------------------ */
/* The program                                                               */

struct rc {
    /* configuration */
    char socket_path[128];
    const char *id;
    const char *stats_path;
    int exit_after_jobs;
    dcs_client_config cfg;
    unsigned char *secret;
    size_t secret_len;
    double scale;
    int64_t started_wall;

    /* the machine */
    dcs_client *cl;
    int need_ended; /* tell the machine the connection ended, between two actions */
    int want_stop;  /* stop the machine, between two actions */

    /* the application */
    char *jobs_text;
    struct rc_job *jobs;
    size_t n_jobs;
    size_t *job_index; /* jobs sorted by taskId, for lookups */
    char *tokens_text;
    struct rc_token *tokens;
    size_t n_tokens;
    FILE *deliveries;
    struct rc_kinds delivered, written;
    uint64_t jobs_handed_out, jobs_returned, requests_served;
    uint64_t tokens_answered, tokens_refused;
    uint64_t commands_sent, commands_refused;
    dcs_buf scratch, scratch2;
#define RC_MAX_DROP_NOTES 8
    struct {
        char reason[32]; /* the machine's reason name */
        uint64_t n;
    } drop_notes[RC_MAX_DROP_NOTES]; /* drops of this pump, by reason */
    size_t n_drop_notes;

    /* the loop */
    uv_loop_t loop;
    int loop_inited;
    uv_timer_t timer;
    dsh_signals sig;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int in_open;     /* the standard input handle is initialised and not closed */
    int in_skipping; /* discarding the rest of an overlong line */
    dcs_buf line;
    struct rc_conn *conn; /* the connection the machine is using, or NULL */
    struct rc_conn *conns;
    int stopping; /* a stop signal arrived */
    int torn_down;
    int exit_code;
};

/* loop.c */
int rc_loop_init(struct rc *rc, char *why, size_t n);
/* Start the machine and run the loop until the machine is CLOSED. */
int rc_loop_run(struct rc *rc);
void rc_loop_fini(struct rc *rc);
dcs_ms rc_now(struct rc *rc);

/* files.c: what the application is given at start-up */
int rc_jobs_load(struct rc *rc, const char *path, char *why, size_t n);
int rc_tokens_load(struct rc *rc, const char *path, char *why, size_t n);
int rc_deliveries_open(struct rc *rc, const char *path, char *why, size_t n);
/* Parse "TYPE[:JSON]": *key is TYPE (within text), the payload (JSON with
 * "type":TYPE) is appended to out. 0, or -1 with a one-line reason. */
int rc_command_parse(const char *text, size_t len, dcs_slice *key, dcs_buf *out, char *why,
                     size_t n);
/* The job with this taskId, or NULL. */
struct rc_job *rc_job_find(struct rc *rc, const char *task_id, size_t len);
void rc_files_fini(struct rc *rc);

/* app.c: the application the machine delivers to */
/* Hand a command to the machine. 0, or -1 (logged). */
int rc_command_send(struct rc *rc, dcs_ms now, const char *text, size_t len);
/* Carry out DELIVER, DROP, LOG, OPEN and LOST. */
void rc_app_action(struct rc *rc, dcs_ms now, const dcs_action *a);
/* After each pump: log the drops of the pump, one record per reason, and
 * flush the deliveries file. */
void rc_app_flush(struct rc *rc);

/* stats.c */
void rc_kinds_add(struct rc_kinds *k, dcs_slice type, dcs_slice key);
void rc_kinds_free(struct rc_kinds *k);
/* Count a message written on the socket by its type/key. */
void rc_count_written(struct rc *rc, const char *data, size_t len);
/* Write the statistics to --stats FILE, or to stderr. */
void rc_stats_write(struct rc *rc, int to_stderr);

#endif /* DCS_REF_CLIENT_RC_H */
