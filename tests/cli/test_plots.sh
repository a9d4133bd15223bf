#!/usr/bin/env bash
# test_plots.sh RINGATTN MPIRUN SRC - the plot scripts (scripts/plot_*.py):
# each draws what ringattn writes (a trace, metrics, bench attn tables, a
# plan CSV, a Combiner run directory), and none of them can lose a file:
# the output is refused when it is an input (by name, symlink or hard link),
# a directory, a FIFO, in a missing directory or without a format's
# extension; a symlink at the output is replaced, not written through.
# Hostile inputs get one line naming file (and line or event), exit 1, no
# traceback; an input that is not a regular file (a FIFO, which open()
# would block on, a device, a directory) or is missing is refused at once.
# What the plots would hide is said: a bench attn -t sweep draws one line
# per thread count, FAIL rows, a failed or truncated trace, an all-NaN loss
# and an empty run file are named on stderr. scripts/demo.sh's P check and
# closing hint run in a stand-in repository (no install, build or mpirun). Skipped (77) without the system Python's matplotlib
# (scripts/install-deps.sh --tests installs it).
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 RINGATTN MPIRUN SRC" >&2
    exit 2
fi
SCRIPTS="$(cd "$3/scripts" && pwd)"
PY=/usr/bin/python3
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
    echo "skip: no matplotlib for $PY (apt-get install -y python3-matplotlib)"
    exit 77
fi
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
# the full-device case mounts a tmpfs in the work directory: unmounted first
trap 'main_shell || exit; mountpoint -q "$T/full" && umount "$T/full"; rm -rf "$T"' EXIT

# plot SCRIPT ARGS...: the script under timeout; sets rc, out, err
plot() {
    local s=$1
    shift
    LAST="plot_$s.py $*"
    timeout "${PT:-120}" "$PY" "$SCRIPTS/plot_$s.py" "$@" >out 2>err
    rc=$?
}
# refused DESC PATTERN: the last plot exited 1 with PATTERN on stderr, no traceback
refused() {
    local why=""
    [ "$rc" -eq 1 ] || why+="exit status $rc; "
    grep -qE -- "$2" err || why+="message: $(tail -1 err); "
    grep -q Traceback err && why+="a traceback; "
    report "$1" "$why"
}
# drawn DESC FILE: the last plot exited 0 and wrote FILE, an image
drawn() {
    local why=""
    [ "$rc" -eq 0 ] || why+="exit status $rc: $(tail -1 err); "
    [ -s "$2" ] || why+="no $2; "
    head -c 8 "$2" 2>/dev/null | grep -qaE 'PNG|%PDF|<\?xml|<svg' || why+="$2 is not an image; "
    why+=$(partials)
    report "$1" "$why"
}

# ---- what ringattn writes, drawn ------------------------------------------------
mpi 2 bench attn -b 256 -e 512 -n 1 -w 0 -c 0 --trace tr.json
report "bench attn --trace for the plots" "$(status $?)"
cp out bench.txt
mpi 2 train --config "$3/configs/tiny.ini" --set train.steps=4 --set train.warmup=1 --set train.eval_every=2 --set train.eval_batches=1 \
    --checkpoint-dir ck --metrics m.jsonl
report "train --metrics for the plots" "$(status $?)"
printf 'config,mode,profile,P,L,layout,chunk,step_ms,tokens_per_s,comm_share\n%s\n%s\n' \
    "configs/10m.ini,weak,ib100,1,1024,zigzag,0,10,1000,0.1" "configs/10m.ini,weak,ib100,2,2048,zigzag,0,11,1800,0.2" \
    >plan.csv
mkdir -p comb && cp m.jsonl comb/full-s1.jsonl && printf 'full\t12.5\t1000\n' >comb/step_times.tsv
plot trace tr.json -o trace.png
drawn "plot_trace.py draws a bench attn trace (P=2)" trace.png
plot metrics m.jsonl -o metrics.svg
drawn "plot_metrics.py draws train --metrics (SVG)" metrics.svg
plot bench bench.txt bench.txt -o bench.pdf
drawn "plot_bench.py draws bench attn tables (PDF)" bench.pdf
plot plan plan.csv -o plan.png
drawn "plot_plan.py draws a plan --csv table" plan.png
plot combiner comb -o comb.png
drawn "plot_combiner.py draws a run directory" comb.png

