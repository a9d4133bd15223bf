#!/usr/bin/env bash
# test_grid.sh RINGATTN MPIRUN CONFIGS - the data x context grid (run.dp)
# and sharded optimizer states (train.shard_optimizer), end to end:
#   - grids dp x cp at P = 4, 6, 8 give the losses of one rank over 20
#     steps, each within 1e-5 relative (float32 summation order);
#   - the shards do not divide the parameter count at P = 6 and 3;
#   - a checkpoint resumes on another grid and sharding (2x2 -> 1x3,
#     4x1 -> 1x1, sharded -> unsharded, unsharded -> sharded), the losses of
#     steps 11-20 within 1e-4 relative of the one-rank run;
#   - run.dp not dividing P, and a batch not divisible by run.dp (or by
#     run.dp x train.accum), are errors naming the keys, non-zero exit;
#   - eval of a grid's checkpoint on 3 ranks prints the loss of one rank, and
#     with --set run.dp = 2, 4 (also of a train.accum = 2 checkpoint whose
#     groups' shares train.accum does not divide) the loss of one rank;
#   - a rank killed mid-run in a 2x2 grid ends the job within 30 s, named;
#     a rank stopped (hung) is named by its world rank after the peer timeout,
#     also in its ring partner's ring-transfer message.
# Every distributed run is compared with a one-rank run, never a constant.
set -u
CONFIGS=$(cd "$3" && pwd) # before lib_cli.sh moves into its temporary directory
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"

# batch 12: divisible by every dp below; seq_len 48: at least 8 ranks per ring
base=(--config "$CONFIGS/tiny.ini" --set train.batch=12 --set data.seq_len=48 --set train.eval_every=0
      --set train.checkpoint_every=10 --set run.threads=1)

# run DIR N ARGS...: train on N ranks into DIR (checkpoints, metrics)
run() {
    local d=$1 n=$2
    shift 2
    mpi "$n" train "${base[@]}" --checkpoint-dir "$d" --metrics "$d.jsonl" "$@"
}
# losses FILE: "step loss" per training line of a metrics file
losses() { sed -n 's/^{"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p' "$1"; }
# agree A B TOL: every step of B has the loss of A within TOL relative; prints
# the largest difference, or why not
agree() {
    awk -v tol="$3" '
        NR == FNR { ref[$1] = $2; next }
        { want++; if (!($1 in ref)) next; n++
          d = ref[$1] - $2; if (d < 0) d = -d; r = d / (ref[$1] < 0 ? -ref[$1] : ref[$1])
          if (r > m) m = r; if (r > tol) bad++ }
        END { if (n == 0 || n != want) { printf "%d of %d steps found in the reference", n, want; exit 1 }
              if (bad) { printf "%d steps differ by more than %g (max %.3g)", bad, tol, m; exit 1 }
              printf "max relative difference %.3g", m }' <(losses "$1") <(losses "$2")
}

# ---- the one-rank reference -----------------------------------------------------------
run ref 1
why=$(status $?)
[ "$(losses ref.jsonl | wc -l)" -eq 20 ] || why+="reference has $(losses ref.jsonl | wc -l) loss lines, expected 20; "
report "one-rank reference run, 20 steps" "$why"
NP=$(sed -n 's/^train: \([0-9]*\) parameters.*/\1/p' out)

# ---- grids equal the one-rank run ----------------------------------------------------
# grid DESC N DP SHARD [ARGS...]
grid() {
    local n=$2 dp=$3 sh=$4 why d="g$2x$3$4"
    shift 4
    run "$d" "$n" --set run.dp="$dp" --set train.shard_optimizer="$sh" "$@"
    why=$(status $?)
    local cp=$((n / dp)) opt=replicated
    [ "$sh" = true ] && opt=sharded
    grep -q "P=$n = dp $dp x cp $cp .*optimizer $opt" out || why+="start line lacks 'P=$n = dp $dp x cp $cp ... $opt'; "
    local a
    a=$(agree ref.jsonl "$d.jsonl" 1e-5) || why+="$a; "
    report "P=$n as dp $dp x cp $cp, optimizer $opt: 20 losses equal one rank's within 1e-5 ($a)" "$why"
}
grid "" 4 2 true
grid "" 4 4 false
grid "" 4 1 true
grid "" 6 3 true
grid "" 6 2 true --set train.accum=2
grid "" 8 2 true

