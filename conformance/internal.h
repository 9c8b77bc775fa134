/* internal.h - helpers shared by transcript.c and pattern.c: an arena that
 * obtains its blocks from a dcs_allocator and frees them all at once. */
#ifndef DCS_CONFORM_INTERNAL_H
#define DCS_CONFORM_INTERNAL_H

#include <regex.h>
#include <stddef.h>

#include "transcript.h"

typedef struct dcs__ablock dcs__ablock;

typedef struct dcs__arena {
    dcs_allocator a; /* a copy of the allocator it was created with */
    dcs__ablock *head;
} dcs__arena;

void dcs__arena_init(dcs__arena *ar, const dcs_allocator *a);
void dcs__arena_free(dcs__arena *ar);
/* Returns n bytes aligned for any type, or NULL when allocation fails. */
void *dcs__arena_alloc(dcs__arena *ar, size_t n);
/* Returns a NUL-terminated copy of s[0..len), or NULL. */
char *dcs__arena_strdup(dcs__arena *ar, const char *s, size_t len);

/* Compile the pattern that starts at text[0] and stop after its first value.
 * *used receives the number of bytes consumed. With matchers 0 only JSON and
 * $NAME references are accepted (a message of a send step). Errors are as
 * dcs_pattern_compile's. */
int dcs__pattern_compile_prefix(const char *text, size_t len, int matchers,
                                const dcs_allocator *a, dcs_pattern **out, size_t *used,
                                char *why, size_t whylen);

/* JSON value types, as told by a value's first byte. */
enum { J_NONE, J_STRING, J_NUMBER, J_INTEGER, J_BOOL, J_NULL, J_OBJECT, J_ARRAY };

/* A compiled pattern is a tree of nodes in the pattern's arena. */
enum { N_LIT, N_OBJECT, N_ARRAY, N_ANY, N_TYPE, N_REGEX, N_RANGE, N_ABSENT, N_VAR, N_LEN, N_EACH };

typedef struct dcs__pnode dcs__pnode;
struct dcs__pnode {
    int kind;
    int type;          /* N_LIT, N_TYPE: a J_* type */
    const char *raw;   /* the pattern text of this node */
    size_t raw_len;
    const char *s;     /* N_LIT string: decoded; number: its text; N_VAR: the name */
    size_t slen;
    int has_lo, has_hi, closed;
    double lo, hi;
    regex_t *re;
    dcs__pnode *sub;        /* N_VAR: the matcher after ':'; N_EACH: the element pattern */
    dcs__pnode *kids, *next; /* members or elements */
    const char *name;  /* as a member: its decoded name */
    size_t name_len;
};

typedef struct dcs__regs {
    regex_t *re;
    struct dcs__regs *next;
} dcs__regs;

struct dcs_pattern {
    dcs__arena ar;
    const char *text;
    dcs__pnode *root;
    dcs__regs *regs;
};

/* Skips JSON whitespace in p[0..e). */
const char *dcs__skip_ws(const char *p, const char *e);
/* p at '"': the byte after the string's closing quote (e if none). */
const char *dcs__skip_string(const char *p, const char *e);
/* The end of the JSON value at p (e if it does not end); never reads past e.
 * Meant for validated text, safe on any. */
const char *dcs__skip_value(const char *p, const char *e);
/* Converts the JSON number p[0..len) to a double; 0 if it is too long. */
int dcs__num_value(const char *p, size_t len, double *d);

#endif
