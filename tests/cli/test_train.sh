#!/usr/bin/env bash
# test_train.sh RINGATTN MPIRUN CONFIGS - end-to-end tests of train, eval and
# generate: the same losses at P = 1, 2, 4 in every layout, exact resume,
# sharded generation equal to one rank, config and checkpoint errors.
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
ra() { # N ARGS... : ringattn on N ranks, output in out/err, 120 s limit
    local n=$1
    shift
    # a refused run's ranks all exit 1 on their own: no 1-2 s grace (SIGTERM,
    # then SIGKILL) from mpirun for ranks that are already gone
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$RA" "$@" >out 2>err </dev/null
}
losses() { grep -o '"loss": [^,]*' "$1" | awk '{print $2}'; }
# same_losses A B: every step's loss within 1e-4 relative
same_losses() {
    paste <(losses "$1") <(losses "$2") | awk '
        { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > worst) worst = r }
        END { if (n != 20) { print "expected 20 steps, got " n; exit 1 }
              if (worst > 1e-4) { printf "worst relative difference %.3e > 1e-4\n", worst; exit 1 }
              printf "worst %.2e", worst > "/dev/stderr" }'
}

TINY="$CONFIGS/tiny.ini"
common=(--config "$TINY" --set train.steps=20 --set train.eval_every=0)

# ---- the same losses whatever P and the layout -------------------------------------
ra 1 train "${common[@]}" --set run.layout=contiguous --metrics p1.jsonl --checkpoint-dir ck1
report "train P=1" "$([ $? -eq 0 ] || cat err)"
# the start line counts layers in words: "1 layer", "2 layers"
grep -q '^train: [0-9]* parameters | 2 layers, dim' out || report "the start line says '2 layers'" "$(head -1 out)"
ra 1 train "${common[@]}" --set model.layers=1 --set train.steps=1 --set train.warmup=0 --checkpoint-dir ckL1
report "a one-layer model: the start line says '1 layer'" "$(grep -q '^train: [0-9]* parameters | 1 layer, dim' out ||
    echo "start line: $(head -1 out) $(head -2 err)")"
for layout in contiguous zigzag striped; do
    for P in 2 4; do
        ra "$P" train "${common[@]}" --set run.layout=$layout --metrics "p$P$layout.jsonl" --checkpoint-dir "ck$P$layout"
        rc=$?
        why=$([ $rc -eq 0 ] || tail -3 err)
        [ -z "$why" ] && why=$(same_losses "p$P$layout.jsonl" p1.jsonl 2>/dev/null)
        report "train P=$P $layout: 20 losses equal P=1 within 1e-4" "$why"
    done
done
ra 2 train "${common[@]}" --set run.layout=contiguous --set train.accum=2 --metrics accum.jsonl --checkpoint-dir ckacc
why=$([ $? -eq 0 ] || tail -3 err)
[ -z "$why" ] && why=$(same_losses accum.jsonl p1.jsonl 2>/dev/null)
report "gradient accumulation (2 micro-batches) gives the same losses as one batch" "$why"
# a model mixing full and combiner-fixed layers trains the same at P = 1 and 4
mix=("${common[@]}" --set layer.1.head=combiner-fixed --set layer.1.span=5)
ra 1 train "${mix[@]}" --set run.layout=contiguous --metrics mix1.jsonl --checkpoint-dir ckm1
why=$([ $? -eq 0 ] || tail -3 err)
for layout in contiguous striped; do
    ra 4 train "${mix[@]}" --set run.layout=$layout --metrics "mix4$layout.jsonl" --checkpoint-dir "ckm4$layout"
    w=$([ $? -eq 0 ] || tail -3 err)
    [ -z "$w$why" ] && w=$(same_losses "mix4$layout.jsonl" mix1.jsonl 2>/dev/null)
    report "mixed full + combiner-fixed layers, P=4 $layout: losses equal P=1" "$why$w"
done
grep -q '"eval_loss"' p1.jsonl && grep -q '"tokens_per_s"' p1.jsonl
report "metrics carry loss, lr, tokens_per_s and the final evaluation" "$([ $? -eq 0 ] || echo missing keys)"
c=$(grep -c '^step ' out)
report "progress: one line per step on rank 0" "$([ "$c" -eq 20 ] || echo "$c step lines")"
# decoding is full heads only: the refusal names the command and the checkpoint (it said
# "decoding supports full heads only; ..." alone)
ra 1 generate --checkpoint ckm1 --prompt ab --tokens 2
report "generate from a Combiner model: refused naming generate and --checkpoint" \
    "$([ $? -ne 0 ] && grep -q '^ringattn: error: generate: --checkpoint ckm1: decoding supports full heads only; layer 1 uses head combiner-fixed' err || cat err)"

