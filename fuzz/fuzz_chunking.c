/*
 * fuzz_chunking.c - chunk independence (spec 4.2), differentially.
 *
 * Input: a header byte and chunk plan (common.h, fz_stream_input), then the
 * stream (inputs are cut at 4 KiB). The stream is decoded twice:
 *   A. fed whole to a fresh decoder;
 *   B. fed in the plan's chunks to a decoder that was first given the start
 *      of a message and then reset (spec 4.6: the new stream must not see it).
 * Each chunk sits against a guard page and is poisoned once consumed. The two
 * logs (every message's offset and canonical re-encoding, every error's
 * reason, offset, message offset and text) must be identical, and so must
 * the statistics that spec 11.2 (f) defines on the byte stream.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MAX_INPUT 4096u /* fuzz/run and fuzz/smoke: -G 4096 */

typedef struct run {
    dcs_buf log;
    dcs_decoder_stats st;
} run;

static void drain(dcs_decoder *d, run *r, dcs_buf *tmp, uint64_t fed)
{
    dcs_message m;
    dcs_error e;
    int ev;
    while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
        if (ev == DCS_ERROR) fz_check_error(&e, fed);
        fz_log_event(&r->log, tmp, ev, &m, &e);
    }
}

static void finish(dcs_decoder *d, run *r, dcs_buf *tmp, uint64_t fed,
                   const dcs_decoder_stats *before)
{
    const dcs_decoder_stats *st;
    dcs_error e;
    int ev;
    while ((ev = dcs_decoder_finish(d, &e)) != DCS_AGAIN) {
        FZ_CHECK(ev == DCS_ERROR, "dcs_decoder_finish returned %d", ev);
        fz_check_error(&e, fed);
        fz_log_event(&r->log, tmp, ev, NULL, &e);
    }
    st = dcs_decoder_get_stats(d);
    r->st.bytes_in = st->bytes_in - before->bytes_in;
    r->st.messages = st->messages - before->messages;
    r->st.errors = st->errors - before->errors;
    r->st.bytes_skipped = st->bytes_skipped - before->bytes_skipped;
    r->st.resyncs = st->resyncs - before->resyncs;
}

static void check_same(const run *a, const run *b, const fz_stream_input *si)
{
    size_t i = 0, line = 1;
    if (a->log.len != b->log.len || (a->log.len && memcmp(a->log.data, b->log.data, a->log.len))) {
        size_t n = a->log.len < b->log.len ? a->log.len : b->log.len, start;
        while (i < n && a->log.data[i] == b->log.data[i]) {
            if (a->log.data[i] == '\n') line++;
            i++;
        }
        start = i;
        while (start > 0 && a->log.data[start - 1] != '\n')
            start--;
        fz_fail(__FILE__, __LINE__, "logs equal",
                "whole and chunked decoding differ at event %zu (plan of %zu sizes, first %zu):\n"
                " whole:   %.200s\n chunked: %.200s",
                line, si->n_plan, fz_plan_chunk(si, 0), a->log.data + start, b->log.data + start);
    }
    FZ_CHECK(a->st.bytes_in == b->st.bytes_in, "bytes_in differs");
    FZ_CHECK(a->st.messages == b->st.messages, "messages differ");
    FZ_CHECK(a->st.errors == b->st.errors, "errors differ");
    FZ_CHECK(a->st.bytes_skipped == b->st.bytes_skipped,
             "bytes_skipped differs: whole %llu, chunked %llu",
             (unsigned long long)a->st.bytes_skipped, (unsigned long long)b->st.bytes_skipped);
    FZ_CHECK(a->st.resyncs == b->st.resyncs, "resyncs differ: whole %llu, chunked %llu",
             (unsigned long long)a->st.resyncs, (unsigned long long)b->st.resyncs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char partial[] = "{\"origin\":\"left-over\",\"payload\":[1,{\"x\":\"";
    fz_stream_input si;
    dcs_decoder *d;
    dcs_buf tmp;
    dcs_decoder_stats before;
    run a, b;
    size_t pos = 0, chunk_no = 0;
    const char *placed;
    int rc;

    /* Chunk independence is local: 4 KiB is room enough (a message may still
     * span every chunk size of a plan, and exceed the 16 to 4096-byte limits
     * the header byte can pick), and keeps the fuzzer fast where byte-wise
     * plans would cost a feed per byte of a long queue entry. fuzz/run gives
     * afl-fuzz the same bound (-G), so that it does not mutate bytes never read. */
    if (size > MAX_INPUT) size = MAX_INPUT;
    fz_stream_input_parse(data, size, &si);
    dcs_buf_init(&tmp, NULL);
    dcs_buf_init(&a.log, NULL);
    dcs_buf_init(&b.log, NULL);

    /* A: whole. */
    d = dcs_decoder_new(&si.cfg, &rc);
    FZ_CHECK(d != NULL, "dcs_decoder_new: %s", dcs_err_name(rc));
    before = *dcs_decoder_get_stats(d);
    placed = fz_place(0, si.stream, si.len);
    FZ_CHECK(dcs_decoder_feed(d, placed, si.len) == 0, "feed refused");
    drain(d, &a, &tmp, si.len);
    fz_retire(0);
    finish(d, &a, &tmp, si.len, &before);
    dcs_decoder_free(d);

    /* B: a partial message, a reset, then the plan's chunks. */
    d = dcs_decoder_new(&si.cfg, &rc);
    FZ_CHECK(d != NULL, "dcs_decoder_new: %s", dcs_err_name(rc));
    placed = fz_place(0, partial, sizeof partial - 1);
    FZ_CHECK(dcs_decoder_feed(d, placed, sizeof partial - 1) == 0, "feed refused");
    {
        dcs_message m;
        dcs_error e;
        while (dcs_decoder_next(d, &m, &e) != DCS_AGAIN)
            ;
    }
    fz_retire(0);
    dcs_decoder_reset(d);
    FZ_CHECK(dcs_decoder_idle(d), "decoder not idle after reset");
    before = *dcs_decoder_get_stats(d);
    do {
        size_t want = fz_plan_chunk(&si, chunk_no++), n = si.len - pos;
        if (want && want < n) n = want;
        placed = fz_place(0, si.stream + pos, n);
        FZ_CHECK(dcs_decoder_feed(d, placed, n) == 0, "feed refused after DCS_AGAIN");
        pos += n;
        drain(d, &b, &tmp, pos);
        fz_retire(0);
    } while (pos < si.len);
    finish(d, &b, &tmp, si.len, &before);
    dcs_decoder_free(d);

    check_same(&a, &b, &si);
    dcs_buf_free(&tmp);
    dcs_buf_free(&a.log);
    dcs_buf_free(&b.log);
    return 0;
}
