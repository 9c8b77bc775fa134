/*
 * fuzz_session_blocks.c - the session layer's bounded building blocks
 * against reference models (part of the session harness: configuration byte
 * with bit 7 set).
 *
 * After four bytes of bounds, each event is an opcode byte and arguments:
 * - the outbound queue (spec 8.6): push, pop, put back at the head, expire.
 *   The model is a plain list. The queue must hold exactly the model's
 *   messages in order with their bytes intact, stay within max_messages and
 *   max_bytes (one message alone may exceed max_bytes), drop only the oldest
 *   message other than the one just added, drop for age exactly the
 *   messages at least max_age old, and report its next expiry;
 * - the dedup cache (spec 8.7): check and expire with keys from a small
 *   alphabet. The model keeps (key, time) in insertion order: expire what is
 *   at least window old, a key present is a duplicate (its time unchanged),
 *   a new key is appended and the oldest evicted beyond max_keys. Results,
 *   evictions, size and next expiry must agree; the size never exceeds
 *   max_keys (the dedup bound).
 */
#include <string.h>

#include "common.h"
#include "dcs/session.h"

void fz_blocks_run(fz_in *in);

#define QMAX 64
#define DMAX 16

struct qitem {
    uint64_t id;
    dcs_ms t;
    size_t len;
};

struct qmodel {
    struct qitem v[QMAX * 2];
    size_t n;
    uint64_t just_added;
    size_t drops;
    dcs_ms now, max_age;
    const char *want_reason; /* "queue-age" while expiring, else NULL */
};

static void fill(uint8_t *buf, uint64_t id, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 31 + i);
}

static void check_bytes(const char *data, uint64_t id, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        FZ_CHECK((uint8_t)data[i] == (uint8_t)(id * 31 + i), "queued message %llu corrupted",
                 (unsigned long long)id);
}

static void on_drop(void *ud, const dcs_queue_item *it, const char *reason)
{
    struct qmodel *m = ud;
    size_t k = 0;
    FZ_CHECK(m->n > 0, "a drop from an empty queue");
    if (m->v[0].id == m->just_added && !m->want_reason) k = 1;
    FZ_CHECK(k < m->n, "the queue dropped the message just added");
    FZ_CHECK(it->id == m->v[k].id, "dropped %llu, the oldest is %llu", (unsigned long long)it->id,
             (unsigned long long)m->v[k].id);
    FZ_CHECK(it->len == m->v[k].len && it->enqueued == m->v[k].t, "dropped item changed");
    check_bytes(it->data, it->id, it->len);
    if (m->want_reason) {
        FZ_CHECK(strcmp(reason, m->want_reason) == 0, "drop reason %s while expiring", reason);
        FZ_CHECK(m->now - it->enqueued >= m->max_age, "expired a message %lld ms old",
                 (long long)(m->now - it->enqueued));
    } else {
        FZ_CHECK(strcmp(reason, "queue-count") == 0 || strcmp(reason, "queue-bytes") == 0,
                 "drop reason %s", reason);
    }
    memmove(&m->v[k], &m->v[k + 1], (m->n - k - 1) * sizeof m->v[0]);
    m->n--;
    m->drops++;
}

