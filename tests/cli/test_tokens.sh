#!/usr/bin/env bash
# test_tokens.sh RINGATTN MPIRUN SOURCE_ROOT - the SentencePiece pipeline of
# scripts/data/ end to end: tokenize_corpus.py trains a BPE tokenizer on
# docs/*.md and writes train.bin, val.bin (uint16), tokenizer.model and
# meta.json whose ids decode back to the corpus byte for byte; ringattn
# trains on them (data.source = tokens, model.vocab = the tokenizer's) with
# the same losses at P = 1 and 2; eval reads the held-out file; generate
# continues a prompt encoded by detokenize.py --encode (--prompt-tokens) and
# prints ids, the same on 1 and 2 ranks, which detokenize.py turns back into
# text that starts with the prompt; --format npy writes the same ids.
# Skipped (exit 77) without Debian's python3-sentencepiece and python3-numpy
# (scripts/install-deps.sh --tests installs them).
set -u
SRC=$3
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)
if ! "$PY" -c 'import sentencepiece, numpy' 2>/dev/null; then
    echo "skip: $PY cannot import sentencepiece and numpy (apt-get install -y python3-sentencepiece python3-numpy)"
    exit 77
fi
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
TMO=${RINGATTN_TEST_TIMEOUT:-120}
TOK="$SRC/scripts/data/tokenize_corpus.py"
DETOK="$SRC/scripts/data/detokenize.py"
VOCAB=384

