/**
 * sock_*: the worker part of TCP and UDP socket fds (SPEC.md §8, seed 003).
 *
 * A socket is a state machine (unbound → bound → listening, or → connecting → connected) plus
 * its queues (families/sock/protocol.ts): a connection's bytes go through two byte pipes the
 * host shares with this thread (protocol/pipe.ts), as large as the receive and send windows;
 * datagrams wait in a queued-stream fd (runtime/queue_fd.ts) capped by the receive window and
 * go out on a credit stream whose window is the send buffer. Blocking is POSIX's: a call
 * that cannot proceed waits in `rt.block` (tool calls may run there) until it can, its
 * RCVTIMEO/SNDTIMEO passes (-EAGAIN) or the guest's time limit ends it; with O_NONBLOCK it is
 * -EAGAIN (-EINPROGRESS for connect) and readiness says when to come back. Readiness is derived
 * from the state in one place (`readiness`). Requests to the driver only set things up; no
 * socket byte travels in a request.
 */
import { Errno, type ErrnoName, fail, Poll } from "../../runtime/abi.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { QueuedStream } from "../../runtime/queue_fd.ts";
import { copyInto } from "../../protocol/bytes.ts";
import type { BytePipe, PipeRef } from "../../protocol/pipe.ts";
import { LatencyWindow } from "../../protocol/latency.ts";
import type { Method, PendingCall } from "../../protocol/rpc.ts";
import { streamClock, type StreamFrame, type StreamSender } from "../../protocol/stream.ts";
import type { NoticeEnvelope } from "../../protocol/wire.ts";
import type { HostcallFn } from "../family.ts";
import {
  AcceptedInfo,
  datagramOverhead,
  type DatagramPeer,
  decodeDatagram,
  encodeDatagram,
  formatSockAddr,
  type IpVersion,
  parseSockAddr,
  type SockAddr,
  SockAddrWhich,
  sockAllowed,
  sockBind,
  sockConnect,
  SockDomain,
  type SockEvent,
  SockLimits,
  sockListen,
  SockOpt,
  sockOptions,
  sockResolve,
  type SockResult,
  SockShut,
  SockType,
  type Transport,
  wildcard,
} from "./protocol.ts";

const encoder = new TextEncoder();

/** How long a setup request (bind, listen, resolve) may take before the guest gets -ETIMEDOUT. */
export const SETUP_TIMEOUT_MS = 30_000;
/** Destinations a UDP socket remembers as checked (sendto to the same place asks the host once). */
const DEST_CACHE_SIZE = 256;

type State = "unbound" | "bound" | "listening" | "connecting" | "connected";

interface Options {
  rcvtimeo: number;
  sndtimeo: number;
  reuseaddr: number;
  nodelay: number;
  keepalive: number;
  rcvbuf: number;
  sndbuf: number;
}

const DEFAULT_OPTIONS: Options = {
  rcvtimeo: 0,
  sndtimeo: 0,
  reuseaddr: 0,
  nodelay: 0,
  keepalive: 0,
  rcvbuf: SockLimits.DEFAULT_BUFFER,
  sndbuf: SockLimits.DEFAULT_BUFFER,
};

export interface Socket {
  readonly version: IpVersion;
  readonly transport: Transport;
  state: State;
  options: Options;
  /** The error SO_ERROR reports (and EPOLLERR shows) until read. */
  pendingError: ErrnoName | null;
  local: string | null;
  peer: string | null;
  /** Host handle: a bound/listening TCP socket's listener stream, a connection's or UDP socket's receive stream. */
  handle: number;
  /** UDP: the queue of received datagrams. */
  queue: QueuedStream | null;
  /** UDP: datagrams out (credit stream). TCP: the send stream, which carries no bytes; closing it is FIN. */
  out: StreamSender | null;
  /** TCP, once connected: the receive and send pipes. */
  rx: BytePipe | null;
  tx: BytePipe | null;
  /** The peer finished sending (TCP), or the guest shut reading. */
  eof: boolean;
  readShut: boolean;
  writeShut: boolean;
  /** The connection broke (reset, broken pipe): sends are -EPIPE, EPOLLHUP. */
  broken: boolean;
  connect: PendingCall<SockResult> | null;
  connectStarted: number;
  /** Listener: connections accepted by the host, waiting for sock_accept. */
  pending: Socket[];
  backlog: number;
  /** Options the host applies to connections it accepts for this listener (as of listen). */
  listenOptions: Options | null;
  /** UDP: the connected peer, and destinations checked by the host. */
  udpPeer: DatagramPeer | null;
  destinations: Map<string, DatagramPeer>;
  entry: FdEntry<Socket> | null;
  stats: SocketStats;
}

interface SocketStats {
  bytesSent: number;
  /** Payload bytes read by the guest. */
  bytesReceived: number;
  datagramsSent: number;
  datagramsReceived: number;
  /** Datagrams the host could not hand over (the channel was congested). */
  hostDropped: number;
  /** Datagrams from other peers removed after a UDP connect (on arrival or from the queue). */
  filtered: number;
  /** Of those, the ones removed from the queue (the queue counts them as dropped). */
  filteredQueued: number;
  accepted: number;
  /** Connections the host accepted but closed: their buffers did not fit the guest's host budget. */
  overBudget: number;
  connectLatency: LatencyWindow;
}