# rownorm-preconditioned heads (full gradient) train the same at P = 1 and 4
pre=("${common[@]}" --set layers.precond=rownorm --set layers.precond_grad=full)
ra 1 train "${pre[@]}" --set run.layout=zigzag --metrics pre1.jsonl --checkpoint-dir ckp1
why=$([ $? -eq 0 ] || tail -3 err)
ra 4 train "${pre[@]}" --set run.layout=zigzag --metrics pre4.jsonl --checkpoint-dir ckp4
w=$([ $? -eq 0 ] || tail -3 err)
[ -z "$w$why" ] && w=$(same_losses pre4.jsonl pre1.jsonl 2>/dev/null)
cmp -s <(losses pre1.jsonl) <(losses p1.jsonl) && w+="rownorm changed nothing; "
report "rownorm-preconditioned model, P=4: losses equal P=1" "$why$w"
spec=("${common[@]}" --set layers.precond=spectral --set layers.precond_lambda=0.5)
ra 1 train "${spec[@]}" --metrics spec1.jsonl --checkpoint-dir cks1
why=$([ $? -eq 0 ] || tail -3 err)
ra 4 train "${spec[@]}" --set run.layout=striped --metrics spec4.jsonl --checkpoint-dir cks4
w=$([ $? -eq 0 ] || tail -3 err)
[ -z "$w$why" ] && w=$(same_losses spec4.jsonl spec1.jsonl 2>/dev/null)
cmp -s <(losses spec1.jsonl) <(losses p1.jsonl) && w+="spectral changed nothing; "
report "spectral-preconditioned model (lambda 0.5), P=4 striped: losses equal P=1" "$why$w"
ra 1 generate --checkpoint cks1 --prompt 'AbBcCd|' --tokens 8 --temperature 0
g1=$(cat out)
ra 3 generate --checkpoint cks1 --prompt 'AbBcCd|' --tokens 8 --temperature 0
report "generate from the spectral model: 3 ranks equal 1" "$([ "$(cat out)" = "$g1" ] || echo "'$(cat out)' vs '$g1' $(cat err)")"
# ---- resume is exact: 10 + resume + 10 == 20 ---------------------------------------
# (the checkpoint stores the config text, run.checkpoint_dir included: use
# the same relative directory name in two working directories)
mkdir a b
(cd a && ra 2 train "${common[@]}" --set train.checkpoint_every=10 --checkpoint-dir ck)
cp -r a/ck b/ck0
(cd b && mv ck0 ck && rm ck/step-00000020.ckpt ck/last.ckpt &&
    ra 2 train --checkpoint-dir ck --resume ck/step-00000010.ckpt)
rc=$?
why=$([ $rc -eq 0 ] || tail -3 b/err)
[ -z "$why" ] && { cmp -s a/ck/step-00000020.ckpt b/ck/step-00000020.ckpt || why="final checkpoints differ"; }
ln -s a/ck ckA
report "resume from step 10 gives bit-identical step-20 parameters and moments" "$why"
[ "$(readlink ckA/last.ckpt)" = step-00000020.ckpt ]
report "last.ckpt points at the newest checkpoint" "$([ $? -eq 0 ] || echo "last.ckpt -> $(readlink ckA/last.ckpt)")"

# ---- a run killed with SIGKILL resumes from its last complete checkpoint ----------
# Uninterrupted reference: 300 steps. The victim is killed (every rank, -9) as soon
# as its step-100 checkpoint exists - possibly while it writes step 150, or between
# step-150.ckpt and last.ckpt's move; resuming from the directory (its newest complete
# checkpoint) must reach the same step-300 parameters bit for bit.
long=(--config "$TINY" --set train.steps=300 --set train.eval_every=0 --set train.checkpoint_every=50)
mkdir k1 k2
(cd k1 && ra 2 train "${long[@]}" --checkpoint-dir ck)
(cd k2 && exec timeout 120 "$MPIRUN" --oversubscribe -n 2 "$RA" train "${long[@]}" --checkpoint-dir ck \
    --set train.log_every=1 >out 2>err </dev/null) &
