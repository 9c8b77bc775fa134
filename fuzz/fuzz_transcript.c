/*
 * fuzz_transcript.c - the conformance harness's case reader and pattern
 * matcher (conformance/transcript.h, spec/TRANSCRIPTS.md).
 *
 * Input: byte 0 picks the mode, byte 1 a call of the allocator to fail
 * (0: none), the rest is text.
 *   mode 0: a whole case (.dcst) for dcs_case_parse(). A case that reads has
 *           well-formed steps; each of its patterns is matched against every
 *           send text of the case and against its own source.
 *   mode 1: a pattern, then JSON texts, separated by NUL bytes. The pattern
 *           compiles or is refused with a reason; each text is matched in
 *           turn with one variable table.
 *   mode 2: a window expression for dcs_window_parse(), and a variable
 *           (name on the first line, JSON value after it) for dcs_vars_set().
 * Matching: the result is 0 or 1; text that is not valid JSON never matches;
 * a failed match captures nothing; a successful match, repeated with the
 * variables it captured, matches again and captures nothing new. Nothing
 * leaks (the counting allocator), also when the chosen allocation fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "transcript.h"

/* FZ_IGNORE=name,name: checks of known open bugs to skip (fuzz/known-bugs). */
static int ignored(const char *name)
{
    static const char *list;
    static int init;
    const char *p;
    size_t n = strlen(name);
    if (!init) {
        list = getenv("FZ_IGNORE");
        init = 1;
    }
    p = list;
    while (p && *p) {
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
        p = strchr(p, ',');
        if (p) p++;
    }
    return 0;
}

static void check_match(const dcs_pattern *p, const char *json, size_t len, dcs_vars *vars)
{
    dcs_match_why why;
    size_t before = vars ? vars->n : 0;
    int rc, valid = dcs_json_validate(json, len, 0, NULL) == 0;
    const char *placed = fz_place(1, json, len);
    rc = dcs_pattern_match(p, placed, len, vars, &why);
    FZ_CHECK(rc == 0 || rc == 1 || rc == DCS_ENOMEM, "dcs_pattern_match returned %d", rc);
    FZ_CHECK(memchr(why.text, '\0', sizeof why.text) || rc == 1, "why not terminated");
    if (!valid) FZ_CHECK(rc != 1, "invalid JSON matched pattern %s", dcs_pattern_text(p));
    if (rc == 0 && vars)
        FZ_CHECK(vars->n == before, "a failed match captured %zu variables", vars->n - before);
    if (rc == 1 && vars && !ignored("repeat-match")) {
        size_t after = vars->n;
        rc = dcs_pattern_match(p, placed, len, vars, &why);
        /* (nomem: the allocation chosen to fail may come now) */
        FZ_CHECK(rc == 1 || rc == DCS_ENOMEM,
                 "a match does not repeat with its own captures: %s (pattern %s)", why.text,
                 dcs_pattern_text(p));
        FZ_CHECK(vars->n == after, "a repeated match captured again");
    }
    fz_retire(1);
}

static size_t count_steps(const dcs_step_list *l, const dcs_case *c, unsigned nesting,
                          dcs_vars *vars)
{
    size_t i, n = 0;
    FZ_CHECK(nesting <= DCS_CASE_MAX_NESTING + 1, "either nested %u deep", nesting);
    for (i = 0; i < l->n; i++) {
        const dcs_step *s = &l->steps[i];
        size_t k, j;
        n++;
        FZ_CHECK(strcmp(dcs_step_name(s->kind), "unknown") != 0, "step kind %d", s->kind);
        FZ_CHECK(s->line >= 1, "step line %d", s->line);
        FZ_CHECK(!s->has_window || s->window.lo_ms <= s->window.hi_ms,
                 "window %lld..%lld on line %d", (long long)s->window.lo_ms,
                 (long long)s->window.hi_ms, s->line);
        FZ_CHECK(s->n_names == 0 || s->names != NULL, "names missing");
        for (k = 0; k < s->n_names; k++)
            FZ_CHECK(s->names[k] != NULL, "name %zu NULL", k);
        if (s->kind == DCS_STEP_EXPECT || s->kind == DCS_STEP_EXPECT_ANY)
            FZ_CHECK(s->pattern != NULL, "%s without a pattern", dcs_step_name(s->kind));
        if (s->text) FZ_CHECK(s->text[s->text_len] == '\0', "step text not terminated");
        if (s->pattern) {
            const char *src = dcs_pattern_text(s->pattern);
            check_match(s->pattern, src, strlen(src), vars);
            for (j = 0; j < c->steps.n; j++) {
                const dcs_step *t = &c->steps.steps[j];
                if (t->kind == DCS_STEP_SEND && t->text)
                    check_match(s->pattern, t->text, t->text_len, vars);
            }
        }
        for (k = 0; k < s->n_alts; k++)
            n += count_steps(&s->alts[k], c, nesting + 1, vars);
    }
    return n;
}

