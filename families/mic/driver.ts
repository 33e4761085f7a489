/**
 * The mic family's main-thread driver. "mic.start" (a blocking call from mic_ctl SET_PARAM)
 * stops the fd's previous capture and starts the requested source; its frames go to the
 * guest as MIC_FRAME messages tagged with the fd's generation. MIC_STOP (SET_PARAM timeout,
 * mic_close) and the guest's end stop the capture, PortAudio stream included.
 *
 * Backpressure is the guest's (its fd queue, `max_queue_bytes`, `drop_policy`). The driver
 * only refuses to pile frames into a guest that has stopped draining its channel at all
 * (over half of the ring in use): those frames are dropped here, counted, and reported in
 * the next frame's header, so they still show in `dropped_frames`.
 */
import { decodeJson, type Message } from "../../protocol/channel.ts";
import type { HostConfig } from "../../host/config.ts";
import { type Driver, FdSlots, type GuestSession } from "../../host/host.ts";
import {
  MIC_FRAME_HEADER_BYTES,
  micClock,
  type MicDeviceInfo,
  type MicEvent,
  type MicStartRequest,
  type MicStartResult,
  writeMicFrameHeader,
} from "./worker.ts";
import { Op } from "../../protocol/wire.ts";
import { readAudioFile } from "../../host/audio/wav.ts";
import { listInputDevices, openDeviceStream } from "./devices.ts";
import { fileFrames, frameDurationMs, pace, runDevice, stubFrames, type Timers } from "./sources.ts";

/** A headerless `mic.file` is PCM16 little-endian at this rate and channel count. */
export const RAW_FILE_FORMAT = { sampleRate: 16000, channels: 1 } as const;

export interface MicDriverOptions {
  /** Clock speed for pacing; 1 is real time (benches and tests run faster). */
  speed?: number;
  timers?: Timers;
}

export interface MicDriver extends Driver {
  /** Captures running or still shutting down (tests: "the driver stopped"). */
  readonly activeCaptures: number;
  /** Frames sent to guests so far. */
  readonly framesSent: number;
}

/** One running capture of one fd generation. */
class Capture {
  stopped = false;
  seq = 0;
  hostDropped = 0;
  overflows = 0;
  stopSource: () => void | Promise<void> = () => {};
  /** Releases the source once the capture ended by itself (EOF, read error). */
  onFinish: () => void = () => {};
  private scratch = new Uint8Array(0);

  constructor(
    readonly session: GuestSession,
    readonly fd: number,
    readonly generation: number,
    private readonly sent: { frames: number },
  ) {}

  emit(frame: Uint8Array, capturedAt = micClock()): void {
    if (this.stopped || !this.session.alive) return;
    const channel = this.session.link.toGuest;
    const size = MIC_FRAME_HEADER_BYTES + frame.length;
    if (channel.backlog > 0 || channel.used + size + 64 > channel.capacity / 2) {
      this.hostDropped++;
      this.seq++;
      return;
    }
    if (this.scratch.length !== size) this.scratch = new Uint8Array(size);
    writeMicFrameHeader(this.scratch, {
      generation: this.generation,
      seq: this.seq++,
      capturedAt,
      hostDropped: this.hostDropped,
      overflows: this.overflows,
    });
    this.scratch.set(frame, MIC_FRAME_HEADER_BYTES);
    this.session.send(Op.MIC_FRAME, this.fd, this.scratch); // copied into the ring
    this.sent.frames++;
  }

  event(type: MicEvent["type"], error?: string): void {
    if (this.stopped) return;
    this.stopped = true;
    const event: MicEvent = { generation: this.generation, type, ...(error ? { error } : {}) };
    this.session.sendJson(Op.MIC_EVENT, this.fd, event);
    this.onFinish();
  }
}

