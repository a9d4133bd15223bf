#!/usr/bin/env bash
# test_data_eval.sh RINGATTN MPIRUN CONFIGS - the data readers and eval on
# hostile or awkward files: bytes outside model.vocab (train and eval, named
# by file and offset on whichever rank reads them), parts too short for one
# window (named before step 1), FIFOs and directories as data or config, a
# config with a UTF-8 byte-order mark, the recall_queries overflow, and
# eval --data counting every window exactly once (against the number of
# windows and the mean of each window evaluated alone), with no more rows
# than the file has windows whatever train.batch says.
set -u
RA=$1
MPIRUN=$2
CONFIGS=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} # skip probing psm/ofi/ucx (tests/meson.build)
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} HWLOC_COMPONENTS=${HWLOC_COMPONENTS:--pci,-linuxio} # cheaper launches (lib_cli.sh)
export RINGATTN_WAIT=${RINGATTN_WAIT:-rest} # (lib_cli.sh)
T=$(mktemp -d)
# only the shell's own exit removes T, not a background subshell's (lib_cli.sh's main_shell)
trap 'read -r me _ </proc/self/stat; [ "$me" = "$$" ] && rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0
report() { # DESC WHY
    if [ -z "$2" ]; then pass=$((pass + 1)); echo "ok: $1"; else fail=$((fail + 1)); echo "FAIL: $1: $2"; fi
}
ra() { # N ARGS... : ringattn on N ranks, output in out/err, 60 s limit
    local n=$1
    shift
    # a refused run's ranks all exit 1 on their own: no 1-2 s grace (SIGTERM,
    # then SIGKILL) from mpirun for ranks that are already gone
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout 60 "$MPIRUN" --oversubscribe -n "$n" "$RA" "$@" >out 2>err </dev/null
}
# fails_with WHAT...: the last run failed and err holds every WHAT
fails_with() {
    local rc=$1
    shift
    [ "$rc" -eq 0 ] && { echo "succeeded"; return; }
    [ "$rc" -eq 124 ] && { echo "timed out"; return; }
    for w in "$@"; do grep -qF -- "$w" err || { echo "no '$w' in: $(head -n 3 err)"; return; }; done
}

