/* json.c - JSON helpers of the shell: strings that never fail on bad UTF-8
 * (for logs), compacting a message onto one line (for recordings), a small
 * writer of nested objects (for statistics), and iteration over the arrays
 * and objects of files the programs read. */
#include <stdio.h>
#include <string.h>

#include "shell.h"

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t dsh__utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need, i;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4, cp = c & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

int dsh_json_string(dcs_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    if (dcs_buf_reserve(b, len + 2))
        return DCS_ENOMEM;
    if (dcs_buf_append(b, "\"", 1))
        return DCS_ENOMEM;
    while (i < len) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char tmp[8];
        size_t k;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80 && (k = dsh__utf8_len(u + i, len - i)) > 0) {
            i += k;
            continue;
        }
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            } else {
                esc = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
            }
        }
        if (dcs_buf_append(b, s + run, i - run) || dcs_buf_append(b, esc, strlen(esc)))
            return DCS_ENOMEM;
        i++;
        run = i;
    }
    if (dcs_buf_append(b, s + run, len - run) || dcs_buf_append(b, "\"", 1))
        return DCS_ENOMEM;
    return 0;
}

int dsh_json_compact(dcs_buf *b, const char *raw, size_t len)
{
    size_t i = 0, run = 0;
    int in_string = 0;
    if (dcs_buf_reserve(b, len))
        return DCS_ENOMEM;
    for (; i < len; i++) {
        char c = raw[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (dcs_buf_append(b, raw + run, i - run))
                return DCS_ENOMEM;
            run = i + 1;
        }
    }
    return dcs_buf_append(b, raw + run, len - run);
}

