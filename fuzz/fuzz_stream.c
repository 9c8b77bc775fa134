/*
 * fuzz_stream.c - the decoder on a whole byte stream, and the round trip.
 *
 * Input: a header byte and chunk plan (common.h, fz_stream_input), then the
 * stream. The stream is fed in the plan's chunks, each placed against a guard
 * page and poisoned once the decoder has consumed it. For every event:
 * - an error has a known reason and offsets in stream order (spec 11.1);
 * - a message is consistent with itself: its raw text begins with '{' and
 *   ends with '}', fits the size limit, its four strings are the unescaped
 *   values of the envelope members of those names, its payload and unknown
 *   member values are valid JSON, and dcs_json_member() finds each member
 *   (names compared decoded);
 * - the round trip: the message encoded (with DCS_ENCODE_VALIDATE) decodes,
 *   alone, to one message equal to it, which encodes to the same bytes.
 * At the end the decoder's statistics agree with the events seen.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

/* The unescaped value of a string member, compared with a decoded field. */
static void check_string_member(const dcs_member *mb, dcs_slice want, dcs_buf *tmp)
{
    int rc;
    FZ_CHECK(
        mb->value.len >= 2 && mb->value.ptr[0] == '"' && mb->value.ptr[mb->value.len - 1] == '"',
        "envelope string member is not a JSON string: %.*s", (int)mb->value.len, mb->value.ptr);
    tmp->len = 0;
    rc = dcs_unescape(tmp, mb->value.ptr + 1, mb->value.len - 2);
    FZ_CHECK(rc == 0, "dcs_unescape refuses a string the decoder accepted: %s", dcs_err_name(rc));
    FZ_CHECK(tmp->len == want.len && (want.len == 0 || memcmp(tmp->data, want.ptr, want.len) == 0),
             "decoded string differs from the unescaped member value");
}

static void check_message(const dcs_message *m, const dcs_decoder_config *cfg, dcs_buf *tmp)
{
    static const char *const known[6] = {"origin", "destination", "type",
                                         "key",    "payload",     "timestamp"};
    size_t i, n_known = 0, n_unknown = 0;
    int seen[6] = {0};

    FZ_CHECK(m->raw.len >= 2 && m->raw.ptr[0] == '{' && m->raw.ptr[m->raw.len - 1] == '}',
             "raw message does not span braces");
    FZ_CHECK(m->raw.len <= cfg->max_message_size, "message of %zu bytes over the limit %zu",
             m->raw.len, cfg->max_message_size);
    FZ_CHECK(m->n_unknown <= m->n_members, "more unknown members than members");

    for (i = 0; i < m->n_members; i++) {
        const dcs_member *mb = &m->members[i];
        size_t k;
        int rc;
        dcs_slice v;
        tmp->len = 0;
        rc = dcs_unescape(tmp, mb->name.ptr, mb->name.len);
        FZ_CHECK(rc == 0, "member name does not unescape: %s", dcs_err_name(rc));
        for (k = 0; k < 6; k++)
            if (tmp->len == strlen(known[k]) && memcmp(tmp->data, known[k], tmp->len) == 0) break;
        /* dcs_json_member() finds the first member of that name, names
         * compared with their escapes decoded (spec 5.6). */
        if (tmp->len < 256 && !memchr(tmp->data ? tmp->data : "", '\0', tmp->len)) {
            char name[256];
            size_t j;
            dcs_buf t2;
            memcpy(name, tmp->len ? tmp->data : "", tmp->len);
            name[tmp->len] = '\0';
            dcs_buf_init(&t2, NULL);
            for (j = 0; j < i; j++) {
                t2.len = 0;
                if (dcs_unescape(&t2, m->members[j].name.ptr, m->members[j].name.len) == 0 &&
                    t2.len == tmp->len && (t2.len == 0 || memcmp(t2.data, name, t2.len) == 0))
                    break;
            }
            dcs_buf_free(&t2);
            rc = dcs_json_member(m->raw.ptr, m->raw.len, name, &v);
            FZ_CHECK(rc == 1, "dcs_json_member does not find member %s: %d", name, rc);
            FZ_CHECK(v.ptr == m->members[j].value.ptr && v.len == m->members[j].value.len,
                     "dcs_json_member finds another value for %s", name);
        }
        if (k == 6) {
            FZ_CHECK(n_unknown < m->n_unknown, "unknown member not listed as unknown");
            FZ_CHECK(m->unknown[n_unknown].name.ptr == mb->name.ptr &&
                         m->unknown[n_unknown].value.ptr == mb->value.ptr,
                     "unknown members out of order");
            n_unknown++;
            rc = dcs_json_validate(mb->value.ptr, mb->value.len, cfg->max_depth - 1, NULL);
            FZ_CHECK(rc == 0, "unknown member value is not valid JSON: %s", dcs_err_name(rc));
            continue;
        }
        FZ_CHECK(!seen[k], "duplicate envelope member %s accepted", known[k]);
        seen[k] = 1;
        n_known++;
        switch (k) {
        case 0:
            check_string_member(mb, m->origin, tmp);
            break;
        case 1:
            check_string_member(mb, m->destination, tmp);
            break;
        case 2:
            check_string_member(mb, m->type, tmp);
            break;
        case 3:
            check_string_member(mb, m->key, tmp);
            break;
        case 4:
            FZ_CHECK(m->payload.ptr == mb->value.ptr && m->payload.len == mb->value.len,
                     "payload slice is not the payload member's value");
            rc = dcs_json_validate(mb->value.ptr, mb->value.len, cfg->max_depth - 1, NULL);
            FZ_CHECK(rc == 0, "payload is not valid JSON: %s", dcs_err_name(rc));
            break;
        case 5:
            FZ_CHECK(m->has_timestamp, "timestamp member but has_timestamp is 0");
            FZ_CHECK(fz_slice_eq(m->timestamp.raw, mb->value), "timestamp raw text differs");
            FZ_CHECK(m->timestamp.kind == DCS_NUM_INT || m->timestamp.kind == DCS_NUM_DOUBLE,
                     "timestamp kind %d", m->timestamp.kind);
            break;
        }
    }
    FZ_CHECK(seen[0] && seen[1] && seen[2] && seen[3], "a required member is missing");
    FZ_CHECK(n_unknown == m->n_unknown, "unknown member count %zu, listed %zu", n_unknown,
             m->n_unknown);
    FZ_CHECK(seen[4] == (m->payload.ptr != NULL), "payload presence differs");
    FZ_CHECK(seen[5] == m->has_timestamp, "timestamp presence differs");
    (void)n_known;
}

