/* typed.c - typed views: payload JSON to protobuf-c structs and back, driven
 * by the descriptors generated from spec/dcs.proto (include/dcs/typed.h).
 *
 * Decoding first validates the whole text with dcs_json_validate(), then walks
 * it with small skip functions that rely on the grammar being valid but still
 * never step outside [begin, end). Each known member is converted into its
 * field; the other members are copied raw into dcs_unknown. Memory comes from
 * the caller's dcs_allocator in the layout protobuf_c_message_free_unpacked()
 * frees: every string, bytes value, repeated array and sub-message is a block
 * of its own, and each block is stored in its message as soon as it exists, so
 * freeing the root message cleans up after a failure at any point.
 *
 * Encoding writes the present fields in descriptor order, which protobuf-c
 * sorts by tag, which spec/dcs.proto numbers in wire order. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/typed.h"
#include "dcs.pb-c.h"

#define DCS__UNKNOWN_ID 2047u          /* the dcs_unknown field (convention (b)) */
#define DCS__MAX_FIELDS 256u           /* fields per message the decoder accepts */
#define DCS__MAX_NAME_RAW 384u         /* a 64-byte name written as \uXXXX escapes */
#define DCS__MAX_NEST DCS_DEFAULT_MAX_DEPTH /* messages nested in messages */

#define APPEND_LIT(b, s) dcs_buf_append((b), (s), sizeof(s) - 1)

/* ------------------------------------------------------------------------ */
/* The catalogue (PROTOCOL.md section 7)                                    */

static const dcs_typed_view dcs__views[] = {
    {"command", "register", &dcs__register__descriptor, DCS_TYPED_OBJECT},
    {"command", "challenge", &dcs__challenge__descriptor, DCS_TYPED_OBJECT},
    {"heartbeat", "heartbeat", &dcs__heartbeat__descriptor, DCS_TYPED_OBJECT},
    {"jobRequest", "request_jobs", &dcs__request_jobs__descriptor, DCS_TYPED_OBJECT},
    {"jobResponse", "jobs_available", &dcs__jobs_available__descriptor, DCS_TYPED_ARRAY},
    {"jobResponse", "jobs_error", &dcs__jobs_error__descriptor, DCS_TYPED_OBJECT},
    {"message", "PROGRESS_UPDATE", &dcs__progress_update__descriptor, DCS_TYPED_OBJECT},
    {"message", "TOKEN_REFRESH_REQUEST", &dcs__token_refresh_request__descriptor,
     DCS_TYPED_OBJECT},
    {"message", "TOKEN_REFRESH_RESPONSE", &dcs__token_refresh_response__descriptor,
     DCS_TYPED_OBJECT},
    {"message", "statusUpdate", &dcs__status_update__descriptor, DCS_TYPED_OBJECT},
    {"message", "jobUpdate", &dcs__job_update__descriptor, DCS_TYPED_OBJECT},
    {"message", "shutdown", &dcs__shutdown__descriptor, DCS_TYPED_OBJECT},
    {"message", "close", &dcs__close__descriptor, DCS_TYPED_OBJECT},
    {"message", "commandResult", &dcs__command_result__descriptor, DCS_TYPED_OBJECT},
    {"command", "START_JOB", &dcs__start_job__descriptor, DCS_TYPED_OBJECT},
    {"command", "PAUSE_CRAWLER", &dcs__pause_crawler__descriptor, DCS_TYPED_OBJECT},
    {"command", "RESUME_CRAWLER", &dcs__resume_crawler__descriptor, DCS_TYPED_OBJECT},
};
#define DCS__N_VIEWS (sizeof dcs__views / sizeof dcs__views[0])

static int dcs__slice_is(dcs_slice s, const char *z)
{
    size_t n = strlen(z);
    return s.len == n && (n == 0 || memcmp(s.ptr, z, n) == 0);
}

const dcs_typed_view *dcs_typed_lookup(dcs_slice type, dcs_slice key)
{
    size_t i;
    for (i = 0; i < DCS__N_VIEWS; i++)
        if (dcs__slice_is(type, dcs__views[i].type) && dcs__slice_is(key, dcs__views[i].key))
            return &dcs__views[i];
    return NULL;
}

const dcs_typed_view *dcs_typed_views(size_t *n)
{
    if (n)
        *n = DCS__N_VIEWS;
    return dcs__views;
}

