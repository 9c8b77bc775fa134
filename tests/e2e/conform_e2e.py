#!/usr/bin/env python3
"""End-to-end self-test of dcs-conform, the conformance harness.

Usage: conform_e2e.py SCENARIO   (DCS_CONFORM names the program)

Each scenario runs dcs-conform on small case catalogues of its own
(tests/data/conform/<catalogue>/) against a scripted fake IUT
(tests/data/conform/fake_iut.py) that behaves well or badly on purpose, and
checks that every verdict, every step kind, every run option and every
report is what spec/TRANSCRIPTS.md and conformance/REPORTS.md promise. The
fake logs everything it sees and does (one JSON object per line), so what the
harness wrote is checked from the other side of the socket too. Prints TAP.

Timing: the runs use --time-scale (0.1 mostly) and --slack 1000, and the
fake's deliberate timing errors (its timers scaled by the DCS_TIME_SCALE the
harness exports) sit a second or more beyond the bounds they break, so that a
loaded machine does not change a verdict; only bounds that follow from the
harness's own logic are checked tightly.
"""

import fnmatch
import glob
import hashlib
import hmac
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import run_scenario, write_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "data", "conform"))
FAKE = os.path.join(DATA, "fake_iut.py")
MARK = "# <- diverges"  # the step of a case where it is meant to diverge
# --slack for every run: room for the fake's own latency (it is Python, and
# the machine may be loaded); the catalogues keep the fake's deliberate
# timing errors at least a second beyond it.
SLACK = 1000

VERDICTS = ["PASS", "FAIL", "NON-STRICT", "INFORMATIONAL", "SKIP", "ERROR", "XFAIL", "XPASS"]


def conform_bin():
    return os.path.abspath(os.environ["DCS_CONFORM"])


def clean_env(extra=None):
    e = dict(os.environ)
    for k in ("SOCKET_PATH", "DCS_TIME_SCALE", "COPILOT_PROCESS_ID", "FAKETIME", "LD_PRELOAD"):
        e.pop(k, None)
    if extra:
        e.update(extra)
    return e


