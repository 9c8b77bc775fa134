/*
 * result.h - what dcs-conform found: one record per case run, with its
 * verdict, its first divergence and its wire log, and the run around them.
 * The runner (runner.c) fills these; the reports (report.c) only read them.
 *
 * Every string is NUL-terminated and owned by the record (malloc'd); free a
 * case record with dcs_case_result_clear().
 */
#ifndef DCS_CONFORM_RESULT_H
#define DCS_CONFORM_RESULT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, "WORD") for every verdict, in the order the summaries list them. */
#define DCS_VERDICT_MAP(XX)                                                              \
    XX(PASS, "PASS") XX(FAIL, "FAIL") XX(NONSTRICT, "NON-STRICT")                        \
    XX(INFO, "INFORMATIONAL") XX(SKIP, "SKIP") XX(ERROR, "ERROR") XX(XFAIL, "XFAIL")     \
    XX(XPASS, "XPASS")

enum dcs_verdict {
#define DCS__VERDICT_ENUM(name, word) DCS_V_##name,
    DCS_VERDICT_MAP(DCS__VERDICT_ENUM)
#undef DCS__VERDICT_ENUM
    DCS_V__COUNT
};

/* "PASS", "NON-STRICT", ... or "unknown". */
const char *dcs_verdict_name(int verdict);
/* True for the verdicts that make the run fail: FAIL, ERROR, XPASS. */
int dcs_verdict_fails_run(int verdict);

/* Direction of a wire event. */
enum dcs_wire_dir {
    DCS_WIRE_IN = 1,    /* written by the IUT, read by the harness */
    DCS_WIRE_OUT = 2,   /* written by the harness to the IUT */
    DCS_WIRE_EVENT = 3, /* a connection or process event; data is text */
};

/* One entry of a case's wire log. */
typedef struct dcs_wire_event {
    int64_t t_us;    /* microseconds since the case started */
    int conn;        /* connection number from 1; 0 for process events */
    int dir;         /* enum dcs_wire_dir */
    uint64_t offset; /* IN/OUT: stream offset of data[0] on that connection */
    char *data;      /* IN/OUT: the bytes (not NUL-safe: use len); EVENT: text */
    size_t len;
} dcs_wire_event;

/* The first divergence of a failed case. */
typedef struct dcs_divergence {
    int line;          /* line of the failed step in the case file */
    char *step;        /* the step as written in the case */
    char *expected;    /* what the step expected (pattern, window) */
    char *actual;      /* what arrived instead, or what happened */
    int conn;          /* connection it happened on, 0 if none */
    uint64_t offset;   /* stream offset (IUT → harness) of what arrived */
    int has_offset;
    int64_t elapsed_ms; /* since the step started (real ms) */
} dcs_divergence;

typedef struct dcs_case_result {
    char *id;        /* "4.2-split-every-byte" */
    char *title;     /* one line */
    char *category;  /* the directory under cases/: "framing", ... */
    char *file;      /* path of the case file */
    char *source;    /* the whole case file (for the side-by-side view) */
    char **cites;    /* spec sections: the id's own first, then `cites` */
    size_t n_cites;
    int role;        /* enum dcs_role (transcript.h) */
    int level;       /* enum dcs_level */
    int verdict;     /* enum dcs_verdict */
    char *reason;    /* one line: FAIL/NON-STRICT: the divergence in brief;
                        SKIP: why; ERROR: what failed; PASS: NULL */
    int has_divergence;
    dcs_divergence div;
    int64_t duration_us;
    int64_t started_unix_ms;
    dcs_wire_event *wire; /* in time order */
    size_t n_wire;
    int wire_truncated;   /* the log hit its bound; later entries were dropped */
    char *iut_log;        /* the tail of the IUT's stderr/stdout, or NULL */
} dcs_case_result;

void dcs_case_result_clear(dcs_case_result *r);

/* The whole run. */
typedef struct dcs_run_report {
    const char *version;   /* of dcs-conform */
    const char *role;      /* "client" or "server": the IUT's role */
    const char *command;   /* the IUT's command line, or "(attached)" */
    double time_scale;     /* the --time-scale, 1 by default */
    const char *time_mode; /* "real", "scale" or "faketime" */
    int64_t started_unix_ms;
    int64_t duration_us;
    const char *spec_url;  /* base of the spec citations, e.g. "../spec/PROTOCOL.md" */
    dcs_case_result *cases;
    size_t n_cases;
    size_t counts[DCS_V__COUNT];
} dcs_run_report;

/* Reports (report.c). Each returns 0, or -1 with errno set when writing
 * failed. */
int dcs_report_junit(FILE *f, const dcs_run_report *r);
int dcs_report_json(FILE *f, const dcs_run_report *r);
int dcs_report_html(FILE *f, const dcs_run_report *r);
/* TAP version 13: the plan, then one line per case (SKIP as "# SKIP
 * reason", XFAIL as "# TODO"), a YAML block for failures. */
int dcs_report_tap(FILE *f, const dcs_run_report *r);

#ifdef __cplusplus
}
#endif
#endif /* DCS_CONFORM_RESULT_H */