# Text over 19 byte values, all < 128: a file a vocab-128 model can read.
awk 'BEGIN { srand(7); s = "abcdefghij klmnop."; for (i = 0; i < 2000; i++) printf "%s", substr(s, int(rand() * 18) + 1, 1) }' >clean.txt
# put_byte FILE OFFSET: byte 200 (0xc8) at OFFSET
put_byte() { printf '\310' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
TINY="$CONFIGS/tiny.ini"
file=(--config "$TINY" --set data.source=file --set model.vocab=128 --set train.warmup=0 --set train.eval_every=0)

ra 1 train "${file[@]}" --set data.path=clean.txt --set train.steps=3 --checkpoint-dir ck
report "train a vocab-128 model on a text file" "$([ $? -eq 0 ] || tail -n 3 err)"

# ---- bytes outside the vocabulary --------------------------------------------------
# 80 bytes, half held out: every training window (offset 0..7, 33 bytes) covers offset 20
head -c 80 clean.txt >badtrain.bin
put_byte badtrain.bin 20
for P in 1 2; do
    ra "$P" train "${file[@]}" --set data.path=badtrain.bin --set data.val_fraction=0.5 --set train.steps=3 \
        --checkpoint-dir ckbad
    report "train P=$P: byte 200 named by file and offset" \
        "$(fails_with $? "data.path badtrain.bin: byte 200 at offset 20 is outside the vocabulary [0, 128)")"
    grep -q "Assertion\|assert" err && report "train P=$P: no assertion" "$(head -n 3 err)"
done
cp clean.txt badeval.bin
put_byte badeval.bin 1234
for P in 1 2; do
    ra "$P" eval --checkpoint ck --data badeval.bin
    report "eval --data P=$P: byte 200 named by file and offset" \
        "$(fails_with $? "badeval.bin: byte 200 at offset 1234 is outside the vocabulary [0, 128)")"
done

# ---- parts too short for one window, named before step 1 -----------------------------
head -c 100 clean.txt >short.txt
ra 2 train "${file[@]}" --set data.path=short.txt --set data.val_fraction=0.1
why=$(fails_with $? "held-out part has 11 bytes" "data.val_fraction = 0.1" "of 100 bytes" "data.seq_len + 1 = 33")
grep -q '^step ' out && why+=" (a step ran first)"
report "held-out part too short: refused before step 1" "$why"
ra 2 train "${file[@]}" --set data.path=short.txt --set data.val_fraction=0.9
why=$(fails_with $? "training part has 10 bytes" "data.val_fraction = 0.9" "data.seq_len + 1 = 33")
grep -q '^step ' out && why+=" (a step ran first)"
report "training part too short: refused before step 1" "$why"
# eval --data holds nothing out: 40 bytes make one window, whatever data.val_fraction says
head -c 40 clean.txt >one.txt
ra 1 eval --checkpoint ck --data one.txt
report "eval --data on a one-window file" "$([ $? -eq 0 ] && grep -q '| 32 targets' out || cat out err)"

# ---- not regular files -------------------------------------------------------------
mkfifo fifo
ra 1 train "${file[@]}" --set data.path=fifo
report "a FIFO as data.path: refused, not waited on" "$(fails_with $? "data.path fifo: is a FIFO")"
# --data FILE's errors name --data, the option typed (they said "data.path FILE"), and eval
ra 1 eval --checkpoint ck --data .
report "a directory as --data: refused" "$(fails_with $? "error: eval: --data .: is a directory")"
ra 1 eval --checkpoint ck --data fifo
report "a FIFO as --data: refused, not waited on" "$(fails_with $? "error: eval: --data fifo: is a FIFO")"
ra 1 eval --checkpoint ck --data nosuch.txt
report "a missing --data file: named as --data" "$(fails_with $? "error: eval: --data nosuch.txt: cannot open")"
ra 1 eval --checkpoint ck --data /proc/self/status
report "a /proc file as --data: refused, not read as empty" "$(fails_with $? "is a /proc or /sys file")"
# on 2 ranks /proc/self is each rank's own pid: the ranks' configs agreed
# anyway (it was "rank 1 read a different config"), and the file is refused
ln -sf /proc/self/status procself
for d in /proc/self/status procself; do
    ra 2 eval --checkpoint ck --data "$d"
    report "a /proc file as --data ($d) on 2 ranks: refused as such" \
        "$(fails_with $? "--data $d: is a /proc or /sys file")"
done
rm -f procself
# the same for every path the ranks compare: train's --metrics and cipher's --data
# (each said "rank 1 was given different options", naming two pids)
ra 2 train --config "$CONFIGS/tiny.ini" --set train.steps=1 --set train.warmup=0 --checkpoint-dir ckpm \
    --metrics /proc/self/fd/2
report "train --metrics /proc/self/fd/2 on 2 ranks: refused as an output in /proc" \
    "$(fails_with $? "--metrics /proc/self/fd/2: is in /proc or /sys")$([ -e ckpm ] && echo ' ckpm made')"
ra 2 cipher --data /proc/self/status
report "cipher --data /proc/self/status on 2 ranks: refused as a /proc file" \
    "$(fails_with $? "cipher: --data /proc/self/status: is a /proc or /sys file")"
# a /sys file says 4096 bytes and holds fewer: refused as such (it said "truncated?")
for f in /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/profiling; do
    [ -r "$f" ] || continue
    ra 1 eval --checkpoint ck --data "$f"
    report "a /sys file as --data: refused as such" "$(fails_with $? "eval: --data $f: is a /proc or /sys file")"
    break
done
ra 1 eval --checkpoint ck --data ""
report "an empty --data path: refused as such (it said 'data.source = file needs data.path')" \
    "$(fails_with $? "eval: --data is an empty path")"
ra 1 eval --checkpoint ck --data "$(head -c 2000 /dev/zero | tr '\0' d)"
report "a --data path of 2000 bytes: refused, naming the limit" "$(fails_with $? "eval: --data path is longer than")"
# --data a symlink to the checkpoint being evaluated: read (here refused: its
# bytes exceed the byte vocabulary), never written; the link stays a link
ln -s ck/last.ckpt ckdata && cp ck/last.ckpt ckcopy
ra 1 eval --checkpoint ck --data ckdata
report "--data a symlink to the checkpoint: refused cleanly, checkpoint and link untouched" \
    "$(fails_with $? "eval: --data ckdata: byte" "outside the vocabulary")$(cmp -s ckcopy ck/last.ckpt && [ -L ckdata ] || echo changed)"
ra 1 train --config fifo
report "a FIFO as --config: refused, not waited on" "$(fails_with $? "config fifo: is a FIFO")"

# ---- config text -----------------------------------------------------------------------
printf '\357\273\277[train]\nsteps = 2\nwarmup = 0\neval_every = 0\n' >bom.ini
ra 1 train --config bom.ini --checkpoint-dir ckbom
report "a config starting with a UTF-8 byte-order mark" "$([ $? -eq 0 ] && grep -q '^step 2/2' out || cat err)"
ra 1 train --set data.recall_queries=1073741824
report "data.recall_queries = 2^30: refused, no crash" \
    "$(fails_with $? "data.seq_len = 64 is too short" "2 * 1073741824 + 1 = 2147483653")"

# ---- eval --data is applied before the config is checked -------------------------------
# ckbom is a recall model (no data.path): the checks see FILE, not the recall task
# (it said "too short for the recall task") nor a data.path-less tokens source (it said
# "data.source = tokens needs data.path")
ra 1 eval --checkpoint ckbom --data clean.txt --set data.seq_len=8
report "eval --data on a recall model at data.seq_len 8: 249 windows, 1992 targets" \
    "$([ $? -eq 0 ] && grep -q 'on clean.txt .*| 1992 targets' out || cat out err)"
ra 2 diag --checkpoint ckbom --data clean.txt --set data.seq_len=8
report "diag --data on a recall model at data.seq_len 8" "$([ $? -eq 0 ] && grep -q '^diag: ' out || cat out err)"
report "... finite kappa: no rank-deficiency note" "$(grep '^# inf' out)"
# fewer rows than head_dim: every kappa inf, said (it was a column of inf alone)
ra 1 diag --checkpoint ckbom --data clean.txt --set data.seq_len=2 --set train.batch=2
report "diag on 4 rows of a 16-wide head: inf, and the note says why" \
    "$([ $? -eq 0 ] && grep -qE ' inf$' out && grep -q '^# inf: .*rank-deficient on this batch (4 rows of head_dim = 16 columns' out || cat out err)"
ra 1 eval --checkpoint ckbom --data clean.txt --set data.source=tokens
report "eval --data with --set data.source=tokens: FILE is checked as token ids" \
    "$(fails_with $? "eval: --data clean.txt: neither a .npy file nor an llm.c shard")"
ra 1 eval --checkpoint ckbom --set data.seq_len=8
report "eval without --data: the recall task's check stays" \
    "$(fails_with $? "data.seq_len = 8 is too short for the recall task")"
# --set naming other data than --data FILE is refused (it was dropped unseen: FILE scored, exit 0)
ra 1 eval --checkpoint ck --data clean.txt --set data.source=recall
report "eval --data with --set data.source=recall: refused" \
    "$(fails_with $? "error: eval: --set data.source=recall contradicts --data clean.txt")"
ra 1 eval --checkpoint ck --data clean.txt --set data.path=one.txt
report "eval --data with --set data.path: refused" \
    "$(fails_with $? "error: eval: --set data.path contradicts --data clean.txt")"
ra 1 eval --checkpoint ck --data clean.txt --set data.val_path=one.txt
report "eval --data with --set data.val_path: refused" \
    "$(fails_with $? "error: eval: --set data.val_path contradicts --data clean.txt")"
ra 1 eval --checkpoint ck --data clean.txt --set data.source=file
report "eval --data with --set data.source=file (no contradiction): runs" \
    "$([ $? -eq 0 ] && grep -q 'on clean.txt .*| 1984 targets' out || cat out err)"
# a --data file that starts with the .npy magic but has a version no reader knows
# (9.0): refused naming --data and the file, and saying how to read its bytes instead
# (it said only "unsupported .npy format version")
{ printf '\223NUMPY\011\000\166\000'; head -c 300 clean.txt; } >v9.npy
ra 1 eval --checkpoint ckbom --data v9.npy --set data.seq_len=8
report "eval --data of a .npy of version 9.0: refused, --set data.source=file suggested" \
    "$(fails_with $? "error: eval: --data v9.npy: unsupported .npy format version 9.0" \
        "; --set data.source=file reads the file as raw bytes")"
ra 1 eval --checkpoint ckbom --data v9.npy --set data.seq_len=8 --set data.source=file
report "... which reads it as bytes" "$([ $? -eq 0 ] && grep -q 'on v9.npy ' out || cat out err)"
# --set errors name the command (they said "--set 'data.sequence=8': ..." alone)
ra 1 eval --checkpoint ck --set data.sequence=8
report "eval --set with an unknown key: eval named" "$(fails_with $? "error: eval: --set 'data.sequence=8': ")"
ra 1 diag --checkpoint ck --set nonsense
report "diag --set without '=': diag named" "$(fails_with $? "error: diag: --set 'nonsense': missing '='")"

# ---- eval --data counts every window once ----------------------------------------------
# 360 bytes at seq_len 32: 11 windows, 352 targets; batches of 8 leave a short last batch
head -c 360 clean.txt >w11.txt
loss_of() { sed -n 's/.*| loss \([0-9.]*\) .*/\1/p' out; }
for P in 1 2; do
    ra "$P" eval --checkpoint ck --data w11.txt --set train.batch=8
    why=$([ $? -eq 0 ] || cat err)
    [ -z "$why" ] && ! grep -q '| 352 targets' out && why="expected 352 targets: $(cat out)"
    report "eval --data P=$P, 11 windows at batch 8: 352 targets" "$why"
done
ra 1 eval --checkpoint ck --data w11.txt --set train.batch=8
batched=$(loss_of)
# each window alone (its 33 bytes as a file): the mean of their losses
sum=0
for w in $(seq 0 10); do
    dd if=w11.txt of=win.txt bs=1 skip=$((w * 32)) count=33 status=none
    ra 1 eval --checkpoint ck --data win.txt
    l=$(loss_of)
    [ -z "$l" ] && { sum=x; break; }
    sum=$(awk -v s="$sum" -v l="$l" 'BEGIN { print s + l }')
done
why=$(awk -v s="$sum" -v b="$batched" 'BEGIN {
    if (s == "x" || b == "") { print "a run failed"; exit }
    m = s / 11; d = m - b; if (d < 0) d = -d
    if (d > 2e-4) printf "batched loss %s, mean of the windows alone %.5f", b, m }')
report "eval --data loss ($batched) = mean of the 11 windows evaluated alone" "$why"
# a train.batch beyond the file's windows (a checkpoint trained with a large one): no more rows
# than windows are allocated or computed (at 1048576 it asked for 107 GB), and the loss is the same
for run in "1" "2" "2 run.dp=2" "1 train.accum=4096"; do
    read -r P key <<<"$run"
    ra "$P" eval --checkpoint ck --data w11.txt --set train.batch=1048576 ${key:+--set "$key"}
    why=$([ $? -eq 0 ] || head -n 3 err)
    [ -z "$why" ] && { grep -q '| 352 targets' out && [ "$(loss_of)" = "$batched" ] || why="$(cat out)"; }
    report "eval --data P=$P${key:+ $key} at train.batch 1048576 on 11 windows: loss $batched, 352 targets" "$why"
done
ra 1 eval --checkpoint ck --data w11.txt --batches 1
report "eval --data --batches 1: one batch of 4 windows (128 targets)" \
    "$([ $? -eq 0 ] && grep -q '| 128 targets' out || cat out err)"

# ---- README's config table --------------------------------------------------------------
# its data.source row lists every value the parser takes (it lacked tokens)
ra 1 train --set data.source=x
allowed=$(sed -n "s/.*data.source = 'x' is not allowed (allowed: \([^)]*\)).*/\1/p" err)
row=$(grep -F '| [data] | `source` | enum |' "$CONFIGS/../README.md" | awk -F'|' '{ gsub(/^ +| +$/, "", $6); print $6 }')
report "README's data.source row lists the values allowed ($allowed)" \
    "$([ -n "$allowed" ] && [ "$row" = "$allowed" ] || echo "README: '$row', parser: '$allowed'")"
# every int, float and enum row gives the range the parser enforces (model.vocab said
# 2 to 65536 after the parser took 262144): a value beyond every range makes it say its own
bad=0 rows=0
while IFS='|' read -r _ sec key type _ range _; do
    sec=$(echo "$sec" | tr -d ' []') key=$(echo "$key" | tr -d ' `') type=$(echo "$type" | tr -d ' ')
    range=$(echo "$range" | sed 's/^ *//; s/ *$//')
    case $type in int) v=99999999999999999999 ;; float) v=1e300 ;; enum) v=x ;; *) continue ;; esac
    rows=$((rows + 1))
    # "(allowed: 2 to 262144)", "(allowed: a number in [0, 10])": the text inside
    said=$(timeout 20 "$RA" train --set "$sec.$key=$v" 2>&1 </dev/null |
        sed -n 's/.*(allowed: \(a number in \)\{0,1\}\(.*\))$/\2/p')
    [ "$said" = "$range" ] || { bad=$((bad + 1)); echo "  $sec.$key: README '$range', parser '$said'"; }
done < <(grep -E '^\| \[[a-z]+\] \| `' "$CONFIGS/../README.md")
report "README's config table: the range of each of its $rows int, float and enum rows is the parser's" \
    "$([ "$bad" -eq 0 ] && [ "$rows" -gt 40 ] || echo "$bad rows differ (above), $rows rows")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
