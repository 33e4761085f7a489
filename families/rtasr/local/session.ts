/**
 * One offline realtime transcription session: the server side of OpenAI's GA realtime
 * transcription protocol (anchors §1.3–1.4) over the local Whisper engine. The `local`
 * transport feeds it directly; `spear asr-server` feeds it from a WebSocket. Either way it
 * emits the same server events, so a client cannot tell it from the service but by quality:
 *
 *   input_audio_buffer.speech_started → (conversation.item.input_audio_transcription.delta)*
 *   → input_audio_buffer.speech_stopped → input_audio_buffer.committed
 *   → conversation.item.input_audio_transcription.delta? → …completed
 *
 * Audio is pcm16 mono at 24 kHz (the only GA rate). Server VAD is the host's own (energy with
 * an adaptive noise floor, on 20 ms frames): `silence_duration_ms` of quiet ends an utterance,
 * `prefix_padding_ms` is kept before its start. With turn detection off (null: manual or
 * client_commit segmentation) only `input_audio_buffer.commit` ends one.
 *
 * Whisper does not stream: partial results come from re-decoding the growing utterance on one
 * thread, never more than one decode at a time per session; a delta carries the words two
 * partials in a row agree on (local agreement). The final decode gives `completed`.
 */
import type { JsonObject } from "../../../runtime/json.ts";
import { isJsonObject } from "../../../runtime/json.ts";
import type { WhisperStream } from "./engine.ts";

export const INPUT_RATE = 24000;
const FRAME = 480; // 20 ms at 24 kHz
/** Least audio a commit takes, as OpenAI (and speaches) require. */
export const MIN_COMMIT_MS = 100;
/** An utterance is cut here (Whisper's window is 30 s, with its trailing silence). */
export const MAX_UTTERANCE_MS = 28000;
/**
 * Threads of the final decode. One: measured on these 2-core machines, whisper.cpp on two
 * threads (OpenMP barriers) was up to 20× slower than on one whenever the other core was busy,
 * and one thread decodes an utterance in a tenth of its length anyway. It also keeps a stream
 * at one core.
 */
export const FINAL_THREADS = 1;
/** Partials: at least this much new speech since the previous one. */
export const PARTIAL_EVERY_MS = 450;

export interface TurnDetection {
  type: "server_vad";
  threshold: number;
  prefix_padding_ms: number;
  silence_duration_ms: number;
}

export function parseTurnDetection(td: unknown): TurnDetection | null {
  if (!isJsonObject(td)) return null;
  const n = (v: unknown, d: number) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : d);
  return {
    type: "server_vad",
    threshold: Math.min(1, n(td.threshold, 0.5)),
    prefix_padding_ms: n(td.prefix_padding_ms, 300),
    silence_duration_ms: n(td.silence_duration_ms, 500),
  };
}

/** 24 kHz → 16 kHz: a short low-pass (cut below 8 kHz) then 3:2 linear interpolation. */
export function resample24to16(pcm: Int16Array): Float32Array {
  const n = Math.floor((pcm.length * 2) / 3);
  const out = new Float32Array(n);
  const at = (i: number) => (i < 0 || i >= pcm.length ? 0 : pcm[i]) / 32768;
  // 5-tap binomial low-pass: enough for speech into Whisper (its mel bank stops at 8 kHz).
  const lp = (i: number) => (at(i - 2) + 4 * at(i - 1) + 6 * at(i) + 4 * at(i + 1) + at(i + 2)) / 16;
  for (let k = 0; k < n; k++) {
    const t = k * 1.5;
    const i = Math.floor(t);
    const f = t - i;
    out[k] = f === 0 ? lp(i) : lp(i) * (1 - f) + lp(i + 1) * f;
  }
  return out;
}

const norm = (w: string) => w.toLowerCase().replace(/[^a-z0-9']/g, "");

/** Whitespace-separated tokens (punctuation kept). */
export function tokens(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== "");
}

/** How many leading tokens two hypotheses agree on (compared without case and punctuation). */
export function agreed(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && norm(a[n]) === norm(b[n])) n++;
  return n;
}

/**
 * The text after the `sent` tokens of `next`, when `next` still begins with them (compared
 * without case and punctuation); null when it diverged or adds nothing.
 */
export function deltaOf(sent: readonly string[], next: string): string | null {
  const t = tokens(next);
  if (agreed(sent, t) < sent.length || t.length === sent.length) return null;
  return (sent.length === 0 ? "" : " ") + t.slice(sent.length).join(" ");
}

