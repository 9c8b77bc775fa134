/* crawl.c - the crawler dcs-server plays. When a client registers it asks
 * for jobs (request_jobs); it "crawls" every job it is given by emitting
 * PROGRESS_UPDATE messages to that client over time (started, processing
 * with growing processedItems, completed), then asks again; after an empty
 * jobs array it waits before asking again. PAUSE_CRAWLER holds every job
 * where it is (the machine refuses progress while paused) until
 * RESUME_CRAWLER; START_JOB crawls the given jobId. A job belongs to the
 * connection it came from: when that connection is lost the job is
 * abandoned, since the web app returns it to its queue (spec 8.10).
 * --rate adds a synthetic load of PROGRESS_UPDATE messages. Logs never show
 * a payload. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rs.h"

static dcs_slice rs_lit(const char *s)
{
    dcs_slice r = {s, strlen(s)};
    return r;
}

static int rs_is(dcs_slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* ISO 8601 UTC with milliseconds. */
static void rs_iso(int64_t ms, char out[64])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static void rs_ask(struct rs *rs, dcs_ms now, struct rs_conn *c)
{
    dcs_envelope env;
    char payload[64];
    uint64_t req = 0;
    int err;
    memset(&env, 0, sizeof env);
    env.type = rs_lit("jobRequest");
    env.key = rs_lit("request_jobs");
    if (rs->sc.max_jobs) {
        snprintf(payload, sizeof payload, "{\"maxJobs\":%u}", rs->sc.max_jobs);
        env.payload = rs_lit(payload);
    }
    err = dcs_server_request(rs->srv, now, c->id, NULL, &env, &req);
    if (err) {
        rs->requests_refused++;
        c->next_ask = now + rs->sc.retry_pause;
        if (err != DCS_SERVER_PAUSED) {
            dsh_field f[] = {DSH_INT("conn", c->id)};
            dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "request-refused", f, 1,
                    "request_jobs not sent (%d); trying again later", err);
        }
        return;
    }
    rs->requests_sent++;
    c->asking = 1;
    c->next_ask = DCS_NEVER;
}

