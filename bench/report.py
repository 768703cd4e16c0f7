#!/usr/bin/env python3
"""Render bench/results/*.tsv (written by bench/run) into a printed table and docs/BENCHMARKS.md.

usage: report.py RESULTS-DIR OUT.md

A results file has '# key: value' header lines (machine, versions, date, notes) and rows
'row<TAB>label<TAB>ours<TAB>reference<TAB>unit<TAB>ref-label<TAB>goal<TAB>detail'. A goal is
'>=0.5x' or '<=1.5x' (ratio ours/reference), '<=N' (absolute, in the row's unit) or empty.
The hand-written analysis in bench/analysis.md is appended to the document.
"""

import os
import re
import sys

PARTS = [
    ("page", "1. Gallery page", "requests/s and latency of `/gallery` (60 thumbnails, logged in) and of an `/images/{id}` page vs nginx serving the same HTML bytes as a file, beside the server's own `/healthz` ceiling. Goals (issue 13): `/gallery` >= 0.5x nginx on both backends with p99 <= 10 ms; `/images/{id}` >= 0.4x."),
    ("delivery", "2. Thumbnail delivery", "`/images/{id}/thumb` from disk storage (the bytes) and from S3 storage (a 302 to a presigned URL) vs nginx serving the same files. Goal (issue 13): >= 0.7x nginx's requests/s."),
    ("thumbnail", "3. Upload thumbnail", "the intake path on `testdata/photos/large-12mp-exif-rot6.jpg` (4000x3000, EXIF orientation 6) vs `vipsthumbnail`, 400 px long edge. Goals (issue 13): <= 0.6x vips's time and <= 0.5x its peak memory."),
    ("bytes", "4. Bytes per gallery view", "HTML + CSS + every thumbnail of a 60-image page vs the replaced Flask page (every original base64-inlined). Goal: <= 5%."),
    ("upload-memory", "5. Upload memory", "server peak RSS while 8, then 32 clients upload ~20 MB images at once. Goal (issue 13): <= 160 MiB, the same at 32 clients as at 8."),
    ("provision", "6. Provision", "the real `provision` binary on the local cloud (`localcloud/`) with its realistic delays: a no-op `up` (AWS calls and wall time; goal <= 40 calls and <= 3 s), and `up` from nothing and `down` against the longest dependency chain of those delays (what a perfectly parallel tool would take) and against their sum (what a playbook waiting for each step in turn would take). Goal: <= 1.15x the longest chain. How the references are derived is in the notes below."),
    ("deploy", "7. Deploy", "`provision deploy` (rolling, batch size 1) of a new release over a running stack of 2 and of 4 instances, on the local cloud with its `instant` profile (no cloud delays: what remains is the stack's own health checks and deregistration delay), against the least a rolling deploy must wait: per batch, the new instance's boot, its health checks (healthy_threshold passing probes, `interval` apart) and an old instance's drain. No goal yet: the ratio is reported. How the references are derived is in the notes below."),
]
MACHINE_KEYS = ["cores", "cpu", "memory", "kernel", "os", "nginx", "vips", "wrk", "postgresql", "gallery"]


