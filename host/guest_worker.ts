/**
 * The Workers guests run in (runtime/worker.ts). Creating one blocks the creating thread for
 * ~25 ms and its modules then load for ~20-30 ms more, and a fresh isolate runs the host's
 * worker code cold (interpreted until V8 has seen it enough). So:
 *   - the CLI's child starts one before it loads the host's own modules (cli/child.ts), so the
 *     two start-ups overlap instead of adding up;
 *   - a Worker whose guest ended normally goes back to an idle pool for the next guest, its
 *     modules loaded and its code warm. A run keeps nothing in its Worker: every store, fd table
 *     and channel is made per run and freed at its end (tests/system/leak_test.ts runs 1000
 *     guests in one thread). A Worker that failed, or whose guest did not finish, is terminated.
 * Idle Workers keep a process alive, so they are let go IDLE_MS after they were last returned,
 * on an unref'd timer, and at once by `releaseGuestWorkers` (SpearHost.close).
 * This module imports nothing, so it is loaded at once.
 */
const WORKER_URL = new URL("../runtime/worker.ts", import.meta.url);
/** Idle Workers kept: guests that run one after another need one; a few run side by side. */
const MAX_IDLE = 2;
const IDLE_MS = 1000;
const idle: Worker[] = [];
let idleTimer: ReturnType<typeof setTimeout> | undefined;

let started = 0;

const startWorker = () => {
  started++;
  return new Worker(WORKER_URL, { type: "module" });
};

/** Guest Workers this process has started (a test sees reuse in it). */
export function guestWorkersStarted(): number {
  return started;
}

/** Starts a guest Worker now, for the next `guestWorker()` to take. */
export function prestartGuestWorker(): void {
  if (idle.length === 0) idle.push(startWorker());
}

/** An idle Worker (the most recently used, the warmest), or a new one. */
export function guestWorker(): Worker {
  return idle.pop() ?? startWorker();
}

/** Takes back the Worker of a guest that ended normally (its result arrived). */
export function returnGuestWorker(worker: Worker): void {
  worker.onmessage = null;
  // Nothing should run in an idle Worker; if something does fail there, the Worker goes, and
  // the error must not reach the host (an unhandled Worker error ends the whole program).
  worker.onerror = (e) => {
    e.preventDefault();
    const at = idle.indexOf(worker);
    if (at >= 0) idle.splice(at, 1);
    worker.terminate();
  };
  if (idle.length >= MAX_IDLE) return worker.terminate();
  idle.push(worker);
  clearTimeout(idleTimer);
  const timer = setTimeout(releaseGuestWorkers, IDLE_MS);
  Deno.unrefTimer(timer);
  idleTimer = timer;
}

/** Terminates every idle Worker. */
export function releaseGuestWorkers(): void {
  clearTimeout(idleTimer);
  idleTimer = undefined;
  for (const worker of idle.splice(0)) worker.terminate();
}
