/**
 * rtasr_*: the worker part of realtime ASR fds (SPEC.md §5, reference §6, seed 002).
 *
 * State machine: Init → Configured (first SET_PARAM) → Connecting (CONNECT: the driver has
 * resolved the backend and started the transport) → Connected (the transport is up) →
 * Draining (the peer closed; events are still queued) → Closed (drained). Any transport
 * failure → Error with `last_error` and EPOLLERR. A backend that cannot be resolved fails
 * CONNECT (-EIO, Error): never a silent stub.
 *
 * Send queue: what the guest wrote and the transport has not yet sent. Before CONNECT it is
 * held here; after, it is the audio stream's credit window (protocol.ts): `rtasr_write` that
 * would pass `max_send_queue_bytes` is -EAGAIN, EPOLLOUT returns when the driver reports bytes
 * gone. Receive queue: a queued-stream fd (runtime/queue_fd.ts) capped by
 * `max_recv_queue_bytes`, drop_oldest, every drop counted in `dropped_events` (with those of the
 * lossy stream); a -ENOSPC read keeps the event.
 */
import { fail, Poll } from "../../runtime/abi.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { isJsonObject, type JsonObject, parseGuestJson } from "../../runtime/json.ts";
import { QueuedStream } from "../../runtime/queue_fd.ts";
import { LatencyWindow } from "../../protocol/latency.ts";
import { streamClock, type StreamSender } from "../../protocol/stream.ts";
import type { HostcallFn } from "../family.ts";
import {
  rtasrConnect,
  RtasrCtl,
  type RtasrGuestEvent,
  type RtasrHostEvent,
  type RtasrState,
  type RtasrTransport,
  type Segmentation,
} from "./protocol.ts";
import { DEFAULT_SEGMENTATION, parseSegmentation, segmentationJson } from "./segmentation.ts";
import { utf8Length } from "../../protocol/bytes.ts";

const encoder = new TextEncoder();

/** SPEAR's defaults (reference §6.2) and spearhost's bounds. */
export const RTASR_DEFAULTS = {
  transport: "stub" as RtasrTransport,
  max_send_queue_bytes: 1 << 20,
  max_recv_queue_bytes: 1 << 20,
  stub_event_interval_ms: 100,
  stub_event_payload_bytes: 256,
  stub_emit_completed_every: 20,
};
/** Largest queue a guest may ask for (each is charged to its host budget). */
export const MAX_QUEUE_BYTES = 64 << 20;
/** How long CONNECT waits for the driver to resolve the backend (not for the socket). */
export const CONNECT_REQUEST_TIMEOUT_MS = 10000;
const PARAM_OVERHEAD_BYTES = 64;
const MAX_PARAM_BYTES = 64 << 10;

type PreItem = { audio: Uint8Array } | { event: RtasrGuestEvent; size: number };

export interface RtasrFdState {
  state: RtasrState;
  lastError: string | null;
  params: Map<string, unknown>;
  paramBytes: Map<string, number>;
  transport: RtasrTransport;
  maxSend: number;
  maxRecv: number;
  segmentation: Segmentation;
  /** Written before CONNECT (or beyond the window), in order. */
  pre: PreItem[];
  preBytes: number;
  audio: StreamSender | null;
  window: number;
  eventsStream: number;
  queue: QueuedStream;
  streamDropped: number;
  /** The peer closed the transport. */
  hup: boolean;
  closeCode: number | null;
  closeReason: string | null;
  info: {
    backend: string | null;
    kind: string | null;
    protocol: string | null;
    model: string | null;
    url: string | null;
  };
  counters: {
    writes: number;
    bytesWritten: number;
    eagain: number;
    events: number;
    flushes: number;
    clears: number;
    sendEvents: number;
  };
  connectStartedAt: number | null;
  connectMs: number | null;
  /** Event produced on the host → queued (EPOLLIN). */
  deliverLatency: LatencyWindow;
  /** Host budget held for the send window. */
  heldSend: number;
}

/** Bytes the transport has not yet sent (SPEAR's send_queue_bytes). */
export function sendQueueBytes(s: RtasrFdState): number {
  return s.preBytes + (s.audio ? s.window - s.audio.available : 0);
}

