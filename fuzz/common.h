/*
 * common.h - what the fuzz harnesses share: the entry point's prototype, the
 * check that aborts (so that AFL++ and libFuzzer record the input), a byte
 * reader for structured inputs, inputs placed against a guard page, a
 * counting allocator, the chunking plan of the stream harnesses, the decoder
 * event log, and a small walker over JSON text that a decoder has validated.
 */
#ifndef DCS_FUZZ_COMMON_H
#define DCS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dcs/codec.h"

/* The libFuzzer entry point, implemented once per harness. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */

/* Print "fuzz: FILE:LINE: check COND failed: <message>" and abort(). */
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                              \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Reading a structured input                                                */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

/* The next byte, or 0 once the input is exhausted. */
unsigned fz_u8(fz_in *in);
/* Two bytes, little-endian (0 when exhausted). */
unsigned fz_u16(fz_in *in);
/* Up to want bytes: *out points at them, the count is returned. */
size_t fz_take(fz_in *in, size_t want, const uint8_t **out);

/* ------------------------------------------------------------------------ */
/* Guarded placement                                                         */

/* Copy len bytes into slot (0..FZ_SLOTS-1) so that they end exactly where an
 * unreadable page begins: a read past the end faults even without ASan. The
 * bytes before them are poisoned under ASan. The copy stays valid until the
 * slot is placed again or retired. */
#define FZ_SLOTS 4
const char *fz_place(int slot, const void *data, size_t len);
/* The bytes of slot are done with: poison them under ASan, else overwrite
 * them, so that a pointer kept into them is caught (or changes results). */
void fz_retire(int slot);

/* ------------------------------------------------------------------------ */
/* Counting allocator                                                        */

typedef struct fz_alloc {
    dcs_allocator a;
    long calls;   /* alloc + realloc calls */
    long fail_at; /* 1-based call that fails; 0: none */
    long failed;
    long live;    /* blocks not yet freed */
    size_t bytes; /* bytes in live blocks */
    size_t peak;  /* most bytes ever live at once */
} fz_alloc;

void fz_alloc_init(fz_alloc *fa, long fail_at);

/* ------------------------------------------------------------------------ */
/* Stream inputs: header byte, chunk plan, limits                            */

/* The first byte of a stream/chunking input:
 *   bits 0-2  number of plan bytes that follow (0: feed the rest whole)
 *   bits 3-4  max_depth: 64, 2, 5, 16
 *   bits 5-7  max_message_size: 1 MiB, 16, 64, 200, 1024, 4096, 65536, 300
 * then the plan bytes: chunk sizes 1..256 (byte + 1), used in a cycle. The
 * rest of the input is the stream. */
typedef struct fz_stream_input {
    dcs_decoder_config cfg;
    uint8_t plan[7];
    size_t n_plan;
    const char *stream;
    size_t len;
} fz_stream_input;

void fz_stream_input_parse(const uint8_t *data, size_t size, fz_stream_input *si);
/* The size of chunk number i of the plan (0: the whole rest). */
size_t fz_plan_chunk(const fz_stream_input *si, size_t i);

/* Append one decoder event to log as a line:
 *   M <offset> <canonical re-encoding>     or
 *   E <reason> <offset> <msg_offset|-> <message>
 * tmp is scratch for the encoding. Aborts if a decoded message cannot be
 * re-encoded. */
void fz_log_event(dcs_buf *log, dcs_buf *tmp, int ev, const dcs_message *m, const dcs_error *e);

/* Checks every error must pass: a known code, offsets in order. */
void fz_check_error(const dcs_error *e, uint64_t fed);

/* ------------------------------------------------------------------------ */
/* JSON text walking (for text a decoder has validated)                      */

/* Skip JSON whitespace. */
const char *fz_ws(const char *p, const char *pe);
/* p at the first byte of a value: the byte after it (NULL if it does not end
 * before pe). Strings and nested containers are skipped whole. */
const char *fz_skip_value(const char *p, const char *pe);

/* An iterator over the members of an object or the elements of an array. */
typedef struct fz_iter {
    const char *p, *pe;
    int object;
} fz_iter;

/* v[0..n) is an object or array (surrounding whitespace allowed): start at
 * its first member. 0, or -1 if it is neither. */
int fz_iter_init(fz_iter *it, const char *v, size_t n);
/* The next member: 1 with *name (raw string body, objects only) and *value
 * (raw value text, no surrounding whitespace); 0 at the end. */
int fz_iter_next(fz_iter *it, dcs_slice *name, dcs_slice *value);

/* s without leading and trailing JSON whitespace. */
dcs_slice fz_trim(dcs_slice s);
int fz_slice_eq(dcs_slice a, dcs_slice b);

#endif
