/**
 * The worker-side state of one guest instance: its fd table, guest memory, host budget, and
 * the worker's ends of the protocol (requests, streams, notices). Everything that waits goes
 * through `block`, the one blocking primitive; everything that only looks goes through `poll`.
 */
import { FdTable } from "./fd_table.ts";
import { GuestMemory, type MemorySource } from "./memory.ts";
import type { Frame, Link, Message } from "../protocol/channel.ts";
import { HostBudget } from "../protocol/budget.ts";
import { BytePipe, PIPE_HEADER_BYTES, type PipeRef } from "../protocol/pipe.ts";
import { copyOf, decodeUtf8 } from "../protocol/bytes.ts";
import { type Method, type Outcome, RpcClient } from "../protocol/rpc.ts";
import {
  decodeCredit,
  decodeFrame,
  encodeCredit,
  streamChannel,
  type StreamFrame,
  StreamSender,
} from "../protocol/stream.ts";
import { decode } from "../protocol/schema.ts";
import { NoticeEnvelope, Op } from "../protocol/wire.ts";
import { fail } from "./abi.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** Thrown inside a hostcall when the host asked the guest to stop (timeout, shutdown). */
export class GuestTerminated extends Error {
  constructor() {
    super("terminated by host");
  }
}

/**
 * Thrown when a call back into the guest (a tool function) trapped or exited: the whole
 * guest must unwind, so the hostcall that made the call returns a trap.
 */
export class GuestTrapped extends Error {
  constructor(message: string, readonly exitCode?: number) {
    super(message);
  }
}

/** Calls into the guest from inside a hostcall (tools, reference §5.7). */
export interface GuestInvoker {
  /**
   * Calls the function at `index` of the guest's exported function table with four i32
   * arguments and an i32 result. EIO if there is no such function or its type differs.
   */
  callTableI32x4(index: number, args: [number, number, number, number]): number;
}

/** What a family does with the items and events of a stream it receives. */
export interface StreamReceiver {
  data(frame: StreamFrame): void;
  event(value: Record<string, unknown>): void;
}

export interface GuestOptions {
  link: Link;
  memory: MemorySource | null;
  maxFds: number;
  /** The guest's host budget (shared with the host); a private 64 MiB one if absent. */
  budget?: HostBudget;
  /** What the embedder passed for this run, by family (RunOptions.context); {} if none. */
  context?: Readonly<Record<string, unknown>>;
  /** When the host stops the guest, as `absoluteNow()` reads time; none when absent. */
  deadline?: number;
  /** The guest's pipe arena (protocol/pipe.ts), shared with the host; none: no pipes. */
  pipes?: SharedArrayBuffer;
}

/** Milliseconds since the epoch, monotonic within a thread and comparable across threads. */
export function absoluteNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Default host budget of a guest: what the host may keep on its behalf. */
export const DEFAULT_HOST_BUDGET_MB = 64;

/**
 * Largest backlog the worker lets pile up towards the host before a sending hostcall waits:
 * a guest that logs faster than stderr drains is slowed down instead of growing host memory.
 */
export const MAX_OUTBOUND_BACKLOG_BYTES = 1 << 20;

export class GuestRuntime {
  readonly fds: FdTable;
  readonly mem: GuestMemory;
  readonly link: Link;
  readonly budget: HostBudget;
  readonly rpc: RpcClient;
  /** Per-run values for families (e.g. `cis`: the skill's limits), from RunOptions.context. */
  readonly context: Readonly<Record<string, unknown>>;
  /** When the host stops this guest (absoluteNow() time), Infinity without a time limit. */
  readonly deadline: number;
  private readonly deferred: (() => void)[] = [];
  private readonly streams = new Map<number, StreamReceiver>();
  private readonly notices = new Map<string, (notice: NoticeEnvelope) => void>();
  private readonly pipeSignals = new Map<number, () => void>();
  private readonly pipeArena: SharedArrayBuffer | undefined;
  private nextStreamId = 1;
  /** Blocking points that may not re-enter the guest (a request in flight for a hostcall). */
  private reentryBlocked = 0;
  /** Inside `pump`: sending must not wait there (waiting pumps, and the ring is mid-read). */
  private pumping = false;
  /** Messages from the host handled so far (for tests and metrics). */
  messagesIn = 0;
  /** Set by the instance once the guest is instantiated. */
  invoker: GuestInvoker | null = null;
  /** Set by `proc_exit`: the guest is unwinding to end with this exit code. */
  exitCode: number | undefined;

