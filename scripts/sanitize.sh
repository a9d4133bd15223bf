#!/usr/bin/env bash
# sanitize.sh [--build-only] [asan|valgrind|tsan|all] - the unit and mpi suites under
# AddressSanitizer + UndefinedBehaviorSanitizer, valgrind and/or
# ThreadSanitizer (CI runs "all"). Sets up the build dirs when missing, builds
# what the chosen tests need, runs `meson test --setup asan|valgrind|tsan`,
# prints one summary line per checker and a total, and exits non-zero on any
# failure. See docs/fuzzing.md. --build-only sets up and builds what the
# chosen checkers need, and runs nothing (scripts/test.sh does that, niced,
# while the meson suites leave cores idle).
#
#   build-asan  gcc -Db_sanitize=address,undefined -Db_lundef=false, -O2 -g1
#   build-vg    gcc -Dnative=false (valgrind 3.19 cannot decode AVX-512), -O2 -g1:
#               a portable build, its kernels in one copy per x86-64 level;
#               valgrind runs the level of the CPU it emulates, and suite
#               'isa' runs the kernel tests natively at every level
#   build-tsan  clang -Db_sanitize=thread -Db_lundef=false, -O2 -g1: OpenMP is
#               then LLVM's libomp, whose Archer tool (libarcher.so) tells
#               TSan about its barriers, joins and reductions (gcc's libgomp
#               is not instrumented: TSan reports its every hand-over as a race)
#
# The mpi tests are the slow part; to fit CI (about 3.5 minutes on 2 cores,
# the three checkers at once: "all" runs them concurrently) the defaults run
# a subset, and these variables widen it:
#   SAN_ASAN_MAX_RANKS=2        asan: mpi tests of at most this many ranks
#                               (P=3 is the first odd split; it runs natively)
#   SAN_VG_MAX_RANKS=2          valgrind: the same
#   SAN_VG_MPI="warm model_sweep"  valgrind: which mpi test families to run
#                               ("ring combiner warm model_sweep" for all: ~10 min more)
#   SAN_TSAN_MAX_RANKS=2        tsan: the same
#   SAN_TSAN_MPI="combiner_threads ring warm model_sweep"  tsan: which threaded
#                               mpi tests to run: combiner_threads is
#                               "combiner threads P=N" (1-4 threads a rank), the
#                               others "FAMILY P=N threads=2" (also: combiner tiny)
# The asan run includes every mpi family (model_sweep too: the model at odd
# shapes, every head, preconditioner and layout, training and decoding),
# without the "threads=2" variants (tsan runs those), "vocab P=1" (P = 2
# takes the same code under asan), "combiner P=1" ("combiner threads P=1"
# runs the same heads at 1-4 threads) and the example's bad arguments. The
# tsan run is the unit suite's thread tests (test_attn_threads: attention
# tiles and the ring on 1-4 threads; test_threads_layers: every threaded layer
# kernel and AdamW) and the threaded mpi tests above.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
mode=${1:-all}
case "$mode" in
  asan|valgrind|tsan|all) ;;
  *) echo "usage: $0 [--build-only] [asan|valgrind|tsan|all]" >&2; exit 2 ;;
esac
# valgrind, and clang with its runtimes and libomp (libarcher.so) for tsan,
# are in install-deps.sh's --tests set
if [ "$mode" = asan ]; then
  bash scripts/install-deps.sh >/dev/null || exit 1
else
  bash scripts/install-deps.sh --tests >/dev/null || exit 1
fi
. scripts/env.sh

asan_build=${RINGATTN_ASAN_BUILD:-build-asan}
vg_build=${RINGATTN_VG_BUILD:-build-vg}
tsan_build=${RINGATTN_TSAN_BUILD:-build-tsan}
asan_max=${SAN_ASAN_MAX_RANKS:-2}
vg_max=${SAN_VG_MAX_RANKS:-2}
vg_mpi=${SAN_VG_MPI:-warm model_sweep}
tsan_max=${SAN_TSAN_MAX_RANKS:-2}
tsan_mpi=${SAN_TSAN_MPI:-combiner_threads ring warm model_sweep}

