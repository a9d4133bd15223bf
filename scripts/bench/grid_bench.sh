#!/usr/bin/env bash
# grid_bench.sh - what the data x context grid and the sharded optimizer
# cost and buy, with `ringattn bench train` on random bytes:
#   memory: peak resident MiB per rank (the largest over the ranks, bench
#           train's peak_MiB) of CONFIG at P = 1, 2, 4, 8, with the AdamW
#           moments replicated (train.shard_optimizer = false) and sharded;
#   speed:  tokens/s at P = 4 as dp 1 x cp 4, 2 x 2 and 4 x 1 (run.dp), for
#           L = 2048 and L = 16384, train.batch = 4 (each grid the same work).
#
#   scripts/bench/grid_bench.sh [--config configs/10m.ini] [--part memory|speed|all]
#                               [--steps 3] [--warmup 1] [--threads 1]
#
# Memory is deterministic (run it niced on a busy machine); tokens/s needs an
# idle one. Prints two tables (markdown); exit status 1 when a run fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
RA=$RINGATTN_BUILD/src/ringattn

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }
die() { echo "grid_bench: error: $*" >&2; exit 1; }

config=configs/10m.ini part=all steps=3 warmup=1 threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --config) [ $# -ge 2 ] || die "--config needs a value"; config=$2; shift 2 ;;
    --part) [ $# -ge 2 ] || die "--part needs a value"; part=$2; shift 2 ;;
    --steps) [ $# -ge 2 ] || die "--steps needs a value"; steps=$2; shift 2 ;;
    --warmup) [ $# -ge 2 ] || die "--warmup needs a value"; warmup=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; threads=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case $part in memory|speed|all) ;; *) die "--part must be memory, speed or all (got '$part')" ;; esac
for v in steps threads; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer (got '${!v}')"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer (got '$warmup')"
[ -f "$config" ] || die "--config $config: no such file"
[ -x "$RA" ] || die "$RA not built: run scripts/build.sh first"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# bench P ARGS...: bench train on P ranks; sets row (the last table row) and tps
bench() {
  local p=$1
  shift
  if ! mpirun -n "$p" "$RA" bench train --config "$config" -t "$threads" "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "bench train on $p ranks ($*) failed"
  fi
  row=$(grep -v '^#' "$out" | grep -v '^ringattn' | grep -E '^ +[0-9]' | tail -1)
  tps=$(sed -n 's/^ringattn: tokens_per_s=\([^ ]*\).*/\1/p' "$out")
  [ -n "$row" ] && [ -n "$tps" ] || { cat "$out" >&2; die "no result row from bench train on $p ranks"; }
}
peak() { echo "$row" | awk '{print $6}'; } # the peak_MiB column

if [ "$part" != speed ]; then
  echo "## peak MiB per rank, $config (one step; the largest rank)"
  echo
  echo "| P | replicated | sharded | saved |"
  echo "|---|-----------:|--------:|------:|"
  for p in 1 2 4 8; do
    bench "$p" -n 1 -w 0 --set train.shard_optimizer=false
    rep=$(peak)
    bench "$p" -n 1 -w 0 --set train.shard_optimizer=true
    sh=$(peak)
    echo "| $p | $rep | $sh | $(awk -v a="$rep" -v b="$sh" 'BEGIN { printf "%.1f", a - b }') |"
  done
  echo
fi
if [ "$part" != memory ]; then
  echo "## tokens/s at P = 4, train.batch = 4, $config (median of $steps steps after $warmup)"
  echo
  echo "| L | dp 1 x cp 4 | dp 2 x cp 2 | dp 4 x cp 1 |"
  echo "|---|------------:|------------:|------------:|"
  for L in 2048 16384; do
    line="| $L |"
    for dp in 1 2 4; do
      bench 4 -n "$steps" -w "$warmup" --set data.seq_len="$L" --set train.batch=4 --set run.dp="$dp"
      line+=" $tps |"
    done
    echo "$line"
  done
fi
