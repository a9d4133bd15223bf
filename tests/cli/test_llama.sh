#!/usr/bin/env bash
# test_llama.sh RINGATTN MPIRUN CONFIGS RA_LOGITS LLAMA_REF - `ringattn export`
# and `ringattn import` (docs/design.md §14) end to end:
# - export then import gives the checkpoint's parameters back bit for bit
#   (tied and untied), and re-exporting the import gives the same file;
# - the exported model, run by an independent float64 Llama forward with
#   Hugging Face's half-split RoPE (tests/ref/llama_ref.py: numpy, its own
#   safetensors reader), gives ringattn's logits (tests/ref/ra_logits: the
#   ring forward and the decoder, P = 1 and 2) within 1e-5 normalised;
# - the reverse: random Llama models written by the reference (F32; BF16 in
#   2 shards, tied; F16 in 3 shards with F16 subnormals) import and give the
#   reference's logits within 1e-5; the imported model evaluates the same
#   loss at P = 1 and 2 (and the reference's), generates the same greedy
#   text at P = 1 and 2, and fine-tunes with train --resume;
# - what has no Llama equivalent, or no ringattn one, is refused naming the
#   key or tensor; so are hostile files and more than one rank.
set -u
[ $# -ge 5 ] || { echo "usage: $0 RINGATTN MPIRUN CONFIGS RA_LOGITS LLAMA_REF" >&2; exit 2; }
CONFIGS=$(cd "$3" && pwd)
RL=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
REF=$(cd "$(dirname "$5")" && pwd)/$(basename "$5")
POKE=$(cd "$(dirname "$0")" && pwd)/ckpt_poke.py
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"

# A python3 with numpy (scripts/install-deps.sh --tests installs python3-numpy).
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done

# run DESC CMD...: CMD succeeds (output in out/err), else FAIL with its stderr
run() {
    local desc=$1
    shift
    LAST="$*"
    timeout "$TMO" "$@" >out 2>err </dev/null
    local rc=$?
    report "$desc" "$(status $rc)$(partials)"
    return $rc
}
# ra1 ARGS...: ringattn as one process (no mpirun)
ra1() { OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" "$RA" "$@" >out 2>err </dev/null; }
# logits_match DESC CKPT REF_F64: ra_logits forward and decode at P = 1 and 2
# against the float64 reference's logits (llama_ref.py compare, 1e-5)
logits_match() {
    local desc=$1 ck=$2 ref=$3 P mode why
    for P in 1 2; do
        for mode in forward decode; do
            why=
            LAST="mpirun -n $P ra_logits $mode $ck toks.txt ra.f32"
            timeout "$TMO" "$MPIRUN" --oversubscribe -n "$P" "$RL" "$mode" "$ck" toks.txt ra.f32 >out 2>err </dev/null ||
                why="ra_logits failed; "
            [ -z "$why" ] && { "$PY" "$REF" compare ra.f32 "$ref" >cmp.txt 2>&1 || why="$(cat cmp.txt); "; }
            report "$desc: $mode P=$P: $(sed 's/ (tolerance.*//' cmp.txt 2>/dev/null)" "$why"
            rm -f ra.f32 cmp.txt
        done
    done
}
# same_params DESC A B: the two checkpoints hold bit-identical parameter arrays
same_params() {
    local why=
    OMPI_MCA_ess_singleton_isolated=1 "$RL" params "$2" pa.bin >out 2>err || why+="ra_logits params $2 failed; "
    OMPI_MCA_ess_singleton_isolated=1 "$RL" params "$3" pb.bin >out 2>err || why+="ra_logits params $3 failed; "
    [ -z "$why" ] && { cmp -s pa.bin pb.bin || why+="$(cmp pa.bin pb.bin 2>&1); "; }
    [ -z "$why" ] && [ ! -s pa.bin ] && why+="empty parameter dump; "
    report "$1 ($(($(stat -c %s pa.bin 2>/dev/null || echo 0) / 4)) floats)" "$why"
    rm -f pa.bin pb.bin
}

TINY="$CONFIGS/tiny.ini"
awk 'BEGIN { srand(11); for (i = 0; i < 40; i++) printf "%d ", int(rand() * 256); print "" }' >toks.txt
awk 'BEGIN { srand(7); s = "the quick brown fox jumps over a lazy dog. "; for (i = 0; i < 1200; i++) printf "%s", substr(s, int(rand() * 44) + 1, 1) }' >text.txt

# ---- export, and back --------------------------------------------------------------
# untied, GQA (2 heads, 1 kv head), weights large enough that RoPE matters
run "train an untied GQA model" "$MPIRUN" --oversubscribe -n 2 "$RA" train --config "$TINY" --set train.steps=6 \
    --set train.warmup=0 --set model.tie_embeddings=0 --set model.kv_heads=1 --set model.init_std=0.3 \
    --set train.eval_every=0 --checkpoint-dir ck
run "train a tied model" "$MPIRUN" --oversubscribe -n 2 "$RA" train --config "$TINY" --set train.steps=3 \
    --set train.warmup=0 --set model.init_std=0.3 --set train.eval_every=0 --checkpoint-dir ckt

ra1 export --checkpoint ck --out hf
why=$(status $?)
[ -f hf/model.safetensors ] && [ -f hf/config.json ] || why+="hf/model.safetensors or hf/config.json missing; "
grep -q '^export: ck/last.ckpt -> hf/model.safetensors (21 tensors' out || why+="summary: $(head -c 200 out); "
why+=$(partials)
report "export: model.safetensors + config.json, 21 tensors" "$why"
ra1 export --checkpoint ckt/last.ckpt --out hft
why=$(status $?)
grep -q '(20 tensors' out || why+="tied: expected 20 tensors (no lm_head.weight): $(head -c 200 out); "
grep -q 'lm_head' hft/model.safetensors && why+="lm_head.weight written for a tied model; "
report "export of a tied model: no lm_head.weight" "$why"
# the header: 8-byte length, JSON padded with spaces to a multiple of 8
why=
n=$(od -An -tu8 -N8 hf/model.safetensors | tr -d ' ')
[ $(((8 + n) % 8)) -eq 0 ] || why+="data start at $((8 + n)), not a multiple of 8; "
head -c $((8 + n)) hf/model.safetensors | tail -c +9 | grep -aqE '^\{.*\} *$' || why+="header is not one JSON object padded with spaces; "
grep -aq '"__metadata__":{"format":"pt"}' hf/model.safetensors || why+="no format=pt metadata; "
report "export: header length $n, data 8-byte aligned, format pt" "$why"

if [ -n "$PY" ]; then
    "$PY" "$REF" check-config hf architectures='["LlamaForCausalLM"]' model_type='"llama"' hidden_size=32 \
        intermediate_size=88 num_hidden_layers=2 num_attention_heads=2 num_key_value_heads=1 head_dim=16 \
        rms_norm_eps=1e-05 rope_theta=10000.0 vocab_size=256 max_position_embeddings=32 hidden_act='"silu"' \
        tie_word_embeddings=false torch_dtype='"float32"' attention_bias=false mlp_bias=false >cc.txt 2>&1
    report "export: config.json keys and values" "$([ $? -eq 0 ] || cat cc.txt)"
    "$PY" "$REF" check-config hft tie_word_embeddings=true >cc.txt 2>&1
    report "export: tied model's config.json says tie_word_embeddings" "$([ $? -eq 0 ] || cat cc.txt)"
fi

ra1 import --from hf --out back.ckpt
report "import of the export" "$(status $?)$(partials)"
same_params "export then import: bit-identical parameters (untied, GQA)" ck/last.ckpt back.ckpt
ra1 import --from hft --out backt.ckpt
report "import of the tied export" "$(status $?)"
same_params "export then import: bit-identical parameters (tied)" ckt/last.ckpt backt.ckpt
ra1 export --checkpoint back.ckpt --out hf2
why=$(status $?)
cmp -s hf/model.safetensors hf2/model.safetensors || why+="model.safetensors differs; "
report "export of the import: the same model.safetensors, byte for byte" "$why"

# The two files of an export are replaced together. strace delivers SIGTERM as the first
# rename starts: it waits until both are renamed (its handler removed the second's .tmp,
# leaving the tied weights beside the untied config.json); a second rename that fails
# says the first file was replaced already. Then import warns of the .tmp a SIGKILL
# between the renames would leave.
mkdir -p hfs && cp hf/model.safetensors hf/config.json hfs/
(OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" strace -f -qq -o /dev/null -e trace=rename \
    -e inject=rename:signal=SIGTERM:when=1 "$RA" export --checkpoint ckt --out hfs >out 2>err </dev/null
    echo $? >rc.txt) 2>/dev/null # its shell's "Terminated" not in the log
rc=$(cat rc.txt)
why=""
[ "$rc" -eq 143 ] || why+="exit status $rc, expected 143 (SIGTERM); "
cmp -s hfs/model.safetensors hft/model.safetensors && cmp -s hfs/config.json hft/config.json ||
    why+="not both the new export's files: $(cksum hfs/* hft/* | tr '\n' ' '); "
[ -z "$(find hfs -name '*.tmp')" ] || why+="left $(find hfs -name '*.tmp'); "
report "export: SIGTERM during its renames comes after both (the two files stay a pair)" "$why"
cp hf/model.safetensors hf/config.json hfs/
OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" strace -f -qq -o /dev/null -e trace=rename \
    -e inject=rename:error=EIO:when=2 "$RA" export --checkpoint ckt --out hfs >out 2>err </dev/null
rc=$?
why=$([ "$rc" -eq 1 ] || echo "exit status $rc; ")
grep -q "cannot rename hfs/config.json.tmp to hfs/config.json: Input/output error; hfs/model.safetensors was already replaced, so the files no longer belong together: run the command again" err ||
    why+="message: $(head -2 err); "
[ -z "$(find hfs -name '*.tmp')" ] || why+="left $(find hfs -name '*.tmp'); "
report "export: a failed second rename says the first file was replaced already" "$why"
cp hf/model.safetensors hf/config.json hfs/ && echo '{}' >hfs/config.json.tmp
ra1 import --from hfs --out hfs.ckpt
why=$(status $?)
grep -q "warning: import: hfs/config.json.tmp is there, left by an export that did not finish: if it stopped between its renames, hfs/model.safetensors and hfs/config.json come from different exports" err ||
    why+="no warning: $(head -2 err); "
report "import warns of the config.json.tmp an unfinished export left" "$why"
rm -f hfs/config.json.tmp
mkfifo hfs/model.safetensors.tmp # looked at, never opened
ra1 import --from hfs --out hfs2.ckpt
why=$(status $?)
grep -q "warning: import: hfs/model.safetensors.tmp is there" err || why+="no warning: $(head -2 err); "
report "import warns of a FIFO at model.safetensors.tmp without opening it (no hang)" "$why"
rm -f hfs/model.safetensors.tmp

# max_position_embeddings is the imported model's data.seq_len: generate takes prompts that
# long, and export writes it back (it became 64, data.seq_len's default); a longer prompt
# is refused with the --set that runs it
mkdir -p hfp && cp hf/model.safetensors hfp/ &&
    sed 's/"max_position_embeddings": [0-9]*/"max_position_embeddings": 2048/' hf/config.json >hfp/config.json
ra1 import --from hfp --out hfp.ckpt
why=$(status $?)
head -c 100 "$CONFIGS/../README.md" >p100.txt
ra1 generate --checkpoint hfp.ckpt --prompt-file p100.txt --tokens 2 --temperature 0
why+=$(status $?)
ra1 export --checkpoint hfp.ckpt --out hfp2
why+=$(status $?)
grep -q '"max_position_embeddings": 2048,' hfp2/config.json || why+="re-exported: $(grep max_position hfp2/config.json); "
report "import keeps max_position_embeddings (2048) as data.seq_len: a 100-byte prompt runs, export writes 2048 back" "$why"
# a Llama model where a checkpoint belongs: the error says how to convert it
for given in "eval --checkpoint hf" "generate --checkpoint hf/model.safetensors --prompt ab" \
    "export --checkpoint=hf --out hfx" "train --resume hf"; do
    # shellcheck disable=SC2086 # given is split into words on purpose
    fails "${given%% *} of a Llama model: says to import it first" 1 \
        "is a Llama model \(config.json and safetensors\), not a ringattn checkpoint: convert it first \(ringattn import --from hf --out model.ckpt\)" -- $given
done
mkfifo hf/pipe
fails "eval of a FIFO in a Llama model's directory: refused as a FIFO, no import advice, no hang" 1 "is a FIFO" -- \
    eval --checkpoint hf/pipe
grep -q "Llama model" err && bad "eval of a FIFO in a Llama directory: the import advice: $(head -1 err)"
rm -f hf/pipe
mkdir -p both && cp ck/last.ckpt hf/config.json hf/model.safetensors both/
fails "eval of a checkpoint beside an export, refused for its --set: no import advice" 1 "changes model.dim" -- \
    eval --checkpoint both --set model.dim=64
grep -q "Llama model" err && bad "eval of a checkpoint beside an export: the import advice: $(head -1 err)"
fails "import: a --set that breaks a limit: the error says config.json with the --set values" 1 \
    "hf/config.json with the --set values: .*data.seq_len = 100000000" -- import --from hf --out x.ckpt --set data.seq_len=100000000
# max_position_embeddings out of range, or past the micro-batch token limit: refused naming
# it or the file, with the way out (--set data.seq_len)
for v in 0 1 1073741824; do
    rm -rf hfm && mkdir hfm && cp hf/model.safetensors hfm/ &&
        sed "s/\"max_position_embeddings\": [0-9]*/\"max_position_embeddings\": $v/" hf/config.json >hfm/config.json
    case $v in
    0) pat='"max_position_embeddings" = 0 is out of range' ;;
    1) pat='"max_position_embeddings" = 1 does not fit' ;;
    *) pat='hfm/config.json: .*data.seq_len = 1073741824 has [0-9]+ tokens.*--set' ;;
    esac
    fails "import: max_position_embeddings = $v refused" 1 "$pat" -- import --from hfm --out x.ckpt
