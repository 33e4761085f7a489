/**
 * Harness for user-stream tests: a guest run behind a real UserStreamEndpoint on loopback
 * (SpearHost + the endpoint, as `spear run --serve` wires them), and WebSocket clients.
 */
import { parseConfig } from "../../host/config.ts";
import { type RunResult, SpearHost } from "../../host/host.ts";
import { UserStreamEndpoint } from "../../families/user_stream/endpoint.ts";
import {
  encodeSsfFrame,
  parseSsfHeader,
  SSF_SUBPROTOCOL,
  ssfData,
} from "../../families/user_stream/protocol.ts";
import { within } from "./within.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const USTREAM_PROBE = `${root}/guests/build/test/ustream_probe.wasm`;
export const USTREAM_ECHO = `${root}/guests/build/user_stream_echo.wasm`;

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** A config whose net.listen lets the endpoint listen on loopback. */
export function serveConfig(extra: Record<string, unknown> = {}) {
  return parseConfig({ net: { listen: ["tcp://127.0.0.1:*"] }, ...extra });
}

export interface ServedGuest {
  endpoint: UserStreamEndpoint;
  logs: string[];
  /** Resolves with the first log line matching `re` (already logged or to come). */
  logged(re: RegExp, what?: string): Promise<string>;
  /** The run's result; the endpoint has closed its clients with the reason by then. */
  done: Promise<RunResult>;
}

/** Runs `wasm` with an endpoint on 127.0.0.1 (ephemeral port); resolves once the session is attached. */
export async function serveGuest(
  wasm: string,
  args: string[] = [],
  options: { timeoutMs?: number; config?: ReturnType<typeof serveConfig>; host?: SpearHost } = {},
): Promise<ServedGuest> {
  const config = options.config ?? serveConfig();
  const endpoint = await UserStreamEndpoint.listen(config, { hostname: "127.0.0.1", port: 0 });
  const logs: string[] = [];
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  const host = options.host ?? new SpearHost({
    config,
    cacheDir: null,
    logSink: (_guest, _level, message) => {
      const line = message.replace(/\n$/, "");
      logs.push(line);
      for (const w of waiters.filter((w) => w.re.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    },
  });
  let attached!: () => void;
  const started = new Promise<void>((resolve) => (attached = resolve));
  const done = (async () => {
    try {
      const result = await host.run(wasm, {
        args,
        timeoutMs: options.timeoutMs ?? 30_000,
        context: endpoint.context,
        onSession: (session) => {
          endpoint.attach(session);
          attached();
        },
      });
      await endpoint.finish(
        result.failure
          ? `the guest stopped: ${result.failure.message}`
          : `the guest exited with code ${result.exitCode}`,
      );
      return result;
    } finally {
      attached();
      await endpoint.close();
      if (!options.host) await host.close();
    }
  })();
  await started;
  return {
    endpoint,
    logs,
    logged(re, what = String(re)) {
      const seen = logs.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return within(new Promise((resolve) => waiters.push({ re, resolve })), `log line ${what}`);
    },
    done,
  };
}

/** `key=value` log lines, last value wins. */
export function logValues(logs: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of logs) {
    const eq = line.indexOf("=");
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

export interface Frame {
  streamId: number;
  text: string;
  bytes: Uint8Array;
}

/** A WebSocket client of an endpoint: frames in arrival order, the close code and reason. */
export class StreamClient {
  readonly frames: Frame[] = [];
  private waiting: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      const bytes = new Uint8Array(e.data as ArrayBuffer);
      const header = parseSsfHeader(bytes);
      if (typeof header === "string") throw new Error(`the endpoint sent a bad frame: ${header}`);
      this.frames.push({ streamId: header.streamId, text: decoder.decode(ssfData(bytes, header)), bytes });
      this.waiting.splice(0).forEach((w) => w());
    };
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (e) => {
        this.waiting.splice(0).forEach((w) => w());
        resolve({ code: e.code, reason: e.reason });
      });
    });
  }

  /** Connects with the token as a Bearer header (or `protocols` as a browser offers them). */
  static async connect(
    url: string,
    token: string | undefined,
    options: { protocols?: string[]; headers?: Record<string, string> } = {},
  ): Promise<StreamClient> {
    const headers: Record<string, string> = { ...options.headers };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const ws = new WebSocket(
      url,
      { protocols: options.protocols ?? [SSF_SUBPROTOCOL], headers } as unknown as string[],
    );
    const client = new StreamClient(ws);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
      }),
      `connect to ${url}`,
    );
    return client;
  }

  send(streamId: number, text: string | Uint8Array, seq = 1): void {
    this.ws.send(encodeSsfFrame({ streamId, seq }, typeof text === "string" ? encoder.encode(text) : text));
  }

  /** Waits until `count` frames have arrived (or the socket closed: then fails). */
  async waitFrames(count: number, what = `${count} frames`): Promise<Frame[]> {
    await within(
      (async () => {
        while (this.frames.length < count) {
          if (this.ws.readyState === WebSocket.CLOSED) {
            throw new Error(`closed after ${this.frames.length} of ${count} frames`);
          }
          await new Promise<void>((resolve) => this.waiting.push(resolve));
        }
      })(),
      what,
    );
    return this.frames.slice(0, count);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close(1000, "test done");
    return this.closed;
  }
}

/**
 * A WebSocket upgrade request written by hand over TCP (so the test controls every header,
 * Origin included); the HTTP status of the answer.
 */
export async function upgradeStatus(port: number, headers: Record<string, string>): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      "GET /ws HTTP/1.1",
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ];
    await conn.write(encoder.encode(lines.join("\r\n")));
    const buf = new Uint8Array(512);
    const n = await within(conn.read(buf), "upgrade answer");
    return Number(/^HTTP\/1\.1 (\d+)/.exec(decoder.decode(buf.subarray(0, n ?? 0)))?.[1] ?? 0);
  } finally {
    conn.close();
  }
}
