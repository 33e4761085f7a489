/**
 * The offline recogniser behind the `local_asr` backend kind: whisper.cpp (ffi/whisper.ts)
 * with tiny.en converted to ggml by scripts/setup.sh. One model per process, shared by every
 * stream; each stream has its own whisper state, and decodes run off the main thread
 * (`nonblocking` FFI), so the event loop, the WebSockets and other guests keep going.
 *
 * Decoding settings measured on these machines (issue 9): `audio_ctx` ≈ samples/320 + 16
 * instead of the 30 s window (5–8× cheaper), 1 s of trailing silence (else Whisper loops and
 * repeats sentences), greedy, no timestamps, one segment, no temperature fallback. The model
 * is warmed up once when it loads.
 */
import {
  CONTEXT_PARAMS_BYTES,
  copyStruct,
  FULL,
  FULL_PARAMS_BYTES,
  openWhisper,
  WHISPER_SAMPLING_GREEDY,
  type WhisperLib,
} from "../../../ffi/whisper.ts";

export const WHISPER_RATE = 16000;
/** Samples of one audio_ctx step (30 s = 1500 steps). */
const SAMPLES_PER_CTX = 320;
const MAX_AUDIO_CTX = 1500;
/** Longest audio one decode takes (Whisper's window, with the trailing silence). */
export const MAX_DECODE_SAMPLES = 29 * WHISPER_RATE;
export const TRAILING_SILENCE_SAMPLES = WHISPER_RATE;

export interface WhisperFiles {
  lib: string;
  model: string;
}

const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
export const WHISPER_DIR = `${root}/.tools/whisper`;
/** The library's name inside the wheel's `pywhispercpp.libs/` (auditwheel's hashed name). */
export const WHISPER_LIB_NAME = "libwhisper-1ab89ae8.so.1.8.5";
export const WHISPER_MODEL_NAME = "ggml-tiny.en.bin";

/** Where setup put whisper.cpp and the model; `model` may name another ggml file. */
export function whisperFiles(model?: string): WhisperFiles {
  const isPath = model !== undefined && (model.includes("/") || model.endsWith(".bin"));
  return {
    lib: `${WHISPER_DIR}/pywhispercpp.libs/${WHISPER_LIB_NAME}`,
    model: isPath ? model! : `${WHISPER_DIR}/${WHISPER_MODEL_NAME}`,
  };
}

/** Whether the files exist (tests skip the recogniser on a machine without setup). */
export function whisperInstalled(files = whisperFiles()): boolean {
  try {
    return Deno.statSync(files.lib).isFile && Deno.statSync(files.model).isFile;
  } catch {
    return false;
  }
}

const LANGUAGE = new TextEncoder().encode("en\0");

/**
 * Removes what Whisper prints for non-speech (`[BLANK_AUDIO]`, `(wind blowing)`) and the loops
 * it falls into on cut-off audio: a sentence or a run of words repeated back to back is kept
 * once.
 */
export function cleanTranscript(text: string): string {
  let t = text.replace(/\[[^\]]*\]|\([^)]*\)|\*[^*]*\*/g, " ").replace(/\s+/g, " ").trim();
  const sentences = t.match(/[^.!?]+[.!?]*/g) ?? [];
  const kept: string[] = [];
  const plain = (x: string) => x.toLowerCase().replace(/[^a-z0-9' ]+/g, " ").replace(/\s+/g, " ").trim();
  for (const s of sentences) {
    const p = plain(s);
    // A sentence said again, whole or cut short, after itself: Whisper looping, not speech.
    if (p !== "" && kept.some((k) => plain(k).startsWith(p)) && p.split(" ").length >= 2) continue;
    kept.push(s);
  }
  t = kept.join("").replace(/\s+/g, " ").trim();
  // A run of 1–6 words repeated three or more times in a row is a decoding loop.
  const words = t.split(" ");
  for (let n = 1; n <= 6; n++) {
    for (let i = 0; i + 3 * n <= words.length; i++) {
      const a = words.slice(i, i + n).join(" ").toLowerCase();
      let reps = 1;
      while (words.slice(i + reps * n, i + (reps + 1) * n).join(" ").toLowerCase() === a) reps++;
      if (reps >= 3) words.splice(i + n, (reps - 1) * n);
    }
  }
  return words.join(" ").trim();
}

export interface DecodeResult {
  text: string;
  /** Wall time of the decode. */
  ms: number;
  /** Audio seconds decoded (without the added silence). */
  seconds: number;
}

/** A loaded model. */
export class WhisperEngine {
  private readonly defaults: Uint8Array;
  /** Decodes run and audio seconds decoded, all streams (benches). */
  decodes = 0;
  decodedSeconds = 0;

  private constructor(
    readonly lib: WhisperLib,
    readonly ctx: Deno.PointerObject,
    readonly files: WhisperFiles,
  ) {
    const s = lib.symbols;
    this.defaults = copyStruct(
      s.whisper_full_default_params_by_ref(WHISPER_SAMPLING_GREEDY)!,
      FULL_PARAMS_BYTES,
      (p) => s.whisper_free_params(p),
    );
  }

  static async load(files: WhisperFiles): Promise<WhisperEngine> {
    for (const [what, path] of [["library", files.lib], ["model", files.model]]) {
      try {
        Deno.statSync(path);
      } catch {
        throw new Error(`local_asr: whisper ${what} not found at ${path}: run scripts/setup.sh`);
      }
    }
    const lib = openWhisper(files.lib);
    const s = lib.symbols;
    const cparams = copyStruct(
      s.whisper_context_default_params_by_ref()!,
      CONTEXT_PARAMS_BYTES,
      (p) => s.whisper_free_context_params(p),
    );
    cparams[0] = 0; // use_gpu: none here
    const path = new TextEncoder().encode(files.model + "\0");
    const ctx = await offThread(s.whisper_init_from_file_with_params_no_state(path, cparams));
    if (!ctx) throw new Error(`local_asr: whisper could not load the model ${files.model}`);
    const engine = new WhisperEngine(lib, ctx, files);
    // Warm up once: the first decode pays for allocations and page faults.
    const warm = await engine.stream();
    await warm.transcribe(new Float32Array(WHISPER_RATE / 2), 1);
    warm.free();
    engine.decodes = 0;
    engine.decodedSeconds = 0;
    return engine;
  }

  /** A per-stream decoder state. */
  async stream(): Promise<WhisperStream> {
    const state = await offThread(this.lib.symbols.whisper_init_state(this.ctx));
    if (!state) throw new Error("local_asr: whisper could not allocate a decoder state");
    return new WhisperStream(this, state);
  }

  /** Decode parameters for `samples` (with the silence already added) on `threads` threads. */
  params(samples: number, threads: number): Uint8Array {
    const p = this.defaults.slice();
    const v = new DataView(p.buffer);
    v.setInt32(FULL.n_threads, threads, true);
    for (const at of [FULL.print_special, FULL.print_progress, FULL.print_realtime, FULL.print_timestamps]) {
      p[at] = 0;
    }
    p[FULL.translate] = 0;
    p[FULL.no_context] = 1;
    p[FULL.no_timestamps] = 1;
    p[FULL.single_segment] = 1;
    v.setInt32(FULL.audio_ctx, Math.min(MAX_AUDIO_CTX, Math.ceil(samples / SAMPLES_PER_CTX) + 16), true);
    v.setBigUint64(FULL.language, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(LANGUAGE))), true);
    v.setFloat32(FULL.temperature, 0, true);
    v.setFloat32(FULL.temperature_inc, 0, true);
    // Speech runs at about 3 words (4 tokens) a second: more than 8 a second is a loop.
    const seconds = Math.max(0, samples - TRAILING_SILENCE_SAMPLES) / WHISPER_RATE;
    v.setInt32(FULL.max_tokens, Math.ceil(seconds * 8) + 8, true);
    return p;
  }
}