# ---- outputs that would lose a file: refused before any work --------------------
ln -sf m.jsonl m_link.png
ln -f m.jsonl m_hard.png
mkfifo fifo.png
mkdir -p dir.png
sums=$(cksum m.jsonl tr.json bench.txt plan.csv)
for s_in_out in "metrics m.jsonl m_link.png:is the input m.jsonl" "metrics m.jsonl m_hard.png:is the input m.jsonl" \
    "metrics m.jsonl fifo.png:not a regular file" "metrics m.jsonl dir.png:not a regular file" \
    "metrics m.jsonl m.jsonl:give a file name ending in .png, .pdf, .svg" \
    "metrics m.jsonl noext:give a file name ending" "metrics m.jsonl .:give a file name ending" \
    "metrics m.jsonl nodir/m.png:no directory nodir" \
    "bench bench.txt m_link.png:is the input" "trace tr.json m_link.png:is the input" \
    "plan plan.csv m_link.png:is the input" "bench bench.txt dir.png:not a regular file" \
    "trace tr.json fifo.png:not a regular file" "plan plan.csv nodir/p.png:no directory nodir"; do
    set -- ${s_in_out%%:*}
    ln -sf "$2" m_link.png
    ln -f "$2" m_hard.png
    plot "$1" "$2" -o "$3"
    refused "plot_$1.py $2 -o $3: refused" "^plot_$1(\.py)?: (error: )?-o $3.*${s_in_out#*:}"
done
report "... and every input is unchanged" "$([ "$(cksum m.jsonl tr.json bench.txt plan.csv)" = "$sums" ] || echo changed)"
# a symlink at the output to a file that is not an input: replaced, the file kept
echo keep >precious.txt
ln -sf precious.txt out_link.png
plot metrics m.jsonl -o out_link.png
why=""
[ "$rc" -eq 0 ] || why+="exit status $rc; "
[ "$(cat precious.txt)" = keep ] || why+="precious.txt was written through the link; "
[ -f out_link.png ] && [ ! -L out_link.png ] || why+="out_link.png is still a link; "
report "plot_metrics.py -o a symlink to another file: the link replaced, the file kept" "$why"

# the image keeps the permission bits of the file it replaces; a new one gets 0666 less the umask
# (a temporary file's 0600 hid shared plots)
touch shared.png && chmod 644 shared.png
plot metrics m.jsonl -o shared.png
why=$([ "$(stat -c %a shared.png)" = 644 ] || echo "replaced file: mode $(stat -c %a shared.png), was 644; ")
rm -f fresh.png
(umask 027 && timeout 120 "$PY" "$SCRIPTS/plot_metrics.py" m.jsonl -o fresh.png >out 2>err)
[ "$(stat -c %a fresh.png 2>/dev/null)" = 640 ] || why+="new file under umask 027: mode $(stat -c %a fresh.png 2>&1); "
report "plot_metrics.py -o: a replaced file keeps its mode, a new one follows the umask" "$why"

# a full device (a 64 KiB tmpfs, as root): one line, the old image kept, no temporary left
mkdir -p full
if mount -t tmpfs -o size=64k tmpfs full 2>/dev/null; then
    echo old >full/p.png
    head -c 60000 /dev/zero >full/fill 2>/dev/null
    plot metrics m.jsonl -o full/p.png
    refused "plot_metrics.py -o onto a full device: refused" "^plot_metrics.py: full/p.png: cannot write: No space left"
    why=$([ "$(cat full/p.png)" = old ] || echo "full/p.png changed; ")$(ls -A full | grep -q '\.tmp$' && echo "a .tmp left")
    report "... the old image kept, no temporary left" "$why"
    umount full
else
    echo "skip: plot onto a full device (cannot mount a tmpfs here)"
