/* flow.c - one direction of a connection: read from one socket, frame the
 * bytes with the codec's decoder, apply the faults, queue, write to the
 * other socket.
 *
 * The path of a byte:
 *
 *   recv(src) -> input framer (messages, offsets; drop and dup here)
 *             -> queue of segments (corrupt when queued; each segment
 *                carries its ready time: delay)
 *             -> send(dst) in writes cut at slice pieces and at the byte
 *                counts of stall and reset -> output framer
 *
 * Without drop or dup a chunk is queued as soon as it is read, so the tap
 * adds no latency of its own. With drop or dup in a direction ("hold"),
 * only bytes known to lie outside a partial message are queued: whole
 * messages, and the bytes between them once the decoder has passed them.
 * Stream order is kept either way. Offsets of corrupt, stall and reset are
 * offsets of the stream as written to the receiving peer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include "tap.h"

#define TAP_DRAIN_FIRST_US 20   /* slice: first look at the peer's progress */
#define TAP_DRAIN_MAX_US 1000   /* slice: longest interval between looks */
#define TAP_PAUSE_US 1000       /* slice without SIOCOUTQ: pause between pieces */

/* ------------------------------------------------------------------------ */
/* The framer                                                                */

static int tap__framer_init(tap_framer *f, int keep)
{
    int err = 0;
    memset(f, 0, sizeof *f);
    f->keep = keep;
    dcs_buf_init(&f->buf, NULL);
    f->dec = dcs_decoder_new(NULL, &err);
    return f->dec ? 0 : -1;
}

static void tap__framer_fini(tap_framer *f)
{
    dcs_decoder_free(f->dec);
    dcs_buf_free(&f->buf);
    f->dec = NULL;
}

/* The kept bytes [f->base, upto) are outside any message: hand them on. */
static void tap__framer_gap(tap_framer *f, uint64_t upto, const tap_frame_ops *ops, void *ctx,
                            uint64_t buf_base)
{
    if (upto <= f->base)
        return;
    if (f->keep)
        ops->gap(ctx, f->buf.data + (f->base - buf_base), (size_t)(upto - f->base), f->base);
    f->base = upto;
}

/* Forget the kept bytes before f->base (buf.data[0] is at buf_base). */
static void tap__framer_compact(tap_framer *f, uint64_t buf_base)
{
    size_t k = (size_t)(f->base - buf_base);
    if (!f->keep || k == 0)
        return;
    memmove(f->buf.data, f->buf.data + k, f->buf.len - k);
    f->buf.len -= k;
}

/* Feed p[0..n). -1 if the bytes could not be kept (no memory). */
static int tap__framer_feed(tap_framer *f, const char *p, size_t n, const tap_frame_ops *ops,
                            void *ctx)
{
    uint64_t buf_base = f->base;
    dcs_message m;
    dcs_error e;
    int ev;
    if (f->keep && dcs_buf_append(&f->buf, p, n) != 0)
        return -1;
    f->end += n;
    dcs_decoder_feed(f->dec, p, n);
    while ((ev = dcs_decoder_next(f->dec, &m, &e)) != DCS_AGAIN) {
        if (ev == DCS_MESSAGE) {
            f->messages++;
            tap__framer_gap(f, m.offset, ops, ctx, buf_base);
            ops->msg(ctx, &m);
            f->base = m.offset + m.raw.len;
        } else {
            f->errors++;
            ops->error(ctx, &e);
        }
    }
    /* Between messages, everything read so far is outside any message;
     * inside one, only what lies further back than the largest message
     * can be (spec 4.4): a message still open started after that. */
    if (dcs_decoder_idle(f->dec))
        tap__framer_gap(f, f->end, ops, ctx, buf_base);
    else if (f->end - f->base > DCS_DEFAULT_MAX_MESSAGE_SIZE)
        tap__framer_gap(f, f->end - DCS_DEFAULT_MAX_MESSAGE_SIZE, ops, ctx, buf_base);
    tap__framer_compact(f, buf_base);
    return 0;
}

/* The end of the stream: report what the decoder still has, hand on the
 * rest (a truncated message) as bytes outside any message. */
