/**
 * The envelopes that cross between a guest's worker and the host's main thread, over the
 * two channels of a Link (protocol/channel.ts). There are few kinds and none belongs to a
 * family: a family speaks through typed requests (protocol/rpc.ts), streams
 * (protocol/stream.ts) and notices, so adding a family adds no op and no routing code.
 *
 * The frame's `fd` field carries the subject of the message: the log level for LOG, the fd a
 * request is about (0 if none) for REQUEST, a stream id for STREAM_*, a pipe id for PIPE_SIGNAL,
 * 0 otherwise.
 */
import * as s from "./schema.ts";

export const Op = {
  /** guest → host: one log record; fd = level, payload = UTF-8 text. */
  LOG: 1,
  /** guest → host: a request; JSON RequestEnvelope, then any attached text (protocol/rpc.ts). */
  REQUEST: 2,
  /** host → guest: the answer to a request; JSON ReplyEnvelope, then any attached text. */
  REPLY: 3,
  /** guest → host: the guest no longer wants the answer; JSON {id}. */
  CANCEL: 4,
  /** either way: one item of a stream; binary stream frame (protocol/stream.ts). */
  STREAM_DATA: 5,
  /** either way, against the data: the receiver consumed bytes; u32 byte count. */
  STREAM_CREDIT: 6,
  /** either way: a stream's typed event (end, error, family events); JSON. */
  STREAM_EVENT: 7,
  /** guest → host: the guest closed its end; the producer stops. */
  STREAM_CLOSE: 8,
  /** host → guest: something the host created for the guest (a handle to adopt); JSON Notice. */
  NOTICE: 9,
  /**
   * host → guest: a byte pipe (protocol/pipe.ts) has data or room, as the worker asked; fd = the
   * pipe's id, no payload. (The host waits on its pipes itself, so nothing goes the other way.)
   */
  PIPE_SIGNAL: 10,
} as const;

export const RequestEnvelope = s.object({
  id: s.int,
  /** Family-qualified method, e.g. "mic.start". */
  method: s.string,
  params: s.json,
  /** Milliseconds the guest will wait; the host aborts the handler after that. */
  timeoutMs: s.optional(s.number),
});
export type RequestEnvelope = s.Infer<typeof RequestEnvelope>;

export const ReplyEnvelope = s.object({
  id: s.int,
  ok: s.boolean,
  result: s.optional(s.json),
  /** Set when !ok: why the request failed, one line. */
  error: s.optional(s.string),
});
export type ReplyEnvelope = s.Infer<typeof ReplyEnvelope>;

export const CancelEnvelope = s.object({ id: s.int });

/**
 * A handle the host created for a guest (an accepted connection, a user stream). Spelled out
 * because it is reachable from mod.ts (JSR's no-slow-types); the schema below must produce it.
 */
export interface NoticeEnvelope {
  family: string;
  type: string;
  /** The stream the handle's data arrives on (host-allocated, negative). */
  stream?: number;
  /**
   * A duplex handle's guest → host stream (host-allocated, negative) and its credit window:
   * the guest adopts it with GuestRuntime.adoptOutbound (an accepted connection's writes).
   */
  outbound?: { stream: number; window: number };
  info: unknown;
}
export const NoticeEnvelope: s.Schema<NoticeEnvelope> = s.object({
  family: s.string,
  type: s.string,
  stream: s.optional(s.int),
  outbound: s.optional(s.object({ stream: s.int, window: s.int })),
  info: s.json,
});
