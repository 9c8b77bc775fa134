#!/usr/bin/env python3
"""A scripted fake implementation under test (IUT) for the self-test of
dcs-conform (tests/e2e/conform_e2e.py). Standard library only.

dcs-conform starts it as the IUT's COMMAND, with SOCKET_PATH (and
DCS_TIME_SCALE) in the environment. It plays either role:

  client  connects to SOCKET_PATH (retrying while it does not exist or
          refuses), writes a register, then heartbeats; reconnects after the
          connection ends (--reconnect MS, protocol time);
  server  listens on SOCKET_PATH and serves every connection.

Its behaviour is scripted by the case itself: every message of type "x-do"
the harness sends is an instruction, key = what to do, payload = how:

  say        {"after":MS, "msg":{...} | "raw":"text" | "hex":"7b..",
              "tag":"T"}           write a message: msg completed with origin,
                                   destination and timestamp when it lacks
                                   them; raw and hex exactly as given
  close      {"after":MS, "reconnect":MS|null,   close this connection;
              "notice":{...}, "trickle":MS}        with a notice: write it
                                   first (completed as for say), one byte
                                   every trickle/len MS, and close after its
                                   last byte, with the reconnect delay
                                   counting from its first (an IUT that wrote
                                   it and closed at once, behind a slow link)
  set        {"reconnect":MS|null, "heartbeat":MS|0}
  crash      {"after":MS}          kill itself with SIGSEGV
  exit       {"after":MS, "code":N}
  probe      {}                    (client) connect once to SOCKET_PATH and
                                   answer x-probe/result with "ok", "ENOENT",
                                   "ECONNREFUSED", ...
  hmac       {"nonce":"..", "client":"id"}  answer x-auth/hmac with
                                   hex(HMAC-SHA256(secret, nonce || client))
  register   {}                    write the register now
  stderr     {"after":MS, "line":".."}   write the line on standard error
  mark       {"name":".."}         only logged
  info       {}                    answer x-info/info with pid and environment

MS are protocol milliseconds: the fake multiplies them by DCS_TIME_SCALE, as
a real IUT scales its timers. Everything it sees and does is appended to the
log (--log FILE), one JSON object per line, for the test to check; what it
writes is logged just before it is written.

With --stdin-echo (a profile's "feature stdin-commands --stdin-echo") each
line of its standard input comes back as an x-stdin/line message; with
--secret-file FILE (a profile's "feature hmac --secret-file {secret}") it
reads the run's secret. On SIGTERM it logs it and exits 0. It exits by
itself (status 4) when its parent goes away or after --max-life seconds, so
that no run leaves it behind.
"""

import argparse
import errno
import hashlib
import heapq
import hmac
import itertools
import json
import os
import select
import signal
import socket
import stat
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--role", choices=["client", "server"], required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--id", default=None, help="own id (default web-server / external-crawler)")
ap.add_argument("--peer", default=None, help="the peer's id")
ap.add_argument("--no-register", action="store_true")
ap.add_argument("--heartbeat", type=float, default=None,
                help="protocol ms between own heartbeats, 0 for none "
                     "(default T(DCS_T_CLIENT_HEARTBEAT) / T(DCS_T_SERVER_HEARTBEAT))")
ap.add_argument("--reconnect", type=float, default=1000.0,
                help="(client) protocol ms before reconnecting; negative: never")
ap.add_argument("--stdin-echo", action="store_true",
                help="write every line of standard input as an x-stdin/line message")
ap.add_argument("--secret-file", default=None)
ap.add_argument("--no-connect", action="store_true", help="(client) never connect")
ap.add_argument("--start-delay-ms", type=float, default=0.0,
                help="real ms to spend starting up before connecting or listening")
ap.add_argument("--max-life", type=float, default=120.0,
                help="real seconds after which it exits whatever happens (no leaks)")
args = ap.parse_args()

