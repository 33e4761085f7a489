/**
 * Byte pipes (protocol/pipe.ts): bytes wrap around the data area intact, the window bounds what
 * a pipe holds, a side is signalled exactly when it asked (and never misses a wakeup, checked
 * across two real threads), and the arena reuses freed blocks and refuses past its maximum.
 */
import assert from "node:assert/strict";
import { type BytePipe, PIPE_HEADER_BYTES, PipeArena } from "../../protocol/pipe.ts";

const copy = (dst: Uint8Array, at: number, src: Uint8Array) => dst.set(src, at);

function readAll(pipe: BytePipe): number[] {
  const out: number[] = [];
  for (let r = pipe.readable(); r.length > 0; r = pipe.readable()) {
    out.push(...r);
    pipe.consume(r.length);
  }
  return out;
}

Deno.test("pipe: bytes wrap around the data area intact; the window bounds what it holds", () => {
  const arena = PipeArena.create(1 << 16);
  const pipe = arena.allocate(12)!;
  assert.equal(pipe.ref.capacity, 16, "the data area is a power of two");
  assert.equal(pipe.limit, 12);
  let next = 0;
  for (let round = 0; round < 20; round++) {
    const chunk = Uint8Array.from({ length: 7 }, () => next++ & 255);
    assert.equal(pipe.write(chunk, copy)[0], 7);
    assert.equal(pipe.write(new Uint8Array(9), copy)[0], 5, "only the window's room is taken");
    assert.equal(pipe.room, 0);
    const got = readAll(pipe);
    assert.deepEqual(got.slice(0, 7), [...chunk]);
    assert.equal(pipe.used, 0);
  }
});

Deno.test("pipe: a side is signalled only when it asked, once", () => {
  const pipe = PipeArena.create(1 << 16).allocate(8)!;
  assert.equal(pipe.commit(0), false);
  assert.equal(pipe.write(new Uint8Array(3), copy)[1], true, "a fresh pipe's consumer waits for data");
  assert.equal(pipe.write(new Uint8Array(3), copy)[1], false, "told once");
  assert.equal(pipe.consume(2), false, "the producer never asked for room");
  assert.equal(pipe.write(new Uint8Array(4), copy)[0], 4);
  assert.equal(pipe.wantRoom(), false, "full: the producer asks");
  assert.equal(pipe.consume(1), true, "room freed: it is told");
  assert.equal(pipe.consume(1), false);
  readAll(pipe);
  assert.equal(pipe.wantData(), false, "empty: the consumer asks");
  assert.equal(pipe.writable(2).length, 2);
  assert.equal(pipe.commit(2), true);
  assert.equal(pipe.wantData(), true, "asking while data is there says so");
});

Deno.test("pipe: the host side waits on the pipe itself: a write or a read wakes it, so does a wake of its own", async () => {
  const pipe = PipeArena.create(1 << 16).allocate(8)!;
  const timeout = (p: Promise<unknown>) =>
    Promise.race([p, new Promise((r) => setTimeout(r, 1000, "timed out"))]);
  const data = pipe.waitForData()!;
  assert.ok(data, "empty: a consumer waits");
  assert.equal(pipe.write(new Uint8Array(8), copy)[1], true, "it asked");
  pipe.wakeConsumer();
  assert.equal(await timeout(data), "ok");
  assert.equal(pipe.waitForData(), undefined, "data there: no wait");
  const room = pipe.waitForRoom()!;
  assert.ok(room, "full: a producer waits");
  assert.equal(pipe.consume(3), true);
  pipe.wakeProducer();
  assert.equal(await timeout(room), "ok");
  assert.equal(pipe.waitForRoom(), undefined, "room there: no wait");
  readAll(pipe);
  const stopped = pipe.waitForData()!;
  pipe.wakeConsumer(); // the host stops its own loop
  assert.equal(await timeout(stopped), "ok");
});

Deno.test("pipe: the arena reuses a freed block of the same size and refuses past its maximum", () => {
  const arena = PipeArena.create(3 * (PIPE_HEADER_BYTES + 1024));
  const a = arena.allocate(1000)!;
  const b = arena.allocate(1024)!;
  assert.equal(arena.inUse, 2 * (PIPE_HEADER_BYTES + 1024));
  a.write(new Uint8Array(10), copy);
  arena.release(a.ref);
  assert.equal(arena.inUse, PIPE_HEADER_BYTES + 1024);
  const c = arena.allocate(1024)!;
  assert.equal(c.ref.offset, a.ref.offset, "the freed block again");
  assert.equal(c.used, 0, "and empty");
  assert.ok(arena.allocate(1024));
  assert.equal(arena.allocate(1024), null, "past the arena's maximum");
  assert.notEqual(b.ref.offset, c.ref.offset);
});

Deno.test("pipe: across two threads, 32 MiB in odd chunks arrive in order and no wakeup is lost", async () => {
  const arena = PipeArena.create(1 << 20);
  const pipe = arena.allocate(4096)!;
  const total = 32 << 20;
  const signals = new Int32Array(new SharedArrayBuffer(8)); // [0]: data signals, [1]: room signals
  const worker = new Worker(
    URL.createObjectURL(
      new Blob([`
        import { BytePipe } from "${new URL("../../protocol/pipe.ts", import.meta.url)}";
        self.onmessage = ({ data }) => {
          const pipe = new BytePipe(data.arena, data.ref);
          const signals = new Int32Array(data.signals);
          let seen = 0, sum = 0, expect = 0, ok = true;
          while (seen < data.total) {
            const region = pipe.readable(1000);
            if (region.length === 0) {
              const tick = Atomics.load(signals, 0);
              if (!pipe.wantData() && Atomics.wait(signals, 0, tick, 5000) === "timed-out") ok = false;
              continue;
            }
            for (const b of region) { ok &&= b === (expect++ & 255); }
            seen += region.length;
            if (pipe.consume(region.length)) { Atomics.add(signals, 1, 1); Atomics.notify(signals, 1); }
          }
          self.postMessage({ seen, ok });
        };
      `], { type: "text/javascript" }),
    ),
    { type: "module" },
  );
  const done = new Promise<{ seen: number; ok: boolean }>((
    resolve,
  ) => (worker.onmessage = (e) => resolve(e.data)));
  worker.postMessage({ arena: arena.buffer, ref: pipe.ref, signals: signals.buffer, total });
  let sent = 0;
  while (sent < total) {
    const region = pipe.writable(Math.min(777, total - sent));
    if (region.length === 0) {
      const tick = Atomics.load(signals, 1);
      if (!pipe.wantRoom()) {
        const r = Atomics.waitAsync(signals, 1, tick, 5000);
        if (r.async) assert.notEqual(await r.value, "timed-out", "a room signal was lost");
      }
      continue;
    }
    for (let i = 0; i < region.length; i++) region[i] = (sent + i) & 255;
    sent += region.length;
    if (pipe.commit(region.length)) {
      Atomics.add(signals, 0, 1);
      Atomics.notify(signals, 0);
    }
  }
  const result = await done;
  worker.terminate();
  assert.deepEqual(result, { seen: total, ok: true });
});
