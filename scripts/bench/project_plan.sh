#!/usr/bin/env bash
# project_plan.sh RATES [BUILD_DIR] [OUT_DIR] - the planner's projections
# (docs/planner.md): weak and strong scaling of configs/10m.ini and
# configs/long.ini on the cluster profiles ib100, eth25 and eth1, P = 1 ..
# MAX_P (4096), from the per-rank rates in RATES (`ringattn plan --calibrate
# --save-rates`). Writes OUT_DIR/<config>_<mode>_<profile>.{txt,csv} (the
# table, the CSV), OUT_DIR/times.txt (seconds per projection), OUT_DIR/summary.md
# (tokens/s and comm share at P = 1, 4, ... 4096: the table of docs/planner.md) and the plot
# OUT_DIR.png beside OUT_DIR (default docs/plan-projection.png; scripts/plot_plan.py,
# needs matplotlib).
# Relative paths given are relative to the current directory; the defaults
# (BUILD_DIR build, OUT_DIR docs/plan-projection) and the configs are the
# repository's, wherever it is run from.
# Every input (the binary, RATES, MAX_P, PYTHON with matplotlib) is checked
# before anything is written, and every output is made in a temporary
# directory inside OUT_DIR and renamed over the old one only once all of them
# are made: a failure leaves the old outputs as they were.
# Env: MAX_P (4096; 1 to 1048576, ringattn plan's range), PYTHON (/usr/bin/python3).
set -euo pipefail
die() { echo "project_plan.sh: $*" >&2; exit 1; }
usage() { echo "usage: project_plan.sh RATES [BUILD_DIR] [OUT_DIR]${1:+ ($1)}" >&2; exit 2; }
[ $# -ge 1 ] && [ -n "$1" ] || usage "RATES missing"
[ $# -le 3 ] || usage "$(($# - 3)) extra argument(s): ${*:4}"
MAX_P=${MAX_P:-4096}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ $MAX_P =~ ^[1-9][0-9]{0,6}$ ]] && [ "$MAX_P" -le 1048576 ] ||
    { echo "project_plan.sh: MAX_P = '$MAX_P' is not a whole number from 1 to 1048576" >&2; exit 2; }
command -v "$PYTHON" >/dev/null || { echo "project_plan.sh: PYTHON = '$PYTHON' is not a program" >&2; exit 2; }
# the caller's relative paths, made absolute before moving to the repository
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
RATES=$(abspath "$1")
BUILD=${2:+$(abspath "$2")}
OUT=${3:+$(abspath "$3")}
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-$PWD/build}
OUT=${OUT:-$PWD/docs/plan-projection}
OUT=${OUT%/}
PNG=$OUT.png
RA=$BUILD/src/ringattn
[ -x "$RA" ] || die "$RA not built"
[ -f "$RATES" ] && [ -r "$RATES" ] || die "rates file '$RATES' not found (or not a readable file)"
[ ! -e "$OUT" ] || [ -d "$OUT" ] || die "OUT_DIR '$OUT' is not a directory"
[ -d "$(dirname "$OUT")" ] || die "OUT_DIR '$OUT': no directory $(dirname "$OUT")"
for cfg in 10m long; do [ -r "configs/$cfg.ini" ] || die "configs/$cfg.ini missing in $PWD"; done
# RATES is an input: it must not be one of the outputs (docs/plan-projection/rates.ini is not)
case "$(realpath -m "$RATES")" in
"$(realpath -m "$OUT")"/*_*_*.txt | "$(realpath -m "$OUT")"/*_*_*.csv | "$(realpath -m "$OUT")"/times.txt | \
    "$(realpath -m "$OUT")"/summary.md | "$(realpath -m "$PNG")")
    die "rates file '$RATES' would be overwritten by an output" ;;
esac
# the rates parse (ringattn names the file, line and key), and the plot can be made,
# before a file is touched
"$RA" plan --config configs/10m.ini -n 1 --rates "$RATES" >/dev/null || exit 1
"$PYTHON" -c 'import matplotlib' 2>/dev/null ||
    die "$PYTHON has no matplotlib (scripts/plot_plan.py needs it; set PYTHON)"

mkdir -p "$OUT"
# the new outputs, made beside the old ones (same file system: the renames are atomic)
NEW=$(mktemp -d "$OUT/.project_plan.XXXXXX")
trap 'rm -rf "$NEW"' EXIT
: >"$NEW/times.txt"
for cfg in 10m long; do
    for mode in weak strong; do
        for prof in ib100 eth25 eth1; do
            name=${cfg}_${mode}_${prof}
            t0=$(date +%s.%N)
            "$RA" plan --config "configs/$cfg.ini" --rates "$RATES" --project "$mode" --profile "$prof" \
                --max-p "$MAX_P" --csv "$NEW/$name.csv" >"$NEW/$name.txt"
            t1=$(date +%s.%N)
            printf '%-20s %6.2f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)" | tee -a "$NEW/times.txt"
        done
    done
done
# its "wrote" line would name the temporary file: the last line names the real one
"$PYTHON" scripts/plot_plan.py "$NEW"/*.csv -o "$NEW/plot.png" >/dev/null
# the summary table of docs/planner.md: tokens/s (comm share) at a few P
"$PYTHON" - "$NEW" <<'PY'
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
PY
# all made: over the old ones
mv -f "$NEW/plot.png" "$PNG"
for f in "$NEW"/*; do mv -f "$f" "$OUT/"; done
echo "wrote $OUT/summary.md, the tables and CSVs in $OUT, the plot $PNG"
