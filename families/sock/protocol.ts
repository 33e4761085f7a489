/**
 * What crosses the boundary for sockets (SPEC.md §8), and the pure helpers both halves share.
 *
 * A socket's bytes never travel in requests: requests only set things up (check and bind,
 * connect, listen), and the data flows on streams and pipes:
 * - TCP: two byte pipes (protocol/pipe.ts) the driver places in the guest's arena once the
 *   connection exists: receive (the driver reads the peer straight into it, only while it has
 *   room, so TCP pushes back) and send (the driver writes it straight to the kernel). Each is as
 *   large as its window (RCVBUF, SNDBUF). Beside them, two streams that carry no bytes: the
 *   receive stream's events are `eof` (the peer finished) and `error` (reset, broken pipe), and
 *   its close stops reading; closing the send stream is the guest's FIN, sent once the send
 *   pipe is written out.
 * - A listener's handle stream carries one marker byte per accepted connection: its credit is
 *   the accept backlog, so the driver accepts only while the guest has room. The connection
 *   itself arrives as a duplex host-created handle (notice `sock/accepted`, with its pipes).
 * - UDP: host → guest a lossy stream of datagrams (a datagram cannot wait; what the guest's
 *   queue cannot take is dropped and counted), guest → host a credit stream of datagrams.
 * Every item of a datagram stream is `encodeDatagram` (an address header, then the payload).
 */
import * as s from "../../protocol/schema.ts";
import { method } from "../../protocol/rpc.ts";
import type { ErrnoName } from "../../runtime/abi.ts";
import { utf8Length } from "../../protocol/bytes.ts";

export const SockDomain = { AF_INET: 2, AF_INET6: 10 } as const;
export const SockType = { SOCK_STREAM: 1, SOCK_DGRAM: 2 } as const;
export const SockOpt = {
  RCVTIMEO_MS: 1,
  SNDTIMEO_MS: 2,
  REUSEADDR: 3,
  NODELAY: 4,
  ERROR: 5,
  RCVBUF: 6,
  SNDBUF: 7,
  KEEPALIVE: 8,
} as const;
export const SockShut = { SHUT_RD: 0, SHUT_WR: 1, SHUT_RDWR: 2 } as const;
export const SockAddrWhich = { LOCAL: 0, PEER: 1 } as const;
export const SockLimits = {
  /** Largest UDP payload over IPv4 (65535 − IP and UDP headers). */
  MAX_DATAGRAM: 65507,
  /** Default receive and send windows (RCVBUF, SNDBUF), bytes. */
  DEFAULT_BUFFER: 1024 * 1024,
  /** Buffer sizes are clamped into this range (0 and negatives are -EINVAL). */
  MIN_BUFFER: 4096,
  MAX_BUFFER: 16 << 20,
  /** Default and largest accept backlog. */
  DEFAULT_BACKLOG: 128,
  MAX_BACKLOG: 4096,
  /** Longest address text. */
  MAX_ADDR_TEXT: 300,
} as const;

/** IP version of a socket: 4 for AF_INET, 6 for AF_INET6. */
export type IpVersion = 4 | 6;
export type Transport = "tcp" | "udp";

// ---------------------------------------------------------------- requests

/** A byte pipe in the guest's arena (protocol/pipe.ts PipeRef). */
const Pipe = s.object({ offset: s.int, capacity: s.int, limit: s.int });

/** Outcome of every socket request: `errno` names the error the guest gets when not ok. */
export const SockResult = s.object({
  ok: s.boolean,
  errno: s.optional(s.string),
  message: s.optional(s.string),
  /** Numeric `ip:port` text of the local end (bind, connect). */
  local: s.optional(s.string),
  /** Numeric text of the peer (connect). */
  peer: s.optional(s.string),
  /** resolve: the checked address to send to, and the name it was given as ("" for an IP). */
  address: s.optional(s.string),
  name: s.optional(s.string),
  port: s.optional(s.int),
  /** connect: the connection's receive and send pipes. */
  rx: s.optional(Pipe),
  tx: s.optional(Pipe),
});
export type SockResult = s.Infer<typeof SockResult>;

const Target = {
  host: s.string,
  port: s.int,
  version: s.literal(4, 6),
};

/** Which transports the config allows at all (sock_create is -EACCES for the others). */
export const sockAllowed = method(
  "sock.allowed",
  s.nullable(s.json),
  s.object({ tcp: s.boolean, udp: s.boolean }),
);

/**
 * Checks `net.listen` (unless `implicit`: the ephemeral wildcard bind a UDP socket makes before
 * its first send) and binds. TCP: `handle` is the listener's stream (accept credit). UDP:
 * `handle` receives datagrams, `outbound` carries the guest's datagrams.
 */
export const sockBind = method(
  "sock.bind",
  s.object({
    ...Target,
    transport: s.literal("tcp", "udp"),
    handle: s.int,
    outbound: s.optional(s.int),
    implicit: s.boolean,
  }),
  SockResult,
);

/** Options a TCP connection applies on the host. */
const ConnOptions = { nodelay: s.boolean, keepalive: s.boolean };

/**
 * Checks `net.allow` (every resolved address, and the peer reached), connects, and opens the
 * connection's streams `handle` (receive events) and `outbound` (send close), and its pipes:
 * receive of `window` bytes, send of `sendWindow`.
 * `bound` is the handle of the socket's listener-less bind, released first.
 */
export const sockConnect = method(
  "sock.connect",
  s.object({
    ...Target,
    handle: s.int,
    outbound: s.int,
    window: s.int,
    sendWindow: s.int,
    bound: s.optional(s.int),
    ...ConnOptions,
  }),
  SockResult,
);

