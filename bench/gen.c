/* gen.c - dcs-bench-gen: write a deterministic dcs byte stream for the
 * benchmarks (the realistic mix or one of the stress streams).
 *
 * The stream is built in memory with the project's encoder, decoded once with
 * a fresh dcs decoder (it must give every message and no error; --no-check
 * skips this) and then written to FILE or standard output. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mix.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dcs-bench-gen [OPTIONS] (--bytes N | --messages N)\n"
            "\n"
            "Write a deterministic stream of dcs envelopes (compact JSON, concatenated\n"
            "with no delimiter) to standard output or to FILE.\n"
            "\n"
            "options:\n"
            "  -k, --kind KIND      mix (default), tiny-heartbeats, large-jobs, deep,\n"
            "                       long-strings, whitespace\n"
            "  -s, --seed N         seed of the generator (default 1)\n"
            "  -b, --bytes N        stop once the stream holds at least N bytes (K, M, G suffixes)\n"
            "  -n, --messages N     stop after N messages\n"
            "  -o, --out FILE       write to FILE instead of standard output\n"
            "      --stats          print the share and mean size of each class on stderr\n"
            "      --no-check       do not decode the stream before writing it\n"
            "  -h, --help           show this help\n"
            "\n"
            "exit status: 0 written, 1 the self-check failed, 2 usage or I/O error\n");
}

static int parse_count(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    switch (*end) {
    case 'K': case 'k': v <<= 10; end++; break;
    case 'M': case 'm': v <<= 20; end++; break;
    case 'G': case 'g': v <<= 30; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_STATS = 256, OPT_NO_CHECK };
    static const struct option opts[] = {
        {"kind", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"bytes", required_argument, NULL, 'b'},
        {"messages", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"stats", no_argument, NULL, OPT_STATS},
        {"no-check", no_argument, NULL, OPT_NO_CHECK},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int kind = BENCH_MIX, stats = 0, check = 1, c, rc;
    uint64_t seed = 1, max_bytes = 0, max_messages = 0;
    const char *out_path = NULL;
    bench_gen_stats st;
    dcs_buf buf;
    FILE *f;

    while ((c = getopt_long(argc, argv, "k:s:b:n:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            kind = bench_kind_parse(optarg);
            if (kind < 0) {
                fprintf(stderr, "dcs-bench-gen: unknown kind '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_count(optarg, &seed)) {
                fprintf(stderr, "dcs-bench-gen: bad seed '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_count(optarg, &max_bytes) || !max_bytes) {
                fprintf(stderr, "dcs-bench-gen: bad byte count '%s'\n", optarg);
                return 2;
            }
            break;
        case 'n':
            if (parse_count(optarg, &max_messages) || !max_messages) {
                fprintf(stderr, "dcs-bench-gen: bad message count '%s'\n", optarg);
                return 2;
            }
            break;
        case 'o': out_path = optarg; break;
        case OPT_STATS: stats = 1; break;
        case OPT_NO_CHECK: check = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || (!max_bytes && !max_messages)) {
        usage(stderr);
        return 2;
    }

    dcs_buf_init(&buf, NULL);
    rc = bench_generate(&buf, kind, seed, max_bytes, max_messages, &st);
    if (rc) {
        fprintf(stderr, "dcs-bench-gen: the encoder refused a message: %s\n", dcs_err_name(rc));
        return 1;
    }
    if (check) {
        bench_check ck;
        if (bench_check_stream(buf.data, buf.len, &ck) || ck.messages != st.messages) {
            fprintf(stderr,
                    "dcs-bench-gen: self-check failed: %llu of %llu messages decoded, %llu "
                    "errors; first: %s at byte %llu: %s\n",
                    (unsigned long long)ck.messages, (unsigned long long)st.messages,
                    (unsigned long long)ck.errors, dcs_err_name(ck.first.code),
                    (unsigned long long)ck.first.offset, ck.first.message);
            return 1;
        }
    }
    if (stats) {
        int i;
        fprintf(stderr, "%s seed %llu: %llu messages, %llu bytes, mean %.1f bytes, largest %zu\n",
                bench_kind_name(kind), (unsigned long long)seed,
                (unsigned long long)st.messages, (unsigned long long)st.bytes,
                st.messages ? (double)st.bytes / (double)st.messages : 0.0, st.largest);
        for (i = 0; i < BENCH_CLASS_COUNT; i++) {
            if (!st.count[i])
                continue;
            fprintf(stderr, "  %-16s %5.1f %%  mean %7.1f bytes  %5.1f %% of the bytes\n",
                    bench_class_name(i), 100.0 * (double)st.count[i] / (double)st.messages,
                    (double)st.class_bytes[i] / (double)st.count[i],
                    100.0 * (double)st.class_bytes[i] / (double)st.bytes);
        }
    }

    f = out_path ? fopen(out_path, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "dcs-bench-gen: %s: %s\n", out_path, strerror(errno));
        return 2;
    }
    if (fwrite(buf.data, 1, buf.len, f) != buf.len || (out_path ? fclose(f) : fflush(f))) {
        fprintf(stderr, "dcs-bench-gen: write error: %s\n", strerror(errno));
        return 2;
    }
    dcs_buf_free(&buf);
    return 0;
}
