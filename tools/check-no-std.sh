#!/usr/bin/env bash
# Builds the trusted core (engine, KWS, protocol, enclave logic) as a #![no_std] static library
# (panic = abort, its own allocator) and links it, twice:
#   1. for the host, from a C program that runs it: if anything in its dependency tree needed
#      std, this would not link;
#   2. for bare-metal aarch64 (aarch64-unknown-none: no operating system, no C library), what a
#      TrustZone trusted application or firmware links. Its core and alloc are built from
#      source (-Zbuild-std, Debian's rustc-web and rust-web-src, installed by
#      tools/cross-aarch64.sh), with compiler_builtins' memcpy/memset/memcmp. The library is
#      linked with `-nostdlib -static` to a C entry point (bare.c) that calls every export:
#      the link fails on any symbol the core still refers to, so it proves the core needs
#      nothing from its surroundings but memory (its allocator is in the library). The image is
#      linked, not run.
# Optional arguments: .tflite models for the host C program to load and run once.
# Set OMG_NO_STD_HOST_ONLY=1 to skip the aarch64 part.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/no-std-check"
target="$root/target/no-std-check"
cargo build --release --quiet --manifest-path "$dir/Cargo.toml" --target-dir "$target"
cc -O1 -o "$target/check" "$dir/main.c" "$target/release/libomg_no_std_check.a"
"$target/check" "$@"

[ "${OMG_NO_STD_HOST_ONLY:-0}" = 1 ] && exit 0
bare=aarch64-unknown-none
for tool in /usr/bin/cargo /usr/bin/rustc aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool is missing; run tools/cross-aarch64.sh first" >&2
    exit 1
  }
done
[ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ] || {
  echo "error: the standard library's sources are missing (Debian package rust-web-src)" >&2
  exit 1
}
# build-std is unstable: RUSTC_BOOTSTRAP lets the stable toolchain accept it.
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --quiet \
  --manifest-path "$dir/Cargo.toml" --target-dir "$target" --target "$bare" \
  -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem
aarch64-linux-gnu-gcc -nostdlib -static -ffreestanding -O1 \
  -o "$target/check-$bare" "$dir/bare.c" "$target/$bare/release/libomg_no_std_check.a"
echo "no_std core linked for $bare: $(stat -c %s "$target/check-$bare") bytes, no undefined symbols"