fi

# ---- inputs that are not regular files: refused at once, never opened ----------
# (open() on a FIFO waits for a writer: every script hung there)
mkfifo in.fifo
mkdir -p in_dir comb_fifo comb_tsvfifo
mkfifo comb_fifo/full-s1.jsonl
cp m.jsonl comb_tsvfifo/full-s1.jsonl && mkfifo comb_tsvfifo/step_times.tsv
for c in "bench in.fifo:in.fifo: is a FIFO" "trace in.fifo:in.fifo: is a FIFO" "metrics in.fifo:in.fifo: is a FIFO" \
    "plan in.fifo:in.fifo: is a FIFO" "combiner comb_fifo:comb_fifo/full-s1.jsonl: is a FIFO" \
    "combiner comb_tsvfifo:comb_tsvfifo/step_times.tsv: is a FIFO" "bench /dev/null:/dev/null: is a device" \
    "trace in_dir:in_dir: Is a directory" "plan in_dir:in_dir: Is a directory" "metrics /dev/zero:/dev/zero: is a device" \
    "trace nope.json:nope.json: No such file" "plan nope.csv:nope.csv: No such file" "bench nope.txt:nope.txt: No such file"; do
    set -- ${c%%:*}
    PT=10 plot "$1" "$2" -o in.png
    refused "plot_$1.py on $2 (not a regular file or missing): refused at once" "^plot_$1(\.py)?: (error: )?${c#*:}"
done

# ---- what a plot would hide is said -----------------------------------------------
# a bench attn -t 1,2 table: two rows per L; one line per thr, each with its own slope
# (thr=1: time ~ L^2, thr=2: ~ L: one zig-zag line through both had a meaningless slope)
{
    echo '# ringattn bench attn: head=full P=2 B=1 H=4 Hkv=4 D=64 causal layout=zigzag chunk=auto threads/rank=1 (-t)'
    for r in "1024 1 4 1" "2048 4 8 2" "4096 16 16 4"; do
        # shellcheck disable=SC2086 # L and two times, one word each
        set -- $r
        for thr in 1 2; do
            t=$([ $thr = 1 ] && echo "$2" || echo "$3")
            echo "  $1 $t $t $t 1 1 0.1  $4 $4 $4 1 1 0.1 1 20 1e-7 1e-7 $thr 1.00 OK"
        done
    done
} >thr.txt
plot bench thr.txt -o thr.svg
why=""
[ "$rc" -eq 0 ] || why+="exit status $rc: $(tail -1 err); "
grep -q 'full thr=1 forward (slope 2.00)' thr.svg || why+="no line 'full thr=1 forward (slope 2.00)'; "
grep -q 'full thr=2 forward (slope 1.00)' thr.svg || why+="no line 'full thr=2 forward (slope 1.00)'; "
grep -q 'full thr=1 backward (slope 1.00)' thr.svg || why+="no line 'full thr=1 backward (slope 1.00)'; "
report "plot_bench.py on a -t 1,2 table: one line per thread count, each its own slope" "$why"
# two runs appended to one file: an L again at the same thr is refused, not drawn as a zig-zag
cat bench.txt bench.txt >twice.txt
plot bench twice.txt -o twice.png
refused "plot_bench.py on two runs in one file: refused, naming the repeated L" "^plot_bench: twice.txt:[0-9]+: L=256 thr=1 again"
# a row whose check failed: drawn, marked, named on stderr
sed '$s/ OK$/ FAIL/' thr.txt >fail.txt
plot bench fail.txt -o fail.svg
why=""
[ "$rc" -eq 0 ] || why+="exit status $rc: $(tail -1 err); "
grep -q "warning: fail.txt:7: L=4096 thr=2: check FAIL" err || why+="no warning naming fail.txt:7: $(tail -1 err); "
grep -q 'check FAIL' fail.svg || why+="no 'check FAIL' mark in the plot; "
report "plot_bench.py on a FAIL row: warned on stderr, marked in the plot" "$why"

