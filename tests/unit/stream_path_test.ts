/**
 * The garbage-free stream path: channel views (valid during the handler, room released after
 * it), and StreamSender's reused scratch buffer. (A byte stream's path is tests/unit/pipe_test.ts.)
 */
import assert from "node:assert/strict";
import { Channel } from "../../protocol/channel.ts";
import { decodeFrame, StreamSender } from "../../protocol/stream.ts";

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
