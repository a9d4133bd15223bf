#!/usr/bin/python3
"""plot_trace.py - a timeline PNG of a `ringattn ... --trace FILE` file.

    mpirun -n 2 ringattn bench attn -b 16K -e 16K -n 1 -w 0 --causal --trace out/trace.json
    scripts/plot_trace.py out/trace.json -o out/trace.png --title "zigzag P=2"
    scripts/plot_trace.py out/trace.json -o step.png --from 120 --to 180

One row per rank and track (main thread, ring sends, ring receives,
gradient reductions), ranks top to bottom; spans as bars coloured by
category (a legend names them), nested spans drawn thinner on top of their
parents, so a ring step shows inside its pass; instants as ticks. Time in
ms since the trace's start (ranks aligned on rank 0's clock, docs/trace.md).
--from/--to cut a window (ms); --depth drops spans nested deeper. A trace
of a failed run (otherData.status) or with events dropped past the
RINGATTN_TRACE_EVENTS cap (otherData.ranks[].dropped_events) is drawn, but
said on stderr and in red under the title: its timeline is incomplete.
An event whose ts or dur is negative or past 1e15 us (about 30 years), or
an otherData.status that is not a string or a dropped_events that is not a
count, is refused naming the file and the event or field."""
import argparse
import json
import math
import os
import sys

import plot_out  # beside this script

# ts and dur are microseconds since the trace's start: past 1e15 (about 30 years) is no
# run's, and 1e308 drew a blank axis to 1e305 with a numpy overflow warning
MAX_US = 1e15


COLOURS = {
    "attn": "#4c72b0", "comm": "#dd8452", "wait": "#c44e52", "reduce": "#8172b3", "model": "#55a868",
    "optim": "#937860", "eval": "#da8bc3", "io": "#8c8c8c", "combiner": "#64b5cd", "decode": "#ccb974",
    "bench": "#b0b0b0", "train": "#d0d0d0", "collective": "#a05195",
}


def load(path):
    plot_out.check_input("plot_trace", path)  # a FIFO would block open()
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        sys.exit(f"plot_trace: {path}: {e.strerror}")
    except ValueError as e:
        sys.exit(f"plot_trace: {path}: not JSON: {e}")
    except RecursionError:
        sys.exit(f"plot_trace: {path}: not a trace: JSON nested too deeply")
    evs = d.get("traceEvents") if isinstance(d, dict) else d
    if not isinstance(evs, list):
        sys.exit(f"plot_trace: {path}: no traceEvents list (not a Chrome trace file)")
    for i, e in enumerate(evs):
        why = bad_event(e)
        if why:
            sys.exit(f"plot_trace: {path}: traceEvents[{i}]: {why}")
    why = bad_other(d)
    if why:
        sys.exit(f"plot_trace: {path}: {why}")
    return d, evs


def finite(x):
    # not math.isfinite: it raises OverflowError on an integer of 400 digits
    return isinstance(x, (int, float)) and not isinstance(x, bool) and -math.inf < x < math.inf


def bad_event(e):
    """Why event e cannot be drawn (the fields this script reads), or None."""
    if not isinstance(e, dict):
        return "not an object"
    ph = e.get("ph")
    if ph in ("X", "i", "M"):
        if not isinstance(e.get("pid"), int) or isinstance(e.get("pid"), bool):
            return "no integer pid"
        if ph != "M" or e.get("name") == "thread_name":
            if not isinstance(e.get("tid"), int) or isinstance(e.get("tid"), bool):
                return "no integer tid"
    if ph in ("X", "i"):
        if not finite(e.get("ts")):
            return "ts is not a finite number"
        if ph == "X" and not (finite(e.get("dur")) and e["dur"] >= 0 and finite(e["ts"] + e["dur"])):
            return "dur is not a finite number >= 0 (with a finite end)"
        for key in ("ts", "dur") if ph == "X" else ("ts",):  # after the finite checks, which name an infinite end
            if not 0 <= e[key] <= MAX_US:
                return f"{key} {e[key]!r:.24} is out of range (0 to {MAX_US:g} microseconds)"
        if "cat" in e and not isinstance(e["cat"], str):
            return "cat is not a string"
    if ph == "M" and e.get("name") in ("process_name", "thread_name"):
        args = e.get("args")
        if not isinstance(args, dict) or not isinstance(args.get("name"), str):
            return "a name event without args.name"
    return None


