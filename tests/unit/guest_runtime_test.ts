/**
 * The worker-side runtime (runtime/guest.ts) beyond requests (tests/unit/protocol_rpc_test.ts):
 *   - `send` bounds what piles up towards the host: past MAX_OUTBOUND_BACKLOG_BYTES it waits
 *     (the ring full, the host not reading) until the host — a Worker here — drains, and
 *     nothing is lost; inside `pump` it never waits (no re-entrant receive);
 *   - `call` does not re-enter the guest (deferred work waits) while `block` and `poll` do;
 *   - what is still held at exit goes to the host with `takeOutbound`, nothing lost.
 */
import assert from "node:assert/strict";
import { Link, type Message } from "../../protocol/channel.ts";
import { method } from "../../protocol/rpc.ts";
import * as s from "../../protocol/schema.ts";
import { decodeCredit } from "../../protocol/stream.ts";
import { NoticeEnvelope, Op } from "../../protocol/wire.ts";
import { GuestRuntime, GuestTerminated, MAX_OUTBOUND_BACKLOG_BYTES } from "../../runtime/guest.ts";
import { fakeGuest } from "../support/fake_guest.ts";
import { type LinkWorkerCommand, testPayload } from "../support/link_worker.ts";
import { within } from "../support/within.ts";

const ping = method("t.ping", s.object({}), s.int);

/** Starts the helper Worker; resolves once it is armed, with its "done" report. */
async function startLinkWorker(command: LinkWorkerCommand) {
  const worker = new Worker(new URL("../support/link_worker.ts", import.meta.url), { type: "module" });
  let resolveDone!: (v: Record<string, unknown>) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const armed = new Promise<void>((resolve) => {
    worker.onmessage = (e) => {
      if (e.data.armed) resolve();
      if (e.data.done) resolveDone(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      rejectDone(new Error(e.message));
    };
  });
  worker.postMessage(command);
  await armed;
  return { worker, done };
}

Deno.test("guest runtime: send waits while the outbound backlog is over its bound, and resumes when the host drains", async () => {
  const link = Link.create(1 << 16);
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16 });
  const count = 300;
  const maxPayload = 32 << 10;
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const { worker, done } = await startLinkWorker({
    kind: "consume",
    buffers: link.buffers,
    count,
    maxPayload,
    gate: gate.buffer as SharedArrayBuffer,
  });
  // If the host's draining never woke the waiting send, the safety stop ends the wait.
  const safety = await startLinkWorker({ kind: "terminate", buffers: link.buffers, delayMs: 20_000 });
  try {
    let maxBacklog = 0;
    let largest = 0;
    for (let i = 0; i < count; i++) {
      const payload = testPayload(i, maxPayload);
      largest = Math.max(largest, payload.length);
      rt.send(Op.LOG, i, payload);
      maxBacklog = Math.max(maxBacklog, link.toHost.backlogBytes);
      // The host starts reading only once the next send has to wait: until then nothing frees
      // room, so a send that did not wait would let the backlog grow with every message.
      if (link.toHost.backlogBytes > MAX_OUTBOUND_BACKLOG_BYTES && Atomics.load(gate, 0) === 0) {
        Atomics.store(gate, 0, 1);
        Atomics.notify(gate, 0);
      }
    }
    assert.equal(Atomics.load(gate, 0), 1, "the backlog never reached its bound");
    assert.ok(
      maxBacklog <= MAX_OUTBOUND_BACKLOG_BYTES + largest,
      `the backlog grew to ${maxBacklog} bytes (bound ${MAX_OUTBOUND_BACKLOG_BYTES})`,
    );
    // Whatever is still held goes out as the host keeps reading.
    assert.equal(rt.block(() => link.toHost.flush(), 30_000), true);
    const report = await within(done, "the host worker receiving everything");
    assert.deepEqual([report.received, report.mismatch], [count, ""]);
  } finally {
    safety.worker.terminate();
    worker.terminate();
  }
});

