/**
 * What the host adds to a chat round trip, and how concurrent sends from one guest scale.
 * The backend is the scripted OpenAI-compatible server on loopback (tests/support), so the
 * numbers are the host's and the loopback HTTP stack's, not a model's.
 *   floor      the same request with fetch() from this thread (K of them, sequential or
 *              all at once) — what any Deno program pays for the HTTP itself (the baseline);
 *   guest      bench/guests/chat_loop.c doing K cchat_send + cchat_recv round trips (seq), or
 *              K sends collected with spear_epoll_wait (par), through SpearHost: Worker,
 *              channel, fd table, driver, routing;
 *   startup    the same guest with K = 0: worker start and instantiation, to subtract.
 * Host overhead per round trip ≈ (guest − startup − floor) / K. A script (medians of 9 runs),
 * not Deno.bench: under the bench runner the in-process server's fetches stall.
 */
import { SpearHost } from "../host/host.ts";
import { parseConfig } from "../host/config.ts";
import { createDrivers } from "../families/registry.ts";
import { startOpenAIServer } from "../tests/support/openai_server.ts";
import { benchGuest } from "./support/native.ts";

const K = 50;
const server = startOpenAIServer();
const config = parseConfig({
  backends: [{
    name: "loopback",
    kind: "openai_chat_completion",
    base_url: server.url,
    model: "bench",
    ops: ["chat_completions"],
  }],
});
const host = new SpearHost({ config, drivers: await createDrivers(config), logSink: () => {} });
const wasm = benchGuest("chat_loop");

const body = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "ping" }] });
const fetchOnce = async () => {
  const response = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  await response.json();
};

async function guest(mode: "seq" | "par", k: number) {
  const result = await host.run(wasm, { args: [mode, String(k)] });
  if (result.exitCode !== 0) throw new Error(`chat_loop ${mode} ${k}: ${JSON.stringify(result)}`);
  server.requests.length = 0; // the recorder would otherwise grow without bound
}

/** Median wall time of `fn` over `runs` runs, after one warm-up. */
async function median(runs: number, fn: () => Promise<void>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

const RUNS = 9;
const rows: [string, number][] = [];
const report = (name: string, ms: number) => rows.push([name, ms]);

report(
  `floor: fetch ×${K} sequential`,
  await median(RUNS, async () => {
    for (let i = 0; i < K; i++) await fetchOnce();
    server.requests.length = 0;
  }),
);
const startup = await median(RUNS, () => guest("seq", 0));
report("guest startup (K = 0)", startup);
report(`guest cchat ×${K} sequential`, await median(RUNS, () => guest("seq", K)));
report(
  `floor: fetch ×${K} concurrent`,
  await median(RUNS, async () => {
    await Promise.all(Array.from({ length: K }, fetchOnce));
    server.requests.length = 0;
  }),
);
report(`guest cchat ×${K} concurrent (epoll)`, await median(RUNS, () => guest("par", K)));

for (const [name, ms] of rows) console.log(`${name.padEnd(40)} ${ms.toFixed(2).padStart(9)} ms`);
const [seqFloor, , seqGuest, parFloor, parGuest] = rows.map(([, ms]) => ms);
console.log(
  `host overhead per sequential round trip: ${((seqGuest - startup - seqFloor) / K * 1000).toFixed(0)} µs`,
);
console.log(
  `concurrent throughput: guest ${(K / ((parGuest - startup) / 1000)).toFixed(0)} req/s, floor ${
    (K / (parFloor / 1000)).toFixed(0)
  } req/s`,
);
await host.close();
await server.close();
