#!/usr/bin/env bash
# Sets up this machine (idempotent), then runs the main job, the voice assistant
# (guests/src/voice_assistant.c: speech -> offline Whisper -> the local model -> printed answers),
# and the sample guests through the spear CLI with scoped permissions: hello; a chat answered by
# the local model (no config: the embedded local_llm default); a tool call and many chats on epoll
# (stub backend, deterministic); and the sample skills (counter, notes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
deno=".tools/bin/deno"
spear() { echo "\$ deno task spear $*" >&2; "$deno" task --quiet spear "$@"; }
# The voice assistant hears two spoken questions and prints what it heard and answered. Input:
# the device microphone when this machine has a sound card (speak two questions; it stops after
# 15 s of silence), else the speech file made by setup (.tools/voice/questions.wav).
# VOICE_SOURCE=file forces the file. Fully offline: local Whisper hears, and the config names no
# chat backend, so the embedded local_llm default (the packaged model) answers.
VOICE_CONFIG="guests/configs/voice_offline.json"
voice_source="${VOICE_SOURCE:-$([ -d /dev/snd ] && echo auto || echo file)}"
spear run --config "$VOICE_CONFIG" guests/build/voice_assistant.wasm -- \
  --source "$voice_source" --utterances 2 --idle-ms 15000

spear run guests/build/hello.wasm -- hello from the host
# No config: chat is served by the packaged model on this machine (first use loads it, a few s).
spear run guests/build/chat_completion.wasm
# The tool loop and many chats on epoll, deterministic with the stub backend (the 0.5B model does
# call sum, but often calls it again after the result until max_iterations ends the loop).
spear run --config guests/configs/stub.json guests/build/chat_tool_sum.wasm
spear run --config guests/configs/stub.json guests/build/chat_epoll.wasm -- 8

# Skills, in a scratch skills directory and memory store: add, run, memory; the notes skill's
# ai_prompt is answered by the local model (no chat backend configured).
demo="$(mktemp -d)"; trap 'rm -rf "$demo"' EXIT
cat >"$demo/spear.json" <<JSON
{
  "memory": { "path": "$demo/memory.db" },
  "skills": { "dir": "$demo/skills" }
}
JSON
spear skill add --config "$demo/spear.json" guests/build/skills/counter.wasm --name counter >/dev/null
spear skill run --config "$demo/spear.json" counter
spear skill run --config "$demo/spear.json" counter --input '{"by": 41}'
spear skill memory --config "$demo/spear.json" counter get count && echo
if [ -f guests/build/skills/notes.wasm ]; then
  spear skill add --config "$demo/spear.json" guests/build/skills/notes.wasm --name notes >/dev/null
  spear skill run --config "$demo/spear.json" notes --input '{"add": "the keys are on the hook"}'
  spear skill run --config "$demo/spear.json" notes --input '{"ask": "where are the keys?"}'
fi
spear skill list --config "$demo/spear.json"
