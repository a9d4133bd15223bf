#!/usr/bin/python3
"""plot_metrics.py - plot ringattn training metrics (JSON lines) to a PNG.

    scripts/plot_metrics.py METRICS.jsonl [MORE.jsonl ...] -o OUT.png [--title T]

Each line of a metrics file (`ringattn train --metrics FILE`) is one JSON
object with "step" and some of: loss, lr, tokens_per_s, comm_share, accuracy
(training rows), eval_loss, eval_bpb, eval_accuracy (evaluation rows).
Panels: loss (training line, evaluation markers), accuracy (evaluation
markers, training line; only when present), learning rate, tokens/s. Several
files overlay, labelled with their file names. Blank lines are skipped; the
bare tokens nan, -nan, inf, -inf (C's printf of a non-finite value) read as
NaN/infinity. A non-finite value (those, or JSON's NaN and Infinity) leaves a
gap in its line: each key that has one is named in a warning on stderr, once
per file, with the line of the first (ringattn writes null, which is skipped
without a word). Any other malformed line, or a missing file, or one that is
not a regular file (a FIFO, a directory), is an error naming file and line
(exit status 1). A file without one finite loss (a run that diverged from
the start) is drawn but named in a warning on stderr: its loss panel is
empty.
"""
import argparse
import json
import math
import os
import re
import sys

import plot_out  # beside this script

KEYS = ("loss", "lr", "tokens_per_s", "comm_share", "accuracy", "eval_loss", "eval_bpb",
        "eval_accuracy")
# printf("%g") writes nan, -nan, inf, -inf, which JSON lacks: map a bare one to
# the tokens Python's json reads (only where a value starts, never inside strings)
NONFINITE = re.compile(r'(?<=[:\[,])(\s*)(-?)(nan|inf(?:inity)?)\b(?=\s*[,}\]])', re.IGNORECASE)


class MetricsError(Exception):
    pass


def fix_nonfinite(line):
    def sub(m):
        if m.group(3).lower() == "nan":
            return m.group(1) + "NaN"
        return m.group(1) + m.group(2) + "Infinity"
    return NONFINITE.sub(sub, line)


def read_metrics(path):
    """({key: ([steps], [values])} for every key of KEYS that occurs,
    {key: (first line, count)} for the keys with a non-finite value)."""
    series, nonfinite = {}, {}
    why = plot_out.input_problem(path)  # before open(): a FIFO would block it
    if why:
        raise MetricsError(f"{path}: {why}")
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise MetricsError(f"{path}: cannot open: {e.strerror or e}") from None
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(fix_nonfinite(line.strip()))
                except json.JSONDecodeError as e:
                    raise MetricsError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno}): "
                                       f"{line.strip()[:80]}") from None
                except (ValueError, RecursionError) as e:  # a number of 5000 digits, nesting too deep
                    raise MetricsError(f"{path}:{n}: not a metrics record ({type(e).__name__}: "
                                       f"{str(e)[:80]})") from None
                if not isinstance(row, dict):
                    raise MetricsError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
                step = row.get("step")
                if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
                    raise MetricsError(f"{path}:{n}: missing or non-numeric \"step\"")
                kap = row.get("kappa")  # [[per head] per layer]: plot the largest
                if isinstance(kap, list):
                    vals = [v for layer in kap if isinstance(layer, list) for v in layer
                            if isinstance(v, (int, float)) and not isinstance(v, bool)]
                    if vals:
                        xs, ys = series.setdefault("kappa", ([], []))
                        xs.append(step)
                        ys.append(float(max(vals)))
                for key in KEYS:
                    if key not in row or row[key] is None:
                        continue
                    v = row[key]
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise MetricsError(f"{path}:{n}: \"{key}\" is not a number: {v!r}")
                    if not math.isfinite(v):  # matplotlib draws nothing there, without a word
                        first, count = nonfinite.get(key, (n, 0))
                        nonfinite[key] = (first, count + 1)
                    xs, ys = series.setdefault(key, ([], []))
                    xs.append(step)
                    ys.append(float(v))
        except UnicodeDecodeError as e:
            raise MetricsError(f"{path}: not UTF-8 text ({e.reason})") from None
    return series, nonfinite


