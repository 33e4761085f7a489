/**
 * Thin bindings to libsamplerate 0.2 (`libsamplerate.so.0`, Debian package `libsamplerate0`).
 *
 * SRC_DATA layout (LP64, from samplerate.h 0.2.2), 64 bytes:
 *   const float* data_in @0; float* data_out @8; long input_frames @16; long output_frames @24;
 *   long input_frames_used @32; long output_frames_gen @40; int end_of_input @48;
 *   (4 bytes padding) double src_ratio @56.
 * Frames are counted per channel group: one frame = `channels` interleaved floats.
 */

import { openLibrary } from "./open.ts";

export const LIB_NAME = "libsamplerate.so.0";

/** Converter types (samplerate.h enum). */
export const SRC_SINC_BEST_QUALITY = 0;
export const SRC_SINC_MEDIUM_QUALITY = 1;
export const SRC_SINC_FASTEST = 2;
export const SRC_ZERO_ORDER_HOLD = 3;
export const SRC_LINEAR = 4;

export const SRC_DATA_SIZE = 64;

const SYMBOLS = {
  src_new: { parameters: ["i32", "i32", "buffer"], result: "pointer" },
  src_process: { parameters: ["pointer", "buffer"], result: "i32" },
  src_reset: { parameters: ["pointer"], result: "i32" },
  src_delete: { parameters: ["pointer"], result: "pointer" },
  src_strerror: { parameters: ["i32"], result: "pointer" },
  src_get_name: { parameters: ["i32"], result: "pointer" },
  src_get_version: { parameters: [], result: "pointer" },
  src_is_valid_ratio: { parameters: ["f64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export type SampleRateSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;

/**
 * Deno.dlopen with a clear Error instead of a raw loader message: "<path> not found: install
 * libsamplerate0", or "FFI not permitted" without --allow-ffi. Not cached; most callers want loadSampleRate().
 */
export function dlopenSampleRate(path: string = LIB_NAME): Deno.DynamicLibrary<typeof SYMBOLS> {
  return openLibrary(path, SYMBOLS, "install libsamplerate0");
}

/** The library's symbols, opened lazily on first use and kept open; throws a clear Error. */
export function loadSampleRate(): SampleRateSymbols {
  lib ??= dlopenSampleRate();
  return lib.symbols;
}

function cstr(p: Deno.PointerValue): string | null {
  return p === null ? null : Deno.UnsafePointerView.getCString(p);
}

export function srcStrerror(code: number): string {
  return cstr(loadSampleRate().src_strerror(code)) ?? `libsamplerate error ${code}`;
}

export function srcGetName(converterType: number): string | null {
  return cstr(loadSampleRate().src_get_name(converterType));
}

export function srcGetVersion(): string {
  return cstr(loadSampleRate().src_get_version()) ?? "";
}

export function srcIsValidRatio(ratio: number): boolean {
  return loadSampleRate().src_is_valid_ratio(ratio) !== 0;
}

/** An Error carrying a libsamplerate error code and its src_strerror text. */
export class SampleRateError extends Error {
  constructor(readonly code: number, readonly call: string) {
    super(`${call}: ${srcStrerror(code)} (error ${code})`);
    this.name = "SampleRateError";
  }
}

/** src_new: a new converter state for `channels` interleaved channels. */
export function srcNew(converterType: number, channels: number): Deno.PointerObject {
  const err = new Int32Array(1);
  const state = loadSampleRate().src_new(converterType, channels, err);
  if (state === null) throw new SampleRateError(err[0], "src_new");
  return state;
}

export interface SrcProcessArgs {
  /** Interleaved input; `inputFrames * channels` floats are read. */
  dataIn: Float32Array<ArrayBuffer>;
  /** Interleaved output; up to `outputFrames * channels` floats are written. */
  dataOut: Float32Array<ArrayBuffer>;
  inputFrames: number;
  outputFrames: number;
  /** Output rate / input rate. */
  srcRatio: number;
  endOfInput: boolean;
  /** Channels of the state; used to bounds-check the arrays. */
  channels: number;
}

export interface SrcProcessResult {
  inputFramesUsed: number;
  outputFramesGen: number;
}

// libsamplerate 0.2.2 silently does nothing when data_in is NULL, even with end_of_input set
// (the tail is never drained; measured), so an empty array is passed as this dummy's address.
const EMPTY = new Float32Array(1);

/** Encodes SRC_DATA for src_process (exported for tests of the layout). */
export function encodeSrcData(a: SrcProcessArgs): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(SRC_DATA_SIZE);
  const dv = new DataView(buf.buffer);
  const addr = (f: Float32Array<ArrayBuffer>) =>
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(f.length === 0 ? EMPTY : f)));
  dv.setBigUint64(0, addr(a.dataIn), true);
  dv.setBigUint64(8, addr(a.dataOut), true);
  dv.setBigInt64(16, BigInt(a.inputFrames), true);
  dv.setBigInt64(24, BigInt(a.outputFrames), true);
  dv.setBigInt64(32, 0n, true);
  dv.setBigInt64(40, 0n, true);
  dv.setInt32(48, a.endOfInput ? 1 : 0, true);
  dv.setFloat64(56, a.srcRatio, true);
  return buf;
}

/**
 * src_process with bounds checks (array lengths vs frame counts, so a bad count can never make
 * the native side read or write out of bounds). Throws SampleRateError on failure.
 */
export function srcProcess(state: Deno.PointerObject, a: SrcProcessArgs): SrcProcessResult {
  if (
    !Number.isInteger(a.inputFrames) || !Number.isInteger(a.outputFrames) || a.inputFrames < 0 ||
    a.outputFrames < 0 || a.inputFrames * a.channels > a.dataIn.length ||
    a.outputFrames * a.channels > a.dataOut.length
  ) {
    throw new RangeError(
      `src_process: frame counts ${a.inputFrames}/${a.outputFrames} exceed buffers ` +
        `${a.dataIn.length}/${a.dataOut.length} floats at ${a.channels} channels`,
    );
  }
  const data = encodeSrcData(a);
  const code = loadSampleRate().src_process(state, data);
  if (code !== 0) throw new SampleRateError(code, "src_process");
  const dv = new DataView(data.buffer);
  return {
    inputFramesUsed: Number(dv.getBigInt64(32, true)),
    outputFramesGen: Number(dv.getBigInt64(40, true)),
  };
}

export function srcReset(state: Deno.PointerObject): void {
  const code = loadSampleRate().src_reset(state);
  if (code !== 0) throw new SampleRateError(code, "src_reset");
}

/** src_delete; always returns null (the C function's result). */
export function srcDelete(state: Deno.PointerObject): null {
  loadSampleRate().src_delete(state);
  return null;
}