why=""
[ -n "$NP" ] || why+="no parameter count in the start line; "
[ -n "$NP" ] && [ $((NP % 6)) -ne 0 ] && [ $((NP % 3)) -ne 0 ] || why+="$NP parameters divide by 6 or 3: the uneven-shard cases test nothing; "
report "the $NP parameters do not divide into 6 or 3 shards (the uneven shards of P = 6 above, P = 3 below)" "$why"

# ---- verbose: the grid printout ------------------------------------------------------
mpi 4 --verbose train "${base[@]}" --set train.steps=1 --set train.warmup=0 --set run.dp=2 --checkpoint-dir gv
why=$(status $?)
for r in 0 1 2 3; do
    g=$((r / 2)) p=$((r % 2))
    grep -q "^grid: rank $r/4 on .* | dp group $g/2 | ring position $p/2$" out || why+="no grid line for rank $r (group $g, position $p); "
done
report "--verbose prints each rank's host, dp group and ring position" "$why"

# ---- resume on another grid ----------------------------------------------------------
# resume DESC FROM N DP SHARD
resume() {
    local desc=$1 from=$2 n=$3 dp=$4 sh=$5 d="r$2-$3x$4$5" why a
    mpi "$n" train --resume "$from/step-00000010.ckpt" --set run.dp="$dp" --set train.shard_optimizer="$sh" \
        --checkpoint-dir "$d" --metrics "$d.jsonl"
    why=$(status $?)
    grep -q "resumed from $from/step-00000010.ckpt at step 10" out || why+="did not resume at step 10; "
    [ "$(losses "$d.jsonl" | head -1 | cut -d' ' -f1)" = 11 ] || why+="first step is not 11; "
    a=$(agree ref.jsonl "$d.jsonl" 1e-4) || why+="$a; "
    report "resume $desc: steps 11-20 equal the one-rank run within 1e-4 ($a)" "$why"
}
resume "2x2 sharded -> 1x3 sharded" g4x2true 3 1 true
resume "4x1 replicated -> 1x1" g4x4false 1 1 true
resume "2x2 sharded -> 1x2 replicated" g4x2true 2 1 false
resume "4x1 replicated -> 2x1 sharded" g4x4false 2 2 true
resume "3x2 sharded -> 2x4 sharded" g6x3true 8 2 true
# the checkpoint's run.dp on ranks it does not divide: said to be the checkpoint's
fails "resumed on 3 ranks with the checkpoint's run.dp = 2: refused, naming where run.dp came from" 3 \
    'run\.dp = 2 does not divide the 3 ranks' "that run\.dp is the checkpoint's, which a resumed run keeps unless --set run\.dp changes it" -- \
    train --resume g4x2true/step-00000010.ckpt --checkpoint-dir rdp
fails "the same with --set run.dp = 2: refused, not said to be the checkpoint's" 3 'run\.dp = 2 does not divide the 3 ranks' -- \
    train --resume g4x2true/step-00000010.ckpt --set run.dp=2 --checkpoint-dir rdp
grep -q "checkpoint's" err && report "--set run.dp = 2 on 3 ranks: the message does not blame the checkpoint" "it does: $(grep -m1 error err)"

# ---- eval of a grid's checkpoint: one ring of all its ranks --------------------------
mpi 1 eval --checkpoint g4x2true
why=$(status $?)
one=$(grep -o 'loss [0-9.]* | bpb [0-9.]*' out)
mpi 3 eval --checkpoint g4x2true
why+=$(status $?)
three=$(grep -o 'loss [0-9.]* | bpb [0-9.]*' out)
[ -n "$one" ] && [ "$one" = "$three" ] || why+="1 rank: '$one', 3 ranks: '$three'; "
report "eval of a 2x2 sharded checkpoint on 3 ranks prints one rank's loss ($one)" "$why"
# --set run.dp=N: N groups, each its share of every batch: the same windows and
# loss (held-out, and a file shorter than a batch of windows: its one batch
# padded, whole groups with nothing to count at dp = 4)
cp "$CONFIGS/tiny.ini" evdata.txt
for src in held-out evdata.txt; do
    dat=()
    [ "$src" = held-out ] || dat=(--data "$src")
    line() { grep -o 'loss [0-9.]* | [a-z/]* [0-9.]* | accuracy [0-9.]*% | [0-9]* targets' out; }
    mpi 1 eval --checkpoint g4x2true "${dat[@]}"
    why=$(status $?)
    ref=$(line)
    for d in 2 4; do
        mpi 4 eval --checkpoint g4x2true "${dat[@]}" --set run.dp=$d
        why+=$(status $?)
        got=$(line)
        [ -n "$ref" ] && [ "$got" = "$ref" ] || why+="run.dp=$d: '$got', 1 rank: '$ref'; "
    done
    report "eval --set run.dp=2 and 4 on 4 ranks ($src): one rank's loss and targets ($ref)" "$why"
