/* unescape.c - JSON string bodies to UTF-8 (spec 5.2). */
#include <string.h>

#include "dcs/codec.h"
#include "scan.h"
#include "utf8.h"

static int dcs__hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t dcs__put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

int dcs_unescape(dcs_buf *out, const char *raw, size_t len)
{
    const unsigned char *p = (const unsigned char *)raw, *pe = p + len;
    size_t start = out ? out->len : 0;
    int rc = 0;

    /* The decoded text is never longer than the escaped text. */
    if (out && (rc = dcs_buf_reserve(out, len)))
        return rc;
    while (p < pe) {
        const unsigned char *q = dcs__scan_plain(p, pe);
        unsigned char tmp[4];
        size_t n;
        unsigned cp;
        if (q > p) {
            if (out) {
                memcpy(out->data + out->len, p, (size_t)(q - p));
                out->len += (size_t)(q - p);
            }
            p = q;
            continue;
        }
        if (*p == '"') {
            rc = DCS_EUNEXPECTED;
            goto fail;
        }
        if (*p < 0x20) {
            rc = DCS_ECONTROL;
            goto fail;
        }
        if (*p >= 0x80) {
            n = dcs__utf8_len(p, pe);
            if (!n) {
                rc = DCS_EUTF8;
                goto fail;
            }
            if (out) {
                memcpy(out->data + out->len, p, n);
                out->len += n;
            }
            p += n;
            continue;
        }
        /* a backslash */
        if (pe - p < 2) {
            rc = DCS_EESCAPE;
            goto fail;
        }
        switch (p[1]) {
        case '"': tmp[0] = '"'; n = 1; p += 2; break;
        case '\\': tmp[0] = '\\'; n = 1; p += 2; break;
        case '/': tmp[0] = '/'; n = 1; p += 2; break;
        case 'b': tmp[0] = '\b'; n = 1; p += 2; break;
        case 'f': tmp[0] = '\f'; n = 1; p += 2; break;
        case 'n': tmp[0] = '\n'; n = 1; p += 2; break;
        case 'r': tmp[0] = '\r'; n = 1; p += 2; break;
        case 't': tmp[0] = '\t'; n = 1; p += 2; break;
        case 'u':
            if (pe - p < 6 || dcs__hex4(p + 2, &cp)) {
                rc = DCS_EESCAPE;
                goto fail;
            }
            p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                rc = DCS_ESURROGATE;
                goto fail;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (pe - p < 6 || p[0] != '\\' || p[1] != 'u') {
                    rc = DCS_ESURROGATE;
                    goto fail;
                }
                if (dcs__hex4(p + 2, &lo)) {
                    rc = DCS_EESCAPE;
                    goto fail;
                }
                if (lo < 0xdc00 || lo > 0xdfff) {
                    rc = DCS_ESURROGATE;
                    goto fail;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n = dcs__put_utf8(tmp, cp);
            break;
        default:
            rc = DCS_EESCAPE;
            goto fail;
        }
        if (out) {
            /* "\u0000".."\uFFFF" (6 bytes) never yield more than 3, a pair
             * (12 bytes) never more than 4: the reservation holds. */
            memcpy(out->data + out->len, tmp, n);
            out->len += n;
        }
    }
    return 0;
fail:
    if (out)
        out->len = start;
    return rc;
}
