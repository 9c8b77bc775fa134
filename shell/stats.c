/* stats.c - what the statistics objects of both programs have in common:
 * the members that open and close the object, and writing it to the
 * --stats file (replaced atomically, mode 0600) or to stderr. */
#include <stdio.h>
#include <unistd.h>

#include "shell.h"

void dsh_stats_begin(dsh_jw *w, dcs_buf *b, const char *prog, int64_t now_wall,
                     int64_t started_wall, const char *id, const char *socket)
{
    dsh_jw_init(w, b);
    dsh_jw_object(w, NULL);
    dsh_jw_str(w, "program", prog);
    dsh_jw_str(w, "version", dcs_version());
    dsh_jw_int(w, "pid", getpid());
    dsh_jw_int(w, "time", now_wall);
    dsh_jw_int(w, "uptime_ms", now_wall - started_wall);
    dsh_jw_str(w, "id", id);
    dsh_jw_str(w, "socket", socket);
}

void dsh_stats_end(dsh_jw *w, double scale, const dcs_session_config *c)
{
    dsh_jw_double(w, "time_scale", scale);
    dsh_jw_object(w, "config");
    dsh_jw_session_config(w, c);
    dsh_jw_end(w);
    dsh_jw_end(w);
    if (!w->err)
        dcs_buf_append(w->b, "\n", 1);
}

void dsh_stats_write(const dcs_buf *b, const char *path, int to_stderr, const char *category)
{
    char why[256];
    if (b->len == 0) {
        dsh_log(DCS_LOG_ERROR, category, "stats", NULL, 0, "cannot build the statistics");
    } else if (to_stderr || !path) {
        fwrite(b->data, 1, b->len, stderr);
        fflush(stderr);
    } else if (dsh_file_replace(path, b->data, b->len, 0600, why, sizeof why) != 0) {
        dsh_log(DCS_LOG_ERROR, category, "stats", NULL, 0, "cannot write statistics: %s", why);
    }
}

void dsh_jw_by_type(dsh_jw *w, const char *key, const uint64_t *counts)
{
    int i;
    dsh_jw_object(w, key);
    for (i = 0; i < DCS_MT_COUNT; i++)
        dsh_jw_uint(w, dcs_msg_type_name(i), counts[i]);
    dsh_jw_end(w);
}
