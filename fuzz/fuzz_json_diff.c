/*
 * fuzz_json_diff.c - our JSON against jansson's (differential).
 *
 * Input: JSON text, used as a payload. Our side:
 *   - the decoder, on the envelope {"origin":"o","destination":"d","type":"t",
 *     "key":"k","payload":INPUT} with the default limits (1 MiB, depth 64);
 *     accepted iff it yields exactly that one message and no error;
 *   - dcs_json_validate(INPUT, depth 63), which must agree with the decoder.
 * jansson's side: json_loadb(INPUT, JSON_DECODE_ANY | JSON_ALLOW_NUL |
 * JSON_DECODE_INT_AS_REAL), with the same limits applied as rules: a tree
 * deeper than 63 (the payload's own depth under an envelope of depth 64) or
 * an envelope over 1 MiB counts as refused.
 *
 * Both must accept or both refuse, except where RFC 8259 leaves a choice that
 * jansson makes differently from spec 5.6 (see fuzz/README.md): a number
 * beyond binary64 (jansson: numeric overflow; we relay any number) and a NUL
 * in an object key (jansson cannot hold it). Such inputs are not compared.
 * jansson also stops reading at a raw NUL byte: text holding one counts as
 * refused on its side.
 *
 * When both accept, our value, built from the decoder's raw payload with the
 * codec's dcs_unescape() for every string and name and strtod for numbers,
 * must equal jansson's (json_equal: objects compare as sets of names, a
 * duplicate name keeps its last value on both sides). Along the way:
 * dcs_json_member() finds the first member of every name of every object
 * (names compared decoded),
 * every string re-encoded by dcs_encode_string() reads back the same in
 * jansson, and every number written by dcs_format_double() reads back as the
 * same double.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define ENV_PREFIX                                                                                 \
    "{\"origin\":\"o\",\"destination\":\"d\",\"type\":\"t\",\"key\":\"k\",\"payload\":"
#define MAX_DEPTH 64u /* the envelope's; the payload's own limit is one less */

static size_t tree_depth(const json_t *j)
{
    size_t d = 0, x;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            x = tree_depth(v);
            if (x > d) d = x;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            x = tree_depth(v);
            if (x > d) d = x;
        }
        return d + 1;
    }
    return 0;
}

/* Our value of the validated JSON text v, as a jansson tree. */
static json_t *build(dcs_slice v, dcs_buf *tmp);

