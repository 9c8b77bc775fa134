/*
 * dcs/codec.h - the dcs codec: a byte stream of concatenated JSON envelopes
 * in, envelopes out, and back again.
 *
 * The codec does no I/O, reads no clock and keeps no global state. Every
 * function is reentrant; one decoder must not be used by two threads at once.
 *
 * Conventions
 * - Errors are negative integers DCS_E* (see DCS_ERRNO_MAP below);
 *   dcs_err_name() gives the stable reason name (as printed by dcs-dump and
 *   cited by spec/PROTOCOL.md section 11.1), dcs_strerror() a sentence.
 * - Strings handed out are (pointer, length) slices. They are UTF-8, may
 *   contain NUL bytes (JSON "\u0000") and are never NUL-terminated.
 * - All memory is obtained through a dcs_allocator. Passing NULL selects the
 *   C library's malloc/realloc/free.
 */
#ifndef DCS_CODEC_H
#define DCS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Limits (spec/PROTOCOL.md 4.4 and 12)                                      */

#define DCS_DEFAULT_MAX_MESSAGE_SIZE (1024u * 1024u) /* bytes, whole envelope */
#define DCS_DEFAULT_MAX_DEPTH 64u /* the envelope object is depth 1 */
#define DCS_MAX_DEPTH_LIMIT 4096u /* largest max_depth a decoder accepts */

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* XX(NAME, "reason", "sentence"). The reason strings are part of the spec:
 * they are stable and appear on the wire of tools (dcs-dump, dcs-conform). */
#define DCS_ERRNO_MAP(XX)                                                                  \
    XX(GARBAGE, "garbage", "bytes between messages that do not begin a JSON object")      \
    XX(UNEXPECTED, "unexpected_byte", "a byte that the JSON grammar does not allow here")  \
    XX(LITERAL, "bad_literal", "a misspelled or cut true, false or null")                  \
    XX(NUMBER, "bad_number", "a number that RFC 8259 does not allow")                      \
    XX(ESCAPE, "bad_escape", "an invalid escape sequence in a string")                     \
    XX(SURROGATE, "bad_surrogate", "a \\u escape that is a lone or misordered surrogate")  \
    XX(CONTROL, "control_char", "an unescaped control character (below 0x20) in a string") \
    XX(UTF8, "bad_utf8", "invalid UTF-8 in a string")                                      \
    XX(TOO_DEEP, "too_deep", "nesting deeper than the maximum depth")                      \
    XX(TOO_LARGE, "too_large", "a message larger than the maximum message size")           \
    XX(TRUNCATED, "truncated", "the input ended inside a message")                         \
    XX(MISSING, "missing_member", "a required envelope member is absent")                  \
    XX(TYPE, "wrong_type", "an envelope member has the wrong JSON type")                   \
    XX(DUPLICATE, "duplicate_member", "an envelope member appears twice")                  \
    XX(NOMEM, "nomem", "memory allocation failed")                                         \
    XX(INVAL, "invalid_argument", "an argument is out of its documented range")            \
    XX(BUSY, "busy", "the previous input chunk has not been consumed yet")                 \
    XX(NOT_FINITE, "not_finite", "a number that is NaN or infinite cannot be encoded")     \
    XX(BAD_JSON, "bad_json", "a value handed to the encoder is not valid JSON")            \
    XX(PAYLOAD, "payload_mismatch", "a payload does not fit the typed view asked for")

/* Codes are DCS__E_BASE + 1, + 2, ... in list order: all negative, and stable
 * as long as new reasons are only ever appended to the list. */
enum dcs_errno {
    DCS_OK = 0,
    DCS__E_BASE = -1000,
#define DCS__ERR_ENUM(name, reason, text) DCS_E##name,
    DCS_ERRNO_MAP(DCS__ERR_ENUM)
#undef DCS__ERR_ENUM
    DCS__E_END
};

/* The stable reason name of an error code ("bad_utf8"), or "unknown". */
const char *dcs_err_name(int code);
/* A one-sentence description of an error code. Never NULL. */
const char *dcs_strerror(int code);

#define DCS_NO_OFFSET UINT64_MAX

/* One decoding error. message is NUL-terminated and says what was found. */
typedef struct dcs_error {
    int code;            /* DCS_E*, negative */
    uint64_t offset;     /* stream offset (0-based) of the byte where it was detected */
    uint64_t msg_offset; /* stream offset of the message it spoiled, or DCS_NO_OFFSET */
    char message[192];
} dcs_error;

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */

