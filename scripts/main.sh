#!/usr/bin/env bash
# The main job: set up this machine (idempotent), then run the sample guests through the
# spear CLI with scoped permissions: hello; a chat answered by the local model (no config: the
# embedded local_llm default); a tool call and many chats on epoll (stub backend, deterministic);
# and the sample skills (counter, notes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
deno=".tools/bin/deno"
spear() { echo "\$ deno task spear $*" >&2; "$deno" task --quiet spear "$@"; }
spear run guests/build/hello.wasm -- hello from the host
# No config: chat is served by the packaged model on this machine (first use loads it, a few s).
spear run guests/build/chat_completion.wasm
# The tool loop and many chats on epoll, deterministic with the stub backend (the 0.5B model does
# call sum, but often calls it again after the result until max_iterations ends the loop).
spear run --config guests/configs/stub.json guests/build/chat_tool_sum.wasm
spear run --config guests/configs/stub.json guests/build/chat_epoll.wasm -- 8

# Skills, in a scratch skills directory and memory store (stub AI backend): add, run, memory.
demo="$(mktemp -d)"; trap 'rm -rf "$demo"' EXIT
cat >"$demo/spear.json" <<JSON
{
  "backends": [{ "name": "stub", "kind": "stub", "ops": ["chat_completions"] }],
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
