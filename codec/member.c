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
        /* Names with escapes never match a plain name: the catalogue's
         * names are ASCII and peers write them literally (spec 6.4). */
        if ((size_t)(ke - ks) == nlen && memcmp(ks, name, nlen) == 0) {
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
