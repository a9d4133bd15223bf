#!/usr/bin/env bash
# test_isa_mixed.sh RINGATTN MPIRUN CONFIGS - one job whose ranks run
# different copies of the kernels, as a portable build (-Dnative=false) does
# on a cluster of mixed CPUs; here RINGATTN_ISA gives each rank its level.
#   - attention (causal, with gradients) on 2 and 3 ranks, the levels mixed,
#     equals one rank's within 1e-5 (normalised), O and dQ, dK, dV;
#   - 10 training steps on 2 ranks, the levels mixed, give one rank's
#     losses within 1e-5 (relative);
#   - one rank of 3 given a level it cannot run: every rank stops before any
#     work, that rank says why, once, and nothing hangs.
# The baseline copy runs its tiles through OpenBLAS, the others through
# their own kernels: the sums differ in rounding only. Exits 77 (skipped)
# for a build with one copy of the kernels, which refuses RINGATTN_ISA.
if [ $# -ne 3 ]; then
    echo "usage: $0 RINGATTN MPIRUN CONFIGS" >&2
    exit 2
fi
CONFIGS=$3
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"

# the levels this build and CPU run: each one accepted by the program
levels=()
for l in x86-64 x86-64-v3 x86-64-v4; do
    RINGATTN_ISA=$l OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" "$RA" bench attn -b 64 -e 64 -n 1 -w 0 \
        -c 0 -H 2 -D 16 >out 2>err </dev/null
    if grep -q "one copy" err; then
        echo "skipped: $(grep -o 'one copy of its kernels ([a-z]*)' err): no levels to mix"
        exit 77
    fi
    grep -q " kernels=$l\$" out && levels+=("$l")
done
report "levels run here: ${levels[*]}" "$([ "${#levels[@]}" -ge 2 ] || echo "fewer than 2 levels: ${levels[*]}")"
[ "${#levels[@]}" -ge 2 ] || finish

# mixed N ARGS...: ringattn ARGS on N ranks, rank i at level i mod (levels)
mixed() {
    local n=$1 i apps=()
    shift
    for ((i = 0; i < n; i++)); do
        [ $i -gt 0 ] && apps+=(:)
        apps+=(-n 1 -x "RINGATTN_ISA=${levels[i % ${#levels[@]}]}" "$RA" "$@")
    done
    LAST="mpirun (ranks at ${levels[*]}) ringattn $*"
    timeout "$TMO" "$MPIRUN" --oversubscribe "${apps[@]}" >out 2>err </dev/null
}

# one rank (of 3) asks for a level it cannot have: every rank stops, before
# any work, and that rank reports it once
LAST="mpirun (rank 1 at RINGATTN_ISA=bogus) ringattn bench attn"
small=(bench attn -b 64 -e 64 -n 1 -w 0 -c 0 -H 2 -D 16)
timeout "$TMO" "$MPIRUN" --oversubscribe -n 1 -x "RINGATTN_ISA=${levels[0]}" "$RA" "${small[@]}" : \
    -n 1 -x RINGATTN_ISA=bogus "$RA" "${small[@]}" : -n 1 "$RA" "${small[@]}" >out 2>err </dev/null
rc=$?
why=""
[ $rc -eq 124 ] && why+="hung; "
[ $rc -eq 0 ] && why+="exit status 0; "
[ "$(grep -c 'ringattn: error' err)" -eq 1 ] || why+="$(grep -c 'ringattn: error' err) error lines, expected 1; "
grep -q '^\[rank 1/3\] ringattn: error: RINGATTN_ISA=bogus: not a level' err || why+="rank 1 does not say why; "
grep -q 'GFLOP/s' out && why+="ran anyway; "
report "RINGATTN_ISA=bogus on rank 1 of 3: every rank stops, rank 1 says why, once" "$why"

mpi 1 gen --dir A --H 2 --L 301 --D 64 --seed 7
report "gen H=2 L=301 D=64" "$(status $?)"
io() { echo --q A/q.npy --k A/k.npy --v A/v.npy --dout A/dout.npy --causal --out "$1.o.npy" \
    --dq "$1.dq.npy" --dk "$1.dk.npy" --dv "$1.dv.npy"; }
# shellcheck disable=SC2046
RINGATTN_ISA=x86-64 mpi 1 attn $(io one)
report "one rank, x86-64" "$(status $?)"
for n in 2 3; do
    # shellcheck disable=SC2046
    mixed "$n" attn $(io "m$n")
    why=$(status $?)
    for t in o dq dk dv; do
        compare "m$n.$t.npy" "one.$t.npy" || why+="$t: $(cat out err); "
    done
    report "attention on $n ranks at mixed levels equals one rank (O, dQ, dK, dV within 1e-5)" "$why"
done

losses() { sed -n 's/^{"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p' "$1"; }
train=(train --config "$CONFIGS/tiny.ini" --set train.steps=10 --set train.eval_every=0
       --set train.checkpoint_every=0 --set run.threads=1)
RINGATTN_ISA=x86-64 mpi 1 "${train[@]}" --metrics one.jsonl --checkpoint-dir c1
report "training, one rank" "$(status $?)"
mixed 2 "${train[@]}" --metrics m2.jsonl --checkpoint-dir c2
why=$(status $?)
a=$(awk 'NR == FNR { ref[$1] = $2; next }
         { n++; d = ref[$1] - $2; if (d < 0) d = -d; r = d / ref[$1]; if (r > m) m = r; if (r > 1e-5) bad++ }
         END { if (n != 10) { printf "%d losses, expected 10", n; exit 1 }
               if (bad) { printf "%d steps differ by more than 1e-5 (max %.3g)", bad, m; exit 1 }
               printf "max relative difference %.3g", m }' <(losses one.jsonl) <(losses m2.jsonl)) || why+="$a; "
report "10 training steps on 2 ranks at mixed levels give one rank's losses ($a)" "$why"
finish
