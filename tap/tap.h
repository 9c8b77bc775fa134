/* tap.h - dcs-tap, a recording and fault-injecting proxy for DCS on Unix
 * sockets (what toxiproxy is for TCP).
 *
 * The tap listens on one socket and, for every connection it accepts,
 * connects to the upstream socket and forwards the bytes both ways. Each
 * direction of each connection is a tap_dir: bytes read from one socket go
 * through a decoder (the codec's framing: message boundaries, offsets), the
 * faults of that direction, a queue bounded by TAP_DIR_CAP, and are written
 * to the other socket.
 *
 * Files: main.c reads the command line; loop.c owns the listening socket,
 * the connections, the ppoll() loop, the signals and the statistics;
 * flow.c moves the bytes of one direction and applies the faults; fault.c
 * parses --fault; record.c writes the --record transcript
 * (spec/TRANSCRIPTS.md, section 9); mirror.c finds the state of the
 * upstream socket for --mirror-upstream. Everything runs on one thread. */
#ifndef DCS_TAP_H
#define DCS_TAP_H

#include <stdint.h>
#include <stdio.h>

#include "shell.h"

#define TAP_PROG "dcs-tap"
#define TAP_CAT "tap"             /* the log category of every record */
#define TAP_EXIT_BUSY 3           /* something listens on --listen already */
#define TAP_MAX_FAULTS 32         /* --fault options */
#define TAP_DIR_CAP (4u << 20)    /* bytes held per direction before reading stops */
#define TAP_READ_CHUNK 65536u     /* one read */

/* Directions: c2s is from the accepted client to the upstream server. */
enum { TAP_C2S = 0, TAP_S2C = 1 };
#define TAP_DIR_BIT(d) (1u << (d))
#define TAP_BOTH (TAP_DIR_BIT(TAP_C2S) | TAP_DIR_BIT(TAP_S2C))

/* The role of the implementation under test in a recording. */
enum { TAP_ROLE_CLIENT = 1, TAP_ROLE_SERVER = 2 };

/* Monotonic microseconds. */
int64_t tap_now_us(void);

/* ------------------------------------------------------------------------ */
/* Faults (fault.c)                                                          */

enum tap_fault_kind {
    TAP_F_SLICE = 1, /* n: piece size */
    TAP_F_DELAY,     /* n: milliseconds */
    TAP_F_STALL,     /* n: milliseconds, at: bytes */
    TAP_F_DROP,      /* type, key */
    TAP_F_DUP,       /* type, key */
    TAP_F_CORRUPT,   /* n: stream offset */
    TAP_F_RESET,     /* n: bytes */
};

typedef struct tap_fault {
    int kind;
    unsigned dirs;     /* TAP_DIR_BIT mask */
    uint64_t n, at;
    char *type, *key;  /* drop, dup: key NULL matches any key */
    int used;          /* drop, dup: applied already (once per tap) */
    uint64_t applied;  /* times applied (slice: pieces; delay: chunks) */
    char *spec;        /* as given on the command line */
} tap_fault;

/* Parse one --fault SPEC into f. 0, or -1 with a one-line reason. */
int tap_fault_parse(const char *spec, tap_fault *f, char *why, size_t n);
void tap_fault_free(tap_fault *f);
/* "slice", "delay", ... */
const char *tap_fault_name(int kind);
/* Whether drop/dup fault f matches a message of this type and key. */
int tap_fault_matches(const tap_fault *f, const dcs_slice *type, const dcs_slice *key);

/* ------------------------------------------------------------------------ */
/* Framing: a decoder over a stream, with the bytes around its messages      */

/* Feeds a decoder and, when keep is set, keeps the bytes since the last
 * message boundary so that the bytes outside messages can be handed on. */
typedef struct tap_framer {
    dcs_decoder *dec;
    int keep;
    dcs_buf buf;       /* keep: the stream bytes [base, end) */
    uint64_t base, end;
    uint64_t messages, errors;
} tap_framer;

typedef struct tap_frame_ops {
    /* Bytes at stream offset off that belong to no message (whitespace,
     * garbage, a rejected or truncated object). Only with keep. */
    void (*gap)(void *ctx, const char *p, size_t n, uint64_t off);
    /* A whole message; raw is its bytes. */
    void (*msg)(void *ctx, const dcs_message *m);
    void (*error)(void *ctx, const dcs_error *e);
} tap_frame_ops;

/* ------------------------------------------------------------------------ */
/* One direction of a connection (flow.c)                                    */

