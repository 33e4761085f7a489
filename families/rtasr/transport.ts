/**
 * What a realtime ASR transport is to the rtasr driver, and the two that need no engine:
 * `stub` (SPEAR's, reference §6.7) and `openai_realtime_ws` (OpenAI's realtime protocol over
 * Deno's WebSocket on the main thread, SPEC.md §5).
 */
import type { BackendConfig } from "../../host/config.ts";
import type { Redactor } from "../../host/net/credentials.ts";
import type { JsonObject } from "../../runtime/json.ts";
import type { StubParams } from "./protocol.ts";

/** What a transport reports; the driver turns it into stream items and events for the guest. */
export interface TransportEvents {
  /** One server event, passed to the guest unchanged (text or binary frame). */
  serverEvent(data: string | Uint8Array): void;
  /** The transport is up (Connected). */
  connected(): void;
  /** A recoverable error (an `error` server event): last_error only. */
  lastError(message: string): void;
  /** The transport failed or closed. `error` → Error + EPOLLERR; always EPOLLHUP. */
  closed(info: { code: number; reason: string; message?: string; error: boolean }): void;
}

export interface Transport {
  readonly name: string;
  start(): void;
  /** Can take another item now (else the driver waits for `whenWritable`). */
  writable(): boolean;
  whenWritable(resume: () => void): void;
  sendAudio(bytes: Uint8Array): void;
  /** A client event (SEND_EVENT, commit, clear, session.update), as text. */
  sendText(text: string): void;
  /** A new turn detection (SET_AUTOFLUSH after CONNECT). */
  setTurnDetection(td: JsonObject | null): void;
  close(): void;
}

// ---------------------------------------------------------------- stub

/** SPEAR's stub: one send item consumed per 10 ms tick, a fake event every `interval_ms`. */
export class StubTransport implements Transport {
  readonly name = "stub";
  private timer?: ReturnType<typeof setInterval>;
  private tokens = 0;
  private waiting: (() => void) | null = null;
  private seq = 0;
  private sinceEvent = 0;
  closedFlag = false;

  constructor(private readonly params: StubParams, private readonly events: TransportEvents) {}

  start(): void {
    this.events.connected();
    const TICK = 10;
    this.timer = setInterval(() => {
      this.tokens = 1;
      const resume = this.waiting;
      this.waiting = null;
      resume?.();
      this.sinceEvent += TICK;
      const interval = Math.max(TICK, this.params.interval_ms);
      if (this.sinceEvent >= interval) {
        this.sinceEvent = 0;
        this.seq++;
        const every = Math.floor(this.params.completed_every);
        const completed = every > 0 && this.seq % every === 0;
        const text = "a".repeat(Math.max(0, Math.floor(this.params.payload_bytes) - 80));
        this.events.serverEvent(
          JSON.stringify({
            type: completed ? "transcription.completed" : "transcription.delta",
            seq: this.seq,
            text,
          }),
        );
      }
    }, TICK);
  }

  writable(): boolean {
    return this.tokens > 0;
  }

  whenWritable(resume: () => void): void {
    this.waiting = resume;
  }

  sendAudio(): void {
    this.tokens--;
  }

  sendText(): void {
    this.tokens--;
  }

  setTurnDetection(): void {}

  close(): void {
    this.closedFlag = true;
    clearInterval(this.timer);
    this.waiting = null;
  }
}

// ---------------------------------------------------------------- websocket

export type RealtimeProtocol = "ga" | "beta";

/** `<base>/realtime?intent=transcription` (base's http(s) → ws(s), `/v1` added when missing). */
export function realtimeUrl(baseUrl: string, protocol: RealtimeProtocol, model: string): string {
  const url = new URL(baseUrl);
  const scheme = { "https:": "wss:", "http:": "ws:", "wss:": "wss:", "ws:": "ws:" }[url.protocol];
  if (!scheme) throw new Error(`base_url scheme ${url.protocol} cannot carry a WebSocket`);
  let path = url.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/v1")) path += "/v1";
  const query = protocol === "beta"
    ? `intent=transcription&model=${encodeURIComponent(model)}`
    : "intent=transcription";
  return `${scheme}//${url.host}${path}/realtime?${query}`;
}

