#!/usr/bin/env python3
"""End-to-end tests of dcs-tap, the recording and fault-injecting proxy.

Usage: tap_e2e.py SCENARIO
  (DCS_TAP, DCS_TAP_CASE_CHECK, DCS_SERVER and DCS_CLIENT name the programs)

The tap runs between the reference peers (dcs-client -> tap -> dcs-server,
timers scaled with DCS_TIME_SCALE=0.01) and between small Python peers on
Unix sockets that see the exact bytes, in a temporary directory. Each
scenario prints TAP. Lower bounds on time are only checked where the tap
guarantees them (delay, stall); upper bounds are generous.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import Client, LoggedProcess, run_scenario, write_file  # noqa: E402
from server_e2e import Server, count_completed, job, progress_of, wait_for  # noqa: E402

SCALE = "0.01"


def env_path(name):
    return os.path.abspath(os.environ[name])


# --------------------------------------------------------------------------
# The tap process


class TapProc(LoggedProcess):
    """A dcs-tap process with its stderr (the log, JSON) in a file."""

    live = []

    def __init__(self, tmp, listen, upstream, *more, name="tap", wait=True):
        self.listen = listen
        self.stats_path = os.path.join(tmp, name + ".stats.json")
        args = [env_path("DCS_TAP"), "--listen", listen, "--upstream", upstream,
                "--log-format", "json", "--log-level", "debug",
                "--stats", self.stats_path] + list(more)
        super().__init__(tmp, args, name)
        # The "start" record follows listen(): a stale socket file may be
        # there before the tap replaced it.
        if wait and not wait_for(lambda: "start" in self.reasons() or
                                 self.proc.poll() is not None, 10):
            raise RuntimeError("the tap did not start listening")

    def listening(self):
        try:
            return stat.S_ISSOCK(os.lstat(self.listen).st_mode)
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop with sig; the exit status (None if it did not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def reasons(self):
        return [r.get("reason") for r in self.records()]

    def stats(self):
        with open(self.stats_path) as f:
            return json.load(f)


def run_tap(args, timeout=10.0, cwd=None):
    p = subprocess.run([env_path("DCS_TAP")] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def with_cleanup(fn):
    def run(t, tmp):
        try:
            fn(t, tmp)
        finally:
            TapProc.kill_all()
            Server.kill_all()
            Peers.close_all()
    return run


# --------------------------------------------------------------------------
# Python peers around the tap


class Peers:
    """An upstream listener (the fake server) and the tap in front of it;
    pair() connects a fake client through the tap and returns both ends."""

    live = []

    def __init__(self, tmp, *faults, name="tap", record=None, role=None):
        self.up_path = os.path.join(tmp, name + "-up.sock")
        self.path = os.path.join(tmp, name + ".sock")
        self.up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.up.bind(self.up_path)
        self.up.listen(64)
        self.socks = [self.up]
        Peers.live.append(self)
        more = []
        for f in faults:
            more += ["--fault", f]
        if record:
            more += ["--record", record]
        if role:
            more += ["--role", role]
        self.tap = TapProc(tmp, self.path, self.up_path, *more, name=name)

    def pair(self, timeout=5.0):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(timeout)
        c.connect(self.path)
        self.up.settimeout(timeout)
        s, _ = self.up.accept()
        s.settimeout(timeout)
        self.socks += [c, s]
        return c, s

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []

    @classmethod
    def close_all(cls):
        for p in cls.live:
            p.close()
        cls.live = []


def recv_exact(sock, n, timeout=5.0):
    """Exactly n bytes (fewer if the stream ends first)."""
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = sock.recv(n - len(out))
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def recv_to_end(sock, timeout=5.0):
    """(bytes, how) until the end of the stream: how is 'eof', 'reset' or
    'timeout'."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, "timeout"
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return out, "timeout"
        except ConnectionResetError:
            return out, "reset"
        if not d:
            return out, "eof"
        out += d


def env_msg(type_, key, payload=None, origin="web-server", destination="external-crawler",
            ts=True):
    m = {"origin": origin, "destination": destination, "type": type_, "key": key}
    if payload is not None:
        m["payload"] = payload
    if ts:
        m["timestamp"] = 1700000000000
    return json.dumps(m, separators=(",", ":")).encode()


REGISTER = env_msg("command", "register", {"id": "web-server", "pid": 1, "type": "copilot-study"})
HEARTBEAT_C = env_msg("heartbeat", "heartbeat", {"status": "ok"})
HEARTBEAT_S = env_msg("heartbeat", "heartbeat", {"status": "ok"}, origin="external-crawler",
                      destination="web-server")
REQUEST = env_msg("jobRequest", "request_jobs", {"requestId": "r-1"}, origin="external-crawler",
                  destination="web-server")


def applied(tap, spec):
    for f in tap.stats()["faults"]:
        if f["spec"] == spec:
            return f["applied"]
    return None


# --------------------------------------------------------------------------
# Scenarios


