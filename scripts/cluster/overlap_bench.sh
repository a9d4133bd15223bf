#!/usr/bin/env bash
# overlap_bench.sh - does the ring hide its transfers behind the block compute?
#
#   bash scripts/cluster/overlap_bench.sh [-b 512] [-e 8K] [-n 3] [-w 1] [-r 2]
#       [--rate 1gbit] [--delay 0.5ms] [-H 4] [--Hkv H] [-D 64] [--shared-cores]
#
# Builds a namespace cluster of 2 hosts (scripts/cluster/netns-cluster.sh,
# its own: RA_CLUSTER=rab on 10.213.2.0/24, removed on exit), shapes each
# host's link to --rate (and --delay where the kernel has netem), and for each
# L of the sweep runs `ringattn bench attn` (bidirectional, forward and
# backward, 1 rank per host, 1 OpenBLAS thread per rank) twice: normally
# (with the sampled float64 check) and with --no-comm (the same tile work,
# the ring transfers skipped); with -r R it alternates the two R times and
# keeps each column's minimum (a machine shared with other jobs). Each host
# runs on its own cores (netns-cluster.sh run --own-cores: host 1 on the
# first half of the machine, host 2 on the second), as real nodes do;
# --shared-cores lets both hosts' ranks float over every core. Then it
# prints, per L:
#
#   block      tokens per rank, c = L/2
#   *_comm     the slowest rank's median time per call with the ring (ms)
#   *_nocomm   the same without communication (ms)
#   ratio      comm / nocomm (fwd, bwd, and the step = fwd + bwd)
#   cx_f cx_b  the overlap condition of docs/design.md §4 for this link: compute time
#              of one ring step over the transfer time of one block,
#                fwd: (4 B H c^2 D / F_fwd) / (2 B Hkv c D 4 bytes / rate)
#                bwd: (10 B H c^2 D / F_bwd) / (4 B Hkv c D 4 bytes / rate)
#              (bwd moves K, V, dK, dV), F the per-rank FLOP rate measured by
#              the --no-comm run of the same L; >= 1: the transfer can hide
#   overlap    yes when cx_f >= 1 and cx_b >= 1
#   check      for rows with overlap yes: step ratio <= 1.10 (the check of
#              issue #7); '-' for the others
#
# Under the table, per L: the rates, the time blocked on the ring (wait_ms)
# and the kernel CPU time (system + irq + softirq of the whole machine, all
# cores) of one comm and one --no-comm run (each n + w calls plus start-up
# and, for comm, the float64 check): the TCP stack's share of the cores;
# and the step ratio split in two: (no-comm + waits) / no-comm, what the
# ring's schedule costs, and (comm - waits) / no-comm, the compute slowed by
# the transfers' CPU work (copies, TCP, on the cores that compute).
#
# and the block size c* at which the condition turns, for this link. Exit
# status 1 when a row above the threshold fails the check or a run fails.
# Needs root. About a minute on an idle 2-core machine at the defaults;
# each doubling of L costs 4x.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. scripts/env.sh
RA=$PWD/$RINGATTN_BUILD/src/ringattn
NC=$PWD/scripts/cluster/netns-cluster.sh
export RA_CLUSTER=rab RA_CLUSTER_SUBNET=10.213.2

b=512 e=8K n=3 w=1 r=2 rate=1gbit delay=0.5ms H=4 Hkv='' D=64 cores=--own-cores
while [ $# -gt 0 ]; do
    case $1 in
        -b) b=$2; shift 2 ;;
        -e) e=$2; shift 2 ;;
        -n) n=$2; shift 2 ;;
        -w) w=$2; shift 2 ;;
        -r) r=$2; shift 2 ;;
        -H) H=$2; shift 2 ;;
        --Hkv) Hkv=$2; shift 2 ;;
        -D) D=$2; shift 2 ;;
        --shared-cores) cores=''; shift ;;
        --rate) rate=$2; shift 2 ;;
        --delay) delay=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "overlap_bench: unknown option $1" >&2; exit 2 ;;
    esac