done
ra1 import --from hfm --out hfm.ckpt --set data.seq_len=4096
report "import: max_position_embeddings = 2^30 with --set data.seq_len=4096 imports" "$(status $?)"
fails "generate: a prompt past data.seq_len is refused with the --set that runs it" 1 \
    "the prompt of 100 bytes is longer than the model's data.seq_len of [0-9]*; --set data.seq_len=100 \(or more\) runs it" -- \
    generate --checkpoint back.ckpt --prompt-file p100.txt --tokens 2

if [ -n "$PY" ]; then
    "$PY" "$REF" logits hf toks.txt ref_export.f64 >out 2>err
    report "float64 reference runs the exported model" "$([ $? -eq 0 ] || head -3 err)"
    logits_match "exported model vs float64 reference" ck/last.ckpt ref_export.f64
    "$PY" "$REF" logits hft toks.txt ref_exportt.f64 >out 2>err
    logits_match "exported tied model vs float64 reference" ckt/last.ckpt ref_exportt.f64
else
    bad "python3 with numpy not found: the float64 reference cannot run (scripts/install-deps.sh --tests)"
fi

# ---- import: random Llama models of the reference ----------------------------------------
if [ -n "$PY" ]; then
    for spec in "m32 F32 1" "mbf BF16 2 --tied" "mf16 F16 3"; do
        set -- $spec
        d=$1
        "$PY" "$REF" make "$d" --seed 5 --dtype "$2" --shards "$3" ${4:-} >out 2>err ||
            bad "reference writes model $d: $(head -3 err)"
        ra1 import --from "$d" --out "$d.ckpt"
        why=$(status $?)
        grep -q "($2) -> $d.ckpt" out || why+="summary lacks the dtype $2: $(head -c 300 out); "
        grep -q "keys not used: note_for_the_test" out || why+="unknown config.json key not reported; "
        report "import $d ($2, $3 file(s)${4:+, tied})" "$why"
        "$PY" "$REF" logits "$d" toks.txt "ref_$d.f64" >out 2>err
        logits_match "imported $d ($2) vs float64 reference" "$d.ckpt" "ref_$d.f64"
    done

    # eval at a longer context than trained defaults, on 1 and 2 ranks, against the reference
    loss_ref=$("$PY" "$REF" loss m32 text.txt 48 2>err)
    for P in 1 2; do
        mpi "$P" eval --checkpoint m32.ckpt --data text.txt --set data.seq_len=48 --set train.batch=4
        why=$(status $?)
        l=$(sed -n 's/.*| loss \([0-9.]*\) |.*/\1/p' out)
        eval "loss_$P=\$l"
        awk -v a="$l" -v b="$loss_ref" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1.5e-4) }' ||
            why+="loss '$l', reference $loss_ref; "
        report "eval of the imported model at P=$P: loss $l, reference $loss_ref" "$why"
    done
    [ "$loss_1" = "$loss_2" ] && ok "eval: the same loss at P=1 and P=2 ($loss_1)" ||
        bad "eval: loss $loss_1 at P=1, $loss_2 at P=2"
    # --data a .npy of token ids: read as ids by its magic (not as bytes, header and all),
    # the same as with data.dtype = npy given
    ids=()
    for ((i = 0; i < 200; i++)); do ids+=($(((i * 7) % 10))); done
    npy_i64 ids.npy "(200,)" "${ids[@]}"
    mpi 1 eval --checkpoint m32.ckpt --data ids.npy --set data.seq_len=48 --set train.batch=4
    why=$(status $?)
    auto=$(grep -o '| loss .*' out)
    mpi 1 eval --checkpoint m32.ckpt --data ids.npy --set data.seq_len=48 --set train.batch=4 --set data.dtype=npy
    want=$(grep -o '| loss .*' out)
    [ -n "$want" ] && [ "$auto" = "$want" ] || why+="'$auto' vs data.dtype=npy '$want'; "
    grep -q '| 192 targets' out || why+="expected 192 targets: $(cat out); "
    report "eval --data ids.npy of an imported model reads token ids (magic), as data.dtype=npy" "$why"

    for P in 1 2; do
        mpi "$P" generate --checkpoint m32.ckpt --prompt "the quick brown" --tokens 24 --temperature 0 \
            --out "gen$P.txt"
        report "generate from the imported model at P=$P" "$(status $?)"
    done
    cmp -s gen1.txt gen2.txt && ok "generate: the same greedy text at P=1 and P=2" ||
        bad "generate: P=1 and P=2 differ: $(head -c 80 gen1.txt) / $(head -c 80 gen2.txt)"

    mpi 2 train --resume mbf.ckpt --set train.steps=3 --set train.warmup=0 --set data.source=file \
        --set data.path=text.txt --set data.seq_len=32 --set train.batch=4 --set train.eval_every=0 \
        --checkpoint-dir ft
    why=$(status $?)
    [ -f ft/step-00000003.ckpt ] || why+="no ft/step-00000003.ckpt; "
    report "fine-tune the imported model: train --resume for 3 steps on 2 ranks" "$why"
