/**
 * Thin bindings to whisper.cpp 1.8.5 (`libwhisper.so.1.8.5` from the PyPI wheel
 * `pywhispercpp==1.5.1`, kept in its `pywhispercpp.libs/` layout: the library finds its ggml
 * and libgomp neighbours through RPATH $ORIGIN; scripts/setup.sh installs it).
 *
 * Structs passed by value are copied from the library's own defaults
 * (`whisper_*_default_params_by_ref`) and edited at these offsets (whisper.h of v1.8.5, LP64,
 * measured with offsetof): whisper_context_params is 48 bytes (use_gpu @0, flash_attn @1);
 * whisper_full_params is 304 bytes. Both are larger than 16 bytes, so the x86-64 ABI passes
 * them in memory and the field types declared below only need the right size.
 */
import { openLibrary } from "./open.ts";

export const WHISPER_VERSION = "1.8.5";
export const CONTEXT_PARAMS_BYTES = 48;
export const FULL_PARAMS_BYTES = 304;

/** Offsets in whisper_full_params (v1.8.5). */
export const FULL = {
  n_threads: 4, // i32
  n_max_text_ctx: 8, // i32
  translate: 20, // bool
  no_context: 21,
  no_timestamps: 22,
  single_segment: 23,
  print_special: 24,
  print_progress: 25,
  print_realtime: 26,
  print_timestamps: 27,
  max_tokens: 48, // i32, per segment (0 = no limit)
  audio_ctx: 56, // i32
  language: 104, // const char*
  suppress_blank: 113,
  temperature: 116, // f32
  temperature_inc: 128, // f32
  no_speech_thold: 140, // f32
  greedy_best_of: 144, // i32
} as const;

export const WHISPER_SAMPLING_GREEDY = 0;

const ctxParams = { struct: Array(CONTEXT_PARAMS_BYTES / 8).fill("u64") } as const;
const fullParams = { struct: Array(FULL_PARAMS_BYTES / 8).fill("u64") } as const;

const SYMBOLS = {
  whisper_context_default_params_by_ref: { parameters: [], result: "pointer" },
  whisper_full_default_params_by_ref: { parameters: ["i32"], result: "pointer" },
  whisper_free_context_params: { parameters: ["pointer"], result: "void" },
  whisper_free_params: { parameters: ["pointer"], result: "void" },
  whisper_init_from_file_with_params_no_state: {
    parameters: ["buffer", ctxParams],
    result: "pointer",
    nonblocking: true,
  },
  whisper_init_state: { parameters: ["pointer"], result: "pointer", nonblocking: true },
  whisper_free_state: { parameters: ["pointer"], result: "void" },
  whisper_free: { parameters: ["pointer"], result: "void" },
  whisper_full_with_state: {
    parameters: ["pointer", "pointer", fullParams, "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  whisper_full_n_segments_from_state: { parameters: ["pointer"], result: "i32" },
  whisper_full_get_segment_text_from_state: { parameters: ["pointer", "i32"], result: "pointer" },
  whisper_log_set: { parameters: ["function", "pointer"], result: "void" },
  whisper_print_system_info: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

export type WhisperLib = Deno.DynamicLibrary<typeof SYMBOLS>;

let lib: WhisperLib | null = null;
const LOG_CALLBACK = { parameters: ["i32", "pointer", "pointer"], result: "void" } as const;
/** Kept referenced for the process's lifetime: the library holds its pointer. */
export let whisperLogCallback: Deno.UnsafeCallback<typeof LOG_CALLBACK> | null = null;

/** Opens libwhisper once per process and silences its log (it prints to stderr otherwise). */
export function openWhisper(path: string): WhisperLib {
  if (lib) return lib;
  const opened = openLibrary(
    path,
    SYMBOLS,
    "run scripts/setup.sh (it installs whisper.cpp into .tools/whisper)",
  );
  const callback = Deno.UnsafeCallback.threadSafe(LOG_CALLBACK, () => {});
  callback.unref();
  opened.symbols.whisper_log_set(callback.pointer, null);
  whisperLogCallback = callback;
  lib = opened;
  return lib;
}

/** A copy of a struct the library allocated (then freed with `free`). */
export function copyStruct(
  ptr: Deno.PointerObject,
  bytes: number,
  free: (p: Deno.PointerObject) => void,
): Uint8Array {
  const copy = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, bytes).slice(0));
  free(ptr);
  return copy;
}
