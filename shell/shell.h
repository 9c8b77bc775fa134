/*
 * shell/shell.h - the parts of an I/O shell that dcs-client and dcs-server
 * share: structured logging, configuration (socket path, DCS_TIME_SCALE,
 * --set NAME=VALUE over every timer and limit), the shared-secret file, the
 * random source, peer credentials, and small JSON helpers for statistics and
 * for the JSON files the programs read.
 *
 * This is program code, not library code: the log keeps one global
 * configuration, and nothing here is meant for reuse outside the programs.
 * Symbols carry the prefix dsh_ ("dcs shell"). No function here touches
 * libuv; the event loops live in the programs, and the libuv parts they
 * share are in uvshell.h.
 */
#ifndef DCS_SHELL_H
#define DCS_SHELL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dcs/codec.h"
#include "dcs/session.h"

/* ------------------------------------------------------------------------ */
/* Exit status, the same in both programs                                    */

#define DSH_EXIT_OK 0      /* clean shutdown */
#define DSH_EXIT_RUNTIME 1 /* a failure at run time (for example an event loop error) */
#define DSH_EXIT_CONFIG 2  /* bad command line or configuration; one line on stderr */

/* Print "PROG: <reason>" as one line on stderr (a configuration error). */
void dsh_config_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */

enum dsh_log_format { DSH_LOG_TEXT = 0, DSH_LOG_JSON = 1 };

/* One extra field of a log record. Text values are written as JSON strings
 * (invalid UTF-8 replaced by U+FFFD); never put a secret in a field. */
enum dsh_field_kind { DSH_F_STR = 1, DSH_F_INT = 2 };
typedef struct dsh_field {
    const char *name;
    int kind;
    const char *s; /* DSH_F_STR */
    size_t len;    /* DSH_F_STR: length of s */
    int64_t i;     /* DSH_F_INT */
} dsh_field;

#define DSH_STR(n, v) ((dsh_field){(n), DSH_F_STR, (v), strlen(v), 0})
#define DSH_STRN(n, v, l) ((dsh_field){(n), DSH_F_STR, (v), (l), 0})
#define DSH_INT(n, v) ((dsh_field){(n), DSH_F_INT, NULL, 0, (int64_t)(v)})

/* Set up the log: records at level (enum dcs_log_level) or more severe are
 * written to out (stderr when NULL), one record per line. */
void dsh_log_setup(const char *prog, int format, int level, FILE *out);

/* Whether a record of this level would be written. */
int dsh_log_enabled(int level);

/* Write one record: a time stamp, the level, the category (DCS_CAT_*), a
 * stable reason name, the sentence and the fields. In the text format:
 *   2025-01-03T19:00:00.123Z info  messaging.direct-client [reason] sentence key=value
 * In the JSON format, one object per line with the members ts, level,
 * category, reason, msg and then the fields. */
void dsh_log(int level, const char *category, const char *reason, const dsh_field *fields,
             size_t n_fields, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* "error", "warn", "info", "debug". */
const char *dsh_log_level_name(int level);
/* Parse a level or format name. 0, or -1 if the name is unknown. */
int dsh_log_level_parse(const char *s, int *level);
int dsh_log_format_parse(const char *s, int *format);

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

/* The socket path (spec 3.2): opt if not NULL, else $SOCKET_PATH if set and
 * not empty, else <cwd>/data.private/config/api.sock. 0, or -1 with a
 * one-line reason (path too long for sun_path, no working directory). */
int dsh_socket_path(const char *opt, char *out, size_t n, char *why, size_t wn);

/* Apply one "NAME=VALUE" to c. NAME is a field of dcs_session_config
 * (reconnect_base) or its constant of spec 12.1 (DCS_T_RECONNECT_BASE).
 * Timers are whole milliseconds before scaling. 0, or -1 with a reason. */
int dsh_config_set(dcs_session_config *c, const char *assignment, char *why, size_t n);

/* Describe every NAME that dsh_config_set accepts, one per line, with its
 * constant, unit and default, each line starting with indent. */
void dsh_config_help(FILE *f, const char *indent);

/* Read DCS_TIME_SCALE, scale the timers of c by it (after the overrides),
 * then check c (spec 12.2, 12.3). On success *factor (may be NULL) holds the
 * scale. 0, or -1 with a one-line reason. */
int dsh_config_finish(dcs_session_config *c, double *factor, char *why, size_t n);

/* Parse a non-negative decimal integer (no sign, no spaces) up to max. */
int dsh_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* An id must be a non-empty UTF-8 string (spec 2.2). 0, or -1 with a
 * one-line reason that names the option (what, such as "--id"). */
int dsh_check_id(const char *what, const char *id, char *why, size_t n);

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

/* The getopt_long codes of the options both programs take, above any code
 * a program gives its own options. */
enum { DSH_OPT_SET = 1000, DSH_OPT_STATS, DSH_OPT_LOG_FORMAT, DSH_OPT_LOG_LEVEL };

/* The entries of a struct option table (<getopt.h>) for those options and
 * for -h/--help and -V/--version, to put before the terminating entry. */
#define DSH_OPTIONS_COMMON                                                                        \
    {"set", required_argument, NULL, DSH_OPT_SET},                                                \
        {"stats", required_argument, NULL, DSH_OPT_STATS},                                        \
        {"log-format", required_argument, NULL, DSH_OPT_LOG_FORMAT},                              \
        {"log-level", required_argument, NULL, DSH_OPT_LOG_LEVEL},                                \
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}

