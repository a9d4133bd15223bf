#!/usr/bin/env bash
# test_tokens.sh RINGATTN MPIRUN SOURCE_ROOT - the SentencePiece pipeline of
# scripts/data/ end to end: tokenize_corpus.py trains a BPE tokenizer on
# docs/*.md and writes train.bin, val.bin (uint16), tokenizer.model and
# meta.json whose ids decode back to the corpus byte for byte; ringattn
# trains on them (data.source = tokens, model.vocab = the tokenizer's) with
# the same losses at P = 1 and 2; eval reads the held-out file; generate
# continues a prompt encoded by detokenize.py --encode (--prompt-tokens) and
# prints ids, the same on 1 and 2 ranks, which detokenize.py turns back into
# text that starts with the prompt; --format npy writes the same ids. Then
# the scripts' refusals: tokenize_corpus.py never writes over an input or
# someone else's files, runs all or nothing (a failed rerun leaves the
# earlier output as it was, no .tmp, no empty --out), and detokenize.py
# turns a bad --tokenizer, unreadable, non-UTF-8, torn or non-regular
# files and non-ASCII ids into one-line errors (never a traceback or abort).
# Also: one run at a time per --out (a flock on it), no meta.json over a
# mixed set when a rename fails (strace injects it), a killed run's
# temporaries removed by the next, a file reached twice read once.
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
    "$(grep -q "token $VOCAB (item 3) is outside the tokenizer's vocabulary" err || cat err)"

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

# ---- refusals: one line "SCRIPT: ...", a non-zero status, no traceback, nothing destroyed ----------
# refused RC SCRIPT PATTERN: why the run whose status is RC (stderr in err)
# was not a one-line refusal by SCRIPT matching PATTERN, or nothing
refused() {
    local why=''
    if [ "$1" -eq 0 ]; then why+="exit status 0, expected a refusal; "
    elif [ "$1" -ge 124 ]; then why+="exit status $1 (hang, crash or signal); "
    fi
    grep -q Traceback err && why+="a Python traceback; "
    [ "$(wc -l <err)" -eq 1 ] && grep -qE "^$2: .*$3" err || why+="expected one line '$2: ...$3...': $(head -c 300 err | tr '\n' ' '); "
    echo "$why"
}
tc() { LAST="tokenize_corpus.py $*"; timeout "$TMO" "$PY" "$TOK" "$@" --threads 1 >out 2>err; }
dt() { LAST="detokenize.py $*"; timeout 10 "$PY" "$DETOK" "$@" >out 2>err; }
mkdir c1
for i in $(seq 30); do echo "The ring passes keys and values around, $i ranks at a time."; done >c1/a.txt
cp c1/a.txt c1/b.txt
ln -s c1 c1link

