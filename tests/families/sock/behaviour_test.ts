/**
 * Socket behaviours beyond the conformance rows, on real Wasmtime over loopback: the O_NONBLOCK
 * connect path through epoll, timeouts, a peer's reset, names resolved on the host (and one that
 * does not resolve), curl fetching from a guest server, and flow control — a peer sends 64 MiB to
 * a guest that reads slowly; every byte arrives in order and the host's memory stays bounded.
 */
import assert from "node:assert/strict";
import { Errno, Poll } from "../../../runtime/abi.ts";
import { createDrivers } from "../../../families/registry.ts";
import { parseConfig } from "../../../host/config.ts";
import { sockDriver } from "../../../families/sock/driver.ts";
import type { GuestSession } from "../../../host/host.ts";
import {
  freePort,
  loopbackConfig,
  portOf,
  runGuest,
  SAMPLES,
  SOCK_PROBE,
  values,
  waitForPort,
} from "../../support/sock.ts";

async function probe(args: string[], options: Parameters<typeof runGuest>[2] = {}) {
  const r = await runGuest(SOCK_PROBE, args, options).done;
  assert.equal(r.exitCode, 0, `${args[0]}: ${r.failure ?? ""}\n${r.stdout}\n${r.logs.join("\n")}`);
  return values(r.stdout);
}

function expect(got: Map<string, string>, want: Record<string, number | string>): void {
  const actual = Object.fromEntries(Object.keys(want).map((k) => [k, got.get(k)]));
  assert.deepEqual(actual, Object.fromEntries(Object.entries(want).map(([k, v]) => [k, String(v)])));
}

function stop(child: Deno.ChildProcess): void {
  try {
    child.kill();
  } catch { /* it ended by itself */ }
}

