/* match.c - matching JSON text against a compiled pattern
 * (spec/TRANSCRIPTS.md 4.2), and the variable table the matcher captures
 * into. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Walking validated JSON text                                               */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *dcs__skip_ws(const char *p, const char *e)
{
    while (p < e && is_ws(*p))
        p++;
    return p;
}

const char *dcs__skip_string(const char *p, const char *e)
{
    for (p++; p < e && *p != '"'; p++)
        if (*p == '\\')
            p++;
    return p < e ? p + 1 : e;
}

const char *dcs__skip_value(const char *p, const char *e)
{
    int depth = 0;
    if (p < e && *p != '{' && *p != '[') {
        if (*p == '"')
            return dcs__skip_string(p, e);
        while (p < e && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}')
            p++;
        return p;
    }
    while (p < e) {
        if (*p == '"') {
            p = dcs__skip_string(p, e);
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return e;
}

static int jtype_of(char c)
{
    switch (c) {
    case '"': return J_STRING;
    case '{': return J_OBJECT;
    case '[': return J_ARRAY;
    case 't': case 'f': return J_BOOL;
    case 'n': return J_NULL;
    default: return J_NUMBER;
    }
}

static const char *jtype_name(int t)
{
    static const char *const names[] = {"nothing", "string", "number", "integer",
                                        "bool",    "null",   "object", "array"};
    return names[t];
}

/* Iterates the members (name set) or elements (name NULL) of an object or array. */
typedef struct jit {
    const char *p, *e;
} jit;

static int jit_next(jit *it, const char **ns, size_t *nl, const char **vs, const char **ve)
{
    const char *p = dcs__skip_ws(it->p, it->e);
    if (p < it->e && *p == ',')
        p = dcs__skip_ws(p + 1, it->e);
    if (p >= it->e || *p == '}' || *p == ']')
        return 0;
    if (ns) {
        const char *q = dcs__skip_string(p, it->e);
        *ns = p + 1;
        *nl = (size_t)(q - p - 2);
        p = dcs__skip_ws(q, it->e);
        p = dcs__skip_ws(p + 1, it->e); /* the colon */
    }
    *vs = p;
    *ve = dcs__skip_value(p, it->e);
    it->p = *ve;
    return 1;
}

/* The value of the JSON number p[0..len) (strtod needs it terminated; long
 * ones are copied to the heap: 0 only if that fails). */
int dcs__num_value(const char *p, size_t len, double *d)
{
    char buf[400], *t = buf;
    if (len >= sizeof buf && !(t = malloc(len + 1)))
        return 0;
    memcpy(t, p, len);
    t[len] = 0;
    *d = strtod(t, NULL);
    if (t != buf)
        free(t);
    return 1;
}

static int num_is_integer(const char *p, size_t len)
{
    double d;
    if (!memchr(p, '.', len) && !memchr(p, 'e', len) && !memchr(p, 'E', len))
        return 1;
    return dcs__num_value(p, len, &d) && d > -9.2e18 && d < 9.2e18 && d == (double)(long long)d;
}

/* ------------------------------------------------------------------------ */
/* Variables                                                                 */

void dcs_vars_init(dcs_vars *vars, const dcs_allocator *a)
{
    memset(vars, 0, sizeof *vars);
    vars->alloc = a ? *a : dcs_default_allocator;
}

static void vars_truncate(dcs_vars *vars, size_t n)
{
    while (vars->n > n) {
        dcs_var *v = &vars->v[--vars->n];
        vars->alloc.free(vars->alloc.ud, v->name);
        vars->alloc.free(vars->alloc.ud, v->value);
    }
}

void dcs_vars_free(dcs_vars *vars)
{
    vars_truncate(vars, 0);
    vars->alloc.free(vars->alloc.ud, vars->v);
    vars->v = NULL;
    vars->cap = 0;
}

const dcs_var *dcs_vars_get(const dcs_vars *vars, const char *name, size_t len)
{
    size_t i;
    for (i = 0; vars && i < vars->n; i++)
        if (strlen(vars->v[i].name) == len && memcmp(vars->v[i].name, name, len) == 0)
            return &vars->v[i];
    return NULL;
}

static char *vdup(dcs_vars *vars, const char *s, size_t len)
{
    char *d = vars->alloc.alloc(vars->alloc.ud, len + 1);
    if (d) {
        if (len)
            memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* Appends or replaces without validation; json must be valid. */
static int vars_put(dcs_vars *vars, const char *name, size_t nlen, const char *json, size_t len)
{
    dcs_var *v = (dcs_var *)dcs_vars_get(vars, name, nlen);
    char *val = vdup(vars, json, len);
    if (!val)
        return DCS_ENOMEM;
    if (!v) {
        char *nm;
        if (vars->n >= DCS_VARS_MAX)
            return vars->alloc.free(vars->alloc.ud, val), DCS_EINVAL;
        if (vars->n == vars->cap) {
            size_t cap = vars->cap ? vars->cap * 2 : 8;
            dcs_var *nv = vars->alloc.realloc(vars->alloc.ud, vars->v, cap * sizeof *nv);
            if (!nv)
                return vars->alloc.free(vars->alloc.ud, val), DCS_ENOMEM;
            vars->v = nv;
            vars->cap = cap;
        }
        if (!(nm = vdup(vars, name, nlen)))
            return vars->alloc.free(vars->alloc.ud, val), DCS_ENOMEM;
        v = &vars->v[vars->n++];
        v->name = nm;
        v->value = NULL;
    }
    vars->alloc.free(vars->alloc.ud, v->value);
    v->value = val;
    v->value_len = len;
    return 0;
}

int dcs_vars_set(dcs_vars *vars, const char *name, const char *json, size_t len)
{
    size_t i, nlen = strlen(name);
    const char *p, *e = json + len;
    for (i = 0; i < nlen; i++)
        if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= 'a' && name[i] <= 'z') || (i > 0 && name[i] >= '0' && name[i] <= '9')))
            return DCS_EINVAL;
    if (nlen == 0)
        return DCS_EINVAL;
    if (dcs_json_validate(json, len, 0, NULL) != 0)
        return DCS_EBAD_JSON;
    p = dcs__skip_ws(json, e);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    return vars_put(vars, name, nlen, p, (size_t)(e - p));
}

/* ------------------------------------------------------------------------ */
/* The matcher                                                               */

typedef struct mctx {
    dcs_vars *vars;
    dcs_buf b1, b2;
    char path[160];
    size_t plen;
    dcs_match_why *why;
} mctx;

static int mfail(mctx *c, const char *fmt, ...)
{
    if (c->why) {
        va_list ap;
        int n = snprintf(c->why->text, sizeof c->why->text, "%s: ", c->plen ? c->path : "(root)");
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof c->why->text)
            vsnprintf(c->why->text + n, sizeof c->why->text - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* A short printable form of a value or pattern text for reasons: UTF-8 is
 * kept (cut only between characters), control bytes become '?'. */
static void brief(char out[64], const char *p, size_t len)
{
    size_t i, n = len > 48 ? 45 : len;
    while (n < len && n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
        n--;
    for (i = 0; i < n; i++)
        out[i] = ((unsigned char)p[i] >= 0x20 && p[i] != 0x7f) ? p[i] : '?';
    if (n < len)
        memcpy(out + n, "...", 3), n += 3;
    out[n] = 0;
}

/* Decodes the string at p (quote included) into b; 1 on success. */
static int dstr(dcs_buf *b, const char *p, const char *e)
{
    const char *q = dcs__skip_string(p, e);
    int rc;
    b->len = 0;
    rc = dcs_unescape(b, p + 1, (size_t)(q - p - 2));
    return rc == DCS_ENOMEM ? -1 : rc < 0 ? -2 : 1; /* -1: out of memory */
}

static int decode_name(dcs_buf *b, const char *ns, size_t nl)
{
    b->len = 0;
    return dcs_unescape(b, ns, nl);
}

static int name_is(const dcs_buf *x, const dcs_buf *y)
{
    return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* The member of object b that pairs with the member (ns, nl, vs) of object
 * a: the k-th member of b with the same decoded name when it is the k-th of
 * that name in a, so that an object with a repeated name (allowed in a
 * payload, spec 5.6) equals itself. 1 with its value in *vs2, *ve2; 0 when
 * there is none; DCS_ENOMEM. */
static int same_member(mctx *c, const char *a, const char *ae, const char *ns, size_t nl,
                       const char *vs, const char *b, const char *be, const char **vs2,
                       const char **ve2)
{
    jit it = {a + 1, ae};
    const char *n2, *v2s, *v2e;
    size_t l2, k = 0;
    dcs_buf nm;
    int rc = 0;
    dcs_buf_init(&nm, NULL);
    if (decode_name(&c->b1, ns, nl) == DCS_ENOMEM ||
        dcs_buf_append(&nm, c->b1.data ? c->b1.data : "", c->b1.len) != 0)
        rc = DCS_ENOMEM;
    while (rc == 0 && jit_next(&it, &n2, &l2, &v2s, &v2e) && v2s != vs) {
        if (decode_name(&c->b2, n2, l2) == DCS_ENOMEM)
            rc = DCS_ENOMEM;
        else
            k += name_is(&nm, &c->b2);
    }
    for (it.p = b + 1, it.e = be; rc == 0 && jit_next(&it, &n2, &l2, &v2s, &v2e);) {
        if (decode_name(&c->b2, n2, l2) == DCS_ENOMEM)
            rc = DCS_ENOMEM;
        else if (name_is(&nm, &c->b2) && k-- == 0) {
            *vs2 = v2s;
            *ve2 = v2e;
            rc = 1;
        }
    }
    dcs_buf_free(&nm);
    return rc;
}

static int json_equal(mctx *c, const char *a, const char *ae, const char *b, const char *be)
{
    int ta = jtype_of(*a), tb = jtype_of(*b), rc;
    double x, y;
    if (ta != tb)
        return 0;
    switch (ta) {
    case J_STRING:
        if ((rc = dstr(&c->b1, a, ae)) == -1 || (rc == 1 && (rc = dstr(&c->b2, b, be)) == -1))
            return DCS_ENOMEM;
        return rc == 1 && c->b1.len == c->b2.len &&
               (c->b1.len == 0 || memcmp(c->b1.data, c->b2.data, c->b1.len) == 0);
    case J_NUMBER:
        /* The same spelling is the same number, however long; else the values
         * (1.0 is 1e0). */
        if (ae - a == be - b && memcmp(a, b, (size_t)(ae - a)) == 0)
            return 1;
        return dcs__num_value(a, (size_t)(ae - a), &x) && dcs__num_value(b, (size_t)(be - b), &y) &&
               x == y;
    case J_BOOL: case J_NULL:
        return *a == *b;
    default: {
        jit ia = {a + 1, ae}, ib;
        const char *ns, *vs, *ve, *ns2, *vs2, *ve2, *n1 = NULL, *n2 = NULL;
        size_t nl, nl2, na = 0, nb = 0, *pnl = ta == J_OBJECT ? &nl : NULL;
        const char **pns = ta == J_OBJECT ? &ns : NULL, **pns2 = ta == J_OBJECT ? &ns2 : NULL;
        (void)n1, (void)n2;
        for (ib.p = b + 1, ib.e = be; jit_next(&ib, pns2, &nl2, &vs2, &ve2);)
            nb++;
        ib.p = b + 1;
        while (jit_next(&ia, pns, pnl, &vs, &ve)) {
            na++;
            if (ta == J_ARRAY) {
                if (!jit_next(&ib, NULL, NULL, &vs2, &ve2))
                    return 0;
            } else if ((rc = same_member(c, a, ae, ns, nl, vs, b, be, &vs2, &ve2)) <= 0) {
                return rc;
            }
            if ((rc = json_equal(c, vs, ve, vs2, ve2)) <= 0)
                return rc;
        }
        return na == nb;
    }
    }
}

static size_t utf8_count(const char *s, size_t len)
{
    size_t i, n = 0;
    for (i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static int in_range(const dcs__pnode *n, double x)
{
    return (!n->has_lo || x >= n->lo) && (!n->has_hi || x <= n->hi);
}

static int mvalue(mctx *c, const dcs__pnode *n, const char *v, const char *ve);

static int mobject(mctx *c, const dcs__pnode *n, const char *v, const char *ve)
{
    const dcs__pnode *k;
    const char *ns, *vs, *ve2;
    size_t nl, plen = c->plen;
    jit it;
    int rc;
    for (k = n->kids; k; k = k->next) {
        const char *fs = NULL, *fe = NULL;
        for (it.p = v + 1, it.e = ve; !fs && jit_next(&it, &ns, &nl, &vs, &ve2);) {
            if (decode_name(&c->b1, ns, nl) == DCS_ENOMEM)
                return DCS_ENOMEM;
            if (c->b1.len == k->name_len && (!k->name_len || !memcmp(c->b1.data, k->name, k->name_len)))
                fs = vs, fe = ve2;
        }
        snprintf(c->path + plen, sizeof c->path - plen, "%s%.*s", plen ? "." : "", (int)k->name_len,
                 k->name);
        c->plen = strlen(c->path);
        if ((rc = mvalue(c, k, fs, fe)) <= 0)
            return rc;
        c->path[c->plen = plen] = 0;
    }
    for (it.p = v + 1, it.e = ve; n->closed && jit_next(&it, &ns, &nl, &vs, &ve2);) {
        int known = 0;
        if (decode_name(&c->b1, ns, nl) == DCS_ENOMEM)
            return DCS_ENOMEM;
        for (k = n->kids; k && !known; k = k->next)
            known = c->b1.len == k->name_len && (!k->name_len || !memcmp(c->b1.data, k->name, k->name_len));
        if (!known) {
            char b[64];
            brief(b, ns, nl);
            return mfail(c, "unexpected member \"%s\" in a closed object", b);
        }
    }
    return 1;
}

static int marray(mctx *c, const dcs__pnode *n, const char *v, const char *ve)
{
    const dcs__pnode *k;
    const char *vs, *ve2;
    size_t i = 0, m = 0, plen = c->plen;
    jit it = {v + 1, ve};
    int rc;
    for (k = n->kids; k; k = k->next)
        m++;
    while (jit_next(&it, NULL, NULL, &vs, &ve2))
        i++;
    if (i != m)
        return mfail(c, "expected an array of %zu elements, found %zu", m, i);
    for (i = 0, k = n->kids, it.p = v + 1; k && jit_next(&it, NULL, NULL, &vs, &ve2); k = k->next, i++) {
        snprintf(c->path + plen, sizeof c->path - plen, "[%zu]", i);
        c->plen = strlen(c->path);
        if ((rc = mvalue(c, k, vs, ve2)) <= 0)
            return rc;
        c->path[c->plen = plen] = 0;
    }
    return 1;
}

static int mvalue(mctx *c, const dcs__pnode *n, const char *v, const char *ve)
{
    char want[64], got[64];
    regmatch_t rm;
    int t, rc;
    double x;
    brief(want, n->raw, n->raw_len);
    if (!v)
        return n->kind == N_ABSENT ? 1 : mfail(c, "expected %s, found nothing (member absent)", want);
    brief(got, v, (size_t)(ve - v));
    t = jtype_of(*v);
    switch (n->kind) {
    case N_ABSENT:
        return mfail(c, "expected !absent, found %s", got);
    case N_ANY:
        return 1;
    case N_TYPE:
        if (t == n->type || (n->type == J_INTEGER && t == J_NUMBER && num_is_integer(v, (size_t)(ve - v))))
            return 1;
        return mfail(c, "expected %s, found %s %s", want, jtype_name(t), got);
    case N_LIT:
        if (t == J_NUMBER && n->type == J_NUMBER)
            rc = dcs__num_value(v, (size_t)(ve - v), &x) && x == n->lo;
        else if (t == J_STRING && n->type == J_STRING) {
            if ((rc = dstr(&c->b1, v, ve)) == -1)
                return DCS_ENOMEM;
            rc = rc == 1 && c->b1.len == n->slen && (!n->slen || !memcmp(c->b1.data, n->s, n->slen));
        } else
            rc = t == n->type && (t == J_NULL || *v == n->s[0]);
        return rc ? 1 : mfail(c, "expected %s, found %s", want, got);
    case N_REGEX:
        if (t != J_STRING)
            return mfail(c, "expected a string matching %s, found %s %s", want, jtype_name(t), got);
        if ((rc = dstr(&c->b1, v, ve)) == -1 || dcs_buf_append(&c->b1, "", 1) != 0)
            return DCS_ENOMEM;
        /* POSIX matching is leftmost-longest: the whole string matches iff
         * the match found starts at 0 and ends at the end. */
        if (rc == 1 && !memchr(c->b1.data, 0, c->b1.len - 1) &&
            regexec(n->re, c->b1.data, 1, &rm, 0) == 0 && rm.rm_so == 0 &&
            (size_t)rm.rm_eo == c->b1.len - 1)
            return 1;
        return mfail(c, "expected a string matching %s, found %s", want, got);
    case N_RANGE:
        if (t == J_NUMBER && dcs__num_value(v, (size_t)(ve - v), &x) && in_range(n, x))
            return 1;
        return mfail(c, "expected a number in %s, found %s", want, got);
    case N_LEN:
        if (t == J_STRING) {
            if ((rc = dstr(&c->b1, v, ve)) == -1)
                return DCS_ENOMEM;
            x = (double)utf8_count(c->b1.data, c->b1.len);
        } else if (t == J_ARRAY) {
            jit it = {v + 1, ve};
            const char *a, *b;
            for (x = 0; jit_next(&it, NULL, NULL, &a, &b);)
                x++;
        } else
            return mfail(c, "expected a string or an array of %s, found %s %s", want,
                         jtype_name(t), got);
        return in_range(n, x) ? 1 : mfail(c, "expected %s, found length %.0f: %s", want, x, got);
    case N_EACH: {
        jit it = {v + 1, ve};
        const char *a, *b;
        size_t i = 0, plen = c->plen;
        if (t != J_ARRAY)
            return mfail(c, "expected an array for %s, found %s %s", want, jtype_name(t), got);
        for (; jit_next(&it, NULL, NULL, &a, &b); i++) {
            snprintf(c->path + plen, sizeof c->path - plen, "[%zu]", i);
            c->plen = strlen(c->path);
            if ((rc = mvalue(c, n->sub, a, b)) <= 0)
                return rc;
            c->path[c->plen = plen] = 0;
        }
        if ((n->has_lo || n->has_hi) && !in_range(n, (double)i))
            return mfail(c, "expected %s, found %zu elements", want, i);
        return 1;
    }
    case N_VAR: {
        const dcs_var *var = dcs_vars_get(c->vars, n->s, n->slen);
        if (var) {
            if ((rc = json_equal(c, var->value, var->value + var->value_len, v, ve)) != 0)
                return rc;
            brief(want, var->value, var->value_len);
            return mfail(c, "expected $%s = %s, found %s", n->s, want, got);
        }
        if (n->sub && (rc = mvalue(c, n->sub, v, ve)) <= 0)
            return rc;
        if (!c->vars)
            return mfail(c, "no variable table to capture $%s", n->s);
        if ((rc = vars_put(c->vars, n->s, n->slen, v, (size_t)(ve - v))) == DCS_EINVAL)
            return mfail(c, "too many variables to capture $%s", n->s);
        return rc == 0 ? 1 : rc;
    }
    case N_OBJECT:
        if (t != J_OBJECT)
            return mfail(c, "expected an object, found %s %s", jtype_name(t), got);
        return mobject(c, n, v, ve);
    default:
        if (t != J_ARRAY)
            return mfail(c, "expected an array, found %s %s", jtype_name(t), got);
        return marray(c, n, v, ve);
    }
}

int dcs_pattern_match(const dcs_pattern *p, const char *json, size_t len, dcs_vars *vars,
                      dcs_match_why *why)
{
    mctx c;
    dcs_error err;
    size_t n0 = vars ? vars->n : 0;
    const char *v, *e = json + len;
    int rc;
    memset(&c, 0, sizeof c);
    c.vars = vars;
    c.why = why;
    if (why)
        why->text[0] = 0;
    if (dcs_json_validate(json, len, 0, &err) != 0)
        return mfail(&c, "not valid JSON (%s): %s", dcs_err_name(err.code), err.message);
    dcs_buf_init(&c.b1, &p->ar.a);
    dcs_buf_init(&c.b2, &p->ar.a);
    v = dcs__skip_ws(json, e);
    rc = mvalue(&c, p->root, v, dcs__skip_value(v, e));
    dcs_buf_free(&c.b1);
    dcs_buf_free(&c.b2);
    if (rc != 1 && vars)
        vars_truncate(vars, n0);
    if (rc < 0 && why)
        snprintf(why->text, sizeof why->text, "out of memory");
    return rc;
}
