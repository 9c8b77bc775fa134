/*
 * dcs/server.h - the server (crawler side) as a sans-I/O state machine
 * (spec sections 9, 10.1-10.3 and 13.1).
 *
 * The shell owns the listening socket, the accepted connections and the
 * clock. It names every accepted connection with a non-zero uint64 id and
 * tells the machine what happened: a connection was accepted (with the peer
 * credentials it read once, spec 3.3), bytes arrived on one, a write was done,
 * one ended, the application wants to send a message or a request, a signal
 * asks for shutdown. It then calls dcs_server_next() until it returns 0,
 * carrying out each action; every action carries the connection it is about
 * in `conn` (0 for none). It arms one timer for dcs_server_deadline() and,
 * when it fires, calls dcs_server_next() again.
 *
 * Actions as the server uses them (see dcs_action in session.h):
 * - WRITE: write data on conn, whole and in order; report dcs_server_written.
 * - CLOSE: close conn (reason). With DCS_CLOSE_AFTER_WRITES, after the writes
 *   already handed out (a close notice is the last of them); without, at once.
 *   The machine has forgotten conn when it hands out CLOSE: later input,
 *   written and ended calls for it are ignored.
 * - DELIVER: msg is for the application. reason is NULL, or
 *   "unmatched-reply" for a reply that answers no pending request (spec 9.4:
 *   delivered, marked uncorrelated).
 * - RESULT: request id (from dcs_server_request) finished with reason
 *   "reply" (msg is the reply), "request-timeout" or "connection-closed";
 *   data is the requestId string written in the request.
 * - OPEN: conn registered; peer_id is the client's id (empty in lenient mode
 *   while the id is not known yet).
 * - LOST: a connection that had OPEN ended or was closed (reason).
 * - DROP: a message the application handed over was dropped (id, reason,
 *   data): queue-count, queue-bytes, queue-age, lost-in-flight, shutdown,
 *   paused (a queued PROGRESS_UPDATE due while paused), or nomem.
 * - LOG: level, category, reason, text. Logs never contain payloads.
 * Pointers in an action stay valid until the next call on the machine.
 */
#ifndef DCS_SERVER_H
#define DCS_SERVER_H

#include "dcs/session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a challenge nonce (spec 10.3.2, DCS_NONCE_BYTES). */
#define DCS_NONCE_BYTES 32

typedef struct dcs_server_config {
    dcs_session_config s;      /* timers (already scaled) and limits */
    const char *id;            /* own id; NULL: "external-crawler" (spec 2.2) */
    int64_t own_uid;           /* the server's effective uid (spec 10.1) */
    const int64_t *allowed_uids; /* further uids allowed to connect; copied */
    size_t n_allowed_uids;
    const unsigned char *secret; /* shared secret (spec 10.3), or NULL; copied */
    size_t secret_len;
    int lenient;               /* lenient mode (spec 9.2); refused with a secret */
    dcs_ms wall_offset;        /* wall clock (ms since the epoch) = now + wall_offset */
    /* Bytes handed out in WRITE actions and not yet reported written, per
     * connection, beyond which an application message for that connection is
     * dropped (queue-bytes): the peer is not reading. 0: s.queue_max_bytes.
     * Control messages and requests are always written. */
    size_t max_inflight_bytes;
    dcs_rng rng;               /* rng.bytes: nonces and the requestId prefix */
    const dcs_allocator *allocator; /* NULL: libc */
} dcs_server_config;

/* Fill cfg with the defaults; the caller sets own_uid, rng and wall_offset. */
void dcs_server_config_init(dcs_server_config *cfg);

/* dcs_session_config_check plus the server's own rules: lenient mode and a
 * shared secret together (spec 12.3), a secret of 0 bytes, a missing rng.
 * 0, or DCS_EINVAL with a one-line reason in why (may be NULL). */
int dcs_server_config_check(const dcs_server_config *cfg, char *why, size_t n);

/* The counters of the server, named after the reasons of spec 11.4 (and a
 * few of the server's own). dcs_server_counter() finds one by its name. */
