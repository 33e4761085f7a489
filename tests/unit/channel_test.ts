/**
 * The SPSC ring channel and Link (protocol/channel.ts): framing across the wrap point with
 * varied sizes, ordering, the producer backlog when the ring is full (nothing lost), u32
 * counter wrap, cross-thread delivery through a Worker, fragmented large messages, the
 * backlog's byte count, handing the backlog over when the producer goes away (drainBacklog +
 * receiveFrames), and the first-wins terminate reason.
 */
import assert from "node:assert/strict";
import { Channel, type Frame, Link, type Message, TerminateReason } from "../../protocol/channel.ts";
import * as s from "../../protocol/schema.ts";
import { decode, encode } from "../../protocol/schema.ts";
import { type LinkWorkerCommand, testPayload } from "../support/link_worker.ts";

function payload(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (seed * 131 + i * 7) & 0xff;
  return out;
}

function drain(ch: Channel, onSpace?: () => void): Message[] {
  const got: Message[] = [];
  ch.receive((m) => got.push(m), onSpace);
  return got;
}

/** Resolves when `ch`'s bell moves or after `ms`, whichever is first (no timer left behind). */
async function waitBellOrTimeout(ch: Channel, seen: number, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([ch.waitBellAsync(seen), new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}

Deno.test("channel: messages of varied sizes survive many wrap-arounds, in order", () => {
  const ch = Channel.create(256);
  const lengths: number[] = [];
  let received = 0;
  let bytes = 0;
  let paddedWraps = 0;
  const check = (m: Message) => {
    assert.equal(m.op, received & 0xffff);
    assert.equal(m.fd, received - 5);
    assert.deepEqual(m.payload, payload(received, lengths[received]));
    received++;
  };
  // Sizes 0..116 (116 is the largest that fits: a frame may take half the ring), in an
  // irregular order, 1–3 messages between reads so the write index lands everywhere.
  for (let round = 0; round < 400; round++) {
    for (let k = 0; k <= round % 3; k++) {
      const i = lengths.length;
      const len = (i * 37 + round) % 117;
      const before = ch.used;
      lengths.push(len);
      ch.send(i & 0xffff, i - 5, payload(i, len));
      // A frame that does not fit before the end pads the tail and starts at offset 0.
      if (ch.backlog === 0 && ch.used - before > ((12 + len + 3) & ~3)) paddedWraps++;
      bytes += len;
    }
    ch.receive(check, () => ch.flush());
    ch.flush();
  }
  ch.receive(check);
  assert.equal(ch.backlog, 0);
  assert.equal(received, lengths.length);
  assert.equal(ch.used, 0);
  assert.ok(bytes > 20 * ch.capacity, `only ${bytes} bytes went through`);
  assert.ok(paddedWraps > 10, `only ${paddedWraps} frames wrapped with padding`);
});

Deno.test("channel: payload bytes are copies, not views into the ring", () => {
  const ch = Channel.create(128);
  ch.send(1, 1, payload(1, 40));
  const [first] = drain(ch);
  // Overwrite the same ring bytes with other data.
  ch.send(2, 2, payload(2, 40));
  ch.send(3, 3, payload(3, 40));
  drain(ch);
  assert.deepEqual(first.payload, payload(1, 40));
  const src = payload(4, 10);
  ch.send(4, 4, src);
  src.fill(0); // the sender may reuse its buffer at once
  assert.deepEqual(drain(ch)[0].payload, payload(4, 10));
});

Deno.test("channel: a full ring backlogs the producer; flush after the consumer frees room; nothing lost", () => {
  const ch = Channel.create(256);
  // 60-byte payload -> 72-byte frame: three fit (216 bytes), the fourth does not.
  for (let i = 0; i < 3; i++) ch.send(7, i, payload(i, 60));
  assert.equal(ch.backlog, 0);
  ch.send(7, 3, payload(3, 60));
  assert.equal(ch.backlog, 1);
  // A small message that would fit must still queue behind the backlog (ordering).
  ch.send(7, 4, payload(4, 1));
  assert.equal(ch.backlog, 2);
  for (let i = 5; i < 20; i++) ch.send(7, i, payload(i, (i * 11) % 64));
  assert.equal(ch.backlog, 17);
  assert.equal(ch.flush(), false, "no room yet: flush cannot move anything");
  assert.equal(ch.backlog, 17);

  const got: Message[] = [];
  let spaceCalls = 0;
  let rounds = 0;
  while (got.length < 20) {
    assert.ok(rounds++ < 100, "backlog never drained");
    ch.receive((m) => got.push(m), () => spaceCalls++);
    ch.flush();
  }
  assert.ok(spaceCalls > 0, "the consumer must be told that the producer wants room");
  assert.equal(ch.backlog, 0);
  assert.equal(ch.flush(), true);
  assert.deepEqual(got.map((m) => m.fd), Array.from({ length: 20 }, (_, i) => i));
  for (const m of got) {
    const len = m.fd < 4 ? 60 : m.fd === 4 ? 1 : (m.fd * 11) % 64;
    assert.deepEqual(m.payload, payload(m.fd, len), `payload of message ${m.fd}`);
  }
  // Once drained, the "space wanted" flag is clear: receiving does not call onSpace.
  ch.send(1, 99, payload(99, 3));
  ch.receive(() => {}, () => assert.fail("onSpace with no backlog"));
});

Deno.test("channel: a text payload arrives as UTF-8; backlogged text survives the sends after it", () => {
  const ch = Channel.create(256);
  // The first two fill the ring; the rest wait in the backlog while later sends reuse the
  // buffer their text was encoded in (protocol/bytes.ts utf8Scratch).
  const texts = Array.from({ length: 8 }, (_, i) => `{"n":${i},"text":"${"ü".repeat(20 + i)}"}`);
  for (const [i, text] of texts.entries()) ch.send(7, i, text);
  assert.ok(ch.backlog > 0, "some texts were backlogged");
  const got: Message[] = [];
  for (let rounds = 0; got.length < texts.length; rounds++) {
    assert.ok(rounds < 100, "backlog never drained");
    ch.receive((m) => got.push(m));
    ch.flush();
  }
  assert.deepEqual(got.map((m) => new TextDecoder().decode(m.payload)), texts);
});

Deno.test("channel: u32 read/write counters wrap around 2^32 correctly", () => {
  const capacity = 256;
  const buffer = new SharedArrayBuffer(32 + capacity);
  const header = new Int32Array(buffer, 0, 8);
  // Both counters 40 bytes short of 2^32 (and of a ring boundary).
  header[0] = -40;
  header[1] = -40;
  const ch = new Channel(buffer);
  assert.equal(ch.used, 0);
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < 3; k++) {
      ch.send(1, next, payload(next, (next * 13) % 60));
      next++;
    }
    for (const m of drain(ch)) {
      assert.equal(m.fd, expect);
      assert.deepEqual(m.payload, payload(expect, (expect * 13) % 60));
      expect++;
    }
    assert.equal(ch.used, 0);
  }
  assert.equal(expect, 150);
  assert.ok(header[0] > 0 && header[0] < 1 << 20, "the write counter wrapped past 2^32");
});