static dcs_typed_shape dcs__shape_of(const ProtobufCMessageDescriptor *md)
{
    size_t i;
    for (i = 0; i < DCS__N_VIEWS; i++)
        if (dcs__views[i].descriptor == md)
            return dcs__views[i].shape;
    return DCS_TYPED_OBJECT;
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */

static int dcs__is_unknown_field(const ProtobufCFieldDescriptor *f)
{
    return f->id == DCS__UNKNOWN_ID && f->type == PROTOBUF_C_TYPE_BYTES &&
           f->label == PROTOBUF_C_LABEL_OPTIONAL;
}

/* What the mapping needs to know of each protobuf-c field type. K_NONE marks
 * enum, which the mapping refuses (spec/dcs.proto keeps enumerations as
 * strings). */
enum { K_INT, K_UINT, K_REAL, K_BOOL, K_STRING, K_BYTES, K_MESSAGE, K_NONE };
static const struct dcs__type {
    unsigned char kind, size; /* size: of one value in the C struct */
    const char *name, *expected;
} dcs__types[] = {
    [PROTOBUF_C_TYPE_INT32] = {K_INT, 4, "int32", "an integer"},
    [PROTOBUF_C_TYPE_SINT32] = {K_INT, 4, "int32", "an integer"},
    [PROTOBUF_C_TYPE_SFIXED32] = {K_INT, 4, "int32", "an integer"},
    [PROTOBUF_C_TYPE_INT64] = {K_INT, 8, "int64", "an integer"},
    [PROTOBUF_C_TYPE_SINT64] = {K_INT, 8, "int64", "an integer"},
    [PROTOBUF_C_TYPE_SFIXED64] = {K_INT, 8, "int64", "an integer"},
    [PROTOBUF_C_TYPE_UINT32] = {K_UINT, 4, "uint32", "an integer"},
    [PROTOBUF_C_TYPE_FIXED32] = {K_UINT, 4, "uint32", "an integer"},
    [PROTOBUF_C_TYPE_UINT64] = {K_UINT, 8, "uint64", "an integer"},
    [PROTOBUF_C_TYPE_FIXED64] = {K_UINT, 8, "uint64", "an integer"},
    [PROTOBUF_C_TYPE_FLOAT] = {K_REAL, sizeof(float), "float", "a number"},
    [PROTOBUF_C_TYPE_DOUBLE] = {K_REAL, sizeof(double), "double", "a number"},
    [PROTOBUF_C_TYPE_BOOL] = {K_BOOL, sizeof(protobuf_c_boolean), "bool", "a boolean"},
    [PROTOBUF_C_TYPE_ENUM] = {K_NONE, 4, "enum", "a string"},
    [PROTOBUF_C_TYPE_STRING] = {K_STRING, sizeof(char *), "string", "a string"},
    [PROTOBUF_C_TYPE_BYTES] = {K_BYTES, sizeof(ProtobufCBinaryData), "bytes", "a value"},
    [PROTOBUF_C_TYPE_MESSAGE] = {K_MESSAGE, sizeof(void *), "message", "an object"},
};
#define TYPE(f) (&dcs__types[(f)->type])

/* The mapping handles proto2 fields of every type but enum, outside oneofs. */
static int dcs__supported(const ProtobufCFieldDescriptor *f)
{
    return (unsigned)f->type <= PROTOBUF_C_TYPE_MESSAGE && TYPE(f)->kind != K_NONE &&
           f->label != PROTOBUF_C_LABEL_NONE && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
}

/* Optional fields other than strings and messages have a has_ flag. */
static int dcs__has_flag(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
           f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* ------------------------------------------------------------------------ */
/* Walking validated JSON                                                    */

static int dcs__is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *dcs__ws(const char *p, const char *pe)
{
    while (p < pe && dcs__is_ws(*p))
        p++;
    return p;
}

/* p is at '"'; returns one past the closing quote. */
static const char *dcs__skip_string(const char *p, const char *pe)
{
    for (p++; p < pe; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\' && ++p == pe)
            break;
    }
    return pe;
}

/* p is at the first byte of a value; returns one past its last byte. */
static const char *dcs__skip_value(const char *p, const char *pe)
{
    size_t depth = 0;
    if (p < pe && *p != '"' && *p != '{' && *p != '[') {
        while (p < pe && *p != ',' && *p != '}' && *p != ']' && !dcs__is_ws(*p))
            p++;
        return p;
    }
    while (p < pe) {
        if (*p == '"') {
            p = dcs__skip_string(p, pe);
        } else {
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                depth--;
            p++;
        }
        if (depth == 0)
            break;
    }
    return p;
}

static const char *dcs__found(const char *v)
{
    switch (*v) {
    case '"': return "a string";
    case '{': return "an object";
    case '[': return "an array";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* Read the validated JSON number [p, pe) as sign and magnitude. Returns 0, 1
 * when its value is not an integer, or 2 when the magnitude exceeds
 * UINT64_MAX. Exact for any spelling: 1.0, 1e3 and 100e-2 are integers. */
static int dcs__integral(const char *p, const char *pe, int *neg, uint64_t *mag)
{
    const char *ip, *fp;
    size_t nint, nfrac, k, k0, k1;
    long long e = 0, scale;
    int eneg = 0;
    uint64_t m = 0;

    *neg = p < pe && *p == '-';
    p += *neg;
    for (ip = p; p < pe && *p >= '0' && *p <= '9';)
        p++;
    nint = (size_t)(p - ip);
    fp = p;
    if (p < pe && *p == '.')
        for (fp = ++p; p < pe && *p >= '0' && *p <= '9';)
            p++;
    nfrac = (size_t)(p - fp);
    if (p < pe && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < pe && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        for (; p < pe && *p >= '0' && *p <= '9'; p++)
            if (e < 1000000000000000LL) /* saturate far beyond any payload size */
                e = e * 10 + (*p - '0');
    }
    if (eneg)
        e = -e;
#define DIGIT(i) ((i) < nint ? ip[(i)] : fp[(i) - nint])
    for (k0 = 0; k0 < nint + nfrac && DIGIT(k0) == '0'; k0++)
        ;
    *mag = 0;
    if (k0 == nint + nfrac)
        return 0;
    for (k1 = nint + nfrac - 1; DIGIT(k1) == '0'; k1--)
        ;
    /* value = digits[k0..k1] x 10^scale */
    scale = e - (long long)nfrac + (long long)(nint + nfrac - 1 - k1);
    if (scale < 0)
        return 1;
    if ((long long)(k1 - k0 + 1) + scale > 20)
        return 2;
    for (k = k0; k <= k1; k++) {
        unsigned dgt = (unsigned)(DIGIT(k) - '0');
        if (m > (UINT64_MAX - dgt) / 10)
            return 2;
        m = m * 10 + dgt;
    }
#undef DIGIT
    for (; scale > 0; scale--) {
        if (m > UINT64_MAX / 10)
            return 2;
        m *= 10;
    }
    *mag = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */

/* A member path for error messages: a field name, or (name NULL) an array
 * index; the root is the NULL path. */
struct dcs__path {
    const struct dcs__path *up;
    const char *name;
    size_t index;
};

struct dcs__dec {
    const char *begin, *end;
    const dcs_allocator *a;
    dcs_error *err;
};

static void dcs__path_put(const struct dcs__path *p, char *buf, size_t cap, size_t *len)
{
    int n;
    if (!p)
        return;
    dcs__path_put(p->up, buf, cap, len);
    if (*len + 1 >= cap)
        return;
    if (p->name)
        n = snprintf(buf + *len, cap - *len, "%s%s", *len ? "." : "", p->name);
    else
        n = snprintf(buf + *len, cap - *len, "[%zu]", p->index);
    *len = n < 0 || (size_t)n >= cap - *len ? cap - 1 : *len + (size_t)n;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int dcs__fail(struct dcs__dec *d, int code, const char *at, const struct dcs__path *path,
                     const char *fmt, ...)
{
    char where[128];
    size_t n = 0;
    int k;
    va_list ap;
    if (!d->err)
        return code;
    where[0] = '\0';
    dcs__path_put(path, where, sizeof where, &n);
    d->err->code = code;
    d->err->offset = (uint64_t)(at - d->begin);
    d->err->msg_offset = DCS_NO_OFFSET;
    k = snprintf(d->err->message, sizeof d->err->message, "%s: ", n ? where : "(payload)");
    va_start(ap, fmt);
    vsnprintf(d->err->message + k, sizeof d->err->message - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}

static int dcs__nomem(struct dcs__dec *d, const char *at, const struct dcs__path *path)
{
    return dcs__fail(d, DCS_ENOMEM, at, path, "%s", dcs_strerror(DCS_ENOMEM));
}

static void *dcs__alloc(struct dcs__dec *d, size_t n)
{
    return d->a->alloc(d->a->ud, n);
}

/* The field of md named by the raw (escaped) member name, dcs_unknown
 * excepted, or NULL. */
static const ProtobufCFieldDescriptor *dcs__field(const ProtobufCMessageDescriptor *md,
                                                  const char *raw, size_t len)
{
    char tmp[DCS__MAX_NAME_RAW];
    unsigned i;
    if (memchr(raw, '\\', len)) {
        /* The unescaped name is never longer than the raw one, so the stack
         * buffer holds it and dcs_unescape() never allocates. */
        dcs_buf b = {tmp, 0, sizeof tmp, &dcs_default_allocator};
        if (len > sizeof tmp || dcs_unescape(&b, raw, len))
            return NULL;
        raw = tmp;
        len = b.len;
    }
    for (i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (!dcs__is_unknown_field(f) && strlen(f->name) == len && memcmp(f->name, raw, len) == 0)
            return f;
    }
    return NULL;
}

static int dcs__decode_object(struct dcs__dec *d, const ProtobufCMessageDescriptor *md,
                              ProtobufCMessage *m, const char *v, const struct dcs__path *path,
                              unsigned depth);

static int dcs__new_message(struct dcs__dec *d, const ProtobufCMessageDescriptor *md,
                            ProtobufCMessage **dst, const char *at, const struct dcs__path *path)
{
    ProtobufCMessage *m = dcs__alloc(d, md->sizeof_message);
    if (!m)
        return dcs__nomem(d, at, path);
    md->message_init(m);
    *dst = m;
    return 0;
}

static int dcs__decode_int(struct dcs__dec *d, const ProtobufCFieldDescriptor *f, void *dst,
                           const char *v, const char *ve, const struct dcs__path *path)
{
    const struct dcs__type *t = TYPE(f);
    int is_signed = t->kind == K_INT, neg, rc;
    uint64_t mag, max = t->size == 4 ? (is_signed ? INT32_MAX : UINT32_MAX)
                                     : (is_signed ? INT64_MAX : UINT64_MAX);

    rc = dcs__integral(v, ve, &neg, &mag);
    if (rc == 1)
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "expected an integer, found a fractional number");
    if (rc == 2 || (neg && mag && (!is_signed || mag - 1 > max)) || (!neg && mag > max))
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "integer out of the %s range", t->name);
    if (is_signed) {
        int64_t i = neg && mag ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
        if (t->size == 4)
            *(int32_t *)dst = (int32_t)i;
        else
            *(int64_t *)dst = i;
    } else if (t->size == 4) {
        *(uint32_t *)dst = (uint32_t)mag;
    } else {
        *(uint64_t *)dst = mag;
    }
    return 0;
}

static int dcs__decode_real(struct dcs__dec *d, const ProtobufCFieldDescriptor *f, void *dst,
                            const char *v, const char *ve, const struct dcs__path *path)
{
    char small[64], *s = small;
    size_t n = (size_t)(ve - v);
    double x;
    if (n >= sizeof small && !(s = dcs__alloc(d, n + 1)))
        return dcs__nomem(d, v, path);
    memcpy(s, v, n);
    s[n] = '\0';
    x = strtod(s, NULL);
    if (s != small)
        d->a->free(d->a->ud, s);
    if (!isfinite(x) || (f->type == PROTOBUF_C_TYPE_FLOAT && fabs(x) > FLT_MAX))
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "number out of the %s range", TYPE(f)->name);
    if (f->type == PROTOBUF_C_TYPE_FLOAT)
        *(float *)dst = (float)x;
    else
        *(double *)dst = x;
    return 0;
}

static int dcs__decode_string(struct dcs__dec *d, char **dst, const char *v, const char *ve,
                              const struct dcs__path *path)
{
    size_t n = (size_t)(ve - v) - 2; /* the body between the quotes */
    dcs_buf b;
    /* The body never grows when unescaped: one block of n + 1 bytes. */
    if (!(b.data = dcs__alloc(d, n + 1)))
        return dcs__nomem(d, v, path);
    b.len = 0;
    b.cap = n + 1;
    b.alloc = d->a;
    if (dcs_unescape(&b, v + 1, n)) { /* unreachable after validation */
        d->a->free(d->a->ud, b.data);
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "invalid string");
    }
    if (memchr(b.data, '\0', b.len)) {
        d->a->free(d->a->ud, b.data);
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "a string containing U+0000 cannot be held");
    }
    b.data[b.len] = '\0';
    *dst = b.data;
    return 0;
}

/* Decode the one (non-null) value [v, ve) into dst, which is the field's
 * member or one element of its array. */
static int dcs__decode_value(struct dcs__dec *d, const ProtobufCFieldDescriptor *f, void *dst,
                             const char *v, const char *ve, const struct dcs__path *path,
                             unsigned depth)
{
    int number = *v == '-' || (*v >= '0' && *v <= '9'), rc;
    switch (TYPE(f)->kind) {
    case K_BYTES: {
        ProtobufCBinaryData *bd = dst;
        size_t n = (size_t)(ve - v);
        if (!(bd->data = dcs__alloc(d, n + 1)))
            return dcs__nomem(d, v, path);
        memcpy(bd->data, v, n);
        bd->data[n] = '\0';
        bd->len = n;
        return 0;
    }
    case K_MESSAGE:
        if (*v != '{')
            break;
        if ((rc = dcs__new_message(d, f->descriptor, dst, v, path)))
            return rc;
        return dcs__decode_object(d, f->descriptor, *(ProtobufCMessage **)dst, v, path, depth + 1);
    case K_STRING:
        if (*v != '"')
            break;
        return dcs__decode_string(d, dst, v, ve, path);
    case K_BOOL:
        if (*v != 't' && *v != 'f')
            break;
        *(protobuf_c_boolean *)dst = *v == 't';
        return 0;
    case K_REAL:
        if (!number)
            break;
        return dcs__decode_real(d, f, dst, v, ve, path);
    default:
        if (!number)
            break;
        return dcs__decode_int(d, f, dst, v, ve, path);
    }
    return dcs__fail(d, DCS_EPAYLOAD, v, path, "expected %s, found %s", TYPE(f)->expected,
                     dcs__found(v));
}

/* Decode the member value [v, ve) into field f of m; path names the field. */
static int dcs__decode_field(struct dcs__dec *d, const ProtobufCFieldDescriptor *f,
                             ProtobufCMessage *m, const char *v, const char *ve,
                             const struct dcs__path *path, unsigned depth)
{
    char *base = (char *)m;
    size_t n = 0, i, size = TYPE(f)->size;
    const char *p;
    char *arr;
    int rc;

    if (*v == 'n') {
        if (f->label == PROTOBUF_C_LABEL_REQUIRED)
            return dcs__fail(d, DCS_EPAYLOAD, v, path, "required member is null");
        return 0; /* null: absent */
    }
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        rc = dcs__decode_value(d, f, base + f->offset, v, ve, path, depth);
        if (!rc && dcs__has_flag(f))
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        return rc;
    }
    if (*v != '[')
        return dcs__fail(d, DCS_EPAYLOAD, v, path, "expected an array, found %s", dcs__found(v));
    for (p = dcs__ws(v + 1, ve); p < ve && *p != ']'; n++) {
        p = dcs__ws(dcs__skip_value(p, ve), ve);
        if (p < ve && *p == ',')
            p = dcs__ws(p + 1, ve);
    }
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / size || !(arr = dcs__alloc(d, n * size)))
        return dcs__nomem(d, v, path);
    /* Zeroed elements are safe to free, so the count covers each element
     * before it is decoded and a failure inside it leaks nothing. */
    memset(arr, 0, n * size);
    *(char **)(base + f->offset) = arr;
    for (i = 0, p = dcs__ws(v + 1, ve); i < n; i++) {
        struct dcs__path ep = {path, NULL, i};
        const char *e = dcs__skip_value(p, ve);
        *(size_t *)(base + f->quantifier_offset) = i + 1;
        if (*p == 'n')
            return dcs__fail(d, DCS_EPAYLOAD, p, &ep, "expected %s, found null",
                             TYPE(f)->expected);
        if ((rc = dcs__decode_value(d, f, arr + i * size, p, e, &ep, depth)))
            return rc;
        p = dcs__ws(e, ve);
        if (p < ve && *p == ',')
            p = dcs__ws(p + 1, ve);
    }
    return 0;
}