# a trace of a failed run, or with events dropped past the cap: drawn, said on stderr and in the image
"$PY" - <<'PY'
import json
d = json.load(open("tr.json"))
d["otherData"]["status"] = "failed: bench attn: boom"
d["otherData"]["ranks"][1]["dropped_events"] = 7
json.dump(d, open("tr_bad.json", "w"))
PY
plot trace tr_bad.json -o tr_bad.svg
why=""
[ "$rc" -eq 0 ] || why+="exit status $rc: $(tail -1 err); "
grep -q '^plot_trace: warning: tr_bad.json: the run failed: bench attn: boom' err || why+="no warning of the failure; "
grep -q '^plot_trace: warning: tr_bad.json: 7 events dropped (rank 1: 7' err || why+="no warning of the 7 dropped events; "
grep -q 'incomplete: the run failed: bench attn: boom; 7 events dropped' tr_bad.svg || why+="no mark under the title; "
report "plot_trace.py on a failed run's trace with dropped events: warned, marked under the title" "$why"
plot trace tr.json -o tr_ok.png
report "... a complete trace: no warning" "$([ "$rc" -eq 0 ] && [ ! -s err ] || echo "exit $rc, stderr: $(tail -1 err)")"

# every loss NaN or infinite: drawn, with a warning naming the file
printf '{"step": 1, "loss": nan, "lr": 0.1}\n{"step": 2, "loss": inf, "lr": 0.1}\n' >nanloss.jsonl
plot metrics nanloss.jsonl -o nanloss.png
why=$([ "$rc" -eq 0 ] || echo "exit status $rc; ")$(grep -q '^plot_metrics.py: warning: nanloss.jsonl: no finite loss' err ||
    echo "no warning: $(tail -1 err)")
report "plot_metrics.py on all-NaN losses: warned, naming the file" "$why"
# a NaN or Infinity (JSON as Python reads it) among finite values: a gap in the line, said once per key
printf '{"step": 1, "loss": 2.5, "lr": 0.1}\n{"step": 2, "loss": NaN, "lr": Infinity}\n{"step": 3, "loss": NaN, "lr": 0.1}\n' >someinf.jsonl
plot metrics someinf.jsonl -o someinf.png
why=$([ "$rc" -eq 0 ] || echo "exit status $rc; ")
grep -q '^plot_metrics.py: warning: someinf.jsonl:2: "loss" is NaN or infinite (and 1 more line)' err || why+="no warning for loss; "
grep -q '^plot_metrics.py: warning: someinf.jsonl:2: "lr" is NaN or infinite' err || why+="no warning for lr; "
[ "$(grep -c '"loss"' err)" = 1 ] || why+="loss named $(grep -c '"loss"' err) times, not once; "
report "plot_metrics.py on NaN and Infinity values: warned once per key, naming file:line" "$why"

# an empty run file: refused (alone) or left out with a warning (beside a real run)
mkdir -p comb_empty comb_some
: >comb_empty/full-s1.jsonl
cp m.jsonl comb_some/full-s1.jsonl && : >comb_some/full-s2.jsonl
plot combiner comb_empty -o empty.png
refused "plot_combiner.py on a directory whose only run file is empty: refused, naming it" \
    "^plot_combiner.py: no run with an eval_bpb line in comb_empty \(full-s1.jsonl\)"
[ -e empty.png ] && bad "... plot_combiner.py on comb_empty wrote empty.png"
plot combiner comb_some -o some.png
why=$([ "$rc" -eq 0 ] || echo "exit status $rc: $(tail -1 err); ")$(grep -q 'warning: comb_some/full-s2.jsonl: no eval_bpb line' err ||
    echo "no warning naming full-s2.jsonl")
report "plot_combiner.py beside an empty run file: drawn, the empty one named" "$why"
mkdir -p comb_notimes && cp m.jsonl comb_notimes/full-s1.jsonl && : >comb_notimes/step_times.tsv
plot combiner comb_notimes -o notimes.png
refused "plot_combiner.py with an empty step_times.tsv: refused, naming it" "^plot_combiner.py: comb_notimes/step_times.tsv: no rows"

