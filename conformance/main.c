/* main.c - dcs-conform: the command line, the case catalogue, the order
 * and concurrency of a run, the console and the reports. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcs_config.h"
#include "generalize.h"
#include "runner.h"

#define EXIT_FAILED 1
#define EXIT_HARNESS 2
#define MAX_FILTERS 64

/* ------------------------------------------------------------------------ */
/* The catalogue                                                             */

typedef struct kase {
    char *file, *category, *source;
    size_t source_len;
    dcs_case *c;       /* NULL when it could not be read */
    char error[300];   /* why not */
} kase;

typedef struct catalogue {
    kase *v;
    size_t n, cap;
} catalogue;

static catalogue *walk_cat;
static const char *walk_root;

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        n > (long)DCS_CASE_MAX_BYTES + 1 || !(buf = malloc((size_t)n + 1))) {
        fclose(f);
        errno = EFBIG;
        return -1;
    }
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = 0;
    fclose(f);
    *out = buf;
    return 0;
}

static int walk_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    size_t n = strlen(path), rl = strlen(walk_root);
    kase *k;
    const char *rel, *slash;
    (void)sb;
    (void)ftw;
    if (type != FTW_F || n < 5 || strcmp(path + n - 5, ".dcst") != 0)
        return 0;
    if (walk_cat->n == walk_cat->cap) {
        size_t cap = walk_cat->cap ? walk_cat->cap * 2 : 256;
        kase *v = realloc(walk_cat->v, cap * sizeof *v);
        if (!v)
            return -1;
        walk_cat->v = v;
        walk_cat->cap = cap;
    }
    k = &walk_cat->v[walk_cat->n++];
    memset(k, 0, sizeof *k);
    k->file = strdup(path);
    rel = path + (strncmp(path, walk_root, rl) == 0 ? rl : 0);
    while (*rel == '/')
        rel++;
    slash = strchr(rel, '/');
    k->category = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("other");
    if (read_file(path, &k->source, &k->source_len) != 0) {
        snprintf(k->error, sizeof k->error, "%s: cannot read: %s", path, strerror(errno));
        return 0;
    }
    {
        dcs_case_error err;
        if (dcs_case_parse(k->source, k->source_len, NULL, &k->c, &err) != 0)
            snprintf(k->error, sizeof k->error, "%s:%d: %s", path, err.line, err.reason);
    }
    return 0;
}

static int kase_cmp(const void *a, const void *b)
{
    const kase *x = a, *y = b;
    const char *ix = x->c ? x->c->id : x->file, *iy = y->c ? y->c->id : y->file;
    return strcmp(ix, iy);
}

