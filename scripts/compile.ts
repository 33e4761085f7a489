/**
 * `deno task compile`: builds dist/spear, one executable with the CLI (cli/main.ts), the guest
 * worker (runtime/worker.ts — workers are not found by the module graph, so it is included
 * explicitly) and the pinned libwasmtime from .tools (runtime/native.ts extracts it into the
 * cache dir on first run, because the dynamic loader needs a real file).
 *
 * Permissions are baked in: --allow-ffi (Wasmtime, PortAudio), --allow-read (guests and configs
 * are named at run time), --allow-write (the cache dir under $HOME, unknown at compile time),
 * --allow-env (HOME, XDG_CACHE_HOME, SPEARHOST_*, the API-key variables a config names) and
 * --allow-net: the binary cannot know a config's hosts in advance, so the network grant is
 * unscoped and the drivers enforce the config's network policy themselves (host/net/policy.ts).
 * --unstable-net is set for UDP sockets (Deno.listenDatagram).
 *
 * `deno compile` needs denort, Deno's runtime-only base binary, which it downloads from
 * dl.deno.land unless DENORT_BIN names a local copy. Where that host is unreachable, set
 * DENORT_BIN (or place it at .tools/denort-<deno version>). The script checks the result by
 * running `dist/spear --help` in an empty environment and fails if it is not the spear CLI.
 * Prints the compile time and binary size.
 */
import { WASMTIME_VERSION } from "../ffi/wasmtime.ts";
import { WORKER_ENTRIES } from "../cli/bundle.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
export const OUTPUT = `${root}/dist/spear`;
/** The library file as runtime/native.ts looks for it inside a compiled binary. */
export const EMBEDDED_LIB = `.tools/wasmtime-${WASMTIME_VERSION}/libwasmtime.so`;

/** A local denort for `deno compile`, if one is known: $DENORT_BIN or .tools/denort-<version>. */
export function localDenort(): string | undefined {
  const candidates = [Deno.env.get("DENORT_BIN"), `${root}/.tools/denort-${Deno.version.deno}`];
  for (const path of candidates) {
    try {
      if (path && Deno.statSync(path).isFile) return path;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Whether `deno compile` can get denort without the network: a local copy or Deno's own download cache. */
export function denortAvailable(): boolean {
  if (localDenort()) return true;
  const home = Deno.env.get("HOME");
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const denoDir = Deno.env.get("DENO_DIR") ?? (xdg ? `${xdg}/deno` : `${home}/.cache/deno`);
  const target = `${Deno.build.arch}-unknown-linux-gnu`;
  try {
    return Deno.statSync(`${denoDir}/dl/release/v${Deno.version.deno}/denort-${target}.zip`).isFile;
  } catch {
    return false;
  }
}

/** The binary's entry: the CLI itself (the launcher and its scoped child are not needed there). */
export const COMPILE_ENTRY = "cli/main.ts";

/**
 * Modules the module graph of cli/main.ts does not reach, so `deno compile` embeds them only
 * when named: the Workers' entries, and whatever is loaded with `lazyImport` (runtime/lazy.ts),
 * which start-up does not follow on purpose. tests/unit/lazy_import_test.ts checks that every
 * `lazyImport` in the tree lies under one of these.
 */
export const EMBEDDED_MODULES: readonly string[] = [
  ...WORKER_ENTRIES,
  "families/", // each family's halves, drivers' lazy parts, the commands' modules
  "cli/skill_commands.ts",
];

export interface CompileResult {
  output: string;
  seconds: number;
  bytes: number;
}

/** Runs deno compile; throws with a one-line reason on failure. */
export async function compile(): Promise<CompileResult> {
  try {
    Deno.statSync(`${root}/${EMBEDDED_LIB}`);
  } catch {
    throw new Error(`${EMBEDDED_LIB} missing: run scripts/setup.sh first`);
  }
  await Deno.mkdir(`${root}/dist`, { recursive: true });
  const tmp = `${OUTPUT}.tmp`;
  const denort = localDenort();
  const args = [
    "compile",
    "--quiet",
    "--no-check", // `deno task check` type-checks; compile only embeds
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-net",
    "--unstable-net",
    ...EMBEDDED_MODULES.flatMap((path) => ["--include", path]),
    "--include",
    EMBEDDED_LIB,
    "--output",
    tmp,
    COMPILE_ENTRY,
  ];
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: denort ? { DENORT_BIN: denort } : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr);
    const cause = /dl\.deno\.land|dns error|error sending request|Name or service not known/.test(text)
      ? "cannot download denort (Deno's compile base binary) from dl.deno.land; set DENORT_BIN to a local denort"
      : text.trim().split("\n")[0];
    throw new Error(`deno compile failed: ${cause}`);
  }
  await checkBinary(tmp);
  await Deno.rename(tmp, OUTPUT);
  return { output: OUTPUT, seconds, bytes: (await Deno.stat(OUTPUT)).size };
}

/** The binary must be the spear CLI (a full `deno` given as DENORT_BIN yields a plain Deno). */
async function checkBinary(path: string): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "spear-compile-" });
  try {
    const out = await new Deno.Command(path, {
      args: ["--help"],
      clearEnv: true,
      env: { HOME: home, PATH: "/usr/bin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success || !new TextDecoder().decode(out.stdout).includes("spear run")) {
      await Deno.remove(path).catch(() => {});
      throw new Error(`${path} does not run the spear CLI (is DENORT_BIN a real denort, not deno?)`);
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    const r = await compile();
    console.log(
      `compiled ${r.output.replace(`${root}/`, "")}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${
        r.seconds.toFixed(1)
      } s`,
    );
  } catch (e) {
    console.error(`compile: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
