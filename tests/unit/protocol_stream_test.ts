/**
 * Streams (protocol/stream.ts): the frame header (seq, dropped, at) and credit payloads round
 * trip; a credit stream never has more than its window outstanding and resumes its source
 * once credit comes back; a lossy stream drops (and counts) items that would congest the
 * channel, lets a large item through when the ring is empty, and reports its drops on the
 * next frame that goes and on every event.
 */
import assert from "node:assert/strict";
import { Channel, type Message } from "../../protocol/channel.ts";
import { decode, json } from "../../protocol/schema.ts";
import {
  decodeCredit,
  decodeFrame,
  encodeCredit,
  STREAM_HEADER_BYTES,
  type StreamChannel,
  StreamSender,
} from "../../protocol/stream.ts";
import { Op } from "../../protocol/wire.ts";

/** A StreamChannel that records what is sent (copies), with levels the test sets. */
function recorder(levels: { used?: number; capacity?: number; backlog?: number } = {}) {
  const sent: Message[] = [];
  const channel: StreamChannel & { used: number; capacity: number; backlog: number } = {
    used: levels.used ?? 0,
    capacity: levels.capacity ?? 1 << 20,
    backlog: levels.backlog ?? 0,
    // As the real channel does: the head (a frame's header) goes in front of the payload.
    send: (op, fd, payload, head = new Uint8Array(0)) => {
      const whole = new Uint8Array(head.length + payload.length);
      whole.set(head);
      whole.set(payload, head.length);
      sent.push({ op, fd, payload: whole });
    },
  };
  return { channel, sent };
}

function bytes(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed * 37 + i * 11) & 0xff);
}

function receiveAll(ch: Channel): Message[] {
  const got: Message[] = [];
  for (let rounds = 0; rounds < 10_000; rounds++) {
    ch.receive((m) => got.push(m));
    if (ch.flush() && ch.used === 0) return got;
  }
  throw new Error("channel never drained");
}

Deno.test("stream: a frame's header (seq, dropped, at) and bytes round-trip through decodeFrame", () => {
  const { channel, sent } = recorder();
  const s = new StreamSender(channel, 42, { mode: "lossy" });
  const at = 1_700_000_000_123.25;
  assert.equal(s.send(bytes(5, 1), at), true);
  assert.equal(s.send(new Uint8Array(0), at + 1), true);
  assert.deepEqual(sent.map((m) => [m.op, m.fd, m.payload.length]), [
    [Op.STREAM_DATA, 42, STREAM_HEADER_BYTES + 5],
    [Op.STREAM_DATA, 42, STREAM_HEADER_BYTES],
  ]);
  const first = decodeFrame(sent[0].payload);
  assert.deepEqual({ ...first, bytes: [...first.bytes] }, {
    seq: 0,
    dropped: 0,
    at,
    bytes: [...bytes(5, 1)],
  });
  const second = decodeFrame(sent[1].payload);
  assert.deepEqual([second.seq, second.at, second.bytes.length], [1, at + 1, 0]);
  // A frame that is a view into a larger buffer (not at offset 0) decodes the same.
  const outer = new Uint8Array(7 + sent[0].payload.length + 3);
  outer.set(sent[0].payload, 7);
  const view = decodeFrame(outer.subarray(7, 7 + sent[0].payload.length));
  assert.deepEqual([view.seq, view.dropped, view.at, [...view.bytes]], [0, 0, at, [...bytes(5, 1)]]);
  assert.deepEqual([s.sentItems, s.sentBytes], [2, 5]);
  // The sender's scratch buffer is reused: what it sent must not change afterwards.
  s.send(bytes(5, 9), at);
  assert.deepEqual([...decodeFrame(sent[0].payload).bytes], [...bytes(5, 1)]);
});

Deno.test("stream: credit payloads round-trip; a short payload is no credit", () => {
  for (const n of [0, 1, 65536, 2 ** 32 - 1]) assert.equal(decodeCredit(encodeCredit(n)), n);
  assert.equal(decodeCredit(new Uint8Array(3)), 0);
  const outer = new Uint8Array(9);
  outer.set(encodeCredit(12345), 5);
  assert.equal(decodeCredit(outer.subarray(5)), 12345);
});

Deno.test("stream: credit flow — never more than the window outstanding; whenWritable resumes after grant", () => {
  const { channel, sent } = recorder();
  const s = new StreamSender(channel, 3, { mode: "credit", window: 100 });
  assert.equal(s.available, 100);
  assert.equal(s.send(bytes(40)), true);
  assert.equal(s.send(bytes(60)), true, "exactly the window");
  assert.equal(s.available, 0);
  assert.equal(s.send(bytes(1)), false, "no credit: nothing sent");
  assert.equal(sent.length, 2);
  assert.equal(s.dropped, 0, "a credit stream never drops");
  let resumed = 0;
  s.whenWritable(() => resumed++);
  s.grant(30);
  assert.equal(resumed, 1);
  assert.equal(s.available, 30);
  assert.equal(s.send(bytes(31)), false, "an item larger than the credit waits whole");
  assert.equal(s.send(bytes(30)), true);
  s.grant(10);
  assert.equal(resumed, 1, "whenWritable runs once per registration");
  // A credit stream sends even into a congested channel: it is lossless, the window bounds it.
  channel.backlog = 5;
  channel.used = channel.capacity;
  assert.equal(s.send(bytes(10)), true);
  assert.deepEqual([s.sentItems, s.sentBytes, s.available], [4, 140, 0]);
  // A closed stream sends nothing and forgets its waiter.
  s.whenWritable(() => resumed++);
  s.close();
  s.grant(50);
  assert.equal(resumed, 1);
  assert.equal(s.send(bytes(1)), false);
  s.event({ type: "end" });
  assert.equal(sent.length, 4);
});

