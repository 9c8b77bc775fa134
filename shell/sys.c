/* sys.c - what the shell asks of the operating system: random numbers
 * (libsodium), peer credentials of a Unix socket (spec 3.3), the wall clock,
 * and reading and atomically replacing small files. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "shell.h"

/* ------------------------------------------------------------------------ */
/* Randomness                                                                */

static double dsh__uniform(void *ud)
{
    uint64_t x;
    (void)ud;
    randombytes_buf(&x, sizeof x);
    return (double)(x >> 11) * (1.0 / 9007199254740992.0); /* 53 bits: [0, 1) */
}

static void dsh__bytes(void *ud, void *buf, size_t n)
{
    (void)ud;
    randombytes_buf(buf, n);
}

int dsh_rng_init(dcs_rng *rng)
{
    if (sodium_init() < 0)
        return -1;
    rng->uniform = dsh__uniform;
    rng->bytes = dsh__bytes;
    rng->ud = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Peer credentials                                                          */

int dsh_peer_credentials(int fd, dsh_peer *p)
{
#if defined(SO_PEERCRED)
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -errno;
    if (len != sizeof cr)
        return -EINVAL;
    p->pid = cr.pid > 0 ? cr.pid : 0;
    p->uid = cr.uid;
    p->gid = cr.gid;
    return 0;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) != 0)
        return -errno;
    p->pid = 0; /* getpeereid does not say */
    p->uid = uid;
    p->gid = gid;
    return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* Time                                                                      */

int64_t dsh_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

int dsh_file_read(const char *path, size_t max, char **data, size_t *len, char *why, size_t n)
{
    char *buf = NULL;
    size_t got = 0, cap = 0;
    int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    *data = NULL;
    *len = 0;
    if (fd < 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t r;
        if (got + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb;
            if (cap > max + 1) {
                snprintf(why, n, "%s: larger than %zu bytes", path, max);
                goto fail;
            }
            nb = realloc(buf, ncap);
            if (!nb) {
                snprintf(why, n, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        r = read(fd, buf + got, cap - got - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, n, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > max) {
            snprintf(why, n, "%s: larger than %zu bytes", path, max);
            goto fail;
        }
    }
    close(fd);
    if (!buf && !(buf = malloc(1))) {
        snprintf(why, n, "%s: out of memory", path);
        return -1;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
fail:
    close(fd);
    free(buf);
    return -1;
}

int dsh_file_replace(const char *path, const void *data, size_t len, unsigned mode, char *why,
                     size_t n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    const char *p = data;
    int fd;
    if (!tmp) {
        snprintf(why, n, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
    if (fd < 0) {
        snprintf(why, n, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(why, n, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
