/* stats.c - dcs-server's statistics as one JSON object: the machine's
 * counters (named after the reasons of spec 11.4), the connections and the
 * registry, the crawler's jobs and the effective configuration. Written to
 * --stats FILE on exit and on SIGUSR1 (replaced atomically, mode 0600), or
 * to stderr on SIGUSR1 without --stats. */
#include <stdlib.h>
#include <string.h>

#include "rs.h"

#define RS_MAX_REGISTRY 256

static void rs_stats_build(struct rs *rs, dcs_buf *b)
{
    dcs_ms now = rs_now(rs);
    const dcs_server_stats *s = dcs_server_get_stats(rs->srv);
    dcs_registry_entry *e = calloc(RS_MAX_REGISTRY, sizeof *e);
    size_t i, k = 0;
    dsh_jw w;

    dsh_stats_begin(&w, b, RS_PROG, now + rs->cfg.wall_offset, rs->started_wall, rs->id,
                    rs->socket_path);
    dsh_jw_bool(&w, "paused", s->paused);
    dsh_jw_bool(&w, "shutting_down", s->shutting_down);
    dsh_jw_uint(&w, "connections", s->connections);
    dsh_jw_uint(&w, "registered", s->registered_now);
    dsh_jw_uint(&w, "queued_messages", s->queued_messages);
    dsh_jw_uint(&w, "queued_bytes", s->queued_bytes);
    dsh_jw_by_type(&w, "messages_in_by_type", s->in_by_type);
    dsh_jw_by_type(&w, "messages_out_by_type", s->out_by_type);
    dsh_jw_object(&w, "counters");
#define RS_STAT(field, name) dsh_jw_uint(&w, name, s->field);
    DCS_SERVER_COUNTERS(RS_STAT)
#undef RS_STAT
    dsh_jw_end(&w);
    dsh_jw_object(&w, "crawler");
    dsh_jw_uint(&w, "jobs_received", rs->jobs_received);
    dsh_jw_uint(&w, "jobs_started", rs->jobs_started);
    dsh_jw_uint(&w, "jobs_completed", rs->jobs_completed);
    dsh_jw_uint(&w, "jobs_failed", rs->jobs_failed);
    dsh_jw_uint(&w, "jobs_abandoned", rs->jobs_abandoned);
    dsh_jw_uint(&w, "start_job_commands", rs->start_jobs);
    dsh_jw_uint(&w, "requests_sent", rs->requests_sent);
    dsh_jw_uint(&w, "requests_refused", rs->requests_refused);
    dsh_jw_uint(&w, "empty_replies", rs->empty_replies);
    dsh_jw_uint(&w, "token_requests", rs->token_requests);
    dsh_jw_uint(&w, "progress_sent", rs->progress_sent);
    dsh_jw_uint(&w, "progress_held_paused", rs->progress_paused);
    dsh_jw_uint(&w, "load_sent", rs->load_sent);
    dsh_jw_uint(&w, "drops", rs->drops);
    dsh_jw_end(&w);
    if (e)
        k = dcs_server_registry(rs->srv, now, e, RS_MAX_REGISTRY);
    dsh_jw_array(&w, "registry");
    for (i = 0; e && i < k && i < RS_MAX_REGISTRY; i++) {
        dsh_jw_object(&w, NULL);
        dsh_jw_uint(&w, "conn", e[i].conn);
        dsh_jw_strn(&w, "id", e[i].id.ptr, e[i].id.len);
        dsh_jw_int(&w, "uid", e[i].uid);
        dsh_jw_int(&w, "pid", e[i].pid);
        dsh_jw_int(&w, "connectedAt", e[i].connected_at);
        dsh_jw_int(&w, "lastActivity", e[i].last_activity);
        dsh_jw_str(&w, "status", e[i].active ? "active" : "stale");
        dsh_jw_end(&w);
    }
    dsh_jw_end(&w);
    dsh_stats_end(&w, rs->scale, &rs->cfg.s);
    free(e);
}

void rs_stats_write(struct rs *rs, int to_stderr)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    rs_stats_build(rs, &b);
    dsh_stats_write(&b, rs->stats_path, to_stderr, DCS_CAT_SERVER);
    dcs_buf_free(&b);
}