done
fails "eval --set run.dp=3 on 4 ranks: says --set run.dp=1" 4 'run\.dp = 3' 'does not divide' '--set run.dp=1' -- \
    eval --checkpoint g4x2true --set run.dp=3
fails "eval --set run.dp=0" 2 'run\.dp' -- eval --checkpoint g4x2true --set run.dp=0
fails "eval --set run.dp=99999999999 (over int)" 2 'run\.dp' -- eval --checkpoint g4x2true --set run.dp=99999999999
# eval accumulates no gradients: a checkpoint of train.batch 12, train.accum 2
# evaluates at run.dp = 4 (3 windows a group, not a multiple of train.accum)
# the targets and loss of one rank; a run.dp not dividing train.batch is
# refused naming what eval needs, not train.accum
run acc2 1 --set train.accum=2 --set train.steps=2 --set train.warmup=0
why=$(status $?)
mpi 1 eval --checkpoint acc2
why+=$(status $?)
ref=$(line)
mpi 4 eval --checkpoint acc2 --set run.dp=4
why+=$(status $?)
got=$(line)
[ -n "$ref" ] && [ "$got" = "$ref" ] || why+="run.dp=4: '$got', 1 rank: '$ref'; "
report "eval --set run.dp=4 of a train.accum = 2, train.batch = 12 checkpoint: one rank's loss and targets ($ref)" "$why"
fails "eval --set run.dp=4 --set train.batch=10: refused naming run.dp and train.batch" 4 \
    'eval: run\.dp = 4 does not divide train\.batch = 10' 'give a run\.dp that divides 10' -- \
    eval --checkpoint acc2 --set run.dp=4 --set train.batch=10
grep -q 'train\.accum' err && report "the refusal names no train.accum" "it does: $(grep -m1 error err)"
rm -rf acc2 acc2.jsonl

# train's evaluation reports kappa of the batch it evaluated: summed over every
# ring of a grid (a ring's share of the batch gave 1.07e+03 at dp 2 and inf at dp 4)
kap() { grep -o '^eval  step 0 | .*kappa max [0-9.e+inf]*' out | sed 's/.*kappa max //'; }
why=""
run kp1 1 --set train.steps=1 --set train.warmup=0 --set train.eval_every=1
why+=$(status $?)
k1=$(kap)
for g in "4 2" "4 4" "6 3"; do
    set -- $g
    run "kp$1x$2" "$1" --set train.steps=1 --set train.warmup=0 --set train.eval_every=1 --set run.dp="$2"
    why+=$(status $?)
    k=$(kap)
    # the same Gram sums in another order: printed to 3 digits, equal
    [ -n "$k1" ] && [ "$k" = "$k1" ] || why+="P=$1 dp=$2: kappa max '$k', 1 rank '$k1'; "
done
report "the evaluation's kappa on grids 2x2, 4x1, 3x2: one rank's ($k1)" "$why"
rm -rf kp1 kp1.jsonl kp4x2 kp4x2.jsonl kp4x4 kp4x4.jsonl kp6x3 kp6x3.jsonl

# ---- bad grids -----------------------------------------------------------------------
fails "run.dp = 3 on 4 ranks: train named" 4 'error: train: run\.dp = 3' 'does not divide' '4 ranks' -- \
    train "${base[@]}" --set run.dp=3 --checkpoint-dir bad1
# run.dp not dividing the ranks is said first, though train.batch (10) is not
# divisible by it either: mending the batch would only meet this error next
fails "run.dp = 3 on 4 ranks, train.batch = 10: the ranks said first" 4 'error: train: run\.dp = 3 does not divide' -- \
    train "${base[@]}" --set run.dp=3 --set train.batch=10 --checkpoint-dir bad1
