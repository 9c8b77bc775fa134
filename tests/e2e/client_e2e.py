#!/usr/bin/env python3
"""End-to-end tests of dcs-client against a scripted fake server.

Usage: client_e2e.py SCENARIO   (DCS_CLIENT names the program)

Each scenario starts real dcs-client processes on a Unix socket in a
temporary directory, with DCS_TIME_SCALE so that the protocol's timers run
in fractions of a second, and prints TAP. Timers never fire early, so lower
bounds are checked tightly; upper bounds allow for a loaded machine and
sanitizers.
"""

import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import (Client, FakeServer, envelope, is_key, now_ms,  # noqa: E402
                     read_json_lines, run_client, run_scenario, write_file)

SLACK = 400.0  # ms a loaded machine may add to a timer

JOBS = [
    {"taskId": "t-1", "command": "GROUP_PROJECT_DISCOVERY",
     "gitlabApiUrl": "https://gitlab.example.org/api/v4",
     "credentials": {"accessToken": "SYNTH-ACCESS-1", "refreshToken": "SYNTH-REFRESH-1",
                     "tokenType": "oauth2", "clientId": "app-1", "clientSecret": "SYNTH-CS-1"},
     "resourceType": "group", "resourceId": "42", "dataTypes": ["groups", "projects"],
     "outputConfig": {"storageType": "filesystem", "basePath": "/data/t-1", "format": "json"},
     "lastProcessedId": None, "customParameters": {}},
    {"taskId": "t-2", "command": "COMMITS", "gitlabApiUrl": "https://gitlab.example.org/api/v4",
     "credentials": {"accessToken": "SYNTH-ACCESS-2", "tokenType": "oauth2"},
     "resourceType": "project", "resourceId": 7, "dataTypes": ["commits"],
     "outputConfig": {"storageType": "filesystem", "basePath": "/data/t-2", "format": "json"}},
    {"taskId": "t-3", "command": "ISSUES", "gitlabApiUrl": "https://gitlab.example.org/api/v4",
     "credentials": {"accessToken": "SYNTH-ACCESS-3", "tokenType": "oauth2"},
     "resourceType": "project", "resourceId": 8, "dataTypes": ["issues"],
     "outputConfig": {"storageType": "filesystem", "basePath": "/data/t-3", "format": "json"}},
]


def sock_path(tmp):
    return os.path.join(tmp, "api.sock")


def base_args(tmp, *more):
    return ["--socket", sock_path(tmp), "--log-format", "json", "--log-level", "debug"] + list(more)


def check_register(t, m, client, ident="web-server", what="first message"):
    ok = is_key(m, "command", "register")
    t.ok(ok, f"{what} is register", m)
    if ok:
        p = m.get("payload", {})
        t.ok(p.get("id") == ident and p.get("pid") == client.pid
             and p.get("type") == "copilot-study" and m.get("origin") == ident
             and m.get("destination") == "external-crawler",
             f"{what}: register payload and addressing", m)


def progress(task, status, n, destination="web-server"):
    return envelope("message", "PROGRESS_UPDATE",
                    {"taskId": task, "status": status,
                     "timestamp": f"2025-01-03T19:00:{n:02d}.000Z", "processedItems": n},
                    destination=destination)


# --------------------------------------------------------------------------


