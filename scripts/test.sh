#!/usr/bin/env bash
# test.sh [--quick] - README's second command (and CI's): install, build
# warning-free (--werror), run every meson suite (unit, mpi, cli, cluster,
# slurm), then the install check (scripts/check_install.sh: install into a
# temporary prefix, build examples/ against it with pkg-config, run them),
# then the checkers: the unit and mpi suites under ASan + UBSan and under
# valgrind, the threaded tests under ThreadSanitizer (scripts/sanitize.sh
# all), and a short smoke run of every libFuzzer harness (scripts/fuzz.sh,
# SMOKE_SECONDS each, default 5).
# Prints "N passed, M failed" over all of them; exits non-zero on any failure.
# --quick: the meson suites only (extra arguments go to meson test).
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
# checked before anything is installed or built: meson refused a bad count
# only after them, as "0 passed, 1 failed"
jobs=${RINGATTN_TEST_JOBS:-3}
case $jobs in
  '' | *[!0-9]* | 0* | ?????* ) echo "test.sh: RINGATTN_TEST_JOBS='${jobs:0:40}' is not a count of tests at a time (1 to 9999)" >&2
                       exit 2 ;;
esac
# phase NAME: how long the last phase took, for keeping CI under 15 minutes
t_phase=$SECONDS
phase() { echo "test.sh: $1 took $((SECONDS - t_phase)) s (total $SECONDS s)"; t_phase=$SECONDS; }
bash scripts/install-deps.sh --tests || exit 1
bash scripts/build.sh -Dwerror=true || exit 1
phase "install and build"
. scripts/env.sh
out=$(mktemp)
pre=$(mktemp)
trap 'rm -f "$out" "$pre"' EXIT
if [ "$quick" -eq 0 ]; then
    # The checkers' builds (about 100 s of both cores) go on while the meson
    # suites run: the suites wait on launches, timeouts and Slurm for part of
    # their time, and at nice 19 the builds take only those idle cycles. Linux
    # shares the CPU between sessions first (autogroups), and meson starts
    # every test in a session of its own: nice alone left the builds half of
    # the CPU beside one test. So the builds get a session of their own, and
    # that session nice 19 (where /proc/PID/autogroup exists).
    setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null
                    nice -n 19 bash scripts/sanitize.sh --build-only all &&
                      nice -n 19 bash scripts/fuzz.sh --build-only' >"$pre" 2>&1 </dev/null &
    prebuild=$!
fi
# 3 tests at a time: the suites keep both cores busy (94 % measured); 2 left a
# third idle, 4 gained nothing more (README, end of Tests)
meson test -C "$RINGATTN_BUILD" --print-errorlogs --num-processes "$jobs" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
phase "meson suites"
count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); print $2 }' "$out" | tail -1; }
passed=$(( $(count Ok || echo 0) + $(count "Expected Fail" || echo 0) ))
failed=$(( $(count Fail || echo 0) + $(count Timeout || echo 0) + $(count "Unexpected Pass" || echo 0) ))
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1  # meson failed before testing

if [ "$quick" -eq 0 ]; then
    # (a failed build is reported again, in full, by the checker that needs it)
    wait "$prebuild" || { echo "test.sh: the checkers' builds failed:"; tail -20 "$pre"; }
    phase "the checkers' builds, after the suites"
    # the installed library: "install: N passed, M failed" (scripts/check_install.sh)
    bash scripts/check_install.sh 2>&1 | tee "$out"
    [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
    read -r p f < <(awk '/^install: [0-9]+ passed, [0-9]+ failed/ { p = $2; f = $4 } END { print p + 0, f + 0 }' "$out")
    [ $((p + f)) -eq 0 ] && f=1 # the script stopped before its summary
    passed=$((passed + p)) failed=$((failed + f))
    phase "install check"
    # sanitizers: "asan  20 passed, 0 failed, 6 skipped in 1m15s" per checker
    # (asan, valgrind, tsan)
    bash scripts/sanitize.sh all 2>&1 | tee "$out"
    [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
    read -r p f < <(awk '/^(asan|valgrind|tsan) +[0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
                         END { print p + 0, f + 0 }' "$out")
    passed=$((passed + p)) failed=$((failed + f))
    grep -q '^sanitize: all passed' "$out" || { [ "$f" -eq 0 ] && failed=$((failed + 1)); }
    phase "sanitizers (builds included)"
    # fuzzers: the seed corpora replayed, then SMOKE_SECONDS of fuzzing each
    bash scripts/fuzz.sh "${SMOKE_SECONDS:-5}" 2>&1 | tee "$out"
    [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
    read -r p f < <(awk '/^fuzz_/ { if ($NF == "ok") p++; else f++ } END { print p + 0, f + 0 }' "$out")
    [ $((p + f)) -eq 0 ] && f=1 # no fuzzer ran
    passed=$((passed + p)) failed=$((failed + f))
    phase "fuzzers (builds included)"
fi
[ "$failed" -gt 0 ] && rc=1
echo "${passed} passed, ${failed} failed"
exit "$rc"
