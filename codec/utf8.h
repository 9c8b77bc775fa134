/* utf8.h - internal: validate one UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
#ifndef DCS_UTF8_H
#define DCS_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence starting at p (at most pe - p bytes
 * available), or 0 if the bytes there are not one. p < pe. */
static inline size_t dcs__utf8_len(const unsigned char *p, const unsigned char *pe)
{
    unsigned char c = p[0];
    size_t avail = (size_t)(pe - p);
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return (avail >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c < 0xf0) {
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

#endif
