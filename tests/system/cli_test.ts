/**
 * The `spear` command line end to end, in subprocesses: through the launcher
 * (`deno task --quiet spear run …`, the documented path, which re-runs cli/main.ts with scoped
 * permissions) and through cli/main.ts directly. Exit codes, guest stdout/args, log lines
 * on stderr, and "every failure prints exactly one stderr line naming its cause".
 */
import assert from "node:assert/strict";
import { launchPlan, permissionFlags } from "../../cli/launcher.ts";
import { freshBuild } from "../../cli/bundle.ts";
import { ensureFreshBundle } from "../../scripts/bundle.ts";
import { parseResolvConf } from "../../host/net/policy.ts";
import { WASMTIME_VERSION } from "../../ffi/wasmtime.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const TEST_GUESTS = `${root}/guests/build/test`;
const HELLO = `${root}/guests/build/hello.wasm`;
const EXIT_CODE = `${TEST_GUESTS}/exit_code.wasm`;
const MISBEHAVE = `${TEST_GUESTS}/misbehave.wasm`;
const MISSING_IMPORT = `${TEST_GUESTS}/missing_import.wasm`;
const LOG_TEXT = `${TEST_GUESTS}/log_text.wasm`;

const tmp = Deno.makeTempDirSync({ prefix: "spear-cli-test-" });
const cacheDir = `${tmp}/cache`;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  /** Non-empty stderr lines. */
  lines: string[];
  ms: number;
}

/**
 * Runs `spear <args>` via the launcher (`deno task --quiet spear`: bundled when the bundle is
 * fresh), the launcher from the sources, or cli/main.ts.
 */
async function spear(args: string[], via: "launcher" | "sources" | "main" = "main"): Promise<Outcome> {
  const denoArgs = via !== "main"
    ? ["task", "--quiet", "spear", ...args]
    : ["run", "--quiet", "--allow-all", `${root}/cli/main.ts`, ...args];
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: denoArgs,
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      NO_COLOR: "1",
      SPEARHOST_CACHE_DIR: cacheDir,
      ...(via === "sources" ? { SPEARHOST_BUNDLE: "off" } : {}),
    },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return {
    code: out.code,
    stdout,
    stderr,
    lines: stderr.split("\n").filter((l) => l !== ""),
    ms: performance.now() - t0,
  };
}

/** Asserts a failed run: exit code, exactly one stderr line, matching `pattern`. */
function assertFailure(o: Outcome, code: number, pattern: RegExp, what: string): void {
  assert.equal(o.code, code, `${what}: exit code ${o.code}; stderr: ${o.stderr}`);
  assert.equal(o.lines.length, 1, `${what}: expected one stderr line, got:\n${o.stderr}`);
  assert.match(o.lines[0], /^spear: /, what);
  assert.match(o.lines[0], pattern, what);
}

function writeTemp(name: string, data: string | Uint8Array): string {
  const path = `${tmp}/${name}`;
  if (typeof data === "string") Deno.writeTextFileSync(path, data);
  else Deno.writeFileSync(path, data);
  return path;
}

Deno.test("cli: hello through the launcher — exit 0, args on stdout, log lines on stderr", async () => {
  const o = await spear(["run", HELLO, "--", "one", "two words", "--three"], "launcher");
  assert.equal(o.code, 0, o.stderr);
  assert.equal(o.stdout, "one two words --three\n");
  assert.deepEqual(o.lines.length, 2, o.stderr);
  assert.equal(o.lines[0], "[hello.wasm] INFO hello spear wasm");
  assert.match(o.lines[1], /^\[hello\.wasm\] INFO time_now_ms: \d{13}$/);
  // Without args nothing reaches stdout; arguments after the guest (no "--") are passed too.
  const bare = await spear(["run", HELLO, "x"], "launcher");
  assert.equal(bare.code, 0);
  assert.equal(bare.stdout, "x\n");
});

