/**
 * The `local_asr` transport: a LocalAsrSession (session.ts) fed in-process, so the guest gets
 * the GA server events with no socket and no key. Connected once the model is loaded (once
 * per process, warmed up) and this stream's decoder state exists.
 */
import type { BackendConfig } from "../../../host/config.ts";
import type { JsonObject } from "../../../runtime/json.ts";
import type { Segmentation } from "../protocol.ts";
import { turnDetection } from "../segmentation.ts";
import type { Transport, TransportEvents } from "../transport.ts";
import { loadEngine, whisperFiles } from "./engine.ts";
import { LocalAsrSession, parseTurnDetection } from "./session.ts";

export interface LocalTransportOptions {
  backend: BackendConfig;
  /** The guest's `model` param: a ggml file path, or a name (reported only). */
  model?: string;
  segmentation: Segmentation;
  events: TransportEvents;
}

export class LocalTransport implements Transport {
  readonly name = "local";
  session: LocalAsrSession | null = null;
  private ended = false;
  private td: JsonObject | null;
  readonly modelName: string;

  constructor(private readonly opts: LocalTransportOptions) {
    this.td = turnDetection(opts.segmentation);
    this.modelName = opts.backend.model ?? "whisper-tiny.en";
  }

  start(): void {
    const files = whisperFiles(this.opts.backend.model);
    (async () => {
      const engine = await loadEngine(files);
      const decoder = await engine.stream();
      if (this.ended) return decoder.free();
      this.session = new LocalAsrSession({
        emit: (event) => this.opts.events.serverEvent(event),
        decoder,
        model: this.modelName,
        turnDetection: parseTurnDetection(this.td),
      });
      this.session.created();
      this.opts.events.connected();
    })().catch((e) => {
      if (this.ended) return;
      this.ended = true;
      this.opts.events.closed({ code: 1011, reason: "", message: (e as Error).message, error: true });
    });
  }

  writable(): boolean {
    return this.session !== null && !this.ended;
  }

  whenWritable(): void {
    // Always writable once connected; connected() makes the driver pump again.
  }

  sendAudio(bytes: Uint8Array): void {
    this.session?.appendAudio(bytes);
  }

  sendText(text: string): void {
    this.session?.clientEvent(text);
  }

  setTurnDetection(td: JsonObject | null): void {
    this.td = td;
    this.session?.setTurnDetection(parseTurnDetection(td));
  }

  close(): void {
    this.ended = true;
    this.session?.close();
  }
}
