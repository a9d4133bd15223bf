#!/usr/bin/env bash
# test_cluster.sh RINGATTN MPIRUN NETNS_CLUSTER CONFIGS - ringattn across
# "hosts" of a namespace cluster (scripts/cluster/netns-cluster.sh): Open MPI
# over TCP through a bridge, one or two ranks per host, on 2, 3 and 4 hosts.
# Attention outputs and gradients equal a single-rank run, the sampled
# float64 reference check of bench attn passes, and 20 training losses equal
# a single-rank run within 1e-4 relative, also as a dp 2 x cp 2 grid whose
# rings each stay on one host. Needs root (exit 77 otherwise, or
# when network namespaces cannot be created). The test builds its own cluster
# (RA_CLUSTER=rat on 10.213.1.0/24), so a cluster the user has up is not
# touched, and removes it on exit.
set -u
RA=$1
MPIRUN=$2
NC=$3
CONFIGS=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} # skip probing psm/ofi/ucx (tests/meson.build)
export RA_CLUSTER=rat RA_CLUSTER_SUBNET=10.213.1

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
for tool in ip nsenter unshare tc; do
    command -v $tool >/dev/null || { echo "skip: $tool not installed"; exit 77; }
done
ip netns add rat-probe 2>/dev/null || { echo "skip: cannot create network namespaces"; exit 77; }
ip netns del rat-probe