/* Two messages carry the same envelope (what a relay must keep, spec 6.7). */
static void check_equal(const dcs_message *a, const dcs_message *b)
{
    size_t i;
    FZ_CHECK(fz_slice_eq(a->origin, b->origin), "origin changed in the round trip");
    FZ_CHECK(fz_slice_eq(a->destination, b->destination), "destination changed");
    FZ_CHECK(fz_slice_eq(a->type, b->type), "type changed");
    FZ_CHECK(fz_slice_eq(a->key, b->key), "key changed");
    FZ_CHECK((a->payload.ptr == NULL) == (b->payload.ptr == NULL), "payload presence changed");
    if (a->payload.ptr)
        FZ_CHECK(fz_slice_eq(a->payload, b->payload), "payload changed: %.*s -> %.*s",
                 (int)a->payload.len, a->payload.ptr, (int)b->payload.len, b->payload.ptr);
    FZ_CHECK(a->has_timestamp == b->has_timestamp, "timestamp presence changed");
    if (a->has_timestamp) {
        FZ_CHECK(fz_slice_eq(a->timestamp.raw, b->timestamp.raw), "timestamp text changed");
        FZ_CHECK(a->timestamp.kind == b->timestamp.kind, "timestamp kind changed");
        if (a->timestamp.kind == DCS_NUM_INT)
            FZ_CHECK(a->timestamp.i == b->timestamp.i, "timestamp value changed");
    }
    FZ_CHECK(a->n_unknown == b->n_unknown, "unknown member count changed %zu -> %zu", a->n_unknown,
             b->n_unknown);
    for (i = 0; i < a->n_unknown; i++) {
        FZ_CHECK(fz_slice_eq(a->unknown[i].name, b->unknown[i].name), "unknown name changed");
        FZ_CHECK(fz_slice_eq(a->unknown[i].value, b->unknown[i].value), "unknown value changed");
    }
}