def scenario_cli(t, tmp):
    """--help, --version, refusals with exit 2, a busy socket (exit 3), a
    stale socket, no upstream, SIGTERM."""
    code, out, _ = run_tap(["--help"])
    t.eq(code, 0, "--help exits 0")
    t.ok(all(w in out for w in ["--listen", "--upstream", "--record", "--role", "--fault",
                                "slice=N", "delay=MS", "stall=MS@BYTES", "drop=TYPE",
                                "dup=TYPE", "corrupt=OFFSET", "reset=BYTES", "exit status",
                                "3  something is listening"]),
         "--help lists the options, the faults and the exit codes", out)
    code, out, _ = run_tap(["--version"])
    t.eq(code, 0, "--version exits 0")
    t.ok(out.startswith("dcs-tap ") and out.count("\n") == 1, "--version prints one line", out)

    lp, up = os.path.join(tmp, "l.sock"), os.path.join(tmp, "u.sock")
    plain = write_file(os.path.join(tmp, "plain"), "x")
    base = ["--listen", lp, "--upstream", up]
    bad = {
        "unknown option": base + ["--bogus"],
        "missing value": base + ["--fault"],
        "stray argument": base + ["extra"],
        "no --listen": ["--upstream", up],
        "no --upstream": ["--listen", lp],
        "same paths": ["--listen", lp, "--upstream", lp],
        "path too long": ["--listen", "/tmp/" + "x" * 200, "--upstream", up],
        "unknown fault": base + ["--fault", "explode=1"],
        "fault without value": base + ["--fault", "slice"],
        "slice=0": base + ["--fault", "slice=0"],
        "delay not a number": base + ["--fault", "delay=soon"],
        "stall without @": base + ["--fault", "stall=100"],
        "drop without type": base + ["--fault", "drop="],
        "drop with empty key": base + ["--fault", "drop=command/"],
        "corrupt negative": base + ["--fault", "corrupt=-1"],
        "reset bad direction": base + ["--fault", "reset=10:up"],
        "bad --role": base + ["--role", "both"],
        "bad --log-format": base + ["--log-format", "xml"],
        "listen path is a file": ["--listen", plain, "--upstream", up],
    }
    for name, args in bad.items():
        code, _, err = run_tap(args, cwd=tmp)
        lines = err.splitlines()
        t.ok(code == 2 and len(lines) == 1 and lines[0].startswith("dcs-tap: "),
             f"{name}: exit 2 with one line", f"status {code}, stderr:\n{err}")
    with open(plain) as f:
        t.ok(f.read() == "x", "a file that is not a socket is left alone")
    t.ok(not os.path.exists(lp), "nothing was created on refusal")

    # Something listens there: exit 3, the socket untouched.
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(lp)
    busy.listen(4)
    code, _, err = run_tap(base)
    lines = err.splitlines()
    t.ok(code == 3 and len(lines) == 1 and "listening" in lines[0],
         "a busy listen path: exit 3 with one line", f"status {code}, stderr:\n{err}")
    t.ok(stat.S_ISSOCK(os.lstat(lp).st_mode), "the busy socket is untouched")
    busy.close()  # the file stays: now a stale socket

    # A stale socket file is replaced; the new one has mode 0600; no upstream.
    tap = TapProc(tmp, lp, up)
    t.ok(tap.proc.poll() is None and tap.listening(), "a stale socket file is replaced")
    t.eq(stat.S_IMODE(os.lstat(lp).st_mode), 0o600, "the listening socket has mode 0600")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect(lp)
    data, how = recv_to_end(c, 5)
    c.close()
    t.ok(data == b"" and how in ("eof", "reset"), "no upstream: the client's connection is closed",
         (data, how))
    t.ok(wait_for(lambda: "upstream-failed" in tap.reasons(), 5), "the failed connect is logged")
    t.ok(tap.proc.poll() is None, "the tap keeps running")
    tap.proc.send_signal(signal.SIGUSR1)
    t.ok(wait_for(lambda: os.path.exists(tap.stats_path), 5), "SIGUSR1 writes --stats")
    t.eq(tap.stop(signal.SIGTERM), 0, "SIGTERM: exit 0")
    t.ok(not os.path.exists(lp), "the socket file is removed on exit")
    st = tap.stats()
    t.ok(st["connections"]["accepted"] == 1 and st["connections"]["upstream_failed"] == 1,
         "statistics count the accepted client and the failed upstream", st["connections"])
    tap2 = TapProc(tmp, lp, up, name="tap2")
    t.eq(tap2.stop(signal.SIGINT), 0, "SIGINT: exit 0")
    t.ok(not os.path.exists(lp), "the socket file is removed after SIGINT too")


