/* test_generalize.c - `dcs-conform generalize` (conformance/generalize.h):
 * recordings in the format dcs-tap writes, for both roles, turned into
 * cases: the exact text of the result; that its patterns match a second run
 * with other timestamps, pids, request ids and MACs and capture them; the
 * options and the form of the output; every error with its line; truncated
 * recordings; and allocation failure at every call. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generalize.h"
#include "support.h"
#include "transcript.h"

/* ------------------------------------------------------------------------ */
/* Recordings, as dcs-tap --record writes them                               */

/* The IUT is the server: a session with jobs, a token request, heartbeats
 * both ways, progress, a command with the harness's requestId, and the
 * harness closing. Spaces inside one payload are kept as recorded. */
static const char rec_server[] =
    "# Recorded by dcs-tap 0.1.0 at 2025-01-03T19:00:00Z, listening on /tmp/t/tap.sock, upstream /tmp/t/api.sock.\n"
    "# Faults: none\n"
    "# The IUT is the server: 'expect' lines are the messages it wrote, 'send' lines\n"
    "# the ones it was given (after the faults). '# +T' comments give the time\n"
    "# since the tap started. Heartbeats are recorded like any other message.\n"
    "id rec-20250103T190000Z\n"
    "title recorded by dcs-tap between /tmp/t/tap.sock and /tmp/t/api.sock\n"
    "role server\n"
    "\n"
    "keepalive off\n"
    "unignore heartbeat\n"
    "# +0.100s conn 1: the client connected, the tap connected to the upstream\n"
    "connect\n"
    "# +0.101s conn 1 c2s offset 0\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":4242,\"type\":\"copilot-study\"},\"timestamp\":1735930800000}\n"
    "# +0.102s conn 1 s2c offset 0\n"
    "expect {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"9f86d081884c7d65-1\"},\"timestamp\":1735930800001}\n"
    "# +0.103s conn 1 c2s offset 181\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[{\"taskId\":\"t-1\",\"command\":\"COMMITS\",\"customParameters\":{\"for\":\"9f86d081884c7d65-1\",\"n\":\"1\"}}],\"timestamp\":1735930800002,\"requestId\":\"9f86d081884c7d65-1\"}\n"
    "# +0.104s conn 1 s2c offset 168\n"
    "expect {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_REQUEST\",\"payload\":{\"requestId\":\"9f86d081884c7d65-2\",\"providerId\":\"gitlab\",\"accountId\":\"t-1\"},\"timestamp\":1735930800003}\n"
    "# +0.105s conn 1 s2c offset 380\n"
    "expect {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":1735930800004},\"timestamp\":1735930800004}\n"
    "# +0.106s conn 1 c2s offset 400\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":1735930800005},\"timestamp\":1735930800005}\n"
    "# +0.107s conn 1 c2s offset 550\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_RESPONSE\",\"payload\":{\"requestId\":\"9f86d081884c7d65-2\",\"success\":true,\"accessToken\":\"synthetic\",\"providerId\":\"gitlab\"},\"timestamp\":1735930800006}\n"
    "# +0.108s conn 1 s2c offset 540\n"
    "expect {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\": {\"taskId\": \"t-1\", \"status\": \"processing\", \"timestamp\": \"2025-01-03T19:00:00.007Z\", \"processedItems\": 40, \"totalItems\": 100},\"timestamp\":1735930800007}\n"
    "# +0.109s conn 1 c2s offset 700\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"START_JOB\",\"payload\":{\"type\":\"START_JOB\",\"jobId\":\"t-2\",\"fullPath\":\"org/app\",\"command\":\"COMMITS\",\"requestId\":\"c-1\"},\"timestamp\":1735930800008}\n"
    "# +0.110s conn 1 s2c offset 800\n"
    "expect {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"c-1\",\"command\":\"START_JOB\",\"success\":true},\"timestamp\":1735930800009}\n"
    "# +0.111s conn 1 c2s offset 900\n"
    "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"close\",\"payload\":{\"reason\":\"shutdown\"},\"timestamp\":1735930800010}\n"
    "# +0.112s conn 1: the connection ended, first by the other side (Broken pipe)\n"
    "close\n";

/* The IUT is the client, with the handshake: the harness side sent the
 * challenge; the IUT invents the requestId of its own command. */
