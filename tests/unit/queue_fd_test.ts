/**
 * The queued-stream fd (runtime/queue_fd.ts): each overflow policy and its counters, the
 * -ENOSPC rule of `readInto` (a read that does not fit leaves the item queued and writes the
 * needed length), credit returned on commit and on clear, readiness, the budget reservation
 * of the cap (resize re-reserves, ENOMEM keeps the old cap, dispose releases), and the FIFO
 * keeping order across its internal compaction.
 */
import assert from "node:assert/strict";
import { type Errno, HostcallError, Poll } from "../../runtime/abi.ts";
import { GuestMemory } from "../../runtime/memory.ts";
import { QueuedStream, type QueueOptions } from "../../runtime/queue_fd.ts";
import { HostBudget } from "../../protocol/budget.ts";

function item(n: number, seed = n, at = 0) {
  return { bytes: Uint8Array.from({ length: n }, (_, i) => (seed * 13 + i) & 0xff), at };
}

function queue(options: Partial<QueueOptions> & Pick<QueueOptions, "policy">) {
  const budget = options.budget ?? HostBudget.create(1 << 20);
  return new QueuedStream({ capacity: 10, budget, ...options });
}

/** Lengths of the queued items, head first (drains a copy's worth by peeking and committing). */
function lengths(q: QueuedStream): number[] {
  const out: number[] = [];
  while (q.peek()) out.push(q.commit()!.bytes.length);
  return out;
}

function errno(e: unknown, name: keyof typeof Errno): boolean {
  return e instanceof HostcallError && e.errno === name;
}

/** A guest memory over a plain buffer: [0, 4) is the length word, data from 16. */
function memory(size = 4096) {
  const bytes = new Uint8Array(size);
  const mem = new GuestMemory({
    locate: () => [BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes))), bytes.length],
  });
  return { bytes, mem, view: new DataView(bytes.buffer) };
}

Deno.test("queue_fd: drop_oldest drops from the head until the new item fits, and counts each drop", () => {
  const q = queue({ policy: "drop_oldest" });
  assert.equal(q.push(item(4)), "queued");
  assert.equal(q.push(item(3)), "queued");
  assert.equal(q.push(item(2)), "queued");
  assert.equal(q.bytes, 9);
  assert.equal(q.push(item(6)), "queued", "drops 4 and 3 (one is not enough)");
  assert.deepEqual([q.pushed, q.dropped, q.length, q.bytes], [4, 2, 2, 8]);
  assert.equal(q.push(item(10)), "queued", "an item of exactly the cap empties the queue");
  assert.deepEqual([q.dropped, q.length, q.bytes], [4, 1, 10]);
  assert.equal(q.push(item(11)), "dropped", "an item larger than the cap is dropped, the queue kept");
  assert.deepEqual([q.pushed, q.dropped, q.length], [5, 5, 1]);
  assert.equal(q.push(item(0)), "queued", "an empty item always fits");
  assert.deepEqual(lengths(q), [10, 0]);
});

Deno.test("queue_fd: drop_newest drops the new item; reject refuses it without counting a drop", () => {
  const newest = queue({ policy: "drop_newest" });
  newest.push(item(6, 1));
  assert.equal(newest.push(item(5, 2)), "dropped");
  assert.equal(newest.push(item(4, 3)), "queued");
  assert.deepEqual([newest.pushed, newest.dropped], [2, 1]);
  assert.deepEqual(newest.peek()!.bytes, item(6, 1).bytes, "the oldest item stays at the head");
  assert.deepEqual(lengths(newest), [6, 4]);

  const reject = queue({ policy: "reject" });
  reject.push(item(8));
  assert.equal(reject.push(item(3)), "rejected");
  assert.deepEqual([reject.pushed, reject.dropped, reject.length, reject.bytes], [1, 0, 1, 8]);
  assert.equal(reject.push(item(2)), "queued");
});

Deno.test("queue_fd: credit returns room on commit and on clear; a producer over its credit is a counted drop", () => {
  const credits: number[] = [];
  const q = queue({ policy: "credit", capacity: 10, returnCredit: (n) => credits.push(n) });
  q.push(item(4));
  q.push(item(6));
  assert.equal(q.push(item(1)), "dropped", "the producer sent past the window it was given");
  assert.equal(q.dropped, 1);
  assert.equal(q.commit()!.bytes.length, 4);
  assert.deepEqual(credits, [4]);
  q.push(item(3));
  q.clear();
  assert.deepEqual(credits, [4, 9], "clear returns everything still queued");
  assert.deepEqual([q.length, q.bytes, q.readiness], [0, 0, 0]);
  assert.equal(q.commit(), undefined);
  assert.deepEqual(credits, [4, 9], "nothing to commit: no credit");
  q.clear();
  assert.deepEqual(credits, [4, 9, 0]);

  // Other policies never return credit.
  const other: number[] = [];
  const plain = queue({ policy: "drop_oldest", returnCredit: (n) => other.push(n) });
  plain.push(item(3));
  plain.commit();
  plain.push(item(3));
  plain.clear();
  assert.deepEqual(other, []);
});

