/**
 * Unit tests of the fd table, epoll sets and the core/fd hostcalls, without Wasmtime: the
 * fake guest (tests/support/fake_guest.ts) gives a plain Uint8Array memory, hostcalls are
 * called directly with offsets into it, and readiness is driven with FdTable.setMask/updateMask
 * or by a stream item from a Worker on the other side of the Link (the main thread blocks in
 * Atomics.wait exactly as a guest's worker does).
 */
import assert from "node:assert/strict";
import { EpollOp, Errno, FdCtl, HostcallError, Poll } from "../../runtime/abi.ts";
import type { Epoll } from "../../runtime/epoll.ts";
import { type FdEntry, FdTable } from "../../runtime/fd_table.ts";
import { GuestTerminated } from "../../runtime/guest.ts";
import { Op } from "../../protocol/wire.ts";
import { fakeGuest } from "../support/fake_guest.ts";
import type { LinkWorkerCommand } from "../support/link_worker.ts";

const { EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP } = Poll;
const { ADD, MOD, DEL } = EpollOp;

// Offsets in the fake guest memory.
const LEN = 8; // u32 capacity / length
const OUT = 64; // epoll records (up to 8 KiB)
const ARG = 16384; // fd_ctl in/out buffer
const MEM_BYTES = 65536;

const decoder = new TextDecoder();

/** The fake guest (tests/support/fake_guest.ts) with the core and fd hostcalls, and helpers. */
async function harness(maxFds = 1024) {
  const g = await fakeGuest({ families: ["core", "fd"], maxFds, memBytes: MEM_BYTES, linkBytes: 1 << 20 });
  const { rt, link, mem, view, call } = g;
  const fds = rt.fds;
  /** A fake fd (kind ChatResponse) with an initial readiness mask. */
  const fake = (mask = 0): FdEntry => fds.alloc("ChatResponse", {}, {}, mask);
  const epoll = (): number => call("spear_epoll_create");
  const ctl = (ep: number, op: number, fd: number, events: number = EPOLLIN) =>
    call("spear_epoll_ctl", ep, op, fd, events);
  /** spear_epoll_wait with room for `max` records; returns rc, *len and the records. */
  const wait = (ep: number, max = 64, timeoutMs = 0) => {
    view.setUint32(LEN, max * 8, true);
    const rc = call("spear_epoll_wait", ep, OUT, LEN, timeoutMs);
    const len = view.getUint32(LEN, true);
    const records: [number, number][] = [];
    if (rc > 0) {
      assert.equal(len, rc * 8, "*len must be records * 8");
      for (let i = 0; i < rc; i++) {
        records.push([view.getInt32(OUT + i * 8, true), view.getInt32(OUT + i * 8 + 4, true)]);
      }
    }
    return { rc, len, records };
  };
  /** spear_fd_ctl with `input` (for SET_FLAGS) or an empty buffer of `capacity` bytes. */
  const fdCtl = (fd: number, cmd: number, input?: string, capacity = 4096) => {
    let len = capacity;
    if (input !== undefined) len = g.write(ARG, input);
    view.setUint32(LEN, len, true);
    const rc = call("spear_fd_ctl", fd, cmd, ARG, LEN);
    const outLen = view.getUint32(LEN, true);
    const text = rc > 0 ? decoder.decode(mem.subarray(ARG, ARG + rc)) : "";
    return { rc, len: outLen, text, json: text ? JSON.parse(text) : undefined };
  };
  return { g, rt, link, mem, view, call, fds, fake, epoll, ctl, wait, fdCtl };
}

/** Starts the helper Worker, waits until it is armed, and returns its "done" promise. */
async function startLinkWorker(
  command: LinkWorkerCommand,
): Promise<{ worker: Worker; done: Promise<unknown> }> {
  const worker = new Worker(new URL("../support/link_worker.ts", import.meta.url), { type: "module" });
  let resolveDone!: (v: unknown) => void;
  const done = new Promise((r) => resolveDone = r);
  const armed = new Promise<void>((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.armed) resolve();
      if (e.data.done) resolveDone(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
  });
  worker.postMessage(command);
  await armed;
  return { worker, done };
}

// ------------------------------------------------------------------ fd table

