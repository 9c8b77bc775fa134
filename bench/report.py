#!/usr/bin/env python3
"""bench/report.py - turn the JSON of dcs-bench-codec into the report.

Reads the object dcs-bench-codec --json printed, adds the package versions
bench/run found, computes dcs's ratio to each baseline and the issue's
targets, and writes:
  - the table (stdout; stderr with --json, where stdout gets the JSON object),
  - bench/RESULTS.md (--md),
  - bench/chart.png, a gnuplot bar chart of messages/s on the mix (--chart).
Standard library only. Called by bench/run; usable by hand on a saved JSON.
"""
import argparse
import json
import os
import subprocess
import sys

DECODE_BASELINES = ["simdjson", "simdjson-2t", "cjson", "jansson", "memchr"]
DCS_MODES = ["whole", "64KiB", "64KiB+read", "whole-prefix", "1-byte"]
# The baselines' mode each dcs mode is compared with: "64KiB+read" pays a
# memcpy per read (as read(2) would), so it is compared with the baselines'
# "whole+read" (simdjson after the same copies); the others with "whole".
BASE_MODE = {"64KiB+read": "whole+read"}
ENCODE_BASELINES = ["cjson", "cjson-prealloc", "jansson"]
LABELS = {
    "simdjson": "simdjson parse_many",
    "simdjson-2t": "simdjson parse_many, 2 threads",
    "cjson": "cJSON",
    "cjson-prealloc": "cJSON (preallocated buffer)",
    "jansson": "jansson",
    "memchr": "memchr (bandwidth floor)",
    "dcs": "dcs",
    "dcs-typed": "dcs typed views",
}


def find(results, stream, parser, mode):
    for r in results:
        if r["stream"] == stream and r["parser"] == parser and r["mode"] == mode:
            return r
    return None


def ratio(a, b):
    if not a or not b or not b["msg_s"]:
        return None
    return a["msg_s"] / b["msg_s"]


def fmt_ratio(x):
    if x is None:
        return "-"
    return "%.2f×" % x if x < 100 else "%.0f×" % x


def fmt_rate(x):
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    if x >= 1e3:
        return "%.1f k" % (x / 1e3)
    return "%.0f" % x


def fmt_allocs(r):
    if r.get("allocs_per_msg") is None:
        return "-"
    v = r["allocs_per_msg"]
    if v == 0:
        return "0"
    return "%.4g" % v


def targets(data):
    """The issue's targets, on the first stream (the realistic mix)."""
    res = data["results"]
    mix = data["streams"][0]["name"]
    get = lambda p, m: find(res, mix, p, m)
    out = []

    def add(name, value, need, ok, shown):
        out.append({"target": name, "value": value, "required": need,
                    "met": bool(ok) if value is not None else None, "shown": shown})

    for mode in ("whole", "64KiB"):
        d = get("dcs", mode)
        for base, need in (("simdjson", 1.0), ("cjson", 3.0), ("jansson", 15.0)):
            x = ratio(d, get(base, "whole"))
            add("decode %s ≥ %s× %s (msg/s)" % (mode, ("%g" % need), LABELS[base]),
                x, need, x is not None and x >= need, fmt_ratio(x))
    # On the same bytes: the 1-byte prefix, fed whole (older results: the
    # whole stream).
    whole, one = get("dcs", "whole-prefix") or get("dcs", "whole"), get("dcs", "1-byte")
    slow = whole["msg_s"] / one["msg_s"] if whole and one and one["msg_s"] else None
    add("1-byte chunks no more than 10× slower than whole (the same bytes)", slow, 10.0,
        slow is not None and slow <= 10.0, "%.1f× slower" % slow if slow else "-")
    x = ratio(get("dcs", "encode"), get("cjson", "encode"))
    add("encoder ≥ 3× cJSON's serializer (cJSON_PrintUnformatted)", x, 3.0,
        x is not None and x >= 3.0, fmt_ratio(x))
    worst = None
    for r in res:
        if r["parser"] == "dcs" and r["mode"] in DCS_MODES and r.get("allocs_per_msg") is not None:
            worst = r["allocs_per_msg"] if worst is None else max(worst, r["allocs_per_msg"])
    add("zero allocations per message in the decoder's steady state (every stream and mode)",
        worst, 0.0, worst == 0, ("%.4g per message at worst" % worst) if worst else "0")
    return out


def stream_info(data, name):
    for s in data["streams"]:
        if s["name"] == name:
            return s
    return None


