#!/usr/bin/env bash
# test_faults.sh RINGATTN MPIRUN CONFIGS - what a run does when things go
# wrong: a rank killed (SIGKILL) or stopped (SIGSTOP) mid-run, a preemption
# signal (SIGUSR1) and the resume after it, a full checkpoint directory, and
# NaN in the gradients. Every check names what it saw; "N passed, M failed".
set -u
CONFIGS=$(cd "$3" && pwd) # before lib_cli.sh moves into its temporary directory
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
# the full-directory case mounts a tmpfs in the work directory: unmount it first
cleanup() { mountpoint -q "$T/full" && umount "$T/full"; rm -rf "$T"; }
trap cleanup EXIT
TINY="$CONFIGS/tiny.ini"
long=(--config "$TINY" --set train.steps=1000000 --set train.warmup=0 --set train.eval_every=0
      --set train.log_every=100)

# ---- a rank killed: every rank gone within 30 s, the lost rank named -------------
bg_start 4 train "${long[@]}" --set train.checkpoint_every=50 --checkpoint-dir ckk
wait_for 'checkpoint: ckk/step-00000100' out 60
victim=$(rank_pid 2)
kill -9 "$victim"
bg_finish 60
why=""
[ "$rc" -ne 0 ] || why+="exit status 0; "
awk -v s="$secs" 'BEGIN { exit !(s <= 30) }' || why+="took ${secs}s; "
grep -q 'rank 2' err || why+="no message names rank 2: $(tail -5 err); "
pgrep -f "$RA train" -P "$mp" >/dev/null && why+="ranks left behind; "
"$MPIRUN" -n 2 "$RA" eval --checkpoint ckk >evout 2>&1 || why+="the last checkpoint does not load: $(tail -2 evout); "
report "SIGKILL of rank 2 of 4: all ranks gone in ${secs}s, exit $rc, rank 2 named, last checkpoint loads" "$why"

# ---- a rank stopped (hangs): the peer timeout ends the job naming it -----------------
bg_start 4 train "${long[@]}" --set run.timeout=5 --set run.layout=contiguous --checkpoint-dir cks
wait_for '^step 100/' out 60
victim=$(rank_pid 2)
kill -STOP "$victim"
bg_finish 60
kill -9 "$victim" 2>/dev/null
why=""
[ "$rc" -ne 0 ] || why+="exit status 0; "
awk -v s="$secs" 'BEGIN { exit !(s <= 30) }' || why+="took ${secs}s; "
grep -q 'lost: rank 2 (no answer' err || why+="no message names rank 2 as lost: $(grep -m3 error err); "
report "SIGSTOP of rank 2 of 4 (run.timeout = 5): job ended in ${secs}s naming rank 2" "$why"

# ---- preemption: SIGUSR1 -> checkpoint, exit 75; resume equals an uninterrupted run ---
pre=(--config "$TINY" --set train.steps=1500 --set train.warmup=0 --set train.eval_every=0
     --set train.log_every=100)
mkdir -p a b
cd a
bg_start 4 train "${pre[@]}" --checkpoint-dir ck
wait_for '^step 300/' out 60
kill -USR1 "$mp" # mpirun forwards SIGUSR1 to every rank
bg_finish 60
why=""
[ "$rc" -eq 75 ] || why+="exit status $rc, expected 75; "
grep -q '^stopped by signal SIGUSR1 after step [0-9]* of 1500' out || why+="no stop line: $(tail -2 out) $(tail -2 err); "
stopped=$(grep -o 'after step [0-9]*' out | awk '{print $3}')
"$MPIRUN" --oversubscribe -n 4 "$RA" train --checkpoint-dir ck --resume ck >out2 2>err2 ||
    why+="resume failed: $(tail -2 err2); "
grep -q "resumed from ck/last.ckpt at step $stopped" out2 || why+="did not resume at step $stopped; "
cd ../b
"$MPIRUN" --oversubscribe -n 4 "$RA" train "${pre[@]}" --checkpoint-dir ck >out 2>err || why+="uninterrupted run failed; "
cd ..
cmp -s a/ck/step-00001500.ckpt b/ck/step-00001500.ckpt || why+="final checkpoints differ; "
report "SIGUSR1 at step ${stopped:-?}: exit 75, resumed, final parameters identical to an uninterrupted run" "$why"

# ---- a full checkpoint directory: an error, the last good checkpoint kept ------------
mkdir -p full
if mount -t tmpfs -o size=1000k tmpfs full 2>mnt.err; then
    "$MPIRUN" --oversubscribe -n 2 "$RA" train --config "$TINY" --set train.steps=50 --set train.checkpoint_every=10 \
        --set train.eval_every=0 --checkpoint-dir full/ck >out 2>err
    rc=$?
    why=""
    [ "$rc" -ne 0 ] || why+="exit status 0; "
    grep -q 'No space left on device.*last good checkpoint is still full/ck/last.ckpt (step 20)' err ||
        why+="message: $(head -1 err); "
    ls full/ck/*.tmp >/dev/null 2>&1 && why+="temporary file left; "
    "$MPIRUN" -n 2 "$RA" eval --checkpoint full/ck >evout 2>&1 || why+="last.ckpt does not load: $(tail -1 evout); "
    umount full
    report "full checkpoint directory (1 MB tmpfs): error naming the last good checkpoint, which loads" "$why"
else
    report "full checkpoint directory" "cannot mount a tmpfs to fill: $(cat mnt.err)"
fi

# ---- NaN in the gradients: stop naming step and layer, or skip ----------------------
nan=(--config "$TINY" --set train.steps=20 --set train.eval_every=0)
RINGATTN_INJECT_NAN=7:1 "$MPIRUN" --oversubscribe -n 2 "$RA" train "${nan[@]}" --checkpoint-dir ckn >out 2>err
rc=$?
why=""
[ "$rc" -ne 0 ] || why+="exit status 0; "
grep -q 'step 7: the gradient is not finite.*layer 1' err || why+="message: $(head -1 err); "
[ "$(grep -c 'ringattn: error' err)" -eq 1 ] || why+="expected one error line; "
report "NaN gradient at step 7: stops naming step 7 and layer 1" "$why"
RINGATTN_INJECT_NAN=7:1 "$MPIRUN" --oversubscribe -n 2 "$RA" train "${nan[@]}" --set train.nonfinite=skip \
    --checkpoint-dir ckns >out 2>err
rc=$?
why=""
[ "$rc" -eq 0 ] || why+="exit status $rc: $(tail -2 err); "
grep -q '^step 7: non-finite gradient (first non-finite gradient: layer 1 (feed-forward)): step skipped' out ||
    why+="no skip line; "
[ -e ckns/step-00000020.ckpt ] || why+="did not finish; "
report "NaN gradient at step 7 with train.nonfinite = skip: the step is skipped and said" "$why"

finish
