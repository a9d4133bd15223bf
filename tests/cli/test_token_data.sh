#!/usr/bin/env bash
# test_token_data.sh RINGATTN MPIRUN CONFIGS - data.source = tokens end to
# end, on token files written here with perl (no tokenizer needed; the
# SentencePiece pipeline is test_tokens.sh): the same ids as flat uint16,
# flat uint32, .npy (<u4) and an llm.c shard train to the same losses, at
# P = 1 and 2 alike; data.val_path is the held-out split; eval --data on a
# token file counts every window once; an id >= model.vocab, a truncated
# file, a FIFO, val_path = path and a flat file without data.dtype are
# refused on every rank with one message naming the file (and the element);
# generate takes --prompt-tokens as a list, a text file, a .npy or a flat
# file, prints ids for a vocabulary above 256 (the same on 1 and 2 ranks),
# with uint32 ids up to model.vocab = 262144 too,
# refuses ids >= vocab naming the position, and keeps text for bytes.
set -u
CONFIGS=$3
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
TMO=${RINGATTN_TEST_TIMEOUT:-120}

V=1000
NTOK=3000
# the ids of every file: a fixed pattern below V
IDS='map { ($_ * 7919 + int($_ / 3)) % '$V' } 0 .. '$((NTOK - 1))
perl -e "print pack('v*', $IDS)" >tok16.bin
perl -e "print pack('V*', $IDS)" >tok32.bin
# a .npy version 1.0 of <u4, 128-byte header
perl -e '$d = "{\x27descr\x27: \x27<u4\x27, \x27fortran_order\x27: False, \x27shape\x27: ('$NTOK',), }";
         $h = $d . (" " x (117 - length $d)) . "\n";
         print "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("V*", '"$IDS"')' >tok.npy
# an llm.c shard (GPT-2 kind: magic 20240520, version 1, uint16 ids)
perl -e "print pack('V256', 20240520, 1, $NTOK, (0) x 253), pack('v*', $IDS)" >shard_000000.bin
# held-out ids of their own
perl -e "print pack('v*', map { (\$_ * 31 + 5) % $V } 0 .. 399)" >val16.bin

TINY="$CONFIGS/tiny.ini"
tok=(--config "$TINY" --set data.source=tokens --set model.vocab=$V --set train.steps=4 --set train.warmup=0
     --set train.eval_every=0 --set train.eval_batches=1)

losses() { grep -o '"loss": [^,]*' "$1" | awk '{print $2}'; }
# same_losses A B: the 4 steps' losses of two metrics files within 1e-4 relative
same_losses() {
    paste <(losses "$1") <(losses "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > worst) worst = r }
        END { if (n != 4) { print "expected 4 steps, got " n; exit 1 }
              if (worst > 1e-4) { printf "worst relative difference %.3e > 1e-4\n", worst; exit 1 } }'
}
# train_ok DESC N METRICS CKDIR ARGS...: train succeeds and writes METRICS
train_ok() {
    local desc=$1 n=$2 m=$3 ck=$4 why
    shift 4
    mpi "$n" train "${tok[@]}" --metrics "$m" --checkpoint-dir "$ck" "$@"
    why=$(status $?)
    [ -z "$why" ] && [ "$(losses "$m" | wc -l)" -ne 4 ] && why="no 4 losses in $m; "
    report "$desc" "$why"
}

# ---- every form of the same ids trains the same, at P = 1 and 2 -------------------------
train_ok "train on flat uint16 ids P=1" 1 u16p1.jsonl ck16 --set data.path=tok16.bin --set data.dtype=uint16
grep -q '| data tok16.bin' out || bad "the start line names the data file: $(head -1 out)"
mpi 1 train "${tok[@]}" --set train.eval_every=2 --set data.path=tok16.bin --set data.dtype=uint16 --checkpoint-dir ckbt
report "train's evaluation of tokens says bits/token, as eval does (not bpb)" \
    "$(status $?)$(grep -q '^eval  step 2 | loss [0-9.]* | bits/token [0-9.]* |' out || grep -m1 '^eval ' out)"
rm -rf ckbt
for form in "u16:tok16.bin:uint16" "u32:tok32.bin:uint32" "npy:tok.npy:auto" "npy2:tok.npy:npy" \
            "llmc:shard_000000.bin:auto" "llmc2:shard_000000.bin:llmc"; do
    IFS=: read -r tag file dtype <<<"$form"
    train_ok "train on $file (data.dtype = $dtype) P=2" 2 "${tag}p2.jsonl" "ck$tag" \
        --set data.path="$file" --set data.dtype="$dtype"
    report "$file (data.dtype = $dtype) at P=2: the losses of flat uint16 at P=1" \
        "$(same_losses "${tag}p2.jsonl" u16p1.jsonl)"
done

# ---- a vocabulary above uint16: uint32 ids up to 262143 ------------------------------------------
BIGV=262144
perl -e "print pack('V*', map { (\$_ * 104729) % $BIGV } 0 .. 999), pack('V', $((BIGV - 1)))" >big32.bin
big=(--config "$TINY" --set data.source=tokens --set data.dtype=uint32 --set model.vocab=$BIGV --set model.dim=16
     --set model.heads=1 --set data.path=big32.bin --set train.steps=2 --set train.warmup=0 --set train.eval_every=0
     --set train.eval_batches=1 --set data.val_fraction=0.2)
for P in 1 2; do
    mpi "$P" train "${big[@]}" --metrics "big$P.jsonl" --checkpoint-dir "ckbig$P"
    report "train on uint32 ids with model.vocab = $BIGV, P=$P" "$(status $?)"
done
report "model.vocab = $BIGV: P=2 equals P=1" "$(paste <(losses big2.jsonl) <(losses big1.jsonl) | awk '
    { n++; d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * $2) w = w $1 " vs " $2 "; " }
    END { if (n != 2) print "expected 2 losses, got " n; else printf "%s", w }')"