fails "run.dp = 1048576 (its largest) on 4 ranks: does not divide them" 4 'error: train: run\.dp = 1048576 does not divide the 4 ranks' -- \
    train "${base[@]}" --set run.dp=1048576 --checkpoint-dir bad1
fails "bench train: the same, said first" 4 'error: bench train: run\.dp = 3 does not divide' -- \
    bench train "${base[@]}" --set run.dp=3 --set train.batch=10 -n 1 -w 0
fails "eval --set run.dp=3 on 4 ranks, batch 10: the ranks said first" 4 'error: eval: run\.dp = 3 does not divide' -- \
    eval --checkpoint g4x2true --set run.dp=3 --set train.batch=10
fails "train.batch = 10 with run.dp = 4" 4 'train\.batch = 10' 'run\.dp = 4' -- \
    train "${base[@]}" --set train.batch=10 --set run.dp=4 --checkpoint-dir bad2
fails "train.batch = 12, run.dp = 2, train.accum = 4 (6 per group)" 4 'train\.accum = 4' 'run\.dp' -- \
    train "${base[@]}" --set run.dp=2 --set train.accum=4 --checkpoint-dir bad3
fails "run.dp = 0" 2 'run\.dp' -- train "${base[@]}" --set run.dp=0 --checkpoint-dir bad4
fails "train.shard_optimizer = maybe" 2 'train\.shard_optimizer' -- \
    train "${base[@]}" --set train.shard_optimizer=maybe --checkpoint-dir bad5

# grid_fault SIGNAL RANK DIR PATTERN DESC STEP [ARGS...]: a 2x2 grid trains
# until step STEP (a multiple of train.log_every: 20, or set in ARGS), then
# world rank RANK gets SIGNAL; the job must end within 30 s, non-zero, with a
# message matching PATTERN (a stopped rank is killed afterwards) (with the
# second run of test_faults.sh's SIGSTOP case when the first stalled with no
# message at all)
grid_fault() {
    local sig=$1 rank=$2 dir=$3 pat=$4 desc=$5 step=$6 victim why="" try
    shift 6
    for try in 1 2; do
        rm -rf "$dir"
        bg_start 4 train "${base[@]}" --set train.steps=1000000 --set train.warmup=0 \
            --set train.log_every=20 --set train.checkpoint_every=0 --set run.dp=2 "$@" --checkpoint-dir "$dir"
        wait_for "^step $step/" out 60
        victim=$(rank_pid "$rank")
        [ -n "$victim" ] && kill -"$sig" "$victim"
        bg_finish 60
        [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
        [ -n "$hung" ] && ! grep -q 'ringattn: error' err || break
        [ "$try" -eq 1 ] && desc+=" (second run; the first stalled with no message: $hung)"
    done
    [ -n "$victim" ] || why+="rank $rank not found (the run did not reach step 40: $(tail -2 err)); "
    [ "$rc" -ne 0 ] || why+="exit status 0; "
    awk -v s="$secs" 'BEGIN { exit !(s <= 30) }' || why+="took ${secs}s; "
    grep -q "$pat" err || why+="no message matches '$pat': $(grep -m2 error err | tr '\n' ' '); "
    report "$desc: job ended in ${secs}s, exit $rc" "$why"
}
# ---- a rank killed in a grid ---------------------------------------------------------
grid_fault KILL 3 gk 'rank 3' "SIGKILL of rank 3 of a 2x2 grid, rank 3 named" 40
# ---- a rank stopped in a grid: the peer timeout names it by its world rank -----------
# rank 3 is ring position 1 of group 1 (rings {0, 1} and {2, 3}): a message
# naming ring ranks would say 1. Long sequences keep the ranks in the ring
# most of the time, so rank 3's partner, rank 2, mostly times out in a ring
# wait, whose message must name rank 3 too; every ring message names the
# printing rank's own partner (R xor 1). Rank 3 stopped in the gradient
# reduction leaves rank 2 no ring wait to time out in: then once more, up to
# 3 runs. (At L = 1024 and dim 64 that was one run in six, and three in a
# row once in CI at 3 tests at a time; at L = 4096, dim 32, 2 sequences per
# group, rank 2 named rank 3 in 14 runs of 14, 8 of them beside two busy
# loops.)
ring_msgs() {
    awk -v errs="$(grep -m2 error err | tr '\n' ' ')" '/ring transfer \(from rank/ {
             r = $2; sub(/\/.*/, "", r); p = (r % 2 == 0) ? r + 1 : r - 1
             if (index($0, "ring transfer (from rank " p ", to rank " p "): nothing from rank " p " ") == 0) {
                 printf "rank %s names another ring than {%s, %s}: %s; ", r, r, p, $0; bad = 1 }
             if (r == 2) two = 1 }
         END { if (!bad && !two) printf "rank 2 printed no ring-transfer error in 3 runs: %s", errs
               exit bad ? 1 : !two ? 2 : 0 }' err
}
for try in 1 2 3; do
    grid_fault STOP 3 gs 'lost: rank 3 (no answer' "SIGSTOP of rank 3 of a 2x2 grid (run.timeout = 3), world rank 3 named" 4 \
        --set run.timeout=3 --set data.seq_len=4096 --set model.dim=32 --set train.batch=4 --set train.log_every=2
    rm -rf gs
    why=$(ring_msgs)
    [ $? -eq 2 ] || break
