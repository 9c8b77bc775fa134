/* transcript.c - step names, and the durations and windows of
 * spec/TRANSCRIPTS.md section 2. The case reader is in reader.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *dcs_step_name(int kind)
{
    switch (kind) {
#define DCS__STEP_CASE(name, kw) \
    case DCS_STEP_##name: return kw;
        DCS_STEP_MAP(DCS__STEP_CASE)
#undef DCS__STEP_CASE
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* Durations and windows                                                     */

static const struct {
    const char *name;
    int64_t ms;
} timers[] = {
    {"DCS_T_CONNECT_TIMEOUT", 5000},   {"DCS_T_RECONNECT_BASE", 5000},
    {"DCS_T_RECONNECT_MAX", 30000},    {"DCS_T_BREAKER_OPEN", 30000},
    {"DCS_T_CLIENT_HEARTBEAT", 10000}, {"DCS_T_SERVER_HEARTBEAT", 5000},
    {"DCS_T_HEARTBEAT_TIMEOUT", 30000}, {"DCS_T_QUEUE_MAX_AGE", 300000},
    {"DCS_T_DEDUP_PROGRESS", 1000},    {"DCS_T_DEDUP_TOKEN", 5000},
    {"DCS_T_REGISTER_DEADLINE", 5000}, {"DCS_T_REQUEST_TIMEOUT", 30000},
    {"DCS_T_AUTH_IDLE", 300000},       {"DCS_T_AUTH_SWEEP", 60000},
    {"DCS_T_AUTH_ACTIVE", 60000},      {"DCS_T_CHALLENGE_WAIT", 2000},
    {"DCS_T_NONCE_LIFETIME", 5000},    {"DCS_T_SHUTDOWN_GRACE", 2000},
};

typedef struct dscan {
    const char *p, *e;
    char *why;
    size_t whylen;
} dscan;

static int dfail(dscan *d, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(d->why, d->whylen, "bad duration: ");
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < d->whylen)
        vsnprintf(d->why + n, d->whylen - (size_t)n, fmt, ap);
    va_end(ap);
    return DCS_EINVAL;
}

static void dws(dscan *d)
{
    while (d->p < d->e && (*d->p == ' ' || *d->p == '\t'))
        d->p++;
}

/* Reads a plain decimal number (digits with an optional fraction). */
static int dnumber(dscan *d, double *x)
{
    char buf[32];
    size_t n = 0;
    while (d->p + n < d->e && ((d->p[n] >= '0' && d->p[n] <= '9') || d->p[n] == '.'))
        n++;
    if (n == 0 || n >= sizeof buf || d->p[0] == '.' || d->p[n - 1] == '.')
        return dfail(d, "expected a number at '%.*s'", (int)(d->e - d->p > 20 ? 20 : d->e - d->p), d->p);
    memcpy(buf, d->p, n);
    buf[n] = 0;
    if (strchr(buf, '.') != strrchr(buf, '.'))
        return dfail(d, "malformed number '%s'", buf);
    *x = strtod(buf, NULL);
    d->p += n;
    return 0;
}

static int dword(dscan *d, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(d->e - d->p) >= n && memcmp(d->p, w, n) == 0) {
        d->p += n;
        return 1;
    }
    return 0;
}