static void rs_token_request(struct rs *rs, dcs_ms now, struct rs_conn *c, const char *task)
{
    dcs_envelope env;
    dcs_buf *p = &rs->scratch2;
    memset(&env, 0, sizeof env);
    p->len = 0;
    dcs_buf_append(p, "{\"providerId\":", 14);
    dsh_json_string(p, rs->sc.provider, strlen(rs->sc.provider));
    dcs_buf_append(p, ",\"accountId\":", 13);
    dsh_json_string(p, task, strlen(task));
    if (dcs_buf_append(p, "}", 1))
        return;
    env.type = rs_lit("message");
    env.key = rs_lit("TOKEN_REFRESH_REQUEST");
    env.payload.ptr = p->data;
    env.payload.len = p->len;
    if (dcs_server_request(rs->srv, now, c->id, NULL, &env, NULL) == 0)
        rs->token_requests++;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */

static size_t rs_jobs_of(struct rs *rs, uint64_t conn)
{
    struct rs_job *j;
    size_t n = 0;
    for (j = rs->jobs; j; j = j->next)
        n += j->conn == conn;
    return n;
}

static void rs_job_add(struct rs *rs, dcs_ms now, struct rs_conn *c, const char *task, size_t len)
{
    struct rs_job *j = calloc(1, sizeof *j), **pp;
    if (!j || !(j->task_id = malloc(len + 1))) {
        free(j);
        dsh_log(DCS_LOG_ERROR, DCS_CAT_SERVER, "nomem", NULL, 0, "out of memory for a job");
        return;
    }
    memcpy(j->task_id, task, len);
    j->task_id[len] = '\0';
    j->conn = c->id;
    j->due = now;
    rs->jobs_received++;
    j->failing = rs->sc.fail_every > 0 && rs->jobs_received % (uint64_t)rs->sc.fail_every == 0;
    for (pp = &rs->jobs; *pp; pp = &(*pp)->next)
        ;
    *pp = j;
    {
        dsh_field f[] = {DSH_INT("conn", c->id), DSH_STR("taskId", j->task_id)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "job", f, 2, "crawling job %s", j->task_id);
    }
    if (rs->sc.token_refresh)
        rs_token_request(rs, now, c, j->task_id);
}

static void rs_job_free(struct rs_job *j)
{
    free(j->task_id);
    free(j);
}

/* Emit the job's next report. 1: the job is finished. */
static int rs_job_step(struct rs *rs, dcs_ms now, struct rs_job *j, struct rs_conn *c)
{
    dcs_buf *p = &rs->scratch2;
    dcs_envelope env;
    const char *status;
    uint64_t items;
    char ts[64], num[160];
    int64_t wall = now + rs->cfg.wall_offset;
    int err, last = j->step > rs->sc.steps;

    if (wall <= j->last_ts)
        wall = j->last_ts + 1; /* dedup key is (taskId, timestamp), spec 8.7 */
    rs_iso(wall, ts);
    status = j->step == 0 ? "started" : !last ? "processing" : j->failing ? "failed" : "completed";
    items = (uint64_t)(j->step > rs->sc.steps ? rs->sc.steps : j->step) * rs->sc.items_per_step;
    p->len = 0;
    dcs_buf_append(p, "{\"taskId\":", 10);
    dsh_json_string(p, j->task_id, strlen(j->task_id));
    snprintf(num, sizeof num, ",\"status\":\"%s\",\"timestamp\":\"%s\",", status, ts);
    dcs_buf_append(p, num, strlen(num));
    snprintf(num, sizeof num, "\"processedItems\":%llu,\"totalItems\":%llu",
             (unsigned long long)items,
             (unsigned long long)rs->sc.steps * (unsigned long long)rs->sc.items_per_step);
    dcs_buf_append(p, num, strlen(num));
    if (j->failing && last)
        dcs_buf_append(p, ",\"error\":\"scenario: this job fails\"", 35);
    else if (!last && j->step > 0)
        dcs_buf_append(p, ",\"operationType\":\"data_collection\"", 34);
    if (dcs_buf_append(p, "}", 1))
        return 0;
    memset(&env, 0, sizeof env);
    env.destination = c->client_id ? rs_lit(c->client_id) : rs_lit("");
    env.type = rs_lit("message");
    env.key = rs_lit("PROGRESS_UPDATE");
    env.payload.ptr = p->data;
    env.payload.len = p->len;
    err = dcs_server_send(rs->srv, now, &env, NULL);
    if (err == DCS_SERVER_PAUSED) {
        rs->progress_paused++;
        j->due = now + rs->sc.interval;
        return 0;
    }
    if (err) {
        dsh_field f[] = {DSH_STR("taskId", j->task_id)};
        dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, dcs_err_name(err), f, 1,
                "progress report not sent (%d)", err);
        j->due = now + rs->sc.interval;
        return 0;
    }
    rs->progress_sent++;
    j->last_ts = wall;
    if (j->step == 0)
        rs->jobs_started++;
    if (last) {
        dsh_field f[] = {DSH_INT("conn", c->id), DSH_STR("taskId", j->task_id),
                         DSH_STR("status", status)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "job-done", f, 3, "job %s %s", j->task_id, status);
        if (j->failing)
            rs->jobs_failed++;
        else
            rs->jobs_completed++;
        return 1;
    }
    j->step++;
    j->due = now + rs->sc.interval;
    return 0;
}

/* The jobs of a jobs_available payload (an array of job objects). */
static void rs_take_jobs(struct rs *rs, dcs_ms now, struct rs_conn *c, const dcs_message *m)
{
    dsh_iter it;
    dcs_slice v;
    size_t k = 0;
    if (!m->payload.ptr || dsh_iter_array(&it, m->payload.ptr, m->payload.len) != 0)
        return;
    while (dsh_iter_next_value(&it, &v)) {
        rs->scratch.len = 0;
        if (dcs_json_member_string(v.ptr, v.len, "taskId", &rs->scratch) == 1 &&
            !memchr(rs->scratch.data, '\0', rs->scratch.len)) {
            rs_job_add(rs, now, c, rs->scratch.data, rs->scratch.len);
            k++;
        }
    }
    if (k == 0) {
        rs->empty_replies++;
        if (rs_jobs_of(rs, c->id) == 0)
            c->next_ask = now + rs->sc.idle_pause;
    }
}

/* ------------------------------------------------------------------------ */
/* The timer                                                                 */

static void rs_crawl_timer_cb(uv_timer_t *t)
{
    rs_crawl_run(t->data);
}

/* --rate N: generate what is due since the last time. */
static void rs_load_rate(struct rs *rs, dcs_ms now);
static void rs_load_one(struct rs *rs, dcs_ms now, struct rs_conn *c);

void rs_crawl_kick(struct rs *rs)
{
    if (rs->crawl_dirty && !rs->in_crawl && !rs->stopping && !rs->torn_down) {
        rs->crawl_dirty = 0;
        uv_timer_start(&rs->crawl_timer, rs_crawl_timer_cb, 0, 0);
    }
}

