#!/usr/bin/env bash
# fuzz.sh [SECONDS] [FUZZER...] - run the libFuzzer harnesses of tests/fuzz
# (config, npy, checkpoint, safetensors; default: all) for SECONDS each (default 600).
# fuzz.sh --build-only [FUZZER...]: set up and build them, run nothing.
#
# Installs clang and libFuzzer when missing, sets up and builds build-fuzz
# (clang, ASan + UBSan, -Dfuzz=true; $RINGATTN_FUZZ_BUILD to change), runs
# each fuzzer on a scratch copy of its seed corpus, and prints one line per
# fuzzer: name, executions, exec/s, new corpus units, result. A crash, leak,
# timeout (-timeout=10) or out-of-memory (-rss_limit_mb=2048) is a failure:
# its reproducer's path is printed and the exit status is non-zero.
# Reproduce with: build-fuzz/tests/fuzz/fuzz_NAME PATH. The scratch corpora
# and logs stay in the printed work directory (merge new units into
# tests/fuzz/corpus/NAME with -merge=1 if they are worth keeping).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. scripts/env.sh

build_only=0
[ "${1:-}" = --build-only ] && { build_only=1; shift; set -- 1 "$@"; }
secs=${1:-600}
[ $# -gt 0 ] && shift
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: $0 [SECONDS | --build-only] [config|npy|checkpoint|safetensors ...]" >&2
  exit 2
fi
fuzzers=("$@")
[ ${#fuzzers[@]} -eq 0 ] && fuzzers=(config npy checkpoint safetensors)
for f in "${fuzzers[@]}"; do
  case "$f" in
    config|npy|checkpoint|safetensors) ;;
    *) echo "fuzz.sh: unknown fuzzer '$f' (config, npy, checkpoint, safetensors)" >&2; exit 2 ;;
  esac
done

# clang 14 and its runtime (libFuzzer, sanitizers), when missing.
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed" ||
  missing+=(libclang-rt-14-dev)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "fuzz.sh: installing ${missing[*]}"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q clang libclang-rt-14-dev ||
    exit 1
fi
bash scripts/install-deps.sh >/dev/null || exit 1

build=${RINGATTN_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
  # (-g1: line tables for the reports' file:line, a quarter less compiling: sanitize.sh)
  CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dnative=false -Dc_args=-g1 >/dev/null || { echo "fuzz.sh: meson setup $build failed" >&2; exit 1; }
fi
targets=()
for f in "${fuzzers[@]}"; do targets+=("tests/fuzz/fuzz_$f"); done
ninja -C "$build" "${targets[@]}" >/dev/null || { ninja -C "$build" "${targets[@]}"; exit 1; }
[ "$build_only" -eq 1 ] && { echo "fuzz.sh: built ${targets[*]} in $build"; exit 0; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ringattn-fuzz.XXXXXX")
echo "fuzz.sh: ${secs} s per fuzzer; corpora and logs in $work"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
# fuzz_one NAME: one fuzzer on its scratch corpus; its line (and, on a
# failure, the end of its log) in $work/NAME/report; non-zero on a failure
fuzz_one() {
  local f=$1 dir="$work/$1" rc execs rate units result crash
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp tests/fuzz/corpus/"$f"/* "$dir/corpus/"
  local dict=()
  [ -f "tests/fuzz/$f.dict" ] && dict=("-dict=tests/fuzz/$f.dict")
  "$build/tests/fuzz/fuzz_$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${dict[@]}" "$dir/corpus" \
    >"$dir/log" 2>&1
  rc=$?
  stat() { awk -v k="stat::$1:" '$1 == k { print $2 }' "$dir/log" | tail -1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  units=$(stat new_units_added)
  # On a crash libFuzzer prints no final stats: take the last progress line.
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$dir/log" | tail -1 | tr -d '#')
    rate=$(grep -o 'exec/s: [0-9]*' "$dir/log" | tail -1 | awk '{print $2}')
  fi
  {
    if [ "$rc" -eq 0 ]; then
      result="ok"
    else
      crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/log" | tail -1)
      result="FAILED (exit $rc): ${crash:-no reproducer written; see $dir/log}"
      echo "---- fuzz_$f: last lines of $dir/log ----"
      grep -v '^#[0-9]' "$dir/log" | tail -25
      echo "----"
    fi
    printf 'fuzz_%-11s %10s execs  %7s exec/s  %5s new units  %s\n' "$f" "${execs:-?}" "${rate:-?}" \
      "${units:-?}" "$result"
  } >"$dir/report"
  [ "$rc" -eq 0 ]
}

# as many at once as there are cores (each fuzzer is one process)
jobs=$(nproc 2>/dev/null || echo 1)
pids=()
failed=0
for i in "${!fuzzers[@]}"; do
  fuzz_one "${fuzzers[$i]}" &
  pids[i]=$!
  if [ $((i + 1)) -ge "$jobs" ]; then wait "${pids[$((i + 1 - jobs))]}" || failed=1; fi
done
# (the loop waited for all but the last jobs - 1)
for ((i = ${#fuzzers[@]} - jobs + 1; i < ${#fuzzers[@]}; i++)); do
  [ "$i" -ge 0 ] && { wait "${pids[$i]}" || failed=1; }
done
for f in "${fuzzers[@]}"; do
  if [ -s "$work/$f/report" ]; then cat "$work/$f/report"; else echo "fuzz_$f: stopped before its report"; failed=1; fi
done
exit "$failed"
