/* fast.h - internal: the decoder's fast lane for a whole message in one chunk.
 *
 * When the machine stands between messages and the chunk holds a '{', the
 * decoder first tries dcs__fast_message: a hand-written validator for the
 * same grammar as json.rl (RFC 8259 + UTF-8, the envelope's top-level members
 * recorded as spans), with no per-byte state machine step. It only says yes
 * or "don't know": on a complete, valid message within the limits it returns
 * the message's length and has recorded the same spans the machine would
 * have; on anything else (the chunk ends first, any syntax error, nesting
 * beyond max_depth or beyond what it tracks, more members than the span array
 * holds) it returns 0, and the decoder runs the machine from the same '{' as
 * before, which finds the exact error, reason and offset. So every event is
 * the machine's; the fast lane never decides an error.
 *
 * The parser itself is fast_impl.h, compiled once per instruction set: SSE2
 * (or portable C), AVX2 and AVX-512BW on x86-64, picked when a decoder is
 * created (dcs__fast_pick). They differ only in how they classify 64 bytes
 * of string body at a time.
 *
 * Included by decoder.rl, which defines struct dcs__span. */
#ifndef DCS_FAST_H
#define DCS_FAST_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"
#include "utf8.h"

typedef const unsigned char *dcs__cp;

/* ' ', '\t', '\n', '\r' */
#define DCS__WS(c) ((c) <= ' ' && ((0x100002600ull >> (c)) & 1))
#define DCS__DIGIT(c) ((unsigned char)((c) - '0') < 10)

__attribute__((always_inline)) static inline dcs__cp dcs__fast_ws(dcs__cp p, dcs__cp pe)
{
    while (p < pe && DCS__WS(*p))
        p++;
    return p;
}

/* Skip whitespace at p, or return `fail` if the end comes first. Compact
 * JSON has none, so the common case is a compare and a load. */
#define DCS__WS_OR(p, fail)                                                                        \
    do {                                                                                           \
        if (__builtin_expect((p) == pe, 0))                                                        \
            return fail;                                                                           \
        if (__builtin_expect(*(p) <= ' ', 0) && ((p) = dcs__fast_ws((p), pe)) == pe)               \
            return fail;                                                                           \
    } while (0)

