/**
 * The mic driver's sources and the clock that paces them.
 *
 * - stub: zeros, or the guest's `stub_pcm16_base64` bytes repeated continuously (the offset
 *   carries across frames, as SPEAR).
 * - file: the host config's `mic.file`, a WAV (PCM16 or float32, any rate/channels) or raw
 *   headerless PCM16 little-endian, which is taken as 16 kHz mono (the config has no field
 *   for a raw file's format: use WAV for anything else). Converted with AudioConverter
 *   (channel mix, libsamplerate); the end of the file is EPOLLHUP after a final, possibly
 *   shorter frame, unless `loop` is set (then it starts over seamlessly).
 * - device: PortAudio, read off the JS thread (families/mic/devices.ts).
 *
 * Pacing: frame k is due when its audio has been "recorded", start + (k+1) * frame duration,
 * computed from the start time rather than by adding intervals, so late timers never
 * accumulate into drift; a late timer emits every frame that is due. The device source is
 * paced the same way after each read: a real device blocks in Pa_ReadStream and never runs
 * ahead, while the ALSA file device of the tests (no clock) would otherwise deliver seconds of
 * audio at once. `speed` > 1 runs the clock faster (benches).
 */
import { AudioConverter } from "../../host/audio/convert.ts";
import type { PcmAudio } from "../../host/audio/wav.ts";
import * as pa from "../../ffi/portaudio.ts";
import { type MicConfig, micFrameBytes, micFrameSamples } from "./protocol.ts";
import { closeDeviceStream, type DeviceStream } from "./devices.ts";

/** Frame duration in ms from the sample count (exact even when rate * frame_ms % 1000 ≠ 0). */
export function frameDurationMs(c: MicConfig): number {
  return (micFrameSamples(c) * 1000) / c.sample_rate_hz;
}

/** A pull source: the next frame, or null at the end. */
export type FrameSource = () => Uint8Array | null;

/** Zeros, or `stub` repeated; every frame is exactly one frame of bytes. */
export function stubFrames(config: MicConfig, stub: Uint8Array | null): FrameSource {
  const size = micFrameBytes(config);
  if (!stub || stub.length === 0) {
    const zeros = new Uint8Array(size);
    return () => zeros;
  }
  const frame = new Uint8Array(size);
  let offset = 0;
  return () => {
    for (let o = 0; o < size;) {
      const n = Math.min(size - o, stub.length - offset);
      frame.set(stub.subarray(offset, offset + n), o);
      o += n;
      offset = (offset + n) % stub.length;
    }
    return frame;
  };
}

/** A file's audio converted to the guest's format, frame by frame. */
export function fileFrames(
  audio: PcmAudio,
  config: MicConfig,
  loop: boolean,
): FrameSource & { close(): void } {
  const conv = new AudioConverter(audio, config);
  const bytesPerFrame = audio.channels * (audio.format === "int16" ? 2 : 4);
  // Source bytes per push: about one output frame, in whole source frames.
  const chunk = Math.max(1, Math.ceil((audio.sampleRate * config.frame_ms) / 1000)) * bytesPerFrame;
  const ready: Uint8Array[] = [];
  let pos = 0;
  let ended = false;
  const next = () => {
    while (ready.length === 0 && !ended) {
      if (pos >= audio.data.length) {
        if (loop) pos = 0;
        else {
          ended = true;
          ready.push(...conv.flush());
          break;
        }
      }
      const end = Math.min(audio.data.length, pos + chunk);
      ready.push(...conv.push(audio.data.subarray(pos, end)));
      pos = end;
    }
    return ready.shift() ?? null;
  };
  return Object.assign(next, { close: () => conv.close() });
}

export type TimerId = unknown;

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

export interface Paced {
  stop(): void;
  /** Frames emitted so far. */
  readonly emitted: number;
}

/**
 * Emits `next()` frames against the clock: frame k at start + (k+1) * frameMs / speed.
 * Calls `onEnd` once when the source returns null.
 */
export function pace(opts: {
  next: FrameSource;
  frameMs: number;
  speed?: number;
  emit: (frame: Uint8Array) => void;
  onEnd: () => void;
  timers?: Timers;
}): Paced {
  const timers = opts.timers ?? realTimers;
  const period = opts.frameMs / (opts.speed ?? 1);
  const start = timers.now();
  let k = 0;
  let timer: TimerId | undefined;
  let stopped = false;
  const tick = () => {
    timer = undefined;
    if (stopped) return;
    const due = Math.floor((timers.now() - start) / period);
    while (k < due && !stopped) {
      const frame = opts.next();
      if (frame === null) {
        stopped = true;
        opts.onEnd();
        return;
      }
      k++;
      opts.emit(frame);
    }
    if (stopped) return;
    timer = timers.setTimeout(tick, Math.max(0, start + (k + 1) * period - timers.now()));
  };
  timer = timers.setTimeout(tick, period);
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
    },
    get emitted() {
      return k;
    },
  };
}

/**
 * Reads a started PortAudio stream until stopped: convert, emit, then wait while the audio
 * read is ahead of the clock. `onError` gets a read failure (not called after stop()).
 */
export function runDevice(opts: {
  device: DeviceStream;
  config: MicConfig;
  speed?: number;
  emit: (frame: Uint8Array, capturedAt?: number) => void;
  onOverflow: () => void;
  onError: (message: string) => void;
  timers?: Timers;
  clock: () => number;
}): { stop(): Promise<void> } {
  const { device, config } = opts;
  const timers = opts.timers ?? realTimers;
  const speed = opts.speed ?? 1;
  const conv = new AudioConverter({
    sampleRate: device.sampleRate,
    channels: device.channels,
    format: "int16",
  }, config);
  const buffer = new Uint8Array(device.chunkFrames * device.stream.bytesPerFrame);
  let stopped = false;
  let cancelSleep = () => {};
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = timers.setTimeout(resolve, ms);
      cancelSleep = () => {
        timers.clearTimeout(timer);
        resolve();
      };
    });
  const loop = (async () => {
    const start = timers.now();
    let frames = 0;
    while (!stopped) {
      let result: { overflowed: boolean };
      try {
        result = await pa.readStream(device.stream, buffer, device.chunkFrames);
      } catch (e) {
        if (!stopped) opts.onError(`device read failed: ${(e as Error).message}`);
        return;
      }
      if (stopped) return;
      const capturedAt = opts.clock();
      if (result.overflowed) opts.onOverflow();
      for (const frame of conv.push(buffer)) opts.emit(frame, capturedAt);
      frames += device.chunkFrames;
      const ahead = (frames * 1000) / device.sampleRate / speed - (timers.now() - start);
      if (ahead > 0) await sleep(ahead);
    }
  })();
  return {
    async stop() {
      stopped = true;
      cancelSleep();
      await loop;
      await closeDeviceStream(device).catch(() => {});
      conv.close();
    },
  };
}
