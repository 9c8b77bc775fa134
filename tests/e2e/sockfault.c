/* sockfault: a tiny LD_PRELOAD fault injector for socket I/O (issue 5).
 *
 * Interposes read, write, writev, recv, send, recvmsg, sendmsg, accept and
 * accept4. Faults are injected only when the descriptor is a socket (fstat
 * S_ISSOCK): pipes, eventfds, files and terminals always go straight through.
 * With probability SOCKFAULT_P (default 0: inject nothing) a call on a socket
 *   - fails with EINTR without calling the real function;
 *   - fails with EAGAIN without calling the real function, but only when the
 *     descriptor is in non-blocking mode (O_NONBLOCK), else EINTR instead;
 *   - calls the real function with a shorter length (at least 1 byte): a short
 *     read or a short write;
 *   - accept/accept4: fails with EMFILE or ENOMEM without calling the real
 *     function, so the pending connection stays in the backlog. An injected
 *     EMFILE is repeated once on the next accept call: libuv answers EMFILE
 *     by closing its reserve descriptor and accepting-and-closing whatever is
 *     pending (uv__emfile_trick), which would drop the connection the
 *     injection kept; a still-exhausted table is what a real EMFILE looks
 *     like to that retry.
 * SOCKFAULT_ACCEPT_P, if set, is the probability for accept calls instead
 * (there are few of them). SOCKFAULT_SEED seeds the generator (default 1);
 * give two processes different seeds. At exit, if
 * SOCKFAULT_REPORT names a file, one line per kind "KIND COUNT" is written to
 * it (truncated first). The programs are single-threaded event loops; libuv's
 * thread pool only touches files, which are never faulted.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { K_EINTR, K_EAGAIN, K_SHORT_READ, K_SHORT_WRITE, K_EMFILE, K_ENOMEM, K_N };
static const char *const kind_names[K_N] = {"eintr", "eagain", "short_read", "short_write",
                                            "accept_emfile", "accept_enomem"};
static unsigned long counts[K_N];
static double prob = -1.0, accept_prob;
static uint64_t rng;
static int emfile_again;

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);

#define REAL(name) (real_##name ? real_##name : (real_##name = dlsym(RTLD_NEXT, #name)))

static void init(void)
{
    const char *p, *a, *s;
    if (prob >= 0)
        return;
    p = getenv("SOCKFAULT_P");
    a = getenv("SOCKFAULT_ACCEPT_P");
    s = getenv("SOCKFAULT_SEED");
    accept_prob = a ? strtod(a, NULL) : p ? strtod(p, NULL) : 0.0;
    if (!(accept_prob >= 0))
        accept_prob = 0.0;
    prob = p ? strtod(p, NULL) : 0.0;
    if (!(prob >= 0))
        prob = 0.0;
    rng = (s ? strtoull(s, NULL, 10) : 1) * 0x9E3779B97F4A7C15ull;
    if (!rng)
        rng = 1;
}

static uint64_t next(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static double uniform(void)
{
    return (double)(next() >> 11) / 9007199254740992.0;
}

static int is_socket(int fd)
{
    struct stat st;
    int saved = errno, r = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    errno = saved;
    return r;
}

static int nonblocking(int fd)
{
    int saved = errno, fl = fcntl(fd, F_GETFL);
    errno = saved;
    return fl != -1 && (fl & O_NONBLOCK);
}

/* Whether to fault this call: only on sockets, with probability P. */
static int roll_p(int fd, double p)
{
    init();
    if (p <= 0 || !is_socket(fd))
        return 0;
    return uniform() < p;
}

static int roll(int fd)
{
    init();
    return roll_p(fd, prob);
}

/* The fault for a data call of LEN bytes: -1 with errno set (EINTR/EAGAIN),
 * or 0 and *len shortened (to 1..len-1). */
static int data_fault(int fd, size_t *len, int kind_short)
{
    uint64_t r = next() % 3;
    if (r == 2 && *len > 1) {
        *len = 1 + next() % (*len - 1);
        counts[kind_short]++;
        return 0;
    }
    if (r == 1 && nonblocking(fd)) {
        counts[K_EAGAIN]++;
        errno = EAGAIN;
        return -1;
    }
    counts[K_EINTR]++;
    errno = EINTR;
    return -1;
}

/* A copy of IOV (CNT entries) holding only the first LEN bytes; the number
 * of entries used. */
