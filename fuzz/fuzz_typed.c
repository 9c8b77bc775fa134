/*
 * fuzz_typed.c - typed views (include/dcs/typed.h) on arbitrary payloads.
 *
 * Input: byte 0 picks the view (the catalogue's entries in order, then the
 * whole envelope as dcs.Envelope), byte 1 a call of the allocator to fail
 * (0: none), the rest is the payload JSON. The chosen view gets every check:
 * - dcs_typed_decode() never crashes, leaks nothing, and fails only with a
 *   documented code: the code of dcs_json_validate() when the text is not
 *   valid JSON, else DCS_EPAYLOAD; *out is NULL and the offset is in range;
 * - a decoded message encodes (dcs_typed_encode), the encoding is valid JSON,
 *   decodes again and encodes to the same bytes (a fixed point);
 * - unknown members survive: every member of the input the model does not
 *   know, at the top and inside known sub-messages, is in the output with its
 *   name as received and its value byte for byte (spec/dcs.proto (b));
 * - with the allocator failing at the chosen call, decode and encode return
 *   the same result or DCS_ENOMEM, leak nothing, and an encoding that fails
 *   appends nothing.
 * Every other view decodes the same payload with the leak check only.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "dcs.pb-c.h"
#include "dcs/typed.h"

#define UNKNOWN_FIELD 2047u

static const ProtobufCFieldDescriptor *field_by_name(const ProtobufCMessageDescriptor *md,
                                                     const char *name, size_t len)
{
    unsigned i;
    for (i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (f->id != UNKNOWN_FIELD && strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

/* The k-th member (0-based) of object obj whose raw name is name. */
static int nth_member(dcs_slice obj, dcs_slice name, size_t k, dcs_slice *value)
{
    fz_iter it;
    dcs_slice n, v;
    if (fz_iter_init(&it, obj.ptr, obj.len) != 0 || !it.object) return 0;
    while (fz_iter_next(&it, &n, &v))
        if (fz_slice_eq(n, name) && k-- == 0) {
            *value = v;
            return 1;
        }
    return 0;
}

static void check_unknown_kept(const ProtobufCMessageDescriptor *md, dcs_slice in, dcs_slice out,
                               unsigned depth);

static void check_message_value(const ProtobufCFieldDescriptor *f, dcs_slice in, dcs_slice out,
                                unsigned depth)
{
    const ProtobufCMessageDescriptor *sub = f->descriptor;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        fz_iter a, b;
        dcs_slice n, va, vb;
        FZ_CHECK(fz_iter_init(&a, in.ptr, in.len) == 0 && !a.object, "repeated not an array");
        FZ_CHECK(fz_iter_init(&b, out.ptr, out.len) == 0 && !b.object,
                 "repeated %s not written as an array", f->name);
        while (fz_iter_next(&a, &n, &va)) {
            FZ_CHECK(fz_iter_next(&b, &n, &vb), "%s: fewer elements written", f->name);
            if (va.ptr[0] == '{') check_unknown_kept(sub, va, vb, depth + 1);
        }
        return;
    }
    if (in.ptr[0] == '{') check_unknown_kept(sub, in, out, depth + 1);
}