/** Per-fd driver state: the stub buffer (kept across SET_PARAMs) and the capture. */
interface Slot {
  stub: Uint8Array | null;
  capture: Capture | null;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function micDriver(config: HostConfig, options: MicDriverOptions = {}): MicDriver {
  const sessions = new FdSlots<Slot>((slot) => stop(slot));
  const sent = { frames: 0 };
  let active = 0;

  const slotOf = (session: GuestSession, fd: number) => {
    const slots = sessions.of(session);
    let slot = slots.get(fd);
    if (!slot) slots.set(fd, slot = { stub: null, capture: null });
    return slot;
  };

  const stop = (slot: Slot) => {
    const capture = slot.capture;
    slot.capture = null;
    if (!capture) return;
    capture.stopped = true;
    Promise.resolve(capture.stopSource()).catch(() => {}).finally(() => active--);
  };

  const startStub = (capture: Capture, req: MicStartRequest, stub: Uint8Array | null) => {
    const paced = pace({
      next: stubFrames(req.config, stub),
      frameMs: frameDurationMs(req.config),
      speed: options.speed,
      timers: options.timers,
      emit: (f) => capture.emit(f),
      onEnd: () => {},
    });
    capture.stopSource = () => paced.stop();
  };

  const startFile = async (capture: Capture, req: MicStartRequest): Promise<MicStartResult> => {
    const path = config.mic.file;
    if (!path) throw new Error("the host config names no mic.file");
    // The guest sees the file's name, not the host's directory layout.
    const name = path.split("/").pop()!;
    let audio;
    try {
      audio = await readAudioFile(path, RAW_FILE_FORMAT);
    } catch (e) {
      const reason = e instanceof Deno.errors.NotFound ? "no such file" : message(e).replaceAll(path, name);
      throw new Error(`mic.file ${name}: ${reason}`);
    }
    if (audio.frames === 0) throw new Error(`mic.file ${name}: no audio`);
    if (capture.stopped) return { ok: false, error: "superseded" };
    const next = fileFrames(audio, req.config, req.loop);
    const paced = pace({
      next,
      frameMs: frameDurationMs(req.config),
      speed: options.speed,
      timers: options.timers,
      emit: (f) => capture.emit(f),
      onEnd: () => capture.event("eof"),
    });
    capture.stopSource = () => {
      paced.stop();
      next.close();
    };
    const native = { sample_rate_hz: audio.sampleRate, channels: audio.channels, format: audio.format };
    return { ok: true, source: "file", device: name, fallback_reason: null, native };
  };

  const startDevice = (capture: Capture, req: MicStartRequest): MicStartResult => {
    const device = openDeviceStream(req.device, req.config.channels, req.config.frame_ms);
    const reader = runDevice({
      device,
      config: req.config,
      speed: options.speed,
      timers: options.timers,
      clock: micClock,
      emit: (f, at) => capture.emit(f, at),
      onOverflow: () => capture.overflows++,
      onError: (error) => capture.event("error", error),
    });
    capture.stopSource = () => reader.stop();
    const native = { sample_rate_hz: device.sampleRate, channels: device.channels, format: "int16" };
    return { ok: true, source: "device", device: device.device.name, fallback_reason: null, native };
  };

  const start = async (session: GuestSession, req: MicStartRequest): Promise<MicStartResult> => {
    const slot = slotOf(session, req.fd);
    stop(slot);
    const capture = new Capture(session, req.fd, req.generation, sent);
    slot.capture = capture;
    capture.onFinish = () => {
      if (slot.capture === capture) stop(slot);
    };
    active++;
    try {
      if (req.source === "device") return startDevice(capture, req);
      if (req.source === "file") return await startFile(capture, req);
    } catch (e) {
      if (!req.fallback_to_stub || capture.stopped) {
        if (slot.capture === capture) stop(slot);
        return { ok: false, error: message(e) };
      }
      startStub(capture, req, slot.stub);
      return { ok: true, source: "stub", device: null, fallback_reason: message(e), native: null };
    }
    startStub(capture, req, slot.stub);
    return { ok: true, source: "stub", device: null, fallback_reason: null, native: null };
  };

  const stubData = (session: GuestSession, fd: number, payload: Uint8Array) => {
    slotOf(session, fd).stub = payload;
  };

  return {
    family: "mic",
    handle(session: GuestSession, m: Message) {
      if (m.op === Op.MIC_STUB_DATA) stubData(session, m.fd, m.payload);
      else if (m.op === Op.MIC_STOP) {
        const { generation, closed } = decodeJson<{ generation: number; closed: boolean }>(m.payload);
        const slots = sessions.peek(session);
        const slot = slots?.get(m.fd);
        if (!slot) return;
        if (slot.capture?.generation === generation) stop(slot);
        if (closed) {
          stop(slot);
          slots!.delete(m.fd);
        }
      }
    },
    calls: {
      "mic.start": (session, params) => start(session, params as MicStartRequest),
      "mic.list_devices": (): Promise<MicDeviceInfo[]> => Promise.resolve().then(listInputDevices),
    },
    get activeCaptures() {
      return active;
    },
    get framesSent() {
      return sent.frames;
    },
  };
}
