/* encode.c - the encoder and typed-view figures of dcs-bench-codec.
 *
 * The messages of the first bench_opt.encode_subset bytes of the first
 * stream are decoded once (untimed) into
 * - dcs envelopes (the four strings copied, payload and timestamp pointing
 *   into the stream), which dcs_encode writes back: what a peer does when it
 *   sends a message whose payload it holds as JSON text;
 * - jansson and cJSON trees of the whole envelope, which json_dumpb
 *   (JSON_COMPACT) and cJSON_PrintUnformatted / cJSON_PrintPreallocated
 *   serialise. Only the serialisation is timed.
 * dcs_encode writes the payload as raw text while the baselines walk a tree
 * of it; the typed-encode figure (payload structs to JSON) is the one that
 * serialises a whole structure with dcs.
 *
 * Typed views (include/dcs/typed.h): every payload whose type/key is in the
 * catalogue is decoded with dcs_typed_decode (and freed) per pass, and,
 * decoded once, written back with dcs_typed_encode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#ifdef DCS_BENCH_HAVE_TYPED
#include "dcs/typed.h"
#endif

#include "bench.h"

/* ------------------------------------------------------------------------ */
/* The envelopes                                                             */

struct env_set {
    size_t n;
    dcs_envelope *env;
    dcs_slice *raw; /* each message as received */
    char *arena;    /* the four strings of every envelope */
    size_t raw_bytes, largest;
};

static void copy_slice(dcs_slice *dst, dcs_slice src, char **arena)
{
    memcpy(*arena, src.ptr, src.len);
    dst->ptr = *arena;
    dst->len = src.len;
    *arena += src.len;
}

static void collect(const struct bench_stream *s, struct env_set *es)
{
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    size_t limit = s->len < bench_opt.encode_subset ? s->len : bench_opt.encode_subset, cap;
    char *a;
    dcs_message m;
    dcs_error e;
    int ev;

    if (!d)
        bench_die("out of memory");
    memset(es, 0, sizeof *es);
    cap = (size_t)s->messages;
    es->env = bench_xmalloc(cap * sizeof *es->env);
    es->raw = bench_xmalloc(cap * sizeof *es->raw);
    es->arena = a = bench_xmalloc(limit);
    dcs_decoder_feed(d, s->buf, s->len);
    while ((ev = dcs_decoder_next(d, &m, &e)) == DCS_MESSAGE) {
        dcs_envelope *env = &es->env[es->n];
        /* At least one message, then whole messages up to the limit. */
        if (es->n && m.offset + m.raw.len > limit)
            break;
        if (m.offset + m.raw.len > limit) {
            free(es->arena);
            es->arena = a = bench_xmalloc(m.raw.len);
        }
        dcs_envelope_from_message(env, &m);
        /* Decoded with escapes the strings may live in the decoder's scratch
         * buffer: keep a copy. Payload and timestamp point into the stream. */
        copy_slice(&env->origin, m.origin, &a);
        copy_slice(&env->destination, m.destination, &a);
        copy_slice(&env->type, m.type, &a);
        copy_slice(&env->key, m.key, &a);
        env->extra = NULL; /* not the decoder's array: it is reused */
        if (m.n_unknown) {
            dcs_member *u = bench_xmalloc(m.n_unknown * sizeof *u);
            memcpy(u, m.unknown, m.n_unknown * sizeof *u);
            env->extra = u;
        }
        es->raw[es->n] = m.raw;
        es->raw_bytes += m.raw.len;
        if (m.raw.len > es->largest)
            es->largest = m.raw.len;
        es->n++;
    }
    if (ev == DCS_ERROR)
        bench_die("%s: %s", s->name, e.message);
    dcs_decoder_free(d);
}

static void free_set(struct env_set *es)
{
    size_t i;
    for (i = 0; i < es->n; i++)
        free((void *)es->env[i].extra);
    free(es->env);
    free(es->raw);
    free(es->arena);
}

/* ------------------------------------------------------------------------ */
/* Encoder passes                                                            */

struct enc_ctx {
    const struct env_set *es;
    unsigned flags;
    dcs_buf out;
    json_t **jt;
    cJSON **ct;
    char *buf;
    size_t cap;
};

static int pass_enc_dcs(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct enc_ctx *c = arg;
    uint64_t bytes = 0;
    size_t i;
    int rc;
    for (i = 0; i < c->es->n; i++) {
        c->out.len = 0;
        if ((rc = dcs_encode(&c->out, &c->es->env[i], c->flags)))
            return bench_fail("message %zu: %s", i, dcs_err_name(rc));
        bytes += c->out.len;
    }
    *msgs = c->es->n;
    *sig = bytes;
    return 0;
}

