/**
 * The one fake-guest harness for unit and family tests: a GuestRuntime over a plain
 * Uint8Array "linear memory" with the worker parts of chosen families, hostcalls called as the
 * instance calls them (HostcallError → -errno), and the host's side of the Link played by the
 * test: queue replies, stream frames, events and notices; read what the guest sent.
 */
import { HostcallError } from "../../runtime/abi.ts";
import { Link, type Message } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { type BytePipe, PipeArena } from "../../protocol/pipe.ts";
import { encode, encodeText } from "../../protocol/schema.ts";
import { splitAttachment, withAttachment } from "../../protocol/rpc.ts";
import { STREAM_HEADER_BYTES, streamClock } from "../../protocol/stream.ts";
import { NoticeEnvelope, Op, ReplyEnvelope, RequestEnvelope } from "../../protocol/wire.ts";
import { decode } from "../../protocol/schema.ts";
import { GuestRuntime } from "../../runtime/guest.ts";
import type { Hostcall, WasmValue } from "../../runtime/hostcall.ts";
import { FAMILIES, hostcallsFor } from "../../families/registry.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface FakeGuestOptions {
  /** Families whose worker parts are loaded (default: every family). */
  families?: string[];
  maxFds?: number;
  memBytes?: number;
  /** Host budget in bytes (default 64 MiB). */
  budgetBytes?: number;
  linkBytes?: number;
  /** Per-run family values (GuestRuntime.context), e.g. `{cis: SkillContext}`. */
  context?: Record<string, unknown>;
  /** When the host would stop the guest (runtime/guest.ts absoluteNow() time). */
  deadline?: number;
}

export interface FakeGuest {
  rt: GuestRuntime;
  link: Link;
  mem: Uint8Array;
  view: DataView;
  hostcalls: Map<string, Hostcall>;
  /** Calls an import by name; -errno for HostcallError. */
  call(name: string, ...args: WasmValue[]): number;
  /** Same, for i64 results. */
  callBig(name: string, ...args: WasmValue[]): bigint;
  /** Writes text or bytes at `offset`; returns the byte length. */
  write(offset: number, data: string | Uint8Array): number;
  text(offset: number, len: number): string;
  /** The next request id the guest will use (requests count from 1). */
  nextRequestId: number;
  /**
   * Queues the host's reply to request `id` (default: the next one the guest makes), with text
   * attached after it when given (EncodedResult's attachment).
   */
  reply(result: unknown, id?: number, attachment?: string): void;
  /** Queues a failed reply. */
  replyError(error: string, id?: number): void;
  /** Sends one stream item to the guest. */
  frame(stream: number, bytes: Uint8Array, options?: { seq?: number; dropped?: number; at?: number }): void;
  /** Sends a stream event to the guest. */
  event(stream: number, value: Record<string, unknown>): void;
  notice(notice: NoticeEnvelope): void;
  /** Places a byte pipe in the guest's arena, as a driver does (protocol/pipe.ts). */
  pipe(limit: number): BytePipe;
  /** Sends PIPE_SIGNAL for `pipe` to the guest. */
  signal(pipe: BytePipe): void;
  /** Messages the guest sent to the host since the last call. */
  sent(): Message[];
  /** Requests (decoded, with the fd each is about and any attachment) among `sent()`; the rest is discarded. */
  requests(): (RequestEnvelope & { fd: number; attachment?: string })[];
}

export async function fakeGuest(options: FakeGuestOptions = {}): Promise<FakeGuest> {
  const mem = new Uint8Array(options.memBytes ?? 1 << 20);
  const view = new DataView(mem.buffer);
  const link = Link.create(options.linkBytes ?? 1 << 22);
  const pipes = PipeArena.create(64 << 20);
  const rt = new GuestRuntime({
    link,
    pipes: pipes.buffer,
    maxFds: options.maxFds ?? 1024,
    budget: HostBudget.create(options.budgetBytes ?? 64 << 20),
    context: options.context,
    deadline: options.deadline,
    memory: { locate: () => [BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(mem))), mem.length] },
  });
  const families = options.families ? FAMILIES.filter((f) => options.families!.includes(f.name)) : FAMILIES;
  const hostcalls = new Map((await hostcallsFor(rt, families)).map((h) => [h.name, h]));
  const run = (name: string, args: WasmValue[]): WasmValue => {
    const hc = hostcalls.get(name);
    if (!hc) throw new Error(`no hostcall ${name}`);
    rt.mem.invalidate();
    try {
      return hc.run(...args) ?? 0;
    } catch (e) {
      if (e instanceof HostcallError) return e.code;
      throw e;
    }
  };
  let pendingSent: Message[] = [];
  /** Takes everything the guest sent, backlog included (a large message fills the ring many times). */
  const drain = () => {
    for (;;) {
      const flushed = link.toHost.flush();
      link.toHost.receive((m) => pendingSent.push(m));
      if (flushed) return;
    }
  };
  const g: FakeGuest = {
    rt,
    link,
    mem,
    view,
    hostcalls,
    nextRequestId: 1,
    call: (name, ...args) => Number(run(name, args)),
    callBig: (name, ...args) => BigInt(run(name, args)),
    write(offset, data) {
      const bytes = typeof data === "string" ? encoder.encode(data) : data;
      mem.set(bytes, offset);
      return bytes.length;
    },
    text: (offset, len) => decoder.decode(mem.subarray(offset, offset + len)),
    reply(result, id = g.nextRequestId++, attachment) {
      const envelope = encodeText(ReplyEnvelope, { id, ok: true, result });
      const bytes = encoder.encode(
        attachment === undefined ? envelope : withAttachment(envelope, attachment),
      );
      rt.budget.force(bytes.length); // as the host charges a reply
      link.toGuest.send(Op.REPLY, 0, bytes);
    },
    replyError(error, id = g.nextRequestId++) {
      const bytes = encode(ReplyEnvelope, { id, ok: false, error });
      rt.budget.force(bytes.length);
      link.toGuest.send(Op.REPLY, 0, bytes);
    },
    frame(stream, bytes, { seq = 0, dropped = 0, at = streamClock() } = {}) {
      const payload = new Uint8Array(STREAM_HEADER_BYTES + bytes.length);
      const v = new DataView(payload.buffer);
      v.setUint32(0, seq, true);
      v.setUint32(4, dropped, true);
      v.setFloat64(8, at, true);
      payload.set(bytes, STREAM_HEADER_BYTES);
      link.toGuest.send(Op.STREAM_DATA, stream, payload);
    },
    event(stream, value) {
      link.toGuest.send(Op.STREAM_EVENT, stream, encoder.encode(JSON.stringify(value)));
    },
    notice(notice) {
      link.toGuest.send(Op.NOTICE, 0, encode(NoticeEnvelope, notice));
    },
    pipe: (limit) => pipes.allocate(limit)!,
    signal(pipe) {
      link.toGuest.send(Op.PIPE_SIGNAL, pipe.id);
    },
    sent() {
      drain();
      const out = pendingSent;
      pendingSent = [];
      return out;
    },
    requests() {
      return g.sent().filter((m) => m.op === Op.REQUEST).map((m) => {
        const { envelope, attachment } = splitAttachment(m.payload);
        return {
          ...decode(RequestEnvelope, envelope),
          fd: m.fd,
          ...(attachment === undefined ? {} : { attachment: decoder.decode(attachment) }),
        };
      });
    },
  };
  return g;
}