typedef struct dcs_allocator {
    void *(*alloc)(void *ud, size_t size);
    void *(*realloc)(void *ud, void *ptr, size_t size);
    void (*free)(void *ud, void *ptr);
    void *ud;
} dcs_allocator;

/* The C library's allocator. */
extern const dcs_allocator dcs_default_allocator;

/* ------------------------------------------------------------------------ */
/* Slices, members, numbers                                                  */

typedef struct dcs_slice {
    const char *ptr;
    size_t len;
} dcs_slice;

/* A member of the envelope object, as received. name is the raw body of the
 * JSON string (between the quotes, escapes not decoded); value is the raw JSON
 * text of the value, exactly as received (whitespace inside kept). */
typedef struct dcs_member {
    dcs_slice name;
    dcs_slice value;
} dcs_member;

enum dcs_number_kind { DCS_NUM_INT = 1, DCS_NUM_DOUBLE = 2 };

/* A JSON number. For a number the decoder produced, raw holds its text as
 * received and the encoder writes raw back unchanged; otherwise (raw.len == 0)
 * the encoder writes i exactly, or d in the shortest form that round-trips, as
 * ECMAScript's Number::toString does. */
typedef struct dcs_number {
    int kind; /* enum dcs_number_kind */
    int64_t i;
    double d;
    dcs_slice raw;
} dcs_number;

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* A decoded envelope (spec section 6).
 *
 * Lifetime: every pointer in a dcs_message points either into the chunk most
 * recently given to dcs_decoder_feed() or into memory the decoder owns. All of
 * them stay valid until the next call of dcs_decoder_feed(), dcs_decoder_next(),
 * dcs_decoder_finish(), dcs_decoder_reset() or dcs_decoder_free() on the same
 * decoder, and not one call longer. Copy what you keep. */
typedef struct dcs_message {
    /* The four required strings, escapes decoded. */
    dcs_slice origin, destination, type, key;
    /* Raw JSON text of the payload exactly as received; ptr NULL if absent. */
    dcs_slice payload;
    int has_timestamp;
    dcs_number timestamp;
    /* Every member of the envelope in received order, known ones included. */
    const dcs_member *members;
    size_t n_members;
    /* The members the envelope does not define, in received order. */
    const dcs_member *unknown;
    size_t n_unknown;
    /* The whole message, from '{' to '}', as received. */
    dcs_slice raw;
    uint64_t offset; /* stream offset of its '{' */
} dcs_message;

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */

typedef struct dcs_decoder_config {
    size_t max_message_size; /* bytes from '{' to '}' inclusive; default 1 MiB */
    unsigned max_depth;      /* envelope object = 1; default 64; 2..4096 */
    const dcs_allocator *allocator; /* NULL: dcs_default_allocator */
} dcs_decoder_config;

typedef struct dcs_decoder_stats {
    uint64_t bytes_in;      /* bytes fed */
    uint64_t messages;      /* messages delivered by dcs_decoder_next() */
    uint64_t errors;        /* errors reported */
    uint64_t bytes_skipped; /* bytes that belong to no delivered message and are
                               not whitespace between messages */
    uint64_t resyncs;       /* times the decoder skipped to the next '{' */
} dcs_decoder_stats;

typedef struct dcs_decoder dcs_decoder;

/* Fill cfg with the spec's defaults. */
void dcs_decoder_config_init(dcs_decoder_config *cfg);

/* Create a decoder; cfg may be NULL for the defaults. On failure returns NULL
 * and, if err is not NULL, stores DCS_ENOMEM or DCS_EINVAL in *err. */
dcs_decoder *dcs_decoder_new(const dcs_decoder_config *cfg, int *err);

/* Free a decoder and everything it owns. NULL is allowed. */
void dcs_decoder_free(dcs_decoder *d);

/* Forget any partial message and error state and start a new stream at offset
 * 0 (spec 4.6: a new connection never continues an old one). Statistics are
 * kept. Allocated buffers are kept for reuse. */
void dcs_decoder_reset(dcs_decoder *d);

/* Hand the decoder the next chunk of the stream. The decoder does not copy the
 * chunk: it must stay unchanged until dcs_decoder_next() has returned
 * DCS_AGAIN for it. Returns 0, or DCS_EBUSY if the previous chunk has not been
 * consumed yet. len may be 0. */
