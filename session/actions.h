/* actions.h - internal: the action list and the in-flight list that the
 * client and server state machines share (see include/dcs/session.h,
 * "Actions").
 *
 * The action list holds the actions not yet handed out. Texts and copied
 * bytes live in an arena, so an action handed out stays valid until the next
 * call on the machine; the list and the arena are reset once drained.
 *
 * The in-flight list holds every message handed out in a WRITE action that
 * the shell has not yet reported written (spec 4.7, 8.6). */
#ifndef DCS_SESSION_ACTIONS_H
#define DCS_SESSION_ACTIONS_H

#include <stdarg.h>

#include "dcs/session.h"

struct dcs__act {
    dcs_action a;
    size_t text_off, data_off; /* into the arena; SIZE_MAX when unused */
    int data_in_arena;
};

typedef struct dcs__actions {
    const dcs_allocator *al;
    struct dcs__act *v;
    size_t n, head, cap;
    dcs_buf arena;
} dcs__actions;

void dcs__actions_init(dcs__actions *q, const dcs_allocator *al);
void dcs__actions_free(dcs__actions *q);

/* Append an action of kind for connection conn; NULL when out of memory. */
struct dcs__act *dcs__actions_push(dcs__actions *q, int kind, uint64_t conn);

/* Copy n bytes and a NUL into the arena; the offset, or SIZE_MAX. */
size_t dcs__actions_keep(dcs__actions *q, const void *p, size_t n);

void dcs__actions_logv(dcs__actions *q, uint64_t conn, int level, const char *category,
                       const char *reason, const char *fmt, va_list ap);
/* A DROP of a message the application handed over, with a copy of its bytes. */
void dcs__actions_drop(dcs__actions *q, uint64_t conn, uint64_t id, const char *reason,
                       const char *data, size_t len);
/* An action with only a reason and flags (CONNECT, CLOSE, LOST, ...). */
struct dcs__act *dcs__actions_simple(dcs__actions *q, uint64_t conn, int kind,
                                     const char *reason, unsigned flags);

/* Hand out the next action: 1, or 0 when none is waiting. */
int dcs__actions_pop(dcs__actions *q, dcs_action *a);

/* When every action has been handed out, forget them and reset the arena;
 * returns 1 if it did (the caller may then free what the actions pointed at). */
int dcs__actions_reset_if_drained(dcs__actions *q);

/* Turn every waiting WRITE of buf into a LOG "nomem" (buf is about to go). */
void dcs__actions_cancel_writes(dcs__actions *q, const char *buf);

struct dcs__inflight {
    uint64_t id;
    int kind; /* the machine's own classification */
    dcs_ms enqueued;
    char *data;
    size_t len;
};

typedef struct dcs__flight {
    struct dcs__inflight *v;
    size_t n, cap, bytes;
} dcs__flight;

/* Copy data, keep it in flight and push a WRITE action for it. 0 or
 * DCS_ENOMEM (then nothing changed). */
int dcs__flight_write(dcs__flight *f, dcs__actions *q, uint64_t conn, int kind, uint64_t id,
                      dcs_ms enqueued, const char *data, size_t len);

/* The write id has been written: forget it. */
void dcs__flight_done(dcs__flight *f, const dcs_allocator *al, uint64_t id);

/* Free every buffer and the list itself. */
void dcs__flight_free(dcs__flight *f, const dcs_allocator *al);

#endif