interface Utterance {
  itemId: string;
  /** Sample (session clock) where the item's audio starts (prefix included). */
  start: number;
  /** Speech start (for partial pacing). */
  speechStart: number;
  end?: number;
  /** Tokens already sent in deltas. */
  sent: string[];
  /** The previous partial's tokens (words two partials agree on are stable). */
  lastHypothesis: string[];
  lastPartialAt: number;
  /** Partial decodes run for this item. */
  partials: number;
}

export interface SessionOptions {
  /** Server events go here, one JSON text each. */
  emit: (event: string) => void;
  /** The session's decoder (one per session). */
  decoder: WhisperStream;
  model?: string;
  turnDetection: TurnDetection | null;
  /** Timing hooks for benches and tests. */
  onCompleted?: (
    info: { itemId: string; transcript: string; speechEndedAt: number; decodeMs: number },
  ) => void;
}

let nextSession = 1;

export class LocalAsrSession {
  readonly id = `sess_local_${(nextSession++).toString().padStart(4, "0")}`;
  private td: TurnDetection | null;
  private model: string;
  /** Everything appended since the last commit/clear, as chunks; `base` is its first sample. */
  private chunks: Int16Array[] = [];
  private buffered = 0;
  private base = 0;
  /** Samples received in the session. */
  private total = 0;
  private events = 0;
  private items = 0;
  private previousItem: string | null = null;
  private closed = false;
  /** VAD. */
  private pending = new Int16Array(0);
  private noise = 0.003;
  private speechRun = 0;
  private silenceRun = 0;
  private current: Utterance | null = null;
  /** The decode chain: never more than one decode at a time. */
  private chain: Promise<void> = Promise.resolve();
  private finals = 0;
  /** Wall time at which each sample count was reached (for end-of-speech latency). */
  private arrivals: { sample: number; at: number }[] = [];

  constructor(private readonly opts: SessionOptions) {
    this.td = opts.turnDetection;
    this.model = opts.model ?? "whisper-tiny.en";
  }

  private send(event: JsonObject): void {
    if (this.closed) return;
    this.opts.emit(JSON.stringify({ type: event.type, event_id: `event_${++this.events}`, ...event }));
  }

  sessionObject(): JsonObject {
    return {
      object: "realtime.transcription_session",
      id: this.id,
      type: "transcription",
      audio: {
        input: {
          format: { type: "audio/pcm", rate: INPUT_RATE },
          transcription: { model: this.model, language: "en" },
          turn_detection: this.td,
          noise_reduction: null,
        },
      },
      include: [],
    };
  }

  /** `session.created`, once, when a client connects. */
  created(): void {
    this.send({ type: "session.created", session: this.sessionObject() });
  }

  setTurnDetection(td: TurnDetection | null): void {
    this.td = td;
    if (!td && this.current) this.current = null; // manual from now on: the buffer waits for a commit
  }

  /** pcm16 little-endian mono 24 kHz. */
  appendAudio(bytes: Uint8Array): void {
    if (this.closed || bytes.length < 2) return;
    const pcm = new Int16Array(bytes.slice(0, bytes.length & ~1).buffer);
    this.chunks.push(pcm);
    this.buffered += pcm.length;
    this.total += pcm.length;
    this.arrivals.push({ sample: this.total, at: performance.now() });
    if (this.arrivals.length > 512) this.arrivals.splice(0, 256);
    if (this.td) this.vad(pcm);
  }

  /** One client event (text). Unknown or invalid events get an `error` event, as OpenAI. */
  clientEvent(text: string): void {
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch (e) {
      return this.error("invalid_request_error", "invalid_json", `Invalid JSON: ${(e as Error).message}`);
    }
    if (!isJsonObject(event) || typeof event.type !== "string") {
      return this.error("invalid_request_error", "invalid_event", "The event must be an object with a type");
    }
    const eventId = typeof event.event_id === "string" ? event.event_id : undefined;
    switch (event.type) {
      case "input_audio_buffer.append": {
        if (typeof event.audio !== "string") {
          return this.error("invalid_request_error", "invalid_value", "audio must be base64 text", eventId);
        }
        let bytes: Uint8Array;
        try {
          bytes = Uint8Array.fromBase64(event.audio);
        } catch {
          return this.error("invalid_request_error", "invalid_value", "audio is not valid base64", eventId);
        }
        return this.appendAudio(bytes);
      }
      case "input_audio_buffer.commit":
        return this.commit(eventId);
      case "input_audio_buffer.clear":
        this.chunks = [];
        this.base = this.total;
        this.buffered = 0;
        this.current = null;
        this.speechRun = this.silenceRun = 0;
        return this.send({ type: "input_audio_buffer.cleared" });
      case "session.update":
      case "transcription_session.update": {
        const session = isJsonObject(event.session) ? event.session : {};
        const input = isJsonObject(session.audio) && isJsonObject(session.audio.input)
          ? session.audio.input
          : session;
        const tdKey = "turn_detection" in input ? "turn_detection" : undefined;
        if (tdKey) this.setTurnDetection(parseTurnDetection(input.turn_detection));
        const tr = input.transcription ?? input.input_audio_transcription;
        if (isJsonObject(tr) && typeof tr.model === "string") this.model = tr.model;
        return this.send({
          type: event.type === "session.update" ? "session.updated" : "transcription_session.updated",
          session: this.sessionObject(),
        });
      }
      default:
        return this.error(
          "invalid_request_error",
          "unknown_event",
          `Unknown event type: ${event.type}`,
          eventId,
        );
    }
  }