Deno.test("cli: the launcher passes a scoped --allow-net built from the config", async () => {
  const config = writeTemp(
    "net.json",
    JSON.stringify({
      backends: [
        {
          name: "a",
          kind: "openai_chat_completion",
          base_url: "http://127.0.0.1:8089/v1",
          api_key_env: "MY_TEST_KEY",
          ops: ["chat_completions"],
        },
        {
          name: "b",
          kind: "openai_realtime_ws",
          base_url: "wss://rt.example.com/v1/realtime",
          ops: ["speech_to_text"],
        },
        { name: "c", kind: "stub", ops: ["chat_completions"] },
      ],
      net: { allow: ["files.example.org:8443"] },
    }),
  );
  // A guest that imports the socket family (hello would not get its grants, see below).
  const guest = `${root}/guests/build/test/sock_probe.wasm`;
  const flags = await permissionFlags(["run", "--config", config, guest]);
  const net = flags.filter((f) => f.startsWith("--allow-net"));
  assert.equal(net.length, 1, flags.join(" "));
  // Names are resolved in-process to check their addresses, and Deno.resolveDns needs the
  // system nameservers (port 53), so they join the grant.
  let nameservers: string[] = [];
  try {
    nameservers = parseResolvConf(Deno.readTextFileSync("/etc/resolv.conf"));
  } catch { /* none: names are refused in the child */ }
  // A scheme-less entry allows every scheme, UDP sockets included (SPEC.md §7), so the sock family
  // adds the ephemeral binds a UDP socket makes before its first send (and --unstable-net).
  assert.deepEqual(
    net[0].slice("--allow-net=".length).split(",").sort(),
    ["127.0.0.1:8089", "files.example.org:8443", "rt.example.com:443", "0.0.0.0:0", "[::]:0", ...nameservers]
      .sort(),
  );
  assert.ok(flags.includes("--unstable-net"), flags.join(" "));
  assert.ok(
    !flags.some((f) => f === "--allow-all" || f === "-A" || f === "--allow-net" || f === "--allow-run"),
    flags.join(" "),
  );
  const env = flags.find((f) => f.startsWith("--allow-env="));
  assert.ok(env?.split("=")[1].split(",").includes("MY_TEST_KEY"), env);
  const read = flags.find((f) => f.startsWith("--allow-read="))!.split("=")[1].split(",");
  assert.ok(read.includes(config) && read.includes(guest), read.join(","));
  assert.ok(flags.some((f) => f.startsWith("--allow-write=")));

  // No config: chat is the local engine, a child on one loopback port the launcher reserves —
  // exactly that port and running the Deno binary, nothing more; and only for a guest that chats.
  const helloOnly = await permissionFlags(["run", HELLO]);
  assert.ok(
    !helloOnly.some((f) => f.startsWith("--allow-net") || f.startsWith("--allow-run")),
    helloOnly.join(" "),
  );
  const none = await permissionFlags(["run", `${root}/guests/build/chat_completion.wasm`]);
  const noneNet = none.filter((f) => f.startsWith("--allow-net"));
  assert.equal(noneNet.length, 1, none.join(" "));
  assert.match(noneNet[0], /^--allow-net=127\.0\.0\.1:\d+$/);
  assert.ok(none.includes(`--allow-run=${Deno.execPath()}`), none.join(" "));
  // A chat backend and no allow-list: no network and no programs at all.
  const stubOnly = writeTemp(
    "stub.json",
    JSON.stringify({ backends: [{ name: "s", kind: "stub", ops: ["chat_completions"] }] }),
  );
  const stub = await permissionFlags(["run", "--config", stubOnly, HELLO]);
  assert.ok(!stub.some((f) => f.startsWith("--allow-net") || f.startsWith("--allow-run")), stub.join(" "));

  // And the launcher really runs a guest with such a config.
  const o = await spear(["run", "--config", config, HELLO, "--", "net"], "launcher");
  assert.equal(o.code, 0, o.stderr);
  assert.equal(o.stdout, "net\n");

  // Entries Deno cannot express exactly get the narrowest grant that still works (the drivers
  // check the exact entry), and Deno accepts every such grant.
  const wide = writeTemp(
    "net_wide.json",
    JSON.stringify({
      // A chat backend, so the local LLM engine's port does not join the grant.
      backends: [{ name: "s", kind: "stub", ops: ["chat_completions"] }],
      net: {
        allow: [
          "https://*.example.com",
          "10.0.0.0/8:8000-8100",
          "tcp://db.internal:5432",
          "udp://127.0.0.1:5353",
        ],
        listen: ["tcp://127.0.0.1:0", "[::1]:7000"],
      },
    }),
  );
  const wideFlags = await permissionFlags(["run", "--config", wide, HELLO]);
  assert.deepEqual(
    wideFlags.find((f) => f.startsWith("--allow-net"))!.slice("--allow-net=".length).split(","),
    [
      "*.example.com:443",
      "10.0.0.0/8",
      "db.internal:5432",
      "127.0.0.1:5353",
      "127.0.0.1:0",
      "[::1]:7000",
      "0.0.0.0:0",
      "[::]:0",
      ...nameservers,
    ],
  );
  const wideRun = await spear(["run", "--config", wide, HELLO, "--", "wide"], "launcher");
  assert.equal(wideRun.code, 0, wideRun.stderr);
  assert.equal(wideRun.stdout, "wide\n");
  const v6 = writeTemp("net_v6.json", JSON.stringify({ net: { allow: ["[fd00::]/8:443"] } }));
  assert.ok((await permissionFlags(["run", "--config", v6, HELLO])).includes("--allow-net"));
});

