/* auth.c - the authorization rule of the application's internal HTTP API
 * (spec 10.4) and the secret file rules (10.3.1), as pure functions. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dcs/auth.h"
#include "dcs/codec.h"

/* ------------------------------------------------------------------------ */
/* Internal HTTP API (10.4)                                                  */

static int dcs__lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* The token of "Bearer <token>" (optional whitespace around the value, the
 * scheme in any case, one or more spaces after it), or NULL. */
static const char *dcs__bearer(const char *h, size_t *len)
{
    static const char scheme[] = "bearer";
    const char *end;
    size_t i;
    if (!h)
        return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    for (i = 0; i < sizeof scheme - 1; i++)
        if (dcs__lower((unsigned char)h[i]) != scheme[i])
            return NULL;
    h += i;
    if (*h != ' ')
        return NULL;
    while (*h == ' ')
        h++;
    end = h + strlen(h);
    while (end > h && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == h)
        return NULL;
    *len = (size_t)(end - h);
    return h;
}

int dcs_auth_http(int from_authorized_socket, int admin_session, const char *authorization,
                  const char *api_token)
{
    unsigned char want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
    const char *token;
    size_t len = 0;
    int match;

    if (from_authorized_socket)
        return DCS_AUTH_SOCKET;
    if (admin_session)
        return DCS_AUTH_ADMIN;
    if (!api_token || !api_token[0])
        return DCS_AUTH_NOT_CONFIGURED;
    token = dcs__bearer(authorization, &len);
    if (!token)
        return DCS_AUTH_UNAUTHORIZED;
    /* Digests of equal length, compared in constant time: the time taken
     * does not depend on where the values differ (spec 10.4, 14.4). */
    crypto_hash_sha256(want, (const unsigned char *)api_token, strlen(api_token));
    crypto_hash_sha256(got, (const unsigned char *)token, len);
    match = sodium_memcmp(want, got, sizeof want) == 0;
    sodium_memzero(want, sizeof want);
    sodium_memzero(got, sizeof got);
    return match ? DCS_AUTH_TOKEN : DCS_AUTH_UNAUTHORIZED;
}

const char *dcs_auth_outcome_name(int outcome)
{
    switch (outcome) {
    case DCS_AUTH_SOCKET: return "socket";
    case DCS_AUTH_ADMIN: return "admin";
    case DCS_AUTH_TOKEN: return "token";
    case DCS_AUTH_UNAUTHORIZED: return "unauthorized";
    case DCS_AUTH_NOT_CONFIGURED: return "not-configured";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* Secret file (10.3.1)                                                      */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int dcs__refuse(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    if (why && n) {
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return DCS_EINVAL;
}

int dcs_secret_file_check(unsigned mode, int64_t owner_uid, int64_t own_uid, char *why, size_t n)
{
    if (why && n)
        why[0] = '\0';
    if (!S_ISREG(mode))
        return dcs__refuse(why, n, "the secret file is not a regular file");
    if (owner_uid != own_uid)
        return dcs__refuse(why, n, "the secret file is owned by uid %lld, not by uid %lld",
                           (long long)owner_uid, (long long)own_uid);
    if (mode & 0077)
        return dcs__refuse(why, n,
                           "the secret file's mode %04o grants access to group or other "
                           "(use 0600 or 0400)",
                           mode & 07777);
    return 0;
}

int dcs_secret_parse(const unsigned char *bytes, size_t len, size_t *secret_len, char *why,
                     size_t n)
{
    if (why && n)
        why[0] = '\0';
    if (!bytes && len)
        return dcs__refuse(why, n, "the secret file could not be read");
    if (len && bytes[len - 1] == '\n') {
        len--;
        if (len && bytes[len - 1] == '\r')
            len--;
    }
    if (len < DCS_SECRET_MIN_BYTES)
        return dcs__refuse(why, n, "the secret is %zu bytes long; at least %d are needed", len,
                           DCS_SECRET_MIN_BYTES);
    if (len > DCS_SECRET_MAX_BYTES)
        return dcs__refuse(why, n, "the secret is %zu bytes long; at most %d are allowed", len,
                           DCS_SECRET_MAX_BYTES);
    *secret_len = len;
    return 0;
}

int dcs_secret_from_file(unsigned mode, int64_t owner_uid, int64_t own_uid,
                         const unsigned char *bytes, size_t len, size_t *secret_len, char *why,
                         size_t n)
{
    int rc = dcs_secret_file_check(mode, owner_uid, own_uid, why, n);
    return rc ? rc : dcs_secret_parse(bytes, len, secret_len, why, n);
}
