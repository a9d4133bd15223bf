#!/usr/bin/env bash
# warm_experiment.sh [STEPS] - the same model (untied head) trained from a
# random start and from warm starts - bitcipher embedding, bitcipher +
# explicit head, cooc + explicit head - with the same steps and seeds, on the
# built-in recall task and on a text file (TEXT=, default README.md). Writes
# metrics and out/warm/{recall,text}.png (loss and accuracy curves) and prints
# each run's held-out loss at step 0 and at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RA="$RINGATTN_BUILD/src/ringattn"
STEPS=${1:-600} P=${P:-2} TEXT=${TEXT:-README.md} out=${OUT:-out/warm}
mkdir -p "$out"
eval_loss() { grep "\"step\": $2," "$1" | grep -o '"eval_loss": [^,]*' | awk '{printf "%.4g", $2}'; }
printf '%-7s %-18s %12s %12s\n' task init "loss@0" "loss@$STEPS"
for task in recall text; do
  for init in random bitcipher bitcipher+explicit cooc+explicit; do
    embed=${init%+*} head=random
    [ "$init" != "${init%+explicit}" ] && head=explicit
    args=(--config configs/recall.ini --set "train.steps=$STEPS" --set "train.eval_every=$((STEPS / 6))"
          --set "train.log_every=$STEPS" --set model.tie_embeddings=0 --set "model.embed_init=$embed"
          --set "model.head_init=$head")
    [ "$task" = text ] && args+=(--set data.source=file --set "data.path=$TEXT" --set data.seq_len=64)
    m="$out/$task-$init.jsonl"
    mpirun -n "$P" "$RA" train "${args[@]}" --metrics "$m" --checkpoint-dir "$out/ck-$task-$init" >/dev/null
    printf '%-7s %-18s %12s %12s\n' "$task" "$init" "$(eval_loss "$m" 0)" "$(eval_loss "$m" "$STEPS")"
  done
  /usr/bin/python3 scripts/plot_metrics.py "$out/$task"-*.jsonl -o "$out/$task.png" --title "warm starts: $task"
done
