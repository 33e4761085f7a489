/**
 * The one network policy every outbound connection and every listening socket goes through
 * (SPEC.md §7): config `net.allow` (HTTP, WebSocket, socket connect/sendto), `net.listen`
 * (socket bind/listen) and the hosts of the backends' `base_url`s.
 *
 * Why one module: the launcher's `--allow-net`, the chat driver's per-hop check and (later)
 * sockets, WebSockets and skills must agree on what an entry means; four hand-written
 * `host:port` comparisons drifted apart before. It is plain TypeScript with no FFI so the
 * parser and matcher can be unit-tested and used by the launcher before anything native loads.
 *
 * Entry syntax: `[scheme://]host[:port]`
 * - scheme: `http`, `https`, `ws`, `wss`, `tcp`, `udp` or `*`; omitted = any. A scheme only
 *   matches targets of that scheme (`tcp://h:443` does not allow `https://h`).
 * - host: a name (`api.example.com`), `*` (any public host), `*.example.com` (subdomains at
 *   any depth, not `example.com` itself), an IPv4 literal (`10.1.2.3`, four decimal parts), an
 *   IPv6 literal in brackets (`[::1]`), or a CIDR block: `10.0.0.0/8`, and for IPv6 the prefix
 *   after the brackets, `[fd00::]/8` (brackets keep the address's colons apart from the port's).
 *   A block must have no host bits set. IPv4-mapped IPv6 (`[::ffff:10.0.0.1]`) means the IPv4
 *   address, in entries and targets alike.
 * - port: a number, `*` or a range `a-b`. Omitted: the target scheme's default port (http/ws
 *   80, https/wss 443) — so `example.com` allows `http://example.com` and `https://example.com`
 *   and nothing else; tcp/udp need an explicit port, and so does every `net.listen` entry.
 *   `net.allow` ports are 1–65535; `net.listen` ports may be 0 (an ephemeral port).
 *
 * Matching (nothing is allowed by default):
 * - An IP-literal target must match an IP or CIDR entry, or `*` when the address is public.
 *   Loopback, private, link-local, unspecified, multicast and other non-public addresses are
 *   reachable only through an explicit IP/CIDR entry, never through `*` or `*.domain`.
 * - A name target must match a name entry (exact, `*.domain` or `*`), and every address it
 *   resolves to is checked: through a wildcard entry each address must be public unless an
 *   IP/CIDR entry allows it (DNS-rebinding protection: a wildcard must not become a way into
 *   the host's own network); through an exact entry the user named the host, so private
 *   addresses are fine, but the unspecified address (0.0.0.0, ::, which Linux connects to the
 *   local host) still needs an IP/CIDR entry. A name that does not resolve is refused.
 * - `localhost` and `*.localhost` are loopback (127.0.0.1 and ::1) without asking DNS
 *   (RFC 6761), because Deno.resolveDns queries the nameservers itself and may not read
 *   /etc/hosts.
 *
 * Resolution uses `Deno.resolveDns` (A and AAAA). Measured on Deno 2.9.6: it needs
 * `--allow-net` to each nameserver of /etc/resolv.conf at port 53 and nothing for the name
 * itself. (`node:dns` `lookup`, i.e. getaddrinfo, would read /etc/hosts but needs net access to
 * the name on every port, which would widen every `host:port` grant; so it is not used.)
 * The check resolves the name once and `fetch` resolves it again when it connects, so a name
 * whose records change between the two (a deliberate rebinding with a zero TTL) can still
 * slip through for HTTP; Deno offers no way to pin fetch to an address — its `tcp` proxy
 * transport would, but measured it speaks plain HTTP even for https URLs. Socket drivers can
 * close the gap: connect, then re-check the peer address with `{addresses: [peer]}`.
 *
 * Deno's own `--allow-net` (measured, 2.9.6): accepts `host`, `host:port`, `*.domain` and
 * `*.domain:port` (which also match the apex `domain`), IPv4 CIDR blocks with or without a
 * port (`10.0.0.0/8`, `10.0.0.0/8:443`), `[v6]` and `[v6]:port`. It rejects `*` as a host,
 * port ranges, `*` as a port and every IPv6 CIDR spelling (`[fd00::]/8`, `fd00::/8`,
 * `[fd00::/8]`). `denoNetGrants` therefore grants the narrowest superset: a port range or `*`
 * becomes every port of that host, host `*` or an IPv6 block (other than /128) becomes the
 * whole network, and the in-process check here enforces the exact entry. Listening on port 0
 * needs `host:0` (or the host without a port); sending a UDP datagram needs a local bind, so
 * `udp://` entries add the ephemeral binds `0.0.0.0:0` and `[::]:0`.
 */

