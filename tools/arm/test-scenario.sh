#!/bin/sh
# The scenario of tools/arm/test.sh, run by the emulated ARM machine's /init (busybox sh, as root).
# tools/arm/test.sh packs it as /scenario with
#   /etc/omg-tests     the test executables: PACKAGE KIND NAME MANIFEST_DIR PATH a line
#   /etc/omg-tests.kernels  the same for the crates whose code depends on the CPU's features,
#                      run instead when the kernel command line says omg.tests=kernels
#   /etc/omg-test.env  exported variables: OMG_BIN (the omg binary), OMG_SHARED_DATA,
#                      OMG_TEST_ARGS (harness arguments for every executable), OMG_TFLM_DUMPS
# and shares the repository and the reference data at their host paths. Each executable runs
# from its package's directory, as `cargo test` runs it; its output goes to
# /exchange/tests/PACKAGE.KIND.NAME.log. Then `omg demo` runs while the enclave processes'
# /proc/PID/status are watched: each one seen must report Seccomp: 2 (filter mode). Exit status 0
# only when every executable passed and the demo succeeded with no enclave seen unsandboxed.
. /etc/omg-test.env
export RUST_BACKTRACE=1 HOME=/root
mkdir -p /root /exchange/tests
status=0
tests=/etc/omg-tests
! grep -qw omg.tests=kernels /proc/cmdline || tests=/etc/omg-tests.kernels

echo "omg-test: $(uname -m), $(grep -c ^processor /proc/cpuinfo) CPUs, features: $(sed -n 's/^Features[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
while read -r package kind name dir path; do
  log="/exchange/tests/$package.$kind.$name.log"
  start=$(date +%s)
  # shellcheck disable=SC2086 # OMG_TEST_ARGS is a list of words.
  (cd "$dir" && CARGO_MANIFEST_DIR="$dir" CARGO_PKG_NAME="$package" "$path" $OMG_TEST_ARGS) \
    </dev/null >"$log" 2>&1
  result=$?
  summary="$(grep '^test result:' "$log" | tail -n 1)"
  echo "omg-test: $package $kind $name ($(($(date +%s) - start)) s): ${summary:-no summary}"
  if [ "$result" != 0 ]; then
    status=1
    echo "omg-test: FAILED $package $kind $name (exit $result); the end of its output:"
    tail -n 60 "$log"
  fi
done <"$tests"

echo "omg-test: omg demo"
demo="$(mktemp -d)"
"$OMG_BIN" demo --dir "$demo/dir" </dev/null >/exchange/demo.log 2>&1 &
pid=$!
: >"$demo/seccomp"
# Every enclave process seen while the demo runs: its Seccomp line.
while kill -0 "$pid" 2>/dev/null; do
  for s in /proc/[0-9]*/status; do
    if grep -qs '^Name:[[:space:]]*omg-enclave$' "$s"; then
      echo "${s%/status} $(grep '^Seccomp:' "$s" | tr -s '\t ' ' ')" >>"$demo/seccomp"
    fi
  done
done
wait "$pid"
result=$?
cat /exchange/demo.log
sort -u "$demo/seccomp" >/exchange/demo-seccomp.txt
enclaves=$(cut -d' ' -f1 /exchange/demo-seccomp.txt | sort -u | wc -l)
unsandboxed=$(grep -vc 'Seccomp: 2$' /exchange/demo-seccomp.txt)
echo "omg-test: omg demo exit $result; enclave processes seen: $enclaves, without seccomp filter mode: $unsandboxed"
# An enclave lives for one clip: a poll may miss all of them. The check that cannot miss is
# omg-cli's enclave_attacks test, which asserts Seccomp: 2 on a streaming enclave.
[ "$enclaves" != 0 ] || echo "omg-test: note: the demo's enclaves ended between two looks at /proc"
if [ "$result" != 0 ] || [ "$unsandboxed" != 0 ]; then
  echo "omg-test: FAILED omg demo"
  status=1
fi
rm -rf "$demo"
exit "$status"
