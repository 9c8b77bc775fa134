/* log.c - structured log records, as text or as one JSON object per line
 * (spec 1.4: severity, category, reason, then what is known: connection,
 * peer, type and key). Each record is built in memory and written with one
 * call, so that records of one process never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shell.h"

static struct {
    const char *prog;
    int format;
    int level;
    FILE *out;
} dsh__log = {"dcs", DSH_LOG_TEXT, DCS_LOG_INFO, NULL};

static const char *const dsh__level_names[] = {"error", "warn", "info", "debug"};

void dsh_config_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void dsh_log_setup(const char *prog, int format, int level, FILE *out)
{
    dsh__log.prog = prog;
    dsh__log.format = format;
    dsh__log.level = level;
    dsh__log.out = out;
}

int dsh_log_enabled(int level)
{
    return level <= dsh__log.level;
}

const char *dsh_log_level_name(int level)
{
    if (level < 0 || level > DCS_LOG_DEBUG)
        return "unknown";
    return dsh__level_names[level];
}

int dsh_log_level_parse(const char *s, int *level)
{
    int i;
    for (i = 0; i <= DCS_LOG_DEBUG; i++)
        if (strcmp(s, dsh__level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    if (strcmp(s, "warning") == 0) {
        *level = DCS_LOG_WARN;
        return 0;
    }
    return -1;
}

int dsh_log_format_parse(const char *s, int *format)
{
    if (strcmp(s, "text") == 0)
        *format = DSH_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *format = DSH_LOG_JSON;
    else
        return -1;
    return 0;
}

/* "2025-01-03T19:00:00.123Z" into buf (at least 32 bytes). */
static void dsh__timestamp(char *buf, size_t n)
{
    int64_t ms = dsh_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    size_t k;
    gmtime_r(&secs, &tm);
    k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
}

/* Append text for a terminal: printable bytes as they are, control bytes as
 * \xNN, so that a peer's bytes cannot forge a line or move the cursor. */
static int dsh__text_append(dcs_buf *b, const char *s, size_t len)
{
    size_t i, run = 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            char esc[8];
            if (dcs_buf_append(b, s + run, i - run))
                return DCS_ENOMEM;
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            if (dcs_buf_append(b, esc, 4))
                return DCS_ENOMEM;
            run = i + 1;
        }
    }
    return dcs_buf_append(b, s + run, len - run);
}

static int dsh__append_str(dcs_buf *b, const char *s)
{
    return dcs_buf_append(b, s, strlen(s));
}

static void dsh__json_record(dcs_buf *b, const char *ts, int level, const char *category,
                             const char *reason, const char *msg, const dsh_field *f, size_t nf)
{
    char num[32];
    size_t i;
    dsh__append_str(b, "{\"ts\":\"");
    dsh__append_str(b, ts);
    dsh__append_str(b, "\",\"level\":\"");
    dsh__append_str(b, dsh_log_level_name(level));
    dsh__append_str(b, "\",\"category\":");
    dsh_json_string(b, category, strlen(category));
    dsh__append_str(b, ",\"reason\":");
    dsh_json_string(b, reason, strlen(reason));
    dsh__append_str(b, ",\"msg\":");
    dsh_json_string(b, msg, strlen(msg));
    for (i = 0; i < nf; i++) {
        dcs_buf_append(b, ",", 1);
        dsh_json_string(b, f[i].name, strlen(f[i].name));
        dcs_buf_append(b, ":", 1);
        if (f[i].kind == DSH_F_INT) {
            snprintf(num, sizeof num, "%lld", (long long)f[i].i);
            dsh__append_str(b, num);
        } else {
            dsh_json_string(b, f[i].s ? f[i].s : "", f[i].s ? f[i].len : 0);
        }
    }
    dsh__append_str(b, "}\n");
}

static void dsh__text_record(dcs_buf *b, const char *ts, int level, const char *category,
                             const char *reason, const char *msg, const dsh_field *f, size_t nf)
{
    char head[160];
    size_t i;
    snprintf(head, sizeof head, "%s %-5s %s [", ts, dsh_log_level_name(level), category);
    dsh__append_str(b, head);
    dsh__text_append(b, reason, strlen(reason));
    dsh__append_str(b, "] ");
    dsh__text_append(b, msg, strlen(msg));
    for (i = 0; i < nf; i++) {
        dcs_buf_append(b, " ", 1);
        dsh__append_str(b, f[i].name);
        dcs_buf_append(b, "=", 1);
        if (f[i].kind == DSH_F_INT) {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)f[i].i);
            dsh__append_str(b, num);
        } else if (f[i].s) {
            dsh__text_append(b, f[i].s, f[i].len);
        }
    }
    dcs_buf_append(b, "\n", 1);
}

void dsh_log(int level, const char *category, const char *reason, const dsh_field *fields,
             size_t n_fields, const char *fmt, ...)
{
    char ts[40], stack_msg[512], *msg = stack_msg;
    FILE *out = dsh__log.out ? dsh__log.out : stderr;
    dcs_buf b;
    va_list ap;
    int k;

    if (!dsh_log_enabled(level))
        return;
    va_start(ap, fmt);
    k = vsnprintf(stack_msg, sizeof stack_msg, fmt, ap);
    va_end(ap);
    if (k >= (int)sizeof stack_msg) {
        /* A long sentence: format it again into a buffer of its size. */
        char *big = malloc((size_t)k + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)k + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }
    dsh__timestamp(ts, sizeof ts);
    dcs_buf_init(&b, NULL);
    if (!category)
        category = "-";
    if (!reason || !reason[0])
        reason = "-";
    if (dsh__log.format == DSH_LOG_JSON)
        dsh__json_record(&b, ts, level, category, reason, msg, fields, n_fields);
    else
        dsh__text_record(&b, ts, level, category, reason, msg, fields, n_fields);
    if (b.len)
        fwrite(b.data, 1, b.len, out);
    fflush(out);
    dcs_buf_free(&b);
    if (msg != stack_msg)
        free(msg);
}
