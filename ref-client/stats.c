/* stats.c - dcs-client's statistics as one JSON object: the machine's
 * counters (dcs_client_stats), drops by reason, messages delivered and
 * written by type/key, the jobs, the registry entry and the effective
 * configuration. Written to --stats FILE on exit and on SIGUSR1 (replaced
 * atomically, mode 0600), or to stderr on SIGUSR1 without --stats. */
#include <stdlib.h>
#include <string.h>

#include "rc.h"

/* ------------------------------------------------------------------------ */
/* Counters by kind                                                          */

void rc_kinds_add(struct rc_kinds *k, dcs_slice type, dcs_slice key)
{
    size_t i, len = type.len + 1 + key.len;
    char *name;
    for (i = 0; i < k->used; i++)
        if (strlen(k->name[i]) == len && memcmp(k->name[i], type.ptr, type.len) == 0 &&
            k->name[i][type.len] == '/' &&
            memcmp(k->name[i] + type.len + 1, key.ptr, key.len) == 0) {
            k->n[i]++;
            return;
        }
    if (k->used == RC_MAX_KINDS || memchr(type.ptr, '\0', type.len) ||
        memchr(key.ptr, '\0', key.len) || !(name = malloc(len + 1))) {
        k->other++;
        return;
    }
    memcpy(name, type.ptr, type.len);
    name[type.len] = '/';
    memcpy(name + type.len + 1, key.ptr, key.len);
    name[len] = '\0';
    k->name[k->used] = name;
    k->n[k->used++] = 1;
}

void rc_kinds_free(struct rc_kinds *k)
{
    size_t i;
    for (i = 0; i < k->used; i++)
        free(k->name[i]);
    k->used = 0;
}

void rc_count_written(struct rc *rc, const char *data, size_t len)
{
    dcs_slice t, k;
    /* The machine writes compact JSON with plain-ASCII type and key in our
     * case; the raw string bodies serve as names. */
    if (dcs_json_member(data, len, "type", &t) == 1 && dcs_json_member(data, len, "key", &k) == 1 &&
        t.len >= 2 && k.len >= 2) {
        t.ptr++, t.len -= 2;
        k.ptr++, k.len -= 2;
        rc_kinds_add(&rc->written, t, k);
    }
}

static void rc_jw_kinds(dsh_jw *w, const char *name, const struct rc_kinds *k)
{
    size_t i;
    dsh_jw_object(w, name);
    for (i = 0; i < k->used; i++)
        dsh_jw_uint(w, k->name[i], k->n[i]);
    if (k->other)
        dsh_jw_uint(w, "other", k->other);
    dsh_jw_end(w);
}

/* ------------------------------------------------------------------------ */
/* The statistics object                                                     */

static const char *rc_breaker(int state)
{
    if (state == DCS_CLIENT_BREAKER_OPEN)
        return "open";
    if (state == DCS_CLIENT_BREAKER_HALF_OPEN)
        return "half-open";
    return "closed";
}

static void rc_jw_client(dsh_jw *w, const dcs_client_stats *s)
{
#define U(f) dsh_jw_uint(w, #f, s->f)
    U(connect_attempts);
    U(connect_failures);
    U(connect_skipped);
    U(breaker_opens);
    U(connections);
    U(connections_lost);
    U(heartbeat_timeouts);
    U(messages_in);
    U(bytes_in);
    U(decode_errors);
    U(messages_out);
    U(bytes_out);
    U(heartbeats_out);
    U(delivered);
    U(wrong_destination);
    U(duplicates);
    U(dedup_evicted);
    U(payload_mismatch);
    U(wrong_direction);
    U(unknown_type);
    U(unknown_key);
    U(unexpected_challenge);
    U(no_challenge);
    U(queue_depth);
    U(queue_bytes);
    U(failures);
#undef U
    dsh_jw_by_type(w, "messages_in_by_type", s->in_by_type);
    dsh_jw_by_type(w, "messages_out_by_type", s->out_by_type);
}