def labels_for(paths):
    """File names, or paths where two files share a name."""
    names = [os.path.basename(p) for p in paths]
    return [p if names.count(n) > 1 else n for p, n in zip(paths, names)]


def plot(runs, out, title=None):
    """runs: [(label, series)]. Writes the figure to out."""
    # matplotlib only now (half a second): a bad input is refused at once
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    has = lambda key: any(key in s for _, s in runs)  # noqa: E731
    panels = ["loss"]
    if has("eval_accuracy") or has("accuracy"):
        panels.append("accuracy")
    if has("kappa"):
        panels.append("kappa")
    panels += ["lr", "tokens_per_s"]
    ncols = 2
    nrows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 3.8 * nrows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    one = len(runs) == 1

    for name, ax in zip(panels, axes):
        drawn = False
        for i, (label, s) in enumerate(runs):
            c = colors[i % len(colors)]

            def line(key, what, **kw):
                nonlocal drawn
                if key in s:
                    ax.plot(*s[key], color=c, label=what if one else f"{label} {what}".strip(), **kw)
                    drawn = True

            def marks(key, what):
                nonlocal drawn
                if key in s:
                    ax.plot(*s[key], color=c, linestyle="none", marker="o", markersize=5,
                            markeredgecolor="black", markeredgewidth=0.5,
                            label=what if one else f"{label} {what}")
                    drawn = True

            if name == "loss":
                line("loss", "train", linewidth=1)
                marks("eval_loss", "eval")
            elif name == "accuracy":
                line("accuracy", "train", linewidth=1, alpha=0.6)
                marks("eval_accuracy", "eval")
            elif name == "kappa":
                line("kappa", "" if not one else "max kappa", marker="o", linewidth=1)
            elif name == "lr":
                line("lr", "" if not one else "lr", linewidth=1.2)
            else:
                line("tokens_per_s", "" if not one else "tokens/s", linewidth=1)
        ax.set_title({"loss": "loss (nats / byte)", "accuracy": "accuracy", "kappa": "largest kappa of a head output",
                      "lr": "learning rate", "tokens_per_s": "tokens / s"}[name])
        if name == "kappa":
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if name == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        if name == "tokens_per_s":
            ax.set_ylim(bottom=0)
        if drawn:
            ax.legend(fontsize="small")
            if not any(math.isfinite(y) for ln in ax.get_lines() for y in ln.get_ydata()):
                ax.text(0.5, 0.5, "no finite value (all NaN or infinite)", transform=ax.transAxes,
                        ha="center", va="center", color="red")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                    color="gray")
    if title:
        fig.suptitle(title)
    elif one:
        fig.suptitle(runs[0][0])
    fig.tight_layout()
    plot_out.save(prog_name(), fig, out, dpi=100)
    plt.close(fig)


def prog_name():
    return os.path.basename(sys.argv[0])


def main(argv=None):
    p = argparse.ArgumentParser(description="Plot ringattn JSON-lines metrics to a PNG.")
    p.add_argument("files", nargs="+", metavar="METRICS.jsonl")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--title")
    a = p.parse_args(argv)
    prog = prog_name()
    plot_out.check(prog, a.output, a.files)
    runs = []
    try:
        for path, label in zip(a.files, labels_for(a.files)):
            series, nonfinite = read_metrics(path)
            if not series:
                raise MetricsError(f"{path}: no metrics (no line has any of {', '.join(KEYS)})")
            runs.append((label, series))
            for key, (first, count) in nonfinite.items():
                more = f" (and {count - 1} more line{'s' if count > 2 else ''})" if count > 1 else ""
                print(f"{prog}: warning: {path}:{first}: \"{key}\" is NaN or infinite{more}: not drawn there",
                      file=sys.stderr)
            if not any(math.isfinite(v) for k in ("loss", "eval_loss") for v in series.get(k, ([], []))[1]):
                print(f"{prog}: warning: {path}: no finite loss (every loss is NaN or infinite, or none is "
                      "recorded): the loss panel is empty", file=sys.stderr)
    except MetricsError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    plot(runs, a.output, a.title)
    print(f"{prog}: wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
