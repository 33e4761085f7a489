/**
 * host/net/policy.ts and host/net/credentials.ts: entry syntax, matching (with an injected
 * resolver, so DNS answers are scripted), the launcher's --allow-net derivation (checked
 * against the real Deno), config errors, and the Redactor (fragments, JSON, speed).
 */
import assert from "node:assert/strict";
import {
  denoNetGrants,
  ipCategory,
  NetEntryError,
  NetPolicy,
  type NetScheme,
  parseIp,
  parseNetEntry,
  parseResolvConf,
  type Resolver,
} from "../../host/net/policy.ts";
import { MIN_FRAGMENT, readApiKey, Redactor } from "../../host/net/credentials.ts";
import { ConfigError, defaultConfig, netPolicy, parseConfig } from "../../host/config.ts";

/** Scripted DNS: unknown names fail as NotFound; calls are recorded. */
function scriptedResolver(answers: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const r = (name: string) => {
    calls.push(name);
    const a = answers[name];
    return a ? Promise.resolve(a) : Promise.reject(new Deno.errors.NotFound(`no records for ${name}`));
  };
  return Object.assign(r, { calls });
}

const DNS = scriptedResolver({
  "api.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  "a.b.example.com": ["93.184.215.15"],
  "example.com": ["93.184.215.16"],
  "rebind.example.com": ["93.184.215.17", "127.0.0.1"],
  "lan.example.com": ["192.168.1.20"],
  "v6lan.example.com": ["fd12::7"],
  "zero.example.com": ["0.0.0.0"],
  "mapped.example.com": ["::ffff:10.1.2.3"],
  "internal.corp": ["10.1.2.3"],
  "garbage.example.com": ["not-an-ip"],
  "empty.example.com": [],
  "db.internal": ["10.9.9.9"],
});

type Row = [scheme: NetScheme, host: string, port: number, allowed: boolean | RegExp];

async function checkRows(policy: NetPolicy, rows: Row[], kind: "outbound" | "listen" = "outbound") {
  for (const [scheme, host, port, expected] of rows) {
    const target = { scheme, host, port };
    const d = kind === "outbound" ? await policy.checkOutbound(target) : await policy.checkListen(target);
    const what = `${kind} ${scheme}://${host}:${port} → ${JSON.stringify(d)}`;
    if (expected === true) assert.equal(d.ok, true, what);
    else {
      assert.equal(d.ok, false, what);
      if (expected instanceof RegExp && !d.ok) assert.match(d.reason, expected, what);
    }
  }
}

// ---------------------------------------------------------------- entry syntax

Deno.test("policy: valid entries parse (schemes, hosts, ports)", () => {
  const cases: [string, string][] = [
    // legacy host:port
    ["example.com:443", '"any"|name:example.com|443-443'],
    ["127.0.0.1:8080", '"any"|ip:127.0.0.1|8080-8080'],
    ["[::1]:8080", '"any"|ip:::1|8080-8080'],
    // schemes, default ports
    ["https://api.example.com", '["https"]|name:api.example.com|default'],
    ["HTTP://Example.COM.", '["http"]|name:example.com|default'],
    ["*://example.com", '"any"|name:example.com|default'],
    ["tcp://db.internal:5432", '["tcp"]|name:db.internal|5432-5432'],
    ["udp://10.0.0.53:53", '["udp"]|ip:10.0.0.53|53-53'],
    // wildcards
    ["*", '"any"|any|default'],
    ["*:8443", '"any"|any|8443-8443'],
    ["wss://*.example.com:*", '["wss"]|suffix:example.com|1-65535'],
    // CIDR v4 / v6, IPv4-mapped
    ["10.0.0.0/8", '"any"|cidr:10.0.0.0/8|default'],
    ["10.0.0.0/8:1000-2000", '"any"|cidr:10.0.0.0/8|1000-2000'],
    ["192.168.1.7/32:80", '"any"|ip:192.168.1.7|80-80'],
    ["[fd00::]/8", '"any"|cidr:fd00::/8|default'],
    ["[fd00::]/8:443", '"any"|cidr:fd00::/8|443-443'],
    ["[::1]/128:9", '"any"|ip:::1|9-9'],
    ["[::ffff:10.0.0.0]/104", '"any"|cidr:10.0.0.0/8|default'],
    ["[::ffff:7f00:1]:80", '"any"|ip:127.0.0.1|80-80'],
    ["0.0.0.0/0:443", '"any"|cidr:0.0.0.0/0|443-443'],
    ["under_score.example:1", '"any"|name:under_score.example|1-1'],
    ["bücher.example:443", '"any"|name:xn--bcher-kva.example|443-443'],
  ];
  for (const [text, expected] of cases) {
    const e = parseNetEntry(text);
    const h = e.host;
    const host = h.kind === "any"
      ? "any"
      : h.kind === "name"
      ? `name:${h.name}`
      : h.kind === "suffix"
      ? `suffix:${h.suffix}`
      : h.kind === "ip"
      ? `ip:${fmt(h.ip)}`
      : `cidr:${fmt(h.ip)}/${h.prefix}`;
    const port = e.port.kind === "default" ? "default" : `${e.port.lo}-${e.port.hi}`;
    assert.equal(`${JSON.stringify(e.schemes)}|${host}|${port}`, expected, text);
    assert.equal(e.raw, text);
  }
  // Listen entries take port 0 (ephemeral) and * covers it.
  assert.deepEqual(parseNetEntry("tcp://127.0.0.1:0", "listen").port, { kind: "range", lo: 0, hi: 0 });
  assert.deepEqual(parseNetEntry("127.0.0.1:*", "listen").port, { kind: "range", lo: 0, hi: 65535 });
});