Deno.test("channel: messages larger than the ring travel in fragments and arrive whole, in order", () => {
  const ch = Channel.create(256);
  const sizes = [64, 65, 117, 1000, 10_000, 3];
  const got: Message[] = [];
  let rounds = 0;
  sizes.forEach((n, i) => ch.send(2, i, payload(i, n)));
  while (got.length < sizes.length) {
    assert.ok(rounds++ < 10_000, "fragments never drained");
    ch.receive((m) => got.push(m));
    ch.flush();
  }
  assert.deepEqual(got.map((m) => m.fd), sizes.map((_, i) => i));
  got.forEach((m, i) => assert.deepEqual(m.payload, payload(i, sizes[i]), `message ${i}`));
  assert.equal(ch.used, 0);
  assert.equal(ch.backlog, 0);
  // Capacity must be a power of two of at least 64.
  assert.throws(() => Channel.create(100), /power of two/);
  assert.throws(() => Channel.create(32), /power of two/);
});

Deno.test("channel: JSON (through protocol/schema.ts) and text round-trip; empty payloads", () => {
  const ch = Channel.create(1024);
  ch.send(5, -1, encode(s.json, { a: [1, "ü"], b: null }));
  ch.send(6, 0);
  const got = drain(ch);
  assert.deepEqual(decode(s.json, got[0].payload), { a: [1, "ü"], b: null });
  assert.equal(got[0].fd, -1);
  assert.equal(got[1].payload.length, 0);
  assert.equal(new TextDecoder().decode(new TextEncoder().encode("héllo")), "héllo");
});

