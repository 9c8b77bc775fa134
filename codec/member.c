/* member.c - look up a member of a JSON object held as text.
 *
 * The session layer needs a few members of a payload (requestId, taskId, the
 * progress timestamp, a challenge's nonce) without building a tree. The walk
 * is bounded by the text's length and never reads outside it; it checks
 * structure only as far as it needs to find where values end, so it is meant
 * for text the decoder has already validated, but is safe on any bytes. */
#include <string.h>

#include "dcs/codec.h"

/* Skip whitespace. */
static const char *dcs__ws(const char *p, const char *pe)
{
    while (p < pe && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': return the byte after the closing quote, or NULL. */
static const char *dcs__skip_string(const char *p, const char *pe)
{
    for (p++; p < pe; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skip one value; NULL if the text ends first or is not a value. */
static const char *dcs__skip_value(const char *p, const char *pe)
{
    size_t depth = 0;
    if (p >= pe)
        return NULL;
    do {
        if (p >= pe)
            return NULL;
        switch (*p) {
        case '"':
            p = dcs__skip_string(p, pe);
            if (!p)
                return NULL;
            break;
        case '{':
        case '[':
            depth++;
            p++;
            break;
        case '}':
        case ']':
            if (depth == 0)
                return NULL;
            depth--;
            p++;
            break;
        default:
            if (depth == 0) {
                /* a scalar: up to a delimiter */
                const char *s = p;
                while (p < pe && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
                       *p != '\n' && *p != '\r')
                    p++;
                return p > s ? p : NULL;
            }
            p++;
            break;
        }
    } while (depth > 0);
    return p;
}

static int dcs__hex4(const char *p, unsigned *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Does the raw string body p..pe, escapes decoded, equal name[0..nlen)?
 * Member names are compared as decoded text (spec 5.6): "\u0069d" is "id". */
static int dcs__name_eq(const char *p, const char *pe, const char *name, size_t nlen)
{
    size_t i = 0;
    while (p < pe) {
        char u[4];
        size_t n = 1;
        if (*p != '\\') {
            u[0] = *p++;
        } else {
            unsigned cp, lo;
            if (pe - p < 2)
                return 0;
            switch (p[1]) {
            case '"': case '\\': case '/': u[0] = p[1]; break;
            case 'b': u[0] = '\b'; break;
            case 'f': u[0] = '\f'; break;
            case 'n': u[0] = '\n'; break;
            case 'r': u[0] = '\r'; break;
            case 't': u[0] = '\t'; break;
            case 'u':
                if (pe - p < 6 || dcs__hex4(p + 2, &cp) != 0)
                    return 0;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (pe - p < 12 || p[6] != '\\' || p[7] != 'u' || dcs__hex4(p + 8, &lo) != 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return 0;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return 0;
                if (cp < 0x80) {
                    u[0] = (char)cp;
                } else if (cp < 0x800) {
                    u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
                } else if (cp < 0x10000) {
                    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                    u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
                } else {
                    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                    u[2] = (char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
                }
                p += 4;
                break;
            default:
                return 0;
            }
            p += 2;
        }
        if (i + n > nlen || memcmp(name + i, u, n) != 0)
            return 0;
        i += n;
    }
    return i == nlen;
}

int dcs_json_member(const char *obj, size_t len, const char *name, dcs_slice *value)
{
    const char *p = obj, *pe = obj + len;
    size_t nlen = strlen(name);
    p = dcs__ws(p, pe);
    if (p >= pe || *p != '{')
        return DCS_EBAD_JSON;
    p = dcs__ws(p + 1, pe);
    if (p < pe && *p == '}')
        return 0;
    while (p < pe) {
        const char *ks, *ke, *vs, *ve;
        if (*p != '"')
            return DCS_EBAD_JSON;
        ks = p + 1;
        p = dcs__skip_string(p, pe);
        if (!p)
            return DCS_EBAD_JSON;
        ke = p - 1;
        p = dcs__ws(p, pe);
        if (p >= pe || *p != ':')
            return DCS_EBAD_JSON;
        vs = dcs__ws(p + 1, pe);
        ve = dcs__skip_value(vs, pe);
        if (!ve)
            return DCS_EBAD_JSON;
        /* Names are compared decoded (spec 5.6). A name without escapes is
         * its own decoding (the common case); one with escapes is compared
         * only decoded: raw "\\n" is a line feed, not the name backslash-n. */
        if (memchr(ks, '\\', (size_t)(ke - ks)) ? dcs__name_eq(ks, ke, name, nlen)
                                              : (size_t)(ke - ks) == nlen &&
                                                    memcmp(ks, name, nlen) == 0) {
            value->ptr = vs;
            value->len = (size_t)(ve - vs);
            return 1;
        }
        p = dcs__ws(ve, pe);
        if (p < pe && *p == ',') {
            p = dcs__ws(p + 1, pe);
            continue;
        }
        if (p < pe && *p == '}')
            return 0;
        return DCS_EBAD_JSON;
    }
    return DCS_EBAD_JSON;
}

int dcs_json_member_string(const char *obj, size_t len, const char *name, dcs_buf *out)
{
    dcs_slice v;
    int rc = dcs_json_member(obj, len, name, &v);
    if (rc <= 0)
        return rc;
    if (v.len < 2 || v.ptr[0] != '"' || v.ptr[v.len - 1] != '"')
        return DCS_ETYPE;
    rc = dcs_unescape(out, v.ptr + 1, v.len - 2);
    return rc ? rc : 1;
}