/** Starts accepting on a bound TCP handle; accepted connections get these windows and options. */
export const sockListen = method(
  "sock.listen",
  s.object({ handle: s.int, rcvbuf: s.int, sndbuf: s.int, ...ConnOptions }),
  SockResult,
);

/** Applies NODELAY / KEEPALIVE to a connection (by its receive handle). */
export const sockOptions = method("sock.options", s.object({ handle: s.int, ...ConnOptions }), SockResult);

/** Checks a UDP destination against `net.allow` and resolves it to one address of the family. */
export const sockResolve = method("sock.resolve", s.object(Target), SockResult);

/** The notice of an accepted connection (family "sock", type "accepted"). */
export const AcceptedInfo = s.object({
  listener: s.int,
  local: s.string,
  peer: s.string,
  rx: Pipe,
  tx: Pipe,
});
export type AcceptedInfo = s.Infer<typeof AcceptedInfo>;

/**
 * Events on a socket's receive stream; a listener's also says when a connection it accepted was
 * closed because its pipes did not fit the guest's host budget.
 */
export type SockEvent =
  | { type: "eof" }
  | { type: "error"; errno: ErrnoName; message?: string }
  | { type: "over_budget" };

// ---------------------------------------------------------------- addresses

export interface SockAddr {
  /** A name, or an IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** Set when `host` is an IP literal. */
  ip?: IpLiteral;
}

export interface IpLiteral {
  version: IpVersion;
  /** Canonical text (IPv6 compressed, lower case). */
  text: string;
  unspecified: boolean;
  multicast: boolean;
  broadcast: boolean;
  /** ::ffff:a.b.c.d */
  v4mapped: boolean;
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$/;

/** An IPv4 or IPv6 literal (no brackets), or undefined. */
export function parseIpLiteral(text: string): IpLiteral | undefined {
  if (V4.test(text)) {
    const first = Number(text.split(".")[0]);
    return {
      version: 4,
      text,
      unspecified: text === "0.0.0.0",
      multicast: first >= 224 && first <= 239,
      broadcast: text === "255.255.255.255",
      v4mapped: false,
    };
  }
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return undefined;
  let canon: string;
  try {
    canon = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  return {
    version: 6,
    text: canon,
    unspecified: canon === "::",
    multicast: canon.startsWith("ff"),
    broadcast: false,
    // The URL serializer writes ::ffff:127.0.0.1 as ::ffff:7f00:1.
    v4mapped: canon.startsWith("::ffff:") && (canon.slice(7).split(":").length === 2 || canon.includes(".")),
  };
}

/**
 * Parses `host:port` / `[v6]:port` (SPEC.md §8); undefined when malformed. The port is 0–65535
 * in plain decimal; a host is an IP literal or a name of letters, digits, `-`, `_` and dots.
 */
export function parseSockAddr(text: string): SockAddr | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
    if (!m) return undefined;
    [host, portText] = [m[1], m[2]];
    const ip = parseIpLiteral(host);
    if (!ip || ip.version !== 6) return undefined;
    return withPort({ host: ip.text, port: 0, ip }, portText);
  }
  const m = /^([^:]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  [host, portText] = [m[1], m[2]];
  const ip = parseIpLiteral(host);
  if (ip) return withPort({ host: ip.text, port: 0, ip }, portText);
  if (!NAME.test(host) || host.split(".").some((label) => label === "")) return undefined;
  return withPort({ host: host.toLowerCase(), port: 0 }, portText);
}

function withPort(addr: SockAddr, portText: string): SockAddr | undefined {
  const port = Number(portText);
  return port <= 65535 ? { ...addr, port } : undefined;
}

/** `127.0.0.1:80`, `[::1]:80`: how addresses are shown to guests. */
export function formatSockAddr(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The wildcard address of a family (an implicit bind). */
export function wildcard(version: IpVersion): string {
  return version === 4 ? "0.0.0.0" : "::";
}

/** The loopback address of a family (what `localhost` means, without DNS). */
export function loopback(version: IpVersion): string {
  return version === 4 ? "127.0.0.1" : "::1";
}

export function isLocalhostName(name: string): boolean {
  return name === "localhost" || name.endsWith(".localhost");
}

// ---------------------------------------------------------------- datagram items

/** Where a datagram goes or came from: the checked address, and the name it was sent to. */
export interface DatagramPeer {
  address: string;
  port: number;
  /** The name the guest gave ("" for an IP or for a received datagram). */
  name: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Item layout: u16 port, u8 address length, address, u8 name length, name, payload. */
export function encodeDatagram(peer: DatagramPeer, payload: Uint8Array): Uint8Array {
  const address = encoder.encode(peer.address);
  const name = encoder.encode(peer.name);
  const out = new Uint8Array(4 + address.length + name.length + payload.length);
  out[0] = peer.port >> 8;
  out[1] = peer.port & 255;
  out[2] = address.length;
  out.set(address, 3);
  out[3 + address.length] = name.length;
  out.set(name, 4 + address.length);
  out.set(payload, 4 + address.length + name.length);
  return out;
}

export function decodeDatagram(item: Uint8Array): { peer: DatagramPeer; payload: Uint8Array } {
  const port = (item[0] << 8) | item[1];
  const addressEnd = 3 + item[2];
  const nameEnd = addressEnd + 1 + item[addressEnd];
  return {
    peer: {
      port,
      address: decoder.decode(item.subarray(3, addressEnd)),
      name: decoder.decode(item.subarray(addressEnd + 1, nameEnd)),
    },
    payload: item.subarray(nameEnd),
  };
}

/** Bytes an item adds to its payload (for the send window). */
export function datagramOverhead(peer: DatagramPeer): number {
  return 4 + utf8Length(peer.address) + utf8Length(peer.name);
}
