/* dcs-dump - decode a dcs byte stream and print each message as one JSON line.
 *
 * Messages go to stdout in canonical form (spec 6.4: members in wire order,
 * unknown members after them, payload and numbers exactly as received);
 * errors go to stderr as "error: <reason> at byte <offset>: <message>".
 * Exit status: 0 no error, 1 at least one decoding error, 2 usage or I/O. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcs/codec.h"

#define EXIT_DECODE 1
#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dcs-dump [OPTIONS] [FILE]\n"
            "\n"
            "Decode a dcs byte stream (concatenated JSON envelopes) from FILE, or from\n"
            "standard input when FILE is absent or '-', and print each message as one\n"
            "canonical JSON line on standard output. Each error is one line on standard\n"
            "error: 'error: <reason> at byte <offset>: <message>'.\n"
            "\n"
            "options:\n"
            "  -c, --chunk N        feed the decoder N bytes at a time (default: whole reads)\n"
            "      --max-size N     maximum message size in bytes (default %u)\n"
            "      --max-depth N    maximum nesting depth, envelope = 1 (default %u)\n"
            "  -s, --stats          print decoder statistics as one JSON line on stderr at the end\n"
            "  -h, --help           show this help and exit\n"
            "  -V, --version        show the version and exit\n"
            "\n"
            "exit status: 0 all input decoded, 1 at least one decoding error,\n"
            "             2 usage or I/O error\n",
            DCS_DEFAULT_MAX_MESSAGE_SIZE, DCS_DEFAULT_MAX_DEPTH);
}

static int parse_size(const char *s, const char *what, size_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-') {
        fprintf(stderr, "dcs-dump: %s must be a positive integer, got '%s'\n", what, s);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

struct dump {
    dcs_decoder *dec;
    dcs_buf out;
    int errors;
};

static int drain(struct dump *st)
{
    dcs_message msg;
    dcs_error err;
    dcs_envelope env;
    int ev, rc;
    while ((ev = dcs_decoder_next(st->dec, &msg, &err)) != DCS_AGAIN) {
        if (ev == DCS_ERROR) {
            fprintf(stderr, "error: %s at byte %llu: %s\n", dcs_err_name(err.code),
                    (unsigned long long)err.offset, err.message);
            st->errors++;
            continue;
        }
        dcs_envelope_from_message(&env, &msg);
        st->out.len = 0;
        rc = dcs_encode(&st->out, &env, 0);
        if (rc == 0)
            rc = dcs_buf_append(&st->out, "\n", 1);
        if (rc) {
            fprintf(stderr, "dcs-dump: cannot encode message at byte %llu: %s\n",
                    (unsigned long long)msg.offset, dcs_strerror(rc));
            return -1;
        }
        if (fwrite(st->out.data, 1, st->out.len, stdout) != st->out.len) {
            fprintf(stderr, "dcs-dump: write error: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"chunk", required_argument, NULL, 'c'},   {"max-size", required_argument, NULL, 'S'},
        {"max-depth", required_argument, NULL, 'D'}, {"stats", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    dcs_decoder_config cfg;
    struct dump st;
    size_t chunk = 0, v;
    int c, fd = 0, stats = 0, rc = 0, ierr;
    const char *path = "-";
    static char buf[65536];

    dcs_decoder_config_init(&cfg);
    while ((c = getopt_long(argc, argv, "c:shV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_size(optarg, "--chunk", &chunk))
                return EXIT_USAGE;
            break;
        case 'S':
            if (parse_size(optarg, "--max-size", &cfg.max_message_size))
                return EXIT_USAGE;
            break;
        case 'D':
            if (parse_size(optarg, "--max-depth", &v))
                return EXIT_USAGE;
            if (v < 2 || v > DCS_MAX_DEPTH_LIMIT) {
                fprintf(stderr, "dcs-dump: --max-depth must be between 2 and %u\n",
                        DCS_MAX_DEPTH_LIMIT);
                return EXIT_USAGE;
            }
            cfg.max_depth = (unsigned)v;
            break;
        case 's':
            stats = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dcs-dump %s\n", dcs_version());
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "dcs-dump: at most one FILE, got %d\n", argc - optind);
        return EXIT_USAGE;
    }
    if (optind < argc)
        path = argv[optind];
    if (strcmp(path, "-") != 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "dcs-dump: cannot open %s: %s\n", path, strerror(errno));
            return EXIT_USAGE;
        }
    }
    st.dec = dcs_decoder_new(&cfg, &ierr);
    if (!st.dec) {
        fprintf(stderr, "dcs-dump: cannot create decoder: %s\n", dcs_strerror(ierr));
        return EXIT_USAGE;
    }
    dcs_buf_init(&st.out, NULL);
    st.errors = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        size_t off = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "dcs-dump: read error on %s: %s\n", path, strerror(errno));
            rc = EXIT_USAGE;
            goto out;
        }
        if (n == 0)
            break;
        while (off < (size_t)n) {
            size_t len = (size_t)n - off;
            if (chunk && len > chunk)
                len = chunk;
            dcs_decoder_feed(st.dec, buf + off, len);
            if (drain(&st)) {
                rc = EXIT_USAGE;
                goto out;
            }
            off += len;
        }
    }
    {
        dcs_error err;
        while (dcs_decoder_finish(st.dec, &err) == DCS_ERROR) {
            fprintf(stderr, "error: %s at byte %llu: %s\n", dcs_err_name(err.code),
                    (unsigned long long)err.offset, err.message);
            st.errors++;
        }
    }
    rc = st.errors ? EXIT_DECODE : 0;
out:
    if (fflush(stdout) != 0) {
        fprintf(stderr, "dcs-dump: write error: %s\n", strerror(errno));
        rc = EXIT_USAGE;
    }
    if (stats) {
        const dcs_decoder_stats *s = dcs_decoder_get_stats(st.dec);
        fprintf(stderr,
                "{\"bytes_in\":%llu,\"messages\":%llu,\"errors\":%llu,\"bytes_skipped\":%llu,"
                "\"resyncs\":%llu}\n",
                (unsigned long long)s->bytes_in, (unsigned long long)s->messages,
                (unsigned long long)s->errors, (unsigned long long)s->bytes_skipped,
                (unsigned long long)s->resyncs);
    }
    dcs_buf_free(&st.out);
    dcs_decoder_free(st.dec);
    if (fd > 0)
        close(fd);
    return rc;
}
