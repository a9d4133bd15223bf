#!/usr/bin/env bash
# test_trace.sh RINGATTN MPIRUN CONFIGS attn|train - `--trace FILE` end to end
# (two halves, each a meson test of its own, to stay short): attn
# (forward and backward) and train on a tiny config at P = 1 and P = 3,
# bench attn, bench train and generate, each file checked by check_trace.py
# (valid JSON, every rank named, spans per ring pass and per step, durations
# >= 0, monotone nested tracks); the gather in many small rounds; a run that
# fails part-way still writes its trace, marked failed. Hostile --trace paths
# are in test_hostile_attn.sh, scripts/plot_trace.py in test_plots.sh.
set -u
if [ $# -ne 4 ] || { [ "$4" != attn ] && [ "$4" != train ]; }; then
    echo "usage: $0 RINGATTN MPIRUN CONFIGS attn|train" >&2
    exit 2
fi
CHECK="$(cd "$(dirname "$0")" && pwd)/check_trace.py"
CONFIGS=$3
PART=$4
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
TINY="$CONFIGS/tiny.ini"

# traced DESC CHECK-ARGS -- N ARGS...: ringattn ARGS on N ranks exits 0 and
# check_trace.py accepts tr.json
traced() {
    local desc=$1 why='' rc cargs=()
    shift
    while [ "$1" != "--" ]; do cargs+=("$1"); shift; done
    shift
    local n=$1
    shift
    rm -f tr.json
    mpi "$n" "$@"
    rc=$?
    why+=$(status $rc)
    if [ -s tr.json ]; then
        python3 "$CHECK" tr.json --ranks "$n" "${cargs[@]}" >chk 2>&1 || why+="$(grep -m3 FAIL chk | tr '\n' ' '); "
    else
        why+="no trace file; "
    fi
    why+=$(partials)
    report "$desc" "$why"
}

# a stop signal to mpirun (Slurm's preemption, Ctrl-C) with --trace: bench train and
# generate stop at their next step and write what ran, marked (they wrote nothing)
stopped_trace() { # DESC SIGNAL PATTERN READY-FILE READY-BYTES -- N ARGS...
    local desc=$1 sig=$2 pat=$3 ready=$4 bytes=$5 why='' rc
    shift 6
    local n=$1
    shift
    rm -f tr.json out err # the wait below read the last command's out and signalled an mpirun still starting
    # mpirun's grace between forwarding the signal and SIGKILL: 5 s, not its
    # default of 1 (nor 0, as mpi's): 3 tests at a time on 2 cores, a rank
    # once took longer to write its trace and was killed without a word
    LAST="mpirun -n $n ringattn $*"
    OMPI_MCA_odls_base_sigkill_timeout=5 timeout "$TMO" "$MPIRUN" --oversubscribe -n "$n" "$RA" "$@" >out 2>err </dev/null &
    local bg=$!
    for _ in $(seq 600); do [ "$(wc -c <"$ready" 2>/dev/null || echo 0)" -ge "$bytes" ] && break; sleep 0.05; done
    local to
    to=$(pgrep -P "$bg" -x "$(basename "$MPIRUN")" || echo "$bg") # mpirun: timeout forwards no USR1
    case $sig in *-rank1) sig=${sig%-rank1} && to=$(pgrep -P "$to" | tail -1) ;; esac # one rank: every rank stops
    kill -"$sig" "$to"
    wait "$bg"
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || why+="exit status $rc; "
    grep -qE "^ringattn: error: $pat" err || why+="no '$pat' from rank 0: $(grep -m1 error err); "
    [ "$(grep -c 'error:' err)" -eq 1 ] || why+="$(grep -c 'error:' err) error lines, expected rank 0's only; "
    [ -s tr.json ] && python3 - tr.json "$pat" >chk 2>&1 <<'PY' || why+="$(tail -1 chk) "
import json, re, sys
d = json.load(open(sys.argv[1]))
assert re.match("failed: " + sys.argv[2], d["otherData"]["status"]), d["otherData"]["status"]
assert any(e["ph"] == "X" for e in d["traceEvents"]), "no spans"
PY
    [ -s tr.json ] || why+="no trace; "
    report "$desc" "$why"
}
if [ "$PART" = attn ]; then
mpi 1 gen --dir A --H 2 --L 48 --D 8 --seed 3
report "gen A: H=2 L=48 D=8" "$(status $?)"
QKV=(--q A/q.npy --k A/k.npy --v A/v.npy)
GRAD=(--dout A/dout.npy --dq dq.npy --dk dk.npy --dv dv.npy)

