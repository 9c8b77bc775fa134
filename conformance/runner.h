/*
 * runner.h - running conformance cases against an implementation under test
 * (IUT): the process (iut.c), the sockets and the steps (runner.c).
 *
 * The runner knows the IUT only by its command line and its socket: it never
 * links against it nor assumes anything beyond spec/PROTOCOL.md and the
 * features its profile claims (spec/TRANSCRIPTS.md 6).
 *
 * Times: durations in cases are protocol milliseconds; the runner multiplies
 * them by opts->scale (the --time-scale, or 1/F under --faketime F) and keeps
 * its own clock in monotonic microseconds.
 */
#ifndef DCS_CONFORM_RUNNER_H
#define DCS_CONFORM_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"
#include "transcript.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONF_FEATURES_MAX 32u
#define CONF_FEATURE_ARGS_MAX 16u

/* A feature the profile claims, with the arguments it adds to the IUT's
 * command line for the cases that require it. */
typedef struct conf_feature {
    char *name;
    char *args[CONF_FEATURE_ARGS_MAX];
    size_t n_args;
} conf_feature;

enum conf_time_mode { CONF_TIME_REAL = 0, CONF_TIME_SCALE = 1, CONF_TIME_FAKETIME = 2 };

typedef struct conf_opts {
    int role;            /* the IUT's role: DCS_ROLE_CLIENT or DCS_ROLE_SERVER */
    char *const *argv;   /* the IUT's command; NULL with attach */
    int attach;          /* the IUT is already running */
    int reuse;           /* one IUT for every case */
    const char *socket;  /* a fixed socket path (attach, reuse), or NULL */
    const char *workdir; /* parent of the per-case directories (default $TMPDIR or /tmp) */
    int keep;            /* keep the per-case directories */
    char *const *env;    /* K=V for the IUT */
    size_t n_env;
    const char *iut_id, *peer_id;
    int time_mode;       /* enum conf_time_mode */
    double scale;        /* factor applied to every duration of a case */
    double faketime;     /* F of --faketime F */
    const char *faketime_lib;
    int64_t slack_us;    /* added to upper bounds */
    int64_t tol_us;      /* subtracted from lower bounds */
    int64_t startup_us;  /* allowance for the IUT's start-up */
    const conf_feature *features;
    size_t n_features;
    char *const *skip_tags; /* --skip-tag: cases with these tags are SKIPped */
    size_t n_skip_tags;
    const unsigned char *secret; /* the run's shared secret, for $HMAC */
    size_t secret_len;
    const char *secret_path;     /* the file holding it, for {secret} */
    int verbose;
} conf_opts;

/* ------------------------------------------------------------------------ */
/* The IUT's process (iut.c)                                                 */

typedef struct conf_iut {
    pid_t pid;          /* 0 when not running */
    int stdin_fd;       /* write end of its standard input, or -1 */
    char log_path[512]; /* its standard output and error */
    int exited;         /* it ended and was waited for */
    int status;         /* waitpid status when exited */
    int stopping;       /* the harness asked it to stop */
    int64_t started_us;
} conf_iut;

void conf_iut_init(conf_iut *iut);
/* Start argv (with extra arguments appended) with SOCKET_PATH=socket and the
 * time and environment settings of o. Returns 0, or -1 with a reason. */
int conf_iut_start(conf_iut *iut, const conf_opts *o, const char *socket, char *const *extra,
                   size_t n_extra, char *why, size_t whylen);
/* Reap the process if it ended. Returns 1 if it has ended (now or before). */
int conf_iut_check(conf_iut *iut);
/* SIGTERM, then SIGKILL after grace_us; waits for it. */
void conf_iut_stop(conf_iut *iut, int64_t grace_us);
/* SIGKILL and wait. */
void conf_iut_kill(conf_iut *iut);
/* "exited with status 3", "killed by signal 11 (Segmentation fault)". */
void conf_iut_describe(const conf_iut *iut, char *out, size_t n);
/* True when the status is a crash: a signal the harness did not send. */
int conf_iut_crashed(const conf_iut *iut);

/* ------------------------------------------------------------------------ */
/* Time                                                                      */

int64_t conf_now_us(void);
int64_t conf_wall_ms(void);

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */

/* A shared IUT and socket for --reuse / --attach; NULL for a fresh IUT per
 * case. */
typedef struct conf_shared conf_shared;

conf_shared *conf_shared_new(const conf_opts *o, char *why, size_t whylen);
void conf_shared_free(conf_shared *s, const conf_opts *o);

/* Run one case. The result's id, title, role, level, cites and verdict are
 * filled; file, category and source are the caller's to fill. Never fails:
 * a harness failure is the verdict ERROR with its reason. */
void conf_run_case(const dcs_case *c, const conf_opts *o, conf_shared *shared,
                   dcs_case_result *r);

/* The feature named name, or NULL if the profile does not claim it. */
const conf_feature *conf_feature_find(const conf_opts *o, const char *name);

#ifdef __cplusplus
}
#endif
#endif /* DCS_CONFORM_RUNNER_H */