Deno.test("channel: bell, terminate flag and Link attach share state", () => {
  const link = Link.create(1024);
  const other = Link.attach(link.buffers);
  const before = other.toGuest.bell;
  link.toGuest.ring();
  assert.equal(other.toGuest.bell, before + 1);
  const t0 = performance.now();
  other.toGuest.waitBell(before, 5000); // the bell already moved: returns at once
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(other.toGuest.terminateRequested, false);
  link.toGuest.requestTerminate();
  assert.equal(other.toGuest.terminateRequested, true);
  assert.equal(other.toHost.terminateRequested, false);
  link.toHost.send(3, 4, payload(1, 5));
  assert.deepEqual(drain(other.toHost).map((m) => [m.op, m.fd]), [[3, 4]]);
});

Deno.test("channel: reset empties a Link for reuse (counters, backlog, bell, terminate flag)", () => {
  const link = Link.create(256);
  for (let i = 0; i < 10; i++) link.toGuest.send(1, i, payload(i, 60));
  link.toHost.send(2, 2, payload(2, 5));
  link.toGuest.requestTerminate();
  assert.ok(link.toGuest.backlog > 0);
  assert.equal(link.reset(), link);
  const other = Link.attach(link.buffers);
  for (const ch of [link.toGuest, link.toHost, other.toGuest, other.toHost]) {
    assert.equal(ch.used, 0);
    assert.equal(ch.backlog, 0);
    assert.equal(ch.bell, 0);
    assert.equal(ch.terminateRequested, false);
  }
  assert.deepEqual(drain(other.toGuest), []);
  link.toGuest.send(3, 7, payload(7, 9));
  assert.deepEqual(drain(other.toGuest).map((m) => [m.op, m.fd, m.payload.length]), [[3, 7, 9]]);
  other.toGuest.receive(() => {}, () => assert.fail("stale space-wanted flag"));
});

Deno.test("channel: cross-thread delivery from a Worker through a small ring, nothing lost", async () => {
  const link = Link.create(1024);
  const count = 20_000;
  const maxPayload = 300;
  const worker = new Worker(new URL("../support/link_worker.ts", import.meta.url), { type: "module" });
  const done = new Promise<{ maxBacklog: number }>((resolve, reject) => {
    worker.onmessage = (e) => e.data.done && resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
  });
  const command: LinkWorkerCommand = { kind: "produce", buffers: link.buffers, count, maxPayload };
  worker.postMessage(command);
  try {
    let received = 0;
    let bad = "";
    const deadline = performance.now() + 30_000;
    while (received < count) {
      assert.ok(performance.now() < deadline, `only ${received} of ${count} messages arrived`);
      const seen = link.toHost.bell;
      link.toHost.receive((m) => {
        if (!bad) {
          const want = testPayload(received, maxPayload);
          if (m.fd !== received || m.op !== (received & 0xffff)) {
            bad = `message ${received} arrived as ${m.fd}`;
          } else if (m.payload.length !== want.length || m.payload.some((b, j) => b !== want[j])) {
            bad = `payload of message ${received} differs`;
          }
        }
        received++;
      }, () => link.toGuest.ring());
      assert.equal(bad, "");
      if (received < count) await waitBellOrTimeout(link.toHost, seen, 20);
    }
    const { maxBacklog } = await done;
    assert.equal(received, count);
    assert.ok(maxBacklog > 0, "the 1 KiB ring should have filled at least once");
    assert.equal(link.toHost.used, 0);
  } finally {
    worker.terminate();
  }
});

