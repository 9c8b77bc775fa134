/* secret.c - reading the shared secret of the HMAC handshake (spec 10.3.1).
 *
 * The file is opened first and then checked with fstat, so that the checks
 * and the read concern the same file. It is opened without blocking, so that
 * a FIFO or a device named by mistake is refused instead of hanging the
 * program. No reason written here ever contains a byte of the secret. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "shell.h"

#define DSH_SECRET_MIN 16
#define DSH_SECRET_MAX 4096

int dsh_secret_read(const char *path, unsigned char **secret, size_t *len, char *why, size_t n)
{
    unsigned char *buf = NULL;
    size_t got = 0, cap = DSH_SECRET_MAX + 3; /* room to see that a file is too long */
    struct stat st;
    int fd, rc = -1;

    *secret = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "secret file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(why, n, "secret file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, n, "secret file %s is not a regular file", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        snprintf(why, n, "secret file %s is owned by uid %lld, not by this program's uid %lld",
                 path, (long long)st.st_uid, (long long)geteuid());
        goto out;
    }
    if (st.st_mode & 0077) {
        snprintf(why, n,
                 "secret file %s has mode %04o; it must grant nothing to group or other "
                 "(chmod 600)",
                 path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    buf = malloc(cap);
    if (!buf) {
        snprintf(why, n, "secret file %s: out of memory", path);
        goto out;
    }
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, n, "secret file %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    /* One trailing line feed, or carriage return and line feed, is not part
     * of the secret. */
    if (got >= 1 && buf[got - 1] == '\n') {
        got--;
        if (got >= 1 && buf[got - 1] == '\r')
            got--;
    }
    if (got < DSH_SECRET_MIN || got > DSH_SECRET_MAX) {
        snprintf(why, n, "secret file %s: the secret must be %d to %d bytes long, it is %s%zu",
                 path, DSH_SECRET_MIN, DSH_SECRET_MAX, got > DSH_SECRET_MAX ? "more than " : "",
                 got > DSH_SECRET_MAX ? (size_t)DSH_SECRET_MAX : got);
        goto out;
    }
    *secret = buf;
    *len = got;
    buf = NULL;
    rc = 0;
out:
    if (buf) {
        sodium_memzero(buf, cap);
        free(buf);
    }
    close(fd);
    return rc;
}

void dsh_secret_free(unsigned char *secret, size_t len)
{
    if (!secret)
        return;
    sodium_memzero(secret, len);
    free(secret);
}