  constructor(options: GuestOptions) {
    this.budget = options.budget ?? HostBudget.create(DEFAULT_HOST_BUDGET_MB << 20);
    this.fds = new FdTable(options.maxFds, this.budget);
    this.mem = new GuestMemory(options.memory);
    this.link = options.link;
    this.context = options.context ?? {};
    this.deadline = options.deadline ?? Infinity;
    this.pipeArena = options.pipes;
    this.rpc = new RpcClient((op, fd, payload) => this.send(op, fd, payload));
    this.fds.onClose((fd) => this.rpc.cancelFd(fd));
  }

  /** Milliseconds left before the host stops the guest (Infinity without a limit; 0 when past). */
  remainingMs(): number {
    return Math.max(0, this.deadline - absoluteNow());
  }

  /** Sends a message to the host, waiting (not growing memory) while its backlog is full. */
  send(op: number, fd: number, payload?: Uint8Array | string, head?: Uint8Array): void {
    const out = this.link.toHost;
    if (out.backlogBytes > MAX_OUTBOUND_BACKLOG_BYTES && !this.pumping) {
      this.waitFor(() => out.flush() || out.backlogBytes <= MAX_OUTBOUND_BACKLOG_BYTES, -1);
    }
    out.send(op, fd, payload, head);
  }

  /** Frames not yet written to the ring, handed to the host with the result at exit. */
  takeOutbound(): Frame[] {
    this.link.toHost.flush();
    return this.link.toHost.drainBacklog();
  }

  /** Registers what to do with a notice of `family`/`type` (a handle the host created). */
  onNotice(family: string, type: string, handler: (notice: NoticeEnvelope) => void): void {
    this.notices.set(`${family}/${type}`, handler);
  }

  /** A new guest-opened stream id, routed to `receiver`. */
  openStream(receiver: StreamReceiver): number {
    const id = this.nextStreamId++;
    this.streams.set(id, receiver);
    return id;
  }

  /**
   * Routes a host-created stream (from a notice) to `receiver`. Call it from the notice handler
   * itself: the stream's first items may follow the notice at once, and items for a stream
   * nobody receives are dropped.
   */
  adoptStream(id: number, receiver: StreamReceiver): void {
    this.streams.set(id, receiver);
  }

  /**
   * Opens a guest → host stream (bytes the guest writes, e.g. audio to a recogniser, data to a
   * socket). The host's consumer grants credit as it drains, so `send` refuses (false) past the
   * window and the guest sees -EAGAIN / EPOLLOUT instead of growing host memory. `onCredit`
   * runs after each grant, once the sender has the credit (a family raises EPOLLOUT there).
   */
  openOutbound(window: number, onCredit?: (bytes: number) => void): StreamSender {
    return this.outboundSender(this.nextStreamId++, window, onCredit);
  }

  /**
   * Takes the guest → host stream of a duplex host-created handle (the notice's `outbound`);
   * call it from the notice handler, as `adoptStream`.
   */
  adoptOutbound(
    outbound: { stream: number; window: number },
    onCredit?: (bytes: number) => void,
  ): StreamSender {
    return this.outboundSender(outbound.stream, outbound.window, onCredit);
  }

  private outboundSender(id: number, window: number, onCredit?: (bytes: number) => void): StreamSender {
    const channel = streamChannel(
      this.link.toHost,
      (op, fd, payload, head) => this.send(op, fd, payload, head),
    );
    const sender = new StreamSender(channel, id, { mode: "credit", window });
    this.creditHandlers.set(id, (bytes) => {
      sender.grant(bytes);
      onCredit?.(bytes);
    });
    return sender;
  }

  /** Stops a stream either way and tells the other end (its producer stops, or its consumer ends). */
  closeStream(id: number): void {
    const known = this.streams.delete(id) || this.creditHandlers.delete(id);
    if (known) this.send(Op.STREAM_CLOSE, id);
  }

  /**
   * Attaches a byte pipe the host placed in the arena; `onSignal` runs when the host signals it
   * (data came, or room freed, for this side's `wantData` / `wantRoom`). EIO without an arena.
   */
  attachPipe(ref: PipeRef, onSignal: () => void): BytePipe {
    if (!this.pipeArena || ref.offset + PIPE_HEADER_BYTES + ref.capacity > this.pipeArena.byteLength) {
      throw fail("EIO", "the host gave a pipe outside the guest's pipe arena");
    }
    const pipe = new BytePipe(this.pipeArena, ref);
    this.pipeSignals.set(pipe.id, onSignal);
    return pipe;
  }

  /** Stops listening to a pipe's signals (the family no longer uses it). */
  detachPipe(pipe: BytePipe): void {
    this.pipeSignals.delete(pipe.id);
  }

  /** Returns `bytes` of credit to a stream's producer (its reader consumed them). */
  credit(id: number, bytes: number): void {
    if (bytes > 0 && this.streams.has(id)) this.send(Op.STREAM_CREDIT, id, encodeCredit(bytes));
  }