export type NetScheme = "http" | "https" | "ws" | "wss" | "tcp" | "udp";
export const NET_SCHEMES: readonly NetScheme[] = ["http", "https", "ws", "wss", "tcp", "udp"];
/** Schemes a backend's base_url host is implicitly allowed for. */
export const WEB_SCHEMES: readonly NetScheme[] = ["http", "https", "ws", "wss"];

/** Which list an entry belongs to: `net.allow` (outbound) or `net.listen` (bind/listen). */
export type NetEntryKind = "allow" | "listen";

/** A connection the host is about to make (or a local address it is about to bind). */
export interface NetTarget {
  scheme: NetScheme;
  /** A name, an IPv4 literal, or an IPv6 literal with or without brackets (URL.hostname works). */
  host: string;
  port: number;
}

/** Resolves a name to IP address strings; rejects when it cannot. */
export type Resolver = (name: string) => Promise<string[]>;

export type IpAddr = { v: 4; n: number } | { v: 6; n: bigint };

export type HostPattern =
  | { kind: "any" }
  | { kind: "name"; name: string }
  | { kind: "suffix"; suffix: string }
  | { kind: "ip"; ip: IpAddr }
  | { kind: "cidr"; ip: IpAddr; prefix: number };

export type PortPattern = { kind: "default" } | { kind: "range"; lo: number; hi: number };

/** One parsed entry. `schemes` is "any" for an omitted scheme or `*`. */
export interface NetEntry {
  readonly raw: string;
  readonly schemes: readonly NetScheme[] | "any";
  readonly host: HostPattern;
  readonly port: PortPattern;
}

/**
 * Why a target was refused: `not_allowed` (no entry covers it, or an address it resolves to),
 * `unresolved` (a name the resolver could not resolve, or that has no address), `invalid` (not
 * a valid host, port or scheme). Socket drivers map these to -EACCES, -EHOSTUNREACH, -EINVAL.
 */
export type NetDenial = "not_allowed" | "unresolved" | "invalid";

export type NetDecision =
  | { ok: true; host: string; addresses: string[]; entry: string }
  | { ok: false; reason: string; code: NetDenial };

export interface CheckOptions {
  /** Check these addresses instead of resolving the name (e.g. the peer a socket reached). */
  addresses?: readonly string[];
}

/** Why an entry is invalid; config.ts turns it into a ConfigError naming the field. */
export class NetEntryError extends Error {}

// ---------------------------------------------------------------- IP addresses

const V4_STRICT = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function v4FromDotted(s: string): IpAddr {
  const n = s.split(".").reduce((acc, p) => acc * 256 + Number(p), 0);
  return { v: 4, n };
}

