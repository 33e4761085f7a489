/**
 * Where the native pieces live: the pinned libwasmtime installed by scripts/setup.sh (or
 * embedded in a `deno compile` binary) and the compiled-module cache directory.
 */
import { WASMTIME_VERSION } from "../ffi/wasmtime.ts";

const LIB_NAME = "libwasmtime.so";

function homeCache(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/spearhost`;
  const home = Deno.env.get("HOME");
  return home ? `${home}/.cache/spearhost` : "/tmp/spearhost-cache";
}

/** Cache directory for compiled modules (override: SPEARHOST_CACHE_DIR). */
export function defaultCacheDir(): string {
  return Deno.env.get("SPEARHOST_CACHE_DIR") ?? `${homeCache()}/modules`;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** True when running inside a `deno compile` binary (modules come from its embedded fs). */
export function isCompiledBinary(): boolean {
  // Deno.build.standalone is Deno's own answer; the path test covers runtimes without it.
  return Deno.build.standalone === true || /\/deno-compile-[^/]*\//.test(new URL(import.meta.url).pathname);
}

/**
 * A compiled binary embeds libwasmtime; the dynamic loader needs a real file, so the bytes
 * are copied once into the cache, named by their SHA-256 so a stale copy is never used.
 */
// node:crypto only where it is used: importing it starts Deno's Node layer (30-40 ms of every
// cold start), and only a compiled binary hashes its embedded library.
const nodeCrypto = isCompiledBinary() ? await import("node:crypto") : undefined;

function extractEmbedded(embedded: string): string {
  const bytes = Deno.readFileSync(embedded);
  const dir = `${homeCache()}/lib`;
  const target = `${dir}/libwasmtime-${nodeCrypto!.createHash("sha256").update(bytes).digest("hex")}.so`;
  if (!exists(target)) {
    Deno.mkdirSync(dir, { recursive: true });
    const tmp = `${target}.${crypto.randomUUID()}.tmp`;
    Deno.writeFileSync(tmp, bytes, { mode: 0o755 });
    Deno.renameSync(tmp, target);
  }
  return target;
}

/** Path of libwasmtime: $SPEARHOST_WASMTIME_LIB, the setup install, or the embedded copy. */
export function resolveWasmtimeLib(): string {
  const fromEnv = Deno.env.get("SPEARHOST_WASMTIME_LIB");
  if (fromEnv) return fromEnv;
  // scripts/compile.ts embeds the real file under its versioned name: .tools/libwasmtime.so
  // is a symlink with an absolute target, which must not leak into the binary.
  if (isCompiledBinary()) {
    return extractEmbedded(
      new URL(`../.tools/wasmtime-${WASMTIME_VERSION}/${LIB_NAME}`, import.meta.url).pathname,
    );
  }
  const bundled = new URL(`../.tools/${LIB_NAME}`, import.meta.url).pathname;
  if (exists(bundled)) return Deno.realPathSync(bundled);
  throw new Error(`${LIB_NAME} not found: run scripts/setup.sh or set SPEARHOST_WASMTIME_LIB`);
}
