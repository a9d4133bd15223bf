#!/usr/bin/python3
"""plot_plan.py CSV... -o PNG - the planner's projections (`ringattn plan
--project ... --csv FILE`, scripts/bench/project_plan.sh): one row of panels
per config, tokens/s and the comm share of the step against P; colour = the
cluster profile, solid = weak scaling (L/P fixed), dashed = strong (L fixed).
-o is required: a default of docs/plan-projection.png overwrote the shipped
image when run from the repository. A missing CSV, one that is not a
regular file, or one without the plan --csv columns is refused in one line;
so is a header naming a column twice or a row whose cell count is not the
header's (file:line and the counts)."""
import argparse, csv, os, sys

import plot_out  # beside this script

COLUMNS = ("config", "mode", "profile", "P", "tokens_per_s", "comm_share")

ap = argparse.ArgumentParser()
ap.add_argument("csv", nargs="+")
ap.add_argument("-o", "--out", required=True)
a = ap.parse_args()
plot_out.check("plot_plan.py", a.out, a.csv)
series = {}  # (config, mode, profile) -> [(P, tokens/s, comm share)]
for path in a.csv:
    plot_out.check_input("plot_plan.py", path)  # before open(): a FIFO would block it
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rd = csv.reader(f)
            header = next(rd, [])
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                sys.exit(f"plot_plan.py: {path}: not a `ringattn plan --project ... --csv` table "
                         f"(no column {', '.join(missing)})")
            # a name twice, or a row of another width, would put values under the wrong column
            dups = sorted({c for c in header if header.count(c) > 1})
            if dups:
                sys.exit(f"plot_plan.py: {path}:{rd.line_num}: column {', '.join(dups)} named twice "
                         f"in the header")
            for cells in rd:
                if not cells:  # a blank line
                    continue
                if len(cells) != len(header):
                    sys.exit(f"plot_plan.py: {path}:{rd.line_num}: {len(cells)} cells, the header has "
                             f"{len(header)} (a row cut short or with extra cells)")
                row = dict(zip(header, cells))
                try:
                    key = (os.path.basename(row["config"]).removesuffix(".ini"), row["mode"], row["profile"])
                    pt = (int(row["P"]), float(row["tokens_per_s"]), float(row["comm_share"]))
                except ValueError:
                    sys.exit(f"plot_plan.py: {path}:{rd.line_num}: not a plan row: {','.join(cells)[:80]!r}")
                series.setdefault(key, []).append(pt)
    except OSError as e:
        sys.exit(f"plot_plan.py: {path}: {e.strerror or e}")
    except UnicodeDecodeError as e:
        sys.exit(f"plot_plan.py: {path}: not UTF-8 text ({e.reason})")
    except csv.Error as e:
        sys.exit(f"plot_plan.py: {path}: not a CSV table ({e})")
if not series:
    sys.exit("plot_plan.py: no rows in " + " ".join(a.csv))
# matplotlib only now (half a second): a bad input is refused at once
try:
    import matplotlib
except ImportError:
    sys.exit("plot_plan.py: needs matplotlib (use /usr/bin/python3, or pip install matplotlib)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
configs = sorted({k[0] for k in series})
colour = {"ib100": "tab:blue", "eth25": "tab:orange", "eth1": "tab:red"}
width = {"ib100": 1.2, "eth25": 2.6, "eth1": 2.0}  # lines that coincide stay visible
fig, ax = plt.subplots(len(configs), 2, figsize=(13, 4.2 * len(configs)), squeeze=False)
for row, cfg in enumerate(configs):
    for (c, mode, prof), pts in sorted(series.items()):
        if c != cfg:
            continue
        pts.sort()
        style = dict(ls="-" if mode == "weak" else "--", marker="." if mode == "weak" else "x",
                     color=colour.get(prof, "k"), lw=width.get(prof, 1.5), label=f"{mode} {prof}")
        ax[row][0].plot([p[0] for p in pts], [p[1] for p in pts], **style)
        ax[row][1].plot([p[0] for p in pts], [100 * p[2] for p in pts], **style)
    ax[row][0].set_yscale("log")
    ax[row][0].set_ylabel("predicted tokens/s")
    ax[row][1].set_ylabel("comm share of the step (%)")
    ax[row][1].set_ylim(-2, 102)
    for col in (0, 1):
        x = ax[row][col]
        x.set_xscale("log", base=2)
        x.set_xlabel("P (nodes of 64 cores, one rank each)")
        x.set_title(f"configs/{cfg}.ini")
        x.grid(True, alpha=0.3)
        x.legend(fontsize=7, ncol=2)
fig.suptitle("ringattn plan: projected scaling (weak: solid, L = P x config L; strong: dashed, L = config L)")
fig.tight_layout()
plot_out.save("plot_plan.py", fig, a.out, dpi=100)
print("wrote", a.out)
