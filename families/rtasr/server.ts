/**
 * `spear asr-server`: OpenAI's GA realtime transcription protocol over WebSocket, backed by
 * the local Whisper engine, so any realtime client — this host's own `openai_realtime_ws`
 * transport included — can run offline. Endpoint `GET /v1/realtime` (any path ending in
 * `/realtime`; `?intent=transcription` or none), no key required (it listens on loopback by
 * default). Each connection is one LocalAsrSession: `session.created` on connect, then the
 * client's `session.update` / `input_audio_buffer.*` events, answered with the same server
 * events the `local_asr` transport emits. Binary frames and unknown events get `error` events.
 */
import { decodesDone, loadEngine, type WhisperFiles, whisperFiles } from "./local/engine.ts";
import { LocalAsrSession, parseTurnDetection } from "./local/session.ts";
import { DEFAULT_ASR_PORT } from "./protocol.ts";

export interface AsrServerOptions {
  hostname?: string;
  port?: number;
  files?: WhisperFiles;
  /** Called once listening. */
  onListen?: (addr: { hostname: string; port: number }) => void;
}

export interface AsrServer {
  port: number;
  hostname: string;
  /** `ws://host:port/v1` as a backend base_url (http works too). */
  baseUrl: string;
  sessions: number;
  /** Resolves once the server has shut down and no decode runs (the process may exit then). */
  finished: Promise<void>;
  close(): Promise<void>;
}

export async function startAsrServer(options: AsrServerOptions = {}): Promise<AsrServer> {
  const engine = await loadEngine(options.files ?? whisperFiles());
  const live = new Set<{ ws: WebSocket; session: LocalAsrSession }>();
  let sessions = 0;
  const hostname = options.hostname ?? "127.0.0.1";
  let resolveListen!: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((r) => (resolveListen = r));
  const server = Deno.serve({
    hostname,
    port: options.port ?? DEFAULT_ASR_PORT,
    onListen: (addr) => resolveListen(addr as Deno.NetAddr),
  }, async (req) => {
    const url = new URL(req.url);
    if (!url.pathname.endsWith("/realtime")) {
      return new Response("not found: use /v1/realtime\n", { status: 404 });
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this endpoint speaks WebSocket (OpenAI realtime, GA)\n", { status: 426 });
    }
    const intent = url.searchParams.get("intent");
    if (intent !== null && intent !== "transcription") {
      return new Response(`only intent=transcription is served, not ${intent}\n`, { status: 400 });
    }
    const decoder = await engine.stream();
    const { socket, response } = Deno.upgradeWebSocket(req);
    const session = new LocalAsrSession({
      emit: (event) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(event);
      },
      decoder,
      model: url.searchParams.get("model") ?? undefined,
      turnDetection: parseTurnDetection({ type: "server_vad" }),
    });
    const entry = { ws: socket, session };
    socket.onopen = () => {
      live.add(entry);
      sessions++;
      session.created();
    };
    socket.onmessage = (e) => {
      if (typeof e.data === "string") session.clientEvent(e.data);
      else session.clientEvent('{"type":"binary.frame"}');
    };
    socket.onclose = () => {
      live.delete(entry);
      session.close();
    };
    socket.onerror = () => {};
    return response;
  });
  const addr = await listening;
  options.onListen?.({ hostname: addr.hostname, port: addr.port });
  return {
    port: addr.port,
    hostname: addr.hostname,
    baseUrl: `http://${addr.hostname}:${addr.port}/v1`,
    get sessions() {
      return sessions;
    },
    // Finished includes the decodes still running: the process may exit next (decodesDone).
    finished: server.finished.then(decodesDone),
    async close() {
      for (const { ws, session } of live) {
        session.close();
        try {
          ws.close(1001, "server shutting down");
        } catch { /* closed */ }
      }
      await server.shutdown();
    },
  };
}
