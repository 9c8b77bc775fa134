/*
 * dcs/auth.h - authentication decisions as pure functions (spec 10.1, 10.3.1,
 * 10.4): who may use the application's internal HTTP API, and whether a
 * secret file may be used. No I/O: the program does the stat and the read
 * and passes what it found.
 */
#ifndef DCS_AUTH_H
#define DCS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length bounds of the shared secret (spec 10.3.1, 12.1). */
#define DCS_SECRET_MIN_BYTES 16
#define DCS_SECRET_MAX_BYTES 4096

/* The outcome of dcs_auth_http(): a method (allowed) or an HTTP status. */
enum dcs_auth_outcome {
    DCS_AUTH_SOCKET = 1,   /* authorized socket traffic (10.4 method 1) */
    DCS_AUTH_ADMIN = 2,    /* a valid administrator session (method 2) */
    DCS_AUTH_TOKEN = 3,    /* Bearer CRAWLER_API_TOKEN (method 3) */
    DCS_AUTH_UNAUTHORIZED = 401,
    DCS_AUTH_NOT_CONFIGURED = 503, /* no method applies and no token is configured */
};

/* Decide a request to the internal HTTP API by the precedence of spec 10.4:
 * socket, then admin session, then bearer token.
 *
 * - from_authorized_socket: non-zero only when the request was produced
 *   in-process from a message received on a connection with a registry entry
 *   (dcs_server_authorized()). The caller MUST derive it from state it
 *   attached inside the process, never from anything an HTTP caller can set
 *   (headers such as x-request-source, query, remote address, body).
 * - admin_session: non-zero when the request carries a valid session of an
 *   administrator.
 * - authorization: the Authorization header's value, or NULL.
 * - api_token: the configured CRAWLER_API_TOKEN, or NULL. NULL or "" never
 *   matches: without socket or admin the answer is then 503.
 *
 * The bearer token is compared by SHA-256 digest with sodium_memcmp, in a
 * time independent of the token's content. The scheme "Bearer" is matched
 * case-insensitively (RFC 9110 11.1), followed by one or more spaces.
 * Returns DCS_AUTH_SOCKET, DCS_AUTH_ADMIN, DCS_AUTH_TOKEN, 401 or 503. */
int dcs_auth_http(int from_authorized_socket, int admin_session, const char *authorization,
                  const char *api_token);

/* "socket", "admin", "token", "unauthorized", "not-configured" or "unknown":
 * for the log record of each decision (never the token). */
const char *dcs_auth_outcome_name(int outcome);

/* Secret file rules (10.3.1), before reading: mode is the file's st_mode
 * (type and permission bits), owner_uid its st_uid, own_uid the program's
 * effective uid. 0, or DCS_EINVAL with a one-line reason in why (may be
 * NULL): not a regular file, another owner, any group or other permission. */
int dcs_secret_file_check(unsigned mode, int64_t owner_uid, int64_t own_uid, char *why, size_t n);

/* After reading: the secret is bytes[0..*secret_len), the file's bytes with
 * one trailing "\n" or "\r\n" removed, DCS_SECRET_MIN_BYTES to
 * DCS_SECRET_MAX_BYTES long. 0, or DCS_EINVAL with a one-line reason. */
int dcs_secret_parse(const unsigned char *bytes, size_t len, size_t *secret_len, char *why,
                     size_t n);

/* Both: the whole rule of 10.3.1 over what the program found. */
int dcs_secret_from_file(unsigned mode, int64_t owner_uid, int64_t own_uid,
                         const unsigned char *bytes, size_t len, size_t *secret_len, char *why,
                         size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DCS_AUTH_H */