function fmt(ip: { v: 4 | 6; n: number | bigint }): string {
  if (ip.v === 4) return [24, 16, 8, 0].map((s) => ((ip.n as number) >>> s) & 255).join(".");
  const hex = (ip.n as bigint).toString(16).padStart(32, "0");
  return new URL(`http://[${hex.match(/.{4}/g)!.join(":")}]/`).hostname.slice(1, -1);
}

Deno.test("policy: invalid entries are rejected with a reason", () => {
  const cases: [string, RegExp, ("allow" | "listen")?][] = [
    ["", /non-empty/],
    [" example.com", /without spaces/],
    ["ftp://example.com", /unknown scheme "ftp"/],
    ["tcp://db.internal", /port is required for tcp:\/\//],
    ["udp://10.0.0.1", /port is required for udp:\/\//],
    ["https://api.example.com/v1", /without a path/],
    ["user@example.com:443", /without a path, query or user/],
    ["example.com:0", /port "0" must be a number from 1 to 65535/],
    ["example.com:65536", /port "65536"/],
    ["example.com:9-3", /port "9-3"/],
    ["example.com:http", /port "http"/],
    ["example.com:", /port ""/],
    ["::1", /IPv6 addresses go in brackets/],
    ["fd00::/8", /IPv6 addresses go in brackets/],
    ["[::1", /unclosed \[/],
    ["[::g]:80", /"\[::g\]" is not a valid IPv6 address/],
    ["[::1]x", /unexpected "x" after the IPv6 address/],
    ["10.0.0.1/8", /bits set after the \/8 prefix \(the block starts at 10\.0\.0\.0\)/],
    ["[fd00::1]/8", /bits set after the \/8 prefix \(the block starts at fd00::\)/],
    ["10.0.0.0/33", /prefix length must be 0-32/],
    ["[fd00::]/129", /prefix length must be 0-128/],
    ["[::ffff:10.0.0.0]/90", /IPv4-mapped block needs a prefix of 96 or more/],
    ["example.com/8", /a \/prefix needs an IP address/],
    ["10.0.0.0/x", /must be \[scheme:\/\/\]host\[:port\]/],
    ["256.1.1.1", /not a valid IPv4 address/],
    ["1.2.3", /not a valid IPv4 address/],
    ["010.0.0.1", /not a valid IPv4 address/],
    ["0x7f.1", /not a valid IPv4 address/],
    ["2130706433:80", /not a valid IPv4 address/],
    ["a*.example.com", /\* may only be the whole host or a leading "\*\." label/],
    ["*.*.example.com", /not a valid host name/],
    ["exa mple.com", /without a path, query or user/],
    ["-bad-.example.com", /not a valid host name/],
    ["http://", /host is missing/],
    ["127.0.0.1", /a port is required in net.listen/, "listen"],
    ["https://127.0.0.1:443", /listen entries take tcp:\/\/, udp:\/\/ or no scheme/, "listen"],
  ];
  for (const [text, pattern, kind] of cases) {
    assert.throws(() => parseNetEntry(text, kind ?? "allow"), (e: Error) => {
      assert.ok(e instanceof NetEntryError, `${text}: ${e}`);
      assert.match(e.message, pattern, text);
      return true;
    }, text);
  }
});

Deno.test("policy: config errors name the field; existing host:port configs load", () => {
  const cfg = parseConfig({ net: { allow: ["example.com:443", "127.0.0.1:8080", "[::1]:9000"] } });
  assert.deepEqual(cfg.net, { allow: ["example.com:443", "127.0.0.1:8080", "[::1]:9000"], listen: [] });
  assert.deepEqual(defaultConfig().net, { allow: [], listen: [] });
  const bad: [unknown, string][] = [
    [
      { net: { allow: ["example.com:443", "*.example.com", "example.com:99999"] } },
      'config: net.allow[2]: "example.com:99999": port "99999" must be a number from 1 to 65535, * or a range a-b',
    ],
    [
      { net: { allow: [], listen: ["tcp://127.0.0.1"] } },
      'config: net.listen[0]: "tcp://127.0.0.1": a port is required in net.listen (a number, * or a-b)',
    ],
    [{ net: { allow: "example.com" } }, "config: net.allow: must be an array of strings"],
    [{ net: { deny: [] } }, "config: net.deny: unknown field"],
    [
      {
        backends: [{
          name: "x",
          kind: "openai_chat_completion",
          base_url: "http://*.example.com/v1",
          ops: ["c"],
        }],
      },
      'config: backends[0].base_url: "*.example.com" is not a valid host name',
    ],
  ];
  for (const [raw, message] of bad) {
    assert.throws(() => parseConfig(raw), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.message, message);
      return true;
    });
  }
});

// ---------------------------------------------------------------- matching

Deno.test("policy: default is deny; plain host:port entries behave as before", async () => {
  await checkRows(new NetPolicy([], [], { resolver: DNS }), [
    ["https", "api.example.com", 443, /is not allowed \(not in net\.allow\)/],
    ["http", "127.0.0.1", 80, false],
    ["tcp", "8.8.8.8", 53, false],
  ]);
  await checkRows(NetPolicy.parse(["api.example.com:443", "127.0.0.1:8080"], [], { resolver: DNS }), [
    ["https", "api.example.com", 443, true],
    ["wss", "api.example.com", 443, true],
    ["tcp", "api.example.com", 443, true], // no scheme = any scheme
    ["https", "API.Example.COM.", 443, true],
    ["https", "api.example.com", 8443, false],
    ["http", "127.0.0.1", 8080, true],
    ["http", "127.0.0.1", 8081, false],
    ["http", "localhost", 8080, false], // a name target needs a name entry
    ["http", "127.0.0.2", 8080, false],
  ]);
});

Deno.test("policy: schemes and default ports", async () => {
  const p = NetPolicy.parse(
    ["https://api.example.com", "ws://example.com", "internal.corp", "tcp://db.internal:5432"],
    [],
    {
      resolver: DNS,
    },
  );
  await checkRows(p, [
    ["https", "api.example.com", 443, true],
    ["http", "api.example.com", 443, false],
    ["http", "api.example.com", 80, false],
    ["wss", "api.example.com", 443, false],
    ["ws", "example.com", 80, true],
    ["http", "example.com", 80, false],
    ["ws", "example.com", 443, false],
    // Neither scheme nor port: each web scheme on its own default port, no raw sockets.
    ["http", "internal.corp", 80, true],
    ["https", "internal.corp", 443, true],
    ["wss", "internal.corp", 443, true],
    ["http", "internal.corp", 443, false],
    ["tcp", "internal.corp", 443, false],
    ["udp", "internal.corp", 80, false],
    ["tcp", "db.internal", 5432, true],
    ["udp", "db.internal", 5432, false],
    ["http", "db.internal", 5432, false],
  ]);
});

Deno.test("policy: port ranges and *", async () => {
  const p = NetPolicy.parse(["api.example.com:8000-8010", "internal.corp:*", "tcp://10.0.0.0/8:1-1024"], [], {
    resolver: DNS,
  });
  await checkRows(p, [
    ["http", "api.example.com", 7999, false],
    ["http", "api.example.com", 8000, true],
    ["https", "api.example.com", 8005, true],
    ["http", "api.example.com", 8010, true],
    ["http", "api.example.com", 8011, false],
    ["tcp", "internal.corp", 1, true],
    ["udp", "internal.corp", 65535, true],
    ["tcp", "10.200.0.1", 1024, true],
    ["tcp", "10.200.0.1", 1025, false],
    ["udp", "10.200.0.1", 53, false],
  ]);
});

Deno.test("policy: wildcards match subdomains at any depth, never the apex", async () => {
  const p = NetPolicy.parse(["*.example.com:443"], [], { resolver: DNS });
  await checkRows(p, [
    ["https", "api.example.com", 443, true],
    ["https", "a.b.example.com", 443, true],
    ["https", "example.com", 443, /not in net\.allow/],
    ["https", "badexample.com", 443, false],
    ["https", "example.com.evil.net", 443, false],
    ["https", "93.184.215.14", 443, false], // an IP target needs an IP entry or *
  ]);
  await checkRows(NetPolicy.parse(["*:443"], [], { resolver: DNS }), [
    ["https", "api.example.com", 443, true],
    ["https", "example.com", 443, true],
    ["https", "8.8.8.8", 443, true],
    ["https", "[2606:4700::1111]", 443, true],
    ["https", "8.8.8.8", 80, false],
  ]);
});

Deno.test("policy: IP literals, CIDR v4/v6, and spellings the OS reads as IPv4", async () => {
  const p = NetPolicy.parse(["10.0.0.0/8:80", "[fd00::]/8:80", "[2001:db8::1]:80", "192.168.1.7:80"]);
  await checkRows(p, [
    ["http", "10.0.0.1", 80, true],
    ["http", "10.255.255.255", 80, true],
    ["http", "11.0.0.1", 80, false],
    ["http", "[fd12:3456::1]", 80, true],
    ["http", "fd12:3456::1", 80, true], // socket address text without brackets
    ["http", "[fe80::1]", 80, false],
    ["http", "[2001:db8:0:0:0:0:0:1]", 80, true],
    ["http", "[2001:db8::2]", 80, false],
    ["http", "192.168.1.7", 80, true],
    ["http", "192.168.1.8", 80, false],
    ["http", "[::ffff:10.1.2.3]", 80, true], // IPv4-mapped IPv6 is the IPv4 address
    ["http", "[::ffff:a01:203]", 80, true],
    ["http", "167772161", 80, true], // = 10.0.0.1 for inet_aton and URLs
    ["http", "0xa.1", 80, true], // = 10.0.0.1
    ["http", "10.1", 80, true], // = 10.0.0.1
    ["http", "[fe80::1%eth0]", 80, /not a valid IPv6 address/],
    ["http", "bad host", 80, /not a valid host name/],
    ["http", "1.2.3.4.5", 80, /not a valid host/],
  ]);
});

Deno.test("policy: loopback, private, link-local and unspecified need an explicit entry", async () => {
  const star = NetPolicy.parse(["*"], [], { resolver: DNS });
  await checkRows(star, [
    ["http", "93.184.215.14", 80, true],
    ["http", "127.0.0.1", 80, /127\.0\.0\.1 is a loopback address, which only an IP or CIDR entry/],
    ["http", "2130706433", 80, /loopback/],
    ["http", "[::1]", 80, /loopback/],
    ["http", "[::ffff:127.0.0.1]", 80, /loopback/],
    ["http", "10.0.0.1", 80, /private/],
    ["http", "192.168.0.1", 80, /private/],
    ["http", "172.16.0.1", 80, /private/],
    ["http", "100.64.0.1", 80, /private/],
    ["http", "169.254.169.254", 80, /link-local/], // cloud metadata
    ["http", "[fe80::1]", 80, /link-local/],
    ["http", "[fd00::1]", 80, /private/],
    ["http", "0.0.0.0", 80, /unspecified/],
    ["http", "0", 80, /unspecified/],
    ["http", "[::]", 80, /unspecified/],
    ["http", "224.0.0.1", 80, /multicast/],
    [
      "http",
      "localhost",
      80,
      /localhost resolves to 127\.0\.0\.1, a loopback address that wildcard entry "\*"/,
    ],
  ]);
  // Explicit IP/CIDR entries open them; an exact name entry too (the user named that host).
  const explicit = NetPolicy.parse(["127.0.0.1:80", "10.0.0.0/8:80", "localhost:8080", "0.0.0.0:80"], [], {
    resolver: () => Promise.reject(new Error("localhost must not reach DNS")),
  });
  await checkRows(explicit, [
    ["http", "127.0.0.1", 80, true],
    ["http", "10.2.3.4", 80, true],
    ["http", "0.0.0.0", 80, true],
    ["http", "localhost", 8080, true],
    ["http", "localhost", 80, false],
  ]);
  const d = await explicit.checkOutbound({ scheme: "http", host: "localhost", port: 8080 });
  assert.deepEqual(d, {
    ok: true,
    host: "localhost",
    addresses: ["127.0.0.1", "::1"],
    entry: "localhost:8080",
  });
});

Deno.test("policy: every resolved address of a name is checked (DNS rebinding)", async () => {
  const p = NetPolicy.parse(["*.example.com:443", "internal.corp:443", "zero.example.com:443"], [], {
    resolver: DNS,
  });
  await checkRows(p, [
    ["https", "api.example.com", 443, true],
    // One public and one loopback answer: refused, naming the address.
    [
      "https",
      "rebind.example.com",
      443,
      /rebind\.example\.com resolves to 127\.0\.0\.1, a loopback address that wildcard entry "\*\.example\.com:443" does not cover/,
    ],
    ["https", "lan.example.com", 443, /resolves to 192\.168\.1\.20, a private address/],
    ["https", "v6lan.example.com", 443, /resolves to fd12::7, a private address/],
    ["https", "mapped.example.com", 443, /resolves to 10\.1\.2\.3, a private address/],
    // An exact entry may resolve to a private address, never to the unspecified one.
    ["https", "internal.corp", 443, true],
    [
      "https",
      "zero.example.com",
      443,
      /resolves to 0\.0\.0\.0, an unspecified address that entry "zero\.example\.com:443"/,
    ],
    ["https", "nx.example.com", 443, /cannot resolve nx\.example\.com: no records/],
    ["https", "garbage.example.com", 443, /resolves to "not-an-ip", which is not an IP address/],
    ["https", "empty.example.com", 443, /resolves to no address/],
  ]);
  const ok = await p.checkOutbound({ scheme: "https", host: "api.example.com", port: 443 });
  assert.deepEqual(ok, {
    ok: true,
    host: "api.example.com",
    addresses: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    entry: "*.example.com:443",
  });
  // An IP/CIDR entry lets a wildcard name reach that private address (and only that one).
  const lan = NetPolicy.parse(["*.example.com:443", "192.168.1.0/24:443"], [], { resolver: DNS });
  await checkRows(lan, [
    ["https", "lan.example.com", 443, true],
    ["https", "rebind.example.com", 443, /loopback/],
  ]);
  // A name is only resolved once a name entry matched it.
  const r = scriptedResolver({});
  await NetPolicy.parse(["10.0.0.0/8:443"], [], { resolver: r }).checkOutbound({
    scheme: "https",
    host: "internal.corp",
    port: 443,
  });
  assert.deepEqual(r.calls, []);
  // Given addresses (e.g. the peer a socket actually reached) are checked instead of resolving.
  const peer = await p.checkOutbound({ scheme: "https", host: "api.example.com", port: 443 }, {
    addresses: ["127.0.0.1"],
  });
  assert.equal(peer.ok, false);
});

Deno.test("policy: listen entries are a separate list", async () => {
  const p = NetPolicy.parse(["127.0.0.1:9000"], [
    "tcp://127.0.0.1:0",
    "udp://[::1]:5000-5010",
    "0.0.0.0:8080",
    "*:7000",
  ]);
  await checkRows(p, [
    ["tcp", "127.0.0.1", 0, true],
    ["tcp", "127.0.0.1", 9000, false], // outbound entries do not allow binding
    ["udp", "127.0.0.1", 0, false],
    ["udp", "::1", 5005, true],
    ["tcp", "::1", 5005, false],
    ["tcp", "0.0.0.0", 8080, true],
    ["udp", "0.0.0.0", 8080, true],
    ["tcp", "0.0.0.0", 7000, /unspecified/], // `*` never covers the unspecified address
    ["tcp", "127.0.0.1", 7000, /loopback/],
  ], "listen");
  await checkRows(p, [["tcp", "127.0.0.1", 0, false]]);
});

Deno.test("policy: backends' base_url hosts are allowed for the web schemes only", async () => {
  const cfg = parseConfig({
    backends: [
      {
        name: "a",
        kind: "openai_chat_completion",
        base_url: "https://api.example.com/v1",
        ops: ["chat_completions"],
      },
      { name: "b", kind: "openai_realtime_ws", base_url: "ws://127.0.0.1:8089/rt", ops: ["speech_to_text"] },
    ],
    net: { allow: ["tcp://db.internal:5432"] },
  });
  const p = netPolicy(cfg, { resolver: DNS });
  await checkRows(p, [
    ["https", "api.example.com", 443, true],
    ["wss", "api.example.com", 443, true],
    ["http", "api.example.com", 443, true],
    ["tcp", "api.example.com", 443, false],
    ["https", "api.example.com", 80, false],
    ["ws", "127.0.0.1", 8089, true],
    ["http", "127.0.0.1", 8089, true],
    ["udp", "127.0.0.1", 8089, false],
    ["tcp", "db.internal", 5432, true],
  ]);
  const d = await p.checkOutbound({ scheme: "https", host: "api.example.com", port: 443 });
  assert.equal(d.ok && d.entry, "https://api.example.com (backend base_url)");
});

Deno.test("policy: IP categories", () => {
  const cases: [string, string][] = [
    ["8.8.8.8", "public"],
    ["127.1.2.3", "loopback"],
    ["10.0.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", "public"],
    ["169.254.1.1", "link-local"],
    ["0.1.2.3", "unspecified"],
    ["255.255.255.255", "reserved"],
    ["198.51.100.1", "reserved"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "link-local"],
    ["fc00::1", "private"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "reserved"],
    ["2606:4700::1111", "public"],
    ["::ffff:192.168.0.1", "private"],
    ["64:ff9b::a00:1", "private"], // NAT64 of 10.0.0.1
    ["64:ff9b::808:808", "public"], // NAT64 of 8.8.8.8
    ["2002:7f00:1::", "loopback"], // 6to4 of 127.0.0.1
    ["::a00:1", "reserved"], // deprecated IPv4-compatible
  ];
  for (const [text, category] of cases) assert.equal(ipCategory(parseIp(text)!), category, text);
});

// ---------------------------------------------------------------- Deno's --allow-net

Deno.test("policy: --allow-net grants derived from entries", () => {
  const ns = ["10.255.255.53:53"];
  const grants = (allow: string[], listen: string[] = []) =>
    denoNetGrants(NetPolicy.parse(allow, listen), ns);
  // Plain host:port entries map one to one (as the launcher always did), plus the nameservers
  // Deno.resolveDns needs for names.
  assert.deepEqual(grants(["example.com:443", "127.0.0.1:8080"]), [
    "example.com:443",
    "127.0.0.1:8080",
    ...ns,
  ]);
  assert.deepEqual(grants(["127.0.0.1:8080", "[::1]:9000"]), ["127.0.0.1:8080", "[::1]:9000"]);
  assert.deepEqual(
    grants(["localhost:8080"]),
    ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"],
    "localhost never asks DNS, and its loopback addresses are granted (sockets connect to them)",
  );
  assert.deepEqual(grants(["example.com"]), ["example.com:80", "example.com:443", ...ns]);
  assert.deepEqual(grants(["https://example.com", "ws://example.com"]), [
    "example.com:443",
    "example.com:80",
    ...ns,
  ]);
  assert.deepEqual(grants(["example.com:8000-8010"]), ["example.com", ...ns], "ranges: every port");
  assert.deepEqual(grants(["example.com:*"]), ["example.com", ...ns]);
  assert.deepEqual(grants(["*.example.com:443"]), ["*.example.com:443", ...ns]);
  assert.deepEqual(grants(["10.0.0.0/8:443", "192.168.1.7/32"]), [
    "10.0.0.0/8:443",
    "192.168.1.7:80",
    "192.168.1.7:443",
  ]);
  assert.deepEqual(grants(["[::1]/128:80"]), ["[::1]:80"]);
  assert.equal(grants(["[fd00::]/8:443"]), "all", "Deno has no IPv6 blocks");
  assert.equal(grants(["*:443"]), "all", "Deno has no host wildcard");
  assert.deepEqual(
    grants(["udp://10.0.0.53:53"]),
    ["10.0.0.53:53", "0.0.0.0:0", "[::]:0"],
    "udp sends need a bind",
  );
  assert.deepEqual(grants([], ["tcp://127.0.0.1:0", "127.0.0.1:7000-7010"]), ["127.0.0.1:0", "127.0.0.1"]);
  assert.deepEqual(grants([]), []);
  assert.deepEqual(
    parseResolvConf(
      "# x\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver ::1\nsearch lan\nnameserver bogus\n",
    ),
    ["10.255.255.53:53", "[fe80::1]:53", "[::1]:53"],
  );
});

Deno.test("policy: Deno 2.9.6 accepts every grant form we derive, and enforces them", async () => {
  const grants = denoNetGrants(
    NetPolicy.parse(
      [
        "example.com:443",
        "*.example.com:443",
        "10.0.0.0/8:443",
        "[::1]:80",
        "h.example:*",
        "udp://127.0.0.1:5353",
      ],
      ["tcp://127.0.0.1:0"],
    ),
    ["10.255.255.53:53"],
  ) as string[];
  const probe = `
    const results = [];
    for (const [host, port] of [["a.b.example.com", 443], ["10.1.2.3", 443], ["10.1.2.3", 80], ["example.org", 443]]) {
      const s = await Deno.permissions.query({ name: "net", host: host + ":" + port });
      results.push(host + ":" + port + "=" + s.state);
    }
    console.log(results.join(" "));
  `;
  // `deno eval` would run with every permission; a file under `deno run` gets only these.
  const file = await Deno.makeTempFile({ suffix: ".js" });
  let out: Deno.CommandOutput;
  try {
    await Deno.writeTextFile(file, probe);
    out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-prompt",
        `--allow-read=${file}`,
        `--allow-net=${grants.join(",")}`,
        file,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(file);
  }
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(
    new TextDecoder().decode(out.stdout).trim(),
    "a.b.example.com:443=granted 10.1.2.3:443=granted 10.1.2.3:80=prompt example.org:443=prompt",
  );
});

// ---------------------------------------------------------------- credentials

const KEY = "sk-proj-Abc123XYZ-9f8e7d6c5b4a-ZZZZ";

function fragmentsOf(key: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + MIN_FRAGMENT <= key.length; i++) out.push(key.slice(i, i + MIN_FRAGMENT));
  return out;
}