Deno.test("cli: --help exits 0 with the usage on stdout", async () => {
  for (const args of [["--help"], ["run", "--help"]]) {
    const o = await spear(args, "launcher");
    assert.equal(o.code, 0);
    assert.match(o.stdout, /Usage:\n\s+spear run /);
    assert.match(o.stdout, /--timeout-ms N/);
    assert.equal(o.stderr, "");
  }
});

Deno.test("cli: --version names spear's release (deno.json's), Deno and the Wasmtime C API", async () => {
  const release = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).version;
  for (const args of [["--version"], ["-V"], ["version"]]) {
    const o = await spear(args, "launcher");
    assert.equal(o.code, 0);
    assert.equal(
      o.stdout,
      `spear ${release} (Deno ${Deno.version.deno}, Wasmtime C API ${WASMTIME_VERSION})\n`,
    );
    assert.equal(o.stderr, "");
  }
});

Deno.test("cli: the guest's exit code passes through", async () => {
  const cases: [string[], number][] = [
    [["0"], 0],
    [["1"], 1],
    [["7"], 7],
    [["42"], 42],
    [["125"], 125],
    [["3", "exit"], 3], // exit() from a nested function (WASI proc_exit)
    [["99", "exit"], 99],
  ];
  const outcomes = await Promise.all(cases.map(([args]) => spear(["run", EXIT_CODE, "--", ...args])));
  outcomes.forEach((o, i) => {
    const [args, code] = cases[i];
    assert.equal(o.code, code, `exit_code ${args.join(" ")}: ${o.stderr}`);
    assert.equal(o.stdout, `exit_code: ${code}\n`);
    assert.equal(o.stderr, "", "a normal exit prints nothing on stderr");
  });
  const launched = await spear(["run", EXIT_CODE, "--", "42"], "launcher");
  assert.equal(launched.code, 42);
});

Deno.test("cli: exit statuses of 126 and above pass through as a process's would (status & 0xff)", async () => {
  const o = await spear(["run", EXIT_CODE, "--", "200", "exit"]);
  assert.equal(o.code, 200, o.stderr);
  assert.equal(o.stderr, "");
  const wrapped = await spear(["run", EXIT_CODE, "--", "257", "exit"]);
  assert.equal(wrapped.code, 1, wrapped.stderr);
});

Deno.test("cli: invalid modules and link failures → exit 3, one line naming the cause", async () => {
  const notWasm = writeTemp("not_wasm.wasm", "this is not wasm\n");
  const empty = writeTemp("empty.wasm", "");
  const garbage = writeTemp(
    "garbage.wasm",
    new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x03, 0x60, 0x99]),
  );
  const truncated = writeTemp("truncated.wasm", Deno.readFileSync(HELLO).subarray(0, 300));
  const [a, b, c, d, e] = await Promise.all([
    spear(["run", notWasm]),
    spear(["run", empty]),
    spear(["run", garbage]),
    spear(["run", truncated]),
    spear(["run", MISSING_IMPORT], "launcher"),
  ]);
  assertFailure(a, 3, /not_wasm\.wasm: invalid module: not a WebAssembly module/, "text file");
  assertFailure(b, 3, /invalid module: not a WebAssembly module/, "empty file");
  // Wasmtime's own reason follows its context ("failed to parse WebAssembly module: <why>").
  assertFailure(
    c,
    3,
    /garbage\.wasm: invalid module: failed to parse WebAssembly module: \S+/,
    "garbage after magic",
  );
  assertFailure(d, 3, /truncated\.wasm: invalid module: .*\S+: \S+/, "truncated module");
  assertFailure(
    e,
    3,
    /missing_import\.wasm: cannot link: missing import env\.nonexistent$/,
    "missing import",
  );
});