  /**
   * A blocking request to the host. Waiting does not re-enter the guest (no tool calls run):
   * the hostcall that asked is still half done. Past `timeoutMs` the call is cancelled.
   */
  call<P, R>(m: Method<P, R>, params: P, options: { fd?: number; timeoutMs: number }): Outcome<R> {
    const call = this.rpc.start(m, params, options);
    this.reentryBlocked++;
    try {
      this.waitFor(() => call.done, options.timeoutMs);
    } finally {
      this.reentryBlocked--;
    }
    if (!call.done) this.rpc.cancel(call, `host request ${m.name} timed out after ${options.timeoutMs} ms`);
    return call.outcome!;
  }

  /**
   * Queues work that may re-enter the guest (tool calls). It runs only where the guest asked
   * to wait or poll (`block`, `poll`), never in the middle of other guest code.
   */
  defer(work: () => void): void {
    this.deferred.push(work);
  }

  /** Applies every message the host has sent; throws GuestTerminated if asked to stop. */
  // Bound once: pump runs on every polling point and must not allocate.
  private readonly applyMessage = (m: Message) => this.apply(m);
  /** The host's producer wants room: wake it. */
  private readonly wakeHostProducer = () => this.link.toHost.ring();

  pump(): void {
    if (this.link.toGuest.terminateRequested) throw new GuestTerminated();
    this.link.toHost.flush();
    this.pumping = true;
    try {
      this.messagesIn += this.link.toGuest.receive(
        this.applyMessage,
        this.wakeHostProducer,
        true, // views: apply() decodes at once or copies what is kept
      );
    } finally {
      this.pumping = false;
    }
  }

  /**
   * A polling point (epoll_wait with timeout 0, a non-blocking read): applies messages and
   * runs deferred guest re-entries, as a blocking point does, without waiting.
   */
  poll(): void {
    this.pump();
    this.runDeferred();
  }

  private apply(m: Message): void {
    switch (m.op) {
      case Op.REPLY:
        this.budget.release(m.payload.length); // charged by the host when it replied
        this.rpc.receive(m.payload);
        return;
      case Op.STREAM_DATA: {
        const receiver = this.streams.get(m.fd);
        if (!receiver) return;
        const frame = decodeFrame(m.payload);
        // The payload is a view of the ring: the receiver gets its own copy (an empty item needs none).
        frame.bytes = frame.bytes.length ? copyOf(frame.bytes) : EMPTY_BYTES;
        receiver.data(frame);
        return;
      }
      case Op.STREAM_EVENT: {
        const receiver = this.streams.get(m.fd);
        if (receiver) receiver.event(JSON.parse(decodeUtf8(m.payload)));
        return;
      }
      case Op.NOTICE: {
        const notice = decode(NoticeEnvelope, m.payload, "notice");
        this.notices.get(`${notice.family}/${notice.type}`)?.(notice);
        return;
      }
      case Op.STREAM_CREDIT:
        this.creditHandlers.get(m.fd)?.(decodeCredit(m.payload));
        return;
      case Op.PIPE_SIGNAL:
        this.pipeSignals.get(m.fd)?.();
        return;
    }
  }

  /** Guest → host streams: credit returned by the host's consumer. */
  private readonly creditHandlers = new Map<number, (bytes: number) => void>();

  private runDeferred(): void {
    if (this.reentryBlocked > 0) return;
    while (this.deferred.length > 0) this.deferred.shift()!();
  }

  /**
   * Parks the guest until `ready()` is true or `timeoutMs` passes (negative: forever).
   * Messages are applied and deferred work runs while waiting; spurious wakeups just
   * re-check. Returns whether `ready()` became true.
   */
  block(ready: () => boolean, timeoutMs: number): boolean {
    return this.waitFor(ready, timeoutMs, true);
  }

  private waitFor(ready: () => boolean, timeoutMs: number, reenter = false): boolean {
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      const seen = this.link.toGuest.bell;
      this.pump();
      if (reenter) this.runDeferred();
      if (ready()) return true;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      // The bell value captured before the pump makes this wait return at once if a message
      // arrived in between.
      this.link.toGuest.waitBell(seen, remaining);
    }
  }

  /** Charges the budget or fails the hostcall with `errno` (ENOMEM unless a queue says ENOSPC). */
  charge(bytes: number, what: string, errno: "ENOMEM" | "ENOSPC" = "ENOMEM"): void {
    if (!this.budget.tryCharge(bytes)) {
      throw fail(
        errno,
        `${what}: ${bytes} bytes over the guest's host budget (${this.budget})`,
      );
    }
  }
}