static json_t *build_string(dcs_slice v, dcs_buf *tmp)
{
    json_t *s, *back;
    dcs_buf enc;
    json_error_t je;
    int rc;
    FZ_CHECK(v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"', "not a string: %.*s",
             (int)v.len, v.ptr);
    tmp->len = 0;
    rc = dcs_unescape(tmp, v.ptr + 1, v.len - 2);
    FZ_CHECK(rc == 0, "dcs_unescape refuses a string the decoder accepted: %s (%.*s)",
             dcs_err_name(rc), (int)v.len, v.ptr);
    s = json_stringn(tmp->len ? tmp->data : "", tmp->len);
    FZ_CHECK(s != NULL, "dcs_unescape produced text jansson calls invalid UTF-8: %.*s", (int)v.len,
             v.ptr);
    /* The encoder writes it back as JSON that reads the same. */
    dcs_buf_init(&enc, NULL);
    rc = dcs_encode_string(&enc, tmp->data ? tmp->data : "", tmp->len);
    FZ_CHECK(rc == 0, "dcs_encode_string refuses a decoded string: %s", dcs_err_name(rc));
    back = json_loadb(enc.data, enc.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FZ_CHECK(back != NULL && json_equal(back, s),
             "dcs_encode_string output reads back "
             "differently: %.*s (%s)",
             (int)enc.len, enc.data, back ? "other value" : je.text);
    json_decref(back);
    dcs_buf_free(&enc);
    return s;
}

static json_t *build_number(dcs_slice v)
{
    char buf[64], *text = buf, *end;
    char out[32];
    double d, d2;
    int n;
    if (v.len >= sizeof buf) {
        text = malloc(v.len + 1);
        FZ_CHECK(text != NULL, "out of memory");
    }
    memcpy(text, v.ptr, v.len);
    text[v.len] = '\0';
    d = strtod(text, &end);
    FZ_CHECK(end == text + v.len, "strtod stops inside the number %s", text);
    if (text != buf) free(text);
    if (!isfinite(d)) return NULL; /* jansson refuses it too: numeric overflow, not compared */
    n = dcs_format_double(out, d);
    FZ_CHECK(n > 0 && n < 32, "dcs_format_double(%.17g): %d", d, n);
    out[n] = '\0';
    d2 = strtod(out, &end);
    FZ_CHECK(*end == '\0' && (d2 == d || (d == 0 && d2 == 0)),
             "dcs_format_double(%.17g) = %s does not read back", d, out);
    return json_real(d);
}

/* The value of the first member of object v whose decoded name is key. */
static dcs_slice first_named(dcs_slice v, const char *key, size_t klen)
{
    fz_iter it;
    dcs_slice n, val, none = {NULL, 0};
    dcs_buf b;
    dcs_buf_init(&b, NULL);
    fz_iter_init(&it, v.ptr, v.len);
    while (fz_iter_next(&it, &n, &val)) {
        b.len = 0;
        if (dcs_unescape(&b, n.ptr, n.len) == 0 && b.len == klen &&
            (klen == 0 || memcmp(b.data, key, klen) == 0)) {
            dcs_buf_free(&b);
            return val;
        }
    }
    dcs_buf_free(&b);
    return none;
}

static json_t *build_container(dcs_slice v, dcs_buf *tmp)
{
    fz_iter it;
    dcs_slice name, value;
    json_t *c;
    FZ_CHECK(fz_iter_init(&it, v.ptr, v.len) == 0, "not a container");
    c = it.object ? json_object() : json_array();
    while (fz_iter_next(&it, &name, &value)) {
        json_t *x = build(value, tmp);
        if (!x) {
            json_decref(c);
            return NULL;
        }
        if (!it.object) {
            json_array_append_new(c, x);
            continue;
        }
        tmp->len = 0;
        FZ_CHECK(dcs_unescape(tmp, name.ptr, name.len) == 0, "member name does not unescape");
        if (memchr(tmp->data ? tmp->data : "", '\0', tmp->len)) {
            json_decref(x);
            json_decref(c);
            return NULL; /* jansson cannot hold it: not compared */
        }
        /* dcs_json_member() finds the first member of this name, names
         * compared with their escapes decoded (spec 5.6). */
        if (tmp->len < 512) {
            char key[512];
            dcs_slice found;
            int rc;
            memcpy(key, tmp->len ? tmp->data : "", tmp->len);
            key[tmp->len] = '\0';
            rc = dcs_json_member(v.ptr, v.len, key, &found);
            FZ_CHECK(rc == 1, "dcs_json_member(\"%s\") = %d", key, rc);
            FZ_CHECK(found.ptr == first_named(v, key, tmp->len).ptr,
                     "dcs_json_member(\"%s\") finds another member than the first of that name",
                     key);
        }
        FZ_CHECK(json_object_setn_new(c, tmp->len ? tmp->data : "", tmp->len, x) == 0,
                 "jansson refuses a member name");
    }
    return c;
}

static json_t *build(dcs_slice v, dcs_buf *tmp)
{
    v = fz_trim(v);
    FZ_CHECK(v.len > 0, "empty value");
    switch (v.ptr[0]) {
    case '"':
        return build_string(v, tmp);
    case '{':
    case '[':
        return build_container(v, tmp);
    case 't':
        FZ_CHECK(v.len == 4 && memcmp(v.ptr, "true", 4) == 0, "bad literal accepted");
        return json_true();
    case 'f':
        FZ_CHECK(v.len == 5 && memcmp(v.ptr, "false", 5) == 0, "bad literal accepted");
        return json_false();
    case 'n':
        FZ_CHECK(v.len == 4 && memcmp(v.ptr, "null", 4) == 0, "bad literal accepted");
        return json_null();
    default:
        return build_number(v);
    }
}

/* Our decoder on the envelope: 1 accepted (payload in *pl), 0 refused, -1
 * refused for the size limit. */
static int ours_envelope(const uint8_t *data, size_t size, dcs_buf *env, dcs_slice *pl,
                         dcs_decoder **dp)
{
    static const char prefix[] = ENV_PREFIX;
    dcs_decoder_config cfg;
    dcs_decoder *d;
    dcs_message m;
    dcs_error e;
    const char *placed;
    int ev, rc, messages = 0, errors = 0, too_large = 0;

    env->len = 0;
    dcs_buf_append(env, prefix, sizeof prefix - 1);
    dcs_buf_append(env, data, size);
    dcs_buf_append(env, "}", 1);
    dcs_decoder_config_init(&cfg);
    cfg.max_depth = MAX_DEPTH;
    d = dcs_decoder_new(&cfg, &rc);
    FZ_CHECK(d != NULL, "dcs_decoder_new: %s", dcs_err_name(rc));
    *dp = d;
    placed = fz_place(0, env->data, env->len);
    dcs_decoder_feed(d, placed, env->len);
    while ((ev = dcs_decoder_next(d, &m, &e)) != DCS_AGAIN) {
        if (ev == DCS_MESSAGE) {
            messages++;
            if (messages == 1 && m.offset == 0 && m.raw.len == env->len && m.payload.ptr)
                *pl = m.payload; /* valid until the next call on d */
        } else {
            errors++;
            too_large |= e.code == DCS_ETOO_LARGE;
        }
    }
    if (messages == 1 && errors == 0 && pl->ptr) {
        /* Accepted if the payload is the whole input (without surrounding
         * whitespace): `1},"x":2` makes a valid envelope too, with a payload
         * of 1 and an unknown member. */
        dcs_slice in = {(const char *)placed + sizeof prefix - 1, size};
        in = fz_trim(in);
        if (pl->ptr == in.ptr && pl->len == in.len) return 1;
    }
    return too_large ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dcs_buf env, tmp;
    dcs_slice pl = {NULL, 0};
    dcs_decoder *d = NULL;
    dcs_error verr;
    json_error_t je;
    json_t *theirs, *ours;
    int env_ok, val_ok, their_ok;

    dcs_buf_init(&env, NULL);
    dcs_buf_init(&tmp, NULL);
    env_ok = ours_envelope(data, size, &env, &pl, &d);
    val_ok = dcs_json_validate((const char *)data, size, MAX_DEPTH - 1, &verr) == 0;
    if (env_ok < 0) {
        FZ_CHECK(env.len > DCS_DEFAULT_MAX_MESSAGE_SIZE, "too_large under the limit");
        goto out; /* the size rule: refused whatever jansson says */
    }
    FZ_CHECK(env.len <= DCS_DEFAULT_MAX_MESSAGE_SIZE || !env_ok, "over the limit but accepted");
    FZ_CHECK(env_ok == val_ok, "decoder %s, dcs_json_validate %s (%s at %llu: %s)",
             env_ok ? "accepts" : "refuses", val_ok ? "accepts" : "refuses",
             val_ok ? "-" : dcs_err_name(verr.code), (unsigned long long)verr.offset,
             val_ok ? "" : verr.message);

    theirs = json_loadb((const char *)data, size,
                        JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    if (!theirs) {
        enum json_error_code code = json_error_code(&je);
        if (code == json_error_numeric_overflow || code == json_error_null_byte_in_key)
            goto out; /* a choice RFC 8259 leaves open, made otherwise: not compared */
        FZ_CHECK(code != json_error_out_of_memory, "jansson out of memory");
        their_ok = 0;
    } else {
        /* jansson stops reading at a NUL byte ("4\0" reads as 4); a raw NUL
         * is never valid JSON text. */
        their_ok = tree_depth(theirs) <= MAX_DEPTH - 1 && !memchr(data, 0, size);
    }
    if (theirs && !their_ok && env_ok)
        FZ_CHECK(0, "accepted although deeper than %u", MAX_DEPTH - 1);
    FZ_CHECK(env_ok == their_ok, "we %s, jansson %s (%s; ours: %s at %llu: %s)",
             env_ok ? "accept" : "refuse", their_ok ? "accepts" : "refuses", theirs ? "-" : je.text,
             val_ok ? "-" : dcs_err_name(verr.code), (unsigned long long)verr.offset,
             val_ok ? "" : verr.message);
    if (env_ok) {
        ours = build(pl, &tmp);
        if (ours) {
            if (!json_equal(ours, theirs)) {
                char *a = json_dumps(ours, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
                char *b = json_dumps(theirs, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
                FZ_CHECK(0, "values differ:\n ours:    %.300s\n jansson: %.300s", a ? a : "?",
                         b ? b : "?");
            }
            json_decref(ours);
        }
    }
    json_decref(theirs);
out:
    fz_retire(0);
    dcs_decoder_free(d);
    dcs_buf_free(&env);
    dcs_buf_free(&tmp);
    return 0;
}
