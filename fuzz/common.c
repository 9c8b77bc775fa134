/* common.c - helpers shared by the harnesses (see common.h). */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#endif
#ifdef FZ_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Set by the driver: the file being replayed, for the failure message. */
const char *fz_current_input;

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz: %s:%d: check `%s` failed: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (fz_current_input) fprintf(stderr, "fuzz: input: %s\n", fz_current_input);
#ifdef FZ_ASAN
    fprintf(stderr, "fuzz: where the check failed:\n");
    __sanitizer_print_stack_trace();
#endif
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

unsigned fz_u8(fz_in *in)
{
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

unsigned fz_u16(fz_in *in)
{
    unsigned lo = fz_u8(in);
    return lo | fz_u8(in) << 8;
}

size_t fz_take(fz_in *in, size_t want, const uint8_t **out)
{
    size_t n = want < in->n ? want : in->n;
    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Guarded placement                                                         */

static struct fz_slot {
    char *region; /* cap bytes, then one PROT_NONE page */
    size_t cap;
    char *data;
    size_t len;
} fz_slots[FZ_SLOTS];

const char *fz_place(int slot, const void *data, size_t len)
{
    struct fz_slot *s = &fz_slots[slot];
    static size_t page;
    size_t need;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    need = (len + page - 1) / page * page;
    if (need == 0) need = page;
    if (need > s->cap) {
        char *r;
        if (s->region) {
#ifdef FZ_ASAN
            ASAN_UNPOISON_MEMORY_REGION(s->region, s->cap);
#endif
            munmap(s->region, s->cap + page);
        }
        r = mmap(NULL, need + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        FZ_CHECK(r != MAP_FAILED, "mmap of %zu bytes failed", need + page);
        FZ_CHECK(mprotect(r + need, page, PROT_NONE) == 0, "mprotect failed");
        s->region = r;
        s->cap = need;
    }
    s->data = s->region + s->cap - len;
    s->len = len;
#ifdef FZ_ASAN
    ASAN_UNPOISON_MEMORY_REGION(s->region, s->cap);
    {
        size_t before = (size_t)(s->data - s->region) & ~(size_t)7;
        if (before) ASAN_POISON_MEMORY_REGION(s->region, before);
    }
#endif
    if (len) memcpy(s->data, data, len);
    return s->data;
}

void fz_retire(int slot)
{
    struct fz_slot *s = &fz_slots[slot];
    if (!s->data || !s->len) return;
#ifdef FZ_ASAN
    ASAN_POISON_MEMORY_REGION(s->data, s->len);
#else
    memset(s->data, 0xA5, s->len);
#endif
    s->len = 0;
}

/* ------------------------------------------------------------------------ */
/* Counting allocator                                                        */

/* Each block carries its size in a header, so that bytes can be counted. */
typedef union fz_hdr {
    size_t size;
    max_align_t align;
} fz_hdr;

static int fz_alloc_fails(fz_alloc *fa)
{
    fa->calls++;
    if (fa->fail_at && fa->calls == fa->fail_at) {
        fa->failed++;
        return 1;
    }
    return 0;
}

static void *fz_alloc_alloc(void *ud, size_t size)
{
    fz_alloc *fa = ud;
    fz_hdr *h;
    if (fz_alloc_fails(fa) || size > SIZE_MAX - sizeof *h) return NULL;
    h = malloc(sizeof *h + size);
    if (!h) return NULL;
    h->size = size;
    fa->live++;
    fa->bytes += size;
    if (fa->bytes > fa->peak) fa->peak = fa->bytes;
    return h + 1;
}

static void *fz_alloc_realloc(void *ud, void *ptr, size_t size)
{
    fz_alloc *fa = ud;
    fz_hdr *h, *n;
    size_t old;
    if (!ptr) return fz_alloc_alloc(ud, size);
    if (fz_alloc_fails(fa) || size > SIZE_MAX - sizeof *h) return NULL;
    h = (fz_hdr *)ptr - 1;
    old = h->size;
    n = realloc(h, sizeof *n + size);
    if (!n) return NULL;
    n->size = size;
    fa->bytes = fa->bytes - old + size;
    if (fa->bytes > fa->peak) fa->peak = fa->bytes;
    return n + 1;
}

static void fz_alloc_free(void *ud, void *ptr)
{
    fz_alloc *fa = ud;
    fz_hdr *h;
    if (!ptr) return;
    h = (fz_hdr *)ptr - 1;
    FZ_CHECK(fa->live > 0, "free of a block that was never allocated");
    fa->live--;
    fa->bytes -= h->size;
    free(h);
}

void fz_alloc_init(fz_alloc *fa, long fail_at)
{
    memset(fa, 0, sizeof *fa);
    fa->a.alloc = fz_alloc_alloc;
    fa->a.realloc = fz_alloc_realloc;
    fa->a.free = fz_alloc_free;
    fa->a.ud = fa;
    fa->fail_at = fail_at;
}

/* ------------------------------------------------------------------------ */
/* Stream inputs                                                             */

void fz_stream_input_parse(const uint8_t *data, size_t size, fz_stream_input *si)
{
    static const unsigned depths[4] = {64, 2, 5, 16};
    static const size_t sizes[8] = {
        DCS_DEFAULT_MAX_MESSAGE_SIZE, 16, 64, 200, 1024, 4096, 65536, 300};
    unsigned h = size ? data[0] : 0;
    size_t i;
    memset(si, 0, sizeof *si);
    dcs_decoder_config_init(&si->cfg);
    si->cfg.max_depth = depths[(h >> 3) & 3];
    si->cfg.max_message_size = sizes[(h >> 5) & 7];
    si->n_plan = h & 7;
    if (size) data++, size--;
    if (si->n_plan > size) si->n_plan = size;
    for (i = 0; i < si->n_plan; i++)
        si->plan[i] = data[i];
    si->stream = (const char *)data + si->n_plan;
    si->len = size - si->n_plan;
}

size_t fz_plan_chunk(const fz_stream_input *si, size_t i)
{
    if (si->n_plan == 0) return 0;
    return (size_t)si->plan[i % si->n_plan] + 1;
}

/* Decimal digits of v into out (at least 21 bytes); returns their count.
 * The event logs are written for every message of every execution: snprintf
 * was a sixth of the chunking harness's time. */
static size_t fz_u64_dec(char *out, unsigned long long v)
{
    char tmp[24];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void fz_log_event(dcs_buf *log, dcs_buf *tmp, int ev, const dcs_message *m, const dcs_error *e)
{
    char num[24];
    const char *name;
    if (ev == DCS_MESSAGE) {
        dcs_envelope env;
        int rc;
        dcs_envelope_from_message(&env, m);
        tmp->len = 0;
        rc = dcs_encode(tmp, &env, 0);
        FZ_CHECK(rc == 0, "a decoded message does not re-encode: %s", dcs_err_name(rc));
        dcs_buf_append(log, "M ", 2);
        dcs_buf_append(log, num, fz_u64_dec(num, (unsigned long long)m->offset));
        dcs_buf_append(log, " ", 1);
        dcs_buf_append(log, tmp->data, tmp->len);
        dcs_buf_append(log, "\n", 1);
    } else {
        /* "E reason offset msg_offset|- text\n" */
        name = dcs_err_name(e->code);
        dcs_buf_append(log, "E ", 2);
        dcs_buf_append(log, name, strlen(name));
        dcs_buf_append(log, " ", 1);
        dcs_buf_append(log, num, fz_u64_dec(num, (unsigned long long)e->offset));
        dcs_buf_append(log, " ", 1);
        if (e->msg_offset != DCS_NO_OFFSET)
            dcs_buf_append(log, num, fz_u64_dec(num, (unsigned long long)e->msg_offset));
        else
            dcs_buf_append(log, "-", 1);
        dcs_buf_append(log, " ", 1);
        dcs_buf_append(log, e->message, strnlen(e->message, sizeof e->message));
        dcs_buf_append(log, "\n", 1);
    }
}

void fz_check_error(const dcs_error *e, uint64_t fed)
{
    FZ_CHECK(e->code > DCS__E_BASE && e->code < DCS__E_END, "error code %d out of range", e->code);
    FZ_CHECK(strcmp(dcs_err_name(e->code), "unknown") != 0, "error code %d has no name", e->code);
    FZ_CHECK(memchr(e->message, '\0', sizeof e->message) != NULL,
             "error message not NUL-terminated");
    FZ_CHECK(e->offset <= fed, "%s at offset %llu beyond the %llu bytes fed", dcs_err_name(e->code),
             (unsigned long long)e->offset, (unsigned long long)fed);
    FZ_CHECK(e->msg_offset == DCS_NO_OFFSET || e->msg_offset <= e->offset,
             "%s: message offset %llu after the error offset %llu", dcs_err_name(e->code),
             (unsigned long long)e->msg_offset, (unsigned long long)e->offset);
    FZ_CHECK(e->code != DCS_EGARBAGE || e->msg_offset == DCS_NO_OFFSET,
             "garbage with a message offset");
}

/* ------------------------------------------------------------------------ */
/* JSON walking                                                              */

static int fz_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char *fz_ws(const char *p, const char *pe)
{
    while (p < pe && fz_is_ws(*p))
        p++;
    return p;
}

/* p at '"': the byte after the closing quote, or NULL. */
static const char *fz_skip_string(const char *p, const char *pe)
{
    for (p++; p < pe; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

const char *fz_skip_value(const char *p, const char *pe)
{
    size_t depth = 0;
    do {
        if (p >= pe) return NULL;
        if (*p == '"') {
            p = fz_skip_string(p, pe);
            if (!p) return NULL;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0) return NULL;
            depth--;
            p++;
        } else if (depth == 0) {
            const char *s = p;
            while (p < pe && !fz_is_ws(*p) && *p != ',' && *p != '}' && *p != ']' && *p != ':')
                p++;
            return p > s ? p : NULL;
        } else {
            p++;
        }
    } while (depth > 0);
    return p;
}

int fz_iter_init(fz_iter *it, const char *v, size_t n)
{
    const char *p = fz_ws(v, v + n);
    if (p >= v + n || (*p != '{' && *p != '[')) return -1;
    it->object = *p == '{';
    it->p = p + 1;
    it->pe = v + n;
    return 0;
}

int fz_iter_next(fz_iter *it, dcs_slice *name, dcs_slice *value)
{
    const char *p = fz_ws(it->p, it->pe), *e;
    if (p >= it->pe || *p == '}' || *p == ']') return 0;
    if (*p == ',') p = fz_ws(p + 1, it->pe);
    name->ptr = NULL;
    name->len = 0;
    if (it->object) {
        e = p < it->pe && *p == '"' ? fz_skip_string(p, it->pe) : NULL;
        FZ_CHECK(e != NULL, "walker: no member name in validated JSON");
        name->ptr = p + 1;
        name->len = (size_t)(e - p - 2);
        p = fz_ws(e, it->pe);
        FZ_CHECK(p < it->pe && *p == ':', "walker: no ':' in validated JSON");
        p = fz_ws(p + 1, it->pe);
    }
    e = fz_skip_value(p, it->pe);
    FZ_CHECK(e != NULL, "walker: a value does not end in validated JSON");
    value->ptr = p;
    value->len = (size_t)(e - p);
    it->p = e;
    return 1;
}

dcs_slice fz_trim(dcs_slice s)
{
    while (s.len && fz_is_ws(s.ptr[0]))
        s.ptr++, s.len--;
    while (s.len && fz_is_ws(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

int fz_slice_eq(dcs_slice a, dcs_slice b)
{
    if (!a.ptr || !b.ptr) return a.ptr == b.ptr && a.len == b.len;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}