victim=$!
for _ in $(seq 1200); do [ -e k2/ck/step-00000100.ckpt ] && break; sleep 0.05; done
pkill -9 -f "checkpoint-dir ck --set train.log_every=1" 2>/dev/null
wait $victim 2>/dev/null
why=""
[ -e k2/ck/step-00000300.ckpt ] && why="the victim finished before it was killed; "
(cd k2 && ra 2 train --checkpoint-dir ck/ --resume ck/) # "ck/": ck/last.ckpt in every path and message
rc=$?
[ $rc -eq 0 ] || why+="resume failed: $(tail -2 k2/err); "
grep -qE "resumed from ck/(last|step-[0-9]{8}).ckpt at step (100|150|200|250)\b" k2/out || why+="did not resume from a complete checkpoint: $(head -2 k2/out); "
cmp -s k1/ck/step-00000300.ckpt k2/ck/step-00000300.ckpt || why+="step-300 checkpoints differ; "
grep -q 'ck//' k2/out k2/err && why+="a doubled slash: $(grep -h 'ck//' k2/out k2/err | head -1); "
report "SIGKILL mid-run: resume from last.ckpt loses nothing (bit-identical step 300)" "$why"

# ---- eval and generate -------------------------------------------------------------
ra 2 eval --checkpoint ckA
report "eval on held-out data" "$(grep -q 'bpb' out || cat err)"
printf 'the quick brown fox jumps over the lazy dog\n' >text.txt
ra 1 eval --checkpoint ckA --data text.txt --set data.val_fraction=0.1
report "eval --data FILE reports bits per byte" "$(grep -q 'bpb' out || { cat out err; })"
ra 1 generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 12 --temperature 0
g1=$(cat out)
for P in 2 3; do
    ra "$P" generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 12 --temperature 0
    report "generate with the cache sharded over $P ranks equals 1 rank" "$([ "$(cat out)" = "$g1" ] || echo "'$(cat out)' vs '$g1' $(cat err)")"
done
ra 3 generate --checkpoint ckA --prompt 'A' --tokens 8 --temperature 0.8 --top-k 5 --seed 4
g3=$(cat out)
ra 1 generate --checkpoint ckA --prompt 'A' --tokens 8 --temperature 0.8 --top-k 5 --seed 4
report "short prompt (< P), sampling with top-k, P=3 equals P=1" "$([ "$(cat out)" = "$g3" ] || echo "'$(cat out)' vs '$g3'")"
report "... within data.seq_len: no warning" "$(grep warning err)"
# past the trained context (seq_len 32): runs, said once (it went on silently)
ra 2 generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 30 --temperature 0
report "generate past data.seq_len: runs, one warning naming the position" "$([ $? -eq 0 ] &&
    [ "$(grep -c "warning: generate: the prompt's 7 tokens and --tokens 30 reach position 37, past the model's data.seq_len of 32" err)" = 1 ] || cat err)"
# --set data.seq_len below the recall task's length: generate reads no data, so it is only
# the context it warns past, the text the same (it was refused with the task's length)
ra 2 generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 12 --temperature 0 --set data.seq_len=8
rc=$?
report "generate --set data.seq_len=8 on a recall model: runs, the same text, warned past position 8" "$(
    [ $rc -eq 0 ] && [ "$(cat out)" = "$g1" ] || echo "exit $rc: '$(cat out)' vs '$g1' $(grep -m1 error err)")$(
    grep -q "reach position 19, past the model's data.seq_len of 8" err || echo "no warning: $(cat err)")"
# ... at its largest too (nothing is sized by it: 2^30 tokens would be 4 GiB a buffer), and
# one past it refused naming the range
ra 2 generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 12 --temperature 0 --set data.seq_len=1073741824
rc=$?
report "generate --set data.seq_len=2^30: runs, the same text, no warning" "$([ $rc -eq 0 ] &&
    [ "$(cat out)" = "$g1" ] && ! grep -q warning err || echo "exit $rc: $(cat err)")"
ra 2 generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 2 --set data.seq_len=1073741825
rc=$?
report "... and 2^30 + 1 refused naming the range" "$([ $rc -eq 1 ] && grep -q "data.seq_len.*1073741825.*2 to 1073741824\|data.seq_len.*out of range" err ||
    echo "exit $rc: $(grep -m1 error err)")"
# a stop signal during a long prompt's one forward is read between its layers (the first
# Ctrl-C waited for the whole prompt): 8 layers, 30,000 tokens (about 1.8 s of forward
# here alone), SIGUSR1 to mpirun once the prompt is printed, which is before its forward
ra 1 train --config "$TINY" --set model.layers=8 --set train.steps=1 --set train.warmup=0 --set train.eval_every=0 \
    --checkpoint-dir ck8