static void tap__framer_finish(tap_framer *f, const tap_frame_ops *ops, void *ctx)
{
    uint64_t buf_base = f->base;
    dcs_error e;
    while (dcs_decoder_finish(f->dec, &e) == DCS_ERROR) {
        f->errors++;
        ops->error(ctx, &e);
    }
    tap__framer_gap(f, f->end, ops, ctx, buf_base);
    tap__framer_compact(f, buf_base);
}

/* ------------------------------------------------------------------------ */
/* The queue                                                                 */

static tap *tap__of(const tap_dir *d)
{
    return d->c->tap;
}

#define TAP_FOR_FAULTS(d, i, f)                                                   \
    for (i = 0; i < tap__of(d)->n_faults; i++)                                   \
        if ((f = &tap__of(d)->faults[i]), ((d)->mine & (1u << i)) != 0)

static void tap__log_fault(const tap_dir *d, const tap_fault *f, int level, const char *fmt,
                           uint64_t off)
{
    char reason[24];
    dsh_field fl[] = {DSH_INT("conn", d->c->id), DSH_STR("dir", tap_dir_name(d->id)),
                      DSH_STR("fault", f->spec), DSH_INT("offset", off)};
    snprintf(reason, sizeof reason, "fault-%s", tap_fault_name(f->kind));
    dsh_log(level, TAP_CAT, reason, fl, 4, fmt, tap_fault_name(f->kind));
}

/* Queue a copy of p[0..n) for writing, to be written from now + delay. */
static void tap__enqueue(tap_dir *d, const char *p, size_t n)
{
    tap_fault *f;
    tap_seg *s;
    size_t i;
    if (n == 0 || d->c->dead)
        return;
    if (!(s = malloc(sizeof *s + n))) {
        tap_conn_end(d->c, 1, 2, "out of memory");
        return;
    }
    memcpy(s->data, p, n);
    s->len = n;
    s->off = 0;
    s->next = NULL;
    s->ready_us = d->now + d->delay_us;
    TAP_FOR_FAULTS(d, i, f) {
        if (f->kind == TAP_F_DELAY && f->n > 0) {
            f->applied++;
            if (!d->said_delay++)
                tap__log_fault(d, f, DCS_LOG_INFO, "%s: every chunk waits before it is written",
                               d->q_end);
        } else if (f->kind == TAP_F_CORRUPT && !(d->done & (1u << i)) && f->n >= d->q_end &&
                   f->n < d->q_end + n) {
            unsigned char *b = (unsigned char *)s->data + (f->n - d->q_end);
            *b = *b == 0xff ? 0xfe : 0xff; /* never valid UTF-8: always a decoding error */
            d->done |= 1u << i;
            f->applied++;
            tap__log_fault(d, f, DCS_LOG_INFO, "%s: replaced the byte at this offset", f->n);
        }
    }
    if (d->tail)
        d->tail->next = s;
    else
        d->head = s;
    d->tail = s;
    d->queued += n;
    d->q_end += n;
}

/* ------------------------------------------------------------------------ */
/* What the framers report                                                   */

static void tap__in_gap(void *ctx, const char *p, size_t n, uint64_t off)
{
    tap_dir *d = ctx;
    if (d->hold)
        tap__enqueue(d, p, n);
    if (d->rec == 1)
        tap_rec_gap(&tap__of(d)->rec, d->c->id, d->id, p, n, off, d->now);
}

static void tap__in_msg(void *ctx, const dcs_message *m)
{
    tap_dir *d = ctx;
    tap_fault *f;
    size_t i;
    int copies = 1;
    tap__of(d)->dir[d->id].messages_in++;
    if (d->rec == 1)
        tap_rec_msg(&tap__of(d)->rec, d->c->id, d->id, m, d->now);
    if (!d->hold)
        return;
    TAP_FOR_FAULTS(d, i, f) {
        if ((f->kind != TAP_F_DROP && f->kind != TAP_F_DUP) || f->used ||
            !tap_fault_matches(f, &m->type, &m->key))
            continue;
        f->used = 1;
        f->applied++;
        copies = f->kind == TAP_F_DROP ? 0 : 2;
        tap__log_fault(d, f, DCS_LOG_INFO,
                       copies ? "%s: wrote the message read at this offset twice"
                              : "%s: dropped the message read at this offset",
                       m->offset);
        break;
    }
    while (copies-- > 0)
        tap__enqueue(d, m->raw.ptr, m->raw.len);
}