#ifdef __cplusplus
int dcs_decoder_feed(dcs_decoder *d, const void *chunk, size_t len);
#endif

enum dcs_event { DCS_AGAIN = 0, DCS_MESSAGE = 1, DCS_ERROR = 2 };

/* Advance through the current chunk. Returns
 * - DCS_MESSAGE: *msg holds the next complete envelope (see its lifetime);
 * - DCS_ERROR: *err describes a bad input; the decoder has already arranged to
 *   resynchronise (spec 11.2) and the next call goes on;
 * - DCS_AGAIN: the chunk is consumed; feed the next one.
 * msg and err must not be NULL. Never fails otherwise: running out of memory
 * while buffering a message is reported as a DCS_ENOMEM error for that message,
 * which is then skipped. */
#ifdef __cplusplus
int dcs_decoder_next(dcs_decoder *d, dcs_message *msg, dcs_error *err);
#endif

/* Not part of the API (no name beginning "dcs__" is): what the inline fast
 * paths of dcs_decoder_feed() and dcs_decoder_next() below read and write,
 * the first member of every decoder. A stream fed one byte at a time costs
 * no call per byte in the common case: a byte that cannot end the message in
 * progress is only appended to the decoder's deferral buffer, which the
 * decoder parses at the next byte that might. Both functions are also
 * exported by the library (C99 inline: codec/decoder.rl has their external
 * definitions), so that they can be called from other languages. */
struct dcs__decoder_hot {
    unsigned char *dptr; /* the next free byte of the deferral buffer */
    unsigned char *dend; /* its end while one-byte chunks may be deferred, else its start */
    int have_chunk;      /* a chunk was fed and is not consumed yet */
};
int dcs__decoder_feed(dcs_decoder *d, const void *chunk, size_t len);
int dcs__decoder_next(dcs_decoder *d, dcs_message *msg, dcs_error *err);

#ifndef __cplusplus
inline int dcs_decoder_feed(dcs_decoder *d, const void *chunk, size_t len)
{
    struct dcs__decoder_hot *h = (struct dcs__decoder_hot *)(void *)d;
    if (len == 1 && h->dptr < h->dend && *(const unsigned char *)chunk != '}') {
        *h->dptr++ = *(const unsigned char *)chunk;
        return 0;
    }
    return dcs__decoder_feed(d, chunk, len);
}

inline int dcs_decoder_next(dcs_decoder *d, dcs_message *msg, dcs_error *err)
{
    if (!((const struct dcs__decoder_hot *)(const void *)d)->have_chunk)
        return DCS_AGAIN;
    return dcs__decoder_next(d, msg, err);
}
#endif

/* Signal the end of the stream. Returns DCS_ERROR with *err filled while
 * errors remain to be reported: call it again until it returns DCS_AGAIN.
 * The last error, if any, is DCS_ETRUNCATED when a message was still
 * incomplete (it is discarded). The decoder is then reset as by
 * dcs_decoder_reset(). (Errors other than truncated arise here only from
 * small chunks whose parsing the decoder deferred; see decoder.rl.) */
int dcs_decoder_finish(dcs_decoder *d, dcs_error *err);

const dcs_decoder_stats *dcs_decoder_get_stats(const dcs_decoder *d);

/* True when the decoder holds no partial message (it is between messages). */
int dcs_decoder_idle(const dcs_decoder *d);

/* ------------------------------------------------------------------------ */
/* Standalone validation                                                     */

/* Validate that text is exactly one JSON value (RFC 8259, UTF-8 checked),
 * optionally surrounded by whitespace, nested at most max_depth deep (0: the
 * default). Returns 0 or a DCS_E* code; err may be NULL. Allocates nothing
 * larger than max_depth integers, and only when max_depth > 256. */
int dcs_json_validate(const char *text, size_t len, unsigned max_depth, dcs_error *err);

/* ------------------------------------------------------------------------ */
/* Output buffer and encoder                                                 */

typedef struct dcs_buf {
    char *data;
    size_t len, cap;
    const dcs_allocator *alloc; /* NULL: dcs_default_allocator */
} dcs_buf;

