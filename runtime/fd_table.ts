/**
 * One fd table per guest instance (SPEC.md §3). fds start at 1000 and are never reused;
 * a closed entry stays visible (reporting EPOLLHUP) while an epoll set still refers to it
 * and is released after that. Readiness lives in each entry's `mask`; changing it through
 * `setMask` keeps every watching epoll set's ready list current, so waits cost O(ready).
 */
import { fail, FdFlag, type FdKind, FIRST_FD, Poll } from "./abi.ts";
import type { HostBudget } from "../protocol/budget.ts";

/**
 * What one fd table entry costs the guest's host budget, held until the entry is released
 * (also while a closed fd stays watched): a guest cannot grow host memory by piling up fds.
 */
export const FD_ENTRY_BYTES = 512;

/** What an epoll set must hear about the fds it watches. */
export interface FdWatcher {
  readinessChanged(entry: FdEntry): void;
}

export interface FdEntry<S = unknown> {
  readonly fd: number;
  readonly kind: FdKind;
  flags: number;
  closed: boolean;
  /** Current readiness (EPOLLIN/OUT/ERR/HUP). */
  mask: number;
  readonly watchers: Set<FdWatcher>;
  /** Family-specific state. */
  readonly state: S;
}

export interface FdHooks<S> {
  /** Runs once when the fd is closed (stop producers, cancel requests). */
  onClose?(entry: FdEntry<S>): void;
  /** Real counters for spear_fd_ctl GET_METRICS. */
  metrics?(entry: FdEntry<S>): Record<string, unknown>;
}

export class FdTable {
  private readonly entries = new Map<number, FdEntry>();
  private readonly hooks = new Map<number, FdHooks<unknown>>();
  private nextFd = FIRST_FD;
  private open = 0;
  private readonly closeListeners: ((fd: number) => void)[] = [];

  constructor(readonly maxFds = 1024, private readonly budget?: HostBudget) {}

  /**
   * Runs on every close, before the family's own hook (cancel what is outstanding for the fd).
   * So the host sees a request's cancel before the streams the family closes next: a request
   * that completes in between (a connect) finds itself cancelled instead of opening streams
   * whose close it has already been sent, and holding them until the guest ends.
   */
  onClose(listener: (fd: number) => void): void {
    this.closeListeners.push(listener);
  }

  /** Number of fds that are allocated and not closed. */
  get openCount(): number {
    return this.open;
  }

  /** Number of entries still held (open, or closed but watched). */
  get heldCount(): number {
    return this.entries.size;
  }

  /** Allocates the next fd; EMFILE beyond `maxFds` open fds. */
  alloc<S>(kind: FdKind, state: S, hooks: FdHooks<S> = {}, mask = 0): FdEntry<S> {
    return this.allocWith(kind, () => state, hooks, mask);
  }

  /**
   * Allocates an fd whose state reserves something itself (a queue's budget, a stream): the
   * slot is secured first (EMFILE, the entry's charge), then `makeState` runs; if it throws
   * (ENOMEM), the slot is given back. A refused fd never leaves a reservation behind.
   */
  allocWith<S>(kind: FdKind, makeState: () => S, hooks: FdHooks<S> = {}, mask = 0): FdEntry<S> {
    if (this.open >= this.maxFds) throw fail("EMFILE", `more than ${this.maxFds} open fds`);
    if (this.nextFd > 0x7fffffff) throw fail("EMFILE", "fd numbers exhausted");
    if (this.budget && !this.budget.tryCharge(FD_ENTRY_BYTES)) {
      throw fail("ENOMEM", "fd table: over the guest's host budget");
    }
    let state: S;
    try {
      state = makeState();
    } catch (e) {
      this.budget?.release(FD_ENTRY_BYTES);
      throw e;
    }
    const entry: FdEntry<S> = {
      fd: this.nextFd++,
      kind,
      flags: 0,
      closed: false,
      mask,
      watchers: new Set(),
      state,
    };
    this.entries.set(entry.fd, entry);
    this.hooks.set(entry.fd, hooks as FdHooks<unknown>);
    this.open++;
    return entry;
  }

  /** Any held entry, open or closed; EBADF if unknown or released. */
  get(fd: number): FdEntry {
    const entry = this.entries.get(fd);
    if (!entry) throw fail("EBADF", `unknown fd ${fd}`);
    return entry;
  }

  /** An open entry of the given kind (any kind when none is given); EBADF otherwise. */
  getOpen<S>(fd: number, kind?: FdKind): FdEntry<S> {
    const entry = this.get(fd);
    if (entry.closed) throw fail("EBADF", `fd ${fd} is closed`);
    if (kind !== undefined && entry.kind !== kind) throw fail("EBADF", `fd ${fd} is a ${entry.kind}`);
    return entry as FdEntry<S>;
  }

  /** Updates readiness and tells the watching epoll sets when it changed. */
  setMask(entry: FdEntry, mask: number): void {
    if (entry.closed) mask |= Poll.EPOLLHUP;
    if (mask === entry.mask) return;
    entry.mask = mask;
    for (const w of entry.watchers) w.readinessChanged(entry);
  }

  /** Sets or clears bits in the readiness mask. */
  updateMask(entry: FdEntry, set: number, clear = 0): void {
    this.setMask(entry, (entry.mask & ~clear) | set);
  }

  /**
   * Closes an fd: idempotent, raises EPOLLHUP, runs the family's close hook. Any family's
   * close call closes any kind, as in SPEAR.
   */
  close(fd: number): void {
    if (!this.entries.has(fd) && fd >= FIRST_FD && fd < this.nextFd) return; // closed and released
    const entry = this.get(fd);
    if (entry.closed) return;
    entry.closed = true;
    this.open--;
    try {
      for (const listener of this.closeListeners) listener(fd);
      this.hooks.get(fd)?.onClose?.(entry);
    } finally {
      this.setMask(entry, entry.mask | Poll.EPOLLHUP);
      this.releaseIfUnused(entry);
    }
  }

  /** Drops a closed entry once nothing refers to it any more. */
  releaseIfUnused(entry: FdEntry): void {
    if (entry.closed && entry.watchers.size === 0 && this.entries.get(entry.fd) === entry) {
      this.entries.delete(entry.fd);
      this.hooks.delete(entry.fd);
      this.budget?.release(FD_ENTRY_BYTES);
    }
  }

  metrics(entry: FdEntry): Record<string, unknown> {
    return this.hooks.get(entry.fd)?.metrics?.(entry) ?? {};
  }

  isNonBlocking(entry: FdEntry): boolean {
    return (entry.flags & FdFlag.O_NONBLOCK) !== 0;
  }

  /** Closes everything (instance teardown). */
  closeAll(): void {
    for (const fd of [...this.entries.keys()]) {
      const entry = this.entries.get(fd);
      if (entry && !entry.closed) this.close(fd);
    }
  }
}
