/* main.c - dcs-tap: the command line, the start-up checks, and the order in
 * which the program is put together and taken apart. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "dcs_config.h"
#include "tap.h"

static void tap_usage(FILE *f)
{
    fprintf(
        f,
        "usage: " TAP_PROG " --listen PATH --upstream PATH [OPTIONS]\n"
        "\n"
        "A recording and fault-injecting proxy for the Direct Communication System on\n"
        "Unix sockets: listen on PATH and, for every client that connects, connect to\n"
        "the upstream socket and forward the bytes both ways (end of stream passed on\n"
        "as a shutdown for writing, at most 4 MiB held per direction before the tap\n"
        "stops reading). Messages are framed with the dcs decoder as they pass; bytes\n"
        "that are not messages are forwarded unchanged.\n"
        "\n"
        "options:\n"
        "  -l, --listen PATH     the socket to listen on (created with mode 0600; a\n"
        "                        stale socket file is replaced)\n"
        "  -u, --upstream PATH   the socket to connect to for every accepted client\n"
        "      --grace MS        after SIGINT or SIGTERM, let connections finish for at\n"
        "                        most MS milliseconds (default 2000; see below)\n"
        "      --mirror-upstream keep the listen path in the state of the upstream's\n"
        "                        socket file, so that a client finds what it would\n"
        "                        find there: no file (connect: ENOENT) while the\n"
        "                        upstream's is missing, a socket nobody listens on\n"
        "                        (ECONNREFUSED) while the upstream's is stale, a\n"
        "                        listener while the upstream listens. The upstream is\n"
        "                        never connected to for this: stat() and\n"
        "                        /proc/net/unix (Linux), every 1 ms (longer where\n"
        "                        reading /proc/net/unix is slow). Connections already\n"
        "                        accepted stay. For the conformance harness's socket\n"
        "                        steps (spec/PROTOCOL.md 8.1, 8.3, 8.4)\n"
        "  -f, --fault SPEC      inject a fault (repeatable; see below)\n"
        "  -r, --record FILE     write a transcript (spec/TRANSCRIPTS.md) of every\n"
        "                        connection to FILE (mode 0600), flushed as it goes\n"
        "      --role ROLE       the implementation under test in the recording:\n"
        "                        client (default: the client's messages are 'expect'\n"
        "                        lines) or server\n"
        "      --stats FILE      write statistics as JSON on exit and on SIGUSR1\n"
        "      --log-format FMT  text (default) or json (one object per line)\n"
        "      --log-level LEVEL error, warn, info (default) or debug\n"
        "  -h, --help            show this help and exit\n"
        "  -V, --version         show the version and exit\n"
        "\n"
        "faults (DIR is c2s, from the client to the upstream, or s2c; default both):\n"
        "  slice=N[:DIR]         write in pieces of N bytes, each once the peer has read\n"
        "                        the one before (its send queue, SIOCOUTQ, is empty)\n"
        "  delay=MS[:DIR]        write every chunk MS milliseconds after it was read\n"
        "  stall=MS@BYTES[:DIR]  after BYTES bytes of a connection, write nothing for MS\n"
        "                        milliseconds\n"
        "  drop=TYPE[/KEY][:DIR] drop the first message of that type (and key), once\n"
        "  dup=TYPE[/KEY][:DIR]  write the first message of that type (and key) twice,\n"
        "                        once; with drop or dup, whole messages only are written\n"
        "  corrupt=OFFSET[:DIR]  replace the byte at that stream offset of every\n"
        "                        connection by 0xff (0xfe if it was 0xff)\n"
        "  reset=BYTES[:DIR]     after BYTES bytes of a connection, reset both sockets\n"
        "                        (SO_LINGER 0, close), wherever that is in a message\n"
        "Offsets and byte counts are those of the stream the receiving peer reads.\n"
        "\n"
        "Signals: SIGINT or SIGTERM stop accepting and remove the socket file; the\n"
        "connections go on until both their directions have ended and what was read\n"
        "is written (the peers' last words: a shutdown, a close notice), for at most\n"
        "--grace MS (default 2000), then the tap closes what is left, writes the\n"
        "statistics and exits 0; a second signal closes everything at once. SIGUSR1\n"
        "writes the statistics (to --stats FILE, else to stderr).\n"
        "\n"
        "Logs go to stderr, category 'tap'. Payloads are never logged; a recording\n"
        "holds them whole (tokens included).\n"
        "\n"
        "exit status:\n"
        "  0  stopped by SIGINT or SIGTERM\n"
        "  1  a run-time failure of the program itself\n"
        "  2  bad command line (one line on stderr)\n"
        "  3  something is listening on --listen already (one line on stderr)\n");
}

enum { OPT_ROLE = 256, OPT_MIRROR, OPT_GRACE };

static const struct option tap_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"upstream", required_argument, NULL, 'u'},
    {"fault", required_argument, NULL, 'f'},
    {"record", required_argument, NULL, 'r'},
    {"role", required_argument, NULL, OPT_ROLE},
    {"mirror-upstream", no_argument, NULL, OPT_MIRROR},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"stats", required_argument, NULL, DSH_OPT_STATS},
    {"log-format", required_argument, NULL, DSH_OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, DSH_OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* One of the program's own options (see dsh_opt_parse). */
