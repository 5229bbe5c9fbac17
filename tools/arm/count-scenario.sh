#!/bin/sh
# The scenario of tools/arm/count.sh, run by the emulated ARM machine's /init (busybox sh, as root)
# with QEMU counting instructions (tools/arm/run.sh --icount: 1 ns of guest time per guest
# instruction). count.sh packs it as /scenario with
#   /icount-check          the clock check (tools/arm/icount-check.c)
#   /etc/omg-count.env     exported variables: OMG_BIN (the omg binary), OMG_COUNT_LEVELS (the
#                          kernel levels to measure, space-separated), OMG_COUNT_RUNS and
#                          OMG_COUNT_WARMUP (omg bench's --runs and --warmup)
#   /etc/omg-count.models  the models, one path a line
# and shares the repository and the models at their host paths. It runs the check first (its
# output in /exchange/check.txt) and stops with status 1 if the clock does not count
# instructions. Then, for each model and each level the CPU has (neon needs "asimd", dotprod
# "asimddp" in /proc/cpuinfo's Features; reference and portable run everywhere), it runs
#   omg bench MODEL --json --kernels LEVEL --runs OMG_COUNT_RUNS --warmup OMG_COUNT_WARMUP
# and appends "LEVEL JSON" to /exchange/bench.txt (standard error in /exchange/bench.err). A level
# the CPU lacks is listed in /exchange/skipped.txt. Exit status 0 when every bench succeeded.
. /etc/omg-count.env
export HOME=/root
mkdir -p /root
features="$(sed -n 's/^Features[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "$features" >/exchange/features.txt
echo "omg-count: $(uname -m), $(grep -c ^processor /proc/cpuinfo) CPU, features: $features"

/icount-check >/exchange/check.txt 2>&1
check=$?
tail -n 1 /exchange/check.txt
[ "$check" = 0 ] || { echo "omg-count: the guest clock does not count instructions; nothing measured"; exit 1; }

has() { case " $features " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
: >/exchange/bench.txt
: >/exchange/bench.err
: >/exchange/skipped.txt
status=0
while read -r model; do
  [ -n "$model" ] || continue
  for level in $OMG_COUNT_LEVELS; do
    case "$level" in
      neon) has asimd || { echo "$level" >>/exchange/skipped.txt; continue; } ;;
      dotprod) has asimddp || { echo "$level" >>/exchange/skipped.txt; continue; } ;;
    esac
    if out="$("$OMG_BIN" bench "$model" --json --kernels "$level" --runs "$OMG_COUNT_RUNS" \
      --warmup "$OMG_COUNT_WARMUP" </dev/null 2>>/exchange/bench.err)"; then
      echo "$level $out" >>/exchange/bench.txt
      echo "omg-count: $(basename "$model") $level: fastest run $(echo "$out" | sed -n 's/.*"min_us":\([0-9.]*\).*/\1/p') us of guest time"
    else
      status=1
      echo "omg-count: FAILED $(basename "$model") $level; the end of its errors:"
      tail -n 5 /exchange/bench.err
    fi
  done
done </etc/omg-count.models
sort -u /exchange/skipped.txt -o /exchange/skipped.txt
exit "$status"
