#!/usr/bin/env python3
"""Regenerates the end-to-end table and plots of docs/BENCHMARKS.md (`make bench`).

Runs the release `messenger bench --json` for N = 2, 4, 8, 16 members x fifo/total x 0 % and
5 % injected loss (all-to-all, 64-byte payloads), plus `--processes` rows for memory per
member, then rewrites the table between the markers `<!-- bench-table:start -->` and
`<!-- bench-table:end -->` and writes two hand-made SVG plots (docs/bench/throughput.svg and
docs/bench/latency.svg). Standard library only, Python 3.9 or newer.

    python3 scripts/bench_table.py [--binary target/release/messenger] [--scale 0.5]
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"
MEMBERS = [2, 4, 8, 16]
# Messages per sender, so that each run moves 0.8-1.4 M deliveries (a second or a few at
# today's rates; the whole matrix takes a few minutes): all-to-all with N members delivers
# N * (N - 1) * messages.
MESSAGES = {2: 400_000, 4: 100_000, 8: 25_000, 16: 6_000}
LOSS_SPEC = "loss=0.05,seed=1"
# The fixed offered rate of the latency run (the bench's default).
LATENCY_RATE = 10_000
PROCESS_ROWS = [4, 8]
# Date and machine of the runs in the table (those of results.json with --replot).
RUN_DATE = datetime.date.today().isoformat()
RUN_MACHINE = None


class Run:
    """One configuration: its command and, once run, its report."""

    def __init__(self, members: int, order: str, loss: bool, processes: bool, messages: int):
        self.members = members
        self.order = order
        self.loss = loss
        self.processes = processes
        self.messages = messages
        self.report: Optional[dict] = None
        self.failure: Optional[str] = None

    def args(self) -> List[str]:
        a = ["bench", "--members", str(self.members), "--messages", str(self.messages),
             "--order", self.order]
        if self.loss:
            a += ["--faults", LOSS_SPEC]
        if self.processes:
            a += ["--processes"]
        return a + ["--json"]

    def label(self) -> str:
        return "%s N=%d %s%s" % (self.order, self.members, "5%" if self.loss else "0%",
                                 " processes" if self.processes else "")


def save(path: str, runs: List[Run]) -> None:
    """Every run's configuration and report, so `--replot` can redraw without running."""
    data = {"date": datetime.date.today().isoformat(), "machine": machine(), "runs": [
        {"members": r.members, "order": r.order, "loss": r.loss, "processes": r.processes,
         "messages": r.messages, "report": r.report, "failure": r.failure} for r in runs]}
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def load(path: str) -> List[Run]:
    with open(path) as f:
        data = json.load(f)
    runs = []
    for d in data["runs"]:
        r = Run(d["members"], d["order"], d["loss"], d["processes"], d["messages"])
        r.report, r.failure = d["report"], d["failure"]
        runs.append(r)
    global RUN_DATE, RUN_MACHINE
    RUN_DATE, RUN_MACHINE = data["date"], data["machine"]
    return runs


def run_one(binary: str, run: Run, timeout: float) -> None:
    cmd = [binary] + run.args()
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        run.failure = "timed out after %d s" % timeout
        return
    stdout = out.stdout.decode(errors="replace").strip()
    try:
        run.report = json.loads(stdout.splitlines()[-1]) if stdout else None
    except ValueError:
        run.report = None
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        run.failure = err[-1] if err else "exit status %d" % out.returncode


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.0f GiB" % (int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    return "%s, %d CPUs (nproc), %s, Linux %s" % (model, os.cpu_count() or 0, mem, platform.release())


# ----- formatting -----------------------------------------------------------------------------

def rate(v: Optional[float]) -> str:
    if v is None:
        return "–"
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.0f k" % (v / 1e3)
    return "%.0f" % v


def ms(v: Optional[float]) -> str:
    if v is None:
        return "–"
    return "%.2f" % v if v < 10 else "%.0f" % v


