/**
 * `spear skill …` end to end, in subprocesses: through the launcher (`deno task --quiet spear`,
 * scoped permissions derived from the config and the skill's manifest) and cli/main.ts. Output
 * JSON on stdout, exactly one stderr line per failure with run's exit codes, add/list/memory,
 * and the status line, which appears on a terminal (a pty from `script`) and never otherwise.
 */
import assert from "node:assert/strict";
import { permissionFlags } from "../../cli/launcher.ts";
import { StatusLine } from "../../cli/status.ts";
import { startHttpServer } from "../support/http_server.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const PROBE = `${root}/guests/build/test/skill_probe.wasm`;
const COUNTER = `${root}/guests/build/skills/counter.wasm`;
const tmp = Deno.makeTempDirSync({ prefix: "spear-skill-cli-test-" });
const decoder = new TextDecoder();

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  lines: string[];
}

let configCount = 0;
/** A config with its own skills dir and memory file. */
function newConfig(extra: Record<string, unknown> = {}): string {
  const dir = `${tmp}/c${++configCount}`;
  Deno.mkdirSync(dir, { recursive: true });
  const path = `${dir}/spear.json`;
  Deno.writeTextFileSync(
    path,
    JSON.stringify({
      memory: { path: `${dir}/data/memory.db` },
      skills: { dir: `${dir}/skills` },
      backends: [{ name: "stub", kind: "stub", ops: ["chat_completions"] }],
      ...extra,
    }),
  );
  return path;
}

async function spear(args: string[], via: "launcher" | "main" = "main"): Promise<Outcome> {
  const denoArgs = via === "launcher"
    ? ["task", "--quiet", "spear", ...args]
    : ["run", "--quiet", "--allow-all", `${root}/cli/main.ts`, ...args];
  const out = await new Deno.Command(Deno.execPath(), {
    args: denoArgs,
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", SPEARHOST_CACHE_DIR: `${tmp}/cache` },
  }).output();
  const stderr = decoder.decode(out.stderr);
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr,
    lines: stderr.split("\n").filter((l) => l),
  };
}

function assertFailure(o: Outcome, code: number, pattern: RegExp, what: string): void {
  assert.equal(o.code, code, `${what}: exit ${o.code}; stderr: ${o.stderr}`);
  assert.equal(o.lines.length, 1, `${what}: expected one stderr line, got:\n${o.stderr}`);
  assert.match(o.lines[0], /^spear: /, what);
  assert.match(o.lines[0], pattern, what);
  assert.equal(o.stdout, "", `${what}: nothing on stdout`);
}

Deno.test("skill cli: add writes the manifest with the checksum; list; run prints the output JSON (launcher)", async () => {
  const config = newConfig();
  const added = await spear([
    "skill",
    "add",
    "--config",
    config,
    COUNTER,
    "--name",
    "counter",
    "--description",
    "counts",
  ], "launcher");
  assert.equal(added.code, 0, added.stderr);
  const manifestPath = added.stdout.trim();
  assert.match(manifestPath, /\/skills\/counter\/skill\.json$/);
  const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(COUNTER)));
  assert.deepEqual(manifest, {
    name: "counter",
    version: "0.1.0",
    wasm: "counter.wasm",
    sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    description: "counts",
  });

  const listed = await spear(["skill", "list", "--config", config], "launcher");
  assert.equal(listed.stdout, "counter\t0.1.0\tcounts\n");

  const first = await spear(["skill", "run", "--config", config, "counter"], "launcher");
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, '{"count":1}\n');
  assert.equal(first.stderr, "", "no status line when stderr is not a terminal");
  const inputFile = `${tmp}/input.json`;
  await Deno.writeTextFile(inputFile, '{"by": 41}');
  const second = await spear(
    ["skill", "run", "--config", config, "counter", "--input-file", inputFile],
    "launcher",
  );
  assert.equal(second.stdout, '{"count":42}\n', second.stderr);

  // Re-adding keeps what the manifest says besides the module.
  const again = await spear([
    "skill",
    "add",
    "--config",
    config,
    COUNTER,
    "--name",
    "counter",
    "--version",
    "2.0.0",
  ]);
  assert.equal(again.code, 0, again.stderr);
  const updated = JSON.parse(await Deno.readTextFile(manifestPath));
  assert.equal(updated.version, "2.0.0");
  assert.equal(updated.description, "counts");

  // memory: the counter's namespace.
  const got = await spear(["skill", "memory", "--config", config, "counter", "get", "count"], "launcher");
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout, "42");
  assert.equal(
    (await spear(["skill", "memory", "--config", config, "counter", "set", "count", "99"])).code,
    0,
  );
  assert.equal((await spear(["skill", "run", "--config", config, "counter"])).stdout, '{"count":100}\n');
  const list = await spear(["skill", "memory", "--config", config, "counter", "list"]);
  assert.deepEqual(JSON.parse(list.stdout), {
    namespace: "counter",
    total_bytes: 8,
    keys: [{ key: "count", bytes: 3 }],
  });
  assert.equal((await spear(["skill", "memory", "--config", config, "counter", "delete", "count"])).code, 0);
  assertFailure(
    await spear(["skill", "memory", "--config", config, "counter", "get", "count"]),
    1,
    /^spear: skill memory counter: no key "count"$/,
    "missing key",
  );
  assertFailure(
    await spear(["skill", "memory", "--config", config, "counter", "delete", "count"]),
    1,
    /no key "count"/,
    "delete missing",
  );
});