# plot_plan.py: -o required (its default, docs/plan-projection.png, overwrote the shipped image
# from the repository root), a CSV of another format in one line
mkdir -p docs && echo keep >docs/plan-projection.png
plot plan plan.csv
why=$([ "$rc" -eq 2 ] || echo "exit status $rc, want 2; ")$(grep -q 'required: -o' err || echo "message: $(tail -1 err); ")
[ "$(cat docs/plan-projection.png)" = keep ] || why+="docs/plan-projection.png overwritten; "
report "plot_plan.py without -o: refused, docs/plan-projection.png untouched" "$why"
printf 'a,b\n1,2\n' >other.csv
plot plan other.csv -o other.png
refused "plot_plan.py on a CSV of another format: refused, naming it" "^plot_plan.py: other.csv: not a .* table \(no column config"
printf 'config,mode,profile,P,L,layout,chunk,step_ms,tokens_per_s,comm_share\nc,weak,ib100,x,1,z,0,1,1,1\n' >badp.csv
plot plan badp.csv -o badp.png
refused "plot_plan.py on a row with P not a number: refused, naming the line" "^plot_plan.py: badp.csv:2: not a plan row"
# plan --csv's own columns: a header naming a column twice, a row cut short (it ends in a
# number still) or with a cell more shifted values under the wrong column and drew
printf 'profile,mode,config,P,L,layout,chunk,step_ms,tokens_per_s,comm_share,mib_per_rank\n%s\n%s\n' \
    "ib100,weak,configs/10m.ini,1,1024,zigzag,0,10,1000,0.1,12.5" "ib100,weak,configs/10m.ini,2,2048,zigzag,0,11,1800,0.2,25" \
    >plan11.csv
plot plan plan11.csv -o plan11.png
drawn "plot_plan.py draws a table in plan --csv's column order" plan11.png
sed '1s/step_ms/step_ms,step_ms/' plan11.csv >pdup.csv
sed '3s/,0.2,25$/,0./' plan11.csv >pcut.csv
sed '2s/$/,7/' plan11.csv >plong.csv
for c in "pdup:1: column step_ms named twice" "pcut:3: 10 cells, the header has 11" "plong:2: 12 cells, the header has 11"; do
    plot plan "${c%%:*}.csv" -o pbad.png
    refused "plot_plan.py on ${c%%:*}.csv: refused, naming the line and the counts" "^plot_plan.py: ${c%%:*}.csv:${c#*:}"
done
# every plot script runs as a program, with the system Python (the one with matplotlib)
why=""
for s in "$SCRIPTS"/plot_*.py; do
    [ "${s##*/}" = plot_out.py ] && continue
    [ -x "$s" ] || why+="${s##*/} not executable; "
    [ "$(head -1 "$s")" = '#!/usr/bin/python3' ] || why+="${s##*/}: shebang $(head -1 "$s"); "
done
report "every plot_*.py is executable with #!/usr/bin/python3" "$why"

# ---- scripts/demo.sh in a stand-in repository: P checked before anything runs,
# the closing hint pasteable (quoted) -----------------------------------------------
mkdir -p demo/scripts demo/bin
cp "$SCRIPTS/demo.sh" demo/scripts/
for f in install-deps build; do echo "echo $f >>\"$T/demo.log\"" >"demo/scripts/$f.sh"; done
# shellcheck disable=SC2016 # expanded by demo.sh, not here
echo 'RINGATTN_BUILD=$PWD/b' >demo/scripts/env.sh
printf '#!/bin/sh\necho "mpirun $*" >>"%s/demo.log"\n' "$T" >demo/bin/mpirun
chmod +x demo/bin/mpirun
for p in 0 x -1 "4 4"; do
    : >demo.log
    LAST="P='$p' demo.sh"
    P=$p PATH="$T/demo/bin:$PATH" timeout 30 bash demo/scripts/demo.sh >out 2>err
    rc=$?
    why=$([ "$rc" -eq 2 ] || echo "exit status $rc, want 2; ")$(grep -qF "P='$p'" err || echo "message: $(tail -1 err); ")
    [ -s demo.log ] && why+="ran: $(tr '\n' ' ' <demo.log); "
    report "demo.sh with P='$p': refused before the install, build and mpirun" "$why"
