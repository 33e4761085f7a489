/**
 * mic_*: the worker part of microphone capture fds (SPEC.md §6, reference §7, seed 001).
 *
 * The fd is a queued-stream fd (runtime/queue_fd.ts): frames from the driver's capture arrive
 * on a lossy stream (families/mic/protocol.ts) and wait in a queue capped by
 * `max_queue_bytes` with `drop_policy` "drop_oldest" (default) or "drop_newest". Every drop —
 * in this queue, or by the stream when the guest stopped draining its channel — is counted in
 * `dropped_frames`. Readiness: EPOLLIN while frames are queued, EPOLLERR while `last_error` is
 * set, EPOLLHUP once closed or once a file source reached its end.
 *
 * Every SET_PARAM closes the previous capture's stream (which stops it), clears the queue and
 * `last_error`, bumps `generation`, and starts the new source on a new stream with a blocking
 * `mic.start` request. The wait does not re-enter the guest: no tool call runs inside mic_ctl.
 */
import { fail, Poll } from "../../runtime/abi.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { isJsonObject, type JsonObject, parseGuestJson } from "../../runtime/json.ts";
import { QueuedStream } from "../../runtime/queue_fd.ts";
import { LatencyWindow } from "../../protocol/latency.ts";
import { streamClock } from "../../protocol/stream.ts";
import type { HostcallFn } from "../family.ts";
import {
  type MicConfig,
  MicCtl,
  MicEvent,
  micFrameBytes,
  micListDevices,
  type MicSource,
  micStart,
  type MicStartResult,
} from "./protocol.ts";

const encoder = new TextEncoder();

export type DropPolicy = "drop_oldest" | "drop_newest";

/** SPEAR's defaults (reference §7.2). */
export const MIC_DEFAULTS = {
  sample_rate_hz: 24000,
  channels: 1,
  frame_ms: 20,
  format: "pcm16",
  source: "device" as MicSource,
  max_queue_bytes: 512 * 1024,
  drop_policy: "drop_oldest" as DropPolicy,
  fallback_to_stub: true,
};

/** Validation limits of SET_PARAM. */
export const MIC_LIMITS = {
  sample_rate_hz: [8000, 192000],
  channels: [1, 8],
  frame_ms: [1, 1000],
  max_queue_bytes: 256 << 20,
  /** Decoded `stub_pcm16_base64` (SPEAR's limit). */
  stub_bytes: 10 << 20,
} as const;

/** How long SET_PARAM waits for the driver to open the source (SPEAR allows 15 s for init). */
export const MIC_START_TIMEOUT_MS = 20000;

export interface MicState {
  generation: number;
  /** The current capture's stream (0 when none). */
  stream: number;
  config: MicConfig | null;
  frameBytes: number;
  requestedSource: MicSource | null;
  /** The source running (stub after a fallback); null before the first start. */
  source: MicSource | null;
  device: string | null;
  fallbackReason: string | null;
  native: MicStartResult["native"] | null;
  loop: boolean;
  dropPolicy: DropPolicy;
  maxQueueBytes: number;
  /** Length of the stub buffer last given (kept across SET_PARAMs, as SPEAR). */
  stubBytes: number | null;
  ignoredFields: string[];
  queue: QueuedStream;
  running: boolean;
  lastError: string | null;
  eof: boolean;
  /** Frames delivered to this fd (all generations). */
  capturedFrames: number;
  /** Stream-side drops: finished captures plus the current one's latest report. */
  hostDroppedBefore: number;
  hostDropped: number;
  overflowsBefore: number;
  overflows: number;
  /** Capture → queued (EPOLLIN raised), in ms. */
  deliverLatency: LatencyWindow;
}

type Json = JsonObject;

function intField(json: Json, key: string, [min, max]: readonly [number, number], fallback: number): number {
  const v = json[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw fail("EINVAL", `${key} must be an integer from ${min} to ${max}`);
  }
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard padded base64 (as SPEAR's decoder); EINVAL when invalid or over the size limit. */
export function decodeStubBase64(text: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64.test(text)) {
    throw fail("EINVAL", "stub_pcm16_base64 is not valid base64");
  }
  const decoded = (text.length / 4) * 3 - (text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0);
  if (decoded > MIC_LIMITS.stub_bytes) {
    throw fail("EINVAL", `stub_pcm16_base64 decodes to ${decoded} bytes, over ${MIC_LIMITS.stub_bytes}`);
  }
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    throw fail("EINVAL", "stub_pcm16_base64 is not valid base64");
  }
}

