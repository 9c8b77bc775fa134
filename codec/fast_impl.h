/* fast_impl.h - internal: the fast lane's parser (see fast.h), included once
 * per instruction set. The includer defines DCS__FAST_SUFFIX (a name suffix),
 * DCS__FAST_TARGET (a function attribute, or nothing) and DCS__FAST_CLASSIFY
 * (the block classifier of fast.h to use).
 *
 * String bodies are skipped with a bit mask of "stop" bytes ('"', '\\',
 * bytes < 0x20 or >= 0x80, and every position at or past the end) of the 64
 * bytes from a block start blk: the end of a plain run is a shift and a
 * count of trailing zeros, and the mask is only recomputed when a string
 * starts past the block. That keeps the loads and compares off the chain of
 * dependent instructions that moves p forward. */

#define DCS__F(name) DCS__CAT(name, DCS__FAST_SUFFIX)

/* A string body from p (after the opening quote): one past the closing
 * quote, or NULL. *esc is set if it holds an escape. */
DCS__FAST_TARGET __attribute__((always_inline)) static inline dcs__cp
DCS__F(dcs__fast_string)(dcs__cp p, dcs__cp pe, dcs__cp *blk, uint64_t *stop, int *esc)
{
    for (;;) {
        unsigned char c;
        size_t off = (size_t)(p - *blk);
        uint64_t m;
        if (__builtin_expect(off >= 64, 0)) {
            if (p >= pe)
                return NULL;
            *blk = p;
            *stop = DCS__FAST_CLASSIFY(p, pe);
            off = 0;
        }
        m = *stop >> off;
        if (__builtin_expect(!m, 0)) {
            p = *blk + 64;
            continue;
        }
        p += __builtin_ctzll(m);
        if (__builtin_expect(p >= pe, 0))
            return NULL;
        c = *p;
        if (__builtin_expect(c == '"', 1))
            return p + 1;
        if (c == '\\') {
            p = dcs__fast_escape(p, pe);
            if (!p)
                return NULL;
            *esc = 1;
        } else if (c >= 0x80) {
            size_t n = dcs__utf8_len(p, pe);
            if (!n)
                return NULL;
            p += n;
        } else {
            return NULL; /* a control byte */
        }
    }
}

/* A nested object or array from p (at its '{' or '['), which would stand at
 * nesting depth `depth`: one past its closing bracket, or NULL. At most 64
 * levels are tracked (a bit each: 1 for an array). */
DCS__FAST_TARGET __attribute__((always_inline)) static inline dcs__cp
DCS__F(dcs__fast_nested)(dcs__cp p, dcs__cp pe, dcs__cp *blk, uint64_t *stop, unsigned depth,
                         unsigned max_depth)
{
    uint64_t arr = 0; /* bit 0: the innermost open container is an array */
    unsigned lvl = 0;
    int esc = 0;

open:
    if (depth > max_depth || lvl == 64)
        return NULL;
    arr = (arr << 1) | (*p == '[');
    lvl++;
    p++;
    DCS__WS_OR(p, NULL);
    if (*p == (arr & 1 ? ']' : '}'))
        goto closed;
item:
    if (!(arr & 1)) {
        if (*p != '"' || !(p = DCS__F(dcs__fast_string)(p + 1, pe, blk, stop, &esc)))
            return NULL;
        if (p < pe && *p == ':')
            p++;
        else if ((p = dcs__fast_ws(p, pe)) < pe && *p == ':')
            p++;
        else
            return NULL;
        DCS__WS_OR(p, NULL);
    }
    switch (*p) {
    case '"':
        p = DCS__F(dcs__fast_string)(p + 1, pe, blk, stop, &esc);
        break;
    case '{':
    case '[':
        depth++;
        goto open;
    case 't': case 'f': case 'n':
        p = dcs__fast_literal(p, pe);
        break;
    default:
        p = dcs__fast_number(p, pe);
        break;
    }
    if (!p)
        return NULL;
after:
    DCS__WS_OR(p, NULL);
    if (*p == ',') {
        p++;
        DCS__WS_OR(p, NULL);
        goto item;
    }
    if (*p != (arr & 1 ? ']' : '}'))
        return NULL;
closed:
    p++;
    arr >>= 1;
    depth--;
    if (--lvl == 0)
        return p;
    goto after;
}

/* The envelope from p (at its '{') within [p, pe), pe already cut at the
 * size limit. Records its members into spans[0..cap) with stream offsets
 * (base is the offset of p). Returns the message length and sets *n_spans, or
 * returns 0 (see fast.h). */
DCS__FAST_TARGET static size_t DCS__F(dcs__fast_message)(dcs__cp p, dcs__cp pe, uint64_t base,
                                                         unsigned max_depth,
                                                         struct dcs__span *spans, size_t cap,
                                                         size_t *n_spans)
{
    dcs__cp start = p, blk = p;
    uint64_t stop = DCS__FAST_CLASSIFY(p, pe);
    size_t n = 0;

#define FOFF(q) (base + (uint64_t)((q)-start))
    p++;
    DCS__WS_OR(p, 0);
    if (*p != '}') {
        for (;;) {
            struct dcs__span *s;
            dcs__cp q;
            int esc = 0;
            if (*p != '"' || n == cap)
                return 0;
            s = &spans[n++];
            s->ns = FOFF(p + 1);
            if (!(q = DCS__F(dcs__fast_string)(p + 1, pe, &blk, &stop, &esc)))
                return 0;
            s->ne = FOFF(q - 1);
            s->nesc = (unsigned char)esc;
            s->vesc = 0;
            p = q;
            if (p < pe && *p == ':')
                p++;
            else if ((p = dcs__fast_ws(p, pe)) < pe && *p == ':')
                p++;
            else
                return 0;
            DCS__WS_OR(p, 0);
            s->vs = FOFF(p);
            switch (*p) {
            case '"':
                esc = 0;
                q = DCS__F(dcs__fast_string)(p + 1, pe, &blk, &stop, &esc);
                s->vesc = (unsigned char)esc;
                break;
            case '{':
            case '[':
                q = DCS__F(dcs__fast_nested)(p, pe, &blk, &stop, 2, max_depth);
                break;
            case 't': case 'f': case 'n':
                q = dcs__fast_literal(p, pe);
                break;
            default:
                q = dcs__fast_number(p, pe);
                break;
            }
            if (!q)
                return 0;
            p = q;
            s->ve = FOFF(p);
            DCS__WS_OR(p, 0);
            if (*p == '}')
                break;
            if (*p != ',')
                return 0;
            p++;
            DCS__WS_OR(p, 0);
        }
    }
#undef FOFF
    *n_spans = n;
    return (size_t)(p + 1 - start);
}

#undef DCS__F