static int pass_enc_jansson(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct enc_ctx *c = arg;
    uint64_t bytes = 0;
    size_t i;
    for (i = 0; i < c->es->n; i++) {
        size_t k = json_dumpb(c->jt[i], c->buf, c->cap, JSON_COMPACT);
        if (k == 0 || k > c->cap)
            return bench_fail("json_dumpb of message %zu failed", i);
        bytes += k;
    }
    *msgs = c->es->n;
    *sig = bytes;
    return 0;
}

static int pass_enc_cjson(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct enc_ctx *c = arg;
    uint64_t bytes = 0;
    size_t i;
    for (i = 0; i < c->es->n; i++) {
        char *p = cJSON_PrintUnformatted(c->ct[i]);
        if (!p)
            return bench_fail("cJSON_PrintUnformatted of message %zu failed", i);
        /* The exact size only when verifying: dcs's comes for free. */
        bytes += bench_verify ? strlen(p) : (unsigned char)p[0];
        cJSON_free(p);
    }
    *msgs = c->es->n;
    *sig = bytes;
    return 0;
}

static int pass_enc_cjson_pre(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct enc_ctx *c = arg;
    uint64_t bytes = 0;
    size_t i;
    for (i = 0; i < c->es->n; i++) {
        if (!cJSON_PrintPreallocated(c->ct[i], c->buf, (int)c->cap, 0))
            return bench_fail("cJSON_PrintPreallocated of message %zu failed", i);
        bytes += bench_verify ? strlen(c->buf) : (unsigned char)c->buf[0];
    }
    *msgs = c->es->n;
    *sig = bytes;
    return 0;
}

void bench_measure_encoders(const struct bench_stream *s)
{
    struct env_set es;
    struct enc_ctx c, cv;
    struct bench_figure f;
    size_t i, same = 0;

    collect(s, &es);
    memset(&c, 0, sizeof c);
    c.es = &es;
    dcs_buf_init(&c.out, NULL);
    c.cap = 2 * es.largest + 4096;
    c.buf = bench_xmalloc(c.cap);
    c.jt = bench_xmalloc(es.n * sizeof *c.jt);
    c.ct = bench_xmalloc(es.n * sizeof *c.ct);

    /* Untimed: build the baselines' trees, and check that dcs writes back
     * exactly the bytes it decoded. */
    for (i = 0; i < es.n; i++) {
        json_error_t err;
        c.jt[i] = json_loadb(es.raw[i].ptr, es.raw[i].len, 0, &err);
        c.ct[i] = cJSON_ParseWithLength(es.raw[i].ptr, es.raw[i].len);
        if (!c.jt[i] || !c.ct[i])
            bench_die("%s: message %zu does not load into jansson or cJSON", s->name, i);
        c.out.len = 0;
        if (dcs_encode(&c.out, &es.env[i], 0))
            bench_die("%s: dcs_encode failed on message %zu", s->name, i);
        same += c.out.len == es.raw[i].len && !memcmp(c.out.data, es.raw[i].ptr, c.out.len);
    }
    bench_note("encoders: %zu messages (%zu bytes) of %s; dcs re-encoded %zu of them byte for "
               "byte",
               es.n, es.raw_bytes, s->name, same);

    memset(&f, 0, sizeof f);
    f.mode = "encode";
    f.messages = es.n;
    f.sig = BENCH_NO_SIG;
    f.ctx = &c;
    f.parser = "dcs";
    f.fn = pass_enc_dcs;
    f.count_allocs = 0;
    bench_measure(s->name, &f);
    cv = c;
    cv.flags = DCS_ENCODE_VALIDATE;
    dcs_buf_init(&cv.out, NULL);
    f.mode = "encode+validate";
    f.ctx = &cv;
    bench_measure(s->name, &f);
    f.ctx = &c;
    f.mode = "encode";
    f.parser = "cjson";
    f.fn = pass_enc_cjson;
    bench_measure(s->name, &f);
    f.parser = "cjson-prealloc";
    f.fn = pass_enc_cjson_pre;
    bench_measure(s->name, &f);
    f.parser = "jansson";
    f.fn = pass_enc_jansson;
    bench_measure(s->name, &f);
    bench_run();

    for (i = 0; i < es.n; i++) {
        json_decref(c.jt[i]);
        cJSON_Delete(c.ct[i]);
    }
    free(c.jt);
    free(c.ct);
    free(c.buf);
    dcs_buf_free(&c.out);
    dcs_buf_free(&cv.out);
    free_set(&es);
}

