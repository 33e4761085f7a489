/**
 * Streaming audio converter for the microphone driver: source PCM (any rate and channel count,
 * int16 or float32 interleaved) → the format a guest asked for with mic_ctl SET_PARAM
 * (`sample_rate_hz`, `channels`, `format` "pcm16" little-endian or "f32le", `frame_ms`), cut into
 * frames of exactly `floor(sample_rate_hz * frame_ms / 1000) * channels * bytesPerSample` bytes.
 *
 * - Channel mixing: output channel j = average of the input channels k with k % out == j when
 *   downmixing (so mono = average of all), input channel j % in when upmixing (duplication).
 *   In the int16 domain the average is rounded with Math.round.
 * - Resampling: libsamplerate (SRC_SINC_MEDIUM_QUALITY by default), one SRC state kept across
 *   push() calls, so chunk boundaries are invisible (no clicks). It runs at min(in, out) channels.
 * - Equal rates: no resampling at all. int16 → pcm16 stays in the integer domain and is
 *   sample-exact; float32 → pcm16 is `clamp(round(x * 32768))`.
 * - Leftover bytes of a partial source frame and of a partial output frame carry to the next call.
 */

import {
  SRC_SINC_MEDIUM_QUALITY,
  srcDelete,
  srcIsValidRatio,
  srcNew,
  srcProcess,
  srcReset,
} from "../../ffi/samplerate.ts";

export type SourceSampleFormat = "int16" | "float32";
export type OutputSampleFormat = "pcm16" | "f32le";

export interface SourceFormat {
  sampleRate: number;
  channels: number;
  /** How a Uint8Array chunk is interpreted (little-endian). Typed-array chunks describe themselves. */
  format: SourceSampleFormat;
}

export interface OutputFormat {
  sample_rate_hz: number;
  channels: number;
  format: OutputSampleFormat;
  /** Frame duration; 0 or absent means 20 (as SPEAR's stub). */
  frame_ms?: number;
}

export interface ConverterOptions {
  /** libsamplerate converter type (ffi/samplerate.ts constants). */
  converterType?: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkPositiveInt(v: unknown, name: string, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new RangeError(`${name} must be an integer in 1..${max}, got ${String(v)}`);
  }
  return v;
}

/** Samples per channel in one output frame: floor(rate * frame_ms / 1000). */
export function frameSamples(out: OutputFormat): number {
  const ms = out.frame_ms || 20;
  return Math.floor((out.sample_rate_hz * ms) / 1000);
}

/** Bytes of one output frame. */
export function frameBytes(out: OutputFormat): number {
  return frameSamples(out) * out.channels * (out.format === "f32le" ? 4 : 2);
}

type Samples = Int16Array | Float32Array;

/**
 * Mixes interleaved samples from `inCh` to `outCh` channels (see module doc): upmix
 * duplicates, downmix averages; `finish` turns an average into a sample (rounding for int16).
 */
function mix<T extends Samples>(
  src: T,
  inCh: number,
  outCh: number,
  make: (n: number) => T,
  finish: (v: number) => number,
): T {
  if (inCh === outCh) return src;
  const frames = Math.floor(src.length / inCh);
  const dst = make(frames * outCh);
  if (outCh > inCh) {
    for (let f = 0; f < frames; f++) {
      for (let j = 0; j < outCh; j++) dst[f * outCh + j] = src[f * inCh + (j % inCh)];
    }
    return dst;
  }
  for (let f = 0; f < frames; f++) {
    for (let j = 0; j < outCh; j++) {
      let sum = 0, n = 0;
      for (let k = j; k < inCh; k += outCh) {
        sum += src[f * inCh + k];
        n++;
      }
      dst[f * outCh + j] = finish(sum / n);
    }
  }
  return dst;
}

/** Mixes interleaved int16 samples from `inCh` to `outCh` channels. */
export function mixInt16(src: Int16Array, inCh: number, outCh: number): Int16Array {
  return mix(src, inCh, outCh, (n) => new Int16Array(n), Math.round);
}

/** Mixes interleaved float samples from `inCh` to `outCh` channels. */
export function mixFloat32(src: Float32Array, inCh: number, outCh: number): Float32Array {
  return mix(src, inCh, outCh, (n) => new Float32Array(n), (v) => v);
}

export function int16ToFloat32(src: Int16Array): Float32Array<ArrayBuffer> {
  const dst = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) dst[i] = src[i] / 32768;
  return dst;
}

/** clamp(round(x * 32768), -32768, 32767); NaN → 0. */
export function float32ToInt16(src: Float32Array): Int16Array<ArrayBuffer> {
  const dst = new Int16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = Math.round(src[i] * 32768);
    dst[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v || 0;
  }
  return dst;
}

