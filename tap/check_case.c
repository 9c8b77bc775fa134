/* check_case.c - tap-case-check FILE: read a .dcst case with the
 * conformance library's reader (dcs_case_parse) and print it, one line per
 * step: the keyword, a tab, and the step's text (send: the message as
 * written; send-raw: its bytes in hex; expect: the pattern's source). A
 * test helper of tests/e2e/tap_e2e.py, not installed.
 *
 * Exit status: 0 the case was read; 1 it was not (line and reason on
 * stderr); 2 the file could not be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcript.h"

static void print_steps(const dcs_step_list *l, int depth)
{
    size_t i, k;
    for (i = 0; i < l->n; i++) {
        const dcs_step *s = &l->steps[i];
        printf("%*s%s\t", depth * 2, "", dcs_step_name(s->kind));
        if (s->kind == DCS_STEP_SEND_RAW)
            for (k = 0; k < s->text_len; k++)
                printf("%02x", (unsigned char)s->text[k]);
        else if (s->pattern)
            fputs(dcs_pattern_text(s->pattern), stdout);
        else if (s->text)
            fwrite(s->text, 1, s->text_len, stdout);
        else if (s->kind == DCS_STEP_KEEPALIVE)
            fputs(s->on ? "on" : "off", stdout);
        else if (s->n_names)
            for (k = 0; k < s->n_names; k++)
                printf("%s%s", k ? " " : "", s->names[k]);
        putchar('\n');
        for (k = 0; k < s->n_alts; k++)
            print_steps(&s->alts[k], depth + 1);
    }
}

int main(int argc, char **argv)
{
    FILE *f;
    char *text;
    size_t len = 0, cap = 1 << 16, r;
    dcs_case *c;
    dcs_case_error err;

    if (argc != 2) {
        fprintf(stderr, "usage: tap-case-check FILE\n");
        return 2;
    }
    if (!(f = fopen(argv[1], "rb")) || !(text = malloc(cap))) {
        perror(argv[1]);
        return 2;
    }
    while ((r = fread(text + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap && !(text = realloc(text, cap *= 2))) {
            perror("realloc");
            return 2;
        }
    }
    fclose(f);
    if (dcs_case_parse(text, len, NULL, &c, &err) != 0) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], err.line, err.reason);
        free(text);
        return 1;
    }
    printf("id\t%s\nrole\t%s\n", c->id, c->role == DCS_ROLE_CLIENT ? "client" : "server");
    print_steps(&c->steps, 0);
    dcs_case_free(c);
    free(text);
    return 0;
}
