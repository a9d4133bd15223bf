#!/usr/bin/env bash
# compare_train.sh - training throughput of ringattn against PyTorch on the
# same model, the same thread count and random bytes; prints the ratio.
#
#   scripts/bench/compare_train.sh [--config configs/10m.ini] [--threads 1] [--steps 5] [--warmup 1]
#
# ringattn:  mpirun -n 1 build/src/ringattn bench train --config CONFIG -n STEPS -w WARMUP -t THREADS
# PyTorch:   scripts/bench/torch_model.py with the config's [model] dim, layers, heads,
#            kv_heads, head_dim, ffn, ffn_dim, tie_embeddings, [data] seq_len, [train] batch
# Both print a machine-readable last line (`ringattn: tokens_per_s=...`,
# `torch: tokens_per_s=...`); this script repeats them and prints
#   ratio ringattn/torch tokens_per_s = X.XX
# Exit status 1 when either side fails. Installs python3-torch with apt-get
# when /usr/bin/python3 cannot import torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }
die() { echo "compare_train: error: $*" >&2; exit 1; }

config=configs/10m.ini threads=1 steps=5 warmup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --config) [ $# -ge 2 ] || die "--config needs a value"; config=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; threads=$2; shift 2 ;;
    --steps) [ $# -ge 2 ] || die "--steps needs a value"; steps=$2; shift 2 ;;
    --warmup) [ $# -ge 2 ] || die "--warmup needs a value"; warmup=$2; shift 2 ;;
    --config=*) config=${1#*=}; shift ;;
    --threads=*) threads=${1#*=}; shift ;;
    --steps=*) steps=${1#*=}; shift ;;
    --warmup=*) warmup=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for v in threads steps; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer (got '${!v}')"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer (got '$warmup')"
[ -f "$config" ] || die "$config: no such config file"

# ---- PyTorch available? -------------------------------------------------------
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "compare_train: installing python3-torch (apt-get)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  if ! { $sudo apt-get update -qq &&
         $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy; }; then
    die "could not install python3-torch"
  fi
  "$PY" -c 'import torch' || die "$PY still cannot import torch"
fi

# ---- the model from the INI -----------------------------------------------------
# Prints torch_model.py options, one per line; warnings on stderr.
torch_args=$("$PY" - "$config" <<'PYEOF'
import configparser, sys
path = sys.argv[1]
ini = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), interpolation=None)
try:
    with open(path) as f:
        ini.read_file(f)
except (OSError, configparser.Error) as e:
    sys.exit(f"compare_train: error: {path}: {e}")

def get(section, key, default=None):
    if not ini.has_option(section, key):
        return default
    return ini.get(section, key).strip().strip("\"'").strip()

def num(section, key, default):
    v = get(section, key)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        sys.exit(f"compare_train: error: {path}: [{section}] {key} = {v!r} is not an integer")

def flag(section, key, default):
    v = get(section, key)
    if v is None:
        return default
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    sys.exit(f"compare_train: error: {path}: [{section}] {key} = {v!r} is not a boolean")

# Missing keys take ringattn's defaults (src/core/config_schema.c, ra_config_defaults);
# 0 means derived: kv_heads = heads, head_dim = dim / heads, ffn_dim per ffn.
args = ["--dim", num("model", "dim", 64), "--layers", num("model", "layers", 2),
        "--heads", num("model", "heads", 4),
        "--kv-heads", num("model", "kv_heads", 0), "--head-dim", num("model", "head_dim", 0),
        "--ffn-dim", num("model", "ffn_dim", 0), "--vocab", num("model", "vocab", 256),
        "--seq-len", num("data", "seq_len", 64), "--batch", num("train", "batch", 16)]
ffn = (get("model", "ffn") or "swiglu").lower()
if ffn not in ("swiglu", "gelu"):
    sys.exit(f"compare_train: error: {path}: [model] ffn = {ffn!r}: torch_model.py knows swiglu, gelu")
args += ["--ffn", ffn]
if not flag("model", "tie_embeddings", True):
    args.append("--untied")