/** Parses an IPv6 literal (no brackets) through the WHATWG URL parser, which validates it. */
function parseV6(s: string): IpAddr | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return undefined; // nothing else may reach the URL parser
  let canon: string;
  try {
    canon = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  // The serializer writes hex groups only, with at most one "::".
  const [head, tail] = canon.includes("::") ? canon.split("::") : [canon, undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(parseInt(g, 16));
  if ((n >> 32n) === 0xffffn) return { v: 4, n: Number(n & 0xffffffffn) };
  return { v: 6, n };
}

function formatIp(ip: IpAddr): string {
  if (ip.v === 4) return [24, 16, 8, 0].map((s) => (ip.n >>> s) & 255).join(".");
  const hex = ip.n.toString(16).padStart(32, "0");
  const groups = Array.from({ length: 8 }, (_, i) => hex.slice(i * 4, i * 4 + 4));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** `1.2.3.4` or `[::1]`, as Deno's flags and URLs spell hosts. */
function hostText(ip: IpAddr): string {
  return ip.v === 4 ? formatIp(ip) : `[${formatIp(ip)}]`;
}

function inCidr(ip: IpAddr, net: IpAddr, prefix: number): boolean {
  if (ip.v !== net.v) return false;
  if (ip.v === 4) {
    if (prefix === 0) return true;
    const mask = prefix === 32 ? 0xffffffff : (~0 << (32 - prefix)) >>> 0;
    return ((ip.n & mask) >>> 0) === (((net.n as number) & mask) >>> 0);
  }
  const shift = BigInt(128 - prefix);
  return (ip.n >> shift) === ((net.n as bigint) >> shift);
}

function hasHostBits(ip: IpAddr, prefix: number): boolean {
  if (ip.v === 4) return prefix < 32 && (ip.n & (0xffffffff >>> prefix)) !== 0;
  return prefix < 128 && (ip.n & ((1n << BigInt(128 - prefix)) - 1n)) !== 0n;
}

export type IpCategory =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "unspecified"
  | "multicast"
  | "reserved";

const V4_SPECIAL: [string, number, IpCategory][] = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "private"], // carrier-grade NAT
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.0.2.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "reserved"],
  ["198.51.100.0", 24, "reserved"],
  ["203.0.113.0", 24, "reserved"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];
const V4_SPECIAL_PARSED = V4_SPECIAL.map(([a, p, c]) => [v4FromDotted(a), p, c] as const);

const V6_SPECIAL: [string, number, IpCategory][] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fe80::", 10, "link-local"],
  ["fec0::", 10, "private"],
  ["fc00::", 7, "private"],
  ["ff00::", 8, "multicast"],
  ["2001::", 23, "reserved"], // IETF protocol assignments, Teredo
  ["2001:db8::", 32, "reserved"],
];
const V6_SPECIAL_PARSED = V6_SPECIAL.map(([a, p, c]) => [parseV6(a)!, p, c] as const);

/**
 * What kind of address this is. Public means globally routable unicast; addresses that embed
 * an IPv4 address (NAT64 64:ff9b::/96, 6to4 2002::/16) take the embedded address's category.
 */
export function ipCategory(ip: IpAddr): IpCategory {
  if (ip.v === 4) {
    for (const [net, prefix, cat] of V4_SPECIAL_PARSED) if (inCidr(ip, net, prefix)) return cat;
    return "public";
  }
  for (const [net, prefix, cat] of V6_SPECIAL_PARSED) if (inCidr(ip, net, prefix)) return cat;
  if ((ip.n >> 32n) === (0x64ff9bn << 64n)) return ipCategory({ v: 4, n: Number(ip.n & 0xffffffffn) });
  if ((ip.n >> 112n) === 0x2002n) return ipCategory({ v: 4, n: Number((ip.n >> 80n) & 0xffffffffn) });
  return (ip.n >> 125n) === 1n ? "public" : "reserved"; // 2000::/3 is the global unicast space
}

/** Parses an address as a resolver or socket hands it over (IPv4 dotted, IPv6 with or without brackets). */
export function parseIp(text: string): IpAddr | undefined {
  if (V4_STRICT.test(text)) return v4FromDotted(text);
  const inner = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  return inner.includes(":") ? parseV6(inner) : undefined;
}

// ---------------------------------------------------------------- target hosts

type CanonicalHost = { ip: IpAddr } | { name: string } | { error: string };

const TARGET_NAME = /^[A-Za-z0-9._-]+$/;

/**
 * A target host as the system will interpret it. Names go through the WHATWG host parser, so
 * spellings that getaddrinfo/inet_aton read as IPv4 (`2130706433`, `0x7f.1`, `127.1`) are
 * checked as the address they are, not as a name.
 */
function canonicalHost(host: string): CanonicalHost {
  if (host.startsWith("[") || host.includes(":")) {
    const ip = parseIp(host);
    return ip ? { ip } : { error: `"${host}" is not a valid IPv6 address` };
  }
  if (!TARGET_NAME.test(host)) return { error: `"${host}" is not a valid host name` };
  let parsed: string;
  try {
    parsed = new URL(`http://${host}/`).hostname;
  } catch {
    return { error: `"${host}" is not a valid host` };
  }
  if (V4_STRICT.test(parsed)) return { ip: v4FromDotted(parsed) };
  const name = parsed.replace(/\.$/, "");
  if (name === "" || name.split(".").some((l) => l === "")) {
    return { error: `"${host}" is not a valid host name` };
  }
  return { name };
}

