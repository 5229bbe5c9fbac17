#!/usr/bin/env bash
# Builds the C API (libomg.so, libomg.a), checks that include/omg.h is up to date, compiles the C
# tests and the example with gcc -Wall -Wextra -Werror against both libraries, runs them (the
# protected path's against a vendor service, devices and platform services set up here with the
# omg command), and runs the tests once more under valgrind (no leak, no error). Exit status 0
# only if all of it passed.
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

# omg and its enclave image (as .ci/run's difftest step builds them) set up the protected path's
# fixtures: a vendor service, a device, a package, a platform service.
cargo build --locked -p omg-cli -p omg-enclave-image "${flag[@]}"
cargo build --locked -p omg-capi "${flag[@]}"
lib="$PWD/target/$profile"
omg="$lib/omg"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pthread -Iinclude)

gcc "${cflags[@]}" crates/omg-capi/tests/c/test_capi.c -L"$lib" -lomg -Wl,-rpath,"$lib" \
  -o "$work/test_capi"
gcc "${cflags[@]}" crates/omg-capi/tests/c/test_capi.c "$lib/libomg.a" -lm -ldl \
  -o "$work/test_capi_static"
gcc "${cflags[@]}" examples/c/kws.c -L"$lib" -lomg -Wl,-rpath,"$lib" -o "$work/kws"
gcc "${cflags[@]}" crates/omg-capi/tests/c/test_protected.c -L"$lib" -lomg -Wl,-rpath,"$lib" \
  -o "$work/test_protected"
gcc "${cflags[@]}" crates/omg-capi/tests/c/test_protected.c "$lib/libomg.a" -lm -ldl \
  -o "$work/test_protected_static"

echo "--- C tests, shared library"
"$work/test_capi" "$PWD"
echo "--- C tests, static library"
"$work/test_capi_static" "$PWD"

# The protected path's fixtures, made with the omg command: a vendor (keys, database, a
# micro_speech package whose policy lists this build's enclave), its service on a free port;
# a device enrolled with it, another not enrolled. A run of test_protected provisions the
# device through the C API, so each run gets fresh device directories.
export OMG_ENCLAVE_IMAGE="$lib/omg-enclave"
"$omg" vendor keygen --dir "$work/keys" >/dev/null
OMG_HOME="$work/vendor-home" "$omg" device init --json >"$work/info.json"
measurement="$(sed -n 's/.*"enclave_measurement":"\([0-9a-f]*\)".*/\1/p' "$work/info.json")"
printf 'allowed_measurements = ["%s"]\nmax_devices = 10\nnot_after = 4102444800\noutput_policy = "label_and_score"\n' \
  "$measurement" >"$work/policy.toml"
"$omg" vendor package micro_speech --policy "$work/policy.toml" --db "$work/vendor.sqlite" \
  --key-dir "$work/keys" -o "$work/ms.omgpkg" >/dev/null
"$omg" vendor serve --listen 127.0.0.1:0 --db "$work/vendor.sqlite" --key-dir "$work/keys" \
  2>"$work/vendor.log" &
pids+=($!)
server=""
for _ in $(seq 100); do
  server="$(grep -o 'http://[0-9.:]*' "$work/vendor.log" | head -n1 || true)"
  [ -n "$server" ] && break
  sleep 0.1
done
[ -n "$server" ] || { cat "$work/vendor.log" >&2; echo "error: the vendor service did not start" >&2; exit 1; }
# A fresh device enrolled with the vendor (ARG: a name), and its platform service; prints the
# socket's path.
device() {
  OMG_HOME="$work/$1" "$omg" device init >/dev/null
  "$omg" vendor enroll --db "$work/vendor.sqlite" "$work/$1/device/attestation.pub" >/dev/null
  OMG_HOME="$work/$1-other" "$omg" device init >/dev/null
  "$omg" platform serve --dir "$work/$1/device" --socket "$work/$1.sock" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$work/$1.sock" ] && break; sleep 0.1; done
  [ -S "$work/$1.sock" ] || { cat "$work/$1.log" >&2; echo "error: the platform service did not start" >&2; exit 1; }
}
protected() { # NAME PROGRAM [WRAPPER...]: test_protected against a fresh device NAME
  local name="$1" program="$2"
  shift 2
  device "$name"
  "$@" "$program" "$PWD" "$work/$name/device" "$work/$name-other/device" "$work/ms.omgpkg" \
    "$work/keys/vendor.pub" "$server" "$work/$name.sock" "$OMG_ENCLAVE_IMAGE"
}
echo "--- C tests of the protected path (vendor service at $server), shared library"
protected shared "$work/test_protected"
echo "--- C tests of the protected path, static library"
protected static "$work/test_protected_static"

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
vg=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=1)
"${vg[@]}" "$work/test_capi" "$PWD"
echo "--- C tests of the protected path under valgrind"
protected valgrind "$work/test_protected" "${vg[@]}"
echo "C API: all checks passed"
