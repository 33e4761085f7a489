/// <reference lib="deno.worker" />
/**
 * A helper Worker for tests/unit/budget_test.ts: charges a shared HostBudget from its own
 * thread, so two of them (plus the main thread) race on the same counters.
 *
 * Command (the init message), answered with {done: true, ...} when finished. Every worker
 * adds 1 to gate[0] when ready and spins until gate[1] is non-zero, so all start together.
 *  - {kind: "fill", size}: charges `size` bytes until a charge is refused; reports how many
 *    charges succeeded.
 *  - {kind: "churn", size, rounds}: `rounds` times charges `size` and, if it was granted,
 *    checks that `used` is within the limit and releases it; reports the successes and how
 *    often `used` was seen over the limit.
 */
import { HostBudget } from "../../protocol/budget.ts";

/** What a worker does; the test adds the buffers (BudgetWorkerCommand). */
export type BudgetWorkerJob = { kind: "fill"; size: number } | {
  kind: "churn";
  size: number;
  rounds: number;
};
export type BudgetWorkerCommand = BudgetWorkerJob & { buffer: SharedArrayBuffer; gate: SharedArrayBuffer };

export interface BudgetWorkerReport {
  done: true;
  granted: number;
  overLimit: number;
}

self.onmessage = (event: MessageEvent<BudgetWorkerCommand>) => {
  const cmd = event.data;
  const budget = new HostBudget(cmd.buffer);
  const gate = new Int32Array(cmd.gate);
  Atomics.add(gate, 0, 1);
  Atomics.notify(gate, 0);
  while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);
  let granted = 0;
  let overLimit = 0;
  if (cmd.kind === "fill") {
    while (budget.tryCharge(cmd.size)) granted++;
  } else {
    for (let i = 0; i < cmd.rounds; i++) {
      if (!budget.tryCharge(cmd.size)) continue;
      granted++;
      if (budget.used > budget.limit) overLimit++;
      budget.release(cmd.size);
    }
  }
  const report: BudgetWorkerReport = { done: true, granted, overLimit };
  self.postMessage(report);
};
