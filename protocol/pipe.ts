/**
 * Byte pipes: the data path of a byte stream (a TCP connection) that bypasses the channel. A
 * pipe is a single-producer single-consumer ring of bytes in a region of the guest's pipe
 * arena, a growable SharedArrayBuffer both threads see. The host reads a socket straight into
 * the receive pipe and writes the send pipe straight to the socket, and the worker copies
 * between a pipe and guest memory once: two copies per byte fewer on each side than a channel
 * frame plus a queue (measured in bench/sock_echo.ts), and no message per chunk.
 *
 * The pipe is its own flow control: its free room is the window. A side is told only when it
 * asked: a consumer that found the pipe empty (`wantData`) or a producer that found it full
 * (`wantRoom`). The host's side waits on the pipe itself (`waitForData`, `waitForRoom`:
 * Atomics.waitAsync on the index the other side moves), and the worker wakes it with a notify
 * on that index (`wakeConsumer`, `wakeProducer`); the worker, which waits for everything in one
 * place (its doorbell, in epoll), is told by a PIPE_SIGNAL on the channel. Both sides use the
 * store-then-check order on sequentially consistent atomics, so of "I stored, then looked at
 * your flag" and "you set your flag, then looked at my index" at least one sees the other: no
 * wakeup is lost, and an extra one only makes the other side look again.
 *
 * Indices are u32 byte totals (wrapping); the data area is a power of two so they map by mask.
 */

const WRITE = 0;
const READ = 1;
const WANT_DATA = 2;
const WANT_ROOM = 3;
/** Header of a pipe in the arena: the four cells above, padded to keep data 8-byte aligned. */
export const PIPE_HEADER_BYTES = 32;

/** Where a pipe lives in the arena (crosses the boundary in replies and notices). */
export interface PipeRef {
  /** Offset of the header in the arena; also the pipe's id in PIPE_SIGNAL. */
  offset: number;
  /** Size of the data area (a power of two). */
  capacity: number;
  /** Bytes the pipe may hold (the window, ≤ capacity). */
  limit: number;
}

export class BytePipe {
  private readonly cells: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  constructor(arena: SharedArrayBuffer, readonly ref: PipeRef) {
    this.cells = new Int32Array(arena, ref.offset, 4);
    this.data = new Uint8Array(arena, ref.offset + PIPE_HEADER_BYTES, ref.capacity);
    this.mask = ref.capacity - 1;
  }

  get id(): number {
    return this.ref.offset;
  }

  /** The window: how much the pipe may hold. */
  get limit(): number {
    return this.ref.limit;
  }

  /** Bytes written and not yet read. */
  get used(): number {
    return (Atomics.load(this.cells, WRITE) - Atomics.load(this.cells, READ)) >>> 0;
  }

  /** Room left in the window. */
  get room(): number {
    return Math.max(0, this.ref.limit - this.used);
  }

  /** Fresh pipe: empty, and its consumer waits for data (the first write signals). */
  reset(): void {
    Atomics.store(this.cells, WRITE, 0);
    Atomics.store(this.cells, READ, 0);
    Atomics.store(this.cells, WANT_DATA, 1);
    Atomics.store(this.cells, WANT_ROOM, 0);
  }

  // ---------------------------------------------------------------- producer

  /** The contiguous free region (at most `max` bytes) to write into before `commit`. */
  writable(max = Infinity): Uint8Array {
    return this.regionAt(WRITE, this.room, max);
  }

  /** Publishes `n` written bytes; true when the consumer asked to be told (wake or signal it). */
  commit(n: number): boolean {
    return n > 0 && this.advance(WRITE, n, WANT_DATA);
  }

  /**
   * Copies as much of `src` as the room takes (in two parts across the wrap); returns the count
   * and whether to signal the consumer.
   */
  write(src: Uint8Array, copy: (dst: Uint8Array, at: number, src: Uint8Array) => void): [number, boolean] {
    let done = 0;
    while (done < src.length) {
      const region = this.writable(src.length - done);
      if (region.length === 0) break;
      copy(region, 0, src.subarray(done, done + region.length));
      done += region.length;
      this.move(WRITE, region.length);
    }
    return [done, done > 0 && this.takeFlag(WANT_DATA)];
  }

  /** The producer found no room: asks for a signal when some frees; true if some already did. */
  wantRoom(): boolean {
    Atomics.store(this.cells, WANT_ROOM, 1);
    return this.room > 0;
  }

  /**
   * A producer with an event loop (the host) waits until the consumer frees room (or
   * `wakeProducer` is called); undefined when there is room already.
   */
  waitForRoom(): Promise<unknown> | undefined {
    return this.waitOn(READ, () => this.wantRoom());
  }

