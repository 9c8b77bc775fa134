/* server_int.h - internal: the server state machine's types, shared by
 * server.c (actions, writing, closing, the pump, creation), server_conn.c
 * (accept, the shell's inputs, timers, shutdown, registry), server_in.c
 * (inbound processing, spec 9.8) and server_out.c (outbound messages and
 * requests, 9.4, 9.7). */
#ifndef DCS_SESSION_SERVER_INT_H
#define DCS_SESSION_SERVER_INT_H

#include <stdarg.h>

#include "actions.h"
#include "util.h"
#include "dcs/server.h"
#include "wire.h"

/* Connection states (spec 9.1; ACCEPTED and CLOSED need no state: a refused
 * connection is never kept, a closed one is forgotten). */
enum { DCS__C_AWAIT = 1, DCS__C_REGISTERED, DCS__C_SHUTTING };

/* What an in-flight write is. */
enum { DCS__W_APP, DCS__W_REQUEST, DCS__W_CONTROL };

/* What a pending request expects as its reply (spec 9.4). */
enum { DCS__R_JOBS = 1, DCS__R_TOKEN, DCS__R_GENERIC };

/* Lenient deviations already logged on a connection (once each, spec 9.2). */
enum { DCS__WARN_LATE = 1u, DCS__WARN_MISSING = 2u, DCS__WARN_SILENT = 4u };

#define DCS__RID_MAX 48 /* "<16 hex>-<counter>" and its NUL */

struct dcs__pending {
    uint64_t req;
    int kind;
    dcs_ms deadline;
    char rid[DCS__RID_MAX];
};

typedef struct dcs__conn {
    uint64_t id;
    int64_t uid, pid, gid;
    int state;
    int announced;    /* OPEN handed out: LOST follows at the end */
    int got_register; /* a register was accepted */
    int in_registry;
    unsigned warned;  /* DCS__WARN_* */
    char *cid;        /* the client's id, NULL while unknown */
    size_t cid_len;
    uint64_t reg_seq; /* order of registration, for "most recent" */
    dcs_ms t_register, t_liveness, t_heartbeat, t_grace;
    dcs_ms connected_wall, last_activity;
    char nonce[2 * DCS_NONCE_BYTES + 1];
    int has_nonce, nonce_used;
    dcs_ms nonce_sent;
    uint64_t tokens; /* flood bucket, in 1/flood_period of a token */
    dcs_ms bucket_t;
    dcs_decoder *dec;
    int input_pending;
    dcs_message msg;
    dcs_error err;
    dcs__flight fl; /* written but not yet reported written */
    struct dcs__pending *pending;
    size_t n_pending, cap_pending;
    const char *close_unsent; /* dead, but its CLOSE could not be queued (nomem) */
    struct dcs__conn *next_dead;
} dcs__conn;

/* Messages kept for a destination no registered connection matches (9.7). */
struct dcs__squeue {
    char *dest; /* a client id, or "*" */
    size_t dest_len;
    dcs_queue *q;
};

#define DCS__N_CODEC (DCS__E_END - DCS__E_BASE)

struct dcs_server {
    dcs_server_config cfg;
    const dcs_allocator *al;
    char *id;
    unsigned char *secret;
    int64_t *allowed;

    dcs__conn **conns;
    size_t n_conns, cap_conns;
    dcs__conn *dead; /* closed: freed once the actions are handed out */

    struct dcs__squeue *queues;
    size_t n_queues, cap_queues;

    int paused, shutting_down;
    dcs_ms t_sweep;
    uint64_t next_id, reg_seq, rid_counter;
    char rid_prefix[17];

    dcs__actions q;
    dcs_buf scratch, scratch2, enc, pl;

    dcs_server_stats stats;
    uint64_t codec_errors[DCS__N_CODEC];
};

#define DCS__WALL(s, now) ((now) + (s)->cfg.wall_offset)

/* server.c */
struct dcs__act *dcs__srv_push(dcs_server *s, const dcs__conn *c, int kind);
void dcs__srv_simple(dcs_server *s, const dcs__conn *c, int kind, const char *reason,
                     unsigned flags);
dcs__conn *dcs__srv_find(const dcs_server *s, uint64_t id);
int dcs__srv_control(dcs_server *s, dcs__conn *c, int rc);
void dcs__srv_teardown(dcs_server *s, dcs__conn *c, const char *reason, int writes_go);
void dcs__srv_log(dcs_server *s, const dcs__conn *c, int level, const char *category,
                  const char *reason, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void dcs__srv_drop(dcs_server *s, const dcs__conn *c, uint64_t id, const char *reason,
                   const char *data, size_t len);
int dcs__srv_write(dcs_server *s, dcs__conn *c, int kind, uint64_t id, const char *data,
                   size_t len);
void dcs__srv_close(dcs_server *s, dcs__conn *c, dcs_ms now, const char *reason, int notice);
const char *dcs__srv_peer(const dcs__conn *c, char *buf, size_t n);
const char *dcs__srv_dest(const dcs__conn *c);
void dcs__srv_register_done(dcs_server *s, dcs__conn *c, dcs_ms now);

/* server_conn.c */
void dcs__srv_timers(dcs_server *s, dcs_ms now);

/* server_in.c */
void dcs__srv_on_error(dcs_server *s, dcs__conn *c, dcs_ms now);
void dcs__srv_on_message(dcs_server *s, dcs__conn *c, dcs_ms now);
int dcs__srv_take_token(dcs_server *s, dcs__conn *c, dcs_ms now);

/* server_out.c */
void dcs__srv_flush_queued(dcs_server *s, dcs__conn *c, dcs_ms now);
void dcs__srv_queue_timers(dcs_server *s, dcs_ms now);
dcs_ms dcs__srv_queue_deadline(const dcs_server *s);
void dcs__srv_queues_shutdown(dcs_server *s);
void dcs__srv_queues_free(dcs_server *s);
void dcs__srv_pending_timers(dcs_server *s, dcs__conn *c, dcs_ms now);
void dcs__srv_pending_closed(dcs_server *s, dcs__conn *c);
void dcs__srv_result(dcs_server *s, dcs__conn *c, const struct dcs__pending *p,
                     const char *reason, const dcs_message *msg);

#endif
