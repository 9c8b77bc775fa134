/* record.c - the --record transcript of dcs-tap (spec/TRANSCRIPTS.md,
 * section 9): a case header, then, in time order, one step per event on
 * the IUT's socket.
 *
 * - Every message the IUT wrote is an `expect` line with its JSON as read
 *   (the whitespace between tokens is removed if it held a line break);
 *   every message it was given is a `send` line with its exact bytes as
 *   written (after the faults), or `send-raw "..."` when `send` would not
 *   write exactly those bytes (no timestamp: the harness would add one;
 *   "${" in a string: the harness would substitute; a line break).
 * - Bytes the IUT was given that are no message are `send-raw hex:...`;
 *   bytes the IUT wrote that are no message, and decoding errors, are
 *   comments.
 * - Each step is preceded by a comment `# +12.345s conn 1 c2s offset 0`
 *   (the time since the tap started, the connection, the direction and
 *   the stream offset).
 * - Connections: `accept` (role client) or `connect` (role server) when one
 *   opens; `expect-close` when the IUT ended it first, `close` otherwise.
 *   A case has one current connection: the events of any other connection
 *   are written as comments, with the step they would have been.
 *
 * Each event is written with one call and flushed, so the file is usable
 * while the tap runs and keeps what was recorded if the tap dies. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dcs_config.h"
#include "tap.h"
#include "transcript.h"

/* The longest line the case reader takes is DCS_CASE_MAX_LINE including
 * two bytes of its own. */
#define TAP_REC_MAX_LINE (DCS_CASE_MAX_LINE - 2u)
/* send-raw hex: at most this many bytes per line. */
#define TAP_REC_RAW_PIECE 16384u
/* Bytes of a comment's hex excerpt. */
#define TAP_REC_EXCERPT 32u

static void tap__s(dcs_buf *b, const char *s)
{
    dcs_buf_append(b, s, strlen(s));
}

