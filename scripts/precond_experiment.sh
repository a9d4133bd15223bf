#!/usr/bin/env bash
# precond_experiment.sh [STEPS] - the same model trained with precond = none,
# rownorm (full gradient) and spectral (lambda 0.5), same steps and seeds, on
# the built-in recall task and on a text file (TEXT=, default README.md);
# writes metrics and out/precond/{recall,text}.png (loss, accuracy, largest
# kappa of a head output) and prints the last evaluation of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RA="$RINGATTN_BUILD/src/ringattn"
STEPS=${1:-600} P=${P:-2} TEXT=${TEXT:-README.md} out=${OUT:-out/precond}
mkdir -p "$out"
for task in recall text; do
  for pc in none rownorm spectral; do
    args=(--config configs/recall.ini --set "train.steps=$STEPS" --set "train.eval_every=$((STEPS / 6))"
          --set "train.log_every=$STEPS" --set "layers.precond=$pc" --set layers.precond_grad=full
          --set layers.precond_lambda=0.5)
    [ "$task" = text ] && args+=(--set data.source=file --set "data.path=$TEXT" --set data.seq_len=64)
    printf '%-7s %-9s ' "$task" "$pc"
    mpirun -n "$P" "$RA" train "${args[@]}" --metrics "$out/$task-$pc.jsonl" \
      --checkpoint-dir "$out/ck-$task-$pc" | grep '^eval' | tail -1
  done
  /usr/bin/python3 scripts/plot_metrics.py "$out/$task"-*.jsonl -o "$out/$task.png" --title "precond: $task"
done
