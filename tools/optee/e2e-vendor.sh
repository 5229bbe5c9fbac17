#!/usr/bin/env bash
# The vendor's side of tools/optee/test.sh's end-to-end check, on the x86-64 host, while the
# TrustZone machine runs. Usage: e2e-vendor.sh EXCHANGE WORK OMG
#   1. waits for the machine's EXCHANGE/e2e/ready (written once omg-optee-host left the
#      attestation PTA's key and the TA's memory hash in EXCHANGE/attest);
#   2. makes a vendor (keys, service database in WORK), enrolls the machine's PTA key (DER, from
#      its exponent and modulus: never trusted on first use) and a Linux device of this host;
#      packages micro_speech with a policy listing the TA's memory hash under
#      [backends.optee] and this host's enclave measurement, and an impostor package whose
#      policy lists another TA measurement; starts `omg vendor serve` on 127.0.0.1;
#   3. provisions and runs the Linux backend here on the reference yes and no clips (the
#      events the machine's OP-TEE backend must print), hands the machine the packages, the
#      vendor key and the service's port, writes EXCHANGE/e2e/go, and serves until the machine
#      writes EXCHANGE/e2e/done (or the wait times out).
set -euo pipefail
exchange="$1" work="$2" omg="$3"
e2e="$exchange/e2e"
wait_for() { # FILE SECONDS (gives up at once when the machine is done)
  local i=0
  while [ ! -e "$1" ]; do
    [ "$1" = "$e2e/done" ] || [ ! -e "$e2e/done" ] || { echo "e2e: the machine ended first" >&2; return 1; }
    i=$((i + 1))
    [ "$i" -le "$2" ] || { echo "e2e: no $1 after $2 s" >&2; return 1; }
    sleep 1
  done
}
rm -rf "$work"
mkdir -p "$work"
wait_for "$e2e/ready" "${OMG_OPTEE_E2E_WAIT:-1500}"
/usr/bin/python3 - "$exchange/attest" "$work" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
attest, work = sys.argv[1], sys.argv[2]
e = int.from_bytes(open(f"{attest}/exponent", "rb").read(), "big")
n = int.from_bytes(open(f"{attest}/modulus", "rb").read(), "big")
key = rsa.RSAPublicNumbers(e, n).public_key()
open(f"{work}/optee_device.der", "wb").write(key.public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
open(f"{work}/ta_measurement", "w").write(open(f"{attest}/evidence", "rb").read()[:32].hex())
PY
export OMG_HOME="$work/home"
db="$work/vendor.sqlite"
"$omg" vendor keygen --dir "$work/keys" >/dev/null
"$omg" device init --dir "$work/linux" --json >"$work/linux.json"
linux_measurement="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["enclave_measurement"])' "$work/linux.json")"
"$omg" vendor enroll --db "$db" "$work/optee_device.der" "$work/linux/attestation.pub" >/dev/null
policy() { # OPTEE_MEASUREMENT
  cat <<TOML
allowed_measurements = ["$linux_measurement"]
max_devices = 10
not_after = 4102444800
output_policy = "label_and_score"
input_sources = ["file"]

[backends.optee]
measurements = ["$1"]
TOML
}
policy "$(cat "$work/ta_measurement")" >"$work/policy.toml"
# The impostor's policy lists another TA (the real one's hash with its last digit changed).
other="$(sed 's/.$/0/' "$work/ta_measurement")"
[ "$other" != "$(cat "$work/ta_measurement")" ] || other="$(sed 's/.$/1/' "$work/ta_measurement")"
policy "$other" >"$work/impostor.toml"
"$omg" vendor package micro_speech --policy "$work/policy.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/micro_speech.omgpkg" >/dev/null
"$omg" vendor package micro_speech --model-id impostor --policy "$work/impostor.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/impostor.omgpkg" >/dev/null
"$omg" vendor serve --listen 127.0.0.1:0 --db "$db" --key-dir "$work/keys" 2>"$work/serve.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
wait_for "$work/serve.log" 10
for _ in $(seq 30); do grep -q :// "$work/serve.log" && break; sleep 1; done
port="$(head -n1 "$work/serve.log" | sed -n 's|.*://127.0.0.1:\([0-9]*\).*|\1|p')"
[ -n "$port" ] || { echo "e2e: the vendor service did not start: $(cat "$work/serve.log")" >&2; exit 1; }
"$omg" provision --backend linux --dir "$work/linux" "$work/micro_speech.omgpkg" \
  --server "http://127.0.0.1:$port" --vendor-key "$work/keys/vendor.pub" >"$work/linux_provision.out"
for clip in yes no; do
  "$omg" run --backend linux --dir "$work/linux" "$work/micro_speech.omgpkg" --json \
    --wav "$exchange/data/micro_speech/testdata/${clip}_1000ms.wav" >"$e2e/linux_$clip.json"
done
cp "$work/micro_speech.omgpkg" "$work/impostor.omgpkg" "$work/keys/vendor.pub" "$e2e/"
echo "$port" >"$e2e/port"
touch "$e2e/go"
wait_for "$e2e/done" 900
