/**
 * Deadlines that share one timer. A request's timeout is armed and disarmed on every request,
 * and almost never fires; a platform timer per request costs tens of µs of main-thread CPU on
 * the hot path (Deno's Node-compatible `setTimeout`/`clearTimeout`, measured: ~40 µs per chat
 * round trip). Here arming is a Set insert and disarming a delete; the one timer is re-armed
 * only when a deadline earlier than the armed one arrives, and when it fires.
 *
 * With timers that can be unref'd (a timer that does not keep the program alive), the timer
 * also outlives its last deadline: requests one after another then arm it once per timeout
 * period instead of once each (a set and a clear per sequential round trip were ~20 µs of the
 * main thread's CPU, measured alternating), and it fires once, finds nothing due, and stops.
 * Without (the default), cancelling the last deadline clears the timer at once.
 */

interface Entry {
  at: number;
  fire: () => void;
}

/** Longest delay setTimeout takes (a longer one fires at once); a later deadline re-arms. */
const MAX_DELAY_MS = 0x7fffffff;

type Timer = ReturnType<typeof setTimeout>;

/** The platform timer the deadlines share (injectable: protocol/ does not use Deno itself). */
export interface DeadlineTimer {
  set(fire: () => void, ms: number): Timer;
  clear(timer: Timer): void;
  /** Lets the program end while the timer is pending; given, the timer outlives its last deadline. */
  unref?(timer: Timer): void;
}

const platformTimer: DeadlineTimer = {
  set: (fire, ms) => setTimeout(fire, ms),
  clear: (timer) => clearTimeout(timer),
};

export class Deadlines {
  private readonly entries = new Set<Entry>();
  private timer: Timer | undefined;
  private armedAt = Infinity;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly platform: DeadlineTimer = platformTimer,
  ) {}

  /** Runs `fire` once `ms` have passed, unless the returned function is called first. */
  after(ms: number, fire: () => void): () => void {
    const entry: Entry = { at: this.now() + Math.max(0, ms), fire };
    this.entries.add(entry);
    if (entry.at < this.armedAt) this.arm(entry.at);
    return () => {
      this.entries.delete(entry);
      // Nothing left: nothing may keep the event loop up (an unref'd timer does not).
      if (this.entries.size === 0 && !this.platform.unref) this.disarm();
    };
  }

  /** Deadlines armed and not yet fired or cancelled. */
  get size(): number {
    return this.entries.size;
  }

  private arm(at: number): void {
    this.disarm();
    this.armedAt = at;
    this.timer = this.platform.set(() => this.expire(), Math.min(MAX_DELAY_MS, Math.max(0, at - this.now())));
    this.platform.unref?.(this.timer);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.platform.clear(this.timer);
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
