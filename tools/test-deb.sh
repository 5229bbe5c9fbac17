#!/usr/bin/env bash
# Installs the Debian package on this machine and checks it, then removes it (run by .ci/run as
# root; it changes the system: a package, two users, a group).
#
#   tools/test-deb.sh target/debian/omg_VERSION_ARCH.deb
#
# Checks: dpkg -i; the binaries run; the users, group and directories exist with their modes;
# systemd-analyze verify of both units and their exposure (systemd-analyze security --offline)
# below a threshold; each unit's ExecStart command line, run as the unit's user with the files
# the units' comments say to make first, answers (the vendor service on /healthz, /readyz and a
# challenge; the platform service creates its socket with the unit's mode and group); dpkg -r
# removes the binaries and units; dpkg -P then leaves no file of the package.
set -euo pipefail
deb=${1:?usage: tools/test-deb.sh PACKAGE.deb}
[ "$(id -u)" = 0 ] || { echo "tools/test-deb.sh installs a package: run it as root" >&2; exit 2; }
command -v systemd-analyze >/dev/null || tools/debian-packages.sh systemd >&2

# Exposure levels (0 safest .. 10) that the units must stay below.
VENDOR_MAX_EXPOSURE=2.0
PLATFORM_MAX_EXPOSURE=3.0

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  dpkg -P omg >/dev/null 2>&1 || true
  rm -rf "$work" /etc/omg-vendor /var/lib/omg-vendor /var/lib/omg-platform /run/omg
  for u in omg-vendor omg-platform; do userdel "$u" 2>/dev/null || true; done
  groupdel omg 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "test-deb: $*" >&2; exit 1; }

dpkg -i "$deb" >/dev/null
echo "installed: $(dpkg-query -W -f '${Package} ${Version} ${Architecture}, ${Installed-Size} KiB' omg)"
/usr/bin/omg --version >/dev/null || fail "omg does not run"
[ -x /usr/bin/omg-enclave ] || fail "no enclave image"

for u in omg-vendor omg-platform; do getent passwd "$u" >/dev/null || fail "no user $u"; done
getent group omg >/dev/null || fail "no group omg"
id -nG omg-platform | grep -qw omg || fail "omg-platform is not in the group omg"
for d in /etc/omg-vendor:omg-vendor /var/lib/omg-vendor:omg-vendor /var/lib/omg-platform:omg-platform; do
  [ "$(stat -c '%U %a' "${d%%:*}")" = "${d##*:} 700" ] || fail "${d%%:*}: $(stat -c '%U %a' "${d%%:*}")"
done

for unit in omg-vendor omg-platform; do
  file=/lib/systemd/system/$unit.service
  systemd-analyze verify "$file" || fail "$unit.service does not verify"
  max=$VENDOR_MAX_EXPOSURE; [ "$unit" = omg-platform ] && max=$PLATFORM_MAX_EXPOSURE
  exposure=$(systemd-analyze security --offline=true "$file" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$exposure" ] || fail "no exposure level for $unit"
  awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e < m) }' \
    || fail "$unit.service: exposure $exposure, more than $max"
  echo "$unit.service: verifies, exposure $exposure (below $max)"
done

exec_start() { sed -n 's/^ExecStart=//p' "/lib/systemd/system/$1.service"; }

# The vendor service as its unit starts it, after the first-start steps of its comments.
runuser -u omg-vendor -- omg vendor keygen --dir /etc/omg-vendor >/dev/null
head -c 32 /dev/urandom | base64 > /etc/omg-vendor/admin-token
chown omg-vendor: /etc/omg-vendor/admin-token && chmod 0600 /etc/omg-vendor/admin-token
# shellcheck disable=SC2046
runuser -u omg-vendor -- $(exec_start omg-vendor) 2>"$work/vendor.log" &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8650) 2>/dev/null && break
  sleep 0.1
done
http() { # METHOD PATH: the status line and body of the answer
  exec 3<>/dev/tcp/127.0.0.1/8650
  printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  cat <&3
  exec 3<&-
}
http GET /healthz | grep -q '"status":"ok"' || fail "vendor service: /healthz"
http GET /readyz | grep -q '"status":"ready"' || fail "vendor service: /readyz"
http POST /v1/challenge | grep -q '"nonce"' || fail "vendor service: no challenge"
[ "$(stat -c '%U %a' /var/lib/omg-vendor/vendor.sqlite)" = "omg-vendor 600" ] \
  || fail "vendor.sqlite: $(stat -c '%U %a' /var/lib/omg-vendor/vendor.sqlite)"
grep -q '"route":"/v1/challenge"' "$work/vendor.log" || fail "no JSON request log"
echo "omg-vendor: ExecStart as omg-vendor answers /healthz, /readyz and a challenge; JSON log"

# The platform service as its unit starts it (systemd would make /run/omg: RuntimeDirectory).
runuser -u omg-platform -- omg device init --dir /var/lib/omg-platform/device >/dev/null
install -d -o omg-platform -g omg -m 0750 /run/omg
# shellcheck disable=SC2046
runuser -u omg-platform -g omg -- $(exec_start omg-platform) 2>"$work/platform.log" &
pids+=($!)
for _ in $(seq 100); do [ -S /run/omg/platform.sock ] && break; sleep 0.1; done
[ -S /run/omg/platform.sock ] || { cat "$work/platform.log" >&2; fail "no platform socket"; }
[ "$(stat -c '%U %G %a' /run/omg/platform.sock)" = "omg-platform omg 660" ] \
  || fail "platform socket: $(stat -c '%U %G %a' /run/omg/platform.sock)"
echo "omg-platform: ExecStart as omg-platform:omg makes /run/omg/platform.sock (omg-platform omg 660)"
for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
pids=()

dpkg -r omg >/dev/null
for f in /usr/bin/omg /usr/bin/omg-enclave /lib/systemd/system/omg-vendor.service \
  /lib/systemd/system/omg-platform.service; do
  [ ! -e "$f" ] || fail "$f left after dpkg -r"
done
dpkg -P omg >/dev/null
[ -z "$(dpkg -L omg 2>/dev/null)" ] || fail "files of the package left after dpkg -P"
echo "removed: dpkg -r took the binaries and units, dpkg -P the rest"
