#!/usr/bin/python3
"""plot_bench.py - time against L, log-log, from `ringattn bench attn` outputs.

    mpirun -n 1 ringattn bench attn -b 1K -e 32K --causal --head full > full.txt
    mpirun -n 1 ringattn bench attn -b 1K -e 32K --causal --head combiner-fixed > fixed.txt
    scripts/plot_bench.py full.txt fixed.txt -o bench.png

One line per file and thread count (labelled by its head, and by thr when a
file sweeps `-t 1,2`: bench attn then prints one row per L and count),
forward and, dashed, backward median times (ms, average over ranks); the
legend gives each line's fitted slope of log(time) against log(L): about 2
for full attention, 1.5 for combiner-fixed with span sqrt(L). A row whose
check is FAIL is drawn with a red cross and named on stderr; an L that
repeats at the same thr (two runs in one file) is refused, and so is an L
past 1e15 or a time past 1e12 ms, naming file, line and column."""
import argparse
import math
import os
import sys

import plot_out  # beside this script

# 1e15 microseconds (about 30 years) is no run's time: a time of 1e308 drew a blank
# plot with an axis to 1e305 and a numpy overflow warning
MAX_MS = 1e12


def read(path):
    """(head, {thr: [(L, fwd_ms, bwd_ms, failed)]}); thr is None for a table
    without bench attn's thr column (18th), failed is the check column's FAIL."""
    head, lines_of, seen = "?", {}, {}
    plot_out.check_input("plot_bench", path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        sys.exit(f"plot_bench: {path}: {e.strerror}")
    except UnicodeDecodeError as e:
        sys.exit(f"plot_bench: {path}: not UTF-8 text ({e.reason}): not a bench attn output")
    for n, line in enumerate(lines, 1):
        if line.startswith("# ringattn bench attn:"):
            for word in line.split():
                if word.startswith("head="):
                    head = word[5:]
        elif line.strip() and not line.startswith("#"):
            f = line.split()
            try:
                row = (int(f[0]), float(f[1]), float(f[7]))
                thr = int(f[17]) if len(f) >= 18 else None
            except (ValueError, IndexError):
                row = None
            # not math.isfinite: it raises OverflowError on an L of 400 digits
            if not row or not all(0 <= v < math.inf for v in row):
                sys.exit(f"plot_bench: {path}:{n}: not a result row: {line[:80]!r}")
            for name, v, top in (("L", row[0], 1e15), ("fwd_ms", row[1], MAX_MS), ("bwd_ms", row[2], MAX_MS)):
                if v > top:
                    sys.exit(f"plot_bench: {path}:{n}: {name} {v!r:.24} is out of range (0 to {top:g})")
            # a second row of one (L, thr) is a second run appended: its line would zig-zag
            if (row[0], thr) in seen:
                sys.exit(f"plot_bench: {path}:{n}: L={row[0]}" + (f" thr={thr}" if thr is not None else "")
                         + f" again (first on line {seen[row[0], thr]}): one run per file")
            seen[row[0], thr] = n
            failed = len(f) >= 20 and f[19] == "FAIL"
            if failed:
                print(f"plot_bench: warning: {path}:{n}: L={row[0]}" + (f" thr={thr}" if thr is not None else "")
                      + ": check FAIL (wrong results), marked with a red cross", file=sys.stderr)
            lines_of.setdefault(thr, []).append(row + (failed,))
    if not lines_of:
        sys.exit(f"plot_bench: {path}: no result rows")
    return head, lines_of


def slope(xs, ys):
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sum((p[0] - mx) ** 2 for p in pts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    plot_out.check("plot_bench", a.output, a.files)
    tables = [read(path) for path in a.files]
    # matplotlib only now (half a second): a bad input is refused at once
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    failed_label = "check FAIL"
    for head, lines_of in tables:
        for thr, rows in sorted(lines_of.items(), key=lambda kv: (kv[0] is None, kv[0])):
            rows.sort()
            name = head if len(lines_of) == 1 else f"{head} thr={thr}"  # a -t sweep: one line per count
            L = [r[0] for r in rows]
            fwd = [r[1] for r in rows]
            bwd = [r[2] for r in rows]
            line, = ax.loglog(L, fwd, "o-", label=f"{name} forward (slope {slope(L, fwd):.2f})")
            if any(b > 0 for b in bwd):
                ax.loglog(L, bwd, "s--", color=line.get_color(), label=f"{name} backward (slope {slope(L, bwd):.2f})")
            bad = [r for r in rows if r[3]]
            if bad:
                ax.loglog([r[0] for r in bad], [r[1] for r in bad], "x", color="red", markersize=14,
                          markeredgewidth=2.5, label=failed_label)
                failed_label = None  # one legend entry for all
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time per call (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if failed_label is None:
        ax.set_title("rows marked x failed bench attn's check", color="red", fontsize=9)
    fig.tight_layout()
    plot_out.save("plot_bench", fig, a.output, dpi=120)
    print(f"plot_bench: wrote {a.output}")


if __name__ == "__main__":
    main()
