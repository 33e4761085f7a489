/**
 * The host budget (protocol/budget.ts): one set of Int32 counters in a SharedArrayBuffer,
 * charged and released by both threads. Charges past the limit are refused and counted,
 * `force` lets a small control message through past it, `peak` is the highest `used` seen,
 * `reset` empties it for another guest, and charges racing from two Workers never take
 * `used` past the limit or lose an update.
 */
import assert from "node:assert/strict";
import { HostBudget, MAX_HOST_BUDGET_BYTES } from "../../protocol/budget.ts";
import type { BudgetWorkerCommand, BudgetWorkerJob, BudgetWorkerReport } from "../support/budget_worker.ts";
import { within } from "../support/within.ts";

Deno.test("budget: tryCharge within the limit, refusal past it (counted, nothing charged), release", () => {
  const b = HostBudget.create(100);
  assert.deepEqual([b.limit, b.used, b.peak, b.refused, b.available], [100, 0, 0, 0, 100]);
  assert.equal(b.tryCharge(60), true);
  assert.equal(b.tryCharge(40), true, "exactly up to the limit is allowed");
  assert.deepEqual([b.used, b.available, b.refused], [100, 0, 0]);
  assert.equal(b.tryCharge(1), false);
  assert.deepEqual([b.used, b.refused], [100, 1], "a refused charge changes nothing but the count");
  b.release(60);
  assert.equal(b.tryCharge(61), false);
  assert.equal(b.tryCharge(60), true);
  assert.deepEqual([b.used, b.refused], [100, 2]);
  b.release(100);
  assert.equal(b.used, 0);
  // Zero and negative amounts are no-ops, never refusals.
  assert.equal(b.tryCharge(0), true);
  assert.equal(b.tryCharge(-5), true);
  b.release(0);
  b.release(-5);
  assert.deepEqual([b.used, b.refused], [0, 2]);
});

Deno.test("budget: peak is the highest use; release does not lower it", () => {
  const b = HostBudget.create(1000);
  b.tryCharge(300);
  b.tryCharge(400);
  assert.equal(b.peak, 700);
  b.release(600);
  assert.deepEqual([b.used, b.peak], [100, 700]);
  b.tryCharge(500);
  assert.equal(b.peak, 700);
  b.tryCharge(150);
  assert.equal(b.peak, 750);
});

Deno.test("budget: force charges past the limit; later charges are refused until released", () => {
  const b = HostBudget.create(100);
  b.tryCharge(90);
  b.force(30); // an error reply that must get through
  assert.equal(b.used, 120);
  assert.equal(b.available, 0, "available never goes negative");
  assert.equal(b.tryCharge(1), false);
  assert.ok(b.peak >= b.used, `peak ${b.peak} is below used ${b.used}`);
  b.release(30);
  assert.equal(b.used, 90);
  assert.equal(b.tryCharge(10), true);
  b.force(0);
  b.force(-3);
  assert.equal(b.used, 100);
});

Deno.test("budget: the limit must be an integer from 1 byte to 1 GiB", () => {
  for (const bad of [0, -1, 1.5, NaN, MAX_HOST_BUDGET_BYTES + 1]) {
    assert.throws(() => HostBudget.create(bad), RangeError, String(bad));
  }
  assert.equal(HostBudget.create(1).limit, 1);
  assert.equal(HostBudget.create(MAX_HOST_BUDGET_BYTES).limit, MAX_HOST_BUDGET_BYTES);
});

Deno.test("budget: another HostBudget over the same buffer shares the counters; reset empties them", () => {
  const a = HostBudget.create(100);
  const b = new HostBudget(a.buffer);
  a.tryCharge(70);
  assert.equal(b.tryCharge(40), false);
  assert.deepEqual([b.used, b.refused, b.peak], [70, 1, 70]);
  b.release(20);
  assert.equal(a.used, 50);
  b.reset();
  assert.deepEqual([a.limit, a.used, a.peak, a.refused], [100, 0, 0, 0]);
  a.tryCharge(10);
  a.reset(4096);
  assert.deepEqual([b.limit, b.used, b.peak, b.refused], [4096, 0, 0, 0]);
  assert.equal(b.tryCharge(4096), true);
});

/** Starts one budget Worker per command, opens the gate once all are ready, returns their reports. */
async function race(
  budget: HostBudget,
  commands: BudgetWorkerJob[],
): Promise<BudgetWorkerReport[]> {
  const gate = new SharedArrayBuffer(8);
  const gates = new Int32Array(gate);
  const workers = commands.map(() =>
    new Worker(new URL("../support/budget_worker.ts", import.meta.url), { type: "module" })
  );
  try {
    const reports = workers.map((w) =>
      new Promise<BudgetWorkerReport>((resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
      })
    );
    workers.forEach((w, i) => {
      const command: BudgetWorkerCommand = { ...commands[i], buffer: budget.buffer, gate };
      w.postMessage(command);
    });
    while (Atomics.load(gates, 0) < workers.length) {
      const seen = Atomics.load(gates, 0);
      const r = Atomics.waitAsync(gates, 0, seen, 100);
      if (r.async) await r.value;
    }
    Atomics.store(gates, 1, 1);
    Atomics.notify(gates, 1);
    return await within(Promise.all(reports), "the budget workers finishing");
  } finally {
    for (const w of workers) w.terminate();
  }
}

Deno.test("budget: two Workers filling one budget at once — no lost update, never past the limit", async () => {
  const size = 3;
  const limit = 1_500_001; // not a multiple of 3: the last byte stays free
  const budget = HostBudget.create(limit);
  const reports = await race(budget, [{ kind: "fill", size }, { kind: "fill", size }]);
  const granted = reports.reduce((n, r) => n + r.granted, 0);
  assert.ok(reports.every((r) => r.granted > 0), "both workers got charges through");
  assert.equal(budget.used, granted * size, "every granted charge is counted exactly once");
  assert.ok(budget.used <= limit, `used ${budget.used} past the limit ${limit}`);
  assert.equal(budget.used, limit - (limit % size), "filled to the last charge that fits");
  assert.equal(budget.peak, budget.used);
  assert.ok(budget.refused >= 2, "each worker stopped at a refusal");
});

Deno.test("budget: two Workers charging and releasing at once — only one 6-byte charge fits in 10 at a time", async () => {
  const budget = HostBudget.create(10);
  const rounds = 200_000;
  const reports = await race(budget, [
    { kind: "churn", size: 6, rounds },
    { kind: "churn", size: 6, rounds },
  ]);
  assert.deepEqual(reports.map((r) => r.overLimit), [0, 0], "used was seen past the limit");
  assert.ok(budget.peak <= 10, `peak ${budget.peak} past the limit`);
  assert.equal(budget.peak, 6);
  assert.equal(budget.used, 0, "every charge was released");
  const granted = reports.reduce((n, r) => n + r.granted, 0);
  assert.equal(granted + budget.refused, 2 * rounds, "every attempt was granted or refused");
});