SCALE = float(os.environ.get("DCS_TIME_SCALE", "1") or "1")
SOCK = os.environ.get("SOCKET_PATH", "")
ROLE = args.role
OWN = args.id or ("web-server" if ROLE == "client" else "external-crawler")
PEER = args.peer or ("external-crawler" if ROLE == "client" else "web-server")
HB = args.heartbeat if args.heartbeat is not None else (10000.0 if ROLE == "client" else 5000.0)
T0 = time.monotonic()


def log(ev, **kw):
    rec = {"pid": os.getpid(), "t": time.monotonic(), "wall_ms": int(time.time() * 1000), "ev": ev}
    rec.update(kw)
    line = (json.dumps(rec) + "\n").encode("utf-8")
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def scaled(ms):
    return max(0.0, float(ms)) * SCALE / 1000.0


# --------------------------------------------------------------------------
# timers

_timers = []
_seq = itertools.count()


def later(ms, fn):
    heapq.heappush(_timers, (time.monotonic() + scaled(ms), next(_seq), fn))


# --------------------------------------------------------------------------
# connections

conns = {}  # fd -> Conn
_conn_no = itertools.count(1)
current = None  # client: the live connection


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.n = next(_conn_no)
        self.buf = b""
        self.out = 0  # bytes written
        self.registered = False  # (server) the peer registered
        self.hb_gen = 0
        self.reconnect_planned = False  # (client) the reconnect after it is planned
        conns[sock.fileno()] = self
        log("open", conn=self.n)

    def alive(self):
        return self.sock is not None

    def write(self, data, tag=None):
        if not self.alive():
            log("write-dropped", conn=self.n, tag=tag)
            return
        # logged first: the harness may end the case (and this process) as
        # soon as it has read the bytes
        log("wrote", conn=self.n, offset=self.out, len=len(data), tag=tag,
            data=data.decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace")
            .decode("utf-8"), hex=data.hex())
        self.out += len(data)
        try:
            self.sock.sendall(data)
        except OSError as e:
            log("write-failed", conn=self.n, tag=tag, error=errno.errorcode.get(e.errno, str(e)))

    def send(self, msg, tag=None):
        self.write(json.dumps(msg, separators=(",", ":")).encode("utf-8"), tag)

    def close(self, why):
        if not self.alive():
            return
        fd = self.sock.fileno()
        self.sock.close()
        self.sock = None
        conns.pop(fd, None)
        log("close", conn=self.n, why=why)
        self.hb_gen += 1
        conn_ended(self, why)

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.close("eof")
            return
        log("read", conn=self.n, n=len(data), hex=data.hex())
        self.buf += data
        self.parse()

    def parse(self):
        dec = json.JSONDecoder()
        while self.alive():
            text = self.buf.decode("utf-8", "surrogateescape")
            i = 0
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i == len(text):
                self.buf = b""
                return
            if text[i] != "{":
                j = text.find("{", i)
                log("garbage", conn=self.n, text=text[i:j if j >= 0 else len(text)])
                self.buf = text[j:].encode("utf-8", "surrogateescape") if j >= 0 else b""
                continue
            try:
                obj, end = dec.raw_decode(text, i)
            except json.JSONDecodeError:
                return  # incomplete
            raw = text[i:end]
            self.buf = text[end:].encode("utf-8", "surrogateescape")
            log("msg", conn=self.n, raw=raw, msg=obj)
            if isinstance(obj, dict):
                on_message(self, obj)


def envelope(type_, key, payload=None):
    m = {"origin": OWN, "destination": PEER, "type": type_, "key": key}
    if payload is not None:
        m["payload"] = payload
    m["timestamp"] = int(time.time() * 1000)
    return m


def heartbeat_loop(c, gen):
    if not c.alive() or gen != c.hb_gen or HB <= 0:
        return
    c.send(envelope("heartbeat", "heartbeat", {"timestamp": int(time.time() * 1000)}), "heartbeat")
    later(HB, lambda: heartbeat_loop(c, gen))


def start_heartbeats(c):
    c.hb_gen += 1
    gen = c.hb_gen
    heartbeat_loop(c, gen)