/* What the common options set. */
typedef struct dsh_opts {
    const char *prog;        /* for --version */
    dcs_session_config *cfg; /* --set NAME=VALUE applies here */
    const char *stats_path;  /* --stats FILE, or NULL */
    int log_format;          /* --log-format (enum dsh_log_format) */
    int log_level;           /* --log-level (enum dcs_log_level) */
} dsh_opts;

/* Set the defaults: no --stats, the text format, level info. */
void dsh_opts_init(dsh_opts *o, const char *prog, dcs_session_config *cfg);

/* A program's own option c with its value arg (NULL if it takes none).
 * 0, or -1 with a one-line reason. */
typedef int (*dsh_opt_fn)(void *ctx, int c, const char *arg, char *why, size_t n);

struct option;

/* Read the command line with getopt_long (no messages of its own): -h shows
 * usage(stdout); the common options and -V go to o; any other option to
 * own(ctx, ...). An unknown option, a missing value or an argument left
 * over is an error. 0: go on; 1: done (help or version was shown); -1: a
 * configuration error (why is set). */
int dsh_opt_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  dsh_opts *o, void (*usage)(FILE *f), dsh_opt_fn own, void *ctx, char *why,
                  size_t n);

/* ------------------------------------------------------------------------ */
/* Secret file (spec 10.3.1)                                                 */

/* Read the shared secret: path must name a regular file owned by the
 * effective uid with no permission for group or other; the secret is its
 * bytes with one trailing "\n" or "\r\n" removed, 16 to 4096 bytes long.
 * On success *secret is a new buffer (free it with dsh_secret_free). 0, or -1
 * with a one-line reason that never contains the secret. */
int dsh_secret_read(const char *path, unsigned char **secret, size_t *len, char *why, size_t n);
/* Wipe and free a secret. NULL is allowed. */
void dsh_secret_free(unsigned char *secret, size_t len);

/* ------------------------------------------------------------------------ */
/* Randomness, credentials, files                                            */

/* Initialise libsodium and fill rng with its generator: uniform() draws 53
 * random bits, bytes() is randombytes_buf. 0, or -1 if libsodium failed. */
int dsh_rng_init(dcs_rng *rng);

typedef struct dsh_peer {
    int64_t pid; /* 0 or less: unknown (spec 3.3) */
    int64_t uid, gid;
} dsh_peer;

/* The credentials of the peer of the connected Unix socket fd (SO_PEERCRED,
 * or getpeereid where that is what the system has). 0, or a negative errno. */
int dsh_peer_credentials(int fd, dsh_peer *p);

/* Read a whole file of at most max bytes into a new NUL-terminated buffer
 * (free it with free()). 0, or -1 with a one-line reason naming the file. */
int dsh_file_read(const char *path, size_t max, char **data, size_t *len, char *why, size_t n);

/* Replace path with data atomically (write a temporary file beside it,
 * then rename), created with the given mode. 0, or -1 with a reason. */
int dsh_file_replace(const char *path, const void *data, size_t len, unsigned mode, char *why,
                     size_t n);

/* Milliseconds since the Unix epoch (wall clock). */
int64_t dsh_wall_ms(void);