fi

# ---- refused: no Llama equivalent ----------------------------------------------------------
for v in "gelu model.ffn=gelu model.ffn = gelu" "comb layers.head=combiner-fixed layer.0.head" \
    "rown layer.1.precond=rownorm layer.1.precond" "spec layers.precond=spectral layer.0.precond"; do
    set -- $v
    name=$1 set=$2
    shift 2
    run "train a $set model" "$MPIRUN" --oversubscribe -n 1 "$RA" train --config "$TINY" --set train.steps=1 \
        --set train.warmup=0 --set train.eval_every=0 --set "$set" --checkpoint-dir "ck_$name" ||
        continue
    fails "export refuses $set, naming the key" 1 "$*" "no Llama equivalent|Llama has no equivalent|Llama layers are full" -- \
        export --checkpoint "ck_$name" --out "hf_$name"
    [ -e "hf_$name" ] && bad "the refused export of $set left its --out directory hf_$name"
done
fails "export on 2 ranks is refused" 2 "one process" "not on 2 ranks" -- export --checkpoint ck --out hf3
fails "import on 2 ranks is refused" 2 "one process" -- import --from hf --out x.ckpt
fails "import --from '' is refused (not the root directory)" 1 "import: --from: empty file name" -- \
    import --from "" --out x.ckpt
