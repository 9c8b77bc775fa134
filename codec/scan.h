/* scan.h - internal: skip the plain bytes of a JSON string body in bulk.
 *
 * A byte is plain when it is printable ASCII other than '"' and '\\'
 * (0x20..0x7f except 0x22 and 0x5c). dcs__scan_plain returns the first
 * position in [p, pe) that holds a byte that is not plain, or pe. The decoder
 * and the encoder use it to jump over string bodies without a per-byte state
 * machine step. SSE2 where the compiler targets it (every x86-64), a
 * word-at-a-time scan otherwise. Never reads outside [p, pe). */
#ifndef DCS_SCAN_H
#define DCS_SCAN_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int dcs__is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

__attribute__((always_inline)) static inline const unsigned char *
dcs__scan_plain(const unsigned char *p, const unsigned char *pe)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (pe - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* Signed compare: bytes >= 0x80 are negative, so one compare catches
         * both control bytes (< 0x20) and non-ASCII bytes. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#else
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (pe - p >= 8) {
        uint64_t w, q, b, hit;
        memcpy(&w, p, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        /* Standard "has zero byte" and "has byte less than n" tricks; a
         * non-ASCII byte sets its own high bit. Exact for the first hit. */
        hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w;
        hit &= highs;
        if (hit)
            break; /* finish this word byte by byte */
        p += 8;
    }
#endif
    while (p < pe && dcs__is_plain(*p))
        p++;
    return p;
}

/* The instruction sets of the decoder's fast lane variants (fast.h), chosen
 * at run time on x86-64 with GCC or clang. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DCS_SCAN_X86 1
#include <immintrin.h>

#define DCS__TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define DCS__TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,bmi,bmi2,popcnt")))

#endif

#endif /* DCS_SCAN_H */