function isLocalhostName(name: string): boolean {
  return name === "localhost" || name.endsWith(".localhost");
}

// ---------------------------------------------------------------- entries

const NAME_LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function parseName(text: string): string {
  let host = text.toLowerCase();
  if (/[^\x20-\x7e]/.test(host)) {
    try {
      host = new URL(`http://${host}/`).hostname; // IDN → punycode, as URLs spell it
    } catch {
      throw new NetEntryError(`"${text}" is not a valid host name`);
    }
  }
  host = host.replace(/\.$/, "");
  const labels = host.split(".");
  if (host.length > 253 || !labels.every((l) => NAME_LABEL.test(l))) {
    throw new NetEntryError(`"${text}" is not a valid host name`);
  }
  // inet_aton and URLs read names like 10.1 or 0x7f.1 as IPv4; insist on the plain spelling.
  if (/^(0x[0-9a-f]*|\d+)$/.test(labels[labels.length - 1])) {
    throw new NetEntryError(`"${text}" is not a valid IPv4 address (write four decimal numbers)`);
  }
  return host;
}

function parseHostPattern(text: string): HostPattern {
  if (text === "") throw new NetEntryError("the host is missing");
  if (text === "*") return { kind: "any" };
  if (text.startsWith("*.")) return { kind: "suffix", suffix: parseName(text.slice(2)) };
  if (text.includes("*")) {
    throw new NetEntryError(`"${text}": * may only be the whole host or a leading "*." label`);
  }
  let addr = text;
  let prefix: number | undefined;
  const slash = text.lastIndexOf("/");
  if (slash >= 0) {
    addr = text.slice(0, slash);
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) throw new NetEntryError(`"${text}" has an invalid prefix length`);
    prefix = Number(p);
  }
  let ip: IpAddr | undefined;
  if (addr.startsWith("[")) {
    if (!addr.endsWith("]")) throw new NetEntryError(`"${text}" has an unclosed [`);
    ip = parseV6(addr.slice(1, -1));
    if (!ip) throw new NetEntryError(`"${addr}" is not a valid IPv6 address`);
  } else if (/^[\d.]+$/.test(addr)) {
    if (!V4_STRICT.test(addr)) {
      throw new NetEntryError(`"${addr}" is not a valid IPv4 address (write four decimal numbers)`);
    }
    ip = v4FromDotted(addr);
  }
  if (prefix === undefined) return ip ? { kind: "ip", ip } : { kind: "name", name: parseName(addr) };
  if (!ip) throw new NetEntryError(`"${text}": a /prefix needs an IP address`);
  // An IPv4-mapped block written in IPv6 is an IPv4 block.
  const bits = ip.v === 4 ? 32 : 128;
  const bracketed = addr.startsWith("[");
  const effective = ip.v === 4 && bracketed ? prefix - 96 : prefix;
  if (prefix > (bracketed ? 128 : 32)) {
    throw new NetEntryError(`"${text}": the prefix length must be 0-${bracketed ? 128 : 32}`);
  }
  if (effective < 0) throw new NetEntryError(`"${text}": an IPv4-mapped block needs a prefix of 96 or more`);
  if (hasHostBits(ip, effective)) {
    throw new NetEntryError(
      `"${text}" has address bits set after the /${prefix} prefix (the block starts at ${
        formatIp(maskTo(ip, effective))
      })`,
    );
  }
  if (effective === bits) return { kind: "ip", ip };
  return { kind: "cidr", ip, prefix: effective };
}

function maskTo(ip: IpAddr, prefix: number): IpAddr {
  if (ip.v === 4) {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return { v: 4, n: (ip.n & mask) >>> 0 };
  }
  const shift = BigInt(128 - prefix);
  return { v: 6, n: (ip.n >> shift) << shift };
}

