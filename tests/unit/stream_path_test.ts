/**
 * The garbage-free stream path: ByteRing (a byte stream's receive buffer: wraps, partial reads,
 * credit, budget), channel views (valid during the handler, room released after it), and
 * StreamSender's reused scratch buffer.
 */
import assert from "node:assert/strict";
import { Channel } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { decodeFrame, StreamSender } from "../../protocol/stream.ts";
import { ByteRing } from "../../runtime/queue_fd.ts";
import { GuestMemory } from "../../runtime/memory.ts";
import { Errno, HostcallError } from "../../runtime/abi.ts";

function memory(bytes: Uint8Array): GuestMemory {
  return new GuestMemory({
    locate: () => [BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes))), bytes.length],
  });
}

Deno.test("ByteRing: wraps around, reads partially across pushes, returns credit, refuses overflow", () => {
  const budget = HostBudget.create(1 << 20);
  let credit = 0;
  const ring = new ByteRing({ capacity: 8, budget, returnCredit: (n) => (credit += n) });
  assert.equal(budget.used, 8, "the ring is reserved in the budget");
  const guest = new Uint8Array(64);
  const view = new DataView(guest.buffer);
  const mem = memory(guest);
  const read = (cap: number) => {
    view.setUint32(0, cap, true);
    const n = ring.readBytesInto(mem, 16, 0);
    return [...guest.subarray(16, 16 + n)];
  };
  assert.equal(ring.push(new Uint8Array([1, 2, 3, 4, 5, 6])), true);
  assert.deepEqual(read(4), [1, 2, 3, 4]);
  assert.equal(ring.push(new Uint8Array([7, 8, 9, 10, 11])), true, "wraps");
  assert.equal(ring.push(new Uint8Array([12, 13])), false, "over the window: refused and counted");
  assert.equal(ring.dropped, 1);
  assert.deepEqual(read(100), [5, 6, 7, 8, 9, 10, 11]);
  assert.equal(credit, 11);
  view.setUint32(0, 4, true);
  assert.throws(
    () => ring.readBytesInto(mem, 16, 0),
    (e) => e instanceof HostcallError && e.code === -Errno.EAGAIN,
  );
  ring.push(new Uint8Array([1, 2, 3]));
  ring.resize(16);
  assert.deepEqual(read(100), [1, 2, 3], "a resize keeps what is queued");
  ring.dispose();
  assert.equal(budget.used, 0);
});

Deno.test("channel views: a payload is a view of the ring during the handler, and its room is released after", () => {
  const channel = Channel.create(1024);
  channel.send(5, 1, new Uint8Array([9, 8, 7]));
  let seen: Uint8Array | undefined;
  let usedDuring = -1;
  channel.receive(
    (m) => {
      seen = m.payload;
      usedDuring = channel.used;
    },
    undefined,
    true,
  );
  assert.ok(seen!.buffer instanceof SharedArrayBuffer, "no copy");
  assert.ok(usedDuring > 0, "the room is held while the handler runs");
  assert.equal(channel.used, 0);
  // A message too large for one frame still arrives whole (joined, so copied).
  const big = new Uint8Array(700).map((_, i) => i & 255);
  channel.send(5, 1, big);
  let whole: Uint8Array | undefined;
  while (!whole) {
    channel.flush();
    channel.receive((m) => (whole = m.payload), undefined, true);
  }
  assert.deepEqual([...whole], [...big]);
});

Deno.test("StreamSender: items of varied sizes reuse one scratch buffer and arrive intact", () => {
  const channel = Channel.create(1 << 16);
  const sender = new StreamSender(channel, 3, { mode: "credit", window: 1 << 20 });
  const sizes = [10, 3000, 7, 2999];
  for (const n of sizes) sender.send(new Uint8Array(n).fill(n & 255));
  const got: number[][] = [];
  channel.receive((m) => {
    const frame = decodeFrame(m.payload);
    got.push([frame.seq, frame.bytes.length, frame.bytes[0]]);
  });
  assert.deepEqual(got, sizes.map((n, i) => [i, n, n & 255]));
});
