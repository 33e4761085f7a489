/**
 * The queued-stream fd: the part every stream-backed fd shares (mic frames today; rtasr
 * events, socket bytes and user-stream frames next). A FIFO of items with a byte cap and one
 * overflow policy, reads that follow the -ENOSPC rule (a read that does not fit leaves the item
 * queued), counters, and readiness derived from the state instead of being set by hand.
 *
 * Policies when an item does not fit:
 * - `drop_oldest`: drop from the head until it fits (live audio keeps the newest);
 * - `drop_newest`: drop the new item;
 * - `reject`: refuse it (the caller answers -EAGAIN);
 * - `credit`: the producer was granted exactly the free room (protocol/stream.ts), so it never
 *   overflows; reads return credit to the producer.
 * Every dropped item is counted. The cap is reserved in the guest's host budget for as long as
 * the queue exists, so a queue's size is bounded by the budget, not by the guest's wishes.
 */
import { fail, Poll } from "./abi.ts";
import type { HostBudget } from "../protocol/budget.ts";
import type { GuestMemory } from "./memory.ts";
import { LatencyWindow } from "../protocol/latency.ts";

export type QueuePolicy = "drop_oldest" | "drop_newest" | "reject" | "credit";

export interface QueueItem {
  bytes: Uint8Array;
  /** When the item was produced (absolute ms, protocol/stream.ts streamClock). */
  at: number;
}

/** FIFO with O(1) push/shift and a byte count. */
class ItemFifo {
  private items: (QueueItem | undefined)[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: QueueItem): void {
    this.items.push(item);
    this.bytes += item.bytes.length;
  }

  peek(): QueueItem | undefined {
    return this.items[this.head];
  }

  shift(): QueueItem | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined;
    this.bytes -= item.bytes.length;
    if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Drops the first `n` bytes of the head item (a byte-stream read took them). */
  trimHead(n: number): void {
    const item = this.items[this.head]!;
    item.bytes = item.bytes.subarray(n);
    this.bytes -= n;
  }

  /** Removes the items `drop` selects; returns them. */
  removeWhere(drop: (item: QueueItem) => boolean): QueueItem[] {
    const kept: QueueItem[] = [];
    const removed: QueueItem[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      (drop(this.items[i]!) ? removed : kept).push(this.items[i]!);
    }
    this.items = kept;
    this.head = 0;
    this.bytes = kept.reduce((n, item) => n + item.bytes.length, 0);
    return removed;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}

export interface QueueOptions {
  capacity: number;
  policy: QueuePolicy;
  budget: HostBudget;
  /** Credit streams: room freed by a read goes back to the producer. */
  returnCredit?: (bytes: number) => void;
  /** Clock for read latency (absolute ms). */
  clock?: () => number;
}

export type PushResult = "queued" | "dropped" | "rejected";

export class QueuedStream {
  private readonly fifo = new ItemFifo();
  private reserved = 0;
  capacity = 0;
  policy: QueuePolicy;
  /** Counters (GET_METRICS). */
  pushed = 0;
  dropped = 0;
  readItems = 0;
  readBytes = 0;
  readonly readLatency = new LatencyWindow();

  constructor(private readonly options: QueueOptions) {
    this.policy = options.policy;
    this.resize(options.capacity);
  }

  get length(): number {
    return this.fifo.length;
  }

  get bytes(): number {
    return this.fifo.bytes;
  }

  /** Changes the cap, re-reserving it in the budget; ENOMEM leaves the old cap in place. */
  resize(capacity: number): void {
    const extra = capacity - this.reserved;
    if (extra > 0 && !this.options.budget.tryCharge(extra)) {
      throw fail("ENOMEM", `queue of ${capacity} bytes: over the guest's host budget`);
    }
    if (extra < 0) this.options.budget.release(-extra);
    this.reserved = capacity;
    this.capacity = capacity;
  }

