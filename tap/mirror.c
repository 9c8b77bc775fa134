/* mirror.c - --mirror-upstream: what a client would find at the upstream
 * path (no file, a file nobody listens on, a listener), found without
 * connecting to it: a connect would be a connection attempt the upstream
 * (the conformance harness) sees.
 *
 * - stat() (following symbolic links, as connect() does): ENOENT or ENOTDIR
 *   is "missing" (what a client's attempt skips, spec/PROTOCOL.md 8.1).
 *   Any other state of the file, a socket nobody listens on, a file that is
 *   no socket, a stat() refused, is "stale": connect() would fail there
 *   (ECONNREFUSED, EACCES), which a client counts as a failure.
 * - /proc/net/unix (Linux) for whether a stream socket bound to that path
 *   listens. The kernel writes (net/unix/af_unix.c, unix_seq_show):
 *
 *     Num       RefCount Protocol Flags    Type St Inode Path
 *     "%pK: %08X %08X %08X %04X %02X %5lu" [" " name] "\n"
 *
 *   Flags is __SO_ACCEPTCON (0x00010000) for a listening socket, 0
 *   otherwise; Type 0001 is SOCK_STREAM; the inode is padded with spaces to
 *   5 columns; %pK may be all zeros. The name is there only for a bound
 *   socket (unnamed ones end after the inode), then after exactly one
 *   space, byte for byte as the binder passed it to bind() (relative if it
 *   was, spaces and all), up to the end of the line; abstract names start
 *   with '@' and show their NUL bytes as '@'. The sockets accepted from a
 *   listener carry its name too, with Flags 0: only Flags tells them
 *   apart.
 *
 * A name is matched against the --upstream path as given and its absolute
 * form (the tap's working directory in front of a relative path, "." and
 * doubled slashes removed). What this cannot see: an upstream that bound
 * another spelling of the path (through a symbolic link, relative to
 * another directory), a socket in another network namespace (each lists
 * its own), a listener whose file was removed and replaced by a file of
 * the same name (its name still shows: "listening" where connect() is
 * refused). A name with a line break spans two lines; the upstream path
 * may not contain one (main.c refuses it), so it is always found on a line
 * of its own. A path starting with '@' could also be an abstract name;
 * stat() found the file first, so only a listening abstract socket of the
 * same spelling could fool the check.
 *
 * The file is read with several read() calls when it is longer than a
 * page (about 40 sockets), and the kernel restarts its walk at each call:
 * a socket closed meanwhile can make it skip another one. A listener can
 * therefore be missed once, never invented: loop.c reads again before it
 * believes that a listener went away. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define TAP_PROC_NET_UNIX "/proc/net/unix"
#define TAP_ACCEPTCON 0x00010000ul /* __SO_ACCEPTCON: the socket listens */
#define TAP_SOCK_STREAM 1ul

const char *tap_mirror_state_name(int state)
{
    return state == TAP_UP_LISTENING ? "listening" : state == TAP_UP_STALE ? "stale" : "missing";
}

/* One field of hex (base 16) or decimal (base 10) digits after at least
 * one space: 0, or -1 if the line does not go on like that. */
static int tap__field(const char **pp, const char *end, int base, unsigned long long *v)
{
    const char *p = *pp;
    unsigned long long x = 0;
    int nd = 0;
    if (p >= end || *p != ' ')
        return -1;
    while (p < end && *p == ' ')
        p++;
    for (; p < end; p++, nd++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            break;
        if (nd >= 20)
            return -1;
        x = x * (unsigned)base + (unsigned)d;
    }
    if (nd == 0)
        return -1;
    *pp = p;
    *v = x;
    return 0;
}

/* One line (without its '\n'): 1 if it is a listening stream socket whose
 * name is one of names[], else 0 (another socket, an unnamed one, the
 * header, a piece of a name that held a line break). */
static int tap__line_listens(const char *p, const char *end, const char *const *names,
                             const size_t *lens, size_t n_names)
{
    unsigned long long ref, proto, flags, type, st, ino;
    const char *name;
    size_t i, len;
    int nd = 0;

    /* Num: hex digits (the kernel address, or zeros) and a colon. */
    while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                       (*p >= 'A' && *p <= 'F'))) {
        p++;
        nd++;
    }
    if (nd == 0 || p >= end || *p != ':')
        return 0;
    p++;
    if (tap__field(&p, end, 16, &ref) || tap__field(&p, end, 16, &proto) ||
        tap__field(&p, end, 16, &flags) || tap__field(&p, end, 16, &type) ||
        tap__field(&p, end, 16, &st) || tap__field(&p, end, 10, &ino))
        return 0;
    if (p >= end || *p != ' ')
        return 0; /* unnamed, or not a record */
    if (!(flags & TAP_ACCEPTCON) || type != TAP_SOCK_STREAM)
        return 0;
    name = p + 1;
    len = (size_t)(end - name);
    for (i = 0; i < n_names; i++)
        if (lens[i] == len && memcmp(name, names[i], len) == 0)
            return 1;
    return 0;
}