head -c 30000 /dev/zero | tr '\0' a >p30k
rm -f out err
timeout 120 "$MPIRUN" --oversubscribe -n 2 "$RA" generate --checkpoint ck8 --prompt-file p30k --tokens 5 \
    --set data.seq_len=40000 >out 2>err </dev/null &
gp=$!
for _ in $(seq 1200); do [ "$(wc -c <out 2>/dev/null || echo 0)" -ge 30000 ] && break; sleep 0.05; done
kill -USR1 "$(pgrep -P "$gp" -x "$(basename "$MPIRUN")")"
wait "$gp"
rc=$?
why=""
[ $rc -eq 1 ] || why+="exit status $rc; "
grep -qE '^ringattn: error: generate: stopped by SIGUSR1 during the prompt, before layer [2-8] of 8 \(0 of 5 tokens\) \(standard output has the prompt and the 0 tokens sampled\)$' err ||
    why+="$(grep -m1 error err); "
[ "$(wc -c <out)" -eq 30001 ] || why+="standard output: $(wc -c <out) bytes, expected the prompt and a newline; "
report "generate: a stop during a 30,000-token prompt's forward ends it between layers, the prompt kept" "$why"
# hostile prompts: refused at once, naming the file and what it is
mkfifo pfifo && mkdir pdir && head -c 100000 /dev/zero | tr '\0' a >plong
for f in "pfifo:is a FIFO" "pdir:is a directory" "/dev/zero:is a character device" \
         "plong:longer than the model's data.seq_len"; do
    ra 2 generate --checkpoint ckA --prompt-file "${f%%:*}" --tokens 2
    report "generate --prompt-file ${f%%:*} is refused" "$([ $? -ne 0 ] && grep -q -- "${f#*:}" err || cat out err)"
done
# a failed write of the text is an error (one process without mpirun: its stdout is the file)
timeout 60 "$RA" generate --checkpoint ckA --prompt 'A' --tokens 2 >/dev/full 2>err </dev/null
report "generate > /dev/full exits non-zero naming the write" "$([ $? -ne 0 ] && grep -q 'standard output' err || cat err)"
# standard output streams: each token as it is sampled, so a long run shows its text at
# once and one ended early keeps what it printed (it printed nothing before its end)
rm -f stream.txt
"$MPIRUN" -n 2 "$RA" generate --checkpoint ckA --prompt 'AbBcCd|' --tokens 100000 --temperature 0 \
    >stream.txt 2>err </dev/null &
gp=$!
for _ in $(seq 300); do [ "$(wc -c <stream.txt 2>/dev/null || echo 0)" -ge 20 ] && break; sleep 0.1; done
n=$(wc -c <stream.txt)
kill -TERM "$gp" 2>/dev/null
wait "$gp" 2>/dev/null
why=""
[ "$n" -ge 20 ] || why+="$n bytes after 30 s of a 100000-token run; "
[ "$(head -c 19 stream.txt)" = "$(printf '%s' "$g1" | head -c 19)" ] || why+="began '$(head -c 19 stream.txt)', not '${g1:0:19}'; "
report "generate streams its tokens to standard output as they are sampled (P=2)" "$why"
# --out FILE: the same text, written atomically; checked before any work, never onto an input
ra 2 generate --checkpoint ckA --prompt 'AB' --tokens 6 --temperature 0
want=$(cat out)
ra 2 generate --checkpoint ckA --prompt 'AB' --tokens 6 --temperature 0 --out gen.txt
report "generate --out FILE writes what stdout shows, prints nothing" \
    "$([ "$(cat gen.txt 2>/dev/null)" = "$want" ] && [ ! -s out ] || echo "'$(cat gen.txt)' vs '$want'")"
echo keep >victim.txt && ln -sf victim.txt genlink.txt
ra 2 generate --checkpoint ckA --prompt 'AB' --tokens 6 --temperature 0 --out genlink.txt
rc=$?
report "generate --out onto a symlink is refused, link and target kept" \
    "$([ "$rc" -eq 1 ] && grep -q 'is a symbolic link (to victim.txt)' err && [ "$(cat victim.txt)" = keep ] &&
       [ -L genlink.txt ] || echo "exit $rc, $(grep -m1 error err), victim: $(cat victim.txt)")"
