# shellcheck shell=bash disable=SC2154,SC2034
# Sourced by tools/optee/test.sh and tools/optee/demo.sh (bash): builds what the TrustZone
# machine runs and gathers it in the overlay $out/overlay (a scenario is added by the caller):
#   - the secure world (tools/optee/build.sh), whose images directory it leaves in $images;
#   - the TA (optee/ta) signed with the TA dev kit's development key, in
#     /lib/optee_armtz/UUID.ta ($ta; its stripped ELF in $elf.stripped, its UUID in $uuid), and
#     the variants of test.sh's attacker checks in /lib/optee_armtz/variants: the TA with one
#     byte of its read-only data changed, re-signed with the development key (changed.ta), and
#     the TA signed with a key OP-TEE does not know (foreign.ta);
#   - the normal-world check (optee/host) and omg --features optee in /usr/bin, both with
#     Debian's Rust for aarch64 (the TA and the check linted by clippy), tee-supplicant and
#     libteec;
#   - omg and omg-enclave for this host with the workspace's toolchain (the vendor's side).
# Usage: `. prepare.sh NAME` with root (the repository) set; NAME (test, demo) prefixes the
# progress lines of `say`. Checks the reference data (OMG_SHARED_DATA, default ../shared/data:
# $data), takes target/optee ($out) for this run alone (test.sh and demo.sh share the TA, the
# host program, the overlay and the exchange directory: a second run waits), and sets variables
# for the caller (hence SC2154 and SC2034 off); host_path keeps the PATH of the workspace's
# toolchain, and PATH is left with Debian's Rust first.
host_path="$PATH"
data="${OMG_SHARED_DATA:-$root/../shared/data}"
[ -d "$data/micro_speech" ] || { echo "error: no reference data at $data (set OMG_SHARED_DATA)" >&2; exit 1; }
start=$SECONDS
job="$1"
say() { printf '[optee %s %4d s] %s\n' "$job" "$((SECONDS - start))" "$*" >&2; }
out="$root/target/optee"
mkdir -p "$out"
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
