/* steps.c - the steps of spec/TRANSCRIPTS.md 3, each judged against what
 * the IUT did: connections, sends, expectations, alternatives. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runner_int.h"

static void vars_copy(dcs_vars *dst, const dcs_vars *src)
{
    size_t i;
    dcs_vars_init(dst, NULL);
    for (i = 0; i < src->n; i++)
        dcs_vars_set(dst, src->v[i].name, src->v[i].value, src->v[i].value_len);
}

/* ------------------------------------------------------------------------ */
/* Windows                                                                   */

typedef struct win {
    int64_t lo, hi; /* absolute monotonic us; lo is INT64_MIN when open */
} win;

/* A window's bounds. The upper bound counts from the step's start t0; the
 * lower bound from the last event the harness saw before the step (x->t_ref:
 * the message, connection or write that started the IUT's timer), when that
 * is earlier, so that a harness that starts a step late (a loaded machine)
 * never makes the IUT look early. */
static int64_t lower_ref(const cx *x, int64_t t0)
{
    return x->t_ref && x->t_ref < t0 ? x->t_ref : t0;
}

static win window_at(const cx *x, dcs_window w, int64_t t0)
{
    win r;
    int64_t lref = lower_ref(x, t0);
    r.lo = w.lo_ms > 0 ? lref + cx_scaled(x, w.lo_ms) - x->o->tol_us : INT64_MIN;
    r.hi = t0 + cx_scaled(x, w.hi_ms) + x->o->slack_us;
    return r;
}

static void window_text(const cx *x, dcs_window w, char *out, size_t n)
{
    if (w.lo_ms > 0)
        snprintf(out, n, "%lld..%lld ms (%.1f..%.1f ms at this scale)", (long long)w.lo_ms, (long long)w.hi_ms,
                 (double)cx_scaled(x, w.lo_ms) / 1000.0, (double)cx_scaled(x, w.hi_ms) / 1000.0);
    else
        snprintf(out, n, "%lld ms (%.1f ms at this scale)", (long long)w.hi_ms,
                 (double)cx_scaled(x, w.hi_ms) / 1000.0);
}

static double ms_since(int64_t t, int64_t t0)
{
    return (double)(t - t0) / 1000.0;
}