export function droppedEvents(s: RtasrFdState): number {
  return s.queue.dropped + s.streamDropped;
}

/** GET_STATUS: SPEAR's fields first (reference §6.3), then spearhost's. */
export function rtasrStatus(s: RtasrFdState): JsonObject {
  return {
    state: s.state,
    last_error: s.lastError,
    send_queue_bytes: sendQueueBytes(s),
    recv_queue_bytes: s.queue.bytes,
    max_send_queue_bytes: s.maxSend,
    max_recv_queue_bytes: s.maxRecv,
    dropped_events: droppedEvents(s),
    transport: s.transport,
    backend: s.info.backend,
    backend_kind: s.info.kind,
    protocol: s.info.protocol,
    model: s.info.model,
    url: s.info.url,
    recv_queue_events: s.queue.length,
    close_code: s.closeCode,
    close_reason: s.closeReason,
    connect_ms: s.connectMs,
  };
}

/** GET_METRICS (spear_fd_ctl). */
export function rtasrMetrics(s: RtasrFdState): JsonObject {
  return {
    state: s.state,
    writes: s.counters.writes,
    bytes_written: s.counters.bytesWritten,
    writes_eagain: s.counters.eagain,
    audio_bytes_sent: s.audio ? s.audio.sentBytes : 0,
    events_received: s.counters.events,
    events_read: s.queue.readItems,
    bytes_read: s.queue.readBytes,
    dropped_events: droppedEvents(s),
    queue_dropped_events: s.queue.dropped,
    host_dropped_events: s.streamDropped,
    flushes: s.counters.flushes,
    clears: s.counters.clears,
    send_events: s.counters.sendEvents,
    send_queue_bytes: sendQueueBytes(s),
    recv_queue_bytes: s.queue.bytes,
    connect_ms: s.connectMs,
    latency_ms: { deliver: s.deliverLatency.summary(), read: s.queue.readLatency.summary() },
  };
}