mpi 2 generate --checkpoint ckbig1 --prompt-tokens "$((BIGV - 1)),7" --tokens 3 --temperature 0
why=$(status $?)
grep -qE "^$((BIGV - 1)) 7( [0-9]+){3}$" out || why+="'$(cat out)'"
report "generate with model.vocab = $BIGV: the largest id as a prompt, ids out" "$why"
fails "generate: id $BIGV refused" 1 "token $BIGV at position 0 is outside the model's vocabulary \[0, $BIGV\)" -- \
    generate --checkpoint ckbig1 --prompt-tokens "$BIGV" --tokens 1

# ---- data.val_path ---------------------------------------------------------------------------
train_ok "train with data.val_path P=2" 2 valp2.jsonl ckval --set data.path=tok16.bin --set data.dtype=uint16 \
    --set data.val_path=val16.bin --set train.eval_batches=2
train_ok "train with data.val_path P=1" 1 valp1.jsonl ckval1 --set data.path=tok16.bin --set data.dtype=uint16 \
    --set data.val_path=val16.bin --set train.eval_batches=2
report "data.val_path: P=2 equals P=1" "$(same_losses valp2.jsonl valp1.jsonl)"
e1=$(grep -o '"eval_loss": [^,]*' valp1.jsonl | awk '{print $2}')
e2=$(grep -o '"eval_loss": [^,]*' valp2.jsonl | awk '{print $2}')
report "data.val_path: the held-out loss at P=2 equals P=1 ($e1) within 1e-4" \
    "$(awk -v a="$e1" -v b="$e2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (a == "" || b == "" || d > 1e-4 * a) print b " vs " a }')"
mpi 2 eval --checkpoint ckval
why=$(status $?)
grep -q 'on held-out tokens | loss .* | bits/token .* | 256 targets' out || why+="$(cat out)"
report "eval on the checkpoint's data.val_path: held-out tokens, bits per token" "$why"

# ---- eval --data on token files: every window once ---------------------------------------------
# 3000 ids at seq_len 32: 93 windows of 32 targets
for f in tok16.bin tok.npy shard_000000.bin; do
    set_dtype=()
    [ "$f" = tok16.bin ] || set_dtype=(--set data.dtype=auto)
    mpi 2 eval --checkpoint ck16 --data "$f" "${set_dtype[@]+"${set_dtype[@]}"}"
    why=$(status $?)
    grep -q "on $f | loss .* | 2976 targets" out || why+="expected 2976 targets: $(cat out)"
    report "eval --data $f: 93 windows, 2976 targets" "$why"
done
l16=$(sed -n 's/.*| loss \([0-9.]*\) .*/\1/p' out)
mpi 2 eval --checkpoint ck16 --data tok32.bin --set data.dtype=uint32
report "eval --data as uint32 equals the llm.c shard ($l16)" \
    "$(grep -q "| loss $l16 |" out || echo "$(cat out err)")"