for n in 1 3; do
    traced "attn forward+backward, causal zigzag --trace (P=$n)" --kind attn --backward --kv-groups 2 -- \
        $n attn "${QKV[@]}" --out o.npy "${GRAD[@]}" --causal --trace tr.json
done
# 16 tokens per rank in pieces of 8: 2 pieces per rank, each travelling the ring
RINGATTN_TRACE_CHUNK=100 traced "attn, 2 pieces per rank, gathered in rounds of 100 bytes (P=3)" \
    --kind attn --backward --kv-groups 2 --pieces 2 -- \
    3 attn "${QKV[@]}" --out o.npy "${GRAD[@]}" --layout contiguous --chunk 8 --trace tr.json

# a cap of 10 events per rank: the rest dropped and counted, the file still whole
rm -f tr.json
RINGATTN_TRACE_EVENTS=10 mpi 3 attn "${QKV[@]}" --out o.npy "${GRAD[@]}" --trace tr.json
why=$(status $?)
[ -s tr.json ] && python3 - tr.json >chk 2>&1 <<'PY' || why+="$(cat chk | tr '\n' ' ')"
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["otherData"]["ranks"]:
    n = sum(1 for e in d["traceEvents"] if e["pid"] == r["rank"] and e["ph"] == "X")
    assert n == 10 == r["events"], f"rank {r['rank']}: {n} spans, {r['events']} events, expected 10"
    assert r["dropped_events"] > 0, f"rank {r['rank']}: no dropped events counted"
PY
report "RINGATTN_TRACE_EVENTS=10: 10 events per rank kept, the rest counted as dropped (P=3)" "$why"
# a cap past 2^31-1 is refused naming the value given (1e20 was clamped and named as 2^63)
RINGATTN_TRACE_EVENTS=99999999999999999999 mpi 2 attn "${QKV[@]}" --out o2.npy --trace tr2.json
report "RINGATTN_TRACE_EVENTS=1e20: refused naming it, nothing written" "$([ $? -eq 1 ] &&
    grep -q 'RINGATTN_TRACE_EVENTS=99999999999999999999: need a whole number of events from 1 to 2147483647' err &&
    [ ! -e tr2.json ] && [ ! -e o2.npy ] || echo "$(grep -m1 error err)")"
# so is a gather round that is no byte count (it was ignored unsaid)
for v in -5 0 1x 99999999999999999999; do
    RINGATTN_TRACE_CHUNK=$v mpi 2 attn "${QKV[@]}" --out o2.npy --trace tr2.json
    report "RINGATTN_TRACE_CHUNK=$v: refused naming it, nothing written" "$([ $? -eq 1 ] &&
        grep -q "RINGATTN_TRACE_CHUNK=$v: need a whole number of bytes from 1 to 2147483647" err &&
        [ ! -e tr2.json ] && [ ! -e o2.npy ] || echo "$(grep -m1 error err)")"
done
fi

if [ "$PART" = train ]; then
tr=(--config "$TINY" --set train.steps=3 --set train.warmup=1 --set train.eval_every=2 --set train.checkpoint_every=2)
for n in 1 3; do
    rm -rf "ck$n"
    traced "train 3 steps --trace (P=$n)" --kind train --steps 3 --layers 2 -- \
        $n train "${tr[@]}" --checkpoint-dir "ck$n" --trace tr.json
done

fi

if [ "$PART" = attn ]; then
# bench: every repetition (1 warm-up + 2 timed = 3 forward and backward passes)
rm -f tr.json
mpi 2 bench attn -b 64 -e 64 -n 2 -w 1 -c 0 --causal --trace tr.json
rc=$?
why=$(status $rc)
[ -s tr.json ] && python3 - tr.json >chk 2>&1 <<'PY' || why+="$(cat chk | tr '\n' ' ')"
import json, sys
d = json.load(open(sys.argv[1]))
for r in range(2):
    n = [e for e in d["traceEvents"] if e["pid"] == r and e.get("name") == "bench forward"]
    b = [e for e in d["traceEvents"] if e["pid"] == r and e.get("name") == "bench backward"]
    assert len(n) == 3 and len(b) == 3, f"rank {r}: {len(n)} forward, {len(b)} backward bench spans, expected 3"
