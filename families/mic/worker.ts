/**
 * mic_*: microphone capture fds (SPEC.md §6, reference §7, seed 001).
 *
 * The fd, its frame queue and its readiness live here, in the guest's worker; the capture
 * itself (PortAudio device, host file, stub) runs in the host's mic driver on the main thread
 * (drivers/mic/), which sends each frame as a MIC_FRAME message. The queue is capped by
 * `max_queue_bytes` with `drop_policy` "drop_oldest" (default) or "drop_newest"; every drop
 * is counted in `dropped_frames`. Readiness: EPOLLIN while frames are queued, EPOLLERR while
 * `last_error` is set, EPOLLHUP once closed or once a file source reached its end.
 *
 * Every SET_PARAM stops the previous producer, clears the queue and `last_error`, bumps
 * `generation` and starts the new source through a blocking "mic.start" call to the driver;
 * frames and events carry their generation, and those of an older one are ignored.
 */
import { fail, MicCtl, Poll } from "../../runtime/abi.ts";
import { decodeJson, type Message } from "../../protocol/channel.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import { type GuestRuntime, GuestTerminated, GuestTrapped } from "../../runtime/guest.ts";
import { Op } from "../../protocol/wire.ts";
import { type Hostcall, i32call } from "../../runtime/hostcall.ts";
import { isJsonObject, type JsonObject, parseGuestJson } from "../../runtime/json.ts";

const encoder = new TextEncoder();

export type MicSource = "device" | "file" | "stub";
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

/** The output format a guest configured. */
export interface MicConfig {
  sample_rate_hz: number;
  channels: number;
  frame_ms: number;
  format: "pcm16";
}

/** Samples per channel in one frame: floor(rate * frame_ms / 1000), as SPEAR's integer math. */
export function micFrameSamples(c: MicConfig): number {
  return Math.floor((c.sample_rate_hz * c.frame_ms) / 1000);
}

/** Bytes of one frame: `sample_rate_hz * frame_ms / 1000 * channels * 2`. */
export function micFrameBytes(c: MicConfig): number {
  return micFrameSamples(c) * c.channels * 2;
}

/** Params of the "mic.start" call (guest → driver). */
export interface MicStartRequest {
  fd: number;
  generation: number;
  source: MicSource;
  config: MicConfig;
  /** `device.name`; null = the default input device. */
  device: string | null;
  fallback_to_stub: boolean;
  /** File source: start over at the end instead of raising EPOLLHUP. */
  loop: boolean;
}

/** Result of "mic.start". */
export type MicStartResult =
  | {
    ok: true;
    /** The source actually running (stub after a fallback). */
    source: MicSource;
    /** Device name, or the file's name (not its path). */
    device: string | null;
    fallback_reason: string | null;
    /** What the source delivers before conversion. */
    native: { sample_rate_hz: number; channels: number; format: string } | null;
  }
  | { ok: false; error: string };

/** One input device as LIST_DEVICES and `spear devices` report it. */
export interface MicDeviceInfo {
  name: string;
  index: number;
  max_input_channels: number;
  default_sample_rate: number;
  host_api: string;
  is_default: boolean;
}

/** MIC_EVENT payload (driver → guest). */
export interface MicEvent {
  generation: number;
  /** "eof": a file source ended (EPOLLHUP); "error": the capture failed (EPOLLERR). */
  type: "eof" | "error";
  error?: string;
}

/**
 * MIC_FRAME header, little-endian, then the PCM bytes:
 *   u32 generation, u32 seq (frame index in the generation), f64 captured_at (ms, absolute:
 *   performance.timeOrigin + performance.now()), u32 host_dropped (frames the driver dropped
 *   in this generation because the guest's channel was congested), u32 overflows (device
 *   overruns reported by PortAudio in this generation).
 */
export const MIC_FRAME_HEADER_BYTES = 24;

export interface MicFrameHeader {
  generation: number;
  seq: number;
  capturedAt: number;
  hostDropped: number;
  overflows: number;
}

