#!/usr/bin/env bash
# Runs `cargo test ARGS...` with TMPDIR set to a fresh, empty directory and fails if the run
# leaves anything in it: every test must remove what it creates (test keys included), and so
# must every command the tests run. Entries named omg* that appear in /tmp during the run are
# reported too, for code that ignores TMPDIR. The tests' own status is kept: a failing test
# fails the script whatever is left.
#
#   tools/test-leaves-no-files.sh --workspace --locked
set -euo pipefail
cd "$(dirname "$0")/.."

base="$(mktemp -d "${TMPDIR:-/tmp}/cargo-test-tmp.XXXXXX")"
# Like /tmp: the tests that run a command as another user need to reach their directories.
chmod 1777 "$base"
omg_in_tmp() { find /tmp -mindepth 1 -maxdepth 1 -name 'omg*' -printf '%f\n' 2>/dev/null | sort; }
before="$(omg_in_tmp)"

status=0
TMPDIR="$base" cargo test "$@" || status=$?

left="$(find "$base" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)"
new_in_tmp="$(comm -13 <(printf '%s\n' "$before") <(omg_in_tmp) | sed '/^$/d')"
rm -rf "$base"
if [ -n "$left" ]; then
  echo "error: the tests left these in their TMPDIR:" >&2
  printf '  %s\n' $left >&2
  status=1
fi
if [ -n "$new_in_tmp" ]; then
  echo "error: the tests left these in /tmp (ignoring TMPDIR):" >&2
  printf '  /tmp/%s\n' $new_in_tmp >&2
  status=1
fi
if [ "$status" = 0 ]; then
  echo "the tests left no files behind"
fi
exit "$status"