static void queue_check(const dcs_queue *q, const struct qmodel *m, const dcs_session_config *c)
{
    size_t i, bytes = 0;
    const dcs_queue_item *it = dcs_queue_peek(q);
    for (i = 0; i < m->n; i++)
        bytes += m->v[i].len;
    FZ_CHECK(dcs_queue_count(q) == m->n, "queue holds %zu, model %zu", dcs_queue_count(q), m->n);
    FZ_CHECK(dcs_queue_bytes(q) == bytes, "queue bytes %zu, model %zu", dcs_queue_bytes(q), bytes);
    FZ_CHECK(m->n <= c->queue_max_messages, "queue bound: %zu messages, bound %zu", m->n,
             c->queue_max_messages);
    FZ_CHECK(bytes <= c->queue_max_bytes || m->n == 1, "queue bound: %zu bytes, bound %zu", bytes,
             c->queue_max_bytes);
    if (m->n == 0) {
        FZ_CHECK(it == NULL, "peek on an empty queue");
        FZ_CHECK(dcs_queue_next_expiry(q) == DCS_NEVER, "expiry of an empty queue");
    } else {
        FZ_CHECK(it && it->id == m->v[0].id, "peek gives another message");
        check_bytes(it->data, it->id, it->len);
        FZ_CHECK(dcs_queue_next_expiry(q) == m->v[0].t + c->queue_max_age,
                 "next expiry %lld, want %lld", (long long)dcs_queue_next_expiry(q),
                 (long long)(m->v[0].t + c->queue_max_age));
    }
}

static void run_queue(fz_in *in)
{
    static dcs_session_config c;
    static struct qmodel m;
    static uint8_t buf[1024];
    struct qitem popped[8];
    size_t n_popped = 0;
    uint64_t next_id = 0;
    dcs_queue *q;
    fz_alloc fa;
    unsigned ops = 0;

    dcs_session_config_init(&c);
    c.queue_max_messages = 1 + fz_u8(in) % 16;
    c.queue_max_bytes = 16 + (size_t)fz_u8(in) * 4;
    c.queue_keep_percent = 1 + fz_u8(in) % 100;
    c.queue_max_age = 1 + (dcs_ms)fz_u8(in) * 4;
    memset(&m, 0, sizeof m);
    m.now = 100;
    m.max_age = c.queue_max_age;
    fz_alloc_init(&fa, 0);
    q = dcs_queue_new(&c, &fa.a, on_drop, &m);
    FZ_CHECK(q != NULL, "dcs_queue_new");
    while (in->n && ops++ < 2000) {
        unsigned op = fz_u8(in), a = fz_u8(in);
        int rc;
        switch (op % 5) {
        case 0: { /* push */
            size_t len = 1 + (size_t)a * 3;
            uint64_t id = ++next_id;
            m.now += op >> 5;
            fill(buf, id, len);
            FZ_CHECK(m.n < QMAX * 2, "model full");
            m.v[m.n].id = id;
            m.v[m.n].t = m.now;
            m.v[m.n].len = len;
            m.n++;
            m.just_added = id;
            rc = dcs_queue_push(q, m.now, id, buf, len);
            FZ_CHECK(rc == 0, "push: %s", dcs_err_name(rc));
            m.just_added = 0;
            break;
        }
        case 1: { /* pop */
            const dcs_queue_item *it = dcs_queue_peek(q);
            if (!it) break;
            if (n_popped == 8) {
                memmove(popped, popped + 1, 7 * sizeof popped[0]);
                n_popped--;
            }
            popped[n_popped++] = m.v[0];
            dcs_queue_pop(q);
            memmove(&m.v[0], &m.v[1], (m.n - 1) * sizeof m.v[0]);
            m.n--;
            break;
        }
        case 2: { /* put back the last message popped */
            struct qitem p;
            int ok;
            if (!n_popped) break;
            p = popped[--n_popped];
            ok = m.n == 0 || p.t <= m.v[0].t;
            fill(buf, p.id, p.len);
            if (ok) {
                memmove(&m.v[1], &m.v[0], m.n * sizeof m.v[0]);
                m.v[0] = p;
                m.n++;
                m.just_added = p.id;
            }
            rc = dcs_queue_push_front(q, p.t, p.id, buf, p.len);
            FZ_CHECK(rc == (ok ? 0 : DCS_EINVAL), "push_front: %s, want %s", dcs_err_name(rc),
                     ok ? "ok" : "invalid_argument");
            m.just_added = 0;
            break;
        }
        case 3: { /* expire */
            size_t before = m.drops, n;
            m.now += a;
            m.want_reason = "queue-age";
            n = dcs_queue_expire(q, m.now);
            m.want_reason = NULL;
            FZ_CHECK(n == m.drops - before, "expire says %zu, dropped %zu", n, m.drops - before);
            FZ_CHECK(m.n == 0 || m.now - m.v[0].t < c.queue_max_age,
                     "a message %lld ms old survives expiry", (long long)(m.now - m.v[0].t));
            break;
        }
        default:
            m.now += (dcs_ms)a * (op >> 4);
            break;
        }
        queue_check(q, &m, &c);
    }
    dcs_queue_free(q);
    FZ_CHECK(fa.live == 0, "the queue leaked %ld blocks", fa.live);
}

