/* config.c - the configuration both programs share: the socket path rule
 * (spec 3.2), NAME=VALUE overrides of every timer and limit (spec 12.1), and
 * DCS_TIME_SCALE followed by the start-up checks (spec 12.2, 12.3). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "shell.h"

/* ------------------------------------------------------------------------ */
/* Socket path                                                               */

int dsh_socket_path(const char *opt, char *out, size_t n, char *why, size_t wn)
{
    const struct sockaddr_un *sun = NULL;
    const size_t max = sizeof sun->sun_path - 1; /* 107 on Linux */
    const char *env = getenv("SOCKET_PATH");
    int k;

    if (opt && !opt[0]) {
        snprintf(why, wn, "the socket path must not be empty");
        return -1;
    }
    if (opt) {
        k = snprintf(out, n, "%s", opt);
    } else if (env && env[0]) {
        k = snprintf(out, n, "%s", env);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(why, wn, "cannot find the working directory for the default socket path: %s",
                     strerror(errno));
            return -1;
        }
        k = snprintf(out, n, "%s/data.private/config/api.sock", strcmp(cwd, "/") ? cwd : "");
    }
    if (k < 0 || (size_t)k >= n || (size_t)k > max) {
        snprintf(why, wn,
                 "the socket path is %d bytes long; a Unix socket path may have at most %zu", k,
                 max);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* NAME=VALUE                                                                */

enum { K_MS, K_DOUBLE, K_UNSIGNED, K_SIZE };

struct dsh__knob {
    const char *name;     /* the field of dcs_session_config */
    const char *constant; /* its name in spec 12.1 */
    int kind;
    size_t offset;
    const char *what; /* the unit, for --help */
};

#define MS(f, c)                                                                                   \
    {                                                                                              \
#f, c, K_MS, offsetof(dcs_session_config, f), "ms, scaled"                                 \
    }
#define DBL(f, c, w)                                                                               \
    {                                                                                              \
#f, c, K_DOUBLE, offsetof(dcs_session_config, f), w                                        \
    }
#define UNS(f, c, w)                                                                               \
    {                                                                                              \
#f, c, K_UNSIGNED, offsetof(dcs_session_config, f), w                                      \
    }
#define SZ(f, c, w)                                                                                \
    {                                                                                              \
#f, c, K_SIZE, offsetof(dcs_session_config, f), w                                          \
    }

static const struct dsh__knob dsh__knobs[] = {
    MS(connect_timeout, "DCS_T_CONNECT_TIMEOUT"),
    MS(reconnect_base, "DCS_T_RECONNECT_BASE"),
    MS(reconnect_max, "DCS_T_RECONNECT_MAX"),
    MS(breaker_open, "DCS_T_BREAKER_OPEN"),
    MS(client_heartbeat, "DCS_T_CLIENT_HEARTBEAT"),
    MS(server_heartbeat, "DCS_T_SERVER_HEARTBEAT"),
    MS(heartbeat_timeout, "DCS_T_HEARTBEAT_TIMEOUT"),
    MS(queue_max_age, "DCS_T_QUEUE_MAX_AGE"),
    MS(dedup_progress, "DCS_T_DEDUP_PROGRESS"),
    MS(dedup_token, "DCS_T_DEDUP_TOKEN"),
    MS(register_deadline, "DCS_T_REGISTER_DEADLINE"),
    MS(request_timeout, "DCS_T_REQUEST_TIMEOUT"),
    MS(auth_idle, "DCS_T_AUTH_IDLE"),
    MS(auth_sweep, "DCS_T_AUTH_SWEEP"),
    MS(auth_active, "DCS_T_AUTH_ACTIVE"),
    MS(challenge_wait, "DCS_T_CHALLENGE_WAIT"),
    MS(nonce_lifetime, "DCS_T_NONCE_LIFETIME"),
    MS(shutdown_grace, "DCS_T_SHUTDOWN_GRACE"),
    MS(flood_period, "the period of DCS_FLOOD_RATE"),
    DBL(reconnect_factor, "DCS_RECONNECT_FACTOR", "factor"),
    DBL(reconnect_jitter, "DCS_RECONNECT_JITTER", "fraction"),
    UNS(queue_keep_percent, "DCS_QUEUE_KEEP_PERCENT", "percent"),
    UNS(breaker_threshold, "DCS_BREAKER_THRESHOLD", "failed attempts"),
    SZ(queue_max_messages, "DCS_QUEUE_MAX_MESSAGES", "messages"),
    SZ(queue_max_bytes, "DCS_QUEUE_MAX_BYTES", "bytes"),
    SZ(dedup_max_keys, "DCS_DEDUP_MAX_KEYS", "keys"),
    SZ(max_pending_requests, "DCS_MAX_PENDING_REQUESTS", "requests"),
    SZ(flood_rate, "DCS_FLOOD_RATE", "messages per period"),
    SZ(flood_burst, "DCS_FLOOD_BURST", "messages"),
    SZ(max_connections, "DCS_MAX_CONNECTIONS", "connections"),
    SZ(max_message_size, "DCS_DEFAULT_MAX_MESSAGE_SIZE", "bytes"),
    UNS(max_depth, "DCS_DEFAULT_MAX_DEPTH", "levels"),
    SZ(max_request_id, "DCS_MAX_REQUEST_ID_BYTES", "bytes"),
};

#undef MS
#undef DBL
#undef UNS
#undef SZ

#define N_KNOBS (sizeof dsh__knobs / sizeof dsh__knobs[0])

int dsh_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        unsigned d;
        if (*s < '0' || *s > '9')
            return -1;
        d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int dsh_config_set(dcs_session_config *c, const char *assignment, char *why, size_t n)
{
    const char *eq = strchr(assignment, '=');
    const char *value;
    size_t i, len;
    uint64_t u;

    if (!eq || eq == assignment) {
        snprintf(why, n, "--set needs NAME=VALUE, got '%s'", assignment);
        return -1;
    }
    len = (size_t)(eq - assignment);
    value = eq + 1;
    for (i = 0; i < N_KNOBS; i++) {
        const struct dsh__knob *k = &dsh__knobs[i];
        char *field = (char *)c + k->offset;
        if (!((strlen(k->name) == len && memcmp(k->name, assignment, len) == 0) ||
              (strlen(k->constant) == len && memcmp(k->constant, assignment, len) == 0)))
            continue;
        switch (k->kind) {
        case K_MS:
            if (dsh_parse_uint(value, INT64_MAX / 2, &u)) {
                snprintf(why, n, "--set %s: '%s' is not a whole number of milliseconds", k->name,
                         value);
                return -1;
            }
            *(dcs_ms *)(void *)field = (dcs_ms)u;
            return 0;
        case K_DOUBLE: {
            char *end;
            double d;
            errno = 0;
            d = strtod(value, &end);
            if (!value[0] || *end || errno || !isfinite(d)) {
                snprintf(why, n, "--set %s: '%s' is not a finite number", k->name, value);
                return -1;
            }
            *(double *)(void *)field = d;
            return 0;
        }
        case K_UNSIGNED:
            if (dsh_parse_uint(value, 0xffffffffu, &u)) {
                snprintf(why, n, "--set %s: '%s' is not a non-negative integer", k->name, value);
                return -1;
            }
            *(unsigned *)(void *)field = (unsigned)u;
            return 0;
        default:
            if (dsh_parse_uint(value, SIZE_MAX, &u)) {
                snprintf(why, n, "--set %s: '%s' is not a non-negative integer", k->name, value);
                return -1;
            }
            *(size_t *)(void *)field = (size_t)u;
            return 0;
        }
    }
    snprintf(why, n, "--set: unknown setting '%.*s' (see --help for the names)", (int)len,
             assignment);
    return -1;
}

/* The value of knob k in c as text. */
static void dsh__knob_value(const struct dsh__knob *k, const dcs_session_config *c, char *buf,
                            size_t n)
{
    const char *field = (const char *)c + k->offset;
    switch (k->kind) {
    case K_MS:
        snprintf(buf, n, "%lld", (long long)*(const dcs_ms *)(const void *)field);
        break;
    case K_DOUBLE:
        snprintf(buf, n, "%g", *(const double *)(const void *)field);
        break;
    case K_UNSIGNED:
        snprintf(buf, n, "%u", *(const unsigned *)(const void *)field);
        break;
    default:
        snprintf(buf, n, "%zu", *(const size_t *)(const void *)field);
        break;
    }
}

void dsh_config_help(FILE *f, const char *indent)
{
    dcs_session_config c;
    size_t i;
    dcs_session_config_init(&c);
    for (i = 0; i < N_KNOBS; i++) {
        char v[32];
        dsh__knob_value(&dsh__knobs[i], &c, v, sizeof v);
        fprintf(f, "%s%-22s %-30s %9s %s\n", indent, dsh__knobs[i].name, dsh__knobs[i].constant, v,
                dsh__knobs[i].what);
    }
}

void dsh_jw_session_config(dsh_jw *w, const dcs_session_config *c)
{
    size_t i;
    for (i = 0; i < N_KNOBS; i++) {
        const struct dsh__knob *k = &dsh__knobs[i];
        const char *field = (const char *)c + k->offset;
        switch (k->kind) {
        case K_MS:
            dsh_jw_int(w, k->name, *(const dcs_ms *)(const void *)field);
            break;
        case K_DOUBLE:
            dsh_jw_double(w, k->name, *(const double *)(const void *)field);
            break;
        case K_UNSIGNED:
            dsh_jw_uint(w, k->name, *(const unsigned *)(const void *)field);
            break;
        default:
            dsh_jw_uint(w, k->name, *(const size_t *)(const void *)field);
            break;
        }
    }
}

int dsh_config_finish(dcs_session_config *c, double *factor, char *why, size_t n)
{
    const char *text = getenv("DCS_TIME_SCALE");
    double f;
    if (dcs_time_scale_parse(text, &f) != 0) {
        snprintf(why, n, "DCS_TIME_SCALE must be a positive decimal number, not '%s'", text);
        return -1;
    }
    if (dcs_session_config_scale(c, f) != 0) {
        snprintf(why, n, "DCS_TIME_SCALE '%s' cannot be applied", text);
        return -1;
    }
    if (dcs_session_config_check(c, why, n) != 0)
        return -1;
    if (factor)
        *factor = f;
    return 0;
}
