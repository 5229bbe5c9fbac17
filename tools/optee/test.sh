#!/usr/bin/env bash
# Runs the omg trusted application in OP-TEE on the emulated TrustZone machine:
#   1. builds the secure world (tools/optee/build.sh), the TA (optee/ta, signed with the TA dev
#      kit's development key) and the normal-world check program (optee/host), both with
#      Debian's Rust for aarch64, and lints both with clippy;
#   2. boots QEMU's virt board with TF-A, OP-TEE and Debian's arm64 kernel (tools/arm/run.sh
#      --secure-world), the reference data shared in at /exchange/data;
#   3. in the machine, tee-supplicant starts and optee/host runs every reference model through
#      the TA and through the omg engine in the normal world, checks the outputs are equal (and
#      equal to TensorFlow Lite Micro's where the data has them), feeds the TA hostile commands
#      and models, checks the TA's randomness, RPMB counters, derived keys and attestation
#      evidence (and that a TA with one byte changed has another measurement, a TA signed with
#      another key does not load), and prints cold start, per-invoke times in both worlds and
#      the TA's heap use;
#   4. end to end: `omg vendor serve` runs here (tools/optee/e2e-vendor.sh) with a package whose
#      policy lists the TA's memory hash and the machine's attestation PTA key enrolled, both
#      read from the machine first; in the machine, `omg provision --backend optee` against
#      http://10.0.2.2:PORT and `omg run --backend optee` on the reference yes and no clips
#      must print the events of the Linux backend here on the same clips, and provisioning a
#      package whose policy lists another TA must be refused;
#   5. verifies the attestation evidence outside the machine (tools/optee/verify_attestation.py).
# Exits with the machine's result (0: every check passed). Prints the TA's size and the minutes
# the whole took. OMG_SHARED_DATA names the reference data (default ../shared/data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
host_path="$PATH"
data="${OMG_SHARED_DATA:-$root/../shared/data}"
[ -d "$data/micro_speech" ] || { echo "error: no reference data at $data (set OMG_SHARED_DATA)" >&2; exit 1; }
start=$SECONDS
say() { printf '[optee test %4d s] %s\n' "$((SECONDS - start))" "$*" >&2; }

out="$root/target/optee"
mkdir -p "$out"
# One test at a time: the TA, the host program, the overlay and the exchange directory are
# shared (a second run waits).
exec 9>"$out/test.lock"
flock 9
images="$("$root/tools/optee/build.sh")"

# Debian's Rust with the aarch64 standard library (rustup's toolchain first on PATH has none).
"$root/tools/debian-packages.sh" rustc-web cargo-web rust-web-clippy libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
export PATH="/usr/bin:/bin:$PATH" RUSTC=/usr/bin/rustc
export TA_DEV_KIT_DIR="$out/optee_os/export-ta_arm64"
export OPTEE_CLIENT_EXPORT="$out/optee_client/export"
triple=aarch64-unknown-linux-gnu
flags=(--release --locked --target "$triple" -j"${OMG_BUILD_JOBS:-2}"
  --config "target.$triple.linker=\"aarch64-linux-gnu-gcc\"")
cargo=(/usr/bin/cargo build "${flags[@]}")

say "building the TA (optee/ta)"
# The RustCrypto crates pick AES, GHASH and SHA-2 instructions at run time on aarch64 Linux with
# glibc's getauxval, which a TA does not have (OP-TEE's loader refuses the TA's libc.so.6
# dependency): the TA uses their portable software backends.
ta_rustflags='--cfg aes_backend="soft" --cfg polyval_backend="soft" --cfg sha2_backend="soft"'
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$ta_rustflags"
"${cargo[@]}" --manifest-path "$root/optee/ta/Cargo.toml" --target-dir "$out/ta"
unset CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS
uuid="$(tr -d '[:space:]' <"$root/optee/ta/uuid.txt")"
elf="$out/ta/$triple/release/omg-optee-ta"
aarch64-linux-gnu-objcopy --strip-unneeded "$elf" "$elf.stripped"
if aarch64-linux-gnu-readelf -d "$elf.stripped" | grep -q NEEDED; then
  echo "error: the TA needs a shared library, which OP-TEE cannot load:" >&2
  aarch64-linux-gnu-readelf -d "$elf.stripped" | grep NEEDED >&2
  exit 1