static void mode_case(const char *text, size_t len, long fail_at)
{
    fz_alloc fa;
    dcs_case *c = NULL;
    dcs_case_error err;
    int rc;

    fz_alloc_init(&fa, fail_at);
    memset(&err, 0, sizeof err);
    rc = dcs_case_parse(fz_place(0, text, len), len, &fa.a, &c, &err);
    fz_retire(0); /* the case owns its strings: nothing may point into the text */
    FZ_CHECK(rc == 0 || rc == DCS_EINVAL || rc == DCS_ENOMEM, "dcs_case_parse returned %d", rc);
    if (rc == DCS_ENOMEM) FZ_CHECK(fa.failed > 0, "nomem without a failed allocation");
    if (rc != 0) {
        FZ_CHECK(c == NULL, "a case after a failure");
        FZ_CHECK(memchr(err.reason, '\0', sizeof err.reason) != NULL, "reason not terminated");
        FZ_CHECK(err.line >= 0, "line %d", err.line);
    } else {
        dcs_vars vars;
        size_t i;
        FZ_CHECK(c != NULL, "success without a case");
        FZ_CHECK(c->id && c->title, "id or title missing");
        FZ_CHECK(c->role == DCS_ROLE_CLIENT || c->role == DCS_ROLE_SERVER, "role %d", c->role);
        FZ_CHECK(c->level >= DCS_LEVEL_MUST && c->level <= DCS_LEVEL_INFO, "level %d", c->level);
        for (i = 0; i < c->n_vars; i++)
            FZ_CHECK(c->vars[i].name && c->vars[i].value, "var %zu incomplete", i);
        dcs_vars_init(&vars, NULL);
        FZ_CHECK(count_steps(&c->steps, c, 0, &vars) <= DCS_CASE_MAX_STEPS,
                 "more steps than DCS_CASE_MAX_STEPS");
        dcs_vars_free(&vars);
        dcs_case_free(c);
    }
    FZ_CHECK(fa.live == 0, "dcs_case_parse leaked %ld blocks (rc %d)", fa.live, rc);
}