def pair_run(t, tmp, faults=(), record=None, n_jobs=3, tag="plain"):
    """dcs-client -> tap -> dcs-server until every job completed. Returns
    the tap (stopped)."""
    srv_sock = os.path.join(tmp, tag + "-srv", "api.sock")
    tap_sock = os.path.join(tmp, tag + "-tap.sock")
    jobs = write_file(os.path.join(tmp, tag + "-jobs.json"),
                      json.dumps([job(i) for i in range(1, n_jobs + 1)]))
    dpath = os.path.join(tmp, tag + "-deliveries.jsonl")
    s = Server(tmp, ["--socket", srv_sock, "--log-format", "json"], name=tag + "-server",
               scale=SCALE)
    t.ok(wait_for(lambda: os.path.exists(srv_sock), 10), f"{tag}: the server listens")
    more = []
    for f in faults:
        more += ["--fault", f]
    if record:
        more += ["--record", record]
    tap = TapProc(tmp, tap_sock, srv_sock, *more, name=tag + "-tap")
    c = Client(tmp, ["--socket", tap_sock, "--jobs", jobs, "--deliveries", dpath,
                     "--exit-after-jobs", "--log-format", "json"],
               scale=SCALE, stdin=False, name=tag + "-client")
    t.eq(c.wait(60), 0, f"{tag}: the client exits 0 once every job completed")
    t.eq(count_completed(dpath), {f"t-{i}": 1 for i in range(1, n_jobs + 1)},
         f"{tag}: every job completed once through the tap")
    prog = progress_of(dpath)
    t.ok(len(prog) >= 3 * n_jobs, f"{tag}: the deliveries show the PROGRESS_UPDATEs ({len(prog)})")
    t.eq(tap.stop(), 0, f"{tag}: the tap exits 0 on SIGTERM")
    s.signal(signal.SIGTERM)
    s.wait(10)
    return tap


def scenario_pair(t, tmp):
    """Plain forwarding of a real session."""
    tap = pair_run(t, tmp)
    st = tap.stats()
    c2s, s2c = st["c2s"], st["s2c"]
    t.ok(st["connections"]["accepted"] >= 1 and c2s["messages_in"] >= 2 and
         s2c["messages_in"] >= 9, "statistics count connections and messages", st)
    t.ok(c2s["errors_in"] == 0 and s2c["errors_in"] == 0, "no decoding errors in a clean session")
    t.ok(s2c["bytes_out"] <= s2c["bytes_in"] and c2s["bytes_out"] <= c2s["bytes_in"],
         "never more bytes out than in without dup", st)
    t.ok("open" in tap.reasons() and "stats" in tap.reasons(),
         "connections and statistics are logged")


def scenario_slice(t, tmp):
    """slice=1 both ways still carries a real session; pieces are separate
    reads at the peer."""
    tap = pair_run(t, tmp, faults=["slice=1"], tag="slice1")
    n = applied(tap, "slice=1")
    t.ok(n is not None and n > 1000, f"slice=1 wrote byte by byte ({n} pieces)")
    t.ok("fault-slice" in tap.reasons(), "the slicing is logged")

    p = Peers(tmp, "slice=3:s2c", name="sl")
    c, s = p.pair()
    data = bytes(range(65, 85))  # 20 bytes, one write
    s.sendall(data)
    reads = []
    got = b""
    c.settimeout(5)
    while len(got) < len(data):
        d = c.recv(65536)
        if not d:
            break
        reads.append(len(d))
        got += d
    t.eq(got, data, "slice=3: the bytes arrive unchanged")
    t.eq(reads, [3, 3, 3, 3, 3, 3, 2], "slice=3: each piece is a read of its own")
    c.sendall(b"abcdefghij")
    t.eq(recv_exact(s, 10), b"abcdefghij", "slice=3:s2c leaves c2s alone")


