#!/usr/bin/env bash
# project_plan.sh RATES [BUILD_DIR] [OUT_DIR] - the planner's projections
# (docs/planner.md): weak and strong scaling of configs/10m.ini and
# configs/long.ini on the cluster profiles ib100, eth25 and eth1, P = 1 ..
# MAX_P (4096), from the per-rank rates in RATES (`ringattn plan --calibrate
# --save-rates`). Writes OUT_DIR/<config>_<mode>_<profile>.{txt,csv} (the
# table, the CSV), OUT_DIR/times.txt (seconds per projection), OUT_DIR/summary.md
# (tokens/s and comm share at P = 1, 4, ... 4096: the table of docs/planner.md) and the plot
# docs/plan-projection.png (scripts/plot_plan.py; needs matplotlib).
# Env: MAX_P (4096), PYTHON (/usr/bin/python3).
set -euo pipefail
RATES=${1:?usage: project_plan.sh RATES [BUILD_DIR] [OUT_DIR]}
BUILD=${2:-build}
OUT=${3:-docs/plan-projection}
MAX_P=${MAX_P:-4096}
PYTHON=${PYTHON:-/usr/bin/python3}
RA=$BUILD/src/ringattn
[ -x "$RA" ] || { echo "project_plan.sh: $RA not built" >&2; exit 1; }
[ -f "$RATES" ] || { echo "project_plan.sh: rates file '$RATES' not found" >&2; exit 1; }
mkdir -p "$OUT"
: >"$OUT/times.txt"
for cfg in 10m long; do
    for mode in weak strong; do
        for prof in ib100 eth25 eth1; do
            name=${cfg}_${mode}_${prof}
            t0=$(date +%s.%N)
            "$RA" plan --config "configs/$cfg.ini" --rates "$RATES" --project "$mode" --profile "$prof" \
                --max-p "$MAX_P" --csv "$OUT/$name.csv" >"$OUT/$name.txt"
            t1=$(date +%s.%N)
            printf '%-20s %6.2f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)" | tee -a "$OUT/times.txt"
        done
    done
done
"$PYTHON" scripts/plot_plan.py "$OUT"/*.csv -o docs/plan-projection.png
# the summary table of docs/planner.md: tokens/s (comm share) at a few P
"$PYTHON" - "$OUT" <<'PY'
import csv, glob, os, sys
out = sys.argv[1]
Ps = [1, 4, 16, 64, 256, 1024, 4096]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*.csv"))):
    with open(path) as f:
        r = {int(x["P"]): x for x in csv.DictReader(f)}
    name = os.path.basename(path)[:-4]
    cells = []
    for P in Ps:
        x = r.get(P)
        cells.append("-" if x is None else "%.3g (%d%%)" % (float(x["tokens_per_s"]), round(100 * float(x["comm_share"]))))
    rows.append("| %s | %s |" % (name.replace("_", " "), " | ".join(cells)))
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("| config mode profile | " + " | ".join("P=%d" % P for P in Ps) + " |\n")
    f.write("|---|" + "---|" * len(Ps) + "\n")
    f.write("\n".join(rows) + "\n")
print("wrote", os.path.join(out, "summary.md"))
PY
