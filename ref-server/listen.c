/* listen.c - the listening socket of dcs-server (spec 3.2): the directory
 * (0700, or 0750 with --group), the socket file (0600, or 0660) created
 * under a umask so that it never exists with a wider mode, the probe of an
 * existing file (stale: replaced; a server listening: refused with exit
 * status 3; not a socket: refused), and socket activation (LISTEN_FDS). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rs.h"

/* mkdir -p for the parents of path, each new one with mode. */
static int rs_mkdirs(struct rs *rs, const char *path, mode_t mode, char *why, size_t n)
{
    char dir[sizeof rs->socket_path];
    char *slash = NULL, *p;
    struct stat st;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, n, "%s is not a directory", dir);
            return -1;
        }
        if (st.st_mode & 022)
            dsh_log(DCS_LOG_WARN, DCS_CAT_SERVER, "socket-directory", NULL, 0,
                    "the socket's directory %s is writable by group or other", dir);
        return 0;
    }
    for (p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, mode) == 0) {
                if (rs->group_set && chown(dir, (uid_t)-1, rs->group) != 0) {
                    snprintf(why, n, "cannot give %s to the group: %s", dir, strerror(errno));
                    return -1;
                }
            } else if (errno != EEXIST) {
                snprintf(why, n, "cannot create the directory %s: %s", dir, strerror(errno));
                return -1;
            }
            if (c == '\0')
                break;
            *p = c;
        }
    }
    return 0;
}

/* 1: a server answers at path; 0: stale (refused); -1: error (why). */
static int rs_probe(const char *path, char *why, size_t n)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
    if (fd < 0) {
        snprintf(why, n, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        close(fd);
        snprintf(why, n, "the socket path is too long");
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r != 0 && errno == EINTR);
    if (r == 0) {
        close(fd); /* without writing to it */
        return 1;
    }
    r = errno;
    close(fd);
    if (r == ECONNREFUSED || r == ENOENT)
        return 0;
    if (r == EAGAIN) /* a listener whose backlog is full is still a listener */
        return 1;
    snprintf(why, n, "cannot probe the existing socket %s: %s", path, strerror(r));
    return -1;
}

/* Socket activation: 1 if fd 3 was passed in and taken, 0 if not, -1. */
static int rs_inherit(struct rs *rs, char *why, size_t n)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    uint64_t p, k;
    int type = 0, domain = 0, acc = 0, err;
    socklen_t len = sizeof type;
    if (!pid || !fds || dsh_parse_uint(pid, UINT32_MAX, &p) || (pid_t)p != getpid())
        return 0;
    if (dsh_parse_uint(fds, 1024, &k) || k < 1)
        return 0;
    if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
        (len = sizeof domain, getsockopt(3, SOL_SOCKET, SO_DOMAIN, &domain, &len)) != 0 ||
        domain != AF_UNIX ||
        (len = sizeof acc, getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len)) != 0 || !acc) {
        snprintf(why, n, "LISTEN_FDS: descriptor 3 is not a listening Unix stream socket");
        return -1;
    }
    if ((err = uv_pipe_open(&rs->listener, 3)) != 0) {
        snprintf(why, n, "LISTEN_FDS: %s", uv_strerror(err));
        return -1;
    }
    rs->inherited = 1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return 1;
}

int rs_listen(struct rs *rs, char *why, size_t n)
{
    struct stat st;
    mode_t old;
    int r;

    r = rs_inherit(rs, why, n);
    if (r != 0)
        return r < 0 ? -1 : 0;
    old = umask(rs->group_set ? 027 : 077);
    r = rs_mkdirs(rs, rs->socket_path, rs->group_set ? 0750 : 0700, why, n);
    umask(old);
    if (r)
        return -1;
    if (lstat(rs->socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, n, "%s exists and is not a socket; not touching it", rs->socket_path);
            return -1;
        }
        r = rs_probe(rs->socket_path, why, n);
        if (r < 0)
            return -1;
        if (r == 1) {
            snprintf(why, n, "another server is listening on %s", rs->socket_path);
            return RS_EXIT_IN_USE;
        }
        if (unlink(rs->socket_path) != 0 && errno != ENOENT) {
            snprintf(why, n, "cannot remove the stale socket %s: %s", rs->socket_path,
                     strerror(errno));
            return -1;
        }
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "stale-socket", NULL, 0,
                "replaced the stale socket file %s", rs->socket_path);
    }
    old = umask(rs->group_set ? 0117 : 0177);
    r = uv_pipe_bind(&rs->listener, rs->socket_path);
    umask(old);
    if (r != 0) {
        snprintf(why, n, "cannot bind %s: %s", rs->socket_path, uv_strerror(r));
        return r == UV_EADDRINUSE ? RS_EXIT_IN_USE : -1;
    }
    rs->created_socket = 1;
    if (rs->group_set && chown(rs->socket_path, (uid_t)-1, rs->group) != 0) {
        snprintf(why, n, "cannot give %s to the group: %s", rs->socket_path, strerror(errno));
        return -1;
    }
    return 0;
}

void rs_unlink_socket(struct rs *rs)
{
    if (rs->created_socket) {
        unlink(rs->socket_path);
        rs->created_socket = 0;
    }
}
