/* decoder.rl - the streaming envelope decoder (spec 4, 5, 6, 11).
 *
 * Input arrives in chunks of any size. The Ragel machine below runs over each
 * chunk once; its state (cs, top, stack) lives in the decoder, so a message may
 * be split anywhere. Nothing points into a caller's chunk across calls: the
 * decoder records stream offsets, and when a message spans chunks it copies the
 * message's bytes into its own buffer (mbuf). A message that lies inside one
 * chunk is handed out in place (zero copy).
 *
 * Modes:
 * - NORMAL: the machine runs.
 * - RESYNC: after a syntax error, skip to the next '{' (spec 11.2 a).
 * - DEEP:   after too_deep, skip the over-deep value with a string-aware
 *           bracket counter, then resume the machine after it (spec 11.2 d).
 * A message that has already been reported (too_large, too_deep, nomem) is
 * still parsed to its end in "discard" state, without buffering, and dropped.
 *
 * Small chunks in the middle of a message that hold no '}' cannot complete a
 * message, so the decoder only copies them (it must keep them anyway) and runs
 * the machine over them later, in one go, when a chunk that may end the
 * message arrives or the stream ends ("replay"). The bytes are parsed in the
 * same order with the same offsets, so the events are the same; feeding one
 * byte at a time then costs a copy per byte instead of a machine entry.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/codec.h"
#include "scan.h"

/* ------------------------------------------------------------------------ */
/* The decoder                                                               */

enum { MODE_NORMAL, MODE_RESYNC, MODE_DEEP };

/* Chunks of at most this many bytes may be deferred (see dcs__try_defer). */
#define DCS__DEFER_MAX 256u

/* Known envelope members, in wire order. */
enum { M_ORIGIN, M_DESTINATION, M_TYPE, M_KEY, M_PAYLOAD, M_TIMESTAMP, M_COUNT, M_UNKNOWN = -1 };
static const char *const dcs__member_names[M_COUNT] = {
    "origin", "destination", "type", "key", "payload", "timestamp",
};

/* A top-level member as stream offsets: name body [ns, ne), value [vs, ve). */
struct dcs__span {
    uint64_t ns, ne, vs, ve;
    unsigned char nesc, vesc; /* the name / the string value holds an escape */
};

#include "fast.h"

struct dcs_decoder {
    /* First: what the inline fast paths in codec.h use. While one-byte
     * chunks may be deferred, dptr - pend.data is the deferral buffer's
     * length (pend.len is brought up to date by dcs__sync). */
    struct dcs__decoder_hot hot;

    /* Ragel state */
    int cs, top;
    int *stack;
    int err; /* classification from error actions, 0 if none */
    int esc; /* the current top-level string has an escape */

    /* configuration */
    size_t max_size;
    unsigned max_depth;
    const dcs_allocator *alloc;

    /* the current chunk */
    const unsigned char *chunk;
    size_t chunk_len, pos;
    uint64_t base; /* stream offset of chunk[0] */

    int mode;
    int discard;      /* the message in progress has been reported; drop it */
    int done;         /* the machine has just closed a message */
    int nomem;        /* an allocation failed while recording the message */
    int oversize_cut; /* exec stopped at the size limit, not at the chunk end */

    /* the message in progress */
    uint64_t msg_start; /* DCS_NO_OFFSET between messages */
    uint64_t msg_end;   /* one past its '}' once done */
    dcs_buf mbuf;       /* its bytes [msg_start, buf_end) when it spans chunks */
    uint64_t buf_end;
    struct dcs__span *spans;
    size_t n_spans, cap_spans;
    struct dcs__span sink; /* written instead of spans[] after a failed allocation */
    struct dcs__span *cur; /* the member being parsed: &spans[n_spans - 1] or &sink */

    /* Deferred parsing of small chunks (see dcs__try_defer): bytes fed but
     * not yet run through the machine, stream offsets [pend_base, +len). */
    dcs_buf pend;
    uint64_t pend_base;
    /* The deferral buffer's length when base, chunk_len and stats.bytes_in
     * last counted every byte fed: the inline one-byte path of
     * dcs_decoder_feed() only appends (hot.dptr), dcs__sync catches up. */
    size_t pend_sync;
    int replay; /* the current chunk is pend; the caller's chunk is saved */
    const unsigned char *r_chunk;
    size_t r_len, r_pos;
    uint64_t r_base;
    int r_have;

    /* DEEP mode */
    uint64_t deep_at, deep_depth;
    int deep_str, deep_esc;

    /* output storage, reused */
    dcs_member *members, *unknown;
    size_t cap_members;
    dcs_buf scratch;

    dcs__fast_fn fast; /* the fast lane's variant for this CPU (fast.h) */

    dcs_decoder_stats stats;
};

/* The deferral buffer: its length, setting it, and whether feed's one-byte
 * path may append to it (set when next() returns DCS_AGAIN inside a message
 * it keeps; the previous chunk is then consumed). */
static inline size_t dcs__plen(const dcs_decoder *d)
{
    return (size_t)(d->hot.dptr - (unsigned char *)d->pend.data);
}

static inline void dcs__set_plen(dcs_decoder *d, size_t n)
{
    d->pend.len = n;
    d->hot.dptr = (unsigned char *)d->pend.data + n;
}