static void tap__log_decode(const tap_dir *d, const char *side, const dcs_error *e)
{
    dsh_field fl[] = {DSH_INT("conn", d->c->id), DSH_STR("dir", tap_dir_name(d->id)),
                      DSH_STR("side", side), DSH_INT("offset", e->offset)};
    dsh_log(DCS_LOG_DEBUG, TAP_CAT, dcs_err_name(e->code), fl, 4, "decoding error: %s",
            e->message);
}

static void tap__in_error(void *ctx, const dcs_error *e)
{
    tap_dir *d = ctx;
    tap__of(d)->dir[d->id].errors_in++;
    tap__log_decode(d, "read", e);
    if (d->rec == 1)
        tap_rec_error(&tap__of(d)->rec, d->c->id, d->id, e, d->now);
}

static void tap__out_gap(void *ctx, const char *p, size_t n, uint64_t off)
{
    tap_dir *d = ctx;
    if (d->rec == 2)
        tap_rec_gap(&tap__of(d)->rec, d->c->id, d->id, p, n, off, d->now);
}

static void tap__out_msg(void *ctx, const dcs_message *m)
{
    tap_dir *d = ctx;
    tap__of(d)->dir[d->id].messages_out++;
    if (d->rec == 2)
        tap_rec_msg(&tap__of(d)->rec, d->c->id, d->id, m, d->now);
}

static void tap__out_error(void *ctx, const dcs_error *e)
{
    tap_dir *d = ctx;
    tap__of(d)->dir[d->id].errors_out++;
    tap__log_decode(d, "written", e);
    if (d->rec == 2)
        tap_rec_error(&tap__of(d)->rec, d->c->id, d->id, e, d->now);
}

static const tap_frame_ops tap__in_ops = {tap__in_gap, tap__in_msg, tap__in_error};
static const tap_frame_ops tap__out_ops = {tap__out_gap, tap__out_msg, tap__out_error};

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

int tap_conn_init(tap *t, tap_conn *c)
{
    size_t i;
    int k;
    for (k = 0; k < 2; k++) {
        tap_dir *d = &c->d[k];
        memset(d, 0, sizeof *d);
        d->c = c;
        d->id = k;
        d->src = c->fd[k == TAP_C2S ? 0 : 1];
        d->dst = c->fd[k == TAP_C2S ? 1 : 0];
        d->slice_fault = -1;
        for (i = 0; i < t->n_faults; i++) {
            tap_fault *f = &t->faults[i];
            if (!(f->dirs & TAP_DIR_BIT(k)))
                continue;
            d->mine |= 1u << i;
            if (f->kind == TAP_F_DROP || f->kind == TAP_F_DUP)
                d->hold = 1;
            else if (f->kind == TAP_F_DELAY)
                d->delay_us += (int64_t)f->n * 1000;
            else if (f->kind == TAP_F_SLICE && (!d->slice || f->n < d->slice)) {
                d->slice = (size_t)f->n;
                d->slice_fault = (int)i;
            }
        }
        if (t->recording)
            d->rec = k == t->rec.iut_dir ? 1 : 2;
        if (tap__framer_init(&d->in, d->hold || d->rec == 1) ||
            tap__framer_init(&d->out, d->rec == 2))
            return -1;
    }
    return 0;
}

void tap_conn_finish_framers(tap_conn *c, int64_t now)
{
    int k;
    for (k = 0; k < 2; k++) {
        tap_dir *d = &c->d[k];
        d->now = now;
        if (!d->eof)
            tap__framer_finish(&d->in, &tap__in_ops, d);
        tap__framer_finish(&d->out, &tap__out_ops, d);
    }
}

