#!/usr/bin/env bash
# Builds the C guests:
#   guests/src/*.c    -> guests/build/<name>.wasm
#   tests/guests/*.c  -> guests/build/test/<name>.wasm
#   bench/guests/*.c, bench/guests/reactor/*.c (reactors, no main) -> guests/build/bench/<name>.wasm
#   guests/skills/*.c (skills: reactors)  -> guests/build/skills/<name>.wasm
#   guests/skills/*.rs (skills in Rust)   -> guests/build/skills/<name>.wasm, with Debian's rustc and
#     its wasm32-wasi standard library (packages rustc, libstd-rust-dev-wasm32); skipped with a
#     note on stderr when that target is not installed (RUSTC overrides the compiler).
# A .wasm is rebuilt only when it is older than its .c, any guests/include/*.h, or this script.
# Prints one line per rebuilt guest on stdout; errors go to stderr; exit status 1 if any failed.
# Environment: CC (default clang-14), WASI_SYSROOT (default /usr).
set -euo pipefail
shopt -s nullglob

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CC="${CC:-clang-14}"
WASI_SYSROOT="${WASI_SYSROOT:-/usr}"

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "guests/build.sh: error: $CC not found; install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 (bash scripts/setup.sh)" >&2
  exit 1
fi
if [ ! -f "$WASI_SYSROOT/lib/wasm32-wasi/libc.a" ]; then
  echo "guests/build.sh: error: wasi-libc not found under $WASI_SYSROOT/lib/wasm32-wasi; install wasi-libc" >&2
  exit 1
fi

# wasm-ld exports linear memory as "memory" by default, so --export-memory is not needed;
# --export-table exposes __indirect_function_table for tool callbacks (cchat_write_fn).
CFLAGS=(--target=wasm32-wasi "--sysroot=$WASI_SYSROOT" -O2 -Wall -Wextra -Werror
  "-I$root/guests/include" -Wl,--export-table)

# Newest dependency shared by every guest: the headers and this script.
deps=("$root"/guests/include/*.h "${BASH_SOURCE[0]}")
newest_dep="${deps[0]}"
for f in "${deps[@]}"; do
  if [ "$f" -nt "$newest_dep" ]; then newest_dep="$f"; fi
done

failed=0
build_one() { # build_one SRC OUT [EXTRA_CFLAGS...]
  local src="$1" out="$2" tmp
  local extra=("${@:3}")
  if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$newest_dep" ]; then
    return 0
  fi
  tmp="$out.tmp.$$"
  if "$CC" "${CFLAGS[@]}" ${extra[@]+"${extra[@]}"} "$src" -o "$tmp"; then
    mv -f "$tmp" "$out"
    echo "built ${out#"$root"/}"
  else
    rm -f "$tmp"
    echo "guests/build.sh: error: failed to build ${src#"$root"/}" >&2
    failed=1
  fi
}

# A source builds to <name>.wasm, unless it has lines `//! wasm NAME: FLAGS...`: then it
# builds to each NAME.wasm with those extra flags (one source, several link styles: reactor,
# imported memory, -D variants).
build_dir() { # build_dir SRC_DIR OUT_DIR [EXTRA_CFLAGS...]
  local src_dir="$1" out_dir="$2" src variant vname vflags
  local extra=("${@:3}")
  local sources=("$src_dir"/*.c)
  ((${#sources[@]})) || return 0
  mkdir -p "$out_dir"
  for src in "${sources[@]}"; do
    local variants=()
    while IFS= read -r variant; do variants+=("$variant"); done \
      < <(sed -n 's|^//! wasm \([A-Za-z0-9_]*\):\(.*\)$|\1\2|p' "$src")
    ((${#variants[@]})) || variants=("$(basename "$src" .c)")
    for variant in "${variants[@]}"; do
      read -r vname vflags <<<"$variant"
      read -ra vflags <<<"$vflags"
      build_one "$src" "$out_dir/$vname.wasm" ${extra[@]+"${extra[@]}"} ${vflags[@]+"${vflags[@]}"}
    done
  done
}

build_dir "$root/guests/src" "$root/guests/build"
build_dir "$root/tests/guests" "$root/guests/build/test"
build_dir "$root/bench/guests" "$root/guests/build/bench"
build_dir "$root/bench/guests/reactor" "$root/guests/build/bench" -mexec-model=reactor
build_dir "$root/guests/skills" "$root/guests/build/skills" -mexec-model=reactor

# Rust skills: a rustc with the wasm32-wasi standard library (Debian's, not rustup's, by default).
rust_sources=("$root"/guests/skills/*.rs)
if ((${#rust_sources[@]})); then
  RUSTC="${RUSTC:-/usr/bin/rustc}"
  rust_lib="$("$RUSTC" --print target-libdir --target wasm32-wasi 2>/dev/null || true)"
  if [ -z "$rust_lib" ] || ! compgen -G "$rust_lib/libstd-*.rlib" >/dev/null; then
    echo "guests/build.sh: note: no wasm32-wasi Rust target ($RUSTC); Rust skills not built (install rustc libstd-rust-dev-wasm32)" >&2
  else
    mkdir -p "$root/guests/build/skills"
    for src in "${rust_sources[@]}"; do
      out="$root/guests/build/skills/$(basename "$src" .rs).wasm"
      if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "${BASH_SOURCE[0]}" ]; then continue; fi
      if "$RUSTC" --edition 2021 --target wasm32-wasi --crate-type cdylib -O -C strip=symbols \
        "$src" -o "$out.tmp.$$"; then
        mv -f "$out.tmp.$$" "$out"
        echo "built ${out#"$root"/}"
      else
        rm -f "$out.tmp.$$"
        echo "guests/build.sh: error: failed to build ${src#"$root"/}" >&2
        failed=1
      fi
    done
  fi
fi
exit "$failed"