# ---- tokenise the corpus ----------------------------------------------------------------------
LAST="tokenize_corpus.py --input $SRC/docs/*.md --vocab-size $VOCAB --out tk"
timeout 300 "$PY" "$TOK" --input "$SRC"/docs/*.md --vocab-size $VOCAB --out tk --val-fraction 0.02 \
    --threads 1 >out 2>err
why=$(status $?)
for f in train.bin val.bin tokenizer.model meta.json; do [ -s "tk/$f" ] || why+="no tk/$f; "; done
why+=$(partials)
report "tokenize_corpus.py writes train.bin, val.bin, tokenizer.model, meta.json" "$why"
LAST="meta.json and the ids against the corpus"
why=$("$PY" - "$SRC" tk <<'EOF'
import glob, json, os, sys
import numpy as np, sentencepiece as spm
src, d = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(d, "meta.json")))
tr = np.fromfile(os.path.join(d, "train.bin"), dtype="<u2")
va = np.fromfile(os.path.join(d, "val.bin"), dtype="<u2")
sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
text = "".join(open(f, encoding="utf-8").read() for f in sorted(glob.glob(os.path.join(src, "docs", "*.md"))))
bad = []
if (m["vocab_size"], m["dtype"], m["train_tokens"], m["val_tokens"]) != (384, "uint16", len(tr), len(va)):
    bad.append("meta.json %s disagrees with the files (%d, %d ids)" % (m, len(tr), len(va)))
if sp.vocab_size() != 384 or max(tr.max(), va.max()) >= 384:
    bad.append("ids outside the vocabulary")
if not 0 < len(va) < len(tr):
    bad.append("split %d / %d" % (len(tr), len(va)))
if sp.decode(np.concatenate([tr, va]).tolist()) != text:
    bad.append("train.bin + val.bin do not decode to docs/*.md")
if m["ringattn"]["data.dtype"] != "uint16" or m["ringattn"]["model.vocab"] != 384:
    bad.append("the suggested keys %s" % m["ringattn"])
print("; ".join(bad))
EOF
)
report "meta.json counts the files, and train.bin + val.bin decode to docs/*.md byte for byte" "$why"
grep -q 'train with: --set data.source=tokens --set data.dtype=uint16 --set model.vocab=384' out ||
    bad "tokenize_corpus.py prints the keys to train with: $(cat out)"

# ---- train on the ring: the same losses at P = 1 and 2 -------------------------------------------
tok=(--config "$SRC/configs/tiny.ini" --set data.source=tokens --set data.dtype=uint16 --set model.vocab=$VOCAB
     --set data.path=tk/train.bin --set data.val_path=tk/val.bin --set data.seq_len=64 --set train.steps=6
     --set train.warmup=0 --set train.eval_every=0 --set train.eval_batches=1)
losses() { grep -o '"loss": [^,]*' "$1" | awk '{print $2}'; }
same_losses() {
    paste <(losses "$1") <(losses "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > worst) worst = r }
        END { if (n != 6) { print "expected 6 steps, got " n; exit 1 }
              if (worst > 1e-4) { printf "worst relative difference %.3e > 1e-4\n", worst; exit 1 } }'
}
for P in 1 2; do
    mpi "$P" train "${tok[@]}" --metrics "p$P.jsonl" --checkpoint-dir "ck$P"
    report "train P=$P on the tokenizer's ids (model.vocab = $VOCAB)" "$(status $?)"
done
report "the 6 losses at P=2 equal P=1 within 1e-4 relative" "$(same_losses p2.jsonl p1.jsonl)"

# ---- eval ------------------------------------------------------------------------------------------
mpi 2 eval --checkpoint ck1
why=$(status $?)
grep -q 'on held-out tokens | loss [0-9.]* | bits/token' out || why+="$(cat out)"
report "eval on the held-out val.bin" "$why"
mpi 2 eval --checkpoint ck1 --data tk/val.bin
why=$(status $?)
n=$(( ($(stat -c %s tk/val.bin) / 2 - 1) / 64 * 64 ))
grep -q "on tk/val.bin | loss .* | $n targets" out || why+="expected $n targets: $(cat out)"
report "eval --data tk/val.bin: every window once ($n targets)" "$why"

# ---- generate ids, then text -----------------------------------------------------------------------
printf 'The ring' >prompt.txt
"$PY" "$DETOK" --tokenizer tk/tokenizer.model --encode prompt.txt >prompt.ids 2>err
report "detokenize.py --encode: a prompt as ids" "$(grep -qE '^[0-9]+( [0-9]+)*$' prompt.ids || cat prompt.ids err)"
gen=(generate --checkpoint ck1 --tokens 12 --temperature 0)
mpi 1 "${gen[@]}" --prompt-tokens prompt.ids
why=$(status $?)
g1=$(cat out)
echo "$g1" | grep -qE "^$(cat prompt.ids)( [0-9]+){12}$" || why+="expected the prompt's ids and 12 more: '$g1'; "
report "generate --prompt-tokens FILE prints the ids (vocab $VOCAB)" "$why"
mpi 2 "${gen[@]}" --prompt-tokens "$(tr ' ' ',' <prompt.ids)"
report "generate at P=2 (a LIST) equals P=1" "$([ -n "$g1" ] && [ "$(cat out)" = "$g1" ] || echo "'$(cat out)' vs '$g1'")"
"$PY" "$DETOK" --tokenizer tk/tokenizer.model <out >text.txt 2>err
why=$([ $? -eq 0 ] || cat err)
case $(cat text.txt) in "The ring"*) ;; *) why+="'$(cat text.txt)' does not start with the prompt" ;; esac
report "detokenize.py turns generate's ids into text ($(head -c 60 text.txt | tr '\n' ' '))" "$why"
echo "1 2 $VOCAB" | "$PY" "$DETOK" --tokenizer tk/tokenizer.model >/dev/null 2>err
report "detokenize.py refuses an id outside the vocabulary" \
    "$(grep -q "token $VOCAB (item 2) is outside the tokenizer's vocabulary" err || cat err)"

# ---- --format npy: the same ids ----------------------------------------------------------------------
timeout 300 "$PY" "$TOK" --input "$SRC"/docs/*.md --vocab-size $VOCAB --out tknpy --val-fraction 0.02 \
    --format npy --threads 1 >out 2>err
why=$(status $?)
[ -z "$why" ] && why=$("$PY" -c '
import numpy as np, sys
a = np.fromfile("tk/train.bin", dtype="<u2"); b = np.load("tknpy/train.npy")
print("" if b.dtype == np.uint16 and np.array_equal(a, b) else "train.npy (%s, %d) differs from train.bin" % (b.dtype, len(b)))')
report "--format npy writes the ids of train.bin as a 1-D uint16 .npy" "$why"
mpi 2 train "${tok[@]}" --set data.dtype=auto --set data.path=tknpy/train.npy --set data.val_path=tknpy/val.npy \
    --metrics npy.jsonl --checkpoint-dir cknpy
why=$(status $?)
[ -z "$why" ] && why=$(same_losses npy.jsonl p1.jsonl)
report "training on the .npy files gives the losses of the .bin files" "$why"

finish