summary=()
failed=0

# count KEY LOG: the number meson test printed for "KEY:" (0 if none).
count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); n = $2 } END { print n + 0 }' "$2"; }

# setup_build DIR MESON-OPTIONS...: configure once.
setup_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    # -g1: line tables only, which the checkers' reports need (file:line in
    # every frame), not the variables' descriptions: a quarter less compiling
    # (the asan build: 131 -> 100 s of CPU)
    meson setup "$dir" -Dc_args=-g1 "$@" >/dev/null || { echo "sanitize.sh: meson setup $dir failed" >&2; return 1; }
  fi
}

# list_tests DIR MESON-TEST-ARGS...: the names of the tests selected, one a line.
list_tests() {
  local dir=$1
  shift
  meson test -C "$dir" --no-rebuild --list "$@" 2>/dev/null | sed -n 's|^[^ ]* / ||p'
}

# build_for DIR NAME...: build what the named tests need and nothing else (the
# targets each test depends on, as `meson test` itself rebuilds them): not
# the command-line program, nor the tests of other suites.
build_for() {
  local dir=$1 targets
  shift
  targets=$(python3 - "$dir" "$@" <<'EOF'
import json, os, sys
d, names = sys.argv[1], set(sys.argv[2:])
info = os.path.join(d, 'meson-info')
files = {t['id']: t['filename'] for t in json.load(open(os.path.join(info, 'intro-targets.json')))}
out = set()
for t in json.load(open(os.path.join(info, 'intro-tests.json'))):
    if t['name'] in names:
        for dep in t['depends']:
            out.update(os.path.relpath(f, os.path.abspath(d)) for f in files[dep])
print('\n'.join(sorted(out)))
EOF
) || return 1
  [ -n "$targets" ] || { echo "sanitize.sh: no tests selected in $dir" >&2; return 1; }
  # shellcheck disable=SC2086
  ninja -C "$dir" $targets >/dev/null || { ninja -C "$dir" $targets; return 1; }
}