def register(c):
    c.send(envelope("command", "register", {"id": OWN, "pid": os.getpid(), "type": "fake-iut"}),
           "register")
    start_heartbeats(c)


# --------------------------------------------------------------------------
# client role: connecting

reconnect_ms = args.reconnect


def try_connect(deadline):
    global current
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(SOCK)
    except OSError as e:
        s.close()
        if time.monotonic() < deadline and e.errno in (errno.ENOENT, errno.ECONNREFUSED,
                                                       errno.EAGAIN):
            heapq.heappush(_timers, (time.monotonic() + 0.01, next(_seq),
                                     lambda: try_connect(deadline)))
        else:
            log("connect-failed", error=errno.errorcode.get(e.errno, str(e)))
        return
    current = Conn(s)
    if not args.no_register:
        register(current)


def connect_soon(ms):
    later(ms, lambda: try_connect(time.monotonic() + 30.0))


def plan_reconnect(c):
    """(client) Reconnect reconnect_ms from now, once per connection."""
    if ROLE == "client" and c is current and reconnect_ms is not None and reconnect_ms >= 0 \
            and not c.reconnect_planned:
        c.reconnect_planned = True
        log("reconnect-planned", after_ms=reconnect_ms)
        connect_soon(reconnect_ms)


def conn_ended(c, why):
    plan_reconnect(c)


# --------------------------------------------------------------------------
# instructions


def crash():
    log("crash")
    os.kill(os.getpid(), signal.SIGSEGV)


def do_exit(code):
    log("exit", code=code)
    os._exit(code)


def probe():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(SOCK)
        res = "ok"
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
    log("probe", result=res)
    return res


def read_secret():
    with open(args.secret_file, "rb") as f:
        return f.read()


def completed(m):
    """m with origin, destination and timestamp when it lacks them, as bytes."""
    msg = {"origin": OWN, "destination": PEER}
    msg.update(m)
    msg.setdefault("timestamp", int(time.time() * 1000))
    return json.dumps(msg, separators=(",", ":")).encode("utf-8")


def close_slowly(c, data, trickle_ms):
    """Write data a byte at a time over trickle_ms, then close c; the
    reconnect (client) is planned now, as by an IUT that wrote data and
    closed at once over a link that delivers it slowly."""
    c.hb_gen += 1  # no heartbeat in between
    plan_reconnect(c)
    step = trickle_ms / max(1, len(data))
    for i in range(len(data)):
        if i == len(data) - 1:
            later(i * step, lambda b=data[i:]: (c.write(b, "notice-end"), c.close("instructed")))
        else:
            later(i * step, lambda b=data[i:i + 1], tag="notice" if i == 0 else None: c.write(b, tag))


def on_message(c, m):
    global reconnect_ms, HB
    if ROLE == "server" and m.get("type") == "command" and m.get("key") == "register" \
            and not c.registered:
        c.registered = True
        start_heartbeats(c)
    if m.get("type") != "x-do":
        return
    what, p = m.get("key"), m.get("payload") or {}
    after = p.get("after", 0)
    if what == "say":
        if "msg" in p:
            data = completed(p["msg"])
        elif "hex" in p:
            data = bytes.fromhex(p["hex"])
        else:
            data = p["raw"].encode("utf-8", "surrogateescape")
        later(after, lambda: c.write(data, p.get("tag")))
    elif what == "close":
        if "reconnect" in p:
            reconnect_ms = p["reconnect"] if p["reconnect"] is not None else -1
        if "notice" in p:
            later(after, lambda: close_slowly(c, completed(p["notice"]), float(p.get("trickle", 0))))
        else:
            later(after, lambda: c.close("instructed"))
    elif what == "set":
        if "reconnect" in p:
            reconnect_ms = p["reconnect"] if p["reconnect"] is not None else -1
        if "heartbeat" in p:
            HB = float(p["heartbeat"])
            c.hb_gen += 1
            if HB > 0:
                gen = c.hb_gen
                later(HB, lambda: heartbeat_loop(c, gen))
    elif what == "crash":
        later(after, crash)
    elif what == "exit":
        later(after, lambda: do_exit(int(p.get("code", 3))))
    elif what == "probe":
        c.send(envelope("x-probe", "result", {"result": probe()}), "probe")
    elif what == "hmac":
        secret = read_secret()
        mac = hmac.new(secret, p["nonce"].encode("utf-8") + p.get("client", OWN).encode("utf-8"),
                       hashlib.sha256).hexdigest()
        log("hmac", nonce=p["nonce"], client=p.get("client", OWN), mac=mac)
        c.send(envelope("x-auth", "hmac", {"hmac": mac}), "hmac")
    elif what == "register":
        register(c)
    elif what == "stderr":
        later(after, lambda: (sys.stderr.write(p["line"] + "\n"), sys.stderr.flush(),
                              log("stderr", line=p["line"])))
    elif what == "mark":
        log("mark", name=p.get("name"))
    elif what == "info":
        c.send(envelope("x-info", "info", {"pid": os.getpid(), "scale": os.environ.get("DCS_TIME_SCALE"),
                                           "socket": SOCK}), "info")