Deno.test("stream: credit flow through a real ring — a paused source resumes on grants, all bytes arrive in order", () => {
  const ch = Channel.create(1 << 12);
  const window = 3000;
  const total = 200_000;
  const source = bytes(total, 5);
  const s = new StreamSender(ch, 9, { mode: "credit", window });
  let offset = 0;
  let waits = 0;
  let maxOutstanding = 0;
  let granted = 0;
  let next = 17;
  const produce = () => {
    while (offset < total) {
      next = (next * 1103515245 + 12345) & 0x7fffffff;
      const want = Math.min(1 + (next % 1200), total - offset);
      if (!s.send(source.subarray(offset, offset + want))) {
        assert.ok(want > s.available, "send refused an item that fit the credit");
        waits++;
        s.whenWritable(produce);
        return;
      }
      offset += want;
      maxOutstanding = Math.max(maxOutstanding, s.sentBytes - granted);
    }
  };
  produce();
  const received: Uint8Array[] = [];
  let seq = 0;
  for (let rounds = 0; received.reduce((n, b) => n + b.length, 0) < total; rounds++) {
    assert.ok(rounds < 100_000, `stalled at ${offset} of ${total} bytes`);
    // The reader consumes what arrived and returns that much credit, some of it at a time.
    const got: Uint8Array[] = [];
    ch.receive((m) => {
      assert.equal(m.op, Op.STREAM_DATA);
      const frame = decodeFrame(m.payload);
      assert.equal(frame.seq, seq++, "no item lost or reordered");
      got.push(frame.bytes);
    });
    ch.flush();
    for (const item of got) {
      received.push(item);
      granted += item.length;
      s.grant(item.length);
    }
  }
  assert.ok(maxOutstanding <= window, `${maxOutstanding} bytes outstanding, window ${window}`);
  assert.ok(maxOutstanding > window - 1200, "the window was filled");
  assert.ok(waits >= total / window - 1, `the source paused only ${waits} times`);
  const whole = new Uint8Array(total);
  let at = 0;
  for (const b of received) {
    whole.set(b, at);
    at += b.length;
  }
  assert.deepEqual(whole, source);
});

Deno.test("stream: lossy flow drops while the channel is congested, counts it, and reports it on the next frame", () => {
  const ch = Channel.create(1024); // half the ring: 512 bytes
  const s = new StreamSender(ch, 7, { mode: "lossy" });
  const item = bytes(100);
  // 16 + 100 bytes per item: the fifth would take the ring past half full.
  let sentCount = 0;
  while (s.send(item)) sentCount++;
  assert.equal(sentCount, 4);
  assert.equal(s.dropped, 1);
  assert.equal(s.send(item), false);
  assert.equal(s.dropped, 2);
  assert.equal(ch.backlog, 0, "a lossy stream never makes the channel hold a backlog by itself");
  const first = receiveAll(ch);
  assert.deepEqual(first.map((m) => decodeFrame(m.payload).seq), [0, 1, 2, 3]);
  assert.deepEqual(first.map((m) => decodeFrame(m.payload).dropped), [0, 0, 0, 0]);
  // Drained: the next item goes, carrying the drops so far; its seq shows the gap.
  assert.equal(s.send(bytes(3, 4)), true);
  const [next] = receiveAll(ch);
  const frame = decodeFrame(next.payload);
  assert.deepEqual([frame.seq, frame.dropped, [...frame.bytes]], [6, 2, [...bytes(3, 4)]]);
  // The count also rides on every event, merged into the event's own fields.
  s.event({ type: "eof", detail: "x" });
  const [event] = receiveAll(ch);
  assert.equal(event.op, Op.STREAM_EVENT);
  assert.equal(event.fd, 7);
  assert.deepEqual(decode(json, event.payload), { type: "eof", detail: "x", dropped: 2 });
  assert.deepEqual([s.sentItems, s.sentBytes, s.seq], [5, 403, 7]);
});

Deno.test("stream: lossy flow drops whenever the channel holds a backlog, whatever the item's size", () => {
  const { channel, sent } = recorder({ used: 0, capacity: 1024, backlog: 1 });
  const s = new StreamSender(channel, 1, { mode: "lossy" });
  assert.equal(s.send(new Uint8Array(0)), false);
  assert.equal(s.dropped, 1);
  channel.backlog = 0;
  channel.used = 8;
  assert.equal(s.send(bytes(10)), true, "a small item into a nearly empty ring goes");
  channel.used = 512 - STREAM_HEADER_BYTES - 10;
  assert.equal(s.send(bytes(10)), true, "exactly half the ring is not congested");
  channel.used += 1;
  assert.equal(s.send(bytes(10)), false);
  assert.equal(sent.length, 2);
  assert.equal(decodeFrame(sent[1].payload).dropped, 1);
});

Deno.test("stream: a lossy item larger than the ring goes when the ring is empty, fragmented, and arrives whole", () => {
  const ch = Channel.create(1024);
  const s = new StreamSender(ch, 2, { mode: "lossy" });
  const big = bytes(5000, 3);
  assert.equal(s.send(big), true, "an empty ring takes any size");
  assert.ok(ch.backlog > 0, "the item did not fit the ring at once");
  assert.equal(s.send(bytes(1)), false, "anything behind it is dropped while it drains");
  const got = receiveAll(ch);
  assert.equal(got.length, 1);
  const frame = decodeFrame(got[0].payload);
  assert.deepEqual(frame.bytes, big);
  assert.equal(frame.seq, 0);
  assert.equal(s.send(bytes(1)), true);
  const [after] = receiveAll(ch);
  assert.deepEqual([decodeFrame(after.payload).seq, decodeFrame(after.payload).dropped], [2, 1]);
});
