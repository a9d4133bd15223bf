#!/usr/bin/python3
"""plot_bench.py - time against L, log-log, from `ringattn bench attn` outputs.

    mpirun -n 1 ringattn bench attn -b 1K -e 32K --causal --head full > full.txt
    mpirun -n 1 ringattn bench attn -b 1K -e 32K --causal --head combiner-fixed > fixed.txt
    scripts/plot_bench.py full.txt fixed.txt -o bench.png

One line per file (labelled by its head), forward and, dashed, backward
median times (ms, average over ranks); the legend gives the fitted slope of
log(time) against log(L): about 2 for full attention, 1.5 for combiner-fixed
with span sqrt(L)."""
import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import plot_out  # noqa: E402  (beside this script)


def read(path):
    head, rows = "?", []
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
            except (ValueError, IndexError):
                row = None
            if not row or not all(math.isfinite(v) and v >= 0 for v in row):
                sys.exit(f"plot_bench: {path}:{n}: not a result row: {line[:80]!r}")
            rows.append(row)
    if not rows:
        sys.exit(f"plot_bench: {path}: no result rows")
    return head, rows


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
    fig, ax = plt.subplots(figsize=(7, 5))
    for path in a.files:
        head, rows = read(path)
        L = [r[0] for r in rows]
        fwd = [r[1] for r in rows]
        bwd = [r[2] for r in rows]
        line, = ax.loglog(L, fwd, "o-", label=f"{head} forward (slope {slope(L, fwd):.2f})")
        if any(b > 0 for b in bwd):
            ax.loglog(L, bwd, "s--", color=line.get_color(), label=f"{head} backward (slope {slope(L, bwd):.2f})")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time per call (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plot_out.save("plot_bench", fig, a.output, dpi=120)
    print(f"plot_bench: wrote {a.output}")


if __name__ == "__main__":
    main()