function queueLimit(key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_QUEUE_BYTES) {
    throw fail("EINVAL", `${key} must be an integer from 1 to ${MAX_QUEUE_BYTES}`);
  }
  return value;
}

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;

  const refresh = (entry: FdEntry<RtasrFdState>) => {
    const s = entry.state;
    let mask = s.queue.readiness;
    const writable = s.state !== "Draining" && s.state !== "Closed" && s.state !== "Error";
    if (writable && sendQueueBytes(s) < s.maxSend) mask |= Poll.EPOLLOUT;
    if (s.state === "Error") mask |= Poll.EPOLLERR;
    if (s.hup) mask |= Poll.EPOLLHUP;
    fds.setMask(entry, mask);
  };

  /** Moves held items into the stream while the window has room, in order. */
  const drainPre = (s: RtasrFdState) => {
    if (!s.audio) return;
    while (s.pre.length > 0) {
      const item = s.pre[0];
      if ("audio" in item) {
        if (item.audio.length > s.audio.available) return;
        s.audio.send(item.audio);
        s.preBytes -= item.audio.length;
      } else {
        s.audio.event(item.event);
        s.preBytes -= item.size;
      }
      s.pre.shift();
    }
  };

  /** Queues a control event: in order after what was written, -EAGAIN past the send queue's cap. */
  const sendControl = (entry: FdEntry<RtasrFdState>, event: RtasrGuestEvent, size: number) => {
    const s = entry.state;
    if (s.state === "Error") throw fail("EIO", s.lastError ?? "rtasr is in the Error state");
    if (s.state === "Draining" || s.state === "Closed") throw fail("EPIPE", "the transport has closed");
    rt.pump();
    if (sendQueueBytes(s) + size > s.maxSend) throw fail("EAGAIN", "send queue full");
    if (s.audio && s.pre.length === 0) s.audio.event(event);
    else {
      s.pre.push({ event, size });
      s.preBytes += size;
    }
    refresh(entry);
  };

  const receiver = (entry: FdEntry<RtasrFdState>) => ({
    data(frame: { dropped: number; at: number; bytes: Uint8Array }) {
      const s = entry.state;
      s.streamDropped = Math.max(s.streamDropped, frame.dropped);
      s.counters.events++;
      if (s.queue.push({ bytes: frame.bytes, at: frame.at }) === "queued") {
        s.deliverLatency.add(streamClock() - frame.at);
      }
      refresh(entry);
    },
    event(value: Record<string, unknown>) {
      const s = entry.state;
      const ev = value as RtasrHostEvent;
      s.streamDropped = Math.max(s.streamDropped, ev.dropped ?? 0);
      switch (ev.type) {
        case "connected":
          if (s.state === "Connecting") {
            s.state = "Connected";
            if (s.connectStartedAt !== null) s.connectMs = Math.round(streamClock() - s.connectStartedAt);
          }
          break;
        case "last_error":
          s.lastError = ev.message;
          break;
        case "closed":
          s.hup = true;
          s.closeCode = ev.code;
          s.closeReason = ev.reason;
          if (ev.message) s.lastError = ev.message;
          if (ev.error) s.state = "Error";
          else if (s.state !== "Error") s.state = s.queue.length > 0 ? "Draining" : "Closed";
          break;
      }
      refresh(entry);
    },
  });

  const setParam = (entry: FdEntry<RtasrFdState>, bytes: Uint8Array): number => {
    const s = entry.state;
    const json = parseGuestJson(bytes, "SET_PARAM");
    if (!isJsonObject(json) || typeof json.key !== "string" || json.key === "") {
      throw fail("EINVAL", 'SET_PARAM: expected {"key": non-empty string, "value": …}');
    }
    const { key, value } = json as { key: string; value: unknown };
    if (bytes.length > MAX_PARAM_BYTES) throw fail("EINVAL", `SET_PARAM: over ${MAX_PARAM_BYTES} bytes`);
    switch (key) {
      case "transport":
        if (value !== "stub" && value !== "websocket" && value !== "local") {
          throw fail("EINVAL", 'transport must be "stub", "websocket" or "local"');
        }
        s.transport = value;
        break;
      case "backend":
      case "model":
      case "ws_url":
      case "client_secret":
        if (typeof value !== "string") throw fail("EINVAL", `${key} must be a string`);
        break;
      case "max_send_queue_bytes": {
        const n = queueLimit(key, value);
        if (n > s.heldSend) rt.charge(n - s.heldSend, "rtasr max_send_queue_bytes");
        else rt.budget.release(s.heldSend - n);
        s.heldSend = n;
        s.maxSend = n;
        break;
      }
      case "max_recv_queue_bytes":
        s.queue.resize(queueLimit(key, value));
        s.maxRecv = s.queue.capacity;
        break;
      case "connect_timeout_ms":
      case "stub_event_interval_ms":
      case "stub_event_payload_bytes":
      case "stub_emit_completed_every":
        if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
          throw fail("EINVAL", `${key} must be a non-negative number`);
        }
        break;
    }
    const size = bytes.length + PARAM_OVERHEAD_BYTES;
    rt.charge(size, "rtasr_ctl SET_PARAM");
    rt.budget.release(s.paramBytes.get(key) ?? 0);
    s.paramBytes.set(key, size);
    s.params.set(key, value);
    if (s.state === "Init") s.state = "Configured";
    refresh(entry);
    return 0;
  };

  const numParam = (s: RtasrFdState, key: keyof typeof RTASR_DEFAULTS): number => {
    const v = s.params.get(key);
    return typeof v === "number" ? v : RTASR_DEFAULTS[key] as number;
  };
  const strParam = (s: RtasrFdState, key: string): string | undefined => {
    const v = s.params.get(key);
    return typeof v === "string" && v !== "" ? v : undefined;
  };

  const connect = (entry: FdEntry<RtasrFdState>): number => {
    const s = entry.state;
    if (s.state === "Error") throw fail("EIO", s.lastError ?? "rtasr is in the Error state");
    if (s.state !== "Init" && s.state !== "Configured") return 0; // SPEAR: later CONNECTs do nothing
    s.eventsStream = rt.openStream(receiver(entry));
    s.audio = rt.openOutbound(s.maxSend);
    s.window = s.maxSend;
    const audio = s.audio;
    const onCredit = () => {
      drainPre(s);
      refresh(entry);
      audio.whenWritable(onCredit);
    };
    audio.whenWritable(onCredit);
    s.state = "Connecting";
    s.connectStartedAt = streamClock();
    refresh(entry);
    const backend = strParam(s, "backend");
    const model = strParam(s, "model");
    const wsUrl = strParam(s, "ws_url");
    const outcome = rt.call(rtasrConnect, {
      events: s.eventsStream,
      audio: audio.id,
      transport: s.transport,
      ...(backend ? { backend } : {}),
      ...(model ? { model } : {}),
      ...(wsUrl ? { ws_url: wsUrl } : {}),
      ...(typeof s.params.get("connect_timeout_ms") === "number"
        ? { connect_timeout_ms: s.params.get("connect_timeout_ms") as number }
        : {}),
      segmentation: s.segmentation,
      stub: {
        interval_ms: numParam(s, "stub_event_interval_ms"),
        payload_bytes: numParam(s, "stub_event_payload_bytes"),
        completed_every: numParam(s, "stub_emit_completed_every"),
      },
    }, { fd: entry.fd, timeoutMs: CONNECT_REQUEST_TIMEOUT_MS });
    const result = outcome.ok ? outcome.value : { ok: false, error: outcome.error };
    if (!result.ok) {
      rt.closeStream(s.eventsStream);
      rt.closeStream(audio.id);
      s.audio = null;
      s.state = "Error";
      s.lastError = result.error ?? "connect failed";
      refresh(entry);
      throw fail("EIO", s.lastError);
    }
    s.info = {
      backend: result.backend ?? null,
      kind: result.kind ?? null,
      protocol: result.protocol ?? null,
      model: result.model ?? null,
      url: result.url ?? null,
    };
    drainPre(s);
    rt.pump(); // a stub or local transport may be up already
    refresh(entry);
    return 0;
  };

  const newState = (): RtasrFdState => ({
    state: "Init",
    lastError: null,
    params: new Map(),
    paramBytes: new Map(),
    transport: RTASR_DEFAULTS.transport,
    maxSend: RTASR_DEFAULTS.max_send_queue_bytes,
    maxRecv: RTASR_DEFAULTS.max_recv_queue_bytes,
    segmentation: structuredClone(DEFAULT_SEGMENTATION),
    pre: [],
    preBytes: 0,
    audio: null,
    window: 0,
    eventsStream: 0,
    queue: new QueuedStream({
      capacity: RTASR_DEFAULTS.max_recv_queue_bytes,
      policy: "drop_oldest",
      budget: rt.budget,
      clock: streamClock,
    }),
    streamDropped: 0,
    hup: false,
    closeCode: null,
    closeReason: null,
    info: { backend: null, kind: null, protocol: null, model: null, url: null },
    counters: { writes: 0, bytesWritten: 0, eagain: 0, events: 0, flushes: 0, clears: 0, sendEvents: 0 },
    connectStartedAt: null,
    connectMs: null,
    deliverLatency: new LatencyWindow(),
    heldSend: 0,
  });

  const sendEvent = (entry: FdEntry<RtasrFdState>, text: string, kind: "flush" | "clear" | "raw") => {
    sendControl(entry, { type: "send", text, kind }, utf8Length(text));
  };

  return {
    rtasr_create: () => {
      // The queues reserve their caps in the host budget, once the fd slot is secured.
      const makeState = () => {
        rt.charge(RTASR_DEFAULTS.max_send_queue_bytes, "rtasr send queue");
        try {
          const state = newState();
          state.heldSend = RTASR_DEFAULTS.max_send_queue_bytes;
          return state;
        } catch (e) {
          rt.budget.release(RTASR_DEFAULTS.max_send_queue_bytes);
          throw e;
        }
      };
      const entry = fds.allocWith<RtasrFdState>("RtAsr", makeState, {
        onClose: (e) => {
          const s = e.state;
          if (s.audio) rt.closeStream(s.audio.id);
          if (s.eventsStream) rt.closeStream(s.eventsStream);
          s.audio = null;
          if (s.state !== "Error") s.state = "Closed";
          s.queue.dispose();
          s.pre = [];
          rt.budget.release(s.heldSend);
          for (const bytes of s.paramBytes.values()) rt.budget.release(bytes);
          s.paramBytes.clear();
        },
        metrics: (e) => rtasrMetrics(e.state),
      }, Poll.EPOLLOUT);
      return entry.fd;
    },

    rtasr_ctl: (fd: number, cmd: number, argPtr: number, lenPtr: number) => {
      const len = mem.u32(lenPtr); // always read, as SPEAR's glue
      const entry = fds.getOpen<RtasrFdState>(fd, "RtAsr");
      const s = entry.state;
      switch (cmd) {
        case RtasrCtl.SET_PARAM:
          if (len === 0) throw fail("EINVAL", "SET_PARAM needs a payload");
          return setParam(entry, mem.copy(argPtr, len));
        case RtasrCtl.CONNECT:
          return connect(entry);
        case RtasrCtl.GET_STATUS:
          rt.pump();
          return mem.writeOut(argPtr, lenPtr, encoder.encode(JSON.stringify(rtasrStatus(s))));
        case RtasrCtl.SEND_EVENT: {
          if (len === 0) throw fail("EINVAL", "SEND_EVENT needs a JSON payload");
          const json = parseGuestJson(mem.copy(argPtr, len), "SEND_EVENT");
          sendEvent(entry, JSON.stringify(json), "raw");
          s.counters.sendEvents++;
          return 0;
        }
        case RtasrCtl.FLUSH:
          sendEvent(entry, '{"type":"input_audio_buffer.commit"}', "flush");
          s.counters.flushes++;
          return 0;
        case RtasrCtl.CLEAR:
          sendEvent(entry, '{"type":"input_audio_buffer.clear"}', "clear");
          s.counters.clears++;
          return 0;
        case RtasrCtl.SET_AUTOFLUSH: {
          if (len === 0) throw fail("EINVAL", "SET_AUTOFLUSH needs a JSON payload");
          const segmentation = parseSegmentation(parseGuestJson(mem.copy(argPtr, len), "SET_AUTOFLUSH"));
          s.segmentation = segmentation;
          if (s.audio) s.audio.event({ type: "segmentation", segmentation });
          return 0;
        }
        case RtasrCtl.GET_AUTOFLUSH:
          return mem.writeOut(
            argPtr,
            lenPtr,
            encoder.encode(JSON.stringify(segmentationJson(s.segmentation))),
          );
        default:
          throw fail("EINVAL", `unknown rtasr ctl ${cmd}`);
      }
    },

    rtasr_write: (fd: number, bufPtr: number, len: number) => {
      const entry = fds.getOpen<RtasrFdState>(fd, "RtAsr");
      const s = entry.state;
      if (s.state === "Error") throw fail("EIO", s.lastError ?? "rtasr is in the Error state");
      if (s.state === "Draining" || s.state === "Closed") throw fail("EPIPE", "the transport has closed");
      if (len < 0) throw fail("EFAULT");
      const bytes = mem.copy(bufPtr, len);
      if (len === 0) return 0;
      rt.pump(); // credit the driver returned
      if (sendQueueBytes(s) + len > s.maxSend || (s.audio && s.pre.length === 0 && len > s.audio.available)) {
        s.counters.eagain++;
        refresh(entry);
        throw fail("EAGAIN", "send queue full");
      }
      if (s.audio && s.pre.length === 0) s.audio.send(bytes);
      else {
        s.pre.push({ audio: bytes });
        s.preBytes += len;
      }
      s.counters.writes++;
      s.counters.bytesWritten += len;
      refresh(entry);
      return len;
    },

    rtasr_read: (fd: number, outPtr: number, lenPtr: number) => {
      fds.getOpen<RtasrFdState>(fd, "RtAsr");
      mem.u32(lenPtr);
      rt.poll(); // a polling point: events arrive, tool calls run
      const entry = fds.getOpen<RtasrFdState>(fd, "RtAsr");
      const s = entry.state;
      // Write first, dequeue after: -ENOSPC leaves the event queued (SPEC.md §5).
      const n = s.queue.readInto(mem, outPtr, lenPtr);
      if (s.state === "Draining" && s.queue.length === 0) s.state = "Closed";
      refresh(entry);
      return n;
    },

    rtasr_close: (fd: number) => {
      fds.close(fd);
      return 0;
    },
  };
}
