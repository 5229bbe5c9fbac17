#!/usr/bin/env python3
"""One streaming decision of micro_speech, by omg and by TFLM, byte for byte.

    tools/kws_window_tflm.py WAV TIME_MS [--omg target/release/omg]

TIME_MS is an event time of `omg listen micro_speech --wav WAV --json`: the end of the newest
30 ms window the classifier saw. TFLM's audio_preprocessor_int8.tflite runs over the stream
from its start (its noise estimate carried from window to window, as in a stream), and its
classifier on the 49 newest frames; omg does the same with `omg features` and `omg infer`.
Prints whether the features are identical, both score vectors, and TFLM's scores when the
preprocessor starts fresh at the window's first sample (what `omg classify` of those samples
would see). Needs the packages of tools/python-requirements.txt (tools/setup-venv.sh).
"""

import argparse
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

from omgtools import REPO_ROOT, ensure_deps

ensure_deps(__file__)

import numpy as np  # noqa: E402
from tflite_micro import runtime as tflm  # noqa: E402

WINDOW, HOP, FRAMES, CHANNELS = 480, 320, 49, 40
CLASSIFIER = REPO_ROOT / "assets/pipelines/micro_speech/micro_speech_quantized.tflite"
PREPROCESSOR = Path("../shared/data/micro_speech/models/audio_preprocessor_int8.tflite")


def tflm_features(pre, samples, first: int, last: int) -> np.ndarray:
    """Frames first..=last of a preprocessor reset before frame `first`."""
    pre.reset()
    out = []
    for i in range(first, last + 1):
        pre.set_input(samples[HOP * i : HOP * i + WINDOW].reshape(1, WINDOW), 0)
        pre.invoke()
        out.append(np.array(pre.get_output(0), copy=True).reshape(CHANNELS))
    return np.stack(out).astype(np.int8)


def tflm_scores(classifier, features: np.ndarray) -> list:
    classifier.reset()
    classifier.set_input(features.reshape(1, FRAMES * CHANNELS), 0)
    classifier.invoke()
    return np.array(classifier.get_output(0)).reshape(-1).tolist()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wav")
    p.add_argument("time_ms", type=int)
    p.add_argument("--omg", default="target/release/omg")
    p.add_argument("--preprocessor", type=Path, default=PREPROCESSOR)
    a = p.parse_args()
    with wave.open(a.wav, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            print(f"{a.wav}: need 16 kHz mono 16-bit", file=sys.stderr)
            return 2
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    end = a.time_ms * 16
    if (end - WINDOW) % HOP or (end - WINDOW) // HOP < FRAMES - 1:
        print(f"{a.time_ms} ms is not the end of a window with {FRAMES} frames before it",
              file=sys.stderr)
        return 2
    last = (end - WINDOW) // HOP
    first = last - FRAMES + 1

    pre = tflm.Interpreter.from_file(str(a.preprocessor))
    classifier = tflm.Interpreter.from_file(str(CLASSIFIER))
    stream = tflm_features(pre, samples, 0, last)
    with tempfile.TemporaryDirectory() as tmp:
        feats, window, scores = (Path(tmp) / n for n in ("f.bin", "w.bin", "s.bin"))
        subprocess.run([a.omg, "features", "micro_speech", a.wav, "-o", feats],
                       check=True, capture_output=True)
        omg = np.frombuffer(feats.read_bytes(), dtype=np.int8).reshape(-1, CHANNELS)[: last + 1]
        window.write_bytes(omg[first:].tobytes())
        subprocess.run([a.omg, "infer", CLASSIFIER, "--input", window, "--output", scores],
                       check=True)
        omg_scores = np.frombuffer(scores.read_bytes(), dtype=np.int8).tolist()
    print(f"window: frames {first}..={last}, samples {HOP * first}..{end}")
    print(f"front-end features of frames 0..={last} identical: {np.array_equal(stream, omg)}")
    print(f"scores in the stream, TFLM: {tflm_scores(classifier, stream[first:])}")
    print(f"scores in the stream, omg:  {omg_scores}")
    fresh = tflm_features(pre, samples, first, last)
    print(f"scores with a fresh front end at the window's start, TFLM: "
          f"{tflm_scores(classifier, fresh)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