static int load_catalogue(const char *dir, catalogue *cat)
{
    size_t i;
    memset(cat, 0, sizeof *cat);
    walk_cat = cat;
    walk_root = dir;
    if (nftw(dir, walk_one, 16, FTW_PHYS) != 0) {
        fprintf(stderr, "dcs-conform: cannot read the cases in %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (cat->n == 0) {
        fprintf(stderr, "dcs-conform: no case (*.dcst) in %s\n", dir);
        return -1;
    }
    qsort(cat->v, cat->n, sizeof *cat->v, kase_cmp);
    for (i = 1; i < cat->n; i++)
        if (cat->v[i].c && cat->v[i - 1].c && strcmp(cat->v[i].c->id, cat->v[i - 1].c->id) == 0) {
            fprintf(stderr, "dcs-conform: two cases have the id %s: %s and %s\n", cat->v[i].c->id,
                    cat->v[i - 1].file, cat->v[i].file);
            return -1;
        }
    return 0;
}

static void free_catalogue(catalogue *cat)
{
    size_t i;
    for (i = 0; i < cat->n; i++) {
        free(cat->v[i].file);
        free(cat->v[i].category);
        free(cat->v[i].source);
        dcs_case_free(cat->v[i].c);
    }
    free(cat->v);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

typedef struct args {
    conf_opts o;
    const char *cases, *profile, *expect, *junit, *json, *html, *spec_url;
    const char *filters[MAX_FILTERS], *excludes[MAX_FILTERS];
    size_t n_filters, n_excludes;
    char *env[256], *skip_tags[MAX_FILTERS];
    size_t n_env, n_skip_tags;
    int jobs, tap, list, markdown, have_shuffle;
    unsigned long shuffle;
    conf_feature features[CONF_FEATURES_MAX];
} args;

static void usage(FILE *f)
{
    fprintf(f,
"usage: dcs-conform run --role client|server [OPTIONS] -- COMMAND [ARGS...]\n"
"       dcs-conform run --role client|server --attach --socket PATH [OPTIONS]\n"
"       dcs-conform list [--cases DIR] [--role R] [--filter GLOB] [--markdown]\n"
"       dcs-conform check [--cases DIR]\n"
"       dcs-conform generalize RECORDING [--id ID] [-o FILE]\n"
"\n"
"The conformance harness of the Direct Communication System: it plays the\n"
"other peer against an implementation under test (IUT) and judges, case by\n"
"case, whether the IUT behaves as spec/PROTOCOL.md says. The IUT is known only\n"
"by its command line and its socket.\n"
"\n"
"run:\n"
"  --role client|server   the IUT's role. client: the harness listens on the\n"
"                         socket and the IUT connects; server: the IUT listens\n"
"                         and the harness connects. SOCKET_PATH is exported\n"
"  --socket PATH          the socket (default: a fresh temporary directory per\n"
"                         case)\n"
"  --attach               the IUT is already running (no COMMAND); cases that\n"
"                         restart it are skipped\n"
"  --reuse                one IUT process for every case (default: a fresh one\n"
"                         per case)\n"
"  --env K=V              pass a variable to the IUT (repeatable)\n"
"  --iut-id ID, --peer-id ID  the ids the cases use (defaults: the client is\n"
"                         web-server, the server external-crawler)\n"
"  --time-scale F         export DCS_TIME_SCALE=F and scale every window\n"
"  --faketime F           run the IUT under libfaketime, F times faster\n"
"  --slack MS             added to every upper bound (default 250)\n"
"  --tolerance MS         taken from every lower bound (default 10)\n"
"  --startup MS           allowance for the IUT's start-up (default 5000)\n"
"  --cases DIR            the catalogue (default: %s)\n"
"  --filter GLOB          run the cases whose id matches (repeatable)\n"
"  --exclude GLOB         but not those whose id matches (repeatable)\n"
"  --skip-tag TAG         SKIP the cases tagged TAG (e.g. bulk; repeatable)\n"
"  --profile FILE         the optional features the IUT claims\n"
"  --expect FILE          case ids expected to fail (XFAIL; a pass is XPASS)\n"
"  --jobs N               run N cases at once (default 1)\n"
"  --shuffle SEED         run the cases in a random order\n"
"  --junit FILE, --json FILE, --html FILE  write reports\n"
"  --spec-url URL         where the HTML report's citations point (default:\n"
"                         %s)\n"
"  --tap                  TAP on standard output (the console goes to stderr)\n"
"  --list                 print the cases that would run, and stop\n"
"  --keep                 keep the per-case directories (socket, IUT log)\n"
"  --workdir DIR          where the per-case directories go (default $TMPDIR\n"
"                         or /tmp)\n"
"  -v, --verbose          log every connection event on stderr\n"
"  -h, --help, -V, --version\n"
"\n"
"generalize: turn a recording of dcs-tap --record into a case (on standard\n"
"output, or FILE): timestamps, pids, request ids, nonces and the peers' ids\n"
"become matchers and variables, heartbeats are left to the harness. --id\n"
"names the case (default: gen-<the recording's id without rec->).\n"
"\n"
"exit status: 0 nothing failed; 1 a case failed (FAIL, ERROR or XPASS), or\n"
"the recording cannot be generalized; 2 the harness could not run (bad\n"
"options, unreadable cases).\n"
"\n"
"Cases, profiles and verdicts: spec/TRANSCRIPTS.md. Catalogue: spec/CASES.md.\n",
            DCS_CONFORM_CASES_DIR, DCS_CONFORM_SPEC_URL);
}

static int parse_ms(const char *s, int64_t *us)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 1e9)
        return -1;
    *us = (int64_t)(v * 1000.0);
    return 0;
}