Deno.test("redactor: the key and every fragment of 8+ characters become ***", () => {
  const r = new Redactor([KEY]);
  assert.equal(r.redact(`key=${KEY}.`), "key=***.");
  assert.equal(r.redact(`a ${KEY.slice(0, 10)} b`), "a *** b");
  assert.equal(r.redact(`a ${KEY.slice(9, 17)} b`), "a *** b");
  assert.equal(r.redact(`a ${KEY.slice(9, 16)} b`), `a ${KEY.slice(9, 16)} b`, "7 characters stay");
  assert.equal(r.redact(`${KEY}${KEY}`), "***");
  assert.equal(r.redact(`${KEY.slice(0, 12)}|${KEY.slice(-9)}`), "***|***");
  assert.equal(r.redact("nothing here"), "nothing here");
  assert.equal(r.redact(""), "");
  assert.equal(r.redact(KEY.slice(0, 8)), "***");
  // Overlapping a fragment with more key-like text still removes the whole fragment.
  assert.equal(r.redact(`sk-proj-${KEY.slice(8)}`), "***");
  // Every fragment at every offset, at both ends of the text.
  for (const f of fragmentsOf(KEY)) {
    for (const text of [f, `x${f}`, `xy${f}z`, `${f}abc`]) {
      assert.ok(!r.redact(text).includes(f), `${text} → ${r.redact(text)}`);
    }
  }
  assert.equal(Redactor.NONE.redact(KEY), KEY);
  assert.equal(new Redactor(["abc"]).redact("xabcx abc"), "x***x ***");
});

