/**
 * User streams end to end on real Wasmtime over loopback: the six imports' checks, the endpoint
 * (token, Origin, net.listen, several clients and streams, frames before the ctl fd, credit and
 * overrun, clean closes both ways) with C guests (tests/guests/ustream_probe.c and SPEAR's
 * user_stream_echo) and Deno's WebSocket as the client.
 */
import assert from "node:assert/strict";
import { Errno } from "../../../runtime/abi.ts";
import { parseConfig } from "../../../host/config.ts";
import { SpearHost } from "../../../host/host.ts";
import { EndpointError, UserStreamEndpoint } from "../../../families/user_stream/endpoint.ts";
import { UserStreamLimits } from "../../../families/user_stream/protocol.ts";
import {
  logValues,
  serveConfig,
  serveGuest,
  StreamClient,
  upgradeStatus,
  USTREAM_ECHO,
  USTREAM_PROBE,
} from "../../support/ustream.ts";
import { within } from "../../support/within.ts";

Deno.test("user_stream: the calls' checks (SPEAR's order and errnos, -ENOSPC keeps, write returns 0)", async () => {
  const served = await serveGuest(USTREAM_PROBE, ["abi"]);
  const r = await served.done;
  assert.equal(r.exitCode, 0, served.logs.join("\n"));
  const v = logValues(served.logs);
  const want: Record<string, number> = {
    open_dir0: -Errno.EINVAL,
    open_dir4: -Errno.EINVAL,
    open_negative: -Errno.EINVAL,
    open_ok: 1,
    write_before_client: -Errno.ENOTCONN,
    write_in_only: -Errno.EINVAL,
    write_bad_pointer: -Errno.EFAULT,
    write_short: -Errno.EINVAL,
    write_negative_len: -Errno.EINVAL,
    write_other_stream: -Errno.EINVAL,
    write_bad_magic: -Errno.EINVAL,
    write_bad_lengths: -Errno.EINVAL,
    write_unknown_fd: -Errno.EBADF,
    read_out_only: -Errno.EINVAL,
    read_empty: -Errno.EAGAIN,
    read_bad_len_ptr: -Errno.EFAULT,
    ctl_open_ok: 1,
    ctl_read_empty: -Errno.EAGAIN,
    read_on_ctl: -Errno.EBADF,
    ctl_read_on_stream: -Errno.EBADF,
    close: 0,
    close_again: 0,
    write_closed: -Errno.EBADF,
    close_ctl: 0,
    close_epoll_kind_with_stream_close: 0,
  };
  for (const [k, n] of Object.entries(want)) assert.equal(v.get(k), String(n), k);
  assert.equal(v.get("kind"), '{"kind":"UserStream"}');
  const metrics = JSON.parse(v.get("metrics")!);
  assert.equal(metrics.execution_id, served.endpoint.run);
  assert.equal(metrics.stream_id, 7);
  assert.equal(metrics.direction, "Bidi");
  assert.equal(metrics.conn_state, "Init");
  assert.equal(metrics.max_inbound_bytes, UserStreamLimits.MAX_INBOUND_BYTES);
  assert.equal(metrics.max_frame_bytes, UserStreamLimits.MAX_FRAME_BYTES);
  assert.deepEqual(JSON.parse(v.get("ctl_metrics")!), {
    execution_id: served.endpoint.run,
    pending_len: 0,
    max_pending: UserStreamLimits.MAX_CTL_PENDING,
    dropped: 0,
  });
});

Deno.test("user_stream: without an endpoint the opens are -ENOTCONN (as SPEAR without an execution)", async () => {
  const logs: string[] = [];
  const host = new SpearHost({
    config: serveConfig(),
    cacheDir: null,
    logSink: (_g, _l, m) => logs.push(m.trim()),
  });
  try {
    const r = await host.run(USTREAM_PROBE, { args: ["abi"], timeoutMs: 30_000 });
    assert.equal(r.exitCode, 0);
  } finally {
    await host.close();
  }
  const v = logValues(logs);
  assert.equal(v.get("open_negative"), String(-Errno.ENOTCONN));
  assert.equal(v.get("open_ok"), "0");
  assert.equal(v.get("ctl_open_ok"), "0");
});