static inline int dcs__hexval(unsigned char c)
{
    if (DCS__DIGIT(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Four hex digits at p (p + 4 <= pe checked by the caller), or -1. */
static inline long dcs__hex4(dcs__cp p)
{
    int a = dcs__hexval(p[0]), b = dcs__hexval(p[1]), c = dcs__hexval(p[2]), e = dcs__hexval(p[3]);
    if ((a | b | c | e) < 0)
        return -1;
    return ((long)a << 12) | (b << 8) | (c << 4) | e;
}

/* An escape at p (p[0] == '\\'): one past it, or NULL. */
static dcs__cp dcs__fast_escape(dcs__cp p, dcs__cp pe)
{
    long u;
    if (pe - p < 2)
        return NULL;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 2;
    case 'u':
        break;
    default:
        return NULL;
    }
    if (pe - p < 6 || (u = dcs__hex4(p + 2)) < 0)
        return NULL;
    if (u < 0xd800 || u > 0xdfff)
        return p + 6;
    if (u > 0xdbff) /* a lone low surrogate */
        return NULL;
    if (pe - p < 12 || p[6] != '\\' || p[7] != 'u' || (u = dcs__hex4(p + 8)) < 0xdc00 ||
        u > 0xdfff)
        return NULL;
    return p + 12;
}

/* The first byte in [p, pe) that is not a digit, or pe. */
__attribute__((always_inline)) static inline dcs__cp dcs__fast_digits(dcs__cp p, dcs__cp pe)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t hi = 0xf0f0f0f0f0f0f0f0ull, six = 0x0606060606060606ull;
    while (pe - p >= 8) {
        uint64_t w, x;
        memcpy(&w, p, 8);
        /* A digit byte gives 0x33: its high nibble is 3 before and after
         * adding 6. A carry out of a non-digit byte only spoils bytes after
         * it, and the first non-digit is what counts. */
        x = ((w & hi) | (((w + six) & hi) >> 4)) ^ 0x3333333333333333ull;
        if (x)
            return p + (__builtin_ctzll(x) >> 3);
        p += 8;
    }
#endif
    while (p < pe && DCS__DIGIT(*p))
        p++;
    return p;
}

/* A number from p (a '-' or a digit): one past it, or NULL. The byte after
 * it must exist (the grammar decides what it may be). */
__attribute__((always_inline)) static inline dcs__cp dcs__fast_number(dcs__cp p, dcs__cp pe)
{
    if (*p == '-' && ++p == pe)
        return NULL;
    if (*p == '0') {
        p++;
    } else if (DCS__DIGIT(*p)) {
        p = dcs__fast_digits(p + 1, pe);
    } else {
        return NULL;
    }
    if (p < pe && *p == '.') {
        if (++p == pe || !DCS__DIGIT(*p))
            return NULL;
        p = dcs__fast_digits(p + 1, pe);
    }
    if (p < pe && (*p | 0x20) == 'e') {
        if (++p < pe && (*p == '+' || *p == '-'))
            p++;
        if (p >= pe || !DCS__DIGIT(*p))
            return NULL;
        p = dcs__fast_digits(p + 1, pe);
    }
    return p < pe ? p : NULL;
}

/* true, false or null at p: one past it, or NULL. */
static inline dcs__cp dcs__fast_literal(dcs__cp p, dcs__cp pe)
{
    size_t n = (size_t)(pe - p);
    switch (*p) {
    case 't': return n >= 4 && p[1] == 'r' && p[2] == 'u' && p[3] == 'e' ? p + 4 : NULL;
    case 'f':
        return n >= 5 && p[1] == 'a' && p[2] == 'l' && p[3] == 's' && p[4] == 'e' ? p + 5 : NULL;
    case 'n': return n >= 4 && p[1] == 'u' && p[2] == 'l' && p[3] == 'l' ? p + 4 : NULL;
    }
    return NULL;
}

/* Block classifiers: bit i of the result is set when p[i] is a stop byte for
 * a string body ('"', '\\', below 0x20 or above 0x7f) or p + i >= pe. */
static inline uint64_t dcs__stop_bits_scalar(dcs__cp p, dcs__cp pe)
{
    size_t n = (size_t)(pe - p), i;
    uint64_t m = 0;
    if (n > 64)
        n = 64;
    for (i = 0; i < n; i++)
        m |= (uint64_t)!dcs__is_plain(p[i]) << i;
    return n == 64 ? m : m | (~(uint64_t)0 << n);
}

#if defined(__SSE2__)
__attribute__((always_inline)) static inline unsigned dcs__stop16_sse2(dcs__cp p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                             _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* Each classifier asks for the bytes DCS_PREFETCH_DISTANCE ahead of the
 * block it reads (a prefetch never faults, even past pe). On a 16 MiB mix
 * streamed from memory, 512 bytes ahead bought 4-5% in messages/s fed whole
 * and in 64 KiB reads (medians of 4 alternated runs, bench/README.md);
 * 256 and 1024 bought less. */
#ifndef DCS_PREFETCH_DISTANCE
#define DCS_PREFETCH_DISTANCE 512
#endif
#define DCS__PREFETCH(p) __builtin_prefetch((const void *)((uintptr_t)(p) + DCS_PREFETCH_DISTANCE))

static inline uint64_t dcs__classify_base(dcs__cp p, dcs__cp pe)
{
    DCS__PREFETCH(p);
#if defined(__SSE2__)
    if (__builtin_expect(pe - p >= 64, 1))
        return (uint64_t)dcs__stop16_sse2(p) | (uint64_t)dcs__stop16_sse2(p + 16) << 16 |
               (uint64_t)dcs__stop16_sse2(p + 32) << 32 | (uint64_t)dcs__stop16_sse2(p + 48) << 48;
#endif
    return dcs__stop_bits_scalar(p, pe);
}

#if DCS_SCAN_X86
DCS__TARGET_AVX2 __attribute__((always_inline)) static inline uint32_t
dcs__stop32_avx2(const unsigned char *p)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i m = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')),
                                                _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'))),
                                _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v));
    return (uint32_t)_mm256_movemask_epi8(m);
}