static void check_unknown_kept(const ProtobufCMessageDescriptor *md, dcs_slice in, dcs_slice out,
                               unsigned depth)
{
    fz_iter it;
    dcs_slice name, value;
    dcs_buf tmp;
    if (depth > 80) return;
    FZ_CHECK(fz_iter_init(&it, in.ptr, in.len) == 0 && it.object, "input not an object");
    dcs_buf_init(&tmp, NULL);
    while (fz_iter_next(&it, &name, &value)) {
        const ProtobufCFieldDescriptor *f = NULL;
        dcs_slice found;
        tmp.len = 0;
        if (dcs_unescape(&tmp, name.ptr, name.len) == 0 && tmp.len < 256)
            f = field_by_name(md, tmp.len ? tmp.data : "", tmp.len);
        if (!f) {
            /* Unknown: the same occurrence of the same raw name, same bytes. */
            fz_iter it2;
            dcs_slice n2, v2;
            size_t k = 0;
            fz_iter_init(&it2, in.ptr, in.len);
            while (fz_iter_next(&it2, &n2, &v2) && v2.ptr != value.ptr)
                if (fz_slice_eq(n2, name)) k++;
            FZ_CHECK(nth_member(out, name, k, &found), "unknown member \"%.*s\" of %s lost:\n%.*s",
                     (int)name.len, name.ptr, md->name, (int)out.len, out.ptr);
            FZ_CHECK(fz_slice_eq(found, value), "unknown member \"%.*s\" changed: %.*s -> %.*s",
                     (int)name.len, name.ptr, (int)value.len, value.ptr, (int)found.len, found.ptr);
            continue;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || value.ptr[0] == 'n') continue;
        {
            dcs_slice fname = {f->name, strlen(f->name)};
            FZ_CHECK(nth_member(out, fname, 0, &found), "member %s of %s not written", f->name,
                     md->name);
            check_message_value(f, value, found, depth);
        }
    }
    dcs_buf_free(&tmp);
}

static void check_view(const ProtobufCMessageDescriptor *md, dcs_typed_shape shape,
                       const char *json, size_t len, long fail_at)
{
    fz_alloc fa;
    ProtobufCMessage *m = (ProtobufCMessage *)&fa, *m2 = NULL;
    dcs_error err;
    dcs_buf b, b2;
    int rc, vrc;

    fz_alloc_init(&fa, 0);
    memset(&err, 0, sizeof err);
    rc = dcs_typed_decode(md, shape, json, len, &fa.a, &m, &err);
    vrc = dcs_json_validate(json, len, DCS_DEFAULT_MAX_DEPTH, NULL);
    if (rc != 0) {
        FZ_CHECK(m == NULL, "%s: *out not NULL after %s", md->name, dcs_err_name(rc));
        FZ_CHECK(fa.live == 0, "%s: %ld blocks leaked by a failed decode", md->name, fa.live);
        FZ_CHECK(err.code == rc, "%s: err.code %d, returned %d", md->name, err.code, rc);
        FZ_CHECK(err.offset <= len, "%s: offset %llu beyond %zu", md->name,
                 (unsigned long long)err.offset, len);
        FZ_CHECK(err.msg_offset == DCS_NO_OFFSET, "%s: msg_offset set", md->name);
        FZ_CHECK(memchr(err.message, '\0', sizeof err.message), "message not terminated");
        if (vrc != 0)
            FZ_CHECK(rc == vrc, "%s: %s for text dcs_json_validate calls %s", md->name,
                     dcs_err_name(rc), dcs_err_name(vrc));
        else
            FZ_CHECK(rc == DCS_EPAYLOAD, "%s: %s for valid JSON (%s)", md->name, dcs_err_name(rc),
                     err.message);
    } else {
        FZ_CHECK(vrc == 0, "%s: decoded text dcs_json_validate refuses (%s)", md->name,
                 dcs_err_name(vrc));
        FZ_CHECK(m != NULL, "%s: success without a message", md->name);
        dcs_buf_init(&b, NULL);
        rc = dcs_typed_encode(&b, m);
        FZ_CHECK(rc == 0, "%s: a decoded message does not encode: %s", md->name, dcs_err_name(rc));
        rc = dcs_json_validate(b.data, b.len, DCS_DEFAULT_MAX_DEPTH, NULL);
        FZ_CHECK(rc == 0, "%s: the encoding is not valid JSON: %s\n%.*s", md->name,
                 dcs_err_name(rc), (int)b.len, b.data);
        rc = dcs_typed_decode(md, shape, b.data, b.len, &fa.a, &m2, &err);
        FZ_CHECK(rc == 0, "%s: the encoding does not decode: %s at %llu: %s\n%.*s", md->name,
                 dcs_err_name(rc), (unsigned long long)err.offset, err.message, (int)b.len, b.data);
        dcs_buf_init(&b2, NULL);
        rc = dcs_typed_encode(&b2, m2);
        FZ_CHECK(rc == 0 && b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0,
                 "%s: not a fixed point:\n%.*s\n%.*s", md->name, (int)b.len, b.data, (int)b2.len,
                 b2.data);
        /* Unknown members survive. */
        {
            dcs_slice in = fz_trim((dcs_slice){json, len}), out = {b.data, b.len};
            if (shape == DCS_TYPED_OBJECT) {
                check_unknown_kept(md, in, out, 0);
            } else {
                check_message_value(&md->fields[0], in, out, 0);
            }
        }
        dcs_typed_free(m2, &fa.a);
        dcs_typed_free(m, &fa.a);
        FZ_CHECK(fa.live == 0, "%s: %ld blocks leaked", md->name, fa.live);
        dcs_buf_free(&b2);
        if (fail_at) {
            /* The same with one allocation failing. */
            fz_alloc ff;
            ProtobufCMessage *m3 = NULL;
            fz_alloc_init(&ff, fail_at);
            rc = dcs_typed_decode(md, shape, json, len, &ff.a, &m3, &err);
            FZ_CHECK(rc == 0 || rc == DCS_ENOMEM, "%s: %s when allocation %ld fails", md->name,
                     dcs_err_name(rc), fail_at);
            if (rc == 0) {
                dcs_buf b3;
                size_t pre;
                dcs_buf_init(&b3, &ff.a);
                dcs_buf_append(&b3, "x", 1); /* may fail too: then pre is 0 */
                pre = b3.len;
                rc = dcs_typed_encode(&b3, m3);
                FZ_CHECK(rc == 0 || rc == DCS_ENOMEM, "%s: encode gives %s", md->name,
                         dcs_err_name(rc));
                if (rc == 0)
                    FZ_CHECK(b3.len == b.len + pre && memcmp(b3.data + pre, b.data, b.len) == 0,
                             "%s: different encoding under allocation failure:\n%.*s\n%.*s",
                             md->name, (int)b.len, b.data, (int)(b3.len - pre), b3.data + pre);
                else
                    FZ_CHECK(b3.len == pre, "%s: a failed encode appended bytes", md->name);
                dcs_buf_free(&b3);
                dcs_typed_free(m3, &ff.a);
            } else {
                FZ_CHECK(m3 == NULL, "%s: *out not NULL after nomem", md->name);
            }
            FZ_CHECK(ff.live == 0, "%s: %ld blocks leaked with allocation %ld failing", md->name,
                     ff.live, fail_at);
        }
        dcs_buf_free(&b);
    }
}