# --set data.source=file on a token checkpoint reads bytes: the checkpoint's data.dtype =
# uint16 does not apply (it said "data.dtype = uint16 is for data.source = tokens", and
# read --data FILE as uint16 ids, unless data.dtype=auto was given too)
perl -e 'print map { chr(97 + ($_ * 7) % 26) } 0 .. 1999' >bytes.txt
mpi 2 eval --checkpoint ck16 --set data.source=file --set data.path=bytes.txt
why=$(status $?)
grep -q "on held-out bytes | loss .* | bpb " out || why+="expected held-out bytes: $(cat out err)"
report "eval --set data.source=file on a uint16 checkpoint: bytes, not its data.dtype" "$why"
mpi 2 eval --checkpoint ck16 --set data.source=file --data bytes.txt
why=$(status $?)
grep -q "on bytes.txt | loss .* | bpb .* | 1984 targets" out || why+="expected 1984 byte targets: $(cat out err)"
report "eval --data FILE --set data.source=file on a uint16 checkpoint: FILE's bytes" "$why"
# and a FILE with the llm.c magic too: the user said bytes (it was read as token ids)
mpi 2 eval --checkpoint ck16 --set data.source=file --data shard_000000.bin
why=$(status $?)
grep -q "on shard_000000.bin | loss .* | bpb " out || why+="expected its bytes: $(cat out err)"
report "eval --data SHARD --set data.source=file: the shard's bytes, not its ids" "$why"
# ... and a data.dtype beside it contradicts it (it was dropped unseen, exit 0)
fails "eval --data with data.source=file and data.dtype=uint16: refused" 2 \
    "eval: --set data.dtype=uint16 contradicts --set data.source=file" -- \
    eval --checkpoint ck16 --set data.source=file --set data.dtype=uint16 --data bytes.txt

# ---- refusals, on every rank, reported once ---------------------------------------------------
# 80 ids, half held out: every training window (offset 0..7, 33 ids) covers element 20
perl -e "@a = ($IDS)[0 .. 79]; \$a[20] = 4321; print pack('v*', @a)" >bad.bin
fails "an id >= model.vocab in training: named by the command, file and element" 2 \
    "error: train: data.path bad.bin: token 4321 at element 20 \(uint16, byte offset 40\)" \
    "outside the vocabulary \[0, 1000\)" -- \
    train "${tok[@]}" --set data.path=bad.bin --set data.dtype=uint16 --set data.val_fraction=0.5 \
    --checkpoint-dir ckbad
fails "an id >= model.vocab in eval --data: named by file (as --data) and element" 2 \
    "eval: --data bad.bin: token 4321 at element 20" -- eval --checkpoint ck16 --data bad.bin
head -c 3001 tok16.bin >odd.bin
fails "a truncated uint16 file" 2 "data.path odd.bin: 3001 bytes is not a whole number of uint16" -- \
    train "${tok[@]}" --set data.path=odd.bin --set data.dtype=uint16 --checkpoint-dir ckodd
head -c 5000 shard_000000.bin >short_shard.bin
fails "a truncated llm.c shard" 2 "says 3000 tokens" "the file has 5000 bytes: truncated" -- \
    train "${tok[@]}" --set data.path=short_shard.bin --checkpoint-dir ckshort
fails "a flat file without data.dtype" 2 "neither a .npy file nor an llm.c shard" "data.dtype = uint16" -- \
    train "${tok[@]}" --set data.path=tok16.bin --checkpoint-dir ckauto
# a .npy of another dtype: the token types are listed, not npy's floats ('<i2' said
# "supported: float32 ...", which a token file is not)
perl -e '$h = "{\x27descr\x27: \x27<i2\x27, \x27fortran_order\x27: False, \x27shape\x27: (3000,), }";
         $h .= " " x (117 - length $h) . "\n";
         print "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("v*", 1 .. 3000)' >i2.npy
fails "a .npy of int16 names the token ids' types" 2 "i2.npy: unsupported dtype '<i2'; token ids are uint16, uint32, int32 or int64" -- \
    train "${tok[@]}" --set data.path=i2.npy --checkpoint-dir cki2
grep -q float32 err && report "... and not npy's float32" "listed: $(grep -m1 error err)"
: >empty.bin
fails "an empty token file" 2 "data.path empty.bin: is empty" -- \
    train "${tok[@]}" --set data.path=empty.bin --set data.dtype=uint16 --checkpoint-dir ckempty
mkfifo fifo.bin
fails "a FIFO as data.val_path: refused, not waited on" 2 "data.val_path fifo.bin: is a FIFO" -- \
    train "${tok[@]}" --set data.path=tok16.bin --set data.dtype=uint16 --set data.val_path=fifo.bin \
    --checkpoint-dir ckfifo
