#!/usr/bin/env python3
"""Side-by-side latency and memory comparison: omg vs TFLM vs LiteRT.

Runs, in one process on one machine, for every model given (default: every
.tflite under ../shared/data/*/models relative to the repository root):

* omg:    ``omg bench MODEL --json`` (its own timing loop; the JSON object it
          prints is kept as is: median_us, p99_us, arena_bytes, model_bytes,
          runs, ...), and again with ``--kernels portable`` (the level CPUs
          without AVX2 run) unless --no-portable, and at each level named by
          --levels (``--kernels LEVEL``; the same rounds, so the levels' ratios
          come from one run);
* TFLM:   the PyPI ``tflite-micro`` interpreter, timing ``invoke()`` only, after
          warm-up; the arena use is what TFLM's RecordingMicroAllocator prints
          (``print_allocations()``, captured from the C++ side's fd 1/2);
* LiteRT: the PyPI ``ai-edge-litert`` ``Interpreter(model_path, num_threads=1)``
          with its default delegate (XNNPACK), timing ``invoke()`` only; "n/a"
          for models LiteRT cannot load (e.g. the audio preprocessors' TFLM
          Signal custom ops).

All runtimes get the same random input (seeded, full integer range). They are
measured --rounds times, taking turns, and the median of the rounds' medians is
reported, so that a burst of load on a shared machine does not hit one runtime
alone. Prints a markdown table (median µs, TFLM/omg speedup, omg/LiteRT ratio,
arena bytes) or, with --json, one JSON object with the raw figures
(median, p99, mean, min, runs per runtime).

Exit status: 0 on success, 1 when ``omg bench`` failed for some model, 2 on
usage errors. Needs the packages of tools/python-requirements.txt
(tools/setup-venv.sh); when they are missing it re-executes itself with the
repository's .venv (or $OMG_VENV) if there is one.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from omgtools import REPO_ROOT, ensure_deps

DEFAULT_OMG = Path("target/release/omg")
DEFAULT_MODEL_GLOB = "../shared/data/*/models/*.tflite"
MAX_RUNS = 100_000


ensure_deps(__file__)

import numpy as np  # noqa: E402
from tflite_micro import runtime as tflm  # noqa: E402


def _pkg_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def capture_fds(result: dict):
    """Redirect fds 1 and 2 (C/C++ output included) into result['text']."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    libc.fflush(None)
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield result
        finally:
            libc.fflush(None)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            result["text"] = tmp.read().decode("utf-8", "replace")


def random_input(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dt)


def time_loop(invoke, runs: int, warmup: int, min_seconds: float) -> dict:
    for _ in range(warmup):
        invoke()
    times = []
    clock = time.perf_counter_ns
    start = clock()
    while len(times) < runs or (clock() - start < min_seconds * 1e9 and len(times) < MAX_RUNS):
        t0 = clock()
        invoke()
        times.append(clock() - t0)
    us = np.asarray(times, dtype=np.float64) / 1000.0
    return {"median_us": round(float(np.median(us)), 3),
            "p99_us": round(float(np.percentile(us, 99)), 3),
            "mean_us": round(float(us.mean()), 3),
            "min_us": round(float(us.min()), 3),
            "runs": len(times)}


def _n_inputs(data: bytes) -> int:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb
    return schema_fb.Model.GetRootAsModel(data, 0).Subgraphs(0).InputsLength()


def bench_tflm(path: Path, args, seed: int) -> dict:
    data = path.read_bytes()
    it = tflm.Interpreter.from_bytes(data, arena_size=max(10 * len(data), 1 << 20))
    rng = np.random.default_rng(seed)
    for i in range(_n_inputs(data)):
        d = it.get_input_details(i)
        it.set_input(random_input(rng, d["dtype"], tuple(d["shape"])), i)
    res = time_loop(it.invoke, args.runs, args.warmup, args.min_seconds)
    cap = {}
    with capture_fds(cap):
        it.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", cap.get("text", ""))
    res["arena_bytes"] = int(m.group(1)) if m else None
    return res