Deno.test("guest runtime: a send made while pump applies messages never waits, even over the bound", async () => {
  const link = Link.create(1 << 16);
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16 });
  // Fill the backlog to just past the bound: the next send outside pump would wait.
  for (let i = 0; link.toHost.backlogBytes <= MAX_OUTBOUND_BACKLOG_BYTES; i++) {
    rt.send(Op.LOG, 0, new Uint8Array(8000));
  }
  const held = link.toHost.backlogBytes;
  // Handlers that send while pump is applying what the host sent: a notice handler logs, a
  // stream receiver returns credit.
  let noticed = 0;
  rt.onNotice("t", "n", () => {
    noticed++;
    rt.send(Op.LOG, 1, new Uint8Array(100));
  });
  const stream = rt.openStream({ data: (f) => rt.credit(stream, f.bytes.length), event: () => {} });
  link.toGuest.send(Op.NOTICE, 0, s.encode(NoticeEnvelope, { family: "t", type: "n", info: null }));
  const frame = new Uint8Array(16 + 5);
  link.toGuest.send(Op.STREAM_DATA, stream, frame);
  // If a send inside pump waited, nothing would ever drain: the safety stop ends the wait
  // with GuestTerminated instead of hanging the test.
  const safety = await startLinkWorker({ kind: "terminate", buffers: link.buffers, delayMs: 5000 });
  try {
    rt.poll();
  } catch (e) {
    assert.ok(!(e instanceof GuestTerminated), "a send inside pump waited for the host");
    throw e;
  } finally {
    safety.worker.terminate();
  }
  assert.equal(noticed, 1);
  assert.equal(rt.messagesIn, 2);
  assert.equal(link.toHost.backlogBytes, held + 100 + 4, "both sends were queued, not waited on");
  // Everything queued reaches the host, in order.
  const got: Message[] = [];
  while (!link.toHost.flush() || link.toHost.used > 0) link.toHost.receive((m) => got.push(m));
  const tail = got.slice(-2);
  assert.deepEqual(tail.map((m) => [m.op, m.fd]), [[Op.LOG, 1], [Op.STREAM_CREDIT, stream]]);
  assert.equal(decodeCredit(tail[1].payload), 5);
});

Deno.test("guest runtime: call does not run deferred work (no re-entry mid-hostcall); block and poll do", async () => {
  const g = await fakeGuest({ families: ["core"] });
  const { rt } = g;
  const ran: string[] = [];
  rt.defer(() => ran.push("before"));
  // Work deferred by a message applied while the call waits must wait too.
  rt.onNotice("t", "defer", () => rt.defer(() => ran.push("from notice")));
  g.notice({ family: "t", type: "defer", info: null });
  g.reply(7);
  assert.deepEqual(rt.call(ping, {}, { timeoutMs: 5000 }), { ok: true, value: 7 });
  assert.equal(ran.length, 0, "deferred work ran inside a blocking request");
  rt.poll();
  assert.deepEqual(ran, ["before", "from notice"]);
  rt.defer(() => ran.push("block"));
  assert.equal(rt.block(() => true, 0), true);
  assert.deepEqual(ran, ["before", "from notice", "block"]);
  // Work deferred from deferred work runs in the same round.
  rt.defer(() => rt.defer(() => ran.push("nested")));
  rt.poll();
  assert.equal(ran.at(-1), "nested");
  // A call that times out does not run it either.
  rt.defer(() => ran.push("after timeout"));
  assert.equal(rt.call(ping, {}, { timeoutMs: 10 }).ok, false);
  assert.equal(ran.at(-1), "nested");
  rt.poll();
  assert.equal(ran.at(-1), "after timeout");
});

Deno.test("guest runtime: takeOutbound hands over what the ring could not take; the host gets every message", () => {
  const link = Link.create(1 << 12);
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16 });
  const count = 40;
  for (let i = 0; i < count; i++) rt.send(Op.LOG, i, testPayload(i, 3000));
  assert.ok(link.toHost.backlog > 0);
  const frames = rt.takeOutbound();
  assert.equal(link.toHost.backlogBytes, 0);
  const host = Link.attach(link.buffers).toHost;
  const got: Message[] = [];
  host.receive((m) => got.push(m));
  host.receiveFrames(frames, (m) => got.push(m));
  assert.deepEqual(got.map((m) => m.fd), Array.from({ length: count }, (_, i) => i));
  got.forEach((m, i) => assert.deepEqual(m.payload, testPayload(i, 3000), `message ${i}`));
});