# a checkpoint as data.val_path (of another run: its own are refused as outputs): named
# before step 1, not at the final evaluation as an id past the vocabulary
fails "a checkpoint as data.val_path: refused at once" 2 "data.val_path ckval/last.ckpt: is a ringattn checkpoint, not token ids" -- \
    train "${tok[@]}" --set data.path=tok16.bin --set data.dtype=uint16 --set data.val_path=ckval/last.ckpt \
    --set train.eval_every=0 --checkpoint-dir ckvck
ln tok16.bin same16.bin
fails "data.val_path a hard link to data.path" 2 "data.val_path same16.bin is the same file as data.path" -- \
    train "${tok[@]}" --set data.path=tok16.bin --set data.dtype=uint16 --set data.val_path=same16.bin \
    --checkpoint-dir cksame
fails "data.val_path = data.path" 2 "data.val_path = tok16.bin is data.path" -- \
    train "${tok[@]}" --set data.path=tok16.bin --set data.dtype=uint16 --set data.val_path=tok16.bin \
    --checkpoint-dir cksame2
fails "data.dtype with data.source = file" 1 "data.dtype = uint16 is for data.source = tokens" -- \
    train --config "$TINY" --set data.source=file --set data.path=tok16.bin --set data.dtype=uint16
fails "metrics onto data.val_path" 1 "--metrics val16.bin is the same file as the input data.val_path val16.bin" -- \
    train "${tok[@]}" --set data.path=tok16.bin --set data.dtype=uint16 --set data.val_path=val16.bin \
    --metrics val16.bin --checkpoint-dir ckm

# ---- generate with token ids ----------------------------------------------------------------------
gen=(generate --checkpoint ck16 --tokens 6 --temperature 0)
mpi 1 "${gen[@]}" --prompt-tokens "5,17 300,999"
why=$(status $?)
g1=$(cat out)
echo "$g1" | grep -qE '^5 17 300 999( [0-9]+){6}$' || why+="expected the 4 prompt ids and 6 more on one line: '$g1'; "
report "generate --prompt-tokens LIST prints ids (vocab 1000)" "$why"
mpi 2 "${gen[@]}" --prompt-tokens "5,17 300,999"
report "generate --prompt-tokens at P=2 equals P=1" "$([ -n "$g1" ] && [ "$(cat out)" = "$g1" ] || echo "'$(cat out)' vs '$g1'")"
printf '5, 17\n300\t999\n' >prompt.txt
perl -e '$d = "{\x27descr\x27: \x27<i8\x27, \x27fortran_order\x27: False, \x27shape\x27: (4,), }";
         $h = $d . (" " x (117 - length $d)) . "\n";
         print "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("q<*", 5, 17, 300, 999)' >prompt.npy
perl -e 'print pack("v*", 5, 17, 300, 999)' >prompt.bin
for p in "prompt.txt" "prompt.npy" "prompt.bin --prompt-dtype uint16"; do
    # shellcheck disable=SC2086
    mpi 2 "${gen[@]}" --prompt-tokens $p
    report "generate --prompt-tokens $p: the ids of the list" \
        "$([ -n "$g1" ] && [ "$(cat out)" = "$g1" ] || echo "'$(cat out) $(cat err)'")"
done
mpi 2 "${gen[@]}" --prompt-tokens "5,17 300,999" --out gen.txt
report "generate --out with ids" \
    "$([ -n "$g1" ] && [ "$(cat gen.txt 2>/dev/null)" = "$g1" ] && [ ! -s out ] || echo "'$(cat gen.txt)'")"
fails "generate: an id >= vocab in a list, named by position" 2 \
    "--prompt-tokens: token 1000 at position 2 is outside the model's vocabulary \[0, 1000\)" -- \
    "${gen[@]}" --prompt-tokens "1 2 1000"
# an id past 64 bits: named whole, not wrapped into the vocabulary
fails "generate: a 20-digit id in a list, named whole" 2 \
    "--prompt-tokens: token 99999999999999999999 at position 1 is outside the model's vocabulary \[0, 1000\)" -- \
    "${gen[@]}" --prompt-tokens "1,99999999999999999999"
perl -e 'print pack("v*", 1, 2, 3, 60000)' >badprompt.bin
fails "generate: an id >= vocab in a file, named by element" 2 \
    "--prompt-tokens badprompt.bin: token 60000 at element 3" -- \
    "${gen[@]}" --prompt-tokens badprompt.bin --prompt-dtype uint16
fails "generate: a binary file without --prompt-dtype" 1 "for a flat binary file give --prompt-dtype" -- \
    "${gen[@]}" --prompt-tokens badprompt.bin
