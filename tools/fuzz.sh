#!/usr/bin/env bash
# Runs a cargo-fuzz target for a while: tools/fuzz.sh [TARGET] [SECONDS]
# The committed seed corpus (fuzz/seeds/TARGET) is copied into a working corpus
# (fuzz/corpus/TARGET, not committed); for the model target the reference models in
# ../shared/data are added as extra seeds when present. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets it use the stable toolchain.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:-model}"
seconds="${2:-60}"
shared="${OMG_SHARED_DATA:-$root/../shared/data}"
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
cp -n "$root/fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true
if [ "$target" = model ] && [ -d "$shared" ]; then
  for m in "$shared"/*/models/*.tflite; do cp -n "$m" "$corpus/" ; done
fi
cd "$root"
# Targets that need files (vendor_bodies' SQLite store) make them under TMPDIR: a private
# directory, RAM-backed where /dev/shm exists (the store syncs every commit), removed on every
# exit path (libFuzzer ends the process without running Rust destructors).
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base="${TMPDIR:-/tmp}"
scratch="$(mktemp -d "$base/omg-fuzz-XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
TMPDIR="$scratch" RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
  -max_total_time="$seconds" -max_len="${FUZZ_MAX_LEN:-100000}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
