/**
 * The sock family's driver part (main thread): real TCP and UDP with Deno.connect, Deno.listen
 * and Deno.listenDatagram, behind the network policy (host/net/policy.ts).
 *
 * Flow control, so host memory stays bounded however fast a peer is or however slow a guest:
 * - A connection is read straight into its receive pipe (protocol/pipe.ts), only while the
 *   pipe has room (the guest's free window); a full pipe leaves the socket unread and TCP stops
 *   the peer.
 * - What the guest writes waits in its send pipe, the send window, and is written from there;
 *   a guest's shutdown(write) or close sends FIN only after every queued byte is written.
 * - The accept loop takes a connection only while the listener's backlog has credit.
 * - A UDP socket is read continuously (a datagram cannot wait); the lossy stream and the guest's
 *   queue drop and count what does not fit.
 *
 * Permissions: every connect and sendto is checked against `net.allow` (a name's every resolved
 * address, and the peer actually reached), every bind and listen against `net.listen`; a
 * connection or datagram from a peer no entry covers is closed or dropped without telling the
 * guest (as wasmtime's TcpAccept / UdpReceive checks).
 */
import { type HostConfig, netPolicy } from "../../host/config.ts";
import type { Driver, GuestSession, InboundStream, SessionContext } from "../../host/host.ts";
import type { NetDecision, NetDenial, NetPolicy, NetPolicyOptions } from "../../host/net/policy.ts";
import { handle } from "../../protocol/rpc.ts";
import type { BytePipe } from "../../protocol/pipe.ts";
import type { StreamSender } from "../../protocol/stream.ts";
import { Errno, type ErrnoName } from "../../runtime/abi.ts";
import { entryAllows } from "./family.ts";
import {
  type AcceptedInfo,
  decodeDatagram,
  encodeDatagram,
  formatSockAddr,
  isLocalhostName,
  loopback,
  parseIpLiteral,
  sockAllowed,
  sockBind,
  sockConnect,
  sockListen,
  sockOptions,
  sockResolve,
  type SockResult,
  type Transport,
} from "./protocol.ts";

/** Bytes read from a connection at a time (never more than the guest's free window). */
const READ_CHUNK = 256 * 1024;
/** How long a closed connection may take to write what the guest queued before it is cut. */
export const CLOSE_LINGER_MS = 10_000;

export interface SockDriverOptions {
  /** Name resolution for the policy (tests inject one). */
  resolver?: NetPolicyOptions["resolver"];
}

export interface SockDriver extends Driver {
  /** Open connections, listeners and UDP sockets across guests (tests: "everything closed"). */
  readonly openHandles: number;
  /** Inbound connections and datagrams refused by the policy. */
  readonly deniedInbound: number;
}

type Failure = { ok: false; errno: ErrnoName; message: string };

function failure(errno: ErrnoName, message: string): Failure {
  return { ok: false, errno, message };
}

const DENIAL_ERRNO: Record<NetDenial, ErrnoName> = {
  not_allowed: "EACCES",
  unresolved: "EHOSTUNREACH",
  invalid: "EINVAL",
};

function denied(decision: NetDecision & { ok: false }): Failure {
  return failure(DENIAL_ERRNO[decision.code], decision.reason);
}

/** The errno of a Deno network error (its `code`, or its class). */
export function errnoOf(e: unknown): ErrnoName {
  const code = (e as { code?: string })?.code;
  if (code === "ENETUNREACH" || code === "EHOSTDOWN") return "EHOSTUNREACH";
  if (code === "ECONNABORTED") return "ECONNRESET";
  if (code && code in Errno) return code as ErrnoName;
  if (e instanceof Deno.errors.ConnectionRefused) return "ECONNREFUSED";
  if (e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.ConnectionAborted) {
    return "ECONNRESET";
  }
  if (e instanceof Deno.errors.AddrInUse) return "EADDRINUSE";
  if (e instanceof Deno.errors.AddrNotAvailable) return "EADDRNOTAVAIL";
  if (e instanceof Deno.errors.TimedOut) return "ETIMEDOUT";
  if (e instanceof Deno.errors.BrokenPipe) return "EPIPE";
  if (e instanceof Deno.errors.NotConnected) return "ENOTCONN";
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) return "EACCES";
  return "EIO";
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
const addrText = (a: Deno.Addr) => formatSockAddr((a as Deno.NetAddr).hostname, (a as Deno.NetAddr).port);

