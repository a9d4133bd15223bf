#!/usr/bin/python3
"""plot_combiner.py OUT_DIR -o PNG - the Combiner experiment's figure.

Left: held-out bits per byte against the training step, one line per run
(OUT_DIR/<variant>-s<seed>.jsonl, from scripts/combiner_experiment.sh).
Right: the training step time of each variant (OUT_DIR/step_times.tsv:
variant, step_ms, tokens_per_s, from `ringattn bench train`).
Every file must be a regular file (a FIFO would block the read). A run file
without an eval_bpb line (empty, or killed before its first evaluation) is
named in a warning and left out; when no run has one, or step_times.tsv has
no row, nothing is drawn: exit 1 naming the file(s).
"""
import argparse
import glob
import json
import math
import os
import sys

import plot_out  # beside this script

COLOURS = {"full": "C3", "combiner-axial": "C0", "combiner-fixed": "C2", "mix": "C5"}


def fail(msg):
    sys.exit(f"plot_combiner.py: {msg}")


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def eval_curve(path):
    """(steps, eval_bpb) of a metrics file; anything else in it is an error naming file and line."""
    xs, ys = [], []
    plot_out.check_input("plot_combiner.py", path)
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
                    fail(f"{path}:{n}: malformed JSON ({str(e)[:80]})")
                if not isinstance(row, dict):
                    fail(f"{path}:{n}: expected a JSON object")
                if "eval_bpb" in row:
                    if not number(row.get("step")) or not number(row["eval_bpb"]):
                        fail(f"{path}:{n}: step or eval_bpb is not a finite number")
                    xs.append(row["step"])
                    ys.append(row["eval_bpb"])
    except OSError as e:
        fail(f"{path}: {e.strerror or e}")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text ({e.reason})")
    return xs, ys


def step_times(path):
    """[(variant, step ms)] of step_times.tsv (variant, step_ms, tokens_per_s)."""
    rows = []
    plot_out.check_input("plot_combiner.py", path)
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = line.rstrip("\n").split("\t")
                try:
                    ms = float(r[1])
                except (IndexError, ValueError):
                    ms = float("nan")
                if not math.isfinite(ms) or ms < 0:
                    fail(f"{path}:{n}: expected variant<TAB>step_ms<TAB>tokens_per_s: {line.strip()[:80]!r}")
                rows.append((r[0], ms))
    except OSError as e:
        fail(f"{path}: {e.strerror or e}")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text ({e.reason})")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    runs = sorted(glob.glob(os.path.join(a.dir, "*-s*.jsonl")))
    if not runs:
        fail(f"no <variant>-s<seed>.jsonl in {a.dir}")
    plot_out.check("plot_combiner.py", a.output, runs + [os.path.join(a.dir, "step_times.tsv")])
    curves = []
    for path in runs:
        xs, ys = eval_curve(path)
        if xs:
            curves.append((path, xs, ys))
        else:  # an empty line in the legend would look like a run that was drawn
            print(f"plot_combiner.py: warning: {path}: no eval_bpb line (an empty or unfinished run): left out",
                  file=sys.stderr)
    if not curves:
        fail(f"no run with an eval_bpb line in {a.dir} ({', '.join(os.path.basename(p) for p in runs)})")
    times = os.path.join(a.dir, "step_times.tsv")
    rows = None
    if os.path.lexists(times):
        rows = step_times(times)
        if not rows:
            fail(f"{times}: no rows (expected variant<TAB>step_ms<TAB>tokens_per_s)")
    # matplotlib only now (half a second): a bad input is refused at once
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    for path, xs, ys in curves:
        name = os.path.basename(path)[:-len(".jsonl")]
        variant, seed = name.rsplit("-s", 1)
        left.plot(xs, ys, marker=".", color=COLOURS.get(variant), ls="-" if seed == "1" else "--",
                  label=f"{variant} (seed {seed})")
    left.set_xlabel("step")
    left.set_ylabel("held-out bits per byte")
    left.set_ylim(top=min(4.0, left.get_ylim()[1]))
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    if rows:
        names = [r[0] for r in rows]
        ms = [r[1] for r in rows]
        right.bar(names, ms, color=[COLOURS.get(n, "C7") for n in names])
        for i, v in enumerate(ms):
            right.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        right.set_ylabel("training step (ms, bench train)")
        right.tick_params(axis="x", labelrotation=20, labelsize=8)
    else:
        right.axis("off")
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    plot_out.save("plot_combiner.py", fig, a.output, dpi=80)
    print(f"plot_combiner.py: wrote {a.output}")


if __name__ == "__main__":
    main()
