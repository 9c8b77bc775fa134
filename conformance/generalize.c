/* generalize.c - `dcs-conform generalize` (generalize.h): a recording of
 * dcs-tap in, a conformance case out.
 *
 * Two passes over the recording's logical lines (continuations joined, as
 * the case reader joins them). The first learns the role, the id and title,
 * the client's and the server's ids (from the first register: its payload's
 * `id` and its `destination`; failing that, from the first origins of each
 * side), whether the handshake of spec 10.3 is in use, and the first nonce
 * the harness side sent. The second writes a new header and then every
 * line as recorded, except that the message of a `send`, `expect` or
 * `expect-any` is rewritten by rw(), a recursive walk over its validated
 * JSON text that replaces some values and copies every other byte, and
 * that heartbeats (with the time comment above them), `keepalive off`,
 * `unignore heartbeat` and the old header lines are dropped. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "generalize.h"
#include "internal.h"
#include "transcript.h"

/* A request id the IUT invented is recognised outside `requestId` members
 * too, but only from this length on: short values ("1") recur by chance. */
#define GEN_RID_ANYWHERE 8u
#define GEN_MAX_DEPTH 64u
/* Captures a case may make: the harness's table holds DCS_VARS_MAX
 * variables, some of them its own ($IUT_ID, $NOW, ...) or the case's. */
#define GEN_MAX_RIDS (DCS_VARS_MAX - 16u)

/* A list of decoded strings: pool holds the bytes, idx (offset, length)
 * pairs. Item k (1-based) is the variable RIDk in the list of request ids. */
typedef struct gset {
    dcs_buf pool, idx;
} gset;

enum { K_OTHER, K_REGISTER, K_CHALLENGE, K_HEARTBEAT };

typedef struct gen {
    dcs_buf *out;
    size_t out0;
    char *why;
    size_t whylen;
    int line, pass, nomem, role;
    dcs_buf id, title;              /* the recording's header, as written */
    dcs_buf client, server;         /* the peers' ids, decoded */
    dcs_buf iut_origin, peer_origin; /* the first origin of each side, decoded */
    int have_client, have_server, have_iut_origin, have_peer_origin;
    const dcs_buf *iut, *peer;      /* client or server, by role; NULL when unknown */
    int hmac, says_hmac;            /* the handshake is used; `requires hmac` is there */
    dcs_buf sent_nonce;             /* the first nonce the harness side sent, as JSON */
    dcs_buf nonce;                  /* the nonce the IUT's challenge gave, decoded */
    int have_nonce;
    gset rids, sent, sent_nonces;   /* the IUT's request ids; ids and nonces the harness sent */
    dcs_buf tmp, lb;
    int send, kind;                 /* the message being rewritten */
    long stamp;                     /* out->len where a "# +" comment line ends the output, or -1 */
} gen;

