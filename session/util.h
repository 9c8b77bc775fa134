/* util.h - internal: small helpers every file of the session layer uses. */
#ifndef DCS_SESSION_UTIL_H
#define DCS_SESSION_UTIL_H

#include <string.h>

#include "dcs/codec.h"

/* 1 if the slice holds exactly the NUL-terminated string lit. */
static inline int dcs__slice_is(dcs_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

/* A NUL-terminated copy of p[0..n) from the allocator, or NULL. */
static inline char *dcs__memdup(const dcs_allocator *a, const char *p, size_t n)
{
    char *d = a->alloc(a->ud, n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* A copy of the NUL-terminated string s from the allocator, or NULL. */
static inline char *dcs__dupstr(const dcs_allocator *a, const char *s)
{
    return dcs__memdup(a, s, strlen(s));
}

/* The reason a message refused by its writer is logged and dropped with:
 * spec 11.4's names for the limits and non-finite numbers (too-large,
 * too-deep, not-finite), the codec's reason for the rest (bad_json,
 * bad_utf8, ...). */
static inline const char *dcs__refusal_reason(int rc)
{
    switch (rc) {
    case DCS_ETOO_LARGE:
        return "too-large";
    case DCS_ETOO_DEEP:
        return "too-deep";
    case DCS_ENOT_FINITE:
        return "not-finite";
    default:
        return dcs_err_name(rc);
    }
}

#endif
