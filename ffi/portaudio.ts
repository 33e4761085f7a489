/**
 * Thin bindings to PortAudio v19 (`libportaudio.so.2`, Debian package `libportaudio2`).
 *
 * Only what the microphone driver needs: init/terminate, device and host-API enumeration,
 * format probing and input-only blocking-read streams. `Pa_ReadStream` and
 * `Pa_GetStreamReadAvailable` are declared `nonblocking: true`: they run on a thread of
 * Deno's blocking pool and return promises, so a read never stalls the JS thread (DESIGN
 * fact 3). Everything else is synchronous.
 *
 * Struct layouts (x86_64 / aarch64 LP64, from portaudio.h 19.6.0):
 *   PaDeviceInfo       { i32 structVersion @0; char* name @8; i32 hostApi @16;
 *                        i32 maxInputChannels @20; i32 maxOutputChannels @24;
 *                        f64 defaultLowInputLatency @32; f64 defaultLowOutputLatency @40;
 *                        f64 defaultHighInputLatency @48; f64 defaultHighOutputLatency @56;
 *                        f64 defaultSampleRate @64 }                                 (72 bytes)
 *   PaHostApiInfo      { i32 structVersion @0; i32 type @4; char* name @8; i32 deviceCount @16;
 *                        i32 defaultInputDevice @20; i32 defaultOutputDevice @24 }   (32 bytes)
 *   PaStreamParameters { i32 device @0; i32 channelCount @4; u64 sampleFormat @8;
 *                        f64 suggestedLatency @16; void* hostApiSpecificStreamInfo @24 } (32 bytes)
 */

import { openLibrary } from "./open.ts";

export const LIB_NAME = "libportaudio.so.2";

/** PaSampleFormat values. */
export const paFloat32 = 0x00000001;
export const paInt32 = 0x00000002;
export const paInt16 = 0x00000008;
/** PaStreamFlags values. */
export const paNoFlag = 0;
export const paClipOff = 0x00000001;
export const paDitherOff = 0x00000002;
export const paFramesPerBufferUnspecified = 0;
/** PaDeviceIndex sentinel. */
export const paNoDevice = -1;

/** PaErrorCode values (all negative except paNoError). */
export const PaErrorCode = {
  paNoError: 0,
  paNotInitialized: -10000,
  paUnanticipatedHostError: -9999,
  paInvalidChannelCount: -9998,
  paInvalidSampleRate: -9997,
  paInvalidDevice: -9996,
  paInvalidFlag: -9995,
  paSampleFormatNotSupported: -9994,
  paBadIODeviceCombination: -9993,
  paInsufficientMemory: -9992,
  paBufferTooBig: -9991,
  paBufferTooSmall: -9990,
  paNullCallback: -9989,
  paBadStreamPtr: -9988,
  paTimedOut: -9987,
  paInternalError: -9986,
  paDeviceUnavailable: -9985,
  paIncompatibleHostApiSpecificStreamInfo: -9984,
  paStreamIsStopped: -9983,
  paStreamIsNotStopped: -9982,
  paInputOverflowed: -9981,
  paOutputUnderflowed: -9980,
  paHostApiNotFound: -9979,
  paInvalidHostApi: -9978,
  paCanNotReadFromACallbackStream: -9977,
  paCanNotWriteToACallbackStream: -9976,
  paCanNotReadFromAnOutputOnlyStream: -9975,
  paCanNotWriteToAnInputOnlyStream: -9974,
  paIncompatibleStreamHostApi: -9973,
  paBadBufferPtr: -9972,
} as const;