export function writeMicFrameHeader(out: Uint8Array, h: MicFrameHeader): void {
  const v = new DataView(out.buffer, out.byteOffset, MIC_FRAME_HEADER_BYTES);
  v.setUint32(0, h.generation, true);
  v.setUint32(4, h.seq, true);
  v.setFloat64(8, h.capturedAt, true);
  v.setUint32(16, h.hostDropped, true);
  v.setUint32(20, h.overflows, true);
}

export function readMicFrameHeader(payload: Uint8Array): MicFrameHeader {
  const v = new DataView(payload.buffer, payload.byteOffset, MIC_FRAME_HEADER_BYTES);
  return {
    generation: v.getUint32(0, true),
    seq: v.getUint32(4, true),
    capturedAt: v.getFloat64(8, true),
    hostDropped: v.getUint32(16, true),
    overflows: v.getUint32(20, true),
  };
}

/** An absolute millisecond clock comparable across the host's threads. */
export function micClock(): number {
  return performance.timeOrigin + performance.now();
}

interface QueuedFrame {
  bytes: Uint8Array;
  capturedAt: number;
}

/** FIFO of frames with O(1) push/shift and a byte count. */
class FrameQueue {
  private items: (QueuedFrame | undefined)[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(f: QueuedFrame): void {
    this.items.push(f);
    this.bytes += f.bytes.length;
  }

  peek(): QueuedFrame | undefined {
    return this.items[this.head];
  }

  shift(): QueuedFrame | undefined {
    if (this.head >= this.items.length) return undefined;
    const f = this.items[this.head]!;
    this.items[this.head++] = undefined;
    this.bytes -= f.bytes.length;
    if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return f;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}

/** The last `size` latency samples, for p50/p99 in GET_METRICS. */
class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  count = 0;
  max = 0;

  constructor(size = 4096) {
    this.samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  summary(): { count: number; p50: number | null; p99: number | null; max: number | null } {
    const n = Math.min(this.count, this.samples.length);
    if (n === 0) return { count: 0, p50: null, p99: null, max: null };
    const sorted = this.samples.slice(0, n).sort();
    const at = (q: number) => Math.round(sorted[Math.min(n - 1, Math.floor(q * n))] * 1000) / 1000;
    return { count: this.count, p50: at(0.5), p99: at(0.99), max: Math.round(this.max * 1000) / 1000 };
  }
}

export interface MicState {
  generation: number;
  config: MicConfig | null;
  frameBytes: number;
  requestedSource: MicSource | null;
  /** The source running (stub after a fallback); null before the first start. */
  source: MicSource | null;
  device: string | null;
  fallbackReason: string | null;
  native: { sample_rate_hz: number; channels: number; format: string } | null;
  loop: boolean;
  dropPolicy: DropPolicy;
  maxQueueBytes: number;
  /** Length of the stub buffer last sent to the driver (kept across SET_PARAMs, as SPEAR). */
  stubBytes: number | null;
  ignoredFields: string[];
  queue: FrameQueue;
  running: boolean;
  lastError: string | null;
  eof: boolean;
  /** Frames delivered to this fd (all generations). */
  capturedFrames: number;
  /** Drops in this fd's queue (all generations). */
  queueDropped: number;
  /** Driver-side drops: finished generations plus the current one's latest report. */
  hostDroppedBefore: number;
  hostDropped: number;
  overflowsBefore: number;
  overflows: number;
  readFrames: number;
  readBytes: number;
  /** Capture → queued (EPOLLIN raised) and capture → mic_read, in ms. */
  deliverLatency: LatencyWindow;
  readLatency: LatencyWindow;
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
  stub: Uint8Array | null;
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

  let stub: Uint8Array | null = null;
  if (json.stub_pcm16_base64 !== undefined) {
    if (typeof json.stub_pcm16_base64 !== "string") {
      throw fail("EINVAL", "stub_pcm16_base64 must be a string");
    }
    stub = decodeStubBase64(json.stub_pcm16_base64);
  }

  return { config, source, device, fallbackToStub, loop, maxQueueBytes, dropPolicy, stub, ignoredFields };
}

function newMicState(): MicState {
  return {
    generation: 0,
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
    queue: new FrameQueue(),
    running: false,
    lastError: null,
    eof: false,
    capturedFrames: 0,
    queueDropped: 0,
    hostDroppedBefore: 0,
    hostDropped: 0,
    overflowsBefore: 0,
    overflows: 0,
    readFrames: 0,
    readBytes: 0,
    deliverLatency: new LatencyWindow(),
    readLatency: new LatencyWindow(),
  };
}

const droppedFrames = (s: MicState) => s.queueDropped + s.hostDroppedBefore + s.hostDropped;

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
    read_frames: s.readFrames,
    device_overflows: s.overflowsBefore + s.overflows,
    ignored_fields: s.ignoredFields,
  };
}

