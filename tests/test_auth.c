/* test_auth.c - the internal HTTP API's authorization rule (spec 10.4) and
 * the secret file rules (10.3.1). Each test cites the rule it checks. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>

#include "dcs/auth.h"
#include "dcs/codec.h"

#define TOKEN "s3cr3t-api-token-value"

/* ------------------------------------------------------------------------ */
/* 10.4                                                                      */

Test(auth_http, precedence_table)
{
    static const struct {
        int socket, admin;
        const char *header, *token;
        int want;
    } rows[] = {
        /* 1. authorized socket wins over everything */
        {1, 1, "Bearer " TOKEN, TOKEN, DCS_AUTH_SOCKET},
        {1, 0, "Bearer wrong", TOKEN, DCS_AUTH_SOCKET},
        {1, 0, NULL, NULL, DCS_AUTH_SOCKET},
        /* 2. then an admin session, with or without a token configured */
        {0, 1, "Bearer " TOKEN, TOKEN, DCS_AUTH_ADMIN},
        {0, 1, NULL, NULL, DCS_AUTH_ADMIN},
        {0, 1, "Bearer wrong", "", DCS_AUTH_ADMIN},
        /* no token configured: 503, whatever the header says */
        {0, 0, "Bearer " TOKEN, NULL, DCS_AUTH_NOT_CONFIGURED},
        {0, 0, "Bearer ", "", DCS_AUTH_NOT_CONFIGURED},
        {0, 0, NULL, "", DCS_AUTH_NOT_CONFIGURED},
        /* 3. the bearer token */
        {0, 0, "Bearer " TOKEN, TOKEN, DCS_AUTH_TOKEN},
        {0, 0, "bearer " TOKEN, TOKEN, DCS_AUTH_TOKEN},
        {0, 0, "  BEARER   " TOKEN "  ", TOKEN, DCS_AUTH_TOKEN},
        {0, 0, NULL, TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer ", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer" TOKEN, TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Basic " TOKEN, TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, TOKEN, TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer " TOKEN "x", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer s3cr3t-api-token-valuE", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer s3cr3t", TOKEN, DCS_AUTH_UNAUTHORIZED},
        {0, 0, "Bearer S3CR3T-API-TOKEN-VALUE", TOKEN, DCS_AUTH_UNAUTHORIZED},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int got = dcs_auth_http(rows[i].socket, rows[i].admin, rows[i].header, rows[i].token);
        cr_assert_eq(got, rows[i].want, "10.4 row %zu (header \"%s\"): got %d (%s), want %d", i,
                     rows[i].header ? rows[i].header : "(none)", got, dcs_auth_outcome_name(got),
                     rows[i].want);
    }
}

Test(auth_http, outcomes_are_the_methods_or_the_status_codes)
{
    cr_assert_eq(DCS_AUTH_UNAUTHORIZED, 401);
    cr_assert_eq(DCS_AUTH_NOT_CONFIGURED, 503);
    cr_assert_str_eq(dcs_auth_outcome_name(DCS_AUTH_SOCKET), "socket");
    cr_assert_str_eq(dcs_auth_outcome_name(DCS_AUTH_ADMIN), "admin");
    cr_assert_str_eq(dcs_auth_outcome_name(DCS_AUTH_TOKEN), "token");
    cr_assert_str_eq(dcs_auth_outcome_name(401), "unauthorized");
    cr_assert_str_eq(dcs_auth_outcome_name(503), "not-configured");
    cr_assert_str_eq(dcs_auth_outcome_name(0), "unknown");
}

Test(auth_http, an_empty_token_never_matches_an_empty_bearer)
{
    /* 10.4: "an empty or unset CRAWLER_API_TOKEN never matches" */
    cr_assert_neq(dcs_auth_http(0, 0, "Bearer ", ""), DCS_AUTH_TOKEN);
    cr_assert_neq(dcs_auth_http(0, 0, "Bearer", ""), DCS_AUTH_TOKEN);
    cr_assert_neq(dcs_auth_http(0, 0, "", ""), DCS_AUTH_TOKEN);
}

/* ------------------------------------------------------------------------ */
/* 10.3.1                                                                    */

