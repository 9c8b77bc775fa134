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

#include "dcs/auth.h"
#include "shell.h"

int dsh_secret_read(const char *path, unsigned char **secret, size_t *len, char *why, size_t n)
{
    unsigned char *buf = NULL;
    size_t got = 0, cap = DCS_SECRET_MAX_BYTES + 3; /* room to see that a file is too long */
    char reason[160];
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
    /* The rules themselves live in the session layer (dcs_secret_*), tested
     * there; this file only finds the facts they judge. */
    if (dcs_secret_file_check(st.st_mode, st.st_uid, geteuid(), reason, sizeof reason)) {
        snprintf(why, n, "secret file %s: %s", path, reason);
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
    /* A file longer than cap was read only up to cap: still too long. */
    if (dcs_secret_parse(buf, got, &got, reason, sizeof reason)) {
        snprintf(why, n, "secret file %s: %s", path, reason);
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
