#!/usr/bin/env python3
"""Cut a 16-bit mono WAV into overlapping frames, written back to back as raw int16.

    tools/wav_frames.py WAV OUT [--frame 480] [--hop 320]

Prints the number of frames. Frame i holds samples [hop*i, hop*i + frame), as TFLM's
micro_speech frames audio (30 ms windows every 20 ms at 16 kHz).
"""

import argparse
import sys
import wave


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wav")
    p.add_argument("out")
    p.add_argument("--frame", type=int, default=480)
    p.add_argument("--hop", type=int, default=320)
    a = p.parse_args()
    with wave.open(a.wav, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            print(f"{a.wav}: need 16-bit mono", file=sys.stderr)
            return 2
        data = w.readframes(w.getnframes())
    n = len(data) // 2
    frames = 0 if n < a.frame else (n - a.frame) // a.hop + 1
    with open(a.out, "wb") as f:
        for i in range(frames):
            f.write(data[2 * a.hop * i : 2 * (a.hop * i + a.frame)])
    print(frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