def bad_other(d):
    """Why ringattn's otherData fields that caveats() reads are of the wrong
    type, or None: a status or dropped_events of another type was ignored
    without a word, and the trace drawn as complete."""
    other = d.get("otherData") if isinstance(d, dict) else None
    if other is None:
        return None
    if not isinstance(other, dict):
        return "otherData is not an object"
    if "status" in other and not isinstance(other["status"], str):
        return f"otherData.status is not a string: {other['status']!r:.40}"
    ranks = other.get("ranks")
    if ranks is None:
        return None
    if not isinstance(ranks, list):
        return "otherData.ranks is not a list"
    for i, r in enumerate(ranks):
        if not isinstance(r, dict):
            return f"otherData.ranks[{i}] is not an object"
        n = r.get("dropped_events", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return f"otherData.ranks[{i}].dropped_events is not a count (an integer >= 0): {n!r:.40}"
    return None


def caveats(d):
    """What makes the timeline incomplete, from ringattn's otherData: a failed
    run, events dropped past the cap (per rank). [] for a complete trace."""
    other = d.get("otherData") if isinstance(d, dict) else None
    if not isinstance(other, dict):
        return []
    out = []
    status = other.get("status")
    if isinstance(status, str) and status != "ok":
        out.append(f"the run {status}" if status.startswith("failed") else f"status {status!r}")
    ranks = other.get("ranks")
    drops = {}
    for r in ranks if isinstance(ranks, list) else []:
        if isinstance(r, dict) and finite(r.get("dropped_events")) and r["dropped_events"] > 0:
            drops[r.get("rank", "?")] = int(r["dropped_events"])
    if drops:
        out.append(f"{sum(drops.values())} events dropped (rank " + ", ".join(f"{k}: {v}" for k, v in drops.items())
                   + "; past the RINGATTN_TRACE_EVENTS cap)")
    return out


def rows_of(evs):
    """(pid, tid) -> label, in rank then track order, for tracks with events."""
    pname = {e["pid"]: e["args"]["name"] for e in evs if e.get("ph") == "M" and e.get("name") == "process_name"}
    tname = {(e["pid"], e["tid"]): e["args"]["name"] for e in evs
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    used = sorted({(e["pid"], e["tid"]) for e in evs if e.get("ph") in ("X", "i")})
    labels = {}
    for key in used:
        rank = pname.get(key[0], f"pid {key[0]}").split(" (")[0]
        track = tname.get(key, f"tid {key[1]}").split(" (")[0]
        labels[key] = f"{rank}: {track}"
    return used, labels


def depths(spans):
    """Nesting depth of each span of one track (spans sorted by start)."""
    out, stack = [], []
    for s in spans:
        while stack and stack[-1] <= s["ts"] + 1e-3:
            stack.pop()
        out.append(len(stack))
        stack.append(s["ts"] + s["dur"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="the --trace JSON file")
    ap.add_argument("-o", "--out", default="trace.png", help="output PNG (default trace.png)")
    ap.add_argument("--from", dest="t_from", type=float, default=None, help="window start, ms")
    ap.add_argument("--to", dest="t_to", type=float, default=None, help="window end, ms")
    ap.add_argument("--title", default=None, help="plot title (default: the command line)")
    ap.add_argument("--depth", type=int, default=3, help="deepest nesting level drawn (default 3)")
    ap.add_argument("--width", type=float, default=12, help="figure width, inches (default 12)")
    a = ap.parse_args()
    if a.depth < 0:
        sys.exit(f"plot_trace: --depth {a.depth}: give 0 (top-level spans only) or more")
    for name, v in (("--from", a.t_from), ("--to", a.t_to)):
        if v is not None and not math.isfinite(v):
            sys.exit(f"plot_trace: {name} {v}: give a time in ms")
    if not (math.isfinite(a.width) and 1 <= a.width <= 100):
        sys.exit(f"plot_trace: --width {a.width}: give 1 to 100 inches")
    plot_out.check("plot_trace", a.out, [a.trace])  # the output before any work
    d, evs = load(a.trace)
    warn = caveats(d)
    for w in warn:
        print(f"plot_trace: warning: {a.trace}: {w}: the timeline is incomplete", file=sys.stderr)
    used, labels = rows_of(evs)
    if not used:
        sys.exit(f"plot_trace: {a.trace}: no spans to draw")
    lo = a.t_from if a.t_from is not None else float("-inf")
    hi = a.t_to if a.t_to is not None else float("inf")
    if lo >= hi:
        sys.exit(f"plot_trace: --from {a.t_from} must be before --to {a.t_to}")

    # matplotlib only now: a bad trace file is named even where it is missing
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as e:
        sys.exit(f"plot_trace: {e} (Debian: apt-get install python3-matplotlib)")
    fig, ax = plt.subplots(figsize=(a.width, 0.45 * len(used) + 1.6))
    cats, t_min, t_max = set(), float("inf"), float("-inf")
    for row, key in enumerate(used):
        spans = sorted((e for e in evs if e.get("ph") == "X" and (e["pid"], e["tid"]) == key),
                       key=lambda e: (e["ts"], -e["dur"]))
        y = len(used) - 1 - row
        for s, dep in zip(spans, depths(spans)):
            t0, t1 = s["ts"] / 1e3, (s["ts"] + s["dur"]) / 1e3
            if dep > a.depth or t1 < lo or t0 > hi:
                continue
            t0, t1 = max(t0, lo), min(t1, hi)
            h = 0.8 * (0.75 ** dep)
            cat = s.get("cat", "?")
            cats.add(cat)
            ax.broken_barh([(t0, max(t1 - t0, 1e-6))], (y - h / 2, h), facecolors=COLOURS.get(cat, "#999999"),
                           edgecolor="white", linewidth=0.4)  # the edges separate consecutive steps
            t_min, t_max = min(t_min, t0), max(t_max, t1)
        for e in evs:
            if e.get("ph") == "i" and (e["pid"], e["tid"]) == key and lo <= e["ts"] / 1e3 <= hi:
                ax.plot([e["ts"] / 1e3] * 2, [y - 0.45, y + 0.45], color="black", linewidth=0.8)
    if t_min > t_max:
        sys.exit(f"plot_trace: {a.trace}: nothing in the window [{a.t_from}, {a.t_to}] ms")
    ax.set_yticks(range(len(used)))
    ax.set_yticklabels([labels[k] for k in reversed(used)], fontsize=8)
    ax.set_xlabel("time (ms)")
    ax.set_xlim(t_min if a.t_from is None else a.t_from, t_max if a.t_to is None else a.t_to)
    ax.grid(axis="x", alpha=0.3)
    other = d.get("otherData") if isinstance(d, dict) else None  # a bare event list has none
    command = other.get("command") if isinstance(other, dict) else None
    title = a.title if a.title is not None else command if isinstance(command, str) else a.trace
    ax.set_title(title + ("\n" if warn else ""), fontsize=9)  # the blank line: room for the note
    if warn:  # on the image too: a PNG travels without its stderr
        ax.text(0.5, 1.0, "incomplete: " + "; ".join(warn), transform=ax.transAxes, ha="center", va="bottom",
                color="red", fontsize=8, wrap=True)
    ax.legend(handles=[Patch(color=COLOURS.get(c, "#999999"), label=c) for c in sorted(cats)], fontsize=7,
              loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / max(len(used), 1)), ncol=min(len(cats), 8),
              frameon=False)
    fig.tight_layout()
    plot_out.save("plot_trace", fig, a.out, dpi=90)
    print(f"plot_trace: {a.out}: {len(used)} rows, {t_min:.3f} to {t_max:.3f} ms, categories {', '.join(sorted(cats))}")


if __name__ == "__main__":
    main()
