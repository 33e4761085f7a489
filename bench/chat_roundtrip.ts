/**
 * What the host adds to a chat round trip, and how concurrent sends from one guest scale.
 * The backend is the scripted OpenAI-compatible server on loopback (tests/support), so the
 * numbers are the host's and the loopback HTTP stack's, not a model's.
 *   fetch   the same request with fetch() + json() from this thread (K of them, sequential or
 *           all at once) — what any Deno program pays for the HTTP itself (the baseline);
 *   floor   the architecture floor (bench/support/floor_chat*.ts, no spearhost code): a guest
 *           Worker posts each request through a SharedArrayBuffer word, this thread wakes
 *           from Atomics.waitAsync, does fetch() + json(), writes the reply into shared
 *           memory and wakes the worker from Atomics.wait — a wake each way around the fetch,
 *           which spearhost cannot avoid while guests run in Workers and HTTP on this thread;
 *   guest   bench/guests/chat_loop.c doing K cchat_send + cchat_recv round trips (seq), or K
 *           sends collected with spear_epoll_wait (par), through SpearHost: Worker, channel,
 *           fd table, driver, routing. The guest (and the floor's worker) times its second
 *           pass itself, so worker start-up and instantiation are not in the figure;
 *   bare    the same guest through a SpearHost whose chat driver does only the floor's
 *           fetch() + json() (no routing, network policy, credentials, redirect checks, body
 *           limits or timeout): it splits the guest's overhead into spearhost's machinery
 *           (Worker, hostcalls, fd table, request/reply, channel) and the chat driver's work;
 *   long    fetch and guest again, concurrent, each request carrying a conversation of
 *           HISTORY earlier turns of 1 KiB (a tool loop sends its whole history every round):
 *           what the host adds should not grow with the conversation.
 * Overhead per sequential round trip = (guest, bare or floor − fetch) / K; concurrent throughput
 * is against fetch's. Each concurrent series also reports the main thread's CPU per request
 * (its thread CPU clock over both passes, less a guest's own start-up, measured by a run that
 * sends nothing): fetch keeps that thread busy (the test server runs there too), so this is
 * what bounds concurrent throughput. Medians of RUNS runs, the four alternating, after WARMUP
 * concurrent passes of each (fetch, floor, bare and full host; 100 requests a pass): V8 keeps
 * optimizing the request path over the first tens of thousands of requests (main-thread CPU
 * per request of a driver that answers at once fell from 6–10 µs after 4000 to 3.3–4.2 µs
 * after 40 000), so without it the series would measure a host that has not finished
 * warming up, as a long-running one has. A script, not Deno.bench: under the bench runner
 * the in-process server's fetches stall.
 * Run: deno run --allow-all bench/chat_roundtrip.ts [RUNS] [WARMUP]
 */
import { type Driver, SpearHost } from "../host/host.ts";
import { EncodedResult, handle } from "../protocol/rpc.ts";
import { chatRoundTrip } from "../families/cchat/protocol.ts";
import { parseConfig } from "../host/config.ts";
import { createDrivers } from "../families/registry.ts";
import { startOpenAIServer } from "../tests/support/openai_server.ts";
import { benchGuest } from "./support/native.ts";
import { serveChatFloor, Slot } from "./support/floor_chat.ts";
import { threadCpuNs } from "./support/clock.ts";

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

/** The request chat_loop.c makes with `history` earlier turns (1023 × "x", user and assistant by turns). */
function requestBody(history: number): string {
  const turns = Array.from({ length: history }, (_, i) => ({
    role: i % 2 ? "assistant" : "user",
    content: "x".repeat(1023),
  }));
  return JSON.stringify({ model: "bench", messages: [...turns, { role: "user", content: "ping" }] });
}
const HISTORY = 64;
const body = requestBody(0);
const longBody = requestBody(HISTORY);
const fetchJson = async (sent = body) => {
  const response = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: sent,
  });
  return await response.json();
};
const fetchOnce = async () => void await fetchJson();

/**
 * A chat driver that does what the floor does and nothing else (see "bare" above): the guest's
 * response text, attached to the result, is the body as the floor replies it.
 */
