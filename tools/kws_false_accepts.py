#!/usr/bin/env python3
"""False accepts per hour of `omg listen` on a long stream of spoken words.

    tools/kws_false_accepts.py [--minutes 60] [--noise 32] [--omg target/release/omg]

Synthesizes each word of WORDS (keywords and non-keywords, the near-words of "yes" and "no"
among them) with espeak-ng in several voices and speeds, trims it with sox, and lays out a
stream: words in random order (seeded), a fifth of them keywords, each followed by a gap of
1.0 to 2.0 s; uniform noise of +-NOISE is added to the whole stream (0: digital silence
between the words). The stream goes to `omg listen PIPELINE --stdin --json` as raw samples.

A keyword counts as found if an event of its label comes between its onset and one second
after its end. Every other event is a false accept, charged to the word spoken last before
it. Prints the totals, false accepts per hour, and the words that gave false accepts.
Needs espeak-ng and sox (Debian packages espeak-ng, sox); Python standard library only.
"""

import argparse
import array
import json
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

RATE = 16_000
KEYWORDS = ["yes", "no"]
# Speech Commands' other words (the model's "unknown" training words), near-words of "yes"
# and "no", and everyday words.
WORDS = KEYWORDS + """
up down left right on off stop go zero one two three four five six seven eight nine
bed bird cat dog happy house marvin sheila tree wow backward forward follow learn visual
know now note nose snow low toe though yet yell less guess mess chess yeah nope
hello okay music weather light open door phone time coffee kitchen window morning tomorrow
""".split()
VOICES = [("en-us", 150), ("en-us", 180), ("en-gb", 160), ("en-gb+f2", 160), ("en-029", 150)]


def synthesize(word: str, voice: str, speed: int, work: Path) -> array.array:
    """The word as 16 kHz mono int16 samples, leading and trailing silence trimmed."""
    raw, trimmed = work / "raw.wav", work / "trim.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", raw, word], check=True)
    subprocess.run(
        # -D: no dither, so that the stream is the same on every run.
        ["sox", "-V1", raw, "-D", "-r", str(RATE), "-c", "1", "-b", "16", trimmed,
         "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"],
        check=True,
    )
    with wave.open(str(trimmed), "rb") as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def build_stream(minutes: float, noise: int, seed: int):
    """The stream's samples and its words as (word, onset sample, end sample)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = {w: [synthesize(w, v, s, work) for v, s in VOICES] for w in WORDS}
    others = [w for w in WORDS if w not in KEYWORDS]
    stream = array.array("h")
    spoken = []
    total = int(minutes * 60 * RATE)
    while len(stream) < total:
        word = rng.choice(KEYWORDS) if rng.random() < 0.2 else rng.choice(others)
        clip = rng.choice(clips[word])
        spoken.append((word, len(stream), len(stream) + len(clip)))
        stream.extend(clip)
        stream.extend(array.array("h", bytes(2 * int(rng.uniform(1.0, 2.0) * RATE))))
    if noise:
        for i, s in enumerate(stream):
            stream[i] = max(-32768, min(32767, s + rng.randint(-noise, noise)))
    if sys.byteorder != "little":
        stream.byteswap()
    return stream.tobytes(), spoken


def listen(omg: str, pipeline: str, raw: bytes):
    """The events of `omg listen PIPELINE --stdin --json` on raw s16le samples."""
    out = subprocess.run(
        [omg, "listen", pipeline, "--stdin", "--json"],
        input=raw, capture_output=True, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def score(spoken, events):
    """Keywords found, and false accepts counted by (word said last, label reported)."""
    found, false, used = 0, {}, set()
    for word, onset, end in spoken:
        if word not in KEYWORDS:
            continue
        lo, hi = onset * 1000 // RATE, end * 1000 // RATE + 1000
        hit = next((i for i, e in enumerate(events) if i not in used
                    and e["label"] == word and lo <= e["time_ms"] <= hi), None)
        if hit is not None:
            used.add(hit)
            found += 1
    for i, e in enumerate(events):
        if i not in used:
            t = e["time_ms"] * RATE // 1000
            last = max((s for s in spoken if s[1] <= t), key=lambda s: s[1], default=("-",))
            key = (last[0], e["label"])
            false[key] = false.get(key, 0) + 1
    return found, false


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="stream length (default 60)")
    p.add_argument("--noise", type=int, default=32, help="noise amplitude (default 32)")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--pipeline", default="micro_speech")
    p.add_argument("--omg", default="target/release/omg")
    a = p.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"kws_false_accepts: needs {tool} (apt-get install espeak-ng sox)",
                  file=sys.stderr)
            return 2
    raw, spoken = build_stream(a.minutes, a.noise, a.seed)
    found, false = score(spoken, listen(a.omg, a.pipeline, raw))
    hours = len(raw) / 2 / RATE / 3600
    keywords = sum(1 for s in spoken if s[0] in KEYWORDS)
    total = sum(false.values())
    print(f"{hours * 60:.1f} min of audio, {len(spoken)} words ({keywords} keywords), "
          f"noise +-{a.noise}")
    print(f"keywords found: {found} of {keywords}")
    print(f"false accepts: {total} ({total / hours:.1f} per hour)")
    for (word, label), n in sorted(false.items(), key=lambda kv: -kv[1]):
        said = sum(1 for s in spoken if s[0] == word)
        print(f"  {word} -> {label}: {n} of {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
