#!/usr/bin/env python3
"""Differential test harness: omg against TensorFlow Lite Micro, byte for byte.

omg's interpreter must produce exactly the bytes that TFLM (the PyPI
``tflite-micro`` wheel, the oracle) produces for the same model and input.
For every model given, this script

* reads the subgraph-0 input/output tensors (dtype, shape) from TFLM and the
  model's operator codes from the flatbuffer;
* generates ``--count`` cases: for integer inputs uniform random values over
  the dtype's full range, plus the all-minimum, all-maximum and all-zero
  corners; for float inputs random values in [-s, s] with s drawn from
  {1, 10, 1000}, plus the corners -1e6, +1e6 and 0 (corners are cases 0, 1, 2
  -- "min", "max", "zero" -- when --count leaves room for a random case);
* runs each case through TFLM (after ``reset()``) and through
  ``omg infer MODEL --input IN.bin ... --output OUT.bin ...`` and compares
  every output byte.

Stateful models -- any model using TFLM Signal custom ops (custom op code
starting with "Signal", e.g. the micro_speech audio preprocessors) or resource
variables (VAR_HANDLE) -- are fed sequences: each case is ``--frames`` frames
invoked in order after one reset, and omg runs once per case with
``--sequence`` (each input file holds the K frames back to back, each output
file receives the K outputs back to back).  For audio preprocessors
(stateful, int16 input of 480 samples) about half of the non-corner cases
are real speech:
frame i = samples[320*i : 320*i+480] of the clips in --wav-dir (first the
clips as they are, then with random gain, int16 saturation and Gaussian
noise).

Exit status: 0 when every case matched, 1 on any mismatch or omg failure,
2 on usage errors (bad arguments, missing files, model TFLM cannot load).
Needs the packages of tools/python-requirements.txt (tools/setup-venv.sh);
when they are missing it re-executes itself with the repository's .venv
(or $OMG_VENV) if there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
import zlib
from pathlib import Path

from omgtools import REPO_ROOT, ensure_deps

DEFAULT_OMG = Path("target/release/omg")
DEFAULT_WAV_DIR = Path("../shared/data/micro_speech/testdata")
AUDIO_FRAME = 480  # samples per preprocessor input frame (30 ms @ 16 kHz)
AUDIO_STRIDE = 320  # 20 ms
FLOAT_LARGE = 1.0e6


ensure_deps(__file__)

import numpy as np  # noqa: E402
from tflite_micro import runtime as tflm  # noqa: E402
from tflite_micro.tensorflow.lite.micro.python import (  # noqa: E402
    schema_py_generated as schema_fb,
)


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------
# Model introspection


class ModelInfo:
    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        try:
            model = schema_fb.Model.GetRootAsModel(self.data, 0)
            self.custom_ops = []
            self.builtin_ops = set()
            for i in range(model.OperatorCodesLength()):
                oc = model.OperatorCodes(i)
                cc = oc.CustomCode()
                if cc is not None:
                    self.custom_ops.append(cc.decode("utf-8", "replace"))
                self.builtin_ops.add(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
            if model.SubgraphsLength() < 1:
                raise UsageError(f"{path}: model has no subgraph")
            sg = model.Subgraphs(0)
            self.n_inputs = sg.InputsLength()
            self.n_outputs = sg.OutputsLength()
        except UsageError:
            raise
        except Exception as exc:  # malformed flatbuffer
            raise UsageError(f"{path}: cannot parse model: {exc}") from exc
        has_signal = any(c.startswith("Signal") for c in self.custom_ops)
        has_vars = schema_fb.BuiltinOperator.VAR_HANDLE in self.builtin_ops
        self.stateful = has_signal or has_vars
        self.state_reason = ("Signal custom ops" if has_signal else
                             "resource variables" if has_vars else None)
        try:
            self.interp = tflm.Interpreter.from_bytes(
                self.data, arena_size=max(10 * len(self.data), 1 << 20))
            self.inputs = [_spec(self.interp.get_input_details(i))
                           for i in range(self.n_inputs)]
            self.outputs = [_spec(self.interp.get_output_details(i))
                            for i in range(self.n_outputs)]
        except Exception as exc:
            raise UsageError(f"{path}: TFLM cannot load the model: {exc}") from exc
        self.is_audio_preprocessor = (
            self.stateful and any(
                dt == np.int16 and int(np.prod(shape)) == AUDIO_FRAME
                for dt, shape in self.inputs))


def _spec(details):
    return np.dtype(details["dtype"]), tuple(int(d) for d in details["shape"])


def _dtype_name(dt: np.dtype) -> str:
    return dt.name


# --------------------------------------------------------------------------
# Input generation


def _corner_value(dt: np.dtype, kind: str):
    if dt == np.bool_:
        return {"min": False, "max": True, "zero": False}[kind]
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return {"min": info.min, "max": info.max, "zero": 0}[kind]
    return {"min": -FLOAT_LARGE, "max": FLOAT_LARGE, "zero": 0.0}[kind]


def _random_array(rng, dt: np.dtype, shape):
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if np.issubdtype(dt, np.floating):
        scale = float(rng.choice([1.0, 10.0, 1000.0]))
        return rng.uniform(-scale, scale, size=shape).astype(dt)
    raise UsageError(f"unsupported input dtype {dt}")


def load_wavs(wav_dir: Path):
    """Mono int16 sample arrays of every *.wav in wav_dir (first channel)."""
    clips = []
    for p in sorted(wav_dir.glob("*.wav")):
        with wave.open(str(p), "rb") as w:
            if w.getsampwidth() != 2:
                continue
            ch = w.getnchannels()
            raw = w.readframes(w.getnframes())
        samples = np.frombuffer(raw, dtype="<i2").reshape(-1, ch)[:, 0].astype(np.int16)
        clips.append((p.stem, samples))
    return clips


def _audio_frames(samples: np.ndarray, frames: int) -> np.ndarray:
    need = AUDIO_STRIDE * (frames - 1) + AUDIO_FRAME
    s = np.zeros(need, dtype=np.int16)
    n = min(need, len(samples))
    s[:n] = samples[:n]
    return np.stack([s[AUDIO_STRIDE * i: AUDIO_STRIDE * i + AUDIO_FRAME]
                     for i in range(frames)])


def generate_cases(rng, info: ModelInfo, count: int, frames: int, clips):
    """List of (label, [array of shape (frames,)+input_shape per input])."""
    kinds = ["min", "max", "zero"]
    n_corner = min(len(kinds), max(0, count - 1))
    n_audio = 0
    if info.is_audio_preprocessor and clips:
        n_audio = (count - n_corner) // 2
    cases = []
    for kind in kinds[:n_corner]:
        arrs = [np.full((frames,) + shape, _corner_value(dt, kind), dtype=dt)
                for dt, shape in info.inputs]
        cases.append((kind, arrs))
    for a in range(n_audio):
        if a < len(clips):
            name, samples = clips[a]
            label = f"wav:{name}"
        else:
            name, samples = clips[int(rng.integers(len(clips)))]
            gain = float(np.exp(rng.uniform(np.log(0.05), np.log(8.0))))
            sigma = float(rng.choice([0.0, np.exp(rng.uniform(0.0, np.log(2000.0)))]))
            x = samples.astype(np.float64) * gain + rng.normal(0.0, 1.0, len(samples)) * sigma
            samples = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
            label = f"wav:{name} gain={gain:.3g} noise={sigma:.3g}"
        arrs = []
        for dt, shape in info.inputs:
            if dt == np.int16 and int(np.prod(shape)) == AUDIO_FRAME:
                arrs.append(_audio_frames(samples, frames).reshape((frames,) + shape))
            else:
                arrs.append(_random_array(rng, dt, (frames,) + shape))
        cases.append((label, arrs))
    while len(cases) < count:
        arrs = [_random_array(rng, dt, (frames,) + shape) for dt, shape in info.inputs]
        cases.append(("random", arrs))
    return cases


# --------------------------------------------------------------------------
# Running and comparing


def run_tflm(info: ModelInfo, arrs, frames: int):
    it = info.interp
    it.reset()
    outs = [[] for _ in info.outputs]
    for f in range(frames):
        for i, a in enumerate(arrs):
            it.set_input(a[f], i)
        it.invoke()
        for o in range(len(info.outputs)):
            outs[o].append(np.array(it.get_output(o), copy=True))
    return [np.stack(x) for x in outs]


def _le(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("<") if dt.itemsize > 1 else dt


def _jsonable(v):
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)
    return v


def compare_output(dt: np.dtype, expected: np.ndarray, got_bytes: bytes):
    """None when equal, else dict(max_abs_diff, frame, element, tflm, omg, count)."""
    exp_bytes = expected.astype(_le(dt)).tobytes()
    if exp_bytes == got_bytes:
        return None
    if len(exp_bytes) != len(got_bytes):
        return {"size_mismatch": True, "expected_bytes": len(exp_bytes),
                "got_bytes": len(got_bytes), "max_abs_diff": None}
    frames = expected.shape[0]
    exp = np.frombuffer(exp_bytes, dtype=_le(dt)).reshape(frames, -1)
    got = np.frombuffer(got_bytes, dtype=_le(dt)).reshape(frames, -1)
    ubits = np.dtype(f"<u{dt.itemsize}") if dt.itemsize in (1, 2, 4, 8) else None
    if ubits is not None:
        neq = exp.view(ubits) != got.view(ubits)
    else:
        neq = exp != got
    idx = np.argwhere(neq)
    if np.issubdtype(dt, np.floating):
        diffs = np.abs(exp[neq].astype(np.float64) - got[neq].astype(np.float64))
        diffs = np.where(np.isnan(diffs), np.inf, diffs)
        maxdiff = float(diffs.max())
    elif dt == np.bool_:
        maxdiff = 1
    else:
        maxdiff = max(abs(int(a) - int(b)) for a, b in zip(exp[neq], got[neq]))
    f, e = (int(x) for x in idx[0])
    return {"max_abs_diff": maxdiff, "frame": f, "element": e,
            "tflm": _jsonable(exp[f, e].item()), "omg": _jsonable(got[f, e].item()),
            "differing_elements": int(len(idx))}


def run_omg(omg: Path, info: ModelInfo, case_dir: Path, arrs, timeout: float,
            kernels: str = "auto"):
    case_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(omg), "infer", str(info.path), "--kernels", kernels]
    for i, (a, (dt, _)) in enumerate(zip(arrs, info.inputs)):
        p = case_dir / f"in{i}.bin"
        p.write_bytes(a.astype(_le(dt)).tobytes())
        cmd += ["--input", str(p)]
    outs = []
    for o in range(len(info.outputs)):
        p = case_dir / f"out{o}.bin"
        if p.exists():
            p.unlink()
        outs.append(p)
        cmd += ["--output", str(p)]
    if info.stateful:
        cmd.append("--sequence")
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    except OSError as exc:
        return None, f"cannot run omg: {exc}"
    if r.returncode != 0:
        msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, f"exit {r.returncode}: {msg[-1] if msg else '(no stderr)'}"
    data = []
    for p in outs:
        if not p.exists():
            return None, f"exit 0 but {p.name} was not written"
        data.append(p.read_bytes())
    return data, None


def test_model(args, idx: int, info: ModelInfo, workdir: Path, clips):
    frames = args.frames if info.stateful else 1
    seed_key = zlib.crc32(info.path.name.encode())
    rng = np.random.default_rng([args.seed, seed_key])
    cases = generate_cases(rng, info, args.count, frames, clips)
    mdir = workdir / f"{idx:02d}_{info.path.stem}"
    res = {
        "model": info.path.stem,
        "path": str(info.path),
        "stateful": info.stateful,
        "stateful_reason": info.state_reason,
        "frames_per_case": frames,
        "inputs": [{"dtype": _dtype_name(dt), "shape": list(s)} for dt, s in info.inputs],
        "outputs": [{"dtype": _dtype_name(dt), "shape": list(s)} for dt, s in info.outputs],
        "cases": len(cases),
        "audio_cases": sum(1 for c in cases if c[0].startswith("wav:")),
        "mismatching_cases": 0,
        "failed_cases": 0,
        "max_abs_diff": 0,
        "size_mismatches": 0,
        "first_mismatch": None,
        "first_failure": None,
    }
    t0 = time.monotonic()
    for c, (label, arrs) in enumerate(cases):
        expected = run_tflm(info, arrs, frames)
        cdir = mdir / f"case{c:03d}"
        got, err = run_omg(args.omg, info, cdir, arrs, args.timeout, args.kernels)
        for o, e in enumerate(expected):
            (cdir / f"expected{o}.bin").write_bytes(
                e.astype(_le(info.outputs[o][0])).tobytes())
        if err is not None:
            res["failed_cases"] += 1
            if res["first_failure"] is None:
                res["first_failure"] = {"case": c, "label": label, "error": err}
            continue
        mismatch = False
        for o, (e, g) in enumerate(zip(expected, got)):
            d = compare_output(info.outputs[o][0], e, g)
            if d is None:
                continue
            mismatch = True
            if d["max_abs_diff"] is None:
                res["size_mismatches"] += 1
            else:
                res["max_abs_diff"] = max(res["max_abs_diff"], d["max_abs_diff"])
            if res["first_mismatch"] is None:
                res["first_mismatch"] = {"case": c, "label": label, "output": o, **d}
        if mismatch:
            res["mismatching_cases"] += 1
    if isinstance(res["max_abs_diff"], float):
        res["max_abs_diff"] = _jsonable(res["max_abs_diff"])
    res["seconds"] = round(time.monotonic() - t0, 3)
    res["ok"] = res["mismatching_cases"] == 0 and res["failed_cases"] == 0
    return res


# --------------------------------------------------------------------------
# Reporting


def _fmt_mismatch(m, sequence: bool) -> str:
    if m.get("size_mismatch"):
        return (f"case {m['case']} ({m['label']}), output {m['output']}: omg wrote "
                f"{m['got_bytes']} bytes, TFLM {m['expected_bytes']}")
    where = f"element {m['element']}"
    if sequence:
        where = f"frame {m['frame']}, element {m['element']}"
    return (f"case {m['case']} ({m['label']}), output {m['output']}, {where}: "
            f"tflm={m['tflm']} omg={m['omg']} ({m['differing_elements']} elements differ)")


def print_table(report) -> None:
    rows = [("model", "kind", "cases", "frames", "mismatching", "omg failed", "max|diff|", "time s")]
    for r in report["models"]:
        rows.append((r["model"], "sequence" if r["stateful"] else "single",
                     str(r["cases"]), str(r["frames_per_case"]), str(r["mismatching_cases"]),
                     str(r["failed_cases"]),
                     str(r["max_abs_diff"]) + (" +size" if r["size_mismatches"] else ""),
                     f"{r['seconds']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [v.rjust(w) for v, w in zip(row[2:], widths[2:])]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for r in report["models"]:
        if r["first_mismatch"]:
            print(f"{r['model']}: first mismatch: {_fmt_mismatch(r['first_mismatch'], r['stateful'])}")
        if r["first_failure"]:
            f = r["first_failure"]
            print(f"{r['model']}: first omg failure: case {f['case']} ({f['label']}): {f['error']}")
    total = report["summary"]
    print(f"\n{total['models']} models, {total['cases']} cases: "
          f"{total['mismatching_cases']} mismatching, {total['failed_cases']} omg failures "
          f"(TFLM {report['tflm_version']}, seed {report['seed']}) -> "
          f"{'OK' if report['ok'] else 'FAIL'}")
    if report.get("kept_dir"):
        print(f"per-case files kept in {report['kept_dir']}")


# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="difftest.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example (from the repository root):\n"
               "  tools/difftest.py --omg target/release/omg ../shared/data/*/models/*.tflite\n"
               "Per model it reports cases, mismatching cases, omg failures, the largest\n"
               "absolute difference and the first mismatch (case, output, frame, element,\n"
               "TFLM value, omg value).")
    p.add_argument("models", nargs="+", metavar="MODEL.tflite", type=Path,
                   help="model files to test")
    p.add_argument("--omg", type=Path, default=None, metavar="PATH",
                   help="omg binary (default: target/release/omg in the repository root)")
    p.add_argument("--count", type=int, default=20, metavar="N",
                   help="cases per model, corners included (default: 20)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed; each model's inputs also depend on its file name "
                        "(default: 0)")
    p.add_argument("--frames", type=int, default=49, metavar="K",
                   help="frames per case for stateful models (default: 49, one second of "
                        "audio for the micro_speech preprocessors)")
    p.add_argument("--wav-dir", type=Path, default=None, metavar="DIR",
                   help="16-bit WAV clips for realistic audio-preprocessor cases "
                        "(default: ../shared/data/micro_speech/testdata from the repository "
                        "root; a missing directory just disables those cases)")
    p.add_argument("--kernels", default="auto", metavar="SET",
                   help="omg's kernels: auto (default), reference, portable, avx2")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SEC",
                   help="limit for one omg run (default: 120)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table")
    p.add_argument("--keep", action="store_true",
                   help="keep the per-case files (inN.bin, outN.bin from omg, expectedN.bin "
                        "from TFLM) and print where they are")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    if args.frames < 1:
        p.error("--frames must be at least 1")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    prog = "difftest"
    args.omg = args.omg if args.omg is not None else REPO_ROOT / DEFAULT_OMG
    wav_dir = args.wav_dir if args.wav_dir is not None else REPO_ROOT / DEFAULT_WAV_DIR
    try:
        if not (args.omg.is_file() and os.access(args.omg, os.X_OK)):
            raise UsageError(f"omg binary not found or not executable: {args.omg} "
                             "(build it with cargo build --release or pass --omg)")
        args.omg = args.omg.resolve()
        for m in args.models:
            if not m.is_file():
                raise UsageError(f"no such model file: {m}")
        infos = [ModelInfo(m.resolve()) for m in args.models]
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    clips = load_wavs(wav_dir) if wav_dir.is_dir() else []
    if args.wav_dir is not None and not clips:
        print(f"{prog}: error: no 16-bit WAV files in {wav_dir}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="omg-difftest-"))
    results = []
    try:
        for idx, info in enumerate(infos):
            r = test_model(args, idx, info, workdir, clips)
            results.append(r)
            if not args.quiet:
                print(f"{prog}: {r['model']}: {r['cases']} cases x {r['frames_per_case']} "
                      f"frames, {r['mismatching_cases']} mismatching, "
                      f"{r['failed_cases']} omg failures, {r['seconds']:.1f} s",
                      file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "tool": "difftest",
        "omg": str(args.omg),
        "kernels": args.kernels,
        "tflm_version": getattr(__import__("tflite_micro"), "__version__", "?"),
        "seed": args.seed,
        "count": args.count,
        "frames": args.frames,
        "wav_clips": [name for name, _ in clips],
        "kept_dir": str(workdir) if args.keep else None,
        "models": results,
        "summary": {
            "models": len(results),
            "cases": sum(r["cases"] for r in results),
            "mismatching_cases": sum(r["mismatching_cases"] for r in results),
            "failed_cases": sum(r["failed_cases"] for r in results),
        },
    }
    report["ok"] = all(r["ok"] for r in results)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
