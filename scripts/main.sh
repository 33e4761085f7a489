#!/usr/bin/env bash
# The main job: set up this machine (idempotent), then run the sample guests through the
# spear CLI with scoped permissions: hello, one chat, a tool call, and many chats on epoll.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
deno=".tools/bin/deno"
spear() { echo "\$ deno task spear $*" >&2; "$deno" task --quiet spear "$@"; }
spear run guests/build/hello.wasm -- hello from the host
spear run --config guests/configs/stub.json guests/build/chat_completion.wasm
spear run --config guests/configs/stub.json guests/build/chat_tool_sum.wasm
spear run --config guests/configs/stub.json guests/build/chat_epoll.wasm -- 8
