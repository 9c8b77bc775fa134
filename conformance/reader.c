/* reader.c - the reader of .dcst conformance cases (spec/TRANSCRIPTS.md
 * sections 1 and 3): logical lines, header directives and steps. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* The case reader                                                           */

#define LIST_MAX 256u /* cites, requires, vars, and words of ignore */
#define ALTS_MAX 16u  /* alternatives of one either */

typedef struct patlist {
    dcs_pattern *p;
    struct patlist *next;
} patlist;

/* The case and everything it owns. */
typedef struct case_box {
    dcs_case pub;
    dcs__arena ar;
    patlist *pats;
} case_box;

typedef struct snode {
    dcs_step s;
    struct snode *next;
} snode;

typedef struct reader {
    const char *p, *e;
    int line;  /* the next physical line */
    int lline; /* the first physical line of the current logical line */
    dcs_buf lb;
    case_box *box;
    dcs_case_error *err;
    size_t nsteps;
    int seen_step;
    unsigned seen; /* single directives already given, by bit */
} reader;

enum { ST_EOF, ST_OR, ST_END };

static int rfail(reader *r, int line, const char *fmt, ...)
{
    va_list ap;
    if (r->err->reason[0])
        return DCS_EINVAL;
    r->err->line = line;
    va_start(ap, fmt);
    vsnprintf(r->err->reason, sizeof r->err->reason, fmt, ap);
    va_end(ap);
    return DCS_EINVAL;
}

static int rnomem(reader *r)
{
    r->err->line = 0;
    snprintf(r->err->reason, sizeof r->err->reason, "out of memory");
    return DCS_ENOMEM;
}

static void *ralloc(reader *r, size_t n)
{
    return dcs__arena_alloc(&r->box->ar, n);
}

static char *rdup(reader *r, const char *s, size_t len)
{
    return dcs__arena_strdup(&r->box->ar, s, len);
}

/* Reads the next non-empty logical line into r->lb: continuations joined,
 * comment removed, trimmed. Returns 1, 0 at the end, or an error. */