  private error(type: string, code: string, message: string, eventId?: string): void {
    this.send({ type: "error", error: { type, code, message, param: null, event_id: eventId ?? null } });
  }

  private ms(samples: number): number {
    return Math.round((samples * 1000) / INPUT_RATE);
  }

  /** The buffer's samples from session sample `from` to `to`. */
  private audio(from: number, to: number): Int16Array {
    const out = new Int16Array(Math.max(0, to - from));
    let at = this.base;
    for (const c of this.chunks) {
      const lo = Math.max(from, at), hi = Math.min(to, at + c.length);
      if (hi > lo) out.set(c.subarray(lo - at, hi - at), lo - from);
      at += c.length;
      if (at >= to) break;
    }
    return out;
  }

  /** Drops buffered audio before session sample `upTo`. */
  private consume(upTo: number): void {
    while (this.chunks.length > 0 && this.base + this.chunks[0].length <= upTo) {
      this.base += this.chunks[0].length;
      this.buffered -= this.chunks[0].length;
      this.chunks.shift();
    }
    if (this.chunks.length > 0 && this.base < upTo) {
      const cut = upTo - this.base;
      this.chunks[0] = this.chunks[0].subarray(cut);
      this.buffered -= cut;
      this.base = upTo;
    }
  }

  private commit(eventId?: string): void {
    const u = this.current;
    const from = u ? u.start : this.base;
    const to = this.total;
    const ms = this.ms(to - from);
    if (to - from < (MIN_COMMIT_MS * INPUT_RATE) / 1000) {
      return this.error(
        "invalid_request_error",
        "input_audio_buffer_commit_empty",
        `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, ` +
          `but buffer only has ${ms.toFixed(2)}ms of audio.`,
        eventId,
      );
    }
    const item = u ?? this.newItem(from);
    item.end = to;
    this.current = null;
    this.speechRun = this.silenceRun = 0;
    this.finish(item);
  }

  private newItem(start: number): Utterance {
    return {
      itemId: `item_${this.id.slice(-4)}_${(++this.items).toString().padStart(4, "0")}`,
      start,
      speechStart: start,
      sent: [],
      lastHypothesis: [],
      lastPartialAt: start,
      partials: 0,
    };
  }

  /** Energy VAD over 20 ms frames, with hysteresis. */
  private vad(pcm: Int16Array): void {
    const td = this.td!;
    let data = pcm;
    if (this.pending.length > 0) {
      data = new Int16Array(this.pending.length + pcm.length);
      data.set(this.pending);
      data.set(pcm, this.pending.length);
    }
    let off = 0;
    const frameStart = this.total - data.length;
    for (; off + FRAME <= data.length; off += FRAME) {
      let sum = 0;
      for (let i = off; i < off + FRAME; i++) sum += data[i] * data[i];
      const rms = Math.sqrt(sum / FRAME) / 32768;
      // threshold 0.5 → −42 dBFS; 0.9 → −36 dBFS; 0.1 → −56 dBFS.
      const floor = Math.pow(10, (-60 + 36 * td.threshold) / 20);
      const speech = rms > Math.max(floor, this.noise * 3.5);
      if (!speech) this.noise = this.noise * 0.95 + rms * 0.05;
      else this.noise = Math.min(this.noise * 1.002, 0.05);
      this.frame(speech, frameStart + off + FRAME);
    }
    this.pending = data.slice(off);
  }