static int trim_iov(struct iovec *out, const struct iovec *iov, int cnt, size_t len)
{
    int i, n = 0;
    for (i = 0; i < cnt && len > 0; i++) {
        out[n] = iov[i];
        if (out[n].iov_len > len)
            out[n].iov_len = len;
        len -= out[n].iov_len;
        n++;
    }
    return n;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    int i;
    for (i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

#define MAX_IOV 64

ssize_t read(int fd, void *buf, size_t count)
{
    if (REAL(read) && roll(fd) && data_fault(fd, &count, K_SHORT_READ) < 0)
        return -1;
    return real_read(fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    if (REAL(write) && roll(fd) && data_fault(fd, &count, K_SHORT_WRITE) < 0)
        return -1;
    return real_write(fd, buf, count);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    if (REAL(recv) && roll(fd) && data_fault(fd, &len, K_SHORT_READ) < 0)
        return -1;
    return real_recv(fd, buf, len, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (REAL(send) && roll(fd) && data_fault(fd, &len, K_SHORT_WRITE) < 0)
        return -1;
    return real_send(fd, buf, len, flags);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct iovec tmp[MAX_IOV];
    size_t total, len;
    REAL(writev);
    if (iovcnt <= 0 || iovcnt > MAX_IOV || !roll(fd))
        return real_writev(fd, iov, iovcnt);
    total = len = iov_total(iov, iovcnt);
    if (data_fault(fd, &len, K_SHORT_WRITE) < 0)
        return -1;
    if (len == total)
        return real_writev(fd, iov, iovcnt);
    return real_writev(fd, tmp, trim_iov(tmp, iov, iovcnt, len));
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct iovec tmp[MAX_IOV], *saved_iov;
    size_t total, len, saved_cnt;
    ssize_t r;
    REAL(recvmsg);
    if (!msg || msg->msg_iovlen == 0 || msg->msg_iovlen > MAX_IOV || !roll(fd))
        return real_recvmsg(fd, msg, flags);
    total = len = iov_total(msg->msg_iov, (int)msg->msg_iovlen);
    if (data_fault(fd, &len, K_SHORT_READ) < 0)
        return -1;
    if (len == total)
        return real_recvmsg(fd, msg, flags);
    saved_iov = msg->msg_iov;
    saved_cnt = msg->msg_iovlen;
    msg->msg_iovlen = (size_t)trim_iov(tmp, saved_iov, (int)saved_cnt, len);
    msg->msg_iov = tmp;
    r = real_recvmsg(fd, msg, flags);
    msg->msg_iov = saved_iov;
    msg->msg_iovlen = saved_cnt;
    return r;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct iovec tmp[MAX_IOV];
    struct msghdr m;
    size_t total, len;
    REAL(sendmsg);
    if (!msg || msg->msg_iovlen == 0 || msg->msg_iovlen > MAX_IOV || !roll(fd))
        return real_sendmsg(fd, msg, flags);
    total = len = iov_total(msg->msg_iov, (int)msg->msg_iovlen);
    if (data_fault(fd, &len, K_SHORT_WRITE) < 0)
        return -1;
    if (len == total)
        return real_sendmsg(fd, msg, flags);
    m = *msg;
    m.msg_iovlen = (size_t)trim_iov(tmp, msg->msg_iov, (int)msg->msg_iovlen, len);
    m.msg_iov = tmp;
    return real_sendmsg(fd, &m, flags);
}

/* Non-zero (errno set) if this accept is to fail without the real call. */
static int accept_fault(int fd)
{
    init();
    if (emfile_again && is_socket(fd)) {
        emfile_again = 0;
        counts[K_EMFILE]++;
        errno = EMFILE;
        return 1;
    }
    if (!roll_p(fd, accept_prob))
        return 0;
    if (next() % 2) {
        emfile_again = 1;
        counts[K_EMFILE]++;
        errno = EMFILE;
    } else {
        counts[K_ENOMEM]++;
        errno = ENOMEM;
    }
    return 1;
}

int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    REAL(accept);
    if (accept_fault(fd))
        return -1;
    return real_accept(fd, addr, addrlen);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    REAL(accept4);
    if (accept_fault(fd))
        return -1;
    return real_accept4(fd, addr, addrlen, flags);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("SOCKFAULT_REPORT");
    char buf[512];
    int fd, i, n = 0;
    if (!path || !*path)
        return;
    for (i = 0; i < K_N; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s %lu\n", kind_names[i], counts[i]);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (REAL(write))
        (void)!real_write(fd, buf, (size_t)n);
    close(fd);
}
