/**
 * The mic family's driver part without devices or guests: the pacing clock that releases
 * stub and file frames (families/mic/sources.ts `pace`), driven by fake timers — frames follow
 * the start time, late timers catch up, and ten minutes of audio do not drift.
 */
import assert from "node:assert/strict";
import { pace, type Timers } from "../../../families/mic/sources.ts";

Deno.test("mic pacing: frames follow the start time, late timers catch up, no drift over 10 min", () => {
  let now = 1000;
  const queue: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      queue.push({ at: now + ms, fn, id: ++ids });
      return ids;
    },
    clearTimeout: (id) => {
      const i = queue.findIndex((t) => t.id === id);
      if (i >= 0) queue.splice(i, 1);
    },
  };
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const emittedAt: number[] = [];
  const frameMs = 20;
  const paced = pace({
    next: () => new Uint8Array(1),
    frameMs,
    timers,
    emit: () => emittedAt.push(now),
    onEnd: () => assert.fail("the stub never ends"),
  });
  const start = 1000;
  const end = start + 10 * 60 * 1000;
  while (queue.length && now < end) {
    const t = queue.shift()!;
    // Timers fire late by 0–30 ms, sometimes by 300 ms (a busy event loop).
    now = Math.max(now, t.at + (random() < 0.01 ? 300 : random() * 30));
    t.fn();
    // Never ahead, never more than the lateness behind.
    assert.equal(emittedAt.length, Math.floor((now - start) / frameMs));
  }
  paced.stop();
  assert.equal(queue.length, 0, "stop cancels the timer");
  for (let k = 0; k < emittedAt.length; k++) assert.ok(emittedAt[k] >= start + (k + 1) * frameMs);
  const frames = emittedAt.length;
  assert.ok(Math.abs(frames - 30000) <= 16, `${frames} frames in 10 minutes`);
});