function parsePort(text: string, kind: NetEntryKind): PortPattern {
  const min = kind === "listen" ? 0 : 1;
  if (text === "*") return { kind: "range", lo: min, hi: 65535 };
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
  if (!m || lo < min || hi > 65535 || lo > hi) {
    throw new NetEntryError(`port "${text}" must be a number from ${min} to 65535, * or a range a-b`);
  }
  return { kind: "range", lo, hi };
}

/**
 * Parses one `net.allow` / `net.listen` entry. Throws NetEntryError with a reason that reads
 * after the entry, e.g. `port "99999" must be a number from 1 to 65535, * or a range a-b`.
 */
export function parseNetEntry(text: string, kind: NetEntryKind = "allow"): NetEntry {
  if (typeof text !== "string" || text.trim() !== text || text === "") {
    throw new NetEntryError("must be a non-empty entry without spaces");
  }
  let rest = text;
  let schemes: readonly NetScheme[] | "any" = "any";
  const sep = rest.indexOf("://");
  if (sep >= 0) {
    const scheme = rest.slice(0, sep).toLowerCase();
    rest = rest.slice(sep + 3);
    if (scheme !== "*") {
      if (!NET_SCHEMES.includes(scheme as NetScheme)) {
        throw new NetEntryError(`unknown scheme "${scheme}" (http, https, ws, wss, tcp, udp or *)`);
      }
      schemes = [scheme as NetScheme];
    }
  }
  if (kind === "listen" && schemes !== "any" && schemes[0] !== "tcp" && schemes[0] !== "udp") {
    throw new NetEntryError(`listen entries take tcp://, udp:// or no scheme, not ${schemes[0]}://`);
  }
  if (/[/?#@\s\\]/.test(rest.replace(/\/\d+(?=$|:)/, ""))) {
    throw new NetEntryError("must be [scheme://]host[:port], without a path, query or user");
  }
  let hostText: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw new NetEntryError("has an unclosed [");
    const after = rest.slice(close + 1);
    const m = /^(\/\d+)?(?::(.*))?$/.exec(after);
    if (!m) throw new NetEntryError(`unexpected "${after}" after the IPv6 address`);
    hostText = rest.slice(0, close + 1) + (m[1] ?? "");
    portText = m[2];
  } else {
    const colons = rest.split(":").length - 1;
    if (colons > 1) throw new NetEntryError("IPv6 addresses go in brackets, e.g. [::1]:443");
    [hostText, portText] = colons === 1 ? rest.split(":") : [rest, undefined];
  }
  const host = parseHostPattern(hostText);
  let port: PortPattern;
  if (portText === undefined) {
    if (kind === "listen") throw new NetEntryError("a port is required in net.listen (a number, * or a-b)");
    if (schemes !== "any" && (schemes[0] === "tcp" || schemes[0] === "udp")) {
      throw new NetEntryError(`a port is required for ${schemes[0]}://`);
    }
    port = { kind: "default" };
  } else {
    port = parsePort(portText, kind);
  }
  return { raw: text, schemes, host, port };
}

/**
 * The implicit entry for a backend's base_url: that exact host and port, for the web schemes
 * only (a backend's host is not thereby open to raw sockets).
 */
export function backendEntry(baseUrl: string): NetEntry {
  const url = new URL(baseUrl);
  if (url.hostname.includes("*")) throw new NetEntryError(`"${url.hostname}" is not a valid host name`);
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[url.protocol.slice(0, -1) as NetScheme];
  if (port === undefined) throw new NetEntryError(`unsupported scheme ${url.protocol}`);
  const parsed = parseNetEntry(`${url.hostname}:${port}`);
  return { ...parsed, raw: `${url.protocol}//${url.host} (backend base_url)`, schemes: WEB_SCHEMES };
}

const DEFAULT_PORTS: Partial<Record<NetScheme, number>> = { http: 80, ws: 80, https: 443, wss: 443 };

function portMatches(entry: NetEntry, scheme: NetScheme, port: number): boolean {
  if (entry.port.kind === "range") return port >= entry.port.lo && port <= entry.port.hi;
  return DEFAULT_PORTS[scheme] === port;
}

function schemeMatches(entry: NetEntry, scheme: NetScheme): boolean {
  return entry.schemes === "any" || entry.schemes.includes(scheme);
}