# the model's file given for its directory (it said "--from hf/model.safetensors/config.json: cannot open: Not a directory")
fails "import --from a file: the directory is asked for" 1 \
    "import: --from hf/model.safetensors: is a regular file, not a directory \(give the model's directory, which holds config.json and model.safetensors\)" -- \
    import --from hf/model.safetensors --out x.ckpt
# a FIFO, and a link to the file, said the same way (at once: the FIFO is not opened)
mkfifo fromfifo && ln -s hf/model.safetensors fromlink
TMO=20 fails "import --from a FIFO: named as one, not waited on" 1 "import: --from fromfifo: is a FIFO \(named pipe\), not a directory" -- \
    import --from fromfifo --out x.ckpt
fails "import --from a link to the file: named as the file" 1 "import: --from fromlink: is a regular file, not a directory" -- \
    import --from fromlink --out x.ckpt
# export --out that is no directory: named as given (it was "/dev/null/model.safetensors: is in /dev")
wsum=$(cksum <hf/model.safetensors)
for o in /dev/null fromfifo fromlink; do
    fails "export --out $o: named as given, not as a path inside it" 1 \
        "export: --out $o: is a (character device|FIFO \(named pipe\)|regular file), not a directory" -- \
        export --checkpoint ck --out "$o"
done
report "... and the FIFO, the link and its file kept" "$([ -p fromfifo ] && [ -L fromlink ] &&
    [ "$(cksum <hf/model.safetensors)" = "$wsum" ] || echo changed)"
