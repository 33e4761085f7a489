/**
 * The rtasr family's driver part (main thread). `rtasr.connect` resolves the backend the fd
 * asked for — never falling back to the stub — and starts its transport:
 *
 * - `stub`: SPEAR's fake events (transport.ts);
 * - `openai_realtime_ws`: OpenAI's realtime transcription over Deno's WebSocket, GA shape by
 *   default, beta only for a backend with `"protocol": "beta"`; the URL is checked against
 *   the network policy, the key read on this thread goes in the Authorization header only,
 *   and every frame the server sends is cleared of it before the guest sees it;
 * - `local_asr`: the offline Whisper recogniser (local/), same GA events.
 *
 * One `Connection` per fd holds the send queue between the guest's audio stream and the
 * transport: an item leaves when the transport can take it, and only then is its credit
 * returned (so a slow socket is -EAGAIN in the guest, not memory here). It also runs
 * client_commit autoflush and flush_on_close (commit, then up to 5 s for the transcript).
 */
import { type BackendConfig, type HostConfig, netPolicy } from "../../host/config.ts";
import type { Driver, GuestSession, SessionContext } from "../../host/host.ts";
import { readApiKey } from "../../host/net/credentials.ts";
import { handle } from "../../protocol/rpc.ts";
import { streamClock, type StreamSender } from "../../protocol/stream.ts";
import { LatencyWindow } from "../../protocol/latency.ts";
import {
  MIN_COMMIT_BYTES,
  rtasrConnect,
  type RtasrConnectRequest,
  type RtasrConnectResult,
  type RtasrGuestEvent,
  type Segmentation,
} from "./protocol.ts";
import { turnDetection } from "./segmentation.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  protocolOf,
  realtimeUrl,
  StubTransport,
  type Transport,
  type TransportEvents,
  WsTransport,
} from "./transport.ts";
import { LocalTransport } from "./local/transport.ts";
import { decodesDone } from "./local/engine.ts";

export const REALTIME_KINDS = ["openai_realtime_ws", "local_asr"] as const;
export const DEFAULT_MODEL = "gpt-4o-mini-transcribe";
/** flush_on_close: how long the transport stays open for the final transcript. */
export const FLUSH_ON_CLOSE_MS = 5000;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The backend for a connect: by name (any realtime kind), else by transport — `websocket`
 * prefers `openai_realtime_ws` backends and takes a `local_asr` one when that is all the
 * config has, `local` takes `local_asr`. Weighted pick among equals. Never the stub.
 */
export function selectRealtimeBackend(
  backends: readonly BackendConfig[],
  transport: "websocket" | "local",
  name?: string,
  random: () => number = Math.random,
): BackendConfig | { error: string } {
  const realtime = backends.filter((b) => (REALTIME_KINDS as readonly string[]).includes(b.kind));
  if (name !== undefined) {
    const found = realtime.find((b) => b.name === name);
    if (found) return found;
    const other = backends.find((b) => b.name === name);
    if (other) return { error: `backend "${name}" (kind ${other.kind}) is not a realtime ASR backend` };
    const known = realtime.map((b) => `"${b.name}"`).join(", ") || "none";
    return { error: `no realtime ASR backend named "${name}" in the config (realtime backends: ${known})` };
  }
  let candidates = realtime.filter((b) =>
    b.kind === (transport === "local" ? "local_asr" : "openai_realtime_ws")
  );
  if (candidates.length === 0 && transport === "websocket") {
    candidates = realtime.filter((b) => b.kind === "local_asr");
  }
  if (candidates.length === 0) {
    return {
      error: `no realtime ASR backend in the config for transport "${transport}": add a backend of kind ` +
        (transport === "local" ? "local_asr" : "openai_realtime_ws or local_asr"),
    };
  }
  const total = candidates.reduce((sum, b) => sum + Math.max(1, b.weight), 0);
  let pick = Math.floor(random() * total);
  for (const b of candidates) {
    pick -= Math.max(1, b.weight);
    if (pick < 0) return b;
  }
  return candidates[candidates.length - 1];
}

type Item = { audio: Uint8Array; at: number } | { text: string; kind: "flush" | "clear" | "raw" | "auto" };

/** One fd's link between its streams and its transport. */
export class Connection {
  private readonly queue: Item[] = [];
  transport!: Transport;
  private segmentation: Segmentation;
  private closing = false;
  private finished = false;
  /** Audio bytes since the last commit (ours or the server VAD's). */
  private sinceCommit = 0;
  private lastAudioAt = 0;
  private lastFlushAt = 0;
  private autoTimer?: ReturnType<typeof setInterval>;
  private finalWaiter: (() => void) | null = null;
  /** Counters (benches, tests). */
  audioIn = 0;
  audioOut = 0;
  eventsOut = 0;
  /** rtasr_write in the guest → the chunk handed to the transport (socket send), ms. */
  readonly writeToSend = new LatencyWindow();

