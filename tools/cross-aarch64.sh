#!/usr/bin/env bash
# Cross-builds omg for aarch64-unknown-linux-gnu (64-bit ARM Linux) with Debian's Rust toolchain.
#
# Installs what it needs from Debian when missing (the arm64 architecture for dpkg, Debian's
# Rust with the aarch64 standard library, the aarch64 cross C compiler, the standard library's
# sources for tools/check-no-std.sh), then builds, in target/aarch64 so that the host build is
# never disturbed:
#   - the trusted core (engine, kernels, signal, KWS, protocol, enclave) and the Linux backend
#     (omg-linux, with its aarch64 seccomp allow-list), with their test binaries, which are
#     built but not run (qemu-user cannot run the threaded test harness; a VM can);
#   - the `omg` and `omg-enclave` binaries.
# Prints the paths of the binaries it built. Idempotent: a second run installs nothing and
# only rebuilds what changed.
#
# Options:
#   --profile NAME  cargo profile (default dev, in target/aarch64/aarch64-unknown-linux-gnu/debug;
#                   release for the binaries one ships; emulated for tools/arm/test.sh: optimized,
#                   with debug assertions and overflow checks, no LTO)
#   --bin NAME      build only this binary (omg or omg-enclave; repeatable), no tests
#   --tests FILE    also build the tests of omg-cli (the enclave attacks, the CLI, the conformance
#                   of `omg kws`) and write every test executable built to FILE, one a
#                   line: PACKAGE KIND NAME MANIFEST_DIR PATH (from cargo's JSON messages)
#
# Debian's toolchain, not rustup's: rustup's is first on PATH and has no aarch64 standard
# library, so cargo and rustc are named by path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
triple=aarch64-unknown-linux-gnu
profile=dev
tests_list=""
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --tests) tests_list="$2"; shift 2 ;;
    --bin) bins+=("$2"); shift 2 ;;
    *) echo "error: unknown argument $1 (options: --profile NAME, --bin NAME, --tests FILE)" >&2; exit 2 ;;
  esac
done

"$root/tools/debian-packages.sh" rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu rust-web-src

export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# C code built by dependencies' build scripts (ring's assembly and C).
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo=(/usr/bin/cargo --quiet --locked)
common=(--manifest-path "$root/Cargo.toml" --target "$triple" --target-dir "$root/target/aarch64"
  --profile "$profile")
packages=(-p omg-engine -p omg-kernels -p omg-signal -p omg-kws -p omg-protocol -p omg-enclave -p omg-linux)

if [ ${#bins[@]} -gt 0 ]; then
  [ -z "$tests_list" ] || { echo "error: --bin builds no tests; it cannot go with --tests" >&2; exit 2; }
  "${cargo[@]}" build "${common[@]}" -p omg-cli -p omg-enclave-image "${bins[@]/#/--bin=}"
elif [ -z "$tests_list" ]; then
  "${cargo[@]}" test --no-run "${common[@]}" "${packages[@]}"
  "${cargo[@]}" build "${common[@]}" -p omg-cli -p omg-enclave-image --bin omg --bin omg-enclave
else
  # The integration tests of omg-cli and omg-enclave-image make cargo build `omg` and
  # `omg-enclave` too (with the features the tests' dev-dependencies add: a separate
  # `cargo build` would build them again without).
  # --tests: the unit tests of libraries and binaries and the integration tests, no examples.
  "${cargo[@]}" test --no-run "${common[@]}" "${packages[@]}" -p omg-cli -p omg-enclave-image --tests \
    --message-format=json >"$tests_list.json"
  python3 - "$tests_list.json" >"$tests_list.tmp" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        package = m["package_id"].split("#")[0].rsplit("/", 1)[-1]
        kind = m["target"]["kind"][0]
        manifest_dir = m["manifest_path"].rsplit("/", 1)[0]
        print(package, kind, m["target"]["name"], manifest_dir, m["executable"])
PY
  rm -f "$tests_list.json"
  mv "$tests_list.tmp" "$tests_list"
fi

case "$profile" in
  dev) out="$root/target/aarch64/$triple/debug" ;;
  *) out="$root/target/aarch64/$triple/$profile" ;;
esac
[ ${#bins[@]} -gt 0 ] || bins=(omg omg-enclave)
for bin in "${bins[@]}"; do
  file -b "$out/$bin" | grep -q 'ARM aarch64' || {
    echo "error: $out/$bin is not an aarch64 executable" >&2
    exit 1
  }
  echo "$out/$bin"
done