def bench_litert(path: Path, args, seed: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter
    cap = {}
    try:
        with capture_fds(cap):  # hides the "Created XNNPACK delegate" chatter
            interp = Interpreter(model_path=str(path), num_threads=1)
            interp.allocate_tensors()
    except Exception as exc:  # e.g. unresolved custom op SignalWindow
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return {"error": lines[0] if lines else type(exc).__name__}
    rng = np.random.default_rng(seed)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], random_input(rng, d["dtype"], tuple(d["shape"])))
    res = time_loop(interp.invoke, args.runs, args.warmup, args.min_seconds)
    res["delegate"] = "default (XNNPACK)"
    res["num_threads"] = 1
    return res


def bench_omg(omg: Path, path: Path, timeout: float, kernels: str = "auto") -> dict:
    try:
        r = subprocess.run([str(omg), "bench", str(path), "--json", "--kernels", kernels],
                           stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    except OSError as exc:
        return {"error": f"cannot run omg: {exc}"}
    if r.returncode != 0:
        msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return {"error": f"exit {r.returncode}: {msg[-1] if msg else '(no stderr)'}"}
    out = r.stdout.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(out)
    except json.JSONDecodeError:
        lines = [ln for ln in out.splitlines() if ln.lstrip().startswith("{")]
        try:
            obj = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            return {"error": f"omg bench printed no JSON object: {out[:200]!r}"}
    if not isinstance(obj, dict) or "median_us" not in obj:
        return {"error": f"omg bench JSON lacks median_us: {out[:200]!r}"}
    return obj


def combine_rounds(rounds: list) -> dict:
    """One runtime's figures over several rounds: the first round's, with median_us the
    median of the rounds' medians (kept in round_medians_us); the first error if any."""
    for r in rounds:
        if "error" in r:
            return r
    out = dict(rounds[0])
    medians = [r["median_us"] for r in rounds]
    out["median_us"] = round(float(np.median(medians)), 3)
    out["round_medians_us"] = medians
    return out


def machine_info() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


# --------------------------------------------------------------------------
# Reporting


def _us(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _get(d: dict, key: str):
    return d.get(key) if d and "error" not in d else None


def print_markdown(report) -> None:
    levels = report["settings"].get("levels") or []
    hdr = ["model", "omg median µs", "omg portable µs"] + [f"omg {lv} µs" for lv in levels] + [
        "TFLM median µs", "LiteRT median µs", "TFLM/omg speedup",
        "omg/LiteRT ratio"] + [f"omg {lv}/LiteRT" for lv in levels] + [
        "omg arena bytes", "TFLM arena bytes"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for r in report["models"]:
        o = _get(r.get("omg"), "median_us")
        t = _get(r["tflm"], "median_us")
        lt = _get(r["litert"], "median_us")
        if r.get("omg") is None:
            o_cell = "skipped"
        elif "error" in r["omg"]:
            o_cell = "error"
        else:
            o_cell = _us(o)
        port = r.get("omg_portable")
        p_cell = "skipped" if port is None else "error" if "error" in port else \
            _us(port["median_us"])
        lv_us = [_get(r.get(f"omg_{lv}"), "median_us") for lv in levels]
        cells = [r["model"], o_cell, p_cell] + [_us(v) for v in lv_us] + [
                 _us(t), _us(lt),
                 f"{t / o:.2f}x" if o and t else "n/a",
                 f"{o / lt:.2f}" if o and lt else "n/a"] + [
                 f"{v / lt:.2f}" if v and lt else "n/a" for v in lv_us] + [
                 str(_get(r.get("omg"), "arena_bytes") or "n/a"),
                 str(_get(r["tflm"], "arena_bytes") or "n/a")]
        print("| " + " | ".join(cells) + " |")
    s, m, v = report["settings"], report["machine"], report["versions"]
    print()
    print(f"Per-invoke latency: median over {s['rounds']} round(s), the runtimes taking turns "
          "in each round, of each round's median. TFLM and LiteRT: "
          f"{s['runs']}+ timed `invoke()` calls "
          f"(at least {s['min_seconds']} s per model) after {s['warmup']} warm-up calls; their "
          "figures include the Python binding's call overhead (about 1 µs per call). omg: "
          "`omg bench --json` (its own loop, no Python; the fastest kernel level this CPU "
          "has), omg portable: `omg bench --json --kernels portable` (plain Rust, "
          "auto-vectorized for the build target)"
          + (", omg LEVEL: `omg bench --json --kernels LEVEL`" if levels else "")
          + ". p99, mean, min and run counts: --json.")
    print(f"LiteRT: ai-edge-litert {v['ai-edge-litert']}, default delegate (XNNPACK), "
          "num_threads=1; n/a = LiteRT cannot load the model (TFLM-only Signal custom ops). "
          f"TFLM: tflite-micro {v['tflite-micro']} (portable reference kernels); arena = "
          "RecordingMicroAllocator total on this 64-bit host.")
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}"
          + (f", pinned to CPU {s['cpu']}" if s.get("cpu") is not None else "") + ".")
    for r in report["models"]:
        for name in ["omg", "omg_portable", "litert"] + [f"omg_{lv}" for lv in levels]:
            e = (r.get(name) or {}).get("error")
            if e and not (name == "litert" and "custom op" in e):
                print(f"- {r['model']}: {name}: {e}")


# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench_compare.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples (from the repository root):\n"
               "  tools/bench_compare.py --omg target/release/omg\n"
               "  tools/bench_compare.py --cpu 1 --json > bench.json\n"
               "  tools/bench_compare.py --no-omg ../shared/data/mlperf_tiny/models/ad01_int8.tflite")
    p.add_argument("models", nargs="*", metavar="MODEL.tflite", type=Path,
                   help="model files (default: all of ../shared/data/*/models/*.tflite)")
    p.add_argument("--omg", type=Path, default=None, metavar="PATH",
                   help="omg binary (default: target/release/omg in the repository root)")
    p.add_argument("--no-omg", action="store_true",
                   help="benchmark only TFLM and LiteRT (no omg binary needed)")
    p.add_argument("--no-litert", action="store_true", help="skip LiteRT")
    p.add_argument("--no-portable", action="store_true",
                   help="skip omg's portable kernel level")
    p.add_argument("--levels", default="", metavar="LEVEL,...",
                   help="also time omg at these kernel levels (`omg bench --kernels LEVEL`), "
                        "in the same rounds as the other runtimes")
    p.add_argument("--runs", type=int, default=200, metavar="N",
                   help="minimum timed invokes per model for TFLM and LiteRT (default: 200)")
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="measure every runtime N times, taking turns, and report the median "
                        "of the rounds' medians (default: 3)")
    p.add_argument("--min-seconds", type=float, default=0.5, metavar="S",
                   help="keep timing fast models until this much time has passed, up to "
                        f"{MAX_RUNS} runs (default: 0.5)")
    p.add_argument("--warmup", type=int, default=20, metavar="W",
                   help="untimed invokes before timing (default: 20)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the random input (default: 0)")
    p.add_argument("--cpu", type=int, default=None, metavar="CORE",
                   help="pin this process and omg to one CPU core (sched_setaffinity)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SEC",
                   help="limit for one `omg bench` run (default: 600)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the raw figures instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.runs < 1 or args.rounds < 1:
        p.error("--runs and --rounds must be at least 1")
    if args.warmup < 0 or args.min_seconds < 0:
        p.error("--warmup and --min-seconds must not be negative")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    prog = "bench_compare"
    models = args.models or sorted(REPO_ROOT.glob(DEFAULT_MODEL_GLOB))
    if not models:
        print(f"{prog}: error: no models given and none found under "
              f"{REPO_ROOT / DEFAULT_MODEL_GLOB}", file=sys.stderr)
        return 2
    for m in models:
        if not m.is_file():
            print(f"{prog}: error: no such model file: {m}", file=sys.stderr)
            return 2
    omg = None
    if not args.no_omg:
        omg = args.omg if args.omg is not None else REPO_ROOT / DEFAULT_OMG
        if not (omg.is_file() and os.access(omg, os.X_OK)):
            print(f"{prog}: error: omg binary not found or not executable: {omg} "
                  "(build it, pass --omg, or use --no-omg)", file=sys.stderr)
            return 2
        omg = omg.resolve()
    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (OSError, ValueError) as exc:
            print(f"{prog}: error: cannot pin to CPU {args.cpu}: {exc}", file=sys.stderr)
            return 2

    results = []
    for idx, path in enumerate(models):
        path = path.resolve()
        t0 = time.monotonic()
        r = {"model": path.stem, "path": str(path), "model_bytes": path.stat().st_size}
        # The runtimes take turns, round after round, so that a burst of load on a shared
        # machine hits all of them rather than one.
        levels = [lv for lv in args.levels.split(",") if lv]
        rounds = {"omg": [], "omg_portable": [], "tflm": [], "litert": []}
        rounds.update({f"omg_{lv}": [] for lv in levels})
        for _ in range(args.rounds):
            if omg:
                rounds["omg"].append(bench_omg(omg, path, args.timeout))
                if not args.no_portable:
                    rounds["omg_portable"].append(
                        bench_omg(omg, path, args.timeout, "portable"))
                for lv in levels:
                    rounds[f"omg_{lv}"].append(bench_omg(omg, path, args.timeout, lv))
            try:
                rounds["tflm"].append(bench_tflm(path, args, args.seed + idx))
            except Exception as exc:
                rounds["tflm"].append({"error": str(exc).strip().splitlines()[0]
                                       if str(exc).strip() else type(exc).__name__})
            rounds["litert"].append({"error": "skipped (--no-litert)"} if args.no_litert
                                    else bench_litert(path, args, args.seed + idx))
        r["omg"] = combine_rounds(rounds["omg"]) if omg else None
        r["omg_portable"] = combine_rounds(rounds["omg_portable"]) \
            if rounds["omg_portable"] else None
        for lv in levels:
            r[f"omg_{lv}"] = combine_rounds(rounds[f"omg_{lv}"]) if omg else None
        r["tflm"] = combine_rounds(rounds["tflm"])
        r["litert"] = combine_rounds(rounds["litert"])
        results.append(r)
        if not args.quiet:
            parts = []
            for name in ["omg", "omg_portable"] + [f"omg_{lv}" for lv in levels] + ["tflm", "litert"]:
                v = r.get(name)
                parts.append(f"{name} " + ("-" if v is None else
                                           v.get("error", "?") if "error" in v else
                                           f"{v['median_us']:.1f} µs"))
            print(f"{prog}: {r['model']}: " + ", ".join(parts)
                  + f" ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)

    report = {
        "tool": "bench_compare",
        "machine": machine_info(),
        "versions": {"tflite-micro": _pkg_version("tflite-micro"),
                     "ai-edge-litert": _pkg_version("ai-edge-litert"),
                     "numpy": np.__version__},
        "settings": {"runs": args.runs, "rounds": args.rounds, "min_seconds": args.min_seconds,
                     "warmup": args.warmup, "seed": args.seed, "cpu": args.cpu,
                     "omg": str(omg) if omg else None,
                     "levels": [lv for lv in args.levels.split(",") if lv],
                     "note": "TFLM/LiteRT timings include the Python binding call overhead "
                             "(about 1 us per invoke)"},
        "models": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_markdown(report)
    failed = any(r["omg"] is not None and "error" in r["omg"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