/* Decode and free only: no crash, no leak. */
static void light_view(const ProtobufCMessageDescriptor *md, dcs_typed_shape shape,
                       const char *json, size_t len)
{
    fz_alloc fa;
    ProtobufCMessage *m = NULL;
    dcs_error err;
    int rc;
    fz_alloc_init(&fa, 0);
    rc = dcs_typed_decode(md, shape, json, len, &fa.a, &m, &err);
    if (rc == 0) {
        dcs_buf b;
        dcs_buf_init(&b, NULL);
        rc = dcs_typed_encode(&b, m);
        FZ_CHECK(rc == 0, "%s: a decoded message does not encode: %s", md->name, dcs_err_name(rc));
        dcs_buf_free(&b);
        dcs_typed_free(m, &fa.a);
    }
    FZ_CHECK(fa.live == 0, "%s: %ld blocks leaked", md->name, fa.live);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_views, pick, i;
    const dcs_typed_view *views = dcs_typed_views(&n_views);
    const char *json;
    long fail_at;

    if (size < 2) return 0;
    pick = data[0] % (n_views + 1);
    fail_at = data[1];
    json = fz_place(0, data + 2, size - 2);
    for (i = 0; i <= n_views; i++) {
        const ProtobufCMessageDescriptor *md =
            i < n_views ? views[i].descriptor : &dcs__envelope__descriptor;
        dcs_typed_shape shape = i < n_views ? views[i].shape : DCS_TYPED_OBJECT;
        if (i == pick)
            check_view(md, shape, json, size - 2, fail_at);
        else
            light_view(md, shape, json, size - 2);
    }
    fz_retire(0);
    return 0;
}
