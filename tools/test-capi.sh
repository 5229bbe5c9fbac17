#!/usr/bin/env bash
# Builds the C API (libomg.so, libomg.a), checks that include/omg.h is up to date, compiles the C
# tests and the example with gcc -Wall -Wextra -Werror against both libraries, runs them, and runs
# the tests once more under valgrind (no leak, no error). Exit status 0 only if all of it passed.
#   test-capi.sh [--debug]     (default: the release profile, shared with .ci/run's other steps)
# The TFLM reference checks need the shared test data: set OMG_SHARED_DATA to its folder
# (without it they are skipped, and the test says so).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
flag=(--release)
if [ "${1:-}" = --debug ]; then
  profile=debug
  flag=()
fi
tools/debian-packages.sh gcc valgrind

tools/capi-header.sh

cargo build --locked -p omg-capi "${flag[@]}"
lib="$PWD/target/$profile"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pthread -Iinclude)

gcc "${cflags[@]}" crates/omg-capi/tests/c/test_capi.c -L"$lib" -lomg -Wl,-rpath,"$lib" \
  -o "$work/test_capi"
gcc "${cflags[@]}" crates/omg-capi/tests/c/test_capi.c "$lib/libomg.a" -lm -ldl \
  -o "$work/test_capi_static"
gcc "${cflags[@]}" examples/c/kws.c -L"$lib" -lomg -Wl,-rpath,"$lib" -o "$work/kws"

echo "--- C tests, shared library"
"$work/test_capi" "$PWD"
echo "--- C tests, static library"
"$work/test_capi_static" "$PWD"

echo "--- example: examples/c/kws.c"
for clip in yes_en-us no_en-gb; do
  out="$("$work/kws" assets/clips/$clip.wav)"
  echo "$out"
  want="${clip%%_*}"
  grep -q "^$want " <<<"$out" || { echo "error: the example did not find \"$want\" in $clip.wav" >&2; exit 1; }
done

echo "--- README's C snippet (Embedding omg), compiled and run as written"
awk '/^## Embedding omg/ {s = 1} s && /^```c$/ {c = 1; next} c && /^```$/ {exit} c' README.md >"$work/yes.c"
want="$(awk '/^## Embedding omg/ {s = 1} s && /&& \.\/yes$/ {getline; print; exit}' README.md)"
gcc "${cflags[@]}" "$work/yes.c" -L"$lib" -lomg -Wl,-rpath,"$lib" -o "$work/yes"
got="$("$work/yes")"
echo "$got"
if [ -z "$want" ] || [ "$got" != "$want" ]; then
  echo "error: README's snippet printed \"$got\", README shows \"$want\"" >&2
  exit 1
fi

echo "--- C tests under valgrind"
valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,possible \
  --error-exitcode=1 "$work/test_capi" "$PWD"
echo "C API: all checks passed"
