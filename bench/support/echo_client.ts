/**
 * The client of bench/sock_echo.ts, in a process of its own so that it competes with neither
 * echo server for the host's main thread. Usage: echo_client.ts PORT throughput MIB | latency ROUNDS.
 * Prints one JSON line: {mbPerS} or {p50Us, p99Us}.
 */
const [portText, mode, countText] = Deno.args;
const port = Number(portText);
const count = Number(countText);

async function throughput(mib: number): Promise<{ mbPerS: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const chunk = new Uint8Array(64 * 1024).map((_, i) => i & 255);
  const total = mib * 1024 * 1024;
  const started = performance.now();
  const writing = (async () => {
    for (let sent = 0; sent < total;) {
      sent += await conn.write(chunk.subarray(0, Math.min(chunk.length, total - sent)));
    }
    await conn.closeWrite();
  })();
  const buffer = new Uint8Array(256 * 1024);
  let received = 0;
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += n;
  }
  await writing;
  const seconds = (performance.now() - started) / 1000;
  conn.close();
  if (received !== total) throw new Error(`echoed ${received} of ${total} bytes`);
  return { mbPerS: total / (1024 * 1024) / seconds };
}

async function latency(rounds: number): Promise<{ p50Us: number; p99Us: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const ping = new Uint8Array(64).fill(7);
  const pong = new Uint8Array(64);
  const rtts: number[] = [];
  for (let i = 0; i < rounds + 200; i++) {
    const t0 = performance.now();
    for (let at = 0; at < ping.length;) at += await conn.write(ping.subarray(at));
    for (let got = 0; got < ping.length;) {
      const n = await conn.read(pong.subarray(got));
      if (n === null) throw new Error("closed");
      got += n;
    }
    if (i >= 200) rtts.push((performance.now() - t0) * 1000);
  }
  conn.close();
  rtts.sort((a, b) => a - b);
  return { p50Us: rtts[Math.floor(rtts.length / 2)], p99Us: rtts[Math.floor(rtts.length * 0.99)] };
}

console.log(JSON.stringify(mode === "throughput" ? await throughput(count) : await latency(count)));