  /** Wakes a producer waiting in `waitForRoom` (the consumer freed room it asked for, or it must stop). */
  wakeProducer(): void {
    Atomics.notify(this.cells, READ);
  }

  // ---------------------------------------------------------------- consumer

  /** The contiguous readable region (at most `max` bytes) to read before `consume`. */
  readable(max = Infinity): Uint8Array {
    return this.regionAt(READ, this.used, max);
  }

  /** Frees `n` read bytes; true when the producer asked to be told (wake or signal it). */
  consume(n: number): boolean {
    return n > 0 && this.advance(READ, n, WANT_ROOM);
  }

  /** The consumer found the pipe empty: asks for a signal on the next write; true if data came. */
  wantData(): boolean {
    Atomics.store(this.cells, WANT_DATA, 1);
    return this.used > 0;
  }

  /**
   * A consumer with an event loop (the host) waits until the producer writes (or
   * `wakeConsumer` is called); undefined when there is data already.
   */
  waitForData(): Promise<unknown> | undefined {
    return this.waitOn(WRITE, () => this.wantData());
  }

  /** Wakes a consumer waiting in `waitForData` (the producer wrote as it asked, or it must stop). */
  wakeConsumer(): void {
    Atomics.notify(this.cells, WRITE);
  }

  // ---------------------------------------------------------------- either side

  /** The contiguous region from `index`'s position: at most `available` and `max` bytes, up to the wrap. */
  private regionAt(index: number, available: number, max: number): Uint8Array {
    const at = (Atomics.load(this.cells, index) >>> 0) & this.mask;
    return this.data.subarray(at, at + Math.min(available, this.ref.capacity - at, max));
  }

  /** Moves this side's position `index` on by `n` bytes. */
  private move(index: number, n: number): void {
    Atomics.store(this.cells, index, (Atomics.load(this.cells, index) + n) | 0);
  }

  /** Clears the other side's request `flag`; true if it was raised (so it must be told). */
  private takeFlag(flag: number): boolean {
    return Atomics.exchange(this.cells, flag, 0) === 1;
  }

  /** `move`, then `takeFlag`. */
  private advance(index: number, n: number, flag: number): boolean {
    this.move(index, n);
    return this.takeFlag(flag);
  }

  /**
   * Waits until the other side moves `index` (or a wake), unless `ask` — which raises this
   * side's flag, then looks — finds what it wants already. The index is read before asking, so
   * a move in between makes the wait return at once.
   */
  private waitOn(index: number, ask: () => boolean): Promise<unknown> | undefined {
    const seen = Atomics.load(this.cells, index);
    if (ask()) return undefined;
    const waiting = Atomics.waitAsync(this.cells, index, seen);
    return waiting.async ? waiting.value : undefined;
  }
}

/**
 * A guest's pipe arena: one growable SharedArrayBuffer, handed to the worker at start, in which
 * the host places every pipe. Only the host allocates (its driver opens the connections), so
 * the allocator is plain code on one thread: power-of-two blocks, reused by size once freed.
 * Growing never moves what is there, so the worker's views stay valid.
 */
export class PipeArena {
  private readonly free = new Map<number, number[]>();
  private freeBytes = 0;

  constructor(readonly buffer: SharedArrayBuffer) {}

  /** An empty arena that may grow to `maxBytes` (address space is reserved, memory is not). */
  static create(maxBytes: number): PipeArena {
    return new PipeArena(new SharedArrayBuffer(0, { maxByteLength: maxBytes }));
  }

  /** A pipe of window `limit` (its data area rounded up to a power of two); null if the arena is full. */
  allocate(limit: number): BytePipe | null {
    const capacity = 2 ** Math.ceil(Math.log2(Math.max(limit, 8)));
    const block = PIPE_HEADER_BYTES + capacity;
    let offset = this.free.get(block)?.pop();
    if (offset !== undefined) this.freeBytes -= block;
    else {
      offset = this.buffer.byteLength;
      if (offset + block > this.buffer.maxByteLength) return null;
      this.buffer.grow(offset + block);
    }
    const pipe = new BytePipe(this.buffer, { offset, capacity, limit });
    pipe.reset();
    return pipe;
  }

  /** Returns a pipe's block for reuse; only once neither side touches the pipe any more. */
  release(ref: PipeRef): void {
    const block = PIPE_HEADER_BYTES + ref.capacity;
    const list = this.free.get(block) ?? [];
    list.push(ref.offset);
    this.free.set(block, list);
    this.freeBytes += block;
  }

  /** Bytes of the blocks of live pipes. */
  get inUse(): number {
    return this.buffer.byteLength - this.freeBytes;
  }

  /** Bytes of pipe blocks in use or waiting for reuse. */
  get size(): number {
    return this.buffer.byteLength;
  }
}