/** A Python peer: runs `code` with the port as argv[1]; stopped by the test. */
async function python(code: string, port: number) {
  const child = new Deno.Command("python3", {
    args: ["-c", code, String(port)],
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  await waitForPort(port);
  return child;
}

Deno.test("sock: O_NONBLOCK connect through epoll: -EINPROGRESS, -EALREADY, EPOLLOUT; a refusal is EPOLLERR + SO_ERROR", async () => {
  expect(await probe(["nonblocking", `127.0.0.1:${freePort()}`]), {
    connect: -Errno.EINPROGRESS,
    connect_again: -Errno.EALREADY,
    recv_while_connecting: -Errno.EAGAIN,
    events: Poll.EPOLLOUT,
    so_error: 0,
    connect_when_connected: -Errno.EISCONN,
    recv_nothing: -Errno.EAGAIN,
    send: 2,
    peer_recv: 2,
    accept_empty: -Errno.EAGAIN,
    refused_connect: -Errno.EINPROGRESS,
    refused_events: Poll.EPOLLERR,
    refused_so_error: Errno.ECONNREFUSED,
    refused_so_error_cleared: 0,
    refused_events_after: 0,
    send_full: -Errno.EAGAIN, // partial counts first, then -EAGAIN on a full window
    send_took_something: 1,
    writable_again: Poll.EPOLLOUT,
  });
});

Deno.test("sock: RCVTIMEO and SNDTIMEO end blocking calls with -EAGAIN; a send that timed out keeps its count", async () => {
  expect(await probe(["timeouts"]), {
    recv_timeout: -Errno.EAGAIN,
    recv_waited: 1,
    accept_timeout: -Errno.EAGAIN,
    send_partial: 1,
    send_timeout: -Errno.EAGAIN,
    recv_after_timeout_works: 1,
  });
});

/** A peer that accepts, waits 0.3 s (the guest's connect completes first, as on a quiet machine), then resets. */
const RESETTING_PEER = `import socket, struct, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept()
    time.sleep(0.3)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()`;

Deno.test("sock: a peer's reset is -ECONNRESET once with EPOLLERR|EPOLLHUP, then sends are -EPIPE", async () => {
  const port = freePort();
  const peer = await python(RESETTING_PEER, port);
  try {
    expect(await probe(["reset", `127.0.0.1:${port}`]), {
      connect: 0,
      events: Poll.EPOLLERR | Poll.EPOLLHUP,
      recv: -Errno.ECONNRESET,
      recv_again: 0,
      send: -Errno.EPIPE,
    });
  } finally {
    stop(peer);
    await peer.output();
  }
});

Deno.test("sock: a connection its peer reset while the guest wrote frees its pipes when the guest closes it", async () => {
  const port = freePort();
  const peer = await python(RESETTING_PEER, port); // the guest is sending by then; it reads nothing
  let session: GuestSession | undefined;
  let closed!: () => void;
  const closedNow = new Promise<void>((resolve) => (closed = resolve));
  const run = runGuest(SOCK_PROBE, ["reset_close", `127.0.0.1:${port}`], {
    onSession: (s) => (session = s),
    onLog: (message) => message.includes("closed") && closed(),
  });
  try {
    await closedNow;
    // The guest still runs (3 s after its close): only that close can free the pipes now.
    for (let i = 0; i < 100 && session!.pipes.inUse > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(session!.pipes.inUse, 0, "the closed connection's pipes are freed while the guest runs");
    const done = await run.done;
    assert.equal(done.exitCode, 0, done.failure ?? done.logs.join("\n"));
    expect(values(done.stdout), { connect: 0, send_failed: 1, close: 0 });
  } finally {
    stop(peer);
    await peer.output();
  }
});

Deno.test("sock: names resolve on the host and every address is checked; an unresolvable name is -EHOSTUNREACH", async () => {
  const config = loopbackConfig({
    allow: ["tcp://service.test:*", "udp://service.test:*", "tcp://nowhere.test:*", "udp://nowhere.test:*"],
  });
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (server.addr as Deno.NetAddr).port;
  const accepting = server.accept().then((c) => c.close(), () => {});
  const resolver = (name: string) =>
    name === "service.test" ? Promise.resolve(["127.0.0.1"]) : Promise.reject(new Error("NXDOMAIN"));
  const drivers = () => [sockDriver(config, { resolver })];
  try {
    // service.test resolves to loopback: its exact entry allows that private address.
    const ok = await probe(["names", `127.0.0.1:${port}`], { config, drivers: drivers() });
    expect(ok, { connect: 0, sendto: 1 });
    const missing = await probe(["names", `nowhere.test:${port}`], { config, drivers: drivers() });
    expect(missing, { connect: -Errno.EHOSTUNREACH, sendto: -Errno.EHOSTUNREACH });
    // A wildcard entry never reaches a private address a name resolves to (DNS rebinding).
    const wild = parseConfig({ net: { allow: ["tcp://*.test:*", "udp://*.test:*"] } });
    const rebound = await probe(["names", `service.test:${port}`], {
      config: wild,
      drivers: [sockDriver(wild, { resolver })],
    });
    expect(rebound, { connect: -Errno.EACCES, sendto: -Errno.EACCES });
  } finally {
    server.close();
    await accepting;
  }
});

Deno.test("sock: curl fetches from a guest HTTP server, keep-alive and separate connections; their pipes are freed", async () => {
  let session: GuestSession | undefined;
  const guest = runGuest(SOCK_PROBE, ["http_serve", "127.0.0.1:0", "3"], { onSession: (s) => (session = s) });
  const port = portOf(await guest.listening);
  const curl = (args: string[]) =>
    new Deno.Command("curl", { args: ["-sS", "--max-time", "10", ...args], stdout: "piped", stderr: "piped" })
      .output();
  // Two requests on one kept-alive connection, then one more on a new one.
  const both = await curl([`http://127.0.0.1:${port}/one`, `http://127.0.0.1:${port}/two`]);
  assert.equal(new TextDecoder().decode(both.stderr), "");
  assert.equal(
    new TextDecoder().decode(both.stdout),
    "hello from a guest: /one\nhello from a guest: /two\n",
  );
  const third = await curl(["-i", `http://127.0.0.1:${port}/three`]);
  const text = new TextDecoder().decode(third.stdout);
  assert.match(text, /^HTTP\/1\.1 200 OK/);
  assert.match(text, /hello from a guest: \/three\n$/);
  const done = await guest.done;
  assert.equal(done.exitCode, 0, done.failure ?? done.logs.join("\n"));
  assert.equal(values(done.stdout).get("served"), "3");
  // Each connection's pipes go back once it is closed on both sides (the last FIN is async).
  for (let i = 0; i < 100 && session!.pipes.inUse > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(session!.pipes.size >= 2 * (1 << 20), "the connections had their pipes");
  assert.equal(session!.pipes.inUse, 0, "every pipe freed");
});

/** FNV-1a (32 bit) of the stream the flow-control peer sends (the same block, repeated). */
function fnv32(block: Uint8Array, repeats: number): string {
  let h = 2166136261;
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < block.length; i++) h = Math.imul(h ^ block[i], 16777619) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

Deno.test("sock: flow control — 64 MiB to a slow guest arrive intact while host memory stays bounded", async () => {
  const MIB = 1 << 20;
  const port = freePort();
  // The peer sends as fast as TCP lets it: 64 MiB of a 64 KiB block whose bytes all differ in place.
  const peer = await python(
    `import socket, sys
block = bytes(((i * 131) ^ (i >> 8)) & 255 for i in range(65536))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept()
    try:
        for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1024):
            c.sendall(block)
    except OSError:
        pass  # the readiness check's connection, closed at once
    c.close()`,
    port,
  );
  const block = new Uint8Array(65536).map((_, i) => ((i * 131) ^ (i >> 8)) & 255);
  // The waiting connection of the readiness check above is closed by the peer's loop; the guest's is next.
  let baseline = 0;
  let peak = 0;
  const sampler = setInterval(() => {
    const rss = Deno.memoryUsage().rss;
    if (baseline && rss > peak) peak = rss;
  }, 20);
  try {
    const got = await probe(["slow_read", `127.0.0.1:${port}`, "2"], {
      onLog: (m) => {
        if (m === "connected") baseline = Deno.memoryUsage().rss;
      },
      timeoutMs: 120_000,
    });
    assert.equal(got.get("total"), String(64 * MIB));
    assert.equal(got.get("fnv"), fnv32(block, 1024), "every byte, in order");
    const metrics = JSON.parse(got.get("metrics")!);
    assert.equal(metrics.bytes_received, 64 * MIB);
    assert.equal(metrics.receive_window, 65536);
    assert.ok(baseline > 0);
    const grew = Math.max(0, peak - baseline);
    assert.ok(grew < 24 * MIB, `host RSS grew by ${(grew / MIB).toFixed(1)} MiB while 64 MiB went through`);
  } finally {
    clearInterval(sampler);
    stop(peer);
    await peer.output();
  }
});

Deno.test("sock: past the host budget, a connect is -ENOMEM and an accepted connection is closed and counted by its listener", async () => {
  const got = await probe(["over_budget"]);
  assert.equal(got.get("connected"), "3", "the kernel completed every handshake");
  assert.equal(got.get("accepted"), "1", "two 16 MiB windows each way fit the 64 MiB budget once");
  assert.equal(got.get("big_connect"), String(-Errno.ENOMEM), "a connect whose windows do not fit");
  const metrics = JSON.parse(got.get("listener_metrics")!);
  assert.equal(metrics.accepts_over_budget, 2);
  assert.equal(metrics.accepted, 1);
});

Deno.test("sock: GET_METRICS counts bytes and connect latency; the driver closes everything when the guest ends", async () => {
  const config = loopbackConfig();
  const driver = sockDriver(config);
  const drivers = [...(await createDrivers(config)).filter((d) => d.family !== "sock"), driver];
  const got = await probe(["nonblocking", `127.0.0.1:${freePort()}`], { config, drivers });
  assert.equal(got.get("send"), "2");
  assert.equal(driver.openHandles, 0, "listeners and connections closed after the guest ended");
});

Deno.test("sock: a connection or datagram from a source no entry covers is closed or dropped; the guest never sees it", async () => {
  // net.listen covers 127.0.0.1 only: a peer on 127.0.0.2 is refused in silence, one on 127.0.0.1 is served.
  const config = parseConfig({ net: { listen: ["tcp://127.0.0.1:*", "udp://127.0.0.1:*"] } });
  const tcpDriver = sockDriver(config);
  const server = runGuest(SOCK_PROBE, ["http_serve", "127.0.0.1:0", "1"], { config, drivers: [tcpDriver] });
  const port = portOf(await server.listening);
  const fromOther = await new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, sys
s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(5)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /sneaky HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
try:
    print(len(s.recv(100)))
except OSError as e:
    print("error", e)`,
      String(port),
    ],
    stdout: "piped",
  }).output();
  const refused = new TextDecoder().decode(fromOther.stdout).trim();
  assert.ok(refused === "0" || refused.startsWith("error"), `closed without an answer, got: ${refused}`);
  const served = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "10", `http://127.0.0.1:${port}/allowed`],
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(served.stdout), "hello from a guest: /allowed\n");
  const done = await server.done;
  assert.equal(values(done.stdout).get("served"), "1", "the refused connection never reached the guest");
  assert.equal(tcpDriver.deniedInbound, 1);

  // The UDP server answers with sendto, which net.allow governs: it may answer 127.0.0.1 only.
  const udpConfig = parseConfig({ net: { allow: ["udp://127.0.0.1:*"], listen: ["udp://127.0.0.1:*"] } });
  const udpDriver = sockDriver(udpConfig);
  const udp = runGuest(`${SAMPLES}/udp_server.wasm`, ["127.0.0.1:0", "1"], {
    config: udpConfig,
    drivers: [udpDriver],
  });
  const udpPort = portOf(await udp.listening);
  const pair = await new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, sys
port = int(sys.argv[1])
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); other.bind(("127.0.0.3", 0)); other.settimeout(0.5)
other.sendto(b"sneaky", ("127.0.0.1", port))
try:
    other.recv(100); print("answered")
except socket.timeout:
    print("dropped")
ok = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); ok.settimeout(5)
ok.sendto(b"hello", ("127.0.0.1", port)); print(ok.recv(100).decode())`,
      String(udpPort),
    ],
    stdout: "piped",
  }).output();
  assert.deepEqual(new TextDecoder().decode(pair.stdout).trim().split("\n"), ["dropped", "pong hello"]);
  const udpDone = await udp.done;
  assert.equal(udpDone.exitCode, 0, udpDone.logs.join("\n"));
  assert.equal(udpDriver.deniedInbound, 1);
});
