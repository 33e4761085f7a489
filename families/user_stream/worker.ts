/**
 * user_stream_*: the worker part (reference §8, with SPEAR's defects fixed; README "User
 * streams").
 *
 * A channel is one stream id of the guest: `Init` when the guest opened it before any client
 * sent on it, `Connected` once a client's stream arrived (a duplex host-created handle, see
 * protocol.ts), then `Closed` (the client left) or `Error` (the client overran the inbound
 * window). fds attach to channels and share their queues, as in SPEAR. A channel that ended
 * leaves the id free: a later client on the same id gets a fresh channel (and a fresh
 * STREAM_CONNECTED), while fds of the old one keep reporting EPOLLHUP and can still read what
 * was queued before the end.
 *
 * Inbound frames wait in a queued-stream fd (runtime/queue_fd.ts) under credit: the host sends
 * only what the window has room for, and reads give the room back, so a fast client cannot grow
 * host memory; frames that arrive before the guest opened any fd wait there too, and a ctl fd
 * opened later is told about every stream already connected. Outbound frames go on the
 * handle's guest → host credit stream (a full window is -EAGAIN). Nothing here blocks: every
 * read and write is non-blocking, as in SPEAR.
 */
import { fail, Poll } from "../../runtime/abi.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { QueuedStream } from "../../runtime/queue_fd.ts";
import { streamClock, type StreamFrame, type StreamSender } from "../../protocol/stream.ts";
import type { NoticeEnvelope } from "../../protocol/wire.ts";
import type { HostcallFn } from "../family.ts";
import {
  type InboundEvent,
  parseSsfHeader,
  SSF_HEADER_BYTES,
  StreamInfo,
  userStreamContext,
  UserStreamDir,
  UserStreamEvent,
  UserStreamLimits,
} from "./protocol.ts";

type ConnState = "Init" | "Connected" | "Closed" | "Error";

interface Channel {
  readonly streamId: number;
  state: ConnState;
  /** Frames from the client (whole SSF frames), from the moment the client's stream arrived. */
  inbound: QueuedStream | null;
  /** The host → guest stream of the client's handle (0 before it arrived). */
  handle: number;
  /** Frames to the client. */
  out: StreamSender | null;
  /** Sizes of the frames written and not yet acknowledged by the host, oldest first. */
  inFlight: number[];
  inFlightBytes: number;
  /** Inbound credit read and not yet returned (returned in quarter windows). */
  creditOwed: number;
  /** Why the channel is in Error. */
  error: string | null;
  readonly fds: Set<FdEntry<StreamFd>>;
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  writeEagain: number;
}

interface StreamFd {
  readonly channel: Channel;
  readonly direction: number;
}

interface CtlFd {
  readonly events: QueuedStream;
}

const DIRECTION_NAMES: Record<number, string> = { 1: "In", 2: "Out", 3: "Bidi" };
const reads = (direction: number) => (direction & UserStreamDir.IN) !== 0;
const writes = (direction: number) => (direction & UserStreamDir.OUT) !== 0;

/** EPOLLIN/OUT/ERR/HUP of a stream fd, from its channel's state alone. */
function readiness(fd: StreamFd): number {
  const ch = fd.channel;
  let mask = 0;
  if (reads(fd.direction) && (ch.inbound?.length ?? 0) > 0) mask |= Poll.EPOLLIN;
  // OUT means a frame of any allowed size fits now.
  if (
    writes(fd.direction) && ch.state === "Connected" && ch.out &&
    ch.out.available >= UserStreamLimits.MAX_FRAME_BYTES
  ) mask |= Poll.EPOLLOUT;
  if (ch.state === "Error") mask |= Poll.EPOLLERR;
  if (ch.state === "Closed") mask |= Poll.EPOLLHUP;
  return mask;
}

