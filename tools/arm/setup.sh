#!/usr/bin/env bash
# Installs what the emulated ARM machine needs from Debian, when missing:
#   - qemu-system-aarch64 from bookworm-backports (QEMU 10; adds the suite to apt's sources);
#   - the aarch64 C library and the cross compiler's runtime (gcc-aarch64-linux-gnu brings
#     libc6-arm64-cross), copied into the guest's initramfs;
#   - cpio for packing initramfs images.
# The kernel and busybox are downloaded, not installed (tools/arm/kernel.sh, tools/arm/mkinitrd.sh).
set -euo pipefail

need=()
dpkg -s gcc-aarch64-linux-gnu >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
dpkg -s cpio >/dev/null 2>&1 || need+=(cpio)
backports=()
qemu_major() { qemu-system-aarch64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'; }
[ "$(qemu_major)" -ge 9 ] 2>/dev/null || backports+=(qemu-system-arm)

if [ ${#need[@]} -gt 0 ] || [ ${#backports[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages (${need[*]} ${backports[*]}); run this as root" >&2
    exit 1
  fi
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  if [ ${#backports[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d; then
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  fi
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${need[@]}"
  fi
  if [ ${#backports[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
      -t bookworm-backports "${backports[@]}"
  fi
fi
qemu-system-aarch64 --version | head -n 1
