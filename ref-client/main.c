/* main.c - dcs-client: the command line, the start-up checks, and the order
 * in which the program is put together and taken apart. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcs_config.h"
#include "rc.h"

static void rc_usage(FILE *f)
{
    fprintf(
        f, "usage: " RC_PROG " [OPTIONS]\n"
           "\n"
           "Play the web application (the client of the Direct Communication System):\n"
           "connect to the crawler's Unix socket, register, stay connected (heartbeats,\n"
           "reconnect with backoff and a circuit breaker, bounded queue, dedup), serve\n"
           "jobs and tokens from files, record what is delivered, and send commands.\n"
           "\n"
           "options:\n"
           "  -s, --socket PATH        the socket to connect to (default: $SOCKET_PATH, else\n"
           "                           ./data.private/config/api.sock)\n"
           "      --id ID              own id (default: $COPILOT_PROCESS_ID, else web-server)\n"
           "      --server-id ID       the server's id (default: external-crawler)\n"
           "  -j, --jobs FILE          JSON array of job objects; each request_jobs gets the\n"
           "                           queued ones, each job is handed out once and is then\n"
           "                           running until a PROGRESS_UPDATE says completed or\n"
           "                           failed; running jobs return to queued when the\n"
           "                           connection is lost or their reply is dropped\n"
           "  -t, --tokens FILE        JSON object from providerId to a token record (with a\n"
           "                           string accessToken) for TOKEN_REFRESH_REQUEST\n"
           "  -d, --deliveries FILE    write one JSON line per delivered message:\n"
           "                           {\"received\":MS,\"conn\":N,\"message\":{...}} (mode 0600)\n"
           "  -c, --command TYPE[:JSON]  send the command TYPE with the JSON object as payload\n"
           "                           (\"type\":TYPE is added); repeatable; queued until the\n"
           "                           connection is open\n"
           "      --secret-file FILE   shared secret for the HMAC handshake (spec 10.3); the\n"
           "                           file must be owned by you with mode 0600 or 0400\n"
           "      --require-handshake  refuse a server that sends no challenge\n"
           "      --server-uid UID|any the uid the server must run as (default: your own uid)\n"
           "      --set NAME=VALUE     override a timer or limit (see below); repeatable\n"
           "      --stats FILE         write statistics as JSON on exit and on SIGUSR1\n"
           "      --exit-after-jobs    stop once every job of --jobs has completed or failed\n"
           "      --log-format FORMAT  text (default) or json (one object per line)\n"
           "      --log-level LEVEL    error, warn, info (default) or debug\n"
           "  -h, --help               show this help and exit\n"
           "  -V, --version            show the version and exit\n"
           "\n"
           "Standard input: one command per line, in the syntax of --command, for example\n"
           "  PAUSE_CRAWLER\n"
           "  START_JOB:{\"jobId\":\"t-2\",\"fullPath\":\"org/app\",\"command\":\"COMMITS\"}\n"
           "Blank lines and lines starting with # are ignored. The end of standard input\n"
           "does not stop the client.\n"
           "\n"
           "Environment: SOCKET_PATH, COPILOT_PROCESS_ID, DCS_TIME_SCALE (a positive factor\n"
           "applied to every timer after --set, e.g. 0.01).\n"
           "\n"
           "Signals: SIGINT or SIGTERM stop the client: it writes what it can of its queue\n"
           "for at most DCS_T_SHUTDOWN_GRACE, closes, and exits 0; a second one exits at\n"
           "once. SIGUSR1 writes the statistics (to --stats FILE, else to stderr).\n"
           "\n"
           "Logs go to stderr. Payloads are never logged (they may carry secrets).\n"
           "\n"
           "--set NAME=VALUE (NAME is the field or the constant of spec 12.1; timers are\n"
           "milliseconds before DCS_TIME_SCALE):\n");
    dsh_config_help(f, "  ");
    fprintf(f, "\n"
               "exit status:\n"
               "  0  stopped by SIGINT or SIGTERM, or (--exit-after-jobs) every job completed\n"
               "  1  (--exit-after-jobs) every job ended and some failed; or a run-time\n"
               "     failure of the program itself\n"
               "  2  bad command line or configuration (one line on stderr)\n");
}

enum {
    OPT_ID = 256,
    OPT_SERVER_ID,
    OPT_SECRET,
    OPT_REQUIRE,
    OPT_SERVER_UID,
    OPT_EXIT_AFTER,
};

static const struct option rc_options[] = {
    {"socket", required_argument, NULL, 's'},
    {"id", required_argument, NULL, OPT_ID},
    {"server-id", required_argument, NULL, OPT_SERVER_ID},
    {"jobs", required_argument, NULL, 'j'},
    {"tokens", required_argument, NULL, 't'},
    {"deliveries", required_argument, NULL, 'd'},
    {"command", required_argument, NULL, 'c'},
    {"secret-file", required_argument, NULL, OPT_SECRET},
    {"require-handshake", no_argument, NULL, OPT_REQUIRE},
    {"server-uid", required_argument, NULL, OPT_SERVER_UID},
    {"exit-after-jobs", no_argument, NULL, OPT_EXIT_AFTER},
    DSH_OPTIONS_COMMON,
    {NULL, 0, NULL, 0},
};

struct rc_args {
    const char *socket, *id, *server_id, *jobs, *tokens, *deliveries, *secret;
    const char **commands;
    size_t n_commands;
    dsh_opts opts; /* --set, --stats, --log-format, --log-level */
    struct rc *rc; /* where the program's own options go */
};