static int tap_option(void *ctx, int c, const char *arg, char *why, size_t n)
{
    tap *t = ctx;
    switch (c) {
    case 'l':
        t->listen_path = arg;
        break;
    case 'u':
        t->upstream_path = arg;
        break;
    case 'r':
        t->record_path = arg;
        break;
    case OPT_MIRROR:
        t->mirror = 1;
        break;
    case OPT_GRACE: {
        uint64_t ms;
        if (dsh_parse_uint(arg, 3600000, &ms) != 0) {
            snprintf(why, n, "--grace needs milliseconds from 0 to 3600000, not '%s'", arg);
            return -1;
        }
        t->grace_us = (int64_t)ms * 1000;
        break;
    }
    case OPT_ROLE:
        if (strcmp(arg, "client") == 0)
            t->role = TAP_ROLE_CLIENT;
        else if (strcmp(arg, "server") == 0)
            t->role = TAP_ROLE_SERVER;
        else {
            snprintf(why, n, "--role must be client or server, not '%s'", arg);
            return -1;
        }
        break;
    case 'f':
        if (t->n_faults == TAP_MAX_FAULTS) {
            snprintf(why, n, "at most %d --fault options", TAP_MAX_FAULTS);
            return -1;
        }
        if (tap_fault_parse(arg, &t->faults[t->n_faults], why, n) != 0)
            return -1;
        t->n_faults++;
        break;
    }
    return 0;
}

static int tap_check_path(const char *what, const char *path, char *why, size_t n)
{
    if (!path) {
        snprintf(why, n, "%s PATH is required (see --help)", what);
        return -1;
    }
    if (!path[0] || strlen(path) > 107) {
        snprintf(why, n, "%s: the path must have 1 to 107 bytes", what);
        return -1;
    }
    return 0;
}

/* 0: go on; 1: done (help or version); -1: a configuration error (why). */
static int tap_parse(int argc, char **argv, tap *t, dsh_opts *o, char *why, size_t n)
{
    int r = dsh_opt_parse(argc, argv, ":l:u:f:r:hV", tap_options, o, tap_usage, tap_option, t,
                          why, n);
    if (r != 0)
        return r;
    t->stats_path = o->stats_path;
    if (tap_check_path("--listen", t->listen_path, why, n) ||
        tap_check_path("--upstream", t->upstream_path, why, n))
        return -1;
    if (strcmp(t->listen_path, t->upstream_path) == 0) {
        snprintf(why, n, "--listen and --upstream must be different sockets");
        return -1;
    }
    if (t->mirror && strchr(t->upstream_path, '\n')) {
        /* its line in /proc/net/unix would be two */
        snprintf(why, n, "--mirror-upstream: the upstream path must not contain a line break");
        return -1;
    }
    if (t->record_path && !t->record_path[0]) {
        snprintf(why, n, "--record: the file name is empty");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    tap t;
    dsh_opts o;
    char why[512];
    size_t i;
    int code;

    signal(SIGPIPE, SIG_IGN); /* a write to a closed peer is EPIPE: the connection ends */
    memset(&t, 0, sizeof t);
    t.lfd = -1;
    t.bfd = -1;
    t.role = TAP_ROLE_CLIENT;
    t.grace_us = 2000000;
    dsh_opts_init(&o, TAP_PROG, NULL);

    code = tap_parse(argc, argv, &t, &o, why, sizeof why);
    if (code == 0) {
        dsh_log_setup(TAP_PROG, o.log_format, o.log_level, stderr);
        t.start_us = tap_now_us();
        t.start_wall_ms = dsh_wall_ms();
        code = tap_listen(&t, why, sizeof why);
        if (code == 0 && t.record_path) {
            code = tap_rec_open(&t.rec, t.record_path, t.role, &t, why, sizeof why);
            t.recording = code == 0;
        }
    }
    if (code == TAP_EXIT_BUSY) {
        dsh_config_error(TAP_PROG, "%s", why);
    } else if (code < 0) {
        dsh_config_error(TAP_PROG, "%s", why);
        code = DSH_EXIT_CONFIG;
    } else if (code == 1) {
        code = DSH_EXIT_OK;
    } else {
        dsh_field fl[] = {DSH_STR("listen", t.listen_path), DSH_STR("upstream", t.upstream_path),
                          DSH_STR("mirror", t.mirror ? tap_mirror_state_name(t.mstate) : "off")};
#ifdef __linux__
        /* Timers to the microsecond: the slice fault looks at the peer's
         * progress every few tens of microseconds. */
        prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
        for (i = 0; i < t.n_faults; i++) {
            dsh_field ff[] = {DSH_STR("fault", t.faults[i].spec)};
            dsh_log(DCS_LOG_INFO, TAP_CAT, "fault", ff, 1, "fault armed");
        }
        dsh_log(DCS_LOG_INFO, TAP_CAT, "start", fl, t.mirror ? 3 : 2,
                t.mirror && t.mstate != TAP_UP_LISTENING ? TAP_PROG " %s started"
                                                         : TAP_PROG " %s listening",
                DCS_VERSION);
        code = tap_run(&t);
        tap_stats(&t, 1);
        dsh_log(DCS_LOG_INFO, TAP_CAT, "exit", NULL, 0, "exiting with status %d", code);
    }

    if (t.lfd >= 0)
        close(t.lfd);
    if (t.bfd >= 0)
        close(t.bfd);
    tap_unlink(&t);
    tap_mirror_fini(&t);
    if (t.recording)
        tap_rec_close(&t.rec);
    for (i = 0; i < t.n_faults; i++)
        tap_fault_free(&t.faults[i]);
    return code;
}