Deno.test("redactor: bytes, JSON and escaped spellings", () => {
  const r = new Redactor([KEY]);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  assert.equal(dec.decode(r.redactBytes(enc.encode(`{"a":"${KEY.slice(3, 20)}"}`))), '{"a":"***"}');
  const same = enc.encode("no secret");
  assert.equal(r.redactBytes(same), same);

  const body = JSON.stringify({
    choices: [{
      message: {
        content: `echo ${KEY}`,
        tool_calls: [{ function: { arguments: JSON.stringify({ k: KEY }) } }],
      },
    }],
    usage: { note: KEY.slice(0, 11) },
    [KEY.slice(2, 14)]: 1,
  });
  const parsed = r.parseJson(body) as Record<string, unknown>;
  const text = JSON.stringify(parsed);
  for (const f of fragmentsOf(KEY)) assert.ok(!text.includes(f), text);
  assert.deepEqual(parsed, {
    choices: [{ message: { content: "echo ***", tool_calls: [{ function: { arguments: '{"k":"***"}' } }] } }],
    usage: { note: "***" },
    "***": 1,
  });
  // Untouched parts are shared; a "__proto__" key stays an own key.
  const clean = { a: [1, { b: "x" }], c: "y" };
  assert.equal(r.redactJson(clean), clean);
  const proto = r.parseJson(`{"__proto__":{"x":"${KEY}"},"keep":{"n":1}}`) as Record<string, unknown>;
  assert.deepEqual(Object.keys(proto), ["__proto__", "keep"]);
  assert.equal(JSON.stringify(proto), '{"__proto__":{"x":"***"},"keep":{"n":1}}');
  // \u escapes decode to the key; parseJson catches them after decoding.
  const escaped = [...KEY].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
  assert.deepEqual(r.parseJson(`{"x":"${escaped}"}`), { x: "***" });
  // Every 7th character escaped leaves the text pass no 8 characters in a row to find; the
  // \u sends the value through the walk, which finds the key in the decoded string.
  const sparse = [...KEY].map((c, i) =>
    i % 7 === 6 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c
  )
    .join("");
  assert.equal(r.redact(`{"x":"a\\n${sparse}"}`), `{"x":"a\\n${sparse}"}`);
  assert.deepEqual(r.parseJson(`{"x":"a\\n${sparse}"}`), { x: "a\n***" });
  // A parse error quoting a fragment is redacted.
  assert.throws(() => r.parseJson(`{"x": ${KEY.slice(0, 10)}`), (e: Error) => {
    assert.ok(e instanceof SyntaxError);
    assert.ok(!e.message.includes(KEY.slice(0, 8)), e.message);
    return true;
  });

  // Secrets with JSON-escaped characters are found in their escaped spelling, and redaction
  // never turns valid JSON into invalid JSON.
  const odd = 'pa"ss\\word/1234567';
  const ro = new Redactor([odd]);
  const raw = JSON.stringify({ a: odd, b: `x${odd.slice(2, 12)}y` }).replace("/", "\\/");
  assert.ok(!ro.redact(raw).includes("ss\\\\word"), ro.redact(raw));
  assert.deepEqual(ro.parseJson(raw), { a: "***", b: "x***y" });
  // A match that ends inside an escape sequence would break the JSON: the original is parsed
  // and its decoded strings redacted instead.
  const rb = new Redactor(["abcdefgh\\"]);
  assert.equal(rb.redact('{"k":"abcdefgh\\""}'), '{"k":"***""}');
  assert.deepEqual(rb.parseJson('{"k":"abcdefgh\\""}'), { k: '***"' });
});