static dcs_window step_window(const cx *x, const dcs_step *st)
{
    dcs_window w = {0, x->c->window_ms};
    return st->has_window ? st->window : w;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static int ignored(const cx *x, const cev *e)
{
    size_t i, tl = strlen(e->type);
    for (i = 0; i < x->n_ignore; i++) {
        const char *n = x->ignore[i];
        if (strncmp(n, e->type, tl) == 0 && (n[tl] == 0 || (n[tl] == '/' && strcmp(n + tl + 1, e->key) == 0)))
            return 1;
    }
    return 0;
}

/* A message, shortened for a report. */
static void show(const cev *e, char *out, size_t n)
{
    if (e->len < n)
        snprintf(out, n, "%s", e->raw);
    else
        snprintf(out, n, "%.*s... (%zu bytes)", (int)(n - 40), e->raw, e->len);
}

static int need_conn(cx *x, const dcs_step *st)
{
    if (!x->cur)
        return cx_error(x, "line %d: %s needs a current connection (accept or connect first)", st->line,
                        dcs_step_name(st->kind));
    return 0;
}

static int st_expect(cx *x, const dcs_step *st, int64_t t0)
{
    dcs_window dw = step_window(x, st);
    win w = window_at(x, dw, t0);
    int any = st->kind == DCS_STEP_EXPECT_ANY;
    char exp[2048], wt[128], shown[3000];
    size_t skipped = 0;
    conn *c = x->cur;
    if (need_conn(x, st) != 0)
        return STEP_ERROR;
    if (strstr(dcs_pattern_text(st->pattern), "$HMAC") && cx_compute_hmac(x) != 0)
        return STEP_ERROR;
    window_text(x, dw, wt, sizeof wt);
    snprintf(exp, sizeof exp, "%s%s within %s", any ? "some message matching " : "",
             dcs_pattern_text(st->pattern), wt);
    for (;;) {
        while (c->cursor < c->n_evs) {
            cev *e = &c->evs[c->cursor];
            dcs_match_why why;
            int m;
            if (e->kind == EV_EOF) {
                if (e->t < t0)
                    cx_fail(x, st, t0, exp, "the IUT had closed the connection %.1f ms before the step%s",
                            -ms_since(e->t, t0), skipped ? " (other messages skipped)" : "");
                else
                    cx_fail(x, st, t0, exp, "the IUT closed the connection after %.1f ms%s", ms_since(e->t, t0),
                            skipped ? " (other messages skipped)" : "");
                x->div.offset = e->offset;
                x->div.has_offset = 1;
                return STEP_FAIL;
            }
            c->cursor++;
            if (e->kind == EV_ERR) {
                cx_fail(x, st, t0, exp, "the IUT wrote bytes that are not a valid message: %s at offset %llu (%s)",
                        e->reason, (unsigned long long)e->offset, e->msg);
                x->div.offset = e->offset;
                x->div.has_offset = 1;
                return STEP_FAIL;
            }
            if (ignored(x, e))
                continue;
            show(e, shown, sizeof shown);
            if (e->t > w.hi) {
                cx_fail(x, st, t0, exp, "nothing matching within the window; the next message came after %.1f ms: %s",
                        ms_since(e->t, t0), shown);
                x->div.offset = e->offset;
                x->div.has_offset = 1;
                return STEP_FAIL;
            }
            m = dcs_pattern_match(st->pattern, e->raw, e->len, &x->vars, &why);
            if (m < 0)
                return cx_error(x, "out of memory");
            if (m == 1) {
                if (e->t < w.lo) {
                    if (e->t < t0)
                        cx_fail(x, st, t0, exp, "it came too early: it had arrived %.1f ms before the step: %s",
                                -ms_since(e->t, t0), shown);
                    else
                        cx_fail(x, st, t0, exp, "it came too early, after %.1f ms: %s", ms_since(e->t, t0), shown);
                    x->div.offset = e->offset;
                    x->div.has_offset = 1;
                    return STEP_FAIL;
                }
                x->t_ref = e->t_first; /* the IUT began writing it no later */
                return STEP_OK;
            }
            if (!any) {
                cx_fail(x, st, t0, exp, "%s; the message (after %.1f ms): %s", why.text, ms_since(e->t, t0), shown);
                x->div.offset = e->offset;
                x->div.has_offset = 1;
                return STEP_FAIL;
            }
            skipped++;
        }
        if (conf_now_us() > w.hi)
            return cx_fail(x, st, t0, exp, "nothing%s arrived within %.1f ms%s", any ? " matching" : "",
                           ms_since(w.hi, t0), any && skipped ? " (other messages did)" : "");
        if (cx_pump(x, w.hi + 1, -1) < 0)
            return STEP_ERROR;
    }
}

static int st_expect_none(cx *x, const dcs_step *st, int64_t t0)
{
    int64_t end = t0 + cx_scaled(x, st->duration_ms) - x->o->tol_us;
    char exp[2048], shown[3000];
    conn *c = x->cur;
    size_t i;
    if (need_conn(x, st) != 0)
        return STEP_ERROR;
    snprintf(exp, sizeof exp, "no message matching %s for %lld ms (%.1f ms at this scale)",
             dcs_pattern_text(st->pattern), (long long)st->duration_ms, (double)cx_scaled(x, st->duration_ms) / 1000.0);
    for (i = c->cursor;;) {
        for (; i < c->n_evs; i++) {
            cev *e = &c->evs[i];
            int m;
            if (e->t > end)
                return STEP_OK;
            if (e->kind != EV_MSG || ignored(x, e))
                continue;
            if ((m = dcs_pattern_match(st->pattern, e->raw, e->len, &x->vars, NULL)) < 0)
                return cx_error(x, "out of memory");
            if (m == 1) {
                show(e, shown, sizeof shown);
                cx_fail(x, st, t0, exp, "after %.1f ms: %s", ms_since(e->t, t0), shown);
                x->div.offset = e->offset;
                x->div.has_offset = 1;
                return STEP_FAIL;
            }
        }
        if (conf_now_us() >= end)
            return STEP_OK;
        if (cx_pump(x, end, -1) < 0)
            return STEP_ERROR;
    }
}

static int st_expect_close(cx *x, const dcs_step *st, int64_t t0)
{
    dcs_window dw = step_window(x, st);
    win w = window_at(x, dw, t0);
    char exp[256], wt[128];
    conn *c = x->cur;
    if (need_conn(x, st) != 0)
        return STEP_ERROR;
    window_text(x, dw, wt, sizeof wt);
    snprintf(exp, sizeof exp, "the IUT closes connection %d within %s", c->n, wt);
    for (;;) {
        for (; c->cursor < c->n_evs; c->cursor++) {
            cev *e = &c->evs[c->cursor];
            if (e->kind != EV_EOF)
                continue;
            if (e->t < w.lo)
                return cx_fail(x, st, t0, exp, "it closed too early, after %.1f ms", ms_since(e->t, t0));
            if (e->t > w.hi)
                return cx_fail(x, st, t0, exp, "it closed late, after %.1f ms", ms_since(e->t, t0));
            c->cursor++;
            x->t_ref = e->t_first; /* the IUT closed no earlier (see conn_ended) */
            return STEP_OK;
        }
        if (c->fd < 0)
            return cx_error(x, "line %d: the harness closed connection %d itself", st->line, c->n);
        if (conf_now_us() > w.hi)
            return cx_fail(x, st, t0, exp, "the connection was still open after %.1f ms", ms_since(w.hi, t0));
        if (cx_pump(x, w.hi + 1, -1) < 0)
            return STEP_ERROR;
    }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static conn *first_pending(cx *x, int64_t since)
{
    size_t i;
    for (i = 0; i < x->n_conns; i++)
        if (!x->conns[i]->taken && x->conns[i]->t_open >= since)
            return x->conns[i];
    return NULL;
}

static void take(cx *x, conn *c)
{
    c->taken = 1;
    x->cur = c;
    if (cx_set_number_var(x, "CONN", c->n) != 0)
        cx_note(x, 0, "out of memory setting $CONN");
}

/* accept and expect-reconnect: ref is where the window starts. */
static int st_accept(cx *x, const dcs_step *st, int64_t t0, int64_t ref, const char *what)
{
    dcs_window dw = step_window(x, st);
    win w = window_at(x, dw, ref);
    char exp[256], wt[128];
    int64_t hi = w.hi;
    if (st->kind == DCS_STEP_ACCEPT && t0 < x->startup_until)
        hi += x->o->startup_us;
    window_text(x, dw, wt, sizeof wt);
    snprintf(exp, sizeof exp, "%s within %s", what, wt);
    for (;;) {
        conn *c = first_pending(x, INT64_MIN);
        if (c) {
            if (c->t_open < w.lo) {
                int64_t lref = lower_ref(x, ref);
                if (ref - lref >= 100)
                    return cx_fail(x, st, ref, exp,
                                   "it connected too early, after %.1f ms (%.1f ms after the earlier event "
                                   "its lower bound counts from)",
                                   ms_since(c->t_open, ref), ms_since(c->t_open, lref));
                return cx_fail(x, st, ref, exp, "it connected too early, after %.1f ms", ms_since(c->t_open, ref));
            }
            if (c->t_open > hi)
                return cx_fail(x, st, ref, exp, "it connected late, after %.1f ms", ms_since(c->t_open, ref));
            take(x, c);
            x->t_ref = c->t_open;
            x->startup_until = 0; /* the IUT is up: no more allowance */
            return STEP_OK;
        }
        if (conf_now_us() > hi)
            return cx_fail(x, st, ref, exp, "no connection within %.1f ms", ms_since(hi, ref));
        if (x->iut && x->iut->exited) {
            char d[160];
            conf_iut_describe(x->iut, d, sizeof d);
            return cx_fail(x, st, ref, exp, "the IUT %s", d);
        }
        if (cx_pump(x, hi + 1, -1) < 0)
            return STEP_ERROR;
    }
}

static int st_no_connect(cx *x, const dcs_step *st, int64_t t0)
{
    int64_t end = t0 + cx_scaled(x, st->duration_ms) - x->o->tol_us;
    char exp[256];
    snprintf(exp, sizeof exp, "no connection for %lld ms (%.1f ms at this scale)", (long long)st->duration_ms,
             (double)cx_scaled(x, st->duration_ms) / 1000.0);
    for (;;) {
        conn *c = first_pending(x, t0);
        if (c && c->t_open <= end)
            return cx_fail(x, st, t0, exp, "the IUT connected after %.1f ms", ms_since(c->t_open, t0));
        if (conf_now_us() >= end)
            return STEP_OK;
        if (cx_pump(x, end, -1) < 0)
            return STEP_ERROR;
    }
}

static int st_connect(cx *x, const dcs_step *st, int64_t t0)
{
    int64_t deadline = t0 + cx_scaled(x, x->c->window_ms) + x->o->slack_us;
    char exp[400];
    if (t0 < x->startup_until)
        deadline += x->o->startup_us;
    snprintf(exp, sizeof exp, "the IUT accepts a connection on %s", x->sock);
    for (;;) {
        int fd = cx_connect_once(x->sock), e = errno;
        conn *c;
        if (fd >= 0) {
            if (!(c = cx_conn_new(x, fd)))
                return cx_error(x, "too many connections in one case");
            cx_note(x, c->n, "connected to the IUT (connection %d)", c->n);
            take(x, c);
            x->startup_until = 0; /* the IUT is up: no more allowance */
            return STEP_OK;
        }
        if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || conf_now_us() > deadline)
            return cx_fail(x, st, t0, exp, "connect failed: %s", strerror(e));
        if (x->iut && x->iut->exited) {
            char d[160];
            conf_iut_describe(x->iut, d, sizeof d);
            return cx_fail(x, st, t0, exp, "the IUT %s", d);
        }
        if (cx_pump(x, conf_now_us() + 5000, -1) < 0)
            return STEP_ERROR;
    }
}

static int st_socket(cx *x, const dcs_step *st)
{
    struct sockaddr_un a;
    int fd;
    if (strlen(x->sock) >= sizeof a.sun_path)
        return cx_error(x, "socket path too long");
    if (x->lfd_shared)
        return cx_error(x, "line %d: socket steps need a socket of the case's own (not with --reuse)", st->line);
    if (st->kind == DCS_STEP_SOCKET_LISTEN)
        return cx_listen(x) == 0 ? STEP_OK : STEP_ERROR;
    cx_unlisten(x);
    unlink(x->sock);
    if (st->kind == DCS_STEP_SOCKET_REMOVE) {
        cx_note(x, 0, "removed the socket file");
        return STEP_OK;
    }
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, x->sock, strlen(x->sock) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return cx_error(x, "cannot make a stale socket: %s", strerror(e));
    }
    close(fd);
    cx_note(x, 0, "replaced the socket by one with no listener");
    return STEP_OK;
}

