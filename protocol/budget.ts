/**
 * A guest's host-memory budget, shared by both threads. Everything the host keeps on a
 * guest's behalf (chat messages and responses, queued stream items, fd table entries, request
 * payloads, channel backlog) is charged here before it is kept and released when it goes; a
 * charge past the limit is refused, and the hostcall that asked fails with -ENOMEM (or
 * -ENOSPC for a queue). One counter for both threads, because a guest's bytes move between
 * them: a reply held by a driver is the same budget as the response the worker stores.
 *
 * Counts are bytes in an Int32 (the limit is capped at 1 GiB).
 */
const LIMIT = 0;
const USED = 1;
const PEAK = 2;
const REFUSED = 3;

export const MAX_HOST_BUDGET_BYTES = 1 << 30;

export class HostBudget {
  private readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  static create(limitBytes: number): HostBudget {
    if (!Number.isInteger(limitBytes) || limitBytes <= 0 || limitBytes > MAX_HOST_BUDGET_BYTES) {
      throw new RangeError(`host budget must be 1..${MAX_HOST_BUDGET_BYTES} bytes`);
    }
    const budget = new HostBudget(new SharedArrayBuffer(16));
    Atomics.store(budget.cells, LIMIT, limitBytes);
    return budget;
  }

  get limit(): number {
    return Atomics.load(this.cells, LIMIT);
  }

  get used(): number {
    return Atomics.load(this.cells, USED);
  }

  get peak(): number {
    return Atomics.load(this.cells, PEAK);
  }

  /** Charges refused so far. */
  get refused(): number {
    return Atomics.load(this.cells, REFUSED);
  }

  get available(): number {
    return Math.max(0, this.limit - this.used);
  }

  /** Charges `bytes` if they fit; false (and counted) if not. */
  tryCharge(bytes: number): boolean {
    if (bytes <= 0) return true;
    for (;;) {
      const used = Atomics.load(this.cells, USED);
      if (bytes > this.limit - used) {
        Atomics.add(this.cells, REFUSED, 1);
        return false;
      }
      if (Atomics.compareExchange(this.cells, USED, used, used + bytes) === used) {
        this.raisePeak(used + bytes);
        return true;
      }
    }
  }

  /** Charges even past the limit: small control messages that must get through (an error reply). */
  force(bytes: number): void {
    if (bytes > 0) this.raisePeak(Atomics.add(this.cells, USED, bytes) + bytes);
  }

  private raisePeak(now: number): void {
    for (let peak = this.peak; now > peak; peak = this.peak) {
      if (Atomics.compareExchange(this.cells, PEAK, peak, now) === peak) break;
    }
  }

  release(bytes: number): void {
    if (bytes > 0) Atomics.sub(this.cells, USED, bytes);
  }

  /** The limit as people read it: "64 MiB", "512 KiB", "100 bytes". */
  toString(): string {
    const n = this.limit;
    if (n % (1 << 20) === 0) return `${n >> 20} MiB`;
    if (n % (1 << 10) === 0) return `${n >> 10} KiB`;
    return `${n} bytes`;
  }

  /** Empties the counters for another guest with the same limit. */
  reset(limitBytes = this.limit): void {
    Atomics.store(this.cells, LIMIT, limitBytes);
    Atomics.store(this.cells, USED, 0);
    Atomics.store(this.cells, PEAK, 0);
    Atomics.store(this.cells, REFUSED, 0);
  }
}