# a link to a directory is that directory: the export writes into its target
mkdir realout && ln -s realout linkout
ra1 export --checkpoint ck --out linkout
report "export --out a symlink to a directory: written into its target, the link kept" "$([ $? -eq 0 ] &&
    [ -L linkout ] && [ -s realout/model.safetensors ] && [ -s realout/config.json ] || echo "exit $?: $(cat err)")"
rm -rf realout linkout
ln -s nowhere dangout
fails "export --out a dangling symlink: named as one" 1 \
    "export: --out dangout: it is a symbolic link to nowhere, which does not exist: create its target" -- \
    export --checkpoint ck --out dangout
[ -L dangout ] && [ ! -e nowhere ] || bad "export --out a dangling symlink changed it or made its target"
rm -f dangout
rm -f fromfifo fromlink
# a dangling symbolic link where the weights or config.json belong: named as one (it was
# "holds neither model.safetensors nor model.safetensors.index.json")
mkdir dang && cp hf/config.json dang/ && ln -s gone.safetensors dang/model.safetensors
fails "import: a dangling model.safetensors link named as one" 1 \
    "dang/model.safetensors: cannot open: it is a symbolic link to gone.safetensors, which does not exist" -- \
    import --from dang --out x.ckpt
rm dang/model.safetensors && ln -s gone.json dang/model.safetensors.index.json
fails "... and a dangling index link" 1 \
    "dang/model.safetensors.index.json: cannot open: it is a symbolic link to gone.json, which does not exist" -- \
    import --from dang --out x.ckpt
