#!/usr/bin/env python3
"""End-to-end tests of dcs-server, mostly against the real dcs-client.

Usage: server_e2e.py SCENARIO   (DCS_SERVER and DCS_CLIENT name the programs)

Each scenario runs real processes on a Unix socket in a temporary directory,
with DCS_TIME_SCALE so that timers run in fractions of a second, and prints
TAP. The helpers of dcs_e2e.py are reused (Tap, Client, write_file, ...).
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import (Client, LoggedProcess, read_json_lines, run_scenario,  # noqa: E402
                     write_file)

SCALE = "0.05"


def job(i):
    return {"taskId": f"t-{i}", "command": "COMMITS",
            "gitlabApiUrl": "https://gitlab.example.org/api/v4",
            "credentials": {"accessToken": f"SYNTH-ACCESS-{i}", "tokenType": "oauth2"},
            "resourceType": "project", "resourceId": i, "dataTypes": ["commits"],
            "outputConfig": {"storageType": "filesystem", "basePath": f"/data/t-{i}",
                             "format": "json"}}


class Server(LoggedProcess):
    """A dcs-server process with its stderr (the log) in a file."""

    live = []

    def __init__(self, tmp, args, name="server", scale=SCALE):
        e = dict(os.environ)
        e.pop("SOCKET_PATH", None)
        e.pop("LISTEN_FDS", None)
        e.pop("LISTEN_PID", None)
        e["DCS_TIME_SCALE"] = scale
        super().__init__(tmp, [os.path.abspath(os.environ["DCS_SERVER"])] + list(args), name,
                         env=e)


def run_server(args, env=None, timeout=10.0, cwd=None):
    e = dict(os.environ)
    e.pop("SOCKET_PATH", None)
    e["DCS_TIME_SCALE"] = SCALE
    if env:
        e.update(env)
    p = subprocess.run([os.path.abspath(os.environ["DCS_SERVER"])] + list(args), env=e, cwd=cwd,
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sock_path(tmp):
    return os.path.join(tmp, "run", "api.sock")


def server_args(tmp, *more):
    return ["--socket", sock_path(tmp), "--log-format", "json", "--log-level", "debug"] + list(more)


def client_args(tmp, jobs, deliveries, *more):
    return ["--socket", sock_path(tmp), "--jobs", jobs, "--deliveries", deliveries,
            "--log-format", "json", "--log-level", "debug"] + list(more)


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def progress_of(path):
    """(taskId, status) of every PROGRESS_UPDATE in a deliveries file."""
    if not os.path.exists(path):
        return []
    out = []
    for rec in read_json_lines(path):
        m = rec["message"]
        if m.get("type") == "message" and m.get("key") == "PROGRESS_UPDATE":
            out.append((m["payload"]["taskId"], m["payload"]["status"]))
    return out


def count_completed(path):
    done = {}
    for task, status in progress_of(path):
        if status == "completed":
            done[task] = done.get(task, 0) + 1
    return done


def with_servers(fn):
    def run(t, tmp):
        try:
            fn(t, tmp)
        finally:
            Server.kill_all()
    return run


# --------------------------------------------------------------------------


def scenario_cli(t, tmp):
    """--help, --version, one-line refusals with exit status 2."""
    code, out, _ = run_server(["--help"])
    t.eq(code, 0, "--help exits 0")
    t.ok("--socket" in out and "exit status" in out and "3  another server" in out
         and "DCS_T_RECONNECT_BASE" in out, "--help lists options, --set names and exit codes")
    code, out, _ = run_server(["--version"])
    t.eq(code, 0, "--version exits 0")
    t.ok(out.startswith("dcs-server ") and out.count("\n") == 1, "--version prints one line", out)
    secret = write_file(os.path.join(tmp, "secret"), "0123456789abcdef0123\n", 0o600)
    notsock = write_file(os.path.join(tmp, "plain"), "x")
    bad = {
        "unknown option": ["--bogus"],
        "missing value": ["--id"],
        "stray argument": ["extra"],
        "unknown --set name": ["--set", "nosuch=1"],
        "--set breaking 12.3": ["--set", "server_heartbeat=20000"],
        "empty --id": ["--id", ""],
        "--allow-uid bad": ["--allow-uid", "bob"],
        "--rate bad": ["--rate", "fast"],
        "--rate zero": ["--rate", "0"],
        "--lenient with --secret-file": ["--lenient", "--secret-file", secret],
        "secret file mode 0644": ["--secret-file", write_file(os.path.join(tmp, "s1"),
                                                              "0123456789abcdef0123\n", 0o644)],
        "secret file missing": ["--secret-file", os.path.join(tmp, "nope")],
        "scenario not JSON": ["--scenario", write_file(os.path.join(tmp, "sc1"), "{")],
        "scenario unknown member": ["--scenario", write_file(os.path.join(tmp, "sc2"),
                                                             '{"nosuch":1}')],
        "scenario bad steps": ["--scenario", write_file(os.path.join(tmp, "sc3"),
                                                        '{"steps":-1}')],
        "--group unknown": ["--group", "no-such-group-dcs"],
        "--log-format xml": ["--log-format", "xml"],
        "socket path too long": ["--socket", "/tmp/" + "x" * 200],
        "socket path is not a socket": ["--socket", notsock],
    }
    for name, args in bad.items():
        if "--socket" not in args:
            args = ["--socket", os.path.join(tmp, "cli.sock")] + args
        code, _, err = run_server(args)
        lines = err.splitlines()
        t.ok(code == 2 and len(lines) == 1 and lines[0].startswith("dcs-server: "),
             f"{name}: exit 2 with one line", f"status {code}, stderr:\n{err}")
    t.ok(os.path.exists(notsock), "a file that is not a socket is left alone")
    code, _, err = run_server(["--log-format", "xml"], env={"DCS_TIME_SCALE": "abc"})
    t.eq(code, 2, "bad DCS_TIME_SCALE or option: exit 2")


def scenario_pair(t, tmp):
    """The default scenario runs to completion; socket modes; SIGTERM."""
    jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps([job(i) for i in range(1, 6)]))
    dpath = os.path.join(tmp, "deliveries.jsonl")
    stats = os.path.join(tmp, "stats.json")
    s = Server(tmp, server_args(tmp, "--stats", stats))
    t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 5), "the socket appears")
    st_dir = os.stat(os.path.dirname(sock_path(tmp)))
    st_sock = os.lstat(sock_path(tmp))
    t.eq(stat.S_IMODE(st_dir.st_mode), 0o700, "the directory is created with mode 0700")
    t.ok(stat.S_ISSOCK(st_sock.st_mode), "the socket file is a socket")
    t.eq(stat.S_IMODE(st_sock.st_mode), 0o600, "the socket has mode 0600")
    c = Client(tmp, client_args(tmp, jobs, dpath, "--exit-after-jobs"), scale=SCALE, stdin=False)
    t.eq(c.wait(30), 0, "the client exits 0 once every job completed")
    done = count_completed(dpath)
    t.eq(done, {f"t-{i}": 1 for i in range(1, 6)}, "every job completed exactly once")
    seq = [st for task, st in progress_of(dpath) if task == "t-1"]
    t.ok(seq[:1] == ["started"] and seq[-1:] == ["completed"] and "processing" in seq,
         "progress goes started -> processing -> completed", seq)
    procs = []
    for rec in read_json_lines(dpath):
        p = rec["message"].get("payload") or {}
        if p.get("taskId") == "t-1" and p.get("status") == "processing":
            procs.append(p.get("processedItems"))
    t.ok(len(procs) >= 2 and procs == sorted(procs) and procs[0] < procs[-1],
         "processedItems grow", procs)
    s.signal(signal.SIGUSR1)
    t.ok(wait_for(lambda: os.path.exists(stats), 5), "SIGUSR1 writes --stats")
    s.signal(signal.SIGTERM)
    t.eq(s.wait(10), 0, "SIGTERM: exit 0")
    t.ok(not os.path.exists(sock_path(tmp)), "the socket file is removed on exit")
    with open(stats) as f:
        st = json.load(f)
    t.ok(st["crawler"]["jobs_completed"] == 5 and st["counters"]["registered"] >= 1,
         "statistics count the jobs and the registration", st.get("crawler"))


def scenario_restart(t, tmp):
    """SIGKILL and restart the server several times during a run."""
    n_jobs = 8
    jobs = write_file(os.path.join(tmp, "jobs.json"),
                      json.dumps([job(i) for i in range(1, n_jobs + 1)]))
    scen = write_file(os.path.join(tmp, "scenario.json"),
                      json.dumps({"steps": 6, "intervalMs": 1000, "maxJobs": 3}))
    dpath = os.path.join(tmp, "deliveries.jsonl")
    args = server_args(tmp, "--scenario", scen)
    s = Server(tmp, args)
    t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 5), "the socket appears")
    c = Client(tmp, client_args(tmp, jobs, dpath, "--exit-after-jobs"), scale=SCALE, stdin=False)
    kills = 0
    mark = 0
    for _ in range(4):
        # Let the client register on this server and some progress flow, then kill.
        before = len(progress_of(dpath))
        t.ok(wait_for(lambda: any(r.get("reason") == "open" for r in s.records()[mark:]), 10),
             f"server {kills + 1}: the client registers")
        wait_for(lambda: len(progress_of(dpath)) > before + 2, 10)
        s.kill()
        kills += 1
        t.ok(os.path.exists(sock_path(tmp)), f"kill {kills}: the stale socket file is left")
        time.sleep(0.1)
        mark = len(s.records())
        s = Server(tmp, args)  # appends to the same log
        t.ok(wait_for(lambda: s.proc.poll() is None and os.path.exists(sock_path(tmp)), 5),
             f"restart {kills}: the new server replaces the stale socket")
    t.ok(kills >= 3, f"the server was killed {kills} times")
    t.eq(c.wait(60), 0, "the client completes the run")
    done = count_completed(dpath)
    t.eq(done, {f"t-{i}": 1 for i in range(1, n_jobs + 1)},
         "every job completed, none twice")
    recs = s.records()
    opens = [r for r in recs if r.get("reason") == "open"]
    bad = [r for r in recs if r.get("reason") in ("register-expected", "register-timeout",
                                                  "register-invalid")]
    t.ok(len(opens) >= kills + 1, f"the client registered on every server ({len(opens)})")
    t.eq(bad, [], "no connection failed to register first")
    clog = c.log_records()
    t.ok(sum(1 for r in clog if r.get("reason") == "open") >= kills + 1,
         "the client reconnected after every kill")
    s.signal(signal.SIGTERM)
    t.eq(s.wait(10), 0, "the last server exits 0 on SIGTERM")


def scenario_inuse(t, tmp):
    """A second server on the same socket is refused with exit 3."""
    s = Server(tmp, server_args(tmp))
    t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 5), "the first server listens")
    code, _, err = run_server(server_args(tmp))
    lines = err.splitlines()
    t.ok(code == 3 and len(lines) == 1 and "another server" in lines[0],
         "the second server exits 3 with one line", f"status {code}, stderr:\n{err}")
    t.ok(os.path.exists(sock_path(tmp)), "the first server's socket is untouched")
    t.ok(s.proc.poll() is None, "the first server still runs")
    s.signal(signal.SIGINT)
    t.eq(s.wait(10), 0, "SIGINT: exit 0")


def scenario_secret(t, tmp):
    """With --secret-file, a client with the wrong secret gets nothing; the
    right secret works."""
    good = write_file(os.path.join(tmp, "secret"), "0123456789abcdef0123456789abcdef\n", 0o600)
    wrong = write_file(os.path.join(tmp, "wrong"), "fedcba9876543210fedcba9876543210\n", 0o600)
    jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps([job(1), job(2)]))
    s = Server(tmp, server_args(tmp, "--secret-file", good))
    t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 5), "the server listens")
    dbad = os.path.join(tmp, "bad.jsonl")
    c = Client(tmp, client_args(tmp, jobs, dbad, "--secret-file", wrong), scale=SCALE,
               stdin=False, name="wrong")
    refused = wait_for(lambda: any(r.get("reason") == "hmac-invalid" for r in s.records()), 10)
    t.ok(refused, "the wrong MAC is refused (hmac-invalid logged)")
    time.sleep(0.5)
    c.signal(signal.SIGTERM)
    c.wait(10)
    got = [rec["message"] for rec in read_json_lines(dbad)] if os.path.exists(dbad) else []
    t.ok(not any(m.get("key") in ("request_jobs", "PROGRESS_UPDATE") for m in got),
         "nothing from the server was delivered to the refused client", got)
    t.ok(not any(r.get("reason") == "open" for r in s.records()),
         "the refused client never registered")
    dok = os.path.join(tmp, "ok.jsonl")
    c = Client(tmp, client_args(tmp, jobs, dok, "--exit-after-jobs", "--secret-file", good),
               scale=SCALE, stdin=False, name="right")
    t.eq(c.wait(30), 0, "the right secret: the run completes")
    t.eq(count_completed(dok), {"t-1": 1, "t-2": 1}, "both jobs completed once")
    recs = s.records()
    t.ok("0123456789abcdef0123456789abcdef" not in json.dumps(recs), "the secret is not logged")
    s.signal(signal.SIGTERM)
    t.eq(s.wait(10), 0, "SIGTERM: exit 0")


def scenario_commands(t, tmp):
    """PAUSE_CRAWLER stops progress, RESUME_CRAWLER resumes it; START_JOB."""
    jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps([job(1)]))
    dpath = os.path.join(tmp, "deliveries.jsonl")
    s = Server(tmp, server_args(tmp))
    t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 5), "the server listens")
    c = Client(tmp, client_args(tmp, jobs, dpath, "--exit-after-jobs", "--command",
                                "PAUSE_CRAWLER"), scale=SCALE)
    wait_for(lambda: any(r.get("reason") == "paused" for r in s.records()), 5)
    time.sleep(1.0)
    n_paused = len(progress_of(dpath))
    time.sleep(0.5)
    t.eq(len(progress_of(dpath)), n_paused, "no progress while paused")
    t.ok(("t-1", "completed") not in progress_of(dpath), "the job is not completed while paused")
    c.command('START_JOB:{"jobId":"x-1","fullPath":"org/app","command":"COMMITS"}')
    c.command("RESUME_CRAWLER")
    t.eq(c.wait(30), 0, "after RESUME_CRAWLER the run completes")
    prog = progress_of(dpath)
    t.ok(("t-1", "completed") in prog, "the job completed after the resume")
    t.ok(("x-1", "started") in prog, "START_JOB's jobId is crawled", prog)
    s.signal(signal.SIGTERM)
    t.eq(s.wait(10), 0, "SIGTERM: exit 0")


def scenario_activation(t, tmp):
    """Socket activation (LISTEN_FDS): fd 3 is used, the file is left alone;
    --rate N sends load to the client."""
    import socket as so
    path = os.path.join(tmp, "act.sock")
    ls = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    ls.bind(path)
    ls.listen(16)
    fd = ls.fileno()
    e = dict(os.environ)
    e["DCS_TIME_SCALE"] = SCALE
    e["LISTEN_FDS"] = "1"
    stats = os.path.join(tmp, "stats.json")
    log = open(os.path.join(tmp, "act.log"), "wb")
    proc = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', os.path.abspath(os.environ["DCS_SERVER"]),
         "--socket", os.path.join(tmp, "unused.sock"), "--rate", "200", "--stats", stats],
        env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        pass_fds=(3,) if fd == 3 else (), preexec_fn=None if fd == 3 else (lambda: os.dup2(fd, 3)))
    ls.close()
    try:
        jobs = write_file(os.path.join(tmp, "jobs.json"), json.dumps([job(1)]))
        dpath = os.path.join(tmp, "d.jsonl")
        c = Client(tmp, ["--socket", path, "--jobs", jobs, "--deliveries", dpath,
                         "--exit-after-jobs"], scale=SCALE, stdin=False)
        t.eq(c.wait(30), 0, "the client completes its job on the inherited socket")
        t.ok(not os.path.exists(os.path.join(tmp, "unused.sock")), "no socket file is created")
        t.ok(any(task.startswith("load-") for task, _ in progress_of(dpath)),
             "--rate: synthetic progress reaches the client")
        proc.send_signal(signal.SIGTERM)
        t.eq(proc.wait(10), 0, "SIGTERM: exit 0")
        t.ok(os.path.exists(path), "the inherited socket file is not removed")
        with open(stats) as f:
            t.ok(json.load(f)["crawler"]["load_sent"] > 0, "statistics count the load")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


SCENARIOS = {
    "activation": scenario_activation,
    "cli": scenario_cli,
    "pair": scenario_pair,
    "restart": scenario_restart,
    "inuse": scenario_inuse,
    "secret": scenario_secret,
    "commands": scenario_commands,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: server_e2e.py {%s}" % ",".join(SCENARIOS), file=sys.stderr)
        sys.exit(2)
    if "DCS_SERVER" not in os.environ or "DCS_CLIENT" not in os.environ:
        print("1..0 # SKIP DCS_SERVER or DCS_CLIENT is not set")
        sys.exit(0)
    run_scenario(with_servers(SCENARIOS[sys.argv[1]]))
