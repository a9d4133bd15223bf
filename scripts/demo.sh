#!/usr/bin/env bash
# demo.sh - README's first command: install, build, train the default model
# (configs/recall.ini) on the long-context recall task with 4 oversubscribed
# ranks, then evaluate it on held-out sequences and sample from it.
# Extra arguments go to `ringattn train` (e.g. --set train.steps=500).
# Env: P (ranks, default 4), OUT (output directory, default out/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-4}
# before the install and build: mpirun -n 0 would fail only after them
[[ $P =~ ^[1-9][0-9]{0,3}$ ]] || { echo "demo.sh: P='$P': give the number of ranks, 1 to 9999" >&2; exit 2; }
bash scripts/install-deps.sh
bash scripts/build.sh
. scripts/env.sh
RA="$RINGATTN_BUILD/src/ringattn"
out=${OUT:-out/demo}
mkdir -p "$out"
echo "== training configs/recall.ini on $P ranks (progress every 100 steps; metrics in $out/metrics.jsonl)"
mpirun -n "$P" "$RA" train --config configs/recall.ini --set train.log_every=100 \
  --metrics "$out/metrics.jsonl" --checkpoint-dir "$out/checkpoints" "$@"
echo "== held-out recall accuracy of the trained model (chance: 1/16, a value's letters)"
mpirun -n "$P" "$RA" eval --checkpoint "$out/checkpoints" --batches 16
echo "== a recall prompt: pairs A=d B=k C=f D=m (bytes 128+16*key+value, shown by cat -v as M-..),"
echo "   then queries; the model must complete the last query, A, with its value d"
prompt="$out/prompt.bin"
{ printf '.....\x83...........\x9a...........\xa5...........\xbc.....|'; printf 'BkDmCfA'; } >"$prompt"
mpirun -n "$P" "$RA" generate --checkpoint "$out/checkpoints" --prompt-file "$prompt" \
  --temperature 0 --tokens 1 | cat -v
# quoted for the shell (an OUT with spaces pastes as one word); the system
# Python, which has matplotlib (scripts/install-deps.sh)
printf 'demo: OK (plot the curves with: /usr/bin/python3 scripts/plot_metrics.py %q -o %q)\n' \
  "$out/metrics.jsonl" "$out/curves.png"