def parse(path):
    meta, notes, rows = {}, [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# "):
                key, _, value = line[2:].partition(": ")
                if key == "note":
                    notes.append(value)
                else:
                    meta[key] = value
            elif line.startswith("row\t"):
                cells = line.split("\t")[1:]
                cells += [""] * (7 - len(cells))
                rows.append(dict(zip(["label", "ours", "ref", "unit", "ref_label", "goal", "detail"], cells)))
    return meta, notes, rows


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def fmt(v, unit):
    x = num(v)
    if x is None:
        return v or "?"
    if unit == "bytes":
        return f"{x / 1e6:.2f} MB" if x >= 1e6 else f"{x / 1e3:.1f} kB" if x >= 1e3 else f"{x:.0f} B"
    if unit == "calls":
        return f"{x:.0f} calls"
    if unit == "req/s":
        return f"{x:,.0f} req/s"
    return f"{x:,.1f} {unit}" if x < 1000 else f"{x:,.0f} {unit}"


def ref_cell(r, with_label=True):
    """The reference column: a dash for a row without one (an absolute goal)."""
    if not r["ref"]:
        return "-"
    text = fmt(r["ref"], r["unit"])
    return f"{text} ({r['ref_label']})" if with_label and r["ref_label"] else text


def judge(r):
    """(ratio text, goal text, verdict)"""
    ours, ref, goal = num(r["ours"]), num(r["ref"]), r["goal"]
    ratio = ours / ref if ours is not None and ref else None
    if not r["ref"]:
        rtext = "-"
    elif ratio is None:
        rtext = "?"
    elif ratio < 0.1:
        rtext = f"{ratio * 100:.1f}%"
    else:
        rtext = f"{ratio:.2f}x"
    if not goal:
        return rtext, "", ""
    m = re.fullmatch(r"(>=|<=)([0-9.]+)(x?)", goal)
    if not m or ours is None:
        return rtext, goal, "?"
    op, limit, is_ratio = m.group(1), float(m.group(2)), m.group(3) == "x"
    value = ratio if is_ratio else ours
    if value is None:
        return rtext, goal, "?"
    ok = value >= limit if op == ">=" else value <= limit
    if is_ratio:
        gtext = f"{op} {limit * 100:g}%" if limit < 0.1 else f"{op} {limit:g}x"
    else:
        gtext = f"{op} {fmt(limit, r['unit'])}"
    if ok:
        verdict = "met"
    else:
        # How far off: the factor the figure must improve by.
        if is_ratio:
            factor = limit / value if op == ">=" else value / limit
        else:
            factor = limit / ours if op == ">=" else ours / limit
        verdict = f"MISSED (x{factor:.2f})"
    return rtext, gtext, verdict


def main():
    rdir, out = sys.argv[1], sys.argv[2]
    results = {}
    for key, *_ in PARTS:
        path = os.path.join(rdir, f"{key}.tsv")
        if os.path.exists(path):
            results[key] = parse(path)

    # Printed table.
    table = [("part", "figure", "ours", "reference", "ratio", "goal", "verdict")]
    for key, title, _ in PARTS:
        if key not in results:
            continue
        for r in results[key][2]:
            rtext, gtext, verdict = judge(r)
            table.append((title.split(".")[0], r["label"], fmt(r["ours"], r["unit"]), ref_cell(r, False), rtext, gtext, verdict))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print()
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()

    # The document.
    latest = max(results.values(), key=lambda r: r[0].get("date", ""), default=({}, [], []))[0]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run` (figures) and `bench/report.py` (this page); the profiling",
        "notes at the end are written by hand (`bench/analysis.md`). Every figure is a **ratio**",
        "against a reference measured side by side in the same run on the same machine: the",
        "benchmark machine is shared (builds run beside it), so absolute numbers drift while ratios",
        "hold. Benchmarks print; they never fail CI.",
        "",
        "```sh",
        "bench/run                   # every part (about 4 minutes after the release build, ~5 for provision, ~8 for deploy)",
        "bench/run page delivery     # some parts; the others keep their last figures",
        "```",
        "",
        "Parts: `page`, `delivery`, `thumbnail`, `bytes`, `upload-memory`, `provision` (as root:",
        "the local cloud; `BENCH_PROVISION_REPS`, 3) and `deploy` (as root: the local cloud;",
        "`BENCH_DEPLOY_REPS`, 3, per size; `BENCH_DEPLOY_SIZES`, \"2 4\").",
        "`bench/run` installs nginx, libvips-tools and wrk from Debian if",
        "missing, builds `cargo build --release -p gallery`, starts its own servers (gallery on",
        "SQLite and on a throwaway PostgreSQL with TLS from `scripts/lib/services.sh`, nginx on a",
        "free port) and stops them. Knobs: `BENCH_DURATION` (20 s), `BENCH_CONNECTIONS` (64),",
        "`BENCH_REPS` (7). Raw results: `bench/results/<part>.tsv`.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {latest[k]} |" for k in MACHINE_KEYS if k in latest]
    lines += [f"| date | {latest.get('date', '?')} |", ""]
    lines += ["## Summary", "", "| part | figure | ours | reference | ratio | goal | verdict |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, title, _ in PARTS:
        if key not in results:
            lines.append(f"| {title} | not run yet | | | | | |")
            continue
        for r in results[key][2]:
            rtext, gtext, verdict = judge(r)
            v = f"**{verdict}**" if verdict.startswith("MISSED") else verdict
            lines.append(f"| {title} | {r['label']} | {fmt(r['ours'], r['unit'])} | {ref_cell(r)} | {rtext} | {gtext} | {v} |")
    lines.append("")
    lines.append("MISSED (xN): the figure must improve N-fold to meet its goal.")
    lines.append("")

    for key, title, what in PARTS:
        lines += [f"## {title}", ""]
        if what is None:
            lines += [
                "<!-- ==== PART " + title.split(".")[0] + ": ADDED BY THE LEAD ==== -->",
                f"Not measured yet: `bench_{key}` in `bench/run` is a placeholder; it writes",
                f"`bench/results/{key}.tsv` when added, and this section fills in.",
                "",
            ]
            if key not in results:
                continue
        else:
            if key == "provision":
                lines += ["<!-- ==== PART 6: provision (bench_provision in bench/run; bench/run provision) ==== -->"]
            if key == "deploy":
                lines += ["<!-- ==== PART 7: deploy (bench_deploy in bench/run; bench/run deploy) ==== -->"]
            lines += [f"What: {what}", ""]
        if key not in results:
            lines += ["Not run yet: `bench/run " + key + "`.", ""]
            continue
        meta, notes, rows = results[key]
        lines += [f"Run {meta.get('date', '?')}; load average before {meta.get('load-before', '?')}, after {meta.get('load-after', '?')}.", ""]
        if meta.get("cpu") != latest.get("cpu") or meta.get("cores") != latest.get("cores"):
            lines += [f"Machine for this part: {meta.get('cores')} cores, {meta.get('cpu')}, {meta.get('memory')}.", ""]
        lines += [f"- {n}" for n in notes]
        lines += ["", "| figure | ours | reference | ratio | goal | verdict | detail |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            rtext, gtext, verdict = judge(r)
            lines.append(f"| {r['label']} | {fmt(r['ours'], r['unit'])} | {ref_cell(r)} | {rtext} | {gtext} | {verdict} | {r['detail']} |")
        lines.append("")

    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            lines += [f.read().rstrip(), ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
