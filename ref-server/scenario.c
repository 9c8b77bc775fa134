/* scenario.c - the crawler's scenario: the built-in default and the JSON
 * file of --scenario (format in README.md). */
#include <stdlib.h>
#include <string.h>

#include "rs.h"

void rs_scenario_default(struct rs_scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->steps = 3;
    sc->items_per_step = 10;
    sc->interval = 1000;
    sc->idle_pause = 5000;
    sc->retry_pause = 5000;
    sc->token_refresh = 0;
    snprintf(sc->provider, sizeof sc->provider, "gitlab");
}

static dcs_ms rs_scale_ms(dcs_ms v, double f)
{
    double r = (double)v * f;
    return r < 1.0 ? 1 : (dcs_ms)r;
}

void rs_scenario_scale(struct rs_scenario *sc, double factor)
{
    sc->interval = rs_scale_ms(sc->interval, factor);
    sc->idle_pause = rs_scale_ms(sc->idle_pause, factor);
    sc->retry_pause = rs_scale_ms(sc->retry_pause, factor);
}

static int rs_name_is(dcs_slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* A whole number in [lo, hi]. */
static int rs_number(dcs_slice v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char tmp[32];
    if (v.len == 0 || v.len >= sizeof tmp)
        return -1;
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    if (dsh_parse_uint(tmp, hi, out) || *out < lo)
        return -1;
    return 0;
}

int rs_scenario_load(struct rs_scenario *sc, const char *path, char *why, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    dcs_error err;
    dsh_iter it;
    dcs_slice name, v;
    uint64_t u;
    int rc = -1;

    if (dsh_file_read(path, 1 << 20, &text, &len, why, n))
        return -1;
    if (dcs_json_validate(text, len, 0, &err) != 0) {
        snprintf(why, n, "scenario file %s is not valid JSON: %s at byte %llu", path,
                 dcs_err_name(err.code), (unsigned long long)err.offset);
        goto out;
    }
    if (dsh_iter_object(&it, text, len) != 0) {
        snprintf(why, n, "scenario file %s must hold a JSON object", path);
        goto out;
    }
    while (dsh_iter_next_member(&it, &name, &v)) {
#define NUM(lo, hi)                                                                                \
    if (rs_number(v, lo, hi, &u)) {                                                                \
        snprintf(why, n, "scenario file %s: %.*s must be a whole number from %llu to %llu", path,  \
                 (int)name.len, name.ptr, (unsigned long long)(lo), (unsigned long long)(hi));     \
        goto out;                                                                                  \
    }
        if (rs_name_is(name, "steps")) {
            NUM(0, 1000000)
            sc->steps = (unsigned)u;
        } else if (rs_name_is(name, "itemsPerStep")) {
            NUM(0, 1000000000)
            sc->items_per_step = u;
        } else if (rs_name_is(name, "intervalMs")) {
            NUM(1, 86400000)
            sc->interval = (dcs_ms)u;
        } else if (rs_name_is(name, "idlePauseMs")) {
            NUM(1, 86400000)
            sc->idle_pause = (dcs_ms)u;
        } else if (rs_name_is(name, "retryPauseMs")) {
            NUM(1, 86400000)
            sc->retry_pause = (dcs_ms)u;
        } else if (rs_name_is(name, "maxJobs")) {
            NUM(0, 1000000)
            sc->max_jobs = (unsigned)u;
        } else if (rs_name_is(name, "failEvery")) {
            NUM(0, 1000000)
            sc->fail_every = (int)u;
        } else if (rs_name_is(name, "tokenRefresh")) {
            if (rs_name_is(v, "true"))
                sc->token_refresh = 1;
            else if (rs_name_is(v, "false"))
                sc->token_refresh = 0;
            else {
                snprintf(why, n, "scenario file %s: tokenRefresh must be true or false", path);
                goto out;
            }
        } else if (rs_name_is(name, "providerId")) {
            dcs_buf b;
            int r;
            dcs_buf_init(&b, NULL);
            r = v.len && v.ptr[0] == '"' ? dcs_json_member_string(text, len, "providerId", &b) : 0;
            if (r != 1 || b.len == 0 || b.len >= sizeof sc->provider ||
                memchr(b.data, '\0', b.len)) {
                dcs_buf_free(&b);
                snprintf(why, n, "scenario file %s: providerId must be a short non-empty string",
                         path);
                goto out;
            }
            memcpy(sc->provider, b.data, b.len);
            sc->provider[b.len] = '\0';
            dcs_buf_free(&b);
        } else {
            snprintf(why, n, "scenario file %s: unknown member '%.*s'", path, (int)name.len,
                     name.ptr);
            goto out;
        }
#undef NUM
    }
    rc = 0;
out:
    free(text);
    return rc;
}
