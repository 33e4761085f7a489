/**
 * WAV (RIFF, little-endian) and raw PCM16 input for the mic `file` source.
 *
 * Supported encodings: integer PCM 16-bit (format tag 1) and IEEE float 32-bit (tag 3), also
 * when wrapped in WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE); any channel count and sample rate.
 * Unknown chunks (LIST, fact, cue, bext, ...) are skipped. Anything else fails with an Error that
 * names what was found. The result plugs straight into AudioConverter as its SourceFormat.
 */

import type { SourceSampleFormat } from "./convert.ts";

export interface PcmAudio {
  sampleRate: number;
  channels: number;
  format: SourceSampleFormat;
  /** Interleaved little-endian samples, whole frames only, in a buffer of its own. */
  data: Uint8Array<ArrayBuffer>;
  /** Number of frames (samples per channel). */
  frames: number;
}

export class WavError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WavError";
  }
}

const TAG_PCM = 0x0001;
const TAG_FLOAT = 0x0003;
const TAG_EXTENSIBLE = 0xfffe;
const TAG_NAMES: Record<number, string> = {
  0x0002: "MS ADPCM",
  0x0006: "A-law",
  0x0007: "mu-law",
  0x0011: "IMA ADPCM",
  0x0055: "MP3",
};

function fourcc(b: Uint8Array, off: number): string {
  return String.fromCharCode(b[off], b[off + 1], b[off + 2], b[off + 3]);
}

function tagName(tag: number): string {
  return TAG_NAMES[tag] ?? `format tag 0x${tag.toString(16).padStart(4, "0")}`;
}

/** True when the bytes start like a RIFF/WAVE file. */
export function isWav(bytes: Uint8Array): boolean {
  return bytes.length >= 12 && fourcc(bytes, 0) === "RIFF" && fourcc(bytes, 8) === "WAVE";
}