static const char rec_client[] =
    "id rec-20250103T190100Z\n"
    "title recorded by dcs-tap between /tmp/t/tap.sock and /tmp/t/api.sock\n"
    "role client\n"
    "\n"
    "keepalive off\n"
    "unignore heartbeat\n"
    "# +0.100s conn 1: the client connected, the tap connected to the upstream\n"
    "accept\n"
    "# +0.101s conn 1 s2c offset 0\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":\"e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c\",\"alg\":\"HMAC-SHA256\"},\"timestamp\":1735930800000}\n"
    "# +0.102s conn 1 c2s offset 0\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":4242,\"type\":\"copilot-study\",\"nonce\":\"e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c\",\"hmac\":\"9d2b8e1c4c0b6d8f3f2a7e5d1c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b\"},\"timestamp\":1735930800001}\n"
    "# +0.103s conn 1 s2c offset 200\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"r-17\"},\"timestamp\":1735930800002}\n"
    "# +0.104s conn 1 c2s offset 300\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[],\"timestamp\":1735930800003,\"requestId\":\"r-17\"}\n"
    "# +0.105s conn 1 s2c offset 400\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":1735930800004},\"timestamp\":1735930800004}\n"
    "# +0.106s conn 1 c2s offset 472\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":1735930800005},\"timestamp\":1735930800005}\n"
    "# +0.107s conn 1 s2c offset 557\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_REQUEST\",\"payload\":{\"requestId\":\"tr-5\",\"providerId\":\"gitlab\",\"accountId\":\"acc-9\"},\"timestamp\":1735930800006}\n"
    "# +0.108s conn 1 c2s offset 629\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_RESPONSE\",\"payload\":{\"requestId\":\"tr-5\",\"success\":true,\"accessToken\":\"synthetic\",\"providerId\":\"gitlab\"},\"timestamp\":1735930800007}\n"
    "# +0.109s conn 1 s2c offset 770\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\":{\"taskId\":\"t-1\",\"status\":\"started\",\"timestamp\":\"2025-01-03T19:00:00.008Z\"},\"timestamp\":1735930800008}\n"
    "# +0.110s conn 1 c2s offset 900\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"PAUSE_CRAWLER\",\"payload\":{\"type\":\"PAUSE_CRAWLER\",\"requestId\":\"cmd-5f1c2a9e\"},\"timestamp\":1735930800009}\n"
    "# +0.111s conn 1 s2c offset 1000\n"
    "send {\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"cmd-5f1c2a9e\",\"command\":\"PAUSE_CRAWLER\",\"success\":true},\"timestamp\":1735930800010}\n"
    "# +0.112s conn 1 c2s offset 1100\n"
    "expect {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"close\",\"payload\":{\"reason\":\"shutdown\"},\"timestamp\":1735930800011}\n"
    "# +0.113s conn 1: the connection ended, first by the IUT (end of file)\n"
    "expect-close\n";

/* ------------------------------------------------------------------------ */
/* What they become                                                          */

static const char gen_server[] =
    "# Generalized by dcs-conform generalize from the recording rec-20250103T190000Z:\n"
    "# timestamps, pids, request ids, nonces and the peers' ids are matchers and\n"
    "# variables; heartbeats are left to the harness (ignore heartbeat, keepalive on).\n"
    "# Recorded ids: client \"web-server\", server \"external-crawler\" ($IUT_ID and\n"
    "# $PEER_ID: give --iut-id and --peer-id if they are not the defaults).\n"
    "id gen-20250103T190000Z\n"
    "title generalized from rec-20250103T190000Z: recorded by dcs-tap between /tmp/t/tap.sock and /tmp/t/api.sock\n"
    "role server\n"
    "window 5s\n"
    "\n"
    "# Recorded by dcs-tap 0.1.0 at 2025-01-03T19:00:00Z, listening on /tmp/t/tap.sock, upstream /tmp/t/api.sock.\n"
    "# Faults: none\n"
    "# The IUT is the server: 'expect' lines are the messages it wrote, 'send' lines\n"
    "# the ones it was given (after the faults). '# +T' comments give the time\n"
    "# since the tap started. Heartbeats are recorded like any other message.\n"
    "\n"
    "# +0.100s conn 1: the client connected, the tap connected to the upstream\n"
    "connect\n"
    "# +0.101s conn 1 c2s offset 0\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":$PEER_ID,\"pid\":4242,\"type\":\"copilot-study\"},\"timestamp\":$NOW}\n"
    "# +0.102s conn 1 s2c offset 0\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":$RID1:*string},\"timestamp\":*number}\n"
    "# +0.103s conn 1 c2s offset 181\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[{\"taskId\":\"t-1\",\"command\":\"COMMITS\",\"customParameters\":{\"for\":$RID1,\"n\":\"1\"}}],\"timestamp\":$NOW,\"requestId\":$RID1}\n"
    "# +0.104s conn 1 s2c offset 168\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"message\",\"key\":\"TOKEN_REFRESH_REQUEST\",\"payload\":{\"requestId\":$RID2:*string,\"providerId\":\"gitlab\",\"accountId\":\"t-1\"},\"timestamp\":*number}\n"
    "# +0.107s conn 1 c2s offset 550\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"message\",\"key\":\"TOKEN_REFRESH_RESPONSE\",\"payload\":{\"requestId\":$RID2,\"success\":true,\"accessToken\":\"synthetic\",\"providerId\":\"gitlab\"},\"timestamp\":$NOW}\n"
    "# +0.108s conn 1 s2c offset 540\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\": {\"taskId\": \"t-1\", \"status\": \"processing\", \"timestamp\": *string, \"processedItems\": 40, \"totalItems\": 100},\"timestamp\":*number}\n"
    "# +0.109s conn 1 c2s offset 700\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"command\",\"key\":\"START_JOB\",\"payload\":{\"type\":\"START_JOB\",\"jobId\":\"t-2\",\"fullPath\":\"org/app\",\"command\":\"COMMITS\",\"requestId\":\"c-1\"},\"timestamp\":$NOW}\n"
    "# +0.110s conn 1 s2c offset 800\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"c-1\",\"command\":\"START_JOB\",\"success\":true},\"timestamp\":*number}\n"
    "# +0.111s conn 1 c2s offset 900\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"message\",\"key\":\"close\",\"payload\":{\"reason\":\"shutdown\"},\"timestamp\":$NOW}\n"
    "# +0.112s conn 1: the connection ended, first by the other side (Broken pipe)\n"
    "close\n";

