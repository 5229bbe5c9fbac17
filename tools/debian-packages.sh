#!/usr/bin/env bash
# Installs those of the named Debian packages that are missing:
#   debian-packages.sh [--backports] PACKAGE...
# A name ending in :arm64 makes dpkg learn the arm64 architecture first. --backports takes the
# packages from bookworm-backports (added to apt's sources when missing). Installing needs root;
# without it, the missing packages are named and the exit status is 1. Waits for another apt to
# finish (up to 15 minutes) instead of failing on its lock.
set -euo pipefail
suite=()
if [ "${1:-}" = --backports ]; then
  suite=(-t bookworm-backports)
  shift
fi
need=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: missing Debian packages (${need[*]}); install them as root or run this as root" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
if printf '%s\n' "${need[@]}" | grep -q ':arm64$'; then
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
fi
if [ ${#suite[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d; then
  cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
apt=(apt-get -o DPkg::Lock::Timeout=900)
# apt's output goes to stderr: callers such as tools/optee/build.sh print their result on stdout.
"${apt[@]}" update -qq >&2
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${suite[@]}" "${need[@]}" >&2