  constructor(
    readonly session: GuestSession,
    readonly audioStream: number,
    readonly events: StreamSender,
    segmentation: Segmentation,
    private readonly onFinished: (c: Connection) => void,
  ) {
    this.segmentation = segmentation;
    this.lastFlushAt = performance.now();
  }

  /** What the transport reports, turned into the guest's stream items and events. */
  readonly transportEvents: TransportEvents = {
    serverEvent: (data) => {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      if (typeof data === "string") this.noteServerEvent(data);
      if (this.events.send(bytes)) this.eventsOut++;
    },
    connected: () => {
      this.events.event({ type: "connected" });
      this.pump();
    },
    lastError: (message) => this.events.event({ type: "last_error", message }),
    closed: (info) => {
      if (this.finished) return;
      this.events.event({
        type: "closed",
        code: info.code,
        reason: info.reason,
        message: info.message,
        error: info.error,
      });
      this.finish();
    },
  };

  private noteServerEvent(text: string): void {
    if (text.includes("input_audio_buffer.committed")) this.sinceCommit = 0;
    if (this.finalWaiter && /transcription\.(completed|failed)"/.test(text)) {
      const done = this.finalWaiter;
      this.finalWaiter = null;
      done();
    }
  }

  start(transport: Transport): void {
    this.transport = transport;
    transport.start();
    this.armAutoflush();
  }

  audio(bytes: Uint8Array, at: number): void {
    if (this.closing || this.finished) return;
    this.audioIn += bytes.length;
    this.queue.push({ audio: bytes.slice(), at });
    this.pump();
  }

  guestEvent(ev: RtasrGuestEvent): void {
    if (this.finished) return;
    if (ev.type === "segmentation") {
      this.segmentation = ev.segmentation;
      this.transport.setTurnDetection(turnDetection(ev.segmentation));
      this.armAutoflush();
      return;
    }
    if (ev.kind === "flush" || ev.kind === "clear") {
      this.sinceCommit = 0;
      this.lastFlushAt = performance.now();
    }
    this.queue.push({ text: ev.text, kind: ev.kind ?? "raw" });
    this.pump();
  }

  /** Moves items to the transport while it takes them; credit goes back as audio leaves. */
  private pump(): void {
    while (this.queue.length > 0 && !this.finished && this.transport.writable()) {
      const item = this.queue.shift()!;
      if ("audio" in item) {
        this.transport.sendAudio(item.audio);
        this.writeToSend.add(streamClock() - item.at);
        this.audioOut += item.audio.length;
        this.sinceCommit += item.audio.length;
        this.lastAudioAt = performance.now();
        this.session.credit(this.audioStream, item.audio.length);
        this.autoflush();
      } else this.transport.sendText(item.text);
    }
    if (this.queue.length > 0 && !this.finished) this.transport.whenWritable(() => this.pump());
    else if (this.closing && this.queue.length === 0) this.closeWhenDrained();
  }

  private armAutoflush(): void {
    clearInterval(this.autoTimer);
    if (this.segmentation.strategy === "client_commit" && this.segmentation.client_commit) {
      this.autoTimer = setInterval(() => this.autoflush(), 20);
    }
  }

  /** client_commit (reference §6.6), never with less than 100 ms of audio. */
  private autoflush(): void {
    const cc = this.segmentation.strategy === "client_commit" ? this.segmentation.client_commit : null;
    if (!cc || this.closing || this.finished || this.sinceCommit < MIN_COMMIT_BYTES) return;
    const now = performance.now();
    if (now - this.lastFlushAt < cc.min_flush_gap_ms) return;
    const due = (cc.max_buffer_bytes != null && this.sinceCommit >= cc.max_buffer_bytes) ||
      (cc.flush_interval_ms != null && now - this.lastFlushAt >= cc.flush_interval_ms) ||
      (cc.silence_ms != null && now - this.lastAudioAt >= cc.silence_ms);
    if (!due) return;
    this.sinceCommit = 0;
    this.lastFlushAt = now;
    this.queue.push({ text: '{"type":"input_audio_buffer.commit"}', kind: "auto" });
    this.pump();
  }

  /** The guest closed the fd (or ended): flush_on_close, then close the transport. */
  guestClosed(): void {
    if (this.closing || this.finished) return;
    this.closing = true;
    clearInterval(this.autoTimer);
    if (this.queue.length === 0) this.closeWhenDrained();
    else this.pump();
  }

  private drained = false;
  private closeWhenDrained(): void {
    if (this.drained) return;
    this.drained = true;
    if (
      !this.segmentation.flush_on_close || this.sinceCommit < MIN_COMMIT_BYTES || !this.transport.writable()
    ) {
      return this.finish();
    }
    this.transport.sendText('{"type":"input_audio_buffer.commit"}');
    const timer = setTimeout(() => this.finish(), FLUSH_ON_CLOSE_MS);
    this.finalWaiter = () => {
      clearTimeout(timer);
      this.finish();
    };
  }