static inline int dcs__can_defer(const dcs_decoder *d)
{
    return d->hot.dend != (unsigned char *)d->pend.data;
}

static inline void dcs__defer(dcs_decoder *d, int on)
{
    d->hot.dend = (unsigned char *)d->pend.data + (on ? DCS__DEFER_MAX : 0);
}

/* Account for the bytes the inline one-byte path of dcs_decoder_feed()
 * appended to pend: as if each had been fed as a chunk of its own, the last
 * one being the current one (consumed). */
static inline void dcs__sync(dcs_decoder *d)
{
    size_t n = dcs__plen(d), k = n - d->pend_sync;
    if (k) {
        d->stats.bytes_in += k;
        d->pend.len = n;
        if (d->pend_sync == 0)
            d->pend_base = d->base + d->chunk_len;
        d->base += d->chunk_len + k - 1;
        d->chunk_len = 1;
        d->pos = 1;
        d->hot.have_chunk = 0;
        d->pend_sync = n;
    }
}

#define OFF(ptr) (d->base + (uint64_t)((ptr) - d->chunk))
#define DCS__SETERR(code)                                                                          \
    do {                                                                                           \
        if (!d->err)                                                                               \
            d->err = (code);                                                                       \
    } while (0)

static inline int dcs__is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* A byte that could belong to a number or literal token. */
static inline int dcs__token_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' ||
           c == '+' || c == '-' || c == '_';
}

static int dcs__value_start_error(unsigned char c)
{
    if (c == '+' || c == '.' || (c >= '0' && c <= '9'))
        return DCS_ENUMBER;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return DCS_ELITERAL;
    return DCS_EUNEXPECTED;
}

static void dcs__grow_spans(dcs_decoder *d)
{
    size_t cap = d->cap_spans ? d->cap_spans * 2 : 16;
    struct dcs__span *s = d->alloc->realloc(d->alloc->ud, d->spans, cap * sizeof *s);
    if (!s) {
        d->nomem = 1;
        return;
    }
    d->spans = s;
    d->cap_spans = cap;
}

/* Start recording a member whose name begins at ns. After a failed
 * allocation the member is recorded into a sink and the message is reported
 * as nomem when it ends. */
static inline void dcs__push_span(dcs_decoder *d, uint64_t ns)
{
    struct dcs__span *s;
    if (d->n_spans == d->cap_spans)
        dcs__grow_spans(d);
    if (d->nomem) {
        s = &d->sink;
    } else {
        s = &d->spans[d->n_spans++];
    }
    s->ns = s->ne = s->vs = s->ve = ns;
    s->nesc = s->vesc = 0;
    d->cur = s;
    d->esc = 0;
}

%%{
    machine dcs_envelope;
    include dcs_json "json.rl";
    access d->;
    variable p p;
    variable pe pe;

    action msg_start {
        d->msg_start = OFF(p);
        d->n_spans = 0;
        d->nomem = 0;
        if ((size_t)(pe - p) > d->max_size) {
            pe = p + d->max_size;
            d->oversize_cut = 1;
        }
    }
    action msg_end {
        d->msg_end = OFF(p) + 1;
        d->done = 1;
        fbreak;
    }
    # One action per opening quote records and then skips (fexec moves p, so
    # nothing may run after it on the same transition).
    action tkey_open  { dcs__push_span(d, OFF(p) + 1); fexec dcs__scan_plain(p + 1, pe); }
    action tstr_open  { d->cur->vs = OFF(p); d->esc = 0; fexec dcs__scan_plain(p + 1, pe); }
    action tkey_end   { d->cur->ne = OFF(p); d->cur->nesc = (unsigned char)d->esc; }
    action tval_start { d->cur->vs = OFF(p); d->esc = 0; }
    action tval_end1  { d->cur->ve = OFF(p) + 1; d->cur->vesc = (unsigned char)d->esc; }
    action tval_end0  { d->cur->ve = OFF(p); }
    action topen_obj  { d->cur->vs = OFF(p); if (DCS__TOO_DEEP()) fbreak; fcall obj; }
    action topen_arr  { d->cur->vs = OFF(p); if (DCS__TOO_DEEP()) fbreak; fcall arr; }

    tkey = ( '"' @tkey_open str_body ) <>!err_str @tkey_end;
    tvalue = ( ( '"' @tstr_open str_body ) <>!err_str @tval_end1
             | literal >tval_start @tval_end1
             | number >tval_start %tval_end0
             | '{' @topen_obj
             | '[' @topen_arr ) >!err_value;
    tmember = tkey ws* ':' ws* tvalue;
    envelope = '{' @msg_start ws* ( tmember ws* ( ',' ws* tmember ws* )* )? '}' @msg_end;

    main := ( ws | envelope )*;

    write data nofinal;
}%%

/* Entering a nested value: the envelope is depth 1, so a container opened
 * with `top` frames on the stack would be at depth top + 2. */
#define DCS__TOO_DEEP()                                                                            \
    ((unsigned)d->top + 2 > d->max_depth ? (d->deep_at = OFF(p), d->mode = MODE_DEEP, 1) : 0)
#define DCS__ESC() (d->esc = 1)

