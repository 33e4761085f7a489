/**
 * Main-thread handle of the time-limit thread (host/watchdog_worker.ts): one per host.
 */
import type { Channel } from "../protocol/channel.ts";
import type { WatchdogCommand } from "./watchdog_worker.ts";

export class Watchdog {
  private readonly worker: Worker;

  constructor(libPath: string, engineAddress: bigint) {
    this.worker = new Worker(new URL("./watchdog_worker.ts", import.meta.url), { type: "module" });
    this.post({ kind: "init", libPath, engineAddress });
  }

  private post(cmd: WatchdogCommand): void {
    this.worker.postMessage(cmd);
  }

  /** Stops the guest behind `toGuest` `timeoutMs` from now, unless disarmed first. */
  arm(id: number, timeoutMs: number, toGuest: Channel): void {
    const deadline = performance.timeOrigin + performance.now() + timeoutMs;
    this.post({ kind: "arm", id, deadline, toGuest: toGuest.buffer });
  }

  disarm(id: number): void {
    this.post({ kind: "disarm", id });
  }

  close(): void {
    this.worker.terminate();
  }
}
