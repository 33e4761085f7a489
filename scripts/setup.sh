#!/usr/bin/env bash
# Installs everything spearhost needs on a fresh Debian machine; fast when already done.
#   Debian packages (clang-14 for guests, PortAudio, ALSA tools, espeak-ng, sox, libsamplerate;
#   redis-server, socat and curl: peers the socket tests start on loopback)
#   Deno from the npm package `deno`, pinned
#   the Wasmtime C API library from the PyPI wheel `wasmtime`, pinned, checksum-verified
#   the C guests in guests/
# Prints nothing but progress on stderr; exits non-zero with one line naming what failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
DENO_VERSION=2.9.6
WASMTIME_VERSION=50.0.1
WASMTIME_WHEEL_SHA256=cc14c3a17654e0394e0225b11813532ef0cd7bd1e222a0c5494cdedaabeddac4
WASMTIME_LIB_SHA256=3127ca42fe7cdd3f0a43a358e79177dcfedd46c1746329826403b9d854de6178
APT_PACKAGES=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 libportaudio2 alsa-utils
  libasound2-plugins espeak-ng sox libsamplerate0
  redis-server redis-tools socat curl iproute2)

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

if [ -x "$root/guests/build.sh" ]; then
  "$root/guests/build.sh" >/dev/null || die "guest build failed (guests/build.sh)"
fi
