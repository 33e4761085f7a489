/**
 * The socket samples (guests/src) on real Wasmtime against peers nobody here wrote, all on
 * loopback and started by the tests: Python's http.server for the HTTP client, curl and Deno
 * clients for the echo server, a real redis-server for the Redis client, socat's UDP echo and the
 * sample UDP server for the UDP client.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../../host/config.ts";
import {
  loopbackConfig,
  portOf,
  runGuest,
  SAMPLES,
  startHttpServer,
  startRedis,
  startUdpEcho,
} from "../../support/sock.ts";

Deno.test("sock peers: the HTTP/1.1 client fetches a 3 MiB file and a 404 from Python's http.server", async () => {
  const dir = await Deno.makeTempDir();
  const body = new Uint8Array(3 << 20).map((_, i) => (i * 31 + (i >> 9)) & 255);
  await Deno.writeFile(`${dir}/blob.bin`, body);
  await Deno.writeTextFile(`${dir}/hello.txt`, "hello from python\n");
  const server = await startHttpServer(dir);
  try {
    const small = await runGuest(`${SAMPLES}/http_client.wasm`, [`127.0.0.1:${server.port}`, "/hello.txt"])
      .done;
    assert.equal(small.exitCode, 0, small.failure ?? small.logs.join("\n"));
    assert.equal(small.stdout, "hello from python\n");
    assert.ok(small.logs.some((l) => l.includes("status 200")));

    // stdout is text here, so compare the bytes through a file of its own.
    const big = await runGuest(`${SAMPLES}/http_client.wasm`, [`localhost:${server.port}`, "/blob.bin"], {
      config: loopbackConfig({ allow: [`tcp://localhost:${server.port}`] }),
    }).done;
    assert.equal(big.exitCode, 0, big.failure ?? big.logs.join("\n"));
    assert.ok(big.logs.some((l) => l.includes(`${body.length} body bytes`)), big.logs.join("\n"));

    const missing = await runGuest(`${SAMPLES}/http_client.wasm`, [`127.0.0.1:${server.port}`, "/nope"]).done;
    assert.equal(missing.exitCode, 1);
    assert.ok(missing.logs.some((l) => l.includes("status 404")));
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sock peers: the HTTP client is refused (-EACCES) where net.allow does not reach", async () => {
  const server = await startHttpServer(Deno.cwd());
  try {
    const r = await runGuest(`${SAMPLES}/http_client.wasm`, [`127.0.0.1:${server.port}`, "/"], {
      config: parseConfig({ net: { allow: ["tcp://127.0.0.1:1"] } }),
    }).done;
    assert.equal(r.exitCode, 1);
    assert.ok(r.logs.some((l) => l.includes("connect") && l.includes("-13")), r.logs.join("\n"));
  } finally {
    await server.stop();
  }
});

Deno.test("sock peers: curl and Deno clients talk to the echo server at once, one epoll loop", async () => {
  const guest = runGuest(`${SAMPLES}/echo_server.wasm`, ["127.0.0.1:0", "4"]);
  const addr = await guest.listening;
  const port = portOf(addr);
  const payload = "line one\nline two\n";
  // curl's telnet:// sends its stdin and prints what comes back; it ends when the server closes.
  const curl = (async () => {
    const child = new Deno.Command("curl", {
      args: ["-sS", "--max-time", "10", `telnet://127.0.0.1:${port}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(payload));
    await writer.close();
    return child.output();
  })();
  const deno = Array.from({ length: 3 }, async (_, k) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const data = new Uint8Array(1 << 20).map((_, i) => (i + k) & 255);
    const writing = conn.write(data).then(() => conn.closeWrite());
    const got = new Uint8Array(data.length + 1);
    let n = 0;
    for (;;) {
      const r = await conn.read(got.subarray(n));
      if (r === null) break;
      n += r;
    }
    await writing;
    conn.close();
    return n === data.length && got.subarray(0, n).every((v, i) => v === data[i]);
  });
  assert.deepEqual(await Promise.all(deno), [true, true, true]);
  // curl keeps its connection open after stdin ends (telnet has no half-close), so the echo server
  // ends it: the 4th client is counted when curl's connection times out or closes.
  const out = await curl;
  assert.equal(new TextDecoder().decode(out.stdout), payload);
  const done = await guest.done;
  assert.equal(done.exitCode, 0, done.failure ?? done.logs.join("\n"));
  assert.ok(done.logs.some((l) => l.includes("served 4 clients")));
});

Deno.test("sock peers: the Redis client speaks RESP to a real redis-server", async () => {
  const redis = await startRedis();
  try {
    const r = await runGuest(`${SAMPLES}/redis_client.wasm`, [
      `127.0.0.1:${redis.port}`,
      "spear:key",
      "hello",
    ]).done;
    assert.equal(r.exitCode, 0, r.failure ?? r.logs.join("\n"));
    assert.deepEqual(r.stdout.trim().split("\n"), [
      "PING -> PONG",
      "SET -> OK",
      'GET -> "hello"',
      "INCR -> (integer) 1",
      "INCR -> (integer) 2",
      "DEL -> (integer) 2",
      "GET -> (nil)",
    ]);
    // The server saw it: redis-cli (Debian's) reads what the guest did.
    const info = await new Deno.Command("redis-cli", {
      args: ["-p", String(redis.port), "INFO", "commandstats"],
      stdout: "piped",
    }).output();
    assert.match(new TextDecoder().decode(info.stdout), /cmdstat_incr:calls=2/);
  } finally {
    await redis.stop();
  }
});

Deno.test("sock peers: the UDP client gets its answers from socat's UDP echo", async () => {
  const echo = await startUdpEcho();
  try {
    const r = await runGuest(`${SAMPLES}/udp_client.wasm`, [`127.0.0.1:${echo.port}`, "3"]).done;
    assert.equal(r.exitCode, 0, r.failure ?? r.logs.join("\n"));
    assert.deepEqual(r.stdout.trim().split("\n"), ["ping 1", "ping 2", "ping 3"]);
  } finally {
    await echo.stop();
  }
});

Deno.test("sock peers: the UDP request/response pair, two guests on one loopback", async () => {
  const server = runGuest(`${SAMPLES}/udp_server.wasm`, ["127.0.0.1:0", "3"]);
  const addr = await server.listening;
  const client = await runGuest(`${SAMPLES}/udp_client.wasm`, [addr, "3"]).done;
  assert.equal(client.exitCode, 0, client.failure ?? client.logs.join("\n"));
  assert.deepEqual(client.stdout.trim().split("\n"), ["pong ping 1", "pong ping 2", "pong ping 3"]);
  const done = await server.done;
  assert.equal(done.exitCode, 0, done.failure ?? done.logs.join("\n"));
});
