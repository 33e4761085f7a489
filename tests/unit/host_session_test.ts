/**
 * GuestSession (host/host.ts), the main-thread view of one guest, against a GuestRuntime on
 * the other end of a Link in this thread (no Wasmtime): host → guest streams and host-created
 * handles (negative ids, a notice the worker adopts), guest → host streams with credit
 * (`receiveStream`, `credit`, `rt.onCredit`), STREAM_CLOSE reaching both kinds, and `end()`.
 */
import assert from "node:assert/strict";
import { GuestSession, type InboundStream } from "../../host/host.ts";
import { defaultConfig } from "../../host/config.ts";
import { Link, type Message } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import type { StreamFrame } from "../../protocol/stream.ts";
import { Op } from "../../protocol/wire.ts";
import { GuestRuntime } from "../../runtime/guest.ts";
import type { NoticeEnvelope } from "../../protocol/wire.ts";

function setup() {
  const link = Link.create(1 << 16);
  const budget = HostBudget.create(1 << 24);
  const session = new GuestSession(1, "g", link, defaultConfig(), budget);
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16, budget });
  /** Applies what the guest sent, as the host's serve loop does for stream ops. */
  const serve = () => {
    const other: Message[] = [];
    link.toHost.flush();
    link.toHost.receive((m) => {
      if (m.op >= Op.STREAM_DATA && m.op <= Op.STREAM_CLOSE) session.applyStream(m);
      else other.push(m);
    });
    return other;
  };
  return { link, budget, session, rt, serve };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed * 7 + i) & 0xff);
}

Deno.test("session: a host-created handle — negative stream id, a notice the worker adopts, data and events follow", () => {
  const { link, session, rt, serve } = setup();
  const notices: NoticeEnvelope[] = [];
  const frames: StreamFrame[] = [];
  const events: Record<string, unknown>[] = [];
  rt.onNotice("fam", "conn", (n) => {
    notices.push(n);
    rt.adoptStream(n.stream!, { data: (f) => frames.push(f), event: (e) => events.push(e) });
  });
  let closedByGuest = 0;
  const { sender: a } = session.createHandle(
    "fam",
    "conn",
    { peer: "x" },
    { mode: "credit", window: 10 },
    () => closedByGuest++,
  );
  const { sender: b } = session.createHandle("fam", "conn", { peer: "y" }, { mode: "lossy" });
  assert.deepEqual([a.id, b.id], [-1, -2]);
  assert.equal(a.send(bytes(10, 1)), true);
  assert.equal(a.send(bytes(1, 2)), false, "the window is 10 bytes");
  b.send(bytes(3, 3));
  a.event({ type: "end" });
  rt.poll();
  assert.deepEqual(notices, [
    { family: "fam", type: "conn", stream: -1, info: { peer: "x" } },
    { family: "fam", type: "conn", stream: -2, info: { peer: "y" } },
  ]);
  assert.deepEqual(frames.map((f) => [...f.bytes]), [[...bytes(10, 1)], [...bytes(3, 3)]]);
  assert.deepEqual(events, [{ type: "end", dropped: 0 }]);
  // The guest's reader returns credit: the host's sender may send again.
  let resumed = 0;
  a.whenWritable(() => resumed++);
  rt.credit(-1, 4);
  serve();
  assert.equal(resumed, 1);
  assert.equal(a.available, 4);
  // The guest closes its end: the producer is closed and told, once.
  rt.closeStream(-1);
  rt.closeStream(-1);
  serve();
  assert.equal(a.closed, true);
  assert.equal(closedByGuest, 1);
  assert.equal(a.send(bytes(1, 4)), false);
  rt.credit(-1, 4); // credit for a stream the guest no longer has is not sent
  assert.deepEqual([link.toHost.used, link.toHost.backlog], [0, 0]);
});

Deno.test("session: a guest → host stream with credit — receiveStream gets items in order, credit returns to the guest's writer", () => {
  const { session, rt, serve } = setup();
  const sender = rt.openOutbound(100);
  const id = sender.id;
  const received: Uint8Array[] = [];
  const events: Record<string, unknown>[] = [];
  let closed = 0;
  const inbound: InboundStream = {
    data: (b) => received.push(b),
    event: (e) => events.push(e),
    closed: () => closed++,
  };
  session.receiveStream(id, inbound);
  const items = Array.from({ length: 20 }, (_, i) => bytes(10 + (i % 5) * 10, i));
  let next = 0;
  let credited = 0;
  let waits = 0;
  for (let rounds = 0; next < items.length; rounds++) {
    assert.ok(rounds < 100, "stalled");
    while (next < items.length && sender.send(items[next])) next++;
    if (next < items.length) waits++;
    assert.ok(sender.sentBytes - credited <= 100, "more than the window outstanding");
    serve();
    // The host's consumer took everything that arrived: it credits the guest's writer.
    const consumed = received.reduce((n, b) => n + b.length, 0);
    session.credit(id, consumed - credited);
    credited = consumed;
    rt.poll();
  }
  assert.ok(waits > 3, "the writer ran out of credit");
  sender.event({ type: "end" });
  rt.closeStream(id);
  serve();
  assert.deepEqual(received, items);
  assert.deepEqual(events, [{ type: "end", dropped: 0 }]);
  assert.equal(closed, 1);
});

Deno.test("session: end() stops every sender and runs cleanups once; nothing is sent afterwards", () => {
  const { link, session } = setup();
  const stopped: string[] = [];
  const a = session.openStream(5, { mode: "lossy" }, () => stopped.push("a"));
  session.openStream(6, { mode: "credit", window: 1 }, () => {
    throw new Error("a failing cleanup");
  });
  session.onEnd(() => stopped.push("cleanup"));
  assert.equal(session.alive, true);
  session.end();
  session.end();
  assert.equal(session.alive, false);
  assert.deepEqual(stopped, ["a", "cleanup"], "each ran once, a failing one did not stop the rest");
  assert.equal(a.closed, true);
  session.onEnd(() => stopped.push("late"));
  assert.deepEqual(stopped, ["a", "cleanup", "late"], "a cleanup registered after the end runs at once");
  const used = link.toGuest.used;
  session.send(Op.NOTICE, 0, new Uint8Array(3));
  session.notice("f", "t", null);
  assert.equal(link.toGuest.used, used, "an ended session sends nothing");
});

Deno.test("session: a lossy stream reads the guest's ring levels live — it drops once the ring fills, not by a snapshot", () => {
  const { link, session } = setup();
  const sender = session.openStream(7, { mode: "lossy" });
  assert.equal(sender.send(bytes(100, 1)), true, "an empty ring takes the item");
  // The guest stops draining: fill its ring past half without consuming.
  link.toGuest.send(99, 0, new Uint8Array(link.toGuest.capacity / 2));
  assert.equal(sender.send(bytes(100, 2)), false, "a congested ring drops the item");
  assert.equal(sender.dropped, 1);
});
