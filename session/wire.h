/* wire.h - internal: the messages the session layer itself writes (register,
 * challenge, heartbeat, close notice), built with the codec's encoder. */
#ifndef DCS_SESSION_WIRE_H
#define DCS_SESSION_WIRE_H

#include "dcs/session.h"

/* Append one envelope; payload is raw JSON or NULL; wall is the envelope's
 * timestamp (ms since the epoch). 0 or a DCS_E* code (nothing appended). */
int dcs__wire_message(dcs_buf *out, const char *origin, const char *destination, const char *type,
                      const char *key, const char *payload, size_t payload_len, dcs_ms wall);

int dcs__wire_heartbeat(dcs_buf *out, const char *origin, const char *destination, dcs_ms wall);
int dcs__wire_close(dcs_buf *out, const char *origin, const char *destination, const char *reason,
                    dcs_ms wall);
/* nonce and mac may be NULL (no handshake). */
int dcs__wire_register(dcs_buf *out, const char *origin, const char *destination, const char *id,
                       int64_t pid, const char *client_type, const char *nonce, const char *mac,
                       dcs_ms wall);
int dcs__wire_challenge(dcs_buf *out, const char *origin, const char *nonce, dcs_ms wall);

/* 1 if s[0..n) is exactly lowercase hexadecimal. */
int dcs__is_lower_hex(const char *s, size_t n);

#endif
