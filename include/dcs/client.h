/*
 * dcs/client.h - the client (web-app side) as a sans-I/O state machine
 * (spec section 8).
 *
 * The shell (a libuv program, the conformance harness, a test) owns the
 * socket and the clock. It tells the machine what happened (start, the result
 * of a connect attempt, bytes received, a write done, the connection ended,
 * a message to send) and then calls dcs_client_next() until it returns 0,
 * carrying out each action (connect, write, close, deliver, log, ...). It
 * arms one timer for dcs_client_deadline() and, when it fires, calls
 * dcs_client_next() again: expired timers are handled there.
 */
#ifndef DCS_CLIENT_H
#define DCS_CLIENT_H

#include "dcs/session.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dcs_client_state {
    DCS_CLIENT_DISCONNECTED = 0,
    DCS_CLIENT_CONNECTING,
    DCS_CLIENT_REGISTERING,
    DCS_CLIENT_OPEN,
    DCS_CLIENT_BACKOFF,
    DCS_CLIENT_BREAKER_OPEN,
    DCS_CLIENT_BREAKER_HALF_OPEN,
    DCS_CLIENT_STOPPING, /* flushing before CLOSED (spec 13.3) */
    DCS_CLIENT_CLOSED,
};

typedef struct dcs_client_config {
    dcs_session_config s;    /* timers (already scaled) and limits */
    const char *id;          /* own id; NULL: "web-server" (spec 2.2) */
    const char *server_id;   /* NULL: "external-crawler" */
    const char *client_type; /* register payload type; NULL: "copilot-study" */
    int64_t pid;             /* register payload pid; 0 if unknown */
    const unsigned char *secret; /* shared secret (spec 10.3), or NULL */
    size_t secret_len;
    int require_handshake;   /* close with challenge-missing instead of no-challenge */
    int64_t server_uid;      /* the uid the server must have; -1: do not check */
    dcs_ms wall_offset;      /* wall clock (ms since the epoch) = now + wall_offset */
    size_t max_inflight_bytes; /* written but not yet acknowledged; 0: 1 MiB */
    dcs_rng rng;
    const dcs_allocator *allocator;
} dcs_client_config;

/* Fill cfg with the defaults; the caller sets rng and wall_offset at least. */
void dcs_client_config_init(dcs_client_config *cfg);

typedef struct dcs_client_stats {
    uint64_t connect_attempts, connect_failures, connect_skipped, breaker_opens;
    uint64_t connections, connections_lost, heartbeat_timeouts;
    uint64_t messages_in, bytes_in, decode_errors;
    uint64_t messages_out, bytes_out, heartbeats_out;
    uint64_t in_by_type[DCS_MT_COUNT], out_by_type[DCS_MT_COUNT]; /* dcs_msg_type_name() */
    uint64_t delivered, wrong_destination, duplicates, dedup_evicted, payload_mismatch;
    uint64_t wrong_direction, unknown_type, unknown_key, unexpected_challenge, no_challenge;
    uint64_t drop_queue_count, drop_queue_bytes, drop_queue_age, drop_lost_in_flight;
    uint64_t drop_stale_reply, drop_shutdown, drop_refused;
    size_t queue_depth, queue_bytes;
    unsigned failures; /* consecutive failed attempts (spec 8.1) */
    int state;
} dcs_client_stats;

typedef struct dcs_client dcs_client;

/* NULL with *err = DCS_EINVAL (bad configuration: see dcs_session_config_check)
 * or DCS_ENOMEM. */
dcs_client *dcs_client_new(const dcs_client_config *cfg, int *err);
void dcs_client_free(dcs_client *c);

/* DISCONNECTED -> first connect attempt (spec 8.1 row 1). */
void dcs_client_start(dcs_client *c, dcs_ms now);

/* Stop (spec 13.3): flush for at most the shutdown grace, then CLOSED. */
void dcs_client_stop(dcs_client *c, dcs_ms now);

enum dcs_connect_result {
    DCS_CONNECT_OK = 0,      /* connected; peer_uid is the server's uid or -1 */
    DCS_CONNECT_MISSING = 1, /* the socket file does not exist (ENOENT/ENOTDIR) */
    DCS_CONNECT_FAILED = 2,  /* any other failure (ECONNREFUSED, EACCES, ...) */
};

/* The outcome of the attempt asked for by DCS_ACT_CONNECT. */
void dcs_client_connect_result(dcs_client *c, dcs_ms now, int result, int64_t peer_uid);

/* Bytes received on the current connection. data must stay valid until
 * dcs_client_next() has returned 0. Returns DCS_EBUSY if the previous input
 * has not been consumed. */
int dcs_client_input(dcs_client *c, dcs_ms now, const void *data, size_t len);

/* The write with this id (from DCS_ACT_WRITE) has been completely written. */
void dcs_client_written(dcs_client *c, dcs_ms now, uint64_t write_id);

/* The connection ended (peer closed, I/O error, or after a DCS_ACT_CLOSE). */
void dcs_client_ended(dcs_client *c, dcs_ms now);

/* Hand over a message. Empty origin/destination default to the client's and
 * the server's ids; without a timestamp the wall clock is used. The message
 * is written at once when OPEN, else queued (spec 8.6). *id (if not NULL)
 * identifies it in DCS_ACT_DROP. Returns 0, DCS_EINVAL when stopping or
 * closed, DCS_ETOO_LARGE, or an encoder error (DCS_EUTF8, DCS_EBAD_JSON,
 * DCS_ETOO_DEEP beyond the client's max_depth, DCS_ENOT_FINITE, DCS_ENOMEM);
 * a refused message is counted (drop_refused). */
int dcs_client_send(dcs_client *c, dcs_ms now, const dcs_envelope *env, uint64_t *id);

/* Reply to a request delivered on connection `conn` (the DELIVER action's
 * conn). Written at once if that connection is still OPEN; otherwise dropped
 * with reason stale-reply (spec 8.9), reported as DCS_ACT_DROP. */
int dcs_client_reply(dcs_client *c, dcs_ms now, uint64_t conn, const dcs_envelope *env,
                     uint64_t *id);

/* The next action, handling expired timers first. 1 with *a filled, 0 when
 * there is nothing to do until the next event or dcs_client_deadline(). */
int dcs_client_next(dcs_client *c, dcs_ms now, dcs_action *a);

/* The earliest time at which dcs_client_next() has timer work, or DCS_NEVER. */
dcs_ms dcs_client_deadline(const dcs_client *c);

/* The client's authorized-clients registry (spec 10.2): its one possible
 * entry, the server it is connected to. */
typedef struct dcs_client_registry_entry {
    int present;            /* 0: no entry (not OPEN) */
    const char *id;         /* the peer's id */
    int64_t uid;            /* -1 if unknown */
    dcs_ms connected_at;    /* wall clock, ms since the epoch */
    dcs_ms last_activity;   /* wall clock of the last complete valid message */
    int active;             /* lastActivity less than DCS_T_AUTH_ACTIVE old */
} dcs_client_registry_entry;

void dcs_client_registry(const dcs_client *c, dcs_ms now, dcs_client_registry_entry *e);

int dcs_client_state(const dcs_client *c);
const char *dcs_client_state_name(int state);
const dcs_client_stats *dcs_client_get_stats(const dcs_client *c);

#ifdef __cplusplus
}
#endif
#endif /* DCS_CLIENT_H */