DCS__TARGET_AVX2 __attribute__((always_inline)) static inline uint64_t
dcs__classify_avx2(dcs__cp p, dcs__cp pe)
{
    DCS__PREFETCH(p);
    if (__builtin_expect(pe - p >= 64, 1))
        return (uint64_t)dcs__stop32_avx2(p) | (uint64_t)dcs__stop32_avx2(p + 32) << 32;
    return dcs__stop_bits_scalar(p, pe);
}

DCS__TARGET_AVX512 __attribute__((always_inline)) static inline uint64_t
dcs__classify_avx512(dcs__cp p, dcs__cp pe)
{
    size_t n = (size_t)(pe - p);
    __m512i v;
    DCS__PREFETCH(p);
    /* A masked load reads nothing past pe; the zero bytes it gives there
     * count as stops (below 0x20). */
    if (__builtin_expect(n >= 64, 1))
        v = _mm512_loadu_si512((const void *)p);
    else
        v = _mm512_maskz_loadu_epi8(_bzhi_u64(~(uint64_t)0, (unsigned)n), p);
    return _mm512_cmplt_epi8_mask(v, _mm512_set1_epi8(0x20)) |
           _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('"')) |
           _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\'));
}
#endif

#define DCS__CAT2(a, b) a##b
#define DCS__CAT(a, b) DCS__CAT2(a, b)

#define DCS__FAST_SUFFIX _base
#define DCS__FAST_TARGET
#define DCS__FAST_CLASSIFY dcs__classify_base
#include "fast_impl.h"
#undef DCS__FAST_SUFFIX
#undef DCS__FAST_TARGET
#undef DCS__FAST_CLASSIFY

#if DCS_SCAN_X86
#define DCS__FAST_SUFFIX _avx2
#define DCS__FAST_TARGET DCS__TARGET_AVX2
#define DCS__FAST_CLASSIFY dcs__classify_avx2
#include "fast_impl.h"
#undef DCS__FAST_SUFFIX
#undef DCS__FAST_TARGET
#undef DCS__FAST_CLASSIFY

#define DCS__FAST_SUFFIX _avx512
#define DCS__FAST_TARGET DCS__TARGET_AVX512
#define DCS__FAST_CLASSIFY dcs__classify_avx512
#include "fast_impl.h"
#undef DCS__FAST_SUFFIX
#undef DCS__FAST_TARGET
#undef DCS__FAST_CLASSIFY
#endif

typedef size_t (*dcs__fast_fn)(dcs__cp p, dcs__cp pe, uint64_t base, unsigned max_depth,
                               struct dcs__span *spans, size_t cap, size_t *n_spans);

/* No fast lane: every message goes through the machine. */
static size_t dcs__fast_message_none(dcs__cp p, dcs__cp pe, uint64_t base, unsigned max_depth,
                                     struct dcs__span *spans, size_t cap, size_t *n_spans)
{
    (void)p, (void)pe, (void)base, (void)max_depth, (void)spans, (void)cap, (void)n_spans;
    return 0;
}

/* The widest variant this CPU runs. DCS_CODEC_ISA in the environment asks
 * for a narrower one: base (SSE2 or portable), avx2, avx512 (the widest), or
 * none (the machine alone). meson test runs the codec's tests and the fuzz
 * regressions under each; the benchmark compares them. */
static dcs__fast_fn dcs__fast_pick(void)
{
    const char *want = getenv("DCS_CODEC_ISA");
    int cap = 2;
    if (want && strcmp(want, "none") == 0)
        return dcs__fast_message_none;
#if DCS_SCAN_X86
    if (want)
        cap = strcmp(want, "base") == 0 ? 0 : strcmp(want, "avx2") == 0 ? 1 : 2;
    __builtin_cpu_init();
    if (cap >= 2 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("bmi2"))
        return dcs__fast_message_avx512;
    if (cap >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))
        return dcs__fast_message_avx2;
#else
    (void)cap;
#endif
    return dcs__fast_message_base;
}

#endif /* DCS_FAST_H */
