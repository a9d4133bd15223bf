#!/usr/bin/env bash
# test.sh - README's second command (and CI's): install, build warning-free
# (--werror), run every test suite (unit, mpi, cli), print "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh -Dwerror=true || exit 1
. scripts/env.sh
out=$(mktemp)
meson test -C "$RINGATTN_BUILD" --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); print $2 }' "$out" | tail -1; }
passed=$(( $(count Ok || echo 0) + $(count "Expected Fail" || echo 0) ))
failed=$(( $(count Fail || echo 0) + $(count Timeout || echo 0) + $(count "Unexpected Pass" || echo 0) ))
rm -f "$out"
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1  # meson failed before testing
echo "${passed} passed, ${failed} failed"
exit "$rc"
