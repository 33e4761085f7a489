/**
 * The Worker a guest runs in (runtime/worker.ts), possibly started ahead of time. Creating a
 * Worker blocks the creating thread for ~25 ms and its modules then load for ~20-30 ms more;
 * the CLI's child starts one before it loads the host's own modules (cli/child.ts), so the
 * two start-ups overlap instead of adding up. This module imports nothing, so it is loaded
 * at once.
 */
const WORKER_URL = new URL("../runtime/worker.ts", import.meta.url);
let spare: Worker | undefined;

/** Starts a guest Worker now, for the next `guestWorker()` to take. */
export function prestartGuestWorker(): void {
  spare ??= new Worker(WORKER_URL, { type: "module" });
}

/** The prestarted Worker, or a new one. */
export function guestWorker(): Worker {
  const worker = spare ?? new Worker(WORKER_URL, { type: "module" });
  spare = undefined;
  return worker;
}