const KNOWN_FIELDS = new Set([
  "sample_rate_hz",
  "channels",
  "frame_ms",
  "format",
  "source",
  "device",
  "max_queue_bytes",
  "drop_policy",
  "fallback",
  "stub_pcm16_base64",
  "loop",
]);

export interface MicParams {
  config: MicConfig;
  source: MicSource;
  device: string | null;
  fallbackToStub: boolean;
  loop: boolean;
  maxQueueBytes: number;
  dropPolicy: DropPolicy;
  /** The new stub buffer as the guest gave it (validated), or null to keep the previous one. */
  stubBase64: string | null;
  stubBytes: number;
  ignoredFields: string[];
}

/**
 * Parses and validates SET_PARAM's flat JSON object. Absent fields take SPEAR's defaults,
 * except `max_queue_bytes` and `drop_policy`, which keep the fd's current queue settings.
 * Unknown fields are ignored (as SPEAR) and reported in GET_STATUS `ignored_fields`.
 */
export function parseMicParams(
  bytes: Uint8Array,
  current: { maxQueueBytes: number; dropPolicy: DropPolicy },
): MicParams {
  const json = parseGuestJson(bytes, "SET_PARAM");
  if (!isJsonObject(json)) throw fail("EINVAL", "SET_PARAM: expected a JSON object");
  const ignoredFields = Object.keys(json).filter((k) => !KNOWN_FIELDS.has(k));

  const config: MicConfig = {
    sample_rate_hz: intField(json, "sample_rate_hz", MIC_LIMITS.sample_rate_hz, MIC_DEFAULTS.sample_rate_hz),
    channels: intField(json, "channels", MIC_LIMITS.channels, MIC_DEFAULTS.channels),
    frame_ms: intField(json, "frame_ms", MIC_LIMITS.frame_ms, MIC_DEFAULTS.frame_ms),
    format: "pcm16",
  };
  if (json.format !== undefined && json.format !== "pcm16") throw fail("EINVAL", 'format must be "pcm16"');

  const source = json.source ?? MIC_DEFAULTS.source;
  if (source !== "device" && source !== "file" && source !== "stub") {
    throw fail("EINVAL", 'source must be "device", "file" or "stub"');
  }

  let device: string | null = null;
  if (json.device !== undefined && json.device !== null) {
    if (!isJsonObject(json.device)) throw fail("EINVAL", 'device must be an object {"name": …}');
    const name = json.device.name;
    if (name !== undefined && name !== null && (typeof name !== "string" || name === "")) {
      throw fail("EINVAL", "device.name must be a non-empty string");
    }
    device = (name as string | null | undefined) ?? null;
    for (const k of Object.keys(json.device)) if (k !== "name") ignoredFields.push(`device.${k}`);
  }

  let fallbackToStub = MIC_DEFAULTS.fallback_to_stub;
  if (json.fallback !== undefined && json.fallback !== null) {
    if (!isJsonObject(json.fallback)) throw fail("EINVAL", 'fallback must be an object {"to_stub": bool}');
    const toStub = json.fallback.to_stub;
    if (toStub !== undefined && typeof toStub !== "boolean") {
      throw fail("EINVAL", "fallback.to_stub must be a boolean");
    }
    fallbackToStub = toStub ?? fallbackToStub;
    for (const k of Object.keys(json.fallback)) if (k !== "to_stub") ignoredFields.push(`fallback.${k}`);
  }

  const loop = json.loop ?? false;
  if (typeof loop !== "boolean") throw fail("EINVAL", "loop must be a boolean");

  const dropPolicy = json.drop_policy ?? current.dropPolicy;
  if (dropPolicy !== "drop_oldest" && dropPolicy !== "drop_newest") {
    throw fail("EINVAL", 'drop_policy must be "drop_oldest" or "drop_newest"');
  }

  const frameBytes = micFrameBytes(config);
  const maxQueueBytes = intField(
    json,
    "max_queue_bytes",
    [1, MIC_LIMITS.max_queue_bytes],
    current.maxQueueBytes,
  );
  if (maxQueueBytes < frameBytes) {
    throw fail("EINVAL", `max_queue_bytes ${maxQueueBytes} is smaller than one frame (${frameBytes} bytes)`);
  }

  let stubBase64: string | null = null;
  let stubBytes = 0;
  if (json.stub_pcm16_base64 !== undefined) {
    if (typeof json.stub_pcm16_base64 !== "string") {
      throw fail("EINVAL", "stub_pcm16_base64 must be a string");
    }
    stubBytes = decodeStubBase64(json.stub_pcm16_base64).length;
    stubBase64 = json.stub_pcm16_base64;
  }

  return {
    config,
    source,
    device,
    fallbackToStub,
    loop,
    maxQueueBytes,
    dropPolicy,
    stubBase64,
    stubBytes,
    ignoredFields,
  };
}

