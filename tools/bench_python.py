#!/usr/bin/env python3
"""omg's Python binding against tflite_micro's, per invoke, on the models given.

For each model both interpreters get the same random input (fixed seed); after a warm-up, the
time of `invoke()` called from Python is measured in rounds of calls, each round long enough to
time (about 0.1 s), and the fastest round's mean per call is kept (the least disturbed by other
work on the machine). Prints a Markdown table (model, TFLM us, omg us, TFLM / omg), or with
--json one JSON object. Before timing, the outputs of the two are checked to be the same bytes.

    python tools/bench_python.py [--json] [--rounds N] MODEL.tflite...

Needs numpy, tflite_micro and the omg package installed (tools/test-python.sh runs it in the
virtual environment where it installed the wheel).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tflite_micro import runtime as tflm

import omg


def random_input(rng: np.random.Generator, details: dict) -> np.ndarray:
    dtype = np.dtype(details["dtype"])
    shape = tuple(int(d) for d in details["shape"])
    if dtype.kind == "f":
        return rng.uniform(-10.0, 10.0, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def per_invoke(interp, rounds: int) -> float:
    """Seconds per invoke(): the fastest of `rounds` rounds, each of n calls with n chosen so
    that a round lasts about 0.1 s."""
    for _ in range(3):
        interp.invoke()
    start = time.perf_counter()
    interp.invoke()
    one = max(time.perf_counter() - start, 1e-7)
    n = max(1, min(100_000, int(0.1 / one)))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            interp.invoke()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per model (default 5)")
    args = ap.parse_args()
    rng = np.random.default_rng(20261207)
    rows = []
    for path in args.models:
        data = path.read_bytes()
        ours = omg.Interpreter.from_bytes(data)
        theirs = tflm.Interpreter.from_bytes(data, arena_size=max(10 * len(data), 1 << 20))
        for i in range(ours.input_count):
            x = random_input(rng, ours.get_input_details(i))
            ours.set_input(x, i)
            theirs.set_input(x, i)
        ours.invoke()
        theirs.invoke()
        for o in range(ours.output_count):
            if ours.get_output(o).tobytes() != theirs.get_output(o).tobytes():
                print(f"error: {path.name}: output {o} differs from TFLM's", file=sys.stderr)
                return 1
        t_tflm = per_invoke(theirs, args.rounds)
        t_omg = per_invoke(ours, args.rounds)
        rows.append({
            "model": path.stem,
            "tflm_us": round(t_tflm * 1e6, 2),
            "omg_us": round(t_omg * 1e6, 2),
            "ratio": round(t_tflm / t_omg, 1),
            "kernels": ours.kernels,
        })
        print(f"{path.stem}: TFLM {t_tflm * 1e6:.1f} us, omg {t_omg * 1e6:.1f} us", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "python": platform.python_version(),
            "machine": platform.machine(),
            "omg": omg.__version__,
            "rounds": args.rounds,
            "models": rows,
        }))
    else:
        print("| model | TFLM (µs per invoke) | omg (µs per invoke) | TFLM / omg |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['tflm_us']:,.1f} | {r['omg_us']:,.1f} | {r['ratio']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
