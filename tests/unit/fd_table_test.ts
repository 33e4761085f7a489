/**
 * FdTable.allocWith: a state that reserves budget is made only once the fd slot is secured, and
 * a refused fd (EMFILE, or a state that cannot be made) leaves no reservation behind — the bug
 * the fuzz test found twice (mic_create, rtasr_create) is fixed once, here. And the order of a
 * close: the fd's requests are cancelled before its family lets go of its streams.
 */
import assert from "node:assert/strict";
import { FD_ENTRY_BYTES, FdTable } from "../../runtime/fd_table.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { Errno, fail, HostcallError } from "../../runtime/abi.ts";

const code = (f: () => unknown) => {
  try {
    f();
    return 0;
  } catch (e) {
    if (e instanceof HostcallError) return e.code;
    throw e;
  }
};

Deno.test("fd table: allocWith makes the state after the slot is secured, and gives the slot back if it fails", () => {
  const budget = HostBudget.create(1 << 20);
  const fds = new FdTable(2, budget);
  let made = 0;
  const reserving = (from: HostBudget) => () => {
    made++;
    if (!from.tryCharge(4096)) throw fail("ENOMEM");
    return { reserved: 4096 };
  };
  const reserve = reserving(budget);
  fds.allocWith("Test", reserve);
  fds.allocWith("Test", reserve);
  assert.equal(budget.used, 2 * (FD_ENTRY_BYTES + 4096));
  assert.equal(code(() => fds.allocWith("Test", reserve)), -Errno.EMFILE);
  assert.equal(made, 2, "no state is made for a refused fd");
  assert.equal(budget.used, 2 * (FD_ENTRY_BYTES + 4096));

  const tight = HostBudget.create(FD_ENTRY_BYTES + 100);
  const small = new FdTable(8, tight);
  assert.equal(code(() => small.allocWith("Test", reserving(tight))), -Errno.ENOMEM);
  assert.equal(tight.used, 0, "the entry's charge is given back with the slot");
  assert.equal(small.openCount, 0);
});

Deno.test("fd table: closing an fd runs the close listeners (its requests' cancels) before the family's hook", () => {
  const fds = new FdTable(8);
  const order: string[] = [];
  fds.onClose((fd) => order.push(`cancel ${fd}`));
  const entry = fds.alloc("Socket", null, { onClose: (e) => order.push(`streams of ${e.fd} closed`) });
  fds.close(entry.fd);
  // The host must see the cancel first: a connect completing in between then closes its connection.
  assert.deepEqual(order, [`cancel ${entry.fd}`, `streams of ${entry.fd} closed`]);
});