  private frame(speech: boolean, endSample: number): void {
    const td = this.td!;
    const u = this.current;
    if (!u) {
      this.speechRun = speech ? this.speechRun + 1 : 0;
      if (this.speechRun >= 3) {
        const speechStart = endSample - this.speechRun * FRAME;
        const start = Math.max(
          this.base,
          speechStart - Math.round((td.prefix_padding_ms * INPUT_RATE) / 1000),
        );
        const item = this.newItem(start);
        item.speechStart = speechStart;
        item.lastPartialAt = speechStart;
        this.current = item;
        this.silenceRun = 0;
        this.consume(start);
        this.send({
          type: "input_audio_buffer.speech_started",
          audio_start_ms: this.ms(start),
          item_id: item.itemId,
        });
      } else if (this.buffered > INPUT_RATE * 2) {
        this.consume(this.total - INPUT_RATE); // keep 1 s of history for the prefix padding
      }
      return;
    }
    this.silenceRun = speech ? 0 : this.silenceRun + 1;
    const silentMs = this.silenceRun * 20;
    if (silentMs >= td.silence_duration_ms || this.ms(endSample - u.start) >= MAX_UTTERANCE_MS) {
      u.end = endSample;
      this.current = null;
      this.speechRun = 0;
      this.send({
        type: "input_audio_buffer.speech_stopped",
        audio_end_ms: this.ms(endSample),
        item_id: u.itemId,
      });
      this.finish(u);
      return;
    }
    if (
      this.ms(endSample - u.lastPartialAt) >= PARTIAL_EVERY_MS && !this.opts.decoder.busy && this.finals === 0
    ) {
      u.lastPartialAt = endSample;
      this.partial(u, endSample);
    }
  }

  /** A partial decode of the utterance so far: one thread, skipped when a decode is running. */
  private partial(u: Utterance, upTo: number): void {
    const audio = resample24to16(this.audio(u.start, upTo));
    u.partials++;
    this.chain = this.chain.then(async () => {
      if (this.closed || u.end !== undefined) return;
      const r = await this.opts.decoder.transcribe(audio, 1).catch(() => null);
      if (!r || this.closed || u.end !== undefined) return;
      // Local agreement: a word is sent once two partials in a row agree on it and it is not
      // the last one (which the end of the audio may have cut).
      const hyp = tokens(r.text);
      const stable = Math.min(agreed(u.lastHypothesis, hyp), hyp.length - 1);
      u.lastHypothesis = hyp;
      if (stable <= u.sent.length || agreed(u.sent, hyp) < u.sent.length) return;
      const fresh = hyp.slice(u.sent.length, stable);
      const delta = (u.sent.length === 0 ? "" : " ") + fresh.join(" ");
      u.sent = hyp.slice(0, stable);
      this.send({
        type: "conversation.item.input_audio_transcription.delta",
        item_id: u.itemId,
        content_index: 0,
        delta,
      });
    });
  }

  /** Ends an item: committed, then the final decode, the last delta and completed. */
  private finish(u: Utterance): void {
    const end = u.end!;
    const audio = resample24to16(this.audio(u.start, end));
    const speechEndedAt = this.arrivalOf(end);
    this.consume(end);
    this.send({
      type: "input_audio_buffer.committed",
      item_id: u.itemId,
      previous_item_id: this.previousItem,
    });
    this.previousItem = u.itemId;
    this.finals++;
    this.chain = this.chain.then(async () => {
      try {
        if (this.closed) return;
        let r;
        try {
          r = await this.opts.decoder.transcribe(audio, FINAL_THREADS);
        } catch (e) {
          this.send({
            type: "conversation.item.input_audio_transcription.failed",
            item_id: u.itemId,
            content_index: 0,
            error: {
              type: "server_error",
              code: "transcription_failed",
              message: (e as Error).message,
              param: null,
            },
          });
          return;
        }
        const rest = deltaOf(u.sent, r.text);
        if (rest) {
          this.send({
            type: "conversation.item.input_audio_transcription.delta",
            item_id: u.itemId,
            content_index: 0,
            delta: rest,
          });
        }
        this.send({
          type: "conversation.item.input_audio_transcription.completed",
          item_id: u.itemId,
          content_index: 0,
          transcript: r.text,
          usage: { type: "duration", seconds: Math.round(r.seconds * 100) / 100 },
        });
        this.opts.onCompleted?.({ itemId: u.itemId, transcript: r.text, speechEndedAt, decodeMs: r.ms });
      } finally {
        this.finals--;
      }
    });
  }

  /** When the sample at `sample` arrived (wall clock, ms). */
  private arrivalOf(sample: number): number {
    for (const a of this.arrivals) if (a.sample >= sample) return a.at;
    return performance.now();
  }

  /** Resolves when every decode started so far has finished (and its events were sent). */
  idle(): Promise<void> {
    return this.chain;
  }

  close(): void {
    this.closed = true;
    this.chunks = [];
    this.opts.decoder.free();
  }
}