char dsh_json_kind(const char *text, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (!(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
            return text[i];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

void dsh_jw_init(dsh_jw *w, dcs_buf *b)
{
    memset(w, 0, sizeof *w);
    w->b = b;
    w->first[0] = 1;
}

/* Write the separator and, inside an object, the key. */
static void dsh__jw_key(dsh_jw *w, const char *key)
{
    if (w->err)
        return;
    if (!w->first[w->depth] && dcs_buf_append(w->b, ",", 1))
        w->err = DCS_ENOMEM;
    w->first[w->depth] = 0;
    if (key && w->depth > 0 && !w->err &&
        (dsh_json_string(w->b, key, strlen(key)) || dcs_buf_append(w->b, ":", 1)))
        w->err = DCS_ENOMEM;
}

static void dsh__jw_put(dsh_jw *w, const char *text, size_t len)
{
    if (!w->err && dcs_buf_append(w->b, text, len))
        w->err = DCS_ENOMEM;
}

static void dsh__jw_open(dsh_jw *w, const char *key, const char *bracket)
{
    dsh__jw_key(w, key);
    dsh__jw_put(w, bracket, 1);
    if (w->depth + 1 >= DSH_JSON_MAX_DEPTH) {
        w->err = DCS_EINVAL;
        return;
    }
    w->depth++;
    w->first[w->depth] = 1;
    w->close[w->depth] = bracket[0] == '{' ? '}' : ']';
}

void dsh_jw_object(dsh_jw *w, const char *key)
{
    dsh__jw_open(w, key, "{");
}

void dsh_jw_array(dsh_jw *w, const char *key)
{
    dsh__jw_open(w, key, "[");
}

void dsh_jw_end(dsh_jw *w)
{
    if (w->depth == 0) {
        w->err = DCS_EINVAL;
        return;
    }
    dsh__jw_put(w, &w->close[w->depth], 1);
    w->depth--;
}

void dsh_jw_uint(dsh_jw *w, const char *key, uint64_t v)
{
    char num[32];
    int k = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    dsh__jw_key(w, key);
    dsh__jw_put(w, num, (size_t)k);
}

void dsh_jw_int(dsh_jw *w, const char *key, int64_t v)
{
    char num[32];
    int k = snprintf(num, sizeof num, "%lld", (long long)v);
    dsh__jw_key(w, key);
    dsh__jw_put(w, num, (size_t)k);
}

void dsh_jw_double(dsh_jw *w, const char *key, double v)
{
    char num[32];
    int k = dcs_format_double(num, v);
    dsh__jw_key(w, key);
    if (k < 0)
        dsh__jw_put(w, "null", 4);
    else
        dsh__jw_put(w, num, (size_t)k);
}

void dsh_jw_bool(dsh_jw *w, const char *key, int v)
{
    dsh__jw_key(w, key);
    dsh__jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void dsh_jw_strn(dsh_jw *w, const char *key, const char *s, size_t len)
{
    dsh__jw_key(w, key);
    if (!w->err && dsh_json_string(w->b, s, len))
        w->err = DCS_ENOMEM;
}

void dsh_jw_str(dsh_jw *w, const char *key, const char *s)
{
    dsh_jw_strn(w, key, s, strlen(s));
}

void dsh_jw_raw(dsh_jw *w, const char *key, const char *raw, size_t len)
{
    dsh__jw_key(w, key);
    if (!w->err && dsh_json_compact(w->b, raw, len))
        w->err = DCS_ENOMEM;
}

int dsh_jw_error(const dsh_jw *w)
{
    return w->err ? w->err : (w->depth ? DCS_EINVAL : 0);
}

/* ------------------------------------------------------------------------ */
/* Iteration over validated JSON                                             */

static const char *dsh__ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the value that starts at p (validated JSON). */
static const char *dsh__skip(const char *p, const char *end)
{
    int depth = 0;
    if (p >= end)
        return p;
    if (*p != '{' && *p != '[' && *p != '"') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    for (; p < end; p++) {
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (depth == 0)
                return p < end ? p + 1 : end;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0)
                return p + 1;
        }
    }
    return end;
}

static int dsh__iter_start(dsh_iter *it, const char *text, size_t len, char open)
{
    const char *end = text + len;
    const char *p = dsh__ws(text, end);
    if (p >= end || *p != open)
        return -1;
    it->p = p + 1;
    it->end = end;
    it->started = 0;
    return 0;
}

int dsh_iter_array(dsh_iter *it, const char *text, size_t len)
{
    return dsh__iter_start(it, text, len, '[');
}

int dsh_iter_object(dsh_iter *it, const char *text, size_t len)
{
    return dsh__iter_start(it, text, len, '{');
}

/* Move past the separator before the next item; 0 at the closing bracket. */
static int dsh__iter_step(dsh_iter *it)
{
    const char *p = dsh__ws(it->p, it->end);
    if (it->started) {
        if (p >= it->end || *p != ',')
            return 0;
        p = dsh__ws(p + 1, it->end);
    } else if (p < it->end && (*p == ']' || *p == '}')) {
        return 0;
    }
    it->started = 1;
    it->p = p;
    return p < it->end;
}

int dsh_iter_next_value(dsh_iter *it, dcs_slice *value)
{
    const char *e;
    if (!dsh__iter_step(it))
        return 0;
    e = dsh__skip(it->p, it->end);
    value->ptr = it->p;
    value->len = (size_t)(e - it->p);
    it->p = e;
    return 1;
}

int dsh_iter_next_member(dsh_iter *it, dcs_slice *name, dcs_slice *value)
{
    const char *e, *p;
    if (!dsh__iter_step(it) || *it->p != '"')
        return 0;
    e = dsh__skip(it->p, it->end);
    name->ptr = it->p + 1;
    name->len = (size_t)(e - it->p) - 2;
    p = dsh__ws(e, it->end);
    if (p >= it->end || *p != ':')
        return 0;
    p = dsh__ws(p + 1, it->end);
    e = dsh__skip(p, it->end);
    value->ptr = p;
    value->len = (size_t)(e - p);
    it->p = e;
    return 1;
}