/** The first client event: GA `session.update` with `session.type:"transcription"`, or the beta shape. */
export function sessionUpdate(protocol: RealtimeProtocol, model: string, td: JsonObject | null): JsonObject {
  if (protocol === "beta") {
    return {
      type: "session.update",
      session: { input_audio_format: "pcm16", input_audio_transcription: { model }, turn_detection: td },
    };
  }
  return {
    type: "session.update",
    session: {
      type: "transcription",
      audio: {
        input: { format: { type: "audio/pcm", rate: 24000 }, transcription: { model }, turn_detection: td },
      },
    },
  };
}

/** Largest audio chunk in one `input_audio_buffer.append` (its base64 stays under OpenAI's 15 MiB). */
export const MAX_APPEND_BYTES = 10 << 20;
/** The socket's send buffer above which the transport stops taking audio. */
export const WS_HIGH_WATER_BYTES = 256 << 10;
export const DEFAULT_CONNECT_TIMEOUT_MS = 20000;

/** What a close code means, in one line a person can act on. */
export function describeClose(code: number, reason: string, lastErrorCode: string | null): string {
  if (
    code === 4000 || lastErrorCode === "beta_api_shape_disabled" || /beta_api_shape_disabled/.test(reason)
  ) {
    return `the server refused the beta realtime protocol (close ${code}, beta_api_shape_disabled): it speaks ` +
      `only the GA protocol; remove "protocol": "beta" from the backend`;
  }
  if (code === 1006) return "the connection dropped (no close frame, 1006)";
  if (code === 1008) return `the server refused the session (close 1008 ${reason || "policy violation"})`;
  return `websocket closed by the server (${code}${reason ? ` ${reason}` : ""})`;
}

export interface WsOptions {
  url: string;
  headers: Record<string, string>;
  protocol: RealtimeProtocol;
  model: string;
  turnDetection: JsonObject | null;
  connectTimeoutMs: number;
  redactor: Redactor;
  events: TransportEvents;
}

/** OpenAI realtime transcription over Deno's WebSocket. */
export class WsTransport implements Transport {
  readonly name = "websocket";
  private ws?: WebSocket;
  private opened = false;
  private ended = false;
  private waiting: (() => void) | null = null;
  private poll?: ReturnType<typeof setTimeout>;
  private connectTimer?: ReturnType<typeof setTimeout>;
  private lastErrorCode: string | null = null;
  /** Audio bytes handed to the socket, and when the last frame left (benches). */
  sentAudioBytes = 0;
  onFrameSent?: (bytes: number) => void;

  constructor(private readonly opts: WsOptions) {}

