/**
 * Main-thread handle of the time-limit thread (host/watchdog_worker.ts): one per host. It is a
 * `node:worker_threads` Worker because that kind can be unref'd: an embedder that never calls
 * `host.close()` still sees its program exit, as it did before the watchdog existed.
 */
import { Worker } from "node:worker_threads";
import type { Channel } from "../protocol/channel.ts";
import type { WatchdogCommand } from "./watchdog_worker.ts";

export class Watchdog {
  private readonly worker: Worker;

  constructor(libPath: string, engineAddress: bigint) {
    this.worker = new Worker(new URL("./watchdog_worker.ts", import.meta.url));
    this.worker.unref();
    this.post({ kind: "init", libPath, engineAddress });
  }

  private post(cmd: WatchdogCommand): void {
    this.worker.postMessage(cmd);
  }

  /**
   * Stops the guest behind `toGuest` at `deadline` (absolute ms: performance.timeOrigin +
   * performance.now(), the same instant both of the guest's halves are told), unless disarmed first.
   */
  arm(id: number, deadline: number, toGuest: Channel): void {
    this.post({ kind: "arm", id, deadline, toGuest: toGuest.buffer });
  }

  disarm(id: number): void {
    this.post({ kind: "disarm", id });
  }

  close(): void {
    this.worker.terminate();
  }
}
