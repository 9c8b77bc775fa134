"""Helpers for the end-to-end tests of the reference programs.

A scripted fake server (FakeServer, Conn) that listens on a Unix socket in a
temporary directory and reads the concatenated JSON envelopes of the
protocol; a wrapper around a dcs-client process (Client); and a minimal TAP
writer (Tap). Standard library only.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SERVER_ID = "external-crawler"


def now_ms():
    """Monotonic milliseconds, as a float."""
    return time.monotonic() * 1000.0


# --------------------------------------------------------------------------
# TAP


class Tap:
    """Write TAP: one line per check, a plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {desc}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}", flush=True)
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print(f"# {line}", flush=True)
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, f"got:  {got!r}\nwant: {want!r}")

    def within(self, value, lo, hi, desc):
        return self.ok(lo <= value <= hi, f"{desc} ({value:.0f} in [{lo:.0f}, {hi:.0f}])",
                       f"{value} not in [{lo}, {hi}]")

    def note(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


def run_scenario(fn):
    """Run fn(tap, tmpdir) in a fresh temporary directory and exit with TAP."""
    tap = Tap()
    with tempfile.TemporaryDirectory(prefix="dcs-e2e-") as tmp:
        try:
            fn(tap, tmp)
        except Exception:  # a broken scenario is one failed check, with the trace
            tap.ok(False, "scenario ran to its end", traceback.format_exc())
        finally:
            Client.kill_all()
    sys.exit(tap.done())


# --------------------------------------------------------------------------
# The fake server


class Closed(Exception):
    """The peer closed the connection."""


class Conn:
    """One accepted connection: reads whole envelopes, writes raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.decoder = json.JSONDecoder()
        self.eof = False

    def _parse(self):
        text = self.buf.decode("utf-8", errors="surrogateescape")
        i = 0
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i == len(text):
            self.buf = b""
            return None
        try:
            obj, end = self.decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return None  # incomplete: wait for more bytes
        self.buf = text[end:].encode("utf-8", errors="surrogateescape")
        return obj

    def recv(self, timeout=5.0):
        """The next envelope; raises Closed at end of file, TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self._parse()
            if obj is not None:
                return obj
            if self.eof:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no message within %.1f s" % timeout)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
            self.buf += data

    def recv_until(self, pred, timeout=5.0, skip_heartbeats=True):
        """The first envelope for which pred is true, skipping others; the
        skipped ones are returned too: (match, skipped)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if skip_heartbeats and m.get("type") == "heartbeat":
                continue
            if pred(m):
                return m, skipped
            skipped.append(m)

    def wait_closed(self, timeout=5.0):
        """Read until end of file; returns the envelopes that came first."""
        got = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                got.append(self.recv(max(0.0, deadline - time.monotonic())))
        except Closed:
            return got

    def send(self, obj):
        self.send_raw(json.dumps(obj, separators=(",", ":")).encode("utf-8"))

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def envelope(type_, key, payload=None, destination="web-server", **extra):
    m = {"origin": SERVER_ID, "destination": destination, "type": type_, "key": key}
    if payload is not None:
        m["payload"] = payload
    m["timestamp"] = int(time.time() * 1000)
    m.update(extra)
    return m


class FakeServer:
    """A listening Unix socket that accepts one connection at a time."""

    def __init__(self, path):
        self.path = path
        self.lsock = None
        self.listen()

    def listen(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(16)
        self.lsock = s

    def accept(self, timeout=5.0):
        self.lsock.settimeout(timeout)
        s, _ = self.lsock.accept()
        s.settimeout(None)
        return Conn(s)

    def stop(self, unlink=True):
        """Stop listening; with unlink the socket file disappears too."""
        if self.lsock:
            self.lsock.close()
            self.lsock = None
        if unlink and os.path.exists(self.path):
            os.unlink(self.path)


# --------------------------------------------------------------------------
# The client process


class LoggedProcess:
    """A child process whose stderr (its log) goes to TMP/NAME.log. Every
    instance is remembered by its class (each subclass has its own list), so
    that a failed scenario can kill what it started: kill_all()."""

    live = []

    def __init__(self, tmp, argv, name, env=None, stdin=False, log_mode="ab"):
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, log_mode)
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log, env=env, cwd=tmp)
        type(self).live.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        """The exit status, or None if the process is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def records(self):
        """The log as JSON records (with --log-format json)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.log.close()

    @classmethod
    def kill_all(cls):
        for p in cls.live:
            p.kill()
        cls.live = []


def client_env(scale, env):
    """dcs-client's environment: ours without the variables it would read
    instead of its arguments, DCS_TIME_SCALE if scale is given, then env."""
    e = dict(os.environ)
    e.pop("SOCKET_PATH", None)
    e.pop("COPILOT_PROCESS_ID", None)
    if scale is not None:
        e["DCS_TIME_SCALE"] = scale
    if env:
        e.update(env)
    return e


class Client(LoggedProcess):
    """A dcs-client process with its stderr (the log) in a file."""

    live = []

    def __init__(self, tmp, args, scale="0.1", env=None, stdin=True, name="client"):
        e = client_env(scale, env)
        super().__init__(tmp, [os.path.abspath(os.environ["DCS_CLIENT"])] + list(args), name,
                         env=e, stdin=stdin, log_mode="wb")

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def log_records(self):
        return self.records()

    def stop(self):
        self.kill()


def run_client(args, env=None, timeout=10.0, scale="0.1"):
    """Run dcs-client to completion: (status, stdout, stderr)."""
    e = client_env(scale, env)
    p = subprocess.run([os.path.abspath(os.environ["DCS_CLIENT"])] + list(args), env=e,
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write_file(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def read_json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_key(m, type_, key):
    return m.get("type") == type_ and m.get("key") == key