assert d["otherData"]["command"].startswith("ringattn bench attn "), d["otherData"]["command"]
PY
report "bench attn --trace: every repetition, warm-up included (P=2)" "$why"

# a Combiner head: its phases, and every blocking collective by name with
# its bytes, the same collectives on every rank. Per call the forward has 2
# (the shared summaries' max and merge), the backward those 2 again and 5;
# 1 warm-up + 1 timed call.
rm -f tr.json
mpi 3 bench attn -b 96 -e 96 -n 1 -w 1 -c 0 --causal --head combiner-logsparse --trace tr.json
why=$(status $?)
[ -s tr.json ] && python3 - tr.json >chk 2>&1 <<'PY' || why+="$(cat chk | tr '\n' ' ')"
import json, sys
d = json.load(open(sys.argv[1]))
per_rank = []
for r in range(3):
    ev = [e for e in d["traceEvents"] if e["pid"] == r and e["ph"] == "X"]
    names = [e["name"] for e in ev]
    for phase, n in (("local summaries", 4), ("shared summaries", 4), ("local blocks backward", 2),
                     ("shared blocks backward", 2)):
        assert names.count(phase) == n, f"rank {r}: {names.count(phase)} '{phase}' spans, expected {n}"
    coll = [e for e in ev if e["cat"] == "collective"]
    red = [e for e in coll if e["name"] == "the max of combiner-logsparse shared summaries"]
    assert len(red) == 4 and all(e["args"]["bytes"] > 0 for e in red), f"rank {r}: {len(red)} of {red}"
    per_rank.append(sorted(e["name"] for e in coll if "combiner-logsparse" in e["name"]))
assert per_rank[0] == per_rank[1] == per_rank[2], f"ranks disagree on their collectives: {per_rank}"
assert len(per_rank[0]) == 2 * (2 + 2 + 5), f"{len(per_rank[0])} logsparse collectives, expected 18: {per_rank[0]}"
PY
report "bench attn --trace, combiner-logsparse: its phases and named collectives on every rank (P=3)" "$why"
# mpirun passes Ctrl-C on to the ranks as SIGTERM
stopped_trace "bench attn --trace, SIGINT to mpirun: stops before its next call, trace written and marked" INT \
    'bench attn: stopped by SIG(INT|TERM) at L = 1024' out 300 -- \
    2 bench attn -b 1K -e 1K -n 100000 -w 1 -c 0 --trace tr.json
fi

if [ "$PART" = train ]; then
rm -f tr.json
mpi 2 bench train --config "$TINY" -n 2 -w 1 --trace tr.json
why=$(status $?)
[ -s tr.json ] && python3 - tr.json >chk 2>&1 <<'PY' || why+="$(cat chk | tr '\n' ' ')"
import json, sys
d = json.load(open(sys.argv[1]))
for r in range(2):
    names = [e.get("name") for e in d["traceEvents"] if e["pid"] == r]
    assert names.count("train step") == 3, f"rank {r}: {names.count('train step')} train steps, expected 3"
    assert names.count("adamw step") == 3 and "grad allreduce" in names, f"rank {r}: optimizer or reductions missing"
PY
report "bench train --trace: 3 steps with optimizer and reductions (P=2)" "$why"

rm -f tr.json
mpi 2 generate --checkpoint ck1 --prompt "abc" --tokens 4 --trace tr.json
why=$(status $?)
[ -s tr.json ] && python3 - tr.json >chk 2>&1 <<'PY' || why+="$(cat chk | tr '\n' ' ')"
import json, sys
d = json.load(open(sys.argv[1]))
for r in range(2):
    names = [e.get("name") for e in d["traceEvents"] if e["pid"] == r]
    assert names.count("prefill") == 1 and names.count("decode token") == 4, f"rank {r}: {names}"
PY
report "generate --trace: the prefill and every token (P=2)" "$why"

