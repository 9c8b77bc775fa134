/* main.c - dcs-server: the command line, the start-up checks, and the order
 * in which the program is put together and taken apart. */
#include <getopt.h>
#include <grp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcs_config.h"
#include "rs.h"

static void rs_usage(FILE *f)
{
    fprintf(
        f, "usage: " RS_PROG " [OPTIONS]\n"
           "\n"
           "Play the crawler (the server of the Direct Communication System): listen on a\n"
           "Unix socket, authenticate every client by peer credentials (and the HMAC\n"
           "handshake with --secret-file), ask registered clients for jobs and \"crawl\"\n"
           "them by sending PROGRESS_UPDATE messages; honour START_JOB, PAUSE_CRAWLER and\n"
           "RESUME_CRAWLER.\n"
           "\n"
           "options:\n"
           "  -s, --socket PATH        the socket to listen on (default: $SOCKET_PATH, else\n"
           "                           ./data.private/config/api.sock); its directory is\n"
           "                           created with mode 0700, the socket with mode 0600\n"
           "      --group GROUP        widen to group access: directories 0750, socket 0660,\n"
           "                           owned by GROUP (a name or a gid)\n"
           "      --id ID              own id (default: external-crawler)\n"
           "      --allow-uid UID      also accept clients running as UID (repeatable); by\n"
           "                           default only your own uid is accepted\n"
           "      --secret-file FILE   require the HMAC register handshake (spec 10.3); the\n"
           "                           file must be owned by you with mode 0600 or 0400\n"
           "      --lenient            accept clients that register late or never, as the\n"
           "                           incumbent web app does (each deviation is logged);\n"
           "                           not with --secret-file\n"
           "      --scenario FILE      the crawler's scenario, JSON (see README.md)\n"
           "      --rate N|max         also send N synthetic PROGRESS_UPDATE messages per\n"
           "                           second to every client, or as fast as it reads\n"
           "      --set NAME=VALUE     override a timer or limit (see below); repeatable\n"
           "      --stats FILE         write statistics as JSON on exit and on SIGUSR1\n"
           "      --log-format FORMAT  text (default) or json (one object per line)\n"
           "      --log-level LEVEL    error, warn, info (default) or debug\n"
           "  -h, --help               show this help and exit\n"
           "  -V, --version            show the version and exit\n"
           "\n"
           "Environment: SOCKET_PATH, DCS_TIME_SCALE (a positive factor applied to every\n"
           "timer after --set, and to the scenario's times, e.g. 0.01), LISTEN_PID and\n"
           "LISTEN_FDS (socket activation: descriptor 3 is the listening socket).\n"
           "\n"
           "Signals: SIGINT or SIGTERM stop accepting, send shutdown to every client,\n"
           "close each connection once written (at most DCS_T_SHUTDOWN_GRACE), remove the\n"
           "socket file and exit 0; a second one closes everything at once. SIGUSR1\n"
           "writes the statistics (to --stats FILE, else to stderr).\n"
           "\n"
           "Logs go to stderr. Payloads are never logged (they may carry secrets).\n"
           "\n"
           "--set NAME=VALUE (NAME is the field or the constant of spec 12.1; timers are\n"
           "milliseconds before DCS_TIME_SCALE):\n");
    dsh_config_help(f, "  ");
    fprintf(f, "\n"
               "exit status:\n"
               "  0  stopped by SIGINT or SIGTERM\n"
               "  1  a run-time failure of the program itself\n"
               "  2  bad command line or configuration (one line on stderr)\n"
               "  3  another server is listening on the socket (one line on stderr)\n");
}

enum {
    OPT_ID = 256,
    OPT_GROUP,
    OPT_ALLOW_UID,
    OPT_SECRET,
    OPT_LENIENT,
    OPT_SCENARIO,
    OPT_RATE,
};

static const struct option rs_options[] = {
    {"socket", required_argument, NULL, 's'},
    {"group", required_argument, NULL, OPT_GROUP},
    {"id", required_argument, NULL, OPT_ID},
    {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
    {"secret-file", required_argument, NULL, OPT_SECRET},
    {"lenient", no_argument, NULL, OPT_LENIENT},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"rate", required_argument, NULL, OPT_RATE},
    DSH_OPTIONS_COMMON,
    {NULL, 0, NULL, 0},
};

struct rs_args {
    const char *socket, *id, *secret, *scenario;
    dsh_opts opts; /* --set, --stats, --log-format, --log-level */
    struct rs *rs; /* where the program's own options go */
};

static int rs_parse_group(struct rs *rs, const char *arg, char *why, size_t n)
{
    uint64_t u;
    struct group *g;
    if (dsh_parse_uint(arg, 4294967294u, &u) == 0) {
        rs->group = (gid_t)u;
    } else if ((g = getgrnam(arg)) != NULL) {
        rs->group = g->gr_gid;
    } else {
        snprintf(why, n, "--group: no group '%s'", arg);
        return -1;
    }
    rs->group_set = 1;
    return 0;
}