int tap_unix_listening(const char *text, size_t n, const char *const *names, const size_t *lens,
                       size_t n_names)
{
    const char *p = text, *end = text + n, *nl;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end; /* a last line without its '\n': the file was cut */
        if (tap__line_listens(p, nl, names, lens, n_names))
            return 1;
        p = nl + 1;
    }
    return 0;
}

/* Read the whole of /proc/net/unix into t->mirror_buf. 0, or -1 (errno). */
static int tap__read_proc(tap *t)
{
    int fd, e;
    ssize_t r;
    if ((fd = open(TAP_PROC_NET_UNIX, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    t->mirror_len = 0;
    for (;;) {
        if (t->mirror_cap - t->mirror_len < 16384) {
            size_t cap = t->mirror_cap ? t->mirror_cap * 2 : 65536;
            char *b = realloc(t->mirror_buf, cap);
            if (!b) {
                close(fd);
                errno = ENOMEM;
                return -1;
            }
            t->mirror_buf = b;
            t->mirror_cap = cap;
        }
        r = read(fd, t->mirror_buf + t->mirror_len, t->mirror_cap - t->mirror_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        t->mirror_len += (size_t)r;
    }
    close(fd);
    return 0;
}

/* Lexically, for an absolute path: "/a/./b//c/" -> "/a/b/c". Never longer. */
static void tap__clean_path(char *s)
{
    char *r = s, *w = s;
    size_t len;
    while (*r) {
        while (*r == '/')
            r++;
        if (!*r)
            break;
        len = strcspn(r, "/");
        if (!(len == 1 && r[0] == '.')) {
            *w++ = '/';
            memmove(w, r, len);
            w += len;
        }
        r += len;
    }
    if (w == s)
        *w++ = '/';
    *w = 0;
}

int tap_mirror_init(tap *t, char *why, size_t n)
{
    char cwd[4096];
    size_t k = 0;
    t->mirror_names[k] = t->upstream_path;
    t->mirror_lens[k++] = strlen(t->upstream_path);
    if (t->upstream_path[0] != '/' && getcwd(cwd, sizeof cwd)) {
        size_t need = strlen(cwd) + 1 + strlen(t->upstream_path) + 1;
        if ((t->mirror_abs = malloc(need)) != NULL) {
            snprintf(t->mirror_abs, need, "%s/%s", cwd, t->upstream_path);
            tap__clean_path(t->mirror_abs);
            if (strlen(t->mirror_abs) < 108) { /* what sun_path holds */
                t->mirror_names[k] = t->mirror_abs;
                t->mirror_lens[k++] = strlen(t->mirror_abs);
            }
        }
    }
    t->mirror_n_names = k;
    if (tap__read_proc(t) != 0) {
        snprintf(why, n, "--mirror-upstream: cannot read " TAP_PROC_NET_UNIX ": %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}

void tap_mirror_fini(tap *t)
{
    free(t->mirror_buf);
    free(t->mirror_abs);
    t->mirror_buf = t->mirror_abs = NULL;
    t->mirror_cap = t->mirror_len = 0;
}

/* CPU time of this thread in microseconds: what a read of /proc/net/unix
 * costs, whatever else runs on the machine. */
static int64_t tap__cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return tap_now_us();
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int tap_mirror_probe(tap *t)
{
    struct stat st;
    int64_t t0, cost;
    int state;
    t->mirror_checks++;
    if (stat(t->upstream_path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
        return TAP_UP_MISSING;
    t0 = tap__cpu_us();
    if (tap__read_proc(t) != 0) {
        if (!t->mirror_read_failed) {
            dsh_field fl[] = {DSH_STR("upstream", t->upstream_path)};
            dsh_log(DCS_LOG_WARN, TAP_CAT, "mirror-failed", fl, 1,
                    "cannot read " TAP_PROC_NET_UNIX " (%s); keeping the listen path as it is",
                    strerror(errno));
        }
        t->mirror_read_failed = 1;
        return -1;
    }
    t->mirror_read_failed = 0;
    state = tap_unix_listening(t->mirror_buf, t->mirror_len, t->mirror_names, t->mirror_lens,
                               t->mirror_n_names)
                ? TAP_UP_LISTENING
                : TAP_UP_STALE;
    cost = tap__cpu_us() - t0;
    t->mirror_reads++;
    /* The CPU time of a read and its parse: a moving average over about 8
     * reads, and the largest seen. */
    t->mirror_cost_us = t->mirror_reads == 1 ? cost : (7 * t->mirror_cost_us + cost) / 8;
    if (cost > t->mirror_cost_max_us)
        t->mirror_cost_max_us = cost;
    return state;
}