Deno.test("skill cli: the launcher grants the manifest's hosts, the skill's files and the store — and nothing more", async () => {
  const web = startHttpServer();
  try {
    const config = newConfig();
    const add = await spear([
      "skill",
      "add",
      "--config",
      config,
      PROBE,
      "--name",
      "web",
      "--allow-host",
      `127.0.0.1:${web.port}`,
    ]);
    assert.equal(add.code, 0, add.stderr);
    const flags = await permissionFlags(["skill", "run", "--config", config, "web"]);
    const net = flags.find((f) => f.startsWith("--allow-net="));
    assert.equal(net, `--allow-net=127.0.0.1:${web.port}`);
    const read = flags.find((f) => f.startsWith("--allow-read="))!.split("=")[1].split(",");
    const write = flags.find((f) => f.startsWith("--allow-write="))!.split("=")[1].split(",");
    const dir = config.replace(/\/spear\.json$/, "");
    assert.ok(
      read.includes(`${dir}/skills/web/skill.json`) && read.includes(`${dir}/skills/web/web.wasm`),
      read.join(),
    );
    assert.ok(write.includes(`${dir}/data`), "the store's directory (WAL files live beside it)");
    assert.ok(!flags.some((f) => f === "--allow-net" || f === "--allow-all"), flags.join(" "));

    // Through the scoped child: the allowed host is reached, another is refused by the policy.
    const o = await spear([
      "skill",
      "run",
      "--config",
      config,
      "web",
      "--input",
      JSON.stringify({ op: "http", url: `${web.origin}/text?body=scoped`, cap: 64 }),
    ], "launcher");
    assert.equal(o.code, 0, o.stderr);
    assert.deepEqual(JSON.parse(o.stdout), { op: "http", first_rc: 6, first: "scoped" });
    const denied = await spear([
      "skill",
      "run",
      "--config",
      config,
      "web",
      "--input",
      JSON.stringify({ op: "http", url: "http://127.0.0.2:9/x" }),
    ], "launcher");
    assert.deepEqual(JSON.parse(denied.stdout), { op: "http", first_rc: -13 });
    assert.match(
      denied.stderr,
      /^\[web\] WARN cis\.http_request: network access to http:\/\/127\.0\.0\.2:9 is not allowed \(not in http\.allow\)\n$/,
    );
  } finally {
    await web.close();
  }
});

Deno.test("skill cli: failures print one line with run's exit codes", async () => {
  const config = newConfig();
  assert.equal((await spear(["skill", "add", "--config", config, PROBE, "--name", "probe"])).code, 0);
  const run = (input: unknown, ...extra: string[]) =>
    spear(["skill", "run", "--config", config, "probe", "--input", JSON.stringify(input), ...extra]);
  assertFailure(
    await run({ op: "spin" }, "--timeout-ms", "300"),
    124,
    /^spear: skill probe: timeout after 300 ms$/,
    "timeout",
  );
  assertFailure(
    await run({ op: "notjson" }),
    1,
    /^spear: skill probe: entry contract broken: the output of execute is not JSON/,
    "not JSON",
  );
  assertFailure(
    await spear(["skill", "run", "--config", config, "probe", "--input", "{"]),
    2,
    /^spear: skill probe: the input is not JSON/,
    "bad input",
  );
  assertFailure(
    await spear(["skill", "run", "--config", config, "nope"]),
    2,
    /^spear: skill nope: no skill "nope" in /,
    "unknown",
  );

  const manifestPath = `${config.replace(/\/spear\.json$/, "")}/skills/probe/skill.json`;
  const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
  await Deno.writeTextFile(manifestPath, JSON.stringify({ ...manifest, sha256: "f".repeat(64) }));
  assertFailure(
    await run({ op: "echo" }, "--timeout-ms", "1000"),
    3,
    /^spear: skill probe: checksum mismatch: .* refusing to run$/,
    "tampered",
  );
  await Deno.writeTextFile(manifestPath, JSON.stringify({ ...manifest, limits: { timeout: 1 } }));
  assertFailure(
    await run({ op: "echo" }),
    2,
    /^spear: skill probe: invalid manifest .*skill\.json: limits\.timeout: unknown field$/,
    "manifest",
  );

  const notWasm = `${tmp}/not.wasm`;
  await Deno.writeTextFile(notWasm, "text");
  assertFailure(
    await spear(["skill", "add", "--config", config, notWasm, "--name", "bad"]),
    3,
    /^spear: skill bad: not a WebAssembly module/,
    "add refuses a non-module",
  );
  assertFailure(
    await spear(["skill", "add", "--config", config, `${root}/guests/build/hello.wasm`, "--name", "hello"]),
    3,
    /missing export execute/,
    "add refuses a command",
  );
  assertFailure(
    await spear(["skill", "add", "--config", config, PROBE, "--name", "x", "--allow-host", "tcp://h"]),
    2,
    /http\.allow\[0\]: "tcp:\/\/h": a port is required for tcp:\/\//,
    "bad allow entry",
  );
  for (
    const [args, pattern] of [
      [["skill"], /^$/],
      [["skill", "bogus"], /unknown skill command "bogus"/],
      [["skill", "run"], /missing SKILL/],
      [["skill", "add", PROBE], /skill add needs --name NAME/],
      [["skill", "run", "x", "--input", "{}", "--input-file", "f"], /give --input or --input-file, not both/],
      [["skill", "memory", "counter", "frob"], /expected get, set, delete or list/],
      [["skill", "memory", "counter", "set", "k"], /set needs KEY VALUE/],
      [["skill", "run", "x", "--bogus"], /unknown option --bogus for skill run/],
    ] as [string[], RegExp][]
  ) {
    const o = await spear(args);
    if (args.length === 1) {
      assert.equal(o.code, 0, "bare `skill` prints the usage");
      assert.match(o.stdout, /spear skill run/);
      continue;
    }
    assertFailure(o, 2, pattern, args.join(" "));
  }
});