# 1: --out an input (directly, through a symlink, or a directory holding one); --out inside one is fine
why=
for io in "c1 c1" "c1 c1link" "c1 ." "c1/a.txt c1/a.txt"; do
    tc --input ${io% *} --vocab-size 300 --out ${io#* }
    w=$(refused $? tokenize_corpus.py "(is|holds) the input")
    [ -n "$w" ] && why+="--input ${io% *} --out ${io#* }: $w"
done
[ "$(ls c1)" = "$(printf 'a.txt\nb.txt')" ] || why+="c1 now holds $(ls c1 | tr '\n' ' '); "
tc --input c1 --vocab-size 300 --out c1/tk
why+=$(status $?)
[ -s c1/tk/val.bin ] && [ -s c1/tk/meta.json ] || why+="--out c1/tk (inside the input) wrote no val.bin, meta.json; "
why+=$(partials)
report "tokenize_corpus.py refuses an --out that is or holds an input, takes one inside an input" "$why"

# 2: a failed rerun (val-fraction, too big a vocabulary) changes nothing; --val-fraction 0 drops val.bin
# (c1 holds c1/tk by now: the runs from here on read c1/a.txt alone)
tc --input c1/a.txt --vocab-size 300 --out t2
why=$(status $?)
before=$(sums t2/*)
tc --input c1/a.txt --vocab-size 320 --out t2 --val-fraction 0.000001
why+=$(refused $? tokenize_corpus.py "leaves 0 held out")
tc --input c1/a.txt --vocab-size 5000 --out t2
why+=$(refused $? tokenize_corpus.py "could not train")
[ "$(sums t2/*)" = "$before" ] || why+="t2 changed: $(ls t2 | tr '\n' ' '); "
why+=$(partials)
report "a failed rerun leaves the earlier output as it was (no .tmp)" "$why"
tc --input c1/a.txt --vocab-size 320 --out t2 --val-fraction 0
why=$(status $?)
[ -e t2/val.bin ] && why+="the earlier val.bin is still there; "
grep -q '"val": null' t2/meta.json || why+="meta.json has a val file; "
[ "$(ls t2 | tr '\n' ' ')" = "meta.json tokenizer.model tokenizer.vocab train.bin " ] ||
    why+="t2 holds $(ls t2 | tr '\n' ' '); "
report "a rerun with --val-fraction 0 removes the earlier run's val.bin" "$why"

# 3: the output names in a directory the script did not fill are someone else's
mkdir u1 u2
echo mine >u1/train.bin
echo '{"mine": true}' >u2/meta.json
why=
tc --input c1/a.txt --vocab-size 300 --out u1
why+=$(refused $? tokenize_corpus.py "u1/train.bin")
tc --input c1/a.txt --vocab-size 300 --out u2
why+=$(refused $? tokenize_corpus.py "u2/meta.json")
[ "$(cat u1/train.bin)" = mine ] && [ "$(cat u2/meta.json)" = '{"mine": true}' ] || why+="a user's file was replaced; "
[ "$(ls u1 u2 | tr '\n' ' ')" = "u1: train.bin  u2: meta.json " ] || why+="left $(ls u1 u2 | tr '\n' ' '); "
report "tokenize_corpus.py refuses to replace train.bin, meta.json it did not write" "$why"

# 4: a bad --out is one line; a failed run leaves no --out directory behind
echo x >afile
why=
tc --input c1/a.txt --vocab-size 300 --out afile
why+=$(refused $? tokenize_corpus.py "afile: exists and is not a directory")
tc --input c1/a.txt --vocab-size 300 --out afile/sub
why+=$(refused $? tokenize_corpus.py "afile/sub: cannot create")
mkdir empty
mkfifo fifo
for args in "nothere --vocab-size 300" "empty --vocab-size 300" "fifo --vocab-size 300" "c1/a.txt --vocab-size 5000"; do
    tc --input $args --out n4/deep
    [ $? -ne 0 ] || why+="$args: exit status 0; "
    [ -e n4 ] && { why+="$args left the directory n4; "; rm -rf n4; }
done
report "tokenize_corpus.py: --out a file is one line, a failed run creates no --out" "$why"

# 5: --tokenizer not a regular file (SentencePiece aborts on a directory, blocks on a FIFO)
why=
for m in . fifo; do
    dt --tokenizer "$m" </dev/null
    w=$(refused $? detokenize.py "--tokenizer $m: not a regular file")
    [ -n "$w" ] && why+="--tokenizer $m: $w"
done
report "detokenize.py refuses a --tokenizer that is a directory or a FIFO" "$why"

# 6: files it cannot read: one line naming the file
M=(--tokenizer tk/tokenizer.model)
printf '12 \xff\n' >latin1.txt
"$PY" -c 'import numpy as np; np.save("obj.npy", np.array([1, None], dtype=object), allow_pickle=True)'
head -c 40 tknpy/val.npy >torn.npy
why=
for args in "latin1.txt" "--encode latin1.txt" "missing.txt" "--dtype uint16 missing.bin" "tk" "obj.npy" \
    "torn.npy" "--dtype uint16 fifo"; do
    dt "${M[@]}" $args </dev/null
    w=$(refused $? detokenize.py "${args##* }: ")
    [ -n "$w" ] && why+="$args: $w"
done
report "detokenize.py: non-UTF-8, missing, directory, pickled, torn .npy and FIFO files are one-line errors" "$why"

# 7: --dtype reads whole ids from a regular file, never standard input
head -c 101 tk/train.bin >odd.bin
head -c 102 tk/train.bin >odd4.bin
why=
dt "${M[@]}" --dtype uint16 odd.bin </dev/null
why+=$(refused $? detokenize.py "odd.bin: 101 bytes")
dt "${M[@]}" --dtype uint32 odd4.bin </dev/null
why+=$(refused $? detokenize.py "odd4.bin: 102 bytes")
dt "${M[@]}" --dtype uint16 /dev/urandom </dev/null
why+=$(refused $? detokenize.py "/dev/urandom: not a regular file")
echo 5 6 | dt "${M[@]}" --dtype uint16
why+=$(refused $? detokenize.py "--dtype .*standard input")
report "detokenize.py --dtype refuses a torn file, a device and standard input" "$why"

# 8: ids are ASCII digits ('١٢' is 12 to int())
printf '5 \xd9\xa1\xd9\xa2\n' >arabic.txt
dt "${M[@]}" arabic.txt </dev/null
report "detokenize.py refuses ids that are not ASCII digits" "$(refused $? detokenize.py "item 2\) is not a token id")"

# 9: one run at a time per --out: a run holding the lock on t2 (here: this shell, flock on the directory)
# refuses a second at once, which writes nothing there
why=
before=$(ls -A t2 | tr '\n' ' ')$(sums t2/*)
exec 9<t2
if flock -n 9; then
    tc --input c1/a.txt --vocab-size 300 --out t2
    why+=$(refused $? tokenize_corpus.py "--out t2: another tokenize_corpus.py run is writing there")
else
    why+="could not take the lock on t2 for the test; "
fi
exec 9<&-
[ "$(ls -A t2 | tr '\n' ' ')$(sums t2/*)" = "$before" ] || why+="t2 changed: $(ls -A t2 | tr '\n' ' '); "
report "tokenize_corpus.py refuses an --out another run holds (flock on the directory), writes nothing" "$why"

# 10: a failure between the renames (strace fails the third, train.bin) leaves no meta.json over a mixed
# set, and a rerun completes it
INJ=(strace -f -o /dev/null -e trace=rename -e inject=rename:error=EIO:when=3)
# can strace fail the third of three renames (c -> c2) here?
"${INJ[@]}" "$PY" -c 'import os; [open(n, "w").close() for n in "abc"]; [os.rename(n, n + "2") for n in "abc"]' \
    >/dev/null 2>&1
inj=$?
[ $inj -ne 0 ] && [ -e c ] && [ ! -e c2 ] && inj=ok
rm -f a a2 b b2 c c2
if [ "$inj" != ok ]; then
    echo "skip: strace cannot fail a rename (-e inject): no check of a failure during the renames"
else
    why=
    LAST="strace ... tokenize_corpus.py --input c1/b.txt --vocab-size 300 --out t2"
    timeout "$TMO" "${INJ[@]}" "$PY" "$TOK" --input c1/b.txt --vocab-size 300 --out t2 --threads 1 >out 2>err
    why+=$(refused $? tokenize_corpus.py "--out t2 is incomplete \(no meta.json\): run again")
    [ -e t2/meta.json ] && why+="t2/meta.json vouches for a mixed set; "
    why+=$(partials)
    tc --input c1/b.txt --vocab-size 300 --out t2
    w=$(status $?)
    [ -n "$w" ] && why+="the rerun: $w$(head -c 200 err); "
    grep -q '"documents": 1' t2/meta.json 2>/dev/null || why+="the rerun wrote no meta.json; "
    [ "$(ls -A t2 | tr '\n' ' ')" = "meta.json tokenizer.model tokenizer.vocab train.bin val.bin " ] ||
        why+="t2 holds $(ls -A t2 | tr '\n' ' '); "
    report "a failed rename leaves --out without meta.json ('incomplete: run again'), and a rerun completes it" "$why"
fi

# 11: a killed run's temporaries (the corpus copy, .tmp outputs) go with the next run into that --out
mkdir t3
for n in .tokenize_corpus-corpus-k9.txt train.bin.tmp meta.json.tmp tokenizer.tmp.model tokenizer.tmp.vocab; do
    cp c1/a.txt "t3/$n"
done
tc --input c1/a.txt --vocab-size 300 --out t3
why=$(status $?)
[ "$(ls -A t3 | tr '\n' ' ')" = "meta.json tokenizer.model tokenizer.vocab train.bin val.bin " ] ||
    why+="t3 holds $(ls -A t3 | tr '\n' ' '); "
report "tokenize_corpus.py removes the corpus copy and .tmp files a killed run left in --out" "$why"

# 12: standard input that is not UTF-8 is one line too; items count from 1
why=
printf 'The \xff ring' | dt "${M[@]}" --encode
why+=$(refused $? detokenize.py "standard input: not UTF-8 text")
echo 1 -2 4 | dt "${M[@]}"
why+=$(refused $? detokenize.py "token -2 \(item 2\)")
report "detokenize.py --encode: non-UTF-8 standard input is one line; items count from 1" "$why"

# 13: a file reached twice (a directory and a symlink to it, a file named twice) is one document
mkdir c3
cp c1/a.txt c3/a.txt
ln -s c3 c3link
tc --input c3 c3link c3/a.txt --vocab-size 300 --out t4
why=$(status $?)
grep -q '"documents": 1,' t4/meta.json 2>/dev/null || why+="meta.json: $(grep documents t4/meta.json); "
grep -q 'skipping 2 duplicate' err || why+="no word of the 2 duplicates skipped: $(cat err); "
report "tokenize_corpus.py reads a file reached twice once, and says so" "$why"

# 14: a refused --val-fraction is quoted as given (%g would print 0.9999999 as 1)
tc --input c1/a.txt --vocab-size 300 --out t5 --val-fraction 0.9999999
why=$(refused $? tokenize_corpus.py "--val-fraction 0\.9999999 ")
[ -e t5 ] && why+="left t5; "
report "tokenize_corpus.py quotes the --val-fraction it refuses as given" "$why"

finish