static const char gen_client[] =
    "# Generalized by dcs-conform generalize from the recording rec-20250103T190100Z:\n"
    "# timestamps, pids, request ids, nonces and the peers' ids are matchers and\n"
    "# variables; heartbeats are left to the harness (ignore heartbeat, keepalive on).\n"
    "# Recorded ids: client \"web-server\", server \"external-crawler\" ($IUT_ID and\n"
    "# $PEER_ID: give --iut-id and --peer-id if they are not the defaults).\n"
    "id gen-20250103T190100Z\n"
    "title generalized from rec-20250103T190100Z: recorded by dcs-tap between /tmp/t/tap.sock and /tmp/t/api.sock\n"
    "role client\n"
    "window 5s\n"
    "requires hmac\n"
    "var NONCE \"e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c\"\n"
    "\n"
    "# +0.100s conn 1: the client connected, the tap connected to the upstream\n"
    "accept\n"
    "# +0.101s conn 1 s2c offset 0\n"
    "send {\"origin\":$PEER_ID,\"destination\":\"*\",\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":$NONCE,\"alg\":\"HMAC-SHA256\"},\"timestamp\":$NOW}\n"
    "# +0.102s conn 1 c2s offset 0\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":$IUT_ID,\"pid\":*integer,\"type\":\"copilot-study\",\"nonce\":$NONCE,\"hmac\":*string},\"timestamp\":*number}\n"
    "# +0.103s conn 1 s2c offset 200\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"r-17\"},\"timestamp\":$NOW}\n"
    "# +0.104s conn 1 c2s offset 300\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[],\"timestamp\":*number,\"requestId\":\"r-17\"}\n"
    "# +0.107s conn 1 s2c offset 557\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"message\",\"key\":\"TOKEN_REFRESH_REQUEST\",\"payload\":{\"requestId\":\"tr-5\",\"providerId\":\"gitlab\",\"accountId\":\"acc-9\"},\"timestamp\":$NOW}\n"
    "# +0.108s conn 1 c2s offset 629\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"message\",\"key\":\"TOKEN_REFRESH_RESPONSE\",\"payload\":{\"requestId\":\"tr-5\",\"success\":true,\"accessToken\":\"synthetic\",\"providerId\":\"gitlab\"},\"timestamp\":*number}\n"
    "# +0.109s conn 1 s2c offset 770\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\":{\"taskId\":\"t-1\",\"status\":\"started\",\"timestamp\":\"2025-01-03T19:00:00.008Z\"},\"timestamp\":$NOW}\n"
    "# +0.110s conn 1 c2s offset 900\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"command\",\"key\":\"PAUSE_CRAWLER\",\"payload\":{\"type\":\"PAUSE_CRAWLER\",\"requestId\":$RID1:*string},\"timestamp\":*number}\n"
    "# +0.111s conn 1 s2c offset 1000\n"
    "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":$RID1,\"command\":\"PAUSE_CRAWLER\",\"success\":true},\"timestamp\":$NOW}\n"
    "# +0.112s conn 1 c2s offset 1100\n"
    "expect {\"origin\":$IUT_ID,\"destination\":$PEER_ID,\"type\":\"message\",\"key\":\"close\",\"payload\":{\"reason\":\"shutdown\"},\"timestamp\":*number}\n"
    "# +0.113s conn 1: the connection ended, first by the IUT (end of file)\n"
    "expect-close\n";

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Generalize text, which must succeed; the result is malloc'd. */
static char *gen_ok(const char *text, const char *id)
{
    dcs_buf out;
    char why[300] = "", *s;
    int rc;
    dcs_buf_init(&out, NULL);
    rc = conf_generalize(text, strlen(text), id, &out, why, sizeof why);
    cr_assert_eq(rc, 0, "generalize failed: %s\n%s", why, text);
    cr_assert_str_eq(why, "");
    s = malloc(out.len + 1);
    cr_assert_not_null(s);
    memcpy(s, out.data, out.len);
    s[out.len] = 0;
    dcs_buf_free(&out);
    return s;
}

/* Generalize text, which must fail with the reason want; out keeps what it
 * held before. */
