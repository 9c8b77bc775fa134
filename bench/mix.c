/* mix.c - deterministic generators of dcs streams for the benchmarks.
 *
 * The realistic mix follows the traffic of a crawl (PROTOCOL-FACTS, message
 * catalogue): about 35 % heartbeats (the crawler's with status fields, the
 * web app's with a timestamp only), 45 % PROGRESS_UPDATE (one in ten carrying
 * an areas array of 3..6 entries), 17 % TOKEN_REFRESH_REQUEST/RESPONSE pairs
 * and 3 % jobs_available with 10 full job objects. Strings are drawn from
 * pools with non-ASCII UTF-8 (German, Greek, Cyrillic, CJK, emoji), quotes,
 * braces, backslashes and newlines inside them, so that the streams exercise
 * the escape and UTF-8 paths of every parser.
 *
 * Payloads are built as JSON text with dcs_encode_string for every string,
 * and each envelope is written by dcs_encode with DCS_ENCODE_VALIDATE.
 *
 * (Longer than most files here: about a fifth of it is string pools, and
 * the generators share one private state.) */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mix.h"

/* ------------------------------------------------------------------------ */
/* Random numbers: splitmix64, fully determined by the seed                 */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static uint32_t rng_range(rng *r, uint32_t lo, uint32_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

#define PICK(r, pool) ((pool)[rng_below((r), (uint32_t)(sizeof(pool) / sizeof((pool)[0])))])

/* ------------------------------------------------------------------------ */
/* String pools                                                              */

static const char *const group_names[] = {
    "Forschung & Lehre",
    "Lehrstuhl für Softwaretechnik",
    "Datenbanken (WiSe 2024/25)",
    "Übungsgruppe \"Algorithmen\"",
    "机器学习实验室",
    "Café-Projekt ☕",
    "Mathematik — Analysis I",
    "Straßenbahn-Simulation",
    "Проект «Альфа»",
    "Ελληνικά κείμενα",
    "naïve {bayes} lab",
    "Zürich Data Lab 🚀",
    "infra/ops",
    "Compiler Construction",
    "Theoretische Informatik",
    "Web Engineering",
};

static const char *const slugs[] = {
    "forschung", "lehre", "softwaretechnik", "datenbanken", "algorithmen", "ml-lab",
    "cafe", "analysis-1", "tram-sim", "alpha", "greek-texts", "bayes", "data-lab",
    "infra", "compilers", "theo", "web-eng", "uebung-1", "uebung-2", "praktikum",
    "thesis-2025", "backend", "frontend", "docs",
};

static const char *const descriptions[] = {
    "Gruppe für \"Forschung\" {intern}",
    "Template: {{name}} – do not \"edit\" by hand",
    "Pfad auf dem Pool-Rechner: C:\\Users\\student\\repo",
    "Erste Zeile\nZweite Zeile\n\tmit Tabulator",
    "Repository für das Übungsblatt; Abgabe bis Freitag 23:59",
    "数据集与实验代码（内部）",
    "Scripts for the {cluster} and its \\\\nfs\\share mounts",
    "Ключевые слова: парсер, JSON, «тест»",
    "Emoji in descriptions are real: 🎓📚✅",
    "",
    "Mirror of upstream; see README.md for \"how to build\"",
    "Legacy project {archived} — read only",
};

static const char *const data_types[] = {
    "issues", "merge_requests", "commits", "pipelines", "branches", "projects", "groups",
    "members", "labels", "milestones", "wiki_pages", "releases", "snippets", "notes",
};

static const char *const progress_statuses[] = {
    "processing", "processing", "processing", "processing", "started", "completed",
    "failed", "paused", "credential_expiry", "credential_renewal", "credential_resumed",
};

static const char *const operation_types[] = {
    "discovery", "branch_crawling", "data_collection", "data_collection", "finalization",
};

static const char *const stages[] = {
    "listing", "fetching", "collecting", "writing", "verifying",
};

static const char *const progress_messages[] = {
    "Verarbeite Merge-Requests für „Übungsblatt 1“",
    "Fetched page of \"issues\" for {group}",
    "Processing projects",
    "Rate limited by GitLab; waiting before the next request",
    "Writing output to /data/archive/gitlab.example.org",
    "正在抓取提交记录",
    "Resuming after credential renewal (token \"rt-…\" accepted)",
    "Branch 'feature/{x}' skipped: protected",
    "Обработка задач",
    "Done with C:\\temp\\export — 100 %",
};

static const char *const error_messages[] = {
    "rate limited\nretry after 30 s",
    "GET /api/v4/projects/1001/issues?page=3 returned 502 \"Bad Gateway\"",
    "token expired: {\"error\":\"invalid_token\"}",
    "Zeitüberschreitung bei der Verbindung zu gitlab.example.org",
    "unexpected end of JSON input\tat offset 4096",
};

static const char *const gitlab_urls[] = {
    "https://gitlab.example.org/api/v4",
    "https://gitlab.informatik.uni-example.de/api/v4",
    "https://git.rz.example.edu/api/v4",
};

static const char *const commands[] = {
    "GROUP_PROJECT_DISCOVERY", "CRAWL_GROUP", "CRAWL_PROJECT", "FETCH_ISSUES",
    "FETCH_MERGE_REQUESTS", "FETCH_COMMITS",
};

static const char *const hb_statuses[] = {"idle", "running", "running", "paused"};

static const char *const lorem[] = {
    "the",     "crawler", "fetched", "page",      "of",     "issues",  "for",    "project",
    "and",     "wrote",   "them",    "to",        "disk",   "while",   "waiting", "on",
    "GitLab",  "rate",    "limits",  "für",       "Übung",  "größer",  "naïve",  "déjà",
    "Ärger",   "commits", "merge",   "requests",  "branch", "pipeline", "status", "gesamt",
};

/* ------------------------------------------------------------------------ */
/* A small JSON writer over dcs_buf                                          */

#define JW_MAX_DEPTH 128

typedef struct jw {
    dcs_buf *b;
    int rc;
    unsigned depth;
    int after_key;
    unsigned char first[JW_MAX_DEPTH];
} jw;

static void jw_init(jw *w, dcs_buf *b)
{
    w->b = b;
    w->rc = 0;
    w->depth = 0;
    w->after_key = 0;
    w->first[0] = 1;
}

static void jw_put(jw *w, const char *s, size_t n)
{
    if (!w->rc)
        w->rc = dcs_buf_append(w->b, s, n);
}

/* The separator before a value or a key. */
static void jw_sep(jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth])
        jw_put(w, ",", 1);
    w->first[w->depth] = 0;
}