Deno.test("user_stream: frames sent before the ctl fd wait; STREAM_CONNECTED once per stream; two clients; SESSION_CLOSED when the last leaves", async () => {
  const served = await serveGuest(USTREAM_PROBE, ["late", "700"]);
  const token = served.endpoint.token;
  const a = await StreamClient.connect(served.endpoint.url, token);
  const b = await StreamClient.connect(served.endpoint.url, token);
  // All sent while the guest sleeps, before it has any user-stream fd.
  a.send(1, "one", 1);
  a.send(1, "two", 2);
  a.send(1, "three", 3);
  b.send(2, "bee", 1);
  const acks = await a.waitFrames(3, "a's acks");
  assert.deepEqual(acks.map((f) => [f.streamId, f.text]), [[1, "ack:one"], [1, "ack:two"], [1, "ack:three"]]);
  assert.deepEqual((await b.waitFrames(1, "b's ack")).map((f) => f.text), ["ack:bee"]);
  // A stream belongs to its client: b may not write on a's stream.
  b.send(1, "intrusion");
  const refused = await within(b.closed, "b closed");
  assert.equal(refused.code, 1008);
  assert.match(refused.reason, /stream 1 is in use by another client/);
  await served.logged(/^hup=2$/, "b's stream ends with EPOLLHUP");
  assert.ok(!served.logs.includes("event=0:2"), "no SESSION_CLOSED while a is connected");
  a.send(1, "four", 4);
  assert.equal((await a.waitFrames(4))[3].text, "ack:four");
  await a.close();
  const r = await served.done;
  assert.equal(r.exitCode, 0, served.logs.join("\n"));
  const events = served.logs.filter((l) => l.startsWith("event="));
  assert.deepEqual(events.filter((e) => e.endsWith(":1")).sort(), ["event=1:1", "event=2:1"]);
  assert.equal(events.at(-1), "event=0:2");
  // Every first read into 8 bytes was -ENOSPC with the frame's length, and the frame stayed.
  const small = served.logs.filter((l) => l.startsWith("small_read="));
  assert.equal(small.length, 5);
  for (const line of small) assert.match(line, new RegExp(`^small_read=${-Errno.ENOSPC} needed=3[2-9]$`));
  assert.deepEqual(served.logs.filter((l) => l.startsWith("write=")), Array(5).fill("write=0"));
  assert.ok(served.logs.includes("hup=1"));
  assert.ok(served.logs.includes(`write_after_hup=${-Errno.EPIPE}`));
});

Deno.test("user_stream: a client that sends more than the guest has room for is closed (1008); the guest sees EPOLLERR", async () => {
  const served = await serveGuest(USTREAM_PROBE, ["stall"]);
  await served.logged(/^ready=1$/);
  const client = await StreamClient.connect(served.endpoint.url, served.endpoint.token);
  // Nine frames of 256 KiB: the ninth is past the 2 MiB the guest has room for.
  const chunk = new Uint8Array(UserStreamLimits.MAX_FRAME_BYTES - 32);
  for (let i = 0; i < 9; i++) client.send(1, chunk, i + 1);
  const closed = await within(client.closed, "closed for overrunning");
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /stream 1: the guest has 2097152 bytes unread/);
  await served.logged(/^err=1$/);
  const metrics = JSON.parse((await served.logged(/^err_metrics=/)).slice("err_metrics=".length));
  assert.equal(metrics.conn_state, "Error");
  assert.ok(metrics.inbound_bytes <= UserStreamLimits.MAX_INBOUND_BYTES, JSON.stringify(metrics));
  assert.equal(metrics.inbound_len, 8, JSON.stringify(metrics)); // the frames that fitted stay readable
  const r = await served.done;
  assert.equal(r.exitCode, 0, served.logs.join("\n"));
});