done
: >demo.log
dout="$T/demo out/it's"
LAST="OUT='$dout' P=2 demo.sh"
(cd demo && OUT=$dout P=2 PATH="$T/demo/bin:$PATH" timeout 30 bash scripts/demo.sh >"$T/out" 2>"$T/err")
rc=$?
why=$([ "$rc" -eq 0 ] || echo "exit status $rc: $(tail -1 err); ")
hint=$(sed -n 's/^demo: OK (plot the curves with: \(.*\))$/\1/p' out)
eval "set -- $hint" 2>/dev/null || why+="the hint does not parse: $hint; "
[ "${1:-}" = /usr/bin/python3 ] || why+="the hint runs '${1:-}', not /usr/bin/python3; "
[ "${3:-}" = "$dout/metrics.jsonl" ] && [ "${5:-}" = "$dout/curves.png" ] || why+="the hint's paths are not one word each: $hint; "
grep -q -- "-n 2 .*--metrics $dout/metrics.jsonl" demo.log || why+="mpirun not run with P=2 and OUT: $(head -1 demo.log); "
report "demo.sh with an OUT holding a space and a quote: the hint quoted, /usr/bin/python3" "$why"

# ---- hostile inputs: one line naming the file, exit 1 ---------------------------
# plot_combiner.py's run directory
for c in "json|{oops|comb_json/full-s1.jsonl:1: malformed JSON" "list|[1, 2]|comb_list/full-s1.jsonl:1: expected a JSON object" \
    'bpb|{"step": 1, "eval_bpb": "x"}|comb_bpb/full-s1.jsonl:1: step or eval_bpb is not a finite number' \
    "dir||comb_dir/full-s1.jsonl: Is a directory" "tsv||comb_tsv/step_times.tsv:1: expected variant"; do
    IFS='|' read -r name line pat <<<"$c"
    d=comb_$name
    mkdir -p "$d"
    case $name in
    dir) mkdir -p "$d/full-s1.jsonl" ;;
    tsv) cp m.jsonl "$d/full-s1.jsonl" && printf 'full\tfast\t1\n' >"$d/step_times.tsv" ;;
    *) printf '%s\n' "$line" >"$d/full-s1.jsonl" ;;
    esac
    plot combiner "$d" -o bad.png
    refused "plot_combiner.py on $d: refused, naming it" "^plot_combiner.py: $pat"
done
"$PY" -c "print('[' * 100000 + ']' * 100000)" >deep.jsonl
"$PY" -c "print('{\"step\": 1, \"loss\": ' + '7' * 5000 + '}')" >digits.jsonl
printf '\xff\xfe{"step": 1}\n' >latin.jsonl
printf '# ringattn bench attn: head=full\n%s\n' "$("$PY" -c "print('9' * 5000)") 1 2 3 4 5 6 7" >bdigits.txt
printf '# ringattn bench attn: head=full\n      1024  nan  1 1 1 1 1 1\n' >bnan.txt
printf '\xff\xfe\n' >blatin.txt
# absurd sizes: a time of 1e308 drew a blank plot (an axis to 1e305, a numpy overflow
# warning), an L of 400 digits was a traceback (math.isfinite's OverflowError)
printf '# ringattn bench attn: head=full\n      1024  1e308  1 1 1 1 1 1\n' >bbig.txt
printf '# ringattn bench attn: head=full\n      1024  1  1 1 1 1 1 2e12\n' >bbwd.txt
printf '# ringattn bench attn: head=full\n%s\n' "$("$PY" -c "print('1' + '0' * 400)") 1 2 3 4 5 6 7" >bbigl.txt
for c in "metrics deep.jsonl:deep.jsonl:1: not a metrics record" "metrics digits.jsonl:digits.jsonl:1: not a metrics record" \
    "metrics latin.jsonl:latin.jsonl: not UTF-8" "bench bdigits.txt:bdigits.txt:2: not a result row" \
    "bench bnan.txt:bnan.txt:2: not a result row" "bench blatin.txt:blatin.txt: not UTF-8" \
    "bench bbig.txt:^plot_bench: bbig.txt:2: fwd_ms 1e\+308 is out of range" \
    "bench bbwd.txt:^plot_bench: bbwd.txt:2: bwd_ms 2000000000000.0 is out of range" \
    "bench bbigl.txt:^plot_bench: bbigl.txt:2: L 10+ is out of range"; do
    set -- ${c%%:*}
    plot "$1" "$2" -o bad.png
    refused "plot_$1.py on $2: refused, naming it" "${c#*:}"
