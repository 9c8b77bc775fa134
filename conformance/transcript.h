/*
 * transcript.h - conformance cases (.dcst transcripts) and JSON patterns with
 * matchers, as specified in spec/TRANSCRIPTS.md.
 *
 * Conventions
 * - Functions return 0 (or 1 for a match) on success and a negative DCS_E*
 *   code on failure: DCS_EINVAL for bad input, DCS_ENOMEM when the allocator
 *   failed.
 * - All memory is obtained through the dcs_allocator given (NULL selects
 *   dcs_default_allocator), except that the C library's regcomp() allocates
 *   the compiled regular expressions itself.
 * - Nothing keeps global state; distinct objects may be used by distinct
 *   threads at once.
 * - Durations are milliseconds of protocol time at time scale 1; the harness
 *   multiplies them by the run's scale.
 */
#ifndef DCS_TRANSCRIPT_H
#define DCS_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "dcs/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */

#define DCS_CASE_MAX_BYTES (1024u * 1024u) /* a whole case file */
#define DCS_CASE_MAX_LINE (64u * 1024u)    /* one logical line, continuations joined */
#define DCS_CASE_MAX_STEPS 10000u          /* steps in a case, alternatives included */
#define DCS_CASE_MAX_NESTING 8u            /* either inside either */
#define DCS_PATTERN_MAX_DEPTH 64u          /* object and array nesting in a pattern */
#define DCS_VARS_MAX 1024u                 /* variables in one table */
#define DCS_DURATION_MAX_MS 1000000000     /* about 11.5 days */

/* ------------------------------------------------------------------------ */
/* Variables                                                                 */

/* One variable: its name (without '$') and its value as raw JSON text. */
typedef struct dcs_var {
    char *name;
    char *value;
    size_t value_len;
} dcs_var;

/* A variable table. Initialise it with dcs_vars_init() and free it with
 * dcs_vars_free(); the members may be read but not changed. */
typedef struct dcs_vars {
    dcs_allocator alloc;
    dcs_var *v;
    size_t n, cap;
} dcs_vars;

void dcs_vars_init(dcs_vars *vars, const dcs_allocator *a);
void dcs_vars_free(dcs_vars *vars);
/* Set name to the JSON value json[0..len), replacing any earlier value.
 * Returns 0, DCS_EBAD_JSON if json is not one JSON value, DCS_EINVAL if the
 * name is not [A-Za-z_][A-Za-z0-9_]* or the table is full, or DCS_ENOMEM. */
int dcs_vars_set(dcs_vars *vars, const char *name, const char *json, size_t len);
/* The variable called name[0..len), or NULL. */
const dcs_var *dcs_vars_get(const dcs_vars *vars, const char *name, size_t len);

/* ------------------------------------------------------------------------ */
/* Patterns (spec/TRANSCRIPTS.md 4.2)                                        */

typedef struct dcs_pattern dcs_pattern;

/* Compile text[0..len), which must be one pattern optionally surrounded by
 * whitespace. On success stores the pattern in *out and returns 0. On
 * failure returns DCS_EINVAL or DCS_ENOMEM and, if why is not NULL, writes a
 * NUL-terminated one-line reason (with the 1-based column) into why. */
int dcs_pattern_compile(const char *text, size_t len, const dcs_allocator *a, dcs_pattern **out,
                        char *why, size_t whylen);
void dcs_pattern_free(dcs_pattern *p);
/* The pattern's source text (NUL-terminated). */
const char *dcs_pattern_text(const dcs_pattern *p);

/* Why a match failed: the path of the first divergence and what differed,
 * e.g. `payload.id: expected "web-server", found "x"`. */
typedef struct dcs_match_why {
    char text[256];
} dcs_match_why;

/* Match json[0..len) against p. Variables the pattern uses for the first
 * time are captured into vars (which may be NULL when the pattern has no
 * variables); when the match fails, nothing is captured. Returns 1 for a
 * match, 0 for no match (why, if not NULL, says where), or DCS_ENOMEM.
 * Text that is not valid JSON never matches. Strings have their escapes
 * decoded before comparison; @len counts Unicode code points of strings. */
int dcs_pattern_match(const dcs_pattern *p, const char *json, size_t len, dcs_vars *vars,
                      dcs_match_why *why);

/* ------------------------------------------------------------------------ */
/* Cases (spec/TRANSCRIPTS.md 1-3)                                           */

enum dcs_role { DCS_ROLE_CLIENT = 1, DCS_ROLE_SERVER = 2 };
enum dcs_level { DCS_LEVEL_MUST = 0, DCS_LEVEL_SHOULD = 1, DCS_LEVEL_INFO = 2 };