rm dang/model.safetensors.index.json && cp hf/model.safetensors dang/ && ln -sf nowhere.json dang/config.json
fails "... and a dangling config.json link" 1 \
    "dang/config.json: cannot open: it is a symbolic link to nowhere.json, which does not exist" -- \
    import --from dang --out x.ckpt
rm -rf dang
fails "export --set is refused, naming --set" 1 "export: --set is import's option" -- \
    export --checkpoint ck --out hf5 --set model.dim=3
fails "export: missing checkpoint, no directory made" 1 "cannot open" -- export --checkpoint nope --out hf4
# a killed export's two temporaries: both named in one refusal, both kept
mkdir hf6 && touch hf6/model.safetensors.tmp hf6/config.json.tmp
ra1 export --checkpoint ck --out hf6/
rc=$?
report "export over a killed export's two temporaries: both named in one refusal, both kept" "$([ $rc -eq 1 ] &&
    grep -q 'export: 2 temporaries of its outputs exist (hf6/model.safetensors.tmp, hf6/config.json.tmp)' err &&
    [ -e hf6/model.safetensors.tmp ] && [ -e hf6/config.json.tmp ] && [ ! -e hf6/config.json ] ||
    echo "exit $rc: $(grep -m1 error err)")"
rm -rf hf6
[ -e hf4 ] && bad "export of a missing checkpoint created its --out directory"

# ---- a failed export leaves --out as it was -------------------------------------------------
# a NaN in the weights (a checkpoint changed under a valid checksum): import
# would refuse the file, so export refuses to write it
PYTHON=$(command -v python3 || echo /usr/bin/python3)
if "$PYTHON" "$POKE" ck/last.ckpt nan.ckpt params 7 nan 2>poke.err; then
    fails "export refuses a NaN weight, naming the tensor and position" 1 \
        'nan.ckpt: tensor "model.embed_tokens.weight" holds a NaN at \[0, 7\]' -- export --checkpoint nan.ckpt --out hf_nan
    [ -e hf_nan ] && bad "the refused export of nan.ckpt left its --out directory"
else
    bad "ckpt_poke.py: $(cat poke.err)"
fi
# --out holding a sharded model: its shards would stay beside the new file
mkdir -p hf_sh && echo '{}' >hf_sh/model.safetensors.index.json
fails "export into a directory with a sharded model is refused" 1 "hf_sh holds a sharded model" -- \
    export --checkpoint ck --out hf_sh