static int next_line(reader *r, char **out)
{
    while (r->p < r->e) {
        int in_str = 0, esc = 0, cont;
        char *s, *q;
        r->lb.len = 0;
        r->lline = r->line;
        do {
            const char *nl = memchr(r->p, '\n', (size_t)(r->e - r->p));
            const char *le = nl ? nl : r->e, *t = le;
            if (memchr(r->p, 0, (size_t)(le - r->p)))
                return rfail(r, r->line, "a NUL byte in the case");
            r->line++;
            while (t > r->p && (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t'))
                t--;
            cont = t > r->p && t[-1] == '\\';
            if (r->lb.len + (size_t)(t - r->p) + 2 > DCS_CASE_MAX_LINE)
                return rfail(r, r->lline, "a line longer than %u bytes", DCS_CASE_MAX_LINE);
            if (dcs_buf_append(&r->lb, r->p, (size_t)(t - r->p - cont)) != 0 ||
                (cont && dcs_buf_append(&r->lb, " ", 1) != 0))
                return rnomem(r);
            r->p = nl ? nl + 1 : r->e;
        } while (cont && r->p < r->e);
        if (dcs_buf_append(&r->lb, "", 1) != 0)
            return rnomem(r);
        for (s = r->lb.data; *s; s++) {
            if (esc)
                esc = 0;
            else if (in_str && *s == '\\')
                esc = 1;
            else if (*s == '"')
                in_str = !in_str;
            else if (*s == '#' && !in_str)
                break;
        }
        *s = 0;
        for (q = r->lb.data; *q == ' ' || *q == '\t';)
            q++;
        while (s > q && (s[-1] == ' ' || s[-1] == '\t' || s[-1] == '\r'))
            *--s = 0;
        if (*q) {
            *out = q;
            return 1;
        }
    }
    return 0;
}

static char *skip_blank(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Cuts the next whitespace-separated word out of *pp, or returns NULL. */
static char *word(char **pp)
{
    char *p = skip_blank(*pp), *w = p;
    if (!*p)
        return NULL;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (*p)
        *p++ = 0;
    *pp = skip_blank(p);
    return w;
}

static int parse_duration(reader *r, const char *s, int64_t *ms)
{
    dcs_window w;
    const char *e = s + strlen(s);
    if (!*s)
        return rfail(r, r->lline, "bad duration: missing");
    if (dcs_window_parse(s, (size_t)(e - s), &w, r->err->reason, sizeof r->err->reason) != 0) {
        r->err->line = r->lline;
        return DCS_EINVAL;
    }
    if (strstr(s, "..") || w.lo_ms != 0)
        return rfail(r, r->lline, "bad duration: a window where a duration is needed");
    *ms = w.hi_ms;
    return 0;
}

static int parse_window(reader *r, const char *s, dcs_window *w)
{
    if (!*s)
        return rfail(r, r->lline, "bad duration: missing window");
    if (dcs_window_parse(s, strlen(s), w, r->err->reason, sizeof r->err->reason) != 0) {
        r->err->line = r->lline;
        return DCS_EINVAL;
    }
    return 0;
}

static int parse_count(const char *w, size_t max, size_t *out)
{
    size_t v = 0;
    if (!w || !*w)
        return -1;
    for (; *w; w++) {
        if (*w < '0' || *w > '9' || v > max / 10)
            return -1;
        v = v * 10 + (size_t)(*w - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int add_pattern(reader *r, const char *text, size_t len, int matchers, dcs_pattern **out,
                       size_t *used)
{
    char why[200];
    patlist *pl = ralloc(r, sizeof *pl);
    int rc;
    if (!pl)
        return rnomem(r);
    rc = dcs__pattern_compile_prefix(text, len, matchers, &r->box->ar.a, out, used, why, sizeof why);
    if (rc == DCS_ENOMEM)
        return rnomem(r);
    if (rc != 0)
        return rfail(r, r->lline, "%s", why);
    pl->p = *out;
    pl->next = r->box->pats;
    r->box->pats = pl;
    return 0;
}

/* The suffix of send and send-raw: [repeat N] [chunks N [pause D] | split
 * AT,AT,...]; iut-stdin takes only repeat. */
static int send_suffix(reader *r, char *rest, dcs_step *st)
{
    char *w = word(&rest), *tok;
    size_t n = 0, *split, prev = 0;
    if (w && strcmp(w, "repeat") == 0) {
        if (parse_count(word(&rest), 100000, &st->repeat) != 0 || st->repeat == 0)
            return rfail(r, r->lline, "repeat needs a count from 1 to 100000");
        w = word(&rest);
    }
    if (!w)
        return 0;
    if (st->kind == DCS_STEP_IUT_STDIN)
        return rfail(r, r->lline, "unexpected '%s' after iut-stdin's line (repeat N?)", w);
    if (strcmp(w, "chunks") == 0) {
        if (parse_count(word(&rest), 1u << 24, &st->chunk) != 0 || st->chunk == 0)
            return rfail(r, r->lline, "chunks needs a size from 1 to %u", 1u << 24);
        if (!(w = word(&rest)))
            return 0;
        if (strcmp(w, "pause") == 0)
            return parse_duration(r, rest, &st->pause_ms);
        return rfail(r, r->lline, "unexpected '%s' after chunks (pause D?)", w);
    }
    if (strcmp(w, "split") != 0)
        return rfail(r, r->lline, "unexpected '%s' (chunks or split?)", w);
    if (!(w = word(&rest)) || *rest)
        return rfail(r, r->lline, "split needs one list of offsets, AT,AT,...");
    for (tok = w; *tok; tok++)
        n += *tok == ',';
    if (n >= 4096 || !(split = ralloc(r, (n + 1) * sizeof *split)))
        return n >= 4096 ? rfail(r, r->lline, "too many split offsets") : rnomem(r);
    for (n = 0; w; n++) {
        char *comma = strchr(w, ',');
        if (comma)
            *comma = 0;
        if (parse_count(w, 1u << 30, &split[n]) != 0 || split[n] <= prev)
            return rfail(r, r->lline, "split offsets must be increasing numbers above 0");
        prev = split[n];
        w = comma ? comma + 1 : NULL;
    }
    st->split = split;
    st->n_split = n;
    return 0;
}

static const char *kw_of(const dcs_step *st)
{
    return dcs_step_name(st->kind);
}

static int send_raw(reader *r, char *rest, dcs_step *st)
{
    char *q;
    dcs_buf b;
    int rc;
    if (*rest == '"') {
        for (q = rest + 1; *q && *q != '"'; q++)
            if (*q == '\\' && q[1])
                q++;
        if (!*q)
            return rfail(r, r->lline, "%s: unterminated string", kw_of(st));
        dcs_buf_init(&b, &r->box->ar.a);
        rc = dcs_unescape(&b, rest + 1, (size_t)(q - rest - 1));
        if (rc == 0 && !(st->text = rdup(r, b.data ? b.data : "", b.len)))
            rc = DCS_ENOMEM;
        st->text_len = b.len;
        dcs_buf_free(&b);
        if (rc == DCS_ENOMEM)
            return rnomem(r);
        if (rc != 0)
            return rfail(r, r->lline, "%s: invalid JSON string (%s)", kw_of(st), dcs_err_name(rc));
        return send_suffix(r, q + 1, st);
    }
    if (strncmp(rest, "hex:", 4) == 0) {
        char *w = word(&rest), *out;
        size_t i, n = strlen(w + 4);
        if (n % 2 || !(out = ralloc(r, n / 2 + 1)))
            return n % 2 ? rfail(r, r->lline, "%s: odd number of hex digits", kw_of(st)) : rnomem(r);
        for (i = 0; i < n; i++) {
            char c = w[4 + i];
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v < 0)
                return rfail(r, r->lline, "%s: '%c' is not a hex digit", kw_of(st), c);
            out[i / 2] = (char)(i % 2 ? out[i / 2] | v : v << 4);
        }
        st->text = out;
        st->text_len = n / 2;
        return send_suffix(r, rest, st);
    }
    return rfail(r, r->lline, "%s needs a JSON string or hex:BYTES", kw_of(st));
}

static int word_list(reader *r, char *rest, const char *const **out, size_t *n, const char *what)
{
    const char **v = ralloc(r, LIST_MAX * sizeof *v);
    char *w;
    if (!v)
        return rnomem(r);
    for (*n = 0; (w = word(&rest)) != NULL; (*n)++)
        if (*n == LIST_MAX || !(v[*n] = rdup(r, w, strlen(w))))
            return *n == LIST_MAX ? rfail(r, r->lline, "%s: too many words", what) : rnomem(r);
    if (*n == 0)
        return rfail(r, r->lline, "%s needs at least one word", what);
    *out = v;
    return 0;
}

static int parse_block(reader *r, dcs_step_list *list, unsigned depth, int *term);

static int need_role(reader *r, int role, const char *kw)
{
    if (r->box->pub.role && r->box->pub.role != role)
        return rfail(r, r->lline, "%s needs role %s", kw, role == DCS_ROLE_CLIENT ? "client" : "server");
    return 0;
}

static int parse_either(reader *r, char *rest, unsigned depth, dcs_step *st)
{
    dcs_step_list *alts;
    int line = r->lline, term = ST_OR, rc;
    if (*rest)
        return rfail(r, line, "unexpected '%s' after either", rest);
    if (depth + 1 > DCS_CASE_MAX_NESTING)
        return rfail(r, line, "either nested deeper than %u", DCS_CASE_MAX_NESTING);
    if (!(alts = ralloc(r, ALTS_MAX * sizeof *alts)))
        return rnomem(r);
    while (term == ST_OR) {
        if (st->n_alts == ALTS_MAX)
            return rfail(r, line, "either with more than %u alternatives", ALTS_MAX);
        if ((rc = parse_block(r, &alts[st->n_alts], depth + 1, &term)) != 0)
            return rc;
        if (term == ST_EOF)
            return rfail(r, line, "unbalanced either: no end");
        if (alts[st->n_alts++].n == 0)
            return rfail(r, r->lline, "an empty alternative");
    }
    st->alts = alts;
    return 0;
}

static int parse_step(reader *r, char *kw, char *rest, unsigned depth, dcs_step *st)
{
    static const char *const kws[] = {
#define DCS__STEP_KW(name, k) k,
        DCS_STEP_MAP(DCS__STEP_KW)
#undef DCS__STEP_KW
    };
    dcs_pattern *pat;
    size_t used, i;
    char *w;
    int rc;
    st->line = r->lline;
    st->at_offset = -1;
    st->repeat = 1;
    for (i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (strcmp(kws[i], kw) == 0)
            st->kind = (int)i + 1;
    if (strcmp(kw, "socket") == 0) {
        w = word(&rest);
        st->kind = w && !strcmp(w, "remove") ? DCS_STEP_SOCKET_REMOVE
                 : w && !strcmp(w, "stale")  ? DCS_STEP_SOCKET_STALE
                 : w && !strcmp(w, "listen") ? DCS_STEP_SOCKET_LISTEN : 0;
        if (!st->kind)
            return rfail(r, r->lline, "socket needs remove, stale or listen");
    }
    switch (st->kind) {
    case DCS_STEP_ACCEPT: case DCS_STEP_EXPECT_CLOSE: case DCS_STEP_EXPECT_RECONNECT:
        if (st->kind != DCS_STEP_EXPECT_CLOSE && (rc = need_role(r, DCS_ROLE_CLIENT, kw)) != 0)
            return rc;
        if (!*rest && st->kind != DCS_STEP_EXPECT_RECONNECT)
            return 0;
        if (strncmp(rest, "within", 6) == 0 && (rest[6] == ' ' || rest[6] == '\t'))
            rest = skip_blank(rest + 6);
        st->has_window = 1;
        return parse_window(r, rest, &st->window);
    case DCS_STEP_EXPECT_NO_CONNECT:
        if ((rc = need_role(r, DCS_ROLE_CLIENT, kw)) != 0)
            return rc;
        /* fall through */
    case DCS_STEP_WAIT:
        return parse_duration(r, rest, &st->duration_ms);
    case DCS_STEP_SOCKET_REMOVE: case DCS_STEP_SOCKET_STALE: case DCS_STEP_SOCKET_LISTEN:
        if ((rc = need_role(r, DCS_ROLE_CLIENT, "socket")) != 0)
            return rc;
        /* fall through */
    case DCS_STEP_CLOSE: case DCS_STEP_RESTART: case DCS_STEP_KILL: case DCS_STEP_CONNECT:
        if (st->kind == DCS_STEP_CONNECT && (rc = need_role(r, DCS_ROLE_SERVER, kw)) != 0)
            return rc;
        return *rest ? rfail(r, r->lline, "unexpected '%s' after %s", rest, dcs_step_name(st->kind)) : 0;
    case DCS_STEP_SEND:
        if (!*rest)
            return rfail(r, r->lline, "send needs a message");
        if ((rc = add_pattern(r, rest, strlen(rest), 0, &pat, &used)) != 0)
            return rc;
        if (!(st->text = rdup(r, rest, used)))
            return rnomem(r);
        st->text_len = used;
        return send_suffix(r, rest + used, st);
    case DCS_STEP_SEND_RAW:
        return send_raw(r, rest, st);
    case DCS_STEP_IUT_STDIN:
        return send_raw(r, rest, st);
    case DCS_STEP_KEEPALIVE:
        st->on = !strcmp(rest, "on") ? 1 : !strcmp(rest, "off") ? 0 : -1;
        return st->on >= 0 ? 0 : rfail(r, r->lline, "keepalive needs on or off");
    case DCS_STEP_EXPECT: case DCS_STEP_EXPECT_ANY: case DCS_STEP_EXPECT_NONE:
        if (!*rest)
            return rfail(r, r->lline, "%s needs a pattern", kw);
        if ((rc = add_pattern(r, rest, strlen(rest), 1, &pat, &used)) != 0)
            return rc;
        st->pattern = pat;
        rest = skip_blank(rest + used);
        w = word(&rest);
        if (st->kind == DCS_STEP_EXPECT_NONE) {
            if (!w || strcmp(w, "for") != 0)
                return rfail(r, r->lline, "expect-none needs 'for DURATION' after the pattern");
            return parse_duration(r, rest, &st->duration_ms);
        }
        if (!w)
            return 0;
        if (strcmp(w, "within") != 0)
            return rfail(r, r->lline, "unexpected '%s' after the pattern (within?)", w);
        st->has_window = 1;
        return parse_window(r, rest, &st->window);
    case DCS_STEP_EXPECT_ERROR:
        if (!(w = word(&rest)))
            return rfail(r, r->lline, "expect-error needs a reason");
        if (!(st->text = rdup(r, w, strlen(w))))
            return rnomem(r);
        st->text_len = strlen(w);
        if (!(w = word(&rest)))
            return 0;
        if (strcmp(w, "at") != 0 || parse_count(word(&rest), SIZE_MAX / 16, &used) != 0 || *rest)
            return rfail(r, r->lline, "expect-error: expected 'at OFFSET' after the reason");
        st->at_offset = (int64_t)used;
        return 0;
    case DCS_STEP_IGNORE: case DCS_STEP_UNIGNORE:
        return word_list(r, rest, &st->names, &st->n_names, kw);
    case DCS_STEP_EITHER:
        return parse_either(r, rest, depth, st);
    default:
        return rfail(r, r->lline, "unknown directive or step '%s'", kw);
    }
}

static int is_directive(const char *kw)
{
    static const char *const d[] = {"id", "title", "role", "cites", "requires", "level", "window", "var", "tags",
                                    "min-time-scale"};
    size_t i;
    for (i = 0; i < sizeof d / sizeof d[0]; i++)
        if (strcmp(d[i], kw) == 0)
            return (int)i + 1;
    return 0;
}

static int append_words(reader *r, char *rest, const char *const **list, size_t *n, const char *kw)
{
    const char *const *more;
    const char **all;
    size_t m, i;
    int rc = word_list(r, rest, &more, &m, kw);
    if (rc != 0)
        return rc;
    if (*n + m > LIST_MAX)
        return rfail(r, r->lline, "%s: more than %u in all", kw, LIST_MAX);
    if (!(all = ralloc(r, (*n + m) * sizeof *all)))
        return rnomem(r);
    for (i = 0; i < *n; i++)
        all[i] = (*list)[i];
    for (i = 0; i < m; i++)
        all[*n + i] = more[i];
    *list = all;
    *n += m;
    return 0;
}

static int directive(reader *r, int d, char *kw, char *rest)
{
    dcs_case *c = &r->box->pub;
    char *w;
    if (r->seen_step)
        return rfail(r, r->lline, "header directive '%s' after the first step", kw);
    if (d != 4 && d != 5 && d != 8 && d != 9) {
        if (r->seen & (1u << d))
            return rfail(r, r->lline, "duplicate directive '%s'", kw);
        r->seen |= 1u << d;
    }
    switch (d) {
    case 1: case 2:
        if (!*rest || (d == 1 && strpbrk(rest, " \t")))
            return rfail(r, r->lline, d == 1 ? "id needs exactly one word" : "title needs a text");
        if (!(w = rdup(r, rest, strlen(rest))))
            return rnomem(r);
        *(d == 1 ? &c->id : &c->title) = w;
        return 0;
    case 3:
        c->role = !strcmp(rest, "client") ? DCS_ROLE_CLIENT : !strcmp(rest, "server") ? DCS_ROLE_SERVER : 0;
        return c->role ? 0 : rfail(r, r->lline, "role must be client or server");
    case 4:
        return append_words(r, rest, &c->cites, &c->n_cites, kw);
    case 5:
        return append_words(r, rest, &c->requires, &c->n_requires, kw);
    case 6:
        c->level = !strcmp(rest, "must") ? DCS_LEVEL_MUST : !strcmp(rest, "should") ? DCS_LEVEL_SHOULD
                 : !strcmp(rest, "info") ? DCS_LEVEL_INFO : -1;
        return c->level >= 0 ? 0 : rfail(r, r->lline, "level must be must, should or info");
    case 7:
        return parse_duration(r, rest, &c->window_ms);
    case 9:
        return append_words(r, rest, &c->tags, &c->n_tags, kw);
    case 10: {
        char *end;
        double f = strtod(rest, &end);
        if (end == rest || *end || !(f > 0) || f > 1e6)
            return rfail(r, r->lline, "min-time-scale needs a positive factor");
        c->min_time_scale = f;
        return 0;
    }
    default: {
        dcs_case_var *v;
        size_t i;
        w = word(&rest);
        for (i = 0; w && w[i]; i++)
            if (!(w[i] == '_' || (w[i] >= 'A' && w[i] <= 'Z') || (w[i] >= 'a' && w[i] <= 'z') ||
                  (i > 0 && w[i] >= '0' && w[i] <= '9')))
                break;
        if (!w || w[i] || !*rest)
            return rfail(r, r->lline, "var needs a NAME ([A-Za-z_][A-Za-z0-9_]*) and a VALUE");
        if (c->n_vars == LIST_MAX)
            return rfail(r, r->lline, "more than %u variables", LIST_MAX);
        if (!c->vars && !(c->vars = ralloc(r, LIST_MAX * sizeof *c->vars)))
            return rnomem(r);
        v = (dcs_case_var *)&c->vars[c->n_vars];
        if (!(v->name = rdup(r, w, strlen(w))) || !(v->value = rdup(r, rest, strlen(rest))))
            return rnomem(r);
        c->n_vars++;
        return 0;
    }
    }
}

/* Reads steps until the end, or an `or` / `end` (returned in *term). */
static int parse_block(reader *r, dcs_step_list *list, unsigned depth, int *term)
{
    snode *head = NULL, **tail = &head, *sn;
    size_t n = 0;
    char *line = NULL, *kw;
    int rc, d;
    *term = ST_EOF;
    while ((rc = next_line(r, &line)) == 1) {
        kw = word(&line);
        if (!strcmp(kw, "or") || !strcmp(kw, "end")) {
            if (*line)
                return rfail(r, r->lline, "unexpected '%s' after %s", line, kw);
            if (depth == 0)
                return rfail(r, r->lline, "unbalanced %s outside either", kw);
            *term = kw[0] == 'o' ? ST_OR : ST_END;
            break;
        }
        if ((d = is_directive(kw)) != 0) {
            if (depth > 0)
                return rfail(r, r->lline, "header directive '%s' inside either", kw);
            if ((rc = directive(r, d, kw, line)) != 0)
                return rc;
            continue;
        }
        r->seen_step = 1;
        if (++r->nsteps > DCS_CASE_MAX_STEPS)
            return rfail(r, r->lline, "more than %u steps", DCS_CASE_MAX_STEPS);
        if (!(sn = ralloc(r, sizeof *sn)))
            return rnomem(r);
        if ((rc = parse_step(r, kw, line, depth, &sn->s)) != 0)
            return rc;
        *tail = sn;
        tail = &sn->next;
        n++;
    }
    if (rc < 0)
        return rc;
    if (n && !(list->steps = ralloc(r, n * sizeof *list->steps)))
        return rnomem(r);
    for (list->n = 0, sn = head; sn; sn = sn->next)
        list->steps[list->n++] = sn->s;
    return 0;
}

void dcs_case_free(dcs_case *c)
{
    case_box *box = (case_box *)c;
    dcs__arena ar;
    patlist *pl;
    if (!c)
        return;
    for (pl = box->pats; pl; pl = pl->next)
        dcs_pattern_free(pl->p);
    ar = box->ar;
    dcs__arena_free(&ar);
}

int dcs_case_parse(const char *text, size_t len, const dcs_allocator *a, dcs_case **out,
                   dcs_case_error *err)
{
    dcs_case_error dummy;
    dcs__arena ar;
    reader r;
    int rc, term;
    *out = NULL;
    memset(&r, 0, sizeof r);
    r.err = err ? err : &dummy;
    r.err->line = 0;
    r.err->reason[0] = 0;
    if (len > DCS_CASE_MAX_BYTES)
        return rfail(&r, 1, "a case larger than %u bytes", DCS_CASE_MAX_BYTES);
    dcs__arena_init(&ar, a);
    if (!(r.box = dcs__arena_alloc(&ar, sizeof *r.box))) {
        dcs__arena_free(&ar);
        return rnomem(&r);
    }
    r.box->ar = ar;
    r.box->pub.window_ms = 2000;
    r.p = text;
    r.e = text + len;
    r.line = 1;
    dcs_buf_init(&r.lb, &r.box->ar.a);
    rc = parse_block(&r, &r.box->pub.steps, 0, &term);
    dcs_buf_free(&r.lb);
    if (rc == 0 && !r.box->pub.id)
        rc = rfail(&r, 1, "missing id directive");
    if (rc == 0 && !r.box->pub.title)
        rc = rfail(&r, 1, "missing title directive");
    if (rc == 0 && !r.box->pub.role)
        rc = rfail(&r, 1, "missing role directive");
    if (rc != 0) {
        dcs_case_free(&r.box->pub);
        return rc;
    }
    *out = &r.box->pub;
    return 0;
}