static int gfail(gen *g, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int gfail(gen *g, int line, const char *fmt, ...)
{
    va_list ap;
    int n = 0;
    if (!g->why || g->whylen == 0 || g->why[0])
        return -1;
    if (line > 0)
        n = snprintf(g->why, g->whylen, "line %d: ", line);
    if (n >= 0 && (size_t)n < g->whylen) {
        va_start(ap, fmt);
        vsnprintf(g->why + n, g->whylen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void put(gen *g, const char *p, size_t n)
{
    if (g->pass == 2 && n && dcs_buf_append(g->out, p, n) != 0)
        g->nomem = 1;
}

static int put_s(gen *g, const char *s)
{
    put(g, s, strlen(s));
    return 1;
}

static int is(dcs_slice s, const char *lit)
{
    return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static int same(const dcs_buf *b, const dcs_buf *c)
{
    return b->len == c->len && (b->len == 0 || memcmp(b->data, c->data, b->len) == 0);
}

static int set_buf(gen *g, dcs_buf *b, const char *p, size_t n)
{
    b->len = 0;
    if (dcs_buf_append(b, p, n) != 0 || dcs_buf_append(b, "", 1) != 0)
        return g->nomem = 1, -1;
    b->len--;
    return 0;
}

static int gset_add(gen *g, gset *s, const dcs_buf *v)
{
    size_t rec[2] = {s->pool.len, v->len};
    if (dcs_buf_append(&s->pool, v->data ? v->data : "", v->len) != 0 ||
        dcs_buf_append(&s->idx, rec, sizeof rec) != 0)
        return g->nomem = 1, -1;
    return 0;
}

/* The 1-based position of v in s, or 0. */
static size_t gset_find(const gset *s, const dcs_buf *v)
{
    size_t i, k = s->idx.len / (2 * sizeof(size_t)), rec[2];
    for (i = 0; i < k; i++) {
        memcpy(rec, s->idx.data + i * sizeof rec, sizeof rec);
        if (rec[1] == v->len && (!v->len || memcmp(s->pool.data + rec[0], v->data, v->len) == 0))
            return i + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON text (validated before any of these run on it)                        */

/* Decode the JSON string v[0..n) into g->tmp. */
static int dstr(gen *g, const char *v, size_t n)
{
    g->tmp.len = 0;
    if (n < 2 || dcs_unescape(&g->tmp, v + 1, n - 2) != 0)
        return g->nomem = 1, -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replacements                                                              */

/* origin, destination, a register's id: $IUT_ID or $PEER_ID when the value
 * is that id (the preferred one for the odd recording where both ids are
 * equal). */
static int put_id(gen *g, const char *v, size_t n, int prefer_iut)
{
    int iut, peer;
    if (dstr(g, v, n) != 0)
        return -1;
    iut = g->iut && same(g->iut, &g->tmp);
    peer = g->peer && same(g->peer, &g->tmp);
    if (iut && (prefer_iut || !peer))
        return put_s(g, "$IUT_ID");
    return peer ? put_s(g, "$PEER_ID") : 0;
}

static int put_rid_var(gen *g, size_t k, int capture)
{
    char name[48];
    snprintf(name, sizeof name, "$RID%zu%s", k, capture ? ":*string" : "");
    return put_s(g, name);
}

/* A `requestId` string: the IUT's own ids become variables; ids the harness
 * side sent first stay as they are. */
static int put_rid(gen *g, const char *v, size_t n)
{
    size_t k;
    if (dstr(g, v, n) != 0)
        return -1;
    if ((k = gset_find(&g->rids, &g->tmp)) != 0)
        return put_rid_var(g, k, 0);
    if (g->send)
        return gset_add(g, &g->sent, &g->tmp) != 0 ? -1 : 0;
    if (gset_find(&g->sent, &g->tmp))
        return 0;
    if (g->rids.idx.len / (2 * sizeof(size_t)) == GEN_MAX_RIDS)
        return gfail(g, g->line,
                     "more than %u request ids: a case captures at most that many, so cut the "
                     "recording before this line", GEN_MAX_RIDS);
    if (gset_add(g, &g->rids, &g->tmp) != 0)
        return -1;
    return put_rid_var(g, g->rids.idx.len / (2 * sizeof(size_t)), 1);
}

/* Any other string: a request id the IUT invented, when long enough. */
static int rid_anywhere(gen *g, const char *v, size_t n)
{
    size_t k;
    if (g->rids.idx.len == 0 || n < GEN_RID_ANYWHERE + 2 || dstr(g, v, n) != 0)
        return g->nomem ? -1 : 0;
    if (g->tmp.len >= GEN_RID_ANYWHERE && (k = gset_find(&g->rids, &g->tmp)) != 0)
        return put_rid_var(g, k, 0);
    return 0;
}

/* A register's nonce. Sent (the harness is the client): $NONCE when it
 * answers the IUT's challenge. Expected (the IUT is the client): $NONCE when
 * it is a nonce the harness sent (every sent challenge says $NONCE). */
static int put_reg_nonce(gen *g, const char *v, size_t n)
{
    if (dstr(g, v, n) != 0)
        return -1;
    if (g->send ? g->have_nonce && same(&g->nonce, &g->tmp) : gset_find(&g->sent_nonces, &g->tmp) != 0)
        return put_s(g, "$NONCE");
    return 0;
}

/* A challenge's nonce. Expected (the IUT is the server): captured once; a
 * case has one $NONCE, so a later challenge with another nonce cannot be
 * generalized. Sent (the harness is the server): $NONCE, which the header
 * sets to the first nonce sent. */
static int put_challenge_nonce(gen *g, const char *v, size_t n)
{
    if (dstr(g, v, n) != 0)
        return -1;
    if (g->send)
        return gset_add(g, &g->sent_nonces, &g->tmp) != 0 ? -1 : put_s(g, "$NONCE");
    if (!g->have_nonce) {
        if (set_buf(g, &g->nonce, g->tmp.data ? g->tmp.data : "", g->tmp.len) != 0)
            return -1;
        g->have_nonce = 1;
        return put_s(g, "$NONCE:*string");
    }
    if (same(&g->nonce, &g->tmp))
        return put_s(g, "$NONCE");
    return gfail(g, g->line,
                 "a second challenge with another nonce: a case captures $NONCE once, so cut "
                 "the recording before this connection");
}

static int is_integer(const char *v, size_t n)
{
    return !memchr(v, '.', n) && !memchr(v, 'e', n) && !memchr(v, 'E', n);
}

/* Append the replacement of the value v[0..n) of the member name (ptr NULL
 * for an array element) at depth (1: an envelope member) under the envelope
 * member top, and return 1; 0 to keep the value; -1 on error. */
static int replace(gen *g, const char *v, size_t n, int depth, dcs_slice top, dcs_slice name)
{
    int str = *v == '"', num = *v == '-' || (*v >= '0' && *v <= '9');
    if (!name.ptr)
        return str ? rid_anywhere(g, v, n) : 0;
    if (depth == 1 && is(name, "timestamp"))
        return num ? put_s(g, g->send ? "$NOW" : "*number") : 0;
    if (depth == 1 && str && (is(name, "origin") || is(name, "destination")))
        return put_id(g, v, n, is(name, "origin") == !g->send);
    if (depth == 2 && is(top, "payload") && g->kind == K_REGISTER) {
        if (is(name, "id") && str)
            return put_id(g, v, n, g->role == DCS_ROLE_CLIENT);
        if (is(name, "pid") && num && !g->send)
            return put_s(g, is_integer(v, n) ? "*integer" : "*number");
        if (is(name, "nonce") && str)
            return put_reg_nonce(g, v, n);
        if (is(name, "hmac") && str)
            return put_s(g, g->send ? "$HMAC" : "*string");
    }
    if (depth == 2 && is(top, "payload") && g->kind == K_CHALLENGE && is(name, "nonce") && str)
        return put_challenge_nonce(g, v, n);
    if (!g->send && is(name, "timestamp"))
        return num ? put_s(g, "*number") : str ? put_s(g, "*string") : 0;
    if (is(name, "requestId") && str)
        return put_rid(g, v, n);
    return str ? rid_anywhere(g, v, n) : 0;
}

/* Rewrite the value at p (ending before e) of member name at depth under
 * top; return the end of the value, or NULL on error. */
static const char *rw(gen *g, const char *p, const char *e, int depth, dcs_slice top, dcs_slice name)
{
    const char *q, *w, *ve = dcs__skip_value(p, e);
    int r = depth > 0 ? replace(g, p, (size_t)(ve - p), depth, top, name) : 0;
    if (r < 0)
        return NULL;
    if (r > 0)
        return ve;
    if (*p != '{' && *p != '[') {
        put(g, p, (size_t)(ve - p));
        return ve;
    }
    put(g, p, 1);
    for (q = p + 1;;) {
        dcs_slice nm = {NULL, 0};
        w = dcs__skip_ws(q, e);
        put(g, q, (size_t)(w - q));
        q = w;
        if (*q == '}' || *q == ']') {
            put(g, q, 1);
            return q + 1;
        }
        if (*p == '{') {
            w = dcs__skip_string(q, e);
            nm.ptr = q + 1;
            nm.len = (size_t)(w - q) - 2;
            if (!g->send && is(nm, "..."))
                return gfail(g, g->line, "a member named \"...\" cannot be written in a pattern"),
                       NULL;
            put(g, q, (size_t)(w - q));
            q = w;
            w = dcs__skip_ws(dcs__skip_ws(q, e) + 1, e); /* whitespace, ':', whitespace */
            put(g, q, (size_t)(w - q));
            q = w;
        }
        if (!(q = rw(g, q, e, depth + 1, depth == 0 ? nm : top, nm)))
            return NULL;
        w = dcs__skip_ws(q, e);
        put(g, q, (size_t)(w - q));
        q = w;
        if (*q == ',')
            put(g, q++, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Whether the string member name of m[0..n) is lit. */
static int member_is(gen *g, const char *m, size_t n, const char *name, const char *lit)
{
    int rc;
    g->tmp.len = 0;
    if ((rc = dcs_json_member_string(m, n, name, &g->tmp)) == DCS_ENOMEM)
        g->nomem = 1;
    return rc == 1 && g->tmp.len == strlen(lit) && memcmp(g->tmp.data, lit, g->tmp.len) == 0;
}

static int kind_of(gen *g, const char *m, size_t n)
{
    if (member_is(g, m, n, "type", "heartbeat"))
        return K_HEARTBEAT;
    if (!member_is(g, m, n, "type", "command"))
        return K_OTHER;
    return member_is(g, m, n, "key", "register")    ? K_REGISTER
           : member_is(g, m, n, "key", "challenge") ? K_CHALLENGE
                                                    : K_OTHER;
}

/* A string member of obj into b (decoded); 1 if there is one. */
static int member_str(gen *g, const char *obj, size_t n, const char *name, dcs_buf *b)
{
    int rc;
    b->len = 0;
    if ((rc = dcs_json_member_string(obj, n, name, b)) != 1)
        return rc == DCS_ENOMEM ? (g->nomem = 1, 0) : 0;
    if (dcs_buf_append(b, "", 1) != 0)
        return g->nomem = 1, 0;
    b->len--;
    return 1;
}

/* Pass 1: what the message m[0..n) tells about the peers. */
static void learn(gen *g, const char *m, size_t n)
{
    dcs_slice pl;
    int kind = kind_of(g, m, n), has_pl = dcs_json_member(m, n, "payload", &pl) == 1;
    int *have_o = g->send ? &g->have_peer_origin : &g->have_iut_origin;
    dcs_buf *ob = g->send ? &g->peer_origin : &g->iut_origin;
    if (!*have_o && member_str(g, m, n, "origin", ob))
        *have_o = !(ob->len == 1 && ob->data[0] == '*');
    if (kind == K_REGISTER && has_pl && *pl.ptr == '{') {
        dcs_slice v;
        if (!g->have_client)
            g->have_client = member_str(g, pl.ptr, pl.len, "id", &g->client);
        if (!g->have_server && member_str(g, m, n, "destination", &g->server))
            g->have_server = !(g->server.len == 1 && g->server.data[0] == '*');
        if (dcs_json_member(pl.ptr, pl.len, "nonce", &v) == 1 ||
            dcs_json_member(pl.ptr, pl.len, "hmac", &v) == 1)
            g->hmac = 1;
    }
    if (kind == K_CHALLENGE) {
        dcs_slice v;
        g->hmac = 1;
        if (g->send && !g->sent_nonce.len && has_pl && *pl.ptr == '{' &&
            dcs_json_member(pl.ptr, pl.len, "nonce", &v) == 1 && *v.ptr == '"')
            set_buf(g, &g->sent_nonce, v.ptr, v.len);
    }
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */

static int word_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* Text for the header: control bytes and backslashes (one at the end of a
 * line would join the next line) become '?'. */
static void put_text(gen *g, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        put(g, (unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\' ? "?" : p + i, 1);
}

/* Copy the physical lines raw[0..n) as they are. */
static int verbatim(gen *g, const char *raw, size_t n, int stamp)
{
    size_t at = g->out->len;
    if (g->pass != 2)
        return 0;
    put(g, raw, n);
    if (n == 0 || raw[n - 1] != '\n')
        put(g, "\n", 1);
    g->stamp = stamp ? (long)at : -1;
    return 0;
}

/* A send, expect or expect-any step: its message at rest, ending before ce;
 * s..end is the whole logical line and kw its keyword. */
static int message_step(gen *g, const char *s, const char *end, const char *kw, size_t kwn,
                        const char *rest, const char *ce)
{
    const char *me = dcs__skip_value(rest, ce);
    dcs_slice none = {NULL, 0};
    dcs_error er;
    size_t at;
    g->send = word_is(kw, kwn, "send");
    if (dcs_json_validate(rest, (size_t)(me - rest), GEN_MAX_DEPTH, &er) != 0)
        return gfail(g, g->line, "%.*s: the message is not exact JSON (%s at column %llu: %s)",
                     (int)kwn, kw, dcs_err_name(er.code),
                     (unsigned long long)(rest - s) + (unsigned long long)er.offset + 1, er.message);
    if (*rest != '{')
        return gfail(g, g->line, "%.*s: the message is not a JSON object", (int)kwn, kw);
    if (g->pass == 1) {
        learn(g, rest, (size_t)(me - rest));
        return g->nomem ? -1 : 0;
    }
    if ((g->kind = kind_of(g, rest, (size_t)(me - rest))) == K_HEARTBEAT && !g->nomem) {
        if (g->stamp >= 0)
            g->out->len = (size_t)g->stamp; /* its time comment goes with it */
        g->stamp = -1;
        return 0;
    }
    at = g->out->len;
    put(g, s, (size_t)(kw + kwn - s));
    put(g, " ", 1);
    if (!rw(g, rest, me, 0, none, none))
        return -1;
    put(g, me, (size_t)(end - me));
    put(g, "\n", 1);
    g->stamp = -1;
    if (g->out->len - at + 1 > DCS_CASE_MAX_LINE)
        return gfail(g, g->line, "the generalized step is longer than a line of a case (%u bytes)",
                     DCS_CASE_MAX_LINE - 2);
    return g->nomem ? -1 : 0;
}

/* One logical line, in g->lb; raw[0..n) are its physical lines. */
static int one_line(gen *g, const char *raw, size_t n)
{
    const char *s = g->lb.data, *end = s + g->lb.len, *ce, *q, *kw, *rest;
    int in_str = 0, esc = 0;
    size_t kwn;
    for (ce = s; ce < end; ce++) {
        if (esc)
            esc = 0;
        else if (in_str && *ce == '\\')
            esc = 1;
        else if (*ce == '"')
            in_str = !in_str;
        else if (*ce == '#' && !in_str)
            break;
    }
    for (q = s; q < ce && (*q == ' ' || *q == '\t');)
        q++;
    while (ce > q && (ce[-1] == ' ' || ce[-1] == '\t' || ce[-1] == '\r'))
        ce--;
    if (q == ce && q == end && g->pass == 2 && g->out->len - g->out0 >= 2 &&
        memcmp(g->out->data + g->out->len - 2, "\n\n", 2) == 0)
        return 0; /* one blank line at a time */
    if (q == ce)
        return verbatim(g, raw, n, end - q >= 3 && memcmp(q, "# +", 3) == 0);
    for (kw = q; q < ce && *q != ' ' && *q != '\t';)
        q++;
    kwn = (size_t)(q - kw);
    for (rest = q; rest < ce && (*rest == ' ' || *rest == '\t');)
        rest++;
    if (word_is(kw, kwn, "send") || word_is(kw, kwn, "expect") || word_is(kw, kwn, "expect-any"))
        return message_step(g, s, end, kw, kwn, rest, ce);
    if (g->pass == 1) {
        if (word_is(kw, kwn, "id"))
            return set_buf(g, &g->id, rest, (size_t)(ce - rest));
        if (word_is(kw, kwn, "title"))
            return set_buf(g, &g->title, rest, (size_t)(ce - rest));
        if (word_is(kw, kwn, "role"))
            g->role = word_is(rest, (size_t)(ce - rest), "client")   ? DCS_ROLE_CLIENT
                      : word_is(rest, (size_t)(ce - rest), "server") ? DCS_ROLE_SERVER
                                                                     : 0;
        if (word_is(kw, kwn, "requires"))
            for (q = rest; q < ce;) {
                const char *w = q;
                while (q < ce && *q != ' ' && *q != '\t')
                    q++;
                g->says_hmac |= word_is(w, (size_t)(q - w), "hmac");
                while (q < ce && (*q == ' ' || *q == '\t'))
                    q++;
            }
        return 0;
    }
    if (word_is(kw, kwn, "id") || word_is(kw, kwn, "title") || word_is(kw, kwn, "role") ||
        word_is(kw, kwn, "window") ||
        (word_is(kw, kwn, "keepalive") && word_is(rest, (size_t)(ce - rest), "off")) ||
        (word_is(kw, kwn, "unignore") && word_is(rest, (size_t)(ce - rest), "heartbeat"))) {
        g->stamp = -1;
        return 0;
    }
    return verbatim(g, raw, n, 0);
}

/* Every logical line of text[0..len), continuations joined with a space. */
static int lines(gen *g, const char *text, size_t len)
{
    const char *p = text, *e = text + len;
    int line = 1;
    while (p < e) {
        const char *raw = p;
        int cont;
        g->lb.len = 0;
        g->line = line;
        do {
            const char *nl = memchr(p, '\n', (size_t)(e - p)), *le = nl ? nl : e, *t = le;
            if (memchr(p, 0, (size_t)(le - p)))
                return gfail(g, line, "a NUL byte in the recording");
            line++;
            while (t > p && (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t'))
                t--;
            cont = t > p && t[-1] == '\\';
            if (g->lb.len + (size_t)(t - p) + 2 > DCS_CASE_MAX_LINE)
                return gfail(g, g->line, "a line longer than %u bytes", DCS_CASE_MAX_LINE);
            if (dcs_buf_append(&g->lb, p, (size_t)(t - p - cont)) != 0 ||
                (cont && dcs_buf_append(&g->lb, " ", 1) != 0))
                return gfail(g, 0, "out of memory");
            p = nl ? nl + 1 : e;
        } while (cont && p < e);
        if (dcs_buf_append(&g->lb, "", 1) != 0)
            return gfail(g, 0, "out of memory");
        g->lb.len--;
        if (one_line(g, raw, (size_t)(p - raw)) != 0 || g->nomem)
            return g->nomem ? gfail(g, 0, "out of memory") : -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The case                                                                  */

static int header(gen *g, const char *new_id)
{
    const char *rid = g->id.data;
    size_t i, n;
    if (!new_id) {
        g->tmp.len = 0;
        if (dcs_buf_append(&g->tmp, "gen-", 4) != 0 ||
            dcs_buf_append(&g->tmp, rid + (strncmp(rid, "rec-", 4) == 0 ? 4 : 0),
                           strlen(rid) - (strncmp(rid, "rec-", 4) == 0 ? 4 : 0)) != 0 ||
            dcs_buf_append(&g->tmp, "", 1) != 0)
            return gfail(g, 0, "out of memory");
        new_id = g->tmp.data;
    }
    n = strlen(new_id);
    for (i = 0; i < n; i++)
        if ((unsigned char)new_id[i] <= 0x20 || new_id[i] == 0x7f || new_id[i] == '#' ||
            new_id[i] == '\\')
            break;
    if (n == 0 || i < n || n > 200)
        return gfail(g, 0, "the case's id must be one word of at most 200 bytes without '#' or "
                           "'\\', not \"%.40s\"", new_id);
    put_s(g, "# Generalized by dcs-conform generalize from the recording ");
    put_text(g, rid, strlen(rid));
    put_s(g, ":\n# timestamps, pids, request ids, nonces and the peers' ids are matchers and\n"
             "# variables; heartbeats are left to the harness (ignore heartbeat, keepalive on).\n");
    if (g->have_client || g->have_server) {
        put_s(g, "# Recorded ids:");
        if (g->have_client)
            put_s(g, " client \""), put_text(g, g->client.data, g->client.len), put_s(g, "\"");
        if (g->have_server)
            put_s(g, g->have_client ? ", server \"" : " server \""),
                put_text(g, g->server.data, g->server.len), put_s(g, "\"");
        put_s(g, " ($IUT_ID and\n# $PEER_ID: give --iut-id and --peer-id if they are not the "
                 "defaults).\n");
    }
    put_s(g, "id ");
    put_s(g, new_id);
    put_s(g, "\ntitle generalized from ");
    put_text(g, rid, strlen(rid));
    put_s(g, ": ");
    put_text(g, g->title.data, g->title.len);
    put_s(g, g->role == DCS_ROLE_CLIENT ? "\nrole client\n" : "\nrole server\n");
    put_s(g, "window 5s\n");
    if (g->hmac && !g->says_hmac)
        put_s(g, "requires hmac\n");
    if (g->sent_nonce.len) {
        put_s(g, "var NONCE ");
        put(g, g->sent_nonce.data, g->sent_nonce.len);
        put_s(g, "\n");
    }
    put_s(g, "\n");
    return g->nomem ? gfail(g, 0, "out of memory") : 0;
}

/* Settle the ids: those no register gave come from the first origins. */
static void settle_ids(gen *g)
{
    int cl = g->role == DCS_ROLE_CLIENT;
    dcs_buf *co = cl ? &g->iut_origin : &g->peer_origin, *so = cl ? &g->peer_origin : &g->iut_origin;
    const dcs_buf *c, *s;
    if (!g->have_client && (cl ? g->have_iut_origin : g->have_peer_origin))
        g->have_client = set_buf(g, &g->client, co->data, co->len) == 0;
    if (!g->have_server && (cl ? g->have_peer_origin : g->have_iut_origin))
        g->have_server = set_buf(g, &g->server, so->data, so->len) == 0;
    c = g->have_client ? &g->client : NULL;
    s = g->have_server ? &g->server : NULL;
    g->iut = cl ? c : s;
    g->peer = cl ? s : c;
}

static int generalize(gen *g, const char *text, size_t len, const char *new_id)
{
    dcs_case *c = NULL;
    dcs_case_error err;
    int rc;
    if (!text && len)
        return gfail(g, 0, "no recording");
    /* A recording is a case itself; one larger than a case may be (the
     * recorder goes on past the limit) may shrink below it. */
    if (len <= DCS_CASE_MAX_BYTES) {
        rc = dcs_case_parse(text ? text : "", len, g->out->alloc, &c, &err);
        if (rc == DCS_ENOMEM)
            return gfail(g, 0, "out of memory");
        if (rc != 0)
            return gfail(g, err.line, "the recording is not a case: %s", err.reason);
        dcs_case_free(c);
    }
    g->pass = 1;
    if (lines(g, text, len) != 0)
        return -1;
    if (!g->role || !g->id.data || !g->title.data)
        return gfail(g, 1, "not a recording: no %s directive",
                     !g->id.data ? "id" : !g->title.data ? "title" : "role");
    settle_ids(g);
    if (g->nomem)
        return gfail(g, 0, "out of memory");
    g->pass = 2;
    if (header(g, new_id) != 0 || lines(g, text, len) != 0)
        return -1;
    rc = dcs_case_parse(g->out->data + g->out0, g->out->len - g->out0, g->out->alloc, &c, &err);
    if (rc == DCS_ENOMEM)
        return gfail(g, 0, "out of memory");
    if (rc != 0)
        return gfail(g, 0, "the generalized case cannot be read (line %d: %s)%s", err.line,
                     err.reason,
                     g->out->len - g->out0 > DCS_CASE_MAX_BYTES
                         ? "; cut the recording into smaller pieces"
                         : "; this is a bug of dcs-conform generalize");
    dcs_case_free(c);
    return 0;
}

int conf_generalize(const char *text, size_t len, const char *new_id, dcs_buf *out, char *why,
                    size_t whylen)
{
    gen g;
    dcs_buf *bufs[] = {&g.id,          &g.title,     &g.client,    &g.server,
                       &g.iut_origin,  &g.peer_origin, &g.sent_nonce, &g.nonce,
                       &g.tmp,         &g.lb,        &g.rids.pool, &g.rids.idx,
                       &g.sent.pool,   &g.sent.idx,  &g.sent_nonces.pool, &g.sent_nonces.idx};
    size_t i;
    int rc;
    if (why && whylen)
        why[0] = 0;
    if (!out)
        return -1;
    memset(&g, 0, sizeof g);
    for (i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dcs_buf_init(bufs[i], out->alloc);
    g.out = out;
    g.out0 = out->len;
    g.why = why;
    g.whylen = whylen;
    g.stamp = -1;
    rc = generalize(&g, text, len, new_id);
    if (rc != 0) {
        if (why && whylen && !why[0])
            gfail(&g, 0, "out of memory");
        out->len = g.out0;
    }
    for (i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dcs_buf_free(bufs[i]);
    return rc == 0 ? 0 : -1;
}