void tap_conn_fini(tap_conn *c)
{
    int k;
    for (k = 0; k < 2; k++) {
        tap_dir *d = &c->d[k];
        while (d->head) {
            tap_seg *s = d->head;
            d->head = s->next;
            free(s);
        }
        d->tail = NULL;
        tap__framer_fini(&d->in);
        tap__framer_fini(&d->out);
    }
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

int tap_dir_can_read(const tap_dir *d)
{
    return !d->c->dead && !d->eof && d->queued + d->in.buf.len < TAP_DIR_CAP;
}

void tap_dir_read(tap_dir *d, int64_t now)
{
    tap *t = tap__of(d);
    char buf[TAP_READ_CHUNK];
    ssize_t r;
    if (!tap_dir_can_read(d))
        return;
    d->now = now;
    do
        r = recv(d->src, buf, sizeof buf, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno == ECONNRESET) {
        /* The sender closed while it had not read everything we wrote to it
         * (Linux then resets its peer): what it wrote before is already
         * queued here and is still delivered, as at the end of its stream. */
        dsh_field fl[] = {DSH_INT("conn", d->c->id), DSH_STR("dir", tap_dir_name(d->id))};
        dsh_log(DCS_LOG_DEBUG, TAP_CAT, "reset", fl, 2,
                "the sender closed with input unread (reset); what it wrote is still delivered");
        r = 0;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            tap_conn_end(d->c, 1, d->id == TAP_C2S ? 0 : 1, strerror(errno));
        return;
    }
    if (r == 0) {
        d->eof = 1;
        tap__framer_finish(&d->in, &tap__in_ops, d);
        tap_conn_eof(d->c, d->id == TAP_C2S ? 0 : 1);
        return;
    }
    t->dir[d->id].bytes_in += (uint64_t)r;
    if (d->broken)
        return; /* nobody reads it any more */
    if (!d->hold)
        tap__enqueue(d, buf, (size_t)r);
    if (tap__framer_feed(&d->in, buf, (size_t)r, &tap__in_ops, d) != 0)
        tap_conn_end(d->c, 1, 2, "out of memory");
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

/* Cut a write at the next byte count of a stall or reset not yet reached. */
static size_t tap__cap(tap_dir *d, size_t want)
{
    tap_fault *f;
    size_t i;
    TAP_FOR_FAULTS(d, i, f) {
        uint64_t mark = f->kind == TAP_F_STALL ? f->at : f->n;
        if ((f->kind != TAP_F_STALL && f->kind != TAP_F_RESET) || (d->done & (1u << i)))
            continue;
        if (mark > d->out_off && mark - d->out_off < want)
            want = (size_t)(mark - d->out_off);
    }
    return want;
}

/* Fire the stalls and resets whose byte count has just been reached. */
static void tap__marks(tap_dir *d)
{
    tap_fault *f;
    size_t i;
    TAP_FOR_FAULTS(d, i, f) {
        uint64_t mark = f->kind == TAP_F_STALL ? f->at : f->n;
        if ((f->kind != TAP_F_STALL && f->kind != TAP_F_RESET) || (d->done & (1u << i)) ||
            mark != d->out_off)
            continue;
        d->done |= 1u << i;
        f->applied++;
        if (f->kind == TAP_F_STALL) {
            int64_t until = d->now + (int64_t)f->n * 1000;
            if (until > d->stall_until_us)
                d->stall_until_us = until;
            tap__log_fault(d, f, DCS_LOG_INFO, "%s: stopped forwarding after this many bytes",
                           d->out_off);
        } else {
            tap__log_fault(d, f, DCS_LOG_INFO, "%s: resetting both sockets after this many bytes",
                           d->out_off);
            tap_conn_end(d->c, 1, 2, "reset fault");
            return;
        }
    }
}

void tap_conn_start(tap_conn *c, int64_t now)
{
    int k;
    for (k = 0; k < 2 && !c->dead; k++) {
        c->d[k].now = now;
        tap__marks(&c->d[k]);
    }
}

/* Slice: 1 once the peer has read every byte written so far (the socket's
 * send queue, SIOCOUTQ, is empty), so that each piece is a read of its
 * own; where SIOCOUTQ does not work, once a pause of 1 ms is over. */
static int tap__drained(tap_dir *d)
{
    int q = 0;
    if (d->no_outq)
        return 1;
#ifdef SIOCOUTQ
    if (ioctl(d->dst, SIOCOUTQ, &q) == 0) {
        if (q == 0)
            return 1;
        d->drain_step_us = d->drain_step_us * 2 > TAP_DRAIN_MAX_US ? TAP_DRAIN_MAX_US
                                                                   : d->drain_step_us * 2;
        d->drain_check_us = d->now + d->drain_step_us;
        return 0;
    }
#endif
    d->no_outq = 1;
    d->drain_check_us = d->now + TAP_PAUSE_US;
    return 0;
}

/* The destination of d stopped reading (it closed: EPIPE, ECONNRESET). What
 * is queued for it can never be written, but the other direction goes on
 * until its own end, so that what the closing peer wrote last (a close
 * notice, still being sliced) is delivered whole. Later input of d is read
 * and dropped. */
static void tap__broken(tap_dir *d, const char *why)
{
    tap_seg *s, *n;
    dsh_field fl[] = {DSH_INT("conn", d->c->id), DSH_STR("dir", tap_dir_name(d->id)),
                      DSH_INT("dropped", (int64_t)d->queued)};
    for (s = d->head; s; s = n) {
        n = s->next;
        free(s);
    }
    d->head = d->tail = NULL;
    d->queued = 0;
    d->broken = 1;
    d->shut = 1;
    dsh_log(DCS_LOG_DEBUG, TAP_CAT, "half-closed", fl, 3,
            "the receiver closed (%s); the other direction goes on to its end", why);
}

void tap_dir_flush(tap_dir *d, int64_t now)
{
    tap *t = tap__of(d);
    tap_conn *c = d->c;
    d->now = now;
    while (!c->dead && !d->shut) {
        tap_seg *s = d->head;
        size_t want;
        ssize_t w;
        if (d->stall_until_us > now)
            return;
        if (d->draining) {
            if (now < d->drain_check_us || !tap__drained(d))
                return;
            d->draining = 0;
        }
        if (!s) {
            if (d->eof) {
                shutdown(d->dst, SHUT_WR);
                d->shut = 1;
                dsh_field fl[] = {DSH_INT("conn", c->id), DSH_STR("dir", tap_dir_name(d->id))};
                dsh_log(DCS_LOG_DEBUG, TAP_CAT, "half-close", fl, 2,
                        "end of stream passed on (shutdown for writing)");
            }
            return;
        }
        if (s->ready_us > now || d->wblocked)
            return;
        want = s->len - s->off;
        if (d->slice && want > d->slice)
            want = d->slice;
        want = tap__cap(d, want);
        w = send(d->dst, s->data + s->off, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                d->wblocked = 1;
            else if ((errno == EPIPE || errno == ECONNRESET) && !c->d[!d->id].broken)
                tap__broken(d, strerror(errno));
            else
                tap_conn_end(c, 1, d->id == TAP_C2S ? 1 : 0, strerror(errno));
            return;
        }
        s->off += (size_t)w;
        d->queued -= (size_t)w;
        d->out_off += (uint64_t)w;
        t->dir[d->id].bytes_out += (uint64_t)w;
        if (tap__framer_feed(&d->out, s->data + s->off - w, (size_t)w, &tap__out_ops, d) != 0) {
            tap_conn_end(c, 1, 2, "out of memory");
            return;
        }
        if (s->off == s->len) {
            d->head = s->next;
            if (!d->head)
                d->tail = NULL;
            free(s);
        }
        if (d->slice) {
            tap_fault *f = &t->faults[d->slice_fault];
            f->applied++;
            if (!d->said_slice++)
                tap__log_fault(d, f, DCS_LOG_INFO,
                               "%s: writing in pieces, each once the peer read the last",
                               d->out_off);
            d->draining = 1;
            d->drain_step_us = TAP_DRAIN_FIRST_US;
            d->drain_check_us = now + (d->no_outq ? TAP_PAUSE_US : TAP_DRAIN_FIRST_US);
        }
        tap__marks(d);
    }
}

int tap_dir_wants_pollout(const tap_dir *d)
{
    return !d->c->dead && !d->shut && d->wblocked;
}

int64_t tap_dir_deadline(const tap_dir *d, int64_t now)
{
    if (d->c->dead || d->shut)
        return INT64_MAX;
    if (d->stall_until_us > now)
        return d->stall_until_us;
    if (d->draining)
        return d->drain_check_us;
    if (d->head && !d->wblocked && d->head->ready_us > now)
        return d->head->ready_us;
    return INT64_MAX;
}

int tap_conn_finished(const tap_conn *c)
{
    return c->d[0].shut && c->d[1].shut;
}