Deno.test("fd table: fds start at 1000, count up, and are never reused", async () => {
  const fds = new FdTable(8);
  const a = fds.alloc("ChatSession", {});
  const b = fds.alloc("Mic", {});
  assert.deepEqual([a.fd, b.fd], [1000, 1001]);
  fds.close(1000);
  fds.close(1001);
  assert.equal(fds.alloc("Epoll", {}).fd, 1002);
  assert.equal(fds.openCount, 1);
  // The released numbers stay unknown.
  assert.throws(() => fds.get(1000), (e) => e instanceof HostcallError && e.errno === "EBADF");

  const h = await harness();
  assert.equal(h.epoll(), 1000);
  assert.equal(h.call("spear_epoll_close", 1000), 0);
  assert.equal(h.epoll(), 1001);
});

Deno.test("fd table: EMFILE at max_fds; allocation works again after a close", async () => {
  const h = await harness(3);
  const eps = [h.epoll(), h.epoll(), h.epoll()];
  assert.deepEqual(eps, [1000, 1001, 1002]);
  assert.equal(h.epoll(), -Errno.EMFILE);
  assert.throws(() => h.fds.alloc("Mic", {}), (e) => e instanceof HostcallError && e.code === -24);
  assert.equal(h.call("spear_epoll_close", 1001), 0);
  assert.equal(h.epoll(), 1003, "a freed slot is reused, the number is not");
  assert.equal(h.epoll(), -Errno.EMFILE);
  // A closed fd that an epoll set still refers to is held but does not count as open.
  const ep = 1000;
  assert.equal(h.call("spear_epoll_close", 1002), 0);
  const f = h.fake(); // 1004
  assert.equal(h.ctl(ep, ADD, f.fd), 0);
  h.fds.close(f.fd);
  assert.equal(h.fds.heldCount, 3);
  assert.equal(h.fds.openCount, 2);
  assert.equal(h.epoll(), 1005);
});

Deno.test("fd table: close is idempotent, also after release; the released entry is EBADF", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake(EPOLLIN);
  assert.equal(h.ctl(ep, ADD, f.fd), 0);
  h.fds.close(f.fd);
  h.fds.close(f.fd); // still held by the epoll set: no error
  assert.equal(h.fds.get(f.fd).closed, true);
  assert.equal(h.ctl(ep, DEL, f.fd), 0);
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_KIND).rc, -Errno.EBADF);
  assert.equal(h.ctl(ep, ADD, f.fd), -Errno.EBADF);
  // SPEAR: closing an already-closed fd returns 0, even once spearhost has released it.
  assert.equal(h.call("spear_epoll_close", f.fd), 0);
  assert.equal(h.call("spear_epoll_close", ep), 0);
  assert.equal(h.call("spear_epoll_close", ep), 0);
  // fds never handed out are unknown.
  for (const fd of [999, 0, -1, 1002, 0x7fffffff]) {
    assert.equal(h.call("spear_epoll_close", fd), -Errno.EBADF, `fd ${fd}`);
  }
});

// ------------------------------------------------------------------ epoll_ctl

Deno.test("epoll_ctl: EEXIST, ENOENT, EINVAL and EBADF cases", async () => {
  const h = await harness();
  const ep = h.epoll();
  const ep2 = h.epoll();
  const f = h.fake();
  assert.equal(h.ctl(ep, ADD, f.fd), 0);
  assert.equal(h.ctl(ep, ADD, f.fd), -Errno.EEXIST);
  const g = h.fake();
  assert.equal(h.ctl(ep, MOD, g.fd), -Errno.ENOENT);
  assert.equal(h.ctl(ep, DEL, g.fd), -Errno.ENOENT);
  assert.equal(h.ctl(ep, MOD, f.fd, EPOLLOUT), 0);
  assert.equal(h.ctl(ep, DEL, f.fd), 0);
  assert.equal(h.ctl(ep, DEL, f.fd), -Errno.ENOENT);
  assert.equal(h.ctl(ep, ADD, ep), -Errno.EINVAL, "epfd == fd");
  assert.equal(h.ctl(ep, ADD, ep2), -Errno.EINVAL, "nested epoll");
  for (const op of [0, 4, -1, 0x7fffffff]) assert.equal(h.ctl(ep, op, f.fd), -Errno.EINVAL, `op ${op}`);
  assert.equal(h.ctl(ep, ADD, 999), -Errno.EBADF, "unknown target");
  assert.equal(h.ctl(4242, ADD, f.fd), -Errno.EBADF, "unknown epfd");
  assert.equal(h.ctl(f.fd, ADD, g.fd), -Errno.EBADF, "epfd is not an epoll");
  assert.equal(h.call("spear_epoll_close", ep2), 0);
  assert.equal(h.ctl(ep2, ADD, f.fd), -Errno.EBADF, "closed epfd");
  // Unknown event bits are masked off.
  assert.equal(h.ctl(ep, ADD, f.fd, -1), 0);
  h.fds.setMask(f, EPOLLIN | EPOLLOUT | 0x100);
  assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLIN | EPOLLOUT]]);
});