void rs_crawl_run(struct rs *rs)
{
    dcs_ms now, next = DCS_NEVER;
    struct rs_job **pp, *j;
    struct rs_conn *c;
    if (rs->stopping || rs->torn_down)
        return;
    now = rs_now(rs);
    for (pp = &rs->jobs; (j = *pp) != NULL;) {
        c = rs_conn_find(rs, j->conn);
        if (j->due <= now && c && c->open && rs_job_step(rs, now, j, c)) {
            *pp = j->next;
            rs_job_free(j);
            if (rs_jobs_of(rs, c->id) == 0 && !c->asking && c->next_ask == DCS_NEVER)
                c->next_ask = now; /* crawled everything: ask for more */
            continue;
        }
        pp = &j->next;
    }
    for (c = rs->conns; c; c = c->next)
        if (c->open && !c->io.dead && !c->asking && c->next_ask <= now)
            rs_ask(rs, now, c);
    if (rs->rate > 0)
        rs_load_rate(rs, now);
    rs->in_crawl = 1;
    rs->crawl_dirty = 0;
    rs_pump(rs);
    rs->in_crawl = 0;
    if (rs->crawl_dirty) {
        rs->crawl_dirty = 0;
        next = now;
    }
    for (j = rs->jobs; j; j = j->next)
        if (j->due < next)
            next = j->due;
    for (c = rs->conns; c; c = c->next)
        if (c->open && !c->io.dead && !c->asking && c->next_ask < next)
            next = c->next_ask;
    if (rs->rate > 0 && next > now + 10)
        next = now + 10;
    if (rs->torn_down)
        return;
    if (next == DCS_NEVER)
        uv_timer_stop(&rs->crawl_timer);
    else
        uv_timer_start(&rs->crawl_timer, rs_crawl_timer_cb, next > now ? (uint64_t)(next - now) : 0,
                       0);
}

/* ------------------------------------------------------------------------ */
/* Load generator (--rate)                                                   */

static void rs_load_one(struct rs *rs, dcs_ms now, struct rs_conn *c)
{
    dcs_envelope env;
    char payload[240], ts[64];
    c->load_seq++;
    /* A synthetic clock one millisecond per message keeps dedup keys unique. */
    rs_iso(rs->started_wall + (int64_t)c->load_seq, ts);
    snprintf(payload, sizeof payload,
             "{\"taskId\":\"load-%llu\",\"status\":\"processing\",\"timestamp\":\"%s\","
             "\"processedItems\":%llu}",
             (unsigned long long)c->id, ts, (unsigned long long)c->load_seq);
    memset(&env, 0, sizeof env);
    env.destination = c->client_id ? rs_lit(c->client_id) : rs_lit("");
    env.type = rs_lit("message");
    env.key = rs_lit("PROGRESS_UPDATE");
    env.payload = rs_lit(payload);
    if (dcs_server_send(rs->srv, now, &env, NULL) == 0)
        rs->load_sent++;
    else
        c->load_seq--;
}

static void rs_load_rate(struct rs *rs, dcs_ms now)
{
    struct rs_conn *c;
    uint64_t k, i;
    if (rs->load_last == 0 || dcs_server_paused(rs->srv)) {
        rs->load_last = now;
        return;
    }
    rs->load_credit += rs->rate * (double)(now - rs->load_last) / 1000.0;
    rs->load_last = now;
    if (rs->load_credit > rs->rate)
        rs->load_credit = rs->rate; /* no bursts after a stall */
    k = (uint64_t)rs->load_credit;
    rs->load_credit -= (double)k;
    for (c = rs->conns; c; c = c->next)
        if (c->open && !c->io.dead)
            for (i = 0; i < k; i++)
                rs_load_one(rs, now, c);
}

void rs_load_topup(struct rs *rs, dcs_ms now)
{
    struct rs_conn *c;
    if (dcs_server_paused(rs->srv))
        return;
    for (c = rs->conns; c; c = c->next)
        if (c->open && !c->io.dead && c->io.writes < 16) {
            size_t i;
            for (i = 0; i < 32; i++)
                rs_load_one(rs, now, c);
        }
}

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

static void rs_deliver(struct rs *rs, dcs_ms now, const dcs_action *a)
{
    const dcs_message *m = a->msg;
    struct rs_conn *c = rs_conn_find(rs, a->conn);
    dsh_field f[] = {DSH_INT("conn", a->conn), DSH_STRN("type", m->type.ptr, m->type.len),
                     DSH_STRN("key", m->key.ptr, m->key.len)};
    dsh_log(DCS_LOG_DEBUG, DCS_CAT_SERVER, "delivered", f, 3,
            a->reason ? "message delivered (uncorrelated)" : "message delivered");
    if (!c)
        return;
    if (rs_is(m->type, "jobResponse") && rs_is(m->key, "jobs_available")) {
        rs_take_jobs(rs, now, c, m); /* uncorrelated jobs are still crawled (9.4) */
    } else if (rs_is(m->type, "command") && rs_is(m->key, "START_JOB")) {
        rs->scratch.len = 0;
        rs->start_jobs++;
        if (dcs_json_member_string(m->payload.ptr, m->payload.len, "jobId", &rs->scratch) == 1 &&
            !memchr(rs->scratch.data, '\0', rs->scratch.len))
            rs_job_add(rs, now, c, rs->scratch.data, rs->scratch.len);
    } else if (rs_is(m->type, "command") &&
               (rs_is(m->key, "PAUSE_CRAWLER") || rs_is(m->key, "RESUME_CRAWLER"))) {
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "command", f, 3, "%.*s: crawler %s",
                (int)m->key.len, m->key.ptr, dcs_server_paused(rs->srv) ? "paused" : "running");
    } else if (rs_is(m->type, "command")) {
        dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, "unknown-command", f, 3, "command %.*s ignored",
                (int)m->key.len, m->key.ptr);
    }
}