/** Parses a RIFF WAVE file held in memory. Throws WavError on anything unsupported. */
export function parseWav(bytes: Uint8Array): PcmAudio {
  if (bytes.length < 12) throw new WavError(`not a WAV file: only ${bytes.length} bytes`);
  const magic = fourcc(bytes, 0);
  if (magic === "RIFX") throw new WavError("unsupported WAV: big-endian RIFX");
  if (magic === "RF64") throw new WavError("unsupported WAV: RF64");
  if (magic !== "RIFF" || fourcc(bytes, 8) !== "WAVE") {
    throw new WavError("not a WAV file: missing RIFF/WAVE header");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: { tag: number; channels: number; rate: number; blockAlign: number; bits: number } | null = null;
  let off = 12;
  while (off + 8 <= bytes.length) {
    const id = fourcc(bytes, off);
    const size = dv.getUint32(off + 4, true);
    const body = off + 8;
    if (id === "fmt ") {
      if (size < 16 || body + 16 > bytes.length) {
        throw new WavError(`WAV fmt chunk too short (${size} bytes)`);
      }
      let tag = dv.getUint16(body, true);
      const channels = dv.getUint16(body + 2, true);
      const rate = dv.getUint32(body + 4, true);
      const blockAlign = dv.getUint16(body + 12, true);
      const bits = dv.getUint16(body + 14, true);
      if (tag === TAG_EXTENSIBLE) {
        if (size < 40 || body + 40 > bytes.length) {
          throw new WavError("WAV WAVE_FORMAT_EXTENSIBLE fmt chunk too short");
        }
        tag = dv.getUint16(body + 24, true); // first two bytes of the SubFormat GUID
      }
      fmt = { tag, channels, rate, blockAlign, bits };
    } else if (id === "data") {
      if (!fmt) throw new WavError("WAV data chunk before fmt chunk");
      return decodeData(fmt, bytes, body, size);
    }
    off = body + size + (size & 1); // chunks are word-aligned
  }
  throw new WavError(fmt ? "WAV file has no data chunk" : "WAV file has no fmt chunk");
}

function decodeData(
  fmt: { tag: number; channels: number; rate: number; blockAlign: number; bits: number },
  bytes: Uint8Array,
  start: number,
  declared: number,
): PcmAudio {
  let format: SourceSampleFormat;
  if (fmt.tag === TAG_PCM && fmt.bits === 16) format = "int16";
  else if (fmt.tag === TAG_FLOAT && fmt.bits === 32) format = "float32";
  else if (fmt.tag === TAG_PCM) {
    throw new WavError(`unsupported WAV encoding: ${fmt.bits}-bit integer PCM (only 16-bit)`);
  } else if (fmt.tag === TAG_FLOAT) {
    throw new WavError(`unsupported WAV encoding: ${fmt.bits}-bit float (only 32-bit)`);
  } else {
    throw new WavError(`unsupported WAV encoding: ${tagName(fmt.tag)} (only PCM16 and float32)`);
  }
  if (fmt.channels < 1) throw new WavError("WAV declares 0 channels");
  if (fmt.rate < 1) throw new WavError("WAV declares a sample rate of 0");
  const frameSize = fmt.channels * (fmt.bits / 8);
  if (fmt.blockAlign !== frameSize) {
    throw new WavError(`WAV block align ${fmt.blockAlign} does not match ${fmt.channels} x ${fmt.bits}-bit`);
  }
  // Streaming writers leave the size at 0 or 0xFFFFFFFF; truncated files end early. Use what is
  // there, in whole frames.
  const available = bytes.length - start;
  const size = declared === 0 || declared > available ? available : declared;
  const frames = Math.floor(size / frameSize);
  const data = bytes.slice(start, start + frames * frameSize);
  return { sampleRate: fmt.rate, channels: fmt.channels, format, data, frames };
}

export interface RawPcm16Options {
  sampleRate: number;
  channels: number;
}

/** Raw little-endian PCM16 (no header); the caller says the rate and channel count. */
export function parseRawPcm16(bytes: Uint8Array, opts: RawPcm16Options): PcmAudio {
  const { sampleRate, channels } = opts;
  if (!Number.isInteger(sampleRate) || sampleRate < 1) {
    throw new WavError(`raw PCM16 needs a positive integer sample rate, got ${sampleRate}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 64) {
    throw new WavError(`raw PCM16 needs 1..64 channels, got ${channels}`);
  }
  const frameSize = 2 * channels;
  if (bytes.length % frameSize !== 0) {
    throw new WavError(`raw PCM16 length ${bytes.length} is not a multiple of ${frameSize} (${channels} ch)`);
  }
  return { sampleRate, channels, format: "int16", data: bytes.slice(), frames: bytes.length / frameSize };
}

/** A WAV file if it starts with RIFF/WAVE, else raw PCM16 (which needs `raw`). */
export function parseAudio(bytes: Uint8Array, raw?: RawPcm16Options): PcmAudio {
  if (bytes.length >= 4 && ["RIFF", "RIFX", "RF64"].includes(fourcc(bytes, 0))) return parseWav(bytes);
  if (!raw) throw new WavError("not a WAV file; raw PCM16 needs sample_rate_hz and channels");
  return parseRawPcm16(bytes, raw);
}

/** Reads and parses a WAV or raw PCM16 file. */
export async function readAudioFile(path: string, raw?: RawPcm16Options): Promise<PcmAudio> {
  return parseAudio(await Deno.readFile(path), raw);
}

/** Encodes PCM16 or float32 samples as a canonical 44-byte-header WAV file. */
export function encodeWav(a: Omit<PcmAudio, "frames">): Uint8Array<ArrayBuffer> {
  const bits = a.format === "int16" ? 16 : 32;
  const out = new Uint8Array(44 + a.data.length);
  const dv = new DataView(out.buffer);
  const ascii = (off: number, s: string) => {
    for (let i = 0; i < 4; i++) out[off + i] = s.charCodeAt(i);
  };
  ascii(0, "RIFF");
  dv.setUint32(4, 36 + a.data.length, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  dv.setUint32(16, 16, true);
  dv.setUint16(20, a.format === "int16" ? TAG_PCM : TAG_FLOAT, true);
  dv.setUint16(22, a.channels, true);
  dv.setUint32(24, a.sampleRate, true);
  dv.setUint32(28, (a.sampleRate * a.channels * bits) / 8, true);
  dv.setUint16(32, (a.channels * bits) / 8, true);
  dv.setUint16(34, bits, true);
  ascii(36, "data");
  dv.setUint32(40, a.data.length, true);
  out.set(a.data, 44);
  return out;
}
