/**
 * What the host adds to a chat round trip, and how concurrent sends from one guest scale.
 * The backend is the scripted OpenAI-compatible server on loopback (tests/support), so the
 * numbers are the host's and the loopback HTTP stack's, not a model's.
 *   floor   the same request with fetch() from this thread (K of them, sequential or all at
 *           once) — what any Deno program pays for the HTTP itself (the baseline);
 *   guest   bench/guests/chat_loop.c doing K cchat_send + cchat_recv round trips (seq), or K
 *           sends collected with spear_epoll_wait (par), through SpearHost: Worker, channel,
 *           fd table, driver, routing. The guest times its second pass itself (monotonic
 *           clock), so worker start-up and instantiation are not in the figure.
 * Host overhead per sequential round trip = (guest − floor) / K; concurrent throughput is
 * guest against floor. Medians of RUNS runs, floor and guest alternating. A script, not
 * Deno.bench: under the bench runner the in-process server's fetches stall.
 * Run: deno run --allow-all bench/chat_roundtrip.ts [RUNS]
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
let printed = ""; // what the guest printed (its stdout reaches the host's log sink)
const host = new SpearHost({
  config,
  drivers: await createDrivers(config),
  logSink: (_guest, _level, message) => void (printed += message + "\n"),
});
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

/** The guest's own timing of K round trips (ms). */
async function guest(mode: "seq" | "par", k: number): Promise<number> {
  printed = "";
  const result = await host.run(wasm, { args: [mode, String(k)] });
  if (result.exitCode !== 0) throw new Error(`chat_loop ${mode} ${k}: ${JSON.stringify(result)}`);
  server.requests.length = 0; // the recorder would otherwise grow without bound
  const us = /elapsed_us=(\d+)/.exec(printed)?.[1];
  if (!us) throw new Error("chat_loop printed no elapsed_us");
  return Number(us) / 1000;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up, as the guest does
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const RUNS = Number(Deno.args[0] ?? 9);
const seqFloor: number[] = [], seqGuest: number[] = [], parFloor: number[] = [], parGuest: number[] = [];
for (let r = 0; r < RUNS; r++) {
  seqFloor.push(
    await timed(async () => {
      for (let i = 0; i < K; i++) await fetchOnce();
      server.requests.length = 0;
    }),
  );
  seqGuest.push(await guest("seq", K));
  parFloor.push(
    await timed(async () => {
      await Promise.all(Array.from({ length: K }, fetchOnce));
      server.requests.length = 0;
    }),
  );
  parGuest.push(await guest("par", K));
}

const perTrip = (ms: number) => ms / K * 1000;
const [sf, sg, pf, pg] = [seqFloor, seqGuest, parFloor, parGuest].map(median);
console.log(`chat over loopback, K = ${K} requests, medians of ${RUNS} runs`);
console.log(
  `  sequential: fetch ${perTrip(sf).toFixed(0)} µs per round trip, guest ${perTrip(sg).toFixed(0)} µs`,
);
const overhead = perTrip(sg) - perTrip(sf);
console.log(
  `  host overhead per sequential round trip: ${overhead.toFixed(0)} µs (target ≤ 100 µs: ${
    overhead <= 100 ? "met" : "NOT met"
  })`,
);
const rate = (ms: number) => K / (ms / 1000);
const share = rate(pg) / rate(pf);
console.log(
  `  concurrent throughput: guest ${rate(pg).toFixed(0)} req/s, fetch ${rate(pf).toFixed(0)} req/s: ${
    (share * 100).toFixed(0)
  } % (target ≥ 80 %: ${share >= 0.8 ? "met" : "NOT met"})`,
);
await host.close();
await server.close();