/* SIGTERM the IUT and wait for it, reading meanwhile: what it writes as it
 * stops (a shutdown, close notices) is part of the case, and a peer that
 * writes it in pieces needs the harness to read. SIGKILL after grace_us. */
static void stop_pumping(cx *x, int64_t grace_us)
{
    int64_t deadline = conf_now_us() + grace_us;
    if (x->iut->pid <= 0 || conf_iut_check(x->iut))
        return;
    x->iut->stopping = 1;
    kill(x->iut->pid, SIGTERM);
    while (!conf_iut_check(x->iut) && conf_now_us() < deadline)
        if (cx_pump(x, conf_now_us() + 5000 < deadline ? conf_now_us() + 5000 : deadline, -1) < 0)
            break;
    if (!x->iut->exited)
        conf_iut_kill(x->iut);
}

static int st_restart(cx *x, const dcs_step *st)
{
    char why[512], d[160];
    if (!x->iut)
        return cx_error(x, "line %d: no IUT process to restart", st->line);
    if (st->kind == DCS_STEP_KILL) {
        conf_iut_kill(x->iut);
        x->killed = 1;
        conf_iut_describe(x->iut, d, sizeof d);
        cx_note(x, 0, "killed the IUT: it %s", d);
        return STEP_OK;
    }
    stop_pumping(x, 1000000 + cx_scaled(x, 2000) + x->o->slack_us);
    conf_iut_describe(x->iut, d, sizeof d);
    cx_note(x, 0, "stopped the IUT: it %s", d);
    if (conf_iut_crashed(x->iut))
        return cx_fail(x, st, conf_now_us(), "the IUT stops cleanly", "it %s", d);
    if (conf_iut_start(x->iut, x->o, x->sock, x->extra, x->n_extra, why, sizeof why) != 0)
        return cx_error(x, "%s", why);
    x->startup_until = conf_now_us() + x->o->startup_us;
    x->killed = 0;
    cx_note(x, 0, "started the IUT again (pid %ld)", (long)x->iut->pid);
    return STEP_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static int build_send(cx *x, const dcs_step *st, dcs_buf *plan)
{
    size_t i;
    int rc = 0;
    for (i = 1; i <= st->repeat && rc == 0; i++) {
        if (st->kind == DCS_STEP_SEND_RAW) {
            if (dcs_buf_append(plan, st->text, st->text_len) != 0)
                return cx_error(x, "out of memory");
            continue;
        }
        dcs_buf sub;
        dcs_buf_init(&sub, NULL);
        if (cx_set_number_var(x, "I", (long long)i) != 0 || cx_set_number_var(x, "NOW", conf_wall_ms()) != 0)
            rc = cx_error(x, "out of memory");
        if (rc == 0)
            rc = cx_subst(x, st->text, st->text_len, &sub);
        if (rc == 0)
            rc = cx_complete(x, sub.data ? sub.data : "", sub.len, plan);
        dcs_buf_free(&sub);
    }
    return rc;
}

static int st_send(cx *x, const dcs_step *st)
{
    dcs_buf plan;
    size_t pos = 0, k = 0;
    int rc;
    conn *c = x->cur;
    if (need_conn(x, st) != 0)
        return STEP_ERROR;
    dcs_buf_init(&plan, NULL);
    if ((rc = build_send(x, st, &plan)) != 0) {
        dcs_buf_free(&plan);
        return rc;
    }
    c->writing = 1;
    while (pos < plan.len && rc == 0) {
        size_t end = plan.len;
        if (st->chunk)
            end = pos + st->chunk < plan.len ? pos + st->chunk : plan.len;
        else if (k < st->n_split)
            end = st->split[k] < plan.len ? st->split[k] : plan.len;
        k++;
        if (end <= pos)
            end = plan.len;
        rc = cx_write(x, c, plan.data + pos, end - pos);
        if (rc == 1) { /* the IUT closed: what follows cannot be written */
            cx_note(x, c->n, "%zu bytes of the step were not written", plan.len - end);
            rc = 0;
            break;
        }
        pos = end;
        if (rc == 0 && pos < plan.len) {
            rc = cx_drain(x, c, 1000000);
            if (rc == 0 && st->pause_ms)
                rc = cx_sleep(x, conf_now_us() + cx_scaled(x, st->pause_ms));
        }
    }
    c->writing = 0;
    dcs_buf_free(&plan);
    return rc == 0 ? STEP_OK : rc;
}

static int st_stdin(cx *x, const dcs_step *st)
{
    size_t i;
    int64_t deadline = conf_now_us() + 10 * 1000000;
    if (!x->iut || x->iut->stdin_fd < 0)
        return cx_error(x, "line %d: the IUT's standard input is closed", st->line);
    for (i = 1; i <= st->repeat; i++) {
        dcs_buf line;
        const char *p = st->text, *m;
        size_t done = 0;
        char num[24];
        dcs_buf_init(&line, NULL);
        snprintf(num, sizeof num, "%zu", i);
        while ((m = strstr(p, "{I}")) != NULL) {
            dcs_buf_append(&line, p, (size_t)(m - p));
            dcs_buf_append(&line, num, strlen(num));
            p = m + 3;
        }
        if (dcs_buf_append(&line, p, strlen(p)) != 0 || dcs_buf_append(&line, "\n", 1) != 0) {
            dcs_buf_free(&line);
            return cx_error(x, "out of memory");
        }
        while (done < line.len) {
            ssize_t n = write(x->iut->stdin_fd, line.data + done, line.len - done);
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR) && conf_now_us() < deadline) {
                if (cx_pump(x, conf_now_us() + 1000, -1) < 0) {
                    dcs_buf_free(&line);
                    return STEP_ERROR;
                }
                continue;
            }
            dcs_buf_free(&line);
            return cx_fail(x, st, conf_now_us(), "the IUT reads its standard input", "writing failed: %s",
                           n < 0 ? strerror(errno) : "short write");
        }
        dcs_buf_free(&line);
    }
    cx_note(x, 0, "wrote %zu line(s) to the IUT's standard input", st->repeat);
    return STEP_OK;
}