function ctlEvent(streamId: number, kind: number): Uint8Array {
  const bytes = new Uint8Array(UserStreamLimits.CTL_EVENT_BYTES);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, streamId, true);
  v.setUint32(4, kind, true);
  return bytes;
}

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;
  const endpoint = userStreamContext(rt.context);
  /** The current channel of each stream id (ended channels are no longer here). */
  const live = new Map<number, Channel>();
  const ctls = new Set<FdEntry<CtlFd>>();

  const refresh = (ch: Channel) => {
    for (const entry of ch.fds) if (!entry.closed) fds.setMask(entry, readiness(entry.state));
  };

  const newChannel = (streamId: number): Channel => ({
    streamId,
    state: "Init",
    inbound: null,
    handle: 0,
    out: null,
    inFlight: [],
    inFlightBytes: 0,
    creditOwed: 0,
    error: null,
    fds: new Set(),
    framesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    writeEagain: 0,
  });

  const emit = (streamId: number, kind: number) => {
    for (const entry of ctls) {
      entry.state.events.push({ bytes: ctlEvent(streamId, kind), at: streamClock() });
      fds.setMask(entry, entry.state.events.readiness);
    }
  };

  /** Frees a channel's queue once nothing can read it any more. */
  const releaseIfUnused = (ch: Channel) => {
    if (ch.fds.size > 0) return;
    if (ch.state === "Init" || ch.state === "Closed" || ch.state === "Error") {
      if (live.get(ch.streamId) === ch) live.delete(ch.streamId);
      ch.inbound?.dispose();
      ch.inbound = null;
    }
  };

  /** The client side ended (left, or overran): stop both streams; queued frames stay readable. */
  const end = (ch: Channel, state: "Closed" | "Error", error: string | null) => {
    if (ch.state === "Closed" || ch.state === "Error") return;
    ch.state = state;
    ch.error = error;
    if (live.get(ch.streamId) === ch) live.delete(ch.streamId);
    if (ch.handle) rt.closeStream(ch.handle);
    if (ch.out) rt.closeStream(ch.out.id);
    refresh(ch);
    releaseIfUnused(ch);
  };

  /** Returns inbound credit in quarter windows (a small exchange sends no credit message). */
  const owe = (ch: Channel, bytes: number) => {
    ch.creditOwed += bytes;
    if (ch.creditOwed >= UserStreamLimits.MAX_INBOUND_BYTES / 4 || ch.inbound?.length === 0) {
      rt.credit(ch.handle, ch.creditOwed);
      ch.creditOwed = 0;
    }
  };

  /** A client's stream arrived: the channel of its id becomes Connected (once per stream). */
  const adopt = (notice: NoticeEnvelope) => {
    const info = StreamInfo.check(notice.info, "user_stream/stream");
    const handle = notice.stream!;
    const ch = live.get(info.stream_id) ?? newChannel(info.stream_id);
    const out = rt.adoptOutbound(notice.outbound!, (bytes) => {
      acknowledge(ch, bytes);
      refresh(ch);
    });
    try {
      ch.inbound = new QueuedStream({
        capacity: UserStreamLimits.MAX_INBOUND_BYTES,
        policy: "credit",
        budget: rt.budget,
        returnCredit: (bytes) => owe(ch, bytes),
        clock: streamClock,
      });
    } catch (e) {
      // No room in the guest's host budget for the queue: the host closes the client, saying why.
      out.event({ type: "refused", reason: (e as Error).message });
      rt.closeStream(out.id);
      rt.adoptStream(handle, { data() {}, event() {} });
      rt.closeStream(handle);
      return;
    }
    live.set(info.stream_id, ch);
    ch.state = "Connected";
    ch.handle = handle;
    ch.out = out;
    rt.adoptStream(handle, {
      data(frame: StreamFrame) {
        ch.inbound?.push({ bytes: frame.bytes, at: frame.at });
        ch.framesIn++;
        refresh(ch);
      },
      event(value: Record<string, unknown>) {
        const event = value as InboundEvent;
        if (event.type === "closed") end(ch, "Closed", null);
        else end(ch, "Error", String(event.reason ?? "error"));
      },
    });
    emit(ch.streamId, UserStreamEvent.STREAM_CONNECTED);
    refresh(ch);
  };

  /** The host returned `bytes` of outbound credit: those frames have left. */
  const acknowledge = (ch: Channel, bytes: number) => {
    ch.inFlightBytes -= bytes;
    while (bytes > 0 && ch.inFlight.length > 0) {
      const size = ch.inFlight[0];
      if (size > bytes) {
        ch.inFlight[0] = size - bytes;
        break;
      }
      bytes -= size;
      ch.inFlight.shift();
    }
  };

  rt.onNotice("user_stream", "stream", adopt);
  rt.onNotice("user_stream", "session_closed", () => emit(0, UserStreamEvent.SESSION_CLOSED));

  const requireEndpoint = () => {
    if (!endpoint) {
      throw fail("ENOTCONN", "no user-stream endpoint serves this run (spear run --serve HOST:PORT)");
    }
    return endpoint;
  };

  const streamMetrics = (fd: StreamFd): Record<string, unknown> => {
    const ch = fd.channel;
    return {
      execution_id: endpoint?.run ?? null,
      stream_id: ch.streamId,
      direction: DIRECTION_NAMES[fd.direction],
      conn_state: ch.state,
      inbound_len: ch.inbound?.length ?? 0,
      inbound_bytes: ch.inbound?.bytes ?? 0,
      max_inbound_bytes: UserStreamLimits.MAX_INBOUND_BYTES,
      outbound_len: ch.inFlight.length,
      outbound_bytes: ch.inFlightBytes,
      max_outbound_bytes: UserStreamLimits.MAX_OUTBOUND_BYTES,
      max_frame_bytes: UserStreamLimits.MAX_FRAME_BYTES,
      frames_in: ch.framesIn,
      frames_read: ch.inbound?.readItems ?? 0,
      frames_out: ch.framesOut,
      bytes_out: ch.bytesOut,
      write_eagain: ch.writeEagain,
      read_latency_ms: ch.inbound?.readLatency.summary() ?? null,
      ...(ch.error ? { error: ch.error } : {}),
    };
  };

  const streamHooks = {
    onClose(entry: FdEntry<StreamFd>) {
      const ch = entry.state.channel;
      ch.fds.delete(entry);
      releaseIfUnused(ch);
    },
    metrics: (entry: FdEntry<StreamFd>) => streamMetrics(entry.state),
  };

  const ctlHooks = {
    onClose(entry: FdEntry<CtlFd>) {
      ctls.delete(entry);
      entry.state.events.dispose();
    },
    metrics: (entry: FdEntry<CtlFd>) => ({
      execution_id: endpoint?.run ?? null,
      pending_len: entry.state.events.length,
      max_pending: UserStreamLimits.MAX_CTL_PENDING,
      dropped: entry.state.events.dropped,
    }),
  };

  return {
    user_stream_open: (streamId: number, direction: number) => {
      requireEndpoint();
      if (streamId < 0) throw fail("EINVAL", `stream id ${streamId}`);
      if (!DIRECTION_NAMES[direction]) throw fail("EINVAL", `direction ${direction} (1 in, 2 out, 3 both)`);
      const ch = live.get(streamId) ?? newChannel(streamId);
      const entry = fds.alloc<StreamFd>("UserStream", { channel: ch, direction }, streamHooks);
      live.set(streamId, ch);
      ch.fds.add(entry);
      fds.setMask(entry, readiness(entry.state));
      return entry.fd;
    },

    user_stream_read: (fd: number, outPtr: number, lenPtr: number) => {
      const stream = fds.getOpen<StreamFd>(fd, "UserStream").state;
      if (!reads(stream.direction)) throw fail("EINVAL", "the fd was opened for writing only");
      const ch = stream.channel;
      mem.u32(lenPtr); // a bad length pointer is -EFAULT even when nothing is queued
      if (!ch.inbound) throw fail("EAGAIN");
      const n = ch.inbound.readInto(mem, outPtr, lenPtr);
      refresh(ch);
      return n;
    },

    user_stream_write: (fd: number, bufPtr: number, len: number) => {
      const entry = fds.get(fd);
      if (len < 0) throw fail("EINVAL", `length ${len}`);
      // SPEAR's order: the header is checked before the fd's state and kind.
      const header = parseSsfHeader(mem.slice(bufPtr, Math.min(len, SSF_HEADER_BYTES)), len);
      if (typeof header === "string") throw fail("EINVAL", `not an SSF v1 frame: ${header}`);
      if (entry.closed) throw fail("EBADF", `fd ${fd} is closed`);
      if (entry.kind !== "UserStream") throw fail("EBADF", `fd ${fd} is a ${entry.kind}`);
      const stream = entry.state as StreamFd;
      const ch = stream.channel;
      if (!writes(stream.direction)) throw fail("EINVAL", "the fd was opened for reading only");
      if (header.streamId !== ch.streamId) {
        throw fail("EINVAL", `frame for stream ${header.streamId} written to stream ${ch.streamId}`);
      }
      if (ch.state === "Init") throw fail("ENOTCONN", `no client on stream ${ch.streamId} yet`);
      if (ch.state !== "Connected" || !ch.out) throw fail("EPIPE", `stream ${ch.streamId} is ${ch.state}`);
      if (len > UserStreamLimits.MAX_FRAME_BYTES) {
        throw fail("EINVAL", `frame of ${len} bytes (at most ${UserStreamLimits.MAX_FRAME_BYTES})`);
      }
      if (!ch.out.send(mem.slice(bufPtr, len))) {
        ch.writeEagain++;
        refresh(ch);
        throw fail("EAGAIN");
      }
      ch.inFlight.push(len);
      ch.inFlightBytes += len;
      ch.framesOut++;
      ch.bytesOut += len;
      refresh(ch);
      return 0; // SPEAR's guests expect 0, not the byte count
    },

    user_stream_close: (fd: number) => {
      fds.close(fd);
      return 0;
    },

    user_stream_ctl_open: () => {
      requireEndpoint();
      const entry = fds.allocWith<CtlFd>(
        "UserStreamCtl",
        () => ({
          events: new QueuedStream({
            capacity: UserStreamLimits.MAX_CTL_PENDING * UserStreamLimits.CTL_EVENT_BYTES,
            policy: "drop_oldest",
            budget: rt.budget,
          }),
        }),
        ctlHooks,
      );
      ctls.add(entry);
      // Streams that connected before this fd existed: their frames are queued, so say so.
      for (const ch of live.values()) {
        if (ch.state !== "Connected") continue;
        entry.state.events.push({ bytes: ctlEvent(ch.streamId, UserStreamEvent.STREAM_CONNECTED), at: 0 });
      }
      fds.setMask(entry, entry.state.events.readiness);
      return entry.fd;
    },

    user_stream_ctl_read: (fd: number, outPtr: number, lenPtr: number) => {
      const entry = fds.getOpen<CtlFd>(fd, "UserStreamCtl");
      mem.u32(lenPtr);
      const n = entry.state.events.readInto(mem, outPtr, lenPtr); // -ENOSPC keeps the event
      fds.setMask(entry, entry.state.events.readiness);
      return n;
    },
  };
}
