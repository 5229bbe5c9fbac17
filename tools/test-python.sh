#!/usr/bin/env bash
# Builds the omg Python package (crates/omg-python) as an abi3 wheel with maturin in release,
# installs it in a fresh virtual environment with numpy, tflite-micro and pytest (the pins of
# tools/python-requirements.txt), runs its pytest suite (crates/omg-python/tests: byte-equal
# outputs with the tflite_micro wheel on the nine reference models, state and reset, errors,
# hostile bytes, the keyword pipeline) and the README's Python snippet (Embedding omg) as
# written, then benchmarks omg's binding against tflite_micro's, per invoke
# (tools/bench_python.py). Exit status 0 only if all of it passed.
#   test-python.sh            the benchmark as a Markdown table
#   test-python.sh --json     the benchmark as JSON, alone on stdout (the rest goes to stderr)
# The tests read the shared test data: OMG_SHARED_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
json=()
case "${1:-}" in
  --json) json=(--json); exec 3>&1 1>&2 ;;
  "") exec 3>&1 ;;
  *) echo "usage: tools/test-python.sh [--json]" >&2; exit 2 ;;
esac
shared="${OMG_SHARED_DATA:-../shared/data}"
if [ ! -d "$shared/micro_speech" ]; then
  echo "error: the reference data is missing at $shared (set OMG_SHARED_DATA)" >&2
  exit 1
fi
export OMG_SHARED_DATA="$(cd "$shared" && pwd)"
models=("$OMG_SHARED_DATA"/micro_speech/models/*.tflite "$OMG_SHARED_DATA"/mlperf_tiny/models/*.tflite)

# maturin and the pins, in .venv.
tools/setup-venv.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "--- the wheel: maturin build --release"
.venv/bin/maturin build --release --locked -m crates/omg-python/Cargo.toml -o "$work/dist"
wheels=("$work"/dist/omg-*-cp39-abi3-*.whl)
ls -l "${wheels[@]}"

echo "--- a fresh virtual environment with the wheel, numpy, tflite-micro and pytest"
base="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c tools/python-requirements.txt "${wheels[0]}" tflite-micro pytest
py="$work/venv/bin/python"
"$py" -c 'import omg, numpy, tflite_micro; print("omg", omg.__version__, "numpy", numpy.__version__)'

echo "--- a token sample for omg.verify_token, from omg-protocol's writer"
OMG_WRITE_TOKEN_SAMPLE="$work/token" cargo test --locked --release -p omg-protocol \
  --test token_interop -- --ignored --exact write_token_sample
export OMG_TOKEN_SAMPLE="$work/token"

echo "--- pytest: crates/omg-python/tests"
# No bytecode or cache files in the work tree.
PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q crates/omg-python/tests

echo "--- README's Python snippet (Embedding omg), run as written"
awk '/^## Embedding omg/ {s = 1} s && /^```python$/ {c = 1; next} c && /^```$/ {exit} c' \
  README.md >"$work/snippet.py"
want="$(awk '/^## Embedding omg/ {s = 1} s && /^\$ python [a-z_]+\.py$/ {o = 1; next}
  o && /^```$/ {exit} o' README.md)"
got="$(PATH="$work/venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1 python "$work/snippet.py")"
echo "$got"
if [ ! -s "$work/snippet.py" ] || [ -z "$want" ] || [ "$got" != "$want" ]; then
  printf 'error: README'"'"'s Python snippet printed:\n%s\nREADME shows:\n%s\n' "$got" "$want" >&2
  exit 1
fi

echo "--- benchmark: omg's binding against tflite_micro's, per invoke"
"$py" tools/bench_python.py "${json[@]}" "${models[@]}" >&3
echo "Python package: all checks passed"