static void mode_pattern(const char *text, size_t len, long fail_at)
{
    const char *nul = memchr(text, '\0', len), *p, *end = text + len;
    size_t plen = nul ? (size_t)(nul - text) : len;
    dcs_pattern *pat = NULL;
    char why[160];
    fz_alloc fa;
    int rc;

    fz_alloc_init(&fa, 0);
    why[0] = '\0';
    rc = dcs_pattern_compile(fz_place(0, text, plen), plen, &fa.a, &pat, why, sizeof why);
    fz_retire(0); /* the pattern keeps its own copy */
    FZ_CHECK(rc == 0 || rc == DCS_EINVAL, "dcs_pattern_compile returned %d", rc);
    FZ_CHECK(memchr(why, '\0', sizeof why) != NULL, "why not terminated");
    if (rc == 0) {
        dcs_vars vars;
        const char *src = dcs_pattern_text(pat);
        dcs_pattern *again = NULL;
        FZ_CHECK(dcs_pattern_compile(src, strlen(src), NULL, &again, NULL, 0) == 0,
                 "a pattern's own text does not compile: %s", src);
        dcs_pattern_free(again);
        dcs_vars_init(&vars, &fa.a);
        for (p = nul ? nul + 1 : end; p < end;) {
            const char *q = memchr(p, '\0', (size_t)(end - p));
            size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
            check_match(pat, p, n, &vars);
            p += n + 1;
        }
        check_match(pat, src, strlen(src), NULL);
        dcs_vars_free(&vars);
        dcs_pattern_free(pat);
    } else {
        FZ_CHECK(pat == NULL, "a pattern after a failure");
        FZ_CHECK(why[0] != '\0', "refused without a reason");
    }
    FZ_CHECK(fa.live == 0, "patterns leaked %ld blocks", fa.live);
    if (fail_at) {
        fz_alloc ff;
        int rc2;
        fz_alloc_init(&ff, fail_at);
        pat = NULL;
        rc2 = dcs_pattern_compile(text, plen, &ff.a, &pat, NULL, 0);
        FZ_CHECK(rc2 == rc || rc2 == DCS_ENOMEM,
                 "compile gives %d, then %d with allocation %ld "
                 "failing",
                 rc, rc2, fail_at);
        dcs_pattern_free(pat);
        FZ_CHECK(ff.live == 0, "patterns leaked %ld blocks with allocation %ld failing", ff.live,
                 fail_at);
    }
}

static void mode_window(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    size_t wlen = nl ? (size_t)(nl - text) : len;
    dcs_window w;
    char why[160];
    int rc;

    why[0] = '\0';
    rc = dcs_window_parse(fz_place(0, text, wlen), wlen, &w, why, sizeof why);
    fz_retire(0);
    FZ_CHECK(rc == 0 || rc == DCS_EINVAL, "dcs_window_parse returned %d", rc);
    FZ_CHECK(memchr(why, '\0', sizeof why) != NULL, "why not terminated");
    if (rc == 0)
        FZ_CHECK(0 <= w.lo_ms && w.lo_ms <= w.hi_ms, "window %lld..%lld from %.*s",
                 (long long)w.lo_ms, (long long)w.hi_ms, (int)wlen, text);
    if (nl) {
        /* A variable: NAME, then its JSON value. */
        const char *v = nl + 1, *sp = memchr(v, ' ', (size_t)(text + len - v));
        char name[64];
        dcs_vars vars;
        fz_alloc fa;
        size_t nlen, vlen;
        if (!sp || (size_t)(sp - v) >= sizeof name || memchr(v, '\0', (size_t)(sp - v))) return;
        nlen = (size_t)(sp - v);
        memcpy(name, v, nlen);
        name[nlen] = '\0';
        vlen = (size_t)(text + len - sp - 1);
        fz_alloc_init(&fa, 0);
        dcs_vars_init(&vars, &fa.a);
        rc = dcs_vars_set(&vars, name, fz_place(0, sp + 1, vlen), vlen);
        FZ_CHECK(rc == 0 || rc == DCS_EINVAL || rc == DCS_EBAD_JSON, "dcs_vars_set gave %d", rc);
        if (rc == 0) {
            const dcs_var *got = dcs_vars_get(&vars, name, nlen);
            FZ_CHECK(got != NULL, "variable %s set but not found", name);
            FZ_CHECK(dcs_json_validate(got->value, got->value_len, 0, NULL) == 0,
                     "variable %s holds invalid JSON", name);
        }
        dcs_vars_free(&vars);
        fz_retire(0);
        FZ_CHECK(fa.live == 0, "variables leaked %ld blocks", fa.live);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text;
    size_t len;
    if (size < 2) return 0;
    text = (const char *)data + 2;
    len = size - 2;
    switch (data[0] % 3) {
    case 0:
        mode_case(text, len, data[1]);
        break;
    case 1:
        mode_pattern(text, len, data[1]);
        break;
    default:
        mode_window(text, len);
        break;
    }
    return 0;
}