/**
 * What to hand Deno for a checked target: an IP as is, `localhost` as the family's loopback (the
 * policy's meaning, which the launcher grants), and a name as the checked address of the
 * socket's family — so what was checked is what is reached — when Deno's permissions allow that
 * address; otherwise (the launcher grants names as the config spells them) the name itself, and
 * the caller re-checks the peer Deno reached.
 */
function dialHost(host: string, version: 4 | 6, addresses: readonly string[] = [], port = 0): string {
  if (parseIpLiteral(host)) return host;
  if (isLocalhostName(host)) return loopback(version);
  const address = addresses.find((a) => parseIpLiteral(a)?.version === version);
  if (!address) return host;
  const granted = Deno.permissions.querySync({ name: "net", host: formatSockAddr(address, port) }).state;
  return granted === "granted" ? address : host;
}

// ---------------------------------------------------------------- connections

/**
 * One TCP connection: the peer is read straight into the receive pipe while it has room, the
 * send pipe is written straight to the peer, FIN goes after its last byte. Each loop waits on
 * its pipe itself (no message from the worker). The pipes are freed once the connection is
 * closed and the worker has let go of both (or the guest ended).
 */
class Connection {
  private reading = true;
  private readDone = false;
  /** The write loop has ended (FIN sent, or the connection broke or closed). */
  private writeDone = false;
  private writeClosed = false;
  private closed = false;
  private linger?: ReturnType<typeof setTimeout>;
  /** The worker closed its receive end / its send end (or the guest ended). */
  private workerLeft = { receive: false, send: false };
  /** Events towards the guest (eof, error); the bytes go through `rx`. */
  sender!: StreamSender;
  rx!: BytePipe;
  tx!: BytePipe;

  constructor(
    readonly conn: Deno.TcpConn,
    private readonly session: GuestSession,
    private readonly released: () => void,
  ) {}

  /** Opens the two pipes (charged to the guest's budget); false when they do not fit. */
  openPipes(window: number, sendWindow: number): boolean {
    const rx = this.session.openPipe(window);
    const tx = rx && this.session.openPipe(sendWindow);
    if (!rx || !tx) {
      if (rx) this.session.closePipe(rx);
      return false;
    }
    [this.rx, this.tx] = [rx, tx];
    return true;
  }

  /** The guest's send stream: it carries no bytes (they come through `tx`); its close is the guest's FIN. */
  readonly inbound: InboundStream = {
    data: () => {},
    closed: () => this.closeWrites(),
  };

  start(sender: StreamSender): void {
    this.sender = sender;
    void this.readLoop();
    void this.writeLoop();
  }

  private async readLoop(): Promise<void> {
    try {
      while (this.reading) {
        const region = this.rx.writable(READ_CHUNK);
        if (region.length === 0) {
          await this.rx.waitForRoom();
          continue;
        }
        const n = await this.conn.read(region);
        if (!this.reading) break;
        if (n === null) {
          this.sender.event({ type: "eof" });
          break;
        }
        if (this.rx.commit(n)) this.session.signalPipe(this.rx);
      }
    } catch (e) {
      if (this.reading && !this.closed) {
        this.sender.event({ type: "error", errno: errnoOf(e), message: message(e) });
      }
    }
    this.readDone = true;
    this.closeIfDone();
  }

  /** The guest stopped reading (shutdown(read), close, or it ended). */
  stopReading(): void {
    this.reading = false;
    this.workerLeft.receive = true;
    this.rx.wakeProducer(); // a read loop waiting for room ends
    this.readDone = true;
    this.closeIfDone();
  }

  private async writeLoop(): Promise<void> {
    try {
      while (!this.closed) {
        const region = this.tx.readable();
        if (region.length === 0) {
          if (this.writeClosed) break;
          await this.tx.waitForData();
          continue;
        }
        const n = await this.conn.write(region);
        if (this.tx.consume(n)) this.session.signalPipe(this.tx);
      }
      if (this.writeClosed && !this.closed) await this.conn.closeWrite().catch(() => {}); // FIN, after every byte
    } catch (e) {
      if (!this.closed) this.sender.event({ type: "error", errno: errnoOf(e), message: message(e) });
    } finally {
      this.writeDone = true;
    }
    this.closeIfDone();
  }

  /** The guest will write no more (shutdown(write), close, or it ended): FIN once the pipe is written. */
  closeWrites(): void {
    this.workerLeft.send = true;
    // Closed already (the peer reset it, both loops ended): nothing to write, only the pipes to free.
    if (this.writeClosed || this.closed) return this.closeIfDone();
    this.writeClosed = true;
    this.linger = setTimeout(() => this.close(), CLOSE_LINGER_MS);
    this.tx.wakeConsumer(); // a write loop waiting for data finishes
  }