/* Decode the object at v into m. */
static int dcs__decode_object(struct dcs__dec *d, const ProtobufCMessageDescriptor *md,
                              ProtobufCMessage *m, const char *v, const struct dcs__path *path,
                              unsigned depth)
{
    uint64_t seen[DCS__MAX_FIELDS / 64] = {0};
    const ProtobufCFieldDescriptor *uf = NULL;
    const char *p = dcs__ws(v + 1, d->end), *pe = d->end;
    dcs_buf u;
    unsigned i;
    int rc = 0;

    if (depth > DCS__MAX_NEST)
        return dcs__fail(d, DCS_ETOO_DEEP, v, path, "messages nested too deep");
    if (md->n_fields > DCS__MAX_FIELDS)
        return dcs__fail(d, DCS_EINVAL, v, path, "%s has too many fields", md->name);
    for (i = 0; i < md->n_fields; i++) {
        if (dcs__is_unknown_field(&md->fields[i]))
            uf = &md->fields[i];
        else if (!dcs__supported(&md->fields[i]))
            return dcs__fail(d, DCS_EINVAL, v, path, "%s.%s: enum, oneof and proto3 fields are"
                             " not supported", md->name, md->fields[i].name);
    }
    dcs_buf_init(&u, d->a);
    while (p < pe && *p == '"') {
        const char *ns = p, *ne = dcs__skip_string(p, pe), *vs, *ve;
        const ProtobufCFieldDescriptor *f = dcs__field(md, ns + 1, (size_t)(ne - ns) - 2);
        vs = dcs__ws(ne, pe);
        vs = dcs__ws(vs + (vs < pe), pe); /* the ':' */
        if (vs == pe)
            break; /* unreachable after validation */
        ve = dcs__skip_value(vs, pe);
        if (f) {
            struct dcs__path fp = {path, f->name, 0};
            size_t k = (size_t)(f - md->fields);
            if (seen[k / 64] >> (k % 64) & 1) {
                rc = dcs__fail(d, DCS_EPAYLOAD, ns, &fp, "duplicate member");
                goto out;
            }
            seen[k / 64] |= (uint64_t)1 << (k % 64);
            if ((rc = dcs__decode_field(d, f, m, vs, ve, &fp, depth)))
                goto out;
        } else if (uf) {
            if ((rc = dcs_buf_append(&u, u.len ? "," : "{", 1)) ||
                (rc = dcs_buf_append(&u, ns, (size_t)(ne - ns))) ||
                (rc = dcs_buf_append(&u, ":", 1)) ||
                (rc = dcs_buf_append(&u, vs, (size_t)(ve - vs)))) {
                rc = dcs__nomem(d, ns, path);
                goto out;
            }
        }
        p = dcs__ws(ve, pe);
        if (p < pe && *p == ',')
            p = dcs__ws(p + 1, pe);
    }
    for (i = 0; i < md->n_fields; i++) {
        if (md->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !(seen[i / 64] >> (i % 64) & 1)) {
            struct dcs__path fp = {path, md->fields[i].name, 0};
            rc = dcs__fail(d, DCS_EPAYLOAD, p, &fp, "required member missing");
            goto out;
        }
    }
    if (u.len) {
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)m + uf->offset);
        /* The text is followed by a NUL byte, as every bytes field is. */
        if ((rc = dcs_buf_append(&u, "}", 2))) {
            rc = dcs__nomem(d, v, path);
            goto out;
        }
        bd->data = (uint8_t *)u.data;
        bd->len = u.len - 1;
        *(protobuf_c_boolean *)((char *)m + uf->quantifier_offset) = 1;
        u.data = NULL;
    }
