/*
 * dcs/session.h - the protocol's behaviour as sans-I/O building blocks and
 * state machines (spec sections 8, 9, 10, 12).
 *
 * Nothing here does I/O, reads a clock or keeps global state. Every function
 * that depends on time takes `now`, a monotonic time in milliseconds chosen by
 * the caller (tests use a fake clock). Randomness comes from a dcs_rng the
 * caller supplies. All memory comes from a dcs_allocator (NULL: libc).
 */
#ifndef DCS_SESSION_H
#define DCS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "dcs/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic milliseconds. DCS_NEVER: no deadline. */
typedef int64_t dcs_ms;
#define DCS_NEVER INT64_MAX

/* ------------------------------------------------------------------------ */
/* Randomness                                                                */

typedef struct dcs_rng {
    /* A uniformly distributed number in [0, 1) (backoff jitter, spec 8.3). */
    double (*uniform)(void *ud);
    /* n bytes from a cryptographically secure source (nonces, spec 10.3.2). */
    void (*bytes)(void *ud, void *buf, size_t n);
    void *ud;
} dcs_rng;

/* ------------------------------------------------------------------------ */
/* Configuration: every timer and limit of spec 12.1                         */

typedef struct dcs_session_config {
    /* timers, ms (scaled by DCS_TIME_SCALE) */
    dcs_ms connect_timeout;   /* DCS_T_CONNECT_TIMEOUT 5000 */
    dcs_ms reconnect_base;    /* DCS_T_RECONNECT_BASE 5000 */
    dcs_ms reconnect_max;     /* DCS_T_RECONNECT_MAX 30000 */
    dcs_ms breaker_open;      /* DCS_T_BREAKER_OPEN 30000 */
    dcs_ms client_heartbeat;  /* DCS_T_CLIENT_HEARTBEAT 10000 */
    dcs_ms server_heartbeat;  /* DCS_T_SERVER_HEARTBEAT 5000 */
    dcs_ms heartbeat_timeout; /* DCS_T_HEARTBEAT_TIMEOUT 30000 */
    dcs_ms queue_max_age;     /* DCS_T_QUEUE_MAX_AGE 300000 */
    dcs_ms dedup_progress;    /* DCS_T_DEDUP_PROGRESS 1000 */
    dcs_ms dedup_token;       /* DCS_T_DEDUP_TOKEN 5000 */
    dcs_ms register_deadline; /* DCS_T_REGISTER_DEADLINE 5000 */
    dcs_ms request_timeout;   /* DCS_T_REQUEST_TIMEOUT 30000 */
    dcs_ms auth_idle;         /* DCS_T_AUTH_IDLE 300000 */
    dcs_ms auth_sweep;        /* DCS_T_AUTH_SWEEP 60000 */
    dcs_ms auth_active;       /* DCS_T_AUTH_ACTIVE 60000 */
    dcs_ms challenge_wait;    /* DCS_T_CHALLENGE_WAIT 2000 */
    dcs_ms nonce_lifetime;    /* DCS_T_NONCE_LIFETIME 5000 */
    dcs_ms shutdown_grace;    /* DCS_T_SHUTDOWN_GRACE 2000 */
    dcs_ms flood_period;      /* the "second" of DCS_FLOOD_RATE: 1000, scaled */
    /* factors (never scaled) */
    double reconnect_factor;     /* DCS_RECONNECT_FACTOR 1.5 */
    double reconnect_jitter;     /* DCS_RECONNECT_JITTER 0.2 */
    unsigned queue_keep_percent; /* DCS_QUEUE_KEEP_PERCENT 80 */
    /* counts and sizes (never scaled) */
    unsigned breaker_threshold;  /* DCS_BREAKER_THRESHOLD 5 */
    size_t queue_max_messages;   /* DCS_QUEUE_MAX_MESSAGES 1000 */
    size_t queue_max_bytes;      /* DCS_QUEUE_MAX_BYTES 8 MiB */
    size_t dedup_max_keys;       /* DCS_DEDUP_MAX_KEYS 1000 */
    size_t max_pending_requests; /* DCS_MAX_PENDING_REQUESTS 64 */
    size_t flood_rate;           /* DCS_FLOOD_RATE 1000 per flood_period */
    size_t flood_burst;          /* DCS_FLOOD_BURST 2000 */
    size_t max_connections;      /* DCS_MAX_CONNECTIONS 128 */
    size_t max_message_size;     /* DCS_DEFAULT_MAX_MESSAGE_SIZE */
    unsigned max_depth;          /* DCS_DEFAULT_MAX_DEPTH */
    size_t max_request_id;       /* DCS_MAX_REQUEST_ID_BYTES 256 */
} dcs_session_config;