static void jw_open(jw *w, char c)
{
    jw_sep(w);
    jw_put(w, &c, 1);
    if (w->depth + 1 < JW_MAX_DEPTH)
        w->first[++w->depth] = 1;
    else if (!w->rc)
        w->rc = DCS_EINVAL;
}

static void jw_close(jw *w, char c)
{
    jw_put(w, &c, 1);
    w->depth--;
}

static void jw_strn(jw *w, const char *s, size_t n)
{
    jw_sep(w);
    if (!w->rc)
        w->rc = dcs_encode_string(w->b, s, n);
}

static void jw_str(jw *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

static void jw_key(jw *w, const char *k)
{
    jw_str(w, k);
    jw_put(w, ":", 1);
    w->after_key = 1;
}

static void jw_int(jw *w, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    jw_sep(w);
    jw_put(w, t, (size_t)n);
}

static void jw_lit(jw *w, const char *lit)
{
    jw_sep(w);
    jw_put(w, lit, strlen(lit));
}

/* Shorthands for "key": value. */
static void kv_str(jw *w, const char *k, const char *v)
{
    jw_key(w, k);
    jw_str(w, v);
}

static void kv_int(jw *w, const char *k, int64_t v)
{
    jw_key(w, k);
    jw_int(w, v);
}

/* ------------------------------------------------------------------------ */
/* The generator                                                             */

typedef struct gen {
    rng r;
    dcs_buf *out;
    dcs_buf payload;
    dcs_buf tmp;
    uint64_t now_ms;
    int kind;
    uint64_t token_seq;
    int token_pending; /* a request was sent; its response comes next */
    char token_req_id[48];
    bench_gen_stats *st;
    int rc;
} gen;

static const char CRAWLER[] = "external-crawler";
static const char WEB[] = "web-server";

static void hex_string(gen *g, char *dst, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++)
        dst[i] = hx[rng_below(&g->r, 16)];
    dst[n] = '\0';
}

