/**
 * Sockets: loopback TCP throughput and request/response latency of the guest echo server
 * (guests/src/echo_server.c, one epoll loop, on real Wasmtime) against the same echo written
 * directly with Deno's API in this process, measured in the same run by the same client (a
 * separate Deno process, bench/support/echo_client.ts). Run: deno task bench:sock
 * (deno run --allow-all --unstable-net bench/sock_echo.ts [MIB] [ROUNDS]).
 *
 * Targets (issue #10): throughput ≥ 50 % of Deno's; latency added per round trip
 * (guest p50 − Deno p50) ≤ 2 × (a trivial hostcall + one wake), both measured here: the
 * hostcall as bench/hostcall_bench.ts does (time_now_ms from a guest loop), the wake as
 * bench/wake_latency.ts does (its p50, run as a subprocess). Beside them, the floor of the
 * structure (bench/support/two_thread_echo.ts): the same echo through a Worker and two shared
 * byte rings with bare Atomics wakes, no spearhost code — what any guest echo pays at least.
 */
import { SpearHost } from "../host/host.ts";
import { parseConfig } from "../host/config.ts";
import { instantiateBenchGuest } from "./support/harness.ts";
import { benchGuest } from "./support/native.ts";
import { twoThreadEcho } from "./support/two_thread_echo.ts";

const MIB = Number(Deno.args[0] ?? 128);
const ROUNDS = Number(Deno.args[1] ?? 3000);
const RUNS = 3;
const root = new URL("../", import.meta.url).pathname;

/** Runs the client against a port; returns its JSON line. */
async function client(port: number, mode: "throughput" | "latency", count: number) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${root}bench/support/echo_client.ts`, String(port), mode, String(count)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`echo client ${mode} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The same echo, written directly with Deno's API (the same 256 KiB buffer as the guest's). */
function denoEcho(): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      (async () => {
        const buffer = new Uint8Array(256 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            for (let at = 0; at < n;) at += await conn.write(buffer.subarray(at, n));
          }
        } finally {
          conn.close();
        }
      })();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/** The guest echo server, serving `clients` connections. */
async function guestEcho(clients: number) {
  const config = parseConfig({ net: { listen: ["tcp://127.0.0.1:0"] } });
  let listening: (port: number) => void;
  const ready = new Promise<number>((resolve) => (listening = resolve));
  const host = new SpearHost({
    config,
    logSink: (_g, _l, message) => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(message);
      if (m) listening(Number(m[1]));
    },
  });
  const done = host.run(`${root}guests/build/echo_server.wasm`, { args: ["127.0.0.1:0", String(clients)] });
  return { port: await ready, done: done.then(async (r) => (await host.close(), r)) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** CPU time this process used so far (all its threads: main, guest worker), ms (Linux /proc). */
function cpuMs(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 10 ms ticks
}

/** Runs a throughput measurement and the server process's CPU per MiB echoed. */
async function measured(port: number) {
  const before = cpuMs();
  const { mbPerS } = await client(port, "throughput", MIB);
  return { mbPerS, cpuPerMiB: (cpuMs() - before) / MIB };
}

type Row = { deno: number[]; bare: number[]; guest: number[] };
const rows: Row[] = [0, 1, 2].map(() => ({ deno: [], bare: [], guest: [] }));
const deno = denoEcho();
const bare = twoThreadEcho();
for (let run = 0; run < RUNS; run++) {
  for (const [key, port] of [["deno", deno.port], ["bare", bare.port]] as const) {
    const d = await measured(port);
    rows[0][key].push(d.mbPerS);
    rows[2][key].push(d.cpuPerMiB);
    rows[1][key].push((await client(port, "latency", ROUNDS)).p50Us);
  }
  const guest = await guestEcho(2);
  const g = await measured(guest.port);
  rows[0].guest.push(g.mbPerS);
  rows[2].guest.push(g.cpuPerMiB);
  rows[1].guest.push((await client(guest.port, "latency", ROUNDS)).p50Us);
  const result = await guest.done;
  if (result.exitCode !== 0) throw new Error(`echo_server: ${JSON.stringify(result)}`);
}
deno.close();
bare.close();

// Floors measured in this run: a trivial hostcall, and one wake (bench/wake_latency.ts).
const timeNow = (await instantiateBenchGuest(benchGuest("epoll_guest"))).func("bench_time_now", "i64");
timeNow(10000);
const calls = 200_000;
const t0 = performance.now();
timeNow(calls);
const hostcallUs = ((performance.now() - t0) * 1000) / calls;
const wake = await new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-all", `${root}bench/wake_latency.ts`, "1000"],
  stdout: "piped",
  stderr: "inherit",
}).output();
const wakeText = new TextDecoder().decode(wake.stdout);
const wakeUs = Number(/guest epoll_wait wake \(driver msg\)\s+p50\s+([\d.]+)/.exec(wakeText)?.[1] ?? NaN);

const [tput, lat, cpu] = rows.map((r) => ({
  deno: median(r.deno),
  bare: median(r.bare),
  guest: median(r.guest),
}));
const ratio = tput.guest / tput.deno;
const added = lat.guest - lat.deno;
const bareAdded = lat.bare - lat.deno;
const floor = 2 * (hostcallUs + wakeUs);
const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
console.log(`loopback TCP echo, medians of ${RUNS} runs, ${navigator.hardwareConcurrency} CPUs`);
console.log(`                                 guest         two-thread floor   Deno's echo`);
console.log(
  `throughput (${MIB} MiB each way)   ${tput.guest.toFixed(0).padStart(5)} MiB/s   ${
    tput.bare.toFixed(0).padStart(5)
  } MiB/s        ${tput.deno.toFixed(0).padStart(5)} MiB/s   guest = ${pct(ratio)} of Deno's, floor ${
    pct(tput.bare / tput.deno)
  } (target ≥ 50 %: ${ratio >= 0.5 ? "met" : "NOT met"})`,
);
console.log(
  `server CPU per MiB echoed        ${cpu.guest.toFixed(2).padStart(5)} ms      ${
    cpu.bare.toFixed(2).padStart(5)
  } ms           ${cpu.deno.toFixed(2).padStart(5)} ms      (all the server's threads)`,
);
console.log(
  `round trip p50 (64 B)            ${lat.guest.toFixed(1).padStart(5)} µs      ${
    lat.bare.toFixed(1).padStart(5)
  } µs           ${lat.deno.toFixed(1).padStart(5)} µs      added: guest ${added.toFixed(1)} µs, floor ${
    bareAdded.toFixed(1)
  } µs`,
);
console.log(
  `target: added ≤ 2 × (hostcall ${hostcallUs.toFixed(2)} µs + wake p50 ${wakeUs.toFixed(1)} µs) = ${
    floor.toFixed(1)
  } µs: ${added <= floor ? "met" : "NOT met"} (the two-thread floor alone adds ${bareAdded.toFixed(1)} µs)`,
);
Deno.exit(0); // the bench guest's engine and the wake subprocess leave nothing to wait for
