#!/usr/bin/env bash
# test_noflock.sh RINGATTN MPIRUN CONFIGS NOFLOCK - a file system without
# flock (some NFS mounts, FUSE, CIFS), simulated by preloading NOFLOCK
# (noflock.c: every flock fails with ENOLCK). The locks only refuse a
# second run into the same outputs, so without them:
#   - train says once that a second run into its checkpoint directory
#     would not be refused, then trains, checkpoints, writes its metrics
#     and resumes, its losses those of the same runs with locks (1e-6
#     relative);
#   - attn, gen and generate write their outputs;
#   - an output's leftover <out>.tmp is still refused (it needs no lock).
set -u
CONFIGS=$(cd "$3" && pwd) # before lib_cli.sh moves into its temporary directory
NOFLOCK=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"

tr=(--config "$CONFIGS/tiny.ini" --set train.warmup=1 --set train.checkpoint_every=2 --set train.eval_every=0)
losses() { sed -n 's/^{"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p' "$1"; }

# the reference, with locks: 4 steps, then resumed to 6
mpi 2 train "${tr[@]}" --set train.steps=4 --checkpoint-dir ref --metrics ref.jsonl
why=$(status $?)
mpi 2 train --set train.steps=6 --checkpoint-dir ref --metrics ref.jsonl --resume ref
report "train 4 steps, resumed to 6, with locks (the reference, P=2)" "$why$(status $?)"

LD_PRELOAD=$NOFLOCK mpi 2 train "${tr[@]}" --set train.steps=4 --checkpoint-dir ck --metrics ck.jsonl
why=$(status $?)
[ "$(grep -c 'cannot lock it (No locks available): a second run into it at the same time would not be refused' err)" -eq 1 ] ||
    why+="not one warning about the lock: $(grep -c warning err) warnings: $(grep -m1 . err); "
[ "$(grep -vc 'cannot lock it' err)" -eq 0 ] || why+="other stderr: $(grep -v 'cannot lock it' err | head -1); "
[ -s ck/step-00000004.ckpt ] && [ -s ck/step-00000002.ckpt ] && [ "$(readlink ck/last.ckpt)" = step-00000004.ckpt ] ||
    why+="checkpoints: $(ls ck | tr '\n' ' '); "
report "train without flock (P=2): one warning, 4 steps, checkpoints 2 and 4" "$why$(partials)"

LD_PRELOAD=$NOFLOCK mpi 2 train --set train.steps=6 --checkpoint-dir ck --metrics ck.jsonl --resume ck
why=$(status $?)
[ -s ck/step-00000006.ckpt ] || why+="no step 6 checkpoint; "
# every step of the interrupted run, resumed, has the reference's loss
d=$(awk 'NR == FNR { ref[$1] = $2; next } { n++; x = ref[$1] - $2; if (x < 0) x = -x; x /= ref[$1]; if (x > m) m = x }
    END { printf "%d %.3g", n, m }' <(losses ref.jsonl) <(losses ck.jsonl))
[ "${d% *}" -eq 6 ] && awk -v m="${d#* }" 'BEGIN { exit !(m <= 1e-6) }' ||
    why+="steps, largest relative loss difference against the reference: $d; "
report "... resumed to step 6 without flock: the reference's losses (1e-6 relative), metrics appended" "$why$(partials)"

LD_PRELOAD=$NOFLOCK mpi 1 gen --dir g --L 32 --seed 2
report "gen without flock: its four files" "$(status $?)$([ -s g/dout.npy ] || echo 'no g/dout.npy')$(partials)"
mpi 2 attn --q g/q.npy --k g/k.npy --v g/v.npy --out ref.o.npy
LD_PRELOAD=$NOFLOCK mpi 2 attn --q g/q.npy --k g/k.npy --v g/v.npy --out o.npy --trace t.json
why=$(status $?)
cmp -s o.npy ref.o.npy || why+="o.npy differs from the run with locks; "
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' t.json 2>/dev/null || why+="t.json is not JSON; "
report "attn --out --trace without flock (P=2): the output of a run with locks, the trace" "$why$(partials)"

LD_PRELOAD=$NOFLOCK mpi 2 generate --checkpoint ck --prompt abc --tokens 8 --temperature 0 --out gen.txt
why=$(status $?)
mpi 2 generate --checkpoint ref --prompt abc --tokens 8 --temperature 0 --out ref.txt
cmp -s gen.txt ref.txt || why+="gen.txt differs from the run with locks; "
report "generate --out without flock (P=2): the text of a run with locks" "$why$(partials)"

printf 'mine\n' >o.npy.tmp
LD_PRELOAD=$NOFLOCK mpi 2 attn --q g/q.npy --k g/k.npy --v g/v.npy --out o.npy
rc=$?
report "a leftover o.npy.tmp without flock: still refused, kept" "$([ $rc -ne 0 ] || echo 'exit 0; ')$(
    grep -q 'o.npy.tmp exists' err || echo "no 'o.npy.tmp exists': $(grep -m1 error err); ")$(
    [ "$(cat o.npy.tmp)" = mine ] || echo 'o.npy.tmp changed')"
rm -f o.npy.tmp

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
