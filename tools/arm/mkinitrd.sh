#!/usr/bin/env bash
# Packs an initramfs for the emulated ARM machine:
#   mkinitrd.sh OUT.cpio.gz [--module NAME]... OVERLAY_DIR...
# It holds busybox (tools/arm/kernel.sh downloads it), the aarch64 C library and libgcc_s from the
# cross toolchain (so dynamically linked Rust and C programs run), the /init of tools/arm/init,
# the named kernel modules with the modules they depend on (listed in load order in
# /etc/omg-modules), and then every OVERLAY_DIR copied over the root (an overlay provides an
# executable /scenario: what the machine runs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kdir="$("$here/kernel.sh")"
cache="$(dirname "$(dirname "$kdir")")"
version="$(basename "$kdir")"

[ $# -ge 1 ] || { echo "usage: mkinitrd.sh OUT.cpio.gz [--module NAME]... OVERLAY_DIR..." >&2; exit 2; }
out="$1"
shift
modules=()
overlays=()
while [ $# -gt 0 ]; do
  case "$1" in
    --module) modules+=("$2"); shift 2 ;;
    *) overlays+=("$1"); shift ;;
  esac
done

root="$(mktemp -d "$cache/initrd.XXXXXX")"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,etc,proc,sys,dev,tmp,run,exchange}
cp "$cache/busybox/bin/busybox" "$root/bin/busybox"
# A user database with root, as on any Linux system (programs and tests read /etc/passwd).
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
install -m 0755 "$here/init" "$root/init"

# The C runtime of aarch64 programs: the loader, glibc and libgcc_s.
libc=/usr/aarch64-linux-gnu/lib
[ -e "$libc/ld-linux-aarch64.so.1" ] || { echo "error: $libc missing; run tools/arm/setup.sh" >&2; exit 1; }
for lib in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
  [ -e "$libc/$lib" ] && cp -L "$libc/$lib" "$root/lib/$lib"
done

# Kernel modules and what they depend on ("depends=" in each module's .modinfo), dependencies first.
mdir="$kdir/modules"
module_path() {
  local name="${1//-/_}"
  find "$mdir/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit
}
declare -A loaded=()
order=()
add_module() {
  local name="${1//-/_}"
  [ -z "${loaded[$name]:-}" ] || return 0
  loaded[$name]=1
  local path
  path="$(module_path "$name")"
  [ -n "$path" ] || { echo "error: no kernel module $name in $version" >&2; exit 1; }
  local deps
  deps="$(strings -a "$path" | sed -n 's/^depends=//p' | head -n 1)"
  local dep
  for dep in ${deps//,/ }; do add_module "$dep"; done
  order+=("$path")
}
for m in "${modules[@]}"; do add_module "$m"; done
mkdir -p "$root/lib/modules"
: >"$root/etc/omg-modules"
for path in "${order[@]}"; do
  cp "$path" "$root/lib/modules/"
  echo "/lib/modules/$(basename "$path")" >>"$root/etc/omg-modules"
done

for overlay in "${overlays[@]}"; do
  cp -a "$overlay/." "$root/"
done

# The root of the machine is open to every user (mktemp made it 0700, and copying an overlay's
# "." gives it that directory's mode).
chmod 0755 "$root"
(cd "$root" && find . | cpio -o -H newc --owner 0:0 --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