/* ------------------------------------------------------------------------ */
/* expect-error: the IUT's log                                               */

static int log_has(const char *text, const char *reason, int64_t at)
{
    const char *p = text;
    while ((p = strstr(p, reason)) != NULL) {
        const char *eol = strchr(p, '\n'), *bol = p;
        char num[32];
        while (bol > text && bol[-1] != '\n')
            bol--;
        if (at < 0)
            return 1;
        snprintf(num, sizeof num, "%lld", (long long)at);
        {
            const char *q = bol;
            size_t nl = strlen(num);
            while ((q = strstr(q, num)) != NULL && (!eol || q < eol)) {
                int before = q == bol || !(q[-1] >= '0' && q[-1] <= '9');
                int after = !(q[nl] >= '0' && q[nl] <= '9');
                if (before && after)
                    return 1;
                q += nl;
            }
        }
        p += strlen(reason);
    }
    return 0;
}

static int st_expect_error(cx *x, const dcs_step *st, int64_t t0, long from)
{
    dcs_window dw = step_window(x, st);
    win w = window_at(x, dw, t0);
    char exp[256];
    if (!conf_feature_find(x->o, "error-log")) {
        snprintf(x->error, sizeof x->error, "expect-error needs the feature 'error-log', which the profile does not claim");
        return STEP_SKIP;
    }
    snprintf(exp, sizeof exp, "the IUT logs %s%s%lld", st->text, st->at_offset >= 0 ? " at " : "",
             (long long)(st->at_offset >= 0 ? st->at_offset : 0));
    if (st->at_offset < 0)
        exp[strlen(exp) - 1] = 0;
    for (;;) {
        FILE *f = x->iut ? fopen(x->iut->log_path, "rb") : NULL;
        if (f) {
            char *buf = malloc(1 << 20);
            size_t n = 0;
            if (buf) {
                fseek(f, from, SEEK_SET);
                n = fread(buf, 1, (1 << 20) - 1, f);
                buf[n] = 0;
                if (log_has(buf, st->text, st->at_offset)) {
                    free(buf);
                    fclose(f);
                    return STEP_OK;
                }
                free(buf);
            }
            fclose(f);
        }
        if (conf_now_us() > w.hi)
            return cx_fail(x, st, t0, exp, "no such line in the IUT's log within %.1f ms", ms_since(w.hi, t0));
        if (cx_pump(x, conf_now_us() + 10000, -1) < 0)
            return STEP_ERROR;
    }
}

