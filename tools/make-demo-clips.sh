#!/usr/bin/env bash
# Makes the bundled demo clips (assets/clips/*.wav) with espeak-ng and sox (Debian packages
# espeak-ng and sox): each word is synthesized, converted to 16 kHz mono 16-bit, trimmed of
# leading and trailing silence and centred in a one-second clip; plus one second of silence.
# The clips are this project's own data (espeak-ng is GPL-3.0-or-later; its output is not).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/assets/clips"
command -v espeak-ng >/dev/null && command -v sox >/dev/null || {
  echo "make-demo-clips: needs espeak-ng and sox (apt-get install espeak-ng sox)" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name  voice        speed  text
clips=(
  "yes_en-us      en-us        150  yes"
  "yes_en-gb      en-gb        170  yes"
  "no_en-us       en-us        150  no"
  "no_en-gb       en-gb+f2     160  no"
  "unknown_house  en-us        150  house"
)
for line in "${clips[@]}"; do
  read -r name voice speed text <<<"$line"
  espeak-ng -v "$voice" -s "$speed" -w "$work/raw.wav" "$text"
  sox "$work/raw.wav" -r 16000 -c 1 -b 16 "$work/trim.wav" \
    silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
  n=$(soxi -s "$work/trim.wav")
  if [ "$n" -gt 16000 ]; then n=16000; fi
  before=$(( (16000 - n) / 2 ))
  after=$(( 16000 - n - before ))
  sox "$work/trim.wav" "$out/$name.wav" trim 0 "${n}s" pad "${before}s" "${after}s"
  echo "make-demo-clips: $out/$name.wav ($text, $voice, ${n} samples of speech)"
done
sox -n -r 16000 -c 1 -b 16 "$out/silence.wav" trim 0 1
echo "make-demo-clips: $out/silence.wav"