/** Calls running on whisper's threads (`nonblocking` symbols: decodes, a model or state load). */
const running = new Set<Promise<unknown>>();

/** Runs a `nonblocking` whisper call, known to decodesDone until it returns. */
async function offThread<T>(call: Promise<T>): Promise<T> {
  running.add(call);
  try {
    return await call;
  } finally {
    running.delete(call);
  }
}

/**
 * Resolves once no whisper call runs on its threads. A process must not exit under one: exit()
 * runs libwhisper's and ggml's static destructors while that thread still uses them, and the
 * process dies of SIGSEGV (seen when a time limit ended a guest mid-decode, and `spear` exited).
 * Each call is bounded (a decode by MAX_DECODE_SAMPLES), so this waits seconds at most.
 */
export async function decodesDone(): Promise<void> {
  while (running.size > 0) await Promise.allSettled([...running]);
}

/** One stream's decoder: never more than one decode at a time (callers chain). */
export class WhisperStream {
  busy = false;
  private freed = false;

  constructor(readonly engine: WhisperEngine, private readonly state: Deno.PointerObject) {}

  /** Transcribes 16 kHz mono audio (1 s of silence is added here). */
  async transcribe(audio: Float32Array, threads: number): Promise<DecodeResult> {
    if (this.busy) throw new Error("a decode is already running on this stream");
    if (this.freed) return { text: "", ms: 0, seconds: 0 };
    const clipped = audio.length > MAX_DECODE_SAMPLES
      ? audio.subarray(audio.length - MAX_DECODE_SAMPLES)
      : audio;
    const samples = new Float32Array(clipped.length + TRAILING_SILENCE_SAMPLES);
    samples.set(clipped);
    const lib = this.engine.lib.symbols;
    this.busy = true;
    const started = performance.now();
    let rc: number;
    try {
      rc = await offThread(lib.whisper_full_with_state(
        this.engine.ctx,
        this.state,
        this.engine.params(samples.length, threads),
        new Uint8Array(samples.buffer),
        samples.length,
      ));
    } finally {
      this.busy = false;
    }
    const ms = performance.now() - started;
    const seconds = clipped.length / WHISPER_RATE;
    this.engine.decodes++;
    this.engine.decodedSeconds += seconds;
    if (this.freed) {
      this.release();
      return { text: "", ms, seconds };
    }
    if (rc !== 0) throw new Error(`whisper_full failed (${rc})`);
    let text = "";
    const n = lib.whisper_full_n_segments_from_state(this.state);
    for (let i = 0; i < n; i++) {
      const p = lib.whisper_full_get_segment_text_from_state(this.state, i);
      if (p) text += new Deno.UnsafePointerView(p).getCString();
    }
    return { text: cleanTranscript(text), ms, seconds };
  }

  /** Frees the state now, or when the running decode ends. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (!this.busy) this.release();
  }

  private released = false;
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.engine.lib.symbols.whisper_free_state(this.state);
  }
}

const engines = new Map<string, Promise<WhisperEngine>>();

/** The process's engine for a model, loaded (and warmed up) on first use. */
export function loadEngine(files: WhisperFiles): Promise<WhisperEngine> {
  let engine = engines.get(files.model);
  if (!engine) {
    engine = WhisperEngine.load(files);
    engines.set(files.model, engine);
    engine.catch(() => engines.delete(files.model));
  }
  return engine;
}