Deno.test("queue_fd: readInto follows the -ENOSPC rule — the item stays queued and the needed length is written", () => {
  const { bytes, mem, view } = memory();
  const credits: number[] = [];
  const q = queue({ policy: "credit", capacity: 100, returnCredit: (n) => credits.push(n) });
  assert.throws(() => q.readInto(mem, 16, 0), (e) => errno(e, "EAGAIN"), "empty: EAGAIN");
  q.push(item(5, 1));
  q.push(item(7, 2));
  assert.equal(q.readiness, Poll.EPOLLIN);
  view.setUint32(0, 4, true);
  assert.throws(() => q.readInto(mem, 16, 0), (e) => errno(e, "ENOSPC"));
  assert.equal(view.getUint32(0, true), 5, "the needed length");
  assert.deepEqual([q.length, q.readItems, q.readBytes], [2, 0, 0], "nothing consumed");
  assert.deepEqual(credits, [], "no credit for a read that did not happen");
  assert.deepEqual(bytes.subarray(16, 21), new Uint8Array(5), "nothing written");
  view.setUint32(0, 64, true);
  assert.equal(q.readInto(mem, 16, 0), 5);
  assert.equal(view.getUint32(0, true), 5);
  assert.deepEqual(bytes.subarray(16, 21), item(5, 1).bytes);
  assert.deepEqual([q.length, q.readItems, q.readBytes], [1, 1, 5]);
  assert.deepEqual(credits, [5]);
  view.setUint32(0, 7, true);
  assert.equal(q.readInto(mem, 100, 0), 7, "exactly the capacity fits");
  assert.deepEqual(bytes.subarray(100, 107), item(7, 2).bytes);
  assert.deepEqual(credits, [5, 7]);
  assert.equal(q.readiness, 0);
  // A bad out pointer is EFAULT, and the item stays too.
  q.push(item(3));
  view.setUint32(0, 64, true);
  assert.throws(() => q.readInto(mem, 4095, 0), (e) => errno(e, "EFAULT"));
  assert.equal(q.length, 1);
});

Deno.test("queue_fd: counters, metrics and read latency", () => {
  let now = 1000;
  const q = queue({ policy: "drop_oldest", capacity: 10, clock: () => now });
  q.push(item(4, 1, 990));
  q.push(item(4, 2, 995));
  q.push(item(4, 3, 999));
  now = 1002;
  q.commit();
  assert.deepEqual(q.metrics(), {
    queue_items: 1,
    queue_bytes: 4,
    capacity_bytes: 10,
    policy: "drop_oldest",
    pushed: 3,
    dropped: 1,
    read_items: 1,
    read_bytes: 4,
  });
  now = 1010;
  q.commit();
  assert.deepEqual(q.readLatency.summary(), { count: 2, p50: 11, p99: 11, max: 11 });
});

Deno.test("queue_fd: the cap is reserved in the budget; resize re-reserves; ENOMEM keeps the old cap; dispose releases", () => {
  const budget = HostBudget.create(100);
  budget.tryCharge(10); // something else the guest holds
  const q = queue({ policy: "drop_oldest", capacity: 60, budget });
  assert.equal(budget.used, 70);
  q.resize(80);
  assert.deepEqual([q.capacity, budget.used], [80, 90]);
  assert.throws(() => q.resize(101), (e) => errno(e, "ENOMEM"));
  assert.deepEqual([q.capacity, budget.used], [80, 90], "the old cap and reservation stay");
  assert.equal(q.push(item(80)), "queued", "the old cap still applies");
  q.resize(30);
  assert.deepEqual([q.capacity, budget.used], [30, 40]);
  assert.equal(
    q.push(item(5)),
    "queued",
    "shrinking below the queued bytes drops from the head on the next push",
  );
  assert.deepEqual([q.bytes, q.dropped], [5, 1]);
  q.dispose();
  assert.equal(budget.used, 10);
  assert.equal(q.length, 0);
  q.dispose();
  assert.equal(budget.used, 10, "a second dispose releases nothing");
  // A queue whose cap does not fit is not created.
  assert.throws(() => queue({ policy: "reject", capacity: 91, budget }), (e) => errno(e, "ENOMEM"));
  assert.equal(budget.used, 10);
});

Deno.test("queue_fd: FIFO order and byte counts hold across many pushes and reads (internal compaction)", () => {
  const q = queue({ policy: "reject", capacity: 1 << 20 });
  let pushed = 0;
  let read = 0;
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < 7 + (round % 5) * 20; k++) q.push(item(1 + (pushed % 9), pushed++));
    for (let k = 0; k < 5 + (round % 7) * 15 && q.length > 0; k++) {
      const got = q.commit()!;
      assert.deepEqual(got.bytes, item(1 + (read % 9), read).bytes, `item ${read}`);
      read++;
    }
    let expectBytes = 0;
    for (let i = read; i < pushed; i++) expectBytes += 1 + (i % 9);
    assert.deepEqual([q.length, q.bytes], [pushed - read, expectBytes]);
  }
  while (q.length > 0) assert.deepEqual(q.commit()!.bytes, item(1 + (read % 9), read++).bytes);
  assert.equal(read, pushed);
  assert.equal(q.readItems, pushed);
});
