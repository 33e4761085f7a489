#!/usr/bin/env bash
# Speaks the voice assistant's sample questions into a WAV file (espeak-ng, then sox): the speech
# input of scripts/main.sh and guests/configs/voice_*.json on machines without a microphone, and
# of the voice assistant's tests. Each question is followed by 1.5 s of silence, so the
# recogniser's VAD ends it. The voice and speed are the ones Whisper tiny.en hears word for word.
#   bash scripts/voice_questions.sh OUT.wav ["question" ...]
set -euo pipefail
out="${1:?usage: voice_questions.sh OUT.wav [question ...]}"
shift
questions=("$@")
if ((${#questions[@]} == 0)); then
  questions=("What is the capital of France?" "How many legs does a spider have?")
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
parts=()
sox -n -r 22050 -c 1 -b 16 "$tmp/silence.wav" trim 0 1.5
for i in "${!questions[@]}"; do
  espeak-ng -v en-us -s 140 -g 4 -w "$tmp/q$i.wav" "${questions[$i]}"
  parts+=("$tmp/q$i.wav" "$tmp/silence.wav")
done
mkdir -p "$(dirname "$out")"
sox "${parts[@]}" "$out.part.wav"
mv "$out.part.wav" "$out"