function nameMatches(pattern: HostPattern, name: string): "exact" | "wildcard" | undefined {
  if (pattern.kind === "name") return pattern.name === name ? "exact" : undefined;
  if (pattern.kind === "suffix") return name.endsWith("." + pattern.suffix) ? "wildcard" : undefined;
  if (pattern.kind === "any") return "wildcard";
  return undefined;
}

function ipMatches(pattern: HostPattern, ip: IpAddr): boolean {
  if (pattern.kind === "ip") return pattern.ip.v === ip.v && pattern.ip.n === ip.n;
  if (pattern.kind === "cidr") return inCidr(ip, pattern.ip, pattern.prefix);
  return false;
}

// ---------------------------------------------------------------- resolution

/** `Deno.resolveDns` for A and AAAA; rejects only when neither yields an address. */
export const dnsResolver: Resolver = async (name) => {
  const results = await Promise.allSettled([Deno.resolveDns(name, "A"), Deno.resolveDns(name, "AAAA")]);
  const addresses = results.flatMap((r) => r.status === "fulfilled" ? r.value : []);
  if (addresses.length > 0) return addresses;
  const errors = results.flatMap((r) => r.status === "rejected" ? [r.reason as Error] : []);
  // A permission or network failure says more than "no AAAA record".
  throw errors.find((e) => !(e instanceof Deno.errors.NotFound)) ?? errors[0] ?? new Error("no addresses");
};

const LOOPBACK_ADDRESSES = ["127.0.0.1", "::1"];

/** Nameserver `ip:53` grants from /etc/resolv.conf text (what Deno.resolveDns needs). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const ip = m ? parseIp(m[1].replace(/%.*$/, "")) : undefined;
    if (ip) out.push(`${hostText(ip)}:53`);
  }
  return out;
}

// ---------------------------------------------------------------- the policy

export interface NetPolicyOptions {
  /** Name resolution for the address checks (default `dnsResolver`); injectable for tests. */
  resolver?: Resolver;
  /** What refusals call the lists (default "net.allow", "net.listen"), e.g. a skill's "http.allow". */
  names?: { allow?: string; listen?: string };
}

function aOrAn(category: IpCategory): string {
  return category === "unspecified" ? `an ${category}` : `a ${category}`;
}

function display(t: NetTarget): string {
  const host = t.host.includes(":") && !t.host.startsWith("[") ? `[${t.host}]` : t.host;
  return `${t.scheme}://${host}:${t.port}`;
}

export class NetPolicy {
  readonly resolver: Resolver;
  private readonly allowName: string;
  private readonly listenName: string;

  constructor(
    readonly allow: readonly NetEntry[],
    readonly listen: readonly NetEntry[] = [],
    options: NetPolicyOptions = {},
  ) {
    this.resolver = options.resolver ?? dnsResolver;
    this.allowName = options.names?.allow ?? "net.allow";
    this.listenName = options.names?.listen ?? "net.listen";
  }

  /** Parses entry strings; throws NetEntryError (use config.ts for field-named errors). */
  static parse(
    allow: readonly string[],
    listen: readonly string[] = [],
    options?: NetPolicyOptions,
  ): NetPolicy {
    return new NetPolicy(
      allow.map((e) => parseNetEntry(e, "allow")),
      listen.map((e) => parseNetEntry(e, "listen")),
      options,
    );
  }

  /** May the host connect to (or send to) this target? */
  checkOutbound(target: NetTarget, options: CheckOptions = {}): Promise<NetDecision> {
    return this.#check(this.allow, this.allowName, target, options);
  }

  /**
   * The decision `checkOutbound` made before about a target that needs no name resolution (see
   * below), without a promise; undefined when it must be asked.
   */
  knownOutbound(target: NetTarget): NetDecision | undefined {
    return this.#decided.get(`${this.allowName}\n${target.scheme}\n${target.host}\n${target.port}`);
  }

  /** May a socket bind or listen on this local address? */
  checkListen(target: NetTarget, options: CheckOptions = {}): Promise<NetDecision> {
    return this.#check(this.listen, this.listenName, target, options);
  }