sum=$(cksum <"$(readlink -f ckA/last.ckpt)")
for f in "ckA/last.ckpt:is the same file as the input --checkpoint" "nodir/g.txt:does not exist" "/dev/full:character device"; do
    ra 2 generate --checkpoint ckA --prompt 'AB' --tokens 2 --out "${f%%:*}"
    report "generate --out ${f%%:*} is refused before any work" "$([ $? -ne 0 ] && grep -q -- "${f#*:}" err || cat err)"
done
report "the checkpoint is unchanged" "$([ "$(cksum <"$(readlink -f ckA/last.ckpt)")" = "$sum" ] || echo changed)"

# ---- conditioning diagnostic: the same kappa whatever P ---------------------------
ra 2 gen --dir kg --B 2 --H 2 --L 41 --D 8
ra 1 attn --q kg/q.npy --k kg/k.npy --v kg/v.npy --causal --out kg/o1.npy --kappa --precond rownorm
k1=$(grep '^kappa:' out)
ra 3 attn --q kg/q.npy --k kg/k.npy --v kg/v.npy --causal --out kg/o3.npy --kappa --precond rownorm
k3=$(grep '^kappa:' out)
why=""
[ "$(echo "$k1" | wc -l)" -eq 5 ] || why="expected a header and 4 rows (2 batches x 2 heads): $k1; "
paste <(echo "$k1" | awk 'NR > 1 {print $4}') <(echo "$k3" | awk 'NR > 1 {print $4}') |
    awk '{ r = ($1 - $2) / $2; if (r < 0) r = -r; if (r > 1e-4) bad = 1 } END { exit bad }' ||
    why+="P=3 differs by more than 1e-4: $k3; "
report "attn --kappa: one row per batch and head, equal at P = 1 and 3" "$why"

ra 1 diag --checkpoint ckA
d1=$(grep -E '^ +[0-9]+ +[0-9]+ ' out)
ra 3 diag --checkpoint ckA
d3=$(grep -E '^ +[0-9]+ +[0-9]+ ' out)
why=""
[ "$(echo "$d1" | wc -l)" -eq 4 ] || why="expected 4 rows (2 layers x 2 heads): $d1; "
# kappa ~ 1e3-1e4 amplifies the float32 differences of another summation order
paste <(echo "$d1" | awk '{print $4}') <(echo "$d3" | awk '{print $4}') |
    awk '{ r = ($1 - $2) / $2; if (r < 0) r = -r; if (r > 1e-3) bad = 1 } END { exit bad }' ||
    why+="P=3 differs by more than 1e-3: $d3; "
grep -q '"kappa": \[\[' p1.jsonl || why+="no kappa in the training metrics; "
report "diag: kappa per layer and head, equal at P = 1 and 3; kappa in metrics" "$why"
ra 2 diag --checkpoint ckA --batches 2
report "diag --batches (eval's option, ignored before): refused, under diag's name" \
    "$([ $? -ne 0 ] && grep -q "diag: --batches is eval's option" err || echo "$(grep -m1 error err)")"
ra 1 diag
report "diag without --checkpoint: its error says diag" "$([ $? -ne 0 ] && grep -q 'diag: --checkpoint is required' err || cat err)"

# ---- the thread count: --threads, OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, cores ------
th=(--config "$TINY" --set train.steps=1 --set train.warmup=0 --set train.eval_every=0)
# (the suite sets OPENBLAS_NUM_THREADS=1: kept for OpenBLAS, and said)
for c in "3:--threads 3:OMP_NUM_THREADS=2:(--threads; OpenBLAS 1, OPENBLAS_NUM_THREADS)" \
         "2::OMP_NUM_THREADS=2:(OMP_NUM_THREADS; OpenBLAS 1" "2::SLURM_CPUS_PER_TASK=2:(SLURM_CPUS_PER_TASK;" \
         "1::OMP_NUM_THREADS=bogus:(oversubscribed: 1 per rank)"; do
    IFS=: read -r n opt env src <<<"$c"
    rm -rf ckth
    # shellcheck disable=SC2086
    env "$env" timeout 120 "$MPIRUN" --oversubscribe -n 4 "$RA" train "${th[@]}" $opt --checkpoint-dir ckth \
        >out 2>err </dev/null
    report "threads from ${opt:-$env}: the start line says $n $src" \
        "$(grep -qF "| threads $n $src" out || grep -m1 '^train:' out; grep -m1 error err)"
    # the oversubscription warning names a given count's source (none given: 1 each)
    given=${src#(}; given=${given%%;*}
    case $given in oversub*) want="1 thread each$" ;; *) want="each ($given)$" ;; esac
    report "threads from ${opt:-$env}: the oversubscription warning says '$want'" \
        "$(grep -q "oversubscribed): .*$want" err || grep -m1 warning err)"