def run_cmd(argv, env=None, timeout=60):
    """dcs-conform ARGV (no IUT): (status, stdout, stderr)."""
    p = subprocess.run([conform_bin()] + list(argv), env=clean_env(env), capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def cat(name):
    return os.path.join(DATA, name)


def read_log(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
    return out


class Run:
    """One finished dcs-conform run and what the fake logged meanwhile."""

    def __init__(self, rc, out, err, report, log, dir_, work):
        self.rc, self.out, self.err, self.report = rc, out, err, report
        self.log, self.dir, self.work = log, dir_, work

    def cases(self):
        return self.report["cases"] if self.report else []

    def ids(self):
        return [c["id"] for c in self.cases()]

    def case(self, cid):
        for c in self.cases():
            if c["id"] == cid:
                return c
        return None

    def verdicts(self):
        return {c["id"]: c["verdict"] for c in self.cases()}

    def pids(self, cid):
        """The IUT processes the harness started for a case, in order."""
        c = self.case(cid) or {"wire": []}
        return [int(m) for w in c["wire"] if w["dir"] == "event"
                for m in re.findall(r"started the IUT(?: again)? \(pid (\d+)\)", w["data"])]

    def fake(self, pid=None, ev=None):
        return [r for r in self.log if (pid is None or r["pid"] == pid) and (ev is None or r["ev"] == ev)]

    def received(self, pid):
        """The messages the fake process pid read, as (raw text, decoded)."""
        return [(r["raw"], r["msg"]) for r in self.fake(pid, "msg")]

    def written(self, pid, tag):
        return [r for r in self.fake(pid, "wrote") if r.get("tag") == tag]

    def empty_work(self):
        return os.listdir(self.work) == []


_runs = [0]


def conform(tmp, role, cases, extra=(), fake=(), scale="0.1", command=None, env=None,
            json_report=True, timeout=150, slack=SLACK):
    """Run dcs-conform run --role ROLE --cases DATA/CASES [EXTRA] -- fake [FAKE]
    in a directory of its own (TMPDIR is its empty subdirectory tmp/)."""
    _runs[0] += 1
    d = os.path.join(tmp, "run%02d" % _runs[0])
    work = os.path.join(d, "tmp")
    os.makedirs(work)
    log = os.path.join(d, "fake.jsonl")
    argv = ["run", "--role", role, "--cases", cases if os.path.isabs(cases) else cat(cases)]
    if scale:
        argv += ["--time-scale", scale]
    if slack is not None:
        argv += ["--slack", str(slack)]
    rep = os.path.join(d, "report.json")
    if json_report:
        argv += ["--json", rep]
    argv += list(extra)
    if command is None:
        command = [sys.executable, FAKE, "--role", role, "--log", log] + list(fake)
    if command:
        argv += ["--"] + list(command)
    e = {"TMPDIR": work}
    e.update(env or {})
    rc, out, err = run_cmd(argv, env=e, timeout=timeout)
    report = None
    if json_report and os.path.exists(rep):
        with open(rep, encoding="utf-8") as f:
            report = json.load(f)
    return Run(rc, out, err, report, read_log(log), d, work)


def marked_line(path):
    """(number, text without the marker comment) of the line marked MARK."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if MARK in line:
                return n, line.split(MARK)[0].strip()
    raise AssertionError("no marked line in " + path)


def step_lines(path, prefix):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip().startswith(prefix):
                out.append(n)
    return out


def check_verdicts(t, run, want, what=""):
    got = run.verdicts()
    for cid, v in want.items():
        t.eq(got.get(cid), v, f"{what}{cid} is {v}")


def check_div(t, run, cid, actual, offset="skip", expected=None, conn=1):
    """The first divergence of case cid: its line and step are the marked
    line of its file, actual matches the regex, offset is as given (None:
    null, an int, or "skip")."""
    c = run.case(cid)
    if not t.ok(c is not None and c["divergence"] is not None, f"{cid}: a divergence is reported",
                c and {k: c[k] for k in ("verdict", "reason")}):
        return None
    d = c["divergence"]
    line, text = marked_line(c["file"])
    t.eq(d["line"], line, f"{cid}: the divergence is on the marked line of the case")
    t.eq(d["step"].split(" #")[0].strip(), text, f"{cid}: the step is reported as written")
    t.ok(re.search(actual, d["actual"]) is not None, f"{cid}: actual says what happened",
         f"actual: {d['actual']!r}\nwant:   {actual!r}")
    if expected is not None:
        t.ok(re.search(expected, d["expected"]) is not None, f"{cid}: expected says what was expected",
             f"expected: {d['expected']!r}\nwant:     {expected!r}")
    if offset != "skip":
        t.eq(d["offset"], offset, f"{cid}: the offset is where it happened in the IUT's stream")
    if conn is not None:
        t.eq(d["conn"], conn, f"{cid}: the connection is reported")
    t.ok(c["reason"] and d["actual"] in c["reason"], f"{cid}: the reason holds the divergence", c["reason"])
    return d


def tag_offset(run, cid, tag, byte=None):
    """Where the fake wrote its message tagged tag in case cid (plus the
    index of byte in it)."""
    pids = run.pids(cid)
    w = run.written(pids[0], tag) if pids else []
    if not w:
        return "fake wrote no " + tag
    off = w[0]["offset"]
    if byte is not None:
        off += bytes.fromhex(w[0]["hex"]).index(byte)
    return off


def stream(records, conn):
    return b"".join(bytes.fromhex(r["hex"]) for r in records if r["conn"] == conn)


# --------------------------------------------------------------------------
# cli


def scenario_cli(t, tmp):
    """--help, --version, exit status 2 with a one-line message for bad
    options, --list, the list and check commands."""
    for argv in (["--help"], ["-h"], ["run", "--help"]):
        rc, out, err = run_cmd(argv)
        t.eq(rc, 0, f"{' '.join(argv)} exits 0")
        t.ok(out.startswith("usage: dcs-conform run") and "exit status" in out and err == "",
             f"{' '.join(argv)}: the usage on standard output", out + err)
    rc, help_text, err = run_cmd(["--help"])
    rc, out, err = run_cmd(["run", "--role", "client", "--list", "--workdir", tmp, "--cases", cat("jobs")])
    t.ok(rc != 0 or "--workdir" in help_text, "every option run accepts (--workdir) is in --help",
         "--workdir is accepted but --help does not mention it")
    for argv in (["--version"], ["-V"]):
        rc, out, err = run_cmd(argv)
        t.eq(rc, 0, f"{argv[0]} exits 0")
        t.ok(re.fullmatch(r"dcs-conform \d+\.\d+\.\d+\n", out) is not None and err == "",
             f"{argv[0]}: 'dcs-conform X.Y.Z'", out + err)
    rc, out, err = run_cmd([])
    t.ok(rc == 2 and out == "" and "usage:" in err, "no arguments: the usage on stderr, exit 2", (rc, out, err))

    jobs = cat("jobs")
    bad = [
        ["frob"],
        ["run", "--cases", jobs, "--", "true"],
        ["run", "--role", "peer", "--cases", jobs, "--", "true"],
        ["run", "--role"],
        ["run", "--role", "client", "--cases", jobs],
        ["run", "--role", "client", "--attach", "--cases", jobs],
        ["run", "--role", "client", "--attach", "--socket", os.path.join(tmp, "s"), "--cases", jobs,
         "--", "true"],
        ["run", "--role", "client", "--jobs", "0", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--jobs", "65", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--jobs", "two", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--time-scale", "0", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--time-scale", "-1", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--time-scale", "fast", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--slack", "abc", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--tolerance", "-5", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--startup", "x", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--shuffle", "abc", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--env", "NOEQUALS", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--bogus", "--cases", jobs, "--", "true"],
        ["run", "--role", "client", "--cases", os.path.join(tmp, "no-such-dir"), "--", "true"],
        ["run", "--role", "client", "--profile", os.path.join(tmp, "no-such-profile"), "--cases", jobs,
         "--", "true"],
        ["run", "--role", "client", "--expect", os.path.join(tmp, "no-such-list"), "--cases", jobs,
         "--", "true"],
    ]
    bad_profile = write_file(os.path.join(tmp, "bad.profile"), "feature hmac\nclaims everything\n")
    bad.append(["run", "--role", "client", "--profile", bad_profile, "--cases", jobs, "--", "true"])
    for argv in bad:
        rc, out, err = run_cmd(argv)
        lines = err.splitlines()
        t.ok(rc == 2 and out == "" and len(lines) == 1 and "dcs-conform" in lines[0],
             "refused with status 2 and one line: " + " ".join(a if tmp not in a else "TMP" for a in argv),
             (rc, out, err))

    # --list: the order a run would take, sanity first and last, nothing run
    v = cat("verdicts")
    rc, out, err = run_cmd(["run", "--role", "client", "--list", "--cases", v])
    ids = out.split()
    t.eq(rc, 0, "--list exits 0 without a COMMAND")
    t.ok(ids[:1] == ["0-client-sanity"] and ids[-1:] == ["0-client-sanity#end"],
         "--list: the sanity case first and again last as ID#end", ids)
    t.ok("4-server-role" not in ids and "2-fail-crash" in ids
         and os.path.join(v, "error", "unreadable.dcst") in ids,
         "--list: the cases of the role, the unreadable one by its path", ids)
    t.eq(len(ids), 32, "--list: every client case of the catalogue")
    rc, out, err = run_cmd(["list", "--cases", v, "--role", "server"])
    t.ok(rc == 0 and [ln.split()[:2] for ln in out.splitlines()] == [["4-server-role", "server"]],
         "list --role server: id, role and title of the server cases", out)
    rc, out, err = run_cmd(["check", "--cases", v])
    t.ok(rc == 1 and "unreadable.dcst:6" in err and "1 unreadable" in out,
         "check: exit 1 and names the case that cannot be read", (rc, out, err))
    rc, out, err = run_cmd(["check", "--cases", cat("jobs")])
    t.ok(rc == 0 and "0 unreadable" in out, "check: exit 0 on a readable catalogue", (rc, out, err))

    dup = os.path.join(tmp, "dup", "x")
    os.makedirs(dup)
    for n in ("a", "b"):
        write_file(os.path.join(dup, n + ".dcst"), "id same-id\ntitle t\nrole client\naccept\n")
    rc, out, err = run_cmd(["run", "--role", "client", "--cases", os.path.dirname(dup), "--", "true"])
    t.ok(rc == 2 and "same-id" in err and len(err.splitlines()) == 1,
         "two cases with one id: status 2 and one line", (rc, out, err))
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    rc, out, err = run_cmd(["run", "--role", "client", "--cases", empty, "--", "true"])
    t.ok(rc == 2 and len(err.splitlines()) == 1, "a catalogue without cases: status 2", (rc, out, err))


# --------------------------------------------------------------------------
# verdicts


def scenario_verdicts(t, tmp):
    """Every verdict, and every kind of FAIL with its exact first divergence
    (line, step, expected, actual, offset), against a client that misbehaves
    in one way per case."""
    r = conform(tmp, "client", "verdicts")
    t.eq(r.rc, 1, "a run with FAIL and ERROR cases exits 1")
    ids = r.ids()
    t.eq(len(ids), 32, "every client case ran (the server case is not selected)")
    t.ok(ids[0] == "0-client-sanity" and ids[-1] == "0-client-sanity#end",
         "the sanity case ran first and last", ids)
    unreadable = os.path.join(cat("verdicts"), "error", "unreadable.dcst")
    want = {
        "0-client-sanity": "PASS", "0-client-sanity#end": "PASS",
        "1-pass-answer": "PASS", "1-pass-connections": "PASS", "1-pass-expressions": "PASS",
        "1-pass-slow-close": "PASS", "2-fail-reconnect-early-slow": "FAIL",
        "2-fail-wrong-value": "FAIL", "2-fail-missing": "FAIL", "2-fail-too-early": "FAIL",
        "2-fail-too-late": "FAIL", "2-fail-close-instead": "FAIL", "2-fail-bad-utf8": "FAIL",
        "2-fail-garbage": "FAIL", "2-fail-expect-none": "FAIL", "2-fail-expect-close": "FAIL",
        "2-fail-no-connect": "FAIL", "2-fail-reconnect-early": "FAIL",
        "2-fail-reconnect-late": "FAIL", "2-fail-either": "FAIL", "2-fail-crash": "FAIL",
        "2-fail-exit": "FAIL", "2-fail-continued-step": "FAIL",
        "3-should-fail": "NON-STRICT", "3-should-pass": "PASS", "3-should-crash": "FAIL",
        "3-info-fail": "INFORMATIONAL", "3-info-pass": "INFORMATIONAL",
        "4-skip-feature": "SKIP", "4-skip-timing": "SKIP",
        unreadable: "ERROR", "5-error-undefined-var": "ERROR",
    }
    check_verdicts(t, r, want)
    counts = {v: sum(1 for c in r.cases() if c["verdict"] == v) for v in VERDICTS}
    t.eq(r.report["counts"], counts, "the counts are those of the case list")
    line = ", ".join("%d %s" % (sum(1 for x in want.values() if x == v), v) for v in VERDICTS)
    t.ok(re.search("^" + re.escape(line) + " in ", r.out, re.M) is not None, "the console's summary line",
         f"want: {line}\n" + r.out[-300:])
    t.ok(all(c["divergence"] is None for c in r.cases() if c["verdict"] == "PASS"),
         "no divergence for PASS")

    win1 = r"within 1000 ms \(100\.0 ms at this scale\)$"
    win24 = r"within 2000\.\.4000 ms \(200\.0\.\.400\.0 ms at this scale\)$"
    hi1, hi24 = "%.1f" % (100 + SLACK), "%.1f" % (400 + SLACK)  # the upper bounds with the slack
    check_div(t, r, "2-fail-wrong-value",
              r'^payload\.n: expected 1, found 2; the message \(after [0-9.]+ ms\): '
              r'\{"origin":"web-server",.*"key":"answer","payload":\{"n":2\}',
              offset=tag_offset(r, "2-fail-wrong-value", "answer"),
              expected=r'^\{"type":"message","key":"answer","payload":\{"n":1\}\} ' + win1)
    d = check_div(t, r, "2-fail-missing", r"^nothing arrived within %s ms$" % re.escape(hi1), offset=None,
                  expected=r'^\{"type":"message","key":"answer"\} ' + win1)
    if d:
        t.ok(d["elapsed_ms"] >= 100 + SLACK, "2-fail-missing: it failed when the window (and slack) ended", d)
    check_div(t, r, "2-fail-too-early", r'^it came too early(, after [0-9.]+ ms|: it had arrived [0-9.]+ ms before the step): \{.*"key":"answer"',
              offset=tag_offset(r, "2-fail-too-early", "answer"),
              expected=r"within 5000\.\.8000 ms \(500\.0\.\.800\.0 ms at this scale\)$")
    check_div(t, r, "2-fail-too-late",
              r"^(nothing arrived within %s ms|nothing matching within the window; the next message "
              r"came after [0-9.]+ ms: .*)$" % re.escape(hi24), expected=win24)
    eof = sum(w["len"] for pid in r.pids("2-fail-close-instead")[:1] for w in r.fake(pid, "wrote")
              if w["conn"] == 1)
    check_div(t, r, "2-fail-close-instead", r"^the IUT closed the connection after [0-9.]+ ms$", offset=eof)
    d = check_div(t, r, "2-fail-bad-utf8",
                  r"^the IUT wrote bytes that are not a valid message: bad_utf8 at offset \d+ ",
                  offset=tag_offset(r, "2-fail-bad-utf8", "bad", b"\xff"))
    if d:
        t.ok(f"at offset {d['offset']} " in d["actual"], "2-fail-bad-utf8: the codec's offset in the text")
    check_div(t, r, "2-fail-garbage",
              r"^the IUT wrote bytes that are not a valid message: garbage at offset \d+ ",
              offset=tag_offset(r, "2-fail-garbage", "bad", b"h"))
    check_div(t, r, "2-fail-expect-none", r'^after [0-9.]+ ms: \{.*"key":"noise"',
              offset=tag_offset(r, "2-fail-expect-none", "noise"),
              expected=r'^no message matching \{"type":"message","key":"noise"\} for 20000 ms '
                       r'\(2000\.0 ms at this scale\)$')
    check_div(t, r, "2-fail-expect-close", r"^the connection was still open after %s ms$" % re.escape(hi1),
              offset=None, expected=r"^the IUT closes connection 1 " + win1)
    check_div(t, r, "2-fail-no-connect", r"^the IUT connected after [0-9.]+ ms$", offset=None,
              expected=r"^no connection for 20000 ms \(2000\.0 ms at this scale\)$")
    check_div(t, r, "2-fail-reconnect-early", r"^it connected too early, after [0-9.]+ ms$", offset=None,
              expected=r"^the IUT connects again within 10000\.\.20000 ms \(1000\.0\.\.2000\.0 ms at this "
                       r"scale\)$")
    # the fake reconnects 2.5 s after the close: 1.1 s after 400 ms + the slack
    # a close behind a message delivered a byte at a time (over 200 ms) counts
    # from the message's first byte (spec/TRANSCRIPTS.md 2): the fake
    # reconnected 500 ms after it (1-pass-slow-close passes) or 250 ms after
    # it, which is early from there too and is reported from both references
    d = check_div(t, r, "2-fail-reconnect-early-slow",
                  r"^it connected too early, after [0-9.]+ ms \(([0-9.]+) ms after the earlier event its lower "
                  r"bound counts from\)$", offset=None,
                  expected=r"^the IUT connects again within 4000\.\.6000 ms \(400\.0\.\.600\.0 ms at this "
                           r"scale\)$")
    if d:
        m = re.search(r"after ([0-9.]+) ms \(([0-9.]+) ms", d["actual"])
        t.ok(m and float(m.group(1)) < 150 and 240 <= float(m.group(2)) < 390,
             "2-fail-reconnect-early-slow: about 50 ms after the end of stream, 250 ms after the notice's "
             "first byte", d["actual"])
    check_div(t, r, "2-fail-reconnect-late",
              r"^(no connection within %s ms|it connected late, after [0-9.]+ ms)$" % re.escape(hi24), offset=None,
              expected=r"^the IUT connects again " + win24)
    d = check_div(t, r, "2-fail-either", r"^none was met: \(1\) line \d+: .*; \(2\) line \d+: ",
                  expected=r"^one of 2 alternatives$")
    if d:
        l1, l2 = step_lines(r.case("2-fail-either")["file"], "expect")[1:3]
        t.ok(f"(1) line {l1}: " in d["actual"] and 'key: expected "first", found "other"' in d["actual"]
             and f"(2) line {l2}: " in d["actual"] and 'key: expected "second", found "other"' in d["actual"],
             "2-fail-either: each alternative's first divergence is listed", d["actual"])
    for cid, what in (("2-fail-crash", r"killed by signal 11 \(Segmentation fault\)"),
                      ("2-fail-exit", r"exited with status 3")):
        c = r.case(cid)
        d = c["divergence"] or {}
        t.ok(d.get("line") == 0 and re.search(what, d.get("actual", "")) and "the IUT" in c["reason"],
             f"{cid}: every step was met, but the IUT's end fails the case", c["reason"])
    c = r.case("3-should-crash")
    t.ok(c and "signal 11" in (c["reason"] or ""), "3-should-crash: the crash is the reason", c and c["reason"])
    c = r.case("2-fail-continued-step")
    d = (c or {}).get("divergence") or {}
    t.ok(c and d.get("line") == step_lines(c["file"], 'expect {"type":"message","key":"answer",')[0]
         and '"payload":{"n":1}' in d.get("step", "") and "\\" not in d.get("step", ""),
         "a step written over two lines: its line and the whole step are reported", d.get("step"))
    for cid, v in (("3-should-fail", "NON-STRICT"), ("3-info-fail", "INFORMATIONAL")):
        check_div(t, r, cid, r"^payload\.n: expected 1, found 2; ", offset=tag_offset(r, cid, "answer"))
    t.eq(r.case("3-info-pass")["divergence"], None, "3-info-pass: INFORMATIONAL without a divergence")
    t.ok("'commands'" in r.case("4-skip-feature")["reason"], "4-skip-feature: the reason names the feature",
         r.case("4-skip-feature")["reason"])
    t.ok(r.case("4-skip-timing")["reason"].startswith("timing not honourable at this time scale"),
         "4-skip-timing: the reason of spec/TRANSCRIPTS.md 2", r.case("4-skip-timing")["reason"])
    t.ok(r.pids("4-skip-feature") == [] and r.pids("4-skip-timing") == [],
         "a SKIP case does not start the IUT")
    c = r.case(unreadable)
    t.ok(c is not None and "unreadable.dcst:6" in c["reason"] and "frobnicate" in c["reason"],
         "a case that cannot be read is an ERROR with the file, line and reason", c and c["reason"])
    t.ok("$NO_SUCH_VAR" in r.case("5-error-undefined-var")["reason"],
         "an undefined variable is an ERROR that names it", r.case("5-error-undefined-var")["reason"])
    t.ok(r.empty_work(), "no directory is left in TMPDIR", os.listdir(r.work))

    # a case file with CRLF line ends (made here: editors and git may change
    # the line ends of a file in the tree)
    gen = os.path.join(tmp, "crlf", "crlf")
    os.makedirs(gen)
    with open(os.path.join(gen, "crlf.dcst"), "wb") as f:
        f.write(b'id 2-fail-crlf\r\ntitle A case with CRLF line ends\r\nrole client\r\nwindow 1s\r\n\r\n'
                b'accept\r\nexpect {"type":"command","key":"register"}\r\n'
                b'expect {"type":"message","key":"never"}\r\n')
    r = conform(tmp, "client", os.path.dirname(gen))
    c = r.case("2-fail-crlf")
    d = (c or {}).get("divergence") or {}
    t.ok(c and c["verdict"] == "FAIL" and d.get("line") == 8
         and d.get("step") == 'expect {"type":"message","key":"never"}',
         "CRLF line ends: the step is reported without its CR", d.get("step"))


# --------------------------------------------------------------------------
# server role


def scenario_server(t, tmp):
    """The harness as the client of a fake server: connect, close, restart,
    a wrong value with its offset."""
    r = conform(tmp, "server", "server")
    t.eq(r.rc, 1, "a run with a FAIL exits 1")
    check_verdicts(t, r, {"0-server-sanity": "PASS", "0-server-sanity#end": "PASS",
                          "9-server-answer": "PASS", "9-server-connections": "PASS",
                          "9-server-restart": "PASS", "9-server-wrong-value": "FAIL"})
    check_div(t, r, "9-server-wrong-value", r"^payload\.list\[2\]: expected 4, found 3; ",
              offset=tag_offset(r, "9-server-wrong-value", "answer"))
    pids = r.pids("9-server-restart")
    t.ok(len(pids) == 2 and pids[0] != pids[1], "restart started a second server process", pids)
    if len(pids) == 2:
        t.ok(r.fake(pids[0], "sigterm") != [], "restart stopped the first one with SIGTERM")
        infos = [w for p in pids for w in r.written(p, "info")]
        t.eq([json.loads(w["data"])["payload"]["pid"] for w in infos], pids,
             "the harness talked to each process in turn")
    pid = r.pids("9-server-connections")[0]
    got = [m for _, m in r.received(pid)]
    t.ok(len(r.fake(pid, "open")) == 2 and got[0]["key"] == "register",
         "close and connect: the server saw two connections", got)
    reg = r.received(r.pids("9-server-answer")[0])[0][0]
    t.ok(re.fullmatch(r'\{"origin":"web-server","destination":"external-crawler","type":"command",'
                      r'"key":"register","payload":\{"id":"web-server","pid":1,"type":"dcs-conform"\},'
                      r'"timestamp":\d+\}', reg) is not None,
         "as the client, the harness completes its envelopes with its own id", reg)
    t.ok(r.empty_work(), "no directory is left in TMPDIR", os.listdir(r.work))


# --------------------------------------------------------------------------
# --expect


def scenario_expect(t, tmp):
    """XFAIL and XPASS with --expect; a stale id in the list is status 2."""
    lst = write_file(os.path.join(tmp, "expect.txt"),
                     "# cases known to fail\n\n2-fail-wrong-value   # see issue 1\n3-should-fail\n"
                     "1-pass-answer\n")
    flt = ["--filter", "2-fail-wrong-value", "--filter", "1-pass-answer", "--filter", "3-should-[fp]*",
           "--filter", "4-skip-feature"]
    r = conform(tmp, "client", "verdicts", ["--expect", lst] + flt)
    check_verdicts(t, r, {"2-fail-wrong-value": "XFAIL", "1-pass-answer": "XPASS",
                          "3-should-pass": "PASS", "4-skip-feature": "SKIP",
                          "0-client-sanity": "PASS"})
    t.ok(r.case("3-should-fail")["verdict"] in ("XFAIL", "NON-STRICT"),
         "a listed SHOULD that is missed does not fail the run", r.case("3-should-fail")["verdict"])
    t.eq(r.rc, 1, "an XPASS fails the run")
    c = r.case("2-fail-wrong-value")
    t.ok(c["divergence"] is not None and "payload.n" in c["reason"],
         "XFAIL keeps the reason and the divergence", c["reason"])
    t.ok("--expect" in r.case("1-pass-answer")["reason"], "XPASS says it is listed in --expect",
         r.case("1-pass-answer")["reason"])
    r = conform(tmp, "client", "verdicts", ["--expect", lst, "--filter", "2-fail-wrong-value"])
    t.eq(r.verdicts().get("2-fail-wrong-value"), "XFAIL", "XFAIL alone ...")
    t.eq(r.rc, 0, "... does not fail the run")
    stale = write_file(os.path.join(tmp, "stale.txt"), "2-fail-wrong-value\n9.9-no-such-case\n")
    r = conform(tmp, "client", "verdicts", ["--expect", stale])
    lines = r.err.splitlines()
    t.ok(r.rc == 2 and len(lines) == 1 and "9.9-no-such-case" in lines[0] and r.log == [],
         "a stale id in the expect file: status 2, one line naming it, nothing run", (r.rc, r.err))


# --------------------------------------------------------------------------
# errors of the harness


def scenario_errors(t, tmp):
    """An IUT command that does not exist (ERROR; with --reuse the run cannot
    start: status 2); an IUT that never connects or never listens (FAIL at
    accept / connect)."""
    for role in ("client", "server"):
        r = conform(tmp, role, "attach", command=[os.path.join(tmp, "no-such-iut"), "--flag"])
        t.eq(r.rc, 1, f"{role}: an IUT that cannot be started fails the run")
        t.ok(r.cases() and all(c["verdict"] == "ERROR" and "no-such-iut" in c["reason"] for c in r.cases()
                               if c["verdict"] != "SKIP"),
             f"{role}: every case that needs the IUT is an ERROR naming the command",
             [(c["id"], c["verdict"], c["reason"]) for c in r.cases()])
    # an IUT that never connects (client) / never listens (server)
    r = conform(tmp, "client", "verdicts", ["--startup", "300", "--filter", "1-pass-answer"],
                fake=["--no-connect"])
    c = r.case("1-pass-answer")
    d = (c or {}).get("divergence") or {}
    t.ok(c and c["verdict"] == "FAIL" and d.get("line") == step_lines(c["file"], "accept")[0]
         and re.fullmatch(r"no connection within [0-9.]+ ms", d.get("actual", "")),
         "a client that never connects fails accept", c and c["reason"])
    r = conform(tmp, "server", "server", ["--startup", "300", "--filter", "9-server-answer"],
                command=[sys.executable, FAKE, "--role", "client", "--no-connect", "--log",
                         os.path.join(tmp, "never.jsonl")])
    c = r.case("9-server-answer")
    d = (c or {}).get("divergence") or {}
    t.ok(c and c["verdict"] == "FAIL" and d.get("line") == step_lines(c["file"], "connect")[0]
         and d.get("actual") == "connect failed: No such file or directory",
         "a server that never listens fails connect", c and c["reason"])
    r = conform(tmp, "client", "jobs", ["--reuse"], command=[os.path.join(tmp, "no-such-iut")])
    t.ok(r.rc == 2 and len(r.err.splitlines()) == 1 and "no-such-iut" in r.err,
         "--reuse with an IUT that cannot be started: status 2, one line", (r.rc, r.err))


# --------------------------------------------------------------------------
# sending


def scenario_send(t, tmp):
    """send and send-raw, byte for byte on the fake's side: envelope
    completion, variables, captures, chunks, split, pause, repeat."""
    t_start = int(time.time() * 1000)
    r = conform(tmp, "client", "send")
    t_end = int(time.time() * 1000)
    check_verdicts(t, r, {"6-send-complete": "PASS", "6-send-vars": "PASS", "6-send-capture": "PASS",
                          "6-send-raw": "PASS", "6-send-capture-mismatch": "FAIL"})
    check_div(t, r, "6-send-capture-mismatch",
              r'^payload\.token: expected \$TOK = "tok-123", found "tok-456"; ',
              offset=tag_offset(r, "6-send-capture-mismatch", "second"))

    o, d = '"origin":"external-crawler"', '"destination":"web-server"'
    msgs = [raw for raw, _ in r.received(r.pids("6-send-complete")[0])][:-1]
    ts = r'"timestamp":(\d+)\}'
    want = [
        r'\{' + o + ',' + d + r',"type":"message","key":"plain",' + ts,
        r'\{' + o + ',' + d + r',"type":"message","key":"with-payload","payload":\{"a":\[1,2\],'
        r'"timestamp":5\},' + ts,
        r'\{' + d + r',"origin":"someone","type":"message","key":"with-origin",' + ts,
        r'\{' + o + r',"destination":"elsewhere","type":"message","key":"with-destination",' + ts,
        r'\{' + o + ',' + d + r',"type":"message","key":"with-timestamp","timestamp":7\}',
        r'\{"origin":"o","destination":"d","type":"message","key":"complete","timestamp":8\}',
        r'\{' + o + ',' + d + ',' + ts,
        r'\{' + o + ',' + d + r',"type" : "message" , "key" : "spaced" ,' + ts,
    ]
    t.eq(len(msgs), len(want), "send: the fake read one message per send")
    names = ["plain", "payload (a nested timestamp is not the envelope's)", "origin given",
             "destination given", "timestamp given", "complete", "empty object", "spaced"]
    for raw, w, name in zip(msgs, want, names):
        m = re.fullmatch(w, raw)
        t.ok(m is not None and all(t_start <= int(g) <= t_end for g in m.groups()),
             f"send completes the envelope in the spec's order: {name}", raw)

    got = {m["key"]: m for _, m in r.received(r.pids("6-send-vars")[0])}
    p = got.get("vars", {}).get("payload", {})
    t.ok(p.get("iut") == "web-server" and p.get("peer") == "external-crawler" and p.get("conn") == 1,
         "$IUT_ID, $PEER_ID (client IUT) and $CONN", p)
    t.ok(t_start <= p.get("now", 0) <= t_end and p.get("now") == got["vars"]["timestamp"],
         "$NOW is the wall clock in ms when the step runs", p)
    t.ok(p.get("n") == 42 and p.get("word") == "two words" and p.get("bare") == "plain text"
         and p.get("q") == 'a"b' and p.get("obj") == {"k": [1, True, None]},
         "var values: JSON as JSON, other text as a string", p)
    q = got.get("interp", {}).get("payload", {})
    t.eq(q.get("text"), 'iut=web-server peer=external-crawler n=42 w=two words b=plain text q=a"b',
         "${NAME} inside a string is replaced by the variable's text")
    t.eq(q.get("dollar"), "$N stays", "$NAME inside a string is left alone")
    reps = [m["payload"] for _, m in r.received(r.pids("6-send-vars")[0]) if m.get("key") == "rep"]
    t.eq(reps, [{"i": 1, "s": "i=1"}, {"i": 2, "s": "i=2"}, {"i": 3, "s": "i=3"}], "repeat 3: $I is 1, 2, 3")

    got = [m for _, m in r.received(r.pids("6-send-capture")[0])]
    echo = [m["payload"] for m in got if m.get("key") == "echo"]
    t.eq(echo, [{"tok": "tok-123", "n": 5, "s": "t=tok-123/5"}], "a captured value is reused by send")

    pid = r.pids("6-send-raw")[0]
    reads = [(rec["t"], bytes.fromhex(rec["hex"])) for rec in r.fake(pid, "read") if rec["conn"] == 1]
    data = b"".join(b for _, b in reads)
    bounds, pos = [], 0
    times = {}
    for tm, b in reads:
        pos += len(b)
        bounds.append(pos)
        times[pos] = tm

    def raw(key):
        return ('{"origin":"x","destination":"y","type":"message","key":"%s"}' % key).encode()

    s1 = ('{"origin":"x","destination":"y","type":"message","key":"raw-string","payload":"\u00e9\\n"}'
          .encode("utf-8"))
    t.ok(s1 in data, "send-raw STRING writes the unescaped bytes exactly", data[:400])
    t.ok(raw("raw-hex") in data, "send-raw hex: writes the bytes exactly")
    t.ok(raw("raw-repeat") * 3 in data, "send-raw ... repeat 3: three times back to back")

    def inner(msg):
        """The read boundaries strictly inside msg, relative to its start."""
        at = data.find(msg)
        if at < 0:
            return None, at
        return [b - at for b in bounds if at < b < at + len(msg)], at

    m = raw("chunks-1")
    got_b, at = inner(m)
    t.eq(got_b, list(range(1, len(m))), "chunks 1: the fake read every byte on its own")
    m = raw("split")
    got_b, at = inner(m)
    t.eq(got_b, [5, 20, 21], "split 5,20,21: the reads end at those offsets")
    m = raw("pause")
    got_b, at = inner(m)
    t.eq(got_b, list(range(20, len(m), 20)), "chunks 20: pieces of 20 bytes")
    if got_b == list(range(20, len(m), 20)):
        gaps = [times[at + b] - times[at + a] for a, b in zip(got_b, got_b[1:])]
        t.ok(gaps and all(g >= 0.095 for g in gaps), "pause 1s: 100 ms (scaled) between the pieces", gaps)
    sc = [raw_ for raw_, m_ in r.received(pid) if m_.get("key") == "send-chunks"]
    t.ok(len(sc) == 2, "send ... repeat 2 chunks 7: two messages", sc)
    if len(sc) == 2:
        plan = (sc[0] + sc[1]).encode()
        at = data.find(plan)
        t.eq([b - at for b in bounds if at < b < at + len(plan)], list(range(7, len(plan), 7)),
             "chunks apply to the whole write plan of a repeat")

    # other ids: --iut-id and --peer-id
    r = conform(tmp, "client", "send", ["--iut-id", "fake-7", "--peer-id", "harness-9", "--filter",
                                        "6-send-complete"],
                fake=["--id", "fake-7", "--peer", "harness-9"])
    check_verdicts(t, r, {"6-send-complete": "PASS"}, "--iut-id/--peer-id: ")
    pid = r.pids("6-send-complete")[0] if r.pids("6-send-complete") else None
    first = r.received(pid)[0][0] if pid and r.received(pid) else ""
    t.ok(first.startswith('{"origin":"harness-9","destination":"fake-7","type":"message","key":"plain"'),
         "--iut-id and --peer-id are the ids send completes with", first)


# --------------------------------------------------------------------------
# steps


def scenario_steps(t, tmp):
    """wait, either (and what a failed alternative leaves behind),
    ignore/unignore, expect-any, expect-error, socket remove/stale/listen,
    restart and kill."""
    prof = write_file(os.path.join(tmp, "errlog.profile"), "feature error-log\n")
    r = conform(tmp, "client", "steps", ["--profile", prof])
    check_verdicts(t, r, {"7-either-second": "PASS", "7-ignore": "PASS", "7-kill": "PASS",
                          "7-restart": "PASS", "7-socket": "PASS", "7-wait": "PASS",
                          "7-unignore-fails": "FAIL", "7-either-undo-capture": "PASS",
                          "7-expect-any-fails": "FAIL", "7-expect-error": "PASS",
                          "7-expect-error-missing": "FAIL", "7-expect-error-offset": "FAIL"})
    check_div(t, r, "7-unignore-fails", r'^key: expected "answer", found "noise"; ',
              offset=tag_offset(r, "7-unignore-fails", "noise"))
    hi1 = re.escape("%.1f" % (100 + SLACK))
    check_div(t, r, "7-expect-any-fails", r"^nothing matching arrived within %s ms \(other messages did\)$" % hi1,
              offset=None, expected=r'^some message matching \{"type":"message","key":"answer"\} within 1000 ms')
    check_div(t, r, "7-expect-error-missing", r"^no such line in the IUT's log within %s ms$" % hi1, offset=None,
              expected=r"^the IUT logs bad_json$")
    check_div(t, r, "7-expect-error-offset", r"^no such line in the IUT's log within %s ms$" % hi1, offset=None,
              expected=r"^the IUT logs bad_utf8 at 57$")
    r2 = conform(tmp, "client", "steps", ["--filter", "7-expect-error"])
    t.ok(r2.case("7-expect-error") and r2.case("7-expect-error")["verdict"] == "SKIP",
         "expect-error without a profile claiming error-log: SKIP", r2.verdicts())

    c = r.case("7-wait")
    outs = [w for w in c["wire"] if w["dir"] == "out"]
    ta = [w["t_ms"] for w in outs if "before-wait" in w["data"]]
    tb = [w["t_ms"] for w in outs if "after-wait" in w["data"]]
    t.ok(ta and tb and tb[0] - ta[0] >= 300.0, "wait 3s at time scale 0.1 waits 300 ms", (ta, tb))

    pids = r.pids("7-socket")
    probes = [p["result"] for p in r.fake(pids[0], "probe")] if pids else []
    t.eq(probes, ["ENOENT", "ECONNREFUSED", "ok"],
         "socket remove / stale / listen: the client finds no file, a refusing socket, a listener")

    pids = r.pids("7-restart")
    t.ok(len(pids) == 2 and pids[0] != pids[1], "restart: a new process with another pid", pids)
    if len(pids) == 2:
        t.ok(r.fake(pids[0], "sigterm") != [] and r.fake(pids[1], "start") != [],
             "restart: SIGTERM to the first process, then the second one ran")
        regs = [w for p in pids for w in r.written(p, "register")]
        t.eq([json.loads(w["data"])["payload"]["pid"] for w in regs], pids,
             "restart: each process registered on its own connection")
    pids = r.pids("7-kill")
    t.ok(len(pids) == 2 and pids[0] != pids[1], "kill then restart: a new process with another pid", pids)
    if len(pids) == 2:
        t.eq(r.fake(pids[0], "sigterm"), [], "kill: SIGKILL, not SIGTERM")
        ev = " | ".join(w["data"] for w in r.case("7-kill")["wire"] if w["dir"] == "event")
        t.ok("killed the IUT" in ev and "signal 9" in ev, "kill: the wire log says how it ended", ev)
    t.ok(r.empty_work(), "no directory is left in TMPDIR", os.listdir(r.work))


# --------------------------------------------------------------------------
# keepalive


LATE = 400.0  # ms a loaded machine may add to one of the harness's timers


def on_schedule(times, start, period):
    """Heartbeats written every period from start: the k-th (from 0) no
    earlier than (k + 1) periods after start (the harness schedules each one
    a period after it wrote the previous one, so this holds whatever the
    load), and none more than a period plus LATE after the previous one."""
    prev = start
    for k, h in enumerate(times):
        if h - start < (k + 1) * period - 1 or h - prev > period + LATE:
            return False
        prev = h
    return True


def heartbeats_out(case):
    return [w["t_ms"] for w in case["wire"] if w["dir"] == "out" and '"type":"heartbeat"' in w["data"]]


def event_time(case, text):
    return [w["t_ms"] for w in case["wire"] if w["dir"] == "event" and w["data"] == text]


def scenario_keepalive(t, tmp):
    """The harness's own heartbeats: only after the register, every
    T(DCS_T_SERVER_HEARTBEAT) (as the server) or T(DCS_T_CLIENT_HEARTBEAT) (as
    the client), scaled; none while keepalive is off."""
    r = conform(tmp, "client", "keepalive", scale="0.05", fake=["--no-register", "--heartbeat", "0"])
    t.eq(r.verdicts(), {"7-keepalive-client": "PASS"}, "client IUT: the case passes")
    c = r.case("7-keepalive-client")
    period = 5000 * 0.05
    hb = heartbeats_out(c)
    reg = [w["t_ms"] for w in c["wire"] if w["dir"] == "in" and '"key":"register"' in w["data"]]
    off, on = event_time(c, "keepalive off"), event_time(c, "keepalive on")
    t.ok(reg and off and on, "the wire log has the register and the keepalive events", (reg, off, on))
    if reg and off and on:
        t.ok(hb and all(h > reg[0] for h in hb), "no heartbeat before the IUT's register was read", (reg, hb))
        before = [h for h in hb if h < off[0]]
        t.ok(len(before) >= 2, "heartbeats while keepalive is on", before)
        t.ok(on_schedule(before, reg[0], period), "one every T(DCS_T_SERVER_HEARTBEAT) × 0.05 = 250 ms",
             (reg[0], before))
        t.eq([h for h in hb if off[0] < h < on[0]], [], "none between keepalive off and on")
        after = [h for h in hb if h > on[0]]
        t.ok(after and on_schedule(after, on[0], period), "keepalive on: they resume, a period later",
             (on, after))
    pid = r.pids("7-keepalive-client")[0]
    regw = r.written(pid, "register")
    seen = [rec for rec in r.fake(pid, "msg") if rec["msg"].get("type") == "heartbeat"]
    t.ok(regw and seen and all(s["t"] > regw[0]["t"] for s in seen),
         "the fake saw heartbeats, all after its register", len(seen))
    t.ok(seen and all(re.fullmatch(r'\{"origin":"external-crawler","destination":"web-server",'
                                   r'"type":"heartbeat","key":"heartbeat",.*\}', s["raw"]) for s in seen),
         "they are heartbeats from the harness's id to the IUT's", seen[:1])

    r = conform(tmp, "server", "keepalive", scale="0.05", fake=["--heartbeat", "0"])
    t.eq(r.verdicts(), {"7-keepalive-server": "PASS"}, "server IUT: the case passes")
    c = r.case("7-keepalive-server")
    period = 10000 * 0.05
    hb = heartbeats_out(c)
    reg = [w["t_ms"] for w in c["wire"] if w["dir"] == "out" and '"key":"register"' in w["data"]]
    t.ok(reg and hb and all(h > reg[0] for h in hb), "no heartbeat before the harness's own register",
         (reg, hb))
    if reg and hb:
        t.ok(len(hb) >= 2 and on_schedule(hb, reg[0], period),
             "one every T(DCS_T_CLIENT_HEARTBEAT) × 0.05 = 500 ms", (reg, hb))


# --------------------------------------------------------------------------
# iut-stdin


def scenario_stdin(t, tmp):
    """iut-stdin: the fake echoes the lines of its standard input."""
    prof = write_file(os.path.join(tmp, "stdin.profile"), "feature stdin-commands --stdin-echo\n")
    r = conform(tmp, "client", "stdin", ["--profile", prof])
    check_verdicts(t, r, {"11-iut-stdin": "PASS", "11-iut-stdin-verbatim": "PASS"})
    pid = r.pids("11-iut-stdin")[0]
    t.eq([rec["line"] for rec in r.fake(pid, "stdin")],
         ["hello world", "again", "again", "again", 'START_JOB:{"taskId":"t-1","q":"\u00e9"}'],
         "the fake read each line (JSON string unescaped), repeat 3 times")
    t.eq(r.fake(pid, "start")[0]["argv"][-1:], ["--stdin-echo"], "the profile's arguments were appended")
    pid = r.pids("11-iut-stdin-verbatim")[0]
    t.eq([rec["line"] for rec in r.fake(pid, "stdin")], ["x1y $I"],
         "iut-stdin writes LINE as given, {I} being the repeat index (TRANSCRIPTS.md 3.1)")
    r = conform(tmp, "client", "stdin")
    t.ok(r.cases() and all(c["verdict"] == "SKIP" and "stdin-commands" in c["reason"] for c in r.cases()),
         "without the feature in the profile: SKIP", r.verdicts())


# --------------------------------------------------------------------------
# $HMAC


def scenario_hmac(t, tmp):
    """$HMAC with a profile claiming hmac: the secret file ({secret}) the fake
    reads, the MAC the harness computes and checks, in both roles."""
    prof = write_file(os.path.join(tmp, "hmac.profile"), "feature hmac --secret-file {secret}\n")
    for role, client_id in (("client", "web-server"), ("server", "web-server")):
        wd = os.path.join(tmp, "workdir-" + role)
        os.makedirs(wd)
        r = conform(tmp, role, "hmac", ["--profile", prof, "--workdir", wd])
        cid = "10-hmac-" + role
        t.eq(r.verdicts().get(cid), "PASS", f"{role}: a MAC over the right nonce and id passes")
        t.eq(r.verdicts().get(cid + "-wrong"), "FAIL", f"{role}: a MAC over another id fails")
        check_div(t, r, cid + "-wrong", r"^payload\.hmac: ", offset=tag_offset(r, cid + "-wrong", "hmac"))
        pid = r.pids(cid)[0]
        st = r.fake(pid, "start")[0]
        sec = st["secret"] or {}
        path = sec.get("path", "")
        t.ok(st["argv"][-2:] == ["--secret-file", path] and path.startswith(wd + "/"),
             f"{role}: {{secret}} is the path of a file in the work directory", st["argv"])
        t.eq(sec.get("mode"), 0o600, f"{role}: the secret file has mode 0600")
        t.ok(re.fullmatch(r"[0-9a-f]{64}", sec.get("text", "")) is not None, f"{role}: a 256-bit secret")
        proof = [m["payload"] for _, m in r.received(pid) if m.get("key") == "proof"]
        if t.ok(len(proof) == 1, f"{role}: the harness sent its proof", proof):
            want = hmac.new(sec["text"].encode(), proof[0]["nonce"].encode("utf-8") + client_id.encode(),
                            hashlib.sha256).hexdigest()
            t.eq(proof[0]["hmac"], want, f"{role}: $HMAC is hex(HMAC-SHA256(secret, nonce || client id))")
        t.ok(not os.path.exists(path) and os.listdir(wd) == [],
             f"{role}: the secret and every case directory are gone after the run", os.listdir(wd))
        if role == "client":
            t.ok(r.verdicts().get("10-hmac-no-nonce") == "ERROR"
                 and "$NONCE" in r.case("10-hmac-no-nonce")["reason"],
                 "$HMAC without $NONCE is an ERROR", r.case("10-hmac-no-nonce"))
    r = conform(tmp, "client", "hmac")
    t.ok(r.cases() and all(c["verdict"] == "SKIP" and "'hmac'" in c["reason"] for c in r.cases()),
         "without a profile claiming hmac: SKIP", r.verdicts())
    r = conform(tmp, "client", "jobs", ["--profile", prof, "--filter", "12-job-1"])
    pids = r.pids("12-job-1")
    t.ok(r.verdicts().get("12-job-1") == "PASS" and pids
         and "--secret-file" not in r.fake(pids[0], "start")[0]["argv"],
         "a case that does not require hmac gets no feature arguments", r.verdicts())


# --------------------------------------------------------------------------
# --jobs


def lifetimes(run):
    out = {}
    for rec in run.log:
        if rec["ev"] == "start":
            out[rec["pid"]] = [rec["t"], None, rec["socket"]]
        elif rec["ev"] == "sigterm" and rec["pid"] in out:
            out[rec["pid"]][1] = rec["t"]
    return out


def max_overlap(spans):
    ev = sorted([(a, 1) for a, b in spans] + [(b, -1) for a, b in spans], key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def scenario_jobs(t, tmp):
    """--jobs 4: cases at once, each with its own directory and socket, all
    removed afterwards; --keep keeps them."""
    r = conform(tmp, "client", "jobs", ["--jobs", "4"])
    t.eq(r.rc, 0, "every case passes: exit 0")
    t.eq(sorted(r.verdicts().values()), ["PASS"] * 10, "10 PASS")
    t.eq(r.ids(), ["0-client-sanity"] + ["12-job-%d" % i for i in range(1, 9)] + ["0-client-sanity#end"],
         "the report lists the cases in their order, not the order they ended")
    life = lifetimes(r)
    t.eq(len(life), 10, "one IUT process per case")
    socks = [v[2] for v in life.values()]
    dirs = [os.path.dirname(s) for s in socks]
    t.ok(len(set(socks)) == 10 and len(set(dirs)) == 10 and all(os.path.dirname(d) == r.work for d in dirs),
         "each case has its own directory in TMPDIR and its own socket", socks)
    spans = [(a, b) for a, b, _ in life.values() if b is not None]
    t.eq(len(spans), 10, "every IUT was stopped with SIGTERM")
    jobs = [(a, b) for pid, (a, b, s) in life.items() if b is not None
            and pid not in r.pids("0-client-sanity") + r.pids("0-client-sanity#end")]
    n = max_overlap(jobs)
    t.ok(2 <= n <= 4, f"the cases ran at once, at most 4 ({n})", jobs)
    san = [(a, b) for pid, (a, b, s) in life.items()
           if pid in r.pids("0-client-sanity") + r.pids("0-client-sanity#end")]
    t.ok(len(san) == 2 and all(b2 < a or a2 > b for a, b in san for a2, b2 in jobs)
         and min(a for a, b in jobs) > min(a for a, b in san) and max(b for a, b in jobs) < max(b for a, b in san),
         "the sanity case runs alone, first and last", (san, jobs))
    t.ok(r.empty_work(), "nothing left in TMPDIR afterwards", os.listdir(r.work))
    t.ok(all("started as the client" in (c["iut_log"] or "") for c in r.cases()),
         "each case carries its own IUT's output", [c["iut_log"] for c in r.cases()][:2])

    r = conform(tmp, "client", "jobs", ["--jobs", "2", "--keep", "--filter", "12-job-1"])
    kept = sorted(glob.glob(os.path.join(r.work, "*", "iut.log")))
    t.eq(len(kept), 3, "--keep keeps each case's directory with the IUT's log")
    t.ok(all("started as the client" in open(k).read() for k in kept), "iut.log holds the IUT's output")


# --------------------------------------------------------------------------
# order: --shuffle, --filter


def listing(extra, cases="verdicts"):
    rc, out, err = run_cmd(["run", "--role", "client", "--list", "--cases", cat(cases)] + extra)
    return out.split()


def scenario_order(t, tmp):
    """--shuffle SEED changes the order, not the results; --filter selects."""
    flt = []
    for f in ("1-pass-answer", "2-fail-wrong-value", "2-fail-too-early", "3-should-fail", "3-info-pass",
              "4-skip-feature", "5-error-undefined-var", "2-fail-garbage"):
        flt += ["--filter", f]
    plain = listing(flt)
    a, a2, b = listing(flt + ["--shuffle", "3"]), listing(flt + ["--shuffle", "3"]), listing(flt + ["--shuffle", "4"])
    t.eq(len(plain), 10, "--filter (repeated): the eight cases and the sanity case twice")
    t.ok(sorted(a) == sorted(plain) and a != plain and b != a, "--shuffle: another order of the same cases",
         (plain, a, b))
    t.eq(a, a2, "--shuffle: the same seed gives the same order")
    t.ok(a[0] == b[0] == "0-client-sanity" and a[-1] == b[-1] == "0-client-sanity#end",
         "--shuffle keeps the sanity case first and last")
    ra = conform(tmp, "client", "verdicts", flt + ["--shuffle", "3", "--jobs", "4"])
    rb = conform(tmp, "client", "verdicts", flt + ["--shuffle", "4"])
    t.eq(ra.ids(), a, "the run follows the shuffled order (as --list shows it)")
    t.eq(rb.ids(), b, "another seed, another order")
    t.eq(ra.verdicts(), rb.verdicts(), "the same verdicts in either order")
    t.eq(ra.rc, rb.rc, "the same exit status")
    glob_ids = listing(["--filter", "2-fail-*e*", "--filter", "3-info-?ass"])
    everything = listing([])
    want = [i for i in everything if fnmatch.fnmatchcase(i, "2-fail-*e*") or fnmatch.fnmatchcase(i, "3-info-?ass")]
    t.ok(len(want) > 5 and glob_ids == ["0-client-sanity"] + want + ["0-client-sanity#end"],
         "--filter takes globs (fnmatch), the sanity case still first and last", glob_ids)


# --------------------------------------------------------------------------
# --reuse


def scenario_reuse(t, tmp):
    """--reuse: one IUT process for every case."""
    r = conform(tmp, "client", "jobs", ["--reuse", "--jobs", "4"], fake=["--reconnect", "0"])
    t.eq(r.rc, 0, "every case passes")
    t.eq(sorted(r.verdicts().values()), ["PASS"] * 10, "10 PASS")
    starts = r.fake(ev="start")
    t.eq(len(starts), 1, "one IUT process for the whole run")
    pid = starts[0]["pid"] if starts else None
    regs = set()
    for c in r.cases():
        ins = "".join(w["data"] for w in c["wire"] if w["dir"] == "in")
        regs |= set(int(p) for p in re.findall(r'"key":"register","payload":\{"id":"web-server","pid":(\d+)', ins))
    t.eq(regs, {pid}, "every case talked to that process")
    t.ok(r.fake(pid, "sigterm") != [], "it is stopped at the end of the run")
    t.ok(r.empty_work(), "nothing left in TMPDIR afterwards", os.listdir(r.work))

    for mode in ([], ["--reuse"]):
        sock = os.path.join(tmp, "fixed%d.sock" % len(mode))
        r = conform(tmp, "client", "jobs", mode + ["--socket", sock, "--filter", "12-job-[12]"],
                    fake=["--reconnect", "0"])
        t.eq(sorted(set(st["socket"] for st in r.fake(ev="start"))), [sock],
             "--socket PATH%s: the IUT gets SOCKET_PATH=PATH" % (" with --reuse" if mode else ""))
        t.ok(r.rc == 0 and not os.path.exists(sock), "... the cases pass and the socket is removed afterwards",
             (r.rc, r.verdicts()))

    # an IUT that takes 2 s to start: within --startup (default 5 s), with and
    # without --reuse
    for mode in ([], ["--reuse"]):
        r = conform(tmp, "client", "jobs", mode + ["--filter", "12-job-1"], fake=["--start-delay-ms", "2000"])
        t.eq(r.verdicts().get("0-client-sanity"), "PASS",
             "an IUT that takes 2 s to start gets the --startup allowance%s" % (" with --reuse" if mode else ""))

    prof = write_file(os.path.join(tmp, "hmac.profile"), "feature hmac --secret-file {secret}\n")
    r = conform(tmp, "client", "hmac", ["--reuse", "--profile", prof, "--filter", "10-hmac-client"])
    c = r.case("10-hmac-client")
    t.ok(c and c["verdict"] == "SKIP" and "argument" in c["reason"],
         "--reuse: a case that needs the feature's arguments is skipped", c and c["reason"])

    r = conform(tmp, "client", "reuse", ["--reuse"], fake=["--reconnect", "0"])
    t.eq(r.ids(), ["16-reuse-1-crash", "16-reuse-2-exit", "16-reuse-3-after"], "--reuse: the cases in order")
    check_verdicts(t, r, {"16-reuse-1-crash": "FAIL", "16-reuse-2-exit": "FAIL", "16-reuse-3-after": "PASS"},
                   "--reuse: ")
    t.ok("signal 11" in ((r.case("16-reuse-1-crash") or {}).get("reason") or ""),
         "--reuse: the crash is the reason", (r.case("16-reuse-1-crash") or {}).get("reason"))
    t.ok("status 3" in ((r.case("16-reuse-2-exit") or {}).get("reason") or ""),
         "--reuse: an IUT that exits on its own fails the case, as without --reuse",
         (r.case("16-reuse-2-exit") or {}).get("reason"))
    t.ok(len(r.fake(ev="start")) == 3, "--reuse: the IUT is started again after it ended",
         len(r.fake(ev="start")))


# --------------------------------------------------------------------------
# --attach


class Fake:
    """A fake IUT started by the test itself (for --attach)."""

    def __init__(self, tmp, role, sock, log):
        e = clean_env({"SOCKET_PATH": sock, "DCS_TIME_SCALE": "0.1"})
        self.log = log
        self.proc = subprocess.Popen([sys.executable, FAKE, "--role", role, "--log", log,
                                      "--reconnect", "0"], env=e, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def scenario_attach(t, tmp):
    """--attach --socket: the harness uses an IUT it did not start, and skips
    the cases that would need to start, stop or feed it."""
    fakes = []
    try:
        sock = os.path.join(tmp, "server.sock")
        log = os.path.join(tmp, "server.jsonl")
        f = Fake(tmp, "server", sock, log)
        fakes.append(f)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        r = conform(tmp, "server", "attach", ["--attach", "--socket", sock], command=[])
        check_verdicts(t, r, {"13-attach-server": "PASS", "13-attach-restart": "SKIP", "13-attach-kill": "SKIP",
                              "13-attach-stdin": "SKIP"}, "server: ")
        t.eq(r.rc, 0, "server: exit 0")
        for cid, word in (("13-attach-restart", "restart"), ("13-attach-kill", "kill"),
                          ("13-attach-stdin", "iut-stdin")):
            t.ok(word in (r.case(cid) or {}).get("reason", "") and "--attach" in r.case(cid)["reason"],
                 f"server: {cid}: the reason names the step and --attach", r.case(cid))
        t.eq(r.report["command"], "(attached)", "the report's command is (attached)")
        t.ok(f.proc.poll() is None and os.path.exists(sock), "the attached server still runs, its socket is there")
        recs = read_log(log)
        t.ok(len([x for x in recs if x["ev"] == "start"]) == 1 and any(x["ev"] == "open" for x in recs),
             "the harness connected to it and started nothing")

        sock = os.path.join(tmp, "client.sock")
        log = os.path.join(tmp, "client.jsonl")
        f = Fake(tmp, "client", sock, log)
        fakes.append(f)
        deadline = time.monotonic() + 10
        while not read_log(log) and time.monotonic() < deadline:  # it runs and tries to connect
            time.sleep(0.02)
        r = conform(tmp, "client", "attach", ["--attach", "--socket", sock], command=[])
        check_verdicts(t, r, {"13-attach-client": "PASS", "13-attach-socket": "SKIP"}, "client: ")
        ins = "".join(w["data"] for w in r.case("13-attach-client")["wire"] if w["dir"] == "in")
        t.ok('"pid":%d' % f.proc.pid in ins, "client: the register came from the process the test started")
        t.ok(f.proc.poll() is None, "client: the attached client still runs")
        t.ok(not os.path.exists(sock), "client: the harness removed the socket it listened on")
    finally:
        for f in fakes:
            f.stop()


# --------------------------------------------------------------------------
# time scale


def scenario_timescale(t, tmp):
    """--time-scale exports DCS_TIME_SCALE and scales every window; a lower
    bound too short for the tolerance is skipped."""
    r = conform(tmp, "client", "timescale", ["--env", "FAKE_MARK=yes"], scale="0.1")
    check_verdicts(t, r, {"14-scaled-window": "PASS", "14-short-lower-bound": "SKIP"}, "scale 0.1: ")
    st = r.fake(r.pids("14-scaled-window")[0], "start")[0]
    t.ok(st["scale"] is not None and float(st["scale"]) == 0.1, "DCS_TIME_SCALE=0.1 is exported", st["scale"])
    t.eq(st["env"].get("FAKE_MARK"), "yes", "--env K=V reaches the IUT")
    t.ok(r.report["time_scale"] == 0.1 and r.report["time_mode"] == "scale", "the report's time scale and mode",
         (r.report["time_scale"], r.report["time_mode"]))
    r = conform(tmp, "client", "timescale", scale="0.05", extra=["--filter", "14-scaled-window"])
    t.eq(r.verdicts().get("14-scaled-window"), "PASS", "scale 0.05: the same case passes")
    r = conform(tmp, "client", "timescale", ["--tolerance", "3", "--filter", "14-short-lower-bound"], scale="0.1")
    t.eq(r.verdicts().get("14-short-lower-bound"), "PASS",
         "scale 0.1 with --tolerance 3: the 10 ms lower bound is measurable, the case runs and passes")
    r = conform(tmp, "client", "timescale", ["--filter", "14-short-lower-bound"], scale=None,
                env={"DCS_TIME_SCALE": "7"})
    t.eq(r.verdicts().get("14-short-lower-bound"), "PASS", "real time: the case runs and passes")
    st = r.fake(r.pids("14-short-lower-bound")[0], "start")[0]
    t.eq(st["scale"], None, "without --time-scale no DCS_TIME_SCALE reaches the IUT (not even an inherited one)")
    t.ok(r.report["time_scale"] == 1 and r.report["time_mode"] == "real", "the report says real time",
         (r.report["time_scale"], r.report["time_mode"]))


# --------------------------------------------------------------------------
# reports


def tap_check(t, text, cases):
    lines = text.splitlines()
    t.ok(lines[:2] == ["TAP version 13", "1..%d" % len(cases)], "TAP: version line and plan", lines[:2])
    tests, i, yaml_ok = [], 2, True
    while i < len(lines):
        m = re.fullmatch(r"(ok|not ok) (\d+) - (.*)", lines[i])
        if not m:
            t.ok(False, "TAP: a test line", lines[i])
            return
        tests.append(m.groups())
        i += 1
        if i < len(lines) and lines[i] == "  ---":
            block = {}
            i += 1
            while i < len(lines) and lines[i] != "  ...":
                k, _, v = lines[i].strip().partition(": ")
                try:
                    block[k] = json.loads(v)
                except ValueError:
                    yaml_ok = False
                i += 1
            i += 1
            tests[-1] = tests[-1] + (block,)
    t.ok(yaml_ok, "TAP: every YAML value is a JSON scalar")
    t.eq([int(x[1]) for x in tests], list(range(1, len(cases) + 1)), "TAP: one line per case, numbered")
    for (status, n, desc, *blk), c in zip(tests, cases):
        v = c["verdict"]
        head = c["id"].replace("#", "\\#") + " " + c["title"]
        want_status = "ok" if v in ("PASS", "NON-STRICT", "INFORMATIONAL", "SKIP") else "not ok"
        suffix = {"PASS": "", "FAIL": "", "NON-STRICT": " [NON-STRICT]", "INFORMATIONAL": " [INFORMATIONAL]",
                  "SKIP": " # SKIP " + (c["reason"] or ""), "ERROR": " [ERROR]",
                  "XFAIL": " # TODO expected failure: " + (c["reason"] or ""), "XPASS": " [XPASS]"}[v]
        t.ok(status == want_status and desc == head + suffix, f"TAP: the line of {c['id']} ({v})",
             f"{status} {desc}\nwant: {want_status} {head}{suffix}")
        has_yaml = bool(blk)
        t.eq(has_yaml, v not in ("PASS", "SKIP"), f"TAP: a YAML block for {c['id']} only if not PASS or SKIP")
        if blk and c["divergence"]:
            d = c["divergence"]
            b = blk[0]
            t.ok(b.get("verdict") == v and b.get("line") == d["line"] and b.get("actual") == d["actual"]
                 and b.get("offset") == d["offset"], f"TAP: the YAML of {c['id']} has its divergence", b)


def junit_check(t, path, rep):
    root = ET.parse(path).getroot()
    cases = rep["cases"]
    cnt = rep["counts"]
    t.ok(root.tag == "testsuites" and root.get("tests") == str(len(cases))
         and root.get("failures") == str(cnt["FAIL"] + cnt["XPASS"]) and root.get("errors") == str(cnt["ERROR"])
         and root.get("skipped") == str(cnt["SKIP"] + cnt["XFAIL"]), "JUnit: the run's counts", root.attrib)
    cats = []
    for c in cases:
        if c["category"] not in cats:
            cats.append(c["category"])
    suites = root.findall("testsuite")
    t.eq([s.get("name") for s in suites], cats, "JUnit: one testsuite per category, in the order they ran")
    seen = {}
    for s in suites:
        props = {p.get("name"): p.get("value") for p in s.iter("property")}
        t.ok(props.get("iut.role") == "client" and props.get("time.scale") == "0.1",
             f"JUnit: suite {s.get('name')} has the run's properties", props)
        for tc in s.findall("testcase"):
            seen[tc.get("name")] = (tc.get("classname"), s.get("name"), tc)
    t.eq(sorted(seen), sorted(c["id"] for c in cases), "JUnit: one testcase per case, named by its id")
    for c in cases:
        if c["id"] not in seen:
            continue
        classname, suite, tc = seen[c["id"]]
        t.ok(classname == c["category"] == suite, f"JUnit: {c['id']}: classname is the category")
        kids = {k.tag: k for k in tc}
        v = c["verdict"]
        if v == "PASS":
            ok = len(tc) == 0
        elif v in ("FAIL", "XPASS"):
            f = kids.get("failure")
            ok = f is not None and f.get("type") == v
            if ok and v == "FAIL":
                d = c["divergence"]
                ok = f"step (line {d['line']})" in f.text and f"offset: {d['offset']}" in f.text \
                    if d["offset"] is not None else f"step (line {d['line']})" in f.text
        elif v == "ERROR":
            ok = kids.get("error") is not None and kids["error"].get("type") == "ERROR"
        elif v == "SKIP":
            ok = kids.get("skipped") is not None and kids["skipped"].get("message") == c["reason"]
        elif v == "XFAIL":
            ok = kids.get("skipped") is not None and kids["skipped"].get("message", "").startswith(
                "expected failure: ")
        else:  # NON-STRICT, INFORMATIONAL pass, with a note
            ok = "failure" not in kids and "skipped" not in kids and "error" not in kids \
                and v in (kids.get("system-out").text if "system-out" in kids else "")
        t.ok(ok, f"JUnit: {c['id']} ({v}) has the elements its verdict calls for",
             ET.tostring(tc, encoding="unicode")[:600])


def scenario_reports(t, tmp):
    """--tap, --junit, --json, --html from one run with every verdict and a
    fake that writes markup, control characters and bytes that are not
    UTF-8."""
    exp = write_file(os.path.join(tmp, "expect.txt"), "15-xfail\n15-xpass\n")
    d = os.path.join(tmp, "reports")
    os.makedirs(d)
    junit, html_path = os.path.join(d, "r.xml"), os.path.join(d, "r.html")
    r = conform(tmp, "client", "reports", ["--expect", exp, "--tap", "--junit", junit, "--html", html_path])
    t.eq(r.rc, 1, "FAIL, ERROR and XPASS fail the run")
    rep = r.report
    cases = rep["cases"]
    check_verdicts(t, r, {"0-client-sanity": "PASS", "15-pass": "PASS", "15-info": "INFORMATIONAL",
                          "15-xpass": "XPASS", "15-fail-markup": "FAIL", "15-fail-bytes": "FAIL",
                          "15-should": "NON-STRICT", "15-xfail": "XFAIL", "15-error": "ERROR",
                          "15-skip": "SKIP", "0-client-sanity#end": "PASS"})
    t.eq(set(c["verdict"] for c in cases), set(VERDICTS), "the run has every verdict")

    # JSON
    t.ok(rep["total"] == len(cases) and rep["counts"] == {v: sum(1 for c in cases if c["verdict"] == v)
                                                          for v in VERDICTS}, "JSON: total and counts")
    t.ok(rep["role"] == "client" and rep["time_scale"] == 0.1 and FAKE in rep["command"],
         "JSON: the run's facts", {k: rep[k] for k in ("role", "time_scale", "command")})
    wire_ok, prefix_ok, dirs = True, True, set()
    for c in cases:
        pids = r.pids(c["id"])
        for conn in set(w["conn"] for w in c["wire"] if w["dir"] != "event"):
            for dirn in ("in", "out"):
                ws = [w for w in c["wire"] if w["dir"] == dirn and w["conn"] == conn]
                off = 0
                for w in ws:
                    raw = bytes.fromhex(w["hex"]) if "hex" in w else w["data"].encode("utf-8")
                    wire_ok &= w["offset"] == off and w["len"] == len(raw)
                    off += len(raw)
                dirs.add(dirn)
                if pids and conn == 1:
                    got = b"".join(bytes.fromhex(w["hex"]) if "hex" in w else w["data"].encode() for w in ws)
                    if dirn == "in":  # what the harness read is what the fake wrote
                        fake = stream(r.fake(pids[0], "wrote"), 1)
                        prefix_ok &= len(got) > 0 and fake.startswith(got)
                    else:  # what the fake read is what the harness wrote
                        fake = stream(r.fake(pids[0], "read"), 1)
                        prefix_ok &= got.startswith(fake)
        wire_ok &= all(w["offset"] is None and isinstance(w["data"], str) for w in c["wire"] if w["dir"] == "event")
    t.ok(wire_ok, "JSON: wire entries have contiguous offsets per direction; events have none")
    t.ok(prefix_ok, "JSON: the wire log holds the exact bytes each side wrote")
    t.ok({"in", "out"} <= dirs and any(w["dir"] == "event" for c in cases for w in c["wire"]),
         "JSON: the wire log has in, out and event entries")
    c = r.case("15-fail-bytes")
    bad = [w for w in c["wire"] if w["dir"] == "in" and "hex" in w]
    t.ok(len(bad) == 1 and b"\xfe" in bytes.fromhex(bad[0]["hex"]) and "\ufffd" in bad[0]["data"],
         "JSON: bytes that are not UTF-8 come with their hex", bad)
    check_div(t, r, "15-fail-bytes", r"^the IUT wrote bytes that are not a valid message: control_char at offset",
              offset=tag_offset(r, "15-fail-bytes", "bytes", b"\x00"))
    d = check_div(t, r, "15-fail-markup", r"<script>alert\(1\)</script>", offset=tag_offset(r, "15-fail-markup",
                                                                                          "markup"))
    t.ok(all("started as the client <stderr>" in (c["iut_log"] or "") for c in cases if r.pids(c["id"])),
         "JSON: each case has the IUT's output")

    # TAP
    tap_check(t, r.out, cases)
    t.ok("PASS" in r.err and "FAIL" in r.err, "with --tap the console goes to stderr")

    # JUnit
    junit_check(t, junit, rep)
    root = ET.parse(junit).getroot()
    fails = {tc.get("name"): tc for tc in root.iter("testcase")}
    tc = fails.get("15-fail-markup")
    t.ok(tc is not None and "<script>alert(1)</script>]]>" in tc.find("failure").text
         and "<stderr>" in (tc.find("system-err").text or ""),
         "JUnit: markup from the IUT survives escaping as text")

    # HTML
    with open(html_path, "rb") as f:
        page = f.read()
    text = page.decode("utf-8")
    t.ok(all(html.escape(c["id"], quote=False) in text for c in cases), "HTML: every case id is on the page")
    t.ok(re.search(r"<script", text, re.I) is None, "HTML: no <script> (the fake's is escaped)")
    t.ok("&lt;script&gt;alert(1)&lt;/script&gt;" in text, "HTML: the fake's markup is shown as text")
    t.ok(b"\x00" not in page and b"\x01" not in page and b"\xfe" not in page, "HTML: no raw control or bad bytes")
    t.ok("&lt;stderr&gt;" in text, "HTML: the IUT's output is escaped too")


SCENARIOS = {
    "cli": scenario_cli,
    "verdicts": scenario_verdicts,
    "server": scenario_server,
    "expect": scenario_expect,
    "errors": scenario_errors,
    "send": scenario_send,
    "steps": scenario_steps,
    "keepalive": scenario_keepalive,
    "stdin": scenario_stdin,
    "hmac": scenario_hmac,
    "jobs": scenario_jobs,
    "order": scenario_order,
    "reuse": scenario_reuse,
    "attach": scenario_attach,
    "timescale": scenario_timescale,
    "reports": scenario_reports,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: conform_e2e.py {%s}" % ",".join(SCENARIOS), file=sys.stderr)
        sys.exit(2)
    if "DCS_CONFORM" not in os.environ:
        print("1..0 # SKIP DCS_CONFORM is not set")
        sys.exit(0)
    run_scenario(SCENARIOS[sys.argv[1]])
