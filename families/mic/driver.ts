/**
 * The mic family's driver part (main thread). `mic.start` starts the requested source for one
 * fd and sends its frames on the lossy stream the worker opened for that capture; the capture
 * stops when the guest closes the stream (a new SET_PARAM, mic_close), when the start request
 * is cancelled (its wait timed out), or when the guest ends — PortAudio stream included.
 *
 * Flow control is the stream's: frames the guest's channel cannot take are dropped there and
 * capture, and the count reaches the guest on the next frame or on the capture's end event.
 */
import type { HostConfig } from "../../host/config.ts";
import type { Driver, GuestSession, SessionContext } from "../../host/host.ts";
import { handle } from "../../protocol/rpc.ts";
import { streamClock, type StreamSender } from "../../protocol/stream.ts";
import { readAudioFile } from "../../host/audio/wav.ts";
import { listInputDevices, openDeviceStream } from "./devices.ts";
import { micListDevices, micStart, type MicStartRequest, type MicStartResult } from "./protocol.ts";
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

/** One running capture: a source feeding one stream. */
class Capture {
  stopped = false;
  overflows = 0;
  stopSource: () => void | Promise<void> = () => {};

  constructor(
    readonly sender: StreamSender,
    private readonly sent: { frames: number },
    /** Runs once the source has been released. */
    private readonly released: () => void,
  ) {}

  emit(frame: Uint8Array, at = streamClock()): void {
    if (!this.stopped && this.sender.send(frame, at)) this.sent.frames++;
  }

  overflow(): void {
    this.overflows++;
    this.sender.event({ type: "overflows", total: this.overflows });
  }

  /** The capture ended by itself (EOF, read error): tell the guest, release the source. */
  end(type: "eof" | "error", error?: string): void {
    if (this.stopped) return;
    this.sender.event(error ? { type, error } : { type });
    this.stop();
  }

  stop(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.stopped = true;
    this.sender.close();
    return Promise.resolve().then(this.stopSource).catch(() => {}).finally(this.released);
  }
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function micDriver(config: HostConfig, options: MicDriverOptions = {}): MicDriver {
  /** Stub buffers per guest and fd: kept across SET_PARAMs, as SPEAR. */
  const stubs = new WeakMap<GuestSession, Map<number, Uint8Array>>();
  const sent = { frames: 0 };
  let active = 0;

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
      onEnd: () => capture.end("eof"),
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
      clock: streamClock,
      emit: (f, at) => capture.emit(f, at),
      onOverflow: () => capture.overflow(),
      onError: (error) => capture.end("error", error),
    });
    capture.stopSource = () => reader.stop();
    const native = { sample_rate_hz: device.sampleRate, channels: device.channels, format: "int16" };
    return { ok: true, source: "device", device: device.device.name, fallback_reason: null, native };
  };

  const stubOf = (session: GuestSession, fd: number, req: MicStartRequest): Uint8Array | null => {
    let perFd = stubs.get(session);
    if (!perFd) stubs.set(session, perFd = new Map());
    if (req.stub_base64 !== undefined) perFd.set(fd, Uint8Array.fromBase64(req.stub_base64));
    return perFd.get(fd) ?? null;
  };

  const start = async (req: MicStartRequest, ctx: SessionContext & { fd: number; signal: AbortSignal }) => {
    const { session, fd, signal } = ctx;
    const stub = stubOf(session, fd, req);
    // The guest closing the stream, or cancelling this request, stops the capture.
    const sender = session.openStream(req.stream, { mode: "lossy" }, () => capture.stop());
    const capture = new Capture(sender, sent, () => active--);
    active++;
    signal.addEventListener("abort", () => capture.stop(), { once: true });
    try {
      if (req.source === "device") return startDevice(capture, req);
      if (req.source === "file") return await startFile(capture, req);
    } catch (e) {
      if (!req.fallback_to_stub || capture.stopped) {
        await capture.stop();
        return { ok: false, error: message(e) } satisfies MicStartResult;
      }
      startStub(capture, req, stub);
      return { ok: true, source: "stub", device: null, fallback_reason: message(e), native: null } as const;
    }
    startStub(capture, req, stub);
    return { ok: true, source: "stub", device: null, fallback_reason: null, native: null } as const;
  };

  return {
    family: "mic",
    handlers: [
      handle(micStart, start),
      handle(micListDevices, () => listInputDevices()),
    ],
    get activeCaptures() {
      return active;
    },
    get framesSent() {
      return sent.frames;
    },
  };
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return micDriver(config);
}
