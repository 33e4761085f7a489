/**
 * The user-stream endpoint (main thread): for one run, an HTTP server with a WebSocket route
 * (`/ws`, each binary message one SSF frame) and a web page (`/`), in front of one guest
 * session (reference §8; README "User streams").
 *
 * - Only clients presenting the run's token get in: `Authorization: Bearer T`, or (browsers,
 *   which cannot set headers on a WebSocket) the subprotocol `spear.token.T` offered beside
 *   `spear.ssf.v1`. A request with an `Origin` (a browser) must come from the endpoint's own
 *   origin or one the config lists (`user_stream.origins`); the token alone does not let another
 *   site's page in. The listen address must pass `net.listen`.
 * - Each stream id a client sends on becomes one duplex host-created handle for the guest
 *   (protocol.ts); a stream belongs to the client that opened it while that client stays.
 *   Inbound frames go only within the stream's credit: a client that sends more than the guest
 *   has room for (2 MiB unread) is closed with a reason, as in SPEAR, so host memory stays bounded.
 *   Outbound frames go out through the client's socket and their credit comes back once its
 *   send buffer drains below WS_HIGH_WATER_BYTES.
 * - A client that leaves ends its streams (EPOLLHUP); when the last one leaves, the guest's ctl
 *   fds get SESSION_CLOSED. When the guest ends, every client gets close 1000 with the reason.
 */
import { type HostConfig, netPolicy } from "../../host/config.ts";
import type { GuestSession, InboundStream } from "../../host/host.ts";
import type { StreamSender } from "../../protocol/stream.ts";
import { formatSockAddr, parseIpLiteral } from "../sock/protocol.ts";
import {
  type OutboundEvent,
  parseSsfHeader,
  SSF_SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  type UserStreamContext,
  UserStreamLimits,
} from "./protocol.ts";
import { utf8Length } from "../../protocol/bytes.ts";

/** Above this many bytes waiting in a client's socket, outbound credit waits. */
export const WS_HIGH_WATER_BYTES = 256 << 10;
/** WebSocket close reasons are at most 123 bytes. */
const MAX_REASON_BYTES = 123;

/** Why the endpoint could not start: one line for the user. */
export class EndpointError extends Error {}

export interface EndpointOptions {
  hostname: string;
  port: number;
  /** The token clients must present; a fresh random one when absent. */
  token?: string;
  /** Extra origins allowed for browsers (config `user_stream.origins`). */
  origins?: readonly string[];
}

export interface EndpointStats {
  clients: number;
  framesIn: number;
  framesOut: number;
  refused: { token: number; origin: number; busy: number };
}

const encoder = new TextEncoder();
let nextRun = 1;

