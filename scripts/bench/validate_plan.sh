#!/usr/bin/env bash
# validate_plan.sh [BUILD_DIR] - predicted (ringattn plan) against measured
# (ringattn bench attn / bench train) step and phase times on this machine,
# with the relative error per case. Rates are calibrated first, per rank
# count (P = 1: 2 threads; P = 2: 1 thread per rank, as the benchmarks run).
# Each measurement is the median of REPS timed iterations (default 5);
# the slowest rank's median is compared with the prediction (wall time).
# The Combiner heads (fixed, axial, logsparse; causal) run at L and at L2.
# Env: REPS (5), L (4096: bench attn's sequence length), L2 (16384: the
# Combiners' longer case), ROUNDS (1). With ROUNDS > 1 every round
# calibrates again and measures every case, and a last table gives per case
# the medians over rounds of the predicted and measured times and of the
# error: this machine drifts by 10-50 % within minutes, and a calibration
# caught in a slow (or fast) phase biases its whole round.
# CALIBRATE=case calibrates again right before every case (about 2.5 s
# each; default round: once per round), so that the machine's drift between
# a calibration and a measurement minutes later does not count as the
# model's error.
# Control rows: each round ends by measuring its first case (causal
# zigzag at the first rank count) again; the row gives the first
# measurement as "predicted" and the second as "measured", so its err% is
# how far identical work drifted within the round: an error below it is
# the machine's, not the model's. They are not counted in the tally of
# cases within 15 %.
# CLUSTER=H (2-8, root): the same cases across H hosts of a namespace
# cluster (scripts/cluster/netns-cluster.sh; its own, RA_CLUSTER=rval on
# 10.213.5.0/24, removed on exit) over TCP, PPN ranks per host (default 1),
# one thread per rank, each host its own cores when H <= the cores, the
# links shaped to SHAPE (default 1gbit; off: not shaped). The calibration
# runs across the hosts too: its ping-pong to another host gives the link
# rates, and the plan is told PPN ranks per node.
set -u
# one argument at most: a second one (a misplaced option, a typo) was ignored
[ $# -le 1 ] || { echo "usage: validate_plan.sh [BUILD_DIR] (extra argument(s): ${*:2})" >&2; exit 2; }
BUILD=${1:-build}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-1}
L=${L:-4096}
L2=${L2:-16384}
CLUSTER=${CLUSTER:-}
PPN=${PPN:-1}
SHAPE=${SHAPE:-1gbit}
CALIBRATE=${CALIBRATE:-round}
# refuse before any work: a bad count would otherwise run no round (or loop
# in bash arithmetic on a name) and print an empty table
for v in REPS ROUNDS L L2 PPN; do
    [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]] || { echo "validate_plan.sh: $v = '${!v}' is not a whole number from 1 to 9999999" >&2; exit 2; }
done
[ -z "$CLUSTER" ] || [[ $CLUSTER =~ ^[2-8]$ ]] || { echo "validate_plan.sh: CLUSTER = '$CLUSTER': hosts 2 to 8" >&2; exit 2; }
[[ $SHAPE =~ ^(off|[1-9][0-9]{0,5}(k|m|g)?bit)$ ]] || { echo "validate_plan.sh: SHAPE = '$SHAPE': a rate like 1gbit or 500mbit, or off" >&2; exit 2; }
[[ $CALIBRATE =~ ^(round|case)$ ]] || { echo "validate_plan.sh: CALIBRATE = '$CALIBRATE': round or case" >&2; exit 2; }
[ -z "$CLUSTER" ] || [ "$(id -u)" -eq 0 ] || { echo "validate_plan.sh: CLUSTER needs root (network namespaces)" >&2; exit 2; }
[ -x "$BUILD/src/ringattn" ] || { echo "validate_plan.sh: no ringattn at $BUILD/src/ringattn (give the build directory: validate_plan.sh BUILD)" >&2; exit 2; }
# absolute paths: the cluster's ranks start in other namespaces
RA=$(cd "$BUILD" && pwd)/src/ringattn
cd "$(dirname "$0")/../.."
BENCH_INI=$PWD/configs/bench.ini
NC=$PWD/scripts/cluster/netns-cluster.sh
. scripts/env.sh >/dev/null 2>&1 || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d)
if [ -n "$CLUSTER" ]; then
    export RA_CLUSTER=rval RA_CLUSTER_SUBNET=10.213.5
    trap '"$NC" down; rm -rf "$T"' EXIT
    "$NC" down
    "$NC" up "$CLUSTER" >/dev/null || exit 1
    [ "$SHAPE" = off ] || "$NC" shape "$SHAPE" 0ms 2>/dev/null >/dev/null || exit 1
    own=()
    [ "$CLUSTER" -gt "$(nproc --all)" ] || own=(--own-cores)
    PS=$((CLUSTER * PPN))
    RPN=(--ranks-per-node "$PPN")
    echo "# $CLUSTER namespace hosts x $PPN rank(s), TCP, link $SHAPE, ${own[*]:-cores shared by the hosts}, 1 thread per rank"
else
    trap 'rm -rf "$T"' EXIT
    PS="1 2"
    RPN=()
