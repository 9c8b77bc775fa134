/*
 * generalize.h - `dcs-conform generalize`: turn a recording made by
 * `dcs-tap --record` (spec/TRANSCRIPTS.md section 9) into a conformance case
 * that passes against the pair it was recorded from.
 *
 * What differs from run to run becomes a matcher or a captured variable:
 * in `expect` patterns the envelope's and the payloads' `timestamp`s
 * (`*number`, `*string`), the register's `pid` (`*integer`), request ids
 * the implementation under test (IUT) invents (`$RID1:*string` at first
 * sight, `$RID1` wherever the value comes back, in `send` messages too), the
 * challenge nonce (`$NONCE:*string`) and the register's `hmac`
 * (`*string`); in `send` messages the envelope's `timestamp` (`$NOW`) and a
 * register's `nonce` and `hmac` (`$NONCE`, `$HMAC`); in both the two peers'
 * ids as origin, destination and register id (`$IUT_ID`, `$PEER_ID`).
 * Heartbeats are dropped (the harness ignores the IUT's and writes its own),
 * as are the recorder's `keepalive off` and `unignore heartbeat`. Every
 * other byte of a message is kept as recorded, member order included; the
 * other steps and the comments are copied.
 */
#ifndef DCS_CONF_GENERALIZE_H
#define DCS_CONF_GENERALIZE_H

#include <stddef.h>

#include "dcs/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Generalize the recording text[0..len) and append the case to out (an
 * initialised buffer; its allocator is used for everything else too). The
 * case's id is new_id, or, when new_id is NULL, `gen-` followed by the
 * recording's id without its `rec-` prefix; its header also gets `window 5s`
 * and, if the recording holds the handshake of spec 10.3, `requires hmac`.
 *
 * Returns 0, or -1 with a NUL-terminated one-line reason in why (naming the
 * line of the recording where that applies) and out as it was. The result
 * is read back with dcs_case_parse() before 0 is returned. Pure: no I/O, no
 * global state; why may be NULL. */
int conf_generalize(const char *text, size_t len, const char *new_id, dcs_buf *out, char *why,
                    size_t whylen);

#ifdef __cplusplus
}
#endif
#endif /* DCS_CONF_GENERALIZE_H */