/* term := NUMBER ('ms' | 's') | T(NAME) | backoff(N) */
static int dterm(dscan *d, double *lo, double *hi)
{
    double x;
    int rc;
    dws(d);
    if (dword(d, "T(")) {
        const char *q = d->p;
        size_t i;
        while (q < d->e && *q != ')')
            q++;
        for (i = 0; i < sizeof timers / sizeof timers[0]; i++)
            if (strlen(timers[i].name) == (size_t)(q - d->p) &&
                memcmp(timers[i].name, d->p, (size_t)(q - d->p)) == 0)
                break;
        if (q >= d->e || i == sizeof timers / sizeof timers[0])
            return dfail(d, "unknown timer in T(%.*s)", (int)(q - d->p > 40 ? 40 : q - d->p), d->p);
        *lo = *hi = (double)timers[i].ms;
        d->p = q + 1;
        return 0;
    }
    if (dword(d, "backoff(")) {
        double base = 5000.0;
        int i;
        dws(d);
        if ((rc = dnumber(d, &x)) != 0)
            return rc;
        dws(d);
        if (!dword(d, ")") || x != (double)(int)x || x > 64)
            return dfail(d, "backoff(N) needs an integer N from 0 to 64");
        for (i = 0; i < (int)x && base < 30000.0; i++)
            base *= 1.5;
        if (base > 30000.0)
            base = 30000.0;
        *lo = (double)(int64_t)(base * 0.8);
        *hi = (double)(int64_t)(base * 1.2);
        return 0;
    }
    if ((rc = dnumber(d, &x)) != 0)
        return rc;
    if (dword(d, "ms"))
        ;
    else if (dword(d, "s"))
        x *= 1000.0;
    else
        return dfail(d, "a duration needs a unit, ms or s");
    if (d->p < d->e && ((*d->p >= 'a' && *d->p <= 'z') || (*d->p >= 'A' && *d->p <= 'Z')))
        return dfail(d, "unknown unit");
    if (x > DCS_DURATION_MAX_MS)
        return dfail(d, "longer than %d ms", DCS_DURATION_MAX_MS);
    *lo = *hi = (double)(int64_t)(x + 0.5);
    return 0;
}

/* expr := term (('+' | '-') term | '*' K)* */
static int dexpr(dscan *d, double *lo, double *hi)
{
    int rc = dterm(d, lo, hi);
    while (rc == 0) {
        double l2, h2;
        dws(d);
        if (d->p >= d->e || (*d->p != '+' && *d->p != '-' && *d->p != '*'))
            break;
        if (*d->p == '*') {
            d->p++;
            dws(d);
            if ((rc = dnumber(d, &l2)) != 0)
                return rc;
            *lo *= l2;
            *hi *= l2;
        } else {
            char op = *d->p++;
            if ((rc = dterm(d, &l2, &h2)) != 0)
                return rc;
            if (op == '+')
                *lo += l2, *hi += h2;
            else
                *lo -= h2, *hi -= l2;
        }
        if (*hi > DCS_DURATION_MAX_MS || *lo > DCS_DURATION_MAX_MS)
            return dfail(d, "longer than %d ms", DCS_DURATION_MAX_MS);
        if (*lo < 0)
            return dfail(d, "negative");
    }
    if (rc == 0 && *hi > DCS_DURATION_MAX_MS)
        return dfail(d, "longer than %d ms", DCS_DURATION_MAX_MS);
    return rc;
}

int dcs_window_parse(const char *s, size_t len, dcs_window *w, char *why, size_t whylen)
{
    char dummy[8];
    dscan d = {s, s + len, why ? why : dummy, why ? whylen : sizeof dummy};
    const char *dots = NULL;
    double lo, hi, l2, h2;
    size_t i;
    int rc;
    for (i = 0; i + 1 < len && !dots; i++)
        if (s[i] == '.' && s[i + 1] == '.')
            dots = s + i;
    if (dots)
        d.e = dots;
    if ((rc = dexpr(&d, &lo, &hi)) != 0)
        return rc;
    dws(&d);
    if (d.p != d.e)
        return dfail(&d, "unexpected '%.*s'", (int)(d.e - d.p > 20 ? 20 : d.e - d.p), d.p);
    if (dots) {
        d.p = dots + 2;
        d.e = s + len;
        if ((rc = dexpr(&d, &l2, &h2)) != 0)
            return rc;
        dws(&d);
        if (d.p != d.e)
            return dfail(&d, "unexpected '%.*s'", (int)(d.e - d.p > 20 ? 20 : d.e - d.p), d.p);
        if (l2 < lo)
            return dfail(&d, "the window ends before it starts");
        hi = h2;
    } else if (lo == hi) {
        lo = 0;
    }
    w->lo_ms = (int64_t)lo;
    w->hi_ms = (int64_t)hi;
    return 0;
}