/* Fill c with the defaults of spec 12.1 (unscaled). */
void dcs_session_config_init(dcs_session_config *c);

/* Multiply every scaled timer by factor, rounding down, minimum 1 ms
 * (spec 12.2). A timer that is not positive is left as it is, for the check
 * to refuse. Returns 0 or DCS_EINVAL (c unchanged) if factor is not positive
 * and finite. */
int dcs_session_config_scale(dcs_session_config *c, double factor);

/* Check the constraints of spec 12.3 (except the lenient mode / shared
 * secret rule, whose settings are not in this struct), and also that every
 * timer is at least 1 ms and the factor is finite. Returns 0, or DCS_EINVAL
 * with a one-line reason written to why (NUL-terminated, at most n bytes;
 * why may be NULL). */
int dcs_session_config_check(const dcs_session_config *c, char *why, size_t n);

/* Parse a DCS_TIME_SCALE value: NULL or "" mean 1. 0 or DCS_EINVAL. */
int dcs_time_scale_parse(const char *text, double *factor);

/* ------------------------------------------------------------------------ */
/* Backoff (spec 8.3)                                                        */

/* delay(failures) = floor(min(max, base * factor^failures) * j), with
 * j = 1 - jitter + 2 * jitter * u and u in [0, 1) from the caller. */
dcs_ms dcs_backoff_delay(const dcs_session_config *c, unsigned failures, double u);

/* ------------------------------------------------------------------------ */
/* Outbound queue (spec 8.6)                                                 */

typedef struct dcs_queue_item {
    uint64_t id;     /* the caller's identifier of the message */
    dcs_ms enqueued; /* when the application handed it over */
    const char *data;
    size_t len;
} dcs_queue_item;

/* Called for every message the queue drops, with the reason "queue-count",
 * "queue-bytes" or "queue-age". item is valid during the call only; the
 * queue already no longer holds it. The callback must not change the queue. */
typedef void (*dcs_queue_drop_fn)(void *ud, const dcs_queue_item *item, const char *reason);

typedef struct dcs_queue dcs_queue;

/* A queue bounded by c->queue_max_messages, queue_max_bytes, queue_max_age
 * and queue_keep_percent. NULL on allocation failure. */
dcs_queue *dcs_queue_new(const dcs_session_config *c, const dcs_allocator *a,
                         dcs_queue_drop_fn on_drop, void *ud);
void dcs_queue_free(dcs_queue *q);

/* Append a copy of data (a whole serialized message). If the count or byte
 * bound is then exceeded, drop the oldest messages (never the one just
 * added) down to keep_percent of the bound, reporting each. 0, DCS_ENOMEM
 * (then nothing changed) or DCS_EINVAL if enqueued is earlier than the newest
 * message's time (the queue is kept in time order, so that the oldest message
 * is always the next to expire). */
int dcs_queue_push(dcs_queue *q, dcs_ms enqueued, uint64_t id, const void *data, size_t len);

/* Put a message back at the head (a message whose write was cut off, spec
 * 8.6 "in flight"), keeping its original time. Bounds are applied as by
 * push, dropping from the oldest end other than this message. Returns as
 * push does; DCS_EINVAL if enqueued is later than the head's time. */
int dcs_queue_push_front(dcs_queue *q, dcs_ms enqueued, uint64_t id, const void *data,
                         size_t len);