# torch_model.py has full causal attention only: say so when layers differ
for sec in ini.sections():
    if sec == "layers" or sec.startswith("layer."):
        head = (get(sec, "head") or "full").lower()
        pre = (get(sec, "precond") or "none").lower()
        if head != "full" or pre != "none":
            print(f"compare_train: warning: {path}: [{sec}] head = {head}, precond = {pre}: "
                  "PyTorch runs full attention, so the two models differ", file=sys.stderr)
print("\n".join(str(a) for a in args))
PYEOF
) || exit 1
mapfile -t targs <<< "$torch_args"

# ---- environment ------------------------------------------------------------------
. scripts/env.sh   # Open MPI as root, oversubscribe, no CMA; RINGATTN_BUILD
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
RA="$RINGATTN_BUILD/src/ringattn"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail=0
# ---- ringattn ----------------------------------------------------------------------
echo "== ringattn: $config, $threads thread(s), $steps steps after $warmup warm-up"
ra_line=""
if [ ! -x "$RA" ]; then
  echo "compare_train: error: $RA not found (build with: bash scripts/build.sh)" >&2
  fail=1
else
  set +e
  mpirun -n 1 "$RA" bench train --config "$config" -n "$steps" -w "$warmup" -t "$threads" 2>&1 | tee "$out/ra.txt"
  rc=${PIPESTATUS[0]}
  set -e
  ra_line=$(grep -E '^ringattn: tokens_per_s=' "$out/ra.txt" | tail -n 1 || true)
  if [ "$rc" -ne 0 ] || [ -z "$ra_line" ]; then
    echo "compare_train: error: ringattn bench train failed (status $rc${ra_line:-, no 'ringattn: tokens_per_s=' line})" >&2
    fail=1
  fi
fi

# ---- PyTorch -------------------------------------------------------------------------
echo "== torch: scripts/bench/torch_model.py ${targs[*]} --steps $steps --warmup $warmup --threads $threads"
set +e
"$PY" scripts/bench/torch_model.py "${targs[@]}" --steps "$steps" --warmup "$warmup" --threads "$threads" 2>&1 \
  | tee "$out/torch.txt"
rc=${PIPESTATUS[0]}
set -e
torch_line=$(grep -E '^torch: tokens_per_s=' "$out/torch.txt" | tail -n 1 || true)
if [ "$rc" -ne 0 ] || [ -z "$torch_line" ]; then
  echo "compare_train: error: torch_model.py failed (status $rc)" >&2
  fail=1
fi

# ---- summary ---------------------------------------------------------------------------
echo "== summary: $config, threads=$threads"
# both report parameters: a difference means the two models are not the same
ra_params=$(sed -nE 's/^# bench train: ([0-9]+) parameters.*/\1/p' "$out/ra.txt" 2>/dev/null | tail -n 1)
torch_params=$(sed -nE 's/.* params=([0-9]+).*/\1/p' <<< "$torch_line")
# (ringattn pads each tensor to 16 floats: allow 15 per tensor, at most 9 per layer + 3)
layers=${targs[3]}
if [ -n "$ra_params" ] && [ -n "$torch_params" ] &&
   [ $(( ra_params > torch_params ? ra_params - torch_params : torch_params - ra_params )) -gt $(( 15 * (9 * layers + 3) )) ]; then
  echo "compare_train: warning: parameter counts differ: ringattn $ra_params, torch $torch_params" >&2
fi
[ -n "$ra_line" ] && echo "$ra_line"
[ -n "$torch_line" ] && echo "$torch_line"
if [ "$fail" -ne 0 ]; then
  echo "ratio ringattn/torch tokens_per_s = n/a (a side failed)"
  exit 1
fi
ra_tps=$(sed -nE 's/.*tokens_per_s=([0-9.eE+-]+).*/\1/p' <<< "$ra_line")
torch_tps=$(sed -nE 's/.*tokens_per_s=([0-9.eE+-]+).*/\1/p' <<< "$torch_line")
awk -v a="$ra_tps" -v b="$torch_tps" 'BEGIN {
  if (b + 0 <= 0) { print "compare_train: error: torch tokens_per_s is " b > "/dev/stderr"; exit 1 }
  printf "ratio ringattn/torch tokens_per_s = %.2f\n", a / b }'
