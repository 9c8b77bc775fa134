/* test_session_blocks.c - the session layer's building blocks: configuration
 * (spec 12), backoff (8.3), outbound queue (8.6) and dedup cache (8.7).
 * Time is a fake clock: every `now` is a number chosen by the test. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/session.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* Configuration: defaults, scaling, checks, DCS_TIME_SCALE                  */

Test(config, defaults_equal_the_spec_table)
{
    dcs_session_config c;
    memset(&c, 0xa5, sizeof c);
    dcs_session_config_init(&c);
    cr_assert_eq(c.max_message_size, 1048576);
    cr_assert_eq(c.max_depth, 64);
    cr_assert_eq(c.connect_timeout, 5000);
    cr_assert_eq(c.reconnect_base, 5000);
    cr_assert_eq(c.reconnect_factor, 1.5);
    cr_assert_eq(c.reconnect_max, 30000);
    cr_assert_eq(c.reconnect_jitter, 0.2);
    cr_assert_eq(c.breaker_threshold, 5);
    cr_assert_eq(c.breaker_open, 30000);
    cr_assert_eq(c.client_heartbeat, 10000);
    cr_assert_eq(c.server_heartbeat, 5000);
    cr_assert_eq(c.heartbeat_timeout, 30000);
    cr_assert_eq(c.queue_max_messages, 1000);
    cr_assert_eq(c.queue_keep_percent, 80);
    cr_assert_eq(c.queue_max_bytes, 8388608);
    cr_assert_eq(c.queue_max_age, 300000);
    cr_assert_eq(c.dedup_progress, 1000);
    cr_assert_eq(c.dedup_token, 5000);
    cr_assert_eq(c.dedup_max_keys, 1000);
    cr_assert_eq(c.register_deadline, 5000);
    cr_assert_eq(c.request_timeout, 30000);
    cr_assert_eq(c.max_pending_requests, 64);
    cr_assert_eq(c.flood_rate, 1000);
    cr_assert_eq(c.flood_period, 1000);
    cr_assert_eq(c.flood_burst, 2000);
    cr_assert_eq(c.max_connections, 128);
    cr_assert_eq(c.auth_idle, 300000);
    cr_assert_eq(c.auth_sweep, 60000);
    cr_assert_eq(c.auth_active, 60000);
    cr_assert_eq(c.challenge_wait, 2000);
    cr_assert_eq(c.nonce_lifetime, c.register_deadline);
    cr_assert_eq(c.shutdown_grace, 2000);
    cr_assert_eq(c.max_request_id, 256);
}

Test(config, defaults_pass_the_check_scaled_or_not)
{
    static const double factors[] = {1, 0.01, 0.001, 2, 1e6};
    char why[128];
    size_t i;
    for (i = 0; i < sizeof factors / sizeof factors[0]; i++) {
        dcs_session_config c;
        dcs_session_config_init(&c);
        cr_assert_eq(dcs_session_config_scale(&c, factors[i]), 0);
        cr_assert_eq(dcs_session_config_check(&c, why, sizeof why), 0, "factor %g: %s",
                     factors[i], why);
    }
}

/* At 0.0001 the defaults themselves break a constraint: DCS_T_CHALLENGE_WAIT
 * (0.2 ms) and DCS_T_REGISTER_DEADLINE (0.5 ms) both become the 1 ms floor. */
Test(config, defaults_scaled_below_a_thousandth_are_refused)
{
    dcs_session_config c;
    char why[160];
    dcs_session_config_init(&c);
    cr_assert_eq(dcs_session_config_scale(&c, 0.0001), 0);
    cr_assert_eq(c.challenge_wait, 1);
    cr_assert_eq(c.register_deadline, 1);
    cr_assert_eq(dcs_session_config_check(&c, why, sizeof why), DCS_EINVAL);
    cr_assert(strstr(why, "DCS_T_CHALLENGE_WAIT") != NULL, "%s", why);
}

Test(config, scale_by_a_hundredth)
{
    dcs_session_config c, orig;
    dcs_session_config_init(&c);
    c.shutdown_grace = 50; /* 0.5 ms rounds down to 0: the minimum is 1 ms */
    c.auth_sweep = 199;    /* 1.99 ms rounds down to 1 */
    orig = c;
    cr_assert_eq(dcs_session_config_scale(&c, 0.01), 0);
    cr_assert_eq(c.heartbeat_timeout, 300);
    cr_assert_eq(c.reconnect_base, 50);
    cr_assert_eq(c.reconnect_max, 300);
    cr_assert_eq(c.breaker_open, 300);
    cr_assert_eq(c.connect_timeout, 50);
    cr_assert_eq(c.client_heartbeat, 100);
    cr_assert_eq(c.server_heartbeat, 50);
    cr_assert_eq(c.queue_max_age, 3000);
    cr_assert_eq(c.dedup_progress, 10);
    cr_assert_eq(c.dedup_token, 50);
    cr_assert_eq(c.register_deadline, 50);
    cr_assert_eq(c.request_timeout, 300);
    cr_assert_eq(c.auth_idle, 3000);
    cr_assert_eq(c.auth_active, 600);
    cr_assert_eq(c.challenge_wait, 20);
    cr_assert_eq(c.nonce_lifetime, 50);
    cr_assert_eq(c.flood_period, 10);
    cr_assert_eq(c.shutdown_grace, 1);
    cr_assert_eq(c.auth_sweep, 1);
    /* Factors, counts and sizes are never scaled. */
    cr_assert_eq(c.reconnect_factor, orig.reconnect_factor);
    cr_assert_eq(c.reconnect_jitter, orig.reconnect_jitter);
    cr_assert_eq(c.queue_keep_percent, orig.queue_keep_percent);
    cr_assert_eq(c.breaker_threshold, orig.breaker_threshold);
    cr_assert_eq(c.queue_max_messages, orig.queue_max_messages);
    cr_assert_eq(c.queue_max_bytes, orig.queue_max_bytes);
    cr_assert_eq(c.dedup_max_keys, orig.dedup_max_keys);
    cr_assert_eq(c.max_pending_requests, orig.max_pending_requests);
    cr_assert_eq(c.flood_rate, orig.flood_rate);
    cr_assert_eq(c.flood_burst, orig.flood_burst);
    cr_assert_eq(c.max_connections, orig.max_connections);
    cr_assert_eq(c.max_message_size, orig.max_message_size);
    cr_assert_eq(c.max_depth, orig.max_depth);
    cr_assert_eq(c.max_request_id, orig.max_request_id);
}

