/* codec.c - dcs-bench-codec: dcs's decoder and encoder against jansson,
 * cJSON, simdjson and memchr, in one process run, on the same bytes.
 *
 * For each input stream it measures
 * - dcs: framing + full validation + envelope extraction (dcs_decoder_next
 *   over the stream), fed whole, in 64 KiB reads (slices of the buffer the
 *   baselines parse; and "64KiB+read": each read first copied into one reused
 *   64 KiB buffer, as read(2) would), and in 1-byte chunks (on a prefix
 *   of the stream that ends at a message boundary);
 * - jansson: json_loadb with JSON_DISABLE_EOF_CHECK walking the stream;
 * - cJSON: cJSON_ParseWithLengthOpts with return_parse_end walking the stream;
 * - simdjson: DOM parse_many, on one thread (and with its default second
 *   thread, as "simdjson-2t"; and "whole+read": after the stream is copied
 *   64 KiB at a time into its own buffer, the copies dcs's 64KiB+read pays);
 * - memchr over the whole buffer for a byte that never occurs: the bandwidth
 *   floor;
 * (decode.c), and on the first stream also the encoders and, when the typed
 * views exist, typed decoding and encoding of the payloads (encode.c). This
 * file is the driver: options, streams, timing and output.
 *
 * Every parser extracts origin, destination, type and key as strings and adds
 * up bench_sig() of each; every pass must find the same number of messages
 * and the same sum as dcs, or the program stops with an error. Each figure
 * is the median of --runs samples after a warm-up sample, with min and max;
 * a sample repeats the pass until it has run for at least --min-time
 * seconds, and the figures of one stream are sampled in interleaved rounds
 * so that a change of the machine's speed affects them alike. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#include "bench.h"
#include "dcs/codec.h"
#include "mix.h"
#include "simdjson_many.h"

uint64_t bench_allocs;
int bench_verify;
char bench_errbuf[512];
struct bench_options bench_opt;

/* ------------------------------------------------------------------------ */
/* Allocation counting                                                       */

static void *count_alloc(void *ud, size_t n)
{
    (void)ud;
    bench_allocs++;
    return malloc(n);
}

static void *count_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    bench_allocs++;
    return realloc(p, n);
}

static void count_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

const dcs_allocator bench_counting_allocator = {count_alloc, count_realloc, count_free, NULL};

static void *count_malloc(size_t n)
{
    bench_allocs++;
    return malloc(n);
}

/* ------------------------------------------------------------------------ */
/* Utilities                                                                 */

