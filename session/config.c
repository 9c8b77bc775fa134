/* config.c - the defaults, time scaling and checks of spec section 12. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "dcs/session.h"

/* ------------------------------------------------------------------------ */
/* The scaled timers                                                         */

/* Every timer that DCS_TIME_SCALE multiplies (spec 12.1, "scaled: yes"), with
 * the name a reason quotes. flood_period is the scaled second of
 * DCS_FLOOD_RATE (spec 12.2). */
#define DCS__TIMER_MAP(XX)                                                                 \
    XX(connect_timeout, "DCS_T_CONNECT_TIMEOUT")                                          \
    XX(reconnect_base, "DCS_T_RECONNECT_BASE")                                            \
    XX(reconnect_max, "DCS_T_RECONNECT_MAX")                                              \
    XX(breaker_open, "DCS_T_BREAKER_OPEN")                                                \
    XX(client_heartbeat, "DCS_T_CLIENT_HEARTBEAT")                                        \
    XX(server_heartbeat, "DCS_T_SERVER_HEARTBEAT")                                        \
    XX(heartbeat_timeout, "DCS_T_HEARTBEAT_TIMEOUT")                                      \
    XX(queue_max_age, "DCS_T_QUEUE_MAX_AGE")                                              \
    XX(dedup_progress, "DCS_T_DEDUP_PROGRESS")                                            \
    XX(dedup_token, "DCS_T_DEDUP_TOKEN")                                                  \
    XX(register_deadline, "DCS_T_REGISTER_DEADLINE")                                      \
    XX(request_timeout, "DCS_T_REQUEST_TIMEOUT")                                          \
    XX(auth_idle, "DCS_T_AUTH_IDLE")                                                      \
    XX(auth_sweep, "DCS_T_AUTH_SWEEP")                                                    \
    XX(auth_active, "DCS_T_AUTH_ACTIVE")                                                  \
    XX(challenge_wait, "DCS_T_CHALLENGE_WAIT")                                            \
    XX(nonce_lifetime, "DCS_T_NONCE_LIFETIME")                                            \
    XX(shutdown_grace, "DCS_T_SHUTDOWN_GRACE")                                            \
    XX(flood_period, "the period of DCS_FLOOD_RATE")

/* Every count and size that must not be 0 (spec 12.3), with its name. */
#define DCS__COUNT_MAP(XX)                                                                 \
    XX(breaker_threshold, "DCS_BREAKER_THRESHOLD")                                        \
    XX(queue_max_messages, "DCS_QUEUE_MAX_MESSAGES")                                      \
    XX(queue_max_bytes, "DCS_QUEUE_MAX_BYTES")                                            \
    XX(dedup_max_keys, "DCS_DEDUP_MAX_KEYS")                                              \
    XX(max_pending_requests, "DCS_MAX_PENDING_REQUESTS")                                  \
    XX(flood_rate, "DCS_FLOOD_RATE")                                                      \
    XX(flood_burst, "DCS_FLOOD_BURST")                                                    \
    XX(max_connections, "DCS_MAX_CONNECTIONS")                                            \
    XX(max_message_size, "DCS_DEFAULT_MAX_MESSAGE_SIZE")                                  \
    XX(max_request_id, "DCS_MAX_REQUEST_ID_BYTES")

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

void dcs_session_config_init(dcs_session_config *c)
{
    c->connect_timeout = 5000;
    c->reconnect_base = 5000;
    c->reconnect_max = 30000;
    c->breaker_open = 30000;
    c->client_heartbeat = 10000;
    c->server_heartbeat = 5000;
    c->heartbeat_timeout = 30000;
    c->queue_max_age = 300000;
    c->dedup_progress = 1000;
    c->dedup_token = 5000;
    c->register_deadline = 5000;
    c->request_timeout = 30000;
    c->auth_idle = 300000;
    c->auth_sweep = 60000;
    c->auth_active = 60000;
    c->challenge_wait = 2000;
    c->nonce_lifetime = c->register_deadline;
    c->shutdown_grace = 2000;
    c->flood_period = 1000;

    c->reconnect_factor = 1.5;
    c->reconnect_jitter = 0.2;
    c->queue_keep_percent = 80;

    c->breaker_threshold = 5;
    c->queue_max_messages = 1000;
    c->queue_max_bytes = 8u * 1024u * 1024u;
    c->dedup_max_keys = 1000;
    c->max_pending_requests = 64;
    c->flood_rate = 1000;
    c->flood_burst = 2000;
    c->max_connections = 128;
    c->max_message_size = DCS_DEFAULT_MAX_MESSAGE_SIZE;
    c->max_depth = DCS_DEFAULT_MAX_DEPTH;
    c->max_request_id = 256;
}

/* ------------------------------------------------------------------------ */
/* Scaling                                                                   */

/* One timer times the factor, rounded down, at least 1 ms (spec 12.2).
 *
 * The factor is a decimal that a double only approximates, so the product
 * can land a few units in the last place below the integer that decimal
 * arithmetic gives (100 * 0.29 is 28.999999999999996 in binary). A product
 * within 4 ulp below an integer is therefore taken as that integer: no
 * decimal of the precision a double carries can be told apart from it.
 * A timer that is not positive is left alone so that the check refuses it
 * instead of it silently becoming 1 ms. Products beyond the range of dcs_ms
 * saturate at DCS_NEVER. */