Test(secret_file, regular_owned_and_private_only)
{
    static const struct {
        unsigned mode;
        long long owner;
        int ok;
        const char *why;
    } rows[] = {
        {S_IFREG | 0600, 1000, 1, NULL},
        {S_IFREG | 0400, 1000, 1, NULL},
        {S_IFREG | 0700, 1000, 1, NULL}, /* mode & 0077 is 0 */
        {S_IFREG | 0640, 1000, 0, "0640"},
        {S_IFREG | 0604, 1000, 0, "0604"},
        {S_IFREG | 0610, 1000, 0, "group or other"},
        {S_IFREG | 0601, 1000, 0, "group or other"},
        {S_IFREG | 0600, 0, 0, "owned by uid 0"},
        {S_IFREG | 0600, 1001, 0, "owned by uid 1001"},
        {S_IFDIR | 0700, 1000, 0, "not a regular file"},
        {S_IFLNK | 0600, 1000, 0, "not a regular file"},
        {S_IFIFO | 0600, 1000, 0, "not a regular file"},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char why[160];
        int rc = dcs_secret_file_check(rows[i].mode, rows[i].owner, 1000, why, sizeof why);
        if (rows[i].ok) {
            cr_assert_eq(rc, 0, "10.3.1 row %zu: %s", i, why);
            cr_assert_str_eq(why, "");
        } else {
            cr_assert_eq(rc, DCS_EINVAL, "10.3.1 row %zu must be refused", i);
            cr_assert(strstr(why, rows[i].why), "row %zu: %s", i, why);
            cr_assert_null(strchr(why, '\n'), "a one-line reason");
        }
    }
}

Test(secret_file, one_trailing_line_feed_or_crlf_is_removed)
{
    static const char b6[] = "k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa";
    static const struct {
        const char *bytes;
        size_t want;
    } rows[] = {
        {"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa\n", 32},   /* Appendix B.6 */
        {"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa\r\n", 32},
        {"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa", 32},
        {"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa\n\n", 33}, /* only one */
        {"k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa\r", 33},   /* a lone CR stays */
        {" k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa ", 34},   /* spaces are secret bytes */
    };
    size_t i, n;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        n = 0;
        cr_assert_eq(dcs_secret_parse((const unsigned char *)rows[i].bytes, strlen(rows[i].bytes),
                                      &n, NULL, 0),
                     0, "row %zu", i);
        cr_assert_eq(n, rows[i].want, "10.3.1 row %zu: %zu bytes", i, n);
    }
    cr_assert_eq(memcmp(rows[0].bytes, b6, 32), 0);
}

Test(secret_file, length_bounds)
{
    unsigned char buf[DCS_SECRET_MAX_BYTES + 2];
    char why[160];
    size_t n;
    memset(buf, 'a', sizeof buf);
    cr_assert_eq(dcs_secret_parse(buf, 15, &n, why, sizeof why), DCS_EINVAL, "10.3.1: 15 bytes");
    cr_assert(strstr(why, "at least 16"), "%s", why);
    buf[15] = '\n';
    cr_assert_eq(dcs_secret_parse(buf, 16, &n, why, sizeof why), DCS_EINVAL,
                 "15 bytes and a line feed");
    buf[15] = 'a';
    cr_assert_eq(dcs_secret_parse(buf, 16, &n, why, sizeof why), 0);
    cr_assert_eq(n, 16);
    cr_assert_eq(dcs_secret_parse(buf, DCS_SECRET_MAX_BYTES, &n, why, sizeof why), 0);
    cr_assert_eq(dcs_secret_parse(buf, DCS_SECRET_MAX_BYTES + 1, &n, why, sizeof why), DCS_EINVAL);
    cr_assert(strstr(why, "at most 4096"), "%s", why);
    buf[DCS_SECRET_MAX_BYTES] = '\n';
    cr_assert_eq(dcs_secret_parse(buf, DCS_SECRET_MAX_BYTES + 1, &n, why, sizeof why), 0,
                 "4096 bytes and a line feed");
    cr_assert_eq(dcs_secret_parse(NULL, 0, &n, why, sizeof why), DCS_EINVAL, "empty");
}

Test(secret_file, the_whole_rule_checks_the_file_before_the_bytes)
{
    static const unsigned char b6[] = "k7Qx2mV9pL4sT8wZ1nR6bY3cH5jD0fGa\n";
    char why[160];
    size_t n = 0;
    cr_assert_eq(dcs_secret_from_file(S_IFREG | 0600, 1000, 1000, b6, sizeof b6 - 1, &n, why,
                                      sizeof why),
                 0);
    cr_assert_eq(n, 32, "B.6");
    cr_assert_eq(dcs_secret_from_file(S_IFREG | 0640, 1000, 1000, b6, sizeof b6 - 1, &n, why,
                                      sizeof why),
                 DCS_EINVAL);
    cr_assert(strstr(why, "mode"), "%s", why);
    cr_assert_eq(dcs_secret_from_file(S_IFREG | 0600, 1000, 1000, b6, 5, &n, why, sizeof why),
                 DCS_EINVAL);
    cr_assert(strstr(why, "at least"), "%s", why);
}