Deno.test("redactor: a 32 MiB body takes well under a second", () => {
  const r = new Redactor([KEY]);
  const chunk = JSON.stringify({
    role: "assistant",
    content: "lorem ipsum dolor sit amet, 0123456789 abcdef",
  });
  const parts: string[] = [];
  for (let n = 0; n < 32 << 20; n += chunk.length + 1) parts.push(chunk);
  parts.push(KEY.slice(5, 20));
  // Flatten as a network body is (a rope would measure string concatenation instead).
  const body = new TextDecoder().decode(new TextEncoder().encode(parts.join(",")));
  let best = Infinity;
  let out = "";
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    out = r.redact(body);
    best = Math.min(best, performance.now() - t0);
  }
  assert.ok(out.endsWith(",***"));
  assert.equal(out.length, body.length - 15 + 3);
  const bytes = new TextEncoder().encode(body);
  const t0 = performance.now();
  const outBytes = r.redactBytes(bytes);
  const bytesMs = performance.now() - t0;
  assert.equal(outBytes.length, bytes.length - 12);
  console.log(`redact 32 MiB: text ${best.toFixed(0)} ms, bytes ${bytesMs.toFixed(0)} ms`);
  assert.ok(best < 1000, `text took ${best} ms`);
  assert.ok(bytesMs < 1000, `bytes took ${bytesMs} ms`);
});

