/**
 * The one request/reply mechanism between a guest's worker and the host. A family declares
 * each request as a `Method` (a name plus the schemas of its params and result); the worker
 * starts calls with `RpcClient` (blocking or asynchronous; see GuestRuntime.call/start) and a
 * driver answers them with `RpcServer` handlers.
 *
 * Cancel and deadline live here and only here: a cancelled call (its fd closed, the guest
 * ending, its wait timing out) sends CANCEL, the server aborts the handler's signal and sends
 * nothing back, and a reply that still crosses on the way is dropped by the client and
 * counted in `lateReplies`. A request with `timeoutMs` is aborted on the host after that long
 * and fails with a timeout error.
 */
import type { HostBudget } from "./budget.ts";
import { decode, encode, encodeText, ProtocolError, type Schema } from "./schema.ts";
import { decodeUtf8, utf8Length, utf8Scratch } from "./bytes.ts";
import { CancelEnvelope, Op, ReplyEnvelope, RequestEnvelope } from "./wire.ts";

export interface Method<P, R> {
  readonly name: string;
  readonly params: Schema<P>;
  readonly result: Schema<R>;
}

/** Declares a request: `name` is family-qualified ("mic.start"). */
export function method<P, R>(name: string, params: Schema<P>, result: Schema<R>): Method<P, R> {
  return { name, params, result };
}

export type Outcome<R> =
  /** `attachment`: the text the handler attached to its result (EncodedResult), if any. */
  | { ok: true; value: R; attachment?: string }
  | { ok: false; error: string; cancelled?: boolean };

/** Sends one message; a text payload is sent as UTF-8 (Channel.send). */
export type Send = (op: number, fd: number, payload: Uint8Array | string) => void;

/** One call in flight from the worker. */
export class PendingCall<R> {
  outcome?: Outcome<R>;

  constructor(
    readonly id: number,
    readonly fd: number,
    readonly method: Method<unknown, R>,
    readonly onDone?: (outcome: Outcome<R>) => void,
  ) {}

  get done(): boolean {
    return this.outcome !== undefined;
  }
}

export interface StartOptions<R> {
  /** The fd the call is about: closing it cancels the call. */
  fd?: number;
  /** The host aborts the handler after this long. */
  timeoutMs?: number;
  /** Runs when the reply arrives (not when the call is cancelled). */
  onDone?: (outcome: Outcome<R>) => void;
  /** A request larger than this (attachment included) is not sent: the call fails at once (onDone runs now). */
  maxBytes?: number;
  /** Text sent beside the params, unescaped (CallContext.attachment on the host). */
  attachment?: string;
}

/** Worker side: starts calls, matches replies, cancels. */
export class RpcClient {
  private readonly pending = new Map<number, PendingCall<unknown>>();
  /** The calls about each fd, so closing an fd costs its own calls, not every call in flight. */
  private readonly byFd = new Map<number, Set<PendingCall<unknown>>>();
  private nextId = 1;
  /** Replies that arrived for calls already cancelled or finished (dropped here). */
  lateReplies = 0;

  constructor(private readonly send: Send) {}

  get outstanding(): number {
    return this.pending.size;
  }

  start<P, R>(m: Method<P, R>, params: P, options: StartOptions<R> = {}): PendingCall<R> {
    const call = new PendingCall<R>(this.nextId++, options.fd ?? 0, m as Method<unknown, R>, options.onDone);
    const envelope: RequestEnvelope = { id: call.id, method: m.name, params };
    if (options.timeoutMs !== undefined) envelope.timeoutMs = options.timeoutMs;
    // Encoding throws for params JSON cannot carry; it happens before registering, so nothing stays pending.
    const json = encodeText(RequestEnvelope, envelope);
    const text = options.attachment === undefined ? json : withAttachment(json, options.attachment);
    const max = options.maxBytes;
    // A UTF-16 code unit is at most 3 UTF-8 bytes: only text that could be too large is measured.
    const size = max !== undefined && text.length * 3 > max ? utf8Length(text) : 0;
    if (max !== undefined && size > max) {
      call.outcome = { ok: false, error: `request of ${size} bytes exceeds the host limit of ${max} bytes` };
      call.onDone?.(call.outcome);
      return call;
    }
    this.track(call as PendingCall<unknown>);
    // Sent as text: the channel encodes it into its ring, and a sender that must wait for room
    // first (GuestRuntime.send) may run other work meanwhile without disturbing it.
    this.send(Op.REQUEST, call.fd, text);
    return call;
  }

  private track(call: PendingCall<unknown>): void {
    this.pending.set(call.id, call);
    if (call.fd === 0) return; // about no fd: nothing closes it
    let calls = this.byFd.get(call.fd);
    if (!calls) this.byFd.set(call.fd, calls = new Set());
    calls.add(call);
  }

