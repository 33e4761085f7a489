/**
 * A scripted OpenAI realtime (GA) server for tests, on a real socket: a raw TCP listener on
 * 127.0.0.1 that does the WebSocket handshake and framing itself (RFC 6455), so a test can
 * see the exact request line and headers, and can end a connection any way the protocol
 * allows — a close frame with any code, or a dropped TCP connection without one.
 *
 * Each connection is recorded: URL, lower-cased headers, every client message (text parsed
 * as JSON when it is JSON). The script is a function run per connection with a small API:
 * send events, wait for a message, close, drop.
 */

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface ClientMessage {
  text: string;
  json: Record<string, unknown> | null;
  at: number;
}

export interface RealtimeConnection {
  path: string;
  headers: Record<string, string>;
  /** The request head as received (request line and headers). */
  rawHead: string;
  messages: ClientMessage[];
  /** Set when the client sent a close frame: its code and reason. */
  clientClose: { code: number; reason: string } | null;
  sendJson(value: unknown): Promise<void>;
  sendText(text: string): Promise<void>;
  /** Resolves with the first message (already received or coming) that matches. */
  waitFor(match: (m: ClientMessage) => boolean, timeoutMs?: number): Promise<ClientMessage>;
  close(code?: number, reason?: string): Promise<void>;
  /** Ends the TCP connection without a close frame. */
  drop(): void;
  /** Resolves when the connection is gone. */
  readonly ended: Promise<void>;
}

export type Script = (conn: RealtimeConnection) => Promise<void> | void;

export interface RealtimeServer {
  port: number;
  /** `http://127.0.0.1:PORT/v1`, as a backend's base_url. */
  baseUrl: string;
  hostPort: string;
  connections: RealtimeConnection[];
  /** Resolves with the n-th connection (1-based) once it exists. */
  connection(n?: number, timeoutMs?: number): Promise<RealtimeConnection>;
  close(): Promise<void>;
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return new Uint8Array(digest).toBase64();
}

function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    new DataView(out.buffer).setUint16(2, n);
  } else {
    out[1] = 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  out.set(payload, head);
  return out;
}

/** GA default: answer session.update with session.updated (scripts can add to it). */
export const gaHello: Script = async (conn) => {
  await conn.sendJson({ type: "session.created", event_id: "evt_1", session: { type: "transcription" } });
  const update = await conn.waitFor((m) => m.json?.type === "session.update");
  await conn.sendJson({ type: "session.updated", event_id: "evt_2", session: update.json!.session });
};