#define DCS_SERVER_COUNTERS(XX)                                                            \
    XX(accepted, "accepted")                                                               \
    XX(too_many_connections, "too-many-connections")                                       \
    XX(peer_uid_refused, "peer-uid-refused")                                               \
    XX(peer_credentials_unavailable, "peer-credentials-unavailable")                       \
    XX(refused_shutdown, "refused-shutdown")                                               \
    XX(registered, "registered")                                                           \
    XX(register_expected, "register-expected")                                             \
    XX(register_timeout, "register-timeout")                                               \
    XX(register_invalid, "register-invalid")                                               \
    XX(register_repeated, "register-repeated")                                             \
    XX(register_late, "register-late")                                                     \
    XX(register_missing, "register-missing")                                               \
    XX(client_silent, "client-silent")                                                     \
    XX(hmac_missing, "hmac-missing")                                                       \
    XX(hmac_replayed, "hmac-replayed")                                                     \
    XX(hmac_stale, "hmac-stale")                                                           \
    XX(hmac_invalid, "hmac-invalid")                                                       \
    XX(heartbeat_timeout, "heartbeat-timeout")                                             \
    XX(auth_idle, "auth-idle")                                                             \
    XX(flood_rate, "flood-rate")                                                           \
    XX(shutdown_closes, "shutdown")                                                        \
    XX(connections_ended, "ended")                                                         \
    XX(messages_in, "messages-in")                                                         \
    XX(bytes_in, "bytes-in")                                                               \
    XX(decode_errors, "decode-errors")                                                     \
    XX(messages_out, "messages-out")                                                       \
    XX(bytes_out, "bytes-out")                                                             \
    XX(heartbeats_out, "heartbeats-out")                                                   \
    XX(delivered, "delivered")                                                             \
    XX(wrong_destination, "wrong-destination")                                             \
    XX(wrong_direction, "wrong-direction")                                                 \
    XX(payload_mismatch, "payload_mismatch")                                               \
    XX(unknown_type, "unknown-type")                                                       \
    XX(unknown_key, "unknown-key")                                                         \
    XX(unknown_command, "unknown-command")                                                 \
    XX(commands, "commands")                                                               \
    XX(requests, "requests")                                                               \
    XX(replies, "replies")                                                                 \
    XX(request_timeout, "request-timeout")                                                 \
    XX(connection_closed, "connection-closed")                                             \
    XX(unmatched_reply, "unmatched-reply")                                                 \
    XX(pending_limit, "pending-limit")                                                     \
    XX(no_client, "no-client")                                                             \
    XX(paused_refused, "paused")                                                           \
    XX(drop_queue_count, "queue-count")                                                    \
    XX(drop_queue_bytes, "queue-bytes")                                                    \
    XX(drop_queue_age, "queue-age")                                                        \
    XX(drop_lost_in_flight, "lost-in-flight")                                              \
    XX(drop_shutdown, "drop-shutdown")                                                     \
    XX(drop_refused, "refused")

typedef struct dcs_server_stats {
#define DCS__SERVER_STAT_FIELD(field, name) uint64_t field;
    DCS_SERVER_COUNTERS(DCS__SERVER_STAT_FIELD)
#undef DCS__SERVER_STAT_FIELD
    uint64_t in_by_type[DCS_MT_COUNT], out_by_type[DCS_MT_COUNT]; /* dcs_msg_type_name() */
    size_t connections;     /* connections the machine knows now */
    size_t registered_now;  /* of which registered (in the registry) */
    size_t queued_messages; /* held for clients that are not connected (9.7) */
    size_t queued_bytes;
    int paused;             /* PAUSE_CRAWLER processed and no RESUME since (9.5) */
    int shutting_down;
} dcs_server_stats;

typedef struct dcs_server dcs_server;

/* NULL with *err = DCS_EINVAL (see dcs_server_config_check) or DCS_ENOMEM. */
dcs_server *dcs_server_new(const dcs_server_config *cfg, int *err);
void dcs_server_free(dcs_server *s);

/* Positive results: refusals by a rule of the spec (counted and logged). */
enum dcs_server_result {
    DCS_SERVER_REFUSED = 1,      /* accept: the connection is refused (closed) */
    DCS_SERVER_PAUSED = 2,       /* PROGRESS_UPDATE or request_jobs while paused (9.5) */
    DCS_SERVER_NO_CLIENT = 3,    /* request: no registered connection matches (9.7) */
    DCS_SERVER_PENDING_LIMIT = 4, /* request: too many pending on the connection (9.6) */
    DCS_SERVER_SHUTTING_DOWN = 5, /* after dcs_server_shutdown() */
};

/* A connection was accepted, with the credentials read right after accept
 * (spec 3.3): peer_uid < 0 means they could not be read; peer_pid <= 0 means
 * the pid is unknown. Returns 0 when the connection is taken (AWAIT_REGISTER,
 * or registered at once in lenient mode; with a secret the challenge is the
 * first WRITE), DCS_SERVER_REFUSED when it is refused (too-many-connections,
 * peer-uid-refused, peer-credentials-unavailable, shutting down: a CLOSE
 * action follows; nothing may be read from it), DCS_EINVAL for conn 0 or a
 * conn already known, DCS_ENOMEM (close it). */
int dcs_server_accept(dcs_server *s, dcs_ms now, uint64_t conn, int64_t peer_uid, int64_t peer_pid,
                      int64_t peer_gid);

/* Bytes received on conn. data must stay valid until dcs_server_next() has
 * returned 0. DCS_EBUSY if conn's previous input has not been consumed; 0
 * (ignored) for a connection the machine does not know (any more). */
