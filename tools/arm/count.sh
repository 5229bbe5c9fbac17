#!/usr/bin/env bash
# Counts the guest instructions one invoke of each reference model takes at each aarch64 kernel
# level, in the emulated ARM machine with QEMU's instruction counting mode:
#   count.sh [--cpu NAME]... [--levels "LEVEL..."] [--runs N] [--warmup N] [--model FILE]...
#            [--results DIR] [--json] [--no-build]
# It cross-builds `omg` (tools/cross-aarch64.sh --profile release: the code one ships), boots the
# machine once per CPU model with tools/arm/run.sh --icount (QEMU `-icount shift=0`, one CPU:
# the guest's clock advances exactly 1 ns per executed guest instruction), checks inside the guest
# that the clock counts instructions (tools/arm/icount-check.c: loops of known length against the
# clock and the PMU's instruction counter; a failed check measures nothing), then runs
# `omg bench MODEL --json --kernels LEVEL` for each model at each level the CPU has
# (tools/arm/count-scenario.sh). The time of an invoke, in guest ns, is its instruction count:
# every instruction the CPU ran, user space and the guest kernel's timer interrupts alike (a
# tick every 4 million instructions, some thousands each). The table gives the fastest of the
# timed runs (the one interrupts hit least; the median is in --json): it repeats between boots
# within 0.1 %, so few bench runs suffice.
#
# Prints one table per CPU model on standard output: instructions per invoke per model and level,
# and each optimized level's ratio to portable (Markdown; --json: one JSON document). Progress on
# standard error.
#
# This is a count, not a time: it has no caches, pipelines, memory latency or issue width in it,
# and a 16-byte SDOT counts as one instruction like an ADD. On a real board, `omg bench` gives times.
#
# Options:
#   --cpu NAME       QEMU CPU model (repeatable; default max: NEON, dotprod and i8mm, so every
#                    level; cortex-a57 has NEON only, and counts the same code at the levels both have)
#   --levels LIST    kernel levels, space-separated (default "reference portable neon dotprod");
#                    a level the CPU lacks is skipped and named
#   --runs N         timed invokes per model and level (default 3)
#   --warmup N       untimed invokes before them (default 1: page faults and first touches out)
#   --model FILE     a .tflite model (repeatable; default the nine reference models,
#                    micro_speech/models/*.tflite and mlperf_tiny/models/*.tflite under
#                    OMG_SHARED_DATA)
#   --results DIR    the raw results (default target/arm/count-results): DIR/CPU/ holds the
#                    check's output, one bench JSON object per model and level, the console log
#   --json           print JSON instead of tables
#   --no-build       use the release omg already built
# Environment: OMG_SHARED_DATA (default ../shared/data beside the repository).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cpus=()
levels="reference portable neon dotprod"
runs=3 warmup=1 json=0 build=1
models=()
results="$root/target/arm/count-results"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpus+=("$2"); shift 2 ;;
    --levels) levels="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --model) models+=("$(realpath "$2")"); shift 2 ;;
    --results) results="$(realpath -m "$2")"; shift 2 ;;
    --json) json=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#cpus[@]} -gt 0 ] || cpus=(max)
for level in $levels; do
  case "$level" in
    reference|portable|neon|dotprod) ;;
    *) echo "error: --levels: $level is not an aarch64 level (reference, portable, neon, dotprod)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "error: --runs must be a positive number, not $runs" >&2; exit 2; }
[[ "$warmup" =~ ^[0-9]+$ ]] || { echo "error: --warmup must be a number, not $warmup" >&2; exit 2; }