fi
overlay="$out/overlay"
rm -rf "$overlay"
mkdir -p "$overlay/lib/optee_armtz" "$overlay/usr/bin" "$overlay/usr/sbin"
ta="$overlay/lib/optee_armtz/$uuid.ta"
python3 "$TA_DEV_KIT_DIR/scripts/sign_encrypt.py" --uuid "$uuid" \
  --key "$TA_DEV_KIT_DIR/keys/default_ta.pem" --in "$elf.stripped" --out "$ta"

# Variants for the attacker checks in the machine: the TA with one byte of its read-only data
# changed, re-signed with the development key; the TA signed with a key OP-TEE does not know.
variants="$overlay/lib/optee_armtz/variants"
mkdir -p "$variants"
/usr/bin/python3 - "$elf.stripped" "$out/ta/changed.elf" "$out/ta/other_key.pem" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
data = bytearray(open(sys.argv[1], "rb").read())
at = data.find(b"omg TA: model refused")
if at < 0:
    sys.exit("error: the TA's marker string is missing")
data[at] ^= 0x20
open(sys.argv[2], "wb").write(data)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
open(sys.argv[3], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
PY
python3 "$TA_DEV_KIT_DIR/scripts/sign_encrypt.py" --uuid "$uuid" \
  --key "$TA_DEV_KIT_DIR/keys/default_ta.pem" --in "$out/ta/changed.elf" --out "$variants/changed.ta"
python3 "$TA_DEV_KIT_DIR/scripts/sign_encrypt.py" --uuid "$uuid" \
  --key "$out/ta/other_key.pem" --in "$elf.stripped" --out "$variants/foreign.ta"

say "building the normal-world check (optee/host)"
"${cargo[@]}" --manifest-path "$root/optee/host/Cargo.toml" --target-dir "$out/host"
cp "$out/host/$triple/release/omg-optee-host" "$overlay/usr/bin/"
# Lints of the two crates outside the workspace, for their target (warnings are errors).
for crate in ta host; do
  rustflags=""
  [ "$crate" = ta ] && rustflags="$ta_rustflags"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$rustflags" /usr/bin/cargo clippy \
    "${flags[@]}" --manifest-path "$root/optee/$crate/Cargo.toml" \
    --target-dir "$out/$crate" --quiet -- -D warnings
done
say "building omg for the machine (--features optee) and for this host"
# The emulated profile (optimized, no LTO), in the target directory of tools/cross-aarch64.sh.
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  /usr/bin/cargo build --locked --target "$triple" -j"${OMG_BUILD_JOBS:-2}" \
  --config "target.$triple.linker=\"aarch64-linux-gnu-gcc\"" --manifest-path "$root/Cargo.toml" \
  --target-dir "$root/target/aarch64" --profile emulated -p omg-cli --bin omg --features omg-cli/optee
cp "$root/target/aarch64/$triple/emulated/omg" "$overlay/usr/bin/"
# The vendor service and the Linux backend here: the workspace's own toolchain.
env -u RUSTC PATH="$host_path" cargo build --locked -j"${OMG_BUILD_JOBS:-2}" \
  --manifest-path "$root/Cargo.toml" -p omg-cli -p omg-enclave-image --bin omg --bin omg-enclave
cp "$OPTEE_CLIENT_EXPORT/usr/sbin/tee-supplicant" "$overlay/usr/sbin/"
cp -d "$OPTEE_CLIENT_EXPORT"/usr/lib/libteec.so* "$overlay/lib/"
cat >"$overlay/scenario" <<'SCENARIO'
#!/bin/sh
# tee-supplicant serves OP-TEE's requests to the normal world: TA files from /lib/optee_armtz,
# the REE file system in /data/tee, the emulated RPMB device.
[ -e /dev/teepriv0 ] || { echo "omg-optee: no /dev/teepriv0 (OP-TEE driver not up)"; exit 1; }
mkdir -p /data/tee
/usr/sbin/tee-supplicant &
/usr/bin/omg-optee-host /exchange/data
status=$?
# End to end against the vendor service on the host (tools/optee/e2e-vendor.sh).
e2e=/exchange/e2e
mkdir -p $e2e
touch $e2e/ready
i=0
while [ ! -e $e2e/go ] && [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
if [ -e $e2e/go ]; then
  server="http://10.0.2.2:$(cat $e2e/port)"
  dev=/tmp/omg-optee-device
  /usr/bin/omg provision --backend optee --dir $dev $e2e/micro_speech.omgpkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/provision.out 2>&1
  echo $? >$e2e/provision.status
  for clip in yes no; do
    /usr/bin/omg run --backend optee --dir $dev $e2e/micro_speech.omgpkg --json \
      --wav /exchange/data/micro_speech/testdata/${clip}_1000ms.wav >$e2e/optee_$clip.json 2>$e2e/optee_$clip.err
    echo $? >$e2e/optee_$clip.status
  done
  /usr/bin/omg provision --backend optee --dir $dev $e2e/impostor.omgpkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/impostor.out 2>&1
  echo $? >$e2e/impostor.status
fi
touch $e2e/done
exit $status
SCENARIO
chmod +x "$overlay/scenario"

# The reference data goes in through the exchange directory (a copy: the guest may write there).
exchange="$out/exchange"
rm -rf "$exchange"
mkdir -p "$exchange"
cp -r "$data" "$exchange/data"

say "booting the TrustZone machine"
mkdir -p "$exchange/e2e"
"$root/tools/optee/e2e-vendor.sh" "$exchange" "$out/e2e" "$root/target/debug/omg" \
  >"$out/e2e.log" 2>&1 &
vendor=$!
set +e
"$root/tools/arm/run.sh" --secure-world "$images" --exchange "$exchange" --module optee --net \
  --timeout "${OMG_OPTEE_TIMEOUT:-1800}" --log "$out/console.log" "$overlay"
status=$?
touch "$exchange/e2e/done" 2>/dev/null
wait "$vendor"
vendor_status=$?
set -e
# The end-to-end results the machine left in the exchange directory.
e2e_check() { # OK WHAT
  if [ "$1" = 0 ]; then echo "omg-optee e2e: ok   $2"; else echo "omg-optee e2e: FAIL $2"; status=1; fi
}
e2e_check "$vendor_status" "the vendor side ran (target/optee/e2e.log)"
e2e="$exchange/e2e"
e2e_check "$(cat "$e2e/provision.status" 2>/dev/null || echo 1)" \
  "omg provision --backend optee against the vendor service: $(tail -n1 "$e2e/provision.out" 2>/dev/null)"
for clip in yes no; do
  same=1
  [ "$(cat "$e2e/optee_$clip.status" 2>/dev/null || echo 1)" = 0 ] && [ -s "$e2e/linux_$clip.json" ] &&
    cmp -s "$e2e/optee_$clip.json" "$e2e/linux_$clip.json" && same=0
  e2e_check "$same" "omg run --backend optee on ${clip}_1000ms.wav: $(tr -d '\n' <"$e2e/optee_$clip.json" 2>/dev/null), Linux backend here: $(tr -d '\n' <"$e2e/linux_$clip.json" 2>/dev/null)"
done
refused=1
[ "$(cat "$e2e/impostor.status" 2>/dev/null || echo 0)" != 0 ] &&
  grep -q wrong_measurement "$e2e/impostor.out" && refused=0
e2e_check "$refused" "a package whose policy lists another TA is refused: $(tail -n1 "$e2e/impostor.out" 2>/dev/null)"
# The attestation evidence, checked outside the machine with Python's cryptography.
if [ "$status" = 0 ]; then
  /usr/bin/python3 "$root/tools/optee/verify_attestation.py" "$exchange/attest" || status=1
fi
printf 'omg-optee: TA %s.ta: %d bytes signed (ELF %d bytes stripped)\n' "$uuid" \
  "$(stat -c %s "$ta")" "$(stat -c %s "$elf.stripped")"
say "done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s, exit status $status (console in target/optee/console.log, secure world in target/optee/console.secure.log)"
exit "$status"