  /** Forgets a call; false when it was no longer pending. */
  private untrack(call: PendingCall<unknown>): boolean {
    if (!this.pending.delete(call.id)) return false;
    const calls = this.byFd.get(call.fd);
    if (calls?.delete(call) && calls.size === 0) this.byFd.delete(call.fd);
    return true;
  }

  /** Gives up on a call: the host aborts it and its reply, if any, is dropped. */
  cancel<R>(call: PendingCall<R>, reason = "cancelled"): void {
    if (!this.untrack(call as PendingCall<unknown>)) return;
    call.outcome = { ok: false, error: reason, cancelled: true };
    this.send(Op.CANCEL, call.fd, encodeText(CancelEnvelope, { id: call.id }));
  }

  /** Cancels every call about `fd` (the fd was closed). */
  cancelFd(fd: number): void {
    const calls = this.byFd.get(fd);
    if (calls) { for (const call of [...calls]) this.cancel(call, "fd closed"); }
  }

  cancelAll(reason = "guest ended"): void {
    for (const call of [...this.pending.values()]) this.cancel(call, reason);
  }

  /**
   * Applies one REPLY. Its attachment is decoded here, while `payload` may still be a view of
   * the ring.
   */
  receive(payload: Uint8Array): void {
    const { envelope, attachment } = splitAttachment(payload);
    const reply = decode(ReplyEnvelope, envelope, "reply");
    const call = this.pending.get(reply.id);
    if (!call) {
      this.lateReplies++;
      return;
    }
    this.untrack(call);
    let outcome: Outcome<unknown>;
    if (!reply.ok) outcome = { ok: false, error: reply.error ?? "host request failed" };
    else {
      try {
        outcome = { ok: true, value: call.method.result.check(reply.result, `${call.method.name} result`) };
        if (attachment !== undefined) outcome.attachment = decodeUtf8(attachment);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        outcome = { ok: false, error: `invalid reply from the host: ${e.message}` };
      }
    }
    call.outcome = outcome;
    call.onDone?.(outcome);
  }
}

export interface CallContext {
  /** The fd the call is about (0 if none). */
  fd: number;
  /** Aborted when the guest cancels, the deadline passes or the guest ends. */
  signal: AbortSignal;
  /**
   * Aborts `signal` with `reason`. A handler with a deadline of its own arms it with this
   * instead of joining a second controller to `signal`, which costs a controller and two
   * listeners per call.
   */
  abort(reason: unknown): void;
  /**
   * The UTF-8 of the text the request carried beside its params (StartOptions.attachment), if
   * any: a view of the request's payload, which is the handler's to keep.
   */
  attachment?: Uint8Array;
}

/** A driver's implementation of one method; `C` is what the host adds to the context. */
export interface Handler<C> {
  readonly method: Method<unknown, unknown>;
  run(params: unknown, ctx: CallContext & C): unknown;
}

/**
 * A result a handler has already turned into JSON text (it had to, to measure it): the reply
 * carries the text as it is instead of encoding the value a second time. The text must be
 * what `JSON.stringify` made of a value of the method's result type. `attachment` is text that
 * travels beside the result as it is (Outcome.attachment), for bulk text such as a document
 * the worker hands on unread: inside the JSON it would be escaped here and unescaped there.
 */
export class EncodedResult {
  constructor(readonly json: string, readonly attachment?: string) {}
}

/** Binds an implementation to a method, with the method's types. */
export function handle<P, R, C = unknown>(
  m: Method<P, R>,
  run: (params: P, ctx: CallContext & C) => R | EncodedResult | Promise<R | EncodedResult>,
): Handler<C> {
  return { method: m as Method<unknown, unknown>, run: run as Handler<C>["run"] };
}

/** The timeout error text, shared so both sides word it alike. */
export function timeoutMessage(ms: number): string {
  return `timed out after ${ms} ms`;
}

/** Host side: runs handlers, replies, aborts on cancel, deadline and close. */
export class RpcServer<C> {
  private readonly inflight = new Map<number, AbortController>();
  private closed = false;

  constructor(
    private readonly send: Send,
    private readonly handlers: ReadonlyMap<string, Handler<C>>,
    private readonly context: C,
    /** The guest's budget: a reply is charged until the worker applies it (and releases it). */
    private readonly budget?: HostBudget,
  ) {}

  get active(): number {
    return this.inflight.size;
  }