static void gen_err_n(const char *text, size_t len, const char *id, const char *want)
{
    dcs_buf out;
    char why[300] = "";
    dcs_buf_init(&out, NULL);
    cr_assert_eq(dcs_buf_append(&out, "keep", 4), 0);
    cr_assert_eq(conf_generalize(text, len, id, &out, why, sizeof why), -1, "no error for:\n%s",
                 text);
    cr_expect_str_eq(why, want, "got \"%s\"", why);
    cr_expect(out.len == 4 && memcmp(out.data, "keep", 4) == 0, "out was changed");
    dcs_buf_free(&out);
}

static void gen_err(const char *text, const char *id, const char *want)
{
    gen_err_n(text, strlen(text), id, want);
}

static void set_str(dcs_vars *v, const char *name, const char *json)
{
    cr_assert_eq(dcs_vars_set(v, name, json, strlen(json)), 0, "set %s", name);
}

/* Match the expect steps of the generalized case gen, in order, against the
 * messages msgs (NULL-terminated), as the harness would with its default
 * ids and the case's vars. Returns the number of messages that matched
 * before the first that did not (all of them: the count); the captures are
 * left in vars and the first mismatch's reason in why. */
static size_t match_run(const char *gen, const char *const *msgs, dcs_vars *vars, char *why,
                        size_t whylen)
{
    dcs_case *c = NULL;
    dcs_case_error err;
    size_t i, k = 0;
    cr_assert_eq(dcs_case_parse(gen, strlen(gen), NULL, &c, &err), 0, "line %d: %s", err.line,
                 err.reason);
    for (i = 0; i < c->n_vars; i++)
        set_str(vars, c->vars[i].name, c->vars[i].value);
    why[0] = 0;
    for (i = 0; i < c->steps.n; i++) {
        const dcs_step *st = &c->steps.steps[i];
        dcs_match_why w;
        int m;
        if (st->kind != DCS_STEP_EXPECT)
            continue;
        cr_assert_not_null(msgs[k], "more expect steps than messages");
        m = dcs_pattern_match(st->pattern, msgs[k], strlen(msgs[k]), vars, &w);
        cr_assert(m == 0 || m == 1);
        if (!m) {
            snprintf(why, whylen, "%s", w.text);
            break;
        }
        k++;
    }
    if (!why[0])
        cr_assert_null(msgs[k], "fewer expect steps than messages");
    dcs_case_free(c);
    return k;
}

static void expect_var(const dcs_vars *v, const char *name, const char *json)
{
    const dcs_var *var = dcs_vars_get(v, name, strlen(name));
    cr_assert_not_null(var, "$%s was not captured", name);
    cr_expect(var->value_len == strlen(json) && memcmp(var->value, json, var->value_len) == 0,
              "$%s = %.*s, expected %s", name, (int)var->value_len, var->value, json);
}

static void default_ids(dcs_vars *v, int role)
{
    dcs_vars_init(v, NULL);
    set_str(v, "IUT_ID", role == DCS_ROLE_CLIENT ? "\"web-server\"" : "\"external-crawler\"");
    set_str(v, "PEER_ID", role == DCS_ROLE_CLIENT ? "\"external-crawler\"" : "\"web-server\"");
}

/* ------------------------------------------------------------------------ */
/* The exact text                                                            */

Test(generalize, server_recording)
{
    char *g = gen_ok(rec_server, NULL);
    cr_assert_str_eq(g, gen_server);
    free(g);
}

Test(generalize, client_recording_with_handshake)
{
    char *g = gen_ok(rec_client, NULL);
    cr_assert_str_eq(g, gen_client);
    free(g);
}

/* The IUT is a server with a secret: its challenge's nonce is captured, the
 * harness's register answers it with $NONCE and $HMAC. */
Test(generalize, server_handshake)
{
    static const char rec[] =
        "id rec-1\ntitle t\nrole server\nconnect\n"
        "expect {\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":\"ab12\",\"alg\":\"HMAC-SHA256\"},\"timestamp\":1}\n"
        "send {\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":7,\"type\":\"copilot-study\",\"nonce\":\"ab12\",\"hmac\":\"cd34\"},\"timestamp\":2}\n"
        "expect-close\n";
    char *g = gen_ok(rec, "10.3-replay");
    cr_assert_str_eq(
        g,
        "# Generalized by dcs-conform generalize from the recording rec-1:\n"
        "# timestamps, pids, request ids, nonces and the peers' ids are matchers and\n"
        "# variables; heartbeats are left to the harness (ignore heartbeat, keepalive on).\n"
        "# Recorded ids: client \"web-server\", server \"external-crawler\" ($IUT_ID and\n"
        "# $PEER_ID: give --iut-id and --peer-id if they are not the defaults).\n"
        "id 10.3-replay\ntitle generalized from rec-1: t\nrole server\nwindow 5s\nrequires hmac\n\n"
        "connect\n"
        "expect {\"origin\":$IUT_ID,\"destination\":\"*\",\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":$NONCE:*string,\"alg\":\"HMAC-SHA256\"},\"timestamp\":*number}\n"
        "send {\"origin\":$PEER_ID,\"destination\":$IUT_ID,\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":$PEER_ID,\"pid\":7,\"type\":\"copilot-study\",\"nonce\":$NONCE,\"hmac\":$HMAC},\"timestamp\":$NOW}\n"
        "expect-close\n");
    free(g);
}