def scenario_faults(t, tmp):
    """Each fault observably happens, with exact bytes."""
    # drop: once for the tap's lifetime, whole messages only.
    p = Peers(tmp, "drop=command/register:c2s", name="drop")
    c, s = p.pair()
    c.sendall(b"xx" + REGISTER[:10])
    time.sleep(0.05)
    c.sendall(REGISTER[10:30])
    time.sleep(0.05)
    c.sendall(REGISTER[30:] + HEARTBEAT_C)
    t.eq(recv_exact(s, 2 + len(HEARTBEAT_C)), b"xx" + HEARTBEAT_C,
         "drop=command/register: the upstream never sees the register (split over 3 writes)")
    s.sendall(HEARTBEAT_S)
    t.eq(recv_exact(c, len(HEARTBEAT_S)), HEARTBEAT_S, "drop:c2s leaves s2c alone")
    c2, s2 = p.pair()
    c2.sendall(REGISTER)
    t.eq(recv_exact(s2, len(REGISTER)), REGISTER, "drop applies once: the next register passes")
    for x in (c, s, c2, s2):
        x.close()
    t.ok(wait_for(lambda: p.tap.reasons().count("closed") >= 2, 5), "both connections closed")
    p.tap.stop()
    t.eq(applied(p.tap, "drop=command/register:c2s"), 1, "drop is counted once")
    t.ok("fault-drop" in p.tap.reasons(), "drop is logged")

    # drop by type alone, from the server.
    p = Peers(tmp, "drop=jobRequest", name="dropt")
    c, s = p.pair()
    s.sendall(REQUEST + HEARTBEAT_S)
    t.eq(recv_exact(c, len(HEARTBEAT_S)), HEARTBEAT_S, "drop=TYPE drops any key of that type")

    # dup.
    p = Peers(tmp, "dup=heartbeat:s2c", name="dup")
    c, s = p.pair()
    s.sendall(HEARTBEAT_S + REQUEST)
    want = HEARTBEAT_S + HEARTBEAT_S + REQUEST
    t.eq(recv_exact(c, len(want)), want, "dup=heartbeat: the first heartbeat arrives twice")
    s.sendall(HEARTBEAT_S)
    t.eq(recv_exact(c, len(HEARTBEAT_S)), HEARTBEAT_S, "dup applies once")
    c.close()
    s.close()
    p.tap.stop()
    t.eq(applied(p.tap, "dup=heartbeat:s2c"), 1, "dup is counted once")
    t.ok("fault-dup" in p.tap.reasons(), "dup is logged")

    # corrupt: exactly that byte, on every connection.
    p = Peers(tmp, "corrupt=5:c2s", name="corrupt")
    for i in range(2):
        c, s = p.pair()
        c.sendall(REGISTER)
        got = recv_exact(s, len(REGISTER))
        want = REGISTER[:5] + b"\xff" + REGISTER[6:]
        t.eq(got, want, f"corrupt=5: connection {i + 1} gets byte 5 replaced by 0xff, nothing else")
        c.close()
        s.close()
    t.ok(wait_for(lambda: p.tap.reasons().count("closed") >= 2, 5), "both connections closed")
    p.tap.stop()
    t.eq(applied(p.tap, "corrupt=5:c2s"), 2, "corrupt is counted per connection")
    st = p.tap.stats()
    t.ok(st["c2s"]["errors_out"] >= 2 and st["c2s"]["errors_in"] == 0,
         "the corrupted stream is counted as decoding errors on the written side", st["c2s"])

    # reset: cut after exactly N bytes, both sides end.
    p = Peers(tmp, "reset=10:c2s", name="reset")
    c, s = p.pair()
    c.sendall(REGISTER)
    got, how = recv_to_end(s, 5)
    t.eq(got, REGISTER[:10], "reset=10: the upstream gets exactly 10 bytes")
    t.ok(how in ("eof", "reset"), f"reset=10: then the upstream's connection ends ({how})")
    got, how = recv_to_end(c, 5)
    t.ok(got == b"" and how in ("eof", "reset"),
         f"reset=10: the client's connection ends too ({how})")
    t.ok(wait_for(lambda: "fault-reset" in p.tap.reasons(), 5), "reset is logged")

    # delay: every chunk at least MS after it was sent.
    p = Peers(tmp, "delay=300:s2c", name="delay")
    c, s = p.pair()
    t0 = time.monotonic()
    s.sendall(HEARTBEAT_S)
    got = recv_exact(c, len(HEARTBEAT_S), 10)
    dt = (time.monotonic() - t0) * 1000
    t.eq(got, HEARTBEAT_S, "delay=300: the bytes arrive unchanged")
    t.within(dt, 300, 5000, "delay=300: they arrive at least 300 ms after they were sent")
    t0 = time.monotonic()
    c.sendall(HEARTBEAT_C)
    t.eq(recv_exact(s, len(HEARTBEAT_C)), HEARTBEAT_C, "delay:s2c leaves c2s alone")
    t.ok((time.monotonic() - t0) * 1000 < 5000, "c2s is not delayed beyond the upper bound")

    # stall: the first BYTES pass, the rest waits at least MS.
    p = Peers(tmp, "stall=300@10:c2s", name="stall")
    c, s = p.pair()
    t0 = time.monotonic()
    c.sendall(REGISTER)
    first = recv_exact(s, 10, 5)
    rest = recv_exact(s, len(REGISTER) - 10, 10)
    dt = (time.monotonic() - t0) * 1000
    t.eq(first + rest, REGISTER, "stall=300@10: the bytes arrive unchanged")
    t.within(dt, 300, 5000, "stall=300@10: the bytes after the 10th wait at least 300 ms")
    c2, s2 = p.pair()
    t0 = time.monotonic()
    c2.sendall(b"0123456789")
    t.eq(recv_exact(s2, 10), b"0123456789", "stall: the first 10 bytes of a connection pass")
    t.ok(wait_for(lambda: "fault-stall" in p.tap.reasons(), 5), "stall is logged")


