#!/usr/bin/env bash
# balance_bench.sh - how much of the causal ring's forward and backward each
# layout spends blocked on the ring (issue #15's balance figure), with
# `ringattn bench attn --causal` at one L, rounds interleaved over layouts
# (the machine drifts within minutes: each round runs every layout once).
#
#   scripts/bench/balance_bench.sh [-b 16K] [-n 3] [-w 1] [-r 3] [-H 4] [-D 64]
#       [-P 2] [--layouts zigzag,striped] [--cluster HOSTS [--ppn K]]
#
#   -b L        global sequence length (K, M suffixes)
#   -n -w       timed and warm-up calls per run (bench attn's)
#   -r R        rounds; each round runs every layout once
#   -P P        ranks of a local run, bound one per core (--bind-to core), 1
#               OpenBLAS thread each; P above the core count oversubscribes
#               and binds nothing
#   --cluster H H namespace hosts (scripts/cluster/netns-cluster.sh, its own
#               cluster: RA_CLUSTER=rbal on 10.213.3.0/24, removed on exit),
#               --ppn K ranks each (default 2), every host on its own cores
#               (run --own-cores), TCP between all ranks, links not shaped
#
# Prints one row per (round, layout) and then the medians over rounds:
#   fwd_ms bwd_ms   the slowest rank's median time per call (bench attn's
#                   max columns, 4th and 10th of its row)
#   fwd_wait ...    the median time blocked on the ring, max over ranks (ms;
#                   bench attn's wait_ms, 7th and 13th)
#   fwd_% bwd_%     wait / time: the share of the phase spent blocked, both
#                   max over ranks, so at most 100 % (the ranks' mean time,
#                   fwd_ms, gave shares above 100 % when one rank was slow)
# and, per round, a row "spread": the same ranks running identical work
# without the ring (bidirectional, --no-comm), (slowest - fastest) / slowest
# rank's time in %: how far the cores' speeds drift apart by themselves. A
# ring in lockstep waits about that much whatever its layout does, so wait
# shares below the round's spread are the machine's, not the layout's.
# Exit status 1 when a run fails. About 40 s per round at the defaults on
# the 2-core development machine (2 min with --cluster 2); needs root for
# --cluster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. scripts/env.sh
case $RINGATTN_BUILD in /*) RA=$RINGATTN_BUILD/src/ringattn ;; *) RA=$PWD/$RINGATTN_BUILD/src/ringattn ;; esac
NC=$PWD/scripts/cluster/netns-cluster.sh

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "balance_bench: error: $*" >&2; exit 2; }
need() { [ "$2" -ge 2 ] || die "$1 needs a value"; }

L=16K n=3 w=1 r=3 H=4 D=64 P=2 layouts=zigzag,striped hosts='' ppn=2
while [ $# -gt 0 ]; do
    case $1 in
        -b) need "$1" $#; L=$2; shift 2 ;;
        -n) need "$1" $#; n=$2; shift 2 ;;
        -w) need "$1" $#; w=$2; shift 2 ;;
        -r) need "$1" $#; r=$2; shift 2 ;;
        -H) need "$1" $#; H=$2; shift 2 ;;
        -D) need "$1" $#; D=$2; shift 2 ;;
        -P) need "$1" $#; P=$2; shift 2 ;;
        --layouts) need "$1" $#; layouts=$2; shift 2 ;;
        --cluster) need "$1" $#; hosts=$2; shift 2 ;;
        --ppn) need "$1" $#; ppn=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for v in n w r H D P ppn; do
    [[ ${!v} =~ ^[1-9][0-9]{0,3}$ || ( $v == w && ${!v} == 0 ) ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $L =~ ^[1-9][0-9]*[KkMm]?$ ]] || die "-b must be a length like 16384 or 16K, got '$L'"
[[ $layouts =~ ^[a-z]+(,[a-z]+)*$ ]] || die "--layouts must be a comma-separated list, got '$layouts'"
[ -x "$RA" ] || die "$RA missing: build first (bash scripts/build.sh)"
IFS=, read -r -a LAY <<<"$layouts"

T=$(mktemp -d)
if [ -n "$hosts" ]; then
    [[ $hosts =~ ^[2-8]$ ]] || die "--cluster takes 2..8 hosts, got '$hosts'"
    [ "$(id -u)" -eq 0 ] || die "--cluster needs root (network namespaces)"
    export RA_CLUSTER=rbal RA_CLUSTER_SUBNET=10.213.3
    trap '"$NC" down; rm -rf "$T"' EXIT
    "$NC" down
    "$NC" up "$hosts" >/dev/null
    ranks=$((hosts * ppn))
    launch=("$NC" run "$hosts" --ppn "$ppn" --threads 1 --own-cores -- -n "$ranks")
    where="$hosts hosts x $ppn ranks (namespace cluster, own cores, TCP)"
else
    trap 'rm -rf "$T"' EXIT
    ranks=$P
    if [ "$P" -le "$(nproc)" ]; then
        launch=(mpirun -n "$P" --bind-to core --map-by core -x OPENBLAS_NUM_THREADS=1)
        where="$P ranks, one per core"
    else
        launch=(mpirun -n "$P" --oversubscribe --bind-to none -x OPENBLAS_NUM_THREADS=1)
        where="$P ranks on $(nproc) cores (oversubscribed)"
    fi
fi

echo "# balance_bench: causal L=$L H=$H D=$D, $where, 1 thread/rank, n=$n w=$w, $r round(s)"
printf '%5s %-10s | %9s %9s %6s | %9s %9s %6s\n' round layout fwd_ms fwd_wait fwd_% bwd_ms bwd_wait bwd_%
: >"$T/rows"
for round in $(seq "$r"); do
    for lay in "${LAY[@]}"; do
        "${launch[@]}" "$RA" bench attn --causal --layout "$lay" -b "$L" -e "$L" -n "$n" -w "$w" \
            -t 1 -c 0 -H "$H" -D "$D" >"$T/out" 2>"$T/err" </dev/null ||
            { echo "balance_bench: $lay round $round failed:" >&2; cat "$T/err" "$T/out" >&2; exit 1; }
        # the data row: L(1) fwd_ms(2) min(3) max(4) GFLOP/s %sgemm wait_ms(7) bwd_ms(8) min(9) max(10)
        # GFLOP/s %sgemm wait_ms(13) ...; wait_ms is the max over ranks, so divided by max (4, 10)
        row=$(grep -v '^#' "$T/out" | awk 'NF >= 13 && $1 ~ /^[0-9]+$/' | tail -1)
        [ -n "$row" ] || { echo "balance_bench: no result row from $lay round $round:" >&2; cat "$T/out" >&2; exit 1; }
        awk -v rd="$round" -v lay="$lay" '{ printf "%5d %-10s | %9.1f %9.2f %6.1f | %9.1f %9.2f %6.1f\n",
            rd, lay, $4, $7, 100 * $7 / $4, $10, $13, 100 * $13 / $10 }' <<<"$row" | tee -a "$T/rows"
    done
    "${launch[@]}" "$RA" bench attn --no-comm -b "$L" -e "$L" -n "$n" -w "$w" -t 1 -c 0 -H "$H" -D "$D" \
        >"$T/out" 2>"$T/err" </dev/null ||
        { echo "balance_bench: the --no-comm run of round $round failed:" >&2; cat "$T/err" "$T/out" >&2; exit 1; }
    row=$(grep -v '^#' "$T/out" | awk 'NF >= 13 && $1 ~ /^[0-9]+$/' | tail -1)
    [ -n "$row" ] || { echo "balance_bench: no result row from the --no-comm run of round $round" >&2; exit 1; }
    # L fwd_ms min max ... bwd_ms(8) min(9) max(10)
    awk -v rd="$round" '{ printf "%5d %-10s | %9.1f %9s %6.1f | %9.1f %9s %6.1f\n",
        rd, "spread", $4, "-", 100 * ($4 - $3) / $4, $10, "-", 100 * ($10 - $9) / $10 }' <<<"$row" | tee -a "$T/rows"
done
echo "# medians over $r round(s):"
for lay in "${LAY[@]}" spread; do
    awk -v lay="$lay" '$2 == lay { f[++k] = $6; b[k] = $10; fm[k] = $4; bm[k] = $8 }
        function med(a, m,   i, j, t) { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END { printf "%5s %-10s | %9.1f %9s %6.1f | %9.1f %9s %6.1f\n", "med", lay, med(fm, k), "-", med(f, k), med(bm, k), "-", med(b, k) }' "$T/rows"
done