/* ------------------------------------------------------------------------ */
/* A second run                                                              */

Test(generalize, server_patterns_match_another_run)
{
    static const char *const run2[] = {
        "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"0badcafe12345678-1\"},\"timestamp\":1799999999001}",
        "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_REQUEST\",\"payload\":{\"requestId\":\"0badcafe12345678-2\",\"providerId\":\"gitlab\",\"accountId\":\"t-1\"},\"timestamp\":1799999999002}",
        "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\":{\"taskId\":\"t-1\",\"status\":\"processing\",\"timestamp\":\"2027-01-01T00:00:00.123Z\",\"processedItems\":40,\"totalItems\":100},\"timestamp\":1799999999003.5}",
        "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"c-1\",\"command\":\"START_JOB\",\"success\":true},\"timestamp\":1799999999004}",
        NULL};
    const char *const wrong[] = { /* automatic: run2[i] is no constant expression */
        run2[0], run2[1],
        "{\"origin\":\"external-crawler\",\"destination\":\"web-server\",\"type\":\"message\",\"key\":\"PROGRESS_UPDATE\",\"payload\":{\"taskId\":\"t-1\",\"status\":\"processing\",\"timestamp\":1799999999003,\"processedItems\":40,\"totalItems\":100},\"timestamp\":1799999999003}",
        NULL};
    static const char *const other_origin[] = {
        "{\"origin\":\"crawler-2\",\"destination\":\"web-server\",\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"x\"},\"timestamp\":1}",
        NULL};
    char *g = gen_ok(rec_server, NULL), why[256];
    dcs_vars v;
    default_ids(&v, DCS_ROLE_SERVER);
    cr_assert_eq(match_run(g, run2, &v, why, sizeof why), 4, "%s", why);
    expect_var(&v, "RID1", "\"0badcafe12345678-1\"");
    expect_var(&v, "RID2", "\"0badcafe12345678-2\"");
    dcs_vars_free(&v);

    default_ids(&v, DCS_ROLE_SERVER);
    cr_assert_eq(match_run(g, wrong, &v, why, sizeof why), 2);
    cr_expect_str_eq(why, "payload.timestamp: expected *string, found number 1799999999003");
    dcs_vars_free(&v);

    default_ids(&v, DCS_ROLE_SERVER);
    cr_assert_eq(match_run(g, other_origin, &v, why, sizeof why), 0);
    cr_expect_str_eq(why, "origin: expected $IUT_ID = \"external-crawler\", found \"crawler-2\"");
    dcs_vars_free(&v);
    free(g);
}

Test(generalize, client_patterns_match_another_run)
{
    static const char *const run2[] = {
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":31337,\"type\":\"copilot-study\",\"nonce\":\"e94ecaee2f4e501e3e8666aebe9d937ee717623021e4552c2b215def284f8e5c\",\"hmac\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"},\"timestamp\":1799999999000}",
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[],\"timestamp\":1799999999001,\"requestId\":\"r-17\"}",
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"TOKEN_REFRESH_RESPONSE\",\"payload\":{\"requestId\":\"tr-5\",\"success\":true,\"accessToken\":\"synthetic\",\"providerId\":\"gitlab\"},\"timestamp\":1799999999002}",
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"PAUSE_CRAWLER\",\"payload\":{\"type\":\"PAUSE_CRAWLER\",\"requestId\":\"cmd-0000beef\"},\"timestamp\":1799999999003}",
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"message\",\"key\":\"close\",\"payload\":{\"reason\":\"shutdown\"},\"timestamp\":1799999999004}",
        NULL};
    static const char *const stale_nonce[] = {
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"command\",\"key\":\"register\",\"payload\":{\"id\":\"web-server\",\"pid\":1,\"type\":\"copilot-study\",\"nonce\":\"ffff\",\"hmac\":\"00\"},\"timestamp\":1}",
        NULL};
    const char *const wrong_reply[] = {
        run2[0],
        "{\"origin\":\"web-server\",\"destination\":\"external-crawler\",\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[],\"timestamp\":1799999999001,\"requestId\":\"r-18\"}",
        NULL};
    char *g = gen_ok(rec_client, NULL), why[256];
    dcs_vars v;
    default_ids(&v, DCS_ROLE_CLIENT);
    cr_assert_eq(match_run(g, run2, &v, why, sizeof why), 5, "%s", why);
    expect_var(&v, "RID1", "\"cmd-0000beef\"");
    dcs_vars_free(&v);

    default_ids(&v, DCS_ROLE_CLIENT);
    cr_assert_eq(match_run(g, stale_nonce, &v, why, sizeof why), 0);
    cr_expect(strstr(why, "payload.nonce: expected $NONCE = ") == why, "got %s", why);
    dcs_vars_free(&v);

    default_ids(&v, DCS_ROLE_CLIENT);
    cr_assert_eq(match_run(g, wrong_reply, &v, why, sizeof why), 1);
    cr_expect_str_eq(why, "requestId: expected \"r-17\", found \"r-18\"");
    dcs_vars_free(&v);
    free(g);
}

