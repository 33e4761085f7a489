/**
 * Cold start of the CLI: `deno task spear run guests/build/hello.wasm` (the launcher, then the
 * permission-scoped child that runs the guest) against `deno run` of a hello-world script, with
 * Deno's module cache and spearhost's compiled-module cache warm (one untimed run of each
 * first). Runs alternate; prints medians of RUNS and the ratio (target ≤ 4×), plus the same for
 * the child alone (`deno run -A cli/main.ts run …`), which shows what the launcher adds.
 * Run: deno run --allow-all bench/startup.ts [RUNS]
 */
import { benchGuest } from "./support/native.ts";

const RUNS = Number(Deno.args[0] ?? 11);
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const hello = `${root}/guests/build/hello.wasm`;
benchGuest("epoll_guest"); // builds every guest (guests/build.sh), hello.wasm too
const script = await Deno.makeTempFile({ prefix: "hello_", suffix: ".ts" });
await Deno.writeTextFile(script, 'console.log("hello");\n');

const commands: Record<string, string[]> = {
  "deno run hello.ts": ["run", script],
  "spear run hello.wasm": ["task", "--quiet", "spear", "run", hello],
  "child alone (cli/main.ts)": ["run", "-A", `${root}/cli/main.ts`, "run", hello],
};

async function timeOnce(args: string[]): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: root, stdout: "null", stderr: "piped" })
    .output();
  const ms = performance.now() - started;
  if (!out.success) throw new Error(`deno ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return ms;
}

const times: Record<string, number[]> = {};
for (const args of Object.values(commands)) await timeOnce(args); // warm the caches
for (let r = 0; r < RUNS; r++) {
  for (const [name, args] of Object.entries(commands)) (times[name] ??= []).push(await timeOnce(args));
}
await Deno.remove(script);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const floor = median(times["deno run hello.ts"]);
console.log(`cold start, medians of ${RUNS} alternating runs (wall ms)`);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(
    `  ${name.padEnd(28)} ${m.toFixed(0).padStart(5)} ms  ${(m / floor).toFixed(1).padStart(5)}× the floor`,
  );
}
const ratio = median(times["spear run hello.wasm"]) / floor;
console.log(
  `  target spear run ≤ 4× deno run hello.ts: ${ratio <= 4 ? "met" : "NOT met"} (${ratio.toFixed(1)}×)`,
);