/* One of the program's own options (see dsh_opt_parse). */
static int rc_option(void *ctx, int c, const char *arg, char *why, size_t n)
{
    struct rc_args *args = ctx;
    struct rc *rc = args->rc;
    uint64_t u;
    switch (c) {
    case 's':
        args->socket = arg;
        break;
    case OPT_ID:
        args->id = arg;
        break;
    case OPT_SERVER_ID:
        args->server_id = arg;
        break;
    case 'j':
        args->jobs = arg;
        break;
    case 't':
        args->tokens = arg;
        break;
    case 'd':
        args->deliveries = arg;
        break;
    case 'c':
        args->commands[args->n_commands++] = arg;
        break;
    case OPT_SECRET:
        args->secret = arg;
        break;
    case OPT_REQUIRE:
        rc->cfg.require_handshake = 1;
        break;
    case OPT_SERVER_UID:
        if (strcmp(arg, "any") == 0) {
            rc->cfg.server_uid = -1;
        } else if (dsh_parse_uint(arg, 4294967294u, &u) == 0) {
            rc->cfg.server_uid = (int64_t)u;
        } else {
            snprintf(why, n, "--server-uid must be a uid or 'any', not '%s'", arg);
            return -1;
        }
        break;
    case OPT_EXIT_AFTER:
        rc->exit_after_jobs = 1;
        break;
    }
    return 0;
}

/* Parse the command line into rc and args. 0: go on; 1: done (help or
 * version was shown); -1: a configuration error (why is set). */
static int rc_parse(int argc, char **argv, struct rc *rc, struct rc_args *args, char *why, size_t n)
{
    int r;
    args->rc = rc;
    r = dsh_opt_parse(argc, argv, ":s:j:t:d:c:hV", rc_options, &args->opts, rc_usage, rc_option,
                      args, why, n);
    if (r != 0)
        return r;
    rc->stats_path = args->opts.stats_path;
    if (rc->exit_after_jobs && !args->jobs) {
        snprintf(why, n, "--exit-after-jobs needs --jobs");
        return -1;
    }
    if (rc->cfg.require_handshake && !args->secret) {
        snprintf(why, n, "--require-handshake needs --secret-file");
        return -1;
    }
    return 0;
}