/* ------------------------------------------------------------------------ */
/* ignore, keepalive, either                                                 */

static int st_ignore(cx *x, const dcs_step *st)
{
    size_t i, j;
    for (i = 0; i < st->n_names; i++) {
        for (j = 0; j < x->n_ignore && strcmp(x->ignore[j], st->names[i]) != 0; j++)
            ;
        if (st->kind == DCS_STEP_IGNORE && j == x->n_ignore) {
            if (x->n_ignore == CX_MAX_IGNORE)
                return cx_error(x, "line %d: more than %u ignored kinds", st->line, CX_MAX_IGNORE);
            snprintf(x->ignore[x->n_ignore++], sizeof x->ignore[0], "%s", st->names[i]);
        } else if (st->kind == DCS_STEP_UNIGNORE && j < x->n_ignore) {
            memmove(x->ignore[j], x->ignore[j + 1], (x->n_ignore - j - 1) * sizeof x->ignore[0]);
            x->n_ignore--;
        }
    }
    return STEP_OK;
}

typedef struct snapshot {
    conn *cur;
    size_t cursors[CX_MAX_CONNS];
    int taken[CX_MAX_CONNS];
    size_t n_conns;
    char ignore[CX_MAX_IGNORE][160];
    size_t n_ignore;
    int keepalive;
    int64_t t_ref;
} snapshot;