done

# ---- OpenBLAS's kernels: never its generic pre-AVX2 ones on a CPU with AVX2 ----------
# (Debian 12's OpenBLAS 0.3.21 does not know Emerald Rapids, model 207, and loads
# its SSE3 "Prescott" kernels there; ringattn re-executes with OPENBLAS_CORETYPE)
generic='Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Sandybridge|Opteron|Opteron_SSE3|Barcelona|Bobcat|Bulldozer|Piledriver'
kern() { grep -m1 -o 'OpenBLAS [A-Za-z]* [A-Za-z_0-9]*' out | head -1 | awk '{ print $3 }'; }
avx2=0
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && avx2=1
env -u OPENBLAS_CORETYPE -u RINGATTN_BLAS_CHOSE timeout 120 "$MPIRUN" --oversubscribe -n 2 "$RA" train "${th[@]}" \
    --checkpoint-dir ckbl >out 2>err </dev/null
k=$(kern)
why=""
[ -n "$k" ] || why="no kernels on the start line: $(grep -m1 '^train:' out) $(grep -m1 error err); "
[ "$avx2" = 1 ] && echo "$k" | grep -qxE "$generic" && why+="generic $k kernels on a CPU with AVX2 and FMA; "
grep -q 'generic .* kernels' err && why+="warned although re-executed: $(grep -m1 generic err); "
report "OpenBLAS kernels (${k:-?}): AVX2 or better on a CPU that has AVX2" "$why"
# the user's OPENBLAS_CORETYPE is kept, even a slow one
rm -rf ckbl
env -u RINGATTN_BLAS_CHOSE OPENBLAS_CORETYPE=Prescott timeout 120 "$MPIRUN" --oversubscribe -n 2 "$RA" train \
    "${th[@]}" --checkpoint-dir ckbl >out 2>err </dev/null
report "OPENBLAS_CORETYPE=Prescott is kept (start line: $(kern))" \
    "$([ "$(kern)" = Prescott ] || grep -m1 '^train:' out; grep -m1 error err; grep -m1 'set by ringattn' out)"
# no re-execution possible (the marker already set): the warning names the fix
if [ "$avx2" = 1 ]; then
    rm -rf ckbl
    env -u OPENBLAS_CORETYPE RINGATTN_BLAS_CHOSE=test timeout 120 "$MPIRUN" --oversubscribe -n 2 "$RA" train \
        "${th[@]}" --checkpoint-dir ckbl >out 2>err </dev/null
    k=$(kern)
    if echo "$k" | grep -qxE "$generic"; then
        report "generic $k kernels loaded and not replaced: one warning naming OPENBLAS_CORETYPE" \
            "$([ "$(grep -c 'set OPENBLAS_CORETYPE=' err)" = 1 ] || { echo 'warnings:'; grep -c generic err; })"
    else
        report "OpenBLAS knows this CPU ($k): no kernel warning" "$(grep -m1 'generic .* kernels' err)"
    fi
fi

# ---- Bit Cipher codes of a file's bytes ----------------------------------------------
printf 'aaaabbbcc d\n' >cip.txt
ra 1 cipher --data cip.txt
c1=$(cat out)
ra 3 cipher --data cip.txt
why=""
[ "$(cat out)" = "$c1" ] || why="P=3 differs; "
# 'a' (4) is rank 0 -> 100000000, 'b' (3) rank 1 -> 010000000, 'c' (2) rank 2 -> 001000000
echo "$c1" | grep -q '^97 4 0 100000000$' || why+="a; "
echo "$c1" | grep -q '^98 3 1 010000000$' || why+="b; "
echo "$c1" | grep -q '^99 2 2 001000000$' || why+="c; "
[ "$(echo "$c1" | grep -vc '^#')" -eq 256 ] || why+="expected 256 lines; "
report "cipher: codes by frequency, one line per byte, equal at P = 1 and 3" "$why"
mkfifo cipfifo
ra 2 cipher --data cipfifo
report "cipher --data FIFO is refused at once, by name" "$([ $? -ne 0 ] && grep -q 'cipfifo: is a FIFO' err || cat err)"

