/* fit.c - the fit rules of the catalogue (spec 7.2 to 7.17, 11.3): the checks
 * a receiver makes before acting on a message as a catalogue entry. */
#include <string.h>

#include "dcs/session.h"
#include "util.h"
#include "wire.h"

/* The JSON type of a raw value by its first byte: 's'tring, 'n'umber,
 * 'b'oolean, 'o'bject, 'a'rray, 'z' null; 0 for an empty slice. */
static char dcs__kind(dcs_slice v)
{
    if (!v.ptr || v.len == 0)
        return 0;
    switch (v.ptr[0]) {
    case '"': return 's';
    case '{': return 'o';
    case '[': return 'a';
    case 't':
    case 'f': return 'b';
    case 'n': return 'z';
    default: return 'n';
    }
}

/* The kind of member name of the object payload, or 0 when absent. */
static char dcs__member_kind(dcs_slice obj, const char *name, dcs_slice *value)
{
    dcs_slice v;
    if (dcs_json_member(obj.ptr, obj.len, name, &v) != 1)
        return 0;
    if (value)
        *value = v;
    return dcs__kind(v);
}

#define FAIL(text)                                                                                 \
    do {                                                                                           \
        *why = (text);                                                                             \
        return DCS_EPAYLOAD;                                                                       \
    } while (0)

static int dcs__fit_jobs(dcs_slice arr, const char **why)
{
    /* Every element is an object whose taskId is a string: walk the array by
     * wrapping each element as the value of a pseudo member. */
    const char *p = arr.ptr + 1, *pe = arr.ptr + arr.len - 1;
    while (p < pe) {
        const char *start;
        size_t depth = 0;
        int in_str = 0, esc = 0;
        dcs_slice el;
        while (p < pe && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ','))
            p++;
        if (p >= pe)
            break;
        start = p;
        for (; p < pe; p++) {
            char c = *p;
            if (in_str) {
                if (esc)
                    esc = 0;
                else if (c == '\\')
                    esc = 1;
                else if (c == '"')
                    in_str = 0;
                continue;
            }
            if (c == '"')
                in_str = 1;
            else if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']')
                depth--;
            else if (c == ',' && depth == 0)
                break;
        }
        el.ptr = start;
        el.len = (size_t)(p - start);
        while (el.len && (el.ptr[el.len - 1] == ' ' || el.ptr[el.len - 1] == '\n' ||
                          el.ptr[el.len - 1] == '\t' || el.ptr[el.len - 1] == '\r'))
            el.len--;
        if (dcs__kind(el) != 'o')
            FAIL("every job must be an object");
        if (dcs__member_kind(el, "taskId", NULL) != 's')
            FAIL("every job must have a string taskId");
    }
    return 0;
}

