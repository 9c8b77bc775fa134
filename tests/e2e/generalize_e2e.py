"""End to end: `dcs-conform generalize` on real recordings.

For each role, the reference pair runs through dcs-tap with --record for a
few hundred milliseconds (timers at DCS_TIME_SCALE=0.01), the side that is
not under test is stopped first (so the recording ends with the harness's
own close), the recording is generalized, and `dcs-conform run` plays the
case against a fresh copy of the program it was recorded from: it must
PASS. Two variants per role: the default crawl with token requests, and the
HMAC handshake of spec 10.3. A copy of one case with a literal changed must
FAIL, so that a PASS means something.

Usage: generalize_e2e.py [server|client]   (default: both)
Paths from the environment: DCS_TAP, DCS_CONFORM, DCS_SERVER, DCS_CLIENT;
DCS_PROFILES (default: conformance/profiles of this tree) holds the jobs
and tokens files. Without dcs-tap the test is skipped. Prints TAP.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.environ.get("DCS_PROFILES") or os.path.join(HERE, "..", "..", "conformance", "profiles")
SCALE = "0.01"
RUN_FOR = 0.5  # seconds the recorded pair talks


class Tap:
    """TAP output: one line per check, the plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {desc}", flush=True)
        if not cond:
            self.failed += 1
            for line in str(detail or "").splitlines()[-40:]:
                print(f"# {line}", flush=True)
        return cond

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


def program(var):
    path = os.environ.get(var, "")
    return path if path and os.access(path, os.X_OK) else None