typedef struct tap_seg {
    struct tap_seg *next;
    int64_t ready_us; /* not written before this time (delay) */
    size_t len, off;  /* off: bytes of it already written */
    char data[];
} tap_seg;

struct tap;
struct tap_conn;

typedef struct tap_dir {
    struct tap_conn *c;
    int id;             /* TAP_C2S or TAP_S2C */
    int src, dst;       /* read from src, write to dst */
    unsigned mine;      /* faults of this direction (bit i: tap->faults[i]) */
    unsigned done;      /* per-connection faults already applied (stall, corrupt, reset) */
    int hold;           /* drop or dup is active here: release whole messages only */
    int rec;            /* recorded: 1 from the input side, 2 from the output side */
    tap_framer in, out; /* the stream as read from src, as written to dst */
    tap_seg *head, *tail;
    size_t queued;      /* bytes in the queue, not yet written */
    uint64_t q_end;     /* output offset at the end of the queue */
    int64_t delay_us;   /* sum of the delay faults */
    size_t slice;       /* smallest slice fault, or 0 */
    int eof;            /* src reached its end */
    int shut;           /* dst was shut down for writing */
    int broken;         /* dst stopped reading (closed): input is dropped */
    int wblocked;       /* the last write would have blocked: wait for POLLOUT */
    int draining;       /* slice: waiting until the peer read the last piece */
    int64_t drain_check_us, drain_step_us;
    int64_t stall_until_us;
    int no_outq;        /* SIOCOUTQ does not work here: pause 1 ms instead */
    int slice_fault;    /* index of the slice fault that set slice */
    int said_slice, said_delay; /* logged once per direction */
    uint64_t out_off;   /* bytes written to dst */
    int64_t now;        /* the time of the event being handled */
} tap_dir;

typedef struct tap_conn {
    struct tap_conn *next;
    struct tap *tap;
    uint64_t id;
    int fd[2];        /* 0: the accepted client, 1: the upstream */
    tap_dir d[2];     /* indexed by TAP_C2S, TAP_S2C */
    int64_t start_us;
    int dead;         /* closed; freed at the end of the loop turn */
    int first_end;    /* -1, or the side that ended first: 0, 1, or 2 (the tap) */
    int pidx[2];      /* index of each fd in this turn's pollfd array, or -1 */
} tap_conn;

/* Initialise both directions of c (decoders, faults). 0 or -1 (no memory). */
int tap_conn_init(struct tap *t, tap_conn *c);
void tap_conn_fini(tap_conn *c);
/* The connection ended: the decoders report what they still hold (a cut
 * message is "truncated"; its bytes go to the recording as bytes that are
 * not a message). Queued bytes are not written. */
void tap_conn_finish_framers(tap_conn *c, int64_t now);
/* Read what fd side (0 or 1) has for us. */
void tap_dir_read(tap_dir *d, int64_t now);
/* Write what is ready; apply the write-side faults. */
void tap_dir_flush(tap_dir *d, int64_t now);
/* Whether the direction wants to read now (back-pressure, end). */
int tap_dir_can_read(const tap_dir *d);
/* Whether it waits for its socket to become writable. */
int tap_dir_wants_pollout(const tap_dir *d);
/* The next time it must be looked at without a socket event, or INT64_MAX. */
int64_t tap_dir_deadline(const tap_dir *d, int64_t now);
/* Both directions are over: end of file read, queue written, shut down. */
int tap_conn_finished(const tap_conn *c);
/* The per-connection faults that fire at 0 bytes (stall@0, reset=0). */
void tap_conn_start(tap_conn *c, int64_t now);

/* ------------------------------------------------------------------------ */
/* The recording (record.c)                                                  */

typedef struct tap_rec {
    FILE *f;
    int role;          /* TAP_ROLE_* */
    int iut_dir;       /* the direction the IUT writes */
    uint64_t current;  /* the connection the case's steps refer to; 0: none */
    int64_t start_us;
    uint64_t bytes, lines, steps, messages, raw_pieces, too_long, not_current, unpatternable;
    int warned, failed;
    dcs_buf line;
} tap_rec;

/* Create FILE (mode 0600, truncated) and write the header. 0 or -1 (why). */
int tap_rec_open(tap_rec *r, const char *path, int role, const struct tap *t, char *why,
                 size_t n);
void tap_rec_close(tap_rec *r);
void tap_rec_conn(tap_rec *r, uint64_t conn, int64_t now);
void tap_rec_refused(tap_rec *r, uint64_t conn, const char *reason, int64_t now);
void tap_rec_msg(tap_rec *r, uint64_t conn, int dir, const dcs_message *m, int64_t now);
void tap_rec_gap(tap_rec *r, uint64_t conn, int dir, const char *p, size_t n, uint64_t off,
                 int64_t now);
