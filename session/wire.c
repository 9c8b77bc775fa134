/* wire.c - the messages the session layer writes itself (spec 7.3, 7.4, 7.5,
 * 7.15) and the handshake MAC (spec 10.3.3). */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

static dcs_slice dcs__s(const char *s)
{
    dcs_slice r;
    r.ptr = s;
    r.len = s ? strlen(s) : 0;
    return r;
}

int dcs__wire_message(dcs_buf *out, const char *origin, const char *destination, const char *type,
                      const char *key, const char *payload, size_t payload_len, dcs_ms wall)
{
    dcs_envelope env;
    memset(&env, 0, sizeof env);
    env.origin = dcs__s(origin);
    env.destination = dcs__s(destination);
    env.type = dcs__s(type);
    env.key = dcs__s(key);
    env.payload.ptr = payload;
    env.payload.len = payload ? payload_len : 0;
    env.has_timestamp = 1;
    env.timestamp.kind = DCS_NUM_INT;
    env.timestamp.i = wall;
    return dcs_encode(out, &env, 0);
}

int dcs__wire_heartbeat(dcs_buf *out, const char *origin, const char *destination, dcs_ms wall)
{
    char p[48];
    int n = snprintf(p, sizeof p, "{\"timestamp\":%" PRId64 "}", wall);
    return dcs__wire_message(out, origin, destination, "heartbeat", "heartbeat", p, (size_t)n,
                             wall);
}

int dcs__wire_close(dcs_buf *out, const char *origin, const char *destination, const char *reason,
                    dcs_ms wall)
{
    dcs_buf p;
    int rc;
    dcs_buf_init(&p, out->alloc);
    if ((rc = dcs_buf_append(&p, "{\"reason\":", 10)) == 0 &&
        (rc = dcs_encode_string(&p, reason, strlen(reason))) == 0 &&
        (rc = dcs_buf_append(&p, "}", 1)) == 0)
        rc = dcs__wire_message(out, origin, destination, "message", "close", p.data, p.len, wall);
    dcs_buf_free(&p);
    return rc;
}

int dcs__wire_register(dcs_buf *out, const char *origin, const char *destination, const char *id,
                       int64_t pid, const char *client_type, const char *nonce, const char *mac,
                       dcs_ms wall)
{
    dcs_buf p;
    char num[32];
    int rc, n = snprintf(num, sizeof num, ",\"pid\":%" PRId64 ",\"type\":", pid);
    dcs_buf_init(&p, out->alloc);
    if ((rc = dcs_buf_append(&p, "{\"id\":", 6)) || (rc = dcs_encode_string(&p, id, strlen(id))) ||
        (rc = dcs_buf_append(&p, num, (size_t)n)) ||
        (rc = dcs_encode_string(&p, client_type, strlen(client_type))))
        goto out;
    if (nonce && mac) {
        if ((rc = dcs_buf_append(&p, ",\"nonce\":", 9)) ||
            (rc = dcs_encode_string(&p, nonce, strlen(nonce))) ||
            (rc = dcs_buf_append(&p, ",\"hmac\":", 8)) ||
            (rc = dcs_encode_string(&p, mac, strlen(mac))))
            goto out;
    }
    if ((rc = dcs_buf_append(&p, "}", 1)))
        goto out;
    rc = dcs__wire_message(out, origin, destination, "command", "register", p.data, p.len, wall);
out:
    dcs_buf_free(&p);
    return rc;
}

int dcs__wire_challenge(dcs_buf *out, const char *origin, const char *nonce, dcs_ms wall)
{
    dcs_buf p;
    int rc;
    dcs_buf_init(&p, out->alloc);
    if ((rc = dcs_buf_append(&p, "{\"nonce\":", 9)) == 0 &&
        (rc = dcs_encode_string(&p, nonce, strlen(nonce))) == 0 &&
        (rc = dcs_buf_append(&p, ",\"alg\":\"HMAC-SHA256\"}", 21)) == 0)
        rc = dcs__wire_message(out, origin, "*", "command", "challenge", p.data, p.len, wall);
    dcs_buf_free(&p);
    return rc;
}

int dcs__is_lower_hex(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

void dcs_handshake_mac(const unsigned char *secret, size_t secret_len, const char *nonce,
                       size_t nonce_len, const char *id, size_t id_len, char out[65])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)nonce, nonce_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, id_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 65, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}

int dcs_handshake_verify(const unsigned char *secret, size_t secret_len, const char *nonce,
                         size_t nonce_len, const char *id, size_t id_len, const char *mac,
                         size_t mac_len)
{
    char want[65];
    int ok;
    if (mac_len != 64 || !dcs__is_lower_hex(mac, mac_len))
        return 0;
    dcs_handshake_mac(secret, secret_len, nonce, nonce_len, id, id_len, want);
    /* sodium_memcmp takes the same time wherever the strings differ. */
    ok = sodium_memcmp(want, mac, 64) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}