/** GET_METRICS (spear_fd_ctl): counters and latencies. */
export function micMetrics(s: MicState): Json {
  return {
    frames_captured: s.capturedFrames,
    frames_read: s.readFrames,
    bytes_read: s.readBytes,
    dropped_frames: droppedFrames(s),
    queue_dropped_frames: s.queueDropped,
    host_dropped_frames: s.hostDroppedBefore + s.hostDropped,
    device_overflows: s.overflowsBefore + s.overflows,
    queue_frames: s.queue.length,
    queue_bytes: s.queue.bytes,
    max_queue_bytes: s.maxQueueBytes,
    generation: s.generation,
    running: s.running,
    latency_ms: { deliver: s.deliverLatency.summary(), read: s.readLatency.summary() },
  };
}

export function micHostcalls(rt: GuestRuntime): Hostcall[] {
  const { fds, mem } = rt;

  const refresh = (entry: FdEntry<MicState>) => {
    const s = entry.state;
    fds.setMask(
      entry,
      (s.queue.length > 0 ? Poll.EPOLLIN : 0) | (s.lastError !== null ? Poll.EPOLLERR : 0) |
        (s.eof ? Poll.EPOLLHUP : 0),
    );
  };

  /** The open mic fd a driver message is for, or null when it is gone or from an old generation. */
  const current = (m: Message, generation: number): FdEntry<MicState> | null => {
    let entry;
    try {
      entry = fds.get(m.fd);
    } catch {
      return null;
    }
    if (entry.kind !== "Mic" || entry.closed) return null;
    const mic = entry as FdEntry<MicState>;
    return mic.state.generation === generation ? mic : null;
  };

  rt.on(Op.MIC_FRAME, (m) => {
    const h = readMicFrameHeader(m.payload);
    const entry = current(m, h.generation);
    if (!entry) return;
    const s = entry.state;
    const bytes = m.payload.subarray(MIC_FRAME_HEADER_BYTES);
    const now = micClock();
    s.hostDropped = Math.max(s.hostDropped, h.hostDropped);
    s.overflows = Math.max(s.overflows, h.overflows);
    s.capturedFrames++;
    if (s.dropPolicy === "drop_newest" && s.queue.bytes + bytes.length > s.maxQueueBytes) {
      s.queueDropped++;
    } else {
      s.queue.push({ bytes, capturedAt: h.capturedAt });
      s.deliverLatency.add(now - h.capturedAt);
      while (s.queue.bytes > s.maxQueueBytes && s.queue.length > 1) {
        s.queue.shift();
        s.queueDropped++;
      }
    }
    refresh(entry);
  });

  rt.on(Op.MIC_EVENT, (m) => {
    const event = decodeJson<MicEvent>(m.payload);
    const entry = current(m, event.generation);
    if (!entry) return;
    entry.state.running = false;
    if (event.type === "eof") entry.state.eof = true;
    else entry.state.lastError = event.error ?? "capture failed";
    refresh(entry);
  });

  /** Ends the fd's current generation: later frames and events of it are ignored. */
  const endGeneration = (s: MicState) => {
    s.generation = (s.generation + 1) >>> 0;
    s.running = false;
    s.hostDroppedBefore += s.hostDropped;
    s.hostDropped = 0;
    s.overflowsBefore += s.overflows;
    s.overflows = 0;
  };

  /** A blocking request to the driver; a timeout or a host-side error becomes EIO text. */
  const callDriver = (method: string, params: unknown): { value: unknown } | { error: string } => {
    let reply: unknown;
    try {
      reply = rt.call(method, params, MIC_START_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof GuestTerminated || e instanceof GuestTrapped) throw e;
      return { error: (e as Error).message };
    }
    if (isJsonObject(reply) && typeof reply.error === "string" && !("ok" in reply)) {
      return { error: reply.error };
    }
    return { value: reply };
  };

  const setParam = (entry: FdEntry<MicState>, bytes: Uint8Array): number => {
    const s = entry.state;
    const p = parseMicParams(bytes, s);
    // Stop the previous producer and start over (reference §7.2).
    endGeneration(s);
    s.queue.clear();
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
    refresh(entry);
    if (p.stub) {
      rt.send(Op.MIC_STUB_DATA, entry.fd, p.stub); // the channel carries any size
      s.stubBytes = p.stub.length;
    }
    const request: MicStartRequest = {
      fd: entry.fd,
      generation: s.generation,
      source: p.source,
      config: p.config,
      device: p.device,
      fallback_to_stub: p.fallbackToStub,
      loop: p.loop,
    };
    const reply = callDriver("mic.start", request);
    let result: MicStartResult;
    if ("error" in reply) {
      // Timed out (or no driver): make sure a late start does not run on.
      rt.sendJson(Op.MIC_STOP, entry.fd, { generation: request.generation, closed: false });
      result = { ok: false, error: reply.error };
    } else {
      result = reply.value as MicStartResult;
    }
    if (entry.closed || s.generation !== request.generation) return 0; // closed by a re-entered call
    if (!result.ok) {
      s.running = false;
      s.lastError = result.error;
      refresh(entry);
      throw fail("EIO", result.error);
    }
    s.running = !s.eof && s.lastError === null;
    s.source = result.source;
    s.device = result.device;
    s.fallbackReason = result.fallback_reason;
    s.native = result.native;
    return 0;
  };

  const listDevices = (): Uint8Array => {
    const reply = callDriver("mic.list_devices", null);
    if ("error" in reply) throw fail("EIO", reply.error);
    if (!Array.isArray(reply.value)) throw fail("EIO", "mic.list_devices: not an array");
    return encoder.encode(JSON.stringify(reply.value));
  };

  return [
    i32call("mic_create", 0, () =>
      fds.alloc<MicState>("Mic", newMicState(), {
        onClose: (e) => {
          const s = e.state;
          const generation = s.generation;
          endGeneration(s);
          s.queue.clear();
          rt.sendJson(Op.MIC_STOP, e.fd, { generation, closed: true });
        },
        metrics: (e) => micMetrics(e.state),
      }).fd),

    i32call("mic_ctl", 4, (fd, cmd, argPtr, lenPtr) => {
      const len = mem.u32(lenPtr); // always read, as SPEAR's glue
      const entry = fds.getOpen<MicState>(fd, "Mic");
      switch (cmd) {
        case MicCtl.SET_PARAM:
          return setParam(entry, mem.copy(argPtr, len));
        case MicCtl.GET_STATUS:
          rt.pump();
          return mem.writeOut(argPtr, lenPtr, encoder.encode(JSON.stringify(micStatus(entry.state))));
        case MicCtl.LIST_DEVICES: {
          const json = listDevices();
          return mem.writeOut(argPtr, lenPtr, json);
        }
        default:
          throw fail("EINVAL", `unknown mic ctl ${cmd}`);
      }
    }),

    i32call("mic_read", 3, (fd, outPtr, lenPtr) => {
      const entry = fds.getOpen<MicState>(fd, "Mic");
      mem.u32(lenPtr);
      rt.pump();
      const s = entry.state;
      const frame = s.queue.peek();
      if (!frame) throw fail("EAGAIN");
      // Write first, dequeue after: -ENOSPC leaves the frame queued (SPEC.md §2).
      const n = mem.writeOut(outPtr, lenPtr, frame.bytes);
      s.queue.shift();
      s.readFrames++;
      s.readBytes += n;
      s.readLatency.add(micClock() - frame.capturedAt);
      refresh(entry);
      return n;
    }),

    i32call("mic_close", 1, (fd) => {
      fds.close(fd);
      return 0;
    }),
  ];
}