if [ ${#models[@]} -eq 0 ]; then
  shared="${OMG_SHARED_DATA:-$root/../shared/data}"
  [ -d "$shared" ] || { echo "error: no reference data at $shared (set OMG_SHARED_DATA or give --model)" >&2; exit 1; }
  shared="$(cd "$shared" && pwd)"
  models=("$shared"/micro_speech/models/*.tflite "$shared"/mlperf_tiny/models/*.tflite)
  [ -f "${models[0]}" ] || { echo "error: no models under $shared/{micro_speech,mlperf_tiny}/models" >&2; exit 1; }
fi
for m in "${models[@]}"; do
  [ -f "$m" ] || { echo "error: no model at $m" >&2; exit 1; }
done

"$here/setup.sh" >/dev/null
omg="$root/target/aarch64/aarch64-unknown-linux-gnu/release/omg"
if [ "$build" = 1 ]; then
  echo "count: cross-building omg (release)" >&2
  "$root/tools/cross-aarch64.sh" --profile release --bin omg >/dev/null
fi
[ -x "$omg" ] || { echo "error: no $omg (run without --no-build)" >&2; exit 1; }

work="$root/target/arm/count"
rm -rf "$work"
mkdir -p "$work/overlay/etc"
aarch64-linux-gnu-gcc -O2 -static -Wall -Wextra -Werror -o "$work/overlay/icount-check" "$here/icount-check.c"
install -m 0755 "$here/count-scenario.sh" "$work/overlay/scenario"
printf '%s\n' "${models[@]}" >"$work/overlay/etc/omg-count.models"
cat >"$work/overlay/etc/omg-count.env" <<ENV
export OMG_BIN='$omg'
export OMG_COUNT_LEVELS='$levels'
export OMG_COUNT_RUNS='$runs'
export OMG_COUNT_WARMUP='$warmup'
ENV
# The repository (for omg) and every directory holding a model, at their host paths.
shares=(--share "$root")
while read -r dir; do
  case "$dir/" in "$root"/*) ;; *) shares+=(--share "$dir") ;; esac
done < <(for m in "${models[@]}"; do dirname "$m"; done | sort -u)

failed=0
for cpu in "${cpus[@]}"; do
  out="$results/$cpu"
  rm -rf "$out"
  mkdir -p "$out"
  start=$SECONDS
  echo "count: cpu $cpu: ${#models[@]} models at levels $levels, $runs runs after $warmup warm-up" >&2
  status=0
  "$here/run.sh" --icount --cpu "$cpu" --timeout 3600 --log "$out/console.log" --exchange "$out" \
    "${shares[@]}" "$work/overlay" >&2 || status=$?
  echo "count: cpu $cpu: machine exit $status, $((SECONDS - start)) s" >&2
  [ "$status" = 0 ] || failed=1
done

python3 - "$json" "$results" "$levels" "$runs" "$warmup" "${cpus[@]}" <<'PY'
import json, os, sys

as_json, results, levels, runs, warmup = sys.argv[1] == "1", sys.argv[2], sys.argv[3].split(), int(sys.argv[4]), int(sys.argv[5])
cpus = sys.argv[6:]
report = {"unit": "guest instructions per invoke (the fastest of the timed runs; QEMU -icount shift=0)",
          "runs": runs, "warmup": warmup, "cpus": []}
for cpu in cpus:
    d = os.path.join(results, cpu)
    def read(name):
        try:
            return open(os.path.join(d, name)).read()
        except FileNotFoundError:
            return ""
    check = read("check.txt").strip().splitlines()
    entry = {"cpu": cpu, "features": read("features.txt").strip(),
             "check": check[-1] if check else "no result",
             "skipped_levels": read("skipped.txt").split(), "models": []}
    by_model = {}
    for line in read("bench.txt").splitlines():
        level, _, text = line.partition(" ")
        b = json.loads(text)
        name = os.path.basename(b["model"])
        m = by_model.setdefault(name, {"model": name, "levels": {}})
        m["levels"][level] = {"instructions": round(b["min_us"] * 1000),
                              "median_instructions": round(b["median_us"] * 1000),
                              "kernels": b["kernels"], "runs": b["runs"]}
    for m in by_model.values():
        base = m["levels"].get("portable", {}).get("instructions")
        for level, v in m["levels"].items():
            if base and level != "portable":
                v["ratio_to_portable"] = round(v["instructions"] / base, 3)
    entry["models"] = list(by_model.values())
    report["cpus"].append(entry)

if as_json:
    print(json.dumps(report, indent=1))
    sys.exit(0)
for entry in report["cpus"]:
    ran = [l for l in levels if l not in entry["skipped_levels"]]
    ratios = [l for l in ran if l not in ("portable",)]
    print(f"cpu {entry['cpu']}: {entry['check']}")
    if entry["skipped_levels"]:
        print(f"(levels this CPU lacks, not run: {' '.join(entry['skipped_levels'])})")
    print()
    print("| model | " + " | ".join(ran) + " | " + " | ".join(f"{l} / portable" for l in ratios) + " |")
    print("|---|" + "---:|" * (len(ran) + len(ratios)))
    for m in entry["models"]:
        cells = [f"{m['levels'][l]['instructions']:,}" if l in m["levels"] else "failed" for l in ran]
        cells += [f"{m['levels'][l]['ratio_to_portable']:.2f}" if "ratio_to_portable" in m["levels"].get(l, {}) else "" for l in ratios]
        print(f"| {m['model']} | " + " | ".join(cells) + " |")
    print()
PY
exit "$failed"