/* Everything between the command line and the loop. */
static int rc_setup(struct rc *rc, struct rc_args *args, char *why, size_t n)
{
    const char *env_id = getenv("COPILOT_PROCESS_ID");
    size_t i;
    int err;

    if (dsh_socket_path(args->socket, rc->socket_path, sizeof rc->socket_path, why, n))
        return -1;
    rc->id = args->id ? args->id : (env_id && env_id[0]) ? env_id : "web-server";
    if (dsh_check_id(args->id ? "--id" : "COPILOT_PROCESS_ID", rc->id, why, n))
        return -1;
    if (args->server_id && dsh_check_id("--server-id", args->server_id, why, n))
        return -1;
    if (dsh_config_finish(&rc->cfg.s, &rc->scale, why, n))
        return -1;
    /* Commands are checked now, so that a typo stops the program at once. */
    for (i = 0; i < args->n_commands; i++) {
        dcs_slice key;
        char sub[200];
        rc->scratch2.len = 0;
        if (rc_command_parse(args->commands[i], strlen(args->commands[i]), &key, &rc->scratch2, sub,
                             sizeof sub)) {
            snprintf(why, n, "--command '%.40s': %s", args->commands[i], sub);
            return -1;
        }
    }
    if (args->jobs && rc_jobs_load(rc, args->jobs, why, n))
        return -1;
    if (args->tokens && rc_tokens_load(rc, args->tokens, why, n))
        return -1;
    if (args->secret && dsh_secret_read(args->secret, &rc->secret, &rc->secret_len, why, n))
        return -1;
    if (args->deliveries && rc_deliveries_open(rc, args->deliveries, why, n))
        return -1;
    if (dsh_rng_init(&rc->cfg.rng)) {
        snprintf(why, n, "cannot initialise libsodium");
        return -1;
    }
    if (rc_loop_init(rc, why, n))
        return -1;
    rc->cfg.id = rc->id;
    rc->cfg.server_id = args->server_id;
    rc->cfg.pid = (int64_t)getpid();
    rc->cfg.secret = rc->secret;
    rc->cfg.secret_len = rc->secret_len;
    /* The machine's wall clock is the loop's clock plus a fixed offset. */
    rc->cfg.wall_offset = dsh_wall_ms() - rc_now(rc);
    rc->started_wall = rc_now(rc) + rc->cfg.wall_offset;
    rc->cl = dcs_client_new(&rc->cfg, &err);
    if (!rc->cl) {
        snprintf(why, n, "cannot create the client: %s", dcs_strerror(err));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct rc rc;
    struct rc_args args;
    char why[512];
    int code;

    signal(SIGPIPE, SIG_IGN); /* EPIPE is the end of a connection (spec 3.1) */
    memset(&rc, 0, sizeof rc);
    memset(&args, 0, sizeof args);
    dcs_client_config_init(&rc.cfg);
    rc.cfg.server_uid = (int64_t)geteuid();
    dcs_buf_init(&rc.scratch, NULL);
    dcs_buf_init(&rc.scratch2, NULL);
    dsh_opts_init(&args.opts, RC_PROG, &rc.cfg.s);
    args.commands = calloc((size_t)argc + 1, sizeof *args.commands);
    if (!args.commands) {
        dsh_config_error(RC_PROG, "out of memory");
        return DSH_EXIT_RUNTIME;
    }

    code = rc_parse(argc, argv, &rc, &args, why, sizeof why);
    if (code == 0) {
        dsh_log_setup(RC_PROG, args.opts.log_format, args.opts.log_level, stderr);
        code = rc_setup(&rc, &args, why, sizeof why);
    }
    if (code < 0) {
        dsh_config_error(RC_PROG, "%s", why);
        code = DSH_EXIT_CONFIG;
    } else if (code == 1) {
        code = DSH_EXIT_OK;
    } else {
        dsh_field f[] = {DSH_STR("socket", rc.socket_path), DSH_STR("id", rc.id)};
        size_t i;
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "start", f, 2, RC_PROG " %s started", DCS_VERSION);
        /* The --command messages wait in the machine's queue for the first
         * connection, behind its register. */
        for (i = 0; i < args.n_commands; i++)
            rc_command_send(&rc, rc_now(&rc), args.commands[i], strlen(args.commands[i]));
        code = rc_loop_run(&rc);
        if (rc.stats_path)
            rc_stats_write(&rc, 0);
        dsh_log(DCS_LOG_INFO, DCS_CAT_MANAGER, "exit", NULL, 0, "exiting with status %d", code);
    }

    if (rc.loop_inited)
        rc_loop_fini(&rc);
    dcs_client_free(rc.cl);
    rc_kinds_free(&rc.delivered);
    rc_kinds_free(&rc.written);
    rc_files_fini(&rc);
    dsh_secret_free(rc.secret, rc.secret_len);
    dcs_buf_free(&rc.scratch);
    dcs_buf_free(&rc.scratch2);
    free(args.commands);
    return code;
}