/* Leaving a nested value: back at the envelope's level, the member's value ends. */
#define DCS__CLOSE()                                                                               \
    do {                                                                                           \
        if (d->top == 1)                                                                           \
            d->cur->ve = OFF(p) + 1;                                                     \
    } while (0)

/* Run the machine over [p, pe). Returns where it stopped. */
static const unsigned char *dcs__exec(dcs_decoder *d, const unsigned char *p,
                                      const unsigned char *pe)
{
    const unsigned char *eof = NULL; /* a stream has no end the machine sees */
    (void)eof;
    /* clang-format off */
    %% write exec;
    /* clang-format on */
    return p;
}
#undef DCS__TOO_DEEP
#undef DCS__CLOSE
#undef DCS__ESC

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

void dcs_decoder_config_init(dcs_decoder_config *cfg)
{
    cfg->max_message_size = DCS_DEFAULT_MAX_MESSAGE_SIZE;
    cfg->max_depth = DCS_DEFAULT_MAX_DEPTH;
    cfg->allocator = NULL;
}

static void dcs__start_stream(dcs_decoder *d)
{
    d->cs = dcs_envelope_start;
    d->top = 0;
    d->err = 0;
    d->chunk = NULL;
    d->chunk_len = d->pos = 0;
    d->base = 0;
    d->hot.have_chunk = 0;
    d->mode = MODE_NORMAL;
    d->discard = d->done = d->nomem = d->oversize_cut = 0;
    d->msg_start = DCS_NO_OFFSET;
    d->msg_end = 0;
    d->mbuf.len = 0;
    d->buf_end = 0;
    d->n_spans = 0;
    d->cur = &d->sink;
    dcs__set_plen(d, 0);
    d->pend_sync = 0;
    d->replay = 0;
    dcs__defer(d, 0);
}

dcs_decoder *dcs_decoder_new(const dcs_decoder_config *cfg, int *err)
{
    dcs_decoder_config def;
    const dcs_allocator *a;
    dcs_decoder *d;

    if (!cfg) {
        dcs_decoder_config_init(&def);
        cfg = &def;
    }
    if (cfg->max_depth < 2 || cfg->max_depth > DCS_MAX_DEPTH_LIMIT || cfg->max_message_size < 2 ||
        cfg->max_message_size > (size_t)1 << 40) {
        if (err)
            *err = DCS_EINVAL;
        return NULL;
    }
    a = cfg->allocator ? cfg->allocator : &dcs_default_allocator;
    d = a->alloc(a->ud, sizeof *d);
    if (!d)
        goto nomem;
    memset(d, 0, sizeof *d);
    d->alloc = a;
    d->max_size = cfg->max_message_size;
    d->max_depth = cfg->max_depth;
    d->fast = dcs__fast_pick();
    d->stack = a->alloc(a->ud, sizeof(int) * cfg->max_depth);
    if (!d->stack) {
        a->free(a->ud, d);
        goto nomem;
    }
    dcs_buf_init(&d->mbuf, a);
    dcs_buf_init(&d->scratch, a);
    dcs_buf_init(&d->pend, a);
    if (dcs_buf_reserve(&d->pend, DCS__DEFER_MAX)) {
        dcs_decoder_free(d);
        goto nomem;
    }
    dcs__start_stream(d);
    if (err)
        *err = 0;
    return d;
nomem:
    if (err)
        *err = DCS_ENOMEM;
    return NULL;
}

void dcs_decoder_free(dcs_decoder *d)
{
    const dcs_allocator *a;
    if (!d)
        return;
    a = d->alloc;
    dcs_buf_free(&d->mbuf);
    dcs_buf_free(&d->scratch);
    dcs_buf_free(&d->pend);
    if (d->spans)
        a->free(a->ud, d->spans);
    if (d->members)
        a->free(a->ud, d->members);
    if (d->unknown)
        a->free(a->ud, d->unknown);
    a->free(a->ud, d->stack);
    a->free(a->ud, d);
}

void dcs_decoder_reset(dcs_decoder *d)
{
    dcs__sync(d);
    /* Bytes of a message cut off by the reset were never delivered. */
    if (d->msg_start != DCS_NO_OFFSET) {
        uint64_t here = d->hot.have_chunk ? d->base + d->pos : d->buf_end;
        if (d->replay)
            here = d->r_have ? d->r_base + d->r_pos : d->pend_base + dcs__plen(d);
        else if (dcs__plen(d))
            here = d->pend_base + dcs__plen(d);
        if (here > d->msg_start)
            d->stats.bytes_skipped += here - d->msg_start;
    }
    dcs__start_stream(d);
}

const dcs_decoder_stats *dcs_decoder_get_stats(const dcs_decoder *d)
{
    /* Bytes the inline path deferred are counted now (the decoder is never
     * a const object: dcs_decoder_new() allocates it). */
    dcs__sync((dcs_decoder *)d);
    return &d->stats;
}

int dcs_decoder_idle(const dcs_decoder *d)
{
    return d->msg_start == DCS_NO_OFFSET && d->mode != MODE_DEEP && dcs__plen(d) == 0;
}

static inline int dcs__try_defer(dcs_decoder *d);