done
Hkv=${Hkv:-$H}
[ "$(id -u)" -eq 0 ] || { echo "overlap_bench: needs root (network namespaces)" >&2; exit 1; }
[ -x "$RA" ] || { echo "overlap_bench: $RA missing: build first" >&2; exit 1; }
"$RA" bench attn --help | grep -q -- --no-comm || { echo "overlap_bench: this ringattn has no bench attn --no-comm" >&2; exit 1; }
tokens() { local x=${1^^}; case $x in *K) echo $((${x%K} * 1024)) ;; *M) echo $((${x%M} * 1048576)) ;; *) echo "$x" ;; esac; }
L0=$(tokens "$b")
L1=$(tokens "$e")
rate_Bps=$(awk -v r="${rate,,}" 'BEGIN {
    n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
    m["bit"] = 1/8; m["kbit"] = 1e3/8; m["mbit"] = 1e6/8; m["gbit"] = 1e9/8; m["bps"] = 1; m["kbps"] = 1e3; m["mbps"] = 1e6; m["gbps"] = 1e9
    if (!(u in m)) exit 1; printf "%.0f", n * m[u] }') || { echo "overlap_bench: bad --rate $rate" >&2; exit 2; }

T=$(mktemp -d)
trap '"$NC" down; rm -rf "$T"' EXIT
"$NC" down
"$NC" up 2 >/dev/null
"$NC" shape "$rate" "$delay" 2>"$T/shape.err" >"$T/shape.out"
cat "$T/shape.err" >&2
shaped=$(sed 's/^netns-cluster: //' "$T/shape.out")

# kernel CPU time of the whole machine so far, in clock ticks: system + irq +
# softirq of /proc/stat's cpu line (the TCP stack's work, wherever it ran)
kern_ticks() { awk '$1 == "cpu" { print $4 + $7 + $8 }' /proc/stat; }
bench() { # L EXTRA...: one bench row, the data line only; the run's kernel CPU
    local L=$1 k0     # seconds (all cores) in $T/kern
    shift
    k0=$(kern_ticks)
    timeout 1800 "$NC" run 2 $cores -- "$RA" bench attn -b "$L" -e "$L" -n "$n" -w "$w" -t 1 \
        -H "$H" --Hkv "$Hkv" -D "$D" "$@" >"$T/out" 2>"$T/err" </dev/null ||
        { echo "overlap_bench: bench attn L=$L $* failed:" >&2; cat "$T/err" "$T/out" >&2; return 1; }
    awk -v a="$k0" -v b="$(kern_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", (b - a) / hz }' >"$T/kern"
    grep -v '^#' "$T/out" | awk -v L="$L" '$1 == L' | tail -1
}
minf() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }

colmin() { # ROW1 ROW2: the smaller of each numeric column (ROW1 may be empty)
    [ -n "$1" ] || { echo "$2"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, A); split(b, B)
        for (i = 1; i <= n; i++) { v = A[i]; if (A[i] ~ /^[0-9.]+$/ && B[i] + 0 < A[i] + 0) v = B[i]; printf "%s%s", v, i < n ? " " : "\n" } }'
}
echo "# overlap_bench: 2 hosts x 1 rank${cores:+ (each host its own cores)}, 1 thread/rank, H=$H Hkv=$Hkv D=$D bidirectional, n=$n w=$w, best of $r"
echo "# link: $shaped; $(awk -v r="$rate_Bps" 'BEGIN { printf "%.1f MB/s", r / 1e6 }') each way"
printf '%8s %6s | %9s %9s %5s | %9s %9s %5s | %9s %9s %5s | %6s %6s %7s %5s\n' \
    L block fwd_comm fwd_nocom ratio bwd_comm bwd_nocom ratio step_comm step_noco ratio cx_f cx_b overlap check
