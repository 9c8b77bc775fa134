/* decode.c - the decoding figures of dcs-bench-codec: dcs (whole, 64 KiB
 * reads, 1-byte chunks), simdjson parse_many (one and two threads), cJSON,
 * jansson and memchr over one stream. See codec.c for the method. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#include "bench.h"
#include "dcs/codec.h"
#include "mix.h"
#include "simdjson_many.h"

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ------------------------------------------------------------------------ */
/* Decoding passes                                                           */

uint64_t bench_sig4(const dcs_message *m)
{
    return bench_sig(m->origin.ptr, m->origin.len) +
           bench_sig(m->destination.ptr, m->destination.len) + bench_sig(m->type.ptr, m->type.len) +
           bench_sig(m->key.ptr, m->key.len);
}

struct dcs_ctx {
    dcs_decoder *d;
    const char *buf;
    size_t len;
    size_t chunk; /* 0: whole */
    char *rbuf;   /* the read buffer chunks are copied into, or NULL */
};

static int pass_dcs(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct dcs_ctx *c = arg;
    uint64_t n = 0, sg = 0;
    size_t off = 0, step = c->chunk ? c->chunk : c->len;
    dcs_message m;
    dcs_error e;
    int ev;

    while (off < c->len) {
        size_t k = c->len - off < step ? c->len - off : step;
        const char *p = c->buf + off;
        if (c->rbuf) {
            memcpy(c->rbuf, p, k);
            p = c->rbuf;
        }
        dcs_decoder_feed(c->d, p, k);
        while ((ev = dcs_decoder_next(c->d, &m, &e)) != DCS_AGAIN) {
            if (ev != DCS_MESSAGE)
                return bench_fail("%s at byte %llu: %s", dcs_err_name(e.code),
                                  (unsigned long long)e.offset, e.message);
            n++;
            sg += bench_sig4(&m);
        }
        off += k;
    }
    while (dcs_decoder_finish(c->d, &e) == DCS_ERROR)
        return bench_fail("%s", e.message);
    *msgs = n;
    *sig = sg;
    return 0;
}

static const char *const envelope_names[4] = {"origin", "destination", "type", "key"};

static int pass_jansson(void *arg, uint64_t *msgs, uint64_t *sig)
{
    const struct bench_stream *s = arg;
    uint64_t n = 0, sg = 0;
    size_t off = 0;
    int i;

    for (;;) {
        json_error_t err;
        json_t *root;
        while (off < s->len && is_ws(s->buf[off]))
            off++;
        if (off >= s->len)
            break;
        root = json_loadb(s->buf + off, s->len - off, JSON_DISABLE_EOF_CHECK, &err);
        if (!root)
            return bench_fail("%s at byte %zu", err.text, off + (size_t)err.position);
        if (err.position <= 0)
            return bench_fail("no progress at byte %zu", off);
        off += (size_t)err.position;
        for (i = 0; i < 4; i++) {
            json_t *v = json_object_get(root, envelope_names[i]);
            if (!json_is_string(v))
                return bench_fail("member %s is not a string", envelope_names[i]);
            sg += bench_sig(json_string_value(v), json_string_length(v));
        }
        json_decref(root);
        n++;
    }
    *msgs = n;
    *sig = sg;
    return 0;
}

static int pass_cjson(void *arg, uint64_t *msgs, uint64_t *sig)
{
    const struct bench_stream *s = arg;
    uint64_t n = 0, sg = 0;
    size_t off = 0;
    int i;

    for (;;) {
        const char *end = NULL;
        cJSON *root;
        while (off < s->len && is_ws(s->buf[off]))
            off++;
        if (off >= s->len)
            break;
        root = cJSON_ParseWithLengthOpts(s->buf + off, s->len - off, &end, 0);
        if (!root)
            return bench_fail("parse error near byte %zu", (size_t)(cJSON_GetErrorPtr() - s->buf));
        if (!end || end <= s->buf + off)
            return bench_fail("no progress at byte %zu", off);
        off = (size_t)(end - s->buf);
        for (i = 0; i < 4; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, envelope_names[i]);
            if (!cJSON_IsString(v))
                return bench_fail("member %s is not a string", envelope_names[i]);
            sg += bench_sig(v->valuestring, strlen(v->valuestring));
        }
        cJSON_Delete(root);
        n++;
    }
    *msgs = n;
    *sig = sg;
    return 0;
}

struct simdjson_ctx {
    bench_simdjson *sj;
    const struct bench_stream *s;
    size_t batch;
    char *copy; /* "whole+read": the stream is read into this padded buffer first */
};

static int pass_simdjson(void *arg, uint64_t *msgs, uint64_t *sig)
{
    struct simdjson_ctx *c = arg;
    const char *buf = c->s->buf;
    if (c->copy) {
        /* The same copies as dcs's 64KiB+read: 64 KiB at a time, as read(2)
         * would fill a buffer that holds the whole stream. */
        size_t off, k;
        for (off = 0; off < c->s->len; off += k) {
            k = c->s->len - off < BENCH_READ_SIZE ? c->s->len - off : BENCH_READ_SIZE;
            memcpy(c->copy + off, c->s->buf + off, k);
        }
        buf = c->copy;
    }
    return bench_simdjson_many(c->sj, buf, c->s->len, c->batch, msgs, sig, bench_errbuf,
                               sizeof bench_errbuf);
}