  /** Closes the transport now (host stop, guest gone). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.autoTimer);
    this.finalWaiter = null;
    this.queue.length = 0;
    this.transport?.close();
    this.onFinished(this);
  }
}

export interface RtasrDriverOptions {
  /** Name resolution etc. for the network policy (tests). */
  policy?: ReturnType<typeof netPolicy>;
  random?: () => number;
}

export interface RtasrDriver extends Driver {
  /** Connections still open (tests: "the driver closed it"). */
  readonly active: number;
  /** Every connection started so far, newest last (benches). */
  readonly connections: readonly Connection[];
}

export function rtasrDriver(config: HostConfig, options: RtasrDriverOptions = {}): RtasrDriver {
  const live = new Set<Connection>();
  const all: Connection[] = [];
  const policy = options.policy ?? netPolicy(config);

  const wsTransport = async (
    req: RtasrConnectRequest,
    backend: BackendConfig,
    events: TransportEvents,
  ): Promise<{ transport: Transport; result: RtasrConnectResult }> => {
    const protocol = protocolOf(backend);
    const model = req.model ?? backend.model ?? DEFAULT_MODEL;
    const derived = realtimeUrl(backend.base_url!, protocol, model);
    let url = derived;
    if (req.ws_url) {
      try {
        url = new URL(req.ws_url).href;
      } catch {
        throw new Error(`ws_url "${req.ws_url}" is not a URL`);
      }
    }
    const target = new URL(url);
    if (target.protocol !== "ws:" && target.protocol !== "wss:") {
      throw new Error(`ws_url must be ws:// or wss://`);
    }
    const decision = await policy.checkOutbound({
      scheme: target.protocol === "wss:" ? "wss" : "ws",
      host: target.hostname,
      port: target.port ? Number(target.port) : target.protocol === "wss:" ? 443 : 80,
    });
    if (!decision.ok) throw new Error(decision.reason);
    const key = readApiKey(backend);
    if (!key.ok) throw new Error(key.error);
    const headers: Record<string, string> = {};
    // The key goes only to the backend's own origin, never to a URL the guest chose elsewhere.
    if (key.key && target.origin === new URL(derived).origin) headers.authorization = `Bearer ${key.key}`;
    if (protocol === "beta") headers["openai-beta"] = "realtime=v1";
    const transport = new WsTransport({
      url,
      headers,
      protocol,
      model,
      turnDetection: turnDetection(req.segmentation),
      connectTimeoutMs: req.connect_timeout_ms ?? DEFAULT_CONNECT_TIMEOUT_MS,
      redactor: key.redactor,
      events,
    });
    return {
      transport,
      result: {
        ok: true,
        backend: backend.name,
        kind: backend.kind,
        protocol,
        model,
        url: key.redactor.redact(url),
      },
    };
  };

  const connect = async (
    req: RtasrConnectRequest,
    ctx: SessionContext & { fd: number; signal: AbortSignal },
  ): Promise<RtasrConnectResult> => {
    const { session } = ctx;
    const holder: { conn?: Connection } = {};
    const events = session.openStream(req.events, { mode: "lossy" }, () => holder.conn?.guestClosed());
    const c = new Connection(session, req.audio, events, req.segmentation, (done) => live.delete(done));
    holder.conn = c;
    try {
      let built: { transport: Transport; result: RtasrConnectResult };
      if (req.transport === "stub") {
        built = {
          transport: new StubTransport(req.stub, c.transportEvents),
          result: {
            ok: true,
            backend: null,
            kind: "stub",
            protocol: null,
            model: req.model ?? null,
            url: null,
          },
        };
      } else {
        const backend = selectRealtimeBackend(config.backends, req.transport, req.backend, options.random);
        if ("error" in backend) throw new Error(backend.error);
        if (backend.kind === "local_asr") {
          const transport = new LocalTransport({
            backend,
            model: req.model,
            segmentation: req.segmentation,
            events: c.transportEvents,
          });
          built = {
            transport,
            result: {
              ok: true,
              backend: backend.name,
              kind: backend.kind,
              protocol: "ga",
              model: transport.modelName,
              url: null,
            },
          };
        } else {
          built = await wsTransport(req, backend, c.transportEvents);
        }
      }
      if (ctx.signal.aborted) {
        events.close();
        return { ok: false, error: "cancelled" };
      }
      session.receiveStream(req.audio, {
        data: (bytes, at) => c.audio(bytes, at),
        event: (value) => c.guestEvent(value as RtasrGuestEvent),
        closed: () => c.guestClosed(),
      });
      live.add(c);
      all.push(c);
      if (all.length > 64) all.shift();
      session.onEnd(() => c.finish());
      c.start(built.transport);
      return built.result;
    } catch (e) {
      events.close();
      return { ok: false, error: message(e) };
    }
  };

  return {
    family: "rtasr",
    handlers: [handle(rtasrConnect, connect)],
    // A decode still running would outlive the host: the process may exit next (decodesDone).
    async stop() {
      for (const c of [...live]) c.finish();
      await decodesDone();
    },
    get active() {
      return live.size;
    },
    get connections() {
      return all;
    },
  };
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return rtasrDriver(config);
}
