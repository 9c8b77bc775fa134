/* support.h - helpers shared by the criterion tests. */
#ifndef DCS_TEST_SUPPORT_H
#define DCS_TEST_SUPPORT_H

#include <stddef.h>

#include "dcs/codec.h"

/* A counting allocator that can be told to fail its Nth call (1-based; 0 never). */
typedef struct test_alloc {
    dcs_allocator a;
    long calls;   /* alloc + realloc calls so far */
    long live;    /* blocks allocated and not yet freed */
    long fail_at; /* the call number that fails, 0 for none */
    long failed;  /* how many calls failed */
} test_alloc;

void test_alloc_init(test_alloc *t, long fail_at);

/* Copy len bytes so that they end exactly at a page boundary followed by an
 * unreadable page: any read past the end faults. Returns the copy. */
typedef struct guarded {
    void *region;
    size_t region_len;
    const char *data;
} guarded;

void guard_place(guarded *g, const void *data, size_t len);
void guard_release(guarded *g);

/* Read a whole file; aborts the test on failure. The result is NUL-terminated
 * (not counted in *len) and must be freed with free(). */
char *read_file(const char *path, size_t *len);

/* Path of a file under tests/data (from DCS_TEST_DATA); static buffer. */
const char *data_path(const char *rel);

/* Decode in[0..len) fed in pieces ending at cuts[0] < cuts[1] < ... (the
 * last piece ends at len), calling finish at the end, and return a log with
 * one line per event:
 *   M <offset> <canonical re-encoding>
 *   E <reason> <offset> <msg_offset or -> <message>
 * The log is malloc'd and NUL-terminated. cfg may be NULL. */
char *decode_log(const dcs_decoder_config *cfg, const char *in, size_t len, const size_t *cuts,
                 size_t ncuts);

/* The same, fed one byte at a time. */
char *decode_log_bytewise(const dcs_decoder_config *cfg, const char *in, size_t len);

/* Expand a table input: %_ the standard envelope members, %XX a byte in hex,
 * %% a percent sign, %! an error marker (no byte; its offset is stored in
 * marks[], at most *nmarks). Returns a malloc'd buffer of *len bytes. */
char *expand_input(const char *src, size_t *len, size_t *marks, size_t *nmarks);

/* Split a line into tab-separated fields in place; returns the count. */
size_t split_tabs(char *line, char **fields, size_t max);

#define TEST_ENVELOPE "\"origin\":\"o\",\"destination\":\"d\",\"type\":\"t\",\"key\":\"k\""

#endif
