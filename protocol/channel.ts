/**
 * The one channel type between a guest's worker and the host's main thread: a
 * single-producer single-consumer ring of framed messages in a SharedArrayBuffer, with a
 * doorbell (a futex word) the consumer sleeps on. A `Link` pairs two channels; the guest's
 * doorbell is the bell of its inbound channel, so anything that must wake a guest blocked
 * in `spear_epoll_wait` rings exactly that word.
 *
 * Frame: u32 body length, then body = u16 op, u16 flags, i32 fd, payload; padded to 4.
 * A message larger than a quarter of the ring travels as several frames (flag MORE on all
 * but the last) and is delivered whole, so message size is not bounded by the ring.
 */

import { copyInto, copyOf, utf8Scratch } from "./bytes.ts";

const WRITE = 0; // total bytes published (u32, wrapping)
const READ = 1; // total bytes consumed (u32, wrapping)
const BELL = 2; // doorbell sequence, bumped on every publish
const SPACE_WANTED = 3; // producer has messages waiting for room
const TERMINATE = 4; // guest must stop, and why (only used on the host→guest channel)
const WAITERS = 5; // consumers asleep on the bell (a ring with nobody asleep skips the notify)

/** Why a guest was stopped; set once, by whoever stopped it first. */
export const TerminateReason = {
  /** The host stopped it (shutdown, an embedder's request). */
  STOP: 1,
  /** Its time limit passed (host/watchdog.ts). */
  TIMEOUT: 2,
  /** It made the host hold more for it than its budget allows. */
  OVERFLOW: 3,
} as const;
const HEADER_INTS = 8;
const HEADER_BYTES = HEADER_INTS * 4;
const FRAME_HEAD = 4;
const BODY_HEAD = 8;
const PAD = 0xffffffff;
const MORE = 1;

/** One frame as written to the ring; a large message is several, all but the last flagged MORE. */
export interface Frame extends Message {
  flags: number;
}

