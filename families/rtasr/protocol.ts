/**
 * What crosses the boundary for a realtime ASR fd (SPEC.md §5, reference §6).
 *
 * CONNECT is one short blocking request, `rtasr.connect`: the driver resolves the backend and
 * starts the transport, then replies at once (the fd is `Connecting`); everything after that
 * travels on two streams the worker opened:
 * - **audio** (guest → host, credit): each item is one `rtasr_write` chunk; the driver returns
 *   credit when a chunk has left (handed to the socket, the recogniser or the stub), so the
 *   window is the send queue and a full window is -EAGAIN and no EPOLLOUT. Control events
 *   (SEND_EVENT, FLUSH, CLEAR, a new segmentation) ride the same stream as stream events, in
 *   order with the audio.
 * - **events** (host → guest, lossy): each item is one server event, exactly the bytes the
 *   guest reads; transport changes (connected, error, closed) come as stream events.
 * Closing the fd closes both streams: the driver closes the transport (after the final
 * transcript when `flush_on_close` asks for it).
 */
import * as s from "../../protocol/schema.ts";
import { method } from "../../protocol/rpc.ts";

/** Where `spear asr-server` listens unless told otherwise. */
export const DEFAULT_ASR_PORT = 8765;

/** rtasr_ctl commands (SPEAR's numbers; SPEAR's C SDK spells them SPEAR_RTA_CTL_*). */
export const RtasrCtl = {
  SET_PARAM: 1,
  CONNECT: 2,
  GET_STATUS: 3,
  SEND_EVENT: 4,
  FLUSH: 5,
  CLEAR: 6,
  SET_AUTOFLUSH: 7,
  GET_AUTOFLUSH: 8,
} as const;

/** The fd's states (reference §6.3); Connecting and Draining are real here. */
export type RtasrState = "Init" | "Configured" | "Connecting" | "Connected" | "Draining" | "Closed" | "Error";

export const RtasrTransport = s.literal("stub", "websocket", "local");
export type RtasrTransport = s.Infer<typeof RtasrTransport>;

const nullableNumber = s.nullable(s.number);

/** Segmentation as the driver applies it (parsed and defaulted by the worker, reference §6.6). */
export const Segmentation = s.object({
  strategy: s.literal("manual", "server_vad", "client_commit"),
  flush_on_close: s.boolean,
  vad: s.nullable(s.object({
    silence_ms: s.number,
    threshold: s.optional(nullableNumber),
    prefix_padding_ms: s.optional(nullableNumber),
  })),
  client_commit: s.nullable(s.object({
    flush_interval_ms: nullableNumber,
    max_buffer_bytes: nullableNumber,
    silence_ms: nullableNumber,
    min_flush_gap_ms: s.number,
  })),
});
export type Segmentation = s.Infer<typeof Segmentation>;

export const StubParams = s.object({
  interval_ms: s.number,
  payload_bytes: s.number,
  completed_every: s.number,
});
export type StubParams = s.Infer<typeof StubParams>;

export const RtasrConnectRequest = s.object({
  /** Host → guest server events (lossy stream the worker opened). */
  events: s.int,
  /** Guest → host audio (credit stream the worker opened). */
  audio: s.int,
  transport: RtasrTransport,
  backend: s.optional(s.string),
  model: s.optional(s.string),
  /** SPEAR's `ws_url` override (still checked against the network policy). */
  ws_url: s.optional(s.string),
  segmentation: Segmentation,
  stub: StubParams,
  /** WebSocket connect timeout (spearhost's `connect_timeout_ms` param; default 20 s). */
  connect_timeout_ms: s.optional(s.number),
});
export type RtasrConnectRequest = s.Infer<typeof RtasrConnectRequest>;

export const RtasrConnectResult = s.object({
  ok: s.boolean,
  error: s.optional(s.string),
  /** The backend chosen (name), its kind, and what the transport speaks. */
  backend: s.optional(s.nullable(s.string)),
  kind: s.optional(s.nullable(s.string)),
  protocol: s.optional(s.nullable(s.string)),
  model: s.optional(s.nullable(s.string)),
  /** The WebSocket URL (never carries a key). */
  url: s.optional(s.nullable(s.string)),
});
export type RtasrConnectResult = s.Infer<typeof RtasrConnectResult>;

export const rtasrConnect = method("rtasr.connect", RtasrConnectRequest, RtasrConnectResult);

/** Stream events host → guest (on the events stream). */
export type RtasrHostEvent =
  | { type: "connected"; dropped?: number }
  /** Recoverable: an `error` server event (the event itself is queued too). */
  | { type: "last_error"; message: string; dropped?: number }
  /**
   * The transport ended: EPOLLHUP, Draining while events remain, then Closed; with `error`
   * (connect failure, dropped socket, an abnormal close code) Error + EPOLLERR instead.
   */
  | { type: "closed"; code: number; reason: string; message?: string; error?: boolean; dropped?: number };

/** Stream events guest → host (on the audio stream, in order with the audio). */
export type RtasrGuestEvent =
  /** A raw client event (SEND_EVENT), or FLUSH's commit / CLEAR's clear. */
  | { type: "send"; text: string; kind?: "flush" | "clear" | "raw" }
  | { type: "segmentation"; segmentation: Segmentation };

/** Bytes of pcm16 mono at 24 kHz in 100 ms: the least audio a commit may carry. */
export const MIN_COMMIT_BYTES = 4800;