// ------------------------------------------------------------------ epoll_wait results

Deno.test("epoll_wait: one record per fd with events OR-merged, ascending fds", async () => {
  const h = await harness();
  const ep = h.epoll();
  const fs = Array.from({ length: 8 }, () => h.fake());
  // Register in scrambled order, with different interests.
  for (const i of [5, 2, 7, 0, 3, 6, 1, 4]) assert.equal(h.ctl(ep, ADD, fs[i].fd, EPOLLIN | EPOLLOUT), 0);
  // Readiness changes many times, in another scrambled order.
  for (const i of [6, 1, 4, 1, 6, 3]) h.fds.updateMask(fs[i], EPOLLIN);
  h.fds.updateMask(fs[1], EPOLLOUT);
  h.fds.updateMask(fs[3], EPOLLOUT);
  h.fds.updateMask(fs[3], EPOLLIN); // already set
  const { rc, records } = h.wait(ep);
  assert.equal(rc, 4);
  assert.deepEqual(records, [
    [fs[1].fd, EPOLLIN | EPOLLOUT],
    [fs[3].fd, EPOLLIN | EPOLLOUT],
    [fs[4].fd, EPOLLIN],
    [fs[6].fd, EPOLLIN],
  ]);
  // Only the interest bits (plus ERR/HUP) are reported.
  assert.equal(h.ctl(ep, MOD, fs[1].fd, EPOLLOUT), 0);
  assert.deepEqual(h.wait(ep).records[0], [fs[1].fd, EPOLLOUT]);
  // Clearing readiness removes the record.
  h.fds.updateMask(fs[4], 0, EPOLLIN);
  assert.deepEqual(h.wait(ep).records.map(([fd]) => fd), [fs[1].fd, fs[3].fd, fs[6].fd]);
});

Deno.test("epoll_wait: limited to the capacity, lowest fds first, the rest on the next call", async () => {
  const h = await harness();
  const ep = h.epoll();
  const fs = Array.from({ length: 10 }, () => h.fake());
  for (const f of [...fs].reverse()) {
    h.ctl(ep, ADD, f.fd);
    h.fds.setMask(f, EPOLLIN);
  }
  const first = h.wait(ep, 3);
  assert.equal(first.rc, 3);
  assert.equal(first.len, 24);
  assert.deepEqual(first.records.map(([fd]) => fd), fs.slice(0, 3).map((f) => f.fd));
  // A capacity that is not a multiple of 8 rounds down.
  h.view.setUint32(LEN, 8 * 4 + 7, true);
  assert.equal(h.call("spear_epoll_wait", ep, OUT, LEN, 0), 4);
  // Level-triggered: consume the first three, the next call returns the following ones.
  for (const f of fs.slice(0, 3)) h.fds.setMask(f, 0);
  assert.deepEqual(h.wait(ep, 3).records.map(([fd]) => fd), fs.slice(3, 6).map((f) => f.fd));
  assert.equal(h.wait(ep, 100).rc, 7);
});

Deno.test("epoll_wait: level-triggered — the same result until readiness changes", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake(EPOLLIN);
  h.ctl(ep, ADD, f.fd);
  const a = h.wait(ep);
  const b = h.wait(ep);
  const c = h.wait(ep, 64, 50);
  assert.deepEqual(a.records, [[f.fd, EPOLLIN]]);
  assert.deepEqual(b.records, a.records);
  assert.deepEqual(c.records, a.records);
  h.fds.setMask(f, 0);
  assert.equal(h.wait(ep).rc, 0);
  assert.equal(h.wait(ep).len, 0, "*len is 0 when nothing is ready");
});