rows=()
busy=''
L=$L0
while [ "$L" -le "$L1" ]; do
    c='' x='' kc='' kx=''
    for _ in $(seq "$r"); do
        c1=$(bench "$L" -c 1)
        kc=$(minf "$kc" "$(cat "$T/kern")")
        x1=$(bench "$L" --no-comm)
        kx=$(minf "$kx" "$(cat "$T/kern")")
        [ -n "$c1" ] && [ -n "$x1" ] || exit 1
        [[ "$c1" == *FAIL* ]] && { echo "overlap_bench: L=$L: the float64 check failed: $c1" >&2; exit 1; }
        c=$(colmin "$c" "$c1")
        x=$(colmin "$x" "$x1")
    done
    # columns: L fwd_ms min max GFLOP/s %sgemm wait_ms bwd_ms min max GFLOP/s %sgemm wait_ms MiB_sent ...
    row=$(awk -v L="$L" -v H="$H" -v Hkv="$Hkv" -v D="$D" -v R="$rate_Bps" -v c="$c" -v x="$x" 'BEGIN {
        split(c, C); split(x, X); P = 2; blk = L / P
        fc = C[4]; fx = X[4]; bc = C[10]; bx = X[10]           # slowest rank (ms)
        Ff = 4 * H * L * L * D / P / (fx / 1e3)                 # per-rank FLOP/s, no-comm run
        Fb = 10 * H * L * L * D / P / (bx / 1e3)
        tcf = 4 * H * blk * blk * D / Ff; txf = 2 * Hkv * blk * D * 4 / R
        tcb = 10 * H * blk * blk * D / Fb; txb = 4 * Hkv * blk * D * 4 / R
        cxf = tcf / txf; cxb = tcb / txb
        ov = (cxf >= 1 && cxb >= 1) ? "yes" : "no"
        sr = (fc + bc) / (fx + bx)
        chk = ov == "yes" ? (sr <= 1.10 ? "ok" : "FAIL") : "-"
        printf "%8d %6d | %9.1f %9.1f %5.2f | %9.1f %9.1f %5.2f | %9.1f %9.1f %5.2f | %6.2f %6.2f %7s %5s\n",
            L, blk, fc, fx, fc / fx, bc, bx, bc / bx, fc + bc, fx + bx, sr, cxf, cxb, ov, chk
        # the block size where the condition turns: c* = 2 F Hkv / (H R) fwd, 1.6 F Hkv / (H R) bwd
        # the step split: blocked on the ring (the schedule) and the rest of the excess (CPU work of the transfers)
        printf "%.0f %.0f %.1f %.1f %s %s %s %.3f %.3f\n", 2 * Ff * Hkv / (H * R), 1.6 * Fb * Hkv / (H * R), Ff / 1e9, Fb / 1e9, C[7], C[13], X[6],
            (fx + bx + C[7] + C[13]) / (fx + bx), (fc + bc - C[7] - C[13]) / (fx + bx) > "/dev/stderr" }' 2>"$T/thr")
    echo "$row"
    rows+=("$row")
    read -r cf cb gf gb wf wb pct sched cpu <"$T/thr"
    thr+=("L=$L: per-rank fwd $gf GFLOP/s ($pct % of sgemm), bwd $gb GFLOP/s -> c* fwd $cf, bwd $cb tokens; wait_ms with comm fwd $wf bwd $wb; kernel CPU (sys+irq+softirq, all cores) per run: comm $kc s, --no-comm $kx s; step ratio split: blocked on the ring $sched (no-comm + waits), computing $cpu (comm minus waits: the transfers' CPU work)")
    # the two ranks make a load of about 2: more means other jobs shared the cores
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" 'BEGIN { exit !(l > 3) }'; then busy="$busy L=$L:$load"; fi
    L=$((L * 2))
done
echo "# threshold (docs/design.md §4: compute per ring step = transfer of one block) per L:"
printf '#   %s\n' "${thr[@]}"
[ -z "$busy" ] || echo "# warning: other jobs were running (1-minute load average above 3 after$busy): the ratios are unreliable"
above=$(printf '%s\n' "${rows[@]}" | awk '$(NF-1) == "yes"' | wc -l)
bad=$(printf '%s\n' "${rows[@]}" | awk '$NF == "FAIL"' | wc -l)
if [ "$above" -eq 0 ]; then
    echo "# check: no block above the overlap threshold in this sweep (raise -e)"
elif [ "$bad" -eq 0 ]; then
    echo "# check: ok: all $above rows above the threshold run within 1.10x of --no-comm"
else
    echo "# check: FAIL: $bad of $above rows above the threshold run slower than 1.10x of --no-comm"
    exit 1
fi
