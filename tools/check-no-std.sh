#!/usr/bin/env bash
# Builds the trusted core (engine, KWS, protocol, enclave logic) as a #![no_std] static library
# (panic = abort, its own allocator) and links it from a C program: if anything in its dependency
# tree needed std, this would not link.
# Optional arguments: .tflite models for the C program to load and run once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/no-std-check"
target="$root/target/no-std-check"
cargo build --release --quiet --manifest-path "$dir/Cargo.toml" --target-dir "$target"
cc -O1 -o "$target/check" "$dir/main.c" "$target/release/libomg_no_std_check.a"
"$target/check" "$@"