# ---- warm starts: Bit Cipher embeddings and the closed-form head ----------------------
cat "$CONFIGS"/../README.md "$CONFIGS"/../docs/*.md >text.txt
txt=("${common[@]}" --set data.source=file --set data.path="$T/text.txt" --set data.seq_len=128
     --set train.warmup=0 --set train.eval_every=20 --set model.tie_embeddings=0)
warm=("${txt[@]}" --set model.embed_init=bitcipher --set model.head_init=explicit)
eval0() { grep '"step": 0,' "$1" | grep -o '"eval_loss": [^,]*' | awk '{print $2}'; }
ra 1 train "${txt[@]}" --metrics rnd.jsonl --checkpoint-dir ckr
why=$([ $? -eq 0 ] || tail -3 err)
ra 1 train "${warm[@]}" --metrics w1.jsonl --checkpoint-dir ckw1
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q '^warm start: embedding bitcipher (9 bits) | head explicit' out || why+="no warm start line: $(head -3 out); "
r0=$(eval0 rnd.jsonl) w0=$(eval0 w1.jsonl)
awk -v r="$r0" -v w="$w0" 'BEGIN { exit !(r != "" && w != "" && w <= r - 1) }' ||
    why+="step-0 held-out loss: explicit $w0, random $r0 (want at least 1 nat lower); "
report "explicit head: step-0 held-out loss at least 1 nat below random ($w0 vs $r0)" "$why"
# the checkpoint stores the config, paths included (with metrics, absolute):
# the same command again in the same place, the first run's files moved aside
mv ckw1 ckw1.first && mv w1.jsonl w1.first.jsonl
ra 1 train "${warm[@]}" --metrics w1.jsonl --checkpoint-dir ckw1
why=$([ $? -eq 0 ] || tail -3 err)
cmp -s ckw1.first/step-00000020.ckpt ckw1/step-00000020.ckpt || why+="two runs gave different checkpoints; "
report "warm-started training is deterministic (identical checkpoints)" "$why"
ra 4 train "${warm[@]}" --set run.layout=striped --metrics w4.jsonl --checkpoint-dir ckw4
why=$([ $? -eq 0 ] || tail -3 err)
[ -z "$why" ] && why=$(same_losses w4.jsonl w1.jsonl 2>/dev/null)
report "bitcipher + explicit, P=4 striped: 20 losses equal P=1 within 1e-4" "$why"
cooc=("${txt[@]}" --set model.embed_init=cooc --set model.head_init=explicit --set model.warm_radius=3)
ra 1 train "${cooc[@]}" --metrics c1.jsonl --checkpoint-dir ckc1
why=$([ $? -eq 0 ] || tail -3 err)
ra 3 train "${cooc[@]}" --metrics c3.jsonl --checkpoint-dir ckc3
why+=$([ $? -eq 0 ] || tail -3 err)
[ -z "$why" ] && why=$(same_losses c3.jsonl c1.jsonl 2>/dev/null)
cmp -s <(losses c1.jsonl) <(losses w1.jsonl) && why+="cooc changed nothing; "
report "cooc + explicit, P=3: 20 losses equal P=1 within 1e-4" "$why"
rcl=("${common[@]}" --set model.embed_init=bitcipher --set model.warm_seqs=64)
ra 1 train "${rcl[@]}" --metrics rc1.jsonl --checkpoint-dir ckrc1
why=$([ $? -eq 0 ] || tail -3 err)
grep -q '| 2048 training tokens' out || why+="expected 64 x 32 tokens counted: $(grep warm out); "
ra 2 train "${rcl[@]}" --metrics rc2.jsonl --checkpoint-dir ckrc2
why+=$([ $? -eq 0 ] || tail -3 err)
[ -z "$why" ] && why=$(same_losses rc2.jsonl rc1.jsonl 2>/dev/null)
report "bitcipher on the recall task, P=2: losses equal P=1" "$why"
ra 1 train "${common[@]}" --set model.head_init=explicit --set model.embed_init=bitcipher
report "explicit head with tied embeddings is refused" "$([ $? -ne 0 ] && grep -q 'tie_embeddings = 0' err || cat err)"

# ---- errors ----------------------------------------------------------------------
printf '[model]\ndim = 32\nfrobs = 3\n' >bad.ini
ra 2 train --config bad.ini
report "unknown config key: file:line, non-zero exit" "$([ $? -ne 0 ] && grep -q 'bad.ini:3' err && grep -q frobs err || { echo rc; cat err; })"
ra 2 train --config "$TINY" --set model.heads=3
report "--set with an inconsistent value is refused" "$([ $? -ne 0 ] && grep -q 'heads' err || cat err)"
cp ckA/step-00000020.ckpt bad.ckpt
printf '\x55' | dd of=bad.ckpt bs=1 seek=300 conv=notrunc 2>/dev/null
ra 2 train --resume bad.ckpt --checkpoint-dir ckC
report "a corrupt checkpoint is refused" "$([ $? -ne 0 ] && grep -qi 'checksum\|corrupt' err && [ ! -e ckC ] || { cat err; ls ckC; })"
head -c 1000 ckA/step-00000020.ckpt >short.ckpt
ra 2 eval --checkpoint short.ckpt
report "a truncated checkpoint is refused" "$([ $? -ne 0 ] && grep -qi 'truncated' err || cat err)"
ra 1 train --set model.dim=64 --resume ckA
report "a checkpoint of another model is refused" "$([ $? -ne 0 ] && grep -q 'changes model.dim' err || cat err)"
# a --set that changes the model and breaks a check of its own (the recall task's vocabulary):
# refused for changing the model, which is the cause to drop it for
ra 1 eval --checkpoint ckA --set model.vocab=100
report "eval --set model.vocab=100: refused for changing the checkpoint's model" \
    "$([ $? -ne 0 ] && grep -q 'changes model.vocab of the checkpoint' err || cat err)"

# ---- a resume on a data file that changed since the checkpoint: warned ------------------
# (the checkpoint records data.path's size; the same data: no warning)
head -c 50000 text.txt >grow.txt
grow=(--config "$TINY" --set data.source=file --set data.path="$T/grow.txt" --set train.steps=4 --set train.warmup=0
      --set train.eval_every=0)
ra 1 train "${grow[@]}" --checkpoint-dir ckg
why=$([ $? -eq 0 ] || tail -3 err)
ra 1 train --resume ckg --set train.steps=5 --checkpoint-dir ckg1
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q 'warning: train: data.path' err && why+="warned on the same data: $(grep warning err); "
echo more >>grow.txt
ra 1 train --resume ckg --set train.steps=5 --checkpoint-dir ckg2
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q "warning: train: data.path $T/grow.txt holds 50005 bytes, 50000 when the checkpoint was written" err ||
    why+="no warning: $(head -3 err); "
report "a resume on data.path changed since the checkpoint: warned with both sizes (not on the same data)" "$why"
head -c 30000 text.txt >other.txt
ra 1 train --resume ckg --set data.path="$T/other.txt" --set train.steps=5 --checkpoint-dir ckg3
why=$([ $? -eq 0 ] || tail -3 err)
grep -q 'warning: train: data.path' err && why+="warned: $(grep warning err); "
report "... not when --set data.path names other data on purpose" "$why"
# the same size, other bytes (and checkpoints record a hash of the bytes): warned too; a
# file past 16 MiB is hashed by 256 blocks spread over it, 14 or more in any MiB of it
head -c 50000 text.txt >same.txt
ra 1 train "${grow[@]}" --set data.path="$T/same.txt" --checkpoint-dir cksame
why=$([ $? -eq 0 ] || tail -3 err)
{ tail -c 25000 text.txt | head -c 25000; head -c 25000 text.txt; } >rot.txt && mv rot.txt same.txt
ra 1 train --resume cksame --set train.steps=5 --checkpoint-dir cksame1
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q "warning: train: data.path $T/same.txt holds other bytes than when the checkpoint was written (the same size, 50000 bytes" err ||
    why+="no warning: $(head -3 err); "
head -c $((17 << 20)) /dev/urandom >big.bin
ra 1 train "${grow[@]}" --set data.path="$T/big.bin" --checkpoint-dir ckbig
why+=$([ $? -eq 0 ] || tail -3 err)
ra 1 train --resume ckbig --set train.steps=5 --checkpoint-dir ckbig1
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q 'warning: train: data.path' err && why+="warned on the same big file: $(grep warning err); "
head -c $((1 << 20)) /dev/urandom | dd of=big.bin bs=1M seek=8 conv=notrunc status=none # its middle MiB
ra 1 train --resume ckbig --set train.steps=5 --checkpoint-dir ckbig2
why+=$([ $? -eq 0 ] || tail -3 err)
grep -q "warning: train: data.path $T/big.bin holds other bytes than when the checkpoint was written (the same size, 17825792 bytes" err ||
    why+="17 MiB, its middle MiB rewritten: no warning: $(head -3 err); "
rm -f big.bin
report "a resume on data.path of the same size with other bytes: warned (50000 bytes whole, 17 MiB sampled; not on the same file)" "$why"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