Deno.test("epoll_wait: ERR and HUP are reported even when not requested", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake();
  const g = h.fake();
  h.ctl(ep, ADD, f.fd, EPOLLIN);
  h.ctl(ep, ADD, g.fd, EPOLLOUT);
  h.fds.setMask(f, EPOLLERR);
  h.fds.setMask(g, EPOLLHUP | EPOLLIN); // IN is not in g's interest
  assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLERR], [g.fd, EPOLLHUP]]);
  // Even with an interest of 0.
  assert.equal(h.ctl(ep, MOD, f.fd, 0), 0);
  assert.deepEqual(h.wait(ep).records[0], [f.fd, EPOLLERR]);
});

Deno.test("epoll: a closed watched fd reports HUP until DEL, then its entry is released", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake();
  const g = h.fake();
  h.ctl(ep, ADD, f.fd, EPOLLIN);
  h.ctl(ep, ADD, g.fd, EPOLLIN);
  assert.equal(h.wait(ep).rc, 0);
  h.fds.close(f.fd);
  for (let i = 0; i < 3; i++) assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLHUP]], `wait #${i}`);
  // Readiness changes after close keep HUP.
  h.fds.setMask(f, EPOLLIN);
  assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLIN | EPOLLHUP]]);
  // fd_ctl still works on the held entry and shows it closed.
  const status = h.fdCtl(f.fd, FdCtl.GET_STATUS).json;
  assert.equal(status.closed, true);
  assert.ok(status.poll_mask.includes("EPOLLHUP"));
  assert.equal(h.ctl(ep, DEL, f.fd), 0);
  assert.equal(h.wait(ep).rc, 0);
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_STATUS).rc, -Errno.EBADF, "released after DEL");
  assert.equal(h.ctl(ep, ADD, f.fd), -Errno.EBADF);
});

Deno.test("epoll: a closed fd that a set still holds cannot be added, modified or given flags (EBADF)", async () => {
  const h = await harness();
  const ep = h.epoll();
  const ep2 = h.epoll();
  const f = h.fake();
  assert.equal(h.ctl(ep, ADD, f.fd, EPOLLIN), 0);
  assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, '{"set":["O_NONBLOCK"]}').rc, 0);
  h.fds.close(f.fd);
  assert.equal(h.ctl(ep2, ADD, f.fd), -Errno.EBADF, "ADD to another set");
  assert.equal(h.ctl(ep, ADD, f.fd), -Errno.EBADF, "ADD to the set holding it");
  assert.equal(h.ctl(ep, MOD, f.fd, EPOLLIN | EPOLLOUT), -Errno.EBADF, "MOD");
  assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, '{"clear":["O_NONBLOCK"]}').rc, -Errno.EBADF, "SET_FLAGS");
  assert.equal(f.watchers.size, 1, "ep2 did not start watching it");
  assert.deepEqual(h.wait(ep2).records, []);
  // The failed calls changed nothing: still held, HUP reported, flags and interest as before.
  assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLHUP]]);
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_FLAGS).json, { flags: ["O_NONBLOCK"] });
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_KIND).json.kind, "ChatResponse");
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_STATUS).json.closed, true);
  // DEL is how the guest lets go of it.
  assert.equal(h.ctl(ep, DEL, f.fd), 0);
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_KIND).rc, -Errno.EBADF, "released after DEL");
  assert.equal(h.fds.heldCount, 2);
});

Deno.test("epoll: closing the epfd unregisters it and releases closed entries it held", async () => {
  const h = await harness();
  const ep = h.epoll();
  const ep2 = h.epoll();
  const f = h.fake(EPOLLIN);
  const g = h.fake(EPOLLIN);
  h.ctl(ep, ADD, f.fd);
  h.ctl(ep, ADD, g.fd);
  h.ctl(ep2, ADD, g.fd);
  h.fds.close(f.fd);
  h.fds.close(g.fd);
  assert.equal(f.watchers.size, 1);
  assert.equal(g.watchers.size, 2);
  assert.equal(h.call("spear_epoll_close", ep), 0);
  assert.equal(f.watchers.size, 0);
  assert.equal(g.watchers.size, 1);
  assert.equal(h.fdCtl(f.fd, FdCtl.GET_KIND).rc, -Errno.EBADF, "f was only held by ep");
  assert.equal(h.fdCtl(g.fd, FdCtl.GET_KIND).json.kind, "ChatResponse", "g is still held by ep2");
  assert.deepEqual(h.wait(ep2).records, [[g.fd, EPOLLIN | EPOLLHUP]]);
  assert.equal(h.wait(ep).rc, -Errno.EBADF, "the closed epfd is gone");
  assert.equal(h.call("spear_epoll_close", ep2), 0);
  assert.equal(h.fdCtl(g.fd, FdCtl.GET_KIND).rc, -Errno.EBADF);
  assert.equal(h.fds.heldCount, 0);
  // Readiness changes of an fd no set watches any more reach nobody.
  const k = h.fake();
  const ep3 = h.epoll();
  h.ctl(ep3, ADD, k.fd);
  h.call("spear_epoll_close", ep3);
  h.fds.setMask(k, EPOLLIN);
  assert.equal(k.watchers.size, 0);
});

