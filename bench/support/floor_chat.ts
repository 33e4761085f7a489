/**
 * The chat floor (bench/chat_roundtrip.ts), main-thread side and shared layout: a guest
 * Worker (floor_chat_worker.ts) posts requests through a SharedArrayBuffer word; this thread
 * sleeps in Atomics.waitAsync on it, does fetch() + json() for each request, writes the reply
 * (its JSON text) into the request's slot and wakes the worker with Atomics.notify. This is
 * the unavoidable structure of a chat round trip in spearhost — a guest thread, the HTTP on
 * the main thread, a wake each way — and nothing else.
 */

export interface ChatFloorShared {
  buffer: SharedArrayBuffer;
}

/** The shared memory: counters, completion order, then one reply slot per request in flight. */
export class Slot {
  /** Int32 indices: requests posted, replies done, stop flag, then the completion order ring. */
  static readonly REQUESTS = 0;
  static readonly DONE = 1;
  static readonly STOP = 2;
  static readonly ORDER = 4;
  static readonly SLOTS = 64;
  static readonly REPLY_BYTES = 4096;
  /** Int32 length of each slot's reply, after the order ring. */
  private static readonly LENGTHS = Slot.ORDER + Slot.SLOTS;
  private static readonly HEADER_BYTES = (Slot.LENGTHS + Slot.SLOTS) * 4;

  readonly ints: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(readonly shared: ChatFloorShared) {
    this.ints = new Int32Array(shared.buffer, 0, Slot.HEADER_BYTES / 4);
    this.bytes = new Uint8Array(shared.buffer);
  }

  static create(): Slot {
    return new Slot({ buffer: new SharedArrayBuffer(Slot.HEADER_BYTES + Slot.SLOTS * Slot.REPLY_BYTES) });
  }

  private offset(id: number): number {
    return Slot.HEADER_BYTES + (id % Slot.SLOTS) * Slot.REPLY_BYTES;
  }

  replyBytes(id: number): Uint8Array {
    const at = this.offset(id);
    return this.bytes.subarray(at, at + this.ints[Slot.LENGTHS + id % Slot.SLOTS]);
  }

  /** Writes request `id`'s reply, records its completion and wakes the worker. */
  complete(id: number, text: string): void {
    const at = this.offset(id);
    const { written } = encoder.encodeInto(text, this.bytes.subarray(at, at + Slot.REPLY_BYTES));
    this.ints[Slot.LENGTHS + id % Slot.SLOTS] = written;
    const done = this.ints[Slot.DONE];
    this.ints[Slot.ORDER + done % Slot.SLOTS] = id;
    Atomics.store(this.ints, Slot.DONE, done + 1);
    Atomics.notify(this.ints, Slot.DONE);
  }
}

const encoder = new TextEncoder();

/**
 * Serves the worker's requests until stop(): each one is `fetchJson()`, whose value is
 * replied as JSON text.
 */
export function serveChatFloor(slot: Slot, fetchJson: () => Promise<unknown>): { stop(): Promise<void> } {
  const ints = slot.ints;
  const loop = (async () => {
    let seen = 0;
    while (!Atomics.load(ints, Slot.STOP)) {
      const wait = Atomics.waitAsync(ints, Slot.REQUESTS, seen);
      if (wait.async) await wait.value;
      for (const posted = Atomics.load(ints, Slot.REQUESTS); seen < posted; seen++) {
        const id = seen;
        fetchJson().then((json) => slot.complete(id, JSON.stringify(json)));
      }
    }
  })();
  return {
    async stop() {
      Atomics.store(ints, Slot.STOP, 1);
      Atomics.notify(ints, Slot.REQUESTS);
      await loop;
    },
  };
}
