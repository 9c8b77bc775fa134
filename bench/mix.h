/*
 * mix.h - bench-internal: deterministic generators of dcs byte streams, and
 * a check that a stream decodes cleanly.
 *
 * Every envelope is written with the project's encoder (dcs_encode, payload
 * strings with dcs_encode_string), so a generated stream is byte for byte
 * what a dcs peer sends. The same seed and limits always give the same bytes.
 */
#ifndef DCS_BENCH_MIX_H
#define DCS_BENCH_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "dcs/codec.h"

/* The kinds of stream. BENCH_MIX is the realistic mix; the others stress one
 * property each. */
enum bench_kind {
    BENCH_MIX,             /* heartbeats, progress, token refresh, job lists */
    BENCH_TINY_HEARTBEATS, /* only the smallest real message */
    BENCH_LARGE_JOBS,      /* only jobs_available with 50..150 jobs */
    BENCH_DEEP,            /* payloads nested 16..60 levels deep */
    BENCH_LONG_STRINGS,    /* one string of 16..256 KiB per message */
    BENCH_WHITESPACE,      /* the realistic mix, whitespace between messages */
    BENCH_KIND_COUNT
};

/* The classes of message a generator writes, for its statistics. */
enum bench_class {
    BENCH_C_HEARTBEAT,
    BENCH_C_PROGRESS,
    BENCH_C_PROGRESS_AREAS, /* a PROGRESS_UPDATE carrying an areas array */
    BENCH_C_TOKEN_REQUEST,
    BENCH_C_TOKEN_RESPONSE,
    BENCH_C_JOBS,
    BENCH_C_OTHER, /* the stress kinds' messages */
    BENCH_CLASS_COUNT
};

typedef struct bench_gen_stats {
    uint64_t messages;
    uint64_t bytes; /* the whole stream, whitespace included */
    uint64_t count[BENCH_CLASS_COUNT];
    uint64_t class_bytes[BENCH_CLASS_COUNT]; /* message bytes, no whitespace */
    size_t largest;                          /* the largest message */
} bench_gen_stats;

/* The kind called name ("mix", "tiny-heartbeats", ...), or -1. */
int bench_kind_parse(const char *name);
/* The name of a kind, or of a class. */
const char *bench_kind_name(int kind);
const char *bench_class_name(int cls);

/* Append a stream of the given kind to out: messages until out holds at least
 * max_bytes more bytes (when max_bytes is not 0) or max_messages messages
 * have been written (when max_messages is not 0), whichever comes first. st
 * may be NULL. Returns 0 or a DCS_E* code from the encoder (which would be a
 * bug in the generator). */
int bench_generate(dcs_buf *out, int kind, uint64_t seed, uint64_t max_bytes,
                   uint64_t max_messages, bench_gen_stats *st);

/* What decoding a stream with a fresh dcs decoder found. */
typedef struct bench_check {
    uint64_t messages;
    uint64_t errors;
    size_t largest;     /* the largest message */
    uint64_t signature; /* bench_sig() summed over every message's four strings */
    dcs_error first;    /* the first error, if any */
} bench_check;

/* Decode buf[0..len) whole and fill *c. Returns 0 when it decoded with no
 * error, -1 otherwise. */
int bench_check_stream(const char *buf, size_t len, bench_check *c);

/* The cheap per-string signature every parser in the benchmark adds up for
 * origin, destination, type and key (escapes decoded): the same sum proves
 * that all of them extracted the same strings. */
static inline uint64_t bench_sig(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    return (uint64_t)len * 31u + (unsigned char)s[0] * 7u + (unsigned char)s[len - 1];
}

#endif /* DCS_BENCH_MIX_H */