def scenario_cli(t, tmp):
    """--help, --version, and one-line refusals with exit status 2."""
    code, out, err = run_client(["--help"])
    t.eq(code, 0, "--help exits 0")
    t.ok("--socket" in out and "exit status" in out and "reconnect_base" in out
         and "DCS_T_RECONNECT_BASE" in out, "--help lists options, --set names and exit codes")
    code, out, err = run_client(["--version"])
    t.eq(code, 0, "--version exits 0")
    t.ok(out.startswith("dcs-client ") and out.count("\n") == 1, "--version prints one line", out)

    good = write_file(os.path.join(tmp, "jobs.json"), json.dumps(JOBS))
    secret_ok = write_file(os.path.join(tmp, "secret"), "0123456789abcdef0123\n", 0o600)
    bad = {
        "unknown option": (["--bogus"], None),
        "missing value": (["--socket"], None),
        "stray argument": (["extra"], None),
        "unknown --set name": (["--set", "nosuch=1"], None),
        "--set without =": (["--set", "reconnect_base"], None),
        "--set bad number": (["--set", "reconnect_base=abc"], None),
        "--set breaking 12.3": (["--set", "client_heartbeat=20000"], None),
        "--set zero count": (["--set", "queue_max_messages=0"], None),
        "DCS_TIME_SCALE=abc": ([], {"DCS_TIME_SCALE": "abc"}),
        "DCS_TIME_SCALE=-1": ([], {"DCS_TIME_SCALE": "-1"}),
        "socket path too long": (["--socket", "/tmp/" + "x" * 200], None),
        "SOCKET_PATH too long": ([], {"SOCKET_PATH": "/tmp/" + "y" * 200}),
        "empty --id": (["--id", ""], None),
        "missing jobs file": (["--jobs", os.path.join(tmp, "nope.json")], None),
        "jobs not JSON": (["--jobs", write_file(os.path.join(tmp, "j1"), "[{")], None),
        "jobs not an array": (["--jobs", write_file(os.path.join(tmp, "j2"), '{"a":1}')], None),
        "job without taskId": (["--jobs", write_file(os.path.join(tmp, "j3"), '[{"taskId":1}]')],
                               None),
        "duplicate taskId": (["--jobs", write_file(os.path.join(tmp, "j4"),
                                                   '[{"taskId":"a"},{"taskId":"a"}]')], None),
        "tokens not an object": (["--tokens", write_file(os.path.join(tmp, "k1"), "[]")], None),
        "token without accessToken": (["--tokens", write_file(os.path.join(tmp, "k2"),
                                                              '{"gitlab":{"x":1}}')], None),
        "secret file mode 0644": (["--secret-file", write_file(os.path.join(tmp, "s1"),
                                                               "0123456789abcdef0123\n", 0o644)],
                                  None),
        "secret too short": (["--secret-file", write_file(os.path.join(tmp, "s2"), "short\n")],
                             None),
        "secret file missing": (["--secret-file", os.path.join(tmp, "nope")], None),
        "--require-handshake alone": (["--require-handshake"], None),
        "--server-uid bad": (["--server-uid", "bob"], None),
        "--command bad JSON": (["--command", "START_JOB:{bad"], None),
        "--command payload not an object": (["--command", "START_JOB:[1]"], None),
        "--command register": (["--command", "register"], None),
        "--command type mismatch": (["--command", 'PAUSE_CRAWLER:{"type":"X"}'], None),
        "--log-format xml": (["--log-format", "xml"], None),
        "--log-level loud": (["--log-level", "loud"], None),
        "--exit-after-jobs alone": (["--exit-after-jobs"], None),
    }
    for name, (args, env) in bad.items():
        code, out, err = run_client(["--socket", sock_path(tmp)] + args
                                    if "--socket" not in args and "SOCKET_PATH" not in (env or {})
                                    else args, env=env)
        lines = err.splitlines()
        t.ok(code == 2 and len(lines) == 1 and lines[0].startswith("dcs-client: "),
             f"{name}: exit 2 with one line", f"status {code}, stderr:\n{err}")
    # A good configuration is accepted (the client then runs; SIGTERM ends it).
    c = Client(tmp, base_args(tmp, "--jobs", good, "--secret-file", secret_ok,
                              "--command",
                              'START_JOB:{"jobId":"x","fullPath":"a/b","command":"C"}'),
               stdin=False)
    time.sleep(0.3)
    c.signal(signal.SIGTERM)
    t.eq(c.wait(10), 0, "a good configuration runs, and SIGTERM without a server exits 0")


