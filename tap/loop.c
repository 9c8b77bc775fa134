/* loop.c - the program around the directions: the listening socket (mode
 * 0600; a live listener is refused, a stale socket file replaced), with
 * --mirror-upstream kept in the state of the upstream's socket file, the
 * connection to the upstream for every accepted client, one ppoll() loop
 * over every socket and every timer (delay, stall, the slice pieces, the
 * mirror's checks), the signals, the end of connections, and the
 * statistics. */
#define _GNU_SOURCE /* ppoll, accept4 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dcs_config.h"
#include "tap.h"

#define TAP_CONNECT_TIMEOUT_S 1    /* connecting to the upstream */
#define TAP_LISTEN_PAUSE_US 100000 /* after accept failed for want of descriptors */

/* --mirror-upstream: the upstream is looked at every TAP_MIRROR_PERIOD_US:
 * a stat() and, while its file exists, a read of /proc/net/unix. Measured
 * on a 2-CPU Linux 6.18 VM: the wake-up itself about 23 us of CPU, the
 * read about 15 us with a handful of sockets in the system plus 0.3 us
 * per socket (320 us with 1000). With few sockets that is about 2.5 % of
 * a CPU while the upstream is missing and 4 % while its file exists. When
 * a read costs more than TAP_MIRROR_PERIOD_US / TAP_MIRROR_SHARE of CPU
 * time, the interval grows to TAP_MIRROR_SHARE times that cost (the reads
 * stay below 1/TAP_MIRROR_SHARE of a CPU), up to TAP_MIRROR_PERIOD_MAX_US. */
#define TAP_MIRROR_PERIOD_US 1000
#define TAP_MIRROR_SHARE 20
#define TAP_MIRROR_PERIOD_MAX_US 50000

static volatile sig_atomic_t tap__stop, tap__usr1;

static void tap__on_signal(int sig)
{
    if (sig == SIGUSR1)
        tap__usr1 = 1;
    else if (tap__stop < 2)
        tap__stop++;
}