const SYMBOLS = {
  Pa_Initialize: { parameters: [], result: "i32" },
  Pa_Terminate: { parameters: [], result: "i32" },
  Pa_GetErrorText: { parameters: ["i32"], result: "pointer" },
  Pa_GetVersion: { parameters: [], result: "i32" },
  Pa_GetVersionText: { parameters: [], result: "pointer" },
  Pa_GetHostApiCount: { parameters: [], result: "i32" },
  Pa_GetHostApiInfo: { parameters: ["i32"], result: "pointer" },
  Pa_GetDeviceCount: { parameters: [], result: "i32" },
  Pa_GetDefaultInputDevice: { parameters: [], result: "i32" },
  Pa_GetDeviceInfo: { parameters: ["i32"], result: "pointer" },
  Pa_IsFormatSupported: { parameters: ["buffer", "pointer", "f64"], result: "i32" },
  // (PaStream** out, const PaStreamParameters* in, const PaStreamParameters* out, double rate,
  //  unsigned long framesPerBuffer, PaStreamFlags flags, PaStreamCallback* cb, void* userData)
  Pa_OpenStream: {
    parameters: ["buffer", "buffer", "pointer", "f64", "u64", "u64", "pointer", "pointer"],
    result: "i32",
  },
  Pa_StartStream: { parameters: ["pointer"], result: "i32" },
  Pa_StopStream: { parameters: ["pointer"], result: "i32" },
  Pa_AbortStream: { parameters: ["pointer"], result: "i32" },
  Pa_CloseStream: { parameters: ["pointer"], result: "i32" },
  Pa_IsStreamActive: { parameters: ["pointer"], result: "i32" },
  Pa_ReadStream: { parameters: ["pointer", "buffer", "u64"], result: "i32", nonblocking: true },
  Pa_GetStreamReadAvailable: { parameters: ["pointer"], result: "i64", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

export type PortAudioSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;

/**
 * Deno.dlopen with a clear Error instead of a raw loader message: "<path> not found: install
 * libportaudio2", or "FFI not permitted" without --allow-ffi. Not cached; most callers want loadPortAudio().
 */
export function dlopenPortAudio(path: string = LIB_NAME): Deno.DynamicLibrary<typeof SYMBOLS> {
  return openLibrary(path, SYMBOLS, "install libportaudio2");
}

/** The library's symbols, opened lazily on first use and kept open; throws a clear Error. */
export function loadPortAudio(): PortAudioSymbols {
  lib ??= dlopenPortAudio();
  return lib.symbols;
}

/** True if the library can be loaded (does not throw). */
export function portAudioAvailable(): boolean {
  try {
    loadPortAudio();
    return true;
  } catch {
    return false;
  }
}

function cstr(p: Deno.PointerValue): string | null {
  return p === null ? null : Deno.UnsafePointerView.getCString(p);
}

/** An Error carrying a PortAudio error code and its Pa_GetErrorText message. */
export class PortAudioError extends Error {
  constructor(readonly code: number, readonly call: string) {
    super(`${call}: ${getErrorText(code)} (PaError ${code})`);
    this.name = "PortAudioError";
  }
}

function check(code: number, call: string): number {
  if (code < 0) throw new PortAudioError(code, call);
  return code;
}

export function getErrorText(code: number): string {
  return cstr(loadPortAudio().Pa_GetErrorText(code)) ?? `unknown PaError ${code}`;
}

export function getVersionText(): string {
  return cstr(loadPortAudio().Pa_GetVersionText()) ?? "";
}

export function getVersion(): number {
  return loadPortAudio().Pa_GetVersion();
}

/** Pa_Initialize. Each successful call must be matched by one terminate(). */
export function initialize(): void {
  check(loadPortAudio().Pa_Initialize(), "Pa_Initialize");
}

export function terminate(): void {
  check(loadPortAudio().Pa_Terminate(), "Pa_Terminate");
}

export interface HostApiInfo {
  index: number;
  structVersion: number;
  type: number;
  name: string;
  deviceCount: number;
  defaultInputDevice: number;
  defaultOutputDevice: number;
}

export interface DeviceInfo {
  index: number;
  structVersion: number;
  name: string;
  hostApi: number;
  maxInputChannels: number;
  maxOutputChannels: number;
  defaultLowInputLatency: number;
  defaultLowOutputLatency: number;
  defaultHighInputLatency: number;
  defaultHighOutputLatency: number;
  defaultSampleRate: number;
}

export function getHostApiCount(): number {
  return check(loadPortAudio().Pa_GetHostApiCount(), "Pa_GetHostApiCount");
}

/** Decodes PaHostApiInfo; null when the index is out of range. */
export function getHostApiInfo(index: number): HostApiInfo | null {
  const p = loadPortAudio().Pa_GetHostApiInfo(index);
  if (p === null) return null;
  const v = new Deno.UnsafePointerView(p);
  return {
    index,
    structVersion: v.getInt32(0),
    type: v.getInt32(4),
    name: cstr(v.getPointer(8)) ?? "",
    deviceCount: v.getInt32(16),
    defaultInputDevice: v.getInt32(20),
    defaultOutputDevice: v.getInt32(24),
  };
}

export function getDeviceCount(): number {
  return check(loadPortAudio().Pa_GetDeviceCount(), "Pa_GetDeviceCount");
}

/** Default input device index, or paNoDevice (-1). */
export function getDefaultInputDevice(): number {
  return loadPortAudio().Pa_GetDefaultInputDevice();
}

/** Decodes PaDeviceInfo; null when the index is out of range. */
export function getDeviceInfo(index: number): DeviceInfo | null {
  const p = loadPortAudio().Pa_GetDeviceInfo(index);
  if (p === null) return null;
  const v = new Deno.UnsafePointerView(p);
  return {
    index,
    structVersion: v.getInt32(0),
    name: cstr(v.getPointer(8)) ?? "",
    hostApi: v.getInt32(16),
    maxInputChannels: v.getInt32(20),
    maxOutputChannels: v.getInt32(24),
    defaultLowInputLatency: v.getFloat64(32),
    defaultLowOutputLatency: v.getFloat64(40),
    defaultHighInputLatency: v.getFloat64(48),
    defaultHighOutputLatency: v.getFloat64(56),
    defaultSampleRate: v.getFloat64(64),
  };
}

/** All devices (any direction), decoded. */
export function listDevices(): DeviceInfo[] {
  const n = getDeviceCount();
  const out: DeviceInfo[] = [];
  for (let i = 0; i < n; i++) {
    const d = getDeviceInfo(i);
    if (d) out.push(d);
  }
  return out;
}

export interface InputParameters {
  device: number;
  channelCount: number;
  /** paInt16 or paFloat32 (other PaSampleFormat values pass through). */
  sampleFormat: number;
  /** Seconds; default: the device's defaultLowInputLatency (or 0). */
  suggestedLatency?: number;
}

/** Encodes a PaStreamParameters struct (hostApiSpecificStreamInfo = NULL). */
export function encodeStreamParameters(p: InputParameters): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(32);
  const dv = new DataView(buf.buffer);
  const latency = p.suggestedLatency ?? getDeviceInfo(p.device)?.defaultLowInputLatency ?? 0;
  dv.setInt32(0, p.device, true);
  dv.setInt32(4, p.channelCount, true);
  dv.setBigUint64(8, BigInt(p.sampleFormat), true);
  dv.setFloat64(16, latency, true);
  dv.setBigUint64(24, 0n, true);
  return buf;
}

/** Returns 0 (paFormatIsSupported) or the negative PaError explaining why not. Never throws. */
export function isFormatSupported(input: InputParameters, sampleRate: number): number {
  return loadPortAudio().Pa_IsFormatSupported(encodeStreamParameters(input), null, sampleRate);
}

/** Bytes per sample for paInt16 / paFloat32 / paInt32. */
export function sampleSize(format: number): number {
  switch (format) {
    case paInt16:
      return 2;
    case paFloat32:
    case paInt32:
      return 4;
    default:
      throw new Error(`unsupported PaSampleFormat 0x${format.toString(16)}`);
  }
}

/** An open input-only blocking-read stream. */
export interface PaInputStream {
  readonly ptr: Deno.PointerObject;
  readonly channels: number;
  readonly sampleFormat: number;
  readonly sampleRate: number;
  /** channels * bytes per sample. */
  readonly bytesPerFrame: number;
  /** The pending nonblocking call, if any (reads and read-available are serialized). */
  pending: Promise<unknown> | null;
  closed: boolean;
}

/** Opens an input-only stream with no callback (blocking-read mode). */
export function openInputStream(
  input: InputParameters,
  sampleRate: number,
  framesPerBuffer: number = paFramesPerBufferUnspecified,
  flags: number = paNoFlag,
): PaInputStream {
  const bytesPerFrame = sampleSize(input.sampleFormat) * input.channelCount;
  const out = new BigUint64Array(1);
  const params = encodeStreamParameters(input);
  check(
    loadPortAudio().Pa_OpenStream(
      out,
      params,
      null,
      sampleRate,
      BigInt(framesPerBuffer),
      BigInt(flags),
      null,
      null,
    ),
    "Pa_OpenStream",
  );
  const ptr = Deno.UnsafePointer.create(out[0]);
  if (ptr === null) throw new Error("Pa_OpenStream returned a null stream");
  return {
    ptr,
    channels: input.channelCount,
    sampleFormat: input.sampleFormat,
    sampleRate,
    bytesPerFrame,
    pending: null,
    closed: false,
  };
}

function usable(s: PaInputStream, call: string): Deno.PointerObject {
  if (s.closed) throw new Error(`${call}: stream is closed`);
  if (s.pending) throw new Error(`${call}: a read is pending on this stream (await idle() first)`);
  return s.ptr;
}

/** Resolves once no nonblocking call is pending on the stream (never rejects). */
export async function idle(s: PaInputStream): Promise<void> {
  while (s.pending) await s.pending.catch(() => {});
}

export function startStream(s: PaInputStream): void {
  check(loadPortAudio().Pa_StartStream(usable(s, "Pa_StartStream")), "Pa_StartStream");
}

export function stopStream(s: PaInputStream): void {
  check(loadPortAudio().Pa_StopStream(usable(s, "Pa_StopStream")), "Pa_StopStream");
}

export function abortStream(s: PaInputStream): void {
  check(loadPortAudio().Pa_AbortStream(usable(s, "Pa_AbortStream")), "Pa_AbortStream");
}

/** Pa_CloseStream; a second close is a no-op. Throws while a read is pending. */
export function closeStream(s: PaInputStream): void {
  if (s.closed) return;
  const ptr = usable(s, "Pa_CloseStream");
  s.closed = true;
  check(loadPortAudio().Pa_CloseStream(ptr), "Pa_CloseStream");
}

export function isStreamActive(s: PaInputStream): boolean {
  return check(loadPortAudio().Pa_IsStreamActive(usable(s, "Pa_IsStreamActive")), "Pa_IsStreamActive") === 1;
}

async function serialized<T>(s: PaInputStream, call: string, run: () => Promise<T>): Promise<T> {
  usable(s, call);
  const p = run();
  s.pending = p;
  try {
    return await p;
  } finally {
    s.pending = null;
  }
}

/**
 * Pa_ReadStream off the JS thread. `buffer` must hold at least `frames * bytesPerFrame` bytes
 * (checked) and must not be touched until the promise settles. One call at a time per stream.
 * Resolves `{ overflowed }`: paInputOverflowed is reported, not thrown (the buffer is still
 * filled); any other error throws a PortAudioError.
 */
export function readStream(
  s: PaInputStream,
  buffer: Uint8Array<ArrayBuffer> | Int16Array<ArrayBuffer> | Float32Array<ArrayBuffer>,
  frames: number,
): Promise<{ overflowed: boolean }> {
  if (!Number.isInteger(frames) || frames <= 0) {
    return Promise.reject(new RangeError(`Pa_ReadStream: bad frame count ${frames}`));
  }
  if (buffer.byteLength < frames * s.bytesPerFrame) {
    return Promise.reject(
      new RangeError(`Pa_ReadStream: buffer of ${buffer.byteLength} bytes < ${frames} frames`),
    );
  }
  return serialized(s, "Pa_ReadStream", async () => {
    const code = await loadPortAudio().Pa_ReadStream(s.ptr, buffer, BigInt(frames));
    if (code === PaErrorCode.paInputOverflowed) return { overflowed: true };
    check(code, "Pa_ReadStream");
    return { overflowed: false };
  });
}

/** Pa_GetStreamReadAvailable off the JS thread: frames readable without blocking. */
export function getStreamReadAvailable(s: PaInputStream): Promise<number> {
  return serialized(s, "Pa_GetStreamReadAvailable", async () => {
    const n = Number(await loadPortAudio().Pa_GetStreamReadAvailable(s.ptr));
    return check(n, "Pa_GetStreamReadAvailable");
  });
}
