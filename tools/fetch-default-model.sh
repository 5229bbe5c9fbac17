#!/usr/bin/env bash
# Fetches the bundled default classifier from a package registry: the crates.io package
# `microflow` 0.1.3 ships TFLite Micro's micro_speech model as models/speech.tflite (MIT OR
# Apache-2.0; the model itself is TensorFlow's, Apache-2.0). Cargo downloads the package into a
# throw-away project; the file is checked against its known SHA-256 and copied into
# assets/pipelines/micro_speech/. Run it only to refresh that file; the build never needs network.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want=09e5e2a9dfb2d8ed78802bf18ce297bff54281a66ca18e0c23d69ca14f822a83
dest="$root/assets/pipelines/micro_speech/micro_speech_quantized.tflite"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nmicroflow = "=0.1.3"\n' > "$work/Cargo.toml"
: > "$work/src/lib.rs"
CARGO_HOME="$work/cargo-home" cargo fetch --manifest-path "$work/Cargo.toml" --quiet
src="$(ls -d "$work"/cargo-home/registry/src/*/microflow-0.1.3 | head -n 1)/models/speech.tflite"
got="$(sha256sum "$src" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
  echo "fetch-default-model: unexpected SHA-256 $got (want $want)" >&2
  exit 1
fi
install -m 0644 "$src" "$dest"
echo "fetch-default-model: $dest ($got)"
