/**
 * User streams: frame round-trip latency through the endpoint — a WebSocket client, the host's
 * endpoint, the thread boundary both ways, SPEAR's user_stream_echo on real Wasmtime — against a
 * plain Deno WebSocket echo (Deno.serve + upgradeWebSocket, echoing in the handler) in this same
 * process and run, driven by the same client in its own process (bench/support/ws_echo_client.py,
 * Python's `websockets` from Debian, installed by `scripts/setup.sh --test`).
 * Each figure is the median of RUNS runs' p50 (and p99); the endpoint's guest is a fresh run each
 * time (it ends when its client leaves). Run: deno task bench:ustream [ROUNDS]
 */
import { SpearHost } from "../host/host.ts";
import { parseConfig } from "../host/config.ts";
import { UserStreamEndpoint } from "../families/user_stream/endpoint.ts";

const ROUNDS = Number(Deno.args[0] ?? 1000);
const RUNS = 3;
const SIZES = [64, 1024, 64 * 1024];
const root = new URL("../", import.meta.url).pathname;
const ECHO = `${root}guests/build/user_stream_echo.wasm`;

interface Stats {
  p50: number;
  p99: number;
  mean: number;
}

async function client(url: string, token: string, size: number): Promise<Stats> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${root}bench/support/ws_echo_client.py`, url, token, String(ROUNDS), String(size)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`the bench client failed against ${url}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The floor: the same WebSocket round trip with the echo in Deno itself. */
function denoEcho(): { url: string; close: () => Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => socket.send(e.data as ArrayBuffer);
    return response;
  });
  return { url: `ws://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

const config = parseConfig({ net: { listen: ["tcp://127.0.0.1:0"] } });
const host = new SpearHost({ config, logSink: () => {} });

/** One run of the guest behind an endpoint, measured by one client. */
async function throughEndpoint(size: number): Promise<Stats> {
  const endpoint = await UserStreamEndpoint.listen(config, { hostname: "127.0.0.1", port: 0 });
  let attached!: () => void;
  const ready = new Promise<void>((r) => (attached = r));
  const run = host.run(ECHO, {
    timeoutMs: 600_000,
    context: endpoint.context,
    onSession: (s) => {
      endpoint.attach(s);
      attached();
    },
  });
  await ready;
  let stats: Stats;
  try {
    stats = await client(endpoint.url, endpoint.token, size);
  } finally {
    await run; // the client left (or failed): SESSION_CLOSED ends the echo
    await endpoint.finish("bench done");
    await endpoint.close();
  }
  const result = await run;
  if (result.exitCode !== 0) throw new Error(`the echo guest failed: ${JSON.stringify(result.failure)}`);
  return stats;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const us = (x: number) => `${x.toFixed(0)} µs`;

console.log(`user stream frame round trip, ${ROUNDS} rounds per run, median of ${RUNS} runs (p50 / p99)`);
console.log("| frame data | endpoint + guest echo | plain Deno WebSocket echo | ratio (p50) | added (p50) |");
console.log("| ---------- | --------------------- | ------------------------- | ----------- | ----------- |");
const floor = denoEcho();
try {
  for (const size of SIZES) {
    const guest: Stats[] = [];
    const deno: Stats[] = [];
    for (let i = 0; i < RUNS; i++) {
      guest.push(await throughEndpoint(size));
      deno.push(await client(floor.url, "-", size));
    }
    const g50 = median(guest.map((s) => s.p50));
    const d50 = median(deno.map((s) => s.p50));
    const g99 = median(guest.map((s) => s.p99));
    const d99 = median(deno.map((s) => s.p99));
    console.log(
      `| ${String(size).padStart(6)} B   | ${us(g50)} / ${us(g99)} | ${us(d50)} / ${us(d99)} | ${
        (g50 / d50).toFixed(2)
      }× | ${us(g50 - d50)} |`,
    );
  }
} finally {
  await floor.close();
  await host.close();
}