export class AudioConverter {
  readonly source: Readonly<SourceFormat>;
  readonly output: Readonly<Required<OutputFormat>>;
  /** Exact byte length of every frame push() returns. */
  readonly frameBytes: number;
  /** True when source and output rates differ (libsamplerate in use). */
  readonly resampling: boolean;

  #state: Deno.PointerObject | null = null;
  #converterType: number;
  #ratio: number;
  #srcChannels: number; // channels the resampler runs at
  #inBytesPerFrame: number;
  #carry = new Uint8Array(0); // partial source frame bytes
  #pending: Uint8Array = new Uint8Array(4096); // encoded output not yet framed
  #pendingLen = 0;
  #resampleOut = new Float32Array(0);
  #srcCarry = new Float32Array(0); // input libsamplerate did not take yet (normally empty)
  #closed = false;

  constructor(source: SourceFormat, output: OutputFormat, opts: ConverterOptions = {}) {
    if (!LITTLE_ENDIAN) throw new Error("AudioConverter requires a little-endian host");
    checkPositiveInt(source.sampleRate, "source sampleRate", 768000);
    checkPositiveInt(source.channels, "source channels", 64);
    if (source.format !== "int16" && source.format !== "float32") {
      throw new RangeError(`source format must be "int16" or "float32", got ${String(source.format)}`);
    }
    checkPositiveInt(output.sample_rate_hz, "sample_rate_hz", 768000);
    checkPositiveInt(output.channels, "channels", 64);
    if (output.format !== "pcm16" && output.format !== "f32le") {
      throw new RangeError(`format must be "pcm16" or "f32le", got ${String(output.format)}`);
    }
    const frameMs = output.frame_ms || 20;
    checkPositiveInt(frameMs, "frame_ms", 60000);
    this.source = { ...source };
    this.output = { ...output, frame_ms: frameMs };
    if (frameSamples(this.output) < 1) {
      throw new RangeError(`frame_ms ${frameMs} at ${output.sample_rate_hz} Hz is shorter than one sample`);
    }
    this.frameBytes = frameBytes(this.output);
    this.#inBytesPerFrame = source.channels * (source.format === "int16" ? 2 : 4);
    this.#ratio = output.sample_rate_hz / source.sampleRate;
    this.resampling = source.sampleRate !== output.sample_rate_hz;
    this.#converterType = opts.converterType ?? SRC_SINC_MEDIUM_QUALITY;
    this.#srcChannels = Math.min(source.channels, output.channels);
    if (this.resampling) {
      if (!srcIsValidRatio(this.#ratio)) {
        throw new RangeError(`cannot resample ${source.sampleRate} Hz → ${output.sample_rate_hz} Hz`);
      }
      this.#state = srcNew(this.#converterType, this.#srcChannels);
    }
  }

  /** Converts one chunk; returns the complete frames now available (possibly none). */
  push(chunk: Uint8Array | Int16Array | Float32Array): Uint8Array[] {
    if (this.#closed) throw new Error("AudioConverter is closed");
    const samples = this.#decode(chunk);
    if (samples.length > 0) this.#process(samples, false);
    return this.#takeFrames(false);
  }

  /**
   * End of stream: drains the resampler's tail and returns the remaining frames, the last one
   * possibly shorter than frameBytes. The converter is reset afterwards and can be reused.
   */
  flush(): Uint8Array[] {
    if (this.#closed) throw new Error("AudioConverter is closed");
    if (this.#state) this.#process(new Float32Array(0), true);
    const frames = this.#takeFrames(true);
    this.reset();
    return frames;
  }

  /** Drops all buffered audio and resampler history. */
  reset(): void {
    if (this.#closed) return;
    this.#carry = new Uint8Array(0);
    this.#pendingLen = 0;
    this.#srcCarry = new Float32Array(0);
    if (this.#state) srcReset(this.#state);
  }

  /** Frees the native SRC state. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#state) this.#state = srcDelete(this.#state);
    this.#carry = new Uint8Array(0);
    this.#pendingLen = 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Interleaved source samples from a chunk (whole frames only; partial bytes carried). */
  #decode(chunk: Uint8Array | Int16Array | Float32Array): Int16Array | Float32Array {
    if (chunk instanceof Int16Array || chunk instanceof Float32Array) {
      if (chunk.length % this.source.channels !== 0) {
        throw new RangeError(
          `typed-array chunk of ${chunk.length} samples is not whole ${this.source.channels}-channel frames`,
        );
      }
      return chunk;
    }
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError("chunk must be a Uint8Array, Int16Array or Float32Array");
    }
    const total = this.#carry.length + chunk.length;
    const usable = total - (total % this.#inBytesPerFrame);
    // Copy into a fresh, aligned buffer (the chunk may be unaligned or reused by the caller).
    const buf = new Uint8Array(usable);
    const fromCarry = Math.min(this.#carry.length, usable);
    buf.set(this.#carry.subarray(0, fromCarry), 0);
    buf.set(chunk.subarray(0, usable - fromCarry), fromCarry);
    const rest = new Uint8Array(total - usable);
    rest.set(this.#carry.subarray(fromCarry), 0);
    rest.set(chunk.subarray(usable - fromCarry), this.#carry.length - fromCarry);
    this.#carry = rest;
    return this.source.format === "int16" ? new Int16Array(buf.buffer) : new Float32Array(buf.buffer);
  }

  #process(samples: Int16Array | Float32Array, endOfInput: boolean): void {
    const inCh = this.source.channels, outCh = this.output.channels;
    if (!this.#state) {
      if (this.output.format === "pcm16") {
        const ints = samples instanceof Int16Array ? samples : float32ToInt16(samples);
        this.#append(mixInt16(ints, inCh, outCh));
      } else {
        const fl = samples instanceof Float32Array ? samples : int16ToFloat32(samples);
        this.#append(mixFloat32(fl, inCh, outCh));
      }
      return;
    }
    let f: Float32Array<ArrayBuffer> = samples instanceof Int16Array
      ? int16ToFloat32(samples)
      : new Float32Array(samples);
    if (outCh < inCh) f = mixFloat32(f, inCh, outCh) as Float32Array<ArrayBuffer>;
    let r = this.#resample(f, endOfInput);
    if (outCh > inCh) r = mixFloat32(r, inCh, outCh);
    this.#append(this.output.format === "pcm16" ? float32ToInt16(r) : r);
  }

  #resample(fresh: Float32Array<ArrayBuffer>, endOfInput: boolean): Float32Array {
    const ch = this.#srcChannels;
    let input = fresh;
    if (this.#srcCarry.length > 0) {
      input = new Float32Array(this.#srcCarry.length + fresh.length);
      input.set(this.#srcCarry, 0);
      input.set(fresh, this.#srcCarry.length);
      this.#srcCarry = new Float32Array(0);
    }
    const inFrames = input.length / ch;
    const parts: Float32Array[] = [];
    let total = 0;
    let used = 0;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const remaining = inFrames - used;
      const cap = Math.ceil(remaining * this.#ratio) + 512;
      if (this.#resampleOut.length < cap * ch) this.#resampleOut = new Float32Array(cap * ch);
      const res = srcProcess(this.#state!, {
        dataIn: input.subarray(used * ch),
        dataOut: this.#resampleOut,
        inputFrames: remaining,
        outputFrames: cap,
        srcRatio: this.#ratio,
        endOfInput,
        channels: ch,
      });
      used += res.inputFramesUsed;
      if (res.outputFramesGen > 0) {
        parts.push(this.#resampleOut.slice(0, res.outputFramesGen * ch));
        total += res.outputFramesGen * ch;
      }
      const done = endOfInput ? res.outputFramesGen === 0 && used >= inFrames : used >= inFrames;
      if (done) break;
      if (res.inputFramesUsed === 0 && res.outputFramesGen === 0) {
        // No progress: keep the rest for the next call rather than dropping it.
        this.#srcCarry = input.slice(used * ch);
        break;
      }
    }
    if (parts.length === 1) return parts[0];
    const out = new Float32Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  #append(samples: Int16Array | Float32Array): void {
    const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
    const need = this.#pendingLen + bytes.length;
    if (need > this.#pending.length) {
      const grown = new Uint8Array(Math.max(need, this.#pending.length * 2));
      grown.set(this.#pending.subarray(0, this.#pendingLen));
      this.#pending = grown;
    }
    this.#pending.set(bytes, this.#pendingLen);
    this.#pendingLen = need;
  }

  #takeFrames(includePartial: boolean): Uint8Array[] {
    const fb = this.frameBytes;
    const frames: Uint8Array[] = [];
    let off = 0;
    while (this.#pendingLen - off >= fb) {
      frames.push(this.#pending.slice(off, off + fb));
      off += fb;
    }
    if (includePartial && this.#pendingLen - off > 0) {
      frames.push(this.#pending.slice(off, this.#pendingLen));
      off = this.#pendingLen;
    }
    if (off > 0) {
      this.#pending.copyWithin(0, off, this.#pendingLen);
      this.#pendingLen -= off;
    }
    return frames;
  }
}
