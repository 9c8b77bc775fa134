/* actions.c - the action list and the in-flight list shared by the client
 * and server state machines (see actions.h). */
#include <stdio.h>
#include <string.h>

#include "actions.h"

void dcs__actions_init(dcs__actions *q, const dcs_allocator *al)
{
    memset(q, 0, sizeof *q);
    q->al = al;
    dcs_buf_init(&q->arena, al);
}

void dcs__actions_free(dcs__actions *q)
{
    if (q->v)
        q->al->free(q->al->ud, q->v);
    dcs_buf_free(&q->arena);
    q->v = NULL;
    q->n = q->head = q->cap = 0;
}

struct dcs__act *dcs__actions_push(dcs__actions *q, int kind, uint64_t conn)
{
    struct dcs__act *x;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        struct dcs__act *v = q->al->realloc(q->al->ud, q->v, cap * sizeof *v);
        if (!v)
            return NULL;
        q->v = v;
        q->cap = cap;
    }
    x = &q->v[q->n++];
    memset(x, 0, sizeof *x);
    x->a.kind = kind;
    x->a.conn = conn;
    x->text_off = x->data_off = SIZE_MAX;
    return x;
}

size_t dcs__actions_keep(dcs__actions *q, const void *p, size_t n)
{
    size_t off = q->arena.len;
    if (dcs_buf_append(&q->arena, p, n) || dcs_buf_append(&q->arena, "", 1)) {
        q->arena.len = off;
        return SIZE_MAX;
    }
    return off;
}

void dcs__actions_logv(dcs__actions *q, uint64_t conn, int level, const char *category,
                       const char *reason, const char *fmt, va_list ap)
{
    char text[320];
    struct dcs__act *x = dcs__actions_push(q, DCS_ACT_LOG, conn);
    if (!x)
        return;
    vsnprintf(text, sizeof text, fmt, ap);
    x->a.level = level;
    x->a.category = category;
    x->a.reason = reason;
    x->text_off = dcs__actions_keep(q, text, strlen(text));
}

void dcs__actions_drop(dcs__actions *q, uint64_t conn, uint64_t id, const char *reason,
                       const char *data, size_t len)
{
    struct dcs__act *x = dcs__actions_push(q, DCS_ACT_DROP, conn);
    if (!x)
        return;
    x->a.id = id;
    x->a.reason = reason;
    x->data_off = dcs__actions_keep(q, data, len);
    x->a.data.len = x->data_off == SIZE_MAX ? 0 : len;
    x->data_in_arena = 1;
}

struct dcs__act *dcs__actions_simple(dcs__actions *q, uint64_t conn, int kind,
                                     const char *reason, unsigned flags)
{
    struct dcs__act *x = dcs__actions_push(q, kind, conn);
    if (x) {
        x->a.reason = reason;
        x->a.flags = flags;
    }
    return x;
}

int dcs__actions_pop(dcs__actions *q, dcs_action *a)
{
    struct dcs__act *x;
    if (q->head == q->n)
        return 0;
    x = &q->v[q->head++];
    *a = x->a;
    a->text = x->text_off != SIZE_MAX ? q->arena.data + x->text_off : "";
    if (x->data_in_arena)
        a->data.ptr = x->data_off != SIZE_MAX ? q->arena.data + x->data_off : NULL;
    return 1;
}

int dcs__actions_reset_if_drained(dcs__actions *q)
{
    if (q->head != q->n)
        return 0;
    q->head = q->n = 0;
    q->arena.len = 0;
    return 1;
}

void dcs__actions_cancel_writes(dcs__actions *q, const char *buf)
{
    size_t k;
    for (k = q->head; k < q->n; k++) {
        if (q->v[k].a.kind == DCS_ACT_WRITE && q->v[k].a.data.ptr == buf) {
            q->v[k].a.kind = DCS_ACT_LOG;
            q->v[k].a.level = DCS_LOG_ERROR;
            q->v[k].a.reason = "nomem";
            q->v[k].a.data.ptr = NULL;
            q->v[k].a.data.len = 0;
        }
    }
}

int dcs__flight_write(dcs__flight *f, dcs__actions *q, uint64_t conn, int kind, uint64_t id,
                      dcs_ms enqueued, const char *data, size_t len)
{
    const dcs_allocator *al = q->al;
    struct dcs__inflight *e;
    struct dcs__act *x;
    char *copy;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct dcs__inflight *v = al->realloc(al->ud, f->v, cap * sizeof *v);
        if (!v)
            return DCS_ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    copy = al->alloc(al->ud, len ? len : 1);
    if (!copy)
        return DCS_ENOMEM;
    if (len)
        memcpy(copy, data, len);
    x = dcs__actions_push(q, DCS_ACT_WRITE, conn);
    if (!x) {
        al->free(al->ud, copy);
        return DCS_ENOMEM;
    }
    e = &f->v[f->n++];
    e->id = id;
    e->kind = kind;
    e->enqueued = enqueued;
    e->data = copy;
    e->len = len;
    f->bytes += len;
    x->a.id = id;
    x->a.data.ptr = copy;
    x->a.data.len = len;
    return 0;
}

void dcs__flight_done(dcs__flight *f, const dcs_allocator *al, uint64_t id)
{
    size_t i;
    for (i = 0; i < f->n; i++) {
        if (f->v[i].id == id) {
            f->bytes -= f->v[i].len;
            al->free(al->ud, f->v[i].data);
            memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof f->v[0]);
            f->n--;
            return;
        }
    }
}

void dcs__flight_free(dcs__flight *f, const dcs_allocator *al)
{
    size_t i;
    for (i = 0; i < f->n; i++)
        al->free(al->ud, f->v[i].data);
    if (f->v)
        al->free(al->ud, f->v);
    memset(f, 0, sizeof *f);
}