static void tap__f(dcs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tap__f(dcs_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int k;
    va_start(ap, fmt);
    k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0)
        dcs_buf_append(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* Text for a comment or the header: control bytes and backslashes (a
 * backslash at the end of a line would join the next line) become '?'. */
static void tap__text(dcs_buf *b, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = (unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\' ? '?' : s[i];
        dcs_buf_append(b, &c, 1);
    }
}

static void tap__hex(dcs_buf *b, const char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    if (dcs_buf_reserve(b, 2 * n))
        return;
    for (i = 0; i < n; i++) {
        b->data[b->len++] = digits[(unsigned char)p[i] >> 4];
        b->data[b->len++] = digits[(unsigned char)p[i] & 15];
    }
}

/* "# +1.234s conn 1 c2s offset 0" without the line end. */
static void tap__stamp(tap_rec *r, uint64_t conn, int dir, uint64_t off, int64_t now)
{
    int64_t ms = (now - r->start_us) / 1000;
    tap__f(&r->line, "# +%lld.%03llds conn %llu", (long long)(ms / 1000), (long long)(ms % 1000),
           (unsigned long long)conn);
    if (dir >= 0)
        tap__f(&r->line, " %s offset %llu", tap_dir_name(dir), (unsigned long long)off);
}

/* Start a step line: commented out when conn is not the current one. */
static void tap__step(tap_rec *r, uint64_t conn)
{
    if (conn != r->current) {
        tap__f(&r->line, "# [conn %llu is not the current connection] ",
               (unsigned long long)conn);
        r->not_current++;
    } else {
        r->steps++;
    }
}

/* Write r->line (whole lines) and flush. */
static void tap__emit(tap_rec *r)
{
    size_t i;
    if (!r->f || r->line.len == 0)
        return;
    for (i = 0; i < r->line.len; i++)
        r->lines += r->line.data[i] == '\n';
    if (fwrite(r->line.data, 1, r->line.len, r->f) != r->line.len || fflush(r->f) != 0) {
        dsh_log(DCS_LOG_ERROR, TAP_CAT, "record", NULL, 0,
                "cannot write the recording; recording stops");
        fclose(r->f);
        r->f = NULL;
        r->failed = 1;
    }
    r->bytes += r->line.len;
    r->line.len = 0;
    if (!r->warned && (r->bytes > DCS_CASE_MAX_BYTES || r->steps > DCS_CASE_MAX_STEPS)) {
        r->warned = 1;
        dsh_log(DCS_LOG_WARN, TAP_CAT, "record-large", NULL, 0,
                "the recording is now larger than a case may be (%u bytes, %u steps); "
                "cut it into cases",
                DCS_CASE_MAX_BYTES, DCS_CASE_MAX_STEPS);
    }
}

int tap_rec_open(tap_rec *r, const char *path, int role, const tap *t, char *why, size_t n)
{
    char when[32], id[32];
    time_t now = time(NULL);
    struct tm tm;
    size_t i;
    int fd;

    memset(r, 0, sizeof *r);
    dcs_buf_init(&r->line, NULL);
    r->role = role;
    r->iut_dir = role == TAP_ROLE_CLIENT ? TAP_C2S : TAP_S2C;
    r->start_us = t->start_us;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(r->f = fdopen(fd, "w"))) {
        snprintf(why, n, "cannot create the recording %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(id, sizeof id, "rec-%Y%m%dT%H%M%SZ", &tm);
    tap__s(&r->line, "# Recorded by " TAP_PROG " " DCS_VERSION " at ");
    tap__s(&r->line, when);
    tap__s(&r->line, ", listening on ");
    tap__text(&r->line, t->listen_path, strlen(t->listen_path));
    tap__s(&r->line, ", upstream ");
    tap__text(&r->line, t->upstream_path, strlen(t->upstream_path));
    tap__s(&r->line, ".\n# Faults:");
    for (i = 0; i < t->n_faults; i++) {
        tap__s(&r->line, " ");
        tap__text(&r->line, t->faults[i].spec, strlen(t->faults[i].spec));
    }
    tap__s(&r->line, t->n_faults ? "\n" : " none\n");
    tap__f(&r->line,
           "# The IUT is the %s: 'expect' lines are the messages it wrote, 'send' lines\n"
           "# the ones it was given (after the faults). '# +T' comments give the time\n"
           "# since the tap started. Heartbeats are recorded like any other message.\n",
           role == TAP_ROLE_CLIENT ? "client" : "server");
    tap__f(&r->line, "id %s\ntitle recorded by " TAP_PROG " between ", id);
    tap__text(&r->line, t->listen_path, strlen(t->listen_path));
    tap__s(&r->line, " and ");
    tap__text(&r->line, t->upstream_path, strlen(t->upstream_path));
    tap__f(&r->line, "\nrole %s\n\nkeepalive off\nunignore heartbeat\n",
           role == TAP_ROLE_CLIENT ? "client" : "server");
    r->steps = 2;
    tap__emit(r);
    return r->f ? 0 : (snprintf(why, n, "cannot write the recording %s", path), -1);
}

void tap_rec_close(tap_rec *r)
{
    if (r->f)
        fclose(r->f);
    r->f = NULL;
    dcs_buf_free(&r->line);
}

void tap_rec_conn(tap_rec *r, uint64_t conn, int64_t now)
{
    if (!r->f)
        return;
    r->current = conn;
    tap__stamp(r, conn, -1, 0, now);
    tap__s(&r->line, ": the client connected, the tap connected to the upstream\n");
    tap__s(&r->line, r->role == TAP_ROLE_CLIENT ? "accept\n" : "connect\n");
    r->steps++;
    tap__emit(r);
}

void tap_rec_refused(tap_rec *r, uint64_t conn, const char *reason, int64_t now)
{
    if (!r->f)
        return;
    tap__stamp(r, conn, -1, 0, now);
    tap__s(&r->line, ": the client connected; the upstream could not be reached (");
    tap__text(&r->line, reason, strlen(reason));
    tap__s(&r->line, "), so the tap closed it\n");
    if (r->role == TAP_ROLE_CLIENT) {
        r->current = conn;
        tap__s(&r->line, "accept\nclose\n");
        r->steps += 2;
    }
    tap__emit(r);
}

static int tap__has(const char *p, size_t n, const char *what)
{
    size_t k = strlen(what), i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(p + i, what, k) == 0)
            return 1;
    return 0;
}

/* Whether the JSON text p[0..n) may have a member named "...", which a
 * pattern reads as "closed object" (a cheap test: "..." then ':'). */
static int tap__dots_member(const char *p, size_t n)
{
    size_t i, j;
    for (i = 0; i + 5 <= n; i++) {
        if (memcmp(p + i, "\"...\"", 5) != 0 || (i > 0 && p[i - 1] == '\\'))
            continue;
        for (j = i + 5; j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' || p[j] == '\r');)
            j++;
        if (j < n && p[j] == ':')
            return 1;
    }
    return 0;
}

void tap_rec_msg(tap_rec *r, uint64_t conn, int dir, const dcs_message *m, int64_t now)
{
    const char *raw = m->raw.ptr;
    size_t n = m->raw.len;
    int breaks = memchr(raw, '\n', n) || memchr(raw, '\r', n), iut = dir == r->iut_dir;
    dcs_buf s;
    if (!r->f)
        return;
    r->messages++;
    dcs_buf_init(&s, NULL);
    if (iut) {
        tap__s(&s, "expect ");
        if (breaks)
            dsh_json_compact(&s, raw, n);
        else
            dcs_buf_append(&s, raw, n);
    } else if (m->has_timestamp && !breaks && !tap__has(raw, n, "${")) {
        tap__s(&s, "send ");
        dcs_buf_append(&s, raw, n);
    } else {
        tap__s(&s, "send-raw ");
        if (dcs_encode_string(&s, raw, n) != 0) {
            tap__s(&s, "hex:");
            tap__hex(&s, raw, n);
        }
    }
    tap__stamp(r, conn, dir, m->offset, now);
    tap__s(&r->line, "\n");
    if (s.len > TAP_REC_MAX_LINE) {
        r->too_long++;
        tap__f(&r->line, "# a message of %zu bytes, too long for a line of a case; not recorded",
               n);
    } else if (iut && tap__dots_member(raw, n)) {
        r->unpatternable++;
        tap__s(&r->line, "# a member named \"...\" cannot be written in a pattern: ");
        dcs_buf_append(&r->line, s.data, s.len);
    } else {
        tap__step(r, conn);
        dcs_buf_append(&r->line, s.data, s.len);
    }
    tap__s(&r->line, "\n");
    dcs_buf_free(&s);
    tap__emit(r);
}

void tap_rec_gap(tap_rec *r, uint64_t conn, int dir, const char *p, size_t n, uint64_t off,
                 int64_t now)
{
    size_t i, k;
    if (!r->f || n == 0)
        return;
    if (dir == r->iut_dir) {
        for (i = 0; i < n; i++)
            if (!(p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
                break;
        if (i == n)
            return; /* whitespace between messages: allowed, not a step */
        tap__stamp(r, conn, dir, off, now);
        tap__f(&r->line, ": the IUT wrote %zu bytes that are not a message: hex:", n);
        tap__hex(&r->line, p, n < TAP_REC_EXCERPT ? n : TAP_REC_EXCERPT);
        tap__s(&r->line, n > TAP_REC_EXCERPT ? "...\n" : "\n");
        tap__emit(r);
        return;
    }
    for (i = 0; i < n; i += k) {
        k = n - i < TAP_REC_RAW_PIECE ? n - i : TAP_REC_RAW_PIECE;
        tap__stamp(r, conn, dir, off + i, now);
        tap__f(&r->line, ": %zu bytes that are not a message\n", k);
        tap__step(r, conn);
        tap__s(&r->line, "send-raw hex:");
        tap__hex(&r->line, p + i, k);
        tap__s(&r->line, "\n");
        r->raw_pieces++;
        tap__emit(r);
    }
}

void tap_rec_error(tap_rec *r, uint64_t conn, int dir, const dcs_error *e, int64_t now)
{
    if (!r->f)
        return;
    tap__stamp(r, conn, dir, e->offset, now);
    tap__f(&r->line, ": decoding error %s: ", dcs_err_name(e->code));
    tap__text(&r->line, e->message, strlen(e->message));
    tap__s(&r->line, ".\n");
    tap__emit(r);
}

static const char *tap__side(const tap_rec *r, int side)
{
    if (side == 2)
        return "the tap";
    return (side == 0) == (r->role == TAP_ROLE_CLIENT) ? "the IUT" : "the other side";
}

void tap_rec_eof(tap_rec *r, uint64_t conn, int dir, int64_t now)
{
    if (!r->f)
        return;
    tap__stamp(r, conn, -1, 0, now);
    tap__f(&r->line, ": end of the stream %s (%s shut down writing or closed)\n",
           tap_dir_name(dir), tap__side(r, dir == TAP_C2S ? 0 : 1));
    tap__emit(r);
}

void tap_rec_end(tap_rec *r, uint64_t conn, int side, const char *what, int64_t now)
{
    int iut_side = r->role == TAP_ROLE_CLIENT ? 0 : 1;
    if (!r->f)
        return;
    tap__stamp(r, conn, -1, 0, now);
    tap__f(&r->line, ": the connection ended, first by %s (", tap__side(r, side));
    tap__text(&r->line, what, strlen(what));
    tap__s(&r->line, ")\n");
    tap__step(r, conn);
    tap__s(&r->line, side == iut_side ? "expect-close\n" : "close\n");
    tap__emit(r);
}