Deno.test("cli: traps → exit 134 with Wasmtime's trap message on one line", async () => {
  const [a, b, c] = await Promise.all([
    spear(["run", MISBEHAVE, "--", "unreachable"], "launcher"),
    spear(["run", MISBEHAVE, "--", "divzero"]),
    spear(["run", MISBEHAVE, "--", "recurse"]),
  ]);
  assertFailure(
    a,
    134,
    /misbehave\.wasm: trap: wasm `unreachable` instruction executed \(at main @ 0x[0-9a-f]{1,8}\)$/,
    "unreachable",
  );
  assertFailure(
    b,
    134,
    /misbehave\.wasm: trap: integer divide by zero \(at main @ 0x[0-9a-f]{1,8}\)$/,
    "divide by zero",
  );
  // Wasmtime knows no module offset for this frame: the frame is named without one.
  assertFailure(c, 134, /misbehave\.wasm: trap: call stack exhausted \(at recurse\)$/, "stack overflow");
});

Deno.test("cli: --timeout-ms ends a busy loop and a guest blocked in epoll_wait(-1) promptly", async () => {
  const cases = [
    { mode: "spin", via: "launcher" as const },
    { mode: "block", via: "main" as const },
    { mode: "sleep", via: "main" as const },
  ];
  const outcomes = await Promise.all(
    cases.map((c) => spear(["run", "--timeout-ms", "400", MISBEHAVE, "--", c.mode], c.via)),
  );
  outcomes.forEach((o, i) => {
    const what = cases[i].mode;
    assertFailure(o, 124, /^spear: misbehave\.wasm: timeout after 400 ms$/, what);
    assert.equal(o.stdout, "", `${what}: the guest must not have continued after the timeout`);
    assert.ok(o.ms >= 400, `${what}: ended after ${o.ms.toFixed(0)} ms`);
    assert.ok(o.ms < 8_000, `${what}: ended after ${o.ms.toFixed(0)} ms`);
  });
  // The config's limits.timeout_ms applies when there is no flag.
  const config = writeTemp("timeout.json", JSON.stringify({ limits: { timeout_ms: 300 } }));
  const o = await spear(["run", "--config", config, MISBEHAVE, "--", "block"]);
  assertFailure(o, 124, /timeout after 300 ms$/, "limits.timeout_ms");
});

Deno.test("cli: --memory-mb caps linear memory — malloc returns NULL, or a trap is blamed on the limit", async () => {
  const [soft, hard, roomy] = await Promise.all([
    spear(["run", "--memory-mb", "16", MISBEHAVE, "--", "malloc"]),
    spear(["run", "--memory-mb", "16", MISBEHAVE, "--", "malloc-trap"], "launcher"),
    spear(["run", "--memory-mb", "40", MISBEHAVE, "--", "malloc"]),
  ]);
  // The guest sees malloc fail, reports how much it got and exits 42 (its own choice).
  assert.equal(soft.code, 42, soft.stderr);
  assert.equal(soft.stderr, "");
  const got = Number(/^allocated (\d+) MiB\n$/.exec(soft.stdout)?.[1]);
  assert.ok(got >= 8 && got < 16, `allocated ${got} MiB under a 16 MiB limit`);
  const more = Number(/^allocated (\d+) MiB\n$/.exec(roomy.stdout)?.[1]);
  assert.ok(more >= 32 && more < 40, `allocated ${more} MiB under a 40 MiB limit`);
  // A guest that traps once memory is exhausted: exit 125 and the limit named.
  assertFailure(
    hard,
    125,
    /misbehave\.wasm: memory limit of 16 MiB reached: .*unreachable/,
    "malloc-trap",
  );
});