Deno.test("epoll: 10 000 watched idle fds and a few ready ones — only the ready are returned", async () => {
  const h = await harness(20_000);
  const ep = h.epoll();
  const idle = Array.from({ length: 10_000 }, () => h.fake());
  for (const f of idle) assert.equal(h.ctl(ep, ADD, f.fd, EPOLLIN | EPOLLOUT), 0);
  const ready = [idle[9_999], idle[17], idle[5_000], idle[0]];
  for (const f of ready) h.fds.setMask(f, EPOLLIN);
  const set = h.fds.get(ep).state as Epoll;
  assert.equal(set.watchedCount, 10_000);
  assert.equal(set.readyCount, 4);
  for (let i = 0; i < 2000; i++) assert.equal(h.wait(ep, 16).rc, 4);
  // The ready list is kept up to date (readyCount above), so a wait costs O(ready), not
  // O(watched): bench/hot_paths.ts times it beside native epoll_wait.
  assert.deepEqual(h.wait(ep, 16).records.map(([fd]) => fd), [1001, 1018, 6001, 11000]);
  for (const f of ready) h.fds.setMask(f, 0);
  assert.equal(h.wait(ep, 16, 10).rc, 0);
});

// ------------------------------------------------------------------ epoll_wait blocking

Deno.test("epoll_wait: timeout 0 polls; a positive timeout waits at least that long", async () => {
  const h = await harness();
  const ep = h.epoll();
  h.ctl(ep, ADD, h.fake().fd);
  let t0 = performance.now();
  assert.equal(h.wait(ep, 8, 0).rc, 0);
  assert.ok(performance.now() - t0 < 1000, "timeout 0 does not wait");
  for (const ms of [50, 120]) {
    t0 = performance.now();
    assert.equal(h.wait(ep, 8, ms).rc, 0);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= ms, `waited ${elapsed.toFixed(1)} ms for ${ms}`);
    assert.ok(elapsed < ms + 2000, `waited ${elapsed.toFixed(1)} ms for ${ms}`);
  }
  // An empty set with a timeout also just waits.
  const empty = h.epoll();
  t0 = performance.now();
  assert.equal(h.wait(empty, 8, 30).rc, 0);
  assert.ok(performance.now() - t0 >= 30);
});

Deno.test("epoll_wait: a message from another thread that makes an fd ready wakes a blocked wait", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake();
  const other = h.fake();
  h.ctl(ep, ADD, f.fd);
  h.ctl(ep, ADD, other.fd);
  // Each fd is fed by a stream from "the host" (the link worker); an item makes it ready.
  const seen: number[] = [];
  const feed = (entry: FdEntry) =>
    h.rt.openStream({
      data: () => {
        seen.push(entry.fd);
        h.fds.updateMask(entry, EPOLLIN);
      },
      event: () => {},
    });
  const streamOf = new Map([[f.fd, feed(f)], [other.fd, feed(other)]]);
  const { worker, done } = await startLinkWorker({
    kind: "wake",
    buffers: h.link.buffers,
    delayMs: 150,
    stream: streamOf.get(f.fd)!,
  });
  try {
    const t0 = performance.now();
    const { rc, records } = h.wait(ep, 8, 10_000); // blocks this thread in Atomics.wait
    const elapsed = performance.now() - t0;
    assert.equal(rc, 1);
    assert.deepEqual(records, [[f.fd, EPOLLIN]]);
    assert.deepEqual(seen, [f.fd]);
    assert.ok(elapsed >= 100, `returned after ${elapsed.toFixed(1)} ms, before the message was sent`);
    assert.ok(elapsed < 5_000, `returned after ${elapsed.toFixed(1)} ms`);
    assert.equal((h.fds.get(ep).state as Epoll).wakeups, 1);
    await done;
  } finally {
    worker.terminate();
  }

  // The same with an infinite timeout.
  h.fds.setMask(f, 0);
  const second = await startLinkWorker({
    kind: "wake",
    buffers: h.link.buffers,
    delayMs: 50,
    stream: streamOf.get(other.fd)!,
  });
  try {
    assert.deepEqual(h.wait(ep, 8, -1).records, [[other.fd, EPOLLIN]]);
    await second.done;
  } finally {
    second.worker.terminate();
  }
});