Deno.test("credentials: keys come only from the named variable, and only on the main thread", async () => {
  const name = `SPEARHOST_TEST_CRED_${Deno.pid}`;
  Deno.env.set(name, `  ${KEY}\n`);
  try {
    const k = readApiKey({ name: "b", api_key_env: name });
    assert.ok(k.ok);
    assert.equal(k.key, KEY);
    assert.equal(k.redactor.redact(`x${KEY.slice(1, 10)}`), "x***");
    // The redactor is made once per key value; a rotated key gets its own.
    const again = readApiKey({ name: "b", api_key_env: name });
    assert.ok(again.ok);
    assert.equal(again.redactor, k.redactor);
    Deno.env.set(name, `${KEY}-rotated`);
    const rotated = readApiKey({ name: "b", api_key_env: name });
    assert.ok(rotated.ok);
    assert.notEqual(rotated.redactor, k.redactor);
    assert.equal(rotated.redactor.redact(`${KEY}-rotated`), "***");
    const none = readApiKey({ name: "b" });
    assert.ok(none.ok && none.key === undefined && none.redactor === Redactor.NONE);
    const unset = readApiKey({ name: "b", api_key_env: `${name}_UNSET` });
    assert.ok(unset.ok && unset.key === undefined);

    // Inside a Worker (where guests run) the lookup refuses, even with env permission.
    const mod = new URL("../../host/net/credentials.ts", import.meta.url).href;
    const src = `import { readApiKey } from ${JSON.stringify(mod)};
      postMessage(readApiKey({ name: "b", api_key_env: ${JSON.stringify(name)} }));`;
    const url = URL.createObjectURL(new Blob([src], { type: "application/javascript" }));
    const worker = new Worker(url, { type: "module" });
    const result = await new Promise<unknown>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
    worker.terminate();
    URL.revokeObjectURL(url);
    assert.deepEqual(result, { ok: false, error: "API keys are read on the main thread only" });
  } finally {
    Deno.env.delete(name);
  }
});

