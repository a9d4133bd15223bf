#!/usr/bin/env bash
# validate_plan.sh [BUILD_DIR] - predicted (ringattn plan) against measured
# (ringattn bench attn / bench train) step and phase times on this machine,
# with the relative error per case. Rates are calibrated first, per rank
# count (P = 1: 2 threads; P = 2: 1 thread per rank, as the benchmarks run).
# Each measurement is the median of REPS timed iterations (default 5);
# the slowest rank's median is compared with the prediction (wall time).
# The Combiner heads (fixed, axial, logsparse; causal) run at L and at L2.
# Env: REPS (5), L (4096: bench attn's sequence length), L2 (16384: the
# Combiners' longer case).
set -u
BUILD=${1:-build}
RA=$BUILD/src/ringattn
REPS=${REPS:-5}
L=${L:-4096}
L2=${L2:-16384}
. "$(dirname "$0")/../env.sh" >/dev/null 2>&1 || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # P ARGS...
    local P=$1
    shift
    mpirun --oversubscribe -n "$P" "$RA" "$@"
}
thr() { [ "$1" -eq 1 ] && echo 2 || echo 1; }
for P in 1 2; do
    run $P plan --calibrate --save-rates "$T/rates$P.ini" --threads "$(thr $P)" --config configs/bench.ini -n $P \
        >/dev/null || exit 1
done
err() { python3 -c "import sys; p,m=float(sys.argv[1]),float(sys.argv[2]); print('%+.1f' % (100*(p-m)/m))" "$1" "$2"; }
printf '%-48s %10s %10s %7s\n' case predicted measured err%
attn_case() { # P NAME ARGS... (LEN: the sequence length, default L)
    local P=$1 name=$2 n=${LEN:-$L}
    shift 2
    local out pf pb mf mb
    out=$(run $P bench attn -b "$n" -e "$n" -n "$REPS" -w 1 -c 0 -t "$(thr $P)" "$@" 2>/dev/null | grep -E '^ +[0-9]' | tail -1)
    mf=$(echo "$out" | awk '{print $4}')
    mb=$(echo "$out" | awk '{print $10}')
    pred=$("$RA" plan --attn -n $P -L "$n" --rates "$T/rates$P.ini" "$@" | grep '^predicted:')
    pf=$(echo "$pred" | sed 's/.*fwd_ms=\([0-9.]*\).*/\1/')
    pb=$(echo "$pred" | sed 's/.*bwd_ms=\([0-9.]*\).*/\1/')
    printf '%-48s %10.2f %10.2f %7s\n' "attn P=$P $name fwd" "$pf" "$mf" "$(err "$pf" "$mf")"
    printf '%-48s %10.2f %10.2f %7s\n' "attn P=$P $name bwd" "$pb" "$mb" "$(err "$pb" "$mb")"
}
for P in 1 2; do
    attn_case $P "causal zigzag" --causal --layout zigzag
    attn_case $P "causal striped" --causal --layout striped
    attn_case $P "causal contiguous" --causal --layout contiguous
    attn_case $P "bidirectional contiguous" --layout contiguous
    attn_case $P "bidirectional zigzag" --layout zigzag
    for h in fixed axial logsparse; do
        attn_case $P "combiner-$h causal" --causal --head combiner-$h
        LEN=$L2 attn_case $P "combiner-$h causal L=$L2" --causal --head combiner-$h
    done
done
for P in 1 2; do
    m=$(run $P bench train --config configs/bench.ini -n "$REPS" -w 1 -t "$(thr $P)" 2>/dev/null | grep -E '^ +[0-9]' | tail -1 | awk '{print $1}')
    p=$("$RA" plan --config configs/bench.ini -n $P --layout zigzag --rates "$T/rates$P.ini" | grep '^predicted:' |
        sed 's/.*step_ms=\([0-9.]*\).*/\1/')
    printf '%-48s %10.2f %10.2f %7s\n' "train bench.ini P=$P step" "$p" "$m" "$(err "$p" "$m")"
done
