/**
 * Skills, beside their floors (medians; a script, not Deno.bench, so each figure is measured
 * the way a user pays for it):
 *   warm run    `runSkill` of a trivial skill (tests/guests/skill_probe.c, {"op":"echo"}) on a
 *               host that has run it before: manifest, checksum, Worker, instantiation, execute,
 *               output JSON — against `SpearHost.run` of guests/build/hello.wasm (a command
 *               doing almost nothing) on the same host: the floor of any guest run here.
 *   memory      memory_set + memory_get round trips from inside one execute (the guest's loop
 *               over K pairs, minus the same run with K = 0), per call — against node:sqlite
 *               called directly on the main thread, on the same kind of file (WAL), in the
 *               same run: the store's own cost (MemoryStore) and a bare prepared statement.
 *
 *   deno run --allow-all bench/skill_bench.ts
 */
import { DatabaseSync } from "node:sqlite";
import { SpearHost } from "../host/host.ts";
import { parseConfig } from "../host/config.ts";
import { runSkill, sha256Hex } from "../families/cis/skill.ts";
import { MemoryStore } from "../families/cis/store.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const PROBE = `${root}/guests/build/test/skill_probe.wasm`;
const HELLO = `${root}/guests/build/hello.wasm`;
const dir = await Deno.makeTempDir({ prefix: "spear-skill-bench-" });
const config = parseConfig({ memory: { path: `${dir}/memory.db` }, skills: { dir: `${dir}/skills` } });
await Deno.mkdir(`${dir}/skills/probe`, { recursive: true });
await Deno.writeTextFile(
  `${dir}/skills/probe/skill.json`,
  JSON.stringify({
    name: "probe",
    version: "1",
    wasm: PROBE,
    sha256: await sha256Hex(await Deno.readFile(PROBE)),
  }),
);
const host = new SpearHost({ config, cacheDir: `${dir}/cache`, logSink: () => {} });

async function median(runs: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  await fn();
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

async function skill(input: unknown) {
  const r = await runSkill(host, "probe", { input: JSON.stringify(input) });
  if (r.failure) throw new Error(JSON.stringify(r.failure));
  return r.json as Record<string, unknown>;
}

const RUNS = 21;
const rows: [string, string][] = [];
const ms = (v: number) => `${v.toFixed(2)} ms`;
const us = (v: number) => `${(v * 1000).toFixed(1)} µs`;

const hello = await median(RUNS, async () => {
  const r = await host.run(HELLO, {});
  if (r.exitCode !== 0) throw new Error("hello failed");
});
const warm = await median(RUNS, () => skill({ op: "echo" }));
rows.push(["floor: spear run of hello (warm host)", ms(hello)]);
rows.push(["warm skill run (echo)", ms(warm)]);

const K = 2000;
const empty = await median(9, () => skill({ op: "memloop", n: 0 }));
const loop = await median(9, async () => {
  const out = await skill({ op: "memloop", n: K });
  if (out.errors !== 0) throw new Error(JSON.stringify(out));
});
rows.push([`guest memory_set + memory_get, per call (${K} pairs)`, us((loop - empty) / (2 * K))]);

const store = MemoryStore.open(`${dir}/direct.db`);
const limits = { maxValueBytes: 1 << 20, maxTotalBytes: 1 << 30 };
const value = new TextEncoder().encode("v12345");
const direct = await median(9, () => {
  for (let i = 0; i < K; i++) {
    const key = `k${String.fromCharCode(97 + (i % 16))}0`;
    store.set("bench", key, value, limits);
    store.get("bench", key);
  }
});
store.close();
rows.push([`floor: MemoryStore set + get on the main thread, per call`, us(direct / (2 * K))]);

const db = new DatabaseSync(`${dir}/bare.db`);
db.exec(
  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID",
);
const put = db.prepare("INSERT INTO kv VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v");
const get = db.prepare("SELECT v FROM kv WHERE k = ?");
const bare = await median(9, () => {
  for (let i = 0; i < K; i++) {
    const key = `k${String.fromCharCode(97 + (i % 16))}0`;
    put.run(key, value);
    get.get(key);
  }
});
db.close();
rows.push([`floor: bare node:sqlite upsert + select, per call`, us(bare / (2 * K))]);

await host.close();
await Deno.remove(dir, { recursive: true });
const width = Math.max(...rows.map((r) => r[0].length));
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
