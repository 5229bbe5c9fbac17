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
#      policy lists the TA's memory hash (quota: 153 inferences) and the machine's attestation
#      PTA key enrolled, both printed in the machine by `omg device info --backend optee`
#      first; in the machine, `omg provision --backend optee` against http://10.0.2.2:PORT and
#      `omg run --backend optee` on the reference yes and no clips must print the events of the
#      Linux backend here on the same clips, `omg renew --backend optee` must renew; then the
#      attacker checks from the normal world, as root:
#      - the TA with one byte changed (re-signed) opens no sealed blob and gets no key;
#      - the quota, used up, still holds after the device directory and tee-supplicant's
#        /data/tee are put back to their copy made after provisioning (counters in RPMB);
#      - no 64-byte window of the package's (marked) model in the normal world's RAM, saved
#        here through QEMU's machine protocol (pmemsave) during an operation and after the
#        runs, nor in the files the machine wrote;
#        the positive control: the same scan finds them once the plaintext is in that RAM;
#      - secure RAM (QEMU virt's secure-only 16 MiB at 0x0e000000, OP-TEE's TZDRAM in it)
#        mapped or read through /dev/mem fails or gives no plaintext, where a normal-world
#        device (a virtio-mmio transport) maps;
#      a package whose policy lists another TA must be refused;
#      then the machine boots again with OP-TEE built with another hardware-unique key
#      (tools/optee/build.sh's images-other-huk) and the device directory made by the
#      provisioning: `omg run --backend optee` there must fail to open the sealed blob;
#   5. verifies the attestation evidence outside the machine (tools/optee/verify_attestation.py).
# Exits with the machine's result (0: every check passed). Prints the TA's size and the minutes
# the whole took. OMG_SHARED_DATA names the reference data (default ../shared/data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tools/optee/prepare.sh
. "$root/tools/optee/prepare.sh" test
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
# What a vendor enrolls and lists: the PTA's key and the TA's memory hash.
/usr/bin/omg device info --backend optee --json >$e2e/device_info.json 2>$e2e/device_info.err
echo $? >$e2e/device_info.status
/usr/bin/omg device info --backend optee >$e2e/device_info.txt 2>&1
touch $e2e/ready
wait_file() { # FILE: the host's answer (at most 10 minutes, none if the host's side failed)
  i=0
  while [ ! -e "$1" ] && [ ! -e $e2e/failed ] && [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
  [ -e "$1" ]
}
note() { # NAME STATUS: a step's exit status for the host's checks
  echo "$2" >$e2e/$1.status
}
if wait_file $e2e/go; then
  server="http://10.0.2.2:$(cat $e2e/port)"
  dev=/tmp/omg-optee-device
  pkg=$e2e/micro_speech.omgpkg
  ta=/lib/optee_armtz/$(ls /lib/optee_armtz | grep '\.ta$')
  run() { # NAME CLIP: omg run on a reference clip, output in NAME.json, errors in NAME.err
    /usr/bin/omg run --backend optee --dir $dev $pkg --json \
      --wav /exchange/data/micro_speech/testdata/$2_1000ms.wav >$e2e/$1.json 2>$e2e/$1.err
    note $1 $?
  }
  /usr/bin/omg provision --backend optee --dir $dev $pkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/provision.out 2>&1
  note provision $?
  # The normal world's files right after provisioning: the device directory (sealed blob,
  # vendor key) and tee-supplicant's REE file system.
  mkdir -p /tmp/snapshot
  cp -a $dev /tmp/snapshot/device && cp -a /data/tee /tmp/snapshot/tee
  note snapshot $?
  # The same device directory for the machine with another hardware-unique key (booted next).
  cp -a $dev $e2e/provisioned_device
  for clip in yes no; do run optee_$clip $clip; done
  # The TA with one byte changed, re-signed with the development key (another measurement):
  # the sealed blob does not open, and the vendor releases no key to it.
  cp $ta /tmp/omg.ta && cp /lib/optee_armtz/variants/changed.ta $ta
  run changed_run yes
  /usr/bin/omg provision --backend optee --dir /tmp/omg-changed-device $pkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/changed_provision.out 2>&1
  note changed_provision $?
  cp /tmp/omg.ta $ta
  /usr/bin/omg renew --backend optee --dir $dev $pkg --server "$server" >$e2e/renew.out 2>&1
  note renew $?
  run renewed_yes yes
  # The quota (153: three runs) is used up; it must hold after the files are put back.
  run exhausted yes
  # The renewal replaced the sealed blob (a new licence): putting the copy back is a real
  # rollback of the normal world's files.
  diff /tmp/snapshot/device/models/*/v1.optee.sealed $dev/models/*/v1.optee.sealed >/dev/null
  [ $? = 1 ]
  note renewed_blob $?
  rm -rf $dev /data/tee/* && cp -a /tmp/snapshot/device $dev && cp -a /tmp/snapshot/tee/. /data/tee/ &&
    diff -r /tmp/snapshot/device $dev && diff -r /tmp/snapshot/tee /data/tee
  note restore $?
  run restored yes
  /usr/bin/omg provision --backend optee --dir $dev $e2e/impostor.omgpkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/impostor.out 2>&1
  note impostor $?
  # The host saves this machine's normal-world RAM and looks for the package's model in it:
  # first during an operation (omg run reads raw audio from a pipe this shell holds open, so
  # the TA session, its model decrypted, stays open: the yes clip and a second of silence go
  # in, the scan starts once the event came out), then after it; then, as the positive
  # control, with the model's plaintext copied into RAM here.
  /usr/bin/omg provision --backend optee --dir $dev $e2e/live.omgpkg --server "$server" \
    --vendor-key $e2e/vendor.pub >$e2e/live_provision.out 2>&1
  note live_provision $?
  mkfifo /tmp/feed
  /usr/bin/omg run --backend optee --dir $dev $e2e/live.omgpkg --json --stdin </tmp/feed \
    >$e2e/live.json 2>$e2e/live.err &
  live=$!
  exec 3>/tmp/feed
  # The clip's samples without its 44-byte WAV header (raw input refuses a header).
  tail -c +45 /exchange/data/micro_speech/testdata/yes_1000ms.wav >&3
  head -c 32000 /dev/zero >&3
  i=0
  while [ ! -s $e2e/live.json ] && kill -0 $live 2>/dev/null && [ $i -lt 120 ]; do
    sleep 1
    i=$((i + 1))
  done
  touch $e2e/scan0
  wait_file $e2e/scanned0
  exec 3>&-
  wait $live
  note live $?
  touch $e2e/scan1
  if wait_file $e2e/scanned1; then
    cat $e2e/control.tflite >/tmp/control.tflite
    touch $e2e/scan2
    wait_file $e2e/scanned2
    rm -f /tmp/control.tflite
  fi
  # Secure RAM from the normal world as root: QEMU virt's secure-only RAM (0x0e000000, 16 MiB;
  # OP-TEE's TZDRAM from 0x0e100000) through /dev/mem, mapped (busybox devmem) and read (dd).
  # The positive control maps a normal-world device the same way: the magic value ("virt") of
  # QEMU virt's first virtio-mmio transport, which no driver claims (a claimed region, such as
  # the RTC's or the GIC's, is refused under CONFIG_IO_STRICT_DEVMEM).
  busybox devmem 0x0a000000 32 >$e2e/devmem_virtio.out 2>&1
  note devmem_virtio $?
  for a in 0x0e000000 0x0e100000 0x0e400000 0x0e800000 0x0efff000; do
    busybox devmem $a 32 >$e2e/devmem_$a.out 2>&1
    note devmem_$a $?
  done
  dd if=/dev/mem of=$e2e/secure_dd.bin bs=4096 skip=$((0x0e000000 / 4096)) count=4096 \
    >$e2e/secure_dd.out 2>&1
  note secure_dd $?
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
# QEMU's machine protocol, through which the host saves the machine's normal-world RAM (a
# short path: Unix socket names are limited to 107 bytes).
qmp_dir="$(mktemp -d)"
memory=2048
"$root/tools/optee/e2e-vendor.sh" "$exchange" "$out/e2e" "$root/target/debug/omg" \
  "$qmp_dir/qmp" "$memory" "$overlay" >"$out/e2e.log" 2>&1 &
vendor=$!
set +e
"$root/tools/arm/run.sh" --secure-world "$images" --exchange "$exchange" --module optee --net \
  --memory "$memory" --qmp "$qmp_dir/qmp" \
  --timeout "${OMG_OPTEE_TIMEOUT:-1800}" --log "$out/console.log" "$overlay"
status=$?
rm -rf "$qmp_dir"
touch "$exchange/e2e/done" 2>/dev/null
wait "$vendor"
vendor_status=$?
set -e
# Another device: the machine booted again with the OP-TEE OS whose hardware-unique key differs
# (target/optee/images-other-huk), the same TA and the same normal-world files (the device
# directory made by the provisioning above, the package). Its secure storage is empty (the RPMB
# key derives from the HUK too), so the sealed blob alone decides: it must not open there.
other_overlay="$out/overlay-other-huk"
rm -rf "$other_overlay"
mkdir -p "$other_overlay"
cat >"$other_overlay/scenario" <<'SCENARIO'
#!/bin/sh
[ -e /dev/teepriv0 ] || { echo "omg-optee: no /dev/teepriv0 (OP-TEE driver not up)"; exit 1; }
mkdir -p /data/tee
/usr/sbin/tee-supplicant &
e2e=/exchange/e2e
[ -d $e2e/provisioned_device ] || { echo "omg-optee: no provisioned device directory"; exit 1; }
cp -a $e2e/provisioned_device /tmp/omg-optee-device
/usr/bin/omg run --backend optee --dir /tmp/omg-optee-device $e2e/micro_speech.omgpkg --json \
  --wav /exchange/data/micro_speech/testdata/yes_1000ms.wav >$e2e/other_huk.json 2>$e2e/other_huk.err
echo $? >$e2e/other_huk.status
exit 0
SCENARIO
chmod +x "$other_overlay/scenario"
other_start=$SECONDS
say "booting the machine with another hardware-unique key"
if ! "$root/tools/arm/run.sh" --secure-world "$out/images-other-huk" --exchange "$exchange" \
  --module optee --timeout "${OMG_OPTEE_TIMEOUT:-1800}" --log "$out/console-other-huk.log" \
  "$overlay" "$other_overlay"; then
  echo "omg-optee e2e: FAIL the machine with another hardware-unique key did not run its scenario (console in target/optee/console-other-huk.log)"
  status=1
fi
say "the other-HUK machine took $((SECONDS - other_start)) s"
# The end-to-end results the machine left in the exchange directory.
e2e_check() { # OK WHAT
  if [ "$1" = 0 ]; then echo "omg-optee e2e: ok   $2"; else echo "omg-optee e2e: FAIL $2"; status=1; fi
}
e2e_check "$vendor_status" "the vendor side ran (target/optee/e2e.log)"
e2e="$exchange/e2e"
st() { cat "$e2e/$1.status" 2>/dev/null || echo missing; }
ran() { [ "$(st "$1")" = 0 ]; }
failed() { [ "$(st "$1")" != 0 ] && [ "$(st "$1")" != missing ]; }
check() { # WHAT COMMAND...: the check passes when COMMAND succeeds
  local what="$1"
  shift
  if "$@"; then e2e_check 0 "$what"; else e2e_check 1 "$what"; fi
}
check "omg device info --backend optee (the PTA's key and the TA's memory hash, equal to what omg-optee-host read): $(grep measurement "$e2e/device_info.txt" 2>/dev/null)" \
  ran device_info
check "omg provision --backend optee against the vendor service: $(tail -n1 "$e2e/provision.out" 2>/dev/null)" \
  ran provision
same_events() { # NAME CLIP: a run in the machine printed the Linux backend's events
  ran "$1" && [ -s "$e2e/linux_$2.json" ] && cmp -s "$e2e/$1.json" "$e2e/linux_$2.json"
}
for run in optee_yes:yes optee_no:no; do
  check "omg run --backend optee on ${run#*:}_1000ms.wav: $(tr -d '\n' <"$e2e/${run%:*}.json" 2>/dev/null), Linux backend here: $(tr -d '\n' <"$e2e/linux_${run#*:}.json" 2>/dev/null)" \
    same_events "${run%:*}" "${run#*:}"
done
refused() { # NAME FILE PATTERN: a step that failed, saying PATTERN
  failed "$1" && grep -qi "$3" "$e2e/$2"
}
check "the TA with one byte changed (re-signed) cannot open the sealed blob: $(tail -n1 "$e2e/changed_run.err" 2>/dev/null)" \
  refused changed_run changed_run.err seal
check "the TA with one byte changed gets no key from the vendor: $(tail -n1 "$e2e/changed_provision.out" 2>/dev/null)" \
  refused changed_provision changed_provision.out wrong_measurement
check "omg renew --backend optee: $(tail -n1 "$e2e/renew.out" 2>/dev/null)" ran renew
check "omg run --backend optee after the renewal: $(tr -d '\n' <"$e2e/renewed_yes.json" 2>/dev/null)" \
  same_events renewed_yes yes
check "the quota (153) is used up after three runs: $(tail -n1 "$e2e/exhausted.err" 2>/dev/null)" \
  refused exhausted exhausted.err "quota exhausted"
check "the renewal replaced the sealed blob (so the copy put back below is an older licence)" ran renewed_blob
check "the device directory and /data/tee put back to their copy made after provisioning" ran restore
check "the quota still holds after the normal world's files were put back (RPMB): $(tail -n1 "$e2e/restored.err" 2>/dev/null)" \
  refused restored restored.err "quota exhausted"
check "a package whose policy lists another TA is refused: $(tail -n1 "$e2e/impostor.out" 2>/dev/null)" \
  refused impostor impostor.out wrong_measurement
# The failure must be the sealed blob's authentication, not the empty secure storage there.
other_huk_refused() { refused other_huk other_huk.err seal && ! grep -qi "counter\|quota" "$e2e/other_huk.err"; }
check "the sealed blob does not open on a machine with another hardware-unique key (the same TA and files): $(tail -n1 "$e2e/other_huk.err" 2>/dev/null)" \
  other_huk_refused
# The plaintext scan: no window of the package's model in the normal world's RAM (nor in any
# file the machine wrote or was given here); the same scan finds them once the plaintext is
# put there.
found() { sed -n "s| $2\$||p" "$1" 2>/dev/null | head -n1; }
ram="$out/e2e/ram.bin"
live_ran() { ran live_provision && ran live && grep -q '"label":"yes"' "$e2e/live.json"; }
check "an operation kept open through the scan (audio from a pipe) ran and ended: $(tr -d '\n' <"$e2e/live.json" 2>/dev/null) $(tail -n1 "$e2e/live.err" 2>/dev/null)" \
  live_ran
check "no 64-byte window of the decrypted model in the normal world's $memory MiB of RAM during that operation (windows found: $(found "$e2e/scan0.result" "$ram"))" \
  [ "$(found "$e2e/scan0.result" "$ram")" = 0 ]
check "no 64-byte window of the decrypted model in the normal world's $memory MiB of RAM after the runs (windows found: $(found "$e2e/scan1.result" "$ram"))" \
  [ "$(found "$e2e/scan1.result" "$ram")" = 0 ]
check "positive control: the same scan finds all 4 windows once the plaintext model is in the normal world's RAM (found: $(found "$e2e/scan2.result" "$ram"))" \
  [ "$(found "$e2e/scan2.result" "$ram")" = 4 ]
find "$e2e" -type f ! -name control.tflite -print0 | xargs -0 /usr/bin/python3 \
  "$root/tools/optee/scan_memory.py" scan "$out/e2e/needles" >"$out/e2e/files.result" 2>&1
no_window() { [ -s "$out/e2e/files.result" ] && ! grep -qv "^0 " "$out/e2e/files.result"; }
check "no window of the decrypted model in the $(wc -l <"$out/e2e/files.result") files the machine wrote or was given here" \
  no_window
# Secure RAM from the normal world's root.
device_read() { ran devmem_virtio && grep -qix "0x74726976" "$e2e/devmem_virtio.out"; }
check "positive control: root maps a normal-world device through /dev/mem (virtio-mmio magic at 0x0a000000: $(cat "$e2e/devmem_virtio.out" 2>/dev/null))" \
  device_read
for a in 0x0e000000 0x0e100000 0x0e400000 0x0e800000 0x0efff000; do
  check "root mapping secure RAM at $a through /dev/mem fails (exit $(st "devmem_$a"): $(tr -d '\n' <"$e2e/devmem_$a.out" 2>/dev/null))" \
    failed "devmem_$a"
done
dd_safe() { failed secure_dd || [ "$(found "$out/e2e/files.result" "$e2e/secure_dd.bin")" = 0 ]; }
check "root reading secure RAM through /dev/mem fails or gives no plaintext (exit $(st secure_dd), $(stat -c %s "$e2e/secure_dd.bin" 2>/dev/null || echo 0) bytes: $(tail -n1 "$e2e/secure_dd.out" 2>/dev/null))" \
  dd_safe
# The attestation evidence, checked outside the machine with Python's cryptography.
if [ "$status" = 0 ]; then
  /usr/bin/python3 "$root/tools/optee/verify_attestation.py" "$exchange/attest" || status=1
fi
printf 'omg-optee: TA %s.ta: %d bytes signed (ELF %d bytes stripped)\n' "$uuid" \
  "$(stat -c %s "$ta")" "$(stat -c %s "$elf.stripped")"
say "done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s, exit status $status (console in target/optee/console.log, secure world in target/optee/console.secure.log)"
exit "$status"