# a stop signal with --trace: generate and bench train write what ran, marked
# (SIGTERM to one rank: mpirun answers its own SIGTERM with a SIGKILL of the ranks about 1 s later)
stopped_trace "generate --trace, SIGTERM to one rank: every rank stops at the next token, trace written and marked" TERM-rank1 \
    'generate: stopped by SIGTERM after [0-9]+ of 1000000 tokens' out 200 -- \
    2 generate --checkpoint ck1 --prompt "abc" --tokens 1000000 --trace tr.json
# Ctrl-C twice (no launcher): the second quits at once, during the trace's write or
# before it, and leaves no tr.json.tmp (it blocked the next run: "tr.json.tmp exists")
# The signals go to ringattn itself: timeout forwards the first SIGINT it gets
# and then ignores SIGINT (the second never arrived). 5,000 tokens make a
# long trace to write (20,000, as before, took up to 35 s under load).
rm -f tr.json tr.json.tmp out err
timeout "$TMO" "$RA" generate --checkpoint ck1 --prompt "abc" --tokens 4000000 --trace tr.json >out 2>err </dev/null &
gp=$!
for _ in $(seq 900); do [ "$(wc -c <out 2>/dev/null || echo 0)" -ge 5000 ] && break; sleep 0.05; done
rp=$(pgrep -P "$gp" | head -1)
kill -INT "${rp:-$gp}"
sleep 0.05
kill -INT "${rp:-$gp}" 2>/dev/null
wait "$gp"
rc=$?
report "generate --trace, Ctrl-C twice: quits, no tr.json.tmp left" "$([ -n "$rp" ] || echo 'no ringattn process found; ')$(
    [ "$rc" -eq 130 ] || [ "$rc" -eq 1 ] || echo "exit status $rc; ")$([ -e tr.json.tmp ] && echo 'tr.json.tmp left')"
# without --trace generate catches the stop signals too and keeps what it sampled:
# --out written with the prompt and those tokens, or standard output's line ended
stopped_gen() { # DESC SIGNAL OUT-OPTION...: 2 ranks, the signal to mpirun (SIG-rank1: to one rank)
    local desc=$1 sig=$2 why='' rc n
    shift 2
    rm -f o.txt err # (err: the wait below must not read the last run's)
    LAST="mpirun -n 2 ringattn generate --checkpoint ck1 --prompt abc --tokens 1000000 $*"
    OMPI_MCA_odls_base_sigkill_timeout=5 timeout "$TMO" "$MPIRUN" --oversubscribe -n 2 "$RA" generate \
        --checkpoint ck1 --prompt "abc" --tokens 1000000 "$@" >out 2>err </dev/null &
    local bg=$! to
    # rank 0's warning that the tokens pass data.seq_len comes after every rank
    # has set its stop handlers (a fixed 1.5 s was too short once at 3 tests at
    # a time: SIGUSR1's default action ended rank 0). The stop may then come
    # during the prefill: "after the prompt, 0 of ..." and "during the prompt,
    # before layer 2 of 2 (0 of ...)" are right too.
    wait_for 'past the model' err 45
    to=$(pgrep -P "$bg" -x "$(basename "$MPIRUN")" || echo "$bg")
    case $sig in *-rank1) sig=${sig%-rank1} && to=$(pgrep -P "$to" | tail -1) ;; esac
    kill -"$sig" "$to"
    wait "$bg"
    rc=$?
    [ "$rc" -eq 1 ] || why+="exit status $rc, expected 1; "
    n=$(grep -oE "^ringattn: error: generate: stopped by SIG[A-Z0-9]+ (after (the prompt, )?|during the prompt, before layer [0-9]+ of [0-9]+ \()[0-9]+ of 1000000 tokens" err |
        grep -oE '[0-9]+ of 1000000' | cut -d' ' -f1)
    [ -n "$n" ] || why+="no stop message from rank 0: $(grep -m1 error err); "
    [ "$(grep -c 'error:' err)" -eq 1 ] || why+="$(grep -c 'error:' err) error lines, expected rank 0's only; "
    local kept=out
    if [ $# -gt 0 ]; then
        kept=o.txt
        grep -q "; --out o.txt holds the prompt and the $n tokens sampled$" err || why+="no '--out o.txt holds $n': $(grep -m1 error err); "
        [ ! -s out ] || why+="standard output not empty with --out; "
    else
        grep -q "(standard output has the prompt and the $n tokens sampled)$" err || why+="no 'standard output has $n': $(grep -m1 error err); "
    fi
    # prompt + n bytes + the newline, and nothing after it
    [ "$(wc -c <"$kept" 2>/dev/null || echo 0)" -eq $((3 + ${n:-0} + 1)) ] && [ "$(head -c 3 "$kept")" = abc ] &&
        [ "$(tail -c 1 "$kept" | od -An -c | tr -d ' ')" = '\n' ] ||
        why+="$kept: $(wc -c <"$kept" 2>/dev/null || echo no) bytes, expected 'abc', $n tokens and a newline; "
    report "$desc" "$why"
}
# (SIGUSR1 to mpirun: SIGTERM to it is followed by a SIGKILL of the ranks about 1 s later)
stopped_gen "generate --out, SIGUSR1 to mpirun: stops at the next token, --out holds the prompt and the tokens sampled" \
    USR1 --out o.txt