void bench_die(const char *fmt, ...)
{
    va_list ap;
    fputs("dcs-bench-codec: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

int bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bench_errbuf, sizeof bench_errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_die("out of memory (%zu bytes)", n);
    return p;
}

/* A buffer of len bytes followed by zeroed padding (simdjson reads up to
 * SIMDJSON_PADDING bytes past the end), 64-byte aligned. */
char *bench_padded_alloc(size_t len)
{
    size_t pad = bench_simdjson_padding(), n = (len + pad + 63) / 64 * 64;
    char *p = aligned_alloc(64, n);
    if (!p)
        bench_die("out of memory (%zu bytes)", n);
    memset(p + len, 0, n - len);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */

#define MAX_STREAMS 16

static struct bench_stream streams[MAX_STREAMS];
static size_t n_streams;

static void load_stream(struct bench_stream *s, const char *spec)
{
    const char *eq = strchr(spec, '='), *path = eq ? eq + 1 : spec;
    FILE *f = fopen(path, "rb");
    long size;

    if (eq) {
        snprintf(s->name, sizeof s->name, "%.*s", (int)(eq - spec), spec);
    } else {
        const char *base = strrchr(path, '/'), *dot;
        base = base ? base + 1 : path;
        dot = strrchr(base, '.');
        snprintf(s->name, sizeof s->name, "%.*s", (int)(dot ? dot - base : (long)strlen(base)),
                 base);
    }
    if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        bench_die("%s: %s", path, strerror(errno));
    s->len = (size_t)size;
    s->buf = bench_padded_alloc(s->len);
    if (fread(s->buf, 1, s->len, f) != s->len)
        bench_die("%s: short read", path);
    fclose(f);
}

static void generate_stream(struct bench_stream *s, uint64_t seed, uint64_t bytes)
{
    dcs_buf b;
    int rc;
    dcs_buf_init(&b, NULL);
    rc = bench_generate(&b, BENCH_MIX, seed, bytes, 0, NULL);
    if (rc)
        bench_die("generator: %s", dcs_err_name(rc));
    snprintf(s->name, sizeof s->name, "mix");
    s->len = b.len;
    s->buf = bench_padded_alloc(s->len);
    memcpy(s->buf, b.data, b.len);
    dcs_buf_free(&b);
}

/* Decode the stream once with dcs: count, sum, the largest message and the
 * prefix for 1-byte feeding. Any decoding error stops the program. */
static void prepare_stream(struct bench_stream *s)
{
    dcs_decoder *d = dcs_decoder_new(NULL, NULL);
    dcs_message m;
    dcs_error e;
    int ev;

    if (!d)
        bench_die("out of memory");
    s->messages = s->sig = 0;
    s->largest = 0;
    s->prefix_len = 0;
    dcs_decoder_feed(d, s->buf, s->len);
    while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
        if (ev == DCS_ERROR)
            bench_die("%s: the stream does not decode cleanly: %s at byte %llu: %s", s->name,
                      dcs_err_name(e.code), (unsigned long long)e.offset, e.message);
        s->messages++;
        s->sig += bench_sig4(&m);
        if (m.raw.len > s->largest)
            s->largest = m.raw.len;
        if (!s->prefix_len) {
            s->prefix_msgs = s->messages;
            s->prefix_sig = s->sig;
            if (m.offset + m.raw.len >= bench_opt.prefix)
                s->prefix_len = (size_t)(m.offset + m.raw.len);
        }
    }
    while (dcs_decoder_finish(d, &e) == DCS_ERROR)
        bench_die("%s: %s", s->name, e.message);
    dcs_decoder_free(d);
    if (!s->messages)
        bench_die("%s: no message in the stream", s->name);
    if (!s->prefix_len) {
        s->prefix_len = s->len;
        s->prefix_msgs = s->messages;
        s->prefix_sig = s->sig;
    }
}

/* ------------------------------------------------------------------------ */
/* Measuring                                                                 */

#define MAX_RESULTS 256
#define MAX_RUNS 101

static struct bench_result results[MAX_RESULTS];
static size_t n_results;

static char notes[32][320];
static size_t n_notes;

void bench_note(const char *fmt, ...)
{
    va_list ap;
    if (n_notes == sizeof notes / sizeof notes[0])
        return;
    va_start(ap, fmt);
    vsnprintf(notes[n_notes++], sizeof notes[0], fmt, ap);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check_pass(const char *stream, const struct bench_figure *f, int rc, uint64_t msgs,
                       uint64_t sig, uint64_t want_sig)
{
    if (rc)
        bench_die("%s: %s %s: %s", stream, f->parser, f->mode, bench_errbuf);
    if (msgs != f->messages)
        bench_die("%s: %s %s found %llu messages, dcs %llu", stream, f->parser, f->mode,
                  (unsigned long long)msgs, (unsigned long long)f->messages);
    if (want_sig != BENCH_NO_SIG && sig != want_sig)
        bench_die("%s: %s %s extracted other strings than dcs (sum %llu, dcs %llu)", stream,
                  f->parser, f->mode, (unsigned long long)sig, (unsigned long long)want_sig);
}

/* The figures queued by bench_measure(), timed together by bench_run(). */
#define MAX_PENDING 16
static struct bench_figure pending[MAX_PENDING];
static char pending_stream[MAX_PENDING][48];
static size_t n_pending;

void bench_measure(const char *stream, const struct bench_figure *f)
{
    if (bench_opt.only && strcmp(bench_opt.only, f->parser))
        return;
    if (n_pending == MAX_PENDING)
        bench_die("too many figures at once");
    pending[n_pending] = *f;
    snprintf(pending_stream[n_pending], sizeof pending_stream[0], "%.47s", stream);
    n_pending++;
}

static void progress(const char *stream, const struct bench_figure *f, const char *what)
{
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K  %s: %s %s %s", stream, f->parser, f->mode, what);
}

/* One sample: repeat the pass for at least min_time seconds. Returns msg/s. */
static double sample(const char *stream, const struct bench_figure *f, uint64_t *msgs_done)
{
    uint64_t reps = 0, msgs, sig;
    double t0 = now(), t;
    do {
        int rc = f->fn(f->ctx, &msgs, &sig);
        check_pass(stream, f, rc, msgs, sig, f->check_sig ? f->sig : BENCH_NO_SIG);
        reps++;
    } while ((t = now() - t0) < bench_opt.min_time);
    *msgs_done += reps * f->messages;
    return (double)(reps * f->messages) / t;
}

void bench_run(void)
{
    static double rates[MAX_PENDING][MAX_RUNS];
    uint64_t bytes[MAX_PENDING], allocs[MAX_PENDING], total[MAX_PENDING];
    size_t k;
    int i;

    if (n_results + n_pending > MAX_RESULTS)
        bench_die("too many results");
    /* Verify and warm up each figure: its first pass checks the count and
     * the sum (and sizes the encoders' output), then one untimed sample. */
    for (k = 0; k < n_pending; k++) {
        const struct bench_figure *f = &pending[k];
        uint64_t msgs = 0, sig = 0, ignored = 0;
        int rc;
        progress(pending_stream[k], f, "(warm-up)");
        bench_verify = 1;
        rc = f->fn(f->ctx, &msgs, &sig);
        bench_verify = 0;
        check_pass(pending_stream[k], f, rc, msgs, sig, f->sig);
        bytes[k] = f->bytes ? f->bytes : sig;
        sample(pending_stream[k], f, &ignored);
        allocs[k] = total[k] = 0;
    }
    /* Timed samples, interleaved: round i takes one sample of every figure,
     * so that a drift of the machine's speed hits all of them alike. */
    for (i = 0; i < bench_opt.runs; i++) {
        for (k = 0; k < n_pending; k++) {
            uint64_t a0 = bench_allocs;
            char what[32];
            snprintf(what, sizeof what, "(run %d/%d)", i + 1, bench_opt.runs);
            progress(pending_stream[k], &pending[k], what);
            rates[k][i] = sample(pending_stream[k], &pending[k], &total[k]);
            allocs[k] += bench_allocs - a0;
        }
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K");

    for (k = 0; k < n_pending; k++) {
        const struct bench_figure *f = &pending[k];
        struct bench_result *r = &results[n_results++];
        int n = bench_opt.runs;
        qsort(rates[k], (size_t)n, sizeof rates[k][0], cmp_double);
        memset(r, 0, sizeof *r);
        memcpy(r->stream, pending_stream[k], sizeof r->stream);
        snprintf(r->parser, sizeof r->parser, "%.23s", f->parser);
        snprintf(r->mode, sizeof r->mode, "%.23s", f->mode);
        r->msg_s = n % 2 ? rates[k][n / 2] : (rates[k][n / 2 - 1] + rates[k][n / 2]) / 2;
        r->min = rates[k][0];
        r->max = rates[k][n - 1];
        r->mb_s = r->msg_s * (double)bytes[k] / (double)f->messages / 1e6;
        r->bytes = bytes[k];
        r->messages = f->messages;
        r->count_allocs = f->count_allocs;
        r->allocs = allocs[k];
        r->total_msgs = total[k];
        r->allocs_per_msg = (double)allocs[k] / (double)total[k];
    }
    n_pending = 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

static void cpu_model(char *buf, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, n, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, n, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_json(void)
{
    char cpu[256], date[32];
    struct utsname u;
    time_t t = time(NULL);
    struct tm tm;
    size_t i;

    cpu_model(cpu, sizeof cpu);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (uname(&u))
        snprintf(u.release, sizeof u.release, "unknown");

    printf("{\"machine\":{\"cpu\":");
    json_str(stdout, cpu);
    printf(",\"logical_cpus\":%ld,\"kernel\":", sysconf(_SC_NPROCESSORS_ONLN));
    json_str(stdout, u.release);
    printf(",\"compiler_c\":");
    json_str(stdout, "gcc " __VERSION__);
    printf(",\"compiler_cxx\":");
    json_str(stdout, bench_cxx_compiler());
    printf(",\"dcs\":");
    json_str(stdout, dcs_version());
    printf(",\"jansson\":");
    json_str(stdout, jansson_version_str());
    printf(",\"cjson\":");
    json_str(stdout, cJSON_Version());
    printf(",\"simdjson\":");
    json_str(stdout, bench_simdjson_version());
    printf(",\"simdjson_implementation\":");
    json_str(stdout, bench_simdjson_implementation());
    printf(",\"date\":\"%s\"},", date);
    printf("\"config\":{\"quick\":%s,\"runs\":%d,\"min_time_s\":%g,\"onebyte_prefix\":%zu,"
           "\"encode_subset\":%zu,\"read_size\":65536},",
           bench_opt.quick ? "true" : "false", bench_opt.runs, bench_opt.min_time,
           bench_opt.prefix, bench_opt.encode_subset);
    printf("\"streams\":[");
    for (i = 0; i < n_streams; i++) {
        const struct bench_stream *s = &streams[i];
        printf("%s{\"name\":", i ? "," : "");
        json_str(stdout, s->name);
        printf(",\"bytes\":%zu,\"messages\":%llu,\"mean_bytes\":%.1f,\"largest\":%zu,"
               "\"onebyte_prefix_bytes\":%zu,\"onebyte_prefix_messages\":%llu}",
               s->len, (unsigned long long)s->messages, (double)s->len / (double)s->messages,
               s->largest, s->prefix_len, (unsigned long long)s->prefix_msgs);
    }
    printf("],\"results\":[");
    for (i = 0; i < n_results; i++) {
        const struct bench_result *r = &results[i];
        printf("%s\n{\"stream\":", i ? "," : "");
        json_str(stdout, r->stream);
        printf(",\"parser\":");
        json_str(stdout, r->parser);
        printf(",\"mode\":");
        json_str(stdout, r->mode);
        printf(",\"mb_s\":%.2f,\"msg_s\":%.0f,\"min\":%.0f,\"max\":%.0f,\"bytes\":%llu,"
               "\"messages\":%llu,",
               r->mb_s, r->msg_s, r->min, r->max, (unsigned long long)r->bytes,
               (unsigned long long)r->messages);
        if (r->count_allocs)
            printf("\"allocs_per_msg\":%.6f,\"allocs\":%llu,\"timed_messages\":%llu}",
                   r->allocs_per_msg, (unsigned long long)r->allocs,
                   (unsigned long long)r->total_msgs);
        else
            printf("\"allocs_per_msg\":null}");
    }
    printf("],\"notes\":[");
    for (i = 0; i < n_notes; i++) {
        printf("%s", i ? "," : "");
        json_str(stdout, notes[i]);
    }
    printf("]}\n");
}

static void print_table(void)
{
    char cpu[256];
    size_t i;
    const char *cur = "";

    cpu_model(cpu, sizeof cpu);
    printf("cpu: %s; simdjson kernel: %s; runs: %d (median, min, max of msg/s)\n", cpu,
           bench_simdjson_implementation(), bench_opt.runs);
    for (i = 0; i < n_results; i++) {
        const struct bench_result *r = &results[i];
        if (strcmp(cur, r->stream)) {
            size_t k;
            cur = r->stream;
            for (k = 0; k < n_streams && strcmp(streams[k].name, cur); k++)
                ;
            if (k < n_streams)
                printf("\n%s: %zu bytes, %llu messages, mean %.0f bytes\n", cur, streams[k].len,
                       (unsigned long long)streams[k].messages,
                       (double)streams[k].len / (double)streams[k].messages);
            printf("  %-14s %-16s %10s %12s %12s %12s %12s\n", "parser", "mode", "MB/s", "msg/s",
                   "min", "max", "allocs/msg");
        }
        printf("  %-14s %-16s %10.1f %12.0f %12.0f %12.0f", r->parser, r->mode, r->mb_s,
               r->msg_s, r->min, r->max);
        if (r->count_allocs)
            printf(" %12.4f\n", r->allocs_per_msg);
        else
            printf(" %12s\n", "-");
    }
    for (i = 0; i < n_notes; i++)
        printf("%snote: %s\n", i ? "" : "\n", notes[i]);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dcs-bench-codec [OPTIONS]\n"
            "\n"
            "Measure dcs's decoder and encoder against jansson, cJSON, simdjson and\n"
            "memchr on the same bytes, in this one process.\n"
            "\n"
            "options:\n"
            "  -i, --input [NAME=]FILE  a stream to measure (repeatable; the encoders and\n"
            "                           typed views run on the first). Default: the\n"
            "                           realistic mix, generated in memory\n"
            "      --quick              smaller default stream, fewer and shorter runs\n"
            "      --json               print one JSON object instead of the table\n"
            "  -r, --runs N             timed samples per figure (default 7, quick 5)\n"
            "      --min-time S         a sample lasts at least S seconds (default 0.2,\n"
            "                           quick 0.05)\n"
            "      --seed N             seed of the generated mix (default 1)\n"
            "      --bytes N            size of the generated mix (default 16 MiB, quick 4 MiB)\n"
            "      --prefix N           bytes fed 1 byte at a time (default 1 MiB, quick\n"
            "                           256 KiB; rounded up to a message boundary)\n"
            "      --only PARSER        time only the figures of PARSER (dcs, dcs-typed,\n"
            "                           simdjson, simdjson-2t, cjson, cjson-prealloc,\n"
            "                           jansson, memchr), e.g. under a profiler\n"
            "  -h, --help               show this help\n");
}

int main(int argc, char **argv)
{
    enum { OPT_QUICK = 256, OPT_JSON, OPT_MIN_TIME, OPT_SEED, OPT_BYTES, OPT_PREFIX, OPT_ONLY };
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"json", no_argument, NULL, OPT_JSON},
        {"runs", required_argument, NULL, 'r'},
        {"min-time", required_argument, NULL, OPT_MIN_TIME},
        {"seed", required_argument, NULL, OPT_SEED},
        {"bytes", required_argument, NULL, OPT_BYTES},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"only", required_argument, NULL, OPT_ONLY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *inputs[MAX_STREAMS];
    size_t n_inputs = 0, i;
    int c, runs = 0;
    double min_time = 0;
    unsigned long long seed = 1, bytes = 0, prefix = 0;

    while ((c = getopt_long(argc, argv, "i:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (n_inputs == MAX_STREAMS)
                bench_die("at most %d inputs", MAX_STREAMS);
            inputs[n_inputs++] = optarg;
            break;
        case OPT_QUICK: bench_opt.quick = 1; break;
        case OPT_JSON: bench_opt.json = 1; break;
        case 'r':
            runs = atoi(optarg);
            if (runs < 1 || runs > MAX_RUNS)
                bench_die("--runs must be 1..%d", MAX_RUNS);
            break;
        case OPT_MIN_TIME:
            min_time = strtod(optarg, NULL);
            if (!(min_time > 0 && min_time < 60))
                bench_die("--min-time must be in (0, 60) seconds");
            break;
        case OPT_SEED: seed = strtoull(optarg, NULL, 10); break;
        case OPT_BYTES: bytes = strtoull(optarg, NULL, 10); break;
        case OPT_PREFIX: prefix = strtoull(optarg, NULL, 10); break;
        case OPT_ONLY: bench_opt.only = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    bench_opt.runs = runs ? runs : bench_opt.quick ? 5 : 7;
    bench_opt.min_time = min_time > 0 ? min_time : bench_opt.quick ? 0.05 : 0.2;
    bench_opt.prefix = prefix ? (size_t)prefix : bench_opt.quick ? 256 * 1024 : 1024 * 1024;
    bench_opt.encode_subset = bench_opt.quick ? 1024 * 1024 : 8 * 1024 * 1024;
    if (!bytes)
        bytes = bench_opt.quick ? 4u << 20 : 16u << 20;

    json_set_alloc_funcs(count_malloc, free);

    if (n_inputs == 0) {
        generate_stream(&streams[0], seed, bytes);
        n_streams = 1;
    }
    for (i = 0; i < n_inputs; i++)
        load_stream(&streams[n_streams++], inputs[i]);
    for (i = 0; i < n_streams; i++)
        prepare_stream(&streams[i]);

    for (i = 0; i < n_streams; i++) {
        if (!bench_opt.json)
            fprintf(stderr, "%s: %zu bytes, %llu messages\n", streams[i].name, streams[i].len,
                    (unsigned long long)streams[i].messages);
        bench_measure_decoders(&streams[i]);
        if (i == 0) {
            bench_measure_encoders(&streams[i]);
            bench_measure_typed(&streams[i]);
        }
    }

    if (bench_opt.json)
        print_json();
    else
        print_table();
    for (i = 0; i < n_streams; i++)
        free(streams[i].buf);
    return 0;
}