static void snap(cx *x, snapshot *s)
{
    size_t i;
    s->cur = x->cur;
    s->n_conns = x->n_conns;
    for (i = 0; i < x->n_conns; i++) {
        s->cursors[i] = x->conns[i]->cursor;
        s->taken[i] = x->conns[i]->taken;
    }
    memcpy(s->ignore, x->ignore, sizeof s->ignore);
    s->n_ignore = x->n_ignore;
    s->keepalive = x->keepalive;
    s->t_ref = x->t_ref;
}

static void restore(cx *x, const snapshot *s)
{
    size_t i;
    x->cur = s->cur;
    for (i = 0; i < x->n_conns; i++) {
        x->conns[i]->cursor = i < s->n_conns ? s->cursors[i] : 0;
        x->conns[i]->taken = i < s->n_conns ? s->taken[i] : 0;
    }
    memcpy(x->ignore, s->ignore, sizeof s->ignore);
    x->n_ignore = s->n_ignore;
    x->keepalive = s->keepalive;
    x->t_ref = s->t_ref;
}

static int st_either(cx *x, const dcs_step *st, int64_t t0)
{
    snapshot *s = malloc(sizeof *s);
    char all[4096];
    size_t i, used = 0;
    int rc = STEP_FAIL;
    if (!s)
        return cx_error(x, "out of memory");
    dcs_vars saved;
    snap(x, s);
    vars_copy(&saved, &x->vars);
    all[0] = 0;
    for (i = 0; i < st->n_alts; i++) {
        restore(x, s);
        dcs_vars_free(&x->vars);
        vars_copy(&x->vars, &saved);
        rc = cx_run_steps(x, &st->alts[i], t0);
        if (rc != STEP_FAIL)
            break;
        used += (size_t)snprintf(all + used, used < sizeof all ? sizeof all - used : 0,
                                 "%s(%zu) line %d: %s: %s", i ? "; " : "", i + 1, x->div.line, x->div.expected,
                                 x->div.actual);
        if (used >= sizeof all)
            used = sizeof all - 1;
    }
    free(s);
    dcs_vars_free(&saved);
    if (rc == STEP_FAIL) {
        char exp[64];
        snprintf(exp, sizeof exp, "one of %zu alternatives", st->n_alts);
        cx_fail(x, st, t0, exp, "none was met: %s", all);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The step loop                                                             */

static int run_step(cx *x, const dcs_step *st, int64_t t0)
{
    switch (st->kind) {
    case DCS_STEP_ACCEPT: return st_accept(x, st, t0, t0, "the IUT connects");
    case DCS_STEP_EXPECT_RECONNECT: return st_accept(x, st, t0, x->last_end ? x->last_end : t0, "the IUT connects again");
    case DCS_STEP_EXPECT_NO_CONNECT: return st_no_connect(x, st, t0);
    case DCS_STEP_CONNECT: return st_connect(x, st, t0);
    case DCS_STEP_CLOSE:
        if (need_conn(x, st) != 0)
            return STEP_ERROR;
        cx_conn_close(x, x->cur, "the harness closed the connection");
        return STEP_OK;
    case DCS_STEP_EXPECT_CLOSE: return st_expect_close(x, st, t0);
    case DCS_STEP_RESTART: case DCS_STEP_KILL: return st_restart(x, st);
    case DCS_STEP_SOCKET_REMOVE: case DCS_STEP_SOCKET_STALE: case DCS_STEP_SOCKET_LISTEN: return st_socket(x, st);
    case DCS_STEP_SEND: case DCS_STEP_SEND_RAW: return st_send(x, st);
    case DCS_STEP_IUT_STDIN: return st_stdin(x, st);
    case DCS_STEP_WAIT:
        if (cx_sleep(x, t0 + cx_scaled(x, st->duration_ms)) != 0)
            return STEP_ERROR;
        x->t_ref = t0 + cx_scaled(x, st->duration_ms);
        return STEP_OK;
    case DCS_STEP_EXPECT: case DCS_STEP_EXPECT_ANY: return st_expect(x, st, t0);
    case DCS_STEP_EXPECT_NONE: return st_expect_none(x, st, t0);
    case DCS_STEP_EXPECT_ERROR:
        /* from where the log stood before the previous step: the error was
         * caused by that step's bytes */
        return st_expect_error(x, st, t0, x->step_log_from);
    case DCS_STEP_IGNORE: case DCS_STEP_UNIGNORE: return st_ignore(x, st);
    case DCS_STEP_KEEPALIVE:
        x->keepalive = st->on;
        if (st->on && x->cur)
            x->cur->next_hb = conf_now_us() + x->hb_period;
        cx_note(x, 0, "keepalive %s", st->on ? "on" : "off");
        return STEP_OK;
    case DCS_STEP_EITHER: return st_either(x, st, t0);
    default: return cx_error(x, "line %d: unknown step", st->line);
    }
}

/* Steps after which the IUT's timers count from now. */
static int acts(int kind)
{
    switch (kind) {
    case DCS_STEP_CONNECT: case DCS_STEP_CLOSE: case DCS_STEP_RESTART: case DCS_STEP_KILL:
    case DCS_STEP_SOCKET_REMOVE: case DCS_STEP_SOCKET_STALE: case DCS_STEP_SOCKET_LISTEN:
    case DCS_STEP_SEND: case DCS_STEP_SEND_RAW: case DCS_STEP_IUT_STDIN:
        return 1;
    default:
        return 0;
    }
}

int cx_run_steps(cx *x, const dcs_step_list *l, int64_t t_first)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        const dcs_step *st = &l->steps[i];
        int64_t t0 = i == 0 && t_first ? t_first : conf_now_us();
        int rc;
        if (st->kind != DCS_STEP_EXPECT_ERROR) {
            struct stat stt;
            x->step_log_from = x->iut && stat(x->iut->log_path, &stt) == 0 ? (long)stt.st_size : 0;
        }
        if (cx_set_number_var(x, "NOW", conf_wall_ms()) != 0)
            return cx_error(x, "out of memory");
        if ((rc = run_step(x, st, t0)) != STEP_OK)
            return rc;
        if (acts(st->kind))
            x->t_ref = conf_now_us();
    }
    return STEP_OK;
}