  /**
   * May a peer at this address reach the guest (a connection a listener accepted, a datagram a
   * socket received)? The source must be covered by an entry of `net.allow` or `net.listen` for
   * the scheme, on any port (a peer's port is ephemeral): an IP or CIDR entry containing it, `*`
   * when it is public, or a `localhost` name entry when it is loopback. No name is resolved: a
   * source is an address. Synchronous, as it runs once per connection or datagram.
   */
  checkInbound(target: NetTarget): NetDecision {
    const where = display(target);
    const ip = parseIp(target.host);
    if (!ip) {
      return { ok: false, reason: `inbound from ${where} is refused: not an IP address`, code: "invalid" };
    }
    const category = ipCategory(ip);
    const entry = [...this.allow, ...this.listen].find((e) =>
      schemeMatches(e, target.scheme) && (ipMatches(e.host, ip) ||
        (e.host.kind === "any" && category === "public") ||
        (category === "loopback" && e.host.kind === "name" && isLocalhostName(e.host.name)) ||
        (category === "loopback" && e.host.kind === "suffix" && isLocalhostName(e.host.suffix)))
    );
    if (!entry) {
      return {
        ok: false,
        reason: `inbound from ${where} is not allowed (not in net.allow or net.listen)`,
        code: "not_allowed",
      };
    }
    const text = formatIp(ip);
    return { ok: true, host: text, addresses: [text], entry: entry.raw };
  }

  /**
   * Decisions about targets that need no name resolution (an IP address, localhost, an
   * invalid target): pure functions of the target, and asked again on every request a guest
   * makes (about 10 µs each). Frozen, so a caller cannot change what the next one is told.
   */
  readonly #decided = new Map<string, NetDecision>();

  async #check(
    entries: readonly NetEntry[],
    list: string,
    target: NetTarget,
    options: CheckOptions,
  ): Promise<NetDecision> {
    if (options.addresses !== undefined) return await this.#decide(entries, list, target, options);
    const key = `${list}\n${target.scheme}\n${target.host}\n${target.port}`;
    const known = this.#decided.get(key);
    if (known) return known;
    const decision = await this.#decide(entries, list, target, options);
    const host = canonicalHost(target.host);
    if ("error" in host || "ip" in host || isLocalhostName(host.name)) {
      if (this.#decided.size >= 1024) this.#decided.clear();
      if (decision.ok) Object.freeze(decision.addresses);
      this.#decided.set(key, Object.freeze(decision));
    }
    return decision;
  }

  async #decide(
    entries: readonly NetEntry[],
    list: string,
    target: NetTarget,
    options: CheckOptions,
  ): Promise<NetDecision> {
    const where = display(target);
    const deny = (why: string, code: NetDenial = "not_allowed"): NetDecision => ({
      ok: false,
      reason: `network access to ${where} ${why}`,
      code,
    });
    if (!NET_SCHEMES.includes(target.scheme)) {
      return deny(`is refused: unknown scheme "${target.scheme}"`, "invalid");
    }
    if (!Number.isInteger(target.port) || target.port < 0 || target.port > 65535) {
      return deny("is refused: invalid port", "invalid");
    }
    const host = canonicalHost(target.host);
    if ("error" in host) return deny(`is refused: ${host.error}`, "invalid");
    const candidates = entries.filter((e) =>
      schemeMatches(e, target.scheme) && portMatches(e, target.scheme, target.port)
    );
    const ipAllowed = (ip: IpAddr) => candidates.find((e) => ipMatches(e.host, ip));

    if ("ip" in host) {
      const text = formatIp(host.ip);
      const explicit = ipAllowed(host.ip);
      if (explicit) return { ok: true, host: text, addresses: [text], entry: explicit.raw };
      const star = candidates.find((e) => e.host.kind === "any");
      const category = ipCategory(host.ip);
      if (star && category === "public") return { ok: true, host: text, addresses: [text], entry: star.raw };
      if (star) {
        return deny(
          `is not allowed: ${text} is ${
            aOrAn(category)
          } address, which only an IP or CIDR entry in ${list} allows`,
        );
      }
      return deny(`is not allowed (not in ${list})`);
    }

    const name = host.name;
    const exact = candidates.find((e) => nameMatches(e.host, name) === "exact");
    const wildcard = candidates.find((e) => nameMatches(e.host, name) === "wildcard");
    if (!exact && !wildcard) return deny(`is not allowed (not in ${list})`);

    let addresses: string[];
    if (options.addresses) addresses = [...options.addresses];
    else if (isLocalhostName(name)) addresses = LOOPBACK_ADDRESSES;
    else {
      try {
        addresses = await this.resolver(name);
      } catch (e) {
        return deny(`is refused: cannot resolve ${name}: ${(e as Error)?.message ?? e}`, "unresolved");
      }
    }
    if (addresses.length === 0) return deny(`is refused: ${name} resolves to no address`, "unresolved");
    const checked: string[] = [];
    for (const a of addresses) {
      const ip = parseIp(a);
      if (!ip) {
        return deny(`is refused: ${name} resolves to "${a}", which is not an IP address`, "unresolved");
      }
      const text = formatIp(ip);
      checked.push(text);
      if (ipAllowed(ip)) continue;
      const category = ipCategory(ip);
      if (exact && category !== "unspecified") continue;
      if (!exact && category === "public") continue;
      const via = exact ? `entry "${exact.raw}"` : `wildcard entry "${wildcard!.raw}"`;
      return deny(
        `is refused: ${name} resolves to ${text}, ${aOrAn(category)} address that ${via} does not cover ` +
          `(add an IP or CIDR entry for it to ${list})`,
      );
    }
    return { ok: true, host: name, addresses: checked, entry: (exact ?? wildcard)!.raw };
  }

  /** Does any entry name a host (and so need name resolution)? */
  get resolvesNames(): boolean {
    return [...this.allow, ...this.listen].some((e) =>
      (e.host.kind === "name" && !isLocalhostName(e.host.name)) ||
      (e.host.kind === "suffix" && !isLocalhostName(e.host.suffix)) || e.host.kind === "any"
    );
  }
}

