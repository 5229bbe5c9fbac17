#!/usr/bin/env bash
# Builds the Debian package of omg (target/debian/omg_VERSION_ARCH.deb): a release build of the
# omg command and of the enclave image, then cargo-deb (installed from crates.io at a pinned
# version when missing) packs them with the systemd units and the users' sysusers.d file.
#
#   tools/build-deb.sh            # prints the package's path on stdout
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION from crates.io" >&2
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION" >&2
fi
# The two packages alone, as .ci/run's difftest step builds them (so CI builds them once): the
# selection decides the features cargo unifies, hence the enclave image's bytes.
cargo build --release --locked -p omg-cli -p omg-enclave-image >&2
cargo deb --locked -p omg-cli --no-build --strip --quiet >&2
ls -t target/debian/omg_*.deb | head -n 1
