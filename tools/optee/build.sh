#!/usr/bin/env bash
# Builds the secure world of the emulated TrustZone machine into target/optee/:
#   - OP-TEE OS 3.22.0 for QEMU's virt board (PLATFORM=vexpress-qemu_armv8a, 64-bit core, GICv3)
#     with the attestation PTA (RSA-2048 key, see below), secure storage in RPMB (CFG_RPMB_FS,
#     the RPMB key written by OP-TEE on first use) beside the REE file system, and its TA dev
#     kit (export-ta_arm64: headers, libutee, sign_encrypt.py and the development signing key)
#     and the statistics PTA reporting TA heap use (CFG_WITH_STATS, CFG_TA_STATS);
#   - Trusted Firmware-A v2.6 for PLAT=qemu with the OP-TEE dispatcher (BL1, BL2, BL31), which
#     hands over to a Linux kernel Image preloaded at 0x60000000 as BL33 (no U-Boot);
#   - optee_client 3.22.0: libteec and tee-supplicant with its RPMB emulation.
# The sources are the tarballs of ../shared/third_party (OMG_THIRD_PARTY overrides), checked
# against their SHA256SUMS and extracted into target/optee/src/. Each part is rebuilt only when
# its output is missing or its flags changed, so a second run builds nothing.
# Prints the directory of the secure-world images (target/optee/images: bl1.bin, bl2.bin,
# bl31.bin, bl32.bin, bl32_extra1.bin, bl32_extra2.bin), the form tools/arm/run.sh's
# --secure-world takes. Beside it, target/optee/images-other-huk: the same but for OP-TEE OS
# built with another hardware-unique key (see below), for the check that sealed data does not
# open on another device.
#
# The attestation PTA makes its key pair on first use and keeps it in secure storage, which
# lives in the initramfs and thus is new at every boot: RSA-3072 takes 30-40 s under QEMU's
# emulation there, RSA-2048 a few seconds, so the key is RSA-2048 (CFG_ATTESTATION_PTA_KEY_SIZE).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
third_party="${OMG_THIRD_PARTY:-$root/../shared/third_party}"
out="$root/target/optee"
src="$out/src"
start=$SECONDS
say() { printf '[optee build %3d s] %s\n' "$((SECONDS - start))" "$*" >&2; }

# Debian packages: the cross compiler, OP-TEE's Python build scripts' modules, the DT compiler.
"$root/tools/debian-packages.sh" gcc-aarch64-linux-gnu python3-pyelftools python3-cryptography \
  device-tree-compiler make xz-utils
# OP-TEE's scripts need Debian's python3 (with pyelftools and cryptography), not another first
# on PATH.
export PATH="/usr/bin:/bin:$PATH"
jobs="${OMG_BUILD_JOBS:-2}"

[ -d "$third_party" ] || { echo "error: no third-party sources at $third_party (set OMG_THIRD_PARTY)" >&2; exit 1; }
mkdir -p "$src" "$out/logs"
# One build at a time in target/optee (a second waits).
exec 8>"$out/build.lock"
flock 8