static void rs_result(struct rs *rs, dcs_ms now, const dcs_action *a)
{
    struct rs_conn *c = rs_conn_find(rs, a->conn);
    const dcs_message *m = a->msg;
    const char *why = a->reason ? a->reason : "";
    int is_jobs = m && rs_is(m->type, "jobResponse");
    if (!c || !c->open)
        return;
    if (m && rs_is(m->type, "message") && rs_is(m->key, "TOKEN_REFRESH_RESPONSE")) {
        dsh_field f[] = {DSH_INT("conn", a->conn)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "token-refresh", f, 1, "token refresh answered");
        return;
    }
    if (strcmp(why, "reply") == 0 && !is_jobs)
        return; /* the answer to some other request */
    if (!c->asking)
        return;
    c->asking = 0;
    if (strcmp(why, "reply") == 0 && rs_is(m->key, "jobs_available")) {
        rs_take_jobs(rs, now, c, m);
    } else {
        dsh_field f[] = {DSH_INT("conn", a->conn), DSH_STR("reason", why)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "jobs-retry", f, 2,
                "no jobs (%s); asking again later", m ? "jobs_error" : why);
        c->next_ask = now + rs->sc.retry_pause;
    }
}

void rs_app_action(struct rs *rs, dcs_ms now, const dcs_action *a)
{
    struct rs_conn *c;
    if (a->kind == DCS_ACT_DELIVER || a->kind == DCS_ACT_RESULT || a->kind == DCS_ACT_OPEN ||
        a->kind == DCS_ACT_LOST)
        rs->crawl_dirty = 1;
    switch (a->kind) {
    case DCS_ACT_DELIVER:
        rs_deliver(rs, now, a);
        break;
    case DCS_ACT_RESULT:
        rs_result(rs, now, a);
        break;
    case DCS_ACT_DROP: {
        dsh_field f[] = {DSH_INT("conn", a->conn), DSH_INT("bytes", a->data.len)};
        rs->drops++;
        dsh_log(DCS_LOG_DEBUG, DCS_CAT_SERVER, a->reason ? a->reason : "dropped", f, 2,
                "message dropped");
        break;
    }
    case DCS_ACT_LOG: {
        dsh_field f[] = {DSH_INT("conn", a->conn)};
        dsh_log(a->level, a->category, a->reason, f, 1, "%s", a->text);
        break;
    }
    case DCS_ACT_OPEN:
        if ((c = rs_conn_find(rs, a->conn)) != NULL) {
            dsh_field f[] = {DSH_INT("conn", a->conn),
                             DSH_STRN("client", a->peer_id.ptr, a->peer_id.len)};
            free(c->client_id);
            c->client_id = malloc(a->peer_id.len + 1);
            if (c->client_id) {
                memcpy(c->client_id, a->peer_id.ptr, a->peer_id.len);
                c->client_id[a->peer_id.len] = '\0';
            }
            c->open = 1;
            c->next_ask = now; /* ask for jobs at once */
            dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "open", f, 2, "client registered");
        }
        break;
    case DCS_ACT_LOST: {
        struct rs_job **pp, *j;
        size_t n = 0;
        dsh_field f[] = {DSH_INT("conn", a->conn)};
        for (c = rs->conns; c; c = c->next)
            if (c->id == a->conn) {
                c->open = 0;
                c->asking = 0;
                c->next_ask = DCS_NEVER;
            }
        for (pp = &rs->jobs; (j = *pp) != NULL;) {
            if (j->conn == a->conn) {
                *pp = j->next;
                rs_job_free(j);
                n++;
                continue;
            }
            pp = &j->next;
        }
        rs->jobs_abandoned += n;
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "lost", f, 1,
                "client connection lost (%s); %zu jobs abandoned", a->reason ? a->reason : "",
                n);
        break;
    }
    default:
        break;
    }
}

void rs_crawl_fini(struct rs *rs)
{
    while (rs->jobs) {
        struct rs_job *j = rs->jobs;
        rs->jobs = j->next;
        rs_job_free(j);
    }
}
