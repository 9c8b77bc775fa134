/* encoder.c - envelopes to compact JSON, byte-compatible with JSON.stringify.
 *
 * Strings are escaped as ECMAScript's JSON.stringify escapes them (spec 6.5):
 * '"' and '\\' with a backslash, \b \f \n \r \t in their short forms, every
 * other byte below 0x20 as \u00xx in lowercase hex, everything else (DEL,
 * U+2028, U+2029, all non-ASCII) literally. Doubles (spec 6.6) use ECMAScript's
 * Number::toString: the shortest digits that round-trip, in fixed notation
 * for exponents -6 < n <= 21 and exponent notation otherwise. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/codec.h"
#include "scan.h"
#include "utf8.h"

#define APPEND_LIT(b, s) dcs_buf_append((b), (s), sizeof(s) - 1)

int dcs_encode_string(dcs_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *pe = p + len;
    size_t start = out->len;
    int rc;

    /* Worst case each byte becomes \u00xx: reserve once for the common case. */
    rc = dcs_buf_reserve(out, len + 2);
    if (rc)
        return rc;
    out->data[out->len++] = '"';
    while (p < pe) {
        const unsigned char *q = dcs__scan_plain(p, pe);
        char esc[6];
        size_t n = 0;
        if (q > p) {
            rc = dcs_buf_append(out, p, (size_t)(q - p));
            if (rc)
                goto fail;
            p = q;
            if (p == pe)
                break;
        }
        switch (*p) {
        case '"': esc[0] = '\\'; esc[1] = '"'; n = 2; break;
        case '\\': esc[0] = '\\'; esc[1] = '\\'; n = 2; break;
        case '\b': esc[0] = '\\'; esc[1] = 'b'; n = 2; break;
        case '\f': esc[0] = '\\'; esc[1] = 'f'; n = 2; break;
        case '\n': esc[0] = '\\'; esc[1] = 'n'; n = 2; break;
        case '\r': esc[0] = '\\'; esc[1] = 'r'; n = 2; break;
        case '\t': esc[0] = '\\'; esc[1] = 't'; n = 2; break;
        default:
            if (*p < 0x20) {
                esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
                esc[4] = hex[*p >> 4]; esc[5] = hex[*p & 15];
                n = 6;
            } else {
                size_t l = dcs__utf8_len(p, pe);
                if (l == 0) {
                    rc = DCS_EUTF8;
                    goto fail;
                }
                rc = dcs_buf_append(out, p, l);
                if (rc)
                    goto fail;
                p += l;
                continue;
            }
        }
        rc = dcs_buf_append(out, esc, n);
        if (rc)
            goto fail;
        p++;
    }
    rc = dcs_buf_append(out, "\"", 1);
    if (rc)
        goto fail;
    return 0;
fail:
    out->len = start;
    return rc;
}