def scenario_jobs(t, tmp):
    """register first; request_jobs answered with each job once and the
    requestId; progress ends the jobs; deliveries, statistics, no secrets in
    the log; --exit-after-jobs exits 0 (1 when a job failed)."""
    srv = FakeServer(sock_path(tmp))
    jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps(JOBS, indent=2))
    deliveries = os.path.join(tmp, "deliveries.jsonl")
    stats = os.path.join(tmp, "stats.json")
    c = Client(tmp, base_args(tmp, "--jobs", jobs, "--deliveries", deliveries, "--stats", stats,
                              "--exit-after-jobs", "--id", "e2e-app",
                              "--set", "heartbeat_timeout=120000"), stdin=False)
    conn = srv.accept()
    check_register(t, conn.recv(), c, "e2e-app")

    def request(rid):
        p = {} if rid is None else {"requestId": rid}
        conn.send(envelope("jobRequest", "request_jobs", p, destination="e2e-app"))
        m, skipped = conn.recv_until(lambda m: is_key(m, "jobResponse", "jobs_available"))
        t.eq(skipped, [], "nothing but heartbeats before the reply")
        return m

    m = request("r-1")
    t.eq(m.get("requestId"), "r-1", "jobs_available echoes requestId in the envelope (7.20)")
    t.eq(m.get("payload"), JOBS, "every job handed out, unchanged, in file order")
    t.eq(list(m.keys())[:6], ["origin", "destination", "type", "key", "payload", "timestamp"],
         "envelope members in wire order")
    m = request("r-2")
    t.eq((m.get("payload"), m.get("requestId")), ([], "r-2"), "no job is handed out twice")
    m = request(None)
    t.ok(m.get("payload") == [] and "requestId" not in m,
         "a request without requestId: none echoed", m)

    n = 0
    for task in ("t-1", "t-2", "t-3"):
        for status in ("started", "processing", "completed"):
            n += 1
            conn.send(progress(task, status, n, "e2e-app"))
    rest = conn.wait_closed(10)
    closes = [m for m in rest if is_key(m, "message", "close")]
    t.ok(closes and closes[-1]["payload"].get("reason") == "shutdown",
         "after the last job the client writes a close notice (shutdown) and closes", rest)
    t.eq(c.wait(10), 0, "--exit-after-jobs exits 0 once every job completed")

    lines = read_json_lines(deliveries)
    kinds = [(d["message"]["type"], d["message"]["key"]) for d in lines]
    t.eq(kinds.count(("jobRequest", "request_jobs")), 3, "deliveries: three request_jobs")
    t.eq(kinds.count(("message", "PROGRESS_UPDATE")), 9, "deliveries: nine progress updates")
    t.ok(all(d["conn"] == 1 for d in lines), "deliveries: all on connection 1")
    t.ok(all(isinstance(d["received"], int) for d in lines) and
         [d["received"] for d in lines] == sorted(d["received"] for d in lines),
         "deliveries: receive times in order")
    t.eq(oct(os.stat(deliveries).st_mode & 0o777), oct(0o600), "deliveries file has mode 0600")

    st = json.load(open(stats))
    t.eq((st["jobs"]["completed"], st["jobs"]["handed_out"], st["client"]["connections"]),
         (3, 3, 1), "statistics: jobs completed, handed out, connections")
    t.eq(st["written_by_kind"].get("command/register"), 1, "statistics: one register written")
    t.eq(st["written_by_kind"].get("jobResponse/jobs_available"), 3,
         "statistics: three jobs_available written")
    log = c.log_text()
    t.ok(not any(s in log for s in ("SYNTH-ACCESS", "SYNTH-REFRESH", "SYNTH-CS")),
         "no credential of a job appears in the log")
    recs = c.log_records()
    t.ok(recs and all({"ts", "level", "category", "reason", "msg"} <= set(r) for r in recs),
         "every log line is a JSON record with ts, level, category, reason, msg")
    cats = {r["category"] for r in recs}
    t.ok({"messaging.direct-client", "auth.direct-socket",
          "backend.direct-communication-manager"} <= cats, "the seed's three log categories", cats)

    # A failed job ends the run with status 1. This client takes its socket
    # from SOCKET_PATH and its id from COPILOT_PROCESS_ID.
    jobs2 = write_file(os.path.join(tmp, "jobs2.json"), json.dumps([{"taskId": "t-9"}]))
    c2 = Client(tmp, ["--jobs", jobs2, "--exit-after-jobs", "--log-format", "json",
                      "--set", "heartbeat_timeout=120000"], stdin=False, name="c2",
                env={"SOCKET_PATH": sock_path(tmp), "COPILOT_PROCESS_ID": "copilot-env"})
    conn2 = srv.accept()
    check_register(t, conn2.recv(), c2, "copilot-env",
                   what="with SOCKET_PATH and COPILOT_PROCESS_ID: first message")
    conn2.send(envelope("jobRequest", "request_jobs", {"requestId": "r-9"}, "copilot-env"))
    conn2.recv_until(lambda m: is_key(m, "jobResponse", "jobs_available"))
    conn2.send(progress("t-9", "failed", 1, "*"))
    conn2.wait_closed(10)
    t.eq(c2.wait(10), 1, "--exit-after-jobs exits 1 when a job failed")
    srv.stop()