/* One of the program's own options (see dsh_opt_parse). */
static int rs_option(void *ctx, int c, const char *arg, char *why, size_t n)
{
    struct rs_args *args = ctx;
    struct rs *rs = args->rs;
    uint64_t u;
    char *end;
    switch (c) {
    case 's':
        args->socket = arg;
        break;
    case OPT_GROUP:
        if (rs_parse_group(rs, arg, why, n))
            return -1;
        break;
    case OPT_ID:
        args->id = arg;
        break;
    case OPT_ALLOW_UID:
        if (dsh_parse_uint(arg, 4294967294u, &u) != 0) {
            snprintf(why, n, "--allow-uid must be a uid, not '%s'", arg);
            return -1;
        }
        rs->allowed[rs->n_allowed++] = (int64_t)u;
        break;
    case OPT_SECRET:
        args->secret = arg;
        break;
    case OPT_LENIENT:
        rs->cfg.lenient = 1;
        break;
    case OPT_SCENARIO:
        args->scenario = arg;
        break;
    case OPT_RATE:
        if (strcmp(arg, "max") == 0) {
            rs->rate_max = 1;
        } else {
            rs->rate = strtod(arg, &end);
            if (end == arg || *end || !isfinite(rs->rate) || rs->rate <= 0 || rs->rate > 1e7) {
                snprintf(why, n, "--rate must be a positive number or 'max', not '%s'", arg);
                return -1;
            }
        }
        break;
    }
    return 0;
}

/* Parse the command line into rs and args. 0: go on; 1: done (help or
 * version was shown); -1: a configuration error (why is set). */
static int rs_parse(int argc, char **argv, struct rs *rs, struct rs_args *args, char *why, size_t n)
{
    int r;
    args->rs = rs;
    r = dsh_opt_parse(argc, argv, ":s:hV", rs_options, &args->opts, rs_usage, rs_option, args,
                      why, n);
    if (r != 0)
        return r;
    rs->stats_path = args->opts.stats_path;
    if (rs->cfg.lenient && args->secret) {
        snprintf(why, n, "--lenient cannot be combined with --secret-file (spec 9.2)");
        return -1;
    }
    return 0;
}

/* Everything between the command line and the loop. 0, -1 or RS_EXIT_IN_USE. */
static int rs_setup(struct rs *rs, struct rs_args *args, char *why, size_t n)
{
    int err;
    if (dsh_socket_path(args->socket, rs->socket_path, sizeof rs->socket_path, why, n))
        return -1;
    rs->id = args->id ? args->id : "external-crawler";
    if (dsh_check_id("--id", rs->id, why, n))
        return -1;
    if (dsh_config_finish(&rs->cfg.s, &rs->scale, why, n))
        return -1;
    if (args->scenario && rs_scenario_load(&rs->sc, args->scenario, why, n))
        return -1;
    rs_scenario_scale(&rs->sc, rs->scale);
    if (args->secret && dsh_secret_read(args->secret, &rs->secret, &rs->secret_len, why, n))
        return -1;
    if (dsh_rng_init(&rs->cfg.rng)) {
        snprintf(why, n, "cannot initialise libsodium");
        return -1;
    }
    rs->cfg.id = rs->id;
    rs->cfg.own_uid = (int64_t)geteuid();
    rs->cfg.allowed_uids = rs->allowed;
    rs->cfg.n_allowed_uids = rs->n_allowed;
    rs->cfg.secret = rs->secret;
    rs->cfg.secret_len = rs->secret_len;
    if (dcs_server_config_check(&rs->cfg, why, n))
        return -1;
    if (rs_loop_init(rs, why, n))
        return -1;
    rs->cfg.wall_offset = dsh_wall_ms() - rs_now(rs);
    rs->started_wall = rs_now(rs) + rs->cfg.wall_offset;
    rs->srv = dcs_server_new(&rs->cfg, &err);
    if (!rs->srv) {
        snprintf(why, n, "cannot create the server: %s", dcs_strerror(err));
        return -1;
    }
    return rs_listen(rs, why, n);
}

int main(int argc, char **argv)
{
    struct rs rs;
    struct rs_args args;
    char why[512];
    int code;

    signal(SIGPIPE, SIG_IGN); /* EPIPE is the end of a connection (spec 3.1) */
    memset(&rs, 0, sizeof rs);
    memset(&args, 0, sizeof args);
    dcs_server_config_init(&rs.cfg);
    rs_scenario_default(&rs.sc);
    dcs_buf_init(&rs.scratch, NULL);
    dcs_buf_init(&rs.scratch2, NULL);
    dsh_opts_init(&args.opts, RS_PROG, &rs.cfg.s);
    rs.allowed = calloc((size_t)argc + 1, sizeof *rs.allowed);
    if (!rs.allowed) {
        dsh_config_error(RS_PROG, "out of memory");
        return DSH_EXIT_RUNTIME;
    }

    code = rs_parse(argc, argv, &rs, &args, why, sizeof why);
    if (code == 0) {
        dsh_log_setup(RS_PROG, args.opts.log_format, args.opts.log_level, stderr);
        code = rs_setup(&rs, &args, why, sizeof why);
    }
    if (code == RS_EXIT_IN_USE) {
        dsh_config_error(RS_PROG, "%s", why);
    } else if (code < 0) {
        dsh_config_error(RS_PROG, "%s", why);
        code = DSH_EXIT_CONFIG;
    } else if (code == 1) {
        code = DSH_EXIT_OK;
    } else {
        dsh_field f[] = {DSH_STR("socket", rs.socket_path), DSH_STR("id", rs.id)};
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "start", f, 2, RS_PROG " %s listening",
                DCS_VERSION);
        code = rs_loop_run(&rs);
        if (rs.stats_path)
            rs_stats_write(&rs, 0);
        dsh_log(DCS_LOG_INFO, DCS_CAT_SERVER, "exit", NULL, 0, "exiting with status %d", code);
    }

    if (rs.loop_inited)
        rs_loop_fini(&rs);
    rs_unlink_socket(&rs);
    rs_crawl_fini(&rs);
    dcs_server_free(rs.srv);
    dsh_secret_free(rs.secret, rs.secret_len);
    dcs_buf_free(&rs.scratch);
    dcs_buf_free(&rs.scratch2);
    free(rs.allowed);
    return code;
}