def human_bytes(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d bytes" % n


def machine_line(m):
    pk = m.get("packages", {})
    return ("%s (%s logical CPUs, kernel %s); %s; %s; jansson %s, cJSON %s, simdjson %s "
            "(kernel %s); build %s; %s" % (
                m.get("cpu"), m.get("logical_cpus"), m.get("kernel"), m.get("compiler_c"),
                m.get("compiler_cxx"), m.get("jansson"), m.get("cjson"), m.get("simdjson"),
                m.get("simdjson_implementation"), m.get("buildtype", "?"), m.get("date")) +
            ("; Debian packages: " + ", ".join("%s %s" % kv for kv in sorted(pk.items()))
             if pk else ""))


# ---- text and markdown tables -------------------------------------------

def table_rows(data, stream):
    """Rows of one stream: parser, mode, MB/s, msg/s, min, max, allocs, ratio."""
    res = [r for r in data["results"] if r["stream"] == stream]
    rows = []
    dcs_whole = find(res, stream, "dcs", "whole")
    dcs_enc = find(res, stream, "dcs", "encode")
    dcs_read = find(res, stream, "dcs", "64KiB+read")
    for r in res:
        ref = {"encode": dcs_enc, "whole+read": dcs_read}.get(r["mode"], dcs_whole)
        rel = ""
        if r["parser"] != "dcs" and r["parser"] != "dcs-typed" and ref:
            rel = fmt_ratio(ratio(ref, r))
        rows.append([r["parser"], r["mode"], "%.1f" % r["mb_s"], fmt_rate(r["msg_s"]),
                     fmt_rate(r["min"]), fmt_rate(r["max"]), fmt_allocs(r), rel])
    return rows


HEAD = ["parser", "mode", "MB/s", "msg/s", "min", "max", "allocs/msg", "dcs ÷ this"]


def ratio_matrix(data, stream):
    res = data["results"]
    rows = []
    for mode in DCS_MODES:
        d = find(res, stream, "dcs", mode)
        if not d:
            continue
        bm = BASE_MODE.get(mode, "whole")
        rows.append(["dcs " + mode] + [fmt_ratio(ratio(d, find(res, stream, b, bm)))
                                       for b in DECODE_BASELINES])
    return rows


def text_table(head, rows, indent="  "):
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: indent + "  ".join(
        (str(x).ljust(w[i]) if i < 2 else str(x).rjust(w[i])) for i, x in enumerate(r))
    return "\n".join([line(head), indent + "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def render_text(data, tg):
    m = data["machine"]
    out = ["dcs codec benchmark%s" % (" (quick)" if data["config"].get("quick") else ""),
           machine_line(m), "", headline(data), ""]
    for s in data["streams"]:
        out.append("%s: %s, %d messages, mean %.0f bytes, largest %s; 1-byte mode on the first %s"
                   % (s["name"], human_bytes(s["bytes"]), s["messages"], s["mean_bytes"],
                      human_bytes(s["largest"]), human_bytes(s["onebyte_prefix_bytes"])))
        out.append(text_table(HEAD, table_rows(data, s["name"])))
        out.append("  dcs ÷ baseline, msg/s:")
        out.append(text_table(["dcs mode"] + DECODE_BASELINES, ratio_matrix(data, s["name"]),
                              "    "))
        out.append("")
    out.append("targets (on %s):" % data["streams"][0]["name"])
    for t in tg:
        out.append("  [%s] %s: %s" % ("met" if t["met"] else "NOT met", t["target"], t["shown"]))
    for n in data.get("notes", []):
        out.append("note: " + n)
    return "\n".join(out) + "\n"


def headline(data):
    res = data["results"]
    mix = data["streams"][0]["name"]
    get = lambda p, m: find(res, mix, p, m)
    w, r64, one = get("dcs", "whole"), get("dcs", "64KiB"), get("dcs", "1-byte")
    if not w:
        return ""
    parts = ["dcs decodes the realistic mix at %s msg/s (%.0f MB/s) fed whole" % (
        fmt_rate(w["msg_s"]), w["mb_s"])]
    parts.append(": " + ", ".join("%s %s" % (fmt_ratio(ratio(w, get(b, "whole"))), LABELS[b])
                                  for b in ("simdjson", "cjson", "jansson")))
    if r64:
        parts.append("; in 64 KiB reads %s msg/s (%s simdjson)" % (
            fmt_rate(r64["msg_s"]), fmt_ratio(ratio(r64, get("simdjson", "whole")))))
        rr, sr = get("dcs", "64KiB+read"), get("simdjson", "whole+read")
        if rr and sr:
            parts.append(" (%s with a memcpy per read charged to both)" % fmt_ratio(ratio(rr, sr)))
    if one:
        wp = get("dcs", "whole-prefix")
        if wp:
            parts.append("; in 1-byte chunks %.1f× slower than the same bytes fed whole" % (
                wp["msg_s"] / one["msg_s"]))
        else:
            parts.append("; in 1-byte chunks %.1f× slower than whole" % (w["msg_s"] / one["msg_s"]))
    enc = get("dcs", "encode")
    if enc:
        parts.append("; the encoder writes %s msg/s, %s cJSON_PrintUnformatted" % (
            fmt_rate(enc["msg_s"]), fmt_ratio(ratio(enc, get("cjson", "encode")))))
    allocs = [r["allocs_per_msg"] for r in res if r["parser"] == "dcs"
              and r["mode"] in DCS_MODES and r.get("allocs_per_msg") is not None]
    if allocs:
        parts.append("; %s allocations per message in the decoder's steady state" % (
            "0" if max(allocs) == 0 else "%.4g" % max(allocs)))
    return "".join(parts) + "."


def render_md(data, tg):
    m = data["machine"]
    c = data["config"]
    mix = data["streams"][0]
    res = data["results"]
    out = ["# Codec benchmark results", "",
           "Written by `bench/run%s` — the table of the last run. See `bench/README.md` for what "
           "each figure measures." % (" --quick" if c.get("quick") else ""), "",
           "**%s**" % headline(data), "",
           "- machine: %s, %s logical CPUs, kernel %s" % (m.get("cpu"), m.get("logical_cpus"),
                                                           m.get("kernel")),
           "- compilers: %s; %s; build type %s" % (m.get("compiler_c"), m.get("compiler_cxx"),
                                                    m.get("buildtype", "?")),
           "- libraries: jansson %s, cJSON %s, simdjson %s (runtime kernel `%s`), dcs %s" % (
               m.get("jansson"), m.get("cjson"), m.get("simdjson"),
               m.get("simdjson_implementation"), m.get("dcs"))]
    if m.get("packages"):
        out.append("- Debian packages: " + ", ".join(
            "%s %s" % kv for kv in sorted(m["packages"].items())))
    out += ["- date: %s" % m.get("date"),
            "- method: median of %d timed samples (each at least %g s) after a warm-up sample; "
            "min and max are of msg/s; the figures of one stream are sampled in interleaved "
            "rounds; MB/s = 10^6 bytes/s" % (c["runs"], c["min_time_s"]), "",
            "![messages per second on the realistic mix](chart.png)", "",
            "## Targets (issue 3), on the realistic mix", "",
            "| target | measured | met |", "|---|---:|:---:|"]
    for t in tg:
        out.append("| %s | %s | %s |" % (t["target"], t["shown"], "yes" if t["met"] else "**no**"))
    out += ["", "## Realistic mix", "",
            "%s, %d messages, mean %.0f bytes, largest %s. 1-byte mode runs on the first %s "
            "(%d messages), and so does whole-prefix, its baseline: the same bytes fed whole." % (human_bytes(mix["bytes"]), mix["messages"], mix["mean_bytes"],
                                human_bytes(mix["largest"]),
                                human_bytes(mix["onebyte_prefix_bytes"]),
                                mix["onebyte_prefix_messages"]), "",
            md_table(HEAD, table_rows(data, mix["name"])), "",
            "dcs's ratio to each baseline (msg/s; baselines parse the whole buffer; the "
            "64KiB+read row is against simdjson whole+read, which pays the same copies):", "",
            md_table(["dcs mode"] + [LABELS[b] for b in DECODE_BASELINES],
                     ratio_matrix(data, mix["name"])), ""]
    enc = find(res, mix["name"], "dcs", "encode")
    if enc:
        out += ["Encoder: dcs_encode ÷ " + ", ".join(
            "%s %s" % (LABELS[b], fmt_ratio(ratio(enc, find(res, mix["name"], b, "encode"))))
            for b in ENCODE_BASELINES) + ".", ""]
    out += ["## Stress streams", ""]
    for s in data["streams"][1:]:
        out += ["### %s" % s["name"], "",
                "%s, %d messages, mean %.0f bytes, largest %s." % (
                    human_bytes(s["bytes"]), s["messages"], s["mean_bytes"],
                    human_bytes(s["largest"])), "",
                md_table(HEAD, table_rows(data, s["name"])), "",
                md_table(["dcs mode"] + [LABELS[b] for b in DECODE_BASELINES],
                         ratio_matrix(data, s["name"])), ""]
    if data.get("notes"):
        out += ["## Notes", ""] + ["- " + n for n in data["notes"]] + [""]
    return "\n".join(out)


# ---- chart ----------------------------------------------------------------

CHART_BARS = [
    ("dcs", "whole", "dcs\\nwhole", "0x1f6fb4"),
    ("dcs", "64KiB", "dcs\\n64 KiB", "0x1f6fb4"),
    ("dcs", "1-byte", "dcs\\n1 byte", "0x1f6fb4"),
    ("simdjson", "whole", "simdjson\\nparse_many", "0xe07b1a"),
    ("simdjson-2t", "whole", "simdjson\\n2 threads", "0xe07b1a"),
    ("cjson", "whole", "cJSON", "0xe07b1a"),
    ("jansson", "whole", "jansson", "0xe07b1a"),
    ("dcs", "encode", "dcs\\nencode", "0x2e9e4a"),
    ("cjson", "encode", "cJSON\\nprint", "0x9a9a9a"),
    ("cjson-prealloc", "encode", "cJSON print\\npreallocated", "0x9a9a9a"),
    ("jansson", "encode", "jansson\\ndumpb", "0x9a9a9a"),
]


def write_chart(data, path, workdir):
    mix = data["streams"][0]["name"]
    dat = os.path.join(workdir, "chart.dat")
    n = 0
    gap = False
    with open(dat, "w") as f:
        for p, mode, label, color in CHART_BARS:
            r = find(data["results"], mix, p, mode)
            if not r:
                continue
            if mode == "encode" and n and not gap:
                n += 1  # a gap between the decoders and the encoders
                gap = True
            f.write('%d "%s" %.6f %d\n' % (n, label, r["msg_s"] / 1e6, int(color, 16)))
            n += 1
    m = data["machine"]
    title = ("dcs codec: messages per second on the realistic mix (%d messages, mean %.0f bytes)"
             "\\n%s, %s, %s" % (data["streams"][0]["messages"], data["streams"][0]["mean_bytes"],
                               m.get("cpu"), m.get("compiler_c"), m.get("date", "")[:10]))
    script = """
set terminal pngcairo size 1200,640 font "DejaVu Sans,10" noenhanced
set output '%(out)s'
set bmargin 5
set title "%(title)s"
set style fill solid 0.9 border rgb "black"
set boxwidth 0.7
set ylabel "million messages per second (median)"
set yrange [0:*]
set offsets 0.6, 0.6, graph 0.08, 0
set grid ytics
set xtics nomirror scale 0 font ",9"
set ytics nomirror
set border 3
unset key
set label 1 "blue: dcs decode   orange: decode baselines   green: dcs encode   grey: encode baselines" at graph 0.01, graph 0.97 font ",9"
plot '%(dat)s' using 1:3:4:xtic(2) with boxes lc rgb variable, \\
     '' using 1:3:(sprintf("%%.2f", $3)) with labels offset 0,0.8 font ",9"
""" % {"out": path, "title": title.replace('"', "'"), "dat": dat}
    gp = os.path.join(workdir, "chart.gp")
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", gp], check=True)


# ---- main -----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", required=True, help="JSON from dcs-bench-codec --json")
    ap.add_argument("--md", help="write the markdown report here")
    ap.add_argument("--chart", help="write the PNG chart here (needs gnuplot)")
    ap.add_argument("--workdir", default=".", help="for the chart's data and script")
    ap.add_argument("--package", action="append", default=[], help="NAME=VERSION")
    ap.add_argument("--machine", action="append", default=[], help="KEY=VALUE for machine")
    ap.add_argument("--json", action="store_true", help="print the JSON object on stdout")
    a = ap.parse_args()

    with open(a.inp) as f:
        data = json.load(f)
    m = data["machine"]
    if a.package:
        m["packages"] = dict(p.split("=", 1) for p in a.package)
    for kv in a.machine:
        k, v = kv.split("=", 1)
        m[k] = v
    tg = targets(data)
    data["targets"] = [{k: t[k] for k in ("target", "value", "required", "met")} for t in tg]
    ratios = []
    for s in data["streams"]:
        for mode in DCS_MODES:
            d = find(data["results"], s["name"], "dcs", mode)
            for b in DECODE_BASELINES:
                x = ratio(d, find(data["results"], s["name"], b, "whole"))
                if x is not None:
                    ratios.append({"stream": s["name"], "dcs_mode": mode, "baseline": b,
                                   "ratio": round(x, 4)})
        d = find(data["results"], s["name"], "dcs", "encode")
        for b in ENCODE_BASELINES:
            x = ratio(d, find(data["results"], s["name"], b, "encode"))
            if x is not None:
                ratios.append({"stream": s["name"], "dcs_mode": "encode", "baseline": b,
                               "ratio": round(x, 4)})
    data["ratios"] = ratios
    data["headline"] = headline(data)

    text = render_text(data, tg)
    if a.md:
        with open(a.md, "w") as f:
            f.write(render_md(data, tg))
    if a.chart:
        write_chart(data, a.chart, a.workdir)
    if a.json:
        sys.stderr.write(text)
        json.dump(data, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
