/**
 * Builds the benches' native pieces on demand: C in bench/native/*.c → bench/native/build/ with
 * gcc -O2, rebuilt only when the source is newer than the output (idempotent, atomic rename),
 * and the C guests through guests/build.sh (idempotent too).
 */
const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const nativeDir = `${root}/bench/native`;
export const buildDir = `${nativeDir}/build`;

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

function run(cmd: string, args: string[]): void {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Compiles bench/native/NAME.c into a program (`kind` "exe") or a shared library ("lib"); returns its path. */
export function buildNative(name: string, kind: "exe" | "lib"): string {
  const src = `${nativeDir}/${name}.c`;
  const out = kind === "lib" ? `${buildDir}/lib${name}.so` : `${buildDir}/${name}`;
  if (mtime(out) >= mtime(src) && mtime(out) > 0) return out;
  Deno.mkdirSync(buildDir, { recursive: true });
  const tmp = `${out}.tmp.${Deno.pid}`;
  const flags = kind === "lib" ? ["-shared", "-fPIC"] : [];
  run("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", ...flags, src, "-o", tmp]);
  Deno.renameSync(tmp, out);
  return out;
}

/** Builds the C guests (guests/build.sh) and returns the path of guests/build/bench/NAME.wasm. */
export function benchGuest(name: string): string {
  run("bash", [`${root}/guests/build.sh`]);
  return `${root}/guests/build/bench/${name}.wasm`;
}