out:
    dcs_buf_free(&u);
    return rc;
}

int dcs_typed_decode(const ProtobufCMessageDescriptor *md, dcs_typed_shape shape,
                     const char *json, size_t len, const dcs_allocator *a,
                     ProtobufCMessage **out, dcs_error *err)
{
    struct dcs__dec d;
    ProtobufCMessage *m = NULL;
    const char *p;
    int rc;

    if (out)
        *out = NULL;
    if (!json)
        json = len ? NULL : "";
    d.begin = json;
    d.end = json ? json + len : NULL;
    d.a = a ? a : &dcs_default_allocator;
    d.err = err;
    if (!md || !out || !json || md->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC ||
        (shape != DCS_TYPED_OBJECT && shape != DCS_TYPED_ARRAY) ||
        (shape == DCS_TYPED_ARRAY &&
         (md->n_fields == 0 || md->fields[0].label != PROTOBUF_C_LABEL_REPEATED ||
          !dcs__supported(&md->fields[0])))) {
        d.begin = d.end = "";
        return dcs__fail(&d, DCS_EINVAL, d.begin, NULL, "%s", dcs_strerror(DCS_EINVAL));
    }
    if ((rc = dcs_json_validate(json, len, 0, err))) {
        if (err)
            err->msg_offset = DCS_NO_OFFSET;
        return rc;
    }
    p = dcs__ws(json, d.end);
    if (*p != (shape == DCS_TYPED_OBJECT ? '{' : '['))
        return dcs__fail(&d, DCS_EPAYLOAD, p, NULL, "expected %s, found %s",
                         shape == DCS_TYPED_OBJECT ? "an object" : "an array", dcs__found(p));
    if ((rc = dcs__new_message(&d, md, &m, p, NULL)))
        return rc;
    if (shape == DCS_TYPED_OBJECT)
        rc = dcs__decode_object(&d, md, m, p, NULL, 1);
    else
        rc = dcs__decode_field(&d, &md->fields[0], m, p, dcs__skip_value(p, d.end), NULL, 1);
    if (rc) {
        dcs_typed_free(m, d.a);
        return rc;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

static int dcs__encode_message(dcs_buf *out, const ProtobufCMessage *m, unsigned depth);

static int dcs__encode_value(dcs_buf *out, const ProtobufCFieldDescriptor *f, const void *v,
                             unsigned depth)
{
    const struct dcs__type *t = TYPE(f);
    char tmp[32];
    int n;
    switch (t->kind) {
    case K_INT:
        n = snprintf(tmp, sizeof tmp, "%" PRId64,
                     t->size == 4 ? (int64_t) * (const int32_t *)v : *(const int64_t *)v);
        break;
    case K_UINT:
        n = snprintf(tmp, sizeof tmp, "%" PRIu64,
                     t->size == 4 ? (uint64_t) * (const uint32_t *)v : *(const uint64_t *)v);
        break;
    case K_REAL:
        n = dcs_format_double(tmp, t->size == sizeof(float) ? *(const float *)v
                                                            : *(const double *)v);
        break;
    case K_BOOL:
        return *(const protobuf_c_boolean *)v ? APPEND_LIT(out, "true") : APPEND_LIT(out, "false");
    case K_STRING: {
        const char *s = *(char *const *)v;
        return s ? dcs_encode_string(out, s, strlen(s)) : DCS_EINVAL;
    }
    case K_BYTES: { /* raw JSON, without the whitespace around it */
        const ProtobufCBinaryData *bd = v;
        const char *p, *pe;
        if (!bd->data || dcs_json_validate((const char *)bd->data, bd->len, 0, NULL))
            return DCS_EBAD_JSON;
        p = dcs__ws((const char *)bd->data, (const char *)bd->data + bd->len);
        pe = dcs__skip_value(p, (const char *)bd->data + bd->len);
        return dcs_buf_append(out, p, (size_t)(pe - p));
    }
    default: {
        const ProtobufCMessage *sm = *(ProtobufCMessage *const *)v;
        return sm ? dcs__encode_message(out, sm, depth + 1) : DCS_EINVAL;
    }
    }
    return n < 0 ? n : dcs_buf_append(out, tmp, (size_t)n);
}

static int dcs__encode_repeated(dcs_buf *out, const ProtobufCFieldDescriptor *f,
                                const ProtobufCMessage *m, unsigned depth)
{
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset), i;
    size_t size = TYPE(f)->size;
    const char *arr = *(char *const *)((const char *)m + f->offset);
    int rc;
    if (n && !arr)
        return DCS_EINVAL;
    if ((rc = APPEND_LIT(out, "[")))
        return rc;
    for (i = 0; i < n; i++)
        if ((i && (rc = APPEND_LIT(out, ","))) ||
            (rc = dcs__encode_value(out, f, arr + i * size, depth)))
            return rc;
    return APPEND_LIT(out, "]");
}

static int dcs__present(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return 1;
    if (!dcs__has_flag(f))
        return *(void *const *)(base + f->offset) != NULL;
    return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
}

/* The members held in dcs_unknown, without the braces, after a comma unless
 * first. */
static int dcs__encode_unknown(dcs_buf *out, const ProtobufCBinaryData *bd, int first)
{
    const char *p, *pe;
    if (!bd->data || dcs_json_validate((const char *)bd->data, bd->len, 0, NULL))
        return DCS_EBAD_JSON;
    p = dcs__ws((const char *)bd->data, (const char *)bd->data + bd->len);
    if (*p != '{')
        return DCS_EBAD_JSON;
    pe = dcs__skip_value(p, (const char *)bd->data + bd->len) - 1; /* its '}' */
    p = dcs__ws(p + 1, pe);
    while (pe > p && dcs__is_ws(pe[-1]))
        pe--;
    if (p == pe)
        return 0;
    if (!first) {
        int rc = APPEND_LIT(out, ",");
        if (rc)
            return rc;
    }
    return dcs_buf_append(out, p, (size_t)(pe - p));
}

static int dcs__encode_message(dcs_buf *out, const ProtobufCMessage *m, unsigned depth)
{
    const ProtobufCMessageDescriptor *md = m->descriptor;
    const ProtobufCFieldDescriptor *uf = NULL;
    unsigned i;
    int rc, first = 1;

    if (!md || md->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return DCS_EINVAL;
    if (depth > DCS__MAX_NEST)
        return DCS_ETOO_DEEP;
    if ((rc = APPEND_LIT(out, "{")))
        return rc;
    for (i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (dcs__is_unknown_field(f)) {
            uf = f;
            continue;
        }
        if (!dcs__supported(f))
            return DCS_EINVAL;
        if (!dcs__present(f, m))
            continue;
        if ((!first && (rc = APPEND_LIT(out, ","))) || (rc = APPEND_LIT(out, "\"")) ||
            (rc = dcs_buf_append(out, f->name, strlen(f->name))) ||
            (rc = APPEND_LIT(out, "\":")))
            return rc;
        first = 0;
        rc = f->label == PROTOBUF_C_LABEL_REPEATED
                 ? dcs__encode_repeated(out, f, m, depth)
                 : dcs__encode_value(out, f, (const char *)m + f->offset, depth);
        if (rc)
            return rc;
    }
    if (uf && dcs__present(uf, m) &&
        (rc = dcs__encode_unknown(out, (const void *)((const char *)m + uf->offset), first)))
        return rc;
    return APPEND_LIT(out, "}");
}

/* An array-shaped message: its first field's elements; dcs_unknown must be
 * unset or an empty object, since an array has no members. */
static int dcs__encode_array(dcs_buf *out, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *md = m->descriptor;
    unsigned i;
    for (i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (dcs__is_unknown_field(f) && dcs__present(f, m)) {
            size_t len = out->len;
            int rc = dcs__encode_unknown(out, (const void *)((const char *)m + f->offset), 1);
            if (rc || out->len != len)
                return rc ? rc : DCS_EINVAL;
        }
    }
    if (md->n_fields == 0 || md->fields[0].label != PROTOBUF_C_LABEL_REPEATED ||
        !dcs__supported(&md->fields[0]))
        return DCS_EINVAL;
    return dcs__encode_repeated(out, &md->fields[0], m, 1);
}

int dcs_typed_encode(dcs_buf *out, const ProtobufCMessage *m)
{
    size_t start;
    int rc;
    if (!out || !m || !m->descriptor || m->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return DCS_EINVAL;
    start = out->len;
    if (dcs__shape_of(m->descriptor) == DCS_TYPED_ARRAY)
        rc = dcs__encode_array(out, m);
    else
        rc = dcs__encode_message(out, m, 1);
    if (rc)
        out->len = start;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Freeing                                                                   */

static void *dcs__pb_alloc(void *ud, size_t size)
{
    const dcs_allocator *a = ud;
    return a->alloc(a->ud, size);
}

static void dcs__pb_free(void *ud, void *ptr)
{
    const dcs_allocator *a = ud;
    if (ptr)
        a->free(a->ud, ptr);
}

void dcs_typed_free(ProtobufCMessage *m, const dcs_allocator *a)
{
    ProtobufCAllocator pa;
    if (!m)
        return;
    pa.alloc = dcs__pb_alloc;
    pa.free = dcs__pb_free;
    pa.allocator_data = (void *)(a ? a : &dcs_default_allocator);
    protobuf_c_message_free_unpacked(m, &pa);
}