done
report "the stopped rank's ring partner names it by world rank: 'ring transfer (from rank 3, to rank 3)'" "$why"

# ---- a rank lost while its optimizer shard streams into a checkpoint -----------------
# 17 M parameters (model.vocab 131072): each checkpoint is 200 MB, written by
# rank 0 while it pulls the moments of ranks 1-3. Rank 1 is stopped as soon as
# the step-4 checkpoint's .tmp appears, before rank 0 has asked it for its
# adam_v shard: the job must end naming rank 1, publish no step-4 checkpoint
# and keep the step-2 one whole (eval reads it). The ranks waiting for rank 0's
# requests time out first and end the job while rank 0 still writes, so the
# step-4 .tmp may stay; resuming from step 2 into the same directory removes
# it (train_io.c: no other run holds the directory) and writes step 4.
bg_start 4 train --config "$CONFIGS/tiny.ini" --set model.vocab=131072 --set model.dim=128 \
    --set train.steps=1000000 --set train.warmup=0 --set train.eval_every=0 --set train.checkpoint_every=2 \
    --set run.threads=1 --set run.timeout=5 --checkpoint-dir gw
wait_for '^checkpoint: gw/step-00000002.ckpt' out 120
for ((i = 0; i < 6000; i++)); do [ -e gw/step-00000004.ckpt.tmp ] && break; sleep 0.01; done
victim=$(rank_pid 1)
[ -e gw/step-00000004.ckpt.tmp ] && [ -n "$victim" ] && kill -STOP "$victim"
bg_finish 60
[ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
why=""
[ -n "$victim" ] || why+="rank 1 not found: $(tail -2 err); "
[ "$rc" -ne 0 ] || why+="exit status 0; "
awk -v s="$secs" 'BEGIN { exit !(s <= 30) }' || why+="took ${secs}s; "
grep -q 'lost: rank 1 (no answer' err || why+="rank 1 not named as lost: $(grep -m2 error err | tr '\n' ' '); "
[ -e gw/step-00000004.ckpt ] && why+="the step-4 checkpoint was written; "
[ "$(readlink gw/last.ckpt)" = step-00000002.ckpt ] || why+="last.ckpt -> $(readlink gw/last.ckpt); "
timeout 120 "$MPIRUN" -n 1 "$RA" eval --checkpoint gw/step-00000002.ckpt >eout 2>eerr </dev/null ||
    why+="the step-2 checkpoint does not load: $(tail -2 eerr); "
report "a rank stopped while its optimizer shard streams to the checkpoint writer: job ended in ${secs}s, exit $rc, rank 1 named, no step-4 checkpoint, the step-2 one kept" "$why"
mpi 4 train --resume gw/step-00000002.ckpt --set train.steps=4 --checkpoint-dir gw
why=$(status $?)
[ "$(readlink gw/last.ckpt)" = step-00000004.ckpt ] || why+="last.ckpt -> $(readlink gw/last.ckpt); "
[ -e gw/step-00000004.ckpt.tmp ] && why+="the stale .tmp is still there; "
report "resumed from step 2 in the same directory: the stale .tmp gone, step 4 written" "$why"
rm -rf gw

finish
