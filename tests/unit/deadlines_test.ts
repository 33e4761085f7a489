/** The shared deadline timer: fires each deadline once, in time order, and never a cancelled one. */
import assert from "node:assert/strict";
import { Deadlines } from "../../protocol/deadlines.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("deadlines: an earlier deadline armed later still fires first; cancelled ones never fire", async () => {
  const deadlines = new Deadlines();
  const fired: string[] = [];
  deadlines.after(60, () => fired.push("late"));
  deadlines.after(10, () => fired.push("early"));
  const cancel = deadlines.after(20, () => fired.push("cancelled"));
  cancel();
  cancel(); // idempotent
  assert.equal(deadlines.size, 2);
  await sleep(35);
  assert.deepEqual(fired, ["early"]);
  await sleep(80);
  assert.deepEqual(fired, ["early", "late"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: a throwing deadline does not stop the others due with it", async () => {
  const deadlines = new Deadlines();
  const fired: number[] = [];
  deadlines.after(0, () => {
    throw new Error("boom");
  });
  deadlines.after(0, () => fired.push(1));
  await sleep(20);
  assert.deepEqual(fired, [1]);
});

Deno.test("deadlines: cancelling the last one leaves no timer (the test's sanitizer would fail)", () => {
  const deadlines = new Deadlines();
  const cancel = deadlines.after(10_000, () => {});
  cancel();
  assert.equal(deadlines.size, 0);
});

/** A platform timer that only records what it is asked (fire() runs the pending one). */
function recordingTimer() {
  const calls: string[] = [];
  let pending: (() => void) | undefined;
  let next = 0;
  const timer = {
    set(fire: () => void, ms: number) {
      calls.push(`set ${ms}`);
      pending = fire;
      return ++next as unknown as ReturnType<typeof setTimeout>;
    },
    clear(id: ReturnType<typeof setTimeout>) {
      calls.push(`clear ${id}`);
      pending = undefined;
    },
    unref(id: ReturnType<typeof setTimeout>) {
      calls.push(`unref ${id}`);
    },
  };
  return { timer, calls, fire: () => pending?.() };
}

Deno.test("deadlines: with an unref'able timer, deadlines one after another arm it once, and it outlives the last", () => {
  let now = 0;
  const { timer, calls, fire } = recordingTimer();
  const deadlines = new Deadlines(() => now, timer);
  for (let i = 0; i < 3; i++) {
    const cancel = deadlines.after(1000, () => assert.fail("a cancelled deadline fired"));
    now += 10;
    cancel();
  }
  assert.deepEqual(calls, ["set 1000", "unref 1"], "one timer for three sequential deadlines, never cleared");
  const fired: string[] = [];
  deadlines.after(1000, () => fired.push("due")); // due at 1030
  now = 1000;
  fire(); // the first timer: nothing due yet, re-armed for the one left
  assert.deepEqual(calls.slice(2), ["set 30", "unref 2"]);
  now = 1030;
  fire();
  assert.deepEqual(fired, ["due"]);
  assert.equal(deadlines.size, 0);
  assert.equal(calls.length, 4, "nothing left: no new timer");
});

Deno.test("deadlines: without unref, cancelling the last deadline clears the timer", () => {
  const { timer, calls } = recordingTimer();
  const deadlines = new Deadlines(() => 0, { set: timer.set, clear: timer.clear });
  deadlines.after(50, () => {})();
  assert.deepEqual(calls, ["set 50", "clear 1"]);
});