function newSocket(version: IpVersion, transport: Transport, options = DEFAULT_OPTIONS): Socket {
  return {
    version,
    transport,
    state: "unbound",
    options: { ...options },
    pendingError: null,
    local: null,
    peer: null,
    handle: 0,
    queue: null,
    out: null,
    rx: null,
    tx: null,
    eof: false,
    readShut: false,
    writeShut: false,
    broken: false,
    connect: null,
    connectStarted: 0,
    pending: [],
    backlog: 0,
    listenOptions: null,
    udpPeer: null,
    destinations: new Map(),
    entry: null,
    stats: {
      bytesSent: 0,
      bytesReceived: 0,
      datagramsSent: 0,
      datagramsReceived: 0,
      hostDropped: 0,
      filtered: 0,
      filteredQueued: 0,
      accepted: 0,
      overBudget: 0,
      connectLatency: new LatencyWindow(256),
    },
  };
}

/** EPOLLIN/OUT/ERR/HUP of a socket, from its state alone (SPEC.md §8 "Readiness"). */
export function readiness(sock: Socket): number {
  let mask = sock.pendingError ? Poll.EPOLLERR : 0;
  if (sock.transport === "udp") {
    if ((sock.queue?.length ?? 0) > 0) mask |= Poll.EPOLLIN;
    const room = sock.out ? sock.out.available : 0;
    const needed = Math.min(sock.options.sndbuf, SockLimits.MAX_DATAGRAM + 64);
    if (!sock.writeShut && (sock.out === null || room >= needed)) mask |= Poll.EPOLLOUT;
    return mask;
  }
  if (sock.state === "listening") return mask | (sock.pending.length > 0 ? Poll.EPOLLIN : 0);
  if (sock.state !== "connected") return mask;
  if ((sock.rx?.used ?? 0) > 0 || sock.eof || sock.broken) mask |= Poll.EPOLLIN;
  if (!sock.writeShut && !sock.broken && (sock.tx?.room ?? 0) > 0) mask |= Poll.EPOLLOUT;
  if (sock.broken || (sock.eof && sock.writeShut)) mask |= Poll.EPOLLHUP;
  return mask;
}

