/* app.c - the application dcs-client plays: it serves jobs (spec 8.9,
 * 8.10), answers token requests (7.10, 7.11), follows progress (7.9),
 * records every delivered message, and sends the operator's commands
 * (7.16). It sees the protocol only through the machine's actions and the
 * machine's reply and send calls. Logs name messages by type and key and
 * never show a payload, since payloads may carry secrets (spec 15.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc.h"

static dcs_slice rc_lit(const char *s)
{
    dcs_slice r = {s, strlen(s)};
    return r;
}

static int rc_is(dcs_slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static const char *rc_state_name(int s)
{
    static const char *const names[] = {"queued", "running", "completed", "failed"};
    return names[s];
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */

int rc_command_send(struct rc *rc, dcs_ms now, const char *text, size_t len)
{
    char why[256];
    dcs_envelope env;
    dcs_slice key;
    uint64_t id = 0;
    int err;

    rc->scratch2.len = 0;
    if (rc_command_parse(text, len, &key, &rc->scratch2, why, sizeof why) != 0) {
        rc->commands_refused++;
        dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, "bad-command", NULL, 0, "command refused: %s", why);
        return -1;
    }
    memset(&env, 0, sizeof env);
    env.type = rc_lit("command");
    env.key = key;
    env.payload.ptr = rc->scratch2.data;
    env.payload.len = rc->scratch2.len;
    err = dcs_client_send(rc->cl, now, &env, &id);
    if (err) {
        dsh_field f[] = {DSH_STRN("key", key.ptr, key.len)};
        rc->commands_refused++;
        dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, dcs_err_name(err), f, 1,
                "command %.*s not sent: %s", (int)key.len, key.ptr,
                err == DCS_EINVAL ? "the client is stopping" : dcs_strerror(err));
        return -1;
    }
    rc->commands_sent++;
    {
        dsh_field f[] = {DSH_STRN("key", key.ptr, key.len), DSH_INT("id", id)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "command", f, 2, "command %.*s handed over",
                (int)key.len, key.ptr);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */

/* Return every job of a lost connection, or of a dropped reply, to queued
 * (spec 8.10). reply_id 0 means every running job. */
static void rc_jobs_return(struct rc *rc, uint64_t reply_id, const char *why)
{
    size_t i, n = 0;
    for (i = 0; i < rc->n_jobs; i++) {
        struct rc_job *j = &rc->jobs[i];
        if (j->state == RC_JOB_RUNNING && (reply_id == 0 || j->reply_id == reply_id)) {
            j->state = RC_JOB_QUEUED;
            j->reply_id = 0;
            n++;
        }
    }
    rc->jobs_returned += n;
    if (n) {
        dsh_field f[] = {DSH_INT("jobs", n)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "jobs-requeued", f, 1,
                "%zu running jobs returned to queued (%s)", n, why);
    }
}

/* Write a jobs_error (spec 7.8) when jobs could not be handed out. */
/* Append the JSON string raw (as received: escapes as the peer wrote them)
 * the way this peer writes strings (spec 6.5): decoded, then encoded again,
 * so that an echoed requestId is written as JSON.stringify would. */
static int rc_restring(dcs_buf *out, dcs_slice raw)
{
    dcs_buf tmp;
    int rc;
    if (raw.len < 2 || raw.ptr[0] != '"')
        return dcs_buf_append(out, raw.ptr, raw.len);
    dcs_buf_init(&tmp, NULL);
    rc = dcs_unescape(&tmp, raw.ptr + 1, raw.len - 2);
    if (rc == 0)
        rc = dcs_encode_string(out, tmp.data ? tmp.data : "", tmp.len);
    dcs_buf_free(&tmp);
    return rc;
}

static void rc_jobs_error(struct rc *rc, dcs_ms now, uint64_t conn, const dcs_slice *rid,
                          const char *error)
{
    dcs_envelope env;
    dcs_buf *p = &rc->scratch2;
    p->len = 0;
    dcs_buf_append(p, "{\"error\":", 9);
    dsh_json_string(p, error, strlen(error));
    if (rid->ptr) {
        dcs_buf_append(p, ",\"requestId\":", 13);
        dcs_buf_append(p, rid->ptr, rid->len);
    }
    dcs_buf_append(p, "}", 1);
    memset(&env, 0, sizeof env);
    env.type = rc_lit("jobResponse");
    env.key = rc_lit("jobs_error");
    env.payload.ptr = p->data;
    env.payload.len = p->len;
    dcs_client_reply(rc->cl, now, conn, &env, NULL);
}

/* request_jobs: hand out every queued job that fits in one message, each job
 * once, and echo the requestId in the envelope (spec 7.7, 7.20). */
static void rc_serve_jobs(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    const dcs_message *m = a->msg;
    size_t budget = rc->cfg.s.max_message_size > 1024 ? rc->cfg.s.max_message_size - 1024 : 0;
    size_t i, k = 0;
    dcs_buf *ridb = &rc->scratch, *p = &rc->scratch2;
    dcs_slice rid = {NULL, 0}, v;
    dcs_member extra;
    dcs_envelope env;
    uint64_t id = 0;
    int err;

    /* Keep the requestId, written as this peer writes strings: the message
     * is not needed after this. */
    ridb->len = 0;
    if (m->payload.ptr && dcs_json_member(m->payload.ptr, m->payload.len, "requestId", &v) == 1 &&
        rc_restring(ridb, v) == 0) {
        rid.ptr = ridb->data;
        rid.len = ridb->len;
    }
    budget = budget > rid.len ? budget - rid.len : 0;
    p->len = 0;
    err = dcs_buf_append(p, "[", 1);
    for (i = 0; i < rc->n_jobs && !err; i++) {
        struct rc_job *j = &rc->jobs[i];
        size_t mark = p->len;
        if (j->state != RC_JOB_QUEUED)
            continue;
        if ((k && dcs_buf_append(p, ",", 1)) || dsh_json_compact(p, j->raw, j->len)) {
            err = DCS_ENOMEM;
            break;
        }
        if (p->len + 1 > budget) {
            p->len = mark; /* the next request gets it */
            break;
        }
        j->state = RC_JOB_RUNNING;
        j->reply_id = 0;
        k++;
    }
    if (!err)
        err = dcs_buf_append(p, "]", 1);
    memset(&env, 0, sizeof env);
    env.type = rc_lit("jobResponse");
    env.key = rc_lit("jobs_available");
    env.payload.ptr = p->data;
    env.payload.len = p->len;
    if (rid.ptr) {
        extra.name = rc_lit("requestId");
        extra.value = rid;
        env.extra = &extra;
        env.n_extra = 1;
    }
    if (!err)
        err = dcs_client_reply(rc->cl, now, a->conn, &env, &id);
    for (i = 0; i < rc->n_jobs; i++) {
        struct rc_job *j = &rc->jobs[i];
        if (j->state == RC_JOB_RUNNING && j->reply_id == 0) {
            if (err)
                j->state = RC_JOB_QUEUED;
            else
                j->reply_id = id;
        }
    }
    if (err) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, dcs_err_name(err), NULL, 0,
                "cannot hand out jobs: %s", dcs_strerror(err));
        rc_jobs_error(rc, now, a->conn, &rid, "the jobs could not be sent");
        return;
    }
    rc->requests_served++;
    rc->jobs_handed_out += k;
    {
        /* The raw requestId is a JSON string: log its body. */
        dsh_field f[] = {
            DSH_INT("conn", a->conn), DSH_INT("jobs", k), DSH_INT("id", id),
            DSH_STRN("requestId", rid.ptr ? rid.ptr + 1 : "", rid.len ? rid.len - 2 : 0)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "jobs-available", f, 4,
                "request_jobs answered with %zu jobs", k);
    }
}