def get(d: Optional[dict], *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def row(run: Run, binary_shown: str) -> str:
    r = run.report or {}
    ours = r.get("messenger") or {}
    naive = r.get("naive_udp") or {}
    ceiling = r.get("ceiling_udp") or {}
    full = r.get("latency_full_speed")
    paced = r.get("latency_at_rate")
    lost = ours.get("lost")
    if paced and lost is not None:
        lost += paced.get("lost", 0)
    per_member = r.get("peak_rss_kib_per_member")
    if per_member:
        memory = "%.1f MiB per member (max of %d)" % (max(per_member) / 1024, len(per_member))
    elif r.get("peak_rss_kib_process"):
        memory = "%.1f MiB all members (1 process)" % (r["peak_rss_kib_process"] / 1024)
    else:
        memory = "–"

    def ratio(key):
        v = r.get(key)
        return "–" if v is None else "%.2f" % v

    status = "" if run.failure is None else " **failed: %s**" % run.failure.replace("|", "/")
    return "| " + " | ".join([
        run.order,
        str(run.members),
        "5 %" if run.loss else "0",
        "processes" if run.processes else "threads",
        rate(ours.get("deliveries_per_sec")) + status,
        ratio("ratio_to_naive"),
        ratio("ratio_to_ceiling"),
        "%s (lost %s)" % (rate(naive.get("deliveries_per_sec")), naive.get("lost", "–")),
        rate(ceiling.get("deliveries_per_sec")),
        "–" if lost is None else str(lost),
        "%s / %s" % (ms(get(full, "p50_ms")), ms(get(full, "p99_ms"))),
        "%s / %s" % (ms(get(paced, "p50_ms")), ms(get(paced, "p99_ms"))),
        "–" if ours.get("cpu_seconds") is None else "%.2f" % ours["cpu_seconds"],
        memory,
        "`%s %s`" % (binary_shown, " ".join(run.args())),
    ]) + " |"


def table(runs: List[Run], binary_shown: str) -> str:
    head = ("| Order | N | Loss | Members as | Messenger deliveries/s | × naive | × ceiling "
            "| Naive UDP/s (lost) | Ceiling UDP/s | Lost | p50 / p99 full speed (ms) "
            "| p50 / p99 at %s msg/s (ms) | CPU s | Peak memory | Command |" % format(LATENCY_RATE, ","))
    sep = "|" + "---|" * 15
    lines = [head, sep] + [row(r, binary_shown) for r in runs]
    per_n = {r.members: r.messages for r in runs}
    counts = ", ".join("N=%d: %s" % (n, format(m, ",")) for n, m in sorted(per_n.items()))
    lines += [
        "",
        "Generated %s by `make bench` (scripts/bench_table.py) on: %s; release build. "
        "Messages per sender: %s (all-to-all, 64-byte payloads); the latency run offers "
        "%s messages/s for the group during 1 s. CPU is that of the measured (full-speed) run: "
        "the whole process in threads mode, the sum of the members' processes and the "
        "tracker with `--processes`." % (
            RUN_DATE, RUN_MACHINE or machine(), counts, format(LATENCY_RATE, ",")),
        "",
        "![Deliveries per second against N](bench/throughput.svg)",
        "",
        "![Latency at %s messages/s](bench/latency.svg)" % format(LATENCY_RATE, ","),
    ]
    return "\n".join(lines)


def rewrite(doc: str, content: str) -> None:
    with open(doc) as f:
        text = f.read()
    if START not in text or END not in text:
        sys.exit("%s has no %s ... %s markers" % (doc, START, END))
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    with open(doc, "w") as f:
        f.write(before + START + "\n" + content + "\n" + END + after)


# ----- plots (hand-written SVG) ---------------------------------------------------------------

COLOURS = {
    ("fifo", False): "#1f77b4",
    ("fifo", True): "#6baed6",
    ("total", False): "#d62728",
    ("total", True): "#fc9272",
    "ceiling": "#2ca02c",
    "naive": "#7f7f7f",
}
FONT = 'font-family="sans-serif"'


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def log_ticks(lo: float, hi: float) -> List[float]:
    ticks = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def human(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return ("%g" % (v / div)) + suffix
    return "%g" % v


def throughput_svg(runs: List[Run]) -> str:
    W, H = 760, 440
    left, right, top, bottom = 70, 170, 40, 50
    series: Dict[str, List] = {}
    base: Dict[str, Dict[int, List[float]]] = {"ceiling": {}, "naive": {}}
    for r in runs:
        if r.processes or r.report is None:
            continue
        v = get(r.report, "messenger", "deliveries_per_sec")
        key = "%s, %s loss" % (r.order, "5 %" if r.loss else "0 %")
        if v:
            series.setdefault(key, [(r.order, r.loss), []])[1].append((r.members, v))
        for b, k in (("ceiling", "ceiling_udp"), ("naive", "naive_udp")):
            bv = get(r.report, k, "deliveries_per_sec")
            if bv:
                base[b].setdefault(r.members, []).append(bv)
    lines = [(k, COLOURS[c], pts, "") for k, (c, pts) in sorted(series.items())]
    for b, label in (("ceiling", "ceiling UDP"), ("naive", "naive UDP")):
        pts = [(n, sum(vs) / len(vs)) for n, vs in sorted(base[b].items())]
        lines.append((label, COLOURS[b], pts, ' stroke-dasharray="6 4"'))
    values = [v for _, _, pts, _ in lines for _, v in pts]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-size="12">'
           % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" %s font-size="15" font-weight="bold">Deliveries per second '
           'against N (all-to-all, 64 B, loopback)</text>' % (left, FONT)]
    if not values:
        out.append('<text x="%d" y="%d" %s>no data</text>' % (left, H // 2, FONT))
        return "\n".join(out + ["</svg>"])
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    pw, ph = W - left - right, H - top - bottom
    xs = {n: left + pw * i / (len(MEMBERS) - 1) for i, n in enumerate(MEMBERS)}

    def y(v: float) -> float:
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    for t in log_ticks(lo, hi):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, left + pw, y(t), y(t)))
        out.append('<text x="%d" y="%.1f" %s text-anchor="end">%s</text>'
                   % (left - 6, y(t) + 4, FONT, human(t)))
    for n, x in xs.items():
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/>' % (x, x, top, top + ph))
        out.append('<text x="%.1f" y="%d" %s text-anchor="middle">%d</text>' % (x, top + ph + 18, FONT, n))
    out.append('<text x="%.1f" y="%d" %s text-anchor="middle">members (N)</text>'
               % (left + pw / 2, H - 10, FONT))
    out.append('<text x="16" y="%.1f" %s text-anchor="middle" transform="rotate(-90 16 %.1f)">'
               'messages delivered / s (log)</text>' % (top + ph / 2, FONT, top + ph / 2))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'
               % (left, top, pw, ph))
    for i, (label, colour, pts, dash) in enumerate(lines):
        pts = sorted(pts)
        if pts:
            path = " ".join("%.1f,%.1f" % (xs[n], y(v)) for n, v in pts)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                       % (path, colour, dash))
            for n, v in pts:
                out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s, N=%d: %s/s'
                           '</title></circle>' % (xs[n], y(v), colour, esc(label), n, human(v)))
        ly = top + 10 + 20 * i
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                   % (left + pw + 12, left + pw + 34, ly, ly, colour, dash))
        out.append('<text x="%d" y="%d" %s>%s</text>' % (left + pw + 40, ly + 4, FONT, esc(label)))
    return "\n".join(out + ["</svg>"])