/** A random token: 32 bytes, base64url (valid in a subprotocol name). */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Compares two strings in time that depends only on their lengths. */
function sameSecret(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The reason text cut to what a close frame carries (whole UTF-8 characters). */
export function closeReason(text: string): string {
  let out = text;
  while (utf8Length(out) > MAX_REASON_BYTES) out = out.slice(0, -1);
  return out;
}

/** A connected client. */
class Client {
  readonly streams = new Set<number>();
  private creditOwed = new Map<number, number>();
  private poll?: ReturnType<typeof setTimeout>;
  closed = false;

  constructor(readonly ws: WebSocket, private readonly session: () => GuestSession | undefined) {}

  get open(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a guest's frame; its credit goes back once the socket's buffer is low enough. */
  send(outId: number, bytes: Uint8Array): void {
    if (this.open) this.ws.send(bytes);
    this.creditOwed.set(outId, (this.creditOwed.get(outId) ?? 0) + bytes.length);
    this.repay();
  }

  private repay(): void {
    clearTimeout(this.poll);
    if (this.open && this.ws.bufferedAmount >= WS_HIGH_WATER_BYTES) {
      this.poll = setTimeout(() => this.repay(), 5);
      return;
    }
    const session = this.session();
    for (const [id, bytes] of this.creditOwed) session?.credit(id, bytes);
    this.creditOwed.clear();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.poll);
    try {
      this.ws.close(code, closeReason(reason));
    } catch { /* already closing */ }
  }
}

/** One stream id of the guest, owned by the client that opened it. */
interface Owned {
  client: Client;
  sender: StreamSender;
  outId: number;
  refused?: string;
}

export class UserStreamEndpoint {
  private session?: GuestSession;
  private ended = false;
  private readonly clients = new Set<Client>();
  private readonly owners = new Map<number, Owned>();
  private readonly allowedOrigins: Set<string>;
  readonly stats: EndpointStats = {
    clients: 0,
    framesIn: 0,
    framesOut: 0,
    refused: { token: 0, origin: 0, busy: 0 },
  };
  /** This run's name (GET_METRICS `execution_id`). */
  readonly run = `run-${Deno.pid}-${nextRun++}`;

  private constructor(
    private readonly server: Deno.HttpServer<Deno.NetAddr>,
    readonly token: string,
    /** Host and port as clients reach them (a wildcard listen is shown as loopback). */
    readonly address: { hostname: string; port: number },
    origins: readonly string[],
    private readonly page: { html: string; js: string },
  ) {
    const port = address.port;
    const local = ["localhost", "127.0.0.1", "[::1]"];
    const own = isLoopbackOrWildcard(address.hostname) ? local : [formatHost(address.hostname)];
    this.allowedOrigins = new Set([...own.map((h) => `http://${h}:${port}`), ...origins]);
  }

  /**
   * Starts listening once the address passes `net.listen` (EndpointError otherwise, or when it
   * cannot bind); no guest is attached yet.
   */
  static async listen(config: HostConfig, options: EndpointOptions): Promise<UserStreamEndpoint> {
    const where = formatSockAddr(options.hostname, options.port);
    const decision = await netPolicy(config).checkListen({
      scheme: "tcp",
      host: options.hostname,
      port: options.port,
    });
    if (!decision.ok) throw new EndpointError(`--serve ${where}: ${decision.reason}`);
    const page = {
      html: await Deno.readTextFile(new URL("./page.html", import.meta.url)),
      js: await Deno.readTextFile(new URL("./page.js", import.meta.url)),
    };
    const bound: { endpoint?: UserStreamEndpoint } = {}; // the handler runs only after listen returns
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen: () => {},
        onError: () => new Response("internal error", { status: 500 }),
      }, (req) => bound.endpoint!.handle(req));
    } catch (e) {
      throw new EndpointError(`--serve ${where}: cannot listen: ${(e as Error).message}`);
    }
    const hostname = isWildcard(options.hostname)
      ? (parseIpLiteral(options.hostname)?.version === 6 ? "::1" : "127.0.0.1")
      : options.hostname;
    bound.endpoint = new UserStreamEndpoint(
      server,
      options.token ?? newToken(),
      { hostname, port: server.addr.port },
      (options.origins ?? []).map((o) => new URL(o).origin),
      page,
    );
    return bound.endpoint;
  }

  /** `ws://host:port/ws` */
  get url(): string {
    return `ws://${formatSockAddr(this.address.hostname, this.address.port)}/ws`;
  }

  /** The page, with the token in the fragment (never sent to the server). */
  get pageUrl(): string {
    return `http://${formatSockAddr(this.address.hostname, this.address.port)}/#token=${this.token}`;
  }

  /** What the run passes in `RunOptions.context` so its guest's user streams work. */
  get context(): { user_stream: UserStreamContext } {
    return { user_stream: { run: this.run } };
  }

  /** Binds the endpoint to the run's session (RunOptions.onSession). */
  attach(session: GuestSession): void {
    this.session = session;
  }

  /** The guest ended: every client gets close 1000 with `reason`; new clients are refused. */
  async finish(reason: string): Promise<void> {
    this.ended = true;
    const closing = [...this.clients].map((c) =>
      new Promise<void>((resolve) => {
        if (c.ws.readyState === WebSocket.CLOSED) return resolve();
        c.ws.addEventListener("close", () => resolve(), { once: true });
        c.close(1000, reason);
        setTimeout(resolve, 2000); // a client that never answers the close
      })
    );
    await Promise.all(closing);
  }

  /** Stops the server (call after `finish`). */
  async close(): Promise<void> {
    this.ended = true;
    for (const c of this.clients) c.close(1001, "the endpoint is shutting down");
    await this.server.shutdown();
  }

  private handle(req: Request): Response {
    const url = new URL(req.url);
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
    if (url.pathname === "/") return this.pageResponse(this.page.html, "text/html; charset=utf-8");
    if (url.pathname === "/page.js") return this.pageResponse(this.page.js, "text/javascript; charset=utf-8");
    if (url.pathname !== "/ws") return new Response("not found\n", { status: 404 });
    return this.upgrade(req);
  }

  private pageResponse(body: string, type: string): Response {
    return new Response(body, {
      headers: {
        "content-type": type,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "content-security-policy":
          "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'",
      },
    });
  }

  private upgrade(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("a WebSocket upgrade is expected here\n", { status: 426 });
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !this.allowedOrigins.has(origin)) {
      this.stats.refused.origin++;
      return new Response("origin not allowed\n", { status: 403 });
    }
    const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
      .filter(Boolean);
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1].trim();
    const fromProtocol = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX))
      ?.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
    const presented = bearer ?? fromProtocol;
    if (presented === undefined || !sameSecret(presented, this.token)) {
      this.stats.refused.token++;
      return new Response("missing or wrong token\n", { status: 401 });
    }
    if (this.ended || !this.session?.alive) {
      this.stats.refused.busy++;
      return new Response(this.ended ? "the guest has ended\n" : "the guest has not started yet\n", {
        status: 503,
      });
    }
    if (this.clients.size >= UserStreamLimits.MAX_CLIENTS) {
      this.stats.refused.busy++;
      return new Response(`at most ${UserStreamLimits.MAX_CLIENTS} clients\n`, { status: 503 });
    }
    const { socket, response } = Deno.upgradeWebSocket(
      req,
      offered.includes(SSF_SUBPROTOCOL) ? { protocol: SSF_SUBPROTOCOL } : {},
    );
    socket.binaryType = "arraybuffer";
    const client = new Client(socket, () => this.session);
    this.clients.add(client);
    this.stats.clients++;
    socket.onmessage = (e) => {
      if (typeof e.data === "string") return client.close(1003, "binary SSF frames only");
      this.frame(client, new Uint8Array(e.data as ArrayBuffer));
    };
    socket.onclose = () => this.leave(client);
    socket.onerror = () => {}; // followed by close
    return response;
  }

  /** One frame from a client, into its stream's handle (opened on the stream's first frame). */
  private frame(client: Client, bytes: Uint8Array): void {
    const session = this.session;
    if (client.closed || !session?.alive) return;
    if (bytes.length > UserStreamLimits.MAX_FRAME_BYTES) {
      return client.close(
        1009,
        `frame of ${bytes.length} bytes (at most ${UserStreamLimits.MAX_FRAME_BYTES})`,
      );
    }
    const header = parseSsfHeader(bytes);
    if (typeof header === "string") return client.close(1002, `bad SSF frame: ${header}`);
    const id = header.streamId;
    let owned = this.owners.get(id);
    if (owned && owned.client !== client) {
      return client.close(1008, `stream ${id} is in use by another client`);
    }
    if (!owned) {
      if (this.owners.size >= UserStreamLimits.MAX_STREAMS) {
        return client.close(1008, `too many streams (at most ${UserStreamLimits.MAX_STREAMS} at once)`);
      }
      owned = this.openStream(session, client, id);
    }
    if (!owned.sender.send(bytes)) {
      const reason =
        `stream ${id}: the guest has ${UserStreamLimits.MAX_INBOUND_BYTES} bytes unread (inbound queue full)`;
      owned.sender.event({ type: "error", reason });
      this.owners.delete(id);
      client.streams.delete(id);
      return client.close(1008, reason);
    }
    this.stats.framesIn++;
  }

  private openStream(session: GuestSession, client: Client, id: number): Owned {
    // deno-lint-ignore prefer-const
    let owned: Owned;
    const fromGuest: InboundStream = {
      data: (bytes) => {
        this.stats.framesOut++;
        owned.client.send(owned.outId, bytes);
      },
      event: (value) => {
        const event = value as OutboundEvent;
        if (event.type === "refused") owned.refused = event.reason;
      },
    };
    const { sender, inbound } = session.createHandle(
      "user_stream",
      "stream",
      { stream_id: id },
      { mode: "credit", window: UserStreamLimits.MAX_INBOUND_BYTES },
      () => this.guestClosed(owned),
      { stream: fromGuest, window: UserStreamLimits.MAX_OUTBOUND_BYTES },
    );
    owned = { client, sender, outId: inbound! };
    this.owners.set(id, owned);
    client.streams.add(id);
    return owned;
  }

  /** The guest closed a stream it still had a client for: it refused it (its host budget). */
  private guestClosed(owned: Owned): void {
    if (!this.session?.alive) return; // the guest ended: `finish` says so
    for (const [id, o] of this.owners) {
      if (o !== owned) continue;
      this.owners.delete(id);
      owned.client.streams.delete(id);
      owned.client.close(1011, `stream ${id} refused by the guest: ${owned.refused ?? "closed"}`);
    }
  }

  /** A client left: its streams end (EPOLLHUP); the last one out ends the session. */
  private leave(client: Client): void {
    client.closed = true;
    this.clients.delete(client);
    for (const id of client.streams) {
      const owned = this.owners.get(id);
      if (owned?.client !== client) continue;
      this.owners.delete(id);
      owned.sender.event({ type: "closed" });
    }
    client.streams.clear();
    if (this.clients.size === 0 && this.session?.alive && !this.ended) {
      this.session.notice("user_stream", "session_closed", {});
    }
  }
}

function isWildcard(host: string): boolean {
  return parseIpLiteral(host)?.unspecified ?? false;
}

function isLoopbackOrWildcard(host: string): boolean {
  return host === "localhost" || host === "127.0.0.1" || host === "::1" || isWildcard(host);
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