Deno.test("epoll_wait: spurious wakeups (bell rings, nothing ready) keep waiting until the deadline", async () => {
  const h = await harness();
  const ep = h.epoll();
  h.ctl(ep, ADD, h.fake().fd);
  const { worker, done } = await startLinkWorker({
    kind: "ring",
    buffers: h.link.buffers,
    delayMs: 20,
    times: 5,
  });
  try {
    const t0 = performance.now();
    const { rc } = h.wait(ep, 8, 300);
    const elapsed = performance.now() - t0;
    assert.equal(rc, 0);
    assert.ok(elapsed >= 300, `returned after ${elapsed.toFixed(1)} ms`);
    assert.ok(elapsed < 2_000, `returned after ${elapsed.toFixed(1)} ms`);
    await done;
  } finally {
    worker.terminate();
  }
});

Deno.test("epoll_wait / sleep_ms: a terminate request from another thread ends a wait forever", async () => {
  const h = await harness();
  const ep = h.epoll();
  const { worker, done } = await startLinkWorker({ kind: "terminate", buffers: h.link.buffers, delayMs: 50 });
  try {
    const t0 = performance.now();
    assert.throws(() => h.wait(ep, 8, -1), GuestTerminated);
    assert.ok(performance.now() - t0 < 5_000);
    await done;
    // Any later blocking call stops at once too.
    assert.throws(() => h.call("sleep_ms", -1), GuestTerminated);
  } finally {
    worker.terminate();
  }
});

// ------------------------------------------------------------------ epoll_wait buffers

Deno.test("epoll_wait: capacity < 8 → -ENOSPC with 8 written back, before the epfd is checked", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake(EPOLLIN);
  h.ctl(ep, ADD, f.fd);
  for (const cap of [0, 1, 7]) {
    h.view.setUint32(LEN, cap, true);
    assert.equal(h.call("spear_epoll_wait", ep, OUT, LEN, 0), -Errno.ENOSPC);
    assert.equal(h.view.getUint32(LEN, true), 8);
  }
  h.view.setUint32(LEN, 0, true);
  assert.equal(h.call("spear_epoll_wait", 777, OUT, LEN, 0), -Errno.ENOSPC);
  assert.equal(h.view.getUint32(LEN, true), 8);
  // Nothing was consumed: the fd is still reported.
  assert.deepEqual(h.wait(ep).records, [[f.fd, EPOLLIN]]);
  // With room, an unknown / non-epoll epfd is EBADF.
  assert.equal(h.wait(777).rc, -Errno.EBADF);
  assert.equal(h.wait(f.fd).rc, -Errno.EBADF);
});