static int parse_profile(args *a, const char *path)
{
    char *text, *line, *save = NULL;
    size_t len;
    int lineno = 0;
    if (read_file(path, &text, &len) != 0) {
        fprintf(stderr, "dcs-conform: cannot read the profile %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *w, *s2 = NULL, *hash = strchr(line, '#');
        conf_feature *f;
        lineno++;
        if (hash)
            *hash = 0;
        if (!(w = strtok_r(line, " \t\r", &s2)))
            continue;
        if (strcmp(w, "feature") != 0 || !(w = strtok_r(NULL, " \t\r", &s2))) {
            fprintf(stderr, "dcs-conform: %s: a line that is not 'feature NAME [ARG...]'\n", path);
            free(text);
            return -1;
        }
        if (a->o.n_features == CONF_FEATURES_MAX) {
            fprintf(stderr, "dcs-conform: %s: more than %u features\n", path, CONF_FEATURES_MAX);
            free(text);
            return -1;
        }
        f = &a->features[a->o.n_features++];
        f->name = strdup(w);
        while ((w = strtok_r(NULL, " \t\r", &s2)) != NULL && f->n_args < CONF_FEATURE_ARGS_MAX)
            f->args[f->n_args++] = strdup(w);
    }
    free(text);
    a->o.features = a->features;
    return 0;
}

enum {
    O_ROLE = 256, O_SOCKET, O_ATTACH, O_REUSE, O_ENV, O_IUT_ID, O_PEER_ID, O_SCALE, O_FAKETIME, O_SLACK,
    O_TOL, O_STARTUP, O_CASES, O_FILTER, O_PROFILE, O_EXPECT, O_JOBS, O_SHUFFLE, O_JUNIT, O_JSON, O_HTML,
    O_TAP, O_LIST, O_KEEP, O_MARKDOWN, O_WORKDIR, O_SPEC_URL, O_EXCLUDE, O_SKIP_TAG
};

static const struct option longopts[] = {
    {"role", required_argument, 0, O_ROLE},       {"socket", required_argument, 0, O_SOCKET},
    {"attach", no_argument, 0, O_ATTACH},         {"reuse", no_argument, 0, O_REUSE},
    {"env", required_argument, 0, O_ENV},         {"iut-id", required_argument, 0, O_IUT_ID},
    {"peer-id", required_argument, 0, O_PEER_ID}, {"time-scale", required_argument, 0, O_SCALE},
    {"faketime", required_argument, 0, O_FAKETIME}, {"slack", required_argument, 0, O_SLACK},
    {"tolerance", required_argument, 0, O_TOL},   {"startup", required_argument, 0, O_STARTUP},
    {"cases", required_argument, 0, O_CASES},     {"filter", required_argument, 0, O_FILTER},
    {"profile", required_argument, 0, O_PROFILE}, {"expect", required_argument, 0, O_EXPECT},
    {"jobs", required_argument, 0, O_JOBS},       {"shuffle", required_argument, 0, O_SHUFFLE},
    {"junit", required_argument, 0, O_JUNIT},     {"json", required_argument, 0, O_JSON},
    {"html", required_argument, 0, O_HTML},       {"tap", no_argument, 0, O_TAP},
    {"list", no_argument, 0, O_LIST},             {"keep", no_argument, 0, O_KEEP},
    {"markdown", no_argument, 0, O_MARKDOWN},     {"workdir", required_argument, 0, O_WORKDIR},
    {"spec-url", required_argument, 0, O_SPEC_URL},  {"exclude", required_argument, 0, O_EXCLUDE},
    {"skip-tag", required_argument, 0, O_SKIP_TAG},
    {"verbose", no_argument, 0, 'v'},             {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},             {0, 0, 0, 0},
};

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "dcs-conform: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    return -1;
}

