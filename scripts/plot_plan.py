#!/usr/bin/env python3
"""plot_plan.py CSV... [-o PNG] - the planner's projections (`ringattn plan
--project ... --csv FILE`): tokens/s and comm share against P, one line per
(config, mode, profile)."""
import argparse, csv, os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("csv", nargs="+")
ap.add_argument("-o", "--out", default="docs/planner-scaling.png")
a = ap.parse_args()
series = {}
for path in a.csv:
    with open(path) as f:
        for row in csv.DictReader(f):
            key = (os.path.basename(row["config"]), row["mode"], row["profile"])
            series.setdefault(key, []).append((int(row["P"]), float(row["tokens_per_s"]), float(row["comm_share"])))
fig, ax = plt.subplots(1, 2, figsize=(13, 5))
for (cfg, mode, prof), pts in sorted(series.items()):
    pts.sort()
    ls = "-" if mode == "weak" else "--"
    for i, col in ((0, 1), (1, 2)):
        ax[i].plot([p[0] for p in pts], [p[col] * (100 if i else 1) for p in pts], ls, marker=".",
                   label=f"{cfg} {mode} {prof}")
for x in ax:
    x.set_xscale("log", base=2)
    x.set_xlabel("P (nodes of 64 cores, one rank each)")
    x.grid(True, alpha=0.3)
ax[0].set_yscale("log")
ax[0].set_ylabel("predicted tokens/s")
ax[1].set_ylabel("predicted comm share of the step (%)")
ax[0].legend(fontsize=6, ncol=2)
fig.suptitle("ringattn plan: projected scaling (weak: solid, strong: dashed)")
fig.tight_layout()
fig.savefig(a.out, dpi=110)
print("wrote", a.out)
