#!/usr/bin/env bash
# Installs what the emulated ARM machine needs from Debian, when missing:
#   - qemu-system-aarch64 from bookworm-backports (QEMU 10; adds the suite to apt's sources);
#   - the aarch64 C library and the cross compiler's runtime (gcc-aarch64-linux-gnu brings
#     libc6-arm64-cross), copied into the guest's initramfs;
#   - cpio for packing initramfs images.
# The kernel and busybox are downloaded, not installed (tools/arm/kernel.sh, tools/arm/mkinitrd.sh).
set -euo pipefail
tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$tools/debian-packages.sh" gcc-aarch64-linux-gnu cpio
qemu_major() { qemu-system-aarch64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'; }
# Debian 12's own qemu-system-arm is 7.2; the version check, not dpkg, tells whether it is new enough.
if ! [ "$(qemu_major)" -ge 9 ] 2>/dev/null; then
  if dpkg -s qemu-system-arm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 remove -y -qq qemu-system-arm
  fi
  "$tools/debian-packages.sh" --backports qemu-system-arm
fi
qemu-system-aarch64 --version | head -n 1