int dcs_fit_check(const dcs_message *m, const char **why)
{
    dcs_slice pl = m->payload, v;
    char k = dcs__kind(pl);
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;

    if (dcs__slice_is(m->type, "command")) {
        if (dcs__slice_is(m->key, "register")) {
            if (k != 'o')
                FAIL("register payload must be an object");
            if (dcs__member_kind(pl, "id", &v) != 's' || v.len <= 2)
                FAIL("register id must be a non-empty string");
            if (dcs__member_kind(pl, "pid", NULL) != 'n')
                FAIL("register pid must be a number");
            if (dcs__member_kind(pl, "type", NULL) != 's')
                FAIL("register type must be a string");
            return 0;
        }
        if (dcs__slice_is(m->key, "challenge")) {
            if (k != 'o')
                FAIL("challenge payload must be an object");
            if (dcs__member_kind(pl, "nonce", &v) != 's' || v.len != 66 ||
                !dcs__is_lower_hex(v.ptr + 1, 64))
                FAIL("challenge nonce must be 64 lowercase hexadecimal characters");
            if (dcs__member_kind(pl, "alg", &v) != 's' || !dcs__slice_is(v, "\"HMAC-SHA256\""))
                FAIL("challenge alg must be HMAC-SHA256");
            return 0;
        }
        /* A command: payload object whose type repeats the key. */
        if (k != 'o')
            FAIL("command payload must be an object");
        if (dcs__member_kind(pl, "type", &v) != 's' || v.len != m->key.len + 2 ||
            memcmp(v.ptr + 1, m->key.ptr, m->key.len) != 0)
            FAIL("command payload type must repeat the key");
        if ((k = dcs__member_kind(pl, "requestId", NULL)) && k != 's')
            FAIL("requestId must be a string");
        if (dcs__slice_is(m->key, "START_JOB")) {
            if (dcs__member_kind(pl, "jobId", NULL) != 's' ||
                dcs__member_kind(pl, "fullPath", NULL) != 's' ||
                dcs__member_kind(pl, "command", NULL) != 's')
                FAIL("START_JOB needs string jobId, fullPath and command");
        }
        return 0;
    }
    if (dcs__slice_is(m->type, "jobRequest") && dcs__slice_is(m->key, "request_jobs")) {
        if (k && k != 'o')
            FAIL("request_jobs payload must be absent or an object");
        if (k && (k = dcs__member_kind(pl, "requestId", NULL)) && k != 's')
            FAIL("requestId must be a string");
        return 0;
    }
    if (dcs__slice_is(m->type, "jobResponse")) {
        if (dcs__slice_is(m->key, "jobs_available")) {
            if (k != 'a')
                FAIL("jobs_available payload must be an array");
            return dcs__fit_jobs(pl, why);
        }
        if (dcs__slice_is(m->key, "jobs_error")) {
            if (k != 'o')
                FAIL("jobs_error payload must be an object");
            if (dcs__member_kind(pl, "error", NULL) != 's')
                FAIL("jobs_error error must be a string");
            if ((k = dcs__member_kind(pl, "requestId", NULL)) && k != 's')
                FAIL("requestId must be a string");
        }
        return 0;
    }
    if (!dcs__slice_is(m->type, "message"))
        return 0;
    if (dcs__slice_is(m->key, "PROGRESS_UPDATE")) {
        if (k != 'o')
            FAIL("PROGRESS_UPDATE payload must be an object");
        if (dcs__member_kind(pl, "taskId", NULL) != 's' ||
            dcs__member_kind(pl, "status", NULL) != 's' ||
            dcs__member_kind(pl, "timestamp", NULL) != 's')
            FAIL("PROGRESS_UPDATE needs string taskId, status and timestamp");
    } else if (dcs__slice_is(m->key, "TOKEN_REFRESH_REQUEST")) {
        if (k != 'o')
            FAIL("TOKEN_REFRESH_REQUEST payload must be an object");
        if (dcs__member_kind(pl, "requestId", NULL) != 's' ||
            dcs__member_kind(pl, "providerId", NULL) != 's')
            FAIL("TOKEN_REFRESH_REQUEST needs string requestId and providerId");
    } else if (dcs__slice_is(m->key, "TOKEN_REFRESH_RESPONSE")) {
        if (k != 'o')
            FAIL("TOKEN_REFRESH_RESPONSE payload must be an object");
        if (dcs__member_kind(pl, "requestId", NULL) != 's')
            FAIL("TOKEN_REFRESH_RESPONSE needs a string requestId");
        if (dcs__member_kind(pl, "success", &v) != 'b')
            FAIL("TOKEN_REFRESH_RESPONSE success must be a boolean");
        if (v.ptr[0] == 't' && dcs__member_kind(pl, "accessToken", NULL) != 's')
            FAIL("a successful TOKEN_REFRESH_RESPONSE needs a string accessToken");
    } else if (dcs__slice_is(m->key, "statusUpdate") || dcs__slice_is(m->key, "jobUpdate")) {
        if (k != 'o')
            FAIL("payload must be an object");
    } else if (dcs__slice_is(m->key, "shutdown")) {
        if (k && k != 'o')
            FAIL("shutdown payload must be absent or an object");
    } else if (dcs__slice_is(m->key, "close")) {
        if (k != 'o' || dcs__member_kind(pl, "reason", NULL) != 's')
            FAIL("close needs a string reason");
    } else if (dcs__slice_is(m->key, "commandResult")) {
        if (k != 'o' || dcs__member_kind(pl, "requestId", NULL) != 's' ||
            dcs__member_kind(pl, "command", NULL) != 's' ||
            dcs__member_kind(pl, "success", NULL) != 'b')
            FAIL("commandResult needs string requestId and command and a boolean success");
    }
    return 0;
}

static const char *const dcs__mt_names[DCS_MT_COUNT] = {
    "command", "heartbeat", "jobRequest", "jobResponse", "message", "other",
};

int dcs_msg_type_index(dcs_slice type)
{
    int i;
    for (i = 0; i < DCS_MT_OTHER; i++)
        if (dcs__slice_is(type, dcs__mt_names[i]))
            return i;
    return DCS_MT_OTHER;
}

const char *dcs_msg_type_name(int index)
{
    return index >= 0 && index < DCS_MT_COUNT ? dcs__mt_names[index] : "other";
}

int dcs_msg_type_of(const char *msg, size_t len)
{
    dcs_slice v;
    if (dcs_json_member(msg, len, "type", &v) != 1 || v.len < 2 || v.ptr[0] != '"')
        return DCS_MT_OTHER;
    v.ptr++;
    v.len -= 2;
    return dcs_msg_type_index(v);
}