int64_t tap_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *tap_dir_name(int dir)
{
    return dir == TAP_C2S ? "c2s" : "s2c";
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

static int tap__addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A connected socket to path: blocking connect bounded by SO_SNDTIMEO (a
 * full backlog), then non-blocking. The descriptor, or -1 with errno. */
static int tap__connect(const char *path)
{
    struct timeval tv = {TAP_CONNECT_TIMEOUT_S, 0}, zero = {0, 0};
    struct sockaddr_un sa;
    int fd, r, e;
    if (tap__addr(path, &sa) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* A new socket bound at listen_path (mode 0600), listening if asked: the
 * descriptor, or -1 with errno and *what ("socket", "bind", "listen on").
 * The file stays if only listen() failed. */
static int tap__bind(tap *t, int listening, const char **what)
{
    struct sockaddr_un sa;
    mode_t old;
    int fd, r, e;
    if (tap__addr(t->listen_path, &sa) != 0) {
        *what = "bind";
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        *what = "socket";
        return -1;
    }
    old = umask(0177); /* the socket file is never wider than 0600 */
    r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r != 0) {
        e = errno;
        close(fd);
        *what = "bind";
        errno = e;
        return -1;
    }
    t->created_socket = 1;
    if (listening && listen(fd, 128) != 0) {
        e = errno;
        close(fd);
        *what = "listen on";
        errno = e;
        return -1;
    }
    return fd;
}

/* The reason of a failed tap__bind (errno e); the exit code to go with it. */
static int tap__bind_why(const tap *t, const char *what, int e, char *why, size_t n)
{
    if (strcmp(what, "socket") == 0)
        snprintf(why, n, "socket: %s", strerror(e));
    else
        snprintf(why, n, "cannot %s %s: %s", what, t->listen_path, strerror(e));
    return e == EADDRINUSE && strcmp(what, "bind") == 0 ? TAP_EXIT_BUSY : -1;
}

static int tap__mirror_apply(tap *t, int want, int64_t now, const char **what);

int tap_listen(tap *t, char *why, size_t n)
{
    struct sockaddr_un sa;
    struct stat st;
    const char *what = "";
    int fd;

    if (tap__addr(t->listen_path, &sa) != 0) {
        snprintf(why, n, "--listen: the path is longer than %zu bytes", sizeof sa.sun_path - 1);
        return -1;
    }
    if (t->mirror && tap_mirror_init(t, why, n) != 0)
        return -1;
    if (lstat(t->listen_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, n, "%s exists and is not a socket; not touching it", t->listen_path);
            return -1;
        }
        fd = tap__connect(t->listen_path);
        if (fd >= 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            if (fd >= 0)
                close(fd); /* without writing to it */
            snprintf(why, n, "something is listening on %s already", t->listen_path);
            return TAP_EXIT_BUSY;
        }
        if (errno != ECONNREFUSED && errno != ENOENT) {
            snprintf(why, n, "cannot probe the existing socket %s: %s", t->listen_path,
                     strerror(errno));
            return -1;
        }
        if (unlink(t->listen_path) != 0 && errno != ENOENT) {
            snprintf(why, n, "cannot remove the stale socket %s: %s", t->listen_path,
                     strerror(errno));
            return -1;
        }
        dsh_log(DCS_LOG_INFO, TAP_CAT, "stale-socket", NULL, 0,
                "replaced the stale socket file %s", t->listen_path);
    }
    if (t->mirror) {
        /* Nothing at listen_path now: make it what the upstream is. */
        int64_t now = tap_now_us();
        int up = tap_mirror_probe(t);
        t->mstate = TAP_UP_MISSING;
        if (up < 0) {
            snprintf(why, n, "--mirror-upstream: cannot read /proc/net/unix: %s",
                     strerror(errno));
            return -1;
        }
        if (tap__mirror_apply(t, up, now, &what) != 0)
            return tap__bind_why(t, what, errno, why, n);
        t->mirror_period_us = TAP_MIRROR_PERIOD_US;
        t->mirror_next_us = now + TAP_MIRROR_PERIOD_US;
        return 0;
    }
    if ((fd = tap__bind(t, 1, &what)) < 0)
        return tap__bind_why(t, what, errno, why, n);
    t->lfd = fd;
    return 0;
}

void tap_unlink(tap *t)
{
    if (t->created_socket) {
        unlink(t->listen_path);
        t->created_socket = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static const char *tap__side_name(int side)
{
    return side == 0 ? "client" : side == 1 ? "upstream" : "tap";
}

void tap_conn_eof(tap_conn *c, int side)
{
    tap *t = c->tap;
    dsh_field fl[] = {DSH_INT("conn", c->id), DSH_STR("side", tap__side_name(side))};
    if (c->first_end < 0)
        c->first_end = side;
    dsh_log(DCS_LOG_DEBUG, TAP_CAT, "eof", fl, 2, "end of stream from the %s",
            tap__side_name(side));
    if (t->recording)
        tap_rec_eof(&t->rec, c->id, side == 0 ? TAP_C2S : TAP_S2C, tap_now_us());
}

void tap_conn_end(tap_conn *c, int abort, int side, const char *what)
{
    static const struct linger reset = {1, 0};
    tap *t = c->tap;
    int k;
    if (c->dead)
        return;
    c->dead = 1;
    if (c->first_end < 0)
        c->first_end = side >= 0 ? side : 2;
    for (k = 0; k < 2; k++) {
        if (abort)
            setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(c->fd[k]);
        c->fd[k] = -1;
    }
    t->active--;
    if (abort)
        t->aborted++;
    else
        t->closed++;
    tap_conn_finish_framers(c, tap_now_us());
    if (t->recording)
        tap_rec_end(&t->rec, c->id, c->first_end, what, tap_now_us());
    {
        dsh_field fl[] = {DSH_INT("conn", c->id), DSH_STR("first", tap__side_name(c->first_end)),
                          DSH_INT("c2s_bytes", c->d[TAP_C2S].out_off),
                          DSH_INT("s2c_bytes", c->d[TAP_S2C].out_off)};
        dsh_log(DCS_LOG_INFO, TAP_CAT, abort ? "reset" : "closed", fl, 4, "connection %s: %s",
                abort ? "reset" : "closed", what);
    }
}

static void tap__accept_one(tap *t, int cfd, int64_t now)
{
    uint64_t id = ++t->next_id;
    tap_conn *c;
    int ufd, k;

    t->accepted++;
    if ((ufd = tap__connect(t->upstream_path)) < 0) {
        const char *e = strerror(errno);
        dsh_field fl[] = {DSH_INT("conn", id), DSH_STR("upstream", t->upstream_path)};
        t->upstream_failed++;
        if (t->mirror)
            t->mirror_next_us = now; /* the upstream changed: look again at once */
        dsh_log(DCS_LOG_WARN, TAP_CAT, "upstream-failed", fl, 2,
                "cannot connect to the upstream (%s); closing the client's connection", e);
        if (t->recording)
            tap_rec_refused(&t->rec, id, e, now);
        close(cfd);
        return;
    }
    if (!(c = calloc(1, sizeof *c))) {
        dsh_log(DCS_LOG_ERROR, TAP_CAT, "nomem", NULL, 0, "out of memory; closing a connection");
        close(cfd);
        close(ufd);
        return;
    }
    c->tap = t;
    c->id = id;
    c->fd[0] = cfd;
    c->fd[1] = ufd;
    c->first_end = -1;
    c->start_us = now;
    for (k = 0; k < 2; k++)
        c->pidx[k] = -1;
    if (tap_conn_init(t, c) != 0) {
        dsh_log(DCS_LOG_ERROR, TAP_CAT, "nomem", NULL, 0, "out of memory; closing a connection");
        tap_conn_fini(c);
        close(cfd);
        close(ufd);
        free(c);
        return;
    }
    c->next = t->conns;
    t->conns = c;
    t->active++;
    {
        dsh_field fl[] = {DSH_INT("conn", id), DSH_STR("upstream", t->upstream_path)};
        dsh_log(DCS_LOG_INFO, TAP_CAT, "open", fl, 2,
                "accepted a client, connected to the upstream");
    }
    if (t->recording)
        tap_rec_conn(&t->rec, id, now);
    tap_conn_start(c, now);
}

static void tap__accept(tap *t, int64_t now)
{
    int k, cfd;
    for (k = 0; k < 16; k++) {
        cfd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            tap__accept_one(t, cfd, now);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            dsh_log(DCS_LOG_WARN, TAP_CAT, "accept", NULL, 0,
                    "accept failed: %s; pausing for 100 ms", strerror(errno));
            t->listen_pause_until_us = now + TAP_LISTEN_PAUSE_US;
        }
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* --mirror-upstream: listen_path in the state of the upstream's file        */

/* Make listen_path show what a client would find at the upstream: no file
 * (ENOENT), a socket file nobody listens on (ECONNREFUSED), a listener.
 * Connections already accepted are not touched. 0, or -1 with errno and
 * *what; t->mstate is then what listen_path shows. */
static int tap__mirror_apply(tap *t, int want, int64_t now, const char **what)
{
    int fd, e;
    if (t->lfd >= 0 && want != TAP_UP_LISTENING) {
        /* Clients that connected before the upstream stopped listening are
         * taken as without the option (the upstream refuses them now);
         * the closed listener's file stays: ECONNREFUSED. */
        tap__accept(t, now);
        close(t->lfd);
        t->lfd = -1;
    }
    switch (want) {
    case TAP_UP_MISSING:
        if (t->bfd >= 0) {
            close(t->bfd);
            t->bfd = -1;
        }
        tap_unlink(t);
        break;
    case TAP_UP_STALE:
        if (!t->created_socket) { /* no file yet: a bound socket that does not listen */
            if ((fd = tap__bind(t, 0, what)) < 0)
                goto fail;
            t->bfd = fd;
        }
        break;
    case TAP_UP_LISTENING:
        if (t->lfd >= 0)
            break;
        if (t->bfd >= 0) { /* the same file, from refusing to listening at once */
            if (listen(t->bfd, 128) != 0) {
                *what = "listen on";
                goto fail;
            }
            t->lfd = t->bfd;
            t->bfd = -1;
            break;
        }
        tap_unlink(t); /* the file of a listener closed earlier */
        if ((fd = tap__bind(t, 1, what)) < 0)
            goto fail;
        t->lfd = fd;
        break;
    }
    t->mstate = want;
    return 0;
fail:
    e = errno;
    t->mstate = t->lfd >= 0 ? TAP_UP_LISTENING : t->created_socket ? TAP_UP_STALE : TAP_UP_MISSING;
    errno = e;
    return -1;
}

/* Look at the upstream; follow a change; schedule the next look. */
static void tap__mirror(tap *t, int64_t now)
{
    const char *what = "";
    int64_t period = TAP_MIRROR_PERIOD_US;
    int up = tap_mirror_probe(t);
    if (up == TAP_UP_STALE && t->mstate == TAP_UP_LISTENING) {
        /* A read of /proc/net/unix can miss a listener, never invent one
         * (mirror.c): believe that it went away only after a second read. */
        up = tap_mirror_probe(t);
        if (up == TAP_UP_LISTENING)
            t->mirror_missed++;
    }
    if (up >= 0 && up != t->mstate) {
        int from = t->mstate;
        if (tap__mirror_apply(t, up, now, &what) == 0) {
            dsh_field fl[] = {DSH_STR("state", tap_mirror_state_name(up)),
                              DSH_STR("was", tap_mirror_state_name(from)),
                              DSH_STR("upstream", t->upstream_path)};
            t->mirror_changes++;
            t->mirror_apply_failed = 0;
            dsh_log(DCS_LOG_INFO, TAP_CAT, "mirror", fl, 3,
                    "the upstream socket is %s: so is the listen path now",
                    tap_mirror_state_name(up));
        } else {
            int e = errno;
            if (!t->mirror_apply_failed) {
                dsh_field fl[] = {DSH_STR("state", tap_mirror_state_name(up)),
                                  DSH_STR("listen", t->listen_path)};
                dsh_log(DCS_LOG_WARN, TAP_CAT, "mirror-failed", fl, 2,
                        "the upstream socket is %s, but: cannot %s %s (%s); trying again",
                        tap_mirror_state_name(up), what, t->listen_path, strerror(e));
            }
            t->mirror_apply_failed = 1;
        }
    }
    if (up != TAP_UP_MISSING) {
        int64_t p = TAP_MIRROR_SHARE * t->mirror_cost_us;
        period = p < TAP_MIRROR_PERIOD_US ? TAP_MIRROR_PERIOD_US
                 : p > TAP_MIRROR_PERIOD_MAX_US ? TAP_MIRROR_PERIOD_MAX_US
                                                : p;
    }
    t->mirror_period_us = period;
    t->mirror_next_us = now + period;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

/* Flush what is due, end finished connections, free the dead ones. */
static void tap__sweep(tap *t, int64_t now)
{
    tap_conn **pp = &t->conns, *c;
    while ((c = *pp) != NULL) {
        if (!c->dead) {
            tap_dir_flush(&c->d[TAP_C2S], now);
            tap_dir_flush(&c->d[TAP_S2C], now);
        }
        if (!c->dead && tap_conn_finished(c))
            tap_conn_end(c, 0, c->first_end, "both directions ended");
        if (c->dead) {
            *pp = c->next;
            tap_conn_fini(c);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

static int64_t tap__min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int tap_run(tap *t)
{
    struct sigaction sa;
    sigset_t block, wait_mask, orig;
    struct pollfd *pfd = NULL;
    size_t cap = 0, np, k;
    int code = DSH_EXIT_OK, lidx, stopping = 0;
    int64_t stop_until = 0;
    tap_conn *c;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tap__on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    /* The signals are blocked except inside ppoll, so none is missed
     * between a check of the flags and the wait. */
    sigprocmask(SIG_BLOCK, &block, &orig);
    wait_mask = orig;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGUSR1);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    for (;;) {
        int64_t now = tap_now_us(), dl = INT64_MAX;
        struct timespec ts, *tsp = NULL;
        int r;
        if (tap__usr1) {
            tap__usr1 = 0;
            tap_stats(t, 0);
        }
        if (tap__stop >= 2)
            break;
        if (tap__stop && !stopping) {
            /* stop accepting; let the connections finish (--grace) */
            stopping = 1;
            stop_until = now + t->grace_us;
            t->mirror = 0;
            if (t->lfd >= 0)
                close(t->lfd);
            if (t->bfd >= 0)
                close(t->bfd);
            t->lfd = t->bfd = -1;
            tap_unlink(t);
            dsh_log(DCS_LOG_INFO, TAP_CAT, "stopping", NULL, 0,
                    "stopping: no new connections; %llu connection(s) may finish within %lld ms",
                    (unsigned long long)t->active, (long long)(t->grace_us / 1000));
        }
        tap__sweep(t, now);
        if (stopping && (!t->conns || now >= stop_until))
            break;
        if (stopping)
            dl = stop_until;
        if (t->mirror && now >= t->mirror_next_us)
            tap__mirror(t, now);
        if (t->mirror)
            dl = t->mirror_next_us;
        if (cap < 1 + 2 * t->active) {
            struct pollfd *np_ = realloc(pfd, (1 + 2 * t->active + 16) * sizeof *pfd);
            if (!np_) {
                dsh_log(DCS_LOG_ERROR, TAP_CAT, "nomem", NULL, 0, "out of memory");
                code = DSH_EXIT_RUNTIME;
                break;
            }
            pfd = np_;
            cap = 1 + 2 * t->active + 16;
        }
        np = 0;
        lidx = -1;
        if (t->lfd >= 0 && now >= t->listen_pause_until_us) {
            lidx = (int)np;
            pfd[np++] = (struct pollfd){t->lfd, POLLIN, 0};
        } else if (t->lfd >= 0) {
            dl = tap__min(dl, t->listen_pause_until_us);
        }
        for (c = t->conns; c; c = c->next) {
            for (k = 0; k < 2; k++) {
                /* fd k is the source of direction k and the destination of the other. */
                short ev = (short)((tap_dir_can_read(&c->d[k]) ? POLLIN : 0) |
                                   (tap_dir_wants_pollout(&c->d[1 - k]) ? POLLOUT : 0));
                c->pidx[k] = ev ? (int)np : -1;
                if (ev)
                    pfd[np++] = (struct pollfd){c->fd[k], ev, 0};
                dl = tap__min(dl, tap_dir_deadline(&c->d[k], now));
            }
        }
        if (dl != INT64_MAX) {
            int64_t wait = dl > now ? dl - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000);
            ts.tv_nsec = (long)(wait % 1000000) * 1000;
            tsp = &ts;
        }
        r = ppoll(pfd, (nfds_t)np, tsp, &wait_mask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            dsh_log(DCS_LOG_ERROR, TAP_CAT, "poll", NULL, 0, "ppoll failed: %s", strerror(errno));
            code = DSH_EXIT_RUNTIME;
            break;
        }
        now = tap_now_us();
        for (c = t->conns; c; c = c->next) {
            for (k = 0; k < 2 && !c->dead; k++) {
                short re;
                if (c->pidx[k] < 0)
                    continue;
                re = pfd[c->pidx[k]].revents;
                if (re & (POLLOUT | POLLERR | POLLHUP))
                    c->d[1 - k].wblocked = 0;
                if (re & (POLLIN | POLLERR | POLLHUP))
                    tap_dir_read(&c->d[k], now);
                c->pidx[k] = -1;
            }
        }
        if (lidx >= 0 && (pfd[lidx].revents & POLLIN))
            tap__accept(t, now);
    }

    if (t->lfd >= 0) {
        close(t->lfd);
        t->lfd = -1;
    }
    if (t->bfd >= 0) {
        close(t->bfd);
        t->bfd = -1;
    }
    tap_unlink(t);
    for (c = t->conns; c; c = c->next)
        tap_conn_end(c, 0, 2, "the tap is stopping");
    tap__sweep(t, tap_now_us());
    free(pfd);
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return code;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */

static void tap__jw_dir(dsh_jw *w, const char *key, const tap_dirstats *s)
{
    dsh_jw_object(w, key);
    dsh_jw_uint(w, "bytes_in", s->bytes_in);
    dsh_jw_uint(w, "bytes_out", s->bytes_out);
    dsh_jw_uint(w, "messages_in", s->messages_in);
    dsh_jw_uint(w, "messages_out", s->messages_out);
    dsh_jw_uint(w, "errors_in", s->errors_in);
    dsh_jw_uint(w, "errors_out", s->errors_out);
    dsh_jw_end(w);
}

void tap_stats(tap *t, int final)
{
    int64_t wall = dsh_wall_ms();
    uint64_t applied = 0;
    dcs_buf b;
    dsh_jw w;
    size_t i;

    for (i = 0; i < t->n_faults; i++)
        applied += t->faults[i].applied;
    if (final) {
        dsh_field fl[] = {DSH_INT("accepted", t->accepted),
                          DSH_INT("upstream_failed", t->upstream_failed),
                          DSH_INT("c2s_bytes", t->dir[TAP_C2S].bytes_out),
                          DSH_INT("s2c_bytes", t->dir[TAP_S2C].bytes_out),
                          DSH_INT("c2s_messages", t->dir[TAP_C2S].messages_in),
                          DSH_INT("s2c_messages", t->dir[TAP_S2C].messages_in),
                          DSH_INT("faults_applied", applied)};
        dsh_log(DCS_LOG_INFO, TAP_CAT, "stats", fl, 7, "statistics");
        if (!t->stats_path)
            return;
    }
    dcs_buf_init(&b, NULL);
    dsh_jw_init(&w, &b);
    dsh_jw_object(&w, NULL);
    dsh_jw_str(&w, "program", TAP_PROG);
    dsh_jw_str(&w, "version", DCS_VERSION);
    dsh_jw_int(&w, "pid", getpid());
    dsh_jw_int(&w, "time", wall);
    dsh_jw_int(&w, "uptime_ms", wall - t->start_wall_ms);
    dsh_jw_str(&w, "listen", t->listen_path);
    dsh_jw_str(&w, "upstream", t->upstream_path);
    dsh_jw_object(&w, "connections");
    dsh_jw_uint(&w, "accepted", t->accepted);
    dsh_jw_uint(&w, "upstream_failed", t->upstream_failed);
    dsh_jw_uint(&w, "active", t->active);
    dsh_jw_uint(&w, "closed", t->closed);
    dsh_jw_uint(&w, "reset", t->aborted);
    dsh_jw_end(&w);
    tap__jw_dir(&w, "c2s", &t->dir[TAP_C2S]);
    tap__jw_dir(&w, "s2c", &t->dir[TAP_S2C]);
    dsh_jw_array(&w, "faults");
    for (i = 0; i < t->n_faults; i++) {
        dsh_jw_object(&w, NULL);
        dsh_jw_str(&w, "spec", t->faults[i].spec);
        dsh_jw_str(&w, "kind", tap_fault_name(t->faults[i].kind));
        dsh_jw_uint(&w, "applied", t->faults[i].applied);
        dsh_jw_end(&w);
    }
    dsh_jw_end(&w);
    if (t->recording) {
        const tap_rec *r = &t->rec;
        dsh_jw_object(&w, "recording");
        dsh_jw_str(&w, "path", t->record_path);
        dsh_jw_bool(&w, "failed", r->failed);
        dsh_jw_uint(&w, "bytes", r->bytes);
        dsh_jw_uint(&w, "lines", r->lines);
        dsh_jw_uint(&w, "steps", r->steps);
        dsh_jw_uint(&w, "messages", r->messages);
        dsh_jw_uint(&w, "raw_pieces", r->raw_pieces);
        dsh_jw_uint(&w, "too_long", r->too_long);
        dsh_jw_uint(&w, "not_current", r->not_current);
        dsh_jw_uint(&w, "unpatternable", r->unpatternable);
        dsh_jw_end(&w);
    }
    if (t->mirror) {
        dsh_jw_object(&w, "mirror");
        dsh_jw_str(&w, "state", tap_mirror_state_name(t->mstate));
        dsh_jw_uint(&w, "changes", t->mirror_changes);
        dsh_jw_uint(&w, "checks", t->mirror_checks);
        dsh_jw_uint(&w, "proc_reads", t->mirror_reads);
        dsh_jw_uint(&w, "listener_missed", t->mirror_missed);
        dsh_jw_int(&w, "read_cost_us", t->mirror_cost_us);
        dsh_jw_int(&w, "read_cost_max_us", t->mirror_cost_max_us);
        dsh_jw_int(&w, "period_us", t->mirror_period_us);
        dsh_jw_end(&w);
    }
    dsh_jw_end(&w);
    if (!w.err)
        dcs_buf_append(&b, "\n", 1);
    dsh_stats_write(&b, t->stats_path, 0, TAP_CAT);
    dcs_buf_free(&b);
}