Deno.test("policy: inbound peers need an allow or listen entry covering their address, on any port", () => {
  const policy = NetPolicy.parse(
    ["tcp://10.0.0.0/8:6379", "udp://*:53"],
    ["tcp://127.0.0.1:8080", "udp://localhost:9000"],
  );
  const inbound = (scheme: "tcp" | "udp", host: string) => policy.checkInbound({ scheme, host, port: 54321 });
  assert.equal(inbound("tcp", "127.0.0.1").ok, true, "a listen entry's address, any source port");
  assert.equal(inbound("tcp", "10.9.8.7").ok, true, "an allow CIDR entry");
  assert.equal(inbound("udp", "127.0.0.1").ok, true, "a localhost name entry covers loopback");
  assert.equal(inbound("udp", "::1").ok, true);
  assert.equal(inbound("udp", "8.8.8.8").ok, true, "* covers public sources");
  const denied = inbound("udp", "192.168.1.2");
  assert.equal(denied.ok, false, "* never covers private sources");
  assert.equal(!denied.ok && denied.code, "not_allowed");
  assert.equal(inbound("tcp", "127.0.0.2").ok, false);
  assert.equal(inbound("udp", "10.1.1.1").ok, false, "a tcp entry does not admit udp");
  const bad = inbound("tcp", "example.com");
  assert.equal(!bad.ok && bad.code, "invalid");
});

Deno.test("policy: a refusal says why in a code: not allowed, unresolved, invalid", async () => {
  const failing = NetPolicy.parse(["tcp://db.example:5432"], [], {
    resolver: () => Promise.reject(new Error("NXDOMAIN")),
  });
  const unresolved = await failing.checkOutbound({ scheme: "tcp", host: "db.example", port: 5432 });
  assert.equal(!unresolved.ok && unresolved.code, "unresolved");
  const denied = await failing.checkOutbound({ scheme: "tcp", host: "other.example", port: 5432 });
  assert.equal(!denied.ok && denied.code, "not_allowed");
  const invalid = await failing.checkOutbound({ scheme: "tcp", host: "a b", port: 5432 });
  assert.equal(!invalid.ok && invalid.code, "invalid");
});