def latency_svg(runs: List[Run]) -> str:
    groups = [r for r in runs if not r.processes and get(r.report, "latency_at_rate", "p50_ms")]
    W, H = 980, 460
    left, right, top, bottom = 70, 20, 60, 90
    pw, ph = W - left - right, H - top - bottom
    keys = [("p50_ms", "p50", "#9ecae1"), ("p90_ms", "p90", "#4292c6"),
            ("p99_ms", "p99", "#08519c"), ("max_ms", "max", "#111111")]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-size="12">'
           % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" %s font-size="15" font-weight="bold">Latency, send to delivery, '
           'at %s messages/s offered to the group (ms, log scale)</text>'
           % (left, FONT, format(LATENCY_RATE, ","))]
    for i, (_, label, colour) in enumerate(keys):
        x = left + 90 * i
        out.append('<rect x="%d" y="34" width="12" height="12" fill="%s"/>' % (x, colour))
        out.append('<text x="%d" y="45" %s>%s</text>' % (x + 16, FONT, label))
    values = [max(get(r.report, "latency_at_rate", k) or 0, 0.001) for r in groups for k, _, _ in keys]
    if not values:
        out.append('<text x="%d" y="%d" %s>no data</text>' % (left, H // 2, FONT))
        return "\n".join(out + ["</svg>"])
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))

    def y(v: float) -> float:
        v = max(v, lo)
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    for t in log_ticks(lo, hi):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, left + pw, y(t), y(t)))
        out.append('<text x="%d" y="%.1f" %s text-anchor="end">%g</text>'
                   % (left - 6, y(t) + 4, FONT, t))
    slot = pw / max(len(groups), 1)
    bar = slot * 0.8 / len(keys)
    section = None
    for i, r in enumerate(groups):
        x0 = left + slot * i + slot * 0.1
        for j, (k, label, colour) in enumerate(keys):
            v = get(r.report, "latency_at_rate", k) or 0
            yy = y(max(v, lo))
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                       '<title>%s: %s %.3f ms</title></rect>'
                       % (x0 + bar * j, yy, bar, top + ph - yy, colour, esc(r.label()), label, v))
        out.append('<text x="%.1f" y="%d" %s text-anchor="middle">N=%d</text>'
                   % (left + slot * (i + 0.5), top + ph + 16, FONT, r.members))
        this = (r.order, r.loss)
        if this != section:
            section = this
            out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>'
                       % (left + slot * i, left + slot * i, top, top + ph + 44))
            out.append('<text x="%.1f" y="%d" %s>%s, %s loss</text>'
                       % (left + slot * i + 6, top + ph + 40, FONT, r.order,
                          "5 %" if r.loss else "0 %"))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'
               % (left, top, pw, ph))
    return "\n".join(out + ["</svg>"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "messenger"))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--plots", default=os.path.join(ROOT, "docs", "bench"))
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every message count (e.g. 0.2 for a quick look)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--replot", action="store_true",
                    help="run nothing: rebuild the table and plots from the saved results.json")
    opts = ap.parse_args()
    if not opts.replot and not os.access(opts.binary, os.X_OK):
        sys.exit("no %s: build it first (cargo build --release -p messenger-demo)" % opts.binary)
    shown = os.path.relpath(opts.binary, ROOT) if opts.binary.startswith(ROOT) else opts.binary

    def count(n: int) -> int:
        return max(1, int(MESSAGES[n] * opts.scale))

    results = os.path.join(opts.plots, "results.json")
    if opts.replot:
        runs = load(results)
    else:
        runs = [Run(n, order, loss, False, count(n))
                for order in ("fifo", "total") for loss in (False, True) for n in MEMBERS]
        runs += [Run(n, "fifo", False, True, count(n)) for n in PROCESS_ROWS]
        for i, r in enumerate(runs, 1):
            sys.stderr.write("[%2d/%d] %-28s " % (i, len(runs), r.label()))
            sys.stderr.flush()
            run_one(opts.binary, r, opts.timeout)
            rep = r.report or {}
            sys.stderr.write("%10s deliveries/s, ratio to ceiling %s%s\n" % (
                rate(get(rep, "messenger", "deliveries_per_sec")),
                "–" if rep.get("ratio_to_ceiling") is None else "%.3f" % rep["ratio_to_ceiling"],
                "" if r.failure is None else "  FAILED: " + r.failure))
        os.makedirs(opts.plots, exist_ok=True)
        save(results, runs)

    rewrite(opts.doc, table(runs, shown))
    os.makedirs(opts.plots, exist_ok=True)
    for name, svg in (("throughput.svg", throughput_svg(runs)), ("latency.svg", latency_svg(runs))):
        with open(os.path.join(opts.plots, name), "w") as f:
            f.write(svg + "\n")
    sys.stderr.write("wrote the table in %s and the plots in %s\n" % (
        os.path.relpath(opts.doc, ROOT), os.path.relpath(opts.plots, ROOT)))
    failed = [r.label() for r in runs if r.failure]
    if failed:
        sys.exit("failed runs: " + ", ".join(failed))


if __name__ == "__main__":
    main()
