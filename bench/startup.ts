/**
 * Cold start of the CLI: `deno task spear run guests/build/hello.wasm` (the launcher, then the
 * permission-scoped child that runs the guest) against `deno run` of a hello-world script and
 * against the architecture floor: the same unavoidable structure written directly with Deno
 * APIs and no spearhost code (bench/support/floor_*.ts), timed layer by layer —
 *   deno task hello.ts       `deno task` in front of `deno run hello.ts`;
 *   + launcher → child       a launcher process starting a permission-scoped child Deno;
 *   + Worker                 the child creates one Worker (each guest runs in one);
 *   + wasmtime (floor)       that Worker opens libwasmtime, creates an engine, deserializes
 *                            compiled code (as from a module cache), instantiates it and runs
 *                            its hello: the whole floor.
 * `spear run` is timed as users run it, bundled (cli/bundle.ts; built first if stale), and from
 * the sources (SPEARHOST_BUNDLE=off). The bundled child alone (`deno run` of it with the
 * launcher's flags) and the host's module graph alone (cli/main.ts's sources imported, nothing
 * run) show where the child spends beyond the floor's.
 * Deno's module cache and spearhost's compiled-module cache are warm (one untimed run of each
 * first). Runs alternate; prints medians of RUNS, each against `deno run hello.ts`, and the
 * target (≤ 4× `deno run hello.ts`) beside what the floor alone already costs.
 * Run: deno run --allow-all bench/startup.ts [RUNS]
 */
import { launchPlan } from "../cli/launcher.ts";
import { resolveWasmtimeLib } from "../host/native.ts";
import { benchGuest } from "./support/native.ts";
import { FloorWasm } from "./support/floor_wasm.ts";
import { bundledPath } from "../cli/bundle.ts";
import { ensureFreshBundle } from "../scripts/bundle.ts";

const RUNS = Number(Deno.args[0] ?? 11);
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const support = `${root}/bench/support`;
const hello = `${root}/guests/build/hello.wasm`;
benchGuest("epoll_guest"); // builds every guest (guests/build.sh), hello.wasm too
const build = await ensureFreshBundle();

// The floors' files: hello.ts, a deno.json whose tasks start them, the floor's compiled code.
const dir = await Deno.makeTempDir({ prefix: "startup_floor_" });
const script = `${dir}/hello.ts`;
await Deno.writeTextFile(script, 'console.log("hello");\n');
const libPath = resolveWasmtimeLib();
const code = `${dir}/floor.cwasm`;
await Deno.writeFile(code, new FloorWasm(libPath).serialize());
const launcher = `deno run --quiet --allow-read --allow-run ${support}/floor_launcher.ts`;
await Deno.writeTextFile(
  `${dir}/deno.json`,
  JSON.stringify({ tasks: { hello: "deno run --quiet hello.ts", floor: launcher } }),
);
const floorTask = (
  level: string,
) => ["task", "--quiet", "--config", `${dir}/deno.json`, "floor", level, libPath, code];
const childFlags = ["--quiet", "--no-prompt", ...(await launchPlan(["run", hello])).flags];
const modulesOnly = `${dir}/import_main.ts`;
await Deno.writeTextFile(modulesOnly, `import ${JSON.stringify(`${root}/cli/main.ts`)};\n`);

const HELLO = "deno run hello.ts";
const FLOOR = "+ wasmtime (the floor)";
const SPEAR = "spear run hello.wasm";
const SOURCES = "spear run, from the sources";
const commands: Record<string, string[]> = {
  [HELLO]: ["run", script],
  "deno task hello.ts": ["task", "--quiet", "--config", `${dir}/deno.json`, "hello"],
  "+ launcher → child": floorTask("none"),
  "+ Worker": floorTask("worker"),
  [FLOOR]: floorTask("wasm"),
  [SPEAR]: ["task", "--quiet", "spear", "run", hello],
  [SOURCES]: ["task", "--quiet", "spear", "run", hello],
  "spear child alone (bundled)": [
    "run",
    ...childFlags,
    `${root}/${bundledPath(build, "cli/child.ts")}`,
    "run",
    hello,
  ],
  "spear host's modules only (sources)": ["run", ...childFlags, `--allow-read=${dir}`, modulesOnly],
};

async function timeOnce(name: string, args: string[]): Promise<number> {
  const env = name === SOURCES ? { SPEARHOST_BUNDLE: "off" } : undefined;
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env,
    cwd: root,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const ms = performance.now() - started;
  if (!out.success) throw new Error(`deno ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return ms;
}

const times: Record<string, number[]> = {};
for (const [name, args] of Object.entries(commands)) await timeOnce(name, args); // warm the caches
for (let r = 0; r < RUNS; r++) {
  for (const [name, args] of Object.entries(commands)) (times[name] ??= []).push(await timeOnce(name, args));
}
await Deno.remove(dir, { recursive: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const [hello1, floor, spear] = [HELLO, FLOOR, SPEAR].map((name) => median(times[name]));
console.log(`cold start, medians of ${RUNS} alternating runs (wall ms)`);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(
    `  ${name.padEnd(36)} ${m.toFixed(0).padStart(5)} ms  ${(m / hello1).toFixed(1).padStart(5)}× deno run`,
  );
}
const ratio = spear / hello1;
console.log(
  `  spear run: ${ratio.toFixed(1)}× deno run hello.ts (target ≤ 4×: ${ratio <= 4 ? "met" : "NOT met"}); ${
    (spear / floor).toFixed(2)
  }× the floor, ${(spear - floor).toFixed(0)} ms above it`,
);
const budget = 4 * hello1;
console.log(
  `  the floor alone is ${(floor / hello1).toFixed(1)}× deno run: ${
    floor > budget
      ? `${(floor - budget).toFixed(0)} ms over the ${
        budget.toFixed(0)
      } ms target before any spearhost code runs`
      : `${(budget - floor).toFixed(0)} ms under the ${budget.toFixed(0)} ms target`
  }`,
);