Test(config, scale_rounds_like_decimal_arithmetic)
{
    dcs_session_config c;
    dcs_session_config_init(&c);
    /* 100 * 0.29 is 28.999999999999996 in binary; the decimal product is 29. */
    c.shutdown_grace = 100;
    c.challenge_wait = 1000;
    c.heartbeat_timeout = 7;
    cr_assert_eq(dcs_session_config_scale(&c, 0.29), 0);
    cr_assert_eq(c.shutdown_grace, 29);
    cr_assert_eq(c.challenge_wait, 290);
    cr_assert_eq(c.heartbeat_timeout, 2); /* 2.03 */
    dcs_session_config_init(&c);
    cr_assert_eq(dcs_session_config_scale(&c, 1.5), 0);
    cr_assert_eq(c.reconnect_base, 7500);
    cr_assert_eq(c.dedup_progress, 1500);
    /* Far beyond the range of dcs_ms: saturate, never wrap. */
    dcs_session_config_init(&c);
    cr_assert_eq(dcs_session_config_scale(&c, 1e300), 0);
    cr_assert_eq(c.heartbeat_timeout, DCS_NEVER);
}

Test(config, scale_refuses_bad_factors_and_changes_nothing)
{
    static const double bad[] = {0.0, -0.0, -1.0, NAN, INFINITY, -INFINITY};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dcs_session_config c, orig;
        dcs_session_config_init(&c);
        orig = c;
        cr_assert_eq(dcs_session_config_scale(&c, bad[i]), DCS_EINVAL, "factor %g", bad[i]);
        cr_assert(memcmp(&c, &orig, sizeof c) == 0, "factor %g changed the config", bad[i]);
    }
}

/* One violated constraint: a change to the defaults and a word its reason
 * must contain. */
typedef void (*mutate_fn)(dcs_session_config *c);
#define MUTATION(name, body)                                                               \
    static void name(dcs_session_config *c)                                                \
    {                                                                                      \
        body;                                                                              \
    }
MUTATION(client_hb_half, c->client_heartbeat = 15000)
MUTATION(client_hb_over, c->client_heartbeat = 40000)
MUTATION(server_hb_half, c->server_heartbeat = 15000)
MUTATION(server_hb_half_odd, (c->heartbeat_timeout = 31, c->client_heartbeat = 15,
                              c->server_heartbeat = 16))
MUTATION(challenge_equal, c->challenge_wait = 5000)
MUTATION(challenge_over, (c->challenge_wait = 6000, c->nonce_lifetime = 6000))
MUTATION(base_over_max, c->reconnect_base = 30001)
MUTATION(jitter_one, c->reconnect_jitter = 1.0)
MUTATION(jitter_negative, c->reconnect_jitter = -0.01)
MUTATION(jitter_nan, c->reconnect_jitter = NAN)
MUTATION(factor_below_one, c->reconnect_factor = 0.999)
MUTATION(factor_nan, c->reconnect_factor = NAN)
MUTATION(factor_inf, c->reconnect_factor = INFINITY)
MUTATION(keep_zero, c->queue_keep_percent = 0)
MUTATION(keep_101, c->queue_keep_percent = 101)
MUTATION(depth_one, c->max_depth = 1)
MUTATION(depth_4097, c->max_depth = 4097)
MUTATION(zero_breaker, c->breaker_threshold = 0)
MUTATION(zero_queue_messages, c->queue_max_messages = 0)
MUTATION(zero_queue_bytes, c->queue_max_bytes = 0)
MUTATION(zero_dedup_keys, c->dedup_max_keys = 0)
MUTATION(zero_pending, c->max_pending_requests = 0)
MUTATION(zero_flood_rate, c->flood_rate = 0)
MUTATION(zero_flood_burst, c->flood_burst = 0)
MUTATION(zero_connections, c->max_connections = 0)
MUTATION(zero_message_size, c->max_message_size = 0)
MUTATION(zero_request_id, c->max_request_id = 0)
MUTATION(zero_timer, c->request_timeout = 0)
MUTATION(negative_timer, c->queue_max_age = -5)