/* ------------------------------------------------------------------------ */
/* Options and form                                                          */

Test(generalize, ids_and_header)
{
    static const char rec[] = "id my-session\ntitle a b\\\n c\nrole client\nwindow 2s\n"
                              "requires hmac\ncites 8.2\nlevel should\naccept\n";
    char *g = gen_ok(rec, NULL);
    /* The id loses no prefix it does not have; the title's continuation is
     * joined; window is replaced; requires hmac is not repeated. */
    cr_assert_str_eq(g, "# Generalized by dcs-conform generalize from the recording my-session:\n"
                        "# timestamps, pids, request ids, nonces and the peers' ids are matchers and\n"
                        "# variables; heartbeats are left to the harness (ignore heartbeat, keepalive on).\n"
                        "id gen-my-session\ntitle generalized from my-session: a b  c\nrole client\n"
                        "window 5s\n\nrequires hmac\ncites 8.2\nlevel should\naccept\n");
    free(g);
    g = gen_ok(rec, "8.2-from-a-recording");
    cr_assert(strstr(g, "\nid 8.2-from-a-recording\n"));
    free(g);
}

Test(generalize, steps_suffixes_comments_and_whitespace)
{
    static const char rec[] =
        "id rec-x\ntitle t\nrole server\nconnect\n"
        "  send {\"type\":\"message\",\"key\":\"k\", \"payload\" : [ 1 , {\"timestamp\" : 5} ] ,\"timestamp\":9} repeat 2 chunks 1 # a note\n"
        "expect {\"origin\":\"external-crawler\",\"destination\":\"*\",\"type\":\"message\",\"key\":\"k\",\"payload\":{\"a\":{\"timestamp\":\"x\"},\"b\":[{\"timestamp\":1.5}]},\"timestamp\":3} within 1s\n"
        "expect-any {\"type\":\"message\",\"key\":\"#\",\"payload\":\"# not a comment\",\"timestamp\":4}\n"
        "send {\"type\":\"message\",\"key\":\"long\",\\\n \"timestamp\":7}\n"
        "send-raw hex:7b7d\nwait 1s\nignore message/x\nclose\n";
    char *g = gen_ok(rec, NULL);
    const char *body = strstr(g, "\n\nconnect\n");
    cr_assert_not_null(body, "%s", g);
    cr_assert_str_eq(
        body + 2,
        "connect\n"
        "  send {\"type\":\"message\",\"key\":\"k\", \"payload\" : [ 1 , {\"timestamp\" : 5} ] ,\"timestamp\":$NOW} repeat 2 chunks 1 # a note\n"
        "expect {\"origin\":$IUT_ID,\"destination\":\"*\",\"type\":\"message\",\"key\":\"k\",\"payload\":{\"a\":{\"timestamp\":*string},\"b\":[{\"timestamp\":*number}]},\"timestamp\":*number} within 1s\n"
        "expect-any {\"type\":\"message\",\"key\":\"#\",\"payload\":\"# not a comment\",\"timestamp\":*number}\n"
        "send {\"type\":\"message\",\"key\":\"long\",  \"timestamp\":$NOW}\n"
        "send-raw hex:7b7d\nwait 1s\nignore message/x\nclose\n");
    free(g);
}

/* A requestId the harness side sent first is the harness's own: it stays. A
 * short id the IUT invented is a variable only where it is a requestId. */
