#!/usr/bin/env bash
# Boots the emulated ARM machine (QEMU's `virt` board, Debian's arm64 kernel, a busybox
# initramfs) and runs a scenario in it:
#   run.sh [options] OVERLAY_DIR...
# The overlays are copied over the initramfs's root and one of them provides /scenario, an
# executable the machine runs after boot. The scenario's exit status becomes run.sh's, so a
# failure inside the machine fails the caller; a machine that never reports one (kernel panic,
# hang) ends in a timeout and exit status 124.
# Options:
#   --cpu NAME       QEMU CPU model (default max: NEON, dotprod, i8mm; cortex-a57: NEON only)
#   --memory MiB     guest memory (default 2048)
#   --smp N          guest CPUs (default 2; 1 with --icount)
#   --icount         QEMU's instruction counting mode (-icount shift=0): the guest's virtual clock
#                    advances exactly 1 ns per executed guest instruction, so a time measured in
#                    the guest, in ns, is an instruction count (of everything the one CPU ran in
#                    that interval, the kernel's interrupts included); needs one CPU (single-
#                    threaded TCG), so it implies --smp 1 and refuses a larger --smp
#   --timeout SEC    give up after SEC seconds (default 1800)
#   --exchange DIR   share DIR with the guest at /exchange (9p, read-write): inputs in, results out
#   --share DIR      share DIR with the guest at the same absolute path (9p, read-write; repeatable):
#                    programs built on the host that embed host paths (a repository, its target/,
#                    reference data) find them unchanged in the guest
#   --append ARGS    more kernel command-line arguments
#   --net            user-mode network: the guest is 10.0.2.15 and reaches the host's loopback at 10.0.2.2
#   --module NAME    also load this kernel module (and what it depends on)
#   --log FILE       keep the console output there (default: a file next to the initramfs)
#   --shell          a shell on the console after the scenario instead of powering off
#   --qmp SOCKET     QEMU's machine protocol (QMP) on this Unix socket, for the host to inspect
#                    the running machine (e.g. save its normal-world RAM with pmemsave)
#   --secure-world DIR  boot TrustZone's secure world first: DIR holds TF-A's bl1.bin, bl2.bin,
#                    bl31.bin and OP-TEE's bl32*.bin (tools/optee/build.sh); the secure world's
#                    console goes to a .secure.log file next to the console log
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cpu=max memory=2048 smp="" icount=0 timeout=1800 exchange="" net=0 log="" shell=0 secure="" extra_append="" qmp=""
modules=()
shares=()
overlays=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --memory) memory="$2"; shift 2 ;;
    --smp) smp="$2"; shift 2 ;;
    --icount) icount=1; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    --exchange) exchange="$(cd "$2" && pwd)"; shift 2 ;;
    --share) shares+=("$(cd "$2" && pwd)"); shift 2 ;;
    --append) extra_append+=" $2"; shift 2 ;;
    --net) net=1; shift ;;
    --module) modules+=(--module "$2"); shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --shell) shell=1; shift ;;
    --qmp) qmp="$(realpath -m "$2")"; shift 2 ;;
    --secure-world) secure="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) overlays+=("$1"); shift ;;
  esac
done
if [ "$icount" = 1 ]; then
  # icount counts one instruction stream: QEMU refuses it with multi-threaded TCG, and with
  # several CPUs in turn the clock would sum their instructions.
  if [ -n "$smp" ] && [ "$smp" != 1 ]; then
    echo "error: --icount needs one guest CPU, not --smp $smp (icount runs single-threaded TCG, and with several CPUs the clock would count the instructions of all)" >&2
    exit 2
  fi
  smp=1