export interface Message {
  op: number;
  fd: number;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export class Channel {
  private readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly dataView: DataView;
  private readonly mask: number;
  private readonly pending: Frame[] = [];
  private pendingBytes = 0;
  /** Fragments of a message still being received. */
  private partial: Uint8Array[] = [];

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_INTS);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
    this.dataView = new DataView(buffer, HEADER_BYTES);
    this.mask = this.data.length - 1;
  }

  /** A new channel with a power-of-two data capacity. */
  static create(capacity = 1 << 20): Channel {
    if (capacity & (capacity - 1) || capacity < 64) {
      throw new Error("channel capacity must be a power of two ≥ 64");
    }
    return new Channel(new SharedArrayBuffer(HEADER_BYTES + capacity));
  }

  get capacity(): number {
    return this.data.length;
  }

  /** Bytes of framed messages not yet consumed. */
  get used(): number {
    return (Atomics.load(this.header, WRITE) - Atomics.load(this.header, READ)) >>> 0;
  }

  /** Frames the producer is holding because the ring was full. */
  get backlog(): number {
    return this.pending.length;
  }

  /** Payload bytes the producer is holding because the ring was full (the channel's own memory). */
  get backlogBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Hands over the frames still held by the producer (the producer is going away); the
   * consumer applies them with `receiveFrames` after its last `receive`, so nothing sent is lost.
   */
  drainBacklog(): Frame[] {
    const frames = this.pending.splice(0);
    this.pendingBytes = 0;
    Atomics.store(this.header, SPACE_WANTED, 0);
    return frames;
  }

  /** Current doorbell value; wait on it with `waitBell` / `waitBellAsync`. */
  get bell(): number {
    return Atomics.load(this.header, BELL);
  }

  /**
   * Bumps the bell and wakes a sleeping consumer. A consumer announces itself in WAITERS before
   * it sleeps and sleeps only while the bell still has the value it saw, so checking WAITERS
   * after the bump (both sequentially consistent) never misses it; with nobody asleep the
   * notify, the costly part of a publish, is skipped.
   */
  ring(): void {
    Atomics.add(this.header, BELL, 1);
    if (Atomics.load(this.header, WAITERS) > 0) Atomics.notify(this.header, BELL);
  }

  /** Blocks (worker side) until the bell moves from `seen` or `timeoutMs` passes. */
  waitBell(seen: number, timeoutMs: number): void {
    Atomics.add(this.header, WAITERS, 1);
    try {
      Atomics.wait(this.header, BELL, seen, timeoutMs);
    } finally {
      Atomics.sub(this.header, WAITERS, 1);
    }
  }

  /** Resolves (main side) when the bell moves from `seen`. */
  waitBellAsync(seen: number): Promise<unknown> {
    Atomics.add(this.header, WAITERS, 1);
    const r = Atomics.waitAsync(this.header, BELL, seen);
    if (!r.async) {
      Atomics.sub(this.header, WAITERS, 1);
      return Promise.resolve();
    }
    return r.value.finally(() => Atomics.sub(this.header, WAITERS, 1));
  }

  get terminateRequested(): boolean {
    return Atomics.load(this.header, TERMINATE) !== 0;
  }

  /** Why the guest was told to stop (TerminateReason), 0 if it was not. */
  get terminateReason(): number {
    return Atomics.load(this.header, TERMINATE);
  }

  /** Tells the guest to stop; the first reason given wins. */
  requestTerminate(reason: number = TerminateReason.STOP): void {
    Atomics.compareExchange(this.header, TERMINATE, 0, reason);
    this.ring();
  }

  /** Empties the channel for reuse; only when neither side uses it any more. */
  reset(): void {
    for (let i = 0; i < HEADER_INTS; i++) Atomics.store(this.header, i, 0);
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.partial = [];
  }

  /** Largest payload carried by one frame. */
  private get chunk(): number {
    return this.capacity / 4;
  }

  private tryWrite({ op, fd, flags, payload }: Frame, head: Uint8Array = EMPTY): boolean {
    const body = BODY_HEAD + head.length + payload.length;
    const frame = (FRAME_HEAD + body + 3) & ~3;
    let write = Atomics.load(this.header, WRITE) >>> 0;
    const read = Atomics.load(this.header, READ) >>> 0;
    const index = write & this.mask;
    const tail = this.capacity - index;
    const needed = tail < frame ? tail + frame : frame;
    if (((write - read) >>> 0) + needed > this.capacity) return false;
    if (tail < frame) {
      this.dataView.setUint32(index, PAD, true);
      write = (write + tail) >>> 0;
    }
    const at = write & this.mask;
    this.dataView.setUint32(at, body, true);
    this.dataView.setUint16(at + 4, op, true);
    this.dataView.setUint16(at + 6, flags, true);
    this.dataView.setInt32(at + 8, fd, true);
    if (head.length) this.data.set(head, at + FRAME_HEAD + BODY_HEAD);
    copyInto(this.data, at + FRAME_HEAD + BODY_HEAD + head.length, payload);
    Atomics.store(this.header, WRITE, (write + frame) | 0);
    return true;
  }

  /**
   * Publishes a message and rings the bell. Never drops: if the ring is full the message
   * waits in a local backlog, flushed by `flush()` once the consumer makes room. A `head`
   * (a stream frame's header) goes in front of the payload, both copied straight into the ring.
   * A text payload (JSON) is sent as UTF-8, encoded here, where nothing else can run before it
   * is copied out (protocol/bytes.ts utf8Scratch): no buffer is made for it.
   */
  send(op: number, fd: number, payload: Uint8Array | string = EMPTY, head: Uint8Array = EMPTY): void {
    if (typeof payload === "string") payload = utf8Scratch(payload);
    if (head.length + payload.length <= this.chunk && this.pending.length === 0) {
      if (this.tryWrite({ op, fd, flags: 0, payload }, head)) {
        this.ring();
        return;
      }
    }
    if (head.length) { // the slow path keeps one payload: join them
      const joined = new Uint8Array(head.length + payload.length);
      joined.set(head);
      joined.set(payload, head.length);
      payload = joined;
    }
    for (let at = 0; at === 0 || at < payload.length; at += this.chunk) {
      const part = payload.slice(at, at + this.chunk);
      const flags = at + this.chunk < payload.length ? MORE : 0;
      this.pending.push({ op, fd, flags, payload: part });
      this.pendingBytes += part.length;
    }
    this.flush();
  }

  /**
   * Moves backlog into the ring; returns true when the backlog is empty. While a backlog
   * remains, SPACE_WANTED asks the consumer to wake us when it frees room; the flag is set
   * before a second attempt, so room freed just before the consumer saw it is not missed.
   */
  flush(): boolean {
    // Nothing waiting: SPACE_WANTED was cleared when the backlog last emptied (below, or in
    // drainBacklog). Polling points call this every time; skip the fenced store.
    if (this.pending.length === 0) return true;
    let moved = this.movePending();
    if (this.pending.length > 0) {
      Atomics.store(this.header, SPACE_WANTED, 1);
      moved = this.movePending() || moved;
    }
    if (this.pending.length === 0) Atomics.store(this.header, SPACE_WANTED, 0);
    if (moved) this.ring();
    return this.pending.length === 0;
  }

  private movePending(): boolean {
    let moved = false;
    while (this.pending.length > 0 && this.tryWrite(this.pending[0])) {
      this.pendingBytes -= this.pending.shift()!.payload.length;
      moved = true;
    }
    return moved;
  }

  /**
   * Consumer side: hands every published message to `handle` and returns how many there were.
   * If the producer was waiting for room, `onSpace` runs. Payloads are copies, unless `views`:
   * then a payload is a view of the ring, valid only while `handle` runs (the room is released
   * after it returns), so a consumer that copies only what it keeps makes no garbage per message.
   */
  receive(handle: (m: Message) => void, onSpace?: () => void, views = false): number {
    let count = 0;
    let frames = 0;
    let read = Atomics.load(this.header, READ) >>> 0;
    const write = Atomics.load(this.header, WRITE) >>> 0;
    while (read !== write) {
      const at = read & this.mask;
      const body = this.dataView.getUint32(at, true);
      if (body === PAD) {
        read = (read + (this.capacity - at)) >>> 0;
        continue;
      }
      const op = this.dataView.getUint16(at + 4, true);
      const flags = this.dataView.getUint16(at + 6, true);
      const fd = this.dataView.getInt32(at + 8, true);
      const start = at + FRAME_HEAD + BODY_HEAD;
      const end = start + body - BODY_HEAD;
      const whole = !(flags & MORE) && this.partial.length === 0;
      // A signal (PIPE_SIGNAL) has no payload: no copy and no garbage for it either way.
      const bytes = start === end ? EMPTY : this.data.subarray(start, end);
      const payload = views && whole || bytes === EMPTY ? bytes : copyOf(bytes);
      read = (read + ((FRAME_HEAD + body + 3) & ~3)) >>> 0;
      frames++;
      if (flags & MORE) {
        Atomics.store(this.header, READ, read | 0);
        this.partial.push(payload);
        continue;
      }
      count++;
      if (views && whole) {
        try {
          handle({ op, fd, payload });
        } finally {
          Atomics.store(this.header, READ, read | 0); // the view's room goes back only now
        }
        continue;
      }
      Atomics.store(this.header, READ, read | 0);
      handle({ op, fd, payload: this.partial.length ? this.joinPartial(payload) : payload });
    }
    if (frames > 0 && Atomics.load(this.header, SPACE_WANTED) !== 0) onSpace?.();
    return count;
  }

  /** Applies frames taken with `drainBacklog` on the other side, after the ring's own. */
  receiveFrames(frames: readonly Frame[], handle: (m: Message) => void): number {
    let count = 0;
    for (const { op, fd, flags, payload } of frames) {
      if (flags & MORE) {
        this.partial.push(payload);
        continue;
      }
      count++;
      handle({ op, fd, payload: this.partial.length ? this.joinPartial(payload) : payload });
    }
    return count;
  }

  private joinPartial(last: Uint8Array): Uint8Array {
    const parts = [...this.partial, last];
    this.partial = [];
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      whole.set(p, offset);
      offset += p.length;
    }
    return whole;
  }
}

/** The two channels between one guest and the host. */
export class Link {
  constructor(readonly toGuest: Channel, readonly toHost: Channel) {}

  static create(capacity = 1 << 21): Link {
    return new Link(Channel.create(capacity), Channel.create(capacity));
  }

  /** What crosses to the worker in its init message. */
  get buffers(): [SharedArrayBuffer, SharedArrayBuffer] {
    return [this.toGuest.buffer, this.toHost.buffer];
  }

  /** Empties both channels for another guest; only once the previous guest has ended. */
  reset(): Link {
    this.toGuest.reset();
    this.toHost.reset();
    return this;
  }

  static attach([toGuest, toHost]: [SharedArrayBuffer, SharedArrayBuffer]): Link {
    return new Link(new Channel(toGuest), new Channel(toHost));
  }
}