/* ------------------------------------------------------------------------ */
/* JSON writing                                                              */

/* Append s as a JSON string (with quotes), escaped as JSON.stringify does;
 * bytes that are not valid UTF-8 become U+FFFD. 0 or DCS_ENOMEM. */
int dsh_json_string(dcs_buf *b, const char *s, size_t len);

/* Append the JSON text raw with the whitespace between tokens removed, so
 * that it fits on one line (raw must be valid JSON). 0 or DCS_ENOMEM. */
int dsh_json_compact(dcs_buf *b, const char *raw, size_t len);

#define DSH_JSON_MAX_DEPTH 16

/* A small writer of nested objects and arrays, for statistics. Errors are
 * sticky: check dsh_jw_error() once at the end. Every function with a key
 * writes "key": first when inside an object; key is ignored in arrays. */
typedef struct dsh_jw {
    dcs_buf *b;
    int depth;
    unsigned char first[DSH_JSON_MAX_DEPTH]; /* no member written yet at this level */
    char close[DSH_JSON_MAX_DEPTH];          /* the bracket that closes this level */
    int err;
} dsh_jw;

void dsh_jw_init(dsh_jw *w, dcs_buf *b);
void dsh_jw_object(dsh_jw *w, const char *key);
void dsh_jw_array(dsh_jw *w, const char *key);
void dsh_jw_end(dsh_jw *w);
void dsh_jw_uint(dsh_jw *w, const char *key, uint64_t v);
void dsh_jw_int(dsh_jw *w, const char *key, int64_t v);
void dsh_jw_double(dsh_jw *w, const char *key, double v);
void dsh_jw_bool(dsh_jw *w, const char *key, int v);
/* An object of message counts by envelope type (DCS_MT_COUNT slots). */
void dsh_jw_by_type(dsh_jw *w, const char *key, const uint64_t *counts);
void dsh_jw_str(dsh_jw *w, const char *key, const char *s);
void dsh_jw_strn(dsh_jw *w, const char *key, const char *s, size_t len);
/* Write a raw JSON value (must be valid JSON). */
void dsh_jw_raw(dsh_jw *w, const char *key, const char *raw, size_t len);
int dsh_jw_error(const dsh_jw *w);

/* Write every field of c (the effective, scaled configuration) as members
 * of the current object, named as dsh_config_set names them. */
void dsh_jw_session_config(dsh_jw *w, const dcs_session_config *c);

/* Statistics: open the object of w (on b) with the members both programs
 * start with: program, version, pid, time (now_wall), uptime_ms (since
 * started_wall), id and socket. */
void dsh_stats_begin(dsh_jw *w, dcs_buf *b, const char *prog, int64_t now_wall,
                     int64_t started_wall, const char *id, const char *socket);
/* Close it with time_scale and the effective configuration c, and end it
 * with a newline unless writing failed. */
void dsh_stats_end(dsh_jw *w, double scale, const dcs_session_config *c);
/* Write the statistics b to stderr (to_stderr, or no path) or replace path
 * with them (mode 0600); a failure is logged under category. */
void dsh_stats_write(const dcs_buf *b, const char *path, int to_stderr, const char *category);

/* ------------------------------------------------------------------------ */
/* JSON reading (files the programs are given, already validated)            */

/* Iterate over the elements of a JSON array or the members of a JSON
 * object. The text must have passed dcs_json_validate(). */
typedef struct dsh_iter {
    const char *p, *end;
    int started;
} dsh_iter;

/* Start at the array or object that text[0..len) holds (leading whitespace
 * allowed). 0, or -1 if the value is not an array (or not an object). */
int dsh_iter_array(dsh_iter *it, const char *text, size_t len);
int dsh_iter_object(dsh_iter *it, const char *text, size_t len);
/* The next element: 1 with *value set, 0 at the end. */
int dsh_iter_next_value(dsh_iter *it, dcs_slice *value);
/* The next member: 1 with *name (the raw string body, between the quotes,
 * escapes not decoded) and *value set, 0 at the end. */
int dsh_iter_next_member(dsh_iter *it, dcs_slice *name, dcs_slice *value);

/* The first non-whitespace byte of a JSON text, or 0. */
char dsh_json_kind(const char *text, size_t len);

#endif /* DCS_SHELL_H */
