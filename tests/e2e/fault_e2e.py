#!/usr/bin/env python3
"""End-to-end test of the pair dcs-server + dcs-client with socket faults
injected by tests/e2e/sockfault.c (issue 5), an LD_PRELOAD library that only
touches socket descriptors: EINTR, EAGAIN (non-blocking sockets only), short
reads and short writes on read/write/writev/recv/send/recvmsg/sendmsg, and
EMFILE/ENOMEM on accept/accept4 without taking the connection off the backlog.

Usage: fault_e2e.py   (DCS_SERVER, DCS_CLIENT and SOCKFAULT_LIB name the files)

The default scenario, six jobs, timers scaled, five runs with different
seeds: each run completes, every job exactly once, no delivery twice, and
over the runs every kind of fault was injected at least once. TAP on stdout.
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcs_e2e import Client, read_json_lines, run_scenario, write_file  # noqa: E402
from server_e2e import (Server, client_args, count_completed, job, server_args,  # noqa: E402
                        sock_path, wait_for, with_servers)

KINDS = ("eintr", "eagain", "short_read", "short_write", "accept_emfile", "accept_enomem")
P = os.environ.get("SOCKFAULT_TEST_P", "0.3")          # data calls on sockets
ACCEPT_P = os.environ.get("SOCKFAULT_TEST_ACCEPT_P", "0.5")


def read_report(path):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, n = line.partition(" ")
                out[k] = int(n)
    return out


def preload(lib):
    """LD_PRELOAD for the programs: under ASan its runtime must come first."""
    ldd = subprocess.run(["ldd", os.environ["DCS_SERVER"]], capture_output=True,
                         text=True).stdout
    asan = [w for w in ldd.split() if "/libasan.so" in w]
    return " ".join(asan[:1] + [lib])


def duplicates(path):
    """Deliveries recorded more than once (identical messages)."""
    seen, dup = set(), []
    for rec in read_json_lines(path) if os.path.exists(path) else []:
        key = json.dumps(rec["message"], sort_keys=True)
        if key in seen:
            dup.append(key)
        seen.add(key)
    return dup


def scenario_sockfault(t, tmp):
    lib = os.environ.get("SOCKFAULT_LIB")
    if not lib or not os.path.exists(lib):
        t.ok(True, "# SKIP SOCKFAULT_LIB is not built")
        return
    n_jobs, runs = 6, 5
    jobs = write_file(os.path.join(tmp, "jobs.json"),
                      json.dumps([job(i) for i in range(1, n_jobs + 1)]))
    scen = write_file(os.path.join(tmp, "scenario.json"),
                      json.dumps({"steps": 5, "intervalMs": 400, "retryPauseMs": 1000}))
    ld = preload(lib)
    total = {k: 0 for k in KINDS}
    saved = dict(os.environ)
    try:
        for run in range(1, runs + 1):
            dpath = os.path.join(tmp, "deliveries-%d.jsonl" % run)
            srep = os.path.join(tmp, "sockfault-server-%d.txt" % run)
            crep = os.path.join(tmp, "sockfault-client-%d.txt" % run)
            fault = {"LD_PRELOAD": ld, "SOCKFAULT_P": P, "SOCKFAULT_ACCEPT_P": ACCEPT_P}
            # Server() takes its environment from os.environ.
            os.environ.update(fault, SOCKFAULT_SEED=str(1000 + run), SOCKFAULT_REPORT=srep)
            s = Server(tmp, server_args(tmp, "--scenario", scen), name="server-%d" % run)
            os.environ.clear()
            os.environ.update(saved)
            if not t.ok(wait_for(lambda: os.path.exists(sock_path(tmp)), 10),
                        f"run {run}: the server with socket faults listens"):
                break
            c = Client(tmp, client_args(tmp, jobs, dpath, "--exit-after-jobs"), scale="0.05",
                       env=dict(fault, SOCKFAULT_SEED=str(2000 + run), SOCKFAULT_REPORT=crep),
                       stdin=False, name="client-%d" % run)
            st = c.wait(60)
            t.ok(st == 0, f"run {run}: the client with socket faults completes the run, exit 0",
                 f"status {st}\nclient log tail:\n" + "\n".join(c.log_text().splitlines()[-12:]) +
                 "\nserver log tail:\n" + "\n".join(
                     json.dumps(r) for r in s.records()[-12:]))
            t.eq(count_completed(dpath), {f"t-{i}": 1 for i in range(1, n_jobs + 1)},
                 f"run {run}: every job completed exactly once")
            t.eq(duplicates(dpath), [], f"run {run}: no delivery recorded twice")
            s.signal(signal.SIGTERM)
            t.ok(s.wait(10) == 0, f"run {run}: the server with socket faults stops on SIGTERM, exit 0")
            with open(s.log_path, "rb") as f:
                logs = c.log_text() + "\n" + f.read().decode("utf-8", errors="replace")
            sanitizer = [ln for ln in logs.splitlines()
                         if "runtime error:" in ln or "Sanitizer" in ln]
            t.eq(sanitizer, [], f"run {run}: no sanitizer report in either log")
            sr, cr = read_report(srep), read_report(crep)
            t.ok(sr and cr, f"run {run}: both programs wrote their fault report")
            t.note(f"run {run}: server {sr}; client {cr}")
            for rep in (sr, cr):
                for k in KINDS:
                    total[k] += rep.get(k, 0)
            Server.kill_all()
            wait_for(lambda: not os.path.exists(sock_path(tmp)), 2)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for k in KINDS:
        t.ok(total[k] > 0, f"faults of kind {k} were injected ({total[k]})")


if __name__ == "__main__":
    if "DCS_SERVER" not in os.environ or "DCS_CLIENT" not in os.environ:
        print("1..0 # SKIP DCS_SERVER or DCS_CLIENT is not set")
        sys.exit(0)
    run_scenario(with_servers(scenario_sockfault))
