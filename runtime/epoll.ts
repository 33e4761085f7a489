/**
 * Level-triggered epoll over the fd table (SPEC.md §3). Each set keeps its interest list
 * and a ready set maintained by `readinessChanged`, so collecting results costs O(ready)
 * however many fds are watched. EPOLLERR and EPOLLHUP are always reported (as Linux).
 */
import { EpollOp, fail, Poll, POLL_ALL } from "./abi.ts";
import type { FdEntry, FdTable, FdWatcher } from "./fd_table.ts";

const ALWAYS = Poll.EPOLLERR | Poll.EPOLLHUP;

export interface EpollRecord {
  fd: number;
  events: number;
}

export class Epoll implements FdWatcher {
  private readonly interest = new Map<FdEntry, number>();
  private readonly ready = new Set<FdEntry>();
  /** Scratch for `pick`, reused by every wait. */
  private readonly picked: FdEntry[] = [];
  /** Counters for GET_METRICS. */
  waits = 0;
  wakeups = 0;
  recordsReturned = 0;

  get watchedCount(): number {
    return this.interest.size;
  }

  get readyCount(): number {
    return this.ready.size;
  }

  readinessChanged(entry: FdEntry): void {
    const interest = this.interest.get(entry);
    if (interest === undefined) return;
    if (entry.mask & (interest | ALWAYS)) this.ready.add(entry);
    else this.ready.delete(entry);
  }

  /**
   * ADD/MOD/DEL with SPEAR's checks plus EEXIST/ENOENT (SPEC.md §3). A closed fd that some set
   * still holds is EBADF for ADD and MOD, as it would be once released; DEL still lets it go.
   */
  control(table: FdTable, op: number, target: FdEntry, events: number): void {
    const has = this.interest.has(target);
    if (target.closed && (op === EpollOp.ADD || op === EpollOp.MOD)) {
      throw fail("EBADF", `fd ${target.fd} is closed`);
    }
    switch (op) {
      case EpollOp.ADD:
        if (has) throw fail("EEXIST", `fd ${target.fd} already watched`);
        this.interest.set(target, events & POLL_ALL);
        target.watchers.add(this);
        break;
      case EpollOp.MOD:
        if (!has) throw fail("ENOENT", `fd ${target.fd} not watched`);
        this.interest.set(target, events & POLL_ALL);
        break;
      case EpollOp.DEL:
        if (!has) throw fail("ENOENT", `fd ${target.fd} not watched`);
        this.forget(table, target);
        return;
      default:
        throw fail("EINVAL", `unknown epoll op ${op}`);
    }
    this.readinessChanged(target);
  }

  private forget(table: FdTable, target: FdEntry): void {
    this.interest.delete(target);
    this.ready.delete(target);
    target.watchers.delete(this);
    table.releaseIfUnused(target);
  }

  /** Ready fds in ascending order, at most `max`; one record per fd, events OR-merged. */
  collect(max: number): EpollRecord[] {
    const n = this.pick(max);
    return this.picked.slice(0, n).map((e) => ({ fd: e.fd, events: this.eventsOf(e) }));
  }

  /** Whether any watched fd is ready (what a blocking wait waits for). */
  get hasReady(): boolean {
    return this.ready.size > 0;
  }

  /**
   * What `collect` returns, encoded at `offset` of `out` as the packed little-endian {fd i32,
   * events i32} array the guest reads (the caller checked the room for `max` records);
   * returns the number of records. Allocation-free: every `spear_epoll_wait` calls it, with
   * guest memory as `out`.
   */
  collectInto(max: number, out: DataView, offset: number): number {
    const n = this.pick(max);
    for (let i = 0; i < n; i++) {
      const e = this.picked[i];
      out.setInt32(offset + i * 8, e.fd, true);
      out.setInt32(offset + i * 8 + 4, this.eventsOf(e), true);
    }
    return n;
  }

  /** Fills `picked` with the ready fds in ascending order, at most `max`; returns how many. */
  private pick(max: number): number {
    const picked = this.picked;
    picked.length = 0;
    if (this.ready.size === 0 || max <= 0) return 0;
    for (const e of this.ready) picked.push(e);
    if (picked.length > 1) picked.sort(byFd);
    return Math.min(picked.length, max);
  }

  private eventsOf(e: FdEntry): number {
    return e.mask & (this.interest.get(e)! | ALWAYS);
  }

  /** Unregisters from every watched fd (epfd close). */
  clear(table: FdTable): void {
    for (const target of [...this.interest.keys()]) this.forget(table, target);
  }

  metrics(): Record<string, unknown> {
    return {
      watched: this.interest.size,
      ready: this.ready.size,
      waits: this.waits,
      wakeups: this.wakeups,
      records_returned: this.recordsReturned,
    };
  }
}

const byFd = (a: FdEntry, b: FdEntry) => a.fd - b.fd;