function newMicState(queue: QueuedStream): MicState {
  return {
    generation: 0,
    stream: 0,
    config: null,
    frameBytes: 0,
    requestedSource: null,
    source: null,
    device: null,
    fallbackReason: null,
    native: null,
    loop: false,
    dropPolicy: MIC_DEFAULTS.drop_policy,
    maxQueueBytes: MIC_DEFAULTS.max_queue_bytes,
    stubBytes: null,
    ignoredFields: [],
    queue,
    running: false,
    lastError: null,
    eof: false,
    capturedFrames: 0,
    hostDroppedBefore: 0,
    hostDropped: 0,
    overflowsBefore: 0,
    overflows: 0,
    deliverLatency: new LatencyWindow(),
  };
}

const droppedFrames = (s: MicState) => s.queue.dropped + s.hostDroppedBefore + s.hostDropped;

/** GET_STATUS: SPEAR's fields (reference §7.4) first, then spearhost's. */
export function micStatus(s: MicState): Json {
  return {
    running: s.running,
    last_error: s.lastError,
    queue_bytes: s.queue.bytes,
    max_queue_bytes: s.maxQueueBytes,
    dropped_frames: droppedFrames(s),
    generation: s.generation,
    config: s.config && { ...s.config },
    source: s.source,
    requested_source: s.requestedSource,
    device: s.device,
    fallback: s.fallbackReason !== null,
    fallback_reason: s.fallbackReason,
    native: s.native,
    drop_policy: s.dropPolicy,
    loop: s.loop,
    eof: s.eof,
    frame_bytes: s.frameBytes,
    queue_frames: s.queue.length,
    captured_frames: s.capturedFrames,
    read_frames: s.queue.readItems,
    device_overflows: s.overflowsBefore + s.overflows,
    ignored_fields: s.ignoredFields,
  };
}