const errnoName = (
  name: string | undefined,
): ErrnoName => (name && name in Errno ? name as ErrnoName : "EIO");

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;
  /** Listeners by handle, for the connections the host accepts for them. */
  const listeners = new Map<number, Socket>();
  let allowed: { tcp: boolean; udp: boolean } | undefined;

  /**
   * Sets the fd's readiness. An empty receive pipe or a full send pipe first asks the host for a
   * signal, so the mask changes (and waiters wake) when the host fills or drains it.
   */
  const refresh = (sock: Socket) => {
    if (sock.rx && sock.rx.used === 0) sock.rx.wantData();
    if (sock.tx && sock.tx.room === 0) sock.tx.wantRoom();
    if (sock.entry && !sock.entry.closed) fds.setMask(sock.entry, readiness(sock));
  };

  const socketOf = (fd: number) => {
    const entry = fds.getOpen<Socket>(fd, "Socket");
    return entry.state;
  };

  // ------------------------------------------------------------ waiting

  /** Waits (POSIX blocking) until `ready`, or fails: O_NONBLOCK → `nonblocking`, timeout → EAGAIN. */
  const waitFor = (
    sock: Socket,
    ready: () => boolean,
    timeoutMs: number,
    nonblocking: ErrnoName = "EAGAIN",
  ) => {
    if (ready()) return;
    const entry = sock.entry!;
    if (fds.isNonBlocking(entry)) throw fail(nonblocking);
    const done = rt.block(() => ready() || entry.closed, timeoutMs > 0 ? timeoutMs : -1);
    if (entry.closed) throw fail("EBADF", "closed while waiting");
    if (!done) throw fail("EAGAIN", "timed out");
  };

  /** Returns (and clears) the pending error as a failure, if there is one. */
  const takePendingError = (sock: Socket) => {
    const error = sock.pendingError;
    if (!error) return;
    sock.pendingError = null;
    refresh(sock);
    throw fail(error);
  };

  // ------------------------------------------------------------ streams

  const datagramsOf = (sock: Socket) => sock.queue as QueuedStream;

  /**
   * A connection's pipes, placed by the host; their signals refresh readiness. False when the
   * host gave none (or ones outside the arena): the connection is then an error, not a crash.
   */
  const attachPipes = (sock: Socket, rx: PipeRef | undefined, tx: PipeRef | undefined): boolean => {
    try {
      if (!rx || !tx) return false;
      sock.rx = rt.attachPipe(rx, () => refresh(sock));
      sock.tx = rt.attachPipe(tx, () => refresh(sock));
      return true;
    } catch {
      return false; // releaseStreams lets go of a pipe attached before
    }
  };

  /** Receives a connection's end (eof, error); its bytes come through the receive pipe. */
  const connectionReceiver = (sock: Socket) => ({
    data() {},
    event(value: Record<string, unknown>) {
      const event = value as SockEvent;
      if (event.type === "eof") sock.eof = true;
      else if (event.type === "error") {
        sock.broken = true;
        sock.eof = true;
        sock.pendingError = errnoName(event.errno);
      }
      refresh(sock);
    },
  });

  /** Receives a UDP socket's datagrams: filtered by the connected peer, queued or dropped (counted). */
  const datagramReceiver = (sock: Socket) => ({
    data(frame: StreamFrame) {
      sock.stats.hostDropped = Math.max(sock.stats.hostDropped, frame.dropped);
      if (sock.readShut) return;
      const { peer } = decodeDatagram(frame.bytes);
      if (sock.udpPeer && !samePeer(peer, sock.udpPeer)) {
        sock.stats.filtered++;
        return;
      }
      if (datagramsOf(sock)?.push({ bytes: frame.bytes, at: frame.at }) === "queued") {
        sock.stats.datagramsReceived++;
      }
      refresh(sock);
    },
    event(value: Record<string, unknown>) {
      const event = value as SockEvent;
      sock.stats.hostDropped = Math.max(sock.stats.hostDropped, Number(value.dropped ?? 0));
      if (event.type === "error") sock.pendingError = errnoName(event.errno);
      refresh(sock);
    },
  });

  /** A listener's stream carries one marker byte per accepted connection (the backlog's credit). */
  const listenerReceiver = (sock: Socket) => ({
    data() {},
    event(value: Record<string, unknown>) {
      const event = value as SockEvent;
      if (event.type === "error") sock.pendingError = errnoName(event.errno);
      if (event.type === "over_budget") sock.stats.overBudget++;
      refresh(sock);
    },
  });

  const samePeer = (a: DatagramPeer, b: DatagramPeer) => a.address === b.address && a.port === b.port;

  /** Stops both streams of a socket and frees its queue (close, failed connect). */
  const releaseStreams = (sock: Socket) => {
    if (sock.handle) rt.closeStream(sock.handle);
    if (sock.out) rt.closeStream(sock.out.id);
    sock.queue?.dispose();
    if (sock.rx) rt.detachPipe(sock.rx);
    if (sock.tx) rt.detachPipe(sock.tx);
    sock.handle = 0;
    sock.out = null;
    sock.queue = null;
    sock.rx = null;
    sock.tx = null;
  };

  // ------------------------------------------------------------ addresses

  /** Parses the guest's address text; EINVAL when malformed, EAFNOSUPPORT for the other family. */
  const readAddr = (sock: Socket, ptr: number, len: number): SockAddr => {
    if (len <= 0 || len > SockLimits.MAX_ADDR_TEXT) throw fail("EINVAL", `address length ${len}`);
    const text = new TextDecoder("utf-8", { fatal: false }).decode(mem.slice(ptr, len)).replace(/\0+$/, "");
    const addr = parseSockAddr(text);
    if (!addr) throw fail("EINVAL", `bad address "${text}" (host:port or [v6]:port)`);
    if (addr.ip && addr.ip.version !== sock.version) {
      throw fail("EAFNOSUPPORT", `${text} is not an IPv${sock.version} address`);
    }
    if (addr.ip?.v4mapped) throw fail("EINVAL", "IPv4-mapped addresses are not accepted on IPv6 sockets");
    return addr;
  };

  /** A remote address needs a real port and a host; a TCP peer must be unicast. */
  const checkRemote = (sock: Socket, addr: SockAddr) => {
    if (addr.port === 0) throw fail("EINVAL", "port 0");
    if (addr.ip?.unspecified) throw fail("EINVAL", "the unspecified address");
    if (sock.transport === "tcp" && addr.ip && (addr.ip.multicast || addr.ip.broadcast)) {
      throw fail("EINVAL", "not a unicast address");
    }
  };

  const writeAddrOut = (text: string, outPtr: number, lenPtr: number) =>
    mem.writeOut(outPtr, lenPtr, encoder.encode(text));

  // ------------------------------------------------------------ setup requests

  /** A blocking setup request; its failure becomes the guest's -errno. */
  const request = <P>(m: Method<P, SockResult>, params: P, fd: number): SockResult => {
    const outcome = rt.call(m, params, { fd, timeoutMs: SETUP_TIMEOUT_MS });
    if (!outcome.ok) throw fail(outcome.cancelled ? "ETIMEDOUT" : "EIO", outcome.error);
    if (!outcome.value.ok) throw fail(errnoName(outcome.value.errno), outcome.value.message);
    return outcome.value;
  };

  const checkAllowed = (transport: Transport) => {
    if (!allowed) {
      const outcome = rt.call(sockAllowed, null, { timeoutMs: SETUP_TIMEOUT_MS });
      if (!outcome.ok) throw fail("EIO", outcome.error);
      allowed = outcome.value;
    }
    if (!allowed[transport]) {
      throw fail("EACCES", `the config allows no ${transport} socket (net.allow / net.listen)`);
    }
  };

  /** Binds a TCP socket: the host holds a listener (bound, not yet accepting) on `handle`. */
  const bindTcp = (sock: Socket, fd: number, addr: SockAddr) => {
    if (addr.ip && (addr.ip.multicast || addr.ip.broadcast)) throw fail("EINVAL", "not a unicast address");
    const handle = rt.openStream(listenerReceiver(sock));
    try {
      const result = request(sockBind, {
        host: addr.host,
        port: addr.port,
        version: sock.version,
        transport: "tcp",
        handle,
        implicit: false,
      }, fd);
      sock.handle = handle;
      sock.local = result.local ?? null;
      sock.state = "bound";
    } catch (e) {
      rt.closeStream(handle);
      throw e;
    }
  };

  /** Binds a UDP socket and opens its datagram streams; `implicit` is the wildcard bind before a first send. */
  const bindUdp = (sock: Socket, fd: number, addr: SockAddr, implicit: boolean) => {
    const handle = rt.openStream(datagramReceiver(sock));
    sock.handle = handle;
    sock.out = rt.openOutbound(sock.options.sndbuf, () => refresh(sock)); // credit raises EPOLLOUT
    sock.queue = new QueuedStream({
      capacity: sock.options.rcvbuf,
      policy: "drop_newest",
      budget: rt.budget,
      clock: streamClock,
    });
    try {
      const result = request(sockBind, {
        host: addr.host,
        port: addr.port,
        version: sock.version,
        transport: "udp",
        handle,
        outbound: sock.out.id,
        implicit,
      }, fd);
      sock.local = result.local ?? null;
      sock.state = "bound";
    } catch (e) {
      releaseStreams(sock);
      throw e;
    }
  };

  const ensureUdpBound = (sock: Socket, fd: number) => {
    if (sock.state === "unbound") bindUdp(sock, fd, { host: wildcard(sock.version), port: 0 }, true);
  };

  /** Checks a UDP destination with the host (once per socket and destination). */
  const destination = (sock: Socket, fd: number, addr: SockAddr): DatagramPeer => {
    const key = `${addr.host}:${addr.port}`;
    const known = sock.destinations.get(key);
    if (known) return known;
    const result = request(sockResolve, { host: addr.host, port: addr.port, version: sock.version }, fd);
    const dest = { address: result.address!, port: addr.port, name: result.name ?? "" };
    if (sock.destinations.size >= DEST_CACHE_SIZE) sock.destinations.clear();
    sock.destinations.set(key, dest);
    return dest;
  };

  // ------------------------------------------------------------ TCP connect

  const applyConnect = (
    sock: Socket,
    result: SockResult | { ok: false; errno: string; message?: string },
  ) => {
    sock.connect = null;
    if (sock.entry?.closed) return;
    const { rx, tx } = result as SockResult;
    if (result.ok && !attachPipes(sock, rx, tx)) {
      result = { ok: false, errno: "EIO", message: "the host gave no usable pipes" };
    }
    if (result.ok) {
      sock.state = "connected";
      sock.local = (result as SockResult).local ?? null;
      sock.peer = (result as SockResult).peer ?? null;
      sock.stats.connectLatency.add(performance.now() - sock.connectStarted);
    } else {
      releaseStreams(sock);
      sock.state = "unbound";
      sock.local = null;
      sock.pendingError = errnoName(result.errno);
    }
    refresh(sock);
  };

  const startConnect = (sock: Socket, fd: number, addr: SockAddr) => {
    const bound = sock.state === "bound" ? sock.handle : undefined;
    if (bound) rt.closeStream(bound); // the bind's listener goes; Deno.connect picks its own port
    const window = sock.options.rcvbuf;
    sock.handle = rt.openStream(connectionReceiver(sock));
    sock.out = rt.openOutbound(0);
    sock.state = "connecting";
    sock.connectStarted = performance.now();
    sock.connect = rt.rpc.start(sockConnect, {
      host: addr.host,
      port: addr.port,
      version: sock.version,
      handle: sock.handle,
      outbound: sock.out!.id,
      window,
      sendWindow: sock.options.sndbuf,
      ...(bound ? { bound } : {}),
      nodelay: sock.options.nodelay !== 0,
      keepalive: sock.options.keepalive !== 0,
    }, {
      fd,
      onDone: (outcome) =>
        applyConnect(sock, outcome.ok ? outcome.value : { ok: false, errno: "EIO", message: outcome.error }),
    });
  };

  const connectTcp = (sock: Socket, fd: number, addr: SockAddr): number => {
    if (sock.state === "connected") throw fail("EISCONN");
    if (sock.state === "connecting") throw fail("EALREADY");
    if (sock.state === "listening") throw fail("EINVAL", "the socket is listening");
    checkRemote(sock, addr);
    startConnect(sock, fd, addr);
    refresh(sock);
    waitFor(sock, () => sock.state !== "connecting", sock.options.sndtimeo, "EINPROGRESS");
    // The wait changed the state behind TypeScript's back.
    if ((sock.state as State) !== "connected") takePendingError(sock);
    return 0;
  };

  /** UDP connect: a default destination and a receive filter; an empty address disconnects. */
  const connectUdp = (sock: Socket, fd: number, addrPtr: number, addrLen: number): number => {
    if (addrLen === 0) {
      sock.udpPeer = null;
      sock.peer = null;
      if (sock.state === "connected") sock.state = "bound";
      return 0;
    }
    const addr = readAddr(sock, addrPtr, addrLen);
    checkRemote(sock, addr);
    ensureUdpBound(sock, fd);
    const peer = destination(sock, fd, addr);
    sock.udpPeer = peer;
    sock.peer = formatSockAddr(peer.address, peer.port);
    sock.state = "connected";
    const removed = datagramsOf(sock).removeWhere((item) => !samePeer(decodeDatagram(item.bytes).peer, peer));
    sock.stats.filtered += removed;
    sock.stats.filteredQueued += removed;
    refresh(sock);
    return 0;
  };

  // ------------------------------------------------------------ listen and accept

  const listen = (sock: Socket, fd: number, backlog: number): number => {
    if (sock.transport !== "tcp") throw fail("EINVAL", "listen on a datagram socket");
    if (sock.state === "connected" || sock.state === "connecting") {
      throw fail("EINVAL", "the socket is connected");
    }
    const wanted = Math.min(Math.max(backlog, 1), SockLimits.MAX_BACKLOG);
    if (sock.state === "listening") {
      if (wanted > sock.backlog) rt.credit(sock.handle, wanted - sock.backlog);
      sock.backlog = Math.max(sock.backlog, wanted);
      return 0;
    }
    // Unbound: bind to an ephemeral port of the wildcard first, as Linux (net.listen must allow it).
    if (sock.state === "unbound") bindTcp(sock, fd, { host: wildcard(sock.version), port: 0 });
    request(sockListen, {
      handle: sock.handle,
      rcvbuf: sock.options.rcvbuf,
      sndbuf: sock.options.sndbuf,
      nodelay: sock.options.nodelay !== 0,
      keepalive: sock.options.keepalive !== 0,
    }, fd);
    sock.state = "listening";
    sock.backlog = wanted;
    sock.listenOptions = { ...sock.options };
    listeners.set(sock.handle, sock);
    rt.credit(sock.handle, wanted); // the host accepts this many before the guest takes one
    return 0;
  };

  /** A connection the host accepted: adopted now (its bytes may follow at once), an fd at sock_accept. */
  const adoptAccepted = (notice: NoticeEnvelope) => {
    const info = AcceptedInfo.check(notice.info, "sock/accepted");
    const listener = listeners.get(info.listener);
    const conn = newSocket(listener?.version ?? 4, "tcp", listener?.listenOptions ?? DEFAULT_OPTIONS);
    conn.state = "connected";
    conn.local = info.local;
    conn.peer = info.peer;
    conn.handle = notice.stream!;
    rt.adoptStream(conn.handle, connectionReceiver(conn));
    conn.out = rt.adoptOutbound(notice.outbound!);
    const usable = attachPipes(conn, info.rx, info.tx);
    if (!usable || !listener || listener.entry?.closed) return releaseStreams(conn);
    listener.pending.push(conn);
    refresh(listener);
  };
  rt.onNotice("sock", "accepted", adoptAccepted);

  /** The accepted socket takes the listener's current options; the host applied the ones of listen time. */
  const inherit = (listener: Socket, conn: Socket, fd: number) => {
    const applied = listener.listenOptions!;
    conn.options = { ...listener.options, rcvbuf: applied.rcvbuf, sndbuf: applied.sndbuf };
    if (listener.options.nodelay !== applied.nodelay || listener.options.keepalive !== applied.keepalive) {
      rt.rpc.start(sockOptions, {
        handle: conn.handle,
        nodelay: conn.options.nodelay !== 0,
        keepalive: conn.options.keepalive !== 0,
      }, { fd });
    }
  };

  const accept = (sock: Socket, addrPtr: number, addrLenPtr: number): number => {
    if (sock.state !== "listening") throw fail("EINVAL", "the socket is not listening");
    if (addrPtr !== 0) mem.u32(addrLenPtr);
    waitFor(sock, () => sock.pending.length > 0 || sock.pendingError !== null, sock.options.rcvtimeo);
    takePendingError(sock);
    const conn = sock.pending[0];
    if (addrPtr !== 0) {
      const text = encoder.encode(conn.peer ?? "");
      if (mem.u32(addrLenPtr) < text.length) {
        mem.setU32(addrLenPtr, text.length);
        throw fail("ENOSPC"); // the connection stays queued
      }
    }
    const entry = fds.alloc<Socket>("Socket", conn, socketHooks);
    sock.pending.shift();
    conn.entry = entry;
    sock.stats.accepted++;
    rt.credit(sock.handle, 1); // room for one more in the backlog
    inherit(sock, conn, entry.fd);
    if (addrPtr !== 0) writeAddrOut(conn.peer ?? "", addrPtr, addrLenPtr);
    refresh(conn);
    refresh(sock);
    return entry.fd;
  };

  // ------------------------------------------------------------ send and receive

  const sendStream = (sock: Socket, ptr: number, len: number): number => {
    mem.check(ptr, len);
    if (sock.state === "connecting") waitFor(sock, () => sock.state !== "connecting", sock.options.sndtimeo);
    if (sock.state !== "connected") {
      takePendingError(sock);
      throw fail("ENOTCONN");
    }
    const tx = sock.tx!;
    let taken = 0;
    // Asks for a signal only when it has to wait: a pipe with room needs none.
    const writable = () => sock.writeShut || sock.broken || tx.room > 0 || tx.wantRoom();
    while (taken < len) {
      if (sock.writeShut || sock.broken) {
        if (taken > 0) break;
        throw fail("EPIPE");
      }
      if (tx.room === 0) {
        if (taken > 0 && fds.isNonBlocking(sock.entry!)) break;
        try {
          waitFor(sock, writable, sock.options.sndtimeo);
        } catch (e) {
          if (taken > 0) break; // a timeout after some bytes: the count, as POSIX
          throw e;
        }
        continue;
      }
      const [n, tell] = tx.write(mem.slice(ptr + taken, len - taken), copyInto);
      if (tell) tx.wakeConsumer();
      taken += n;
    }
    sock.stats.bytesSent += taken;
    refresh(sock);
    return taken;
  };

  const sendDatagram = (sock: Socket, fd: number, dest: DatagramPeer, ptr: number, len: number): number => {
    mem.check(ptr, len);
    if (len > SockLimits.MAX_DATAGRAM) {
      throw fail("EMSGSIZE", `${len} bytes is over ${SockLimits.MAX_DATAGRAM}`);
    }
    if (sock.writeShut) throw fail("EPIPE");
    const size = len + datagramOverhead(dest);
    if (size > sock.options.sndbuf) throw fail("EMSGSIZE", `${len} bytes is over SNDBUF`);
    ensureUdpBound(sock, fd);
    waitFor(sock, () => sock.out!.available >= size, sock.options.sndtimeo);
    sock.out!.send(encodeDatagram(dest, mem.slice(ptr, len)));
    sock.stats.bytesSent += len;
    sock.stats.datagramsSent++;
    refresh(sock);
    return len;
  };

  const recvStream = (sock: Socket, outPtr: number, lenPtr: number): number => {
    mem.u32(lenPtr);
    if (sock.state === "connecting") waitFor(sock, () => sock.state !== "connecting", sock.options.rcvtimeo);
    if (sock.state !== "connected") {
      takePendingError(sock);
      throw fail("ENOTCONN");
    }
    const rx = sock.rx!;
    const readable = () => sock.readShut || rx.used > 0 || sock.eof || rx.wantData();
    waitFor(sock, readable, sock.options.rcvtimeo);
    if (!sock.readShut && rx.used > 0) {
      const n = readPipe(rx, outPtr, mem.u32(lenPtr));
      sock.stats.bytesReceived += n;
      mem.setU32(lenPtr, n);
      refresh(sock);
      return n;
    }
    takePendingError(sock); // a reset is reported once, after every byte that came before it
    mem.setU32(lenPtr, 0);
    return 0;
  };

  /** Copies up to `max` bytes from a pipe into guest memory (two parts across the wrap). */
  const readPipe = (rx: BytePipe, outPtr: number, max: number): number => {
    mem.check(outPtr, Math.min(max, rx.used)); // -EFAULT before anything is consumed
    let n = 0;
    let tell = false;
    for (let region = rx.readable(max); region.length > 0; region = rx.readable(max - n)) {
      copyInto(mem.slice(outPtr + n, region.length), 0, region);
      n += region.length;
      tell = rx.consume(region.length) || tell;
    }
    if (tell) rx.wakeProducer();
    return n;
  };

  /** Reads one datagram (-ENOSPC leaves it queued) and, when asked, its source address. */
  const recvDatagram = (
    sock: Socket,
    outPtr: number,
    lenPtr: number,
    addrPtr: number,
    addrLenPtr: number,
  ) => {
    mem.u32(lenPtr);
    if (addrPtr !== 0) mem.u32(addrLenPtr);
    waitFor(
      sock,
      () => (sock.queue?.length ?? 0) > 0 || sock.pendingError !== null || sock.readShut,
      sock.options.rcvtimeo,
    );
    if ((sock.queue?.length ?? 0) === 0) {
      takePendingError(sock);
      mem.setU32(lenPtr, 0);
      return 0; // shut for reading
    }
    const { peer, payload } = decodeDatagram(datagramsOf(sock).peek()!.bytes);
    const from = encoder.encode(formatSockAddr(peer.address, peer.port));
    if (mem.u32(lenPtr) < payload.length) {
      mem.setU32(lenPtr, payload.length);
      throw fail("ENOSPC", `datagram of ${payload.length} bytes`);
    }
    if (addrPtr !== 0 && mem.u32(addrLenPtr) < from.length) {
      mem.setU32(addrLenPtr, from.length);
      throw fail("ENOSPC", "address buffer");
    }
    mem.writeOut(outPtr, lenPtr, payload);
    if (addrPtr !== 0) mem.writeOut(addrPtr, addrLenPtr, from);
    datagramsOf(sock).commit();
    sock.stats.bytesReceived += payload.length;
    refresh(sock);
    return payload.length;
  };

  // ------------------------------------------------------------ options

  const clampBuffer = (value: number) => {
    if (value <= 0) throw fail("EINVAL", "a buffer size must be positive");
    return Math.min(Math.max(value, SockLimits.MIN_BUFFER), SockLimits.MAX_BUFFER);
  };

  const setOption = (sock: Socket, opt: number, value: number) => {
    const o = sock.options;
    switch (opt) {
      case SockOpt.RCVTIMEO_MS:
      case SockOpt.SNDTIMEO_MS:
        if (value < 0) throw fail("EINVAL", "a timeout must not be negative");
        if (opt === SockOpt.RCVTIMEO_MS) o.rcvtimeo = value;
        else o.sndtimeo = value;
        return;
      case SockOpt.REUSEADDR:
        o.reuseaddr = value ? 1 : 0;
        return;
      case SockOpt.NODELAY:
      case SockOpt.KEEPALIVE:
        if (opt === SockOpt.NODELAY) o.nodelay = value ? 1 : 0;
        else o.keepalive = value ? 1 : 0;
        if (sock.transport === "tcp" && sock.state === "connected") {
          rt.rpc.start(sockOptions, {
            handle: sock.handle,
            nodelay: o.nodelay !== 0,
            keepalive: o.keepalive !== 0,
          }, {
            fd: sock.entry!.fd,
          });
        }
        return;
      case SockOpt.RCVBUF:
        return growReceiveWindow(sock, clampBuffer(value));
      case SockOpt.SNDBUF:
        o.sndbuf = clampBuffer(value); // the send window of streams opened from now on
        return;
      default:
        throw fail("EINVAL", `unknown or read-only socket option ${opt}`);
    }
  };

  /**
   * RCVBUF: the window of queues made from now on; a larger one also widens a live datagram
   * queue now. A connection keeps the pipe it was opened with (the host placed it).
   */
  const growReceiveWindow = (sock: Socket, size: number) => {
    const queue = sock.queue;
    if (queue && size > queue.capacity) queue.resize(size); // ENOMEM past the host budget changes nothing
    sock.options.rcvbuf = size;
  };

  const getOption = (sock: Socket, opt: number): number => {
    const o = sock.options;
    switch (opt) {
      case SockOpt.RCVTIMEO_MS:
        return o.rcvtimeo;
      case SockOpt.SNDTIMEO_MS:
        return o.sndtimeo;
      case SockOpt.REUSEADDR:
        return o.reuseaddr;
      case SockOpt.NODELAY:
        return o.nodelay;
      case SockOpt.KEEPALIVE:
        return o.keepalive;
      case SockOpt.RCVBUF:
        return o.rcvbuf;
      case SockOpt.SNDBUF:
        return o.sndbuf;
      case SockOpt.ERROR: {
        const error = sock.pendingError;
        sock.pendingError = null;
        refresh(sock);
        return error ? Errno[error] : 0;
      }
      default:
        throw fail("EINVAL", `unknown socket option ${opt}`);
    }
  };

  // ------------------------------------------------------------ shutdown and close

  const shutdown = (sock: Socket, how: number): number => {
    if (how !== SockShut.SHUT_RD && how !== SockShut.SHUT_WR && how !== SockShut.SHUT_RDWR) {
      throw fail("EINVAL", `shutdown how ${how}`);
    }
    if (sock.state !== "connected") throw fail("ENOTCONN");
    if (how !== SockShut.SHUT_WR && !sock.readShut) {
      sock.readShut = true;
      sock.eof = true;
      sock.queue?.clear(); // queued bytes are dropped, as wasmtime's shutdown(receive)
      if (sock.rx) sock.rx.consume(sock.rx.used);
      if (sock.transport === "tcp") rt.closeStream(sock.handle); // the host stops reading the peer
    }
    if (how !== SockShut.SHUT_RD && !sock.writeShut) {
      sock.writeShut = true;
      // TCP: the host sends FIN once every queued byte is written.
      if (sock.transport === "tcp" && sock.out) rt.closeStream(sock.out.id);
    }
    refresh(sock);
    return 0;
  };

  const closeSocket = (sock: Socket) => {
    listeners.delete(sock.handle);
    for (const conn of sock.pending.splice(0)) releaseStreams(conn);
    releaseStreams(sock);
  };

  const metrics = (sock: Socket): Record<string, unknown> => ({
    transport: sock.transport,
    family: sock.version === 4 ? "AF_INET" : "AF_INET6",
    state: sock.state,
    local: sock.local,
    peer: sock.peer,
    bytes_sent: sock.stats.bytesSent,
    bytes_received: sock.stats.bytesReceived,
    ...(sock.transport === "udp"
      ? {
        datagrams_sent: sock.stats.datagramsSent,
        datagrams_received: sock.stats.datagramsReceived,
        datagrams_read: datagramsOf(sock)?.readItems ?? 0,
        datagrams_dropped: receiveOverflows(sock) + sock.stats.hostDropped,
        receive_overflows: receiveOverflows(sock),
        host_dropped: sock.stats.hostDropped,
        datagrams_filtered: sock.stats.filtered,
      }
      : {
        accepted: sock.stats.accepted,
        pending_accepts: sock.pending.length,
        accepts_over_budget: sock.stats.overBudget,
      }),
    receive_queue_bytes: sock.rx?.used ?? sock.queue?.bytes ?? 0,
    receive_window: sock.rx?.limit ?? sock.queue?.capacity ?? sock.options.rcvbuf,
    send_window_free: sock.tx?.room ?? sock.out?.available ?? sock.options.sndbuf,
    connect_latency_ms: sock.stats.connectLatency.summary(),
    pending_error: sock.pendingError,
  });

  /** Datagrams the receive queue had no room for. */
  const receiveOverflows = (sock: Socket) => (sock.queue?.dropped ?? 0) - sock.stats.filteredQueued;

  const socketHooks = {
    onClose: (entry: FdEntry<Socket>) => closeSocket(entry.state),
    metrics: (entry: FdEntry<Socket>) => metrics(entry.state),
  };

  // ------------------------------------------------------------ the imports

  return {
    sock_create: (domain: number, type: number) => {
      const version = domain === SockDomain.AF_INET ? 4 : domain === SockDomain.AF_INET6 ? 6 : 0;
      if (!version) throw fail("EAFNOSUPPORT", `address family ${domain}`);
      const transport = type === SockType.SOCK_STREAM ? "tcp" : type === SockType.SOCK_DGRAM ? "udp" : null;
      if (!transport) throw fail("EINVAL", `socket type ${type}`);
      checkAllowed(transport);
      const sock = newSocket(version, transport);
      const entry = fds.alloc<Socket>("Socket", sock, socketHooks);
      sock.entry = entry;
      refresh(sock);
      return entry.fd;
    },

    sock_connect: (fd: number, addrPtr: number, addrLen: number) => {
      const sock = socketOf(fd);
      if (sock.transport === "udp") return connectUdp(sock, fd, addrPtr, addrLen);
      return connectTcp(sock, fd, readAddr(sock, addrPtr, addrLen));
    },

    sock_bind: (fd: number, addrPtr: number, addrLen: number) => {
      const sock = socketOf(fd);
      const addr = readAddr(sock, addrPtr, addrLen);
      if (sock.state !== "unbound") throw fail("EINVAL", "the socket is already bound");
      if (sock.transport === "tcp") bindTcp(sock, fd, addr);
      else bindUdp(sock, fd, addr, false);
      refresh(sock);
      return 0;
    },

    sock_listen: (fd: number, backlog: number) => listen(socketOf(fd), fd, backlog),

    sock_accept: (fd: number, addrPtr: number, addrLenPtr: number) => {
      rt.poll(); // a polling point: accepted connections arrive, tool calls run
      return accept(socketOf(fd), addrPtr, addrLenPtr);
    },

    sock_send: (fd: number, ptr: number, len: number) => {
      const sock = socketOf(fd);
      if (sock.transport === "tcp") return sendStream(sock, ptr, len);
      if (!sock.udpPeer) throw fail("ENOTCONN", "no destination: connect first or use sock_sendto");
      return sendDatagram(sock, fd, sock.udpPeer, ptr, len);
    },

    sock_recv: (fd: number, outPtr: number, lenPtr: number) => {
      rt.poll();
      const sock = socketOf(fd);
      if (sock.transport === "tcp") return recvStream(sock, outPtr, lenPtr);
      return recvDatagram(sock, outPtr, lenPtr, 0, 0);
    },

    sock_sendto: (fd: number, ptr: number, len: number, addrPtr: number, addrLen: number) => {
      const sock = socketOf(fd);
      if (sock.transport === "tcp") return sendStream(sock, ptr, len); // the address is ignored (POSIX)
      const addr = readAddr(sock, addrPtr, addrLen);
      checkRemote(sock, addr);
      mem.check(ptr, len);
      if (len > SockLimits.MAX_DATAGRAM) throw fail("EMSGSIZE");
      ensureUdpBound(sock, fd);
      const dest = destination(sock, fd, addr);
      if (sock.udpPeer && !samePeer(dest, sock.udpPeer)) throw fail("EISCONN", "connected to another peer");
      return sendDatagram(sock, fd, dest, ptr, len);
    },

    sock_recvfrom: (fd: number, outPtr: number, lenPtr: number, addrPtr: number, addrLenPtr: number) => {
      rt.poll();
      const sock = socketOf(fd);
      if (sock.transport === "udp") return recvDatagram(sock, outPtr, lenPtr, addrPtr, addrLenPtr);
      const n = recvStream(sock, outPtr, lenPtr);
      if (addrPtr !== 0) writeAddrOut(sock.peer ?? "", addrPtr, addrLenPtr);
      return n;
    },

    sock_getaddr: (fd: number, which: number, outPtr: number, lenPtr: number) => {
      const sock = socketOf(fd);
      if (which === SockAddrWhich.LOCAL) {
        return writeAddrOut(sock.local ?? formatSockAddr(wildcard(sock.version), 0), outPtr, lenPtr);
      }
      if (which !== SockAddrWhich.PEER) throw fail("EINVAL", `which ${which}`);
      if (sock.state !== "connected" || !sock.peer) throw fail("ENOTCONN");
      return writeAddrOut(sock.peer, outPtr, lenPtr);
    },

    sock_setopt: (fd: number, opt: number, value: number) => {
      setOption(socketOf(fd), opt, value);
      return 0;
    },

    sock_getopt: (fd: number, opt: number) => {
      rt.poll(); // the ERROR option reports what arrived
      return getOption(socketOf(fd), opt);
    },

    sock_shutdown: (fd: number, how: number) => shutdown(socketOf(fd), how),

    sock_close: (fd: number) => {
      fds.close(fd);
      return 0;
    },
  };
}