/* PROGRESS_UPDATE: completed and failed end a job (spec 7.9.2). */
static void rc_progress(struct rc *rc, const dcs_action *a)
{
    const dcs_message *m = a->msg;
    dcs_buf *task = &rc->scratch, *status = &rc->scratch2;
    struct rc_job *j;
    int next;
    size_t i, open = 0, failed = 0;

    task->len = status->len = 0;
    if (dcs_json_member_string(m->payload.ptr, m->payload.len, "taskId", task) != 1 ||
        dcs_json_member_string(m->payload.ptr, m->payload.len, "status", status) != 1)
        return;
    j = rc_job_find(rc, task->data, task->len);
    if (!j)
        return; /* a task the jobs file does not have (START_JOB) */
    if (status->len == 9 && memcmp(status->data, "completed", 9) == 0)
        next = RC_JOB_COMPLETED;
    else if (status->len == 6 && memcmp(status->data, "failed", 6) == 0)
        next = RC_JOB_FAILED;
    else
        return;
    if (j->state != next) {
        dsh_field f[] = {DSH_STR("taskId", j->task_id), DSH_STR("status", rc_state_name(next))};
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "job-ended", f, 2, "job %s %s", j->task_id,
                rc_state_name(next));
        j->state = next;
    }
    if (!rc->exit_after_jobs || rc->stopping)
        return;
    for (i = 0; i < rc->n_jobs; i++) {
        open += rc->jobs[i].state < RC_JOB_COMPLETED;
        failed += rc->jobs[i].state == RC_JOB_FAILED;
    }
    if (open == 0) {
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "jobs-done", NULL, 0,
                "every job has ended (%zu failed); stopping", failed);
        rc->stopping = 1;
        rc->want_stop = 1;
        rc->exit_code = failed ? DSH_EXIT_RUNTIME : DSH_EXIT_OK;
    }
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */

static void rc_token_reply(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    const dcs_message *m = a->msg;
    dcs_buf *prov = &rc->scratch, *p = &rc->scratch2;
    const struct rc_token *t = NULL;
    dcs_slice rid, praw;
    dcs_envelope env;
    size_t i;
    int err;

    prov->len = 0;
    if (dcs_json_member(m->payload.ptr, m->payload.len, "requestId", &rid) != 1 ||
        dcs_json_member(m->payload.ptr, m->payload.len, "providerId", &praw) != 1 ||
        dcs_json_member_string(m->payload.ptr, m->payload.len, "providerId", prov) != 1)
        return; /* the fit check lets no such request through */
    for (i = 0; i < rc->n_tokens && !t; i++)
        if (strlen(rc->tokens[i].provider) == prov->len &&
            memcmp(rc->tokens[i].provider, prov->data, prov->len) == 0)
            t = &rc->tokens[i];
    p->len = 0;
    dcs_buf_append(p, "{\"requestId\":", 13);
    rc_restring(p, rid);
    if (t) {
        dcs_buf_append(p, ",\"success\":true,", 16);
        dsh_json_compact(p, t->inner, t->inner_len);
        if (!t->has_provider) {
            dcs_buf_append(p, ",\"providerId\":", 14);
            rc_restring(p, praw);
        }
    } else {
        dcs_buf_append(p, ",\"success\":false,\"error\":", 25);
        rc->scratch.len = 0;
        dcs_buf_append(&rc->scratch, "no token for provider ", 22);
        dcs_json_member_string(m->payload.ptr, m->payload.len, "providerId", &rc->scratch);
        dsh_json_string(p, rc->scratch.data, rc->scratch.len);
    }
    err = dcs_buf_append(p, "}", 1);
    memset(&env, 0, sizeof env);
    env.type = rc_lit("message");
    env.key = rc_lit("TOKEN_REFRESH_RESPONSE");
    env.payload.ptr = p->data;
    env.payload.len = p->len;
    if (!err)
        err = dcs_client_reply(rc->cl, now, a->conn, &env, NULL);
    if (err) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, dcs_err_name(err), NULL, 0,
                "cannot answer a token request: %s", dcs_strerror(err));
        return;
    }
    if (t)
        rc->tokens_answered++;
    else
        rc->tokens_refused++;
    {
        dsh_field f[] = {DSH_INT("conn", a->conn), DSH_STRN("requestId", rid.ptr + 1, rid.len - 2)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "token-refresh", f, 2, "token request answered (%s)",
                t ? "success" : "no token for that provider");
    }
}

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

/* Count a drop for the summary written at the end of the pump: one record
 * per reason instead of one per message (spec 1.4 allows coalescing). */
static void rc_drop_note(struct rc *rc, const char *reason)
{
    size_t i;
    for (i = 0; i < rc->n_drop_notes; i++)
        if (strncmp(rc->drop_notes[i].reason, reason, sizeof rc->drop_notes[i].reason - 1) == 0) {
            rc->drop_notes[i].n++;
            return;
        }
    if (rc->n_drop_notes < RC_MAX_DROP_NOTES) {
        snprintf(rc->drop_notes[rc->n_drop_notes].reason, sizeof rc->drop_notes[0].reason, "%s",
                 reason);
        rc->drop_notes[rc->n_drop_notes++].n = 1;
    } else {
        rc->drop_notes[RC_MAX_DROP_NOTES - 1].n++;
    }
}