static void base62_string(gen *g, char *dst, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t i;
    for (i = 0; i < n; i++)
        dst[i] = al[rng_below(&g->r, 62)];
    dst[n] = '\0';
}

static void uuid(gen *g, char dst[37])
{
    uint64_t a = rng_next(&g->r), b = rng_next(&g->r);
    snprintf(dst, 37, "%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-%04" PRIx32 "-%012" PRIx64,
             (uint32_t)(a >> 32), (uint32_t)(a >> 16) & 0xffff, (uint32_t)a & 0xfff,
             (uint32_t)(0x8000 | ((b >> 48) & 0x3fff)), (uint64_t)(b & 0xffffffffffffu));
}

/* ISO-8601 in UTC with milliseconds, as JavaScript's toISOString writes. */
static void iso_time(uint64_t ms, char dst[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[24];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(dst, 32, "%s.%03uZ", s, (unsigned)(ms % 1000));
}

/* A path like "uni/forschung/uebung-1" of 1..3 segments. */
static void full_path(gen *g, char *dst, size_t cap, char *parent, size_t pcap)
{
    unsigned n = rng_range(&g->r, 1, 3), i;
    size_t len = (size_t)snprintf(dst, cap, "uni");
    for (i = 0; i < n; i++) {
        if (parent && i == n - 1)
            snprintf(parent, pcap, "%s", dst);
        len += (size_t)snprintf(dst + len, cap - len, "/%s", PICK(&g->r, slugs));
    }
}

/* Write one envelope whose payload is g->payload (when with_payload). */
static void emit(gen *g, int cls, const char *origin, const char *dest, const char *type,
                 const char *key, int with_payload)
{
    dcs_envelope env;
    size_t before = g->out->len;
    int rc;

    memset(&env, 0, sizeof env);
    env.origin.ptr = origin;
    env.origin.len = strlen(origin);
    env.destination.ptr = dest;
    env.destination.len = strlen(dest);
    env.type.ptr = type;
    env.type.len = strlen(type);
    env.key.ptr = key;
    env.key.len = strlen(key);
    if (with_payload) {
        env.payload.ptr = g->payload.data;
        env.payload.len = g->payload.len;
    }
    env.has_timestamp = 1;
    env.timestamp.kind = DCS_NUM_INT;
    env.timestamp.i = (int64_t)g->now_ms;
    env.timestamp.d = (double)g->now_ms;
    rc = dcs_encode(g->out, &env, DCS_ENCODE_VALIDATE);
    if (rc && !g->rc)
        g->rc = rc;
    if (g->st) {
        size_t n = g->out->len - before;
        g->st->messages++;
        g->st->count[cls]++;
        g->st->class_bytes[cls] += n;
        if (n > g->st->largest)
            g->st->largest = n;
    }
    g->now_ms += rng_range(&g->r, 1, 80);
}

/* Start a payload; returns a writer over g->payload. */
static void payload_begin(gen *g, jw *w)
{
    g->payload.len = 0;
    jw_init(w, &g->payload);
}

static void payload_end(gen *g, jw *w)
{
    if (w->rc && !g->rc)
        g->rc = w->rc;
}

/* ---- heartbeats ---------------------------------------------------------- */

static void gen_heartbeat(gen *g, int tiny)
{
    jw w;
    payload_begin(g, &w);
    jw_open(&w, '{');
    kv_int(&w, "timestamp", (int64_t)g->now_ms);
    if (tiny || rng_below(&g->r, 2)) {
        /* The web app's heartbeat: a timestamp only. */
        jw_close(&w, '}');
        payload_end(g, &w);
        emit(g, tiny ? BENCH_C_OTHER : BENCH_C_HEARTBEAT, WEB, CRAWLER, "heartbeat", "heartbeat",
             1);
        return;
    }
    kv_str(&w, "status", PICK(&g->r, hb_statuses));
    kv_int(&w, "activeJobs", rng_below(&g->r, 8));
    kv_int(&w, "queuedJobs", rng_below(&g->r, 200));
    kv_int(&w, "uptime", (int64_t)rng_range(&g->r, 5000, 900000000));
    if (rng_below(&g->r, 3) == 0) {
        jw_key(&w, "memory");
        jw_open(&w, '{');
        kv_int(&w, "rss", (int64_t)rng_range(&g->r, 40000000, 900000000));
        kv_int(&w, "heapUsed", (int64_t)rng_range(&g->r, 10000000, 400000000));
        jw_close(&w, '}');
    }
    kv_str(&w, "version", "1.4.2");
    jw_key(&w, "currentJob");
    if (rng_below(&g->r, 2)) {
        char id[37];
        uuid(g, id);
        jw_str(&w, id);
    } else {
        jw_lit(&w, "null");
    }
    jw_close(&w, '}');
    payload_end(g, &w);
    emit(g, BENCH_C_HEARTBEAT, CRAWLER, WEB, "heartbeat", "heartbeat", 1);
}

/* ---- PROGRESS_UPDATE ----------------------------------------------------- */

static void write_area(gen *g, jw *w, const char *discovered_by)
{
    char path[160], parent[160];
    char url[256];
    int project = rng_below(&g->r, 3) != 0;
    full_path(g, path, sizeof path, parent, sizeof parent);
    jw_open(w, '{');
    kv_str(w, "type", project ? "project" : "group");
    kv_str(w, "name", PICK(&g->r, group_names));
    jw_key(w, "gitlabId");
    if (rng_below(&g->r, 2)) {
        jw_int(w, rng_range(&g->r, 1, 250000));
    } else {
        char id[16];
        snprintf(id, sizeof id, "%u", rng_range(&g->r, 1, 250000));
        jw_str(w, id);
    }
    kv_str(w, "fullPath", path);
    if (rng_below(&g->r, 4)) {
        snprintf(url, sizeof url, "https://gitlab.example.org/%s", path);
        kv_str(w, "webUrl", url);
    }
    if (rng_below(&g->r, 3))
        kv_str(w, "description", PICK(&g->r, descriptions));
    if (strchr(path, '/') != strrchr(path, '/') || rng_below(&g->r, 2))
        kv_str(w, "parentPath", parent);
    kv_str(w, "discoveredBy", discovered_by);
    jw_close(w, '}');
}

static void gen_progress(gen *g, int areas)
{
    char task[37], ts[32];
    jw w;
    const char *status = areas ? "new_areas_discovered" : PICK(&g->r, progress_statuses);
    unsigned total = rng_range(&g->r, 10, 20000);
    unsigned done = rng_below(&g->r, total + 1);

    uuid(g, task);
    iso_time(g->now_ms, ts);
    payload_begin(g, &w);
    jw_open(&w, '{');
    kv_str(&w, "taskId", task);
    kv_str(&w, "status", status);
    kv_str(&w, "timestamp", ts);
    kv_int(&w, "processedItems", done);
    kv_int(&w, "totalItems", total);
    kv_str(&w, "currentDataType", PICK(&g->r, data_types));
    if (rng_below(&g->r, 10) < 4)
        kv_str(&w, "message", PICK(&g->r, progress_messages));
    if (!strcmp(status, "failed")) {
        jw_key(&w, "error");
        if (rng_below(&g->r, 2)) {
            jw_str(&w, PICK(&g->r, error_messages));
        } else {
            jw_open(&w, '{');
            kv_str(&w, "code", "HTTP_429");
            kv_str(&w, "message", PICK(&g->r, error_messages));
            kv_int(&w, "retryAfter", rng_range(&g->r, 1, 120));
            jw_close(&w, '}');
        }
    }
    if (rng_below(&g->r, 10) < 2) {
        char cursor[24];
        base62_string(g, cursor, 16);
        jw_key(&w, "progress");
        jw_open(&w, '{');
        kv_int(&w, "lastPage", rng_range(&g->r, 1, 400));
        kv_str(&w, "cursor", cursor);
        jw_close(&w, '}');
    }
    if (areas) {
        unsigned n = rng_range(&g->r, 3, 6), i;
        char by[9];
        memcpy(by, task, 8);
        by[8] = '\0';
        jw_key(&w, "areas");
        jw_open(&w, '[');
        for (i = 0; i < n; i++)
            write_area(g, &w, by);
        jw_close(&w, ']');
    }
    if (rng_below(&g->r, 10) < 4) {
        unsigned n = rng_range(&g->r, 2, 5), i;
        jw_key(&w, "itemsByType");
        jw_open(&w, '{');
        for (i = 0; i < n; i++)
            kv_int(&w, data_types[(i * 3 + g->now_ms) % 14], rng_below(&g->r, 5000));
        jw_close(&w, '}');
    }
    kv_str(&w, "stage", PICK(&g->r, stages));
    kv_str(&w, "operationType", areas ? "discovery" : PICK(&g->r, operation_types));
    if (rng_below(&g->r, 3) == 0)
        kv_int(&w, "lastProcessedId", rng_range(&g->r, 1, 9000000));
    jw_close(&w, '}');
    payload_end(g, &w);
    emit(g, areas ? BENCH_C_PROGRESS_AREAS : BENCH_C_PROGRESS, CRAWLER, WEB, "message",
         "PROGRESS_UPDATE", 1);
}

/* ---- TOKEN_REFRESH ------------------------------------------------------- */

static void gen_token(gen *g)
{
    jw w;
    char a[72], b[72];
    payload_begin(g, &w);
    jw_open(&w, '{');
    if (!g->token_pending) {
        if (rng_below(&g->r, 2))
            snprintf(g->token_req_id, sizeof g->token_req_id, "tok-%06" PRIu64, ++g->token_seq);
        else
            uuid(g, g->token_req_id);
        kv_str(&w, "requestId", g->token_req_id);
        kv_str(&w, "providerId", "gitlab");
        snprintf(a, sizeof a, "acc-%u", rng_range(&g->r, 1, 99999));
        kv_str(&w, "accountId", a);
        snprintf(b, sizeof b, "user-%u", rng_range(&g->r, 1, 99999));
        kv_str(&w, "userId", b);
        jw_close(&w, '}');
        payload_end(g, &w);
        g->token_pending = 1;
        emit(g, BENCH_C_TOKEN_REQUEST, CRAWLER, WEB, "message", "TOKEN_REFRESH_REQUEST", 1);
        return;
    }
    kv_str(&w, "requestId", g->token_req_id);
    if (rng_below(&g->r, 10) == 0) {
        jw_key(&w, "success");
        jw_lit(&w, "false");
        kv_str(&w, "error", "refresh failed: {\"error\":\"invalid_grant\"} — bitte neu anmelden");
    } else {
        char ts[32];
        jw_key(&w, "success");
        jw_lit(&w, "true");
        hex_string(g, a, 64);
        kv_str(&w, "accessToken", a);
        jw_key(&w, "expiresAt");
        if (rng_below(&g->r, 2)) {
            iso_time(g->now_ms + 7200000, ts);
            jw_str(&w, ts);
        } else {
            jw_int(&w, (int64_t)(g->now_ms + 7200000));
        }
        hex_string(g, b, 64);
        kv_str(&w, "refreshToken", b);
    }
    kv_str(&w, "providerId", "gitlab");
    jw_close(&w, '}');
    payload_end(g, &w);
    g->token_pending = 0;
    emit(g, BENCH_C_TOKEN_RESPONSE, WEB, CRAWLER, "message", "TOKEN_REFRESH_RESPONSE", 1);
}

/* ---- jobs_available ------------------------------------------------------ */

static void write_job(gen *g, jw *w)
{
    char id[37], tok[72], path[160], base[256];
    unsigned n, i, first;
    int project = rng_below(&g->r, 2);

    uuid(g, id);
    full_path(g, path, sizeof path, NULL, 0);
    jw_open(w, '{');
    kv_str(w, "taskId", id);
    kv_str(w, "command", PICK(&g->r, commands));
    kv_str(w, "gitlabApiUrl", PICK(&g->r, gitlab_urls));
    jw_key(w, "credentials");
    jw_open(w, '{');
    base62_string(g, tok + 6, 20);
    memcpy(tok, "glpat-", 6);
    kv_str(w, "accessToken", tok);
    hex_string(g, tok, 64);
    kv_str(w, "refreshToken", tok);
    kv_str(w, "tokenType", "oauth2");
    hex_string(g, tok, 40);
    kv_str(w, "clientId", tok);
    memcpy(tok, "gloas-", 6);
    hex_string(g, tok + 6, 64);
    kv_str(w, "clientSecret", tok);
    jw_close(w, '}');
    kv_str(w, "resourceType", project ? "project" : "group");
    jw_key(w, "resourceId");
    if (rng_below(&g->r, 2)) {
        jw_int(w, rng_range(&g->r, 1, 250000));
    } else {
        char rid[16];
        snprintf(rid, sizeof rid, "%u", rng_range(&g->r, 1, 250000));
        jw_str(w, rid);
    }
    jw_key(w, "dataTypes");
    jw_open(w, '[');
    n = rng_range(&g->r, 1, 3);
    first = rng_below(&g->r, 14);
    for (i = 0; i < n; i++)
        jw_str(w, data_types[(first + i) % 14]);
    jw_close(w, ']');
    jw_key(w, "outputConfig");
    jw_open(w, '{');
    kv_str(w, "storageType", "filesystem");
    snprintf(base, sizeof base, "/data/archive/%s", path);
    kv_str(w, "basePath", base);
    kv_str(w, "format", "json");
    jw_close(w, '}');
    jw_key(w, "lastProcessedId");
    switch (rng_below(&g->r, 3)) {
    case 0: jw_lit(w, "null"); break;
    case 1: jw_int(w, rng_range(&g->r, 1, 9000000)); break;
    default: {
        char c[24];
        base62_string(g, c, 12);
        jw_str(w, c);
    }
    }
    jw_key(w, "customParameters");
    jw_open(w, '{');
    kv_int(w, "depth", rng_range(&g->r, 1, 5));
    jw_key(w, "includeArchived");
    jw_lit(w, rng_below(&g->r, 2) ? "true" : "false");
    if (rng_below(&g->r, 2))
        kv_str(w, "label", PICK(&g->r, group_names));
    jw_close(w, '}');
    jw_close(w, '}');
}

static void gen_jobs(gen *g, unsigned njobs, int cls)
{
    jw w;
    unsigned i;
    payload_begin(g, &w);
    jw_open(&w, '[');
    for (i = 0; i < njobs; i++)
        write_job(g, &w);
    jw_close(&w, ']');
    payload_end(g, &w);
    emit(g, cls, WEB, CRAWLER, "jobResponse", "jobs_available", 1);
}

/* ---- stress: deep nesting ------------------------------------------------ */

static void gen_deep(gen *g)
{
    char task[37], ts[32];
    /* The envelope is depth 1 and the payload object depth 2; the default
     * decoder limit is 64, so the innermost container is at most 62 + 2. */
    unsigned levels = rng_range(&g->r, 16, 60), i;
    jw w;
    uuid(g, task);
    iso_time(g->now_ms, ts);
    payload_begin(g, &w);
    jw_open(&w, '{');
    kv_str(&w, "taskId", task);
    kv_str(&w, "status", "processing");
    kv_str(&w, "timestamp", ts);
    jw_key(&w, "progress");
    for (i = 0; i < levels; i++) {
        if (i % 2 == 0) {
            jw_open(&w, '{');
            kv_int(&w, "level", i);
            kv_str(&w, "name", PICK(&g->r, slugs));
            jw_key(&w, "next");
        } else {
            jw_open(&w, '[');
            jw_int(&w, i);
            jw_lit(&w, "true");
        }
    }
    jw_lit(&w, "null");
    for (i = levels; i-- > 0;)
        jw_close(&w, i % 2 == 0 ? '}' : ']');
    jw_close(&w, '}');
    payload_end(g, &w);
    emit(g, BENCH_C_OTHER, CRAWLER, WEB, "message", "PROGRESS_UPDATE", 1);
}

/* ---- stress: long strings ------------------------------------------------ */

static void gen_long_string(gen *g)
{
    char task[37], ts[32];
    size_t target = rng_range(&g->r, 16 * 1024, 256 * 1024);
    jw w;

    g->tmp.len = 0;
    while (g->tmp.len < target && !g->rc) {
        const char *word = PICK(&g->r, lorem);
        uint32_t x = rng_below(&g->r, 64);
        /* Mostly spaces; now and then a line break, a quote or braces. */
        const char *sep = x == 0 ? "\n" : x == 1 ? "\" " : x == 2 ? " {x} " : " ";
        if (dcs_buf_append(&g->tmp, word, strlen(word)) ||
            dcs_buf_append(&g->tmp, sep, strlen(sep)))
            g->rc = DCS_ENOMEM;
    }
    uuid(g, task);
    iso_time(g->now_ms, ts);
    payload_begin(g, &w);
    jw_open(&w, '{');
    kv_str(&w, "taskId", task);
    kv_str(&w, "status", "failed");
    kv_str(&w, "timestamp", ts);
    jw_key(&w, "message");
    jw_strn(&w, g->tmp.data, g->tmp.len);
    jw_close(&w, '}');
    payload_end(g, &w);
    emit(g, BENCH_C_OTHER, CRAWLER, WEB, "message", "PROGRESS_UPDATE", 1);
}

/* ---- the realistic mix --------------------------------------------------- */

static void gen_mix_one(gen *g)
{
    uint32_t x = rng_below(&g->r, 100);
    if (x < 35)
        gen_heartbeat(g, 0);
    else if (x < 80)
        gen_progress(g, rng_below(&g->r, 10) == 0);
    else if (x < 97)
        gen_token(g);
    else
        gen_jobs(g, 10, BENCH_C_JOBS);
}

static void gen_whitespace(gen *g)
{
    static const char ws[] = " \t\r\n\n\n ";
    unsigned n = rng_range(&g->r, 1, 12), i;
    for (i = 0; i < n && !g->rc; i++) {
        char c = ws[rng_below(&g->r, sizeof ws - 1)];
        if (dcs_buf_append(g->out, &c, 1))
            g->rc = DCS_ENOMEM;
    }
}

/* ------------------------------------------------------------------------ */
/* Public                                                                    */

static const char *const kind_names[BENCH_KIND_COUNT] = {
    "mix", "tiny-heartbeats", "large-jobs", "deep", "long-strings", "whitespace",
};

static const char *const class_names[BENCH_CLASS_COUNT] = {
    "heartbeat", "progress", "progress+areas", "token-request", "token-response",
    "jobs_available", "other",
};

int bench_kind_parse(const char *name)
{
    int i;
    for (i = 0; i < BENCH_KIND_COUNT; i++)
        if (!strcmp(name, kind_names[i]))
            return i;
    return -1;
}

const char *bench_kind_name(int kind)
{
    return kind >= 0 && kind < BENCH_KIND_COUNT ? kind_names[kind] : "unknown";
}

const char *bench_class_name(int cls)
{
    return cls >= 0 && cls < BENCH_CLASS_COUNT ? class_names[cls] : "unknown";
}

int bench_generate(dcs_buf *out, int kind, uint64_t seed, uint64_t max_bytes,
                   uint64_t max_messages, bench_gen_stats *st)
{
    gen g;
    size_t start = out->len;
    uint64_t n = 0;

    if (kind < 0 || kind >= BENCH_KIND_COUNT || (!max_bytes && !max_messages))
        return DCS_EINVAL;
    memset(&g, 0, sizeof g);
    /* Different kinds with the same seed draw different numbers. */
    g.r.s = seed * 0x100000001b3ull + (uint64_t)kind;
    g.out = out;
    g.kind = kind;
    g.now_ms = 1735930800000ull + rng_below(&g.r, 86400000);
    g.st = st;
    if (st)
        memset(st, 0, sizeof *st);
    dcs_buf_init(&g.payload, out->alloc);
    dcs_buf_init(&g.tmp, out->alloc);

    while (!g.rc && (!max_bytes || out->len - start < max_bytes) &&
           (!max_messages || n < max_messages)) {
        switch (kind) {
        case BENCH_MIX: gen_mix_one(&g); break;
        case BENCH_TINY_HEARTBEATS: gen_heartbeat(&g, 1); break;
        case BENCH_LARGE_JOBS: gen_jobs(&g, rng_range(&g.r, 50, 150), BENCH_C_OTHER); break;
        case BENCH_DEEP: gen_deep(&g); break;
        case BENCH_LONG_STRINGS: gen_long_string(&g); break;
        case BENCH_WHITESPACE:
            gen_whitespace(&g);
            gen_mix_one(&g);
            break;
        }
        n++;
    }
    if (kind == BENCH_WHITESPACE && !g.rc)
        gen_whitespace(&g);
    if (st)
        st->bytes = out->len - start;
    dcs_buf_free(&g.payload);
    dcs_buf_free(&g.tmp);
    return g.rc;
}

int bench_check_stream(const char *buf, size_t len, bench_check *c)
{
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    int ev;

    memset(c, 0, sizeof *c);
    d = dcs_decoder_new(NULL, NULL);
    if (!d) {
        c->errors = 1;
        c->first.code = DCS_ENOMEM;
        snprintf(c->first.message, sizeof c->first.message, "out of memory");
        return -1;
    }
    dcs_decoder_feed(d, buf, len);
    while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
        if (ev == DCS_MESSAGE) {
            c->messages++;
            if (m.raw.len > c->largest)
                c->largest = m.raw.len;
            c->signature += bench_sig(m.origin.ptr, m.origin.len) +
                            bench_sig(m.destination.ptr, m.destination.len) +
                            bench_sig(m.type.ptr, m.type.len) + bench_sig(m.key.ptr, m.key.len);
        } else if (c->errors++ == 0) {
            c->first = e;
        }
    }
    while (dcs_decoder_finish(d, &e) == DCS_ERROR)
        if (c->errors++ == 0)
            c->first = e;
    dcs_decoder_free(d);
    return c->errors ? -1 : 0;
}