fails "generate: --output-format text with vocab 1000" 1 "not a byte vocabulary" -- \
    "${gen[@]}" --prompt-tokens 1 --output-format text
fails "generate: two prompts" 1 "exactly one of --prompt, --prompt-file and --prompt-tokens" -- \
    "${gen[@]}" --prompt-tokens 1 --prompt A
# an empty item in a list (a lost id?) refused; a trailing comma is fine
# a LIST with a sign, or in hex, that is no file either: said so (it was "cannot open: No such file")
# and where it stops being a list: the character, its byte and the id's position (round 21)
for case in "-1|'-' at byte 0, in the id at position 0" "1,-2|'-' at byte 2, in the id at position 1" \
    "+5|'\\+' at byte 0, in the id at position 0" "0x10|'x' at byte 1, in the id at position 0" \
    "1, 2,x|'x' at byte 5, in the id at position 2" "1 2x3|'x' at byte 3, in the id at position 1"; do
    p=${case%%|*}
    fails "generate: --prompt-tokens '$p': neither a list of ids nor a file, where it stops being one" 1 \
        "error: generate: --prompt-tokens '${p//+/\\+}' is neither a list of non-negative decimal ids" \
        "${case#*|}, is no digit\) nor a readable file" -- "${gen[@]}" --prompt-tokens "$p"
done
fails "generate: an empty item in --prompt-tokens" 1 "--prompt-tokens: an empty item before the comma at byte 2" -- \
    "${gen[@]}" --prompt-tokens "1,,2"
# a list of separators only is a LIST without ids (it was opened as a file named " ")
fails "generate: --prompt-tokens of spaces and commas: no ids" 1 "--prompt-tokens ' , ': no token ids in the list" -- \
    "${gen[@]}" --prompt-tokens " , "
mpi 1 "${gen[@]}" --prompt-tokens "5, 17,"
report "generate --prompt-tokens with a trailing comma" "$(status $?)"
# a list over lines is a list (the output checks took "5<newline>17" for a file name: "cannot open")
mpi 1 "${gen[@]}" --prompt-tokens "$(printf '5\n17')"
report "generate --prompt-tokens with ids on two lines" "$(status $?)"
# --prompt-dtype's errors name --prompt-dtype (not data.dtype)
fails "generate: --prompt-dtype uint16 on a .npy names --prompt-dtype" 1 \
    "starts with the .npy magic, but --prompt-dtype = uint16" -- "${gen[@]}" --prompt-tokens prompt.npy --prompt-dtype uint16
fails "generate: --out onto the --prompt-tokens file" 1 "--out prompt.txt is the same file as the input --prompt-tokens prompt.txt" -- \
    "${gen[@]}" --prompt-tokens prompt.txt --out prompt.txt
# a byte model: ids in, text out by default, the same as the text prompt
mpi 1 train --config "$TINY" --set train.steps=2 --set train.warmup=0 --set train.eval_every=0 --checkpoint-dir ckbytes
report "train a byte model" "$(status $?)"
# an imported or byte-trained model reads --data as token ids once a data.dtype is given:
# 1024 uint16 ids (< 256) at seq_len 32 are 31 windows of 32 targets (as bytes: 63 windows)
perl -e 'print pack("v*", map { ($_ * 7) % 100 } 0 .. 1023)' >small16.bin
mpi 2 eval --checkpoint ckbytes --data small16.bin --set data.dtype=uint16 --set data.seq_len=32
why=$(status $?)
grep -q "on small16.bin | loss .* | bits/token .* | 992 targets" out || why+="expected 992 token targets: $(cat out)"
report "eval --data with --set data.dtype=uint16 on a byte model reads token ids" "$why"
mpi 2 generate --checkpoint ckbytes --prompt 'AbBc' --tokens 5 --temperature 0
want=$(cat out)
mpi 2 generate --checkpoint ckbytes --prompt-tokens '65,98,66,99' --tokens 5 --temperature 0
report "byte model: --prompt-tokens 65,98,66,99 prints the text of --prompt AbBc" \
    "$([ -n "$want" ] && [ "$(cat out)" = "$want" ] || echo "'$(cat out)' vs '$want'")"
mpi 1 generate --checkpoint ckbytes --prompt 'AbBc' --tokens 5 --temperature 0 --output-format ids
report "byte model: --output-format ids" \
    "$(echo "$(cat out)" | grep -qE '^65 98 66 99( [0-9]+){5}$' || echo "'$(cat out)'")"

finish
