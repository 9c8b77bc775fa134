#!/usr/bin/env python3
"""A hand-driven stand-in for the server, for trying dcs-client by hand.

    python3 tests/e2e/fake_server.py /tmp/dcs/api.sock

Listens on the socket (one client at a time), prints every envelope the
client writes as one JSON line, and sends a heartbeat every 5 s (scaled by
DCS_TIME_SCALE) so that the client's liveness timer stays quiet. Each line
typed on standard input is sent to the client:

    jobs [REQUEST_ID]          a request_jobs
    token PROVIDER [REQUEST_ID]  a TOKEN_REFRESH_REQUEST
    progress TASK STATUS       a PROGRESS_UPDATE
    shutdown                   a shutdown notice
    close                      close the connection (the client reconnects)
    {...}                      any JSON text, sent as it is

This is not the reference server (ref-server/); it checks nothing.
"""

import itertools
import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import Conn, envelope  # noqa: E402


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = sys.argv[1]
    scale = float(os.environ.get("DCS_TIME_SCALE") or "1")
    beat = 5.0 * scale
    ids = itertools.count(1)
    if os.path.exists(path):
        os.unlink(path)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    os.chmod(path, 0o600)
    lsock.listen(4)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    conn, dest, next_beat = None, "*", time.monotonic() + beat
    print(f"# listening on {path}", file=sys.stderr)
    try:
        while True:
            for key, _ in sel.select(max(0.0, next_beat - time.monotonic())):
                if key.data == "accept":
                    s, _ = lsock.accept()
                    if conn:
                        s.close()  # one client at a time
                        continue
                    conn = Conn(s)
                    sel.register(s, selectors.EVENT_READ, "conn")
                    print("# client connected", file=sys.stderr)
                elif key.data == "conn":
                    data = conn.sock.recv(65536)
                    conn.buf += data
                    while True:
                        m = conn._parse()
                        if m is None:
                            break
                        if m.get("key") == "register":
                            dest = m.get("payload", {}).get("id", "*")
                        print(json.dumps(m), flush=True)
                    if not data:
                        print("# client closed the connection", file=sys.stderr)
                        sel.unregister(conn.sock)
                        conn.close()
                        conn = None
                elif key.data == "stdin":
                    line = sys.stdin.readline()
                    if not line:
                        return 0
                    words = line.split()
                    if not words or not conn:
                        continue
                    if words[0] == "close":
                        sel.unregister(conn.sock)
                        conn.close()
                        conn = None
                        continue
                    if words[0] == "jobs":
                        rid = words[1] if len(words) > 1 else f"r-{next(ids)}"
                        msg = envelope("jobRequest", "request_jobs", {"requestId": rid}, dest)
                    elif words[0] == "token" and len(words) > 1:
                        rid = words[2] if len(words) > 2 else f"tr-{time.time_ns()}"
                        msg = envelope("message", "TOKEN_REFRESH_REQUEST",
                                       {"requestId": rid, "providerId": words[1]}, dest)
                    elif words[0] == "progress" and len(words) > 2:
                        ms = time.time_ns() // 10**6
                        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000))
                        msg = envelope("message", "PROGRESS_UPDATE",
                                       {"taskId": words[1], "status": words[2],
                                        "timestamp": f"{ts}.{ms % 1000:03d}Z"}, dest)
                    elif words[0] == "shutdown":
                        msg = envelope("message", "shutdown", {"signal": "SIGTERM"}, "*")
                    else:
                        msg = None
                    try:
                        if msg is None:
                            conn.send_raw(line.strip().encode("utf-8"))
                        else:
                            conn.send(msg)
                    except OSError as e:
                        print(f"# cannot send: {e}", file=sys.stderr)
            if time.monotonic() >= next_beat:
                next_beat += beat
                if conn:
                    try:
                        conn.send(envelope("heartbeat", "heartbeat",
                                           {"timestamp": int(time.time() * 1000)}, "*"))
                    except OSError as e:
                        print(f"# cannot send: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        return 0
    finally:
        lsock.close()
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
