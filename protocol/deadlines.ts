/**
 * Deadlines that share one timer. A request's timeout is armed and disarmed on every request,
 * and almost never fires; a platform timer per request costs tens of µs of main-thread CPU on
 * the hot path (Deno's Node-compatible `setTimeout`/`clearTimeout`, measured: ~40 µs per chat
 * round trip). Here arming is a Set insert and disarming a delete; the one timer is re-armed
 * only when a deadline earlier than the armed one arrives, and when it fires.
 */

interface Entry {
  at: number;
  fire: () => void;
}

/** Longest delay setTimeout takes (a longer one fires at once); a later deadline re-arms. */
const MAX_DELAY_MS = 0x7fffffff;

export class Deadlines {
  private readonly entries = new Set<Entry>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedAt = Infinity;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Runs `fire` once `ms` have passed, unless the returned function is called first. */
  after(ms: number, fire: () => void): () => void {
    const entry: Entry = { at: this.now() + Math.max(0, ms), fire };
    this.entries.add(entry);
    if (entry.at < this.armedAt) this.arm(entry.at);
    return () => {
      this.entries.delete(entry);
      if (this.entries.size === 0) this.disarm(); // nothing left: nothing keeps the event loop up
    };
  }

  /** Deadlines armed and not yet fired or cancelled. */
  get size(): number {
    return this.entries.size;
  }

  private arm(at: number): void {
    this.disarm();
    this.armedAt = at;
    this.timer = setTimeout(() => this.expire(), Math.min(MAX_DELAY_MS, Math.max(0, at - this.now())));
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  private expire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = this.now();
    const due: Entry[] = [];
    let next = Infinity;
    for (const entry of this.entries) {
      if (entry.at <= now) due.push(entry);
      else next = Math.min(next, entry.at);
    }
    for (const entry of due) this.entries.delete(entry);
    if (next !== Infinity) this.arm(next);
    for (const entry of due) {
      try {
        entry.fire();
      } catch { /* one failing deadline must not stop the others */ }
    }
  }
}
