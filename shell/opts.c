/* opts.c - the command line of both programs: the getopt_long loop, the
 * options both take (--set, --stats, --log-format, --log-level, --help,
 * --version), the errors getopt_long reports, and the check of an id. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dcs_config.h"
#include "shell.h"

void dsh_opts_init(dsh_opts *o, const char *prog, dcs_session_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->prog = prog;
    o->cfg = cfg;
    o->log_format = DSH_LOG_TEXT;
    o->log_level = DCS_LOG_INFO;
}

/* A common option, -V, or an error (':' a missing value, else an unknown
 * option). 0: go on; 1: done (the version was shown); -1: an error. */
static int dsh_opt_common(int c, char **argv, dsh_opts *o, char *why, size_t n)
{
    switch (c) {
    case DSH_OPT_SET:
        return dsh_config_set(o->cfg, optarg, why, n) ? -1 : 0;
    case DSH_OPT_STATS:
        o->stats_path = optarg;
        return 0;
    case DSH_OPT_LOG_FORMAT:
        if (dsh_log_format_parse(optarg, &o->log_format)) {
            snprintf(why, n, "--log-format must be text or json, not '%s'", optarg);
            return -1;
        }
        return 0;
    case DSH_OPT_LOG_LEVEL:
        if (dsh_log_level_parse(optarg, &o->log_level)) {
            snprintf(why, n, "--log-level must be error, warn, info or debug, not '%s'", optarg);
            return -1;
        }
        return 0;
    case 'V':
        printf("%s %s\n", o->prog, DCS_VERSION);
        return 1;
    case ':':
        snprintf(why, n, "option '%s' needs a value (see --help)", argv[optind - 1]);
        return -1;
    default:
        snprintf(why, n, "unknown option '%s' (see --help)", argv[optind - 1]);
        return -1;
    }
}

int dsh_opt_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  dsh_opts *o, void (*usage)(FILE *f), dsh_opt_fn own, void *ctx, char *why,
                  size_t n)
{
    int c, r;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 1;
        case DSH_OPT_SET:
        case DSH_OPT_STATS:
        case DSH_OPT_LOG_FORMAT:
        case DSH_OPT_LOG_LEVEL:
        case 'V':
        case ':':
        case '?':
            r = dsh_opt_common(c, argv, o, why, n);
            break;
        default:
            r = own(ctx, c, optarg, why, n);
            break;
        }
        if (r != 0)
            return r;
    }
    if (optind < argc) {
        snprintf(why, n, "unexpected argument '%s' (see --help)", argv[optind]);
        return -1;
    }
    return 0;
}

int dsh_check_id(const char *what, const char *id, char *why, size_t n)
{
    dcs_buf b;
    int err;
    if (!id[0]) {
        snprintf(why, n, "%s must not be empty", what);
        return -1;
    }
    dcs_buf_init(&b, NULL);
    err = dcs_encode_string(&b, id, strlen(id));
    dcs_buf_free(&b);
    if (err) {
        snprintf(why, n, "%s is not valid UTF-8", what);
        return -1;
    }
    return 0;
}