struct dentry {
    char key[4];
    size_t len;
    dcs_ms t;
};

static void run_dedup(fz_in *in)
{
    static const unsigned char seed[16] = "fuzz-dedup-seed";
    struct dentry v[DMAX + 1];
    size_t n = 0, max_keys = 1 + fz_u8(in) % 8, i;
    dcs_ms window = 1 + (dcs_ms)fz_u8(in) * 4, now = 50;
    uint64_t evicted = 0, want_evicted = 0;
    unsigned ops = 0;
    fz_alloc fa;
    dcs_dedup *d;

    fz_alloc_init(&fa, 0);
    d = dcs_dedup_new(max_keys, window, seed, &fa.a);
    FZ_CHECK(d != NULL, "dcs_dedup_new");
    while (in->n && ops++ < 2000) {
        unsigned op = fz_u8(in), a = fz_u8(in);
        char key[4];
        size_t klen = 1 + (a >> 6) % 3, k;
        int rc, want;
        now += op >> 2;
        /* expire in the model */
        while (n && now - v[0].t >= window) {
            memmove(&v[0], &v[1], (n - 1) * sizeof v[0]);
            n--;
        }
        if (op & 1) {
            size_t got = dcs_dedup_expire(d, now);
            (void)got;
        } else {
            for (k = 0; k < klen; k++)
                key[k] = "ab\0\xff"[(a >> (2 * k)) & 3];
            want = DCS_DEDUP_NEW;
            for (i = 0; i < n; i++)
                if (v[i].len == klen && memcmp(v[i].key, key, klen) == 0)
                    want = DCS_DEDUP_DUPLICATE;
            if (want == DCS_DEDUP_NEW) {
                memcpy(v[n].key, key, klen);
                v[n].len = klen;
                v[n].t = now;
                n++;
                if (n > max_keys) {
                    memmove(&v[0], &v[1], (n - 1) * sizeof v[0]);
                    n--;
                    want_evicted++;
                }
            }
            rc = dcs_dedup_check(d, now, key, klen, &evicted);
            FZ_CHECK(rc == want, "dedup says %d, model %d", rc, want);
            FZ_CHECK(evicted == want_evicted, "evicted %llu, model %llu",
                     (unsigned long long)evicted, (unsigned long long)want_evicted);
        }
        FZ_CHECK(dcs_dedup_size(d) <= max_keys, "dedup bound: %zu keys, bound %zu",
                 dcs_dedup_size(d), max_keys);
        FZ_CHECK(dcs_dedup_size(d) == n, "dedup holds %zu keys, model %zu", dcs_dedup_size(d), n);
        FZ_CHECK(dcs_dedup_next_expiry(d) == (n ? v[0].t + window : DCS_NEVER),
                 "dedup next expiry %lld, model %lld", (long long)dcs_dedup_next_expiry(d),
                 (long long)(n ? v[0].t + window : DCS_NEVER));
    }
    dcs_dedup_free(d);
    FZ_CHECK(fa.live == 0, "the dedup cache leaked %ld blocks", fa.live);
}

void fz_blocks_run(fz_in *in)
{
    if (fz_u8(in) & 1)
        run_dedup(in);
    else
        run_queue(in);
}