Test(config, every_constraint_is_refused_with_a_reason)
{
    static const struct {
        mutate_fn f;
        const char *word;
    } cases[] = {
        {client_hb_half, "DCS_T_CLIENT_HEARTBEAT"},
        {client_hb_over, "DCS_T_CLIENT_HEARTBEAT"},
        {server_hb_half, "DCS_T_SERVER_HEARTBEAT"},
        {server_hb_half_odd, "DCS_T_SERVER_HEARTBEAT"},
        {challenge_equal, "DCS_T_CHALLENGE_WAIT"},
        {challenge_over, "DCS_T_CHALLENGE_WAIT"},
        {base_over_max, "DCS_T_RECONNECT_BASE"},
        {jitter_one, "DCS_RECONNECT_JITTER"},
        {jitter_negative, "DCS_RECONNECT_JITTER"},
        {jitter_nan, "DCS_RECONNECT_JITTER"},
        {factor_below_one, "DCS_RECONNECT_FACTOR"},
        {factor_nan, "DCS_RECONNECT_FACTOR"},
        {factor_inf, "DCS_RECONNECT_FACTOR"},
        {keep_zero, "DCS_QUEUE_KEEP_PERCENT"},
        {keep_101, "DCS_QUEUE_KEEP_PERCENT"},
        {depth_one, "DCS_DEFAULT_MAX_DEPTH"},
        {depth_4097, "DCS_DEFAULT_MAX_DEPTH"},
        {zero_breaker, "DCS_BREAKER_THRESHOLD"},
        {zero_queue_messages, "DCS_QUEUE_MAX_MESSAGES"},
        {zero_queue_bytes, "DCS_QUEUE_MAX_BYTES"},
        {zero_dedup_keys, "DCS_DEDUP_MAX_KEYS"},
        {zero_pending, "DCS_MAX_PENDING_REQUESTS"},
        {zero_flood_rate, "DCS_FLOOD_RATE"},
        {zero_flood_burst, "DCS_FLOOD_BURST"},
        {zero_connections, "DCS_MAX_CONNECTIONS"},
        {zero_message_size, "DCS_DEFAULT_MAX_MESSAGE_SIZE"},
        {zero_request_id, "DCS_MAX_REQUEST_ID_BYTES"},
        {zero_timer, "DCS_T_REQUEST_TIMEOUT"},
        {negative_timer, "DCS_T_QUEUE_MAX_AGE"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dcs_session_config c;
        char why[160];
        memset(why, 'x', sizeof why);
        dcs_session_config_init(&c);
        cases[i].f(&c);
        cr_assert_eq(dcs_session_config_check(&c, why, sizeof why), DCS_EINVAL, "case %zu", i);
        cr_assert(memchr(why, '\0', sizeof why) != NULL, "case %zu: reason not terminated", i);
        cr_assert(strstr(why, cases[i].word) != NULL, "case %zu: reason '%s' lacks %s", i, why,
                  cases[i].word);
        cr_assert(strchr(why, '\n') == NULL, "case %zu: reason is not one line", i);
        /* Without a buffer the answer is the same. */
        cr_assert_eq(dcs_session_config_check(&c, NULL, 0), DCS_EINVAL, "case %zu", i);
    }
}

Test(config, limits_of_each_constraint_are_accepted)
{
    dcs_session_config c;
    char why[160];
    dcs_session_config_init(&c);
    c.client_heartbeat = 14999; /* just under half of 30000 */
    c.server_heartbeat = 14999;
    c.challenge_wait = 4999;
    c.reconnect_base = c.reconnect_max;
    c.reconnect_jitter = 0.0;
    c.reconnect_factor = 1.0;
    c.queue_keep_percent = 1;
    c.max_depth = 2;
    c.breaker_threshold = 1;
    c.queue_max_messages = c.queue_max_bytes = c.dedup_max_keys = 1;
    c.max_pending_requests = c.flood_rate = c.flood_burst = c.max_connections = 1;
    c.max_message_size = c.max_request_id = 1;
    cr_assert_eq(dcs_session_config_check(&c, why, sizeof why), 0, "%s", why);
    c.reconnect_jitter = 0.9999;
    c.queue_keep_percent = 100;
    c.max_depth = 4096;
    cr_assert_eq(dcs_session_config_check(&c, why, sizeof why), 0, "%s", why);
}

Test(config, reason_is_truncated_to_the_buffer)
{
    dcs_session_config c;
    char why[8];
    dcs_session_config_init(&c);
    c.reconnect_base = 99999;
    memset(why, 'x', sizeof why);
    cr_assert_eq(dcs_session_config_check(&c, why, 5), DCS_EINVAL);
    cr_assert_eq(why[4], '\0');
    cr_assert_eq(why[5], 'x');
    cr_assert_eq(strncmp(why, "DCS_", 4), 0);
}

Test(time_scale, unset_or_empty_is_one)
{
    double f = 42;
    cr_assert_eq(dcs_time_scale_parse(NULL, &f), 0);
    cr_assert_eq(f, 1.0);
    f = 42;
    cr_assert_eq(dcs_time_scale_parse("", &f), 0);
    cr_assert_eq(f, 1.0);
}

Test(time_scale, positive_finite_decimals)
{
    static const struct {
        const char *text;
        double want;
    } ok[] = {
        {"0.01", 0.01}, {"2", 2.0},     {"1", 1.0},       {"1e-2", 0.01}, {"1E2", 100.0},
        {".5", 0.5},    {"5.", 5.0},    {"0.001", 0.001}, {"1e+3", 1e3},  {"007", 7.0},
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double f = -1;
        cr_assert_eq(dcs_time_scale_parse(ok[i].text, &f), 0, "'%s'", ok[i].text);
        cr_assert_eq(f, ok[i].want, "'%s' gave %g", ok[i].text, f);
    }
}

Test(time_scale, everything_else_is_refused)
{
    static const char *bad[] = {
        "0",    "0.0",   "000",  "-1",   "-0.01", "abc", "1e400", "nan", "NaN",  "inf",
        "-inf", "1e-400", " 1",  "1 ",   "1,5",   "0x10", "+1",   ".",   "1e",   "1e+",
        "1.2.3", "e5",   "1 0",  "0.01s", "\t1",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double f = 42;
        cr_assert_eq(dcs_time_scale_parse(bad[i], &f), DCS_EINVAL, "'%s' was accepted", bad[i]);
        cr_assert_eq(f, 42, "'%s' changed the factor on failure", bad[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Backoff (spec 8.3)                                                        */

/* The largest double below 1. */
#define U_TOP (1.0 - 1.0 / 9007199254740992.0)

static void check_sequence(const dcs_session_config *c, double u, const dcs_ms *want, size_t n)
{
    unsigned i;
    for (i = 0; i < 20; i++) {
        dcs_ms w = want[i < n ? i : n - 1];
        cr_assert_eq(dcs_backoff_delay(c, i, u), w, "u=%.17g failures=%u: %lld, want %lld", u,
                     i, (long long)dcs_backoff_delay(c, i, u), (long long)w);
    }
}

Test(backoff, exact_sequence_without_jitter_in_the_middle)
{
    static const dcs_ms want[] = {5000, 7500, 11250, 16875, 25312, 30000};
    dcs_session_config c;
    dcs_session_config_init(&c);
    check_sequence(&c, 0.5, want, 6);
}

Test(backoff, exact_sequence_at_the_jitter_extremes)
{
    static const dcs_ms low[] = {4000, 6000, 9000, 13500, 20250, 24000};
    static const dcs_ms high[] = {5999, 8999, 13499, 20249, 30374, 35999};
    static const dcs_ms top[] = {6000, 9000, 13500, 20250, 30375, 36000};
    static const dcs_ms mid_high[] = {5500, 8250, 12375, 18562, 27843, 33000};
    dcs_session_config c;
    dcs_session_config_init(&c);
    check_sequence(&c, 0.0, low, 6);
    check_sequence(&c, 0.9999999, high, 6);
    /* The largest u below 1 rounds j to the double nearest 1.2. */
    check_sequence(&c, U_TOP, top, 6);
    check_sequence(&c, 0.75, mid_high, 6);
}

Test(backoff, delays_stay_within_four_and_thirty_six_seconds)
{
    dcs_session_config c;
    unsigned n, k;
    dcs_session_config_init(&c);
    for (n = 0; n < 64; n++) {
        for (k = 0; k <= 1000; k++) {
            double u = k == 1000 ? U_TOP : k / 1000.0;
            dcs_ms d = dcs_backoff_delay(&c, n, u);
            cr_assert(d >= 4000 && d <= 36000, "n=%u u=%g: %lld", n, u, (long long)d);
            if (n >= 5)
                cr_assert(d >= 24000, "n=%u u=%g: %lld", n, u, (long long)d);
        }
    }
    cr_assert_eq(dcs_backoff_delay(&c, 4000000000u, 0.5), 30000);
    /* A misbehaving source is clamped into [0, 1). */
    cr_assert_eq(dcs_backoff_delay(&c, 0, -3.0), 4000);
    cr_assert_eq(dcs_backoff_delay(&c, 0, NAN), 4000);
    cr_assert_eq(dcs_backoff_delay(&c, 0, 7.0), 6000);
}

Test(backoff, scaled_and_unjittered)
{
    static const dcs_ms scaled[] = {50, 75, 112, 168, 253, 300};
    dcs_session_config c;
    dcs_session_config_init(&c);
    cr_assert_eq(dcs_session_config_scale(&c, 0.01), 0);
    check_sequence(&c, 0.5, scaled, 6);
    dcs_session_config_init(&c);
    c.reconnect_jitter = 0.0;
    cr_assert_eq(dcs_backoff_delay(&c, 4, 0.0), 25312);
    cr_assert_eq(dcs_backoff_delay(&c, 4, U_TOP), 25312);
    c.reconnect_factor = 1.0;
    cr_assert_eq(dcs_backoff_delay(&c, 19, 0.3), 5000);
}

/* ------------------------------------------------------------------------ */
/* Outbound queue (spec 8.6)                                                 */

/* Records every drop: ids in order, and how many per reason. */
typedef struct drops {
    uint64_t ids[4096];
    size_t n, count, bytes, age, bad;
} drops;

static void on_drop(void *ud, const dcs_queue_item *it, const char *reason)
{
    drops *d = ud;
    cr_assert(it->data != NULL);
    if (d->n < sizeof d->ids / sizeof d->ids[0])
        d->ids[d->n] = it->id;
    d->n++;
    if (strcmp(reason, "queue-count") == 0)
        d->count++;
    else if (strcmp(reason, "queue-bytes") == 0)
        d->bytes++;
    else if (strcmp(reason, "queue-age") == 0)
        d->age++;
    else
        d->bad++;
}

/* Push message number id: its text is "m<id>", padded with '.' to len. */
static int push_msg(dcs_queue *q, dcs_ms t, uint64_t id, size_t len)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "m%llu", (unsigned long long)id);
    cr_assert((size_t)n <= len && len <= sizeof buf);
    memset(buf + n, '.', len - (size_t)n);
    return dcs_queue_push(q, t, id, buf, len);
}

/* Check that the queue holds exactly ids first..last, in order, each with
 * its own bytes, by popping everything. */
static void drain_expect(dcs_queue *q, uint64_t first, uint64_t last)
{
    uint64_t id;
    for (id = first; id <= last; id++) {
        const dcs_queue_item *it = dcs_queue_peek(q);
        char want[32];
        int n = snprintf(want, sizeof want, "m%llu", (unsigned long long)id);
        cr_assert_not_null(it, "queue ended before id %llu", (unsigned long long)id);
        cr_assert_eq(it->id, id, "got id %llu, want %llu", (unsigned long long)it->id,
                     (unsigned long long)id);
        cr_assert(it->len >= (size_t)n && memcmp(it->data, want, (size_t)n) == 0);
        dcs_queue_pop(q);
    }
    cr_assert_null(dcs_queue_peek(q));
    cr_assert_eq(dcs_queue_count(q), 0);
    cr_assert_eq(dcs_queue_bytes(q), 0);
}

Test(queue, fifo_order_copies_and_accounting)
{
    dcs_session_config c;
    test_alloc t;
    dcs_queue *q;
    char buf[8] = "hello";
    dcs_session_config_init(&c);
    test_alloc_init(&t, 0);
    q = dcs_queue_new(&c, &t.a, NULL, NULL);
    cr_assert_not_null(q);
    cr_assert_null(dcs_queue_peek(q));
    cr_assert_eq(dcs_queue_next_expiry(q), DCS_NEVER);
    dcs_queue_pop(q); /* popping an empty queue does nothing */
    cr_assert_eq(dcs_queue_push(q, 10, 1, buf, 5), 0);
    memcpy(buf, "HELLO", 5); /* the queue holds its own copy */
    cr_assert_eq(dcs_queue_push(q, 20, 2, "", 0), 0);
    cr_assert_eq(dcs_queue_push(q, 20, 3, "abc", 3), 0);
    cr_assert_eq(dcs_queue_count(q), 3);
    cr_assert_eq(dcs_queue_bytes(q), 8);
    cr_assert_eq(dcs_queue_peek(q)->id, 1);
    cr_assert_eq(dcs_queue_peek(q)->enqueued, 10);
    cr_assert(memcmp(dcs_queue_peek(q)->data, "hello", 5) == 0);
    dcs_queue_pop(q);
    cr_assert_eq(dcs_queue_peek(q)->id, 2);
    cr_assert_eq(dcs_queue_peek(q)->len, 0);
    dcs_queue_pop(q);
    cr_assert_eq(dcs_queue_bytes(q), 3);
    /* Time must not go backwards within the queue. */
    cr_assert_eq(dcs_queue_push(q, 19, 4, "x", 1), DCS_EINVAL);
    cr_assert_eq(dcs_queue_push_front(q, 21, 4, "x", 1), DCS_EINVAL);
    cr_assert_eq(dcs_queue_count(q), 1);
    dcs_queue_free(q);
    cr_assert_eq(t.live, 0);
}

Test(queue, the_1001st_message_drops_the_oldest_201)
{
    dcs_session_config c;
    drops d = {0};
    dcs_queue *q;
    uint64_t i;
    dcs_session_config_init(&c);
    q = dcs_queue_new(&c, NULL, on_drop, &d);
    cr_assert_not_null(q);
    for (i = 0; i < 1000; i++)
        cr_assert_eq(push_msg(q, (dcs_ms)i, i, 16), 0);
    cr_assert_eq(d.n, 0);
    cr_assert_eq(dcs_queue_count(q), 1000);
    cr_assert_eq(push_msg(q, 1000, 1000, 16), 0);
    cr_assert_eq(d.n, 201);
    cr_assert_eq(d.count, 201);
    for (i = 0; i < 201; i++)
        cr_assert_eq(d.ids[i], i, "drop %llu was id %llu", (unsigned long long)i,
                     (unsigned long long)d.ids[i]);
    cr_assert_eq(dcs_queue_count(q), 800);
    cr_assert_eq(dcs_queue_bytes(q), 800 * 16);
    /* The next overflow comes 201 messages later, not before. */
    for (i = 1001; i < 1201; i++)
        cr_assert_eq(push_msg(q, (dcs_ms)i, i, 16), 0);
    cr_assert_eq(d.n, 201);
    cr_assert_eq(push_msg(q, 1201, 1201, 16), 0);
    cr_assert_eq(d.count, 402);
    cr_assert_eq(d.ids[401], 401);
    drain_expect(q, 402, 1201);
    cr_assert_eq(d.bytes + d.age + d.bad, 0);
    dcs_queue_free(q);
}

Test(queue, byte_bound_trims_to_80_percent_of_bytes)
{
    dcs_session_config c;
    drops d = {0};
    dcs_queue *q;
    uint64_t i;
    dcs_session_config_init(&c);
    c.queue_max_bytes = 1000;
    q = dcs_queue_new(&c, NULL, on_drop, &d);
    for (i = 0; i < 10; i++)
        cr_assert_eq(push_msg(q, 0, i, 100), 0);
    cr_assert_eq(dcs_queue_bytes(q), 1000); /* exactly the bound: nothing dropped */
    cr_assert_eq(d.n, 0);
    cr_assert_eq(push_msg(q, 0, 10, 100), 0); /* 1100 > 1000: trim to 800 */
    cr_assert_eq(d.bytes, 3);
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.ids[0], 0);
    cr_assert_eq(d.ids[2], 2);
    cr_assert_eq(dcs_queue_bytes(q), 800);
    /* Uneven sizes: trim until at most 800, oldest first. */
    cr_assert_eq(push_msg(q, 0, 11, 250), 0); /* 1050 */
    cr_assert_eq(d.bytes, 6);
    cr_assert_eq(dcs_queue_bytes(q), 750);
    cr_assert_eq(dcs_queue_count(q), 6);
    /* A message larger than the bound on its own is kept, alone. */
    cr_assert_eq(push_msg(q, 0, 12, 1500), 0);
    cr_assert_eq(dcs_queue_count(q), 1);
    cr_assert_eq(dcs_queue_peek(q)->id, 12);
    cr_assert_eq(d.bytes, 12);
    cr_assert_eq(d.count + d.age + d.bad, 0);
    drain_expect(q, 12, 12);
    dcs_queue_free(q);
}

Test(queue, age_expiry_at_exactly_max_age)
{
    dcs_session_config c;
    drops d = {0};
    dcs_queue *q;
    dcs_session_config_init(&c);
    q = dcs_queue_new(&c, NULL, on_drop, &d);
    cr_assert_eq(push_msg(q, 1000, 1, 8), 0);
    cr_assert_eq(push_msg(q, 1500, 2, 8), 0);
    cr_assert_eq(push_msg(q, 1500, 3, 8), 0);
    cr_assert_eq(dcs_queue_next_expiry(q), 301000);
    cr_assert_eq(dcs_queue_expire(q, 300999), 0);
    cr_assert_eq(dcs_queue_count(q), 3);
    cr_assert_eq(dcs_queue_expire(q, 301000), 1);
    cr_assert_eq(d.age, 1);
    cr_assert_eq(d.ids[0], 1);
    cr_assert_eq(dcs_queue_next_expiry(q), 301500);
    cr_assert_eq(dcs_queue_expire(q, 301499), 0);
    cr_assert_eq(dcs_queue_expire(q, 999999), 2);
    cr_assert_eq(d.age, 3);
    cr_assert_eq(dcs_queue_count(q), 0);
    cr_assert_eq(dcs_queue_bytes(q), 0);
    cr_assert_eq(dcs_queue_next_expiry(q), DCS_NEVER);
    cr_assert_eq(d.count + d.bytes + d.bad, 0);
    dcs_queue_free(q);
}

Test(queue, push_front_keeps_its_time_and_the_order)
{
    dcs_session_config c;
    drops d = {0};
    dcs_queue *q;
    const dcs_queue_item *it;
    uint64_t i;
    dcs_session_config_init(&c);
    q = dcs_queue_new(&c, NULL, on_drop, &d);
    cr_assert_eq(push_msg(q, 10, 1, 8), 0);
    cr_assert_eq(push_msg(q, 20, 2, 8), 0);
    cr_assert_eq(push_msg(q, 30, 3, 8), 0);
    it = dcs_queue_peek(q);
    cr_assert_eq(it->id, 1);
    dcs_queue_pop(q); /* "written", but the write was cut off */
    cr_assert_eq(dcs_queue_push_front(q, 10, 1, "m1......", 8), 0);
    it = dcs_queue_peek(q);
    cr_assert_eq(it->id, 1);
    cr_assert_eq(it->enqueued, 10);
    cr_assert_eq(dcs_queue_next_expiry(q), 10 + 300000);
    cr_assert_eq(dcs_queue_expire(q, 300010), 1);
    cr_assert_eq(d.ids[0], 1);
    drain_expect(q, 2, 3);

    /* With the queue full, putting one back drops the oldest others. */
    memset(&d, 0, sizeof d);
    for (i = 100; i < 1100; i++)
        cr_assert_eq(push_msg(q, 40, i, 8), 0);
    dcs_queue_pop(q); /* 100 is in flight */
    cr_assert_eq(push_msg(q, 40, 1100, 8), 0);
    cr_assert_eq(d.n, 0);
    cr_assert_eq(dcs_queue_push_front(q, 40, 100, "m100....", 8), 0);
    cr_assert_eq(d.count, 201);
    cr_assert_eq(d.ids[0], 101);
    cr_assert_eq(d.ids[200], 301);
    cr_assert_eq(dcs_queue_count(q), 800);
    cr_assert_eq(dcs_queue_peek(q)->id, 100);
    dcs_queue_pop(q);
    drain_expect(q, 302, 1100);
    dcs_queue_free(q);
}

Test(queue, ring_wraps_and_grows_in_order)
{
    dcs_session_config c;
    dcs_queue *q;
    uint64_t next = 0, first = 0, i;
    dcs_session_config_init(&c);
    q = dcs_queue_new(&c, NULL, NULL, NULL);
    /* Push 3, pop 2, again and again: head walks around while it grows. */
    for (i = 0; i < 300; i++) {
        int j;
        for (j = 0; j < 3; j++, next++)
            cr_assert_eq(push_msg(q, 0, next, 8), 0);
        for (j = 0; j < 2; j++, first++) {
            cr_assert_eq(dcs_queue_peek(q)->id, first);
            dcs_queue_pop(q);
        }
    }
    cr_assert_eq(dcs_queue_count(q), 300);
    drain_expect(q, first, next - 1);
    dcs_queue_free(q);
}


/* The queue scenario below, with what it produced: the ids popped in order
 * and the drops. A run whose allocator fails once must produce exactly what
 * a clean run produces, since every failed call is retried. */
typedef struct qrun {
    uint64_t out[512];
    size_t nout;
    drops d;
    int failures, created;
} qrun;

/* Push (or put back at the head) with a retry on DCS_ENOMEM, checking that
 * a failed call changed nothing that can be seen. */
static void q_add(dcs_queue *q, qrun *r, int front, dcs_ms t, uint64_t id, size_t len)
{
    for (;;) {
        const dcs_queue_item *h = dcs_queue_peek(q);
        size_t n = dcs_queue_count(q), b = dcs_queue_bytes(q), nd = r->d.n;
        uint64_t hid = h ? h->id : UINT64_MAX;
        dcs_ms hat = h ? h->enqueued : -1, exp = dcs_queue_next_expiry(q);
        char buf[64];
        int rc, k = snprintf(buf, sizeof buf, "m%llu", (unsigned long long)id);
        memset(buf + k, '.', len - (size_t)k);
        rc = front ? dcs_queue_push_front(q, t, id, buf, len) : dcs_queue_push(q, t, id, buf, len);
        if (rc != DCS_ENOMEM) {
            cr_assert_eq(rc, 0);
            return;
        }
        r->failures++;
        h = dcs_queue_peek(q);
        cr_assert_eq(dcs_queue_count(q), n);
        cr_assert_eq(dcs_queue_bytes(q), b);
        cr_assert_eq(r->d.n, nd);
        cr_assert_eq(h ? h->id : UINT64_MAX, hid);
        cr_assert_eq(h ? h->enqueued : -1, hat);
        cr_assert_eq(dcs_queue_next_expiry(q), exp);
    }
}

static void q_pop(dcs_queue *q, qrun *r)
{
    const dcs_queue_item *h = dcs_queue_peek(q);
    if (!h)
        return;
    cr_assert(r->nout < sizeof r->out / sizeof r->out[0]);
    r->out[r->nout++] = h->id;
    dcs_queue_pop(q);
}

static void queue_scenario(test_alloc *t, qrun *r)
{
    dcs_session_config c;
    dcs_queue *q;
    uint64_t k;
    memset(r, 0, sizeof *r);
    dcs_session_config_init(&c);
    c.queue_max_messages = 40; /* the ring grows to 16, 32, then 41 slots */
    c.queue_max_bytes = 400;
    c.queue_max_age = 250;
    q = dcs_queue_new(&c, &t->a, on_drop, &r->d);
    if (!q)
        return;
    r->created = 1;
    for (k = 0; k < 150; k++) {
        dcs_ms now = (dcs_ms)k * 10;
        if (k % 10 == 9 && dcs_queue_count(q) > 0) {
            /* The head was being written when the connection ended. */
            const dcs_queue_item *h = dcs_queue_peek(q);
            uint64_t id = h->id;
            dcs_ms at = h->enqueued;
            size_t len = h->len;
            dcs_queue_pop(q);
            q_add(q, r, 0, now, k, 8 + k % 5);
            q_add(q, r, 1, at, id, len);
        } else {
            q_add(q, r, 0, now, k, 8 + k % 5);
        }
        if (k % 4 == 3)
            q_pop(q, r);
        if (k == 120)
            dcs_queue_expire(q, now);
    }
    while (dcs_queue_count(q))
        q_pop(q, r);
    dcs_queue_free(q);
}

Test(queue, enomem_at_every_allocation_changes_nothing_and_leaks_nothing)
{
    test_alloc t;
    qrun ref, run;
    long i, total;
    test_alloc_init(&t, 0);
    queue_scenario(&t, &ref);
    total = t.calls;
    cr_assert_eq(t.live, 0);
    cr_assert_eq(ref.failures, 0);
    cr_assert(ref.d.count > 0 && ref.d.bytes > 0 && ref.d.age > 0,
              "the scenario must exercise every bound (%zu %zu %zu)", ref.d.count, ref.d.bytes,
              ref.d.age);
    for (i = 1; i <= total; i++) {
        test_alloc_init(&t, i);
        queue_scenario(&t, &run);
        cr_assert_eq(t.failed, 1, "allocation %ld was never made", i);
        cr_assert_eq(t.live, 0, "allocation %ld failing leaked %ld blocks", i, t.live);
        if (!run.created) {
            cr_assert_eq(i, 1);
            continue;
        }
        cr_assert_eq(run.failures, 1, "allocation %ld", i);
        cr_assert_eq(run.nout, ref.nout, "allocation %ld", i);
        cr_assert(memcmp(run.out, ref.out, ref.nout * sizeof ref.out[0]) == 0,
                  "allocation %ld changed what was written", i);
        cr_assert_eq(run.d.n, ref.d.n, "allocation %ld", i);
        cr_assert(memcmp(run.d.ids, ref.d.ids, ref.d.n * sizeof ref.d.ids[0]) == 0,
                  "allocation %ld changed what was dropped", i);
    }
}

/* ------------------------------------------------------------------------ */
/* Dedup cache (spec 8.7)                                                    */

static const unsigned char seed[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static int check_str(dcs_dedup *d, dcs_ms now, const char *key, uint64_t *evicted)
{
    return dcs_dedup_check(d, now, key, strlen(key), evicted);
}

static int check_num(dcs_dedup *d, dcs_ms now, long key, uint64_t *evicted)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "key-%ld", key);
    return dcs_dedup_check(d, now, buf, (size_t)n, evicted);
}

Test(dedup, duplicate_within_the_window_new_again_at_its_end)
{
    dcs_dedup *d = dcs_dedup_new(1000, 1000, seed, NULL);
    cr_assert_not_null(d);
    cr_assert_eq(check_str(d, 5000, "task-1|2025-01-01T00:00:00Z", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 5000, "task-1|2025-01-01T00:00:00Z", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_str(d, 5999, "task-1|2025-01-01T00:00:00Z", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_size(d), 1);
    cr_assert_eq(check_str(d, 6000, "task-1|2025-01-01T00:00:00Z", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_size(d), 1);
    cr_assert_eq(dcs_dedup_next_expiry(d), 7000);
    dcs_dedup_free(d);
}

Test(dedup, a_duplicate_does_not_extend_the_window)
{
    dcs_dedup *d = dcs_dedup_new(1000, 5000, seed, NULL);
    cr_assert_eq(check_str(d, 0, "req-1", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 2500, "req-1", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_str(d, 4999, "req-1", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_next_expiry(d), 5000);
    cr_assert_eq(check_str(d, 5000, "req-1", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 9999, "req-1", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_str(d, 10000, "req-1", NULL), DCS_DEDUP_NEW);
    dcs_dedup_free(d);
}

Test(dedup, a_million_distinct_keys_keep_memory_bounded)
{
    test_alloc t;
    dcs_dedup *d;
    uint64_t evicted = 0;
    long i, peak = 0;
    test_alloc_init(&t, 0);
    d = dcs_dedup_new(1000, 1000000000, seed, &t.a);
    cr_assert_not_null(d);
    for (i = 0; i < 1000000; i++) {
        cr_assert_eq(check_num(d, i / 1000, i, &evicted), DCS_DEDUP_NEW, "key %ld", i);
        if (t.live > peak)
            peak = t.live;
        cr_assert(dcs_dedup_size(d) <= 1000);
    }
    cr_assert_eq(dcs_dedup_size(d), 1000);
    cr_assert_eq(evicted, 1000000 - 1000);
    /* One block per entry, the cache itself and its bucket array. */
    cr_assert(peak <= 1000 + 2, "peak of %ld live blocks", peak);
    /* The survivors are the newest 1000 keys. */
    cr_assert_eq(check_num(d, 1000, 999000, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_num(d, 1000, 999999, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(evicted, 1000000 - 1000);
    dcs_dedup_free(d);
    cr_assert_eq(t.live, 0);
}

Test(dedup, eviction_is_strictly_oldest_first)
{
    dcs_dedup *d = dcs_dedup_new(4, 1000000, seed, NULL);
    uint64_t evicted = 0;
    long i;
    for (i = 0; i < 10; i++)
        cr_assert_eq(check_num(d, i, i, &evicted), DCS_DEDUP_NEW);
    cr_assert_eq(evicted, 6);
    cr_assert_eq(dcs_dedup_size(d), 4);
    /* 6..9 survive (checking them changes nothing) ... */
    for (i = 9; i >= 6; i--)
        cr_assert_eq(check_num(d, 10, i, &evicted), DCS_DEDUP_DUPLICATE, "key %ld", i);
    cr_assert_eq(evicted, 6);
    /* ... and 0..5 are gone. Re-adding 5 evicts 6, the oldest, even though 6
     * was just seen as a duplicate: a duplicate does not refresh an entry. */
    cr_assert_eq(check_num(d, 11, 5, &evicted), DCS_DEDUP_NEW);
    cr_assert_eq(evicted, 7);
    cr_assert_eq(check_num(d, 12, 7, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_num(d, 12, 6, &evicted), DCS_DEDUP_NEW); /* evicts 7 */
    cr_assert_eq(check_num(d, 13, 8, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_num(d, 13, 9, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_num(d, 13, 5, &evicted), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_num(d, 13, 7, &evicted), DCS_DEDUP_NEW); /* evicts 8 */
    cr_assert_eq(evicted, 9);
    cr_assert_eq(dcs_dedup_next_expiry(d), 1000000 + 9);
    dcs_dedup_free(d);
}

Test(dedup, expiry_needs_no_other_traffic)
{
    test_alloc t;
    dcs_dedup *d;
    test_alloc_init(&t, 0);
    d = dcs_dedup_new(1000, 1000, seed, &t.a);
    cr_assert_eq(dcs_dedup_next_expiry(d), DCS_NEVER);
    cr_assert_eq(check_str(d, 100, "a", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 400, "b", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 400, "c", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(t.live, 2 + 3);
    /* The caller sets a timer at next_expiry; nothing else arrives. */
    cr_assert_eq(dcs_dedup_next_expiry(d), 1100);
    cr_assert_eq(dcs_dedup_expire(d, 1099), 0);
    cr_assert_eq(dcs_dedup_expire(d, 1100), 1);
    cr_assert_eq(dcs_dedup_size(d), 2);
    cr_assert_eq(t.live, 2 + 2);
    cr_assert_eq(dcs_dedup_next_expiry(d), 1400);
    cr_assert_eq(dcs_dedup_expire(d, 5000), 2);
    cr_assert_eq(dcs_dedup_size(d), 0);
    cr_assert_eq(t.live, 2);
    cr_assert_eq(dcs_dedup_next_expiry(d), DCS_NEVER);
    /* A check long after expires the old entries before looking. */
    cr_assert_eq(check_str(d, 6000, "a", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 6500, "b", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(check_str(d, 7000, "c", NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_size(d), 2);
    cr_assert_eq(check_str(d, 7000, "b", NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(check_str(d, 7000, "a", NULL), DCS_DEDUP_NEW);
    dcs_dedup_free(d);
    cr_assert_eq(t.live, 0);
}

Test(dedup, long_and_binary_keys)
{
    static const char bin1[] = {'a', '\0', 'b'};
    static const char bin2[] = {'a', '\0', 'c'};
    static const char bin3[] = {'a', '\0'};
    size_t big = 200000;
    char *k1 = malloc(big), *k2 = malloc(big);
    dcs_dedup *d = dcs_dedup_new(100, 1000, seed, NULL);
    memset(k1, 'x', big);
    memcpy(k2, k1, big);
    k2[big - 1] = 'y';
    cr_assert_eq(dcs_dedup_check(d, 0, k1, big, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, k2, big, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, k1, big - 1, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 1, k2, big, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_check(d, 1, k1, big, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_check(d, 0, bin1, 3, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, bin2, 3, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, bin3, 2, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, "a", 1, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, "", 0, NULL), DCS_DEDUP_NEW);
    cr_assert_eq(dcs_dedup_check(d, 0, NULL, 0, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_check(d, 1, bin1, 3, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_check(d, 1, bin2, 3, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_check(d, 1, bin3, 2, NULL), DCS_DEDUP_DUPLICATE);
    cr_assert_eq(dcs_dedup_size(d), 8);
    dcs_dedup_free(d);
    free(k1);
    free(k2);
}

Test(dedup, the_seed_changes_nothing_observable)
{
    unsigned char other[16];
    dcs_dedup *a, *b;
    long i;
    memset(other, 0xee, sizeof other);
    a = dcs_dedup_new(50, 100, seed, NULL);
    b = dcs_dedup_new(50, 100, other, NULL);
    for (i = 0; i < 5000; i++) {
        long key = (i * 7919) % 97;
        uint64_t ea = 0, eb = 0;
        int ra = check_num(a, i / 3, key, &ea), rb = check_num(b, i / 3, key, &eb);
        cr_assert_eq(ra, rb, "step %ld", i);
        cr_assert_eq(ea, eb, "step %ld", i);
    }
    cr_assert_eq(dcs_dedup_size(a), dcs_dedup_size(b));
    dcs_dedup_free(a);
    dcs_dedup_free(b);
}

Test(dedup, creation_refusals_and_failures)
{
    test_alloc t;
    long i;
    cr_assert_null(dcs_dedup_new(0, 1000, seed, NULL));
    for (i = 1; i <= 2; i++) {
        test_alloc_init(&t, i);
        cr_assert_null(dcs_dedup_new(10, 1000, seed, &t.a));
        cr_assert_eq(t.failed, 1);
        cr_assert_eq(t.live, 0);
    }
    test_alloc_init(&t, 1);
    {
        dcs_session_config c;
        dcs_session_config_init(&c);
        cr_assert_null(dcs_queue_new(&c, &t.a, NULL, NULL));
        cr_assert_eq(t.live, 0);
    }
}

/* A dedup scenario with growth of the bucket array, eviction, expiry and
 * duplicates. Every check that fails with DCS_ENOMEM must have changed
 * nothing beyond the expiry and is retried, so the results equal a clean
 * run's. */
typedef struct drun {
    unsigned char res[400];
    uint64_t evicted;
    int failures, created;
} drun;

static void dedup_scenario(test_alloc *t, drun *r)
{
    dcs_dedup *d;
    long k;
    memset(r, 0, sizeof *r);
    d = dcs_dedup_new(40, 100, seed, &t->a); /* buckets 16, 32, 64 */
    if (!d)
        return;
    r->created = 1;
    for (k = 0; k < 400; k++) {
        dcs_ms now = k / 2;
        long key = k % 3 == 0 ? (k / 3) % 5 : 1000 + k;
        int rc;
        for (;;) {
            size_t size;
            dcs_ms exp;
            uint64_t ev = r->evicted;
            dcs_dedup_expire(d, now);
            size = dcs_dedup_size(d);
            exp = dcs_dedup_next_expiry(d);
            rc = check_num(d, now, key, &r->evicted);
            if (rc != DCS_ENOMEM)
                break;
            r->failures++;
            cr_assert_eq(dcs_dedup_size(d), size);
            cr_assert_eq(dcs_dedup_next_expiry(d), exp);
            cr_assert_eq(r->evicted, ev);
        }
        cr_assert(rc == DCS_DEDUP_NEW || rc == DCS_DEDUP_DUPLICATE);
        r->res[k] = (unsigned char)rc;
    }
    dcs_dedup_free(d);
}

Test(dedup, enomem_at_every_allocation_changes_nothing_and_leaks_nothing)
{
    test_alloc t;
    drun ref, run;
    long i, total;
    test_alloc_init(&t, 0);
    dedup_scenario(&t, &ref);
    total = t.calls;
    cr_assert_eq(t.live, 0);
    cr_assert(ref.evicted > 0, "the scenario must evict");
    cr_assert(memchr(ref.res, DCS_DEDUP_DUPLICATE, sizeof ref.res) != NULL);
    for (i = 1; i <= total; i++) {
        test_alloc_init(&t, i);
        dedup_scenario(&t, &run);
        cr_assert_eq(t.failed, 1, "allocation %ld was never made", i);
        cr_assert_eq(t.live, 0, "allocation %ld failing leaked %ld blocks", i, t.live);
        if (!run.created)
            continue;
        cr_assert_eq(run.failures, 1, "allocation %ld", i);
        cr_assert(memcmp(run.res, ref.res, sizeof ref.res) == 0, "allocation %ld", i);
        cr_assert_eq(run.evicted, ref.evicted, "allocation %ld", i);
    }
}
