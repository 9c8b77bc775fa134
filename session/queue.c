/* queue.c - the bounded outbound queue of spec section 8.6.
 *
 * The queue is a ring of dcs_queue_item, oldest at ring[head], each owning
 * one allocated copy of its message. The ring grows by doubling up to
 * queue_max_messages + 1 slots and never shrinks, so memory is the queued
 * bytes plus one message plus a constant per slot, as section 8.6 asks.
 * Items are kept in non-decreasing order of their time, which makes the
 * oldest message the next to expire and every bound O(1) per dropped item.
 */
#include <stdint.h>
#include <string.h>

#include "dcs/session.h"

struct dcs_queue {
    const dcs_allocator *a;
    dcs_queue_drop_fn on_drop;
    void *ud;
    size_t max_messages, max_bytes; /* the bounds */
    size_t keep_messages, keep_bytes; /* what an overflow trims down to */
    dcs_ms max_age;
    dcs_queue_item *ring;
    size_t cap, head, count, bytes;
};

/* a + b, saturating at the ends of dcs_ms. */
static dcs_ms dcs__ms_add(dcs_ms a, dcs_ms b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* floor(bound * percent / 100) without overflow (percent is at most 100). */
static size_t dcs__percent(size_t bound, unsigned percent)
{
    return bound / 100 * percent + bound % 100 * percent / 100;
}

static dcs_queue_item *dcs__at(const dcs_queue *q, size_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

dcs_queue *dcs_queue_new(const dcs_session_config *c, const dcs_allocator *a,
                         dcs_queue_drop_fn on_drop, void *ud)
{
    dcs_queue *q;
    unsigned keep = c->queue_keep_percent > 100 ? 100 : c->queue_keep_percent;
    if (!a)
        a = &dcs_default_allocator;
    q = a->alloc(a->ud, sizeof *q);
    if (!q)
        return NULL;
    memset(q, 0, sizeof *q);
    q->a = a;
    q->on_drop = on_drop;
    q->ud = ud;
    q->max_messages = c->queue_max_messages;
    q->max_bytes = c->queue_max_bytes;
    q->keep_messages = dcs__percent(c->queue_max_messages, keep);
    q->keep_bytes = dcs__percent(c->queue_max_bytes, keep);
    q->max_age = c->queue_max_age;
    return q;
}

void dcs_queue_free(dcs_queue *q)
{
    size_t i;
    if (!q)
        return;
    for (i = 0; i < q->count; i++)
        q->a->free(q->a->ud, (void *)dcs__at(q, i)->data);
    if (q->ring)
        q->a->free(q->a->ud, q->ring);
    q->a->free(q->a->ud, q);
}

/* Make room for one more item. The ring is reallocated in place; when its
 * contents wrap around, the part from head to the old end moves to the new
 * end. Returns 0 or DCS_ENOMEM, and the queue's contents are unchanged
 * either way. */
static int dcs__reserve(dcs_queue *q)
{
    size_t limit = q->max_messages < SIZE_MAX ? q->max_messages + 1 : SIZE_MAX;
    size_t ncap, tail_part;
    dcs_queue_item *r;

    if (q->count < q->cap)
        return 0;
    ncap = q->cap ? q->cap * 2 : 16;
    if (ncap < q->cap || ncap > limit)
        ncap = limit;
    if (ncap <= q->cap)
        ncap = q->cap + 1; /* beyond the bound, transiently: one more slot */
    if (ncap <= q->cap || ncap > SIZE_MAX / sizeof *r)
        return DCS_ENOMEM;
    r = q->a->realloc(q->a->ud, q->ring, ncap * sizeof *r);
    if (!r)
        return DCS_ENOMEM;
    tail_part = q->cap - q->head;
    if (q->count && q->head + q->count > q->cap) {
        memmove(r + ncap - tail_part, r + q->head, tail_part * sizeof *r);
        q->head = ncap - tail_part;
    }
    q->ring = r;
    q->cap = ncap;
    return 0;
}

/* A copy of data in a new block (at least 1 byte, so that an empty message
 * still has a pointer to free), or NULL. */
static char *dcs__copy(dcs_queue *q, const void *data, size_t len)
{
    char *p = q->a->alloc(q->a->ud, len ? len : 1);
    if (p && len)
        memcpy(p, data, len);
    return p;
}

/* Remove one item and report it: the oldest, or with skip_front the oldest
 * after the head (the head item moves into its slot, so the order of the
 * others is kept). The queue is consistent again before the callback runs. */
static void dcs__drop(dcs_queue *q, int skip_front, const char *reason)
{
    dcs_queue_item victim;
    if (skip_front) {
        dcs_queue_item *second = dcs__at(q, 1);
        victim = *second;
        *second = q->ring[q->head];
    } else {
        victim = q->ring[q->head];
    }
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->bytes -= victim.len;
    if (q->on_drop)
        q->on_drop(q->ud, &victim, reason);
    q->a->free(q->a->ud, (void *)victim.data);
}

/* Apply the count and byte bounds after an item was added; the added item
 * (the newest, or with at_front the head) is never dropped. Each bound is
 * applied if the addition broke it, so both can trim in one step. */
static void dcs__trim(dcs_queue *q, int at_front)
{
    int count_over = q->count > q->max_messages;
    int bytes_over = q->bytes > q->max_bytes;
    if (count_over)
        while (q->count > q->keep_messages && q->count > 1)
            dcs__drop(q, at_front, "queue-count");
    if (bytes_over)
        while (q->bytes > q->keep_bytes && q->count > 1)
            dcs__drop(q, at_front, "queue-bytes");
}

int dcs_queue_push(dcs_queue *q, dcs_ms enqueued, uint64_t id, const void *data, size_t len)
{
    dcs_queue_item *it;
    char *copy;
    if (q->count && enqueued < dcs__at(q, q->count - 1)->enqueued)
        return DCS_EINVAL;
    if (dcs__reserve(q) != 0)
        return DCS_ENOMEM;
    if (!(copy = dcs__copy(q, data, len)))
        return DCS_ENOMEM;
    it = &q->ring[(q->head + q->count) % q->cap];
    it->id = id;
    it->enqueued = enqueued;
    it->data = copy;
    it->len = len;
    q->count++;
    q->bytes += len;
    dcs__trim(q, 0);
    return 0;
}

int dcs_queue_push_front(dcs_queue *q, dcs_ms enqueued, uint64_t id, const void *data,
                         size_t len)
{
    dcs_queue_item *it;
    char *copy;
    if (q->count && enqueued > q->ring[q->head].enqueued)
        return DCS_EINVAL;
    if (dcs__reserve(q) != 0)
        return DCS_ENOMEM;
    if (!(copy = dcs__copy(q, data, len)))
        return DCS_ENOMEM;
    q->head = (q->head + q->cap - 1) % q->cap;
    it = &q->ring[q->head];
    it->id = id;
    it->enqueued = enqueued;
    it->data = copy;
    it->len = len;
    q->count++;
    q->bytes += len;
    dcs__trim(q, 1);
    return 0;
}

size_t dcs_queue_expire(dcs_queue *q, dcs_ms now)
{
    size_t n = 0;
    while (q->count && now >= dcs__ms_add(q->ring[q->head].enqueued, q->max_age)) {
        dcs__drop(q, 0, "queue-age");
        n++;
    }
    return n;
}

const dcs_queue_item *dcs_queue_peek(const dcs_queue *q)
{
    return q->count ? &q->ring[q->head] : NULL;
}

void dcs_queue_pop(dcs_queue *q)
{
    dcs_queue_item *it;
    if (!q->count)
        return;
    it = &q->ring[q->head];
    q->a->free(q->a->ud, (void *)it->data);
    q->bytes -= it->len;
    q->head = (q->head + 1) % q->cap;
    q->count--;
}

size_t dcs_queue_count(const dcs_queue *q)
{
    return q->count;
}

size_t dcs_queue_bytes(const dcs_queue *q)
{
    return q->bytes;
}

dcs_ms dcs_queue_next_expiry(const dcs_queue *q)
{
    if (!q->count)
        return DCS_NEVER;
    return dcs__ms_add(q->ring[q->head].enqueued, q->max_age);
}