Deno.test("user_stream: token, Origin and protocol checks; a bad frame closes its client with a reason", async () => {
  const served = await serveGuest(USTREAM_ECHO);
  const { endpoint } = served;
  const port = endpoint.address.port;
  try {
    assert.equal(await upgradeStatus(port, {}), 401);
    assert.equal(await upgradeStatus(port, { Authorization: "Bearer wrong" }), 401);
    assert.equal(await upgradeStatus(port, { Authorization: `Bearer ${endpoint.token}x` }), 401);
    // Another site's page is refused even with the token; the endpoint's own page is let in.
    const bearer = { Authorization: `Bearer ${endpoint.token}` };
    assert.equal(await upgradeStatus(port, { ...bearer, Origin: "http://evil.example" }), 403);
    assert.equal(await upgradeStatus(port, { ...bearer, Origin: `http://localhost:${port + 1}` }), 403);
    const protocols = `spear.ssf.v1, spear.token.${endpoint.token}`;
    assert.equal(
      await upgradeStatus(port, { "Sec-WebSocket-Protocol": protocols, Origin: `http://127.0.0.1:${port}` }),
      101,
    );
    assert.equal(
      await upgradeStatus(port, { "Sec-WebSocket-Protocol": "spear.ssf.v1, spear.token.nope" }),
      401,
    );
    assert.deepEqual(endpoint.stats.refused, { token: 4, origin: 2, busy: 0 });

    const bad = await StreamClient.connect(endpoint.url, endpoint.token);
    bad.ws.send(new Uint8Array(40));
    assert.deepEqual(await bad.closed, { code: 1002, reason: "bad SSF frame: bad magic (not SPST)" });
    const text = await StreamClient.connect(endpoint.url, endpoint.token);
    text.ws.send("hello");
    assert.equal((await text.closed).code, 1003);
    const big = await StreamClient.connect(endpoint.url, endpoint.token);
    big.send(3, new Uint8Array(UserStreamLimits.MAX_FRAME_BYTES));
    const tooBig = await big.closed;
    assert.equal(tooBig.code, 1009);
    assert.match(tooBig.reason, /at most 262144/);
  } finally {
    // The echo guest ends when the last client leaves (SESSION_CLOSED).
    const last = await StreamClient.connect(endpoint.url, endpoint.token);
    await last.close();
    await served.done;
  }
  assert.ok(served.logs.includes("session closed"), served.logs.join("\n"));
});

Deno.test("user_stream: the listen address must pass net.listen", async () => {
  await assert.rejects(
    () => UserStreamEndpoint.listen(parseConfig({}), { hostname: "127.0.0.1", port: 0 }),
    (e) => e instanceof EndpointError && /not in net\.listen/.test(e.message),
  );
  await assert.rejects(
    () =>
      UserStreamEndpoint.listen(parseConfig({ net: { listen: ["tcp://127.0.0.1:9"] } }), {
        hostname: "0.0.0.0",
        port: 9,
      }),
    EndpointError,
  );
});

Deno.test("user_stream: SPEAR's echo spins with OUT in its interest set; the host stays responsive and the time limit holds", async () => {
  const host = new SpearHost({ config: serveConfig(), cacheDir: null, logSink: () => {} });
  try {
    const served = await serveGuest(USTREAM_ECHO, [], { timeoutMs: 4000, host });
    const client = await StreamClient.connect(served.endpoint.url, served.endpoint.token);
    client.send(5, "first");
    await client.waitFrames(1, "first echo"); // from now on the guest spins
    // While it spins: more echoes, on another stream too, and another guest runs to completion.
    client.send(5, "second", 2);
    client.send(6, "other", 1);
    const frames = await client.waitFrames(3, "echoes while spinning");
    assert.deepEqual(frames.map((f) => [f.streamId, f.text]), [[5, "first"], [5, "second"], [6, "other"]]);
    assert.deepEqual(frames[0].bytes.subarray(0, 4), new TextEncoder().encode("SPST"));
    const hello = await host.run(new URL("../../../guests/build/hello.wasm", import.meta.url).pathname, {
      timeoutMs: 20_000,
    });
    assert.equal(hello.exitCode, 0);
    const r = await served.done;
    assert.equal(r.exitCode, 124, JSON.stringify(r.failure));
    const closed = await client.closed;
    assert.equal(closed.code, 1000);
    assert.match(closed.reason, /the guest stopped: timeout after 4000 ms/);
  } finally {
    await host.close();
  }
});

Deno.test("user_stream: when the guest exits, its clients get close 1000 with the reason", async () => {
  const served = await serveGuest(USTREAM_PROBE, ["once"]);
  const client = await StreamClient.connect(served.endpoint.url, served.endpoint.token);
  const watcher = await StreamClient.connect(served.endpoint.url, served.endpoint.token);
  client.send(1, "x");
  assert.equal((await client.waitFrames(1))[0].text, "ack:x"); // written just before exiting
  const r = await served.done;
  assert.equal(r.exitCode, 3);
  for (const c of [client, watcher]) {
    assert.deepEqual(await c.closed, { code: 1000, reason: "the guest exited with code 3" });
  }
  assert.equal(served.endpoint.stats.framesOut, 1);
});