void tap_rec_error(tap_rec *r, uint64_t conn, int dir, const dcs_error *e, int64_t now);
void tap_rec_eof(tap_rec *r, uint64_t conn, int dir, int64_t now);
/* The connection ended; side: who ended it first (0 client, 1 upstream,
 * 2 the tap itself); what says how. */
void tap_rec_end(tap_rec *r, uint64_t conn, int side, const char *what, int64_t now);

/* ------------------------------------------------------------------------ */
/* The program (loop.c)                                                      */

typedef struct tap_dirstats {
    uint64_t bytes_in, bytes_out, messages_in, messages_out, errors_in, errors_out;
} tap_dirstats;

typedef struct tap {
    /* the command line */
    const char *listen_path, *upstream_path, *record_path, *stats_path;
    int role;
    tap_fault faults[TAP_MAX_FAULTS];
    size_t n_faults;
    /* run time */
    int lfd;             /* the listening socket, or -1 */
    int created_socket;  /* we bound listen_path: remove it on exit */
    int64_t listen_pause_until_us; /* after EMFILE and the like */
    tap_conn *conns;
    uint64_t next_id;
    int64_t start_us, start_wall_ms;
    uint64_t accepted, upstream_failed, closed, aborted, active;
    tap_dirstats dir[2];
    tap_rec rec;
    int recording;
    /* --mirror-upstream (mirror.c finds the upstream's state, loop.c puts
     * listen_path in the same state) */
    int mirror;
    int64_t grace_us; /* after a stop signal, how long connections may finish */
    int bfd;             /* a socket bound at listen_path that does not listen, or -1 */
    int mstate;          /* what listen_path shows now: TAP_UP_* */
    int64_t mirror_next_us, mirror_period_us;
    uint64_t mirror_checks, mirror_reads, mirror_changes, mirror_missed;
    int64_t mirror_cost_us, mirror_cost_max_us; /* of reading /proc/net/unix */
    int mirror_read_failed, mirror_apply_failed;
    const char *mirror_names[2]; /* the upstream path as given, and absolute */
    size_t mirror_lens[2], mirror_n_names;
    char *mirror_abs, *mirror_buf;
    size_t mirror_cap, mirror_len;
} tap;

/* Create the listening socket: 0, -1 (why) or TAP_EXIT_BUSY (why). */
int tap_listen(tap *t, char *why, size_t n);
/* Run until SIGINT or SIGTERM: DSH_EXIT_OK or DSH_EXIT_RUNTIME. */
int tap_run(tap *t);
/* Remove the socket file if we created it. */
void tap_unlink(tap *t);
/* The statistics: final (on exit) logs a summary record and writes the
 * JSON object to --stats FILE if given; otherwise (SIGUSR1) the object goes
 * to --stats FILE, else to stderr. */
void tap_stats(tap *t, int final);
/* End a connection now: both sockets reset (abort) or closed. The side
 * that ended it first (0, 1, 2 for the tap) and why go to the log and the
 * recording. */
void tap_conn_end(tap_conn *c, int abort, int side, const char *what);
/* Reads of side 'side' of c ended with end of file. */
void tap_conn_eof(tap_conn *c, int side);

/* ------------------------------------------------------------------------ */
/* --mirror-upstream (mirror.c)                                              */

/* What a client finds at a socket path: no file (connect: ENOENT), a file
 * nobody listens on (ECONNREFUSED), a listener. */
enum { TAP_UP_MISSING = 0, TAP_UP_STALE = 1, TAP_UP_LISTENING = 2 };

/* The names to look for; a first read of /proc/net/unix. 0, or -1 (why). */
int tap_mirror_init(tap *t, char *why, size_t n);
void tap_mirror_fini(tap *t);
/* The upstream's state now (stat, /proc/net/unix): TAP_UP_*, or -1 if
 * /proc/net/unix could not be read (logged once). Counts and times the
 * reads. Never connects. */
int tap_mirror_probe(tap *t);
/* Whether the text of /proc/net/unix has a listening stream socket bound
 * to one of the names. */
int tap_unix_listening(const char *text, size_t n, const char *const *names, const size_t *lens,
                       size_t n_names);
/* "missing", "stale", "listening". */
const char *tap_mirror_state_name(int state);

/* "c2s" or "s2c". */
const char *tap_dir_name(int dir);

#endif /* DCS_TAP_H */
