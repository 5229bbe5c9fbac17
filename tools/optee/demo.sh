#!/usr/bin/env bash
# The three phases of omg with the enclave in ARM TrustZone's secure world, narrated, on the
# emulated machine of tools/optee/test.sh (what `omg demo` shows for the Linux backend):
#   1. builds what the machine runs as test.sh does (tools/optee/prepare.sh: the secure world,
#      the TA, omg --features optee) and boots QEMU's virt board with TF-A, OP-TEE and Debian's
#      arm64 kernel;
#   2. in the machine, `omg device info --backend optee` prints what OP-TEE's attestation PTA
#      reports: its public key (which the vendor enrolls) and the TA's memory hash (which the
#      vendor's policy lists);
#   3. here, the vendor's side of test.sh (tools/optee/e2e-vendor.sh --demo) makes a vendor,
#      enrolls that key, packages micro_speech for that TA and runs `omg vendor serve`;
#   4. preparation, in the machine: `omg provision --backend optee` against the service on the
#      host: the TA's attestation (signed through the PTA), the key release to the TA and the
#      sealing of the model key with a key derived from the hardware-unique key; the vendor
#      service then stops;
#   5. initialization and operation, offline: `omg run --backend optee` on the reference yes and
#      no clips, with the events the TA's enclave core reports.
# Exits with the machine's result. OMG_SHARED_DATA names the reference data (default
# ../shared/data). Not a CI stage: test.sh's end-to-end part runs the same path and checks it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tools/optee/prepare.sh
. "$root/tools/optee/prepare.sh" demo

cat >"$overlay/scenario" <<'SCENARIO'
#!/bin/sh
section() { printf '\n== %s\n' "$*"; }
[ -e /dev/teepriv0 ] || { echo "omg-optee: no /dev/teepriv0 (OP-TEE driver not up)"; exit 1; }
mkdir -p /data/tee
/usr/sbin/tee-supplicant &
e2e=/exchange/e2e
mkdir -p $e2e
section "1. Device: what OP-TEE's attestation PTA reports for this TA (the vendor enrolls the key and lists the hash)"
/usr/bin/omg device info --backend optee || exit 1
/usr/bin/omg device info --backend optee --json >$e2e/device_info.json || exit 1
touch $e2e/ready
i=0
while [ ! -e $e2e/go ] && [ ! -e $e2e/failed ] && [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
[ -e $e2e/go ] || { echo "omg-optee demo: the vendor's side failed (target/optee/demo-vendor.log)"; exit 1; }
server="http://10.0.2.2:$(cat $e2e/port)"
dev=/tmp/omg-device
pkg=$e2e/micro_speech.omgpkg
section "2. Vendor (on the host): micro_speech packaged for this TA's hash, this device's PTA key enrolled, service on $server"
ls -l $pkg
section "3. Preparation (online, once): attestation through the PTA, key release to the TA, sealing with a HUK-derived key"
/usr/bin/omg provision --backend optee --dir $dev $pkg --server "$server" --vendor-key $e2e/vendor.pub
status=$?
touch $e2e/done
[ $status = 0 ] || exit $status
echo "   vendor service stopped: the device is offline from here"
section "4. Initialization and operation (offline, every start): the TA unseals the key, decrypts the model in secure memory, classifies"
for clip in yes no; do
  echo "-- ${clip}_1000ms.wav (said: $clip)"
  /usr/bin/omg run --backend optee --dir $dev $pkg --wav /exchange/data/micro_speech/testdata/${clip}_1000ms.wav ||
    exit 1
done
section "5. What the normal world holds: the package (encrypted) and the sealed blob"
find $dev -type f | while read -r f; do ls -l "$f"; done
exit 0
SCENARIO
chmod +x "$overlay/scenario"

exchange="$out/exchange"
rm -rf "$exchange"
mkdir -p "$exchange/e2e"
cp -r "$data" "$exchange/data"
say "vendor's side here (log in target/optee/demo-vendor.log); booting the TrustZone machine"
"$root/tools/optee/e2e-vendor.sh" --demo "$exchange" "$out/demo" "$root/target/debug/omg" "" "" \
  "$overlay" >"$out/demo-vendor.log" 2>&1 &
vendor=$!
set +e
"$root/tools/arm/run.sh" --secure-world "$images" --exchange "$exchange" --module optee --net \
  --timeout "${OMG_OPTEE_TIMEOUT:-1800}" --log "$out/demo-console.log" "$overlay"
status=$?
touch "$exchange/e2e/done" 2>/dev/null
wait "$vendor" || { echo "the vendor's side failed: $(tail -n 3 "$out/demo-vendor.log")" >&2; status=1; }
set -e
say "done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s, exit status $status (console in target/optee/demo-console.log)"
exit "$status"
