/**
 * Wake latency: a driver event on the main thread → the guest returns from a blocking
 * spear_epoll_wait(timeout -1). Run: deno run --allow-all bench/wake_latency.ts [ROUNDS]
 * (also part of `deno task bench`). Target: p50 < 50 µs.
 *
 * A Worker (bench/support/wake_worker.ts) runs bench/guests/wake_guest.c through runGuest. Each
 * round the main thread waits a random 100–400 µs so the guest is parked, stamps the shared
 * clock (CLOCK_MONOTONIC through FFI, bench/support/clock.ts) and sends one item on a stream
 * the guest opened (GuestSession.openStream, a lossy StreamSender), as a driver does; the
 * worker applies it to the fd table, epoll_wait returns to the guest, and the guest's next
 * hostcall (its own import `bench.woke`) stamps the clock again. The floor is a bare Atomics.notify → Atomics.wait wake
 * between the same two threads, stamped the same way, with no channel, fd table or wasm.
 * Prints p50/p90/p99/max of both over ROUNDS wakes (default 3000) after 2000 discarded warm-up
 * rounds.
 */
import { Engine } from "../runtime/engine.ts";
import { openWasmtime } from "../ffi/wasmtime.ts";
import { Link } from "../protocol/channel.ts";
import { HostBudget } from "../protocol/budget.ts";
import { GuestSession } from "../host/host.ts";
import { defaultConfig } from "../host/config.ts";
import { FIRST_FD } from "../runtime/abi.ts";
import { resolveWasmtimeLib } from "../host/native.ts";
import type { GuestInit, GuestResult } from "../runtime/instance.ts";
import { monotonicNs } from "./support/clock.ts";
import { benchGuest } from "./support/native.ts";
import type { WakeWorkerInit } from "./support/wake_worker.ts";

const ROUNDS = Number(Deno.args[0] ?? 3000);
// Enough rounds for V8 to optimize the whole wake path (with a few hundred it still runs
// unoptimized code and reads several µs slower); a guest that waits often runs warm.
const WARMUP = 2000;
const TOTAL = ROUNDS + WARMUP;
const WAKE_STREAM = 1; // the first stream the guest opens
const TARGET_P50_US = 50;

const wasmPath = benchGuest("wake_guest");
const libPath = resolveWasmtimeLib();
const engine = Engine.create(openWasmtime(libPath));
const link = Link.create();
const budget = HostBudget.create(64 << 20);
const session = new GuestSession(1, "wake_guest.wasm", link, defaultConfig(), budget);
const wakeSender = session.openStream(WAKE_STREAM, { mode: "lossy" });
const WAKE_ITEM = new Uint8Array(0);
const shared = new SharedArrayBuffer(32);
const ints = new Int32Array(shared, 0, 4);
const stamps = new Float64Array(shared, 16, 2);
const pause = new Int32Array(new SharedArrayBuffer(4));
const sleepUs = (us: number) => Atomics.wait(pause, 0, 0, us / 1000);

const init: GuestInit = {
  libPath,
  engineAddress: engine.address,
  name: "wake_guest.wasm",
  wasm: await Deno.readFile(wasmPath),
  args: ["wake_guest.wasm", String(FIRST_FD), String(TOTAL)],
  env: {},
  memoryBytes: 64 << 20,
  maxFds: 16,
  link: link.buffers,
  budget: budget.buffer,
};
const worker = new Worker(new URL("./support/wake_worker.ts", import.meta.url), { type: "module" });
const phases: Record<string, (data: { result?: GuestResult }) => void> = {};
const phaseDone = (name: string) =>
  new Promise<{ result?: GuestResult }>((resolve) => (phases[name] = resolve));
const guestDone = phaseDone("guest");
const floorDone = phaseDone("floor");
worker.onmessage = (e) => phases[e.data.phase]?.(e.data);
worker.postMessage({ init, shared, rounds: TOTAL, stream: WAKE_STREAM } satisfies WakeWorkerInit);

/** Runs TOTAL rounds of `wake` and returns the latencies (µs) after warm-up. */
function measure(
  wake: (round: number) => void,
  ackIndex: number,
  stampIndex: number,
  firstTimeoutMs: number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < TOTAL; i++) {
    sleepUs(100 + Math.random() * 300);
    const t0 = monotonicNs();
    wake(i);
    if (Atomics.wait(ints, ackIndex, i, i === 0 ? firstTimeoutMs : 5000) === "timed-out") {
      throw new Error(`no wake ack in round ${i}`);
    }
    if (i >= WARMUP) out.push((stamps[stampIndex] - t0) / 1000);
  }
  return out;
}

function stats(label: string, us: number[]): number {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const f = (v: number) => `${v.toFixed(1).padStart(7)} µs`;
  console.log(
    `${label.padEnd(34)} p50 ${f(at(0.5))}  p90 ${f(at(0.9))}  p99 ${f(at(0.99))}  max ${f(s[s.length - 1])}`,
  );
  return at(0.5);
}

// Let the worker start and compile the guest before the first round is timed (it is warm-up anyway).
const guestLat = measure(
  () => {
    if (!wakeSender.send(WAKE_ITEM)) throw new Error("the wake item was dropped");
  },
  0,
  0,
  30_000,
);
const guest = await guestDone;
if (guest.result?.exitCode !== 0) throw new Error(`wake_guest failed: ${JSON.stringify(guest.result)}`);
const floorLat = measure(
  (i) => {
    Atomics.store(ints, 1, i + 1);
    Atomics.notify(ints, 1);
  },
  2,
  1,
  5000,
);
await floorDone;
session.end();
engine.delete();

console.log(
  `wake latency over ${ROUNDS} wakes (${WARMUP} warm-up rounds discarded), ${navigator.hardwareConcurrency} CPUs`,
);
const p50 = stats("guest epoll_wait wake (driver msg)", guestLat);
stats("floor Atomics.notify → wait", floorLat);
console.log(`target p50 < ${TARGET_P50_US} µs: ${p50 < TARGET_P50_US ? "met" : "NOT met"}`);