Deno.test("skill cli: on a terminal a status line shows a slow call and is erased after it", async () => {
  const web = startHttpServer();
  try {
    const config = newConfig();
    await spear([
      "skill",
      "add",
      "--config",
      config,
      PROBE,
      "--name",
      "slow",
      "--allow-host",
      `127.0.0.1:${web.port}`,
    ]);
    const input = JSON.stringify({ op: "http", url: `${web.origin}/slow?ms=1200`, cap: 16 });
    const deno = Deno.execPath();
    const command = [
      deno,
      "run",
      "--quiet",
      "--allow-all",
      `${root}/cli/main.ts`,
      "skill",
      "run",
      "--config",
      config,
      "slow",
      "--input",
      input,
    ]
      .map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    // `script` gives the child a pty for stdin, stdout and stderr, and copies what it shows.
    const out = await new Deno.Command("script", {
      args: ["-qefc", command, "/dev/null"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", SPEARHOST_CACHE_DIR: `${tmp}/cache` },
    }).output();
    const shown = decoder.decode(out.stdout);
    assert.equal(out.code, 0, shown + decoder.decode(out.stderr));
    // deno-lint-ignore no-control-regex
    assert.match(shown, /\r\x1b\[2K. slow: http_request GET http:\/\/127\.0\.0\.1:\d+\/slow \d+\.\d s/);
    // Erased before the output JSON is printed.
    // deno-lint-ignore no-control-regex
    assert.match(shown, /\r\x1b\[2K\{"op":"http","first_rc":4,"first":"slow"\}\r?\n$/);
  } finally {
    await web.close();
  }
});

Deno.test("skill cli: StatusLine draws after its delay, shows the newest activity, erases itself", () => {
  const written: string[] = [];
  let now = 0;
  const line = new StatusLine({
    write: (t) => written.push(t),
    delayMs: 300,
    intervalMs: 1_000_000,
    now: () => now,
    columns: 60,
  });
  const a = { guest: "s", what: "ai_prompt (backend x)", startedAt: 0 };
  line.begin(a);
  now = 100;
  line.tick();
  assert.deepEqual(written, [], "nothing before the delay");
  now = 1500;
  line.tick();
  assert.deepEqual(written, ["\r\x1b[2K⠋ s: ai_prompt (backend x) 1.5 s"]);
  const b = { guest: "s", what: `http_request GET ${"x".repeat(100)}`, startedAt: 1000 };
  line.begin(b);
  line.tick();
  assert.equal([...written[1]].length, "\r\x1b[2K".length + 59, "cut to the terminal's width");
  // deno-lint-ignore no-control-regex
  assert.match(written[1], /^\r\x1b\[2K⠙ s: http_request GET x+… 0\.5 s \(\+1 more\)$/);
  line.end(b);
  line.end(a);
  assert.equal(written.at(-1), "\r\x1b[2K", "erased when nothing is in flight");
  line.end(a); // idempotent
  assert.equal(written.length, 3);
});

Deno.test("skill cli: cleanup", () => {
  Deno.removeSync(tmp, { recursive: true });
});