  private closeIfDone(): void {
    if (this.readDone && this.writeDone) this.close();
    if (this.closed && this.workerLeft.receive && this.workerLeft.send) {
      this.session.closePipe(this.rx);
      this.session.closePipe(this.tx);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reading = false;
    this.rx.wakeProducer();
    this.tx.wakeConsumer();
    clearTimeout(this.linger);
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.released();
    this.closeIfDone();
  }
}

/** A bound TCP socket: the listener exists from bind on (Deno has no bind without listen). */
class Listener {
  private stopped = false;
  sender!: StreamSender;

  constructor(readonly listener: Deno.TcpListener, private readonly released: () => void) {}

  /** Accepts while the guest's backlog has credit; peers the policy refuses are closed at once. */
  async acceptLoop(accept: (conn: Deno.TcpConn) => boolean): Promise<void> {
    while (!this.stopped) {
      if (this.sender.available < 1) {
        await new Promise<void>((resolve) => this.sender.whenWritable(resolve));
        continue;
      }
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch (e) {
        if (!this.stopped) this.sender.event({ type: "error", errno: errnoOf(e), message: message(e) });
        break;
      }
      if (this.stopped) conn.close();
      else if (accept(conn)) this.sender.send(new Uint8Array(1));
    }
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.sender?.grant(1); // wakes a loop waiting for credit
    try {
      this.listener.close();
    } catch { /* already closed */ }
    this.released();
  }
}

/** A UDP socket: datagrams in (checked, lossy), datagrams out (checked, in order, credit back). */
class Datagrams {
  private receiving = true;
  private sends: Uint8Array[] = [];
  private sending = false;
  private sendClosed = false;
  private closed = false;
  sender!: StreamSender;
  outboundId = 0;

  constructor(
    readonly conn: Deno.DatagramConn,
    private readonly session: GuestSession,
    private readonly policy: NetPolicy,
    private readonly released: () => void,
    private readonly onDenied: () => void,
  ) {}

  readonly inbound: InboundStream = {
    data: (item) => {
      this.sends.push(item);
      void this.sendLoop();
    },
    closed: () => {
      this.sendClosed = true;
      void this.sendLoop();
    },
  };

  async receiveLoop(): Promise<void> {
    const buffer = new Uint8Array(65536);
    while (this.receiving) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, a] = await this.conn.receive(buffer);
        [data, from] = [d, a as Deno.NetAddr];
      } catch (e) {
        if (!this.receiving || this.closed) break;
        this.sender.event({ type: "error", errno: errnoOf(e), message: message(e) }); // ICMP refusals
        continue;
      }
      if (!this.policy.checkInbound({ scheme: "udp", host: from.hostname, port: from.port }).ok) {
        this.onDenied();
        continue;
      }
      this.sender.send(encodeDatagram({ address: from.hostname, port: from.port, name: "" }, data));
    }
  }

  stopReceiving(): void {
    this.receiving = false;
    this.closeIfDone();
  }

  private async sendLoop(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    while (this.sends.length > 0) {
      const item = this.sends.shift()!;
      const { peer, payload } = decodeDatagram(item);
      // The worker only sends to destinations the host checked; checked again here, without DNS.
      const decision = await this.policy.checkOutbound(
        { scheme: "udp", host: peer.name || peer.address, port: peer.port },
        { addresses: [peer.address] },
      );
      try {
        if (decision.ok && !this.closed) {
          const hostname = peer.name
            ? dialHost(peer.name, peer.address.includes(":") ? 6 : 4, [peer.address], peer.port)
            : peer.address;
          await this.conn.send(payload, { transport: "udp", hostname, port: peer.port });
        }
      } catch (e) {
        if (!this.closed) this.sender.event({ type: "error", errno: errnoOf(e), message: message(e) });
      }
      this.session.credit(this.outboundId, item.length);
    }
    this.sending = false;
    this.closeIfDone();
  }

  private closeIfDone(): void {
    if (!this.receiving && this.sendClosed && !this.sending) this.close();
  }

  /** The guest ended: what it queued is still sent, then the socket closes. */
  finishSends(): void {
    this.sendClosed = true;
    void this.sendLoop();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.receiving = false;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.released();
  }
}

// ---------------------------------------------------------------- the driver

/** What one guest has open, by its handle stream id. */
interface GuestSockets {
  listeners: Map<number, Listener>;
  connections: Map<number, Connection>;
  datagrams: Map<number, Datagrams>;
}

