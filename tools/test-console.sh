#!/usr/bin/env bash
# The vendor's web console in a real browser (docs/console.md): headless Chromium from Debian
# (chromium, chromium-driver) driven by Selenium (PyPI, in a fresh virtual environment; no
# browser is downloaded). Makes a vendor (keys, a SQLite service database, the micro_speech
# package with a policy for this host's enclave), a Linux device that the vendor enrols, starts
# `omg vendor serve` with an admin token, provisions the device (its first activation, through
# the real protocol), then runs tools/console_browser_test.py: log in (a wrong token refused),
# browse, filter the audit log, forged posts refused, revoke the device through its page and
# the confirmation page, and the device's next `omg provision` refused as device_revoked.
#   test-console.sh [--screenshots DIR] [--omg BINARY]
# --screenshots DIR keeps the pages' screenshots there (docs/console holds the committed set);
# --omg takes a built omg instead of building target/release/omg (with its enclave image).
# Exit status 0 only if every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
shots="" omg=""
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshots) shots="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --omg) omg="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    *) echo "usage: tools/test-console.sh [--screenshots DIR] [--omg BINARY]" >&2; exit 2 ;;
  esac
done

echo "--- Debian's chromium and chromium-driver"
tools/debian-packages.sh chromium chromium-driver
chromium --version 2>/dev/null
chromedriver --version

if [ -z "$omg" ]; then
  echo "--- omg (release, with its enclave image)"
  cargo build --release --locked -p omg-cli -p omg-enclave-image
  omg="$PWD/target/release/omg"
fi

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "--- a virtual environment with Selenium"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check selenium==4.50.0
"$work/venv/bin/python" -c 'import selenium; print("selenium", selenium.__version__)'

echo "--- a vendor, a device, the service"
export OMG_HOME="$work/home"
db="$work/vendor.sqlite"
"$omg" vendor keygen --dir "$work/keys" >/dev/null
measurement="$("$omg" device init --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["enclave_measurement"])')"
cat >"$work/policy.toml" <<TOML
allowed_measurements = ["$measurement"]
max_devices = 10
not_after = 4102444800
output_policy = "label_and_score"
input_sources = ["file"]
TOML
"$omg" vendor package micro_speech --policy "$work/policy.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/micro_speech.omgpkg" >/dev/null
ueid="$("$omg" vendor enroll --db "$db" "$OMG_HOME/device/attestation.pub" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["ueid"])')"
head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$work/admin-token"
"$omg" vendor serve --listen 127.0.0.1:0 --db "$db" --key-dir "$work/keys" \
  --admin-token-file "$work/admin-token" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q :// "$work/serve.log" && break; sleep 0.1; done
port="$(head -n1 "$work/serve.log" | sed -n 's|.*://127.0.0.1:\([0-9]*\).*|\1|p')"
[ -n "$port" ] || { echo "error: the vendor service did not start: $(cat "$work/serve.log")" >&2; exit 1; }
url="http://127.0.0.1:$port"
echo "service at $url, device $ueid"
provision=("$omg" provision "$work/micro_speech.omgpkg" --server "$url"
  --vendor-key "$work/keys/vendor.pub")
"${provision[@]}" >/dev/null
echo "the device is provisioned (its first activation)"

echo "--- the console in headless Chromium"
screenshots=()
[ -z "$shots" ] || screenshots=(--screenshots "$shots")
if ! PYTHONDONTWRITEBYTECODE=1 "$work/venv/bin/python" tools/console_browser_test.py \
  --url "$url" --token-file "$work/admin-token" --ueid "$ueid" --model micro_speech \
  "${screenshots[@]}" -- "${provision[@]}"; then
  echo "--- the service's log" >&2
  tail -n 40 "$work/serve.log" >&2
  exit 1
fi
