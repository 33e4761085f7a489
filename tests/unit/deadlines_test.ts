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