[ "$(ls hf_sh)" = model.safetensors.index.json ] || bad "the refused export wrote into hf_sh: $(ls hf_sh | tr '\n' ' ')"
# a full disk while config.json is written: the weights and config.json in
# --out (the tied model's) stay as they were, both, and no .tmp is left. A
# hard link holds the old weights' pages, so only the new weights fit.
mkdir -p full
if mount -t tmpfs -o size=1m tmpfs full 2>mnt.err; then
    cp hft/model.safetensors hft/config.json full/ && ln full/model.safetensors full/keep
    free=$(($(stat -f -c '%a * %S' full)))
    need=$((($(stat -c %s hf/model.safetensors) + 4095) / 4096 * 4096))
    head -c $((free > need ? free - need : 0)) /dev/zero >full/filler
    s0=$(sums full/model.safetensors full/config.json)
    fails "export onto a full disk (config.json does not fit)" 1 "full/config.json.tmp" "No space left" -- \
        export --checkpoint ck --out full
    why=
    [ "$s0" = "$(sums full/model.safetensors full/config.json)" ] || why+="the model in full/ changed; "
    ls full/*.tmp >/dev/null 2>&1 && why+="a .tmp file is left: $(ls full); "
    umount full
    report "... and full/ holds the model it held before, weights and config.json both" "$why"
else
    bad "export onto a full disk: cannot mount a tmpfs: $(cat mnt.err)"
fi

# ---- refused on import: what ringattn cannot compute, hostile files -------------------------
if [ -n "$PY" ]; then
    bad_model() { # NAME MAKE-ARGS...
        local d=$1
        shift
        rm -rf "$d"
        "$PY" "$REF" make "$d" --seed 3 "$@" >/dev/null 2>&1 || bad "reference writes $d"
    }
    bad_model b_rs --set 'rope_scaling={"rope_type": "llama3", "factor": 8.0}'
    fails "import refuses rope_scaling" 1 '"rope_scaling" is not null' -- import --from b_rs --out x.ckpt
    bad_model b_ab --set attention_bias=true
    fails "import refuses attention_bias" 1 '"attention_bias" is true' -- import --from b_ab --out x.ckpt
    bad_model b_mb --set mlp_bias=true
    fails "import refuses mlp_bias" 1 '"mlp_bias" is true' -- import --from b_mb --out x.ckpt
    bad_model b_act --set 'hidden_act="gelu"'
    fails "import refuses hidden_act gelu" 1 '"hidden_act" is "gelu"' -- import --from b_act --out x.ckpt
    bad_model b_mt --set 'model_type="mistral"' --set sliding_window=4096
    fails "import refuses model_type mistral" 1 '"model_type" is "mistral"' -- import --from b_mt --out x.ckpt
    bad_model b_arch --set 'architectures=["GPT2LMHeadModel"]'
    fails "import refuses architectures GPT2, naming it" 1 \
        '"architectures" must be \["LlamaForCausalLM"\] \(a causal language model\); got an array starting "GPT2LMHeadModel"' \
        -- import --from b_arch --out x.ckpt
    bad_model b_sw --set sliding_window=4096
    fails "import refuses sliding_window" 1 '"sliding_window" is set' -- import --from b_sw --out x.ckpt
    bad_model b_v --set vocab_size=300000
    fails "import refuses a vocabulary above model.vocab's range" 1 "vocab_size" "model.vocab" "out of range" -- \
        import --from b_v --out x.ckpt
    bad_model b_hf --set hidden_size=32.0
    fails "import: an integer key written 32.0 is said to be, not called a fraction" 1 \
        'b_hf/config.json: "hidden_size" = 32 is written with a fraction or exponent: write it as an integer' -- \
        import --from b_hf --out x.ckpt
    bad_model b_v63 --set vocab_size=9223372036854775808
    fails "import: vocab_size 2^63 is out of range, not a fraction" 1 \
        '"vocab_size" = 9.2233720368547758e\+18 is out of range \[1, 2\^30\]' -- import --from b_v63 --out x.ckpt
    bad_model b_eps --set rms_norm_eps=1e-50
    fails "import refuses an rms_norm_eps that is 0 in float32, naming the file and the value given" 1 \
        'b_eps/config.json: "rms_norm_eps" = 1e-50 is below float32.s smallest positive number \(1.4e-45\)' -- \
        import --from b_eps --out x.ckpt
    # below double's range too (it reads as 0): said so, not "= 0" (round 21)
    # (written by sed: Python's json reads 1e-400 as 0.0 and would write that)
    rm -rf b_eps0 && cp -r b_eps b_eps0 && sed -i 's/"rms_norm_eps": [^,]*/"rms_norm_eps": 1e-400/' b_eps0/config.json
    fails "import refuses an rms_norm_eps of 1e-400 as below double's range, not as 0" 1 \
        'b_eps0/config.json: "rms_norm_eps" is below even double.s smallest positive number \(it reads as 0\)' -- \
        import --from b_eps0 --out x.ckpt
    rm -rf b_eps00 && cp -r b_eps b_eps00 && sed -i 's/"rms_norm_eps": [^,]*/"rms_norm_eps": 0.0e-400/' b_eps00/config.json
    fails "... but a zero written with an exponent is 0" 1 'b_eps00/config.json: "rms_norm_eps" = 0 must be positive' -- \
        import --from b_eps00 --out x.ckpt
    sed -i 's/"rms_norm_eps": [^,]*/"rms_norm_eps": -1e-400/' b_eps00/config.json
    fails "... and a negative one below double's range is negative (not '= -0')" 1 \
        'b_eps00/config.json: "rms_norm_eps" is negative; it must be positive' -- import --from b_eps00 --out x.ckpt
    bad_model b_theta --set rope_theta=1e13
    fails "import refuses a rope_theta above model.rope_theta's range, naming the value given" 1 \
        'b_theta/config.json: "rope_theta" = 10000000000000' "out of range" -- import --from b_theta --out x.ckpt
    bad_model b_drop --drop model.layers.1.mlp.up_proj.weight
    fails "import refuses a missing tensor" 1 '"model.layers.1.mlp.up_proj.weight" is missing' -- \
        import --from b_drop --out x.ckpt
    bad_model b_head --drop lm_head.weight
    fails "import: untied model without lm_head.weight" 1 '"lm_head.weight" is missing' "tie_word_embeddings" -- \
        import --from b_head --out x.ckpt
    bad_model b_extra --extra model.layers.0.self_attn.q_proj.bias
    fails "import refuses an extra tensor" 1 '"model.layers.0.self_attn.q_proj.bias"' "extra tensor" -- \
        import --from b_extra --out x.ckpt
    bad_model b_shape --reshape model.layers.0.mlp.down_proj.weight
    fails "import refuses a wrong shape" 1 "down_proj.weight\" has shape \[100, 48\]" "\[48, 100\]" -- \
        import --from b_shape --out x.ckpt
    bad_model b_nan --nan model.layers.1.self_attn.v_proj.weight
    fails "import refuses a NaN weight" 1 "v_proj.weight\" holds a NaN at \[0, 5\]" -- import --from b_nan --out x.ckpt
    bad_model b_tie --tied --head random
    fails "import: tied model whose lm_head.weight is not the embedding" 1 \
        '"lm_head.weight" differs from "model.embed_tokens.weight"' -- import --from b_tie --out x.ckpt
    bad_model b_same --tied --head same
    ra1 import --from b_same --out same.ckpt
    report "import: tied model that carries lm_head.weight equal to the embedding" "$(status $?)"
    # shards outside the directory
    bad_model b_sh --shards 2
    sed -i 's|"model-00002-of-00002.safetensors"|"../model-00002-of-00002.safetensors"|' b_sh/model.safetensors.index.json
    fails "import refuses a shard outside the directory" 1 "path separator" -- import --from b_sh --out x.ckpt
    # hostile files
    bad_model b_fifo
    rm b_fifo/model.safetensors && mkfifo b_fifo/model.safetensors
    fails "import refuses a FIFO as model.safetensors" 1 "is a FIFO" -- import --from b_fifo --out x.ckpt
    bad_model b_len
    printf '\377\377\377\377\377\377\377\177' | dd of=b_len/model.safetensors bs=1 conv=notrunc status=none
    fails "import refuses an absurd header length" 1 "header length .* is absurd" -- import --from b_len --out x.ckpt
    bad_model b_trunc
    truncate -s 5000 b_trunc/model.safetensors
    fails "import refuses a truncated model.safetensors" 1 "run past the end of the data" -- \
        import --from b_trunc --out x.ckpt
    fails "import: --set of a model key is refused" 1 "model keys come from" -- \
        import --from m32 --out x.ckpt --set model.dim=64
    fails "import: --out is the model file" 1 "same file as the input" -- import --from m32 --out m32/model.safetensors
    s0=$(sums mbf/model-00001-of-00002.safetensors)
    fails "import: --out is one of the shards" 1 "would replace .*model-00001-of-00002.safetensors" -- \
        import --from mbf --out mbf/model-00001-of-00002.safetensors
    [ "$s0" = "$(sums mbf/model-00001-of-00002.safetensors)" ] || bad "import --out a shard changed the shard"
    ra1 import --from m32 --out seq.ckpt --set data.seq_len=4096 --set train.batch=2
    report "import: --set of data and train keys" "$(status $?)"
    [ -e x.ckpt ] && bad "a refused import left x.ckpt"
fi

finish
