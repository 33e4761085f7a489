/**
 * The worker-side state of one guest instance: its fd table, guest memory, the link to
 * the host, and the one blocking primitive every waiting hostcall uses (`block`). Hostcall
 * families register handlers for the messages their drivers send back.
 */
import { FdTable } from "./fd_table.ts";
import { GuestMemory, type MemorySource } from "./memory.ts";
import { decodeJson, type Link, type Message } from "../protocol/channel.ts";
import { Op } from "../protocol/wire.ts";

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

export interface GuestOptions {
  link: Link;
  memory: MemorySource | null;
  maxFds: number;
}

export class GuestRuntime {
  readonly fds: FdTable;
  readonly mem: GuestMemory;
  readonly link: Link;
  private readonly handlers = new Map<number, (m: Message) => void>();
  private readonly deferred: (() => void)[] = [];
  private readonly replies = new Map<number, unknown>();
  private nextCallId = 1;
  /** Messages from the host handled so far (for tests and metrics). */
  messagesIn = 0;
  /** Set by the instance once the guest is instantiated. */
  invoker: GuestInvoker | null = null;
  /** Set by `proc_exit`: the guest is unwinding to end with this exit code. */
  exitCode: number | undefined;

  constructor(options: GuestOptions) {
    this.fds = new FdTable(options.maxFds);
    this.mem = new GuestMemory(options.memory);
    this.link = options.link;
    this.on(Op.REPLY, (m) => {
      const { id, result } = decodeJson<{ id: number; result: unknown }>(m.payload);
      this.replies.set(id, result);
    });
  }

  /** Registers the handler for one message op from the host. */
  on(op: number, handler: (m: Message) => void): void {
    if (this.handlers.has(op)) throw new Error(`op ${op} already has a handler`);
    this.handlers.set(op, handler);
  }

  /** Sends a message to the host's drivers. */
  send(op: number, fd: number, payload?: Uint8Array): void {
    this.link.toHost.send(op, fd, payload);
  }

  sendJson(op: number, fd: number, value: unknown): void {
    this.link.toHost.sendJson(op, fd, value);
  }

  /**
   * Queues work that may re-enter the guest (tool calls). It runs only at blocking points
   * (`block`), where the guest is parked in a hostcall and expects to be re-entered.
   */
  defer(work: () => void): void {
    this.deferred.push(work);
  }

  /** Applies every message the host has sent; throws GuestTerminated if asked to stop. */
  pump(): void {
    if (this.link.toGuest.terminateRequested) throw new GuestTerminated();
    this.link.toHost.flush();
    this.messagesIn += this.link.toGuest.receive(
      (m) => this.handlers.get(m.op)?.(m),
      () => this.link.toHost.ring(), // the host's producer wants room: wake it
    );
  }

  private runDeferred(): void {
    while (this.deferred.length > 0) this.deferred.shift()!();
  }

  /**
   * Parks the guest until `ready()` is true or `timeoutMs` passes (negative: forever).
   * Messages are applied and deferred work runs while waiting; spurious wakeups just
   * re-check. Returns whether `ready()` became true.
   */
  block(ready: () => boolean, timeoutMs: number): boolean {
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      const seen = this.link.toGuest.bell;
      this.pump();
      this.runDeferred();
      if (ready()) return true;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      // Re-check after the pump: a message may have arrived between pump and wait; the
      // bell value captured before the pump makes that wait return at once.
      this.link.toGuest.waitBell(seen, remaining);
    }
  }

  /** A blocking request to the host (e.g. list audio devices); returns the REPLY result. */
  call(method: string, params: unknown, timeoutMs = 10000): unknown {
    const id = this.nextCallId++;
    this.sendJson(Op.CALL, 0, { id, method, params });
    if (!this.block(() => this.replies.has(id), timeoutMs)) throw new Error(`host call ${method} timed out`);
    const result = this.replies.get(id);
    this.replies.delete(id);
    return result;
  }
}