fi
run() { # P ARGS...
    local P=$1
    shift
    if [ -n "$CLUSTER" ]; then
        "$NC" run "$CLUSTER" --ppn "$PPN" --threads 1 "${own[@]}" -- -n "$P" "$RA" "$@"
    else
        mpirun --oversubscribe -n "$P" "$RA" "$@"
    fi
}
thr() { [ "$1" -eq 1 ] && echo 2 || echo 1; }
err() { python3 -c "import sys; p,m=float(sys.argv[1]),float(sys.argv[2]); print('%+.1f' % (100*(p-m)/m))" "$1" "$2"; }
# row CASE PREDICTED MEASURED: print it and keep it for the medians
row() {
    printf '%-48s %10.2f %10.2f %7s\n' "$1" "$2" "$3" "$(err "$2" "$3")"
    echo "$1|$2|$3" >>"$T/rows"
}
calibrate() { # P: the rates file of P ranks
    run "$1" plan --calibrate --save-rates "$T/rates$1.ini" --threads "$(thr "$1")" --config "$BENCH_INI" -n "$1" \
        >/dev/null || exit 1
}
# measure P ARGS...: sets mf and mb, the slowest rank's median forward and
# backward (ms) of bench attn at LEN (default L)
# A measurement that fails (out of memory, a bad option) stops the script,
# exit 1, with the benchmark's error: a table of zeros would pass for one.
measure() {
    local P=$1 n=${LEN:-$L} out
    shift
    out=$(run $P bench attn -b "$n" -e "$n" -n "$REPS" -w 1 -c 0 -t "$(thr $P)" "$@" 2>"$T/err" | grep -E '^ +[0-9]' | tail -1)
    mf=$(echo "$out" | awk '{print $4}')
    mb=$(echo "$out" | awk '{print $10}')
    [[ $mf =~ ^[0-9.]+$ && $mb =~ ^[0-9.]+$ ]] || failed "bench attn -n $P -L $n $*"
}
failed() { # WHAT
    echo "validate_plan.sh: $1 failed: $(grep -m2 -E 'error|rror:' "$T/err" || tail -2 "$T/err")" >&2
    exit 1
}
attn_case() { # P NAME ARGS... (LEN: the sequence length, default L)
    local P=$1 name=$2 n=${LEN:-$L}
    shift 2
    local pf pb
    [ "$CALIBRATE" = round ] || calibrate "$P"
    measure "$P" "$@"
    pred=$("$RA" plan --attn -n $P -L "$n" --rates "$T/rates$P.ini" "${RPN[@]}" "$@" 2>"$T/err" | grep '^predicted:') ||
        failed "plan --attn -n $P -L $n $*"
    pf=$(echo "$pred" | sed 's/.*fwd_ms=\([0-9.]*\).*/\1/')
    pb=$(echo "$pred" | sed 's/.*bwd_ms=\([0-9.]*\).*/\1/')
    row "attn P=$P $name fwd" "$pf" "$mf"
    row "attn P=$P $name bwd" "$pb" "$mb"
}
for ((round = 1; round <= ROUNDS; round++)); do
    [ "$ROUNDS" -gt 1 ] && echo "# round $round of $ROUNDS"
    [ "$CALIBRATE" = case ] || for P in $PS; do calibrate "$P"; done
    printf '%-48s %10s %10s %7s\n' case predicted measured err%
    first=1
    for P in $PS; do
        attn_case $P "causal zigzag" --causal --layout zigzag
        [ "$first" = 1 ] && c_args=("$P" --causal --layout zigzag) c_name="attn P=$P causal zigzag" c_f=$mf c_b=$mb
        first=0
        attn_case $P "causal striped" --causal --layout striped
        attn_case $P "causal contiguous" --causal --layout contiguous
        attn_case $P "bidirectional contiguous" --layout contiguous
        attn_case $P "bidirectional zigzag" --layout zigzag
        for h in fixed axial logsparse; do
            attn_case $P "combiner-$h causal" --causal --head combiner-$h
            LEN=$L2 attn_case $P "combiner-$h causal L=$L2" --causal --head combiner-$h
        done
    done
    for P in $PS; do
        [ "$CALIBRATE" = round ] || calibrate "$P"
        m=$(run $P bench train --config "$BENCH_INI" -n "$REPS" -w 1 -t "$(thr $P)" 2>"$T/err" | grep -E '^ +[0-9]' | tail -1 | awk '{print $1}')
        [[ $m =~ ^[0-9.]+$ ]] || failed "bench train -n $P"
        p=$("$RA" plan --config "$BENCH_INI" -n $P --layout zigzag --rates "$T/rates$P.ini" "${RPN[@]}" 2>"$T/err" | grep '^predicted:' |
            sed 's/.*step_ms=\([0-9.]*\).*/\1/')
        [[ $p =~ ^[0-9.]+$ ]] || failed "plan -n $P"
        row "train bench.ini P=$P step" "$p" "$m"
    done
    measure "${c_args[@]}" # the round's first case again: the control
    row "control: $c_name fwd, again" "$c_f" "$mf"
    row "control: $c_name bwd, again" "$c_b" "$mb"
done
[ "$ROUNDS" -gt 1 ] || exit 0
echo "# medians over $ROUNDS rounds (err%: the median of the rounds' errors)"
python3 - "$T/rows" <<'PY'
import statistics as st, sys
cases = {}
for line in open(sys.argv[1]):
    name, p, m = line.rstrip("\n").split("|")
    cases.setdefault(name, []).append((float(p), float(m)))
print("%-48s %10s %10s %7s" % ("case", "predicted", "measured", "err%"))
within = counted = 0
drift = []
for name, v in cases.items():
    e = st.median(100 * (p - m) / m for p, m in v)
    if name.startswith("control:"):
        drift += [abs(100 * (p - m) / m) for p, m in v]
    else:
        within += abs(e) <= 15
        counted += 1
    print("%-48s %10.2f %10.2f %+7.1f" % (name, st.median(p for p, _ in v), st.median(m for _, m in v), e))
print("# within 15 %%: %d of %d" % (within, counted))
if drift:
    print("# control: identical work drifted %.1f to %.1f %% within a round (median %.1f %%)"
          % (min(drift), max(drift), st.median(drift)))
PY