  /** Adds an item under the policy. */
  push(item: QueueItem): PushResult {
    const size = item.bytes.length;
    const fits = this.fifo.bytes + size <= this.capacity;
    if (!fits && size <= this.capacity && this.policy === "drop_oldest") {
      while (this.fifo.bytes + size > this.capacity) {
        this.fifo.shift();
        this.dropped++;
      }
    } else if (!fits) {
      if (this.policy === "reject") return "rejected";
      this.dropped++; // drop_newest, an item larger than the cap, or a producer over its credit
      return "dropped";
    }
    this.fifo.push(item);
    this.pushed++;
    return "queued";
  }

  peek(): QueueItem | undefined {
    return this.fifo.peek();
  }

  /**
   * Reads the head item into the guest's out-buffer (capacity at `lenPtr`). Empty: EAGAIN.
   * Too small: the needed length goes back in `*lenPtr`, ENOSPC, and the item stays queued.
   */
  readInto(mem: GuestMemory, outPtr: number, lenPtr: number): number {
    const item = this.fifo.peek();
    if (!item) throw fail("EAGAIN");
    const n = mem.writeOut(outPtr, lenPtr, item.bytes);
    this.commit();
    return n;
  }

  /**
   * Byte-stream read (a TCP socket): copies up to the out-buffer's capacity (`*lenPtr`) from the
   * head items, across item boundaries; a partly read item keeps its rest at the head, so no
   * byte is lost or reordered. Stores and returns the count; empty: EAGAIN (a zero capacity
   * reads nothing and returns 0, as POSIX recv with length 0). Credit streams get the bytes back.
   */
  readBytesInto(mem: GuestMemory, outPtr: number, lenPtr: number): number {
    const capacity = mem.u32(lenPtr);
    if (this.fifo.length === 0) throw fail("EAGAIN");
    const total = Math.min(capacity, this.fifo.bytes);
    mem.check(outPtr, total);
    let written = 0;
    while (written < total) {
      const item = this.fifo.peek()!;
      const take = Math.min(item.bytes.length, total - written);
      mem.write(outPtr + written, item.bytes.subarray(0, take));
      written += take;
      if (take === item.bytes.length) this.commit();
      else {
        this.fifo.trimHead(take);
        this.readBytes += take;
        if (this.policy === "credit") this.options.returnCredit?.(take);
      }
    }
    mem.setU32(lenPtr, written);
    return written;
  }

  /**
   * Removes the queued items `drop` selects (a UDP socket connected to one peer filters out
   * datagrams that came from others); they count as dropped and credit streams get their room.
   */
  removeWhere(drop: (item: QueueItem) => boolean): number {
    const removed = this.fifo.removeWhere(drop);
    const bytes = removed.reduce((n, item) => n + item.bytes.length, 0);
    this.dropped += removed.length;
    if (this.policy === "credit") this.options.returnCredit?.(bytes);
    return removed.length;
  }

  /** Removes the head item after the reader took it. */
  commit(): QueueItem | undefined {
    const item = this.fifo.shift();
    if (!item) return undefined;
    this.readItems++;
    this.readBytes += item.bytes.length;
    if (this.options.clock) this.readLatency.add(this.options.clock() - item.at);
    if (this.policy === "credit") this.options.returnCredit?.(item.bytes.length);
    return item;
  }

  /** Empties the queue (a restart); credit streams get the room back. */
  clear(): void {
    const freed = this.fifo.bytes;
    this.fifo.clear();
    if (this.policy === "credit") this.options.returnCredit?.(freed);
  }

  /** EPOLLIN while items are queued. */
  get readiness(): number {
    return this.fifo.length > 0 ? Poll.EPOLLIN : 0;
  }

  metrics(): Record<string, unknown> {
    return {
      queue_items: this.fifo.length,
      queue_bytes: this.fifo.bytes,
      capacity_bytes: this.capacity,
      policy: this.policy,
      pushed: this.pushed,
      dropped: this.dropped,
      read_items: this.readItems,
      read_bytes: this.readBytes,
    };
  }

  /** Frees the queue and its budget reservation (the fd is gone). */
  dispose(): void {
    this.fifo.clear();
    this.options.budget.release(this.reserved);
    this.reserved = 0;
  }
}