int dcs_server_input(dcs_server *s, dcs_ms now, uint64_t conn, const void *data, size_t len);

/* The write with this id (from a WRITE action on conn) was completely written. */
void dcs_server_written(dcs_server *s, dcs_ms now, uint64_t conn, uint64_t write_id);

/* conn ended (peer closed, I/O error). Ignored for a conn already closed. */
void dcs_server_ended(dcs_server *s, dcs_ms now, uint64_t conn);

/* Hand over a message (spec 9.7). Empty origin: the server's id; empty
 * destination: "*"; no timestamp: the wall clock. Written to every registered
 * connection whose client id is the destination (all of them for "*"); if
 * none matches, kept in that destination's queue (bounds of spec 8.6) and
 * written right after the next matching register (a queued PROGRESS_UPDATE
 * due while paused is dropped, spec 9.5). *id (if not NULL) names it
 * in DROP actions. Returns 0, DCS_SERVER_PAUSED (PROGRESS_UPDATE while
 * paused), DCS_SERVER_SHUTTING_DOWN, DCS_EINVAL (a command: commands go from
 * the client to the server), DCS_ETOO_LARGE or an encoder error. */
int dcs_server_send(dcs_server *s, dcs_ms now, const dcs_envelope *env, uint64_t *id);

/* Send a request (spec 9.4): jobRequest/request_jobs, message/
 * TOKEN_REFRESH_REQUEST, or any other message (a generic request, answered by
 * a message whose payload carries the same requestId). The payload must be
 * absent or an object without requestId: the machine writes a fresh,
 * globally unique requestId as its first member. The target is conn if not
 * 0, else the most recently registered connection of client_id, else (NULL)
 * the most recently registered connection. The outcome comes later as one
 * RESULT action with *request. Returns 0, DCS_SERVER_NO_CLIENT,
 * DCS_SERVER_PENDING_LIMIT, DCS_SERVER_PAUSED (request_jobs while paused),
 * DCS_SERVER_SHUTTING_DOWN, DCS_EINVAL (a command, a payload that is not an
 * object or already has requestId), DCS_EPAYLOAD (does not fit its catalogue
 * entry), DCS_ETOO_LARGE or an encoder error. */
int dcs_server_request(dcs_server *s, dcs_ms now, uint64_t conn, const char *client_id,
                       const dcs_envelope *env, uint64_t *request);

/* Shut down (spec 13.1) because of signal (e.g. "SIGTERM"): refuse new
 * connections; write message/shutdown {signal} and a close notice to every
 * registered connection and close each once its writes are done or after
 * the shutdown grace; close unregistered ones at once; drop what is queued
 * for absent clients. A second call closes everything at once. */
void dcs_server_shutdown(dcs_server *s, dcs_ms now, const char *signal);

/* 1 once shutdown was asked for and every connection is closed. */
int dcs_server_done(const dcs_server *s);

/* The next action, handling expired timers first. 1 with *a filled, 0 when
 * there is nothing to do until the next event or dcs_server_deadline(). */
int dcs_server_next(dcs_server *s, dcs_ms now, dcs_action *a);

/* The earliest time at which dcs_server_next() has timer work, or DCS_NEVER. */
dcs_ms dcs_server_deadline(const dcs_server *s);

/* The authorized-clients registry (spec 10.2). */
typedef struct dcs_registry_entry {
    uint64_t conn;
    dcs_slice id;          /* the client's id; empty while unknown (lenient) */
    int64_t uid, pid;      /* pid <= 0: unknown */
    dcs_ms connected_at;   /* wall clock, ms since the epoch */
    dcs_ms last_activity;  /* wall clock of the last complete valid message */
    dcs_ms uptime, idle;   /* ms at now */
    int active;            /* 1: active, 0: stale (DCS_T_AUTH_ACTIVE) */
} dcs_registry_entry;

/* Fill out[0..max) with the registry's entries (in registration order) and
 * return how many there are. ids point into the machine (valid until the
 * next call on it). */
size_t dcs_server_registry(const dcs_server *s, dcs_ms now, dcs_registry_entry *out, size_t max);

/* 1 if conn has a registry entry: its messages are authorized socket traffic
 * (spec 10.4 method 1). */
int dcs_server_authorized(const dcs_server *s, uint64_t conn);

int dcs_server_paused(const dcs_server *s);
const dcs_server_stats *dcs_server_get_stats(const dcs_server *s);

/* A counter by its reason name: a name of DCS_SERVER_COUNTERS or a codec
 * reason of DCS_ERRNO_MAP (decoding errors by reason). 0 if unknown. */
uint64_t dcs_server_counter(const dcs_server *s, const char *reason);

#ifdef __cplusplus
}
#endif
#endif /* DCS_SERVER_H */