Deno.test("channel: backlogBytes counts the payload bytes the producer holds, fragments included", () => {
  const ch = Channel.create(256); // frames carry at most 64 payload bytes
  assert.equal(ch.backlogBytes, 0);
  for (let i = 0; i < 3; i++) ch.send(1, i, payload(i, 60)); // 72-byte frames: the ring holds three
  assert.deepEqual([ch.backlog, ch.backlogBytes], [0, 0]);
  ch.send(1, 3, payload(3, 50));
  ch.send(1, 4, payload(4, 300)); // five fragments: 64 * 4 + 44
  assert.deepEqual([ch.backlog, ch.backlogBytes], [6, 350]);
  ch.send(1, 5);
  assert.deepEqual([ch.backlog, ch.backlogBytes], [7, 350], "an empty message holds no bytes");
  const got: Message[] = [];
  let lowest = ch.backlogBytes;
  for (let rounds = 0; got.length < 6; rounds++) {
    assert.ok(rounds < 100, "never drained");
    ch.receive((m) => got.push(m));
    ch.flush();
    assert.ok(ch.backlogBytes <= lowest, "the count only falls as frames move into the ring");
    lowest = ch.backlogBytes;
    const held = ch.backlog;
    assert.ok(held > 0 || ch.backlogBytes === 0);
  }
  assert.deepEqual([ch.backlog, ch.backlogBytes], [0, 0]);
  assert.deepEqual(got[4].payload, payload(4, 300));
});

Deno.test("channel: drainBacklog + receiveFrames deliver a fragmented message whose first fragments were already in the ring", () => {
  const producer = Channel.create(256);
  const consumer = new Channel(producer.buffer);
  const big = payload(9, 300); // fragments of 64, 64, 64, 64, 44 bytes
  producer.send(2, 1, payload(1, 10));
  producer.send(3, 2, big);
  producer.send(4, 3, payload(3, 20));
  assert.ok(producer.backlog > 0, "part of the message must still wait in the producer");
  assert.ok(producer.used > 100, "and part of it must be in the ring already");
  // The producer goes away: what it still holds is handed over with its result.
  const left: Frame[] = producer.drainBacklog();
  assert.deepEqual([producer.backlog, producer.backlogBytes], [0, 0]);
  assert.ok(left.length >= 2);
  assert.ok(left.some((f) => f.flags !== 0), "a fragment in the hand-over continues the message");
  const got: Message[] = [];
  consumer.receive((m) => got.push(m));
  assert.deepEqual(got.map((m) => m.fd), [1], "the ring alone holds only the start of the large message");
  assert.equal(consumer.receiveFrames(left, (m) => got.push(m)), 2);
  assert.deepEqual(got.map((m) => [m.op, m.fd, m.payload.length]), [[2, 1, 10], [3, 2, 300], [4, 3, 20]]);
  assert.deepEqual(got[1].payload, big, "the fragments from the ring and from the hand-over join in order");
  assert.deepEqual(got[2].payload, payload(3, 20));
  // Nothing is left half-received: the next message arrives alone.
  producer.reset();
  producer.send(5, 4, payload(4, 8));
  const after: Message[] = [];
  consumer.receive((m) => after.push(m));
  assert.deepEqual(after.map((m) => [m.op, m.payload.length]), [[5, 8]]);
});

Deno.test("channel: the terminate reason is set once — the first reason given wins — and reset clears it", () => {
  const link = Link.create(1024);
  const guestSide = Link.attach(link.buffers);
  assert.equal(guestSide.toGuest.terminateReason, 0);
  const bell = guestSide.toGuest.bell;
  link.toGuest.requestTerminate(TerminateReason.TIMEOUT);
  assert.ok(guestSide.toGuest.bell > bell, "asking a guest to stop wakes it");
  link.toGuest.requestTerminate(TerminateReason.OVERFLOW);
  link.toGuest.requestTerminate();
  assert.equal(guestSide.toGuest.terminateReason, TerminateReason.TIMEOUT);
  assert.equal(guestSide.toGuest.terminateRequested, true);
  link.reset();
  assert.equal(guestSide.toGuest.terminateReason, 0);
  link.toGuest.requestTerminate();
  assert.equal(guestSide.toGuest.terminateReason, TerminateReason.STOP, "STOP is the default reason");
  link.toGuest.requestTerminate(TerminateReason.OVERFLOW);
  assert.equal(link.toGuest.terminateReason, TerminateReason.STOP);
  assert.equal(link.toHost.terminateReason, 0, "the other channel is untouched");
});