# Extracts NAME-VERSION.tar.xz into src/NAME-VERSION once, after checking its checksum.
extract() {
  local tarball="$1" dir="$src/${1%.tar.xz}"
  [ -f "$dir/.extracted" ] && return 0
  (cd "$third_party" && grep " $tarball\$" SHA256SUMS | sha256sum --check --quiet -) ||
    { echo "error: $tarball does not match $third_party/SHA256SUMS" >&2; exit 1; }
  say "extracting $tarball"
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  tar -xJf "$third_party/$tarball" -C "$dir.tmp"
  # The archives hold one top-level directory.
  mv "$dir.tmp"/* "$dir"
  rmdir "$dir.tmp"
  touch "$dir/.extracted"
}

# Runs a build step when its stamp (the flags it was built with) differs or its output is
# missing; its output goes to logs/NAME.log, shown when it fails.
step() {
  local name="$1" output="$2" flags="$3"
  shift 3
  local stamp="$out/logs/$name.flags"
  if [ -e "$output" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$flags" ]; then
    say "$name: up to date"
    return 0
  fi
  local t=$SECONDS
  say "$name: building (log in target/optee/logs/$name.log)"
  rm -f "$stamp"
  if ! "$@" >"$out/logs/$name.log" 2>&1; then
    tail -n 40 "$out/logs/$name.log" >&2
    echo "error: $name failed (log in $out/logs/$name.log)" >&2
    exit 1
  fi
  printf '%s' "$flags" >"$stamp"
  say "$name: built in $((SECONDS - t)) s"
}

extract optee_os-3.22.0.tar.xz
extract trusted-firmware-a-2.6.tar.xz
extract optee_client-3.22.0.tar.xz

cross=aarch64-linux-gnu-
os_flags=(PLATFORM=vexpress-qemu_armv8a CFG_ARM64_core=y CFG_ARM_GICV3=y
  CROSS_COMPILE="$cross" CROSS_COMPILE_core="$cross" CROSS_COMPILE_ta_arm64="$cross"
  ta-targets=ta_arm64 DEBUG=0 CFG_TEE_CORE_LOG_LEVEL=2 CFG_TEE_TA_LOG_LEVEL=2
  CFG_ATTESTATION_PTA=y CFG_ATTESTATION_PTA_KEY_SIZE=2048
  CFG_RPMB_FS=y CFG_RPMB_WRITE_KEY=y CFG_RPMB_FS_DEV_ID=0 CFG_REE_FS=y
  CFG_WITH_STATS=y CFG_TA_STATS=y)
step optee_os "$out/optee_os/core/tee-pager_v2.bin" "${os_flags[*]}" \
  make -C "$src/optee_os-3.22.0" -j"$jobs" O="$out/optee_os" "${os_flags[@]}"

# A second OP-TEE OS, the same but for its hardware-unique key: QEMU's platform has no fused
# key, so OP-TEE takes the weak stub of core/kernel/otp_stubs.c, all zeros; the other build's
# stub fills the key with 0x5a instead, as another device's fuses would differ. Booted with the
# same TF-A, it is "another device" to the TA: its sealing keys and the RPMB key (both derived
# from the HUK) differ. Only its core images are used. The patched copy of the source tree is
# made once, and the build checks the patch took.
other_huk_src="$src/optee_os-3.22.0-other-huk"
if [ ! -f "$other_huk_src/.patched" ]; then
  say "copying optee_os for the other-HUK build"
  rm -rf "$other_huk_src" "$other_huk_src.tmp"
  cp -a "$src/optee_os-3.22.0" "$other_huk_src.tmp"
  stub="$other_huk_src.tmp/core/kernel/otp_stubs.c"
  sed -i 's/memset(&hwkey->data\[0\], 0, sizeof(hwkey->data));/memset(\&hwkey->data[0], 0x5a, sizeof(hwkey->data));/' "$stub"
  grep -q 'memset(&hwkey->data\[0\], 0x5a, sizeof(hwkey->data));' "$stub" ||
    { echo "error: could not patch the HUK stub in $stub" >&2; exit 1; }
  touch "$other_huk_src.tmp/.patched"
  mv "$other_huk_src.tmp" "$other_huk_src"
fi
step optee_os_other_huk "$out/optee_os_other_huk/core/tee-pager_v2.bin" "${os_flags[*]} HUK=0x5a" \
  make -C "$other_huk_src" -j"$jobs" O="$out/optee_os_other_huk" "${os_flags[@]}"

core="$out/optee_os/core"
# Flags of OP-TEE's own QEMU v8 set-up (optee_build's qemu_v8.mk), with Debian's kernel Image
# as BL33; binutils 2.40 warns about TF-A 2.6's RWX segments, and TF-A links with
# --fatal-warnings.
tfa_flags=(CROSS_COMPILE="$cross" PLAT=qemu SPD=opteed QEMU_USE_GIC_DRIVER=QEMU_GICV3
  ENABLE_SVE_FOR_NS=1 ENABLE_SVE_FOR_SWD=1 ENABLE_SME_FOR_NS=1 ENABLE_SME_FOR_SWD=1
  BL32_RAM_LOCATION=tdram DEBUG=0 LOG_LEVEL=20
  BL32="$core/tee-header_v2.bin" BL32_EXTRA1="$core/tee-pager_v2.bin"
  BL32_EXTRA2="$core/tee-pageable_v2.bin"
  ARM_LINUX_KERNEL_AS_BL33=1 PRELOADED_BL33_BASE=0x60000000
  LDFLAGS=--no-warn-rwx-segments BUILD_BASE="$out/tfa")
step tfa "$out/tfa/qemu/release/bl31.bin" "${tfa_flags[*]}" \
  make -C "$src/trusted-firmware-a-2.6" -j"$jobs" "${tfa_flags[@]}" all

# WITH_TEEACL=0: the ACL library needs an arm64 libuuid; plugins are not used.
client_flags=(CROSS_COMPILE="$cross" RPMB_EMU=1 WITH_TEEACL=0 CFG_TEE_SUPP_PLUGINS=n)
step optee_client "$out/optee_client/export/usr/sbin/tee-supplicant" "${client_flags[*]}" \
  make -C "$src/optee_client-3.22.0" -j"$jobs" O="$out/optee_client" "${client_flags[@]}"

# The images as TF-A's BL1 and BL2 load them over semihosting, from QEMU's working directory.
images="$out/images"
mkdir -p "$images.tmp"
cp "$out/tfa/qemu/release/bl1.bin" "$out/tfa/qemu/release/bl2.bin" \
  "$out/tfa/qemu/release/bl31.bin" "$images.tmp/"
cp "$core/tee-header_v2.bin" "$images.tmp/bl32.bin"
cp "$core/tee-pager_v2.bin" "$images.tmp/bl32_extra1.bin"
cp "$core/tee-pageable_v2.bin" "$images.tmp/bl32_extra2.bin"
rm -rf "$images"
mv "$images.tmp" "$images"
# The other-HUK machine's images: the same firmware, the other OP-TEE OS.
other="$out/images-other-huk"
other_core="$out/optee_os_other_huk/core"
mkdir -p "$other.tmp"
cp "$images"/bl1.bin "$images"/bl2.bin "$images"/bl31.bin "$other.tmp/"
cp "$other_core/tee-header_v2.bin" "$other.tmp/bl32.bin"
cp "$other_core/tee-pager_v2.bin" "$other.tmp/bl32_extra1.bin"
cp "$other_core/tee-pageable_v2.bin" "$other.tmp/bl32_extra2.bin"
rm -rf "$other"
mv "$other.tmp" "$other"
say "secure world ready in $((SECONDS - start)) s ($(( (SECONDS - start) / 60 )) min)"
printf '%s\n' "$images"