/* Drop (reason "queue-age") every message whose age now - enqueued is at
 * least queue_max_age. Returns how many were dropped. */
size_t dcs_queue_expire(dcs_queue *q, dcs_ms now);

/* The oldest message, or NULL when empty; valid until the next call that
 * changes the queue. */
const dcs_queue_item *dcs_queue_peek(const dcs_queue *q);
/* Remove the oldest message (after it has been written). */
void dcs_queue_pop(dcs_queue *q);

size_t dcs_queue_count(const dcs_queue *q);
size_t dcs_queue_bytes(const dcs_queue *q);
/* When the oldest message expires (enqueued + queue_max_age), or DCS_NEVER. */
dcs_ms dcs_queue_next_expiry(const dcs_queue *q);

/* ------------------------------------------------------------------------ */
/* Dedup cache (spec 8.7)                                                    */

typedef struct dcs_dedup dcs_dedup;

/* A cache of at most max_keys keys, each kept for window ms. seed keys the
 * hash (SipHash), so that a peer cannot choose colliding keys: take it from
 * dcs_rng.bytes. NULL on allocation failure or max_keys == 0. */
dcs_dedup *dcs_dedup_new(size_t max_keys, dcs_ms window, const unsigned char seed[16],
                         const dcs_allocator *a);
void dcs_dedup_free(dcs_dedup *d);

enum { DCS_DEDUP_NEW = 0, DCS_DEDUP_DUPLICATE = 1 };

/* Expire entries at least window old, then: if key is present return
 * DCS_DEDUP_DUPLICATE and change nothing; else insert (key, now) as the
 * newest entry, evicting the oldest if the cache would exceed max_keys
 * (adding 1 to *evicted if evicted is not NULL), and return DCS_DEDUP_NEW.
 * DCS_ENOMEM if the key could not be stored (then nothing changed beyond the
 * expiry). O(1) amortized. now must not go backwards. key may hold any bytes,
 * NUL included. */
int dcs_dedup_check(dcs_dedup *d, dcs_ms now, const void *key, size_t len, uint64_t *evicted);

/* Remove every entry at least window old, without a key to check (call it at
 * dcs_dedup_next_expiry so that memory is returned without other traffic).
 * Returns how many were removed. */
size_t dcs_dedup_expire(dcs_dedup *d, dcs_ms now);

size_t dcs_dedup_size(const dcs_dedup *d);
/* When the oldest entry expires, or DCS_NEVER. */
dcs_ms dcs_dedup_next_expiry(const dcs_dedup *d);


/* ------------------------------------------------------------------------ */
/* Shared-secret handshake (spec 10.3.3)                                     */

/* out = lowercase hex of HMAC-SHA256(key = secret, message = nonce || id),
 * NUL-terminated. */
void dcs_handshake_mac(const unsigned char *secret, size_t secret_len, const char *nonce,
                       size_t nonce_len, const char *id, size_t id_len, char out[65]);

/* 1 if mac (64 lowercase hex characters) is the MAC of nonce and id, compared
 * in constant time; 0 otherwise. */
int dcs_handshake_verify(const unsigned char *secret, size_t secret_len, const char *nonce,
                         size_t nonce_len, const char *id, size_t id_len, const char *mac,
                         size_t mac_len);

/* ------------------------------------------------------------------------ */
/* Catalogue fit (spec 7.2, 11.3)                                            */

/* Check msg against the fit rule of its catalogue entry. Returns 0 when it
 * fits or is not a catalogue message, DCS_EPAYLOAD with *why set to a short
 * static description of the failed check otherwise. */
int dcs_fit_check(const dcs_message *msg, const char **why);

/* ------------------------------------------------------------------------ */
/* Messages by type (statistics)                                             */

/* The envelope types of the catalogue (spec 7.1), and one slot for any
 * other type, to count messages in and out by type. */
enum dcs_msg_type {
    DCS_MT_COMMAND = 0,
    DCS_MT_HEARTBEAT,
    DCS_MT_JOBREQUEST,
    DCS_MT_JOBRESPONSE,
    DCS_MT_MESSAGE,
    DCS_MT_OTHER,
    DCS_MT_COUNT
};