static void round_trip(const dcs_message *m, const dcs_decoder_config *cfg, dcs_buf *enc,
                       dcs_buf *enc2)
{
    dcs_envelope env;
    dcs_decoder_config c2 = *cfg;
    dcs_decoder *d2;
    dcs_message m2;
    dcs_error e2;
    const char *placed;
    int rc, ev, n = 0;

    dcs_envelope_from_message(&env, m);
    enc->len = 0;
    rc = dcs_encode(enc, &env, DCS_ENCODE_VALIDATE);
    FZ_CHECK(rc == 0, "a decoded message is refused by the validating encoder: %s",
             dcs_err_name(rc));
    enc2->len = 0;
    rc = dcs_encode(enc2, &env, 0);
    FZ_CHECK(rc == 0 && enc2->len == enc->len && memcmp(enc->data, enc2->data, enc->len) == 0,
             "encoding with and without validation differ");

    if (c2.max_message_size < enc->len) c2.max_message_size = enc->len;
    d2 = dcs_decoder_new(&c2, &rc);
    FZ_CHECK(d2 != NULL, "dcs_decoder_new: %s", dcs_err_name(rc));
    placed = fz_place(1, enc->data, enc->len);
    FZ_CHECK(dcs_decoder_feed(d2, placed, enc->len) == 0, "feed refused");
    while ((ev = dcs_decoder_next(d2, &m2, &e2)) != DCS_AGAIN) {
        FZ_CHECK(ev == DCS_MESSAGE, "the re-encoding does not decode: %s at %llu: %s\n%.*s",
                 dcs_err_name(e2.code), (unsigned long long)e2.offset, e2.message, (int)enc->len,
                 enc->data);
        FZ_CHECK(++n == 1, "the re-encoding decodes to more than one message");
        FZ_CHECK(m2.offset == 0 && m2.raw.len == enc->len, "the re-encoding is not one message");
        check_equal(m, &m2);
        /* The second encoding is a fixed point. */
        dcs_envelope_from_message(&env, &m2);
        enc2->len = 0;
        rc = dcs_encode(enc2, &env, 0);
        FZ_CHECK(rc == 0 && enc2->len == enc->len && memcmp(enc->data, enc2->data, enc->len) == 0,
                 "re-encoding is not a fixed point:\n%.*s\n%.*s", (int)enc->len, enc->data,
                 (int)enc2->len, enc2->data);
    }
    FZ_CHECK(n == 1, "the re-encoding decodes to no message");
    ev = dcs_decoder_finish(d2, &e2);
    FZ_CHECK(ev == DCS_AGAIN, "the re-encoding ends with an error: %s", dcs_err_name(e2.code));
    dcs_decoder_free(d2);
    fz_retire(1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_stream_input si;
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    dcs_buf tmp, enc, enc2;
    uint64_t fed = 0, last = 0, messages = 0, errors = 0;
    size_t pos = 0, chunk_no = 0;
    int ev, rc;

    fz_stream_input_parse(data, size, &si);
    d = dcs_decoder_new(&si.cfg, &rc);
    FZ_CHECK(d != NULL, "dcs_decoder_new: %s", dcs_err_name(rc));
    dcs_buf_init(&tmp, NULL);
    dcs_buf_init(&enc, NULL);
    dcs_buf_init(&enc2, NULL);

    do {
        size_t want = fz_plan_chunk(&si, chunk_no++), n = si.len - pos;
        const char *placed;
        if (want && want < n) n = want;
        placed = fz_place(0, si.stream + pos, n);
        FZ_CHECK(dcs_decoder_feed(d, placed, n) == 0, "feed refused after DCS_AGAIN");
        fed += n;
        pos += n;
        while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
            if (ev == DCS_MESSAGE) {
                uint64_t end = m.offset + m.raw.len - 1;
                messages++;
                FZ_CHECK(end < fed, "message ends at %llu, beyond the %llu bytes fed",
                         (unsigned long long)end, (unsigned long long)fed);
                FZ_CHECK(end >= last, "message ending at %llu reported after an event at %llu",
                         (unsigned long long)end, (unsigned long long)last);
                last = end;
                check_message(&m, &si.cfg, &tmp);
                round_trip(&m, &si.cfg, &enc, &enc2);
            } else {
                FZ_CHECK(ev == DCS_ERROR, "dcs_decoder_next returned %d", ev);
                errors++;
                fz_check_error(&e, fed);
                FZ_CHECK(e.code != DCS_ENOMEM, "nomem with the libc allocator");
                FZ_CHECK(e.offset >= last, "%s at %llu reported after an event at %llu",
                         dcs_err_name(e.code), (unsigned long long)e.offset,
                         (unsigned long long)last);
                last = e.offset;
            }
        }
        fz_retire(0);
    } while (pos < si.len);

    while ((ev = dcs_decoder_finish(d, &e)) != DCS_AGAIN) {
        FZ_CHECK(ev == DCS_ERROR, "dcs_decoder_finish returned %d", ev);
        errors++;
        fz_check_error(&e, fed);
        FZ_CHECK(e.offset >= last, "%s at end reported out of order", dcs_err_name(e.code));
        last = e.offset;
    }
    FZ_CHECK(dcs_decoder_idle(d), "decoder not idle after finish");
    {
        const dcs_decoder_stats *st = dcs_decoder_get_stats(d);
        FZ_CHECK(st->bytes_in == fed, "stats: bytes_in %llu, fed %llu",
                 (unsigned long long)st->bytes_in, (unsigned long long)fed);
        FZ_CHECK(st->messages == messages, "stats: messages %llu, seen %llu",
                 (unsigned long long)st->messages, (unsigned long long)messages);
        FZ_CHECK(st->errors == errors, "stats: errors %llu, seen %llu",
                 (unsigned long long)st->errors, (unsigned long long)errors);
        FZ_CHECK(st->bytes_skipped <= fed, "stats: more bytes skipped than fed");
    }
    dcs_decoder_free(d);
    dcs_buf_free(&tmp);
    dcs_buf_free(&enc);
    dcs_buf_free(&enc2);
    return 0;
}