# run_checker NAME BUILD-DIR MESON-TEST-ARGS... (with --build-only: says it is built)
run_checker() {
  local name=$1 dir=$2 t0=$SECONDS log
  shift 2
  if [ "$build_only" -eq 1 ]; then
    summary+=("$(printf '%-8s built in %s' "$name" "$dir")")
    return 0
  fi
  log=$(mktemp)
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "$@" >"$log" 2>&1
  local rc=$?
  grep -E '^ *[0-9]+/[0-9]+ ' "$log"
  [ "$rc" -ne 0 ] && grep -v -E '^ *[0-9]+/[0-9]+ ' "$log" | tail -60
  local ok fail skip secs=$((SECONDS - t0))
  ok=$(count Ok "$log")
  fail=$(($(count Fail "$log") + $(count Timeout "$log") + $(count "Unexpected Pass" "$log")))
  skip=$(count Skipped "$log")
  [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1 # meson failed before testing
  [ "$rc" -ne 0 ] && failed=1
  summary+=("$(printf '%-8s %3d passed, %d failed, %2d skipped in %dm%02ds' "$name" "$ok" "$fail" "$skip" \
    $((secs / 60)) $((secs % 60)))")
  rm -f "$log"
}

check_asan() {
  t0=$SECONDS
  names=()
  if CC=${SAN_CC:-gcc} setup_build "$asan_build" -Dbuildtype=debugoptimized \
      -Db_sanitize=address,undefined -Db_lundef=false &&
     mapfile -t names < <(list_tests "$asan_build" --suite unit --suite mpi |
                          grep -v -e 'threads=' |
                          grep -v -x -e 'vocab P=1' -e 'combiner P=1' -e 'example ring_attention bad arguments') &&
     build_for "$asan_build" "${names[@]}"; then
    # (the "FAMILY P=N threads=2" mpi variants are tsan's: their threaded
    # tiles and groups run under asan in test_attn_threads, at 1-4 threads,
    # and in "combiner threads P=N"; they took 40 s of CI here. "vocab P=1"
    # runs natively; under asan "vocab P=2" takes the same blockwise logits
    # and loss, and the ring between them. "combiner P=1": every Combiner
    # head at P = 1 runs under asan in "combiner threads P=1" (23 s). The
    # example's bad arguments are its argument parsing, run natively: 5
    # launches whose leak checks at exit took 23 s)
    echo "sanitize.sh: $asan_build built in $((SECONDS - t0)) s; asan: unit, mpi P <= $asan_max (no threads=2 variants)"
    RA_TEST_MAX_RANKS=$asan_max run_checker asan "$asan_build" --setup asan "${names[@]}"
  else
    failed=1
    summary+=("asan     build failed")
  fi
}

check_valgrind() {
  t0=$SECONDS
  if setup_build "$vg_build" -Dnative=false -Dbuildtype=debugoptimized; then
    native=$(meson introspect --buildoptions "$vg_build" |
      python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "native"][0])')
    if [ "$native" != "False" ]; then
      echo "sanitize.sh: $vg_build has native=true; valgrind 3.19 cannot run AVX-512 code:" \
        "meson configure $vg_build -Dnative=false" >&2
      failed=1; return 1
    fi
    # unit tests, plus the chosen mpi families (test names are exact)
    names=()
    while IFS= read -r t; do
      names+=("$t")
    done < <(list_tests "$vg_build" --suite unit |
             grep -v -x -e test_attn_threads -e test_threads_layers -e test_attn_kernels -e test_costmodel \
               -e test_layers)
    # (the thread sweeps at 1-4 threads take many minutes under valgrind;
    # they run natively and under asan and tsan; test_attn_kernels' 1.5
    # minutes of shapes run natively and under asan, and its kernels run
    # under valgrind inside model_sweep; test_costmodel is the planner's
    # arithmetic, 40 s under valgrind, and runs under asan; test_layers'
    # shapes, 35 s under valgrind, run natively and under asan, and every
    # layer runs under valgrind inside model_sweep; the threads=2 mpi
    # variants are tsan's)
    while IFS= read -r t; do
      for fam in $vg_mpi; do
        case "$t" in *threads=*) ;; "$fam P="*) names+=("$t") ;; esac
      done
    done < <(list_tests "$vg_build" --suite mpi)
    # and, natively, suite 'isa': this portable build's kernel tests once per
    # x86-64 level the CPU runs (tests/meson.build; valgrind itself runs
    # the level it reports to the program)
    isa_names=()
    mapfile -t isa_names < <(list_tests "$vg_build" --suite isa)
    if build_for "$vg_build" "${names[@]}" "${isa_names[@]}"; then
      echo "sanitize.sh: $vg_build built in $((SECONDS - t0)) s; valgrind: unit, mpi ($vg_mpi) P <= $vg_max"
      RA_TEST_MAX_RANKS=$vg_max run_checker valgrind "$vg_build" --setup valgrind "${names[@]}"
      if [ "${#isa_names[@]}" -gt 0 ]; then
        run_checker isa "$vg_build" "${isa_names[@]}"
      fi
    else
      failed=1
      summary+=("valgrind build failed")
    fi
  else
    failed=1
    summary+=("valgrind build failed")
  fi
}

