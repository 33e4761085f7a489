/**
 * What both halves of user streams share (reference §8, SPEC.md): the SSF v1 frame header, the
 * ABI numbers, the limits, and what crosses the thread boundary.
 *
 * One client stream (a stream id some WebSocket client sent a frame on) is one duplex
 * host-created handle (GuestSession.createHandle, notice `user_stream/stream`):
 * - host → guest: a credit stream of whole SSF frames whose window is the stream's inbound limit,
 *   so the host never holds more than that for a guest that does not read; its events are
 *   `closed` (the client left) and `error` (the client overran the window);
 * - guest → host: a credit stream of the frames the guest writes, whose window is the outbound
 *   limit; credit comes back as frames leave through the client's socket. Its one event,
 *   `refused`, says why the guest could not take the stream (its host budget).
 * The notice `user_stream/session_closed` tells the guest that the last client left.
 */
import * as s from "../../protocol/schema.ts";

/** user_stream_open directions (spear.h SPEAR_USER_STREAM_DIR_*). */
export const UserStreamDir = { IN: 1, OUT: 2, BIDI: 3 } as const;
/** Event kinds read from a ctl fd. */
export const UserStreamEvent = { STREAM_CONNECTED: 1, SESSION_CLOSED: 2 } as const;

export const UserStreamLimits = {
  /** Frames a client sent that the guest has not read yet, per stream (SPEAR's default). */
  MAX_INBOUND_BYTES: 2 * 1024 * 1024,
  /** Frames the guest wrote that have not left through the client's socket, per stream. */
  MAX_OUTBOUND_BYTES: 2 * 1024 * 1024,
  /** Largest frame either way, header included. */
  MAX_FRAME_BYTES: 256 * 1024,
  /** Events a ctl fd keeps (the oldest is dropped, and counted, past it). */
  MAX_CTL_PENDING: 1024,
  /** One ctl event: u32 stream_id, u32 kind, little-endian. */
  CTL_EVENT_BYTES: 8,
  /** Streams one guest may have connected at once (their windows bound what the host holds). */
  MAX_STREAMS: 32,
  /** Clients one endpoint serves at once. */
  MAX_CLIENTS: 64,
} as const;

// ---------------------------------------------------------------- SSF v1

export const SSF_MAGIC = 0x54535053; // "SPST" read as a little-endian u32
export const SSF_VERSION = 1;
export const SSF_HEADER_BYTES = 32;
/** The subprotocol of SSF v1 over WebSocket, and the prefix of the token subprotocol (browsers). */
export const SSF_SUBPROTOCOL = "spear.ssf.v1";
export const TOKEN_SUBPROTOCOL_PREFIX = "spear.token.";
/** msg_type conventions (not interpreted by the host). */
export const SsfMsgType = { CTRL: 1, DATA: 2, COMMIT: 3 } as const;

export interface SsfHeader {
  headerLen: number;
  msgType: number;
  flags: number;
  streamId: number;
  seq: bigint;
  metaLen: number;
  dataLen: number;
}

/**
 * Checks an SSF v1 header against the frame's total length (`bytes` may hold only the first
 * 32 bytes); the header, or the reason it is not one.
 */
export function parseSsfHeader(bytes: Uint8Array, frameLength = bytes.length): SsfHeader | string {
  if (frameLength < SSF_HEADER_BYTES || bytes.length < SSF_HEADER_BYTES) {
    return `a frame is at least ${SSF_HEADER_BYTES} bytes, got ${frameLength}`;
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, SSF_HEADER_BYTES);
  if (v.getUint32(0, true) !== SSF_MAGIC) return "bad magic (not SPST)";
  if (v.getUint16(4, true) !== SSF_VERSION) return `unsupported version ${v.getUint16(4, true)}`;
  const header: SsfHeader = {
    headerLen: v.getUint16(6, true),
    msgType: v.getUint16(8, true),
    flags: v.getUint16(10, true),
    streamId: v.getUint32(12, true),
    seq: v.getBigUint64(16, true),
    metaLen: v.getUint32(24, true),
    dataLen: v.getUint32(28, true),
  };
  if (header.headerLen < SSF_HEADER_BYTES || header.headerLen > frameLength) {
    return `header_len ${header.headerLen} is outside ${SSF_HEADER_BYTES}..${frameLength}`;
  }
  if (header.metaLen + header.dataLen !== frameLength - header.headerLen) {
    return `meta_len ${header.metaLen} + data_len ${header.dataLen} != ${
      frameLength - header.headerLen
    } bytes after the header`;
  }
  return header;
}

/** Builds one SSF v1 frame (32-byte header, meta, data). */
export function encodeSsfFrame(
  f: { streamId: number; seq?: number | bigint; msgType?: number; flags?: number; meta?: Uint8Array },
  data: Uint8Array,
): Uint8Array {
  const meta = f.meta ?? new Uint8Array(0);
  const out = new Uint8Array(SSF_HEADER_BYTES + meta.length + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, SSF_MAGIC, true);
  v.setUint16(4, SSF_VERSION, true);
  v.setUint16(6, SSF_HEADER_BYTES, true);
  v.setUint16(8, f.msgType ?? SsfMsgType.DATA, true);
  v.setUint16(10, f.flags ?? 0, true);
  v.setUint32(12, f.streamId, true);
  v.setBigUint64(16, BigInt(f.seq ?? 1), true);
  v.setUint32(24, meta.length, true);
  v.setUint32(28, data.length, true);
  out.set(meta, SSF_HEADER_BYTES);
  out.set(data, SSF_HEADER_BYTES + meta.length);
  return out;
}

/** The data bytes of a frame whose header is valid. */
export function ssfData(frame: Uint8Array, header: SsfHeader): Uint8Array {
  return frame.subarray(header.headerLen + header.metaLen);
}

// ---------------------------------------------------------------- across the boundary

/** Notice `user_stream/stream`: a client connected stream `stream_id`. */
export const StreamInfo = s.object({ stream_id: s.int });
export type StreamInfo = s.Infer<typeof StreamInfo>;

/** Events on a host → guest stream. */
export type InboundEvent = { type: "closed" } | { type: "error"; reason: string };
/** Event on a guest → host stream. */
export type OutboundEvent = { type: "refused"; reason: string };

/** What a run's guest finds in `RunOptions.context.user_stream` when an endpoint serves it. */
export interface UserStreamContext {
  /** The endpoint's name for this run (GET_METRICS `execution_id`). */
  run: string;
}

/** The context of a run an endpoint serves, or undefined (user streams answer -ENOTCONN). */
export function userStreamContext(context: Readonly<Record<string, unknown>>): UserStreamContext | undefined {
  const value = context.user_stream as { run?: unknown } | undefined;
  return typeof value?.run === "string" ? { run: value.run } : undefined;
}
