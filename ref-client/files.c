/* files.c - what dcs-client is given at start-up: the jobs file (a JSON
 * array of job objects, spec 7.7.1), the tokens file (a JSON object from
 * provider id to token record, spec 7.11), the deliveries file, and the
 * syntax of commands (TYPE[:JSON], spec 7.16). Every problem found here is a
 * configuration error with a one-line reason. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rc.h"

#define RC_MAX_FILE (256u << 20)

/* Read and validate a JSON file. */
static int rc_json_file(const char *what, const char *path, char **text, size_t *len, char *why,
                        size_t n)
{
    dcs_error err;
    char sub[256];
    if (dsh_file_read(path, RC_MAX_FILE, text, len, sub, sizeof sub) != 0) {
        snprintf(why, n, "%s file %s", what, sub);
        return -1;
    }
    if (dcs_json_validate(*text, *len, 0, &err) != 0) {
        snprintf(why, n, "%s file %s is not valid JSON: %s at byte %llu", what, path,
                 dcs_err_name(err.code), (unsigned long long)err.offset);
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}

/* A decoded copy of a JSON string body, NUL-terminated, or NULL. */
static char *rc_decode(const char *raw, size_t len)
{
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    if (dcs_unescape(&b, raw, len) || dcs_buf_append(&b, "", 1)) {
        dcs_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */

static struct rc *rc__sort_ctx; /* qsort has no context argument */

static int rc_job_cmp(const void *a, const void *b)
{
    const struct rc_job *ja = &rc__sort_ctx->jobs[*(const size_t *)a];
    const struct rc_job *jb = &rc__sort_ctx->jobs[*(const size_t *)b];
    return strcmp(ja->task_id, jb->task_id);
}

struct rc_job *rc_job_find(struct rc *rc, const char *task_id, size_t len)
{
    size_t lo = 0, hi = rc->n_jobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct rc_job *j = &rc->jobs[rc->job_index[mid]];
        int c = strncmp(j->task_id, task_id, len);
        if (c == 0 && j->task_id[len] != '\0')
            c = 1;
        if (c == 0)
            return j;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int rc_jobs_load(struct rc *rc, const char *path, char *why, size_t n)
{
    /* A job must fit in a jobs_available message on its own, with room for
     * the envelope and a requestId. */
    size_t budget = rc->cfg.s.max_message_size > rc->cfg.s.max_request_id + 1024
                        ? rc->cfg.s.max_message_size - rc->cfg.s.max_request_id - 1024
                        : 0;
    size_t len, cap = 0, i;
    dsh_iter it;
    dcs_slice v;
    dcs_buf b;

    if (rc_json_file("jobs", path, &rc->jobs_text, &len, why, n))
        return -1;
    if (dsh_iter_array(&it, rc->jobs_text, len)) {
        snprintf(why, n, "jobs file %s must hold a JSON array of job objects", path);
        return -1;
    }
    dcs_buf_init(&b, NULL);
    while (dsh_iter_next_value(&it, &v)) {
        struct rc_job *j;
        if (rc->n_jobs == cap) {
            struct rc_job *nj;
            cap = cap ? cap * 2 : 16;
            nj = realloc(rc->jobs, cap * sizeof *nj);
            if (!nj) {
                snprintf(why, n, "jobs file %s: out of memory", path);
                goto fail;
            }
            rc->jobs = nj;
        }
        if (v.ptr[0] != '{') {
            snprintf(why, n, "jobs file %s: job %zu is not an object", path, rc->n_jobs + 1);
            goto fail;
        }
        j = &rc->jobs[rc->n_jobs];
        memset(j, 0, sizeof *j);
        j->raw = v.ptr;
        j->len = v.len;
        b.len = 0;
        if (dcs_json_member_string(v.ptr, v.len, "taskId", &b) != 1 || dcs_buf_append(&b, "", 1)) {
            snprintf(why, n, "jobs file %s: job %zu has no string taskId", path, rc->n_jobs + 1);
            goto fail;
        }
        if (strlen(b.data) != b.len - 1) {
            snprintf(why, n, "jobs file %s: the taskId of job %zu contains U+0000", path,
                     rc->n_jobs + 1);
            goto fail;
        }
        j->task_id = strdup(b.data);
        if (!j->task_id) {
            snprintf(why, n, "jobs file %s: out of memory", path);
            goto fail;
        }
        rc->n_jobs++; /* from here on rc_files_fini frees it */
        b.len = 0;
        if (dsh_json_compact(&b, v.ptr, v.len) || b.len > budget) {
            snprintf(why, n, "jobs file %s: job %zu is too large to send (%zu bytes; at most %zu)",
                     path, rc->n_jobs, b.len, budget);
            goto fail;
        }
    }
    dcs_buf_free(&b);
    rc->job_index = malloc((rc->n_jobs ? rc->n_jobs : 1) * sizeof *rc->job_index);
    if (!rc->job_index) {
        snprintf(why, n, "jobs file %s: out of memory", path);
        return -1;
    }
    for (i = 0; i < rc->n_jobs; i++)
        rc->job_index[i] = i;
    rc__sort_ctx = rc;
    qsort(rc->job_index, rc->n_jobs, sizeof *rc->job_index, rc_job_cmp);
    for (i = 1; i < rc->n_jobs; i++)
        if (strcmp(rc->jobs[rc->job_index[i]].task_id, rc->jobs[rc->job_index[i - 1]].task_id) ==
            0) {
            snprintf(why, n, "jobs file %s: taskId \"%s\" appears twice", path,
                     rc->jobs[rc->job_index[i]].task_id);
            return -1;
        }
    return 0;
fail:
    dcs_buf_free(&b);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */

/* Whether obj has a member called name. */
static int rc_has(const char *obj, size_t len, const char *name)
{
    dcs_slice v;
    return dcs_json_member(obj, len, name, &v) == 1;
}

int rc_tokens_load(struct rc *rc, const char *path, char *why, size_t n)
{
    size_t len, cap = 0;
    dsh_iter it;
    dcs_slice name, v;
    dcs_buf b;

    if (rc_json_file("tokens", path, &rc->tokens_text, &len, why, n))
        return -1;
    if (dsh_iter_object(&it, rc->tokens_text, len)) {
        snprintf(why, n, "tokens file %s must hold a JSON object from provider id to token record",
                 path);
        return -1;
    }
    dcs_buf_init(&b, NULL);
    while (dsh_iter_next_member(&it, &name, &v)) {
        struct rc_token *t;
        const char *lo, *hi;
        char *provider = rc_decode(name.ptr, name.len);
        if (!provider) {
            snprintf(why, n, "tokens file %s: out of memory", path);
            goto fail;
        }
        if (rc->n_tokens == cap) {
            struct rc_token *nt;
            cap = cap ? cap * 2 : 8;
            nt = realloc(rc->tokens, cap * sizeof *nt);
            if (!nt) {
                free(provider);
                snprintf(why, n, "tokens file %s: out of memory", path);
                goto fail;
            }
            rc->tokens = nt;
        }
        t = &rc->tokens[rc->n_tokens++];
        memset(t, 0, sizeof *t);
        t->provider = provider;
        b.len = 0;
        if (v.ptr[0] != '{' || dcs_json_member_string(v.ptr, v.len, "accessToken", &b) != 1) {
            snprintf(why, n, "tokens file %s: the record of \"%s\" needs a string accessToken",
                     path, provider);
            goto fail;
        }
        if (rc_has(v.ptr, v.len, "requestId") || rc_has(v.ptr, v.len, "success")) {
            snprintf(why, n,
                     "tokens file %s: the record of \"%s\" must not hold requestId or success "
                     "(the client writes them)",
                     path, provider);
            goto fail;
        }
        t->has_provider = rc_has(v.ptr, v.len, "providerId");
        /* The members between the braces, without surrounding whitespace. */
        lo = v.ptr + 1;
        hi = v.ptr + v.len - 1;
        while (lo < hi && (*lo == ' ' || *lo == '\t' || *lo == '\n' || *lo == '\r'))
            lo++;
        t->inner = lo;
        t->inner_len = (size_t)(hi - lo);
    }
    dcs_buf_free(&b);
    return 0;
fail:
    dcs_buf_free(&b);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Deliveries                                                                */

int rc_deliveries_open(struct rc *rc, const char *path, char *why, size_t n)
{
    /* Recordings may hold what the peer sent in clear: mode 0600 (spec 15.3). */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        snprintf(why, n, "deliveries file %s: %s", path, strerror(errno));
        return -1;
    }
    rc->deliveries = fdopen(fd, "w");
    if (!rc->deliveries) {
        snprintf(why, n, "deliveries file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */

int rc_command_parse(const char *text, size_t len, dcs_slice *key, dcs_buf *out, char *why,
                     size_t n)
{
    const char *colon = memchr(text, ':', len);
    size_t klen = colon ? (size_t)(colon - text) : len, i;
    dcs_error err;
    dcs_buf tb;
    int rc;

    if (klen == 0) {
        snprintf(why, n, "a command needs a name: TYPE or TYPE:{...}");
        return -1;
    }
    for (i = 0; i < klen; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\') {
            snprintf(why, n,
                     "command name '%.*s' may not hold spaces, quotes or control characters",
                     (int)klen, text);
            return -1;
        }
    }
    if ((klen == 8 && memcmp(text, "register", 8) == 0) ||
        (klen == 9 && memcmp(text, "challenge", 9) == 0)) {
        snprintf(why, n, "'%.*s' is not a command the application may send (spec 7.16)", (int)klen,
                 text);
        return -1;
    }
    key->ptr = text;
    key->len = klen;
    if (!colon) {
        if (dcs_buf_append(out, "{\"type\":", 8))
            goto nomem;
        if (dcs_encode_string(out, text, klen) == DCS_EUTF8)
            goto bad_utf8;
        if (dcs_buf_append(out, "}", 1))
            goto nomem;
        return 0;
    }
    text = colon + 1;
    len -= klen + 1;
    if (dcs_json_validate(text, len, 0, &err) != 0) {
        snprintf(why, n, "command %.*s: the payload is not valid JSON (%s at byte %llu)", (int)klen,
                 key->ptr, dcs_err_name(err.code), (unsigned long long)err.offset);
        return -1;
    }
    if (dsh_json_kind(text, len) != '{') {
        snprintf(why, n, "command %.*s: the payload must be a JSON object", (int)klen, key->ptr);
        return -1;
    }
    dcs_buf_init(&tb, NULL);
    rc = dcs_json_member_string(text, len, "type", &tb);
    if (rc == 1 && (tb.len != klen || memcmp(tb.data, key->ptr, klen) != 0)) {
        snprintf(why, n, "command %.*s: the payload's type must repeat the name", (int)klen,
                 key->ptr);
        dcs_buf_free(&tb);
        return -1;
    }
    dcs_buf_free(&tb);
    if (rc < 0) {
        snprintf(why, n, "command %.*s: the payload's type must be a string", (int)klen, key->ptr);
        return -1;
    }
    if (rc == 1) {
        if (dsh_json_compact(out, text, len))
            goto nomem;
        return 0;
    }
    /* Put "type" first, then the given members. */
    {
        const char *lo = memchr(text, '{', len) + 1, *hi = text + len;
        while (hi > lo && hi[-1] != '}')
            hi--;
        hi--;
        if (dcs_buf_append(out, "{\"type\":", 8))
            goto nomem;
        if ((rc = dcs_encode_string(out, key->ptr, klen)) == DCS_EUTF8)
            goto bad_utf8;
        if (rc)
            goto nomem;
        if (dsh_json_kind(lo, (size_t)(hi - lo)) != 0 &&
            (dcs_buf_append(out, ",", 1) || dsh_json_compact(out, lo, (size_t)(hi - lo))))
            goto nomem;
        if (dcs_buf_append(out, "}", 1))
            goto nomem;
    }
    return 0;
nomem:
    snprintf(why, n, "out of memory");
    return -1;
bad_utf8:
    snprintf(why, n, "the command name is not valid UTF-8");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* End                                                                       */

void rc_files_fini(struct rc *rc)
{
    size_t i;
    for (i = 0; i < rc->n_jobs; i++)
        free(rc->jobs[i].task_id);
    free(rc->jobs);
    free(rc->job_index);
    free(rc->jobs_text);
    for (i = 0; i < rc->n_tokens; i++)
        free(rc->tokens[i].provider);
    free(rc->tokens);
    free(rc->tokens_text);
    if (rc->deliveries)
        fclose(rc->deliveries);
}
