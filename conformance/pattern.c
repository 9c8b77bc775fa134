/* pattern.c - JSON patterns with matchers (spec/TRANSCRIPTS.md 4.2): the
 * compiler, the matcher, the variable table, and the arena both halves of
 * the library allocate from. */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */

struct dcs__ablock {
    dcs__ablock *next;
    size_t used, cap;
    max_align_t data[];
};

void dcs__arena_init(dcs__arena *ar, const dcs_allocator *a)
{
    ar->a = a ? *a : dcs_default_allocator;
    ar->head = NULL;
}

void dcs__arena_free(dcs__arena *ar)
{
    while (ar->head) {
        dcs__ablock *b = ar->head;
        ar->head = b->next;
        ar->a.free(ar->a.ud, b);
    }
}

void *dcs__arena_alloc(dcs__arena *ar, size_t n)
{
    dcs__ablock *b = ar->head;
    void *p;
    if (n > SIZE_MAX / 4)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        b = ar->a.alloc(ar->a.ud, sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = ar->head;
        ar->head = b;
    }
    p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *dcs__arena_strdup(dcs__arena *ar, const char *s, size_t len)
{
    char *d = dcs__arena_alloc(ar, len + 1);
    if (d) {
        if (len)
            memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* Pattern nodes and the compiler                                            */

typedef struct pcomp {
    const char *s, *p, *e;
    dcs_pattern *pat;
    int matchers, depth, nomem;
    char *why;
    size_t whylen;
} pcomp;

static dcs__pnode *perr(pcomp *c, const char *fmt, ...)
{
    if (c->why && c->whylen && !c->why[0]) {
        va_list ap;
        int n = snprintf(c->why, c->whylen, "bad pattern at column %zu: ", (size_t)(c->p - c->s) + 1);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < c->whylen)
            vsnprintf(c->why + n, c->whylen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static dcs__pnode *pnomem(pcomp *c)
{
    c->nomem = 1;
    if (c->why && c->whylen && !c->why[0])
        snprintf(c->why, c->whylen, "out of memory");
    return NULL;
}

static dcs__pnode *new_node(pcomp *c, int kind)
{
    dcs__pnode *n = dcs__arena_alloc(&c->pat->ar, sizeof *n);
    if (!n)
        return pnomem(c);
    n->kind = kind;
    return n;
}

/* Scans a JSON number; returns its end, or NULL. */
static const char *scan_number(const char *p, const char *e)
{
    const char *q;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p + 1 < e && *p == '.' && p[1] >= '0' && p[1] <= '9')
        for (p++; p < e && *p >= '0' && *p <= '9';)
            p++;
    if (p < e && (*p == 'e' || *p == 'E')) {
        q = p + 1;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        if (q >= e || *q < '0' || *q > '9')
            return NULL;
        while (q < e && *q >= '0' && *q <= '9')
            q++;
        p = q;
    }
    return p;
}

/* Parses the string at c->p into decoded text in the arena. */
static int pstring(pcomp *c, const char **out, size_t *olen)
{
    const char *start = c->p + 1, *q = start;
    dcs_buf b;
    int rc;
    while (q < c->e && *q != '"') {
        if (*q == '\\' && q + 1 < c->e)
            q++;
        q++;
    }
    if (q >= c->e)
        return perr(c, "unterminated string"), -1;
    dcs_buf_init(&b, &c->pat->ar.a);
    rc = dcs_unescape(&b, start, (size_t)(q - start));
    if (rc == DCS_ENOMEM)
        return dcs_buf_free(&b), pnomem(c), -1;
    if (rc < 0)
        return dcs_buf_free(&b), perr(c, "invalid string (%s)", dcs_err_name(rc)), -1;
    *olen = b.len;
    *out = dcs__arena_strdup(&c->pat->ar, b.data ? b.data : "", b.len);
    dcs_buf_free(&b);
    if (!*out)
        return pnomem(c), -1;
    c->p = q + 1;
    return 0;
}

static int word_is(pcomp *c, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(c->e - c->p) >= n && memcmp(c->p, w, n) == 0;
}

static dcs__pnode *pvalue(pcomp *c, int member);

/* Parses `A..B` after '[' into n; returns 0, or -1 when it is not a range. */
static int prange(pcomp *c, dcs__pnode *n)
{
    const char *p = dcs__skip_ws(c->p + 1, c->e), *q;
    if ((q = scan_number(p, c->e)) != NULL) {
        n->has_lo = dcs__num_value(p, (size_t)(q - p), &n->lo);
        p = dcs__skip_ws(q, c->e);
    }
    if (c->e - p < 2 || p[0] != '.' || p[1] != '.')
        return -1;
    p = dcs__skip_ws(p + 2, c->e);
    if ((q = scan_number(p, c->e)) != NULL) {
        n->has_hi = dcs__num_value(p, (size_t)(q - p), &n->hi);
        p = dcs__skip_ws(q, c->e);
    }
    c->p = p;
    return 0;
}

static dcs__pnode *pcontainer(pcomp *c, int object)
{
    dcs__pnode *n = new_node(c, object ? N_OBJECT : N_ARRAY), **tail, *k;
    int first = 1;
    if (!n)
        return NULL;
    if (++c->depth > (int)DCS_PATTERN_MAX_DEPTH)
        return perr(c, "nested deeper than %u", DCS_PATTERN_MAX_DEPTH);
    tail = &n->kids;
    c->p = dcs__skip_ws(c->p + 1, c->e);
    if (c->p < c->e && *c->p == (object ? '}' : ']')) {
        c->p++;
        c->depth--;
        return n;
    }
    for (;;) {
        const char *name = NULL;
        size_t nlen = 0;
        if (object) {
            if (c->p >= c->e || *c->p != '"')
                return perr(c, "expected a member name");
            if (pstring(c, &name, &nlen) < 0)
                return NULL;
            c->p = dcs__skip_ws(c->p, c->e);
            if (c->p >= c->e || *c->p != ':')
                return perr(c, "expected ':' after a member name");
            c->p = dcs__skip_ws(c->p + 1, c->e);
            if (nlen == 3 && memcmp(name, "...", 3) == 0) {
                if (!first || !word_is(c, "false"))
                    return perr(c, "\"...\" must be the first member, with the value false");
                c->p += 5;
                n->closed = 1;
                goto next;
            }
        }
        if (!(k = pvalue(c, object)))
            return NULL;
        k->name = name;
        k->name_len = nlen;
        *tail = k;
        tail = &k->next;
next:
        first = 0;
        c->p = dcs__skip_ws(c->p, c->e);
        if (c->p < c->e && *c->p == ',') {
            c->p = dcs__skip_ws(c->p + 1, c->e);
            continue;
        }
        if (c->p < c->e && *c->p == (object ? '}' : ']'))
            break;
        return perr(c, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    c->p++;
    c->depth--;
    return n;
}

static dcs__pnode *pvalue(pcomp *c, int member)
{
    static const char *const types[] = {"", "string", "number", "integer", "bool",
                                        "null", "object", "array"};
    const char *start = c->p, *q;
    dcs__pnode *n = NULL;
    if (c->p >= c->e)
        return perr(c, "expected a value, found the end");
    switch (*c->p) {
    case '{': case '[':
        if (*c->p == '[' && c->matchers) {
            if (!(n = new_node(c, N_RANGE)))
                return NULL;
            if (prange(c, n) == 0) {
                if (c->p >= c->e || *c->p != ']')
                    return perr(c, "expected ']' after a range");
                c->p++;
                if (n->has_lo && n->has_hi && n->lo > n->hi)
                    return perr(c, "empty range");
                break;
            }
        }
        n = pcontainer(c, *c->p == '{');
        break;
    case '"':
        if (!(n = new_node(c, N_LIT)))
            return NULL;
        n->type = J_STRING;
        if (pstring(c, &n->s, &n->slen) < 0)
            return NULL;
        break;
    case 't': case 'f': case 'n':
        if (!(n = new_node(c, N_LIT)))
            return NULL;
        n->type = *c->p == 'n' ? J_NULL : J_BOOL;
        n->s = *c->p == 't' ? "true" : *c->p == 'f' ? "false" : "null";
        if (!word_is(c, n->s))
            return perr(c, "unknown literal");
        c->p += strlen(n->s);
        break;
    case '*':
        if (!c->matchers)
            return perr(c, "matchers are not allowed here");
        if (!(n = new_node(c, N_ANY)))
            return NULL;
        for (q = ++c->p; q < c->e && *q >= 'a' && *q <= 'z';)
            q++;
        if (q > c->p) {
            for (n->type = J_STRING; n->type <= J_ARRAY; n->type++)
                if (strlen(types[n->type]) == (size_t)(q - c->p) &&
                    memcmp(types[n->type], c->p, (size_t)(q - c->p)) == 0)
                    break;
            if (n->type > J_ARRAY)
                return perr(c, "unknown type matcher '*%.*s'", (int)(q - c->p), c->p);
            n->kind = N_TYPE;
            c->p = q;
        }
        break;
    case '~': {
        int rc;
        dcs__regs *r;
        if (!c->matchers)
            return perr(c, "matchers are not allowed here");
        if (!(n = new_node(c, N_REGEX)))
            return NULL;
        c->p++;
        if (c->p >= c->e || *c->p != '"')
            return perr(c, "expected a string after '~'");
        if (pstring(c, &n->s, &n->slen) < 0)
            return NULL;
        if (memchr(n->s, 0, n->slen))
            return perr(c, "a NUL byte in a regular expression");
        n->re = dcs__arena_alloc(&c->pat->ar, sizeof *n->re);
        r = dcs__arena_alloc(&c->pat->ar, sizeof *r);
        if (!n->re || !r)
            return pnomem(c);
        /* Anchoring is checked on the match (see match.c), not by wrapping
         * the expression in ^( )$, which an unbalanced ')' could defeat. */
        rc = regcomp(n->re, n->s, REG_EXTENDED);
        if (rc != 0) {
            char msg[96];
            regerror(rc, n->re, msg, sizeof msg);
            c->p = start;
            return perr(c, "bad regular expression: %s", msg);
        }
        r->re = n->re;
        r->next = c->pat->regs;
        c->pat->regs = r;
        break;
    }
    case '!':
        if (!c->matchers)
            return perr(c, "matchers are not allowed here");
        if (!word_is(c, "!absent"))
            return perr(c, "unknown matcher (only !absent exists)");
        if (!member)
            return perr(c, "!absent is only allowed as a member's value");
        if (!(n = new_node(c, N_ABSENT)))
            return NULL;
        c->p += 7;
        break;
    case '$':
        if (!(n = new_node(c, N_VAR)))
            return NULL;
        q = ++c->p;
        while (q < c->e && (*q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                            (q > c->p && *q >= '0' && *q <= '9')))
            q++;
        if (q == c->p)
            return perr(c, "expected a variable name after '$'");
        if (!(n->s = dcs__arena_strdup(&c->pat->ar, c->p, (size_t)(q - c->p))))
            return pnomem(c);
        n->slen = (size_t)(q - c->p);
        c->p = q;
        if (c->matchers && c->p < c->e && *c->p == ':') {
            c->p++;
            if (!(n->sub = pvalue(c, 0)))
                return NULL;
        }
        break;
    case '@':
        if (!c->matchers)
            return perr(c, "matchers are not allowed here");
        if (word_is(c, "@each(")) {
            if (!(n = new_node(c, N_EACH)))
                return NULL;
            c->p = dcs__skip_ws(c->p + 6, c->e);
            if (!(n->sub = pvalue(c, 0)))
                return NULL;
            c->p = dcs__skip_ws(c->p, c->e);
            if (c->p < c->e && *c->p == ',' && prange(c, n) < 0)
                return perr(c, "expected a length range A..B after ',' in @each(");
            if (c->p >= c->e || *c->p != ')')
                return perr(c, "expected ')' after the pattern of @each(");
            c->p++;
            break;
        }
        if (!word_is(c, "@len("))
            return perr(c, "unknown matcher (@len or @each)");
        if (!(n = new_node(c, N_LEN)))
            return NULL;
        c->p += 4;
        if (prange(c, n) < 0) {
            const char *p0 = dcs__skip_ws(c->p + 1, c->e);
            q = scan_number(p0, c->e);
            if (!q || !dcs__num_value(p0, (size_t)(q - p0), &n->lo))
                return perr(c, "expected a length or a range in @len()");
            n->hi = n->lo;
            n->has_lo = n->has_hi = 1;
            c->p = dcs__skip_ws(q, c->e);
        }
        if (c->p >= c->e || *c->p != ')')
            return perr(c, "expected ')' after @len(");
        c->p++;
        break;
    default:
        if (!(q = scan_number(c->p, c->e)))
            return perr(c, "unexpected character '%c'", *c->p);
        if (!(n = new_node(c, N_LIT)))
            return NULL;
        n->type = J_NUMBER;
        n->s = c->p;
        n->slen = (size_t)(q - c->p);
        if (!dcs__num_value(n->s, n->slen, &n->lo))
            return perr(c, "number too long");
        c->p = q;
    }
    if (n) {
        n->raw = start;
        n->raw_len = (size_t)(c->p - start);
    }
    return n;
}

int dcs__pattern_compile_prefix(const char *text, size_t len, int matchers, const dcs_allocator *a,
                                dcs_pattern **out, size_t *used, char *why, size_t whylen)
{
    dcs__arena ar;
    dcs_pattern *pat;
    char *copy;
    pcomp c;
    *out = NULL;
    if (why && whylen)
        why[0] = 0;
    dcs__arena_init(&ar, a);
    pat = dcs__arena_alloc(&ar, sizeof *pat);
    copy = pat ? dcs__arena_strdup(&ar, text, len) : NULL;
    if (!copy) {
        dcs__arena_free(&ar);
        if (why && whylen)
            snprintf(why, whylen, "out of memory");
        return DCS_ENOMEM;
    }
    pat->ar = ar;
    pat->text = copy;
    memset(&c, 0, sizeof c);
    c.s = c.p = copy;
    c.e = copy + len;
    c.pat = pat;
    c.matchers = matchers;
    c.why = why;
    c.whylen = whylen;
    c.p = dcs__skip_ws(c.p, c.e);
    pat->root = pvalue(&c, 0);
    if (!pat->root) {
        dcs_pattern_free(pat);
        return c.nomem ? DCS_ENOMEM : DCS_EINVAL;
    }
    *used = (size_t)(c.p - c.s);
    copy[*used] = 0; /* the text of the pattern alone */
    *out = pat;
    return 0;
}

int dcs_pattern_compile(const char *text, size_t len, const dcs_allocator *a, dcs_pattern **out,
                        char *why, size_t whylen)
{
    size_t used;
    int rc = dcs__pattern_compile_prefix(text, len, 1, a, out, &used, why, whylen);
    if (rc == 0 && dcs__skip_ws(text + used, text + len) != text + len) {
        used = (size_t)(dcs__skip_ws(text + used, text + len) - text);
        if (why && whylen)
            snprintf(why, whylen, "bad pattern at column %zu: text after the pattern", used + 1);
        dcs_pattern_free(*out);
        *out = NULL;
        return DCS_EINVAL;
    }
    return rc;
}

void dcs_pattern_free(dcs_pattern *p)
{
    dcs__arena ar;
    dcs__regs *r;
    if (!p)
        return;
    for (r = p->regs; r; r = r->next)
        regfree(r->re);
    ar = p->ar;
    dcs__arena_free(&ar);
}

const char *dcs_pattern_text(const dcs_pattern *p)
{
    return p->text;
}
