/*
 * dcs/typed.h - typed views of payloads: a payload's raw JSON text decoded on
 * demand into the protobuf-c struct generated from spec/dcs.proto, and such a
 * struct encoded back to JSON.
 *
 * The envelope decoder (dcs/codec.h) hands out each payload as raw, validated
 * JSON bytes (dcs_message.payload). dcs_typed_lookup() says which message of
 * the model belongs to an envelope's type and key; dcs_typed_decode() fills
 * the struct; dcs_typed_encode() writes it back. The mapping is driven by the
 * protobuf-c descriptors alone, so it works for every message of the model,
 * and for any other proto2 message that follows the conventions of
 * spec/dcs.proto (read its header comment: field name = wire name, tag order =
 * wire order, bytes = raw JSON, dcs_unknown = 2047 for unknown members).
 *
 * The generated structs and descriptors are declared in "dcs.pb-c.h" (from
 * codec_dep / dcs_proto_dep): for example dcs__progress_update__descriptor and
 * Dcs__ProgressUpdate, whose members are the lowercased field names.
 *
 * Every function is reentrant and keeps no global state.
 */
#ifndef DCS_TYPED_H
#define DCS_TYPED_H

#include <protobuf-c/protobuf-c.h>

#include "dcs/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a message sits in a payload's JSON. */
typedef enum dcs_typed_shape {
    /* The payload is a JSON object; its members are the message's fields. */
    DCS_TYPED_OBJECT = 0,
    /* The payload is a JSON array; its elements fill the message's first
     * field, which must be repeated (jobs_available). */
    DCS_TYPED_ARRAY = 1,
} dcs_typed_shape;

/* One entry of the catalogue: an envelope type/key and its payload model. */
typedef struct dcs_typed_view {
    const char *type; /* the envelope's type, e.g. "message" */
    const char *key;  /* the envelope's key, e.g. "PROGRESS_UPDATE" */
    const ProtobufCMessageDescriptor *descriptor;
    dcs_typed_shape shape;
} dcs_typed_view;

/* The view for an envelope's type and key (as in dcs_message: escapes
 * decoded, not NUL-terminated), or NULL when the pair is not in the catalogue
 * and the message is generic. The result points to static storage. */
const dcs_typed_view *dcs_typed_lookup(dcs_slice type, dcs_slice key);

/* The whole catalogue, *n entries (static storage). */
const dcs_typed_view *dcs_typed_views(size_t *n);

/* Decode the JSON text json[0..len) (a payload, optionally surrounded by
 * whitespace) as a message of descriptor d in the given shape.
 *
 * On success returns 0 and stores a new message in *out; free it with
 * dcs_typed_free() and the same allocator. Strings are unescaped, UTF-8 and
 * NUL-terminated; bytes fields hold the member's raw JSON text (also followed
 * by a NUL byte that len does not count); members the model does not know are
 * kept in dcs_unknown (spec/dcs.proto, convention (b)); a JSON null for an
 * optional member leaves the field absent.
 *
 * On failure returns a negative code, leaves *out NULL, has allocated nothing,
 * and fills *err (if err is not NULL) with the code, the byte offset in json
 * (offset) and a message; msg_offset is DCS_NO_OFFSET. The codes:
 * - DCS_EPAYLOAD: valid JSON that does not fit the model. The message names
 *   the member path and what was wrong, e.g.
 *   "areas[2].gitlabId: expected an integer, found a string". Other reasons:
 *   a fractional number or one out of range for an integer field, a number
 *   out of range for a double, a string containing U+0000, a duplicate known
 *   member, a required member missing or null.
 * - a JSON syntax code (DCS_EUNEXPECTED, DCS_EUTF8, DCS_ETRUNCATED, ...,
 *   DCS_ETOO_DEEP beyond DCS_DEFAULT_MAX_DEPTH) when json is not one valid
 *   JSON value, as dcs_json_validate() reports it;
 * - DCS_ENOMEM; DCS_EINVAL for a NULL argument, an array shape whose first
 *   field is not repeated, or a field type the mapping does not support
 *   (enum: keep enumerations as strings).
 * Safe on any input bytes. a may be NULL for dcs_default_allocator. */
int dcs_typed_decode(const ProtobufCMessageDescriptor *d, dcs_typed_shape shape,
                     const char *json, size_t len, const dcs_allocator *a,
                     ProtobufCMessage **out, dcs_error *err);

/* Append m to out as compact JSON: present fields in tag order (the wire
 * order), then the members held in dcs_unknown. Strings are escaped as
 * JSON.stringify does (dcs_encode_string), doubles are written as ECMAScript
 * does (dcs_format_double), bytes fields are written as the raw JSON they
 * hold (without surrounding whitespace; whitespace inside a raw value, or
 * between the members held in dcs_unknown, is kept). A top-level message whose
 * descriptor a catalogue view lists with the array shape is written as a JSON
 * array of its first field's elements; an empty one as [].
 *
 * Returns 0, or on error appends nothing and returns DCS_ENOMEM,
 * DCS_EUTF8 (a string is not UTF-8), DCS_ENOT_FINITE (NaN or infinity),
 * DCS_EBAD_JSON (a bytes field, or dcs_unknown, is not valid JSON, or
 * dcs_unknown is not an object), DCS_ETOO_DEEP (messages nested deeper than
 * DCS_DEFAULT_MAX_DEPTH) or DCS_EINVAL (a required string or message is NULL,
 * an enum field, dcs_unknown set on an array-shaped message). */
int dcs_typed_encode(dcs_buf *out, const ProtobufCMessage *m);

/* Free a message returned by dcs_typed_decode(), with the allocator it was
 * decoded with (NULL: dcs_default_allocator). NULL m is allowed. A message
 * built by hand may be freed this way only if every string, bytes value,
 * repeated array and sub-message in it was allocated separately from a. */
void dcs_typed_free(ProtobufCMessage *m, const dcs_allocator *a);

#ifdef __cplusplus
}
#endif
#endif /* DCS_TYPED_H */
