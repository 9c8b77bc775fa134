/* fault.c - the --fault SPEC grammar of dcs-tap:
 *
 *   slice=N  delay=MS  stall=MS@BYTES  drop=TYPE[/KEY]  dup=TYPE[/KEY]
 *   corrupt=OFFSET  reset=BYTES
 *
 * each optionally followed by :c2s or :s2c (default: both directions). */
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static const char *const tap__fault_names[] = {"", "slice", "delay", "stall", "drop",
                                               "dup", "corrupt", "reset"};

const char *tap_fault_name(int kind)
{
    if (kind < TAP_F_SLICE || kind > TAP_F_RESET)
        return "unknown";
    return tap__fault_names[kind];
}

static char *tap__dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A number up to max in s[0..len). 0 or -1. */
static int tap__num(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    return dsh_parse_uint(tmp, max, out);
}

int tap_fault_parse(const char *spec, tap_fault *f, char *why, size_t n)
{
    const char *eq = strchr(spec, '='), *val, *end = spec + strlen(spec), *at, *slash;
    size_t klen, vlen;
    int kind;

    memset(f, 0, sizeof *f);
    f->dirs = TAP_BOTH;
    if (!eq) {
        snprintf(why, n, "--fault '%s': expected KIND=VALUE[:c2s|:s2c] (see --help)", spec);
        return -1;
    }
    klen = (size_t)(eq - spec);
    for (kind = TAP_F_SLICE; kind <= TAP_F_RESET; kind++)
        if (strlen(tap__fault_names[kind]) == klen &&
            memcmp(spec, tap__fault_names[kind], klen) == 0)
            break;
    if (kind > TAP_F_RESET) {
        snprintf(why, n,
                 "--fault '%s': unknown kind (slice, delay, stall, drop, dup, corrupt or reset)",
                 spec);
        return -1;
    }
    f->kind = kind;
    val = eq + 1;
    if (end - val > 4 && (strcmp(end - 4, ":c2s") == 0 || strcmp(end - 4, ":s2c") == 0)) {
        f->dirs = TAP_DIR_BIT(end[-3] == 'c' ? TAP_C2S : TAP_S2C);
        end -= 4;
    }
    vlen = (size_t)(end - val);
    switch (kind) {
    case TAP_F_SLICE:
        if (tap__num(val, vlen, 1u << 20, &f->n) || f->n == 0)
            goto bad;
        break;
    case TAP_F_DELAY:
        if (tap__num(val, vlen, 3600000, &f->n))
            goto bad;
        break;
    case TAP_F_STALL:
        at = memchr(val, '@', vlen);
        if (!at || tap__num(val, (size_t)(at - val), 3600000, &f->n) ||
            tap__num(at + 1, (size_t)(end - at - 1), UINT64_MAX / 2, &f->at))
            goto bad;
        break;
    case TAP_F_DROP:
    case TAP_F_DUP:
        slash = memchr(val, '/', vlen);
        if (vlen == 0 || slash == val || (slash && slash + 1 == end))
            goto bad;
        f->type = tap__dup(val, slash ? (size_t)(slash - val) : vlen);
        if (slash)
            f->key = tap__dup(slash + 1, (size_t)(end - slash - 1));
        if (!f->type || (slash && !f->key)) {
            snprintf(why, n, "out of memory");
            tap_fault_free(f);
            return -1;
        }
        break;
    case TAP_F_CORRUPT:
    case TAP_F_RESET:
        if (tap__num(val, vlen, UINT64_MAX / 2, &f->n))
            goto bad;
        break;
    }
    if (!(f->spec = tap__dup(spec, strlen(spec)))) {
        snprintf(why, n, "out of memory");
        tap_fault_free(f);
        return -1;
    }
    return 0;
bad:
    {
        static const char *const forms[] = {"", "slice=N (N >= 1)", "delay=MS", "stall=MS@BYTES",
                                            "drop=TYPE[/KEY]", "dup=TYPE[/KEY]",
                                            "corrupt=OFFSET", "reset=BYTES"};
        snprintf(why, n, "--fault '%s': expected %s[:c2s|:s2c]", spec, forms[kind]);
    }
    tap_fault_free(f);
    return -1;
}

void tap_fault_free(tap_fault *f)
{
    free(f->type);
    free(f->key);
    free(f->spec);
    f->type = f->key = f->spec = NULL;
}

static int tap__eq(const char *s, const dcs_slice *v)
{
    return strlen(s) == v->len && memcmp(s, v->ptr, v->len) == 0;
}

int tap_fault_matches(const tap_fault *f, const dcs_slice *type, const dcs_slice *key)
{
    return tap__eq(f->type, type) && (!f->key || tap__eq(f->key, key));
}