done
# plot_trace.py: checked before matplotlib loads
"$PY" -c "print('[' * 100000 + ']' * 100000)" >pt_deep.json
echo '{"traceEvents":[{"ph":"X"}]}' >pt_nopid.json
echo '{"traceEvents":[1,2,3]}' >pt_ints.json
echo '{"traceEvents":[{"ph":"M","name":"process_name","pid":0},{"ph":"X","pid":0,"tid":0,"ts":1,"dur":1}]}' >pt_noargs.json
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":"a","ts":1,"dur":1}]}' >pt_strtid.json
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":0,"ts":1e400,"dur":1}]}' >pt_inf.json
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":0,"ts":1e308,"dur":1e308}]}' >pt_end.json
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":0,"ts":1,"dur":1,"cat":{"x":1}}]}' >pt_cat.json
# times past 1e15 us (about 30 years) or negative: 1e308 drew a blank axis to 1e305
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":0,"ts":1e308,"dur":1}]}' >pt_bigts.json
echo '{"traceEvents":[{"ph":"X","pid":0,"tid":0,"ts":1,"dur":1e300}]}' >pt_bigdur.json
echo '{"traceEvents":[{"ph":"i","pid":0,"tid":0,"ts":-5}]}' >pt_negts.json
# otherData of the wrong type: was ignored, the trace drawn as complete
ev='{"ph":"X","pid":0,"tid":0,"ts":1,"dur":1}'
echo "{\"traceEvents\":[$ev],\"otherData\":{\"status\":{\"failed\":1}}}" >pt_status.json
echo "{\"traceEvents\":[$ev],\"otherData\":{\"status\":\"ok\",\"ranks\":[{\"rank\":0,\"dropped_events\":\"lots\"}]}}" >pt_drop.json
for c in "deep:nested too deeply" "nopid:traceEvents\[0\]: no integer pid" "ints:traceEvents\[0\]: not an object" \
    "noargs:traceEvents\[0\]: a name event without args.name" "strtid:no integer tid" "inf:ts is not a finite number" \
    "end:with a finite end" "cat:cat is not a string" "bigts:traceEvents\[0\]: ts 1e\+308 is out of range" \
    "bigdur:traceEvents\[0\]: dur 1e\+300 is out of range" "negts:traceEvents\[0\]: ts -5 is out of range" \
    "status:otherData.status is not a string" "drop:otherData.ranks\[0\].dropped_events is not a count"; do
    f=pt_${c%%:*}.json
    rm -f pt.png
    plot trace "$f" -o pt.png
    refused "plot_trace.py on $f: refused, naming it" "^plot_trace: $f: .*${c#*:}"
    [ -e pt.png ] && bad "... plot_trace.py on $f wrote pt.png"
done
# a bare event list (no otherData for the title) draws
echo '[{"ph":"X","pid":0,"tid":0,"ts":1,"dur":5,"cat":"attn","name":"a"}]' >pt_list.json
plot trace pt_list.json -o list.png
drawn "plot_trace.py draws a bare event list" list.png
for opt in "--from nan" "--to inf" "--width 0" "--width nan" "--width 1e6"; do
    plot trace tr.json -o w.png $opt
    refused "plot_trace.py $opt: refused" "^plot_trace: ${opt%% *} "
done

finish