Deno.test("epoll_wait: bad out_ptr / len_ptr → -EFAULT, and nothing is written", async () => {
  const h = await harness();
  const ep = h.epoll();
  const f = h.fake(EPOLLIN);
  h.ctl(ep, ADD, f.fd);
  const cases: [string, number, number, number][] = [
    // [what, out_ptr, len_ptr, capacity]
    ["negative out_ptr", -8, LEN, 64],
    ["negative len_ptr", OUT, -4, 64],
    ["len_ptr past the end", OUT, MEM_BYTES, 64],
    ["len_ptr straddling the end", OUT, MEM_BYTES - 2, 64],
    ["out_ptr past the end", MEM_BYTES + 8, LEN, 64],
    ["out range crossing the end", MEM_BYTES - 8, LEN, 64],
    ["huge capacity", OUT, LEN, 0xfffffff8],
    ["out_ptr at INT32_MIN", -0x80000000, LEN, 64],
  ];
  for (const [what, out, len, cap] of cases) {
    if (len >= 0 && len + 4 <= MEM_BYTES) h.view.setUint32(len, cap, true);
    h.mem.fill(0xee, OUT, OUT + 64);
    h.mem.fill(0xee, MEM_BYTES - 16);
    assert.equal(h.call("spear_epoll_wait", ep, out, len, 0), -Errno.EFAULT, what);
    assert.ok(h.mem.subarray(OUT, OUT + 64).every((b) => b === 0xee), `${what}: records written`);
    assert.ok(h.mem.subarray(MEM_BYTES - 16).every((b) => b === 0xee), `${what}: memory end written`);
  }
  // A record area that ends exactly at the end of memory is fine.
  h.view.setUint32(LEN, 8, true);
  assert.equal(h.call("spear_epoll_wait", ep, MEM_BYTES - 8, LEN, 0), 1);
  assert.equal(h.view.getInt32(MEM_BYTES - 8, true), f.fd);
});

// ------------------------------------------------------------------ fd_ctl

Deno.test("fd_ctl: SET_FLAGS / GET_FLAGS / GET_KIND / GET_STATUS", async () => {
  const h = await harness();
  const f = h.fake(EPOLLIN | EPOLLOUT);
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_FLAGS).json, { flags: [] });
  assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, '{"set":["O_NONBLOCK"]}').rc, 0);
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_FLAGS).json, { flags: ["O_NONBLOCK"] });
  assert.equal(h.fds.isNonBlocking(f), true);
  assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, '{"clear":["O_NONBLOCK"]}').rc, 0);
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_FLAGS).json, { flags: [] });
  assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, "{}").rc, 0);
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_KIND).json, { kind: "ChatResponse" });
  const ep = h.epoll();
  assert.deepEqual(h.fdCtl(ep, FdCtl.GET_KIND).json, { kind: "Epoll" });
  const r = h.fdCtl(f.fd, FdCtl.GET_STATUS);
  assert.equal(r.rc, r.len, "returns the byte count, also stored in *len");
  assert.deepEqual(r.json, {
    kind: "ChatResponse",
    flags: [],
    poll_mask: ["EPOLLIN", "EPOLLOUT"],
    closed: false,
  });
});

Deno.test("fd_ctl: bad JSON or flags → -EINVAL; unknown cmd → -EINVAL; unknown fd → -EBADF", async () => {
  const h = await harness();
  const f = h.fake();
  for (
    const bad of [
      "{",
      "",
      "[]",
      "null",
      '"x"',
      '{"set":"O_NONBLOCK"}',
      '{"set":["O_APPEND"]}',
      '{"clear":[1]}',
    ]
  ) {
    assert.equal(h.fdCtl(f.fd, FdCtl.SET_FLAGS, bad).rc, -Errno.EINVAL, `SET_FLAGS ${JSON.stringify(bad)}`);
  }
  assert.deepEqual(
    h.fdCtl(f.fd, FdCtl.GET_FLAGS).json,
    { flags: [] },
    "a rejected SET_FLAGS changes nothing",
  );
  for (const cmd of [0, 6, 99, -1]) assert.equal(h.fdCtl(f.fd, cmd).rc, -Errno.EINVAL, `cmd ${cmd}`);
  for (const fd of [999, 0, -1, 5000]) assert.equal(h.fdCtl(fd, FdCtl.GET_KIND).rc, -Errno.EBADF, `fd ${fd}`);
  // Bad pointers.
  h.view.setUint32(LEN, 100, true);
  assert.equal(h.call("spear_fd_ctl", f.fd, FdCtl.GET_KIND, -1, LEN), -Errno.EFAULT);
  assert.equal(h.call("spear_fd_ctl", f.fd, FdCtl.GET_KIND, MEM_BYTES - 5, LEN), -Errno.EFAULT);
  assert.equal(h.call("spear_fd_ctl", f.fd, FdCtl.GET_KIND, ARG, -4), -Errno.EFAULT);
  assert.equal(h.call("spear_fd_ctl", f.fd, FdCtl.GET_KIND, ARG, MEM_BYTES - 3), -Errno.EFAULT);
  h.view.setUint32(LEN, 0x7fffffff, true);
  assert.equal(
    h.call("spear_fd_ctl", f.fd, FdCtl.SET_FLAGS, ARG, LEN),
    -Errno.EFAULT,
    "SET_FLAGS length past the end",
  );
});