/* One line of the deliveries file: receive time, connection, message. */
static void rc_record(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    dcs_buf *b = &rc->scratch;
    char head[96];
    int k;
    if (!rc->deliveries)
        return;
    k = snprintf(head, sizeof head, "{\"received\":%lld,\"conn\":%llu,\"message\":",
                 (long long)(now + rc->cfg.wall_offset), (unsigned long long)a->conn);
    b->len = 0;
    if (dcs_buf_append(b, head, (size_t)k) ||
        dsh_json_compact(b, a->msg->raw.ptr, a->msg->raw.len) || dcs_buf_append(b, "}\n", 2)) {
        dsh_log(DCS_LOG_ERROR, DCS_CAT_MANAGER, "nomem", NULL, 0,
                "out of memory: a delivery was not recorded");
        return;
    }
    fwrite(b->data, 1, b->len, rc->deliveries);
}

static void rc_deliver(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    const dcs_message *m = a->msg;
    rc_record(rc, now, a);
    rc_kinds_add(&rc->delivered, m->type, m->key);
    if (dsh_log_enabled(DCS_LOG_DEBUG)) {
        dsh_field f[] = {DSH_INT("conn", a->conn), DSH_STRN("type", m->type.ptr, m->type.len),
                         DSH_STRN("key", m->key.ptr, m->key.len)};
        dsh_log(DCS_LOG_DEBUG, DCS_CAT_MANAGER, "delivered", f, 3, "message delivered");
    }
    if (rc_is(m->type, "jobRequest") && rc_is(m->key, "request_jobs"))
        rc_serve_jobs(rc, now, a);
    else if (rc_is(m->type, "message") && rc_is(m->key, "TOKEN_REFRESH_REQUEST"))
        rc_token_reply(rc, now, a);
    else if (rc_is(m->type, "message") && rc_is(m->key, "PROGRESS_UPDATE"))
        rc_progress(rc, a);
    else if (rc_is(m->type, "message") && rc_is(m->key, "shutdown"))
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "shutdown", NULL, 0,
                "the server is shutting down; the client will reconnect");
}

void rc_app_action(struct rc *rc, dcs_ms now, const dcs_action *a)
{
    switch (a->kind) {
    case DCS_ACT_DELIVER:
        rc_deliver(rc, now, a);
        break;
    case DCS_ACT_DROP: {
        const char *why = a->reason ? a->reason : "dropped";
        dsh_field f[] = {DSH_INT("id", a->id), DSH_INT("bytes", a->data.len)};
        dsh_log(DCS_LOG_DEBUG, DCS_CAT_MANAGER, why, f, 2, "message %llu dropped (%s)",
                (unsigned long long)a->id, why);
        rc_drop_note(rc, why);
        rc_jobs_return(rc, a->id, why);
        break;
    }
    case DCS_ACT_LOG: {
        dsh_field f[] = {DSH_INT("conn", a->conn)};
        dsh_log(a->level, a->category, a->reason, f, 1, "%s", a->text);
        break;
    }
    case DCS_ACT_OPEN: {
        dcs_client_registry_entry e;
        dcs_client_registry(rc->cl, now, &e);
        {
            dsh_field f[] = {DSH_INT("conn", a->conn), DSH_INT("uid", e.uid)};
            dsh_log(DCS_LOG_INFO, DCS_CAT_CLIENT, "open", f, 2, "connected to %.*s and registered",
                    (int)a->peer_id.len, a->peer_id.ptr);
        }
        break;
    }
    case DCS_ACT_LOST:
        rc_jobs_return(rc, 0, "connection lost");
        break;
    default:
        break;
    }
}

void rc_app_flush(struct rc *rc)
{
    size_t i;
    for (i = 0; i < rc->n_drop_notes; i++) {
        dsh_field f[] = {DSH_INT("messages", rc->drop_notes[i].n)};
        dsh_log(DCS_LOG_WARN, DCS_CAT_MANAGER, rc->drop_notes[i].reason, f, 1,
                "%llu messages handed over by the application were dropped (%s)",
                (unsigned long long)rc->drop_notes[i].n, rc->drop_notes[i].reason);
    }
    rc->n_drop_notes = 0;
    if (rc->deliveries)
        fflush(rc->deliveries);
}