Deno.test("cli: bad configs → exit 2 with one line naming the field", async () => {
  const cases: [string, string, RegExp][] = [
    ["unknown.json", '{"limits":{"timeout_ms":100},"bogus":true}', /config: bogus: unknown field/],
    ["unknown_nested.json", '{"limits":{"timeout":100}}', /config: limits\.timeout: unknown field/],
    ["bad_json.json", '{"limits": {', /config: .*bad_json\.json: invalid JSON/],
    ["wrong_type.json", '{"limits":{"timeout_ms":"100"}}', /config: limits\.timeout_ms: must be an integer/],
    ["negative.json", '{"limits":{"memory_mb":-1}}', /config: limits\.memory_mb: must be an integer/],
    ["backends.json", '{"backends":{}}', /config: backends: must be an array/],
    [
      "kind.json",
      '{"backends":[{"name":"x","kind":"gpt","ops":["chat_completions"]}]}',
      /config: backends\[0\]\.kind:/,
    ],
    [
      "net.json",
      '{"net":{"allow":["example.com:99999"]}}',
      /config: net\.allow\[0\]: "example\.com:99999": port/,
    ],
    ["root.json", "[1,2]", /config: \(root\): must be a JSON object/],
    ["mic_null.json", '{"mic":null}', /^spear: config: mic: must be an object$/],
    ["limits_null.json", '{"limits":null}', /^spear: config: limits: must be an object$/],
    ["net_null.json", '{"net":null}', /^spear: config: net: must be an object$/],
  ];
  const outcomes = await Promise.all(
    cases.map(([name, text], i) =>
      spear(["run", "--config", writeTemp(name, text), HELLO], i < 3 ? "launcher" : "main")
    ),
  );
  outcomes.forEach((o, i) => assertFailure(o, 2, cases[i][2], cases[i][0]));
  const missing = await spear(["run", "--config", `${tmp}/nope.json`, HELLO], "launcher");
  assertFailure(missing, 2, /nope\.json: cannot read/, "missing config");
});

Deno.test("cli: usage errors → exit 2 with one line", async () => {
  const cases: [string[], RegExp][] = [
    [["run", "--bogus", HELLO], /unknown option --bogus/],
    [["run", "--timeout-ms", "0", HELLO], /--timeout-ms must be a positive integer/],
    [["run", "--memory-mb", "lots", HELLO], /--memory-mb must be a positive integer/],
    [["run", "--timeout-ms"], /--timeout-ms needs a value/],
    [["run"], /missing GUEST\.wasm/],
    [["launch", HELLO], /unknown command "launch"/],
    [["run", `${tmp}/does_not_exist.wasm`], /cannot read .*does_not_exist\.wasm: no such file/],
    [["run", tmp], /is not a file/],
  ];
  const outcomes = await Promise.all(cases.map(([args], i) => spear(args, i % 2 ? "main" : "launcher")));
  outcomes.forEach((o, i) => assertFailure(o, 2, cases[i][1], cases[i][0].join(" ")));
});

Deno.test("cli: limits outside the config's ranges or not plain decimal → exit 2, one line", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--timeout-ms", "2147483648"],
      /^spear: --timeout-ms must be a positive integer no larger than 2147483647/,
    ],
    [["--timeout-ms=99999999999999999999"], /^spear: --timeout-ms must be a positive integer/],
    [["--memory-mb", "1e300"], /^spear: --memory-mb must be a positive integer no larger than 65536/],
    [["--memory-mb", "65537"], /^spear: --memory-mb must be a positive integer no larger than 65536/],
    [["--max-fds", "1000001"], /^spear: --max-fds must be a positive integer no larger than 1000000/],
    [["--memory-mb", "0x10"], /^spear: --memory-mb must be/],
    [["--memory-mb", "16.0"], /^spear: --memory-mb must be/],
    [["--timeout-ms", " 500"], /^spear: --timeout-ms must be/],
    [["--timeout-ms", "+500"], /^spear: --timeout-ms must be/],
    [["--max-fds", "-5"], /^spear: --max-fds must be/],
  ];
  const outcomes = await Promise.all(
    cases.map(([flags], i) => spear(["run", ...flags, EXIT_CODE, "--", "5"], i % 2 ? "main" : "launcher")),
  );
  outcomes.forEach((o, i) => {
    assertFailure(o, 2, cases[i][1], cases[i][0].join(" "));
    assert.equal(o.stdout, "", `${cases[i][0].join(" ")}: the guest must not run`);
  });
  // The largest values are accepted and the guest runs normally.
  const max = await spear([
    "run",
    "--timeout-ms",
    "2147483647",
    "--memory-mb",
    "65536",
    "--max-fds",
    "1000000",
    EXIT_CODE,
    "--",
    "5",
  ]);
  assert.equal(max.code, 5, max.stderr);
  assert.equal(max.stdout, "exit_code: 5\n");
  assert.equal(max.stderr, "");
});