const bareDriver: Driver = {
  family: "cchat",
  handlers: [handle(chatRoundTrip, async () =>
    new EncodedResult(
      JSON.stringify({ ok: true, backend: "loopback", model: "bench", latencyMs: 0 }),
      JSON.stringify(await fetchJson()),
    ))],
};
const bareHost = new SpearHost({
  config,
  drivers: [bareDriver],
  logSink: (_guest, _level, message) => void (printed += message + "\n"),
});

const floorSlot = Slot.create();
const floorServer = serveChatFloor(floorSlot, fetchJson);
const floorWorker = new Worker(new URL("./support/floor_chat_worker.ts", import.meta.url), {
  type: "module",
});
floorWorker.postMessage(floorSlot.shared);

/** The floor worker's own timing of K round trips (ms). */
function floor(mode: "seq" | "par", k: number): Promise<number> {
  return new Promise((resolve) => {
    floorWorker.onmessage = (e: MessageEvent<number>) => {
      server.requests.length = 0;
      resolve(e.data);
    };
    floorWorker.postMessage({ mode, k });
  });
}

/**
 * The guest's own timing of K round trips (ms), through `on` (the full host or the bare one),
 * each with `history` earlier turns.
 */
async function guest(mode: "seq" | "par", k: number, on = host, history = 0): Promise<number> {
  printed = "";
  const result = await on.run(wasm, { args: [mode, String(k), String(history)] });
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
const series = [
  "seqFetch",
  "seqFloor",
  "seqBare",
  "seqGuest",
  "parFetch",
  "parFloor",
  "parBare",
  "parGuest",
  "longFetch",
  "longGuest",
] as const;
const ms: Record<(typeof series)[number], number[]> = Object.fromEntries(series.map((n) => [n, []])) as never;
/** Main-thread CPU per concurrent request (µs) of each concurrent series, and fetch's busy share. */
const mainCpu = {
  parFetch: [] as number[],
  parFloor: [] as number[],
  parBare: [] as number[],
  parGuest: [] as number[],
  longFetch: [] as number[],
  longGuest: [] as number[],
};
const fetchBusy: number[] = [];

/** Runs `fn` and adds its main-thread CPU per request (of 2K: warm-up and timed pass) to `into`. */
async function onMainThread<T>(into: number[], fn: () => Promise<T>, startUpUs = 0): Promise<T> {
  const started = threadCpuNs();
  const value = await fn();
  into.push(((threadCpuNs() - started) / 1000 - startUpUs) / (2 * K));
  return value;
}

/** The main thread's CPU for a guest run that sends nothing (start-up and exit), µs. */
async function startUpCpuUs(on: SpearHost, history = 0): Promise<number> {
  const started = threadCpuNs();
  await guest("par", 0, on, history);
  return (threadCpuNs() - started) / 1000;
}

/** K fetches of `sent` at once, warm-up and timed pass (ms of the timed one). */
function fetchAtOnce(sent: string): Promise<number> {
  return timed(async () => {
    await Promise.all(Array.from({ length: K }, () => fetchJson(sent)));
    server.requests.length = 0;
  });
}

/** The guest's K requests at once through `on` (ms), its main-thread CPU per request added to `into`. */
async function guestAtOnce(into: number[], on: SpearHost, history = 0): Promise<number> {
  return onMainThread(into, () => guest("par", K, on, history), await startUpCpuUs(on, history));
}

const WARMUP = Number(Deno.args[1] ?? 400);
for (let w = 0; w < WARMUP; w++) {
  await fetchAtOnce(body);
  await floor("par", K);
  await guest("par", K, bareHost);
  await guest("par", K, host);
}

for (let r = 0; r < RUNS; r++) {
  ms.seqFetch.push(
    await timed(async () => {
      for (let i = 0; i < K; i++) await fetchOnce();
      server.requests.length = 0;
    }),
  );
  ms.seqFloor.push(await floor("seq", K));
  ms.seqBare.push(await guest("seq", K, bareHost));
  ms.seqGuest.push(await guest("seq", K));
  const wall = performance.now();
  ms.parFetch.push(await onMainThread(mainCpu.parFetch, () => fetchAtOnce(body)));
  fetchBusy.push(mainCpu.parFetch.at(-1)! * 2 * K / 1000 / (performance.now() - wall));
  ms.parFloor.push(await onMainThread(mainCpu.parFloor, () => floor("par", K)));
  ms.parBare.push(await guestAtOnce(mainCpu.parBare, bareHost));
  ms.parGuest.push(await guestAtOnce(mainCpu.parGuest, host));
  ms.longFetch.push(await onMainThread(mainCpu.longFetch, () => fetchAtOnce(longBody)));
  ms.longGuest.push(await guestAtOnce(mainCpu.longGuest, host, HISTORY));
}

const perTrip = (ms: number) => ms / K * 1000;
const m = Object.fromEntries(series.map((n) => [n, median(ms[n])])) as Record<
  (typeof series)[number],
  number
>;
const us = (x: number) => `${x.toFixed(0).padStart(4)} µs`;
console.log(
  `chat over loopback, K = ${K} requests, medians of ${RUNS} alternating runs after ${WARMUP} warm-up passes of each`,
);
console.log(
  `  sequential round trip: fetch ${us(perTrip(m.seqFetch))}, floor ${us(perTrip(m.seqFloor))}, bare driver ${
    us(perTrip(m.seqBare))
  }, guest ${us(perTrip(m.seqGuest))}`,
);
const floorOverhead = perTrip(m.seqFloor) - perTrip(m.seqFetch);
const bareOverhead = perTrip(m.seqBare) - perTrip(m.seqFetch);
const overhead = perTrip(m.seqGuest) - perTrip(m.seqFetch);
console.log(
  `  overhead per sequential round trip over fetch: floor ${us(floorOverhead)}, guest ${us(overhead)} (${
    us(overhead - floorOverhead)
  } above the floor: machinery ${us(bareOverhead - floorOverhead)}, chat driver ${
    us(overhead - bareOverhead)
  })`,
);
console.log(
  `  target guest ≤ 100 µs: ${overhead <= 100 ? "met" : "NOT met"}; the floor alone uses ${
    floorOverhead.toFixed(0)
  } µs of it`,
);
const rate = (ms: number) => K / (ms / 1000);
const share = (x: number) => rate(x) / rate(m.parFetch);
const pct = (x: number) => `${(share(x) * 100).toFixed(0)} %`;
console.log(
  `  concurrent throughput (${K} at once): fetch ${rate(m.parFetch).toFixed(0)} req/s, floor ${
    rate(m.parFloor).toFixed(0)
  } (${pct(m.parFloor)}), bare driver ${rate(m.parBare).toFixed(0)} (${pct(m.parBare)}), guest ${
    rate(m.parGuest).toFixed(0)
  } (${pct(m.parGuest)}; ${(m.parFloor / m.parGuest * 100).toFixed(0)} % of the floor's)`,
);
console.log(
  `  target guest ≥ 80 % of fetch: ${share(m.parGuest) >= 0.8 ? "met" : "NOT met"}; the floor alone reaches ${
    pct(m.parFloor)
  }`,
);
const cpuUs = (series: keyof typeof mainCpu) => median(mainCpu[series]);
console.log(
  `  main-thread CPU per concurrent request: fetch ${us(cpuUs("parFetch"))} (the thread ${
    (median(fetchBusy) * 100).toFixed(0)
  } % busy), floor ${us(cpuUs("parFloor"))}, bare driver ${us(cpuUs("parBare"))}, guest ${
    us(cpuUs("parGuest"))
  }; 80 % of fetch's throughput leaves at most ${us(cpuUs("parFetch") / 0.8)}`,
);
console.log(
  `  with a ${HISTORY} KiB conversation, ${K} at once: fetch ${rate(m.longFetch).toFixed(0)} req/s, guest ${
    rate(m.longGuest).toFixed(0)
  } (${(m.longFetch / m.longGuest * 100).toFixed(0)} %); main-thread CPU per request: fetch ${
    us(cpuUs("longFetch"))
  }, guest ${us(cpuUs("longGuest"))} (${us(cpuUs("longGuest") - cpuUs("longFetch"))} added, against ${
    us(cpuUs("parGuest") - cpuUs("parFetch"))
  } with none)`,
);
floorWorker.terminate();
await floorServer.stop();
await bareHost.close();
await host.close();
await server.close();
