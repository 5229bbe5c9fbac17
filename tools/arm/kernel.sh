#!/usr/bin/env bash
# Downloads what the emulated ARM machine boots, from Debian's archive, into target/arm/:
#   - Debian's arm64 kernel: the linux-image package that `linux-image-arm64` currently depends
#     on, extracted to target/arm/kernel/<version>/ (the Image, the modules, their load order);
#   - busybox-static for arm64 (the guest's shell and tools), extracted to target/arm/busybox/.
# Prints the kernel directory. A second run downloads nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$root/target/arm"
mkdir -p "$cache/downloads"

# Package lists for arm64 exist once dpkg knows the architecture and apt has been updated.
if ! apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: apt has no arm64 package lists; run tools/arm/setup.sh as root first" >&2
    exit 1
  fi
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get -o DPkg::Lock::Timeout=900 update -qq
fi

# `apt-get download` into the cache; root downloads without the _apt sandbox user.
download() {
  local pkg="$1"
  local found
  found="$(find "$cache/downloads" -maxdepth 1 -name "${pkg%%:*}_*_arm64.deb" | head -n 1)"
  if [ -z "$found" ]; then
    (cd "$cache/downloads" && apt-get -o APT::Sandbox::User=root download -qq "$pkg")
    found="$(find "$cache/downloads" -maxdepth 1 -name "${pkg%%:*}_*_arm64.deb" | head -n 1)"
  fi
  printf '%s\n' "$found"
}

image_pkg="$(apt-cache depends linux-image-arm64:arm64 |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\)\(:arm64\)\{0,1\}$/\1/p' | head -n 1)"
[ -n "$image_pkg" ] || { echo "error: cannot tell which kernel linux-image-arm64 depends on" >&2; exit 1; }
version="${image_pkg#linux-image-}"
kdir="$cache/kernel/$version"
if [ ! -f "$kdir/Image" ]; then
  deb="$(download "$image_pkg:arm64")"
  tmp="$(mktemp -d "$cache/kernel.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -x "$deb" "$tmp/x"
  mkdir -p "$tmp/out"
  # Debian's arm64 vmlinuz is the raw arm64 Image, which QEMU and TF-A load as is.
  cp "$tmp/x/boot/vmlinuz-$version" "$tmp/out/Image"
  cp "$tmp/x/boot/config-$version" "$tmp/out/config"
  mv "$tmp/x/lib/modules/$version" "$tmp/out/modules"
  rm -rf "$kdir"
  mkdir -p "$(dirname "$kdir")"
  mv "$tmp/out" "$kdir"
fi

if [ ! -x "$cache/busybox/bin/busybox" ]; then
  deb="$(download busybox-static:arm64)"
  rm -rf "$cache/busybox.tmp"
  dpkg-deb -x "$deb" "$cache/busybox.tmp"
  rm -rf "$cache/busybox"
  mv "$cache/busybox.tmp" "$cache/busybox"
fi

printf '%s\n' "$kdir"