stopped_gen "generate --out, SIGTERM to one rank: every rank stops, --out holds the prompt and the tokens sampled" \
    TERM-rank1 --out o.txt
stopped_gen "generate, SIGUSR1 to one rank: every rank stops at the same token, standard output's line ended" USR1-rank1
# --out's directory removed before the stop: the cause named once, the tokens on standard output instead
mkdir gone
rm -f err
timeout "$TMO" "$MPIRUN" --oversubscribe -n 2 "$RA" generate --checkpoint ck1 --prompt "abc" --tokens 1000000 \
    --out gone/o.txt >out 2>err </dev/null &
bg=$!
wait_for 'past the model' err 45 # (the stop handlers are set: stopped_gen)
rmdir gone
kill -USR1 "$(pgrep -P "$bg" -x "$(basename "$MPIRUN")" || echo "$bg")"
wait "$bg"
rc=$?
why=""
[ "$rc" -eq 1 ] || why+="exit status $rc, expected 1; "
n=$(grep -oE 'stopped by SIGUSR1 after (the prompt, )?[0-9]+ of' err | grep -oE '[0-9]+ of' | cut -d' ' -f1)
grep -qE "; --out gone/o.txt was not written \(gone/o.txt.tmp: cannot create: directory 'gone' does not exist; create it first\): standard output has the prompt and the tokens sampled instead$" err ||
    why+="message: $(grep -m1 error err); "
[ "$(grep -o 'stopped by' err | wc -l)" -eq 1 ] || why+="the message repeats itself; "
[ "$(wc -c <out)" -eq $((3 + ${n:-0} + 1)) ] && [ "$(head -c 3 out)" = abc ] || why+="stdout: $(wc -c <out) bytes for $n tokens; "
report "generate --out whose directory went away, stopped: the cause named, the tokens on standard output" "$why"
stopped_trace "bench train --trace, SIGUSR1 to one rank: every rank stops at the same step, rank 0 says it" USR1-rank1 \
    'bench train: stopped by SIGUSR1 between steps' out 300 -- \
    2 bench train --config "$TINY" -n 100000 -w 1 --trace tr.json
stopped_trace "bench train --trace, SIGUSR1 to mpirun: stops between steps, trace written and marked" USR1 \
    'bench train: stopped by SIGUSR1 between steps' out 300 -- \
    2 bench train --config "$TINY" -n 100000 -w 1 --trace tr.json

# a run that fails part-way (a NaN gradient at step 2 stops it) still writes its trace
rm -rf ckf tr.json
RINGATTN_INJECT_NAN=2:0 mpi 3 train "${tr[@]}" --checkpoint-dir ckf --trace tr.json
rc=$?
why=$([ $rc -ne 0 ] && [ $rc -ne 124 ] || echo "exit status $rc, expected a failure; ")
grep -q 'not finite' err || why+="no 'not finite' error; "
if [ -s tr.json ]; then
    python3 "$CHECK" tr.json --ranks 3 --kind failed >chk 2>&1 || why+="$(grep -m3 FAIL chk | tr '\n' ' '); "
else
    why+="no trace file after the failure; "
fi
why+=$(partials)
report "train failing at step 2 still writes its trace, status failed (P=3)" "$why"
fi

finish