static int parse_args(int argc, char **argv, args *a)
{
    int ch;
    char *end;
    memset(a, 0, sizeof *a);
    a->o.scale = 1;
    a->o.slack_us = 250000;
    a->o.tol_us = 10000;
    a->o.startup_us = 5000000;
    a->jobs = 1;
    a->cases = DCS_CONFORM_CASES_DIR;
    a->spec_url = DCS_CONFORM_SPEC_URL;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "+vhV", longopts, NULL)) != -1) {
        switch (ch) {
        case O_ROLE:
            a->o.role = !strcmp(optarg, "client") ? DCS_ROLE_CLIENT : !strcmp(optarg, "server") ? DCS_ROLE_SERVER : 0;
            if (!a->o.role)
                return bad("--role must be client or server, not '%s'", optarg);
            break;
        case O_SOCKET: a->o.socket = optarg; break;
        case O_ATTACH: a->o.attach = 1; break;
        case O_REUSE: a->o.reuse = 1; break;
        case O_ENV:
            if (!strchr(optarg, '=') || a->n_env == 256)
                return bad("--env needs K=V, not '%s'", optarg);
            a->env[a->n_env++] = optarg;
            break;
        case O_IUT_ID: a->o.iut_id = optarg; break;
        case O_PEER_ID: a->o.peer_id = optarg; break;
        case O_SCALE:
        case O_FAKETIME: {
            double f = strtod(optarg, &end);
            if (end == optarg || *end || !(f > 0) || !isfinite(f) || f > 1e6)
                return bad("the factor must be a positive number, not '%s'", optarg);
            if (ch == O_SCALE) {
                a->o.time_mode = CONF_TIME_SCALE;
                a->o.scale = f;
            } else {
                a->o.time_mode = CONF_TIME_FAKETIME;
                a->o.faketime = f;
                a->o.scale = 1.0 / f;
            }
            break;
        }
        case O_SLACK:
            if (parse_ms(optarg, &a->o.slack_us) != 0)
                return bad("--slack needs milliseconds, not '%s'", optarg);
            break;
        case O_TOL:
            if (parse_ms(optarg, &a->o.tol_us) != 0)
                return bad("--tolerance needs milliseconds, not '%s'", optarg);
            break;
        case O_STARTUP:
            if (parse_ms(optarg, &a->o.startup_us) != 0)
                return bad("--startup needs milliseconds, not '%s'", optarg);
            break;
        case O_CASES: a->cases = optarg; break;
        case O_FILTER:
            if (a->n_filters == MAX_FILTERS)
                return bad("more than 64 filters%s", "");
            a->filters[a->n_filters++] = optarg;
            break;
        case O_EXCLUDE:
            if (a->n_excludes == MAX_FILTERS)
                return bad("more than 64 excludes%s", "");
            a->excludes[a->n_excludes++] = optarg;
            break;
        case O_SKIP_TAG:
            if (a->n_skip_tags == MAX_FILTERS)
                return bad("more than 64 skipped tags%s", "");
            a->skip_tags[a->n_skip_tags++] = optarg;
            break;
        case O_PROFILE: a->profile = optarg; break;
        case O_EXPECT: a->expect = optarg; break;
        case O_JOBS:
            a->jobs = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end || a->jobs < 1 || a->jobs > 64)
                return bad("--jobs needs a number from 1 to 64, not '%s'", optarg);
            break;
        case O_SHUFFLE:
            a->shuffle = strtoul(optarg, &end, 10);
            if (end == optarg || *end)
                return bad("--shuffle needs a number, not '%s'", optarg);
            a->have_shuffle = 1;
            break;
        case O_JUNIT: a->junit = optarg; break;
        case O_JSON: a->json = optarg; break;
        case O_HTML: a->html = optarg; break;
        case O_TAP: a->tap = 1; break;
        case O_LIST: a->list = 1; break;
        case O_KEEP: a->o.keep = 1; break;
        case O_MARKDOWN: a->markdown = 1; break;
        case O_WORKDIR: a->o.workdir = optarg; break;
        case O_SPEC_URL: a->spec_url = optarg; break;
        case 'v': a->o.verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("dcs-conform %s\n", DCS_VERSION); exit(0);
        default: return -1;
        }
    }
    a->o.env = a->env;
    a->o.n_env = a->n_env;
    a->o.skip_tags = a->skip_tags;
    a->o.n_skip_tags = a->n_skip_tags;
    if (optind < argc)
        a->o.argv = &argv[optind];
    if (a->profile && parse_profile(a, a->profile) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Selection, expectations, shared secret                                    */

static int selected(const args *a, const kase *k)
{
    size_t i;
    const char *id = k->c ? k->c->id : k->file;
    if (a->o.role && k->c && k->c->role != a->o.role)
        return 0;
    for (i = 0; i < a->n_excludes; i++)
        if (fnmatch(a->excludes[i], id, 0) == 0)
            return 0;
    if (a->n_filters == 0)
        return 1;
    for (i = 0; i < a->n_filters; i++)
        if (fnmatch(a->filters[i], id, 0) == 0)
            return 1;
    return 0;
}

typedef struct expect_list {
    char **ids;
    size_t n;
} expect_list;

static int load_expect(const char *path, const catalogue *cat, expect_list *e)
{
    char *text, *line, *save = NULL;
    size_t len, i;
    memset(e, 0, sizeof *e);
    if (read_file(path, &text, &len) != 0) {
        fprintf(stderr, "dcs-conform: cannot read the expect list %s: %s\n", path, strerror(errno));
        return -1;
    }
    e->ids = calloc(len / 2 + 1, sizeof *e->ids);
    for (line = strtok_r(text, "\n", &save); line && e->ids; line = strtok_r(NULL, "\n", &save)) {
        char *hash = strchr(line, '#'), *w, *s2 = NULL;
        int known = 0;
        if (hash)
            *hash = 0;
        if (!(w = strtok_r(line, " \t\r", &s2)))
            continue;
        for (i = 0; i < cat->n; i++)
            known |= cat->v[i].c && strcmp(cat->v[i].c->id, w) == 0;
        if (!known) {
            fprintf(stderr, "dcs-conform: %s: '%s' is not a case of the catalogue (a stale entry?)\n", path, w);
            free(text);
            for (i = 0; i < e->n; i++)
                free(e->ids[i]);
            free(e->ids);
            e->ids = NULL;
            e->n = 0;
            return -1;
        }
        e->ids[e->n++] = strdup(w);
    }
    free(text);
    return 0;
}

static int expected_to_fail(const expect_list *e, const char *id)
{
    size_t i;
    for (i = 0; i < e->n; i++)
        if (strcmp(e->ids[i], id) == 0)
            return 1;
    return 0;
}

static int make_secret(args *a, char *dir, size_t n)
{
    static unsigned char secret[65];
    unsigned char raw[32];
    char path[600];
    int fd;
    const char *base = a->o.workdir ? a->o.workdir : getenv("TMPDIR");
    if (!conf_feature_find(&a->o, "hmac"))
        return 0;
    snprintf(dir, n, "%s/dcs-conform-secret.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex((char *)secret, sizeof secret, raw, sizeof raw);
    snprintf(path, sizeof path, "%s/secret", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, secret, 64) != 64) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    a->o.secret = secret;
    a->o.secret_len = 64;
    a->o.secret_path = strdup(path);
    return 0;
}

static const char *find_faketime(void)
{
    static const char *const paths[] = {"/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                                        "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1",
                                        NULL};
    const char *env = getenv("DCS_FAKETIME_LIB");
    size_t i;
    if (env && access(env, R_OK) == 0)
        return env;
    for (i = 0; paths[i]; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

typedef struct job {
    const kase *k;
    dcs_case_result r;
    const char *suffix; /* "#end" for the closing sanity run */
} job;

typedef struct pool {
    args *a;
    job *jobs;
    size_t n, next;
    conf_shared *shared;
    expect_list *expect;
    pthread_mutex_t mu;
    FILE *console;
    size_t done, total;
} pool;

static void finish_result(pool *p, job *j)
{
    dcs_case_result *r = &j->r;
    r->file = strdup(j->k->file);
    r->category = strdup(j->k->category);
    if (j->suffix) {
        char *id = NULL;
        if (asprintf(&id, "%s%s", r->id, j->suffix) >= 0) {
            free(r->id);
            r->id = id;
        }
    }
    if (p->expect && j->k->c && expected_to_fail(p->expect, j->k->c->id)) {
        if (r->verdict == DCS_V_FAIL || r->verdict == DCS_V_NONSTRICT)
            r->verdict = DCS_V_XFAIL;
        else if (r->verdict == DCS_V_PASS) {
            r->verdict = DCS_V_XPASS;
            free(r->reason);
            r->reason = strdup("listed in --expect as failing, but it passed: remove it from the list");
        }
    }
}

static void print_line(pool *p, const job *j)
{
    const dcs_case_result *r = &j->r;
    FILE *f = p->console;
    fprintf(f, "%-13s %s  (%lld ms)\n", dcs_verdict_name(r->verdict), r->id, (long long)(r->duration_us / 1000));
    if (r->has_divergence && r->verdict != DCS_V_PASS && r->verdict != DCS_V_XPASS) {
        if (r->div.line)
            fprintf(f, "              line %d: %s\n", r->div.line, r->div.step);
        fprintf(f, "              expected: %s\n", r->div.expected);
        fprintf(f, "              actual:   %s\n", r->div.actual);
    } else if (r->reason && r->verdict != DCS_V_PASS)
        fprintf(f, "              %s\n", r->reason);
    fflush(f);
}

static void run_job(pool *p, job *j)
{
    const kase *k = j->k;
    memset(&j->r, 0, sizeof j->r);
    j->r.source = k->source ? strdup(k->source) : NULL;
    if (!k->c) {
        j->r.id = strdup(k->file);
        j->r.title = strdup("(a case that cannot be read)");
        j->r.verdict = DCS_V_ERROR;
        j->r.reason = strdup(k->error);
    } else
        conf_run_case(k->c, &p->a->o, p->shared, &j->r);
    finish_result(p, j);
    pthread_mutex_lock(&p->mu);
    print_line(p, j);
    pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        size_t i;
        pthread_mutex_lock(&p->mu);
        i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            return NULL;
        run_job(p, &p->jobs[i]);
    }
}

static void run_pool(pool *p, size_t from, size_t to, int threads)
{
    pthread_t t[64];
    int i, started = 0;
    p->next = from;
    p->n = to;
    if (threads <= 1 || to - from <= 1) {
        worker(p);
        return;
    }
    for (i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker, p) == 0)
            started++;
    if (!started)
        worker(p);
    for (i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

static int is_sanity(const kase *k)
{
    size_t n;
    if (!k->c)
        return 0;
    n = strlen(k->c->id);
    return n > 7 && strcmp(k->c->id + n - 7, "-sanity") == 0;
}

static void shuffle(job *v, size_t n, unsigned long seed)
{
    size_t i;
    unsigned long long s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (i = n; i > 1; i--) {
        size_t j;
        job t;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        j = (size_t)((s >> 33) % i);
        t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int write_report(const char *path, int (*fn)(FILE *, const dcs_run_report *), const dcs_run_report *rep)
{
    FILE *f = fopen(path, "w");
    int rc;
    if (!f) {
        fprintf(stderr, "dcs-conform: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = fn(f, rep);
    if (fclose(f) != 0 || rc != 0) {
        fprintf(stderr, "dcs-conform: writing %s failed\n", path);
        return -1;
    }
    return 0;
}

static char *joined_command(char *const *argv)
{
    size_t n = 1, i;
    char *s;
    for (i = 0; argv && argv[i]; i++)
        n += strlen(argv[i]) + 1;
    if (!argv || !(s = calloc(1, n)))
        return strdup("(attached)");
    for (i = 0; argv[i]; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static int cmd_run(args *a, catalogue *cat)
{
    pool p;
    job *jobs;
    size_t n = 0, i, sanity = SIZE_MAX, first_rest;
    expect_list ex;
    char secret_dir[400] = "", why[512];
    dcs_run_report rep;
    dcs_case_result *results;
    int rc = 0, failed = 0;
    if (!a->o.role)
        return bad("run needs --role client or --role server%s", ""), EXIT_HARNESS;
    if (!a->o.attach && !a->o.argv && !a->list)
        return bad("run needs a COMMAND after -- (or --attach)%s", ""), EXIT_HARNESS;
    if (a->o.attach && !a->o.socket)
        return bad("--attach needs --socket PATH%s", ""), EXIT_HARNESS;
    if (a->o.attach && a->o.argv)
        return bad("--attach takes no COMMAND%s", ""), EXIT_HARNESS;
    if (a->o.time_mode == CONF_TIME_FAKETIME && !(a->o.faketime_lib = find_faketime()))
        return bad("--faketime needs libfaketime (the Debian package faketime), or DCS_FAKETIME_LIB%s", ""),
               EXIT_HARNESS;
    if (a->o.reuse || a->o.attach || a->o.socket)
        a->jobs = 1;
    memset(&ex, 0, sizeof ex);
    if (a->expect && load_expect(a->expect, cat, &ex) != 0)
        return EXIT_HARNESS;
    if (!(jobs = calloc(cat->n + 2, sizeof *jobs)))
        return EXIT_HARNESS;
    for (i = 0; i < cat->n; i++) {
        if (!selected(a, &cat->v[i]))
            continue;
        if (is_sanity(&cat->v[i]) && sanity == SIZE_MAX && cat->v[i].c->role == a->o.role) {
            sanity = i;
            continue;
        }
        jobs[n + 1].k = &cat->v[i];
        n++;
    }
    if (sanity == SIZE_MAX) {
        for (i = 0; i < cat->n; i++)
            if (is_sanity(&cat->v[i]) && cat->v[i].c->role == a->o.role)
                sanity = i;
    }
    first_rest = 1;
    if (sanity != SIZE_MAX) {
        jobs[0].k = &cat->v[sanity];
        jobs[n + 1].k = &cat->v[sanity];
        jobs[n + 1].suffix = "#end";
    } else {
        memmove(jobs, jobs + 1, n * sizeof *jobs);
        first_rest = 0;
    }
    if (a->have_shuffle)
        shuffle(jobs + first_rest, n, a->shuffle);
    n += sanity != SIZE_MAX ? 2 : 0;
    if (a->list) {
        for (i = 0; i < n; i++)
            printf("%s%s\n", jobs[i].k->c ? jobs[i].k->c->id : jobs[i].k->file, jobs[i].suffix ? jobs[i].suffix : "");
        free(jobs);
        return 0;
    }
    if (sodium_init() < 0 || make_secret(a, secret_dir, sizeof secret_dir) != 0) {
        fprintf(stderr, "dcs-conform: cannot write the shared secret: %s\n", strerror(errno));
        free(jobs);
        return EXIT_HARNESS;
    }
    memset(&p, 0, sizeof p);
    p.a = a;
    p.jobs = jobs;
    p.expect = a->expect ? &ex : NULL;
    p.console = a->tap ? stderr : stdout;
    pthread_mutex_init(&p.mu, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (a->o.reuse || a->o.attach) {
        if (!(p.shared = conf_shared_new(&a->o, why, sizeof why))) {
            fprintf(stderr, "dcs-conform: %s\n", why);
            free(jobs);
            return EXIT_HARNESS;
        }
    }
    memset(&rep, 0, sizeof rep);
    rep.started_unix_ms = conf_wall_ms();
    {
        int64_t t0 = conf_now_us();
        if (first_rest) {
            run_pool(&p, 0, 1, 1);
            run_pool(&p, 1, n - 1, a->jobs);
            run_pool(&p, n - 1, n, 1);
        } else
            run_pool(&p, 0, n, a->jobs);
        rep.duration_us = conf_now_us() - t0;
    }
    conf_shared_free(p.shared, &a->o);
    results = calloc(n ? n : 1, sizeof *results);
    for (i = 0; results && i < n; i++) {
        results[i] = jobs[i].r;
        rep.counts[results[i].verdict]++;
        failed |= dcs_verdict_fails_run(results[i].verdict);
    }
    rep.version = DCS_VERSION;
    rep.role = a->o.role == DCS_ROLE_CLIENT ? "client" : "server";
    rep.command = joined_command(a->o.argv);
    rep.time_scale = a->o.scale;
    rep.time_mode = a->o.time_mode == CONF_TIME_SCALE ? "scale" : a->o.time_mode == CONF_TIME_FAKETIME ? "faketime" : "real";
    rep.spec_url = a->spec_url;
    rep.cases = results;
    rep.n_cases = results ? n : 0;
    if (a->tap && dcs_report_tap(stdout, &rep) != 0)
        rc = -1;
    if (a->junit && write_report(a->junit, dcs_report_junit, &rep) != 0)
        rc = -1;
    if (a->json && write_report(a->json, dcs_report_json, &rep) != 0)
        rc = -1;
    if (a->html && write_report(a->html, dcs_report_html, &rep) != 0)
        rc = -1;
    fprintf(p.console, "%zu PASS, %zu FAIL, %zu NON-STRICT, %zu INFORMATIONAL, %zu SKIP, %zu ERROR, %zu XFAIL, %zu XPASS in %.1f s\n",
            rep.counts[DCS_V_PASS], rep.counts[DCS_V_FAIL], rep.counts[DCS_V_NONSTRICT], rep.counts[DCS_V_INFO],
            rep.counts[DCS_V_SKIP], rep.counts[DCS_V_ERROR], rep.counts[DCS_V_XFAIL], rep.counts[DCS_V_XPASS],
            (double)rep.duration_us / 1e6);
    fprintf(p.console, "%zu passed, %zu failed, %zu skipped\n",
            rep.counts[DCS_V_PASS] + rep.counts[DCS_V_NONSTRICT] + rep.counts[DCS_V_INFO] + rep.counts[DCS_V_XFAIL],
            rep.counts[DCS_V_FAIL] + rep.counts[DCS_V_ERROR] + rep.counts[DCS_V_XPASS], rep.counts[DCS_V_SKIP]);
    for (i = 0; i < n; i++)
        dcs_case_result_clear(&jobs[i].r);
    free(results);
    free(jobs);
    free((char *)rep.command);
    if (secret_dir[0]) {
        unlink(a->o.secret_path);
        rmdir(secret_dir);
    }
    pthread_mutex_destroy(&p.mu);
    for (i = 0; i < ex.n; i++)
        free(ex.ids[i]);
    free(ex.ids);
    if (rc != 0)
        return EXIT_HARNESS;
    return failed ? EXIT_FAILED : 0;
}

/* ------------------------------------------------------------------------ */
/* generalize                                                                */

#define GEN_MAX_RECORDING (64u * 1024u * 1024u)

/* dcs-conform generalize RECORDING [--id ID] [-o FILE] (generalize.h). The
 * case is made in memory first, so FILE is only written when it succeeds. */
static int cmd_generalize(int argc, char **argv)
{
    static const struct option gopts[] = {{"id", required_argument, 0, 'i'},
                                          {"output", required_argument, 0, 'o'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *id = NULL, *path = NULL;
    char *text = NULL, why[512];
    size_t len = 0, cap = 0, n;
    dcs_buf out;
    FILE *f;
    int ch, rc = 0;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "o:h", gopts, NULL)) != -1) {
        switch (ch) {
        case 'i': id = optarg; break;
        case 'o': path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return EXIT_HARNESS;
        }
    }
    if (optind != argc - 1)
        return bad("generalize needs one RECORDING, a file dcs-tap --record wrote%s", ""), EXIT_HARNESS;
    if (id && (!*id || id[strcspn(id, " \t\r\n#\\")]))
        return bad("--id needs one word without '#' or '\\', not '%s'", id), EXIT_HARNESS;
    if (!(f = fopen(argv[optind], "rb"))) {
        fprintf(stderr, "dcs-conform: cannot read %s: %s\n", argv[optind], strerror(errno));
        return EXIT_FAILED;
    }
    do {
        if (len == cap) {
            char *t = cap < GEN_MAX_RECORDING ? realloc(text, cap = cap ? 2 * cap : 65536) : NULL;
            if (!t) {
                fprintf(stderr, "dcs-conform: %s: larger than %u bytes, or out of memory\n", argv[optind],
                        GEN_MAX_RECORDING);
                fclose(f);
                free(text);
                return EXIT_FAILED;
            }
            text = t;
        }
        len += n = fread(text + len, 1, cap - len, f);
    } while (n > 0);
    if (ferror(f)) {
        fprintf(stderr, "dcs-conform: cannot read %s: %s\n", argv[optind], strerror(errno));
        fclose(f);
        free(text);
        return EXIT_FAILED;
    }
    fclose(f);
    dcs_buf_init(&out, NULL);
    if (conf_generalize(text, len, id, &out, why, sizeof why) != 0) {
        fprintf(stderr, "dcs-conform: %s: %s\n", argv[optind], why);
        rc = EXIT_FAILED;
    } else {
        int werr = !(f = path ? fopen(path, "w") : stdout) || fwrite(out.data, 1, out.len, f) != out.len;
        if (f && (path ? fclose(f) : fflush(f)) != 0)
            werr = 1;
        if (werr) {
            fprintf(stderr, "dcs-conform: cannot write %s: %s\n", path ? path : "the standard output",
                    strerror(errno));
            rc = EXIT_HARNESS;
        }
    }
    dcs_buf_free(&out);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* list, check                                                               */

static void md_cell(const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else
            putchar(*s);
    }
}

static int cmd_list(args *a, catalogue *cat)
{
    size_t i, j;
    const char *last = NULL;
    if (!a->markdown) {
        for (i = 0; i < cat->n; i++)
            if (selected(a, &cat->v[i]) && cat->v[i].c)
                printf("%-48s %-7s %s\n", cat->v[i].c->id, cat->v[i].c->role == DCS_ROLE_CLIENT ? "client" : "server",
                       cat->v[i].c->title);
        return 0;
    }
    printf("# The conformance cases\n\n"
           "This file is written by `dcs-conform list --markdown` (CI checks that it is\n"
           "current). Each case is a transcript in `conformance/cases/` (format:\n"
           "spec/TRANSCRIPTS.md); its id starts with the section of spec/PROTOCOL.md it\n"
           "checks. Role is the role of the implementation under test.\n");
    for (i = 0; i < cat->n; i++) {
        const dcs_case *c = cat->v[i].c;
        size_t per = 0;
        if (!c || !selected(a, &cat->v[i]))
            continue;
        if (!last || strcmp(last, cat->v[i].category) != 0) {
            for (j = i; j < cat->n; j++)
                per += cat->v[j].c && strcmp(cat->v[j].category, cat->v[i].category) == 0;
            last = cat->v[i].category;
            printf("\n## %s (%zu)\n\n| id | role | level | requires | checks |\n|---|---|---|---|---|\n", last, per);
        }
        printf("| `%s` | %s | %s | ", c->id, c->role == DCS_ROLE_CLIENT ? "client" : "server",
               c->level == DCS_LEVEL_MUST ? "must" : c->level == DCS_LEVEL_SHOULD ? "should" : "info");
        for (j = 0; j < c->n_requires; j++)
            printf("%s%s", j ? ", " : "", c->requires[j]);
        printf(" | ");
        md_cell(c->title);
        printf(" |\n");
    }
    return 0;
}

static int by_category(const void *a, const void *b)
{
    const kase *x = a, *y = b;
    int d = strcmp(x->category, y->category);
    return d ? d : kase_cmp(a, b);
}

static int cmd_check(catalogue *cat)
{
    size_t i, bad_n = 0;
    for (i = 0; i < cat->n; i++)
        if (!cat->v[i].c) {
            fprintf(stderr, "%s\n", cat->v[i].error);
            bad_n++;
        }
    printf("%zu cases, %zu unreadable\n", cat->n, bad_n);
    return bad_n ? EXIT_FAILED : 0;
}

static void free_args(args *a)
{
    size_t i, j;
    for (i = 0; i < a->o.n_features; i++) {
        free(a->features[i].name);
        for (j = 0; j < a->features[i].n_args; j++)
            free(a->features[i].args[j]);
    }
    free((char *)a->o.secret_path);
}

int main(int argc, char **argv)
{
    args a;
    catalogue cat;
    int rc;
    if (argc < 2) {
        usage(stderr);
        return EXIT_HARNESS;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("dcs-conform %s\n", DCS_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "generalize"))
        return cmd_generalize(argc, argv);
    if (strcmp(argv[1], "run") && strcmp(argv[1], "list") && strcmp(argv[1], "check")) {
        fprintf(stderr, "dcs-conform: unknown command '%s' (run, list, check or generalize; try --help)\n",
                argv[1]);
        return EXIT_HARNESS;
    }
    if (parse_args(argc, argv, &a) != 0) {
        free_args(&a);
        return EXIT_HARNESS;
    }
    if (load_catalogue(a.cases, &cat) != 0) {
        free_catalogue(&cat);
        free_args(&a);
        return EXIT_HARNESS;
    }
    if (!strcmp(argv[1], "list")) {
        if (a.markdown)
            qsort(cat.v, cat.n, sizeof *cat.v, by_category);
        rc = cmd_list(&a, &cat);
    } else if (!strcmp(argv[1], "check"))
        rc = cmd_check(&cat);
    else
        rc = cmd_run(&a, &cat);
    free_catalogue(&cat);
    free_args(&a);
    return rc;
}