/** GET_METRICS (spear_fd_ctl): counters and latencies. */
export function micMetrics(s: MicState): Json {
  return {
    frames_captured: s.capturedFrames,
    frames_read: s.queue.readItems,
    bytes_read: s.queue.readBytes,
    dropped_frames: droppedFrames(s),
    queue_dropped_frames: s.queue.dropped,
    host_dropped_frames: s.hostDroppedBefore + s.hostDropped,
    device_overflows: s.overflowsBefore + s.overflows,
    queue_frames: s.queue.length,
    queue_bytes: s.queue.bytes,
    max_queue_bytes: s.maxQueueBytes,
    generation: s.generation,
    running: s.running,
    latency_ms: { deliver: s.deliverLatency.summary(), read: s.queue.readLatency.summary() },
  };
}

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;

  const refresh = (entry: FdEntry<MicState>) => {
    const s = entry.state;
    fds.setMask(
      entry,
      s.queue.readiness | (s.lastError !== null ? Poll.EPOLLERR : 0) | (s.eof ? Poll.EPOLLHUP : 0),
    );
  };

  /** Ends the fd's current capture: its stream closes (the driver stops) and later frames are ignored. */
  const endCapture = (s: MicState) => {
    if (s.stream) rt.closeStream(s.stream);
    s.stream = 0;
    s.running = false;
    s.hostDroppedBefore += s.hostDropped;
    s.hostDropped = 0;
    s.overflowsBefore += s.overflows;
    s.overflows = 0;
  };

  /** The receiver of one capture's stream. */
  const receiver = (entry: FdEntry<MicState>) => ({
    data(frame: { dropped: number; at: number; bytes: Uint8Array }) {
      const s = entry.state;
      s.hostDropped = Math.max(s.hostDropped, frame.dropped);
      s.capturedFrames++;
      if (s.queue.push({ bytes: frame.bytes, at: frame.at }) === "queued") {
        s.deliverLatency.add(streamClock() - frame.at);
      }
      refresh(entry);
    },
    event(value: Record<string, unknown>) {
      const s = entry.state;
      const event = MicEvent.check(value, "mic event") as MicEvent;
      s.hostDropped = Math.max(s.hostDropped, event.dropped);
      if (event.type === "overflows") s.overflows = event.total;
      else {
        s.running = false;
        if (event.type === "eof") s.eof = true;
        else s.lastError = event.error ?? "capture failed";
      }
      refresh(entry);
    },
  });

  const setParam = (entry: FdEntry<MicState>, bytes: Uint8Array): number => {
    const s = entry.state;
    const p = parseMicParams(bytes, s);
    s.queue.resize(p.maxQueueBytes); // ENOMEM here leaves the running capture untouched
    // Stop the previous producer and start over (reference §7.2).
    endCapture(s);
    s.generation = (s.generation + 1) >>> 0;
    s.queue.clear();
    s.queue.policy = p.dropPolicy;
    s.lastError = null;
    s.eof = false;
    s.config = p.config;
    s.frameBytes = micFrameBytes(p.config);
    s.requestedSource = p.source;
    s.source = null;
    s.device = null;
    s.fallbackReason = null;
    s.native = null;
    s.loop = p.loop;
    s.dropPolicy = p.dropPolicy;
    s.maxQueueBytes = p.maxQueueBytes;
    s.ignoredFields = p.ignoredFields;
    if (p.stubBase64 !== null) s.stubBytes = p.stubBytes;
    s.stream = rt.openStream(receiver(entry));
    refresh(entry);
    const outcome = rt.call(micStart, {
      stream: s.stream,
      source: p.source,
      config: p.config,
      device: p.device,
      fallback_to_stub: p.fallbackToStub,
      loop: p.loop,
      ...(p.stubBase64 !== null ? { stub_base64: p.stubBase64 } : {}),
    }, { fd: entry.fd, timeoutMs: MIC_START_TIMEOUT_MS });
    const result: MicStartResult = outcome.ok ? outcome.value : { ok: false, error: outcome.error };
    if (!result.ok) {
      endCapture(s);
      s.lastError = result.error ?? "capture failed";
      refresh(entry);
      throw fail("EIO", s.lastError);
    }
    s.running = !s.eof && s.lastError === null;
    s.source = result.source ?? null;
    s.device = result.device ?? null;
    s.fallbackReason = result.fallback_reason ?? null;
    s.native = result.native ?? null;
    return 0;
  };

  const listDevices = (): Uint8Array => {
    const outcome = rt.call(micListDevices, null, { timeoutMs: MIC_START_TIMEOUT_MS });
    if (!outcome.ok) throw fail("EIO", outcome.error);
    return encoder.encode(JSON.stringify(outcome.value));
  };

  const newQueue = () =>
    new QueuedStream({
      capacity: MIC_DEFAULTS.max_queue_bytes,
      policy: MIC_DEFAULTS.drop_policy,
      budget: rt.budget,
      clock: streamClock,
    });

  return {
    // The queue reserves its cap in the host budget, once the fd slot is secured.
    mic_create: () =>
      fds.allocWith<MicState>("Mic", () => newMicState(newQueue()), {
        onClose: (e) => {
          endCapture(e.state);
          e.state.queue.dispose();
        },
        metrics: (e) => micMetrics(e.state),
      }).fd,

    mic_ctl: (fd: number, cmd: number, argPtr: number, lenPtr: number) => {
      const len = mem.u32(lenPtr); // always read, as SPEAR's glue
      const entry = fds.getOpen<MicState>(fd, "Mic");
      switch (cmd) {
        case MicCtl.SET_PARAM:
          return setParam(entry, mem.copy(argPtr, len));
        case MicCtl.GET_STATUS:
          rt.pump();
          return mem.writeOut(argPtr, lenPtr, encoder.encode(JSON.stringify(micStatus(entry.state))));
        case MicCtl.LIST_DEVICES:
          return mem.writeOut(argPtr, lenPtr, listDevices());
        default:
          throw fail("EINVAL", `unknown mic ctl ${cmd}`);
      }
    },

    mic_read: (fd: number, outPtr: number, lenPtr: number) => {
      fds.getOpen<MicState>(fd, "Mic");
      mem.u32(lenPtr);
      rt.poll(); // a polling point: frames arrive, tool calls run
      const entry = fds.getOpen<MicState>(fd, "Mic");
      // Write first, dequeue after: -ENOSPC leaves the frame queued (SPEC.md §2).
      const n = entry.state.queue.readInto(mem, outPtr, lenPtr);
      refresh(entry);
      return n;
    },

    mic_close: (fd: number) => {
      fds.close(fd);
      return 0;
    },
  };
}