void dcs_buf_init(dcs_buf *b, const dcs_allocator *alloc);
void dcs_buf_free(dcs_buf *b);
/* Ensure room for n more bytes. 0 or DCS_ENOMEM. */
int dcs_buf_reserve(dcs_buf *b, size_t n);
int dcs_buf_append(dcs_buf *b, const void *data, size_t n);

/* What the encoder writes. Strings are plain UTF-8 (not escaped); payload and
 * extra member values are raw JSON text written as given. */
typedef struct dcs_envelope {
    dcs_slice origin, destination, type, key;
    dcs_slice payload; /* ptr NULL: no payload member */
    int has_timestamp;
    dcs_number timestamp;
    /* Further members written after timestamp; name is a raw JSON string body
     * (escaped, without quotes) as in dcs_message. */
    const dcs_member *extra;
    size_t n_extra;
} dcs_envelope;

enum dcs_encode_flags {
    /* Check that payload and extra values are valid JSON nested shallowly
     * enough for the message to decode under the depth limit, and that
     * strings are valid UTF-8, before writing anything (spec 6.4: never send
     * bad JSON; never send what a peer with the same limits must refuse). */
    DCS_ENCODE_VALIDATE = 1u << 0,
};

/* Append env to out as one compact JSON object, members in the wire order
 * origin, destination, type, key, payload, timestamp, then extra. Strings are
 * escaped exactly as ECMAScript's JSON.stringify does. On error nothing is
 * appended and the code is returned: DCS_ENOMEM, DCS_ENOT_FINITE, DCS_EUTF8,
 * DCS_EBAD_JSON or DCS_ETOO_DEEP (with DCS_ENCODE_VALIDATE: the message would
 * nest deeper than DCS_DEFAULT_MAX_DEPTH, the envelope counting as 1). */
int dcs_encode(dcs_buf *out, const dcs_envelope *env, unsigned flags);

/* dcs_encode() with the depth limit of the decoder that will read the
 * message (2..DCS_MAX_DEPTH_LIMIT; 0: DCS_DEFAULT_MAX_DEPTH), as a session
 * passes its own max_depth. DCS_EINVAL for a limit out of range. */
int dcs_encode_limit(dcs_buf *out, const dcs_envelope *env, unsigned flags, unsigned max_depth);

/* Fill env from msg so that dcs_encode() reproduces payload, timestamp and
 * unknown members byte for byte. env points into msg (same lifetime). */
void dcs_envelope_from_message(dcs_envelope *env, const dcs_message *msg);

/* Append s as a JSON string (with quotes), escaped as JSON.stringify does.
 * Returns 0, DCS_EUTF8 if s is not valid UTF-8, or DCS_ENOMEM. */
int dcs_encode_string(dcs_buf *out, const char *s, size_t len);

/* Append n as JSON. 0, DCS_ENOT_FINITE or DCS_ENOMEM. */
int dcs_encode_number(dcs_buf *out, const dcs_number *n);

/* Format d as ECMAScript's Number::toString (shortest round trip) into buf,
 * which must hold 32 bytes. Returns the length, or DCS_ENOT_FINITE. */
int dcs_format_double(char buf[32], double d);

/* Decode the raw body of a JSON string (the bytes between the quotes) into
 * UTF-8, appending to out. Returns 0, or DCS_EESCAPE, DCS_ESURROGATE,
 * DCS_ECONTROL, DCS_EUTF8, DCS_EUNEXPECTED (an unescaped '"') if raw is not a
 * valid string body (nothing is appended then), or DCS_ENOMEM. out may be NULL
 * to validate only. */
int dcs_unescape(dcs_buf *out, const char *raw, size_t len);

/* ------------------------------------------------------------------------ */
/* Member lookup                                                             */

/* Find the first member called name of the JSON object in obj[0..len); a
 * member's name is compared with its escapes decoded (spec 5.6: "\u0069d"
 * is the member "id"). Returns 1 and sets *value to
 * the member's raw value text, 0 if there is no such member, DCS_EBAD_JSON if
 * obj is not an object. Never reads outside obj; meant for validated text. */
int dcs_json_member(const char *obj, size_t len, const char *name, dcs_slice *value);

/* As dcs_json_member for a string member: appends its decoded text to out and
 * returns 1; 0 if absent; DCS_ETYPE if not a string; other codes as
 * dcs_unescape. */
int dcs_json_member_string(const char *obj, size_t len, const char *name, dcs_buf *out);

const char *dcs_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DCS_CODEC_H */