def scenario_reconnect(t, tmp):
    """Reconnect after each loss within delay(0) bounds, register first each
    time; commands handed over while the socket is gone arrive once, in
    order, after register; jobs of a lost connection are handed out again."""
    srv = FakeServer(sock_path(tmp))
    jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps(JOBS[:2]))
    c = Client(tmp, base_args(tmp, "--jobs", jobs, "--set", "heartbeat_timeout=120000"))
    conn = srv.accept()
    check_register(t, conn.recv(), c)
    conn.send(envelope("jobRequest", "request_jobs", {"requestId": "r-1"}))
    m, _ = conn.recv_until(lambda m: is_key(m, "jobResponse", "jobs_available"))
    t.eq(len(m["payload"]), 2, "two jobs handed out (running)")

    base = 5000 * 0.1  # DCS_T_RECONNECT_BASE scaled
    for i in range(5):
        conn.close()
        t0 = now_ms()
        conn = srv.accept(timeout=5)
        dt = now_ms() - t0
        t.within(dt, 0.8 * base - 2, 1.2 * base + SLACK, f"reconnect {i + 1} after delay(0)")
        check_register(t, conn.recv(), c, what=f"reconnect {i + 1}: first message")
        if i == 0:
            conn.send(envelope("jobRequest", "request_jobs", {"requestId": "r-2"}))
            m, _ = conn.recv_until(lambda m: is_key(m, "jobResponse", "jobs_available"))
            t.eq([j["taskId"] for j in m["payload"]], ["t-1", "t-2"],
                 "running jobs returned to queued when the connection was lost (8.10)")

    # The server goes away (socket file removed); commands queue meanwhile.
    conn.close()
    srv.stop(unlink=True)
    want = []
    for i in range(10):
        line = 'START_JOB:{"jobId":"q-%d","fullPath":"org/app","command":"COMMITS"}' % i
        c.command(line)
        want.append(("START_JOB", "q-%d" % i))
        if i == 4:
            c.command("PAUSE_CRAWLER")
            want.append(("PAUSE_CRAWLER", None))
    time.sleep(1.5)  # several attempts find no socket file
    srv.listen()
    conn = srv.accept(timeout=5)
    check_register(t, conn.recv(), c, what="after the server came back: first message")
    got = []
    end = time.monotonic() + 1.5  # long enough to see a duplicate, had there been one
    while time.monotonic() < end:
        try:
            m = conn.recv(max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        if m.get("type") == "command":
            got.append((m["key"], m["payload"].get("jobId")))
            t.ok(m["payload"].get("type") == m["key"], f"command {m['key']} payload type")
    t.eq(got, want, "queued commands arrive once each, in order, right after register")
    c.command('START_JOB:{"jobId":"late","fullPath":"org/app","command":"COMMITS"}')
    m, _ = conn.recv_until(lambda m: m.get("type") == "command", timeout=3)
    t.eq(m["payload"].get("jobId"), "late", "a command handed over while open is written at once")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    srv.stop()


def scenario_breaker(t, tmp):
    """Alone, against a socket file that refuses connections: failures back
    off with jitter, the breaker opens after five and probes every
    DCS_T_BREAKER_OPEN; the queue stays within its bounds while it overflows."""
    path = sock_path(tmp)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # a stale socket file: connect() is refused
    stats = os.path.join(tmp, "stats.json")
    scale = 0.02
    c = Client(tmp, base_args(tmp, "--stats", stats), scale=str(scale))
    n_cmds = 1500
    c.command("\n".join("CMD_%d" % i for i in range(n_cmds)))
    time.sleep(4.0)
    c.signal(signal.SIGUSR1)
    time.sleep(0.3)
    st_open = json.load(open(stats))
    c.signal(signal.SIGTERM)
    t.eq(c.wait(10), 0, "SIGTERM with no server exits 0")
    recs = [r for r in c.log_records() if r.get("reason") == "connect-failed"]
    ts = []
    for r in recs:
        tm = time.strptime(r["ts"][:19], "%Y-%m-%dT%H:%M:%S")
        ts.append((time.mktime(tm) + int(r["ts"][20:23]) / 1000.0) * 1000.0)
    t.ok(len(recs) >= 7, f"connect failures are logged ({len(recs)})")
    base, cap, brk = 5000 * scale, 30000 * scale, 30000 * scale
    for i in range(1, min(len(ts), 8)):
        gap = ts[i] - ts[i - 1]
        if i < 5:
            want = min(cap, base * 1.5 ** i)
            t.within(gap, 0.8 * want - 3, 1.2 * want + SLACK, f"failure {i + 1} after delay({i})")
        else:
            t.within(gap, brk - 3, brk + SLACK, f"probe {i - 4} after DCS_T_BREAKER_OPEN")
    t.ok(all("circuit breaker open" in r["msg"] for r in recs[4:]),
         "the fifth failure and every failed probe (re)open the breaker")
    t.ok(st_open["breaker"] in ("open", "half-open") and st_open["client"]["breaker_opens"] >= 2,
         "statistics show the breaker", st_open["breaker"])
    # 1500 commands through a queue of 1000 that keeps 800 on overflow.
    depth, dropped = 0, 0
    for _ in range(n_cmds):
        depth += 1
        if depth > 1000:
            dropped += depth - 800
            depth = 800
    t.eq((st_open["client"]["queue_depth"], st_open["drops"]["queue-count"]), (depth, dropped),
         "queue bounded: oldest dropped with queue-count, newest kept")
    st = json.load(open(stats))
    t.eq(st["drops"]["shutdown"], depth, "messages still queued at stop are dropped (shutdown)")
    t.eq(st["client"]["connections"], 0, "never connected")


def scenario_heartbeat(t, tmp):
    """Heartbeats at DCS_T_CLIENT_HEARTBEAT whatever else happens; a silent
    server is closed at DCS_T_HEARTBEAT_TIMEOUT and the client reconnects."""
    scale = 0.05
    interval, timeout = 10000 * scale, 30000 * scale
    srv = FakeServer(sock_path(tmp))
    c = Client(tmp, base_args(tmp), scale=str(scale), stdin=False)
    conn = srv.accept()
    check_register(t, conn.recv(), c)
    t_open = now_ms()
    beats = []
    next_send = last_sent = now_ms()
    end = now_ms() + 3.3 * interval * 2
    while now_ms() < end:
        if now_ms() >= next_send:
            conn.send(envelope("heartbeat", "heartbeat", {"timestamp": int(time.time() * 1000)},
                               destination="*"))
            last_sent = now_ms()
            next_send += 0.2 * interval
        try:
            m = conn.recv(max(0.001, min(next_send, end) - now_ms()) / 1000.0)
        except TimeoutError:
            continue
        if is_key(m, "heartbeat", "heartbeat"):
            beats.append((now_ms(), m))
    t.ok(len(beats) >= 5, f"client heartbeats arrive ({len(beats)})")
    if beats:
        t.within(beats[0][0] - t_open, interval - 15, interval + SLACK, "first heartbeat")
        ts = beats[0][1].get("payload", {}).get("timestamp", 0)
        t.ok(abs(ts - time.time() * 1000) < 60000, "heartbeat payload carries the wall clock")
    for i in range(1, len(beats)):
        t.within(beats[i][0] - beats[i - 1][0], interval - 15, interval + SLACK,
                 f"heartbeat interval {i}")
    # Silence: the client closes at the liveness deadline, counted from the
    # last message it received.
    rest = conn.wait_closed(timeout / 1000.0 + 5)
    dt = now_ms() - last_sent
    t.within(dt, timeout - 15, timeout + SLACK, "a silent server is closed at the timeout")
    t.ok(all(is_key(m, "heartbeat", "heartbeat") for m in rest),
         "no close notice before a heartbeat-timeout close (7.15)")
    conn = srv.accept(timeout=5)
    check_register(t, conn.recv(), c, what="after the timeout: first message")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    srv.stop()


def scenario_tokens(t, tmp):
    """TOKEN_REFRESH_REQUEST answered from --tokens (success true with the
    record, or success false), duplicates within the window get no reply,
    and no token reaches the log."""
    tokens = write_file(os.path.join(tmp, "tokens.json"), json.dumps({
        "gitlab": {"accessToken": "SYNTH-TOKEN-AT", "refreshToken": "SYNTH-TOKEN-RT",
                   "expiresAt": "2030-01-01T00:00:00.000Z"}}))
    srv = FakeServer(sock_path(tmp))
    c = Client(tmp, base_args(tmp, "--tokens", tokens, "--set", "heartbeat_timeout=120000"),
               stdin=False)
    conn = srv.accept()
    check_register(t, conn.recv(), c)

    def ask(rid, provider):
        conn.send(envelope("message", "TOKEN_REFRESH_REQUEST",
                           {"requestId": rid, "providerId": provider, "accountId": "acc-1"}))

    def answer():
        m, _ = conn.recv_until(lambda m: is_key(m, "message", "TOKEN_REFRESH_RESPONSE"))
        return m

    ask("tr-1", "gitlab")
    m = answer()
    t.eq(m["payload"], {"requestId": "tr-1", "success": True, "accessToken": "SYNTH-TOKEN-AT",
                        "refreshToken": "SYNTH-TOKEN-RT", "expiresAt": "2030-01-01T00:00:00.000Z",
                        "providerId": "gitlab"}, "known provider: success with the record")
    t.eq(m["destination"], "external-crawler", "the reply is addressed to the server")
    ask("tr-2", "github")
    m = answer()
    p = m["payload"]
    t.ok(p.get("requestId") == "tr-2" and p.get("success") is False
         and "github" in p.get("error", ""), "unknown provider: success false with an error", p)
    ask("tr-1", "gitlab")  # a duplicate within DCS_T_DEDUP_TOKEN (500 ms here)
    ask("tr-3", "gitlab")
    m = answer()
    t.eq(m["payload"]["requestId"], "tr-3", "a duplicate request gets no reply (8.7)")
    time.sleep(0.7)
    ask("tr-1", "gitlab")
    m = answer()
    t.eq(m["payload"]["requestId"], "tr-1", "the same requestId after the window is answered again")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    log = c.log_text()
    t.ok("SYNTH-TOKEN" not in log, "no token appears in the log")
    srv.stop()


def scenario_signals(t, tmp):
    """SIGUSR1 writes statistics; SIGTERM flushes, writes a close notice,
    closes and exits 0; SIGINT without a server exits 0."""
    srv = FakeServer(sock_path(tmp))
    stats = os.path.join(tmp, "stats.json")
    c = Client(tmp, base_args(tmp, "--stats", stats, "--set", "heartbeat_timeout=120000"))
    conn = srv.accept()
    check_register(t, conn.recv(), c)
    c.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not os.path.exists(stats) and time.monotonic() < deadline:
        time.sleep(0.05)
    st = json.load(open(stats))
    t.ok(st["state"] == "OPEN" and st["registry"]["present"] and st["registry"]["id"] ==
         "external-crawler", "SIGUSR1: statistics with state OPEN and the registry entry", st)
    t.eq(st["registry"]["uid"], os.geteuid(), "registry keeps the server's uid (SO_PEERCRED)")
    t.eq(oct(os.stat(stats).st_mode & 0o777), oct(0o600), "statistics file has mode 0600")
    c.command("PAUSE_CRAWLER")
    m, _ = conn.recv_until(lambda m: m.get("type") == "command")
    t.eq(m["key"], "PAUSE_CRAWLER", "a command from standard input is sent")
    c.signal(signal.SIGTERM)
    rest = conn.wait_closed(5)
    t.ok(rest and is_key(rest[-1], "message", "close")
         and rest[-1]["payload"]["reason"] == "shutdown",
         "SIGTERM: a close notice with reason shutdown, then the close", rest)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    st = json.load(open(stats))
    t.eq(st["state"], "CLOSED", "statistics are written again on exit")
    srv.stop()

    # Without --socket and SOCKET_PATH: <cwd>/data.private/config/api.sock.
    os.makedirs(os.path.join(tmp, "data.private", "config"))
    srv = FakeServer(os.path.join(tmp, "data.private", "config", "api.sock"))
    c = Client(tmp, ["--log-format", "json"], stdin=False, name="default-path")
    conn = srv.accept()
    check_register(t, conn.recv(), c, what="default socket path: first message")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    srv.stop()

    c = Client(tmp, base_args(tmp), stdin=False, name="alone")
    time.sleep(0.3)
    c.signal(signal.SIGUSR1)
    time.sleep(0.3)
    c.signal(signal.SIGINT)
    t.eq(c.wait(10), 0, "SIGINT without a server exits 0")
    text = c.log_text()
    dump = [line for line in text.splitlines() if line.startswith('{"program"')]
    t.ok(len(dump) == 1 and json.loads(dump[0])["client"]["connect_skipped"] >= 1,
         "SIGUSR1 without --stats writes statistics to stderr; a missing socket is skipped", text)


def scenario_robust(t, tmp):
    """Garbage, bad JSON, wrong destination, wrong direction, an unexpected
    challenge, one-byte writes: the client survives, delivers what it should
    and goes on answering."""
    srv = FakeServer(sock_path(tmp))
    deliveries = os.path.join(tmp, "deliveries.jsonl")
    stats = os.path.join(tmp, "stats.json")
    c = Client(tmp, base_args(tmp, "--deliveries", deliveries, "--stats", stats,
                              "--set", "heartbeat_timeout=120000"), stdin=False)
    conn = srv.accept()
    check_register(t, conn.recv(), c)
    conn.send_raw(b"garbage \xff\xfe {\"origin\":1}")
    conn.send(envelope("message", "hello", {"n": 1}, destination="someone-else"))
    conn.send_raw(b'{"origin":"external-crawler","destination":"*","type":"message","key":"x",'
                  b'"payload":{"s":"\xc3\x28"}}')
    conn.send(envelope("jobResponse", "jobs_available", []))
    conn.send(envelope("command", "challenge", {"nonce": "00" * 32, "alg": "HMAC-SHA256"},
                       destination="*"))
    conn.send(envelope("progressUpdate", "x", {}))
    conn.send_raw(b"[" * 100 + b"]" * 100)
    conn.send(envelope("message", "PROGRESS_UPDATE", {"taskId": 5}))  # does not fit
    for b in json.dumps(envelope("message", "hello", {"n": 2, "text": "caf\u00e9 \u2603"}),
                        ensure_ascii=False).encode("utf-8"):
        conn.send_raw(bytes([b]))
    conn.send_raw(b'\n  {"origin":"external-crawler","destination":"web-server","type":"message",'
                  b'\n "key":"hello","payload":{"n":3}}\n')
    conn.send(envelope("jobRequest", "request_jobs", {"requestId": "r-1"}))
    m, _ = conn.recv_until(lambda m: is_key(m, "jobResponse", "jobs_available"))
    t.eq((m["payload"], m.get("requestId")), ([], "r-1"),
         "after bad input the client still answers (no jobs file: an empty array)")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    lines = read_json_lines(deliveries)
    hello = [d["message"]["payload"]["n"] for d in lines if d["message"]["key"] == "hello"]
    t.eq(hello, [2, 3], "only the well-formed hellos for this client are delivered")
    t.ok(any(d["message"]["type"] == "progressUpdate" for d in lines),
         "an unknown type is delivered as a generic message")
    t.ok(any("\n" not in json.dumps(d) for d in lines), "each delivery is one line")
    st = json.load(open(stats))["client"]
    t.ok(st["decode_errors"] >= 2 and st["wrong_destination"] == 1 and st["wrong_direction"] == 1
         and st["unexpected_challenge"] == 1 and st["payload_mismatch"] == 1,
         "the bad inputs are counted by reason", st)
    srv.stop()


def scenario_auth(t, tmp):
    """The HMAC handshake (10.3) with a secret file; --require-handshake
    against a server that sends no challenge; --server-uid refusing the
    server before writing anything."""
    secret = "0123456789abcdef0123456789abcdef"
    spath = write_file(os.path.join(tmp, "secret"), secret + "\r\n", 0o600)
    srv = FakeServer(sock_path(tmp))
    c = Client(tmp, base_args(tmp, "--secret-file", spath, "--set", "heartbeat_timeout=120000"),
               stdin=False)
    conn = srv.accept()
    nonce = os.urandom(32).hex()
    conn.send(envelope("command", "challenge", {"nonce": nonce, "alg": "HMAC-SHA256"},
                       destination="*"))
    m = conn.recv()
    check_register(t, m, c, what="with a secret: first message")
    want = hmac.new(secret.encode(), (nonce + "web-server").encode(), hashlib.sha256).hexdigest()
    p = m.get("payload", {})
    t.ok(p.get("nonce") == nonce and p.get("hmac") == want,
         "register carries the nonce and HMAC-SHA256(secret, nonce || id)", p)
    t.ok(secret not in c.log_text() and want not in c.log_text(),
         "neither the secret nor the MAC is logged")
    c.signal(signal.SIGTERM)
    conn.wait_closed(5)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")

    c = Client(tmp, base_args(tmp, "--secret-file", spath, "--require-handshake"), stdin=False,
               name="require")
    conn = srv.accept()
    t0 = now_ms()
    got = conn.wait_closed(5)
    t.ok(len(got) == 1 and is_key(got[0], "message", "close")
         and got[0]["payload"]["reason"] == "challenge-missing",
         "--require-handshake: no register, a close notice challenge-missing", got)
    t.within(now_ms() - t0, 2000 * 0.1 - 5, 2000 * 0.1 + SLACK, "after DCS_T_CHALLENGE_WAIT")
    c.signal(signal.SIGTERM)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")

    c = Client(tmp, base_args(tmp, "--server-uid", str(os.geteuid() + 1)), stdin=False, name="uid")
    conn = srv.accept()
    try:
        got = conn.wait_closed(5)
    except TimeoutError:
        got = ["<still open>"]
    t.eq(got, [], "a server with another uid is closed before anything is written")
    recs = [r for r in c.log_records() if r.get("reason") == "peer-uid-refused"]
    t.ok(recs and recs[0]["category"] == "auth.direct-socket", "the refusal is logged under auth")
    c.signal(signal.SIGTERM)
    t.eq(c.wait(10), 0, "SIGTERM exits 0")
    srv.stop()


SCENARIOS = {
    "cli": scenario_cli,
    "jobs": scenario_jobs,
    "reconnect": scenario_reconnect,
    "breaker": scenario_breaker,
    "heartbeat": scenario_heartbeat,
    "tokens": scenario_tokens,
    "signals": scenario_signals,
    "robust": scenario_robust,
    "auth": scenario_auth,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: client_e2e.py {%s}" % ",".join(SCENARIOS), file=sys.stderr)
        sys.exit(2)
    if "DCS_CLIENT" not in os.environ:
        print("1..0 # SKIP DCS_CLIENT is not set")
        sys.exit(0)
    run_scenario(SCENARIOS[sys.argv[1]])