static void rc_jw_drops(dsh_jw *w, const dcs_client_stats *s)
{
    dsh_jw_object(w, "drops");
    dsh_jw_uint(w, "queue-count", s->drop_queue_count);
    dsh_jw_uint(w, "queue-bytes", s->drop_queue_bytes);
    dsh_jw_uint(w, "queue-age", s->drop_queue_age);
    dsh_jw_uint(w, "lost-in-flight", s->drop_lost_in_flight);
    dsh_jw_uint(w, "stale-reply", s->drop_stale_reply);
    dsh_jw_uint(w, "shutdown", s->drop_shutdown);
    dsh_jw_uint(w, "refused", s->drop_refused);
    dsh_jw_uint(w, "wrong-destination", s->wrong_destination);
    dsh_jw_uint(w, "duplicate", s->duplicates);
    dsh_jw_uint(w, "wrong-direction", s->wrong_direction);
    dsh_jw_uint(w, "payload_mismatch", s->payload_mismatch);
    dsh_jw_end(w);
}

static void rc_jw_jobs(dsh_jw *w, const struct rc *rc)
{
    size_t i, by[4] = {0, 0, 0, 0};
    for (i = 0; i < rc->n_jobs; i++)
        by[rc->jobs[i].state]++;
    dsh_jw_object(w, "jobs");
    dsh_jw_uint(w, "total", rc->n_jobs);
    dsh_jw_uint(w, "queued", by[RC_JOB_QUEUED]);
    dsh_jw_uint(w, "running", by[RC_JOB_RUNNING]);
    dsh_jw_uint(w, "completed", by[RC_JOB_COMPLETED]);
    dsh_jw_uint(w, "failed", by[RC_JOB_FAILED]);
    dsh_jw_uint(w, "handed_out", rc->jobs_handed_out);
    dsh_jw_uint(w, "returned", rc->jobs_returned);
    dsh_jw_uint(w, "requests_served", rc->requests_served);
    dsh_jw_end(w);
}

static void rc_stats_build(struct rc *rc, dcs_buf *b)
{
    dcs_ms now = rc_now(rc);
    const dcs_client_stats *s = dcs_client_get_stats(rc->cl);
    dcs_client_registry_entry e;
    dsh_jw w;

    dsh_stats_begin(&w, b, RC_PROG, now + rc->cfg.wall_offset, rc->started_wall, rc->id,
                    rc->socket_path);
    dsh_jw_str(&w, "state", dcs_client_state_name(s->state));
    dsh_jw_str(&w, "breaker", rc_breaker(s->state));
    dsh_jw_uint(&w, "reconnects", s->connections > 0 ? s->connections - 1 : 0);
    dsh_jw_object(&w, "client");
    rc_jw_client(&w, s);
    dsh_jw_end(&w);
    rc_jw_drops(&w, s);
    rc_jw_kinds(&w, "delivered_by_kind", &rc->delivered);
    rc_jw_kinds(&w, "written_by_kind", &rc->written);
    rc_jw_jobs(&w, rc);
    dsh_jw_object(&w, "tokens");
    dsh_jw_uint(&w, "answered", rc->tokens_answered);
    dsh_jw_uint(&w, "refused", rc->tokens_refused);
    dsh_jw_end(&w);
    dsh_jw_object(&w, "commands");
    dsh_jw_uint(&w, "sent", rc->commands_sent);
    dsh_jw_uint(&w, "refused", rc->commands_refused);
    dsh_jw_end(&w);
    dcs_client_registry(rc->cl, now, &e);
    dsh_jw_object(&w, "registry");
    dsh_jw_bool(&w, "present", e.present);
    if (e.present) {
        dsh_jw_str(&w, "id", e.id);
        dsh_jw_int(&w, "uid", e.uid);
        dsh_jw_int(&w, "connectedAt", e.connected_at);
        dsh_jw_int(&w, "lastActivity", e.last_activity);
        dsh_jw_str(&w, "status", e.active ? "active" : "stale");
    }
    dsh_jw_end(&w);
    dsh_stats_end(&w, rc->scale, &rc->cfg.s);
}

void rc_stats_write(struct rc *rc, int to_stderr)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    rc_stats_build(rc, &b);
    dsh_stats_write(&b, rc->stats_path, to_stderr, DCS_CAT_MANAGER);
    dcs_buf_free(&b);
}