check_tsan() {
  t0=$SECONDS
  if CC=${SAN_TSAN_CC:-clang} setup_build "$tsan_build" -Dbuildtype=debugoptimized \
      -Db_sanitize=thread -Db_lundef=false; then
    if ! grep -q '^C compiler for the host machine: clang' "$tsan_build/meson-logs/meson-log.txt"; then
      echo "sanitize.sh: $tsan_build is not a clang build; tsan needs clang and LLVM's libomp" \
        "(rm -rf $tsan_build to set it up again)" >&2
      failed=1; return 1
    fi
    # the unit thread tests, plus the chosen threaded mpi tests
    names=(test_attn_threads test_threads_layers)
    while IFS= read -r t; do
      for fam in $tsan_mpi; do
        case "$fam:$t" in
          "combiner_threads:combiner threads P="*|"$fam:$fam P="*" threads=2") names+=("$t") ;;
        esac
      done
    done < <(list_tests "$tsan_build" --suite mpi)
    if build_for "$tsan_build" "${names[@]}"; then
      echo "sanitize.sh: $tsan_build built in $((SECONDS - t0)) s; tsan: unit thread tests," \
        "mpi ($tsan_mpi) P <= $tsan_max"
      RA_TEST_MAX_RANKS=$tsan_max run_checker tsan "$tsan_build" --setup tsan "${names[@]}"
      # Archer says so on each rank's stderr (ARCHER_OPTIONS=verbose=1): without
      # it TSan would not be seeing OpenMP's synchronisation at all
      missing=0
      [ "$build_only" -eq 0 ] &&
        missing=$(awk '/^test: / { if (t != "" && ran && !seen) n++; t = $0; ran = 1; seen = 0 }
                       /^result: .*(77|[Ss]kip)/ { ran = 0 }
                       /^Archer detected OpenMP application with TSan/ { seen = 1 }
                       END { if (t != "" && ran && !seen) n++; print n + 0 }' \
                  "$tsan_build/meson-logs/testlog-tsan.txt")
      if [ "$missing" -ne 0 ]; then
        echo "sanitize.sh: $missing tsan test(s) ran without Archer (libarcher.so, package libomp-14-dev)" >&2
        failed=1
        summary[-1]="${summary[-1]} (Archer missing in $missing)"
      fi
    else
      failed=1
      summary+=("tsan     build failed")
    fi
  else
    failed=1
    summary+=("tsan     build failed")
  fi
}

# one_checker NAME: check_NAME with its output in $logs/NAME.log, its summary
# lines in $logs/NAME.sum; non-zero if it failed
one_checker() {
  summary=()
  failed=0
  "check_$1" >"$logs/$1.log" 2>&1
  [ "${#summary[@]}" -eq 0 ] || printf '%s\n' "${summary[@]}" >"$logs/$1.sum"
  return "$failed"
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
checkers=(asan valgrind tsan)
[ "$mode" = all ] || checkers=("$mode")
if [ "$mode" = all ] && [ "$build_only" -eq 0 ]; then
  # The three at once: each runs its mpi tests one at a time (is_parallel:
  # false), which left a core idle for much of the 3.5 minutes they took in
  # turn; together they take the time of the longest, asan
  pids=()
  for c in "${checkers[@]}"; do one_checker "$c" & pids+=($!); done
  for i in "${!checkers[@]}"; do wait "${pids[$i]}" || echo 1 >"$logs/${checkers[$i]}.rc"; done
else
  for c in "${checkers[@]}"; do one_checker "$c" || echo 1 >"$logs/$c.rc"; done
fi
summary=()
for c in "${checkers[@]}"; do
  cat "$logs/$c.log"
  [ -e "$logs/$c.rc" ] && failed=1
  if [ -s "$logs/$c.sum" ]; then
    mapfile -t -O "${#summary[@]}" summary <"$logs/$c.sum"
  else
    summary+=("$(printf '%-8s stopped before its summary (its output is above)' "$c")")
  fi
done

echo "---- sanitize.sh $mode ----"
printf '%s\n' "${summary[@]}"
if [ "$build_only" -eq 1 ]; then
  [ "$failed" -ne 0 ] && echo "sanitize: build FAILED" || echo "sanitize: built"
elif [ "$failed" -ne 0 ]; then
  echo "sanitize: FAILED"
else
  echo "sanitize: all passed"
fi
exit "$failed"