static int pass_memchr(void *arg, uint64_t *msgs, uint64_t *sig)
{
    const struct bench_stream *s = arg;
    /* No NUL byte occurs in valid JSON text outside strings, and inside
     * strings it must be escaped: the scan always runs to the end. */
    if (memchr(s->buf, '\0', s->len))
        return bench_fail("a NUL byte in the stream");
    *msgs = s->messages;
    *sig = s->sig;
    return 0;
}

void bench_measure_decoders(const struct bench_stream *s)
{
    dcs_decoder_config cfg;
    struct dcs_ctx whole, reads, reads_copy, bytes1, prefix_whole;
    struct simdjson_ctx sj1, sj2, sj1_copy;
    struct bench_figure f;
    size_t batch = bench_simdjson_default_batch();

    dcs_decoder_config_init(&cfg);
    cfg.allocator = &bench_counting_allocator;
    memset(&whole, 0, sizeof whole);
    whole.d = dcs_decoder_new(&cfg, NULL);
    whole.buf = s->buf;
    whole.len = s->len;
    reads = whole;
    reads.d = dcs_decoder_new(&cfg, NULL);
    reads.chunk = BENCH_READ_SIZE;
    reads_copy = reads;
    reads_copy.d = dcs_decoder_new(&cfg, NULL);
    reads_copy.rbuf = bench_xmalloc(reads.chunk);
    bytes1 = whole;
    bytes1.d = dcs_decoder_new(&cfg, NULL);
    bytes1.len = s->prefix_len;
    bytes1.chunk = 1;
    /* The 1-byte figure's baseline: the same bytes fed whole (both in cache). */
    prefix_whole = whole;
    prefix_whole.d = dcs_decoder_new(&cfg, NULL);
    prefix_whole.len = s->prefix_len;
    if (!whole.d || !reads.d || !reads_copy.d || !bytes1.d || !prefix_whole.d)
        bench_die("out of memory");

    memset(&f, 0, sizeof f);
    f.parser = "dcs";
    f.count_allocs = 1;
    f.check_sig = 1;
    f.fn = pass_dcs;
    f.bytes = s->len;
    f.messages = s->messages;
    f.sig = s->sig;
    f.mode = "whole";
    f.ctx = &whole;
    bench_measure(s->name, &f);
    f.mode = "64KiB";
    f.ctx = &reads;
    bench_measure(s->name, &f);
    f.mode = "64KiB+read";
    f.ctx = &reads_copy;
    bench_measure(s->name, &f);
    f.mode = "whole-prefix";
    f.ctx = &prefix_whole;
    f.bytes = s->prefix_len;
    f.messages = s->prefix_msgs;
    f.sig = s->prefix_sig;
    bench_measure(s->name, &f);
    f.mode = "1-byte";
    f.ctx = &bytes1;
    bench_measure(s->name, &f);

    f.mode = "whole";
    f.bytes = s->len;
    f.messages = s->messages;
    f.sig = s->sig;
    f.parser = "simdjson";
    f.count_allocs = 1;
    /* parse_many needs a batch at least as large as the largest document. */
    if (batch < 2 * s->largest)
        batch = 2 * s->largest;
    memset(&sj1, 0, sizeof sj1);
    sj1.sj = bench_simdjson_new(0);
    sj1.s = s;
    sj1.batch = batch;
    sj2 = sj1;
    sj2.sj = bench_simdjson_new(1);
    sj1_copy = sj1;
    sj1_copy.sj = bench_simdjson_new(0);
    sj1_copy.copy = bench_padded_alloc(s->len);
    if (!sj1.sj || !sj2.sj || !sj1_copy.sj)
        bench_die("out of memory");
    f.fn = pass_simdjson;
    f.ctx = &sj1;
    bench_measure(s->name, &f);
    f.mode = "whole+read";
    f.ctx = &sj1_copy;
    bench_measure(s->name, &f);
    f.mode = "whole";
    f.parser = "simdjson-2t";
    f.ctx = &sj2;
    bench_measure(s->name, &f);

    f.parser = "cjson";
    f.count_allocs = 0; /* counting hooks would cost cJSON its realloc path */
    f.fn = pass_cjson;
    f.ctx = (void *)s; /* the passes only read it */
    bench_measure(s->name, &f);

    f.parser = "jansson";
    f.count_allocs = 1;
    f.fn = pass_jansson;
    bench_measure(s->name, &f);

    f.parser = "memchr";
    f.count_allocs = 0;
    f.fn = pass_memchr;
    bench_measure(s->name, &f);
    bench_run();

    bench_simdjson_free(sj1.sj);
    bench_simdjson_free(sj2.sj);
    bench_simdjson_free(sj1_copy.sj);
    free(sj1_copy.copy);
    dcs_decoder_free(whole.d);
    dcs_decoder_free(reads.d);
    dcs_decoder_free(reads_copy.d);
    dcs_decoder_free(bytes1.d);
    dcs_decoder_free(prefix_whole.d);
    free(reads_copy.rbuf);
}