class Procs:
    """The processes of one scenario; whatever is left is killed at the end."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.live = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=env, cwd=self.tmp)
        log.close()
        self.live.append(p)
        return p

    def stop(self, p, timeout=10.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def kill_all(self):
        for p in self.live:
            if p.poll() is None:
                p.kill()
                p.wait()


def wait_for(path, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def env_scaled():
    env = dict(os.environ)
    env["DCS_TIME_SCALE"] = SCALE
    return env


def record(t, tmp, role, server_args, client_args, name):
    """Run the pair through the tap, recording the role; return the file."""
    procs = Procs(tmp)
    up, tapsock = os.path.join(tmp, "up.sock"), os.path.join(tmp, "tap.sock")
    rec = os.path.join(tmp, name + ".rec.dcst")
    try:
        srv = procs.start(name + "-server", [program("DCS_SERVER"), "--socket", up] + server_args,
                          env_scaled())
        if not t.ok(wait_for(up), f"{name}: dcs-server listens"):
            return None
        tap = procs.start(name + "-tap", [program("DCS_TAP"), "--listen", tapsock, "--upstream", up,
                                          "--record", rec, "--role", role])
        if not t.ok(wait_for(tapsock), f"{name}: dcs-tap listens"):
            return None
        cli = procs.start(name + "-client", [program("DCS_CLIENT"), "--socket", tapsock] + client_args,
                          env_scaled())
        time.sleep(RUN_FOR)
        # The side the harness will play stops first: its close is the end.
        first, second = (cli, srv) if role == "server" else (srv, cli)
        procs.stop(first)
        time.sleep(0.02)
        procs.stop(tap)
        procs.stop(second)
    finally:
        procs.kill_all()
    for sock in (up, tapsock):
        if os.path.exists(sock):
            os.unlink(sock)
    text = open(rec).read() if os.path.exists(rec) else ""
    t.ok(re.search(r"^id rec-", text, re.M) and re.search(r"^(send|expect) ", text, re.M),
         f"{name}: the recording has a header and messages", text[-2000:])
    return rec


def generalize(t, tmp, rec, name):
    cases = os.path.join(tmp, name + "-cases")
    os.makedirs(cases, exist_ok=True)
    out = os.path.join(cases, name + ".dcst")
    r = subprocess.run([program("DCS_CONFORM"), "generalize", rec, "--id", "gen-e2e-" + name, "-o", out],
                       capture_output=True, text=True, timeout=60)
    if not t.ok(r.returncode == 0 and os.path.exists(out), f"{name}: generalize exits 0",
                f"exit {r.returncode}\n{r.stderr}"):
        return None, None
    return cases, open(out).read()


def run_case(cases, role, iut, profile=None):
    argv = [program("DCS_CONFORM"), "run", "--role", role, "--time-scale", SCALE, "--cases", cases]
    if profile:
        argv += ["--profile", profile]
    r = subprocess.run(argv + ["--"] + iut, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def steps(text):
    return [l for l in text.splitlines() if l.startswith(("send ", "expect "))]


def check_case(t, name, text, role, hmac):
    msgs = steps(text)
    t.ok(msgs and not any('"type":"heartbeat"' in l for l in msgs),
         f"{name}: no heartbeat steps are left", "\n".join(msgs[:20]))
    t.ok(not re.search(r'"timestamp":\d', "\n".join(msgs)),
         f"{name}: no envelope timestamp is left as recorded",
         "\n".join(l for l in msgs if re.search(r'"timestamp":\d', l)))
    t.ok(all('"timestamp":$NOW' in l for l in msgs if l.startswith("send ")),
         f"{name}: sends carry $NOW")
    t.ok(all(l.startswith("expect {\"origin\":$IUT_ID") for l in msgs if l.startswith("expect ")),
         f"{name}: the IUT's origin is $IUT_ID")
    if role == "server":
        t.ok('"requestId":$RID1:*string' in text and '"requestId":$RID1}' in text,
             f"{name}: the IUT's request ids are captured and sent back")
        t.ok(re.search(r'TOKEN_REFRESH_REQUEST.*"requestId":\$RID\d+:\*string', text) is not None,
             f"{name}: the token request's id is captured")
    else:
        t.ok('"pid":*integer' in text, f"{name}: the register's pid is *integer")
    if hmac:
        t.ok("\nrequires hmac\n" in text, f"{name}: the case requires hmac")
        if role == "server":
            t.ok('"nonce":$NONCE:*string' in text and '"hmac":$HMAC' in text,
                 f"{name}: the nonce is captured and the register answers with $HMAC")
        else:
            t.ok("\nvar NONCE \"" in text and '"nonce":$NONCE,"hmac":*string' in text,
                 f"{name}: the harness's nonce is a var, the IUT's hmac *string")


def scenario(t, tmp, role):
    jobs = os.path.join(PROFILES, "ref-jobs.json")
    tokens = os.path.join(PROFILES, "ref-tokens.json")
    scen = os.path.join(tmp, "scenario.json")
    with open(scen, "w") as f:
        f.write('{"tokenRefresh": true, "steps": 2}\n')
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(secret, 0o600)
    profile = os.path.join(tmp, "hmac.profile")
    with open(profile, "w") as f:
        f.write("feature hmac --secret-file {secret}\n")
    client_args = ["--jobs", jobs, "--tokens", tokens]
    server_args = ["--scenario", scen]
    iut = [program("DCS_SERVER")] + server_args if role == "server" else [program("DCS_CLIENT")] + client_args

    for hmac in (False, True):
        name = f"{role}-{'hmac' if hmac else 'crawl'}"
        extra = ["--secret-file", secret] if hmac else []
        rec = record(t, tmp, role, server_args + extra, client_args + extra, name)
        if not rec:
            continue
        cases, text = generalize(t, tmp, rec, name)
        if not cases:
            continue
        check_case(t, name, text, role, hmac)
        code, out = run_case(cases, role, iut, profile if hmac else None)
        t.ok(code == 0 and re.search(r"^PASS\s+gen-e2e-" + name, out, re.M) is not None,
             f"{name}: the generalized case passes against the program it was recorded from",
             f"exit {code}\n{out}\n--- the case ---\n{text}")
        if hmac:
            continue
        # A literal changed: the case must notice.
        bad = re.sub(r'"status":"completed"', '"status":"finished"', text, count=1) if role == "server" \
            else re.sub(r'"type":"copilot-study"', '"type":"other-app"', text, count=1)
        t.ok(bad != text, f"{name}: the case has a literal to change")
        badcases = cases + "-bad"
        os.makedirs(badcases, exist_ok=True)
        with open(os.path.join(badcases, "bad.dcst"), "w") as f:
            f.write(bad)
        code, out = run_case(badcases, role, iut)
        t.ok(code == 1 and re.search(r"^FAIL\s+gen-e2e-" + name, out, re.M) is not None,
             f"{name}: a changed literal makes it FAIL", f"exit {code}\n{out}")


def main():
    if not program("DCS_TAP"):
        print("1..0 # SKIP dcs-tap not built", flush=True)
        return 0
    missing = [v for v in ("DCS_CONFORM", "DCS_SERVER", "DCS_CLIENT") if not program(v)]
    if missing:
        print(f"1..0 # SKIP {', '.join(missing)} not set to a program", flush=True)
        return 0
    roles = sys.argv[1:] or ["server", "client"]
    t = Tap()
    for role in roles:
        if role not in ("server", "client"):
            print(f"usage: {sys.argv[0]} [server|client]", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="dcs-gen-") as tmp:
            try:
                scenario(t, tmp, role)
            except Exception:  # a broken scenario is one failed check
                import traceback
                t.ok(False, f"{role}: the scenario ran to its end", traceback.format_exc())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