/* The external definitions of codec.h's inline functions. */
extern inline int dcs_decoder_feed(dcs_decoder *d, const void *chunk, size_t len);
extern inline int dcs_decoder_next(dcs_decoder *d, dcs_message *msg, dcs_error *err);

/* Every chunk but the one byte the inline path takes. */
int dcs__decoder_feed(dcs_decoder *d, const void *chunk, size_t len)
{
    dcs__sync(d);
    if (d->hot.have_chunk && d->pos < d->chunk_len)
        return DCS_EBUSY;
    d->base += d->chunk_len;
    d->chunk = chunk;
    d->chunk_len = len;
    d->stats.bytes_in += len;
    d->pos = 0;
    d->hot.have_chunk = 1;
    if (len > DCS__DEFER_MAX || !dcs__try_defer(d))
        dcs__defer(d, 0); /* set again when next() has consumed the chunk */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static const char *dcs__byte_desc(unsigned char c, char buf[16])
{
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "0x%02x", c);
    return buf;
}

static int dcs__report(dcs_decoder *d, dcs_error *err, int code, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int dcs__report(dcs_decoder *d, dcs_error *err, int code, uint64_t off, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    err->offset = off;
    err->msg_offset = d->msg_start;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    d->stats.errors++;
    return DCS_ERROR;
}

/* Forget the message in progress; its bytes up to stream offset `upto` were
 * never delivered. */
static void dcs__drop_message(dcs_decoder *d, uint64_t upto)
{
    if (d->msg_start != DCS_NO_OFFSET && upto > d->msg_start)
        d->stats.bytes_skipped += upto - d->msg_start;
    d->msg_start = DCS_NO_OFFSET;
    d->mbuf.len = 0;
    d->discard = 0;
    d->nomem = 0;
    d->n_spans = 0;
}

/* A syntax error at chunk position p: report, drop the message, resync. */
static int dcs__syntax_error(dcs_decoder *d, const unsigned char *p, dcs_error *err)
{
    uint64_t off = OFF(p);
    int code = d->err, rc = DCS_AGAIN, reported = !d->discard;
    char b[16];

    if (!code)
        code = d->msg_start == DCS_NO_OFFSET ? DCS_EGARBAGE : DCS_EUNEXPECTED;
    if (reported) {
        switch (code) {
        case DCS_EGARBAGE:
            rc = dcs__report(d, err, code, off, "expected '{' to begin a message, found %s",
                             dcs__byte_desc(*p, b));
            break;
        case DCS_EUTF8:
            rc = dcs__report(d, err, code, off, "invalid UTF-8 byte %s in a string",
                             dcs__byte_desc(*p, b));
            break;
        case DCS_ECONTROL:
            rc = dcs__report(d, err, code, off,
                             "unescaped control character %s in a string (escape it as \\u%04x)",
                             dcs__byte_desc(*p, b), *p);
            break;
        default:
            rc = dcs__report(d, err, code, off, "%s: found %s", dcs_strerror(code),
                             dcs__byte_desc(*p, b));
            break;
        }
    }
    d->err = 0;
    d->stats.resyncs++;
    /* A '{' that the grammar refused starts the next message (spec 11.2 a). */
    if (*p == '{') {
        dcs__drop_message(d, off);
        d->pos = (size_t)(p - d->chunk);
    } else {
        if (d->msg_start == DCS_NO_OFFSET)
            d->stats.bytes_skipped += 1;
        dcs__drop_message(d, off + 1);
        d->pos = (size_t)(p - d->chunk) + 1;
    }
    d->mode = MODE_RESYNC;
    d->cs = dcs_envelope_start;
    d->top = 0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Completing a message                                                      */

/* Which envelope member a name is. Each comparison has a constant length, so
 * the compiler turns it into a few loads instead of a call. */
__attribute__((always_inline)) static inline int dcs__member_index(const char *name, size_t len)
{
    switch (len) {
    case 3: return memcmp(name, "key", 3) == 0 ? M_KEY : M_UNKNOWN;
    case 4: return memcmp(name, "type", 4) == 0 ? M_TYPE : M_UNKNOWN;
    case 6: return memcmp(name, "origin", 6) == 0 ? M_ORIGIN : M_UNKNOWN;
    case 7: return memcmp(name, "payload", 7) == 0 ? M_PAYLOAD : M_UNKNOWN;
    case 9: return memcmp(name, "timestamp", 9) == 0 ? M_TIMESTAMP : M_UNKNOWN;
    case 11: return memcmp(name, "destination", 11) == 0 ? M_DESTINATION : M_UNKNOWN;
    default: return M_UNKNOWN;
    }
}

/* The slow case of dcs__parse_number: a copy, strtoll or strtod. tmp holds
 * the copy of a long number. */
static int dcs__parse_number_slow(dcs_number *n, const char *text, size_t len, dcs_buf *tmp);

static inline int dcs__parse_number(dcs_number *n, const char *text, size_t len,
                                    const dcs_allocator *a)
{
    dcs_buf tmp;
    int rc;
    size_t i;

    n->raw.ptr = text;
    n->raw.len = len;
    /* The common case, an integer of at most 18 digits (a timestamp in ms):
     * no copy, no strtoll. The text is valid JSON, so it is "-"? digits.
     * Eight digits at a time where there are eight (SWAR). */
    if (len && len <= 19) {
        int neg = text[0] == '-';
        uint64_t v = 0; /* 19 digits fit */
        i = (size_t)neg;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (len - i >= 8) {
            uint64_t w, x;
            memcpy(&w, text + i, 8);
            x = ((w & 0xf0f0f0f0f0f0f0f0ull) |
                 (((w + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) >> 4)) ^
                0x3333333333333333ull;
            if (x)
                break; /* a non-digit among them: the loop below finds it */
            w -= 0x3030303030303030ull;
            w = w * 10 + (w >> 8);
            w = ((w & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
                 ((w >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >> 32;
            v = v * 100000000 + w;
            i += 8;
        }
#endif
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(text[i] - '0');
        if (i == len && len - (size_t)neg <= 18) {
            n->kind = DCS_NUM_INT;
            n->i = neg ? -(int64_t)v : (int64_t)v;
            n->d = (double)n->i;
            return 0;
        }
    }
    /* A separate buffer: scratch holds the strings handed out. */
    dcs_buf_init(&tmp, a);
    rc = dcs__parse_number_slow(n, text, len, &tmp);
    dcs_buf_free(&tmp);
    return rc;
}

static int dcs__parse_number_slow(dcs_number *n, const char *text, size_t len, dcs_buf *tmp)
{
    char small[32], *s = small;
    size_t i;
    int integral = 1;

    for (i = 0; i < len; i++)
        if (text[i] == '.' || text[i] == 'e' || text[i] == 'E')
            integral = 0;
    if (len >= sizeof small) {
        tmp->len = 0;
        if (dcs_buf_reserve(tmp, len + 1))
            return DCS_ENOMEM;
        s = tmp->data;
    }
    memcpy(s, text, len);
    s[len] = '\0';
    if (integral) {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == 0 && end == s + len) {
            n->kind = DCS_NUM_INT;
            n->i = v;
            n->d = (double)v;
            return 0;
        }
    }
    n->kind = DCS_NUM_DOUBLE;
    n->d = strtod(s, NULL);
    n->i = 0;
    return 0;
}

/* The message [msg_start, msg_end) is complete and well-formed JSON: check
 * the envelope rules (spec 6) and fill *msg, or report the first violation. */
static int dcs__finish_message(dcs_decoder *d, dcs_message *msg, dcs_error *err)
{
    const char *bp;
    uint64_t bo;
    size_t i, n = d->n_spans, nu = 0, need = 0;
    int idx[M_COUNT];
    int rc = DCS_MESSAGE;
    uint64_t start = d->msg_start, end = d->msg_end;

    if (d->mbuf.len) {
        bp = d->mbuf.data;
        bo = d->msg_start;
    } else {
        bp = (const char *)d->chunk;
        bo = d->base;
    }
#define PTR(off) (bp + ((off)-bo))

    if (d->nomem)
        goto nomem;
    if (d->cap_members < n) {
        size_t cap = n < 16 ? 16 : n;
        dcs_member *m = d->alloc->realloc(d->alloc->ud, d->members, cap * sizeof *m);
        if (!m)
            goto nomem;
        d->members = m;
        m = d->alloc->realloc(d->alloc->ud, d->unknown, cap * sizeof *m);
        if (!m)
            goto nomem;
        d->unknown = m;
        d->cap_members = cap;
    }
    for (i = 0; i < M_COUNT; i++)
        idx[i] = -1;
    d->scratch.len = 0;
    for (i = 0; i < n; i++) {
        const struct dcs__span *s = &d->spans[i];
        const char *name = PTR(s->ns);
        size_t nlen = (size_t)(s->ne - s->ns);
        int k;
        d->members[i].name.ptr = name;
        d->members[i].name.len = nlen;
        d->members[i].value.ptr = PTR(s->vs);
        d->members[i].value.len = (size_t)(s->ve - s->vs);
        if (s->nesc) {
            /* "orig\u0069n" is the member origin (RFC 8259 compares names
             * after unescaping). */
            size_t mark = d->scratch.len;
            if (dcs_unescape(&d->scratch, name, nlen))
                goto nomem;
            k = dcs__member_index(d->scratch.data + mark, d->scratch.len - mark);
            d->scratch.len = mark;
        } else {
            k = dcs__member_index(name, nlen);
        }
        if (k == M_UNKNOWN) {
            d->unknown[nu++] = d->members[i];
            continue;
        }
        if (idx[k] >= 0) {
            rc = dcs__report(d, err, DCS_EDUPLICATE, s->ns - 1,
                             "member \"%s\" appears twice in the envelope", dcs__member_names[k]);
            goto out;
        }
        idx[k] = (int)i;
        {
            char c = *PTR(s->vs);
            int ok = k == M_PAYLOAD ||
                     (k == M_TIMESTAMP ? (c == '-' || (c >= '0' && c <= '9')) : c == '"');
            if (!ok) {
                rc = dcs__report(d, err, DCS_ETYPE, s->vs, "member \"%s\" must be a %s, found %s",
                                 dcs__member_names[k], k == M_TIMESTAMP ? "number" : "string",
                                 c == '{' ? "an object" : c == '[' ? "an array"
                                 : c == 't' || c == 'f' ? "a boolean" : c == 'n' ? "null"
                                 : c == '"' ? "a string" : "a number");
                goto out;
            }
        }
        if (k <= M_KEY)
            need += (size_t)(s->ve - s->vs);
    }
    for (i = 0; i <= M_KEY; i++) {
        if (idx[i] < 0) {
            rc = dcs__report(d, err, DCS_EMISSING, end - 1, "required member \"%s\" is absent",
                             dcs__member_names[i]);
            goto out;
        }
    }

    /* Unescape the four strings into scratch, reserved up front so that the
     * slices stay valid. Unescaped text is never longer than escaped text. */
    if (need > d->scratch.cap - d->scratch.len && dcs_buf_reserve(&d->scratch, need))
        goto nomem;
    {
        dcs_slice *dst[4] = {&msg->origin, &msg->destination, &msg->type, &msg->key};
        for (i = 0; i <= M_KEY; i++) {
            const struct dcs__span *s = &d->spans[idx[i]];
            const char *body = PTR(s->vs + 1);
            size_t blen = (size_t)(s->ve - s->vs - 2);
            if (s->vesc) {
                size_t mark = d->scratch.len;
                if (dcs_unescape(&d->scratch, body, blen))
                    goto nomem; /* cannot happen: validated and reserved */
                dst[i]->ptr = d->scratch.data + mark;
                dst[i]->len = d->scratch.len - mark;
            } else {
                dst[i]->ptr = body;
                dst[i]->len = blen;
            }
        }
    }
    if (idx[M_PAYLOAD] >= 0) {
        msg->payload = d->members[idx[M_PAYLOAD]].value;
    } else {
        msg->payload.ptr = NULL;
        msg->payload.len = 0;
    }
    msg->has_timestamp = idx[M_TIMESTAMP] >= 0;
    if (msg->has_timestamp) {
        dcs_slice v = d->members[idx[M_TIMESTAMP]].value;
        if (dcs__parse_number(&msg->timestamp, v.ptr, v.len, d->alloc))
            goto nomem;
    } else {
        memset(&msg->timestamp, 0, sizeof msg->timestamp);
    }
    msg->members = d->members;
    msg->n_members = n;
    msg->unknown = d->unknown;
    msg->n_unknown = nu;
    msg->raw.ptr = PTR(start);
    msg->raw.len = (size_t)(end - start);
    msg->offset = start;
    d->stats.messages++;
    /* The message leaves the decoder; forget it without counting a skip. */
    d->msg_start = DCS_NO_OFFSET;
    d->mbuf.len = 0;
    d->n_spans = 0;
    return DCS_MESSAGE;
#undef PTR

nomem:
    rc = dcs__report(d, err, DCS_ENOMEM, start, "out of memory while decoding a message");
out:
    dcs__drop_message(d, end);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

/* Keep the bytes of the message in progress that this chunk holds. */
static inline int dcs__buffer_tail(dcs_decoder *d, uint64_t upto)
{
    uint64_t from = d->buf_end > d->msg_start && d->mbuf.len ? d->buf_end : d->msg_start;
    size_t n;
    if (from < d->base)
        from = d->base;
    if (upto > from) {
        n = (size_t)(upto - from);
        if (n > d->mbuf.cap - d->mbuf.len && dcs_buf_reserve(&d->mbuf, n))
            return DCS_ENOMEM;
        memcpy(d->mbuf.data + d->mbuf.len, d->chunk + (from - d->base), n);
        d->mbuf.len += n;
    }
    d->buf_end = upto;
    return 0;
}

/* DEEP mode: skip the over-deep value. Returns 1 when it has ended. */
static int dcs__skip_deep(dcs_decoder *d)
{
    const unsigned char *p = d->chunk + d->pos, *pe = d->chunk + d->chunk_len;
    for (; p < pe; p++) {
        unsigned char c = *p;
        if (d->deep_str) {
            if (d->deep_esc)
                d->deep_esc = 0;
            else if (c == '\\')
                d->deep_esc = 1;
            else if (c == '"')
                d->deep_str = 0;
        } else if (c == '"') {
            d->deep_str = 1;
        } else if (c == '{' || c == '[') {
            d->deep_depth++;
        } else if (c == '}' || c == ']') {
            if (--d->deep_depth == 0) {
                d->pos = (size_t)(p + 1 - d->chunk);
                return 1;
            }
        }
    }
    d->pos = d->chunk_len;
    return 0;
}


/* A fresh small chunk inside a message that cannot end the message: keep it
 * for later. Returns 1 if it was deferred. Called by dcs_decoder_feed, so a
 * deferred chunk costs one copy and no machine entry. */
static inline int dcs__try_defer(dcs_decoder *d)
{
    size_t n = d->chunk_len, i;
    const unsigned char *c = d->chunk;
    char *dst;
    /* can_defer: NORMAL mode, inside a message that is being kept (see
     * dcs_decoder_next); pend always has DCS__DEFER_MAX bytes of room. */
    if (!dcs__can_defer(d) || n > DCS__DEFER_MAX - dcs__plen(d))
        return 0;
    /* Small: copy and look for '}' in one pass, without library calls. */
    dst = d->pend.data + dcs__plen(d);
    for (i = 0; i < n; i++) {
        if (c[i] == '}')
            return 0;
        dst[i] = (char)c[i];
    }
    if (dcs__plen(d) == 0)
        d->pend_base = d->base;
    dcs__set_plen(d, dcs__plen(d) + n);
    d->pend_sync = d->pend.len;
    d->pos = n;
    d->hot.have_chunk = 0;
    return 1;
}

/* Run the deferred bytes now, before the caller's current chunk (if any). */
static void dcs__start_replay(dcs_decoder *d)
{
    d->r_chunk = d->chunk;
    d->r_len = d->chunk_len;
    d->r_pos = d->pos;
    d->r_base = d->base;
    d->r_have = d->hot.have_chunk;
    d->chunk = (const unsigned char *)d->pend.data;
    d->chunk_len = dcs__plen(d);
    d->pos = 0;
    d->base = d->pend_base;
    d->hot.have_chunk = 1;
    d->replay = 1;
}

static void dcs__end_replay(dcs_decoder *d)
{
    d->chunk = d->r_chunk;
    d->chunk_len = d->r_len;
    d->pos = d->r_pos;
    d->base = d->r_base;
    d->hot.have_chunk = d->r_have;
    d->replay = 0;
    dcs__set_plen(d, 0);
    d->pend_sync = 0;
}

/* dcs_decoder_next() without its inline test (codec.h): a chunk to go on
 * with is there, or the answer is DCS_AGAIN. */
int dcs__decoder_next(dcs_decoder *d, dcs_message *msg, dcs_error *err)
{
    for (;;) {
        const unsigned char *p, *pe, *q;

        if (!d->hot.have_chunk)
            return DCS_AGAIN;
        if (d->pos == 0 && !d->replay && dcs__plen(d)) {
            dcs__start_replay(d);
            continue;
        }
        if (d->pos >= d->chunk_len) {
        chunk_end:
            /* End of chunk: a message in progress keeps its bytes. */
            if (d->msg_start != DCS_NO_OFFSET && !d->discard) {
                if (dcs__buffer_tail(d, d->base + d->chunk_len)) {
                    uint64_t end = d->base + d->chunk_len;
                    d->discard = 1;
                    d->mbuf.len = 0;
                    if (d->replay)
                        dcs__end_replay(d);
                    else
                        d->hot.have_chunk = 0;
                    return dcs__report(d, err, DCS_ENOMEM, end,
                                       "out of memory while buffering a message");
                }
            }
            if (d->replay) {
                dcs__end_replay(d);
                continue;
            }
            d->hot.have_chunk = 0;
            dcs__defer(d, d->mode == MODE_NORMAL && d->msg_start != DCS_NO_OFFSET && !d->discard);
            return DCS_AGAIN;
        }
        p = d->chunk + d->pos;
        pe = d->chunk + d->chunk_len;

        if (d->mode == MODE_RESYNC) {
            q = memchr(p, '{', (size_t)(pe - p));
            if (!q) {
                d->stats.bytes_skipped += (uint64_t)(pe - p);
                d->pos = d->chunk_len;
                continue;
            }
            d->stats.bytes_skipped += (uint64_t)(q - p);
            d->pos = (size_t)(q - d->chunk);
            d->mode = MODE_NORMAL;
            continue;
        }
        if (d->mode == MODE_DEEP) {
            if (dcs__skip_deep(d))
                d->mode = MODE_NORMAL;
            continue;
        }

        /* MODE_NORMAL. Between messages, try the fast lane first (fast.h):
         * a whole valid message in this chunk needs no machine step. */
        if (d->msg_start == DCS_NO_OFFSET) {
            size_t len, n;
            const unsigned char *lim;
            while (p < pe && DCS__WS(*p))
                p++;
            if (p == pe) {
                d->pos = d->chunk_len;
                goto chunk_end;
            }
            lim = (size_t)(pe - p) > d->max_size ? p + d->max_size : pe;
            if (*p == '{' &&
                (len = d->fast(p, lim, OFF(p), d->max_depth, d->spans, d->cap_spans, &n)) != 0) {
                d->msg_start = OFF(p);
                d->msg_end = d->msg_start + len;
                d->n_spans = n;
                d->nomem = 0;
                d->pos = (size_t)(p - d->chunk) + len;
                return dcs__finish_message(d, msg, err);
            }
        }

        /* Run the machine, at most up to the size limit. */
        d->oversize_cut = 0;
        if (d->msg_start != DCS_NO_OFFSET && !d->discard) {
            uint64_t limit = d->msg_start + d->max_size;
            if (limit < d->base + d->chunk_len) {
                pe = d->chunk + (limit - d->base);
                d->oversize_cut = 1;
            }
        }
        d->done = 0;
        q = dcs__exec(d, p, pe);
        if (d->cs == dcs_envelope_error) {
            /* Inside a message already reported, the error is not reported
             * again; the decoder just resynchronises. */
            if (dcs__syntax_error(d, q, err) == DCS_ERROR)
                return DCS_ERROR;
            continue;
        }
        d->pos = (size_t)(q - d->chunk);

        if (q == d->chunk + d->chunk_len && !d->done && d->mode == MODE_NORMAL)
            goto chunk_end; /* the common case of a chunk that ends mid-message */
        if (d->mode == MODE_DEEP) {
            int reported = !d->discard;
            d->deep_depth = 1;
            d->deep_str = d->deep_esc = 0;
            d->discard = 1;
            d->mbuf.len = 0;
            if (reported)
                return dcs__report(d, err, DCS_ETOO_DEEP, d->deep_at,
                                   "nesting deeper than %u levels", d->max_depth);
            continue;
        }
        if (d->done) {
            d->done = 0;
            if (d->discard) {
                dcs__drop_message(d, d->msg_end);
                continue;
            }
            if (d->mbuf.len && dcs__buffer_tail(d, d->msg_end)) {
                uint64_t end = d->msg_end;
                int rc = dcs__report(d, err, DCS_ENOMEM, d->msg_start,
                                     "out of memory while buffering a message");
                dcs__drop_message(d, end);
                return rc;
            }
            return dcs__finish_message(d, msg, err);
        }
        if (d->oversize_cut && q == pe && pe < d->chunk + d->chunk_len &&
            d->msg_start != DCS_NO_OFFSET) {
            /* The message did not end within max_size bytes. */
            d->discard = 1;
            d->mbuf.len = 0;
            return dcs__report(d, err, DCS_ETOO_LARGE, OFF(q),
                               "message exceeds the maximum size of %zu bytes", d->max_size);
        }
    }
}

int dcs_decoder_finish(dcs_decoder *d, dcs_error *err)
{
    uint64_t end;
    int rc = DCS_AGAIN;
    /* Deferred bytes are parsed first; they may hold errors (never a whole
     * message: they hold no '}'), reported one per call. */
    dcs__sync(d);
    dcs__defer(d, 0);
    if (dcs__plen(d) && !d->replay) {
        d->hot.have_chunk = 0;
        d->pos = d->chunk_len;
        dcs__start_replay(d);
    }
    while (d->replay) {
        dcs_message unused;
        int ev = dcs_decoder_next(d, &unused, err);
        if (ev == DCS_ERROR)
            return DCS_ERROR;
        if (ev == DCS_AGAIN)
            break;
    }
    end = d->base + d->chunk_len;
    if ((d->msg_start != DCS_NO_OFFSET || d->mode == MODE_DEEP) && !d->discard)
        rc = dcs__report(d, err, DCS_ETRUNCATED, end,
                         "the stream ended inside a message that began at byte %llu",
                         (unsigned long long)d->msg_start);
    dcs__drop_message(d, end);
    dcs__start_stream(d);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Standalone validation                                                     */

struct dcs__validator {
    int cs, top, err;
    int *stack;
    unsigned max_depth;
    const unsigned char *deep_at;
};

%%{
    machine dcs_value;
    include dcs_json "json.rl";
    access v->;
    variable p p;
    variable pe pe;

    main := ws* value ws*;

    write data;
}%%

#undef DCS__SETERR
#define DCS__SETERR(code)                                                                          \
    do {                                                                                           \
        if (!v->err)                                                                               \
            v->err = (code);                                                                       \
    } while (0)
#define DCS__TOO_DEEP()                                                                            \
    ((unsigned)v->top + 1 > v->max_depth ? (v->err = DCS_ETOO_DEEP, v->deep_at = p, 1) : 0)
#define DCS__CLOSE() ((void)0)
#define DCS__ESC() ((void)0)

int dcs_json_validate(const char *text, size_t len, unsigned max_depth, dcs_error *err)
{
    int small[256];
    struct dcs__validator vs, *v = &vs;
    const unsigned char *p = (const unsigned char *)text, *pe = p + len, *eof = NULL;
    int code = 0;

    if (max_depth == 0)
        max_depth = DCS_DEFAULT_MAX_DEPTH;
    if (max_depth > DCS_MAX_DEPTH_LIMIT)
        return DCS_EINVAL;
    v->top = 0;
    v->err = 0;
    v->max_depth = max_depth;
    v->stack = small;
    if (max_depth > 256) {
        v->stack = malloc(sizeof(int) * max_depth);
        if (!v->stack)
            return DCS_ENOMEM;
    }
    v->cs = dcs_value_start;
    /* clang-format off */
    %% write exec;
    /* clang-format on */
    (void)eof;
    if (v->err == DCS_ETOO_DEEP) {
        code = DCS_ETOO_DEEP;
        p = v->deep_at;
    } else if (v->cs == dcs_value_error) {
        code = v->err ? v->err : DCS_EUNEXPECTED;
    } else if (v->cs < dcs_value_first_final || v->top != 0) {
        code = DCS_ETRUNCATED;
        p = pe;
    }
    if (code && err) {
        char b[16];
        err->code = code;
        err->offset = (uint64_t)(p - (const unsigned char *)text);
        err->msg_offset = 0;
        if (p < pe)
            snprintf(err->message, sizeof err->message, "%s: found %s", dcs_strerror(code),
                     dcs__byte_desc(*p, b));
        else
            snprintf(err->message, sizeof err->message, "%s", dcs_strerror(code));
    }
    if (v->stack != small)
        free(v->stack);
    return code;
}