/* The slot of an envelope type. */
int dcs_msg_type_index(dcs_slice type);
/* The slot's name: the type as on the wire, or "other". */
const char *dcs_msg_type_name(int index);
/* The slot of a serialized envelope's type (DCS_MT_OTHER if it has none). */
int dcs_msg_type_of(const char *msg, size_t len);

/* ------------------------------------------------------------------------ */
/* Actions: what a state machine asks its I/O shell to do                    */

/* A state machine never calls out. Each input function records an event;
 * the shell then calls the machine's *_next() until it returns 0, carrying
 * out each action in order. Pointers in an action stay valid until the next
 * call on the same machine: a shell that writes asynchronously copies WRITE
 * data. The machine keeps every written message "in flight" until the shell
 * reports it completely written (*_written), so that a message cut off by a
 * broken connection is re-sent whole or counted as lost (spec 4.7, 8.6).
 *
 * Input functions may be called at any time, also between two *_next() calls
 * while actions are still waiting (for example a reply from inside the
 * handling of a DELIVER); the actions they cause come after those already
 * waiting. A CLOSE action means the machine has already treated that
 * connection as ended: reporting it ended again is harmless. A CLOSE with
 * DCS_CLOSE_AFTER_WRITES should still be bounded by the shell, for example by
 * DCS_T_SHUTDOWN_GRACE, in case the peer stops reading. */
enum dcs_action_kind {
    DCS_ACT_CONNECT = 1, /* client: make one connect attempt now (spec 8.1) */
    DCS_ACT_WRITE,       /* write data on conn, whole, in order; report *_written(id) */
    DCS_ACT_CLOSE,       /* close conn now (pending writes may be discarded); reason */
    DCS_ACT_DELIVER,     /* msg is for the application */
    DCS_ACT_DROP,        /* a message the application handed over was dropped: id, reason, data */
    DCS_ACT_LOG,         /* a log line: level, category, reason, text */
    DCS_ACT_OPEN,        /* client: conn reached OPEN; server: conn registered (peer_id) */
    DCS_ACT_LOST,        /* conn ended; the application returns running jobs (spec 8.10) */
    DCS_ACT_RESULT,      /* server: request id finished: reason "reply", "request-timeout",
                            "connection-closed"; msg is the reply if any */
};

enum dcs_log_level { DCS_LOG_ERROR = 0, DCS_LOG_WARN, DCS_LOG_INFO, DCS_LOG_DEBUG };

/* Log categories (the seed's, plus the server's own). */
#define DCS_CAT_CLIENT "messaging.direct-client"
#define DCS_CAT_AUTH "auth.direct-socket"
#define DCS_CAT_MANAGER "backend.direct-communication-manager"
#define DCS_CAT_SERVER "crawler.direct-server"

typedef struct dcs_action {
    int kind;                /* enum dcs_action_kind */
    uint64_t conn;           /* connection: client: its generation (1, 2, ...); server: id */
    uint64_t id;             /* WRITE: write id; DROP: the message's id; RESULT: request id */
    dcs_slice data;          /* WRITE: bytes to write; DROP: the dropped message */
    const char *reason;      /* CLOSE, DROP, LOG, LOST, RESULT: a stable reason name */
    const dcs_message *msg;  /* DELIVER, RESULT: the message */
    int level;               /* LOG: enum dcs_log_level */
    const char *category;    /* LOG: DCS_CAT_* */
    const char *text;        /* LOG: one sentence, NUL-terminated */
    dcs_slice peer_id;       /* OPEN: the peer's id */
    unsigned flags;          /* CLOSE: DCS_CLOSE_AFTER_WRITES */
} dcs_action;

/* CLOSE after the writes already handed out are done (a close notice was
 * written just before); without it, close at once. */
#define DCS_CLOSE_AFTER_WRITES 1u

#ifdef __cplusplus
}
#endif
#endif /* DCS_SESSION_H */