int dcs_format_double(char buf[32], double d)
{
    char tmp[40], digits[20];
    int prec, k = 0, n, e, len = 0, i;
    char *ep;

    if (!isfinite(d))
        return DCS_ENOT_FINITE;
    if (d == 0) { /* +0 and -0 both print as "0" */
        buf[0] = '0';
        buf[1] = '\0';
        return 1;
    }
    if (d < 0) {
        buf[len++] = '-';
        d = -d;
    }
    /* The shortest precision whose correctly rounded decimal reads back as d;
     * it is also the closest such decimal, as ECMAScript requires. */
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is "D.DDDDe[+-]XX" or "De[+-]XX" */
    for (ep = tmp; *ep && *ep != 'e'; ep++)
        if (*ep >= '0' && *ep <= '9')
            digits[k++] = *ep;
    e = atoi(ep + 1);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    n = e + 1; /* value = 0.DIGITS x 10^n */
    if (k <= n && n <= 21) {
        memcpy(buf + len, digits, (size_t)k);
        len += k;
        for (i = 0; i < n - k; i++)
            buf[len++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(buf + len, digits, (size_t)n);
        len += n;
        buf[len++] = '.';
        memcpy(buf + len, digits + n, (size_t)(k - n));
        len += k - n;
    } else if (-6 < n && n <= 0) {
        buf[len++] = '0';
        buf[len++] = '.';
        for (i = 0; i < -n; i++)
            buf[len++] = '0';
        memcpy(buf + len, digits, (size_t)k);
        len += k;
    } else {
        buf[len++] = digits[0];
        if (k > 1) {
            buf[len++] = '.';
            memcpy(buf + len, digits + 1, (size_t)(k - 1));
            len += k - 1;
        }
        len += snprintf(buf + len, (size_t)(32 - len), "e%c%d", n - 1 >= 0 ? '+' : '-',
                        n - 1 >= 0 ? n - 1 : 1 - n);
    }
    buf[len] = '\0';
    return len;
}

int dcs_encode_number(dcs_buf *out, const dcs_number *num)
{
    char tmp[32];
    int n;
    if (num->raw.len)
        return dcs_buf_append(out, num->raw.ptr, num->raw.len);
    if (num->kind == DCS_NUM_INT) {
        n = snprintf(tmp, sizeof tmp, "%" PRId64, num->i);
        return dcs_buf_append(out, tmp, (size_t)n);
    }
    n = dcs_format_double(tmp, num->d);
    if (n < 0)
        return n;
    return dcs_buf_append(out, tmp, (size_t)n);
}

/* A payload or extra value sits at depth 2 (the envelope is depth 1), so it
 * may nest max_depth - 1 deep for the message to decode under max_depth. */
static int dcs__check_json(dcs_slice v, unsigned max_depth)
{
    int rc = dcs_json_validate(v.ptr, v.len, max_depth - 1, NULL);
    return rc == 0 ? 0 : rc == DCS_ETOO_DEEP ? DCS_ETOO_DEEP : DCS_EBAD_JSON;
}

static int dcs__check_name(dcs_slice name)
{
    return dcs_unescape(NULL, name.ptr, name.len) ? DCS_EBAD_JSON : 0;
}

int dcs_encode(dcs_buf *out, const dcs_envelope *env, unsigned flags)
{
    return dcs_encode_limit(out, env, flags, 0);
}

int dcs_encode_limit(dcs_buf *out, const dcs_envelope *env, unsigned flags, unsigned max_depth)
{
    size_t start = out->len, i;
    int rc;

    if (max_depth == 0)
        max_depth = DCS_DEFAULT_MAX_DEPTH;
    if (max_depth < 2 || max_depth > DCS_MAX_DEPTH_LIMIT)
        return DCS_EINVAL;
    if (flags & DCS_ENCODE_VALIDATE) {
        if (env->payload.ptr && (rc = dcs__check_json(env->payload, max_depth)))
            return rc;
        for (i = 0; i < env->n_extra; i++) {
            if ((rc = dcs__check_name(env->extra[i].name)) ||
                (rc = dcs__check_json(env->extra[i].value, max_depth)))
                return rc;
        }
    }
    if (env->has_timestamp && env->timestamp.kind == DCS_NUM_DOUBLE && !env->timestamp.raw.len &&
        !isfinite(env->timestamp.d))
        return DCS_ENOT_FINITE;

    if ((rc = APPEND_LIT(out, "{\"origin\":")) ||
        (rc = dcs_encode_string(out, env->origin.ptr, env->origin.len)) ||
        (rc = APPEND_LIT(out, ",\"destination\":")) ||
        (rc = dcs_encode_string(out, env->destination.ptr, env->destination.len)) ||
        (rc = APPEND_LIT(out, ",\"type\":")) ||
        (rc = dcs_encode_string(out, env->type.ptr, env->type.len)) ||
        (rc = APPEND_LIT(out, ",\"key\":")) ||
        (rc = dcs_encode_string(out, env->key.ptr, env->key.len)))
        goto fail;
    if (env->payload.ptr) {
        if ((rc = APPEND_LIT(out, ",\"payload\":")) ||
            (rc = dcs_buf_append(out, env->payload.ptr, env->payload.len)))
            goto fail;
    }
    if (env->has_timestamp) {
        if ((rc = APPEND_LIT(out, ",\"timestamp\":")) ||
            (rc = dcs_encode_number(out, &env->timestamp)))
            goto fail;
    }
    for (i = 0; i < env->n_extra; i++) {
        if ((rc = APPEND_LIT(out, ",\"")) ||
            (rc = dcs_buf_append(out, env->extra[i].name.ptr, env->extra[i].name.len)) ||
            (rc = APPEND_LIT(out, "\":")) ||
            (rc = dcs_buf_append(out, env->extra[i].value.ptr, env->extra[i].value.len)))
            goto fail;
    }
    if ((rc = APPEND_LIT(out, "}")))
        goto fail;
    return 0;
fail:
    out->len = start;
    return rc;
}

void dcs_envelope_from_message(dcs_envelope *env, const dcs_message *msg)
{
    env->origin = msg->origin;
    env->destination = msg->destination;
    env->type = msg->type;
    env->key = msg->key;
    env->payload = msg->payload;
    env->has_timestamp = msg->has_timestamp;
    env->timestamp = msg->timestamp;
    env->extra = msg->unknown;
    env->n_extra = msg->n_unknown;
}