fi
[ -n "$smp" ] || smp=2
[ ${#overlays[@]} -gt 0 ] || { echo "error: no overlay directory with a /scenario (see --help)" >&2; exit 2; }

"$here/setup.sh" >/dev/null
kdir="$("$here/kernel.sh")"
work="$root/target/arm/run"
mkdir -p "$work"
initrd="$(mktemp "$work/initrd.XXXXXX")"
shares_overlay="$(mktemp -d "$work/shares.XXXXXX")"
trap 'rm -f "$initrd"; rm -rf "$shares_overlay"' EXIT
args=()
if [ -n "$exchange" ] || [ ${#shares[@]} -gt 0 ]; then
  modules+=(--module 9pnet_virtio --module 9p --module virtio_mmio)
fi
[ "$net" = 0 ] || modules+=(--module virtio_net --module virtio_mmio)
# /etc/omg-shares: "TAG PATH" a line, for /init to mount each shared directory at its host path.
mkdir -p "$shares_overlay/etc"
: >"$shares_overlay/etc/omg-shares"
for i in "${!shares[@]}"; do
  echo "share$i ${shares[$i]}" >>"$shares_overlay/etc/omg-shares"
  args+=(-fsdev "local,id=share$i,path=${shares[$i]},security_model=none"
    -device "virtio-9p-device,fsdev=share$i,mount_tag=share$i")
done
"$here/mkinitrd.sh" "$initrd" "${modules[@]}" "${overlays[@]}" "$shares_overlay"
[ -n "$log" ] || log="$work/console-$cpu.log"

# secretmem.enable=1: memfd_secret (the enclave's protected memory) is off by default before Linux 6.5.
append="console=ttyAMA0 quiet panic=-1 secretmem.enable=1$extra_append"
[ "$shell" = 0 ] || append+=" omg.shell"
if [ -n "$exchange" ]; then
  args+=(-fsdev "local,id=exchange,path=$exchange,security_model=none"
    -device virtio-9p-device,fsdev=exchange,mount_tag=exchange)
fi
if [ "$net" = 1 ]; then
  args+=(-netdev user,id=net0 -device virtio-net-device,netdev=net0)
else
  args+=(-nic none)
fi

if [ -z "$secure" ]; then
  machine=(-M virt -cpu "$cpu")
  boot=(-kernel "$kdir/Image" -initrd "$initrd" -append "$append")
else
  # TrustZone: TF-A's BL1 is the firmware and loads BL2, BL31 and OP-TEE (BL32) over
  # semihosting from QEMU's working directory; BL31 then enters the kernel, preloaded as BL33
  # at 0x60000000 with the initramfs at 0x48000000 (the kernel learns where from "initrd=").
  # -kernel stays only so that QEMU writes -append into the device tree. TF-A 2.6 assumes a
  # 62.5 MHz generic timer, which QEMU's "max" CPU must be told.
  [ "$cpu" != max ] || cpu="max,sme=on,pauth-impdef=on,cntfrq=62500000"
  log="$(realpath -m "$log")"
  append+=" initrd=0x48000000,$(stat -c %s "$initrd")"
  machine=(-M virt,secure=on,gic-version=3,virtualization=off,acpi=off -cpu "$cpu"
    -semihosting-config enable=on,target=native -bios bl1.bin)
  boot=(-kernel "$kdir/Image" -append "$append"
    -device "loader,file=$kdir/Image,addr=0x60000000,force-raw=on"
    -device "loader,file=$initrd,addr=0x48000000,force-raw=on"
    -serial mon:stdio -serial "file:${log%.log}.secure.log")
  cd "$secure"
fi
[ "$icount" = 0 ] || machine+=(-icount shift=0)
[ -z "$qmp" ] || args+=(-qmp "unix:$qmp,server=on,wait=off")
qemu=(qemu-system-aarch64 "${machine[@]}" -smp "$smp" -m "$memory" -nographic -no-reboot
  "${boot[@]}" "${args[@]}")
if [ "$shell" = 1 ]; then
  exec "${qemu[@]}"
fi
counting=""
[ "$icount" = 0 ] || counting=", counting instructions (-icount shift=0)"
echo "booting $(basename "$kdir") on QEMU virt, cpu $cpu, $smp CPUs, $memory MiB$counting (console in $log)" >&2
set +e
timeout --foreground "$timeout" "${qemu[@]}" </dev/null 2>&1 | tee "$log" | sed -u -n '/omg-vm: scenario exit status/!p'
qemu_status=${PIPESTATUS[0]}
set -e
status="$(sed -n 's/.*omg-vm: scenario exit status \([0-9]*\).*/\1/p' "$log" | tail -n 1)"
if [ -z "$status" ]; then
  if [ "$qemu_status" = 124 ]; then
    echo "error: the ARM machine gave no result within $timeout s (console in $log)" >&2
    exit 124
  fi
  echo "error: the ARM machine stopped without a result (QEMU exit $qemu_status; console in $log)" >&2
  exit 125
fi
exit "$status"