export function startRealtimeServer(
  script: Script = gaHello,
  options: { handshake?: boolean; handshakeDelayMs?: number } = {},
): RealtimeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const connections: RealtimeConnection[] = [];
  const waiters: (() => void)[] = [];
  const conns = new Set<Deno.Conn>();

  const serve = async (tcp: Deno.Conn) => {
    conns.add(tcp);
    let buffer = new Uint8Array(0);
    const reader = tcp.readable.getReader();
    const read = async (): Promise<boolean> => {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || !value) return false;
      const next = new Uint8Array(buffer.length + value.length);
      next.set(buffer);
      next.set(value, buffer.length);
      buffer = next;
      return true;
    };
    // Request head.
    let headEnd = -1;
    while ((headEnd = decoder.decode(buffer).indexOf("\r\n\r\n")) < 0) {
      if (!(await read())) return;
    }
    if (options.handshake === false) return; // accept TCP, never answer (connect timeout tests)
    if (options.handshakeDelayMs) await new Promise((r) => setTimeout(r, options.handshakeDelayMs));
    const rawHead = decoder.decode(buffer.subarray(0, headEnd));
    buffer = buffer.slice(encoder.encode(rawHead + "\r\n\r\n").length);
    const [requestLine, ...lines] = rawHead.split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const at = line.indexOf(":");
      if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
    const path = requestLine.split(" ")[1];
    const writer = tcp.writable.getWriter();
    const write = (bytes: Uint8Array) => writer.write(bytes).catch(() => {});
    await write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(headers["sec-websocket-key"] ?? "")}\r\n\r\n`,
    ));
    let resolveEnded!: () => void;
    const ended = new Promise<void>((r) => (resolveEnded = r));
    let gone = false;
    const finish = () => {
      if (gone) return;
      gone = true;
      conns.delete(tcp);
      try {
        tcp.close();
      } catch { /* closed */ }
      resolveEnded();
    };
    const messageWaiters: (() => void)[] = [];
    const conn: RealtimeConnection = {
      path,
      headers,
      rawHead,
      messages: [],
      clientClose: null,
      sendText: (text) => write(frame(0x1, encoder.encode(text))),
      sendJson: (value) => write(frame(0x1, encoder.encode(JSON.stringify(value)))),
      async waitFor(match, timeoutMs = 5000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const found = conn.messages.find(match);
          if (found) return found;
          if (Date.now() > deadline || gone) throw new Error("no matching client message");
          await new Promise<void>((r) => {
            messageWaiters.push(r);
            setTimeout(r, 50);
          });
        }
      },
      async close(code = 1000, reason = "") {
        const r = encoder.encode(reason);
        const payload = new Uint8Array(2 + r.length);
        new DataView(payload.buffer).setUint16(0, code);
        payload.set(r, 2);
        await write(frame(0x8, payload));
        setTimeout(finish, 200);
      },
      drop: finish,
      ended,
    };
    connections.push(conn);
    for (const w of waiters.splice(0)) w();
    const scripted = Promise.resolve().then(() => script(conn)).catch(() => {});
    // Frames from the client.
    let fragments: Uint8Array[] = [];
    outer: while (!gone) {
      while (buffer.length >= 2) {
        const b1 = buffer[1];
        let len = b1 & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buffer.length < 4) break;
          len = new DataView(buffer.buffer, buffer.byteOffset).getUint16(2);
          at = 4;
        } else if (len === 127) {
          if (buffer.length < 10) break;
          len = Number(new DataView(buffer.buffer, buffer.byteOffset).getBigUint64(2));
          at = 10;
        }
        const masked = (b1 & 0x80) !== 0;
        const total = at + (masked ? 4 : 0) + len;
        if (buffer.length < total) break;
        const mask = masked ? buffer.subarray(at, at + 4) : null;
        const payload = buffer.slice(at + (masked ? 4 : 0), total);
        if (mask) { for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]; }
        const fin = (buffer[0] & 0x80) !== 0;
        const opcode = buffer[0] & 0x0f;
        buffer = buffer.slice(total);
        if (opcode === 0x8) {
          const code = payload.length >= 2 ? new DataView(payload.buffer).getUint16(0) : 1005;
          conn.clientClose = { code, reason: decoder.decode(payload.subarray(2)) };
          await write(frame(0x8, payload.subarray(0, 2)));
          finish();
          break outer;
        }
        if (opcode === 0x9) {
          await write(frame(0xa, payload));
          continue;
        }
        if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
          fragments.push(payload);
          if (!fin) continue;
          const size = fragments.reduce((n, f) => n + f.length, 0);
          const whole = new Uint8Array(size);
          let o = 0;
          for (const f of fragments) whole.set(f, (o += f.length) - f.length);
          fragments = [];
          const text = decoder.decode(whole);
          let json: Record<string, unknown> | null = null;
          try {
            const parsed = JSON.parse(text);
            json = parsed && typeof parsed === "object" ? parsed : null;
          } catch { /* not JSON */ }
          conn.messages.push({ text, json, at: performance.now() });
          for (const w of messageWaiters.splice(0)) w();
        }
      }
      if (!(await read())) break;
    }
    finish();
    await scripted;
  };

  (async () => {
    for await (const tcp of listener) serve(tcp).catch(() => {});
  })().catch(() => {});

  return {
    port,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    hostPort: `127.0.0.1:${port}`,
    connections,
    async connection(n = 1, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (connections.length < n) {
        if (Date.now() > deadline) throw new Error(`no connection ${n}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return connections[n - 1];
    },
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
      await new Promise((r) => setTimeout(r, 10));
    },
  };
}
