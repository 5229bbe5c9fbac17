#!/usr/bin/env bash
# The vendor's and the attacker's side of tools/optee/test.sh's end-to-end check, on the x86-64
# host, while the TrustZone machine runs. Usage: e2e-vendor.sh [--demo] EXCHANGE WORK OMG QMP MIB
# OVERLAY (with --demo, for tools/optee/demo.sh: steps 1 to 3, then 5; QMP and MIB unused)
#   1. waits for the machine's EXCHANGE/e2e/ready, written once `omg device info --backend
#      optee --json` left the attestation PTA's key and the TA's memory hash in
#      EXCHANGE/e2e/device_info.json (checked against what omg-optee-host read in
#      EXCHANGE/attest);
#   2. makes a vendor (keys, service database in WORK), enrolls the machine's PTA key (DER: never
#      trusted on first use) and a Linux device of this host; packages micro_speech with a
#      marked model (tools/optee/scan_memory.py mark: weights no program of the machine in
#      OVERLAY holds), a
#      policy listing the TA's memory hash under [backends.optee], this host's enclave
#      measurement and an inference quota of 153 (three runs of a one-second clip), and an
#      impostor package whose policy lists another TA measurement; starts `omg vendor serve`
#      on 127.0.0.1;
#   3. provisions and runs the Linux backend here on the reference yes and no clips (the
#      events the machine's OP-TEE backend must print), hands the machine the packages, the
#      vendor key and the service's port, and writes EXCHANGE/e2e/go;
#   4. when the machine asks (EXCHANGE/e2e/scan0, during an operation of the live package: the
#      same model, audio from a pipe; then scan1, after), saves its normal-world RAM through
#      QEMU's machine protocol on QMP and counts the marked model's windows in it
#      (EXCHANGE/e2e/scanN.result); then hands the machine the marked model in plaintext
#      (control.tflite), which the machine copies into its RAM, and scans again when asked
#      (scan2: the positive control);
#   5. serves until the machine writes EXCHANGE/e2e/done (or the wait times out).
set -euo pipefail
demo=0
if [ "${1:-}" = --demo ]; then demo=1; shift; fi
exchange="$1" work="$2" omg="$3" qmp="$4" mib="$5" overlay="$6"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scan=("/usr/bin/python3" "$here/scan_memory.py")
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
# A failure here tells the machine, which stops waiting for this side.
server=""
trap 'status=$?; [ -z "$server" ] || kill "$server" 2>/dev/null; [ "$status" = 0 ] || touch "$e2e/failed"' EXIT
wait_for "$e2e/ready" "${OMG_OPTEE_E2E_WAIT:-1500}"
# The demo's machine runs no omg-optee-host, so there is nothing to compare with.
attest="$exchange/attest"
[ "$demo" = 0 ] || attest=""
/usr/bin/python3 - "$e2e/device_info.json" "$attest" "$work" <<'PY'
import json, sys
from cryptography.hazmat.primitives import serialization
info, attest, work = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
der = bytes.fromhex(info["attestation_public_key"])
key = serialization.load_der_public_key(der)
if attest:
    # What omg device info printed must be what omg-optee-host read from OP-TEE itself.
    e = int.from_bytes(open(f"{attest}/exponent", "rb").read(), "big")
    n = int.from_bytes(open(f"{attest}/modulus", "rb").read(), "big")
    if (key.public_numbers().e, key.public_numbers().n) != (e, n):
        sys.exit("e2e: omg device info's attestation key is not the PTA's")
    if info["enclave_measurement"] != open(f"{attest}/evidence", "rb").read()[:32].hex():
        sys.exit("e2e: omg device info's measurement is not the TA's memory hash")
open(f"{work}/optee_device.der", "wb").write(der)
open(f"{work}/ta_measurement", "w").write(info["enclave_measurement"])
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
inference_quota = 153

[backends.optee]
measurements = ["$1"]
TOML
}
policy "$(cat "$work/ta_measurement")" >"$work/policy.toml"
# The package of the scan during an operation: raw audio from a pipe (stdin), no quota.
policy "$(cat "$work/ta_measurement")" |
  sed -e 's/^input_sources = .*/input_sources = ["stdin"]/' -e '/^inference_quota/d' >"$work/live.toml"
# The impostor's policy lists another TA (the real one's hash with its last digit changed).
other="$(sed 's/.$/0/' "$work/ta_measurement")"
[ "$other" != "$(cat "$work/ta_measurement")" ] || other="$(sed 's/.$/1/' "$work/ta_measurement")"
policy "$other" >"$work/impostor.toml"
# The package's model: micro_speech with marked weights, so that a window of it in the
# machine's memory can only come from the package's plaintext.
pipeline="$work/pipeline"
mkdir -p "$pipeline"
cp "$here/../../assets/pipelines/micro_speech/pipeline.toml" "$pipeline/"
"${scan[@]}" mark "$here/../../assets/pipelines/micro_speech/micro_speech_quantized.tflite" \
  "$pipeline/micro_speech_quantized.tflite" "$work/needles" "$omg" "$overlay"/usr/bin/* "$overlay"/lib/optee_armtz/*.ta
"$omg" vendor package "$pipeline" --policy "$work/policy.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/micro_speech.omgpkg" >/dev/null
"$omg" vendor package "$pipeline" --model-id live --policy "$work/live.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/live.omgpkg" >/dev/null
"$omg" vendor package micro_speech --model-id impostor --policy "$work/impostor.toml" --db "$db" \
  --key-dir "$work/keys" -o "$work/impostor.omgpkg" >/dev/null
"$omg" vendor serve --listen 127.0.0.1:0 --db "$db" --key-dir "$work/keys" 2>"$work/serve.log" &
server=$!
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
cp "$work/micro_speech.omgpkg" "$work/live.omgpkg" "$work/impostor.omgpkg" "$work/keys/vendor.pub" "$e2e/"
echo "$port" >"$e2e/port"
touch "$e2e/go"
if [ "$demo" = 1 ]; then
  wait_for "$e2e/done" 900
  exit 0
fi
# The attacker: the machine's normal-world RAM, while it keeps what its runs left there.
scan_ram() { # N
  wait_for "$e2e/scan$1" 900
  local started=$SECONDS
  "${scan[@]}" dump "$qmp" "$work/ram.bin" "$mib"
  "${scan[@]}" scan "$work/needles" "$work/ram.bin" >"$e2e/scan$1.result"
  rm -f "$work/ram.bin"
  echo "e2e: scan $1 of $mib MiB took $((SECONDS - started)) s: $(cat "$e2e/scan$1.result")" >&2
  touch "$e2e/scanned$1"
}
scan_ram 0
scan_ram 1
# The positive control: the marked model in plaintext, which the machine copies into its RAM.
cp "$pipeline/micro_speech_quantized.tflite" "$e2e/control.tflite"
scan_ram 2
wait_for "$e2e/done" 900
rm -f "$e2e/control.tflite"
