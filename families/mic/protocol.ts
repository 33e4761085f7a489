/**
 * What crosses the boundary for a microphone: `mic.start` opens a capture whose frames come
 * back on a lossy stream (the stream id is the capture's identity: a new SET_PARAM opens a new
 * stream, so frames of an older capture can never reach the new queue), and `mic.list_devices`.
 * Closing the fd closes the stream, which stops the capture. Stream events: `eof` (a file
 * ended), `error` (the capture failed), `overflows` (device overruns so far).
 */
import * as s from "../../protocol/schema.ts";
import { method } from "../../protocol/rpc.ts";

export const MicCtl = { SET_PARAM: 1, GET_STATUS: 2, LIST_DEVICES: 3 } as const;

export const MicSource = s.literal("device", "file", "stub");
export type MicSource = s.Infer<typeof MicSource>;

/** The output format a guest configured. */
export const MicConfig = s.object({
  sample_rate_hz: s.int,
  channels: s.int,
  frame_ms: s.int,
  format: s.literal("pcm16"),
});
export type MicConfig = s.Infer<typeof MicConfig>;

/** Samples per channel in one frame: floor(rate * frame_ms / 1000), as SPEAR's integer math. */
export function micFrameSamples(c: MicConfig): number {
  return Math.floor((c.sample_rate_hz * c.frame_ms) / 1000);
}

/** Bytes of one frame: `sample_rate_hz * frame_ms / 1000 * channels * 2`. */
export function micFrameBytes(c: MicConfig): number {
  return micFrameSamples(c) * c.channels * 2;
}

export const MicStartRequest = s.object({
  /** The stream the frames go to (opened by the worker). */
  stream: s.int,
  source: MicSource,
  config: MicConfig,
  /** `device.name`; null = the default input device. */
  device: s.nullable(s.string),
  fallback_to_stub: s.boolean,
  /** File source: start over at the end instead of raising EPOLLHUP. */
  loop: s.boolean,
  /** A new stub buffer (`stub_pcm16_base64`); absent keeps the fd's previous one, as SPEAR. */
  stub_base64: s.optional(s.string),
});
export type MicStartRequest = s.Infer<typeof MicStartRequest>;

const NativeFormat = s.object({ sample_rate_hz: s.number, channels: s.int, format: s.string });

export const MicStartResult = s.object({
  ok: s.boolean,
  /** The source actually running (stub after a fallback). */
  source: s.optional(MicSource),
  /** Device name, or the file's name (not its path). */
  device: s.optional(s.nullable(s.string)),
  fallback_reason: s.optional(s.nullable(s.string)),
  /** What the source delivers before conversion. */
  native: s.optional(s.nullable(NativeFormat)),
  error: s.optional(s.string),
});
export type MicStartResult = s.Infer<typeof MicStartResult>;

/**
 * One input device as LIST_DEVICES and `spear devices` report it. Spelled out because it is
 * reachable from mod.ts (JSR's no-slow-types); the schema below must produce it.
 */
export interface MicDeviceInfo {
  name: string;
  index: number;
  max_input_channels: number;
  default_sample_rate: number;
  host_api: string;
  is_default: boolean;
}
export const MicDeviceInfo: s.Schema<MicDeviceInfo> = s.object({
  name: s.string,
  index: s.int,
  max_input_channels: s.int,
  default_sample_rate: s.number,
  host_api: s.string,
  is_default: s.boolean,
});

export const micStart = method("mic.start", MicStartRequest, MicStartResult);
export const micListDevices = method("mic.list_devices", s.nullable(s.json), s.array(MicDeviceInfo));

/** Stream events of a capture (`dropped`: frames the stream dropped so far). */
export const MicEvent = s.tagged("type", {
  eof: s.object({ type: s.literal("eof"), dropped: s.int }),
  error: s.object({ type: s.literal("error"), error: s.string, dropped: s.int }),
  overflows: s.object({ type: s.literal("overflows"), total: s.int, dropped: s.int }),
});
export type MicEvent =
  | { type: "eof"; dropped: number }
  | { type: "error"; error: string; dropped: number }
  | { type: "overflows"; total: number; dropped: number };