/* ------------------------------------------------------------------------ */
/* Typed views                                                               */

#ifdef DCS_BENCH_HAVE_TYPED

struct typed_ctx {
    size_t n;
    const dcs_typed_view **view;
    dcs_slice *payload;
    ProtobufCMessage **msg;
    dcs_buf out;
};

static int pass_typed_decode(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct typed_ctx *c = arg;
    uint64_t k = 0;
    size_t i;
    for (i = 0; i < c->n; i++) {
        ProtobufCMessage *m = NULL;
        dcs_error e;
        int rc = dcs_typed_decode(c->view[i]->descriptor, c->view[i]->shape, c->payload[i].ptr,
                                  c->payload[i].len, &bench_counting_allocator, &m, &e);
        if (rc)
            return bench_fail("payload %zu: %s: %s", i, dcs_err_name(rc), e.message);
        k += m->descriptor->n_fields;
        dcs_typed_free(m, &bench_counting_allocator);
    }
    *msgs = c->n;
    *sig = k;
    return 0;
}

static int pass_typed_encode(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct typed_ctx *c = arg;
    uint64_t bytes = 0;
    size_t i;
    int rc;
    for (i = 0; i < c->n; i++) {
        c->out.len = 0;
        if ((rc = dcs_typed_encode(&c->out, c->msg[i])))
            return bench_fail("payload %zu: %s", i, dcs_err_name(rc));
        bytes += c->out.len;
    }
    *msgs = c->n;
    *sig = bytes;
    return 0;
}

void bench_measure_typed(const struct bench_stream *s)
{
    struct env_set es;
    struct typed_ctx c;
    struct bench_figure f;
    size_t i, bytes = 0, generic = 0, failed = 0;
    char first[256] = "";

    collect(s, &es);
    memset(&c, 0, sizeof c);
    c.view = bench_xmalloc(es.n * sizeof *c.view);
    c.payload = bench_xmalloc(es.n * sizeof *c.payload);
    c.msg = bench_xmalloc(es.n * sizeof *c.msg);
    dcs_buf_init(&c.out, NULL);
    for (i = 0; i < es.n; i++) {
        const dcs_typed_view *v = dcs_typed_lookup(es.env[i].type, es.env[i].key);
        ProtobufCMessage *m = NULL;
        dcs_error e;
        int rc;
        if (!v || !es.env[i].payload.ptr) {
            generic++;
            continue;
        }
        rc = dcs_typed_decode(v->descriptor, v->shape, es.env[i].payload.ptr,
                              es.env[i].payload.len, &bench_counting_allocator, &m, &e);
        if (rc) {
            if (!failed++)
                snprintf(first, sizeof first, "%.*s/%.*s: %s: %s", (int)es.env[i].type.len,
                         es.env[i].type.ptr, (int)es.env[i].key.len, es.env[i].key.ptr,
                         dcs_err_name(rc), e.message);
            continue;
        }
        c.view[c.n] = v;
        c.payload[c.n] = es.env[i].payload;
        c.msg[c.n] = m;
        bytes += es.env[i].payload.len;
        c.n++;
    }
    bench_note("typed: %zu payloads (%zu bytes) of %s; %zu generic; %zu refused%s%s", c.n, bytes,
               s->name, generic, failed, failed ? ", first: " : "", first);
    if (c.n) {
        memset(&f, 0, sizeof f);
        f.parser = "dcs-typed";
        f.mode = "decode";
        f.fn = pass_typed_decode;
        f.ctx = &c;
        f.bytes = bytes;
        f.messages = c.n;
        f.sig = BENCH_NO_SIG;
        f.count_allocs = 1;
        bench_measure(s->name, &f);
        f.mode = "encode";
        f.fn = pass_typed_encode;
        f.bytes = 0;
        f.count_allocs = 0;
        bench_measure(s->name, &f);
        bench_run();
    }
    for (i = 0; i < c.n; i++)
        dcs_typed_free(c.msg[i], &bench_counting_allocator);
    free(c.view);
    free(c.payload);
    free(c.msg);
    dcs_buf_free(&c.out);
    free_set(&es);
}

#else

void bench_measure_typed(const struct bench_stream *s)
{
    (void)s;
    bench_note("typed: skipped: include/dcs/typed.h did not exist when bench/ was configured");
}

#endif