Deno.test("cli: a guest log record is exactly one stderr line; controls are escaped, not sent", async () => {
  const forged = "a\nspear: x.wasm: timeout after 5 ms\x1b[31m\x07";
  const o = await spear(["run", LOG_TEXT, "--", forged, "csi \u009b2J\rdel\x7f\ttab", "trailing\n"]);
  assert.equal(o.code, 0, o.stderr);
  assert.deepEqual(o.stderr.split("\n"), [
    "[log_text.wasm] INFO a\\nspear: x.wasm: timeout after 5 ms\\x1b[31m\\x07",
    "[log_text.wasm] INFO csi \\u009b2J\\rdel\\x7f\\ttab",
    "[log_text.wasm] INFO trailing",
    "",
  ]);
  // deno-lint-ignore no-control-regex -- looking for control characters is the point
  assert.doesNotMatch(o.stderr, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, "no control character reaches stderr");
  // The failure line too: a guest file named with a newline and an ESC.
  const named = writeTemp("evil\nspear: x.wasm: ok\x1b[2J.wasm", Deno.readFileSync(MISBEHAVE));
  const trap = await spear(["run", named, "--", "unreachable"]);
  assertFailure(trap, 134, /^spear: evil\\nspear: x\.wasm: ok\\x1b\[2J\.wasm: trap: /, "escaped file name");
});

Deno.test("cli: the launcher grants a family's permissions only to guests and commands that use it", async () => {
  const has = (flags: string[], text: string) => flags.some((f) => f.includes(text));
  // The mic family reads ALSA's configuration and devices: a guest that captures audio gets it...
  const mic = await permissionFlags(["run", `${root}/guests/build/mic_capture.wasm`]);
  assert.ok(has(mic, "/dev/snd") && has(mic, "JACK_NO_START_SERVER"), mic.join(" "));
  // ...hello, which imports no mic call, does not, nor any way to the local model.
  const hello = await permissionFlags(["run", HELLO]);
  assert.ok(!has(hello, "/dev/snd") && !has(hello, "JACK_NO_START_SERVER"), hello.join(" "));
  assert.ok(!hello.some((f) => f.startsWith("--allow-run") || f.startsWith("--allow-net")), hello.join(" "));
  // Commands without a guest: `devices` is the mic's; the stream client reaches only its URL.
  const devices = await permissionFlags(["devices"]);
  assert.ok(has(devices, "/dev/snd") && !devices.some((f) => f.startsWith("--allow-run")), devices.join(" "));
  const client = await permissionFlags(["stream", "connect", "ws://127.0.0.1:8123/ws"]);
  assert.ok(client.includes("--allow-net=127.0.0.1:8123"), client.join(" "));
  assert.ok(!has(client, "/dev/snd") && !client.some((f) => f.startsWith("--allow-run")), client.join(" "));
  // A module the launcher cannot read as wasm gets every family's grants; the child then reports it.
  const bogus = writeTemp("bogus.wasm", "not a module");
  assert.ok(has(await permissionFlags(["run", bogus]), "/dev/snd"));
});

Deno.test("cli: the child starts with library backtraces off (cheap traps), unless the user chose otherwise", async () => {
  const chosen = Deno.env.get("RUST_LIB_BACKTRACE");
  Deno.env.delete("RUST_LIB_BACKTRACE");
  try {
    assert.equal((await launchPlan(["run", HELLO])).env.RUST_LIB_BACKTRACE, "0");
    Deno.env.set("RUST_LIB_BACKTRACE", "1");
    assert.equal((await launchPlan(["run", HELLO])).env.RUST_LIB_BACKTRACE, "1");
  } finally {
    if (chosen === undefined) Deno.env.delete("RUST_LIB_BACKTRACE");
    else Deno.env.set("RUST_LIB_BACKTRACE", chosen);
  }
});

Deno.test("cli: the bundled CLI runs guests as the sources do", async () => {
  const build = await ensureFreshBundle();
  assert.equal(freshBuild(root), build, "the bundle is fresh once built");
  const numbersMasked = (o: Outcome) => ({
    code: o.code,
    stdout: o.stdout,
    lines: o.lines.map((l) => l.replace(/\d+/g, "N")),
  });
  for (
    const args of [
      ["run", HELLO, "--", "one", "two words"],
      ["run", EXIT_CODE, "--", "42"],
      ["run", MISSING_IMPORT],
      ["run", "--timeout-ms", "300", MISBEHAVE, "--", "spin"],
      ["run", "--config", "/nonexistent.json", HELLO],
    ]
  ) {
    const [bundled, sources] = await Promise.all([spear(args, "launcher"), spear(args, "sources")]);
    assert.deepEqual(numbersMasked(bundled), numbersMasked(sources), args.join(" "));
  }
});

Deno.test("cli: cleanup", () => {
  Deno.removeSync(tmp, { recursive: true });
});
