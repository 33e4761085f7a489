/**
 * Streams: ordered items (audio frames, socket bytes, events) flowing one way across the
 * boundary, with flow control decided when the stream opens:
 *
 * - **credit** (lossless): the receiver grants a window of bytes; the sender sends only while
 *   it has credit, and the receiver returns credit as its reader consumes. A driver whose
 *   stream has no credit stops reading its source (a socket stays unread, so TCP pushes back),
 *   so what the host holds for a stream never exceeds its window.
 * - **lossy** (sources that cannot wait, like a microphone): an item that would congest the
 *   channel is dropped here and counted, and the count rides on the next item that goes and on
 *   the stream's end event, so every drop is visible to the guest.
 *
 * Frame payload (STREAM_DATA): u32 seq, u32 dropped (items this stream dropped so far),
 * f64 at (absolute ms when the item was produced), then the item's bytes.
 */
import { Op } from "./wire.ts";

export const STREAM_HEADER_BYTES = 16;

export interface StreamFrame {
  seq: number;
  dropped: number;
  at: number;
  bytes: Uint8Array;
}

// The header is copied into this scratch to be read: a DataView per frame was most of the
// garbage a stream item made on its way in (every mic frame, every socket chunk).
const headBytes = new Uint8Array(STREAM_HEADER_BYTES);
const head = new DataView(headBytes.buffer);

export function decodeFrame(payload: Uint8Array): StreamFrame {
  for (let i = 0; i < STREAM_HEADER_BYTES; i++) headBytes[i] = payload[i];
  return {
    seq: head.getUint32(0, true),
    dropped: head.getUint32(4, true),
    at: head.getFloat64(8, true),
    bytes: payload.subarray(STREAM_HEADER_BYTES),
  };
}

/** An absolute millisecond clock comparable across the host's threads. */
export function streamClock(): number {
  return performance.timeOrigin + performance.now();
}

/** What a stream needs of a channel (protocol/channel.ts Channel). */
export interface StreamChannel {
  /** `head` goes in front of `payload` (the channel copies both straight into its ring). */
  send(op: number, fd: number, payload: Uint8Array, head?: Uint8Array): void;
  readonly used: number;
  readonly capacity: number;
  readonly backlog: number;
}

/**
 * A StreamChannel over one direction of a Link: levels read live from `ring`, messages sent
 * through `send` (the side's own send, which applies its bounds). Both sides build theirs here.
 */
export function streamChannel(
  ring: { readonly used: number; readonly capacity: number; readonly backlog: number },
  send: StreamChannel["send"],
): StreamChannel {
  return {
    send,
    get used() {
      return ring.used;
    },
    get capacity() {
      return ring.capacity;
    },
    get backlog() {
      return ring.backlog;
    },
  };
}

export type Flow = { mode: "credit"; window: number } | { mode: "lossy" };

const encoder = new TextEncoder();

/** The producing end of one stream. */
export class StreamSender {
  seq = 0;
  /** Items dropped (lossy streams only). */
  dropped = 0;
  sentItems = 0;
  sentBytes = 0;
  private credit: number;
  private waiting: (() => void) | null = null;
  private readonly head = new Uint8Array(STREAM_HEADER_BYTES);
  private readonly headView = new DataView(this.head.buffer);
  closed = false;

  constructor(private readonly channel: StreamChannel, readonly id: number, readonly flow: Flow) {
    this.credit = flow.mode === "credit" ? flow.window : Infinity;
  }

  /** Bytes that may be sent now (credit streams). */
  get available(): number {
    return this.credit;
  }

  /**
   * Sends one item. Lossy: false means it was dropped (and counted). Credit: false means there
   * is not enough credit and nothing was sent; wait for `whenWritable`.
   */
  send(bytes: Uint8Array, at: number = streamClock()): boolean {
    if (this.closed) return false;
    if (this.flow.mode === "credit") {
      if (bytes.length > this.credit) return false;
      this.credit -= bytes.length;
    } else if (this.congested(bytes.length)) {
      this.dropped++;
      this.seq++;
      return false;
    }
    // The header is written into a small reused buffer and the channel copies header and bytes
    // straight into its ring: one copy per item, and no garbage.
    const v = this.headView;
    v.setUint32(0, this.seq++, true);
    v.setUint32(4, this.dropped, true);
    v.setFloat64(8, at, true);
    this.channel.send(Op.STREAM_DATA, this.id, bytes, this.head);
    this.sentItems++;
    this.sentBytes += bytes.length;
    return true;
  }

  /**
   * A lossy item waits only if the channel is empty enough: anything else means the receiver
   * is not draining, and holding items for it would grow host memory. An item larger than half
   * the ring still goes when the ring is empty (the channel fragments it), so a large frame is
   * slow, never silently impossible.
   */
  private congested(size: number): boolean {
    const ch = this.channel;
    if (ch.backlog > 0) return true;
    return ch.used > 0 && ch.used + size + STREAM_HEADER_BYTES > ch.capacity / 2;
  }

  /** Runs `resume` once when credit is returned (a paused source restarts). */
  whenWritable(resume: () => void): void {
    this.waiting = resume;
  }

  /** Applies a STREAM_CREDIT from the receiver. */
  grant(bytes: number): void {
    this.credit += bytes;
    const resume = this.waiting;
    this.waiting = null;
    resume?.();
  }

  /** Sends a typed event (JSON) on the stream; `dropped` is added so the count is never lost. */
  event(value: Record<string, unknown>): void {
    if (this.closed) return;
    this.channel.send(
      Op.STREAM_EVENT,
      this.id,
      encoder.encode(JSON.stringify({ ...value, dropped: this.dropped })),
    );
  }

  close(): void {
    this.closed = true;
    this.waiting = null;
  }
}

/** STREAM_CREDIT payload: the byte count. */
export function encodeCredit(bytes: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, bytes, true);
  return out;
}

export function decodeCredit(payload: Uint8Array): number {
  return payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true) : 0;
}