Test(generalize, request_id_ownership)
{
    static const char rec[] =
        "id rec-x\ntitle t\nrole server\nconnect\n"
        "send {\"type\":\"command\",\"key\":\"PAUSE_CRAWLER\",\"payload\":{\"type\":\"PAUSE_CRAWLER\",\"requestId\":\"h-1\"},\"timestamp\":1}\n"
        "expect {\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"h-1\",\"command\":\"PAUSE_CRAWLER\",\"success\":true}}\n"
        "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"7\",\"note\":\"7\"}}\n"
        "send {\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[\"7\"],\"timestamp\":2,\"requestId\":\"7\"}\n"
        "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":\"7\"}}\n";
    char *g = gen_ok(rec, NULL);
    const char *body = strstr(g, "\n\nconnect\n");
    cr_assert_not_null(body, "%s", g);
    cr_assert_str_eq(
        body + 2,
        "connect\n"
        "send {\"type\":\"command\",\"key\":\"PAUSE_CRAWLER\",\"payload\":{\"type\":\"PAUSE_CRAWLER\",\"requestId\":\"h-1\"},\"timestamp\":$NOW}\n"
        "expect {\"type\":\"message\",\"key\":\"commandResult\",\"payload\":{\"requestId\":\"h-1\",\"command\":\"PAUSE_CRAWLER\",\"success\":true}}\n"
        "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":$RID1:*string,\"note\":\"7\"}}\n"
        "send {\"type\":\"jobResponse\",\"key\":\"jobs_available\",\"payload\":[\"7\"],\"timestamp\":$NOW,\"requestId\":$RID1}\n"
        "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":{\"requestId\":$RID1}}\n");
    free(g);
}

/* No register: the ids come from the first origins of each side. */
Test(generalize, ids_from_origins)
{
    static const char rec[] =
        "id rec-x\ntitle t\nrole client\naccept\n"
        "expect {\"origin\":\"app-7\",\"destination\":\"*\",\"type\":\"message\",\"key\":\"x\",\"timestamp\":1}\n"
        "send {\"origin\":\"crawler-3\",\"destination\":\"app-7\",\"type\":\"message\",\"key\":\"y\",\"timestamp\":2}\n";
    char *g = gen_ok(rec, NULL);
    cr_assert(strstr(g, "# Recorded ids: client \"app-7\", server \"crawler-3\""), "%s", g);
    cr_assert(strstr(g, "\nexpect {\"origin\":$IUT_ID,\"destination\":\"*\","), "%s", g);
    cr_assert(strstr(g, "\nsend {\"origin\":$PEER_ID,\"destination\":$IUT_ID,"), "%s", g);
    free(g);
}

/* Heartbeats go, with the time comment just above them, and so do the
 * recorder's keepalive off and unignore heartbeat; output is appended. */
Test(generalize, heartbeats_dropped_and_output_appended)
{
    static const char rec[] =
        "id rec-x\ntitle t\nrole server\nkeepalive off\nunignore heartbeat\nkeepalive on\nconnect\n"
        "# +1.000s conn 1 s2c offset 0\n"
        "expect {\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"payload\":{\"timestamp\":1},\"timestamp\":1}\n"
        "# a comment of someone\n"
        "send {\"type\":\"heartbeat\",\"key\":\"heartbeat\",\"timestamp\":2}\n"
        "close\n";
    dcs_buf out;
    char why[200];
    const char *body;
    dcs_buf_init(&out, NULL);
    cr_assert_eq(dcs_buf_append(&out, "before\n", 7), 0);
    cr_assert_eq(conf_generalize(rec, strlen(rec), NULL, &out, why, sizeof why), 0, "%s", why);
    cr_assert_eq(dcs_buf_append(&out, "", 1), 0);
    cr_assert(strncmp(out.data, "before\n# Generalized by", 23) == 0, "%s", out.data);
    body = strstr(out.data, "window 5s\n\n");
    cr_assert_not_null(body);
    cr_assert_str_eq(body, "window 5s\n\nkeepalive on\nconnect\n# a comment of someone\nclose\n");
    dcs_buf_free(&out);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

#define H "id rec-x\ntitle t\nrole server\nconnect\n"

Test(generalize, errors)
{
    static const char nul[] = "id rec-x\ntitle t\0\nrole server\n";
    gen_err("hello world\n", NULL,
            "line 1: the recording is not a case: unknown directive or step 'hello'");
    gen_err("id rec-x\ntitle t\nrole server\n\x7f" "ELF\x02\n", NULL,
            "line 4: the recording is not a case: unknown directive or step '\x7f" "ELF\x02'");
    gen_err_n(nul, sizeof nul - 1, NULL, "line 2: the recording is not a case: a NUL byte in the case");
    gen_err("", NULL, "line 1: the recording is not a case: missing id directive");
    gen_err("id x\ntitle t\n", NULL, "line 1: the recording is not a case: missing role directive");
    /* A pattern the reader takes, but no message as recorded. */
    gen_err(H "expect {\"type\":\"a\",\"key\":\"b\",\"timestamp\":*number}\n", NULL,
            "line 5: expect: the message is not exact JSON (unexpected_byte at column 42: a byte "
            "that the JSON grammar does not allow here: found '*')");
    gen_err(H "send {\"type\":\"a\",\"key\":}\n", NULL,
            "line 5: the recording is not a case: bad pattern at column 19: unexpected character '}'");
    gen_err(H "# c\nexpect [1,2]\n", NULL, "line 6: expect: the message is not a JSON object");
    gen_err(H "expect {\"...\":false,\"type\":\"a\"}\n", NULL,
            "line 5: a member named \"...\" cannot be written in a pattern");
    gen_err(H "expect {\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":\"a1\"}}\nclose\nconnect\n"
              "expect {\"type\":\"command\",\"key\":\"challenge\",\"payload\":{\"nonce\":\"b2\"}}\n",
            NULL,
            "line 8: a second challenge with another nonce: a case captures $NONCE once, so cut "
            "the recording before this connection");
    gen_err(H, "two words", "the case's id must be one word of at most 200 bytes without '#' "
                            "or '\\', not \"two words\"");
    gen_err(H, "", "the case's id must be one word of at most 200 bytes without '#' or '\\', "
                   "not \"\"");
}

/* ------------------------------------------------------------------------ */
/* Robustness                                                                */

/* Every prefix of both recordings, placed before an unreadable page, is
 * generalized or refused with a reason; never read past, never half done. */
Test(generalize, truncated_recordings)
{
    const char *const recs[] = {rec_server, rec_client};
    size_t r, n, ok = 0, refused = 0;
    for (r = 0; r < 2; r++) {
        size_t len = strlen(recs[r]);
        for (n = 0; n <= len; n++) {
            guarded gd;
            dcs_buf out;
            char why[300];
            int rc;
            guard_place(&gd, recs[r], n);
            dcs_buf_init(&out, NULL);
            rc = conf_generalize(gd.data, n, NULL, &out, why, sizeof why);
            cr_assert(rc == 0 || (rc == -1 && why[0] && out.len == 0), "prefix %zu: rc %d", n, rc);
            if (rc == 0) {
                dcs_case *c = NULL;
                cr_assert_eq(dcs_case_parse(out.data, out.len, NULL, &c, NULL), 0);
                dcs_case_free(c);
                ok++;
            } else
                refused++;
            dcs_buf_free(&out);
            guard_release(&gd);
        }
    }
    cr_assert_gt(ok, 100);
    cr_assert_gt(refused, 100);
}

Test(generalize, allocation_failure_everywhere)
{
    long i;
    for (i = 1;; i++) {
        test_alloc t;
        dcs_buf out;
        char why[300];
        int rc;
        test_alloc_init(&t, i);
        dcs_buf_init(&out, &t.a);
        rc = conf_generalize(rec_client, sizeof rec_client - 1, NULL, &out, why, sizeof why);
        cr_assert(rc == 0 || (rc == -1 && strcmp(why, "out of memory") == 0), "call %ld: %s", i,
                  why);
        if (rc == 0)
            cr_assert(out.len == sizeof gen_client - 1 && !memcmp(out.data, gen_client, out.len),
                      "call %ld: another result", i);
        else
            cr_assert_eq(out.len, 0);
        dcs_buf_free(&out);
        cr_assert_eq(t.live, 0, "call %ld: %ld blocks leaked", i, t.live);
        if (t.failed == 0) {
            cr_assert_eq(rc, 0);
            break;
        }
    }
    cr_assert_gt(i, 10);
}

Test(generalize, null_why_and_arguments)
{
    dcs_buf out;
    dcs_buf_init(&out, NULL);
    cr_assert_eq(conf_generalize("x", 1, NULL, &out, NULL, 0), -1);
    cr_assert_eq(conf_generalize(NULL, 5, NULL, &out, NULL, 0), -1);
    cr_assert_eq(conf_generalize(rec_server, strlen(rec_server), NULL, NULL, NULL, 0), -1);
    cr_assert_eq(conf_generalize(rec_server, strlen(rec_server), NULL, &out, NULL, 0), 0);
    cr_assert_gt(out.len, 100);
    dcs_buf_free(&out);
}

/* The harness's table holds DCS_VARS_MAX variables: a recording with more
 * request ids than a case can capture must be cut. */
Test(generalize, too_many_request_ids)
{
    dcs_buf rec, out;
    char line[200], why[300];
    unsigned i;
    dcs_buf_init(&rec, NULL);
    dcs_buf_init(&out, NULL);
    cr_assert_eq(dcs_buf_append(&rec, H, strlen(H)), 0);
    for (i = 1; i <= DCS_VARS_MAX; i++) {
        int n = snprintf(line, sizeof line,
                         "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":"
                         "{\"requestId\":\"r-%u\"}}\n", i);
        cr_assert_eq(dcs_buf_append(&rec, line, (size_t)n), 0);
    }
    cr_assert_eq(conf_generalize(rec.data, rec.len, NULL, &out, why, sizeof why), -1);
    snprintf(line, sizeof line,
             "line %u: more than %u request ids: a case captures at most that many, so cut the "
             "recording before this line", 4u + DCS_VARS_MAX - 16u + 1u, DCS_VARS_MAX - 16u);
    cr_assert_str_eq(why, line);
    /* One fewer is fine. */
    rec.len = 0;
    cr_assert_eq(dcs_buf_append(&rec, H, strlen(H)), 0);
    for (i = 1; i <= DCS_VARS_MAX - 16u; i++) {
        int n = snprintf(line, sizeof line,
                         "expect {\"type\":\"jobRequest\",\"key\":\"request_jobs\",\"payload\":"
                         "{\"requestId\":\"r-%u\"}}\n", i);
        cr_assert_eq(dcs_buf_append(&rec, line, (size_t)n), 0);
    }
    cr_assert_eq(conf_generalize(rec.data, rec.len, NULL, &out, why, sizeof why), 0, "%s", why);
    dcs_buf_free(&rec);
    dcs_buf_free(&out);
}
