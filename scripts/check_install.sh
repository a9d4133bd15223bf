#!/usr/bin/env bash
# check_install.sh - the installed library works for a user who has only it:
#   1. `meson install` of the build dir ($RINGATTN_BUILD, built by build.sh)
#      into a fresh temporary prefix (--destdir; removed at the end);
#   2. the installed headers are exactly include/ringattn/*.h, and each one
#      compiles on its own with `pkg-config --cflags ringattn`;
#   3. every examples/*.c is compiled and linked with nothing but
#      `pkg-config --cflags --libs ringattn` (shared library, found at run
#      time through LD_LIBRARY_PATH) and run with mpirun on 2 ranks;
#   4. the installed `ringattn` program runs (`ringattn --version`).
# Prints one line per check and "install: N passed, M failed"; exits non-zero
# on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
src=$PWD
build=$RINGATTN_BUILD
case $build in /*) ;; *) build=$src/$build ;; esac
ranks=${CHECK_INSTALL_RANKS:-2}

passed=0 failed=0
pass() { echo "  ok    $*"; passed=$((passed + 1)); }
fail() { echo "  FAIL  $*"; failed=$((failed + 1)); }
finish() {
  echo "install: ${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if [ ! -f "$build/build.ninja" ]; then
  fail "no build dir $build (run scripts/build.sh first)"
  finish
fi
stage=$(mktemp -d "${TMPDIR:-/tmp}/ringattn-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# 1. install into $stage + the configured prefix
if meson install -C "$build" --destdir "$stage" --quiet >"$stage/install.log" 2>&1; then
  pass "meson install --destdir $stage"
else
  cat "$stage/install.log" >&2
  fail "meson install"
  finish
fi
prefix=$(meson introspect "$build" --buildoptions |
  python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
root=$stage$prefix
pcfile=$(find "$root" -name ringattn.pc | head -1)
if [ -z "$pcfile" ]; then
  fail "no ringattn.pc under $root"
  finish
fi
libdir=$(dirname "$(dirname "$pcfile")")
# ringattn.pc must be relocatable (prefix=${pcfiledir}/..., the project's
# default): its files are under $stage, not the configured prefix. A build
# dir set up before that default existed gets it here (no recompilation).
if ! grep -q '^prefix=${pcfiledir}' "$pcfile"; then
  echo "  note: meson configure $build -Dpkgconfig.relocatable=true (ringattn.pc names an absolute prefix)"
  meson configure "$build" -Dpkgconfig.relocatable=true >/dev/null &&
    meson install -C "$build" --destdir "$stage" --quiet >"$stage/install.log" 2>&1 ||
    { cat "$stage/install.log" >&2; fail "relocatable ringattn.pc"; finish; }
fi
export PKG_CONFIG_PATH=$(dirname "$pcfile")
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cflags=$(pkg-config --cflags ringattn) && libs=$(pkg-config --libs ringattn) ||
  { fail "pkg-config ringattn"; finish; }
echo "  pkg-config --cflags --libs ringattn: $cflags $libs"

# 2. the headers: all of include/ringattn/, each self-contained
want=$(cd include/ringattn && ls -- *.h | sort)
have=$(cd "$root/include/ringattn" 2>/dev/null && ls -- *.h | sort)
if [ "$want" = "$have" ]; then
  pass "headers: the $(echo "$want" | wc -l) of include/ringattn/ installed"
else
  fail "headers: installed set differs from include/ringattn/: $(diff <(echo "$want") <(echo "$have") | grep '^[<>]' | tr '\n' ' ')"
fi
bad=""
for h in $want; do
  # shellcheck disable=SC2086 # pkg-config output is words
  printf '#include <ringattn/%s>\n' "$h" | ${CC:-cc} -std=c11 -x c -fsyntax-only $cflags - 2>"$stage/hdr.log" ||
    { bad="$bad $h"; cat "$stage/hdr.log" >&2; }
done
if [ -z "$bad" ]; then pass "headers: each compiles alone with pkg-config --cflags"
else fail "headers that do not compile alone:$bad"; fi

# 3. the examples, built only from the installed copy
for ex in examples/*.c; do
  name=$(basename "$ex" .c)
  # shellcheck disable=SC2086
  if ! ${CC:-cc} -std=c11 -O2 -o "$stage/$name" "$ex" $cflags $libs 2>"$stage/cc.log"; then
    cat "$stage/cc.log" >&2
    fail "example $name: does not build with pkg-config --cflags --libs ringattn"
    continue
  fi
  # (grep reads all of ldd's output: with pipefail, `grep -q` quitting at the
  # first match can fail the pipeline by ldd's SIGPIPE: seen on a loaded box)
  if ! ldd "$stage/$name" | grep "$libdir/libringattn.so" >/dev/null; then
    fail "example $name: not linked to the installed libringattn.so ($(ldd "$stage/$name" | grep ringattn))"
    continue
  fi
  if out=$(mpirun --oversubscribe -x LD_LIBRARY_PATH -n "$ranks" "$stage/$name" 2>&1); then
    pass "example $name on $ranks ranks: $(echo "$out" | tail -1)"
  else
    echo "$out" >&2
    fail "example $name on $ranks ranks"
  fi
done

# 4. the installed program
if out=$("$root/bin/ringattn" --version 2>&1); then pass "installed program: $out"
else fail "installed program: $root/bin/ringattn --version: $out"; fi

finish