  start(): void {
    const { url, headers, connectTimeoutMs, events } = this.opts;
    let ws: WebSocket;
    try {
      // Deno's WebSocket takes `headers` (DESIGN.md fact 9); the key never leaves this thread.
      ws = new WebSocket(url, { headers } as unknown as string[]);
    } catch (e) {
      this.end({ code: 1006, reason: "", message: `cannot open ${url}: ${this.clean(e)}`, error: true });
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    this.connectTimer = setTimeout(() => {
      if (this.opened) return;
      this.end({
        code: 1006,
        reason: "",
        message: `connect timeout after ${connectTimeoutMs} ms`,
        error: true,
      });
      try {
        ws.close();
      } catch { /* already closing */ }
    }, connectTimeoutMs);
    ws.onopen = () => {
      clearTimeout(this.connectTimer);
      if (this.ended) return;
      this.opened = true;
      this.sendText(
        JSON.stringify(sessionUpdate(this.opts.protocol, this.opts.model, this.opts.turnDetection)),
      );
      events.connected();
      this.wake();
    };
    ws.onmessage = (e: MessageEvent) => {
      if (this.ended) return;
      if (typeof e.data === "string") {
        const text = this.opts.redactor.redact(e.data);
        this.noteError(text);
        events.serverEvent(text);
      } else {
        events.serverEvent(this.opts.redactor.redactBytes(new Uint8Array(e.data as ArrayBuffer)));
      }
    };
    ws.onerror = () => {}; // onclose follows with the code
    ws.onclose = (e: CloseEvent) => {
      clearTimeout(this.connectTimer);
      // Deno reports a connection lost without a close frame as code 0 (the spec says 1006).
      const code = e.code === 0 ? 1006 : e.code;
      const reason = this.opts.redactor.redact(e.reason ?? "");
      if (!this.opened) {
        this.end({
          code,
          reason,
          message: `cannot connect to ${url}: ${
            code === 1006 ? "connection failed" : describeClose(code, reason, this.lastErrorCode)
          }`,
          error: true,
        });
        return;
      }
      const normal = (code === 1000 || code === 1001) && this.lastErrorCode !== "beta_api_shape_disabled";
      this.end({
        code,
        reason,
        message: describeClose(code, reason, this.lastErrorCode),
        error: !normal,
      });
    };
  }

  /** An `error` server event: its text becomes last_error (recoverable unless the socket closes). */
  private noteError(text: string): void {
    if (!text.includes('"error"')) return;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    const ev = event as { type?: unknown; error?: { code?: unknown; message?: unknown; type?: unknown } };
    if (ev?.type !== "error") return;
    const code = typeof ev.error?.code === "string" ? ev.error.code : null;
    this.lastErrorCode = code ?? this.lastErrorCode;
    const message = typeof ev.error?.message === "string" ? ev.error.message : "error event";
    this.opts.events.lastError(`server error${code ? ` ${code}` : ""}: ${message}`);
  }

  private clean(e: unknown): string {
    return this.opts.redactor.redact(e instanceof Error ? e.message : String(e));
  }

  private end(info: { code: number; reason: string; message?: string; error: boolean }): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.poll);
    this.waiting = null;
    this.opts.events.closed(info);
  }

  writable(): boolean {
    return this.opened && !this.ended && this.ws!.readyState === WebSocket.OPEN &&
      this.ws!.bufferedAmount < WS_HIGH_WATER_BYTES;
  }

  whenWritable(resume: () => void): void {
    this.waiting = resume;
    if (this.opened && !this.ended) this.schedulePoll();
  }

  private schedulePoll(): void {
    clearTimeout(this.poll);
    this.poll = setTimeout(() => this.wake(), 5);
  }

  private wake(): void {
    if (!this.waiting) return;
    if (!this.writable()) return this.schedulePoll();
    const resume = this.waiting;
    this.waiting = null;
    resume();
  }

  sendAudio(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; at += MAX_APPEND_BYTES) {
      const part = bytes.subarray(at, Math.min(bytes.length, at + MAX_APPEND_BYTES));
      this.sendText(`{"type":"input_audio_buffer.append","audio":"${part.toBase64()}"}`);
      this.sentAudioBytes += part.length;
      this.onFrameSent?.(part.length);
    }
  }

  sendText(text: string): void {
    if (this.ended || !this.ws) return;
    try {
      this.ws.send(text);
    } catch (e) {
      this.end({ code: 1006, reason: "", message: `send failed: ${this.clean(e)}`, error: true });
    }
  }

  setTurnDetection(td: JsonObject | null): void {
    this.opts.turnDetection = td;
    if (this.opened) this.sendText(JSON.stringify(sessionUpdate(this.opts.protocol, this.opts.model, td)));
  }

  close(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.poll);
    this.ended = true;
    this.waiting = null;
    try {
      this.ws?.close(1000, "client closed");
    } catch { /* already closed */ }
  }
}

/** The backend's protocol: GA unless it says `"protocol": "beta"`. */
export function protocolOf(backend: BackendConfig): RealtimeProtocol {
  return backend.protocol === "beta" ? "beta" : "ga";
}