Deno.test("fd_ctl: too small a buffer → -ENOSPC with the needed length; nothing lost on retry", async () => {
  const h = await harness();
  const f = h.fake(EPOLLIN);
  const full = h.fdCtl(f.fd, FdCtl.GET_STATUS);
  assert.ok(full.rc > 10);
  for (const cap of [0, 1, full.rc - 1]) {
    h.mem.fill(0xee, ARG, ARG + 256);
    const small = h.fdCtl(f.fd, FdCtl.GET_STATUS, undefined, cap);
    assert.equal(small.rc, -Errno.ENOSPC, `capacity ${cap}`);
    assert.equal(small.len, full.rc, "needed length written back");
    assert.ok(h.mem.subarray(ARG, ARG + 256).every((b) => b === 0xee), "nothing written on ENOSPC");
  }
  const exact = h.fdCtl(f.fd, FdCtl.GET_STATUS, undefined, full.rc);
  assert.equal(exact.rc, full.rc);
  assert.equal(exact.text, full.text);
});

Deno.test("fd_ctl: GET_METRICS returns the family's real counters, {} when it has none", async () => {
  const h = await harness();
  let bytes = 0;
  const f = h.fds.alloc("Mic", {}, { metrics: () => ({ bytes, items: 3 }) });
  bytes = 4096;
  assert.deepEqual(h.fdCtl(f.fd, FdCtl.GET_METRICS).json, { bytes: 4096, items: 3 });
  assert.deepEqual(h.fdCtl(h.fake().fd, FdCtl.GET_METRICS).json, {});
  // An epoll set counts its waits, wakeups and records.
  const ep = h.epoll();
  const g = h.fake(EPOLLIN);
  h.ctl(ep, ADD, g.fd);
  h.ctl(ep, ADD, f.fd);
  h.wait(ep);
  h.wait(ep);
  assert.deepEqual(h.fdCtl(ep, FdCtl.GET_METRICS).json, {
    watched: 2,
    ready: 1,
    waits: 2,
    wakeups: 0,
    records_returned: 2,
  });
});

// ------------------------------------------------------------------ core hostcalls

Deno.test("core: log checks length and pointers and forwards the text to the host", async () => {
  const h = await harness();
  const length = h.g.write(ARG, "hello log\n");
  assert.equal(h.call("log", 3, ARG, length), 0);
  assert.equal(h.call("log", 99, ARG, 5), 0); // unknown level → info
  assert.equal(h.call("log", 2, ARG, 0), 0);
  assert.equal(h.call("log", 2, 0, 16384), 0); // the maximum length
  assert.equal(h.call("log", 2, 0, 16385), -Errno.EINVAL);
  assert.equal(h.call("log", 2, ARG, -1), -Errno.EINVAL);
  assert.equal(h.call("log", 2, -1, 4), -Errno.EFAULT);
  assert.equal(h.call("log", 2, MEM_BYTES - 2, 4), -Errno.EFAULT);
  // A record crosses as Op.LOG with the level in the fd field and the raw text as payload.
  const records = h.g.sent().map((m) => {
    assert.equal(m.op, Op.LOG);
    return { level: m.fd, message: decoder.decode(m.payload) };
  });
  assert.equal(records.length, 4);
  assert.deepEqual(records[0], { level: 3, message: "hello log\n" });
  assert.deepEqual(records[1], { level: 2, message: "hello" });
  assert.equal(records[2].message, "");
  assert.equal(records[3].message.length, 16384);
});

Deno.test("core: time, random and sleep_ms", async () => {
  const h = await harness();
  const now = h.call("time_now_ms");
  assert.ok(Math.abs(now - Date.now()) < 5_000);
  assert.ok(Math.abs(h.call("wall_time_s") - Date.now() / 1000) < 5);
  const r = new Set(Array.from({ length: 8 }, () => h.call("random_i64")));
  assert.ok(r.size > 1, "random_i64 returns varying values");
  const t0 = performance.now();
  h.call("sleep_ms", 40);
  assert.ok(performance.now() - t0 >= 40);
  h.call("sleep_ms", 0);
});