def scenario_flow(t, tmp):
    """Exact forwarding of large streams both ways, half-close, many
    concurrent connections, back-pressure."""
    p = Peers(tmp, name="flow")
    c, s = p.pair()
    big = os.urandom(3 << 20)
    got = {}

    def reader(sock, key, n):
        got[key] = recv_exact(sock, n, 30)

    th = [threading.Thread(target=reader, args=(s, "up", len(big))),
          threading.Thread(target=reader, args=(c, "down", len(big)))]
    for x in th:
        x.start()
    ws = [threading.Thread(target=c.sendall, args=(big,)),
          threading.Thread(target=s.sendall, args=(big[::-1],))]
    for x in ws:
        x.start()
    for x in th + ws:
        x.join(60)
    t.ok(got.get("up") == big, "3 MiB client -> upstream arrive byte for byte")
    t.ok(got.get("down") == big[::-1], "3 MiB upstream -> client arrive byte for byte")

    # Half-close: the client stops writing; the upstream sees the end and
    # can still answer.
    c.shutdown(socket.SHUT_WR)
    data, how = recv_to_end(s, 5)
    t.ok(data == b"" and how == "eof", "the client's shutdown reaches the upstream as end of file")
    s.sendall(b"still here")
    t.eq(recv_exact(c, 10), b"still here", "the other direction still works after a half-close")
    s.close()
    data, how = recv_to_end(c, 5)
    t.ok(data == b"" and how == "eof", "the upstream's close ends the client's stream")
    t.ok(wait_for(lambda: "closed" in p.tap.reasons(), 5), "the connection is closed and logged")

    # Many connections at once, each independent.
    pairs = [p.pair() for _ in range(20)]
    for i, (cc, ss) in enumerate(pairs):
        cc.sendall(b"c%02d" % i)
        ss.sendall(b"s%02d" % i)
    ok = all(recv_exact(ss, 3) == b"c%02d" % i and recv_exact(cc, 3) == b"s%02d" % i
             for i, (cc, ss) in enumerate(pairs))
    t.ok(ok, "20 concurrent connections each carry their own bytes")
    for cc, ss in pairs:
        cc.close()
        ss.close()

    # Back-pressure: the upstream reads nothing; the client can push only
    # the tap's cap (4 MiB) plus the kernel's buffers.
    c, s = p.pair()
    c.setblocking(False)
    chunk = b"x" * 65536
    pushed, idle_since = 0, None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pushed < (64 << 20):
        try:
            pushed += c.send(chunk)
            idle_since = None
        except BlockingIOError:
            if idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 0.5:
                break
            time.sleep(0.01)
    t.ok(4 << 20 <= pushed < 16 << 20,
         f"a peer that does not read stops the other side ({pushed} bytes taken)")
    rss = 0
    with open(f"/proc/{p.tap.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    t.ok(rss < 64 * 1024, f"the tap's memory stays bounded ({rss} kB resident)")
    c.setblocking(True)
    got = recv_exact(s, pushed, 30)
    t.eq(len(got), pushed, "once the upstream reads, every byte arrives")


def check_case(path):
    """(status, stdout lines, stderr) of tap-case-check."""
    p = subprocess.run([env_path("DCS_TAP_CASE_CHECK"), path], capture_output=True, timeout=30)
    return (p.returncode, p.stdout.decode("utf-8", "replace").splitlines(),
            p.stderr.decode("utf-8", "replace"))


def scenario_record(t, tmp):
    """--record writes a case the reader accepts, with the steps in order."""
    # A real session.
    rec = os.path.join(tmp, "pair.dcst")
    pair_run(t, tmp, record=rec, tag="rec")
    t.eq(stat.S_IMODE(os.stat(rec).st_mode), 0o600, "the recording has mode 0600")
    code, lines, err = check_case(rec)
    t.ok(code == 0, "the recording of a real session parses with dcs_case_parse", err)
    kinds = [ln.split("\t")[0] for ln in lines]
    t.ok(kinds[:2] == ["id", "role"] and lines[1] == "role\tclient", "header: id, role client",
         lines[:3])
    t.ok(lines[0].startswith("id\trec-"), "the id is rec-<date>", lines[0])
    steps = kinds[2:]
    t.ok("accept" in steps and steps.index("accept") < steps.index("expect"),
         "accept comes before the first expect", steps[:6])
    first_expect = next((ln for ln in lines if ln.startswith("expect\t")), "")
    t.ok('"key":"register"' in first_expect, "the client's first message is its register",
         first_expect[:120])
    t.ok(steps.count("send") >= 9, f"the server's messages are send lines ({steps.count('send')})")
    t.ok(steps[-1] in ("close", "expect-close"), "the connection's end is the last step",
         steps[-3:])

    # Python peers: exact bytes, non-messages, a message without timestamp,
    # a message too long for a line, the IUT closing.
    rec = os.path.join(tmp, "peers.dcst")
    p = Peers(tmp, name="recp", record=rec)
    c, s = p.pair()
    notime = env_msg("message", "statusUpdate", {"s": "${X}"}, origin="external-crawler",
                     destination="web-server", ts=False)
    long_msg = env_msg("message", "big", {"data": "y" * 70000}, origin="external-crawler",
                       destination="web-server")
    c.sendall(REGISTER)
    recv_exact(s, len(REGISTER))
    s.sendall(REQUEST)
    recv_exact(c, len(REQUEST))
    s.sendall(b"zz" + notime)
    recv_exact(c, 2 + len(notime))
    s.sendall(long_msg)
    recv_exact(c, len(long_msg))
    c.sendall(b"!!" + HEARTBEAT_C)
    recv_exact(s, 2 + len(HEARTBEAT_C))
    c.close()
    recv_to_end(s, 5)
    s.close()
    t.ok(wait_for(lambda: "closed" in p.tap.reasons(), 5), "the recorded connection ended")
    with open(rec) as f:
        text = f.read()
    t.ok(text.count("\nexpect ") == 2 and "\nexpect-close" in text,
         "usable while the tap runs: the steps are already in the file")
    t.eq(p.tap.stop(), 0, "the recording tap exits 0")
    code, lines, err = check_case(rec)
    t.ok(code == 0, "the recording of the Python peers parses", err)
    steps = [tuple(ln.split("\t", 1)) for ln in lines[2:]]
    kinds = [k for k, _ in steps]
    t.eq(kinds, ["keepalive", "unignore", "accept", "expect", "send", "send-raw", "send-raw",
                 "expect", "expect-close"], "the steps, in time order")
    t.ok(steps[3][1] == REGISTER.decode(), "expect: the register exactly as written", steps[3])
    t.ok(steps[4][1] == REQUEST.decode(), "send: the request exactly as written", steps[4])
    t.eq(steps[5][1], "7a7a", "send-raw hex: the two bytes that are not a message")
    t.eq(bytes.fromhex(steps[6][1]), notime,
         "send-raw: a message without timestamp and with ${...}, exact bytes")
    t.ok(steps[7][1] == HEARTBEAT_C.decode(), "the IUT's heartbeat after its garbage", steps[7])
    t.ok("not a message: hex:2121" in text, "the IUT's garbage is a comment")
    t.ok("too long for a line of a case" in text, "the message over 64 KiB is a comment")
    t.ok("# +" in text and " conn 1 c2s offset 0" in text,
         "steps carry time, conn, offset comments")
    rs = p.tap.stats()["recording"]
    t.ok(rs["too_long"] == 1 and rs["messages"] == 5, "recording statistics", rs)

    # Role server: the upstream's messages are expectations; connect.
    rec = os.path.join(tmp, "server.dcst")
    p = Peers(tmp, "drop=heartbeat:c2s", name="recs", record=rec, role="server")
    c, s = p.pair()
    c.sendall(REGISTER + HEARTBEAT_C)
    recv_exact(s, len(REGISTER))
    s.sendall(REQUEST)
    recv_exact(c, len(REQUEST))
    s.close()
    recv_to_end(c, 5)
    c.close()
    t.ok(wait_for(lambda: "closed" in p.tap.reasons(), 5), "the second recorded connection ended")
    t.eq(p.tap.stop(), 0, "the tap exits 0")
    code, lines, err = check_case(rec)
    t.ok(code == 0, "the role-server recording parses", err)
    kinds = [ln.split("\t")[0] for ln in lines]
    t.eq(kinds, ["id", "role", "keepalive", "unignore", "connect", "send", "expect",
                 "expect-close"],
         "role server: connect, the client's register sent (its dropped heartbeat not), "
         "the server's request expected, the server closed")


def connect_state(path, timeout=2.0):
    """What a client finds at path: ("missing", None) for ENOENT,
    ("stale", None) for ECONNREFUSED, ("listening", sock) when connected."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect(path)
    except FileNotFoundError:
        c.close()
        return "missing", None
    except ConnectionRefusedError:
        c.close()
        return "stale", None
    return "listening", c


def wait_state(path, want, timeout=5.0):
    """Probe path every millisecond until a client finds want there: (ms
    from the call to the first such connect, the connected socket or None),
    ms None if it never did. A probe that connects while waiting for
    another state is closed at once (the tap has not followed yet)."""
    t0 = time.monotonic()
    while True:
        state, sock = connect_state(path)
        ms = (time.monotonic() - t0) * 1000
        if state == want:
            return ms, sock
        if sock:
            sock.close()
        if ms > timeout * 1000:
            return None, None
        time.sleep(0.001)


def scenario_mirror(t, tmp):
    """--mirror-upstream: the listen path is missing, stale or listening as
    the upstream's socket file is (spec/PROTOCOL.md 8.1, 8.3: ENOENT skips
    an attempt, ECONNREFUSED fails it), found without connecting to the
    upstream; accepted connections stay."""
    bound = 200  # ms for the tap to follow a change (it looks every 1 ms)
    code, out, _ = run_tap(["--help"])
    t.ok(code == 0 and "--mirror-upstream" in out and "ECONNREFUSED" in out,
         "--help describes --mirror-upstream")
    lp = os.path.join(tmp, "mirror-tap.sock")
    code, _, err = run_tap(["--listen", lp, "--upstream", "a\nb", "--mirror-upstream"])
    t.ok(code == 2 and len(err.splitlines()) == 1,
         "an upstream path with a line break is refused (exit 2, one line)", err)

    # The upstream path has a space and is given relative (the tap runs in
    # tmp); the upstream binds it absolute. Around it in /proc/net/unix:
    # unnamed sockets, listeners whose names extend it or end with it, an
    # abstract listener spelled like it (shown as "@/tmp/..."), and later
    # the accepted sockets that carry its name without listening.
    up_rel = "mirror up.sock"
    up = os.path.join(tmp, up_rel)
    noise = list(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
    deep = os.path.join(tmp, "d") + tmp
    os.makedirs(deep)
    for name in (up + "x", up + " x", os.path.join(deep, up_rel), "\0" + up):
        if len(name) < 108:
            d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            d.bind(name)
            d.listen(4)
            noise.append(d)

    def upstream_quiet(lsock):
        """No connection waits at the upstream listener: the tap did not
        connect to it on its own."""
        lsock.setblocking(False)
        try:
            extra, _ = lsock.accept()
            extra.close()
            return False
        except BlockingIOError:
            return True
        finally:
            lsock.setblocking(True)

    def forwarded(lsock, c, tag):
        lsock.settimeout(5)
        s, _ = lsock.accept()
        s.settimeout(5)
        c.sendall(b"up-" + tag)
        s.sendall(b"down-" + tag)
        ok = recv_exact(s, 3 + len(tag)) == b"up-" + tag and \
            recv_exact(c, 5 + len(tag)) == b"down-" + tag
        return s, ok

    def pair_alive(c, s, tag):
        c.sendall(tag)
        s.sendall(tag[::-1])
        return recv_exact(s, len(tag)) == tag and recv_exact(c, len(tag)) == tag[::-1]

    def follow(want, what):
        ms, sock = wait_state(lp, want, 5)
        t.ok(ms is not None and ms <= bound,
             f"{what}: the tap follows within {bound} ms "
             f"({'never' if ms is None else '%.1f ms' % ms})")
        return sock

    def steady(want, what):
        states = []
        for _ in range(5):
            st_, sock = connect_state(lp)
            states.append(st_)
            if sock:
                sock.close()
            time.sleep(0.004)
        t.eq(states, [want] * 5, f"{what}: and stays so")

    names = {"missing": "ENOENT (FileNotFoundError)", "stale": "ECONNREFUSED"}
    tap = TapProc(tmp, lp, up_rel, "--mirror-upstream", name="mirror")
    t.ok(tap.proc.poll() is None, "the tap runs with the upstream missing")
    t.ok(not os.path.lexists(lp), "upstream missing: no file at the listen path")
    t.eq(connect_state(lp)[0], "missing", "upstream missing: connecting to the tap gives " +
         names["missing"])
    steady("missing", "upstream missing")

    # missing -> stale: a socket bound at the path that does not listen.
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    follow("stale", "missing -> stale (bound, not listening)")
    t.eq(connect_state(lp)[0], "stale", "upstream stale: connecting to the tap gives " +
         names["stale"])
    t.ok(stat.S_ISSOCK(os.lstat(lp).st_mode) and stat.S_IMODE(os.lstat(lp).st_mode) == 0o600,
         "the stale listen path is a socket file with mode 0600")
    steady("stale", "upstream stale")

    # stale -> listening: listen() on that socket; the file does not change,
    # only /proc/net/unix shows it. The probe that gets through is forwarded.
    sk.listen(16)
    c1 = follow("listening", "stale -> listening (listen() on the bound socket)")
    s1, ok = forwarded(sk, c1, b"1") if c1 else (None, False)
    t.ok(ok, "upstream listening: the connection is forwarded both ways")
    t.ok(upstream_quiet(sk), "the upstream saw no connection but the forwarded one")

    # listening -> stale: the listener closes, its file stays.
    sk.close()
    follow("stale", "listening -> stale (listener closed, file left)")
    steady("stale", "upstream stale again")
    t.ok(pair_alive(c1, s1, b"after-stale"), "the connection accepted before stays")

    # stale -> missing.
    os.unlink(up)
    follow("missing", "stale -> missing (file removed)")
    t.ok(not os.path.lexists(lp), "upstream missing: the listen path is removed")
    steady("missing", "upstream missing again")
    t.ok(pair_alive(c1, s1, b"after-missing"), "the accepted connection still stays")

    # missing -> listening.
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.listen(16)
    c2 = follow("listening", "missing -> listening")
    s2, ok = forwarded(sk, c2, b"2") if c2 else (None, False)
    t.ok(ok, "forwarded again")

    # listening -> missing, as the harness's "socket remove": close, unlink.
    sk.close()
    os.unlink(up)
    follow("missing", "listening -> missing (harness: socket remove)")

    # missing -> stale, as "socket stale": bind, close (no socket behind the
    # file at all); then stale -> listening as "socket listen": unlink, bind,
    # listen a new socket.
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.close()
    follow("stale", "missing -> stale (harness: socket stale)")
    os.unlink(up)
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.listen(16)
    c3 = follow("listening", "stale -> listening (harness: socket listen)")
    s3, ok = forwarded(sk, c3, b"3") if c3 else (None, False)
    t.ok(ok, "forwarded after the harness's steps")
    t.ok(upstream_quiet(sk), "still no connection of the tap's own at the upstream")

    # listening -> stale as the harness does it: a new file nobody listens on.
    sk.close()
    os.unlink(up)
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.close()
    follow("stale", "listening -> stale (harness: socket stale)")
    t.ok(pair_alive(c2, s2, b"late") and pair_alive(c3, s3, b"later"),
         "the connections accepted while the upstream listened stay")

    tap.proc.send_signal(signal.SIGUSR1)
    t.ok(wait_for(lambda: os.path.exists(tap.stats_path), 5), "SIGUSR1 writes --stats")
    mirror = tap.stats().get("mirror", {})
    t.ok(mirror.get("state") == "stale" and mirror.get("changes", 0) >= 9 and
         mirror.get("proc_reads", 0) > 0 and mirror.get("period_us", 0) >= 1000,
         "statistics: the state, the changes, the reads of /proc/net/unix", mirror)
    t.note(f"mirror statistics: {json.dumps(mirror)}")
    reasons = tap.reasons()
    t.ok("mirror-failed" not in reasons, "no change failed")
    t.ok(reasons.count("mirror") == mirror.get("changes"), "every change is logged (reason mirror)",
         reasons.count("mirror"))
    for x in (c1, s1, c2, s2, c3, s3):
        x.close()
    t.eq(tap.stop(), 0, "SIGTERM: exit 0")
    t.ok(not os.path.lexists(lp), "the (stale) listen path is removed on exit")
    os.unlink(up)
    for x in noise:
        x.close()

    # A listener already there at start: the tap starts listening at once.
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.listen(16)
    tap = TapProc(tmp, lp, up, "--mirror-upstream", name="mirror2")
    state, c = connect_state(lp)
    t.eq(state, "listening", "upstream listening at start: the tap listens from the start")
    if c:
        s, ok = forwarded(sk, c, b"4")
        t.ok(ok, "and forwards")
        c.close()
        s.close()
    sk.close()
    os.unlink(up)
    follow("missing", "listening -> missing (absolute --upstream)")
    t.eq(tap.stop(), 0, "exit 0")

    # The reference client behind a mirroring tap does what it does at the
    # upstream itself: it skips its attempts while the upstream is missing,
    # counts failures while it is stale, and registers once it listens.
    tap = TapProc(tmp, lp, up, "--mirror-upstream", name="mirror3")
    cl = Client(tmp, ["--socket", lp, "--log-format", "json", "--log-level", "debug"],
                scale=SCALE, stdin=False, name="mirror-client")

    def creasons():
        return [r.get("reason") for r in cl.log_records()]

    t.ok(wait_for(lambda: creasons().count("socket-missing") >= 3, 10),
         "dcs-client, upstream missing: its attempts are skipped (socket-missing)", creasons())
    rs = creasons()
    t.ok("open" not in rs and "connect-failed" not in rs,
         "dcs-client, upstream missing: no connection, no failure counted", rs)
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.close()
    t.ok(wait_for(lambda: creasons().count("connect-failed") >= 2, 10),
         "dcs-client, upstream stale: its attempts fail (connect-failed)", creasons())
    t.ok("open" not in creasons(), "dcs-client, upstream stale: no connection")
    os.unlink(up)
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.bind(up)
    sk.listen(16)
    sk.settimeout(10)
    got = b""
    try:
        s, _ = sk.accept()
        s.settimeout(5)
        while b'"register"' not in got:
            d = s.recv(65536)
            if not d:
                break
            got += d
        s.close()
    except socket.timeout:
        pass
    t.ok(b'"register"' in got, "dcs-client, upstream listening: it connects through the tap "
         "and registers", got[:200])
    t.ok(upstream_quiet(sk), "and the upstream saw no other connection")
    cl.stop()
    sk.close()
    t.eq(tap.stop(), 0, "exit 0")


SCENARIOS = {
    "cli": scenario_cli,
    "pair": scenario_pair,
    "slice": scenario_slice,
    "faults": scenario_faults,
    "flow": scenario_flow,
    "record": scenario_record,
    "mirror": scenario_mirror,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: tap_e2e.py {%s}" % ",".join(SCENARIOS), file=sys.stderr)
        sys.exit(2)
    for var in ("DCS_TAP", "DCS_TAP_CASE_CHECK", "DCS_SERVER", "DCS_CLIENT"):
        if var not in os.environ:
            print(f"1..0 # SKIP {var} is not set")
            sys.exit(0)
    run_scenario(with_cleanup(SCENARIOS[sys.argv[1]]))
