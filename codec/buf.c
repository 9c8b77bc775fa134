/* buf.c - the default allocator and the growable output buffer. */
#include <stdlib.h>
#include <string.h>

#include "dcs/codec.h"

static void *dcs__libc_alloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void *dcs__libc_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return realloc(ptr, size);
}

static void dcs__libc_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

const dcs_allocator dcs_default_allocator = {
    dcs__libc_alloc, dcs__libc_realloc, dcs__libc_free, NULL,
};

void dcs_buf_init(dcs_buf *b, const dcs_allocator *alloc)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->alloc = alloc ? alloc : &dcs_default_allocator;
}

void dcs_buf_free(dcs_buf *b)
{
    if (b->data)
        b->alloc->free(b->alloc->ud, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int dcs_buf_reserve(dcs_buf *b, size_t n)
{
    size_t need, cap;
    char *p;
    if (!b->alloc)
        b->alloc = &dcs_default_allocator;
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX - b->len)
        return DCS_ENOMEM;
    need = b->len + n;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = b->data ? b->alloc->realloc(b->alloc->ud, b->data, cap) : b->alloc->alloc(b->alloc->ud, cap);
    if (!p)
        return DCS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int dcs_buf_append(dcs_buf *b, const void *data, size_t n)
{
    int rc;
    if (n == 0)
        return 0;
    rc = dcs_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}