# --------------------------------------------------------------------------
# main loop


def on_term(signum, frame):
    log("sigterm")
    sys.stderr.write("fake-iut %d: SIGTERM\n" % os.getpid())
    sys.stderr.flush()
    if ROLE == "server" and SOCK:
        try:
            os.unlink(SOCK)
        except OSError:
            pass
    os._exit(0)


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    secret = None
    if args.secret_file:
        st = os.stat(args.secret_file)
        secret = {"path": args.secret_file, "mode": stat.S_IMODE(st.st_mode),
                  "text": read_secret().decode("utf-8", "replace")}
    # a line on standard error: dcs-conform keeps it as the IUT's output
    sys.stderr.write("fake-iut %d: started as the %s <stderr>\n" % (os.getpid(), ROLE))
    sys.stderr.flush()
    log("start", role=ROLE, argv=sys.argv[1:], socket=SOCK, cwd=os.getcwd(),
        scale=os.environ.get("DCS_TIME_SCALE"),
        env={k: v for k, v in os.environ.items() if k.startswith(("FAKE_", "DCS_", "SOCKET_"))},
        secret=secret)
    lsock = None
    time.sleep(args.start_delay_ms / 1000.0)
    if ROLE == "server":
        if os.path.exists(SOCK):
            os.unlink(SOCK)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(SOCK)
        lsock.listen(16)
        log("listening")
    elif not args.no_connect:
        try_connect(time.monotonic() + 30.0)
    stdin_open = args.stdin_echo
    pending = b""
    ppid = os.getppid()
    while True:
        now = time.monotonic()
        if os.getppid() != ppid or now - T0 > args.max_life:
            log("orphaned" if os.getppid() != ppid else "max-life")
            os._exit(4)
        while _timers and _timers[0][0] <= now:
            _, _, fn = heapq.heappop(_timers)
            fn()
            now = time.monotonic()
        timeout = max(0.0, _timers[0][0] - now) if _timers else 1.0
        rd = [c.sock for c in conns.values() if c.alive()]
        if lsock is not None:
            rd.append(lsock)
        if stdin_open:
            rd.append(sys.stdin.fileno())
        r, _, _ = select.select(rd, [], [], min(timeout, 1.0))
        for s in r:
            if s is lsock:
                ns, _ = lsock.accept()
                Conn(ns)
            elif s == sys.stdin.fileno():
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                    log("stdin-eof")
                    continue
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    text = line.decode("utf-8", "replace")
                    log("stdin", line=text)
                    targets = [c for c in conns.values() if c.alive()]
                    for c in targets[-1:]:
                        c.send(envelope("x-stdin", "line", {"line": text}), "stdin")
            else:
                c = conns.get(s.fileno())
                if c:
                    c.on_readable()


if __name__ == "__main__":
    main()