static dcs_ms dcs__scale_timer(dcs_ms v, double factor)
{
    double r, f;
    if (v <= 0)
        return v;
    r = (double)v * factor;
    if (r >= 9223372036854775807.0)
        return DCS_NEVER;
    f = floor(r);
    if (f + 1.0 - r <= 4.0 * r * DBL_EPSILON)
        f += 1.0;
    if (f >= 9223372036854775807.0)
        return DCS_NEVER;
    return f < 1.0 ? 1 : (dcs_ms)f;
}

int dcs_session_config_scale(dcs_session_config *c, double factor)
{
    if (!(factor > 0.0) || !isfinite(factor))
        return DCS_EINVAL;
#define DCS__SCALE(field, name) c->field = dcs__scale_timer(c->field, factor);
    DCS__TIMER_MAP(DCS__SCALE)
#undef DCS__SCALE
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */

/* Write a reason to why (if there is room) and return DCS_EINVAL. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int dcs__refuse(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    if (why && n > 0) {
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return DCS_EINVAL;
}

/* hb must be less than half of timeout; both are positive here, so
 * hb < timeout - hb is the exact test and cannot overflow. */
static int dcs__half_ok(dcs_ms hb, dcs_ms timeout)
{
    return hb < timeout - hb;
}

int dcs_session_config_check(const dcs_session_config *c, char *why, size_t n)
{
    if (why && n > 0)
        why[0] = '\0';

#define DCS__POSITIVE(field, name)                                                         \
    if (c->field < 1)                                                                      \
        return dcs__refuse(why, n, "%s must be at least 1 ms, not %lld", name,              \
                           (long long)c->field);
    DCS__TIMER_MAP(DCS__POSITIVE)
#undef DCS__POSITIVE

    if (!dcs__half_ok(c->client_heartbeat, c->heartbeat_timeout))
        return dcs__refuse(why, n,
                           "DCS_T_CLIENT_HEARTBEAT (%lld ms) must be less than half of "
                           "DCS_T_HEARTBEAT_TIMEOUT (%lld ms)",
                           (long long)c->client_heartbeat, (long long)c->heartbeat_timeout);
    if (!dcs__half_ok(c->server_heartbeat, c->heartbeat_timeout))
        return dcs__refuse(why, n,
                           "DCS_T_SERVER_HEARTBEAT (%lld ms) must be less than half of "
                           "DCS_T_HEARTBEAT_TIMEOUT (%lld ms)",
                           (long long)c->server_heartbeat, (long long)c->heartbeat_timeout);
    if (c->challenge_wait >= c->register_deadline)
        return dcs__refuse(why, n,
                           "DCS_T_CHALLENGE_WAIT (%lld ms) must be less than "
                           "DCS_T_REGISTER_DEADLINE (%lld ms)",
                           (long long)c->challenge_wait, (long long)c->register_deadline);
    if (c->reconnect_base > c->reconnect_max)
        return dcs__refuse(why, n,
                           "DCS_T_RECONNECT_BASE (%lld ms) must not be greater than "
                           "DCS_T_RECONNECT_MAX (%lld ms)",
                           (long long)c->reconnect_base, (long long)c->reconnect_max);
    if (!(c->reconnect_jitter >= 0.0 && c->reconnect_jitter < 1.0))
        return dcs__refuse(why, n, "DCS_RECONNECT_JITTER (%g) must be in [0, 1)",
                           c->reconnect_jitter);
    if (!(c->reconnect_factor >= 1.0) || !isfinite(c->reconnect_factor))
        return dcs__refuse(why, n, "DCS_RECONNECT_FACTOR (%g) must be finite and at least 1",
                           c->reconnect_factor);
    if (c->queue_keep_percent < 1 || c->queue_keep_percent > 100)
        return dcs__refuse(why, n, "DCS_QUEUE_KEEP_PERCENT (%u) must be in 1..100",
                           c->queue_keep_percent);
    if (c->max_depth < 2 || c->max_depth > DCS_MAX_DEPTH_LIMIT)
        return dcs__refuse(why, n, "DCS_DEFAULT_MAX_DEPTH (%u) must be in 2..%u", c->max_depth,
                           (unsigned)DCS_MAX_DEPTH_LIMIT);

#define DCS__NONZERO(field, name)                                                          \
    if (c->field == 0)                                                                     \
        return dcs__refuse(why, n, "%s must not be 0", name);
    DCS__COUNT_MAP(DCS__NONZERO)
#undef DCS__NONZERO
    return 0;
}

/* ------------------------------------------------------------------------ */
/* DCS_TIME_SCALE                                                            */

/* A decimal number: digits with an optional fraction (at least one digit in
 * all) and an optional exponent. No sign, no spaces, no hexadecimal, no
 * "inf" or "nan": strtod would take all of those. */
static int dcs__is_decimal(const char *s)
{
    size_t digits = 0;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9')
            s++, digits++;
    }
    if (digits == 0)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

int dcs_time_scale_parse(const char *text, double *factor)
{
    char *end;
    double v;
    if (text == NULL || text[0] == '\0') {
        *factor = 1.0;
        return 0;
    }
    if (!dcs__is_decimal(text))
        return DCS_EINVAL;
    /* strtod follows the locale's decimal point; under a locale that does
     * not use '.', it stops early and the text is refused, never misread. */
    v = strtod(text, &end);
    if (*end != '\0' || !(v > 0.0) || !isfinite(v))
        return DCS_EINVAL;
    *factor = v;
    return 0;
}
