#!/usr/bin/env bash
# demo_attn.sh - install, build, and run ring attention on
# 4 oversubscribed ranks over generated input, checked against a 1-rank run.
#   L=16384 H=4 D=64 causal by default; override with L=... H=... D=... P=...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
. scripts/env.sh
RA="$RINGATTN_BUILD/src/ringattn"
P=${P:-4} L=${L:-16384} H=${H:-4} D=${D:-64}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== generating Q, K, V, dO: H=$H L=$L D=$D (each rank writes its slab)"
mpirun -n "$P" "$RA" gen --dir "$out" --H "$H" --L "$L" --D "$D"
for n in "$P" 1; do
  echo "== ring attention, causal, forward + backward, on $n rank(s)"
  mpirun -n "$n" "$RA" attn --q "$out/q.npy" --k "$out/k.npy" --v "$out/v.npy" --causal \
    --out "$out/o$n.npy" --lse "$out/lse$n.npy" --dout "$out/dout.npy" \
    --dq "$out/dq$n.npy" --dk "$out/dk$n.npy" --dv "$out/dv$n.npy"
done
echo "== $P ranks against 1 rank (normalised error, tolerance 1e-5)"
for t in o lse dq dk dv; do
  "$RA" compare "$out/$t$P.npy" "$out/${t}1.npy" --tol 1e-5
done
echo "demo: OK"
