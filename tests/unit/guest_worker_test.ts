/**
 * The guest Worker pool (host/guest_worker.ts) keeps Workers whose guest ended normally. A
 * failure inside an idle Worker must not reach the host (an unhandled Worker error ends the
 * program): the Worker is dropped and terminated, and the next guest gets another one.
 */
import assert from "node:assert/strict";
import { guestWorker, releaseGuestWorkers, returnGuestWorker } from "../../host/guest_worker.ts";

Deno.test("guest worker pool: a returned Worker is reused; one that fails while idle is dropped, not rethrown", async () => {
  releaseGuestWorkers();
  const src = `self.onmessage = (e) => { if (e.data === "fail") throw new Error("idle failure"); };`;
  const url = URL.createObjectURL(new Blob([src], { type: "application/javascript" }));
  try {
    const failing = new Worker(url, { type: "module" });
    returnGuestWorker(failing);
    assert.equal(guestWorker(), failing, "the idle Worker is handed out again");
    returnGuestWorker(failing);
    let terminated = false;
    const terminate = failing.terminate.bind(failing);
    failing.terminate = () => {
      terminated = true;
      terminate();
    };
    failing.postMessage("fail");
    for (let i = 0; i < 100 && !terminated; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(terminated, "the failed Worker was terminated");
    const next = guestWorker();
    assert.notEqual(next, failing, "a failed Worker is not handed out");
    next.terminate();
  } finally {
    releaseGuestWorkers();
    URL.revokeObjectURL(url);
  }
});
