#!/usr/bin/env bash
# Create or update the Python virtual environment used by the omg tooling
# (tools/difftest.py, tools/bench_compare.py).
#
#   tools/setup-venv.sh            # venv at <repo>/.venv
#   OMG_VENV=DIR tools/setup-venv.sh
#   PYTHON=python3.11 tools/setup-venv.sh   # interpreter used to create it
#
# Idempotent: when the venv exists and was built from the current
# tools/python-requirements.txt with the same interpreter, it only checks
# that the packages import and returns (about a second).
# Afterwards run the tools with "$VENV/bin/python tools/difftest.py ...".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OMG_VENV:-$root/.venv}"
req="$root/tools/python-requirements.txt"
stamp="$venv/.omg-requirements.stamp"

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
    py=python3.11
else
    py=python3
fi

say() { printf 'setup-venv: %s\n' "$*"; }

check_imports() {
    "$venv/bin/python" - <<'PY'
import numpy, tflite_micro
from tflite_micro import runtime
from ai_edge_litert.interpreter import Interpreter
print("numpy", numpy.__version__)
PY
}

want_stamp() {
    local pyver
    pyver="$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    printf '%s python-%s\n' "$(sha256sum "$req" | cut -d' ' -f1)" "$pyver"
}

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$(want_stamp)" ]] && check_imports >/dev/null 2>&1; then
        say "venv $venv is up to date with tools/python-requirements.txt; nothing to do"
        exit 0
    fi
    say "updating existing venv $venv"
else
    if [[ -e "$venv" ]]; then
        say "$venv exists but has no working python; recreating it"
        rm -rf "$venv"
    fi
    pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$pyver" != "3.11" ]]; then
        say "warning: $py is Python $pyver; the pins were checked with Python 3.11"
    fi
    say "creating venv $venv with $py (Python $pyver)"
    "$py" -m venv "$venv"
fi

say "installing $req"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
check_imports >/dev/null
want_stamp > "$stamp"
say "installed:"
"$venv/bin/python" -m pip freeze --disable-pip-version-check | sed 's/^/  /'
say "done; use $venv/bin/python tools/difftest.py ... / tools/bench_compare.py ..."
