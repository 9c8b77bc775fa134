/* bench.h - bench-internal: what codec.c (the driver) and encode.c (the
 * encoder and typed-view figures) of dcs-bench-codec share. */
#ifndef DCS_BENCH_BENCH_H
#define DCS_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "dcs/codec.h"

#define BENCH_NO_SIG UINT64_MAX

struct bench_options {
    int quick, json, runs;
    double min_time;      /* seconds a sample lasts at least */
    size_t prefix;        /* bytes fed one at a time */
    size_t encode_subset; /* bytes of the first stream the encoders re-encode */
    const char *only;     /* time only this parser's figures, or NULL */
};
extern struct bench_options bench_opt;

/* Set during the first pass of a figure: the pass may do extra work to
 * report exact output sizes (the encoders). */
extern int bench_verify;
/* Why the last pass failed. */
extern char bench_errbuf[512];
/* A dcs allocator over malloc that counts into bench_allocs. */
extern const dcs_allocator bench_counting_allocator;

/* One input stream, in a padded buffer. */
struct bench_stream {
    char name[48];
    char *buf;
    size_t len;
    uint64_t messages, sig; /* as dcs decoded it */
    size_t largest;
    size_t prefix_len; /* the 1-byte prefix: whole messages, at least bench_opt.prefix bytes */
    uint64_t prefix_msgs, prefix_sig;
};

/* One pass over the input of a figure: the number of messages handled and a
 * checksum (decoders: the sum of bench_sig; encoders: the bytes written).
 * Returns 0, or -1 after bench_fail(). */
typedef int (*bench_pass_fn)(void *ctx, uint64_t *msgs, uint64_t *sig);

struct bench_figure {
    const char *parser, *mode;
    bench_pass_fn fn;
    void *ctx;
    uint64_t bytes;    /* per pass, for MB/s; 0: the checksum of the first pass */
    uint64_t messages; /* every pass must handle exactly this many */
    uint64_t sig;      /* the first pass must give this sum, unless BENCH_NO_SIG */
    int check_sig;     /* and every pass, when set */
    int count_allocs;  /* report allocations per message */
};

struct bench_result {
    char stream[48], parser[24], mode[24];
    double mb_s, msg_s, min, max; /* median MB/s and msg/s, min and max msg/s */
    uint64_t bytes, messages;     /* per pass */
    int count_allocs;
    uint64_t allocs, total_msgs; /* over the timed samples */
    double allocs_per_msg;
};

void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *bench_xmalloc(size_t n);
/* len bytes followed by simdjson's zeroed padding, 64-byte aligned. */
char *bench_padded_alloc(size_t len);

/* The size of one read in the "64KiB" modes. */
#define BENCH_READ_SIZE ((size_t)64 * 1024)
uint64_t bench_sig4(const dcs_message *m);

/* Queue a figure (copied; its ctx must live until bench_run()). */
void bench_measure(const char *stream, const struct bench_figure *f);
/* Time every queued figure, interleaved, and record the results. */
void bench_run(void);

/* decode.c: every decoding figure of s. */
void bench_measure_decoders(const struct bench_stream *s);

/* encode.c: the encoders (dcs, jansson, cJSON) on the envelopes of s, and the
 * typed views (decode and encode of the payloads) when they exist. */
void bench_measure_encoders(const struct bench_stream *s);
void bench_measure_typed(const struct bench_stream *s);

#endif /* DCS_BENCH_BENCH_H */