export function sockDriver(config: HostConfig, options: SockDriverOptions = {}): SockDriver {
  const policy = netPolicy(config, options.resolver ? { resolver: options.resolver } : undefined);
  const entries = [...policy.allow, ...policy.listen];
  const allowed = {
    tcp: entries.some((e) => entryAllows(e, "tcp")),
    udp: entries.some((e) => entryAllows(e, "udp")),
  };
  const guests = new WeakMap<GuestSession, GuestSockets>();
  let open = 0;
  let deniedInbound = 0;

  /** The guest's sockets; its leftovers are finished once everything it sent was applied. */
  const socketsOf = (session: GuestSession): GuestSockets => {
    let sockets = guests.get(session);
    if (!sockets) {
      const made: GuestSockets = { listeners: new Map(), connections: new Map(), datagrams: new Map() };
      guests.set(session, sockets = made);
      session.onEnd(() => {
        for (const l of made.listeners.values()) l.close();
      });
      // A process's socket data is still sent after it exits: write what the guest queued, then FIN.
      session.onFinished(() => {
        for (const c of made.connections.values()) {
          c.stopReading();
          c.closeWrites();
        }
        for (const d of made.datagrams.values()) {
          d.stopReceiving();
          d.finishSends();
        }
      });
    }
    return sockets;
  };

  const track = <T>(map: Map<number, T>, id: number, value: T) => {
    map.set(id, value);
    open++;
  };
  const untrack = <T>(map: Map<number, T>, id: number) => () => {
    if (map.delete(id)) open--;
  };

  /** Checks a local address against net.listen (an implicit UDP bind needs no entry). */
  const checkLocal = async (transport: Transport, host: string, port: number, implicit: boolean) => {
    if (implicit) return { ok: true, addresses: [host] } as const;
    const decision = await policy.checkListen({ scheme: transport, host, port });
    return decision.ok ? { ok: true, addresses: decision.addresses } as const : denied(decision);
  };

  const bind = async (
    p: {
      host: string;
      port: number;
      version: 4 | 6;
      transport: Transport;
      handle: number;
      outbound?: number;
      implicit: boolean;
    },
    { session }: SessionContext,
  ): Promise<SockResult> => {
    const checked = await checkLocal(p.transport, p.host, p.port, p.implicit);
    if (!checked.ok) return checked;
    const hostname = dialHost(p.host, p.version, checked.addresses, p.port);
    const sockets = socketsOf(session);
    try {
      if (p.transport === "tcp") {
        const listener = Deno.listen({ hostname, port: p.port, transport: "tcp" });
        const l = new Listener(listener, untrack(sockets.listeners, p.handle));
        l.sender = session.openStream(p.handle, { mode: "credit", window: 0 }, () => l.close());
        track(sockets.listeners, p.handle, l);
        return { ok: true, local: addrText(listener.addr) };
      }
      const conn = Deno.listenDatagram({ hostname, port: p.port, transport: "udp" });
      const d = new Datagrams(
        conn,
        session,
        policy,
        untrack(sockets.datagrams, p.handle),
        () => deniedInbound++,
      );
      d.sender = session.openStream(p.handle, { mode: "lossy" }, () => d.stopReceiving());
      d.outboundId = p.outbound!;
      session.receiveStream(p.outbound!, d.inbound);
      track(sockets.datagrams, p.handle, d);
      void d.receiveLoop();
      return { ok: true, local: addrText(conn.addr) };
    } catch (e) {
      return failure(errnoOf(e), message(e));
    }
  };

  const connect = async (
    p: {
      host: string;
      port: number;
      version: 4 | 6;
      handle: number;
      outbound: number;
      window: number;
      sendWindow: number;
      bound?: number;
      nodelay: boolean;
      keepalive: boolean;
    },
    { session, signal }: SessionContext & { signal: AbortSignal },
  ): Promise<SockResult> => {
    const sockets = socketsOf(session);
    if (p.bound !== undefined) sockets.listeners.get(p.bound)?.close();
    const target = { scheme: "tcp" as const, host: p.host, port: p.port };
    const decision = await policy.checkOutbound(target);
    if (!decision.ok) return denied(decision);
    let conn: Deno.TcpConn;
    try {
      const hostname = dialHost(p.host, p.version, decision.addresses, p.port);
      conn = await Deno.connect({ hostname, port: p.port, transport: "tcp" });
    } catch (e) {
      // Deno reads the peer's address after the handshake; a reset arriving in between
      // surfaces as ENOTCONN, which POSIX spells ECONNRESET for connect().
      const errno = errnoOf(e);
      return failure(errno === "ENOTCONN" ? "ECONNRESET" : errno, message(e));
    }
    // The peer actually reached is checked too (a name may resolve differently for Deno).
    const peer = conn.remoteAddr as Deno.NetAddr;
    const reached = await policy.checkOutbound(target, { addresses: [peer.hostname] });
    if (!reached.ok || signal.aborted) {
      conn.close();
      return reached.ok ? failure("ETIMEDOUT", "cancelled") : denied(reached);
    }
    applyOptions(conn, p);
    const c = new Connection(conn, session, untrack(sockets.connections, p.handle));
    if (!c.openPipes(p.window, p.sendWindow)) {
      conn.close();
      return failure("ENOMEM", "the connection's buffers are over the guest's host budget");
    }
    const sender = session.openStream(p.handle, { mode: "credit", window: 0 }, () => c.stopReading());
    session.receiveStream(p.outbound, c.inbound);
    track(sockets.connections, p.handle, c);
    c.start(sender);
    return {
      ok: true,
      local: addrText(conn.localAddr),
      peer: addrText(conn.remoteAddr),
      rx: c.rx.ref,
      tx: c.tx.ref,
    };
  };

  const applyOptions = (conn: Deno.TcpConn, o: { nodelay: boolean; keepalive: boolean }) => {
    try {
      conn.setNoDelay(o.nodelay);
      conn.setKeepAlive(o.keepalive);
    } catch { /* the connection already went */ }
  };

  const listen = (
    p: { handle: number; rcvbuf: number; sndbuf: number; nodelay: boolean; keepalive: boolean },
    { session }: SessionContext,
  ): SockResult => {
    const sockets = socketsOf(session);
    const l = sockets.listeners.get(p.handle);
    if (!l) return failure("EINVAL", "no such bound socket");
    void l.acceptLoop((conn) => adopt(session, sockets, p, conn));
    return { ok: true, local: addrText(l.listener.addr) };
  };

  /** Hands an accepted connection to the guest as a duplex handle, or closes it (policy). */
  const adopt = (
    session: GuestSession,
    sockets: GuestSockets,
    p: { handle: number; rcvbuf: number; sndbuf: number; nodelay: boolean; keepalive: boolean },
    conn: Deno.TcpConn,
  ): boolean => {
    const peer = conn.remoteAddr as Deno.NetAddr;
    if (!policy.checkInbound({ scheme: "tcp", host: peer.hostname, port: peer.port }).ok) {
      deniedInbound++;
      conn.close();
      return false;
    }
    applyOptions(conn, p);
    let id = 0;
    const c = new Connection(conn, session, () => untrack(sockets.connections, id)());
    if (!c.openPipes(p.rcvbuf, p.sndbuf)) {
      conn.close();
      sockets.listeners.get(p.handle)?.sender.event({ type: "over_budget" }); // counted by the listener
      return false;
    }
    const info: AcceptedInfo = {
      listener: p.handle,
      local: addrText(conn.localAddr),
      peer: addrText(peer),
      rx: c.rx.ref,
      tx: c.tx.ref,
    };
    const { sender } = session.createHandle(
      "sock",
      "accepted",
      info,
      { mode: "credit", window: 0 },
      () => c.stopReading(),
      { stream: c.inbound, window: 0 },
    );
    id = sender.id;
    track(sockets.connections, id, c);
    c.start(sender);
    return true;
  };

  const resolve = async (p: { host: string; port: number; version: 4 | 6 }): Promise<SockResult> => {
    const decision = await policy.checkOutbound({ scheme: "udp", host: p.host, port: p.port });
    if (!decision.ok) return denied(decision);
    const name = parseIpLiteral(p.host) ? "" : p.host;
    if (isLocalhostName(p.host)) return { ok: true, address: loopback(p.version), name, port: p.port };
    const address = decision.addresses.find((a) => parseIpLiteral(a)?.version === p.version);
    if (!address) return failure("EHOSTUNREACH", `${p.host} has no IPv${p.version} address`);
    return { ok: true, address, name, port: p.port };
  };

  const setOptions = (
    p: { handle: number; nodelay: boolean; keepalive: boolean },
    { session }: SessionContext,
  ) => {
    const c = guests.get(session)?.connections.get(p.handle);
    if (c) applyOptions(c.conn, p);
    return { ok: true };
  };

  return {
    family: "sock",
    handlers: [
      handle(sockAllowed, () => allowed),
      handle(sockBind, bind),
      handle(sockConnect, connect),
      handle(sockListen, listen),
      handle(sockOptions, setOptions),
      handle(sockResolve, resolve),
    ],
    get openHandles() {
      return open;
    },
    get deniedInbound() {
      return deniedInbound;
    },
  };
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return sockDriver(config);
}
