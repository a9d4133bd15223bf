#!/usr/bin/env bash
# build.sh [meson options...] - configure (once) and build into $RINGATTN_BUILD (build/).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ ! -f "$RINGATTN_BUILD/build.ninja" ]; then
  meson setup "$RINGATTN_BUILD" "$@"
elif [ $# -gt 0 ]; then
  meson configure "$RINGATTN_BUILD" "$@"
fi
ninja -C "$RINGATTN_BUILD"
