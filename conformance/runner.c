/* runner.c - one case against the IUT: its directory and socket, the
 * connections and what arrives on them, and the steps of
 * spec/TRANSCRIPTS.md 3 with their verdicts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "runner.h"
#include "runner_int.h"

const conf_feature *conf_feature_find(const conf_opts *o, const char *name)
{
    size_t i;
    for (i = 0; i < o->n_features; i++)
        if (strcmp(o->features[i].name, name) == 0)
            return &o->features[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Time and failures                                                         */

int64_t cx_scaled(const cx *x, int64_t ms)
{
    double us = (double)ms * 1000.0 * x->o->scale;
    return us > 9e15 ? (int64_t)9e15 : (int64_t)us;
}

static void set_text(char *dst, size_t n, const char *fmt, va_list ap)
{
    vsnprintf(dst, n, fmt, ap);
}

/* The step's line in the case source, for the report. */
static void step_text(cx *x, const dcs_step *st, char *out, size_t n)
{
    const char *p = x->r->source;
    int line = 1;
    size_t len;
    snprintf(out, n, "%s", dcs_step_name(st->kind));
    if (!p)
        return;
    while (*p && line < st->line) {
        if (*p++ == '\n')
            line++;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    {
        size_t o = 0;
        for (;;) {
            size_t l = strcspn(p, "\n");
            while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
                l--;
            int cont = l && p[l - 1] == '\\';
            if (cont)
                l--;
            len = l < n - 1 - o ? l : n - 1 - o;
            memcpy(out + o, p, len);
            o += len;
            p += strcspn(p, "\n");
            if (!cont || !*p || o + 1 >= n)
                break;
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (o + 1 < n)
                out[o++] = ' ';
        }
        while (o && out[o - 1] == ' ')
            o--;
        out[o] = 0;
    }
}

int cx_fail(cx *x, const dcs_step *st, int64_t t0, const char *expected, const char *fmt, ...)
{
    va_list ap;
    x->div.line = st ? st->line : 0;
    if (st)
        step_text(x, st, x->div.step, sizeof x->div.step);
    else
        x->div.step[0] = 0;
    snprintf(x->div.expected, sizeof x->div.expected, "%s", expected ? expected : "");
    va_start(ap, fmt);
    set_text(x->div.actual, sizeof x->div.actual, fmt, ap);
    va_end(ap);
    x->div.conn = x->cur ? x->cur->n : 0;
    x->div.has_offset = 0;
    x->div.elapsed_ms = (conf_now_us() - t0) / 1000;
    return STEP_FAIL;
}

int cx_error(cx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_text(x->error, sizeof x->error, fmt, ap);
    va_end(ap);
    return STEP_ERROR;
}

/* ------------------------------------------------------------------------ */
/* The wire log                                                              */

#define WIRE_MAX_EVENTS 100000u
#define WIRE_MAX_BYTES (16u * 1024u * 1024u)

void cx_wire(cx *x, int cn, int dir, uint64_t offset, const char *data, size_t len)
{
    dcs_case_result *r = x->r;
    dcs_wire_event *e;
    if (r->n_wire >= WIRE_MAX_EVENTS || x->wire_bytes + len > WIRE_MAX_BYTES) {
        r->wire_truncated = 1;
        return;
    }
    if (r->n_wire == x->wire_cap) {
        size_t cap = x->wire_cap ? x->wire_cap * 2 : 64;
        dcs_wire_event *w = realloc(r->wire, cap * sizeof *w);
        if (!w) {
            r->wire_truncated = 1;
            return;
        }
        r->wire = w;
        x->wire_cap = cap;
    }
    e = &r->wire[r->n_wire];
    memset(e, 0, sizeof *e);
    if (!(e->data = malloc(len + 1))) {
        r->wire_truncated = 1;
        return;
    }
    memcpy(e->data, data, len);
    e->data[len] = 0;
    e->len = len;
    e->t_us = conf_now_us() - x->t_case0;
    e->conn = cn;
    e->dir = dir;
    e->offset = offset;
    x->wire_bytes += len;
    r->n_wire++;
}

void cx_note(cx *x, int cn, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cx_wire(x, cn, DCS_WIRE_EVENT, 0, buf, strlen(buf));
    if (x->o->verbose)
        fprintf(stderr, "dcs-conform: %s: [%d] %s\n", x->c->id, cn, buf);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static int add_event(conn *c, const cev *e)
{
    if (c->n_evs == c->cap_evs) {
        size_t cap = c->cap_evs ? c->cap_evs * 2 : 32;
        cev *v = realloc(c->evs, cap * sizeof *v);
        if (!v)
            return -1;
        c->evs = v;
        c->cap_evs = cap;
    }
    c->evs[c->n_evs++] = *e;
    return 0;
}

static void copy_slice(char *dst, size_t n, dcs_slice s)
{
    size_t len = s.len < n - 1 ? s.len : n - 1;
    memcpy(dst, s.ptr ? s.ptr : "", len);
    dst[len] = 0;
}

static int is_register(const dcs_message *m)
{
    return m->type.len == 7 && memcmp(m->type.ptr, "command", 7) == 0 && m->key.len == 8 &&
           memcmp(m->key.ptr, "register", 8) == 0;
}

/* Feed bytes the IUT wrote on c into its decoder and log the events. */
static int conn_in(cx *x, conn *c, const char *data, size_t len, int at_end)
{
    dcs_message m;
    dcs_error er;
    int rc;
    cev e;
    int64_t now = conf_now_us();
    /* when each message began to arrive: now if it began in this chunk */
    int fresh = dcs_decoder_idle(c->dec);
    if (len && dcs_decoder_feed(c->dec, data, len) != 0)
        return cx_error(x, "decoder refused input");
    for (;;) {
        rc = len ? dcs_decoder_next(c->dec, &m, &er) : DCS_AGAIN;
        if (rc == DCS_AGAIN && at_end) {
            rc = dcs_decoder_finish(c->dec, &er);
            at_end = rc == DCS_ERROR;
            if (rc == DCS_AGAIN)
                break;
        }
        if (rc == DCS_AGAIN)
            break;
        memset(&e, 0, sizeof e);
        e.t = now;
        e.t_first = fresh ? now : c->msg_start_t;
        fresh = 1;
        if (rc == DCS_MESSAGE) {
            e.kind = EV_MSG;
            e.offset = m.offset;
            if (!(e.raw = malloc(m.raw.len + 1)))
                return cx_error(x, "out of memory");
            memcpy(e.raw, m.raw.ptr, m.raw.len);
            e.raw[m.raw.len] = 0;
            e.len = m.raw.len;
            copy_slice(e.type, sizeof e.type, m.type);
            copy_slice(e.key, sizeof e.key, m.key);
            if (is_register(&m) && !c->registered) {
                c->registered = 1;
                c->next_hb = now + x->hb_period;
            }
        } else {
            e.kind = EV_ERR;
            e.offset = er.offset;
            snprintf(e.reason, sizeof e.reason, "%s", dcs_err_name(er.code));
            snprintf(e.msg, sizeof e.msg, "%s", er.message);
            cx_note(x, c->n, "the IUT wrote bytes that are not a valid message: %s at offset %llu (%s)",
                    e.reason, (unsigned long long)er.offset, er.message);
        }
        if (add_event(c, &e) != 0) {
            free(e.raw);
            return cx_error(x, "out of memory");
        }
    }
    if (fresh && !dcs_decoder_idle(c->dec))
        c->msg_start_t = now;
    return 0;
}

static void conn_ended(cx *x, conn *c, const char *why)
{
    cev e;
    if (c->fd < 0)
        return;
    conn_in(x, c, NULL, 0, 1);
    memset(&e, 0, sizeof e);
    e.kind = EV_EOF;
    e.t = conf_now_us();
    e.t_first = e.t;
    /* A link that took a while to deliver the IUT's last message (a proxy
     * that slices writes, a loaded machine) may have held back the end of
     * stream behind it by as long: an IUT that wrote a close notice and
     * closed at once is seen closing only when the notice's last byte is
     * through. Lower bounds that count from the close (the reconnect delay
     * of spec 8.3) count from that much earlier. */
    if (c->n_evs && c->evs[c->n_evs - 1].kind != EV_EOF)
        e.t_first = e.t - (c->evs[c->n_evs - 1].t - c->evs[c->n_evs - 1].t_first);
    e.offset = c->in_off;
    add_event(c, &e);
    close(c->fd);
    c->fd = -1;
    c->t_end = e.t;
    if (c->taken)
        x->last_end = e.t;
    cx_note(x, c->n, "%s", why);
}

conn *cx_conn_new(cx *x, int fd)
{
    dcs_decoder_config cfg;
    conn *c;
    int err;
    if (x->n_conns == CX_MAX_CONNS || !(c = calloc(1, sizeof *c))) {
        close(fd);
        return NULL;
    }
    dcs_decoder_config_init(&cfg);
    if (!(c->dec = dcs_decoder_new(&cfg, &err)) || !(c->odec = dcs_decoder_new(&cfg, &err))) {
        dcs_decoder_free(c->dec);
        free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->n = (int)x->n_conns + 1;
    c->t_open = conf_now_us();
    x->conns[x->n_conns++] = c;
    return c;
}

static void conn_free(conn *c)
{
    size_t i;
    if (c->fd >= 0)
        close(c->fd);
    for (i = 0; i < c->n_evs; i++)
        free(c->evs[i].raw);
    free(c->evs);
    dcs_decoder_free(c->dec);
    dcs_decoder_free(c->odec);
    free(c);
}

void cx_conn_close(cx *x, conn *c, const char *why)
{
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    c->t_end = conf_now_us();
    if (c->taken)
        x->last_end = c->t_end;
    cx_note(x, c->n, "%s", why);
}

static void accept_all(cx *x)
{
    for (;;) {
        int fd = accept4(x->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        conn *c;
        if (fd < 0)
            return;
        if ((c = cx_conn_new(x, fd)) != NULL)
            cx_note(x, c->n, "the IUT connected (connection %d)", c->n);
    }
}

static int conn_read(cx *x, conn *c)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            cx_wire(x, c->n, DCS_WIRE_IN, c->in_off, buf, (size_t)n);
            c->in_off += (uint64_t)n;
            if (conn_in(x, c, buf, (size_t)n, 0) != 0)
                return -1;
            continue;
        }
        if (n == 0) {
            conn_ended(x, c, "the IUT closed the connection");
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        {
            char why[128];
            snprintf(why, sizeof why, "the connection failed: %s", strerror(errno));
            conn_ended(x, c, why);
        }
        return 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void log_out(cx *x, conn *c, const char *data, size_t len)
{
    dcs_message m;
    dcs_error er;
    cx_wire(x, c->n, DCS_WIRE_OUT, c->out_off, data, len);
    c->out_off += len;
    if (dcs_decoder_feed(c->odec, data, len) != 0)
        return;
    for (;;) {
        int rc = dcs_decoder_next(c->odec, &m, &er);
        if (rc == DCS_AGAIN)
            break;
        if (rc == DCS_MESSAGE && is_register(&m) && !c->registered) {
            c->registered = 1;
            c->next_hb = conf_now_us() + x->hb_period;
        }
    }
}

/* Write all of data on c, reading meanwhile. Returns 0, 1 when the IUT
 * closed the connection (logged, not a failure in itself), or STEP_ERROR. */
int cx_write(cx *x, conn *c, const char *data, size_t len)
{
    int64_t deadline = conf_now_us() + 10 * 1000000 + cx_scaled(x, 10000);
    size_t done = 0;
    while (done < len) {
        ssize_t n;
        if (c->fd < 0)
            return 1;
        n = send(c->fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            log_out(x, c, data + done, (size_t)n);
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (conf_now_us() >= deadline)
                return cx_error(x, "the IUT has not read for 10 s: cannot write");
            if (cx_pump(x, conf_now_us() + 1000000, c->fd) < 0)
                return STEP_ERROR;
            continue;
        }
        {
            char why[160];
            snprintf(why, sizeof why, "writing failed after %zu of %zu bytes: %s (the IUT closed the connection)",
                     done, len, strerror(errno));
            cx_note(x, c->n, "%s", why);
            /* what the IUT wrote before it closed (a close notice) is still
             * to be read */
            if (conn_read(x, c) < 0)
                return STEP_ERROR;
            conn_ended(x, c, "the connection ended");
        }
        return 1;
    }
    return 0;
}

/* Wait until the IUT has read everything written on c (so that the next
 * write arrives as a read of its own), at most limit_us. */
int cx_drain(cx *x, conn *c, int64_t limit_us)
{
    int64_t deadline = conf_now_us() + limit_us;
    for (;;) {
        int q = 0;
        if (c->fd < 0 || ioctl(c->fd, SIOCOUTQ, &q) != 0 || q <= 0)
            return 0;
        if (conf_now_us() >= deadline)
            return 0;
        if (cx_pump(x, conf_now_us() + 200, -1) < 0)
            return STEP_ERROR;
    }
}

static int write_heartbeat(cx *x, conn *c)
{
    dcs_buf b;
    char num[32];
    int64_t now = conf_wall_ms();
    int rc = 0;
    dcs_buf_init(&b, NULL);
    snprintf(num, sizeof num, "%lld", (long long)now);
    if (dcs_buf_append(&b, "{\"origin\":", 10) != 0 || dcs_encode_string(&b, x->peer_id, strlen(x->peer_id)) != 0 ||
        dcs_buf_append(&b, ",\"destination\":", 15) != 0 ||
        dcs_encode_string(&b, x->iut_id, strlen(x->iut_id)) != 0 ||
        dcs_buf_append(&b, ",\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":", 61) != 0 ||
        dcs_buf_append(&b, num, strlen(num)) != 0 || dcs_buf_append(&b, "},\"timestamp\":", 14) != 0 ||
        dcs_buf_append(&b, num, strlen(num)) != 0 || dcs_buf_append(&b, "}", 1) != 0)
        rc = cx_error(x, "out of memory");
    else
        rc = cx_write(x, c, b.data, b.len);
    dcs_buf_free(&b);
    return rc == STEP_ERROR ? rc : 0;
}

/* ------------------------------------------------------------------------ */
/* The pump: everything that happens while the harness waits                */

/* When the keepalive heartbeat is due on the current connection: never in
 * the middle of a message the harness is writing (a step's chunked or
 * blocked write), only between messages. */
static int64_t next_keepalive(cx *x)
{
    conn *c = x->cur;
    if (!x->keepalive || !c || c->fd < 0 || !c->registered || c->writing || !dcs_decoder_idle(c->odec))
        return INT64_MAX;
    return c->next_hb;
}

/* Pump until the time until has come. */
int cx_sleep(cx *x, int64_t until)
{
    while (conf_now_us() < until)
        if (cx_pump(x, until, -1) < 0)
            return STEP_ERROR;
    return 0;
}

int cx_pump(cx *x, int64_t until, int wfd)
{
    struct pollfd p[CX_MAX_CONNS + 2];
    conn *who[CX_MAX_CONNS + 2];
    size_t n = 0, i;
    int64_t now = conf_now_us(), wake = until, ka = next_keepalive(x);
    struct timespec ts;
    int rc, wrote = 0;
    if (ka <= now) {
        x->cur->next_hb = now + x->hb_period;
        if (write_heartbeat(x, x->cur) != 0)
            return -1;
        now = conf_now_us();
        ka = next_keepalive(x);
    }
    if (ka < wake)
        wake = ka;
    if (x->lfd >= 0) {
        p[n].fd = x->lfd;
        p[n].events = POLLIN;
        who[n++] = NULL;
    }
    for (i = 0; i < x->n_conns; i++)
        if (x->conns[i]->fd >= 0) {
            p[n].fd = x->conns[i]->fd;
            p[n].events = (short)(POLLIN | (x->conns[i]->fd == wfd ? POLLOUT : 0));
            who[n++] = x->conns[i];
        }
    if (x->iut && x->iut->pid > 0 && !x->iut->exited && wake > now + 20000)
        wake = now + 20000; /* look after the process now and then */
    if (wake < now)
        wake = now;
    ts.tv_sec = (time_t)((wake - now) / 1000000);
    ts.tv_nsec = (long)((wake - now) % 1000000) * 1000;
    rc = ppoll(p, n, &ts, NULL);
    if (rc < 0 && errno != EINTR)
        return cx_error(x, "poll: %s", strerror(errno));
    for (i = 0; rc > 0 && i < n; i++) {
        if (!p[i].revents)
            continue;
        if (!who[i])
            accept_all(x);
        else if (who[i]->fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                 conn_read(x, who[i]) < 0)
            return -1;
        if (who[i] && (p[i].revents & POLLOUT))
            wrote = 1;
    }
    (void)wrote;
    if (x->iut && x->iut->pid > 0 && !x->iut->exited && conf_iut_check(x->iut)) {
        char d[128];
        conf_iut_describe(x->iut, d, sizeof d);
        cx_note(x, 0, "the IUT %s", d);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

int cx_listen(cx *x)
{
    char why[400];
    if (cx_listen_plain(x, why, sizeof why) != 0)
        return cx_error(x, "%s", why);
    cx_note(x, 0, "listening on the socket");
    return 0;
}

void cx_unlisten(cx *x)
{
    if (x->lfd >= 0) {
        accept_all(x);
        close(x->lfd);
    }
    x->lfd = -1;
}

/* One connect attempt: the fd, or -1 with errno. */
int cx_connect_once(const char *path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Variables                                                                 */

static int set_string_var(cx *x, const char *name, const char *s)
{
    dcs_buf b;
    int rc;
    dcs_buf_init(&b, NULL);
    rc = dcs_encode_string(&b, s, strlen(s));
    if (rc == 0)
        rc = dcs_vars_set(&x->vars, name, b.data, b.len);
    dcs_buf_free(&b);
    return rc;
}

int cx_set_number_var(cx *x, const char *name, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    return dcs_vars_set(&x->vars, name, num, strlen(num));
}

/* $HMAC: hex(HMAC-SHA256(secret, nonce || client id)), spec 10.3.3. */
int cx_compute_hmac(cx *x)
{
    const dcs_var *nv = dcs_vars_get(&x->vars, "NONCE", 5);
    const char *client = x->o->role == DCS_ROLE_CLIENT ? x->iut_id : x->peer_id;
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[2 * sizeof mac + 3];
    dcs_buf nonce;
    int rc;
    if (!x->o->secret)
        return cx_error(x, "$HMAC needs a shared secret (--profile with feature hmac)");
    if (!nv || nv->value_len < 2 || nv->value[0] != '"')
        return cx_error(x, "$HMAC needs $NONCE to hold a string");
    dcs_buf_init(&nonce, NULL);
    if ((rc = dcs_unescape(&nonce, nv->value + 1, nv->value_len - 2)) != 0) {
        dcs_buf_free(&nonce);
        return cx_error(x, "$NONCE is not a valid string");
    }
    crypto_auth_hmacsha256_init(&st, x->o->secret, x->o->secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)(nonce.data ? nonce.data : ""), nonce.len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)client, strlen(client));
    crypto_auth_hmacsha256_final(&st, mac);
    dcs_buf_free(&nonce);
    hex[0] = '"';
    sodium_bin2hex(hex + 1, sizeof hex - 2, mac, sizeof mac);
    strcat(hex, "\"");
    return dcs_vars_set(&x->vars, "HMAC", hex, strlen(hex)) == 0 ? 0 : cx_error(x, "out of memory");
}

static const dcs_var *lookup(cx *x, const char *name, size_t len)
{
    if (len == 4 && memcmp(name, "HMAC", 4) == 0 && cx_compute_hmac(x) != 0)
        return NULL;
    return dcs_vars_get(&x->vars, name, len);
}

static int name_char(char ch, int first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (!first && ch >= '0' && ch <= '9');
}

/* Substitute $NAME (outside strings) and ${NAME} (inside strings). */
int cx_subst(cx *x, const char *s, size_t len, dcs_buf *out)
{
    size_t i = 0;
    int in_str = 0;
    while (i < len) {
        char ch = s[i];
        if (in_str && ch == '\\' && i + 1 < len) {
            if (dcs_buf_append(out, s + i, 2) != 0)
                return cx_error(x, "out of memory");
            i += 2;
            continue;
        }
        if (ch == '"')
            in_str = !in_str;
        if (ch == '$' && !in_str && i + 1 < len && name_char(s[i + 1], 1)) {
            size_t j = i + 1;
            const dcs_var *v;
            while (j < len && name_char(s[j], 0))
                j++;
            if (!(v = lookup(x, s + i + 1, j - i - 1)))
                return x->error[0] ? STEP_ERROR
                                   : cx_error(x, "the variable $%.*s has no value", (int)(j - i - 1), s + i + 1);
            if (dcs_buf_append(out, v->value, v->value_len) != 0)
                return cx_error(x, "out of memory");
            i = j;
            continue;
        }
        if (ch == '$' && in_str && i + 2 < len && s[i + 1] == '{') {
            const char *close = memchr(s + i + 2, '}', len - i - 2);
            const dcs_var *v;
            if (close) {
                size_t nl = (size_t)(close - (s + i + 2));
                if (!(v = lookup(x, s + i + 2, nl)))
                    return x->error[0] ? STEP_ERROR : cx_error(x, "the variable ${%.*s} has no value", (int)nl, s + i + 2);
                if (v->value_len >= 2 && v->value[0] == '"') {
                    if (dcs_buf_append(out, v->value + 1, v->value_len - 2) != 0)
                        return cx_error(x, "out of memory");
                } else if (dcs_buf_append(out, v->value, v->value_len) != 0)
                    return cx_error(x, "out of memory");
                i = (size_t)(close - s) + 1;
                continue;
            }
        }
        if (dcs_buf_append(out, &ch, 1) != 0)
            return cx_error(x, "out of memory");
        i++;
    }
    return 0;
}

/* Complete an envelope (spec/TRANSCRIPTS.md 4.1). */
int cx_complete(cx *x, const char *s, size_t len, dcs_buf *out)
{
    dcs_slice v;
    dcs_error er;
    const char *p = s, *e = s + len, *body, *last;
    int has_o, has_d, has_t, empty;
    char num[32];
    if (dcs_json_validate(s, len, 64, &er) != 0 || (p = dcs__skip_ws(s, e), *p != '{'))
        return cx_error(x, "send: the message is not one JSON object after substitution (%s)",
                        dcs_err_name(er.code));
    has_o = dcs_json_member(s, len, "origin", &v) == 1;
    has_d = dcs_json_member(s, len, "destination", &v) == 1;
    has_t = dcs_json_member(s, len, "timestamp", &v) == 1;
    body = dcs__skip_ws(p + 1, e);
    empty = *body == '}';
    last = e;
    while (last > s && last[-1] != '}')
        last--;
    last--; /* the closing brace */
    if (dcs_buf_append(out, "{", 1) != 0)
        return cx_error(x, "out of memory");
    if (!has_o && (dcs_buf_append(out, "\"origin\":", 9) != 0 ||
                   dcs_encode_string(out, x->peer_id, strlen(x->peer_id)) != 0 ||
                   dcs_buf_append(out, ",", 1) != 0))
        return cx_error(x, "out of memory");
    if (!has_d && (dcs_buf_append(out, "\"destination\":", 14) != 0 ||
                   dcs_encode_string(out, x->iut_id, strlen(x->iut_id)) != 0 ||
                   dcs_buf_append(out, ",", 1) != 0))
        return cx_error(x, "out of memory");
    if (empty && (!has_o || !has_d))
        out->len--; /* the comma before nothing */
    if (dcs_buf_append(out, body, (size_t)(last - body)) != 0)
        return cx_error(x, "out of memory");
    if (!has_t) {
        snprintf(num, sizeof num, "%lld", (long long)conf_wall_ms());
        if (!(empty && has_o && has_d) && dcs_buf_append(out, ",", 1) != 0)
            return cx_error(x, "out of memory");
        if (dcs_buf_append(out, "\"timestamp\":", 12) != 0 || dcs_buf_append(out, num, strlen(num)) != 0)
            return cx_error(x, "out of memory");
    }
    return dcs_buf_append(out, "}", 1) == 0 ? 0 : cx_error(x, "out of memory");
}

/* ------------------------------------------------------------------------ */
/* The case                                                                  */

struct conf_shared {
    conf_iut iut;
    int has_iut;
    char dir[256];
    int own_dir;
    char sock[300];
    int lfd;
};

static int make_dir(const conf_opts *o, char *dir, size_t n)
{
    const char *base = o->workdir ? o->workdir : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(dir, n, "%s/dcs-conform.XXXXXX", base);
    return mkdtemp(dir) ? 0 : -1;
}

/* Remove the case's directory and every file in it (the IUT or a wrapper
 * may have made more than the socket and the log). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

conf_shared *conf_shared_new(const conf_opts *o, char *why, size_t whylen)
{
    conf_shared *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->lfd = -1;
    conf_iut_init(&s->iut);
    if (o->socket) {
        snprintf(s->sock, sizeof s->sock, "%s", o->socket);
        if (!o->attach) {
            if (make_dir(o, s->dir, sizeof s->dir) != 0) {
                snprintf(why, whylen, "cannot create a directory: %s", strerror(errno));
                free(s);
                return NULL;
            }
            s->own_dir = 1;
        }
    } else {
        if (make_dir(o, s->dir, sizeof s->dir) != 0) {
            snprintf(why, whylen, "cannot create a directory: %s", strerror(errno));
            free(s);
            return NULL;
        }
        s->own_dir = 1;
        snprintf(s->sock, sizeof s->sock, "%s/s.sock", s->dir);
    }
    if (s->own_dir)
        snprintf(s->iut.log_path, sizeof s->iut.log_path, "%s/iut.log", s->dir);
    if (o->role == DCS_ROLE_CLIENT) {
        cx tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.o = o;
        tmp.lfd = -1;
        snprintf(tmp.sock, sizeof tmp.sock, "%s", s->sock);
        tmp.r = NULL;
        if (cx_listen_plain(&tmp, why, whylen) != 0) {
            conf_shared_free(s, o);
            return NULL;
        }
        s->lfd = tmp.lfd;
    }
    if (!o->attach) {
        if (conf_iut_start(&s->iut, o, s->sock, NULL, 0, why, whylen) != 0) {
            conf_shared_free(s, o);
            return NULL;
        }
        s->has_iut = 1;
    }
    return s;
}

void conf_shared_free(conf_shared *s, const conf_opts *o)
{
    if (!s)
        return;
    if (s->has_iut)
        conf_iut_stop(&s->iut, 2000000 + (int64_t)(2000.0 * 1000.0 * o->scale));
    if (s->lfd >= 0) {
        close(s->lfd);
        unlink(s->sock);
    }
    if (s->own_dir && !o->keep)
        remove_dir(s->dir);
    free(s);
}

/* A listener without the case's logging (for the shared socket). */
int cx_listen_plain(cx *x, char *why, size_t whylen)
{
    struct sockaddr_un a;
    int fd;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(x->sock) >= sizeof a.sun_path) {
        snprintf(why, whylen, "socket path too long: %s", x->sock);
        return -1;
    }
    strcpy(a.sun_path, x->sock);
    unlink(x->sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", x->sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    chmod(x->sock, 0600);
    x->lfd = fd;
    return 0;
}

/* Why the case cannot run here, or NULL. */
static const char *precheck(cx *x, const dcs_step_list *l, char *buf, size_t n)
{
    size_t i, j;
    for (i = 0; i < l->n; i++) {
        const dcs_step *st = &l->steps[i];
        if ((st->kind == DCS_STEP_RESTART || st->kind == DCS_STEP_KILL) && x->o->attach) {
            snprintf(buf, n, "line %d: %s needs to start the IUT, which --attach does not allow", st->line,
                     dcs_step_name(st->kind));
            return buf;
        }
        if (st->kind == DCS_STEP_IUT_STDIN && x->o->attach) {
            snprintf(buf, n, "line %d: iut-stdin needs the IUT's standard input (not with --attach)", st->line);
            return buf;
        }
        if ((st->kind == DCS_STEP_SOCKET_REMOVE || st->kind == DCS_STEP_SOCKET_STALE) && x->o->attach) {
            snprintf(buf, n, "line %d: socket steps need a socket the harness owns", st->line);
            return buf;
        }
        if (st->has_window && st->window.lo_ms > 0 && cx_scaled(x, st->window.lo_ms) < 2 * x->o->tol_us) {
            snprintf(buf, n,
                     "timing not honourable at this time scale: line %d has a lower bound of %lld ms, "
                     "%.3f ms after scaling, under twice the tolerance of %.3f ms",
                     st->line, (long long)st->window.lo_ms, (double)cx_scaled(x, st->window.lo_ms) / 1000.0,
                     (double)x->o->tol_us / 1000.0);
            return buf;
        }
        for (j = 0; j < st->n_alts; j++) {
            const char *why = precheck(x, &st->alts[j], buf, n);
            if (why)
                return why;
        }
    }
    return NULL;
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void fill_identity(const dcs_case *c, dcs_case_result *r)
{
    size_t i, k = 0;
    const char *dash = strchr(c->id, '-');
    r->id = dupstr(c->id);
    r->title = dupstr(c->title);
    r->role = c->role;
    r->level = c->level;
    r->cites = calloc(c->n_cites + 1, sizeof *r->cites);
    if (r->cites) {
        /* the id's own section first; the sanity cases' "0" is none */
        if (dash && dash != c->id && !(dash - c->id == 1 && c->id[0] == '0'))
            r->cites[k++] = strndup(c->id, (size_t)(dash - c->id));
        for (i = 0; i < c->n_cites; i++)
            if (!(k > 0 && strcmp(r->cites[0], c->cites[i]) == 0))
                r->cites[k++] = dupstr(c->cites[i]);
        r->n_cites = k;
    }
}

static void set_reason(dcs_case_result *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(r->reason);
    r->reason = strdup(buf);
}

static void read_log_tail(cx *x)
{
    FILE *f;
    long size;
    size_t n;
    char *buf;
    const size_t cap = 16384;
    if (!x->iut || !x->iut->log_path[0] || !(f = fopen(x->iut->log_path, "rb")))
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (size > x->log_start)
        fseek(f, size - x->log_start > (long)cap ? size - (long)cap : x->log_start, SEEK_SET);
    else
        fseek(f, size, SEEK_SET);
    if ((buf = malloc(cap + 1)) != NULL) {
        n = fread(buf, 1, cap, f);
        buf[n] = 0;
        if (n)
            x->r->iut_log = buf;
        else
            free(buf);
    }
    fclose(f);
}

static int start_iut(cx *x)
{
    char why[512];
    if (conf_iut_start(x->iut, x->o, x->sock, x->extra, x->n_extra, why, sizeof why) != 0)
        return cx_error(x, "%s", why);
    x->startup_until = conf_now_us() + x->o->startup_us;
    cx_note(x, 0, "started the IUT (pid %ld)", (long)x->iut->pid);
    return 0;
}

/* Expand the profile's arguments of the features the case requires. */
static void feature_args(cx *x)
{
    size_t i, j;
    for (i = 0; i < x->c->n_requires; i++) {
        const conf_feature *f = conf_feature_find(x->o, x->c->requires[i]);
        for (j = 0; f && j < f->n_args && x->n_extra < CX_MAX_EXTRA; j++) {
            const char *a = f->args[j], *m = strstr(a, "{secret}");
            if (m && x->o->secret_path) {
                char *s = NULL;
                if (asprintf(&s, "%.*s%s%s", (int)(m - a), a, x->o->secret_path, m + 8) < 0)
                    s = NULL;
                x->extra[x->n_extra] = s;
            } else
                x->extra[x->n_extra] = strdup(a);
            if (x->extra[x->n_extra])
                x->n_extra++;
        }
    }
}

static int needs_feature_args(const cx *x)
{
    size_t i;
    for (i = 0; i < x->c->n_requires; i++) {
        const conf_feature *f = conf_feature_find(x->o, x->c->requires[i]);
        if (f && f->n_args)
            return 1;
    }
    return 0;
}

static int setup(cx *x, conf_shared *sh)
{
    if (sh) {
        snprintf(x->sock, sizeof x->sock, "%s", sh->sock);
        x->lfd = sh->lfd;
        x->lfd_shared = 1;
        if (sh->has_iut) {
            x->iut = &sh->iut;
            if (conf_now_us() < x->iut->started_us + x->o->startup_us)
                x->startup_until = x->iut->started_us + x->o->startup_us;
            if (conf_iut_check(x->iut)) {
                char why[512];
                cx_note(x, 0, "the shared IUT had ended; starting it again");
                if (conf_iut_start(x->iut, x->o, x->sock, NULL, 0, why, sizeof why) != 0)
                    return cx_error(x, "%s", why);
                x->startup_until = conf_now_us() + x->o->startup_us;
            }
        }
        if (x->iut && x->iut->log_path[0]) {
            struct stat stt;
            x->log_start = stat(x->iut->log_path, &stt) == 0 ? (long)stt.st_size : 0;
        }
        return 0;
    }
    if (make_dir(x->o, x->dir, sizeof x->dir) != 0)
        return cx_error(x, "cannot create a directory for the case: %s", strerror(errno));
    if (x->o->socket)
        snprintf(x->sock, sizeof x->sock, "%s", x->o->socket);
    else
        snprintf(x->sock, sizeof x->sock, "%s/s.sock", x->dir);
    conf_iut_init(&x->own_iut);
    snprintf(x->own_iut.log_path, sizeof x->own_iut.log_path, "%s/iut.log", x->dir);
    x->iut = &x->own_iut;
    feature_args(x);
    if (x->o->role == DCS_ROLE_CLIENT && cx_listen(x) != 0)
        return STEP_ERROR;
    return start_iut(x);
}

static void teardown(cx *x, int *verdict_fail)
{
    size_t i;
    char d[160];
    for (i = 0; i < x->n_conns; i++)
        cx_conn_close(x, x->conns[i], "the harness closed the connection at the end of the case");
    if (x->iut == &x->own_iut && x->iut->pid > 0) {
        int ended_before = conf_iut_check(x->iut) && !x->iut->stopping;
        conf_iut_stop(x->iut, 1000000 + cx_scaled(x, 2000) + x->o->slack_us);
        conf_iut_describe(x->iut, d, sizeof d);
        cx_note(x, 0, "the IUT %s", d);
        if ((ended_before && !x->killed) || conf_iut_crashed(x->iut))
            *verdict_fail = 1;
    } else if (x->iut && x->iut->pid > 0) {
        int ended = conf_iut_check(x->iut) && !x->iut->stopping && !x->killed;
        if (ended || conf_iut_crashed(x->iut))
            *verdict_fail = 1;
    }
    read_log_tail(x);
    if (x->o->role == DCS_ROLE_CLIENT && !x->lfd_shared) {
        if (x->lfd >= 0)
            close(x->lfd);
        x->lfd = -1;
        if (x->o->socket)
            unlink(x->sock);
    }
    if (x->dir[0] && !x->o->keep)
        remove_dir(x->dir);
    for (i = 0; i < x->n_conns; i++)
        conn_free(x->conns[i]);
    x->n_conns = 0;
    for (i = 0; i < x->n_extra; i++)
        free(x->extra[i]);
}

static void set_divergence(cx *x)
{
    dcs_divergence *d = &x->r->div;
    x->r->has_divergence = 1;
    d->line = x->div.line;
    d->step = strdup(x->div.step);
    d->expected = strdup(x->div.expected);
    d->actual = strdup(x->div.actual);
    d->conn = x->div.conn;
    d->offset = x->div.offset;
    d->has_offset = x->div.has_offset;
    d->elapsed_ms = x->div.elapsed_ms;
}

/* The options for case c: a case that needs a coarser time scale than the
 * run's (min-time-scale) runs at that scale when the harness starts the IUT
 * itself with DCS_TIME_SCALE; otherwise why says why it cannot run. */
static int case_opts(const dcs_case *c, const conf_opts *o, int shared, conf_opts *out, char *why, size_t n)
{
    *out = *o;
    if (!(c->min_time_scale > 0) || o->scale >= c->min_time_scale)
        return 0;
    if (o->time_mode != CONF_TIME_SCALE || shared) {
        snprintf(why, n,
                 "timing not honourable: the case needs a time scale of at least %g (its outcome depends on "
                 "the IUT's speed below that), and this run cannot change the IUT's scale (%s)",
                 c->min_time_scale, shared ? "one IUT for every case" : "--faketime");
        return -1;
    }
    out->scale = c->min_time_scale;
    return 0;
}

void conf_run_case(const dcs_case *c, const conf_opts *o_run, conf_shared *shared, dcs_case_result *r)
{
    cx *x = calloc(1, sizeof *x);
    conf_opts ob, *o = &ob;
    char why[512];
    const char *skip;
    size_t i;
    int rc = 0, crashed = 0;
    fill_identity(c, r);
    r->started_unix_ms = conf_wall_ms();
    if (!x) {
        r->verdict = DCS_V_ERROR;
        set_reason(r, "out of memory");
        return;
    }
    if (case_opts(c, o_run, shared != NULL, &ob, why, sizeof why) != 0) {
        r->verdict = DCS_V_SKIP;
        set_reason(r, "%s", why);
        free(x);
        return;
    }
    x->o = o;
    x->c = c;
    x->r = r;
    x->lfd = -1;
    x->keepalive = 1;
    x->t_case0 = conf_now_us();
    x->iut_id = o->iut_id ? o->iut_id : o->role == DCS_ROLE_CLIENT ? "web-server" : "external-crawler";
    x->peer_id = o->peer_id ? o->peer_id : o->role == DCS_ROLE_CLIENT ? "external-crawler" : "web-server";
    x->hb_period = cx_scaled(x, o->role == DCS_ROLE_CLIENT ? 5000 : 10000);
    if (x->hb_period < 1000)
        x->hb_period = 1000;
    snprintf(x->ignore[0], sizeof x->ignore[0], "heartbeat");
    x->n_ignore = 1;
    dcs_vars_init(&x->vars, NULL);
    for (i = 0; i < c->n_requires; i++)
        if (!conf_feature_find(o, c->requires[i])) {
            r->verdict = DCS_V_SKIP;
            set_reason(r, "requires the feature '%s', which the profile does not claim", c->requires[i]);
            goto out;
        }
    for (i = 0; i < c->n_tags; i++) {
        size_t j;
        for (j = 0; j < o->n_skip_tags; j++)
            if (strcmp(c->tags[i], o->skip_tags[j]) == 0) {
                r->verdict = DCS_V_SKIP;
                set_reason(r, "tagged '%s', which this run skips (--skip-tag)", c->tags[i]);
                goto out;
            }
    }
    if (c->role != o->role) {
        r->verdict = DCS_V_SKIP;
        set_reason(r, "a case for the %s role", c->role == DCS_ROLE_CLIENT ? "client" : "server");
        goto out;
    }
    if ((skip = precheck(x, &c->steps, why, sizeof why)) != NULL) {
        r->verdict = DCS_V_SKIP;
        set_reason(r, "%s", skip);
        goto out;
    }
    if (shared && needs_feature_args(x)) {
        r->verdict = DCS_V_SKIP;
        set_reason(r, "the case needs the IUT started with its feature's arguments (not with --reuse or --attach)");
        goto out;
    }
    if (set_string_var(x, "IUT_ID", x->iut_id) != 0 || set_string_var(x, "PEER_ID", x->peer_id) != 0) {
        r->verdict = DCS_V_ERROR;
        set_reason(r, "out of memory");
        goto out;
    }
    for (i = 0; i < c->n_vars; i++) {
        const char *v = c->vars[i].value;
        dcs_error er;
        int vr = dcs_json_validate(v, strlen(v), 64, &er) == 0 ? dcs_vars_set(&x->vars, c->vars[i].name, v, strlen(v))
                                                               : set_string_var(x, c->vars[i].name, v);
        if (vr != 0) {
            r->verdict = DCS_V_ERROR;
            set_reason(r, "var %s: cannot set", c->vars[i].name);
            goto out;
        }
    }
    rc = setup(x, shared);
    if (rc == 0)
        rc = cx_run_steps(x, &c->steps, 0);
    teardown(x, &crashed);
    if (rc == STEP_ERROR) {
        r->verdict = DCS_V_ERROR;
        set_reason(r, "%s", x->error);
    } else if (rc == STEP_FAIL || crashed) {
        if (rc != STEP_FAIL) {
            char d[160];
            conf_iut_describe(x->iut, d, sizeof d);
            x->div.line = 0;
            snprintf(x->div.step, sizeof x->div.step, "(the whole case)");
            snprintf(x->div.expected, sizeof x->div.expected, "the IUT keeps running until the harness stops it");
            snprintf(x->div.actual, sizeof x->div.actual, "the IUT %s", d);
        }
        set_divergence(x);
        r->verdict = crashed ? DCS_V_FAIL : c->level == DCS_LEVEL_SHOULD ? DCS_V_NONSTRICT : c->level == DCS_LEVEL_INFO ? DCS_V_INFO : DCS_V_FAIL;
        if (x->div.line)
            set_reason(r, "line %d: %s: %s", x->div.line, x->div.step, x->div.actual);
        else
            set_reason(r, "%s", x->div.actual);
    } else if (rc == STEP_SKIP) {
        r->verdict = DCS_V_SKIP;
        set_reason(r, "%s", x->error);
    } else {
        r->verdict = c->level == DCS_LEVEL_INFO ? DCS_V_INFO : DCS_V_PASS;
        if (c->level == DCS_LEVEL_INFO)
            set_reason(r, "every step was met");
    }
out:
    r->duration_us = conf_now_us() - x->t_case0;
    dcs_vars_free(&x->vars);
    free(x);
}
