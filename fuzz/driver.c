/*
 * driver.c - the main() of every harness when it is not linked with
 * libFuzzer (which brings its own).
 *
 *   fuzz-HARNESS FILE|DIR ...   replay every file given (directories: every
 *                               file in them, sorted, hidden ones skipped);
 *                               the regression suite and fuzz/repro use this
 *   fuzz-HARNESS                one input from standard input; built with
 *                               afl-clang-fast, AFL++'s persistent mode with
 *                               test cases in shared memory (__AFL_LOOP)
 *
 * A failed check aborts (common.h); under a sanitizer, the input being
 * replayed is named in the report.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define FZ_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FZ_SANITIZER 1
#endif
#ifdef FZ_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef FZ_HARNESS
#define FZ_HARNESS "harness"
#endif

extern const char *fz_current_input;

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

static void fz_say_input(void)
{
    if (fz_current_input) {
        static const char pre[] = "fuzz: the input was ";
        ssize_t rc = write(2, pre, sizeof pre - 1);
        rc = write(2, fz_current_input, strlen(fz_current_input));
        rc = write(2, "\n", 1);
        (void)rc;
    }
}

#ifndef FZ_SANITIZER
static void fz_on_signal(int sig)
{
    fz_say_input();
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

static int fz_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!f) {
        fprintf(stderr, "fuzz-%s: cannot open %s\n", FZ_HARNESS, path);
        return -1;
    }
    do {
        if (len == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "fuzz-%s: out of memory reading %s\n", FZ_HARNESS, path);
                exit(2);
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    /* An exact-size copy, so that ASan sees a read past the end. */
    {
        unsigned char *exact = malloc(len ? len : 1);
        if (!exact) exit(2);
        if (len) memcpy(exact, buf, len);
        free(buf);
        fz_current_input = path;
        LLVMFuzzerTestOneInput(exact, len);
        fz_current_input = NULL;
        free(exact);
    }
    return 0;
}

static int fz_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay path (a file, or every file of a directory). Returns the count. */
static long fz_replay(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    long count = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz-%s: %s does not exist; skipped\n", FZ_HARNESS, path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return fz_run_file(path) == 0 ? 1 : 0;
    d = opendir(path);
    if (!d) return 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0 ||
            strcmp(de->d_name, "README.txt") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            if (!names) exit(2);
        }
        names[n] = malloc(strlen(path) + strlen(de->d_name) + 2);
        if (!names[n]) exit(2);
        sprintf(names[n], "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, fz_cmp);
    for (i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISDIR(st.st_mode))
            count += fz_replay(names[i]);
        else if (fz_run_file(names[i]) == 0)
            count++;
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        long total = 0;
        int i;
#ifdef FZ_SANITIZER
        /* The sanitizers report crashes themselves; name the input after. */
        __sanitizer_set_death_callback(fz_say_input);
#else
        signal(SIGSEGV, fz_on_signal);
        signal(SIGBUS, fz_on_signal);
        signal(SIGABRT, fz_on_signal);
        signal(SIGFPE, fz_on_signal);
#endif
        for (i = 1; i < argc; i++)
            total += fz_replay(argv[i]);
        printf("fuzz-%s: %ld inputs replayed, no failure\n", FZ_HARNESS, total);
        if (total == 0) {
            fprintf(stderr, "fuzz-%s: no input found in the paths given\n", FZ_HARNESS);
            return 1;
        }
        return 0;
    }
#ifdef __AFL_FUZZ_TESTCASE_LEN
    __AFL_INIT();
    {
        unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
        while (__AFL_LOOP(100000)) {
            size_t len = __AFL_FUZZ_TESTCASE_LEN;
            LLVMFuzzerTestOneInput(buf, len);
        }
    }
    return 0;
#else
    {
        static unsigned char buf[1u << 20];
        size_t len = fread(buf, 1, sizeof buf, stdin);
        unsigned char *exact = malloc(len ? len : 1);
        if (!exact) return 2;
        if (len) memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
        return 0;
    }
#endif
}