/* XX(NAME, "keyword") for every step kind. */
#define DCS_STEP_MAP(XX)                                                                 \
    XX(ACCEPT, "accept") XX(CONNECT, "connect") XX(CLOSE, "close")                       \
    XX(EXPECT_CLOSE, "expect-close") XX(EXPECT_RECONNECT, "expect-reconnect")            \
    XX(EXPECT_NO_CONNECT, "expect-no-connect") XX(RESTART, "restart") XX(KILL, "kill")   \
    XX(SOCKET_REMOVE, "socket remove") XX(SOCKET_STALE, "socket stale")                  \
    XX(SOCKET_LISTEN, "socket listen") XX(KEEPALIVE, "keepalive")                        \
    XX(IUT_STDIN, "iut-stdin")                                                           \
    XX(SEND, "send") XX(SEND_RAW, "send-raw") XX(WAIT, "wait") XX(EXPECT, "expect")      \
    XX(EXPECT_ANY, "expect-any") XX(EXPECT_NONE, "expect-none")                          \
    XX(EXPECT_ERROR, "expect-error") XX(IGNORE, "ignore") XX(UNIGNORE, "unignore")       \
    XX(EITHER, "either")

enum dcs_step_kind {
    DCS__STEP_NONE = 0,
#define DCS__STEP_ENUM(name, kw) DCS_STEP_##name,
    DCS_STEP_MAP(DCS__STEP_ENUM)
#undef DCS__STEP_ENUM
};

/* The keyword of a step kind ("expect-close"), or "unknown". */
const char *dcs_step_name(int kind);

/* A window: an event is accepted between lo_ms and hi_ms after the step
 * starts. */
typedef struct dcs_window {
    int64_t lo_ms, hi_ms;
} dcs_window;

typedef struct dcs_step dcs_step;

typedef struct dcs_step_list {
    dcs_step *steps;
    size_t n;
} dcs_step_list;

/* One step. Members not used by a kind are zero (at_offset is -1). */
struct dcs_step {
    int kind; /* enum dcs_step_kind */
    int line; /* 1-based line of the step in the case */
    /* accept, expect-close, expect (within), expect-any (within),
     * expect-reconnect: has_window is 0 when the step gives none. */
    int has_window;
    dcs_window window;
    /* wait, expect-none (for), expect-no-connect. */
    int64_t duration_ms;
    /* send: the message text as written ($NAME not yet substituted);
     * send-raw: the bytes to write; expect-error: the reason; iut-stdin: the
     * line to write, without its newline. */
    const char *text;
    size_t text_len;
    /* expect, expect-any, expect-none. */
    const dcs_pattern *pattern;
    /* send, send-raw, iut-stdin: how many times (1 unless `repeat N`). */
    size_t repeat;
    /* keepalive: 1 for on, 0 for off. */
    int on;
    /* send, send-raw: chunk size (0: all at once) and pause between chunks,
     * or the split offsets. */
    size_t chunk;
    int64_t pause_ms;
    const size_t *split;
    size_t n_split;
    /* expect-error: the offset after "at", or -1. */
    int64_t at_offset;
    /* ignore, unignore: the TYPE or TYPE/KEY words. */
    const char *const *names;
    size_t n_names;
    /* either: the alternatives in order. */
    const dcs_step_list *alts;
    size_t n_alts;
};

/* A `var NAME VALUE` directive: VALUE is the rest of the line, as written. */
typedef struct dcs_case_var {
    const char *name;
    const char *value;
} dcs_case_var;

typedef struct dcs_case {
    const char *id, *title;
    int role;  /* enum dcs_role */
    int level; /* enum dcs_level; default must */
    int64_t window_ms; /* the default window of expect; default 2000 */
    const char *const *cites;
    size_t n_cites;
    const char *const *requires;
    size_t n_requires;
    const char *const *tags; /* `tags`: e.g. bulk */
    size_t n_tags;
    double min_time_scale; /* `min-time-scale`, 0 when not given */
    const dcs_case_var *vars;
    size_t n_vars;
    dcs_step_list steps;
} dcs_case;

/* Where and why a case could not be read. line is 1-based (0 for DCS_ENOMEM). */
typedef struct dcs_case_error {
    int line;
    char reason[256];
} dcs_case_error;

/* Read a case from text[0..len). On success stores it in *out (free it with
 * dcs_case_free()) and returns 0; otherwise returns DCS_EINVAL or DCS_ENOMEM
 * with *err filled (err may be NULL). Every string in the case is
 * NUL-terminated and owned by the case. */
int dcs_case_parse(const char *text, size_t len, const dcs_allocator *a, dcs_case **out,
                   dcs_case_error *err);
void dcs_case_free(dcs_case *c);

/* Evaluate a window expression of spec/TRANSCRIPTS.md 2 (`2s`, `250ms..1s`,
 * `T(DCS_T_HEARTBEAT_TIMEOUT) + 1s`, `backoff(0)`). Returns 0 or DCS_EINVAL
 * with a reason in why. */
int dcs_window_parse(const char *s, size_t len, dcs_window *w, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif /* DCS_TRANSCRIPT_H */
