#!/usr/bin/env bash
# combiner_experiment.sh [STEPS] - the Combiner on real text: the same byte
# model trained with full attention, combiner-axial, combiner-fixed and a mix
# (odd layers combiner-axial, even layers full), same steps, data and seeds,
# at L = 8192 on P ranks; full and combiner-axial again with a second seed.
# The corpus is the Python standard library's sources as bytes (Debian's
# python3.11 package ships them: a codebase, a long-context task), built once
# into data/pystdlib.txt in sorted file order, 5 % held out.
# Writes out/combiner/<variant>-s<seed>.jsonl and combiner.png (the loss
# curves); prints one row per run: held-out loss and bpb at the end and the
# median tokens/s of its steps (contended if the machine is busy). Then
# `ringattn bench train` times each variant's step alone (step_times.tsv),
# and combiner-bpb.png shows held-out bpb by step and the step times.
#   Environment: P (ranks, default 2), OUT (default out/combiner),
#   CORPUS (default data/pystdlib.txt), SEEDS2 (variants run with seed 2),
#   DIM and LAYERS (default 128 and 2: 4 heads of D = DIM/4, SwiGLU).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RA="$RINGATTN_BUILD/src/ringattn"
STEPS=${1:-300} P=${P:-2} DIM=${DIM:-128} LAYERS=${LAYERS:-2} out=${OUT:-out/combiner} corpus=${CORPUS:-data/pystdlib.txt}
SEEDS2=${SEEDS2:-"full combiner-axial"}
mkdir -p "$out" "$(dirname "$corpus")"
# the plots at the end need matplotlib: found now, not after 35 minutes of training
PY=/usr/bin/python3
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  echo "combiner_experiment.sh: installing python3-matplotlib (apt-get)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib; } ||
    { echo "combiner_experiment.sh: could not install python3-matplotlib" >&2; exit 1; }
fi

if [ ! -s "$corpus" ]; then
  src=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -1)
  [ -n "$src" ] || { echo "combiner_experiment.sh: no /usr/lib/python3.x (apt-get install -y python3)" >&2; exit 1; }
  # sorted, so every machine builds the same bytes
  find "$src" -name '*.py' -type f -print0 | LC_ALL=C sort -z | xargs -0 cat > "$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi
echo "# corpus $corpus: $(wc -c < "$corpus") bytes; P=$P, $STEPS steps, L=8192, dim $DIM, $LAYERS layers"

base=(--set model.vocab=256 --set "model.dim=$DIM" --set "model.layers=$LAYERS" --set model.heads=4 --set model.ffn=swiglu
      --set data.source=file --set "data.path=$corpus" --set data.seq_len=8192 --set data.val_fraction=0.05
      --set train.batch=1 --set "train.steps=$STEPS" --set train.lr=2e-3 --set train.min_lr=2e-4
      --set "train.warmup=$((STEPS / 10))" --set "train.eval_every=$((STEPS / 6))" --set train.eval_batches=8
      --set train.log_every=1 --set train.checkpoint_every=0 --set run.layout=zigzag)

variant_args() { # the layer settings of a variant
  case "$1" in
    full) ;;
    combiner-axial|combiner-fixed) echo "--set layers.head=$1" ;;
    mix) for ((l = 1; l < LAYERS; l += 2)); do echo "--set layer.$l.head=combiner-axial"; done ;;
    *) echo "combiner_experiment.sh: unknown variant $1" >&2; return 1 ;;
  esac
}

run() { # run VARIANT SEED
  local v=$1 s=$2 m="$out/$1-s$2.jsonl"
  # shellcheck disable=SC2046  # variant_args is a list of words
  mpirun -n "$P" "$RA" train "${base[@]}" $(variant_args "$v") --set "train.seed=$s" \
    --metrics "$m" --checkpoint-dir "$out/ck-$v-s$s" > "$out/$v-s$s.log" 2>&1
  "$PY" - "$v" "$s" "$m" <<'EOF'
import json, statistics, sys
v, s, path = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
ev = [r for r in rows if "eval_loss" in r]
tps = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
last = ev[-1]
print(f"{v:16s} {s:>4s} {last['step']:6d} {last['eval_loss']:9.4f} {last['eval_bpb']:8.4f} "
      f"{statistics.median(tps):10.1f}")
EOF
}

printf '%-16s %4s %6s %9s %8s %10s\n' variant seed step eval_loss eval_bpb tokens/s
for v in full combiner-axial combiner-fixed mix; do run "$v" 1; done
for v in $SEEDS2; do run "$v" 2; done
# the step time of each variant alone (the runs above may share the machine)
model=(--set model.vocab=256 --set "model.dim=$DIM" --set "model.layers=$LAYERS" --set model.heads=4 --set model.ffn=swiglu
       --set data.seq_len=8192 --set train.batch=1 --set run.layout=zigzag)
: > "$out/step_times.tsv"
for v in full combiner-axial combiner-fixed mix; do
  # shellcheck disable=SC2046  # variant_args is a list of words
  mpirun -n "$P" "$RA" bench train "${model[@]}" $(variant_args "$v") -n 5 -w 1 -t 1 |
    awk -v v="$v" '/^ +[0-9]/ { printf "%s\t%s\t%s\n", v, $1, $2 }' >> "$out/step_times.tsv"
done
echo "# step time (bench train, ms) and tokens/s:"; cat "$out/step_times.tsv"
"$PY" scripts/plot_metrics.py "$out"/*.jsonl -o "$out/combiner.png" --title "Combiner on Python sources, L=8192, P=$P"
"$PY" scripts/plot_combiner.py "$out" -o "$out/combiner-bpb.png" --title "Combiner on Python sources, L=8192, P=$P"
