/* support.c - helpers shared by the criterion tests. */
#include "support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *ta_alloc(void *ud, size_t size)
{
    test_alloc *t = ud;
    void *p;
    if (++t->calls == t->fail_at) {
        t->failed++;
        return NULL;
    }
    p = malloc(size);
    if (p)
        t->live++;
    return p;
}

static void *ta_realloc(void *ud, void *ptr, size_t size)
{
    test_alloc *t = ud;
    void *p;
    if (++t->calls == t->fail_at) {
        t->failed++;
        return NULL;
    }
    p = realloc(ptr, size);
    if (p && !ptr)
        t->live++;
    return p;
}

static void ta_free(void *ud, void *ptr)
{
    test_alloc *t = ud;
    if (ptr)
        t->live--;
    free(ptr);
}

void test_alloc_init(test_alloc *t, long fail_at)
{
    t->a.alloc = ta_alloc;
    t->a.realloc = ta_realloc;
    t->a.free = ta_free;
    t->a.ud = t;
    t->calls = t->live = t->failed = 0;
    t->fail_at = fail_at;
}

void guard_place(guarded *g, const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    char *r = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(r != MAP_FAILED, "mmap failed");
    cr_assert(mprotect(r + (pages - 1) * page, page, PROT_NONE) == 0, "mprotect failed");
    g->region = r;
    g->region_len = pages * page;
    g->data = r + (pages - 1) * page - len;
    if (len)
        memcpy((char *)g->data, data, len);
}

void guard_release(guarded *g)
{
    munmap(g->region, g->region_len);
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    cr_assert(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    cr_assert(buf != NULL);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n, "short read on %s", path);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

const char *data_path(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("DCS_TEST_DATA");
    cr_assert(dir != NULL, "DCS_TEST_DATA is not set (run the tests with meson test)");
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return path;
}

static void log_event(dcs_buf *log, dcs_buf *tmp, int ev, const dcs_message *msg,
                      const dcs_error *err)
{
    char line[512];
    int n;
    if (ev == DCS_MESSAGE) {
        dcs_envelope env;
        dcs_envelope_from_message(&env, msg);
        tmp->len = 0;
        cr_assert_eq(dcs_encode(tmp, &env, 0), 0, "re-encoding a decoded message failed");
        n = snprintf(line, sizeof line, "M %llu ", (unsigned long long)msg->offset);
        dcs_buf_append(log, line, (size_t)n);
        dcs_buf_append(log, tmp->data, tmp->len);
        dcs_buf_append(log, "\n", 1);
    } else {
        char mo[32] = "-";
        if (err->msg_offset != DCS_NO_OFFSET)
            snprintf(mo, sizeof mo, "%llu", (unsigned long long)err->msg_offset);
        n = snprintf(line, sizeof line, "E %s %llu %s %s\n", dcs_err_name(err->code),
                     (unsigned long long)err->offset, mo, err->message);
        dcs_buf_append(log, line, (size_t)n);
    }
}

static char *finish_log(dcs_buf *log)
{
    dcs_buf_append(log, "", 1);
    return log->data;
}

char *decode_log(const dcs_decoder_config *cfg, const char *in, size_t len, const size_t *cuts,
                 size_t ncuts)
{
    dcs_buf log, tmp;
    dcs_message msg;
    dcs_error err;
    dcs_decoder *d;
    size_t start = 0, i;
    int ev;

    dcs_buf_init(&log, NULL);
    dcs_buf_init(&tmp, NULL);
    d = dcs_decoder_new(cfg, NULL);
    cr_assert(d != NULL);
    for (i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        cr_assert_eq(dcs_decoder_feed(d, in + start, end - start), 0);
        while ((ev = dcs_decoder_next(d, &msg, &err)) != DCS_AGAIN)
            log_event(&log, &tmp, ev, &msg, &err);
        start = end;
    }
    while ((ev = dcs_decoder_finish(d, &err)) != DCS_AGAIN)
        log_event(&log, &tmp, ev, &msg, &err);
    dcs_decoder_free(d);
    dcs_buf_free(&tmp);
    return finish_log(&log);
}

char *decode_log_bytewise(const dcs_decoder_config *cfg, const char *in, size_t len)
{
    size_t *cuts = malloc((len ? len : 1) * sizeof *cuts), i;
    char *log;
    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    log = decode_log(cfg, in, len, cuts, len ? len - 1 : 0);
    free(cuts);
    return log;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *expand_input(const char *src, size_t *len, size_t *marks, size_t *nmarks)
{
    dcs_buf out;
    size_t maxmarks = nmarks ? *nmarks : 0, nm = 0;
    dcs_buf_init(&out, NULL);
    dcs_buf_reserve(&out, 1);
    for (; *src; src++) {
        if (*src != '%') {
            dcs_buf_append(&out, src, 1);
            continue;
        }
        src++;
        if (*src == '%') {
            dcs_buf_append(&out, "%", 1);
        } else if (*src == '_') {
            dcs_buf_append(&out, TEST_ENVELOPE, sizeof TEST_ENVELOPE - 1);
        } else if (*src == '!') {
            cr_assert(nm < maxmarks, "too many %%! markers");
            marks[nm++] = out.len;
        } else {
            int h = hexval(src[0]), l = hexval(src[1]);
            unsigned char b;
            cr_assert(h >= 0 && l >= 0, "bad %% escape in test input near '%.8s'", src);
            b = (unsigned char)(h << 4 | l);
            dcs_buf_append(&out, &b, 1);
            src++;
        }
    }
    if (nmarks)
        *nmarks = nm;
    *len = out.len;
    return out.data;
}

size_t split_tabs(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *t = strchr(p, '\t');
        fields[n++] = p;
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}
