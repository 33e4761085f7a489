/**
 * Main-thread handle of the time-limit thread (host/watchdog_worker.ts): one per host. A web
 * Worker (about 25 ms to start, against 120-135 ms for a node:worker_threads one, most of a
 * cold `spear run`), made when a guest is first armed. A web Worker holds the process open, so
 * once no guest is armed for IDLE_MS it is let go (on an unref'd timer): an embedder that never
 * calls `host.close()` still sees its program exit, and guests run back to back share one.
 */
import type { Channel } from "../protocol/channel.ts";
import type { WatchdogCommand } from "./watchdog_worker.ts";

const IDLE_MS = 1000;

export class Watchdog {
  private worker?: Worker;
  private readonly armed = new Set<number>();
  private idleTimer?: ReturnType<typeof setTimeout>;

  constructor(private readonly libPath: string, private readonly engineAddress: bigint) {}

  private post(cmd: WatchdogCommand): void {
    if (!this.worker) {
      this.worker = new Worker(new URL("./watchdog_worker.ts", import.meta.url), { type: "module" });
      this.worker.postMessage({ kind: "init", libPath: this.libPath, engineAddress: this.engineAddress });
    }
    this.worker.postMessage(cmd);
  }

  /**
   * Stops the guest behind `toGuest` at `deadline` (absolute ms: performance.timeOrigin +
   * performance.now(), the same instant both of the guest's halves are told), unless disarmed first.
   */
  arm(id: number, deadline: number, toGuest: Channel): void {
    clearTimeout(this.idleTimer);
    this.armed.add(id);
    this.post({ kind: "arm", id, deadline, toGuest: toGuest.buffer });
  }

  disarm(id: number): void {
    if (!this.armed.delete(id)) return;
    this.post({ kind: "disarm", id });
    if (this.armed.size > 0) return;
    const timer = setTimeout(() => this.close(), IDLE_MS);
    Deno.unrefTimer(timer);
    this.idleTimer = timer;
  }

  close(): void {
    clearTimeout(this.idleTimer);
    this.worker?.terminate();
    this.worker = undefined;
  }
}
