/* dedup.c - the dedup cache of spec section 8.7.
 *
 * Entries form a first-in-first-out list (oldest at d->oldest) threaded
 * through a chained hash table. Every entry has the same window and entries
 * are added in time order, so the oldest is both the next to expire and the
 * next to evict: expiry and eviction only ever remove the list's head.
 * Buckets are chosen by SipHash-2-4 (libsodium's crypto_shorthash) keyed by
 * the caller's random seed, so a peer cannot aim many keys at one chain.
 *
 * One allocation per stored key (the entry with the key inline), and a
 * bucket array that doubles up to the first power of two at or above
 * max_keys and never shrinks: memory is bounded by max_keys entries.
 * crypto_shorthash is a pure function and needs no sodium_init(), which
 * would touch the system's random source; programs call it at start.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "dcs/session.h"

typedef struct dcs__entry {
    struct dcs__entry *newer; /* the FIFO list, oldest to newest */
    struct dcs__entry *chain; /* the next entry of the same bucket */
    uint64_t hash;
    dcs_ms t; /* time of delivery */
    size_t len;
    unsigned char key[]; /* len bytes */
} dcs__entry;

struct dcs_dedup {
    const dcs_allocator *a;
    size_t max_keys;
    dcs_ms window;
    unsigned char seed[crypto_shorthash_KEYBYTES];
    dcs__entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t max_buckets;
    size_t count;
    dcs__entry *oldest, *newest;
};

#define DCS__MIN_BUCKETS 16u

/* session.h promises a 16-byte seed: exactly SipHash-2-4's key. */
_Static_assert(crypto_shorthash_KEYBYTES == 16, "the dedup seed is a SipHash key");

static dcs_ms dcs__ms_add(dcs_ms a, dcs_ms b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static uint64_t dcs__hash(const dcs_dedup *d, const void *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h = 0;
    size_t i;
    crypto_shorthash(out, key, len, d->seed);
    for (i = 0; i < sizeof out; i++)
        h |= (uint64_t)out[i] << (8 * i);
    return h;
}

static dcs__entry **dcs__bucket(const dcs_dedup *d, uint64_t hash)
{
    return &d->buckets[hash & (d->nbuckets - 1)];
}

dcs_dedup *dcs_dedup_new(size_t max_keys, dcs_ms window, const unsigned char seed[16],
                         const dcs_allocator *a)
{
    dcs_dedup *d;
    size_t maxb = DCS__MIN_BUCKETS;
    if (max_keys == 0)
        return NULL;
    if (!a)
        a = &dcs_default_allocator;
    /* The first power of two at or above max_keys (load factor at most 1),
     * limited so that the bucket array's size cannot overflow. */
    while (maxb < max_keys && maxb <= SIZE_MAX / sizeof(dcs__entry *) / 2)
        maxb *= 2;
    d = a->alloc(a->ud, sizeof *d);
    if (!d)
        return NULL;
    memset(d, 0, sizeof *d);
    d->a = a;
    d->max_keys = max_keys;
    d->window = window;
    memcpy(d->seed, seed, sizeof d->seed);
    d->max_buckets = maxb;
    d->nbuckets = DCS__MIN_BUCKETS;
    d->buckets = a->alloc(a->ud, d->nbuckets * sizeof *d->buckets);
    if (!d->buckets) {
        a->free(a->ud, d);
        return NULL;
    }
    memset(d->buckets, 0, d->nbuckets * sizeof *d->buckets);
    return d;
}

void dcs_dedup_free(dcs_dedup *d)
{
    dcs__entry *e, *next;
    if (!d)
        return;
    for (e = d->oldest; e; e = next) {
        next = e->newer;
        d->a->free(d->a->ud, e);
    }
    d->a->free(d->a->ud, d->buckets);
    sodium_memzero(d->seed, sizeof d->seed);
    d->a->free(d->a->ud, d);
}

/* Unlink and free the oldest entry. */
static void dcs__remove_oldest(dcs_dedup *d)
{
    dcs__entry *e = d->oldest;
    dcs__entry **p = dcs__bucket(d, e->hash);
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    d->oldest = e->newer;
    if (!d->oldest)
        d->newest = NULL;
    d->count--;
    d->a->free(d->a->ud, e);
}

size_t dcs_dedup_expire(dcs_dedup *d, dcs_ms now)
{
    size_t n = 0;
    while (d->oldest && now >= dcs__ms_add(d->oldest->t, d->window)) {
        dcs__remove_oldest(d);
        n++;
    }
    return n;
}

/* Double the bucket array when the cache is about to hold more entries than
 * it has buckets and may still grow, so that chains stay short. Returns 0 or
 * DCS_ENOMEM; on failure the old array is kept and nothing changed. */
static int dcs__grow(dcs_dedup *d, size_t need)
{
    size_t n = d->nbuckets * 2;
    dcs__entry **b, *e;
    if (need <= d->nbuckets || d->nbuckets >= d->max_buckets)
        return 0;
    b = d->a->alloc(d->a->ud, n * sizeof *b);
    if (!b)
        return DCS_ENOMEM;
    memset(b, 0, n * sizeof *b);
    /* Walking the FIFO list visits every entry once; relinking each at its
     * new bucket's head keeps the table consistent. */
    for (e = d->oldest; e; e = e->newer) {
        dcs__entry **slot = &b[e->hash & (n - 1)];
        e->chain = *slot;
        *slot = e;
    }
    d->a->free(d->a->ud, d->buckets);
    d->buckets = b;
    d->nbuckets = n;
    return 0;
}

int dcs_dedup_check(dcs_dedup *d, dcs_ms now, const void *key, size_t len, uint64_t *evicted)
{
    uint64_t h;
    dcs__entry *e;

    dcs_dedup_expire(d, now);

    if (!key)
        key = "";
    h = dcs__hash(d, key, len);
    for (e = *dcs__bucket(d, h); e; e = e->chain)
        if (e->hash == h && e->len == len && (len == 0 || memcmp(e->key, key, len) == 0))
            return DCS_DEDUP_DUPLICATE;

    /* Both allocations come before any change, so DCS_ENOMEM leaves the
     * cache as the expiry above left it. A grown bucket array is no change
     * that anyone can observe. */
    if (len > SIZE_MAX - sizeof *e)
        return DCS_ENOMEM;
    if (dcs__grow(d, d->count < d->max_keys ? d->count + 1 : d->max_keys) != 0)
        return DCS_ENOMEM;
    e = d->a->alloc(d->a->ud, sizeof *e + len);
    if (!e)
        return DCS_ENOMEM;

    /* From here nothing can fail. The oldest entry makes room first, so the
     * cache never holds more than max_keys entries once this call returns. */
    if (d->count >= d->max_keys) {
        dcs__remove_oldest(d);
        if (evicted)
            (*evicted)++;
    }

    e->newer = NULL;
    e->hash = h;
    e->t = now;
    e->len = len;
    if (len)
        memcpy(e->key, key, len);
    e->chain = *dcs__bucket(d, h);
    *dcs__bucket(d, h) = e;
    if (d->newest)
        d->newest->newer = e;
    else
        d->oldest = e;
    d->newest = e;
    d->count++;
    return DCS_DEDUP_NEW;
}

size_t dcs_dedup_size(const dcs_dedup *d)
{
    return d->count;
}

dcs_ms dcs_dedup_next_expiry(const dcs_dedup *d)
{
    if (!d->oldest)
        return DCS_NEVER;
    return dcs__ms_add(d->oldest->t, d->window);
}