/**
 * The values for Deno's `--allow-net=` that let this policy's connections through: "all" when
 * an entry cannot be expressed (host `*`, an IPv6 block), [] when nothing is allowed. Always a
 * superset of the policy; the in-process check narrows it to the exact entries.
 * `nameservers` are the `ip:53` grants Deno.resolveDns needs (see `parseResolvConf`); they are
 * added only when some entry names a host.
 */
export function denoNetGrants(policy: NetPolicy, nameservers: readonly string[] = []): string[] | "all" {
  const grants = new Set<string>();
  let udp = false;
  for (const entry of [...policy.allow, ...policy.listen]) {
    const h = entry.host;
    let host: string;
    if (h.kind === "any") return "all";
    if (h.kind === "name") host = h.name;
    else if (h.kind === "suffix") host = `*.${h.suffix}`;
    else if (h.kind === "ip") host = hostText(h.ip);
    else if (h.ip.v === 4) host = `${formatIp(h.ip)}/${h.prefix}`;
    else return "all";
    let ports: number[];
    if (entry.port.kind === "range") ports = entry.port.lo === entry.port.hi ? [entry.port.lo] : [];
    else {
      const schemes = entry.schemes === "any" ? WEB_SCHEMES : entry.schemes;
      ports = [...new Set(schemes.map((s) => DEFAULT_PORTS[s]!))].sort((a, b) => a - b);
    }
    // The policy reads localhost as its loopback addresses without DNS, and socket drivers
    // connect to those addresses, so Deno must allow them too.
    const isLocal = (h.kind === "name" && isLocalhostName(h.name)) ||
      (h.kind === "suffix" && isLocalhostName(h.suffix));
    const hosts = isLocal ? [host, "127.0.0.1", "[::1]"] : [host];
    for (const each of hosts) {
      if (ports.length === 0) grants.add(each);
      else for (const p of ports) grants.add(`${each}:${p}`);
    }
    if (entry.schemes !== "any" && entry.schemes.includes("udp") && policy.allow.includes(entry)) udp = true;
  }
  if (udp) {
    grants.add("0.0.0.0:0");
    grants.add("[::]:0");
  }
  if (grants.size > 0 && policy.resolvesNames) { for (const ns of nameservers) grants.add(ns); }
  return [...grants];
}