T=$(mktemp -d)
trap '"$NC" down; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
cd "$T" || exit 1
start=$(date +%s)
pass=0
fail=0
report() { # DESC WHY
    if [ -z "$2" ]; then pass=$((pass + 1)); echo "ok: $1"; else fail=$((fail + 1)); echo "FAIL: $1: $2"; fi
}
# cl H PPN ARGS...: ringattn on H hosts, PPN ranks each, output in out/err, 120 s limit
cl() {
    local h=$1 ppn=$2
    shift 2
    timeout 120 "$NC" run "$h" --ppn "$ppn" -- "$RA" "$@" >out 2>err </dev/null
}
# ra1 ARGS...: ringattn on one rank, no cluster
ra1() { timeout 120 "$MPIRUN" -n 1 "$RA" "$@" >out 2>err </dev/null; }
losses() { grep -o '"loss": [^,]*' "$1" | awk '{print $2}'; }
# same_losses A B: every step's loss within 1e-4 relative (as tests/cli/test_train.sh)
same_losses() {
    paste <(losses "$1") <(losses "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > worst) worst = r }
        END { if (n != 20) { print "expected 20 steps, got " n; exit 1 }
              if (worst > 1e-4) { printf "worst relative difference %.3e > 1e-4\n", worst; exit 1 }
              printf "worst %.2e", worst > "/dev/stderr" }'
}
# --own-cores: host i's processes on its slice of the cores, and refusals
own_cores() {
    local n why=""
    n=$(nproc --all)
    timeout 60 "$NC" run 2 --own-cores -- -n 2 --map-by node sh -c \
        'echo "$(hostname) $(grep Cpus_allowed_list /proc/self/status | cut -f2)"' >out 2>err </dev/null ||
        why="run failed: $(tail -2 err); "
    for i in 1 2; do
        want="rat-host$i $(((i - 1) * n / 2))-$((i * n / 2 - 1))"
        [ "$n" -eq 2 ] && want="rat-host$i $((i - 1))"
        grep -qx "$want" out || why+="expected '$want' in: $(tr '\n' ';' <out); "
    done
    report "run --own-cores: each host's ranks on its own half of the $n cores" "$why"
    why=""
    for bad in "--ppn 0" "--ppn x" "--threads -1" "--ppn"; do
        # shellcheck disable=SC2086
        timeout 30 "$NC" run 2 $bad -- -n 2 true >out 2>err </dev/null && why+="'$bad' accepted; "
        grep -q "^netns-cluster: .*run --\(ppn\|threads\)" err || why+="'$bad': $(head -1 err); "
    done
    if [ "$n" -lt 4 ]; then
        timeout 30 "$NC" run 4 --own-cores -- -n 4 true >out 2>err </dev/null && why+="4 hosts on $n cores accepted; "
        grep -q "4 hosts but only $n cores" err || why+="own-cores on 4 hosts: $(head -1 err); "
    fi
    ls "/run/ringattn-netns/rat/" | grep -q hostfile && why+="a hostfile left behind; "
    report "run refuses a bad --ppn/--threads$([ "$n" -lt 4 ] && echo ", and --own-cores with more hosts than cores"), naming it" "$why"
}
tx_bytes() { cat "/sys/class/net/rat-veth$1/statistics/rx_bytes"; } # what host $1 sent into the bridge

"$NC" down
# a subnet octet above 255: refused before anything is made (a half-built cluster was left)
RA_CLUSTER_SUBNET=10.213.256 "$NC" up 1 >up.out 2>&1
why=$([ $? -ne 0 ] || echo "exit 0; ")$(grep -q "RA_CLUSTER_SUBNET '10.213.256': three octets of 0-255" up.out || cat up.out)
ip netns list | grep -q '^rat-' && why+="a namespace was made; "
report "RA_CLUSTER_SUBNET 10.213.256 refused, nothing made" "$why"
"$NC" down
"$NC" up 4 >up.out 2>&1
report "netns cluster of 4 hosts comes up" "$([ $? -eq 0 ] || cat up.out)"
[ $fail -eq 0 ] || { echo "0 passed, $fail failed"; exit 1; }
"$NC" up 4 >up.out 2>&1
report "up is idempotent" "$([ $? -eq 0 ] || cat up.out)"
own_cores
for i in 1 2 3 4; do sent0[$i]=$(tx_bytes $i); done

timeout 60 "$NC" run 4 --ppn 2 -- hostname >out 2>err </dev/null
got=$(sort out | tr '\n' ' ')
want="rat-host1 rat-host1 rat-host2 rat-host2 rat-host3 rat-host3 rat-host4 rat-host4 "
report "8 ranks on 4 hosts, 2 each, each host with its own hostname" "$([ "$got" = "$want" ] || echo "got '$got' $(cat err)")"

# ---- attention: O, LSE, dQ, dK, dV equal one rank ----------------------------------
"$RA" gen --dir in --H 4 --Hkv 2 --L 1536 --D 32 --seed 7 >/dev/null 2>&1 || echo "gen failed"
io() { # TAG: the attn options writing TAG-*.npy
    echo --q in/q.npy --k in/k.npy --v in/v.npy --dout in/dout.npy \
        --out "$1-o.npy" --lse "$1-lse.npy" --dq "$1-dq.npy" --dk "$1-dk.npy" --dv "$1-dv.npy" --threads 1
}
# shellcheck disable=SC2046
ra1 attn $(io ref-bi) --layout contiguous
report "attn reference, 1 rank, bidirectional" "$([ $? -eq 0 ] || cat err)"
# shellcheck disable=SC2046
ra1 attn $(io ref-causal) --causal --layout contiguous
report "attn reference, 1 rank, causal" "$([ $? -eq 0 ] || cat err)"
for run in "2 1 zigzag causal" "2 2 contiguous bi" "3 1 striped causal" "3 2 zigzag causal" \
    "4 1 contiguous bi" "4 2 zigzag causal"; do
    read -r h ppn layout mask <<<"$run"
    tag=h$h-$ppn-$layout-$mask
    flags=(--layout "$layout" --chunk 128)
    [ "$mask" = causal ] && flags+=(--causal)
    # shellcheck disable=SC2046
    cl "$h" "$ppn" attn $(io "$tag") "${flags[@]}"
    why=$([ $? -eq 0 ] || tail -3 err)
    errs=""
    if [ -z "$why" ]; then
        grep -q "P=$((h * ppn)) $layout" out || why="summary does not say P=$((h * ppn)) $layout: $(cat out)"
        for x in o lse dq dk dv; do
            line=$("$RA" compare "$tag-$x.npy" "ref-$mask-$x.npy" 2>&1)
            [ $? -eq 0 ] || why+="$x: $line; "
            errs+="$x $(echo "$line" | grep -o 'normalised error = [^ ]*' | cut -d' ' -f4) "
        done
    fi
    report "attn on $h hosts x $ppn rank(s), $layout, $mask, fwd+bwd: O LSE dQ dK dV equal 1 rank ($errs)" "$why"
done
cl 4 1 bench attn -b 1536 -e 1536 -H 4 --Hkv 2 -D 32 -n 1 -w 0 -c 1 --causal --layout zigzag
why=$([ $? -eq 0 ] || tail -3 err)
[ -z "$why" ] && { grep -Eq '^ +1536 .* OK$' out || why="no OK row: $(cat out)"; }
report "bench attn on 4 hosts: sampled rows of O, LSE, dQ equal the float64 reference" "$why"

# ---- training: the same 20 losses as one rank --------------------------------------
common=(--config "$CONFIGS/tiny.ini" --set train.steps=20 --set train.eval_every=0 --threads 1)
ra1 train "${common[@]}" --metrics p1.jsonl --checkpoint-dir ck1
report "train, 1 rank" "$([ $? -eq 0 ] || tail -3 err)"
for run in "2 1 contiguous" "3 1 zigzag" "4 1 striped" "4 2 zigzag"; do
    read -r h ppn layout <<<"$run"
    tag=h$h-$ppn-$layout
    cl "$h" "$ppn" train "${common[@]}" --set run.layout="$layout" --metrics "$tag.jsonl" --checkpoint-dir "ck-$tag"
    why=$([ $? -eq 0 ] || tail -3 err)
    [ -z "$why" ] && why=$(same_losses "$tag.jsonl" p1.jsonl 2>/dev/null)
    report "train on $h hosts x $ppn rank(s), $layout: 20 losses equal 1 rank within 1e-4" "$why"
done

# ---- a grid: 2 hosts x 2 ranks as dp = 2 rings of cp = 2, each ring on one host ----
cl 2 2 --verbose train "${common[@]}" --set run.dp=2 --metrics grid.jsonl --checkpoint-dir ck-grid
why=$([ $? -eq 0 ] || tail -3 err)
if [ -z "$why" ]; then
    for r in 0 1 2 3; do
        h=$((r / 2 + 1)) g=$((r / 2)) p=$((r % 2))
        grep -q "^grid: rank $r/4 on rat-host$h .*| dp group $g/2 | ring position $p/2$" out ||
            why+="rank $r is not at host $h, group $g, position $p: $(grep "^grid: rank $r/" out); "
    done
    grep -q 'P=4 = dp 2 x cp 2 .*optimizer sharded' out || why+="start line lacks the grid; "
    why+=$(same_losses grid.jsonl p1.jsonl 2>/dev/null)
fi
report "train on 2 hosts x 2 ranks as dp 2 x cp 2 (sharded AdamW): each ring on one host, 20 losses equal 1 rank within 1e-4" "$why"

# ranks dealt round-robin over the hosts (--map-by node: 0 and 2 on host 1, 1 and 3
# on host 2): the rings follow the nodes, not the world ranks
timeout 120 "$NC" run 2 --ppn 2 -- --map-by node "$RA" --verbose train "${common[@]}" --set run.dp=2 \
    --metrics grid-rr.jsonl --checkpoint-dir ck-grid-rr >out 2>err </dev/null
why=$([ $? -eq 0 ] || tail -3 err)
if [ -z "$why" ]; then
    for r in 0 1 2 3; do
        h=$((r % 2 + 1)) g=$((r % 2)) p=$((r / 2))
        grep -q "^grid: rank $r/4 on rat-host$h .*| dp group $g/2 | ring position $p/2$" out ||
            why+="rank $r is not at host $h, group $g, position $p: $(grep "^grid: rank $r/" out); "
    done
    why+=$(same_losses grid-rr.jsonl p1.jsonl 2>/dev/null)
fi
report "dp 2 x cp 2 with ranks round-robin over 2 hosts: rings {0, 2} and {1, 3}, each on its host; losses equal 1 rank" "$why"

# ---- plan --calibrate across hosts: the link is measured, not assumed ----------------
# 2 hosts x 2 ranks, the links shaped to 1 Gbit/s: the ping-pong to another
# host gives the link rate (tbf: about 0.95 Gbit/s), the one inside host 1
# (TCP over its loopback, not shaped) a faster one, and the plan assumes 2
# ranks per node. The link's CPU cost is a difference of two rates measured
# in turn: work beside the test (a build, once) hid it (0, not written), so a
# run missing only it is measured once more.
"$NC" shape 1gbit 0ms >/dev/null 2>&1
for try in 1 2; do
    cl 2 2 plan --calibrate --save-rates rates.ini --threads 1 --attn -n 4 -L 4096 --causal
    why=$([ $? -eq 0 ] || tail -3 err)
    if [ -z "$why" ]; then
        grep -q "^# rates: calibrated here (kernels, ping-pongs in the node and across nodes)" out ||
            why+="rates line: $(grep '^# rates' out); "
        grep -q "^# attn: .* ranks/node=2$" out || why+="attn line: $(grep '^# attn' out); "
        # veth has no NIC: every byte's TCP work runs on the cores that compute
        # (measured 0.9-1.7 s per GB here), so the link's CPU cost is not 0
        why+=$(awk -F' = ' '$1 == "link_gbps" { l = $2 } $1 == "shm_gbps" { s = $2 } $1 == "link_cpu_s_per_gb" { u = $2 }
            END { if (!(l >= 0.5 && l <= 1.05)) printf "link_gbps %s not in [0.5, 1.05]; ", l
                  if (!(s > 1.05)) printf "shm_gbps %s not above the shaped link; ", s
                  if (!(u > 0.05 && u < 100)) printf "link_cpu_s_per_gb %s not in (0.05, 100); ", u }' rates.ini)
    fi
    [ "$try" = 1 ] && [[ $why == "link_cpu_s_per_gb "*"; " ]] && [[ $why != *"; "*"; " ]] || break
    echo "note: link_cpu_s_per_gb not measured on try 1 ($why); measuring again"
done
"$NC" shape off >/dev/null 2>&1
report "plan --calibrate on 2 hosts x 2 ranks, 1 Gbit/s: link and its CPU cost measured across hosts, shm inside one, 2 ranks per node" "$why"

# ---- the ranks really talked through the bridge ------------------------------------
why=""
for i in 1 2 3 4; do
    d=$(($(tx_bytes $i) - sent0[i]))
    [ "$d" -gt 1000000 ] || why+="host $i sent only $d bytes into the bridge; "
done
report "every host sent its share over its veth and the bridge (TCP, no shared memory)" "$why"

echo "$pass passed, $fail failed ($(($(date +%s) - start)) s)"
[ "$fail" -eq 0 ]