  /**
   * Applies one REQUEST; never throws (a bad request gets an error reply). `payload` must be a
   * copy, not a view of the ring: the handler keeps its attachment.
   */
  receiveRequest(fd: number, payload: Uint8Array): void {
    if (this.closed) return; // the guest ended: nothing would ever abort the handler
    const { envelope, attachment } = splitAttachment(payload);
    let request: RequestEnvelope;
    try {
      request = decode(RequestEnvelope, envelope, "request");
    } catch (e) {
      // Without an id there is nobody to answer; the guest's call times out.
      if (e instanceof ProtocolError) return;
      throw e;
    }
    const { id } = request;
    const handler = this.handlers.get(request.method);
    if (!handler) return this.reply({ id, ok: false, error: `no host method ${request.method}` });
    let params: unknown;
    try {
      params = handler.method.params.check(request.params, `${request.method} params`);
    } catch (e) {
      return this.reply({ id, ok: false, error: (e as Error).message });
    }
    const controller = new AbortController();
    this.inflight.set(id, controller);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (request.timeoutMs !== undefined) {
      const ms = request.timeoutMs;
      timer = setTimeout(() => this.finish(id, controller, { id, ok: false, error: timeoutMessage(ms) }), ms);
      // A cancelled or closed call must not keep a timer (and the event loop) alive.
      controller.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    }
    const done = (result: unknown) => {
      clearTimeout(timer);
      this.finish(id, controller, { id, ok: true, result });
    };
    const failed = (e: unknown) => {
      clearTimeout(timer);
      this.finish(id, controller, { id, ok: false, error: String((e as Error)?.message ?? e) });
    };
    // The handler starts now, not a microtask later: the requests of one batch still start in
    // order, and a request costs no extra promise hops on the main thread.
    const ctx: CallContext & C = {
      ...this.context,
      fd,
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
    };
    if (attachment !== undefined) ctx.attachment = attachment;
    let result: unknown;
    try {
      result = handler.run(params, ctx);
    } catch (e) {
      return failed(e);
    }
    if (result instanceof Promise) result.then(done, failed);
    else done(result);
  }

  /** Applies one CANCEL. */
  receiveCancel(payload: Uint8Array): void {
    let id: number;
    try {
      id = decode(CancelEnvelope, payload, "cancel").id;
    } catch {
      return;
    }
    const controller = this.inflight.get(id);
    this.inflight.delete(id);
    controller?.abort();
  }

  /** The guest ended: abort everything, reply to nothing. */
  close(): void {
    this.closed = true;
    for (const controller of this.inflight.values()) controller.abort();
    this.inflight.clear();
  }

  private finish(id: number, controller: AbortController, reply: ReplyEnvelope): void {
    if (this.inflight.get(id) !== controller) return; // cancelled, timed out or closed already
    this.inflight.delete(id);
    if (!reply.ok) controller.abort();
    this.reply(reply);
  }

  private reply(reply: ReplyEnvelope): void {
    if (this.closed) return;
    let bytes: Uint8Array;
    try {
      // A scratch view (protocol/bytes.ts): measured for the budget, then copied out by send.
      const attachment = reply.ok && reply.result instanceof EncodedResult
        ? reply.result.attachment
        : undefined;
      const text = replyText(reply);
      bytes = utf8Scratch(attachment === undefined ? text : withAttachment(text, attachment));
    } catch (e) {
      // A result JSON cannot carry (a BigInt, a cycle) is a driver bug: it fails this call only.
      const error = `the host's reply could not be encoded: ${(e as Error)?.message ?? e}`;
      bytes = encode(ReplyEnvelope, { id: reply.id, ok: false, error }); // nothing attached: it threw first
    }
    if (this.budget && !this.budget.tryCharge(bytes.length)) {
      const error = `reply of ${bytes.length} bytes is over the guest's host budget (${this.budget})`;
      bytes = encode(ReplyEnvelope, { id: reply.id, ok: false, error });
      this.budget.force(bytes.length);
    }
    this.send(Op.REPLY, 0, bytes);
  }
}

/** A REQUEST's or REPLY's payload as its JSON envelope and attached text, views of it (see the top of this file). */
export function splitAttachment(payload: Uint8Array): { envelope: Uint8Array; attachment?: Uint8Array } {
  const split = payload.indexOf(0);
  if (split < 0) return { envelope: payload };
  return { envelope: payload.subarray(0, split), attachment: payload.subarray(split + 1) };
}

/** A request's or reply's JSON text with text attached (see the top of this file). */
export function withAttachment(json: string, attachment: string): string {
  return `${json}\0${attachment}`;
}

/** A reply's JSON text; a successful result is serialized once (or not at all when already text). */
function replyText(reply: ReplyEnvelope): string {
  if (!reply.ok) return encodeText(ReplyEnvelope, reply);
  const result = reply.result instanceof EncodedResult ? reply.result.json : JSON.stringify(reply.result);
  // undefined (a handler that returned nothing) leaves `result` out, as JSON.stringify would.
  const tail = result === undefined ? "}" : `,"result":${result}}`;
  return `{"id":${reply.id},"ok":true${tail}`;
}
