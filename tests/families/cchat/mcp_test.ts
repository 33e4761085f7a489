/**
 * MCP tools in cchat, end to end: guests/src/mcp_fs.c (SPEAR's mcp_fs, same imports) on real
 * Wasmtime, the host's MCP client (the official SDK) talking to the reference filesystem MCP
 * server from npm (`@modelcontextprotocol/server-filesystem`, installed by setup), and a scripted
 * OpenAI-compatible server standing in for a model that asks for the tool.
 */
// deno-lint-ignore-file no-explicit-any -- JSON from the guest and the model is checked field by field
import assert from "node:assert/strict";
import { SpearHost } from "../../../host/host.ts";
import { ConfigError, parseConfig } from "../../../host/config.ts";
import { createDrivers } from "../../../families/registry.ts";
import { type RecordedRequest, startOpenAIServer } from "../../support/openai_server.ts";
import { freePort } from "../../support/sock.ts";
import {
  allowedByPolicies,
  effectiveMcp,
  mcpToolName,
  parseMcpToolName,
  wildcardMatch,
} from "../../../families/cchat/mcp_config.ts";

const root = new URL("../../../", import.meta.url).pathname;
const MCP_FS = `${root}guests/build/mcp_fs.wasm`;
const FS_SERVER = `${root}.tools/mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js`;
const EVERYTHING_SERVER =
  `${root}.tools/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
const PROBE = `${root}guests/build/test/llm_probe.wasm`;
const CARGO =
  `[package]\nname = "spear-sample"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nserde = "1"\n`;

interface Run {
  exitCode: number;
  failure?: string;
  logs: string[];
}

async function run(config: Record<string, unknown>, wasm = MCP_FS, args: string[] = []): Promise<Run> {
  const parsed = parseConfig(config);
  const logs: string[] = [];
  const host = new SpearHost({
    config: parsed,
    drivers: await createDrivers(parsed),
    cacheDir: null,
    logSink: (_g, _level, message) => logs.push(message),
  });
  try {
    const stdoutFile = await Deno.makeTempFile();
    const result = await host.run(wasm, { timeoutMs: 60_000, args, stdoutFile });
    logs.push(...(await Deno.readTextFile(stdoutFile)).split("\n"));
    await Deno.remove(stdoutFile);
    return { exitCode: result.exitCode, failure: result.failure?.message, logs };
  } finally {
    await host.close();
  }
}

function responseOf(r: Run): Record<string, any> {
  const line = r.logs.find((l) => l.startsWith("response_json="));
  assert.ok(line, `no response_json in ${JSON.stringify(r.logs)}`);
  return JSON.parse(line.slice("response_json=".length));
}

function fsServer(dir: string, extra: Record<string, unknown> = {}) {
  return { id: "fs", transport: "stdio", command: "node", args: [FS_SERVER, dir], ...extra };
}

function backendFor(url: string) {
  return {
    name: "scripted",
    kind: "openai_chat_completion",
    base_url: url,
    model: "gpt-4o-mini",
    ops: ["chat_completions"],
    features: ["supports_tools"],
  };
}

/** The text of the last `tool` message a request carried. */
function lastToolResult(req: RecordedRequest): string {
  const messages = (req.body as any).messages as any[];
  const tool = messages.filter((m) => m.role === "tool").at(-1);
  return tool?.content ?? "";
}

Deno.test("mcp: mcp_fs reads a file's lines through the reference filesystem server", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/Cargo.toml`, CARGO);
  const server = startOpenAIServer();
  server.enqueue(
    { kind: "tool_calls", calls: [{ name: "mcp__fs__read_text_file", arguments: { path: "Cargo.toml" } }] },
    {
      kind: "dynamic",
      reply: (req) => {
        // The model's answer quotes what the tool returned: the file's first 5 lines.
        const result = JSON.parse(lastToolResult(req));
        const text: string = result.content[0].text;
        const content = text.split("\n").slice(0, 5).join("\n") + "\nMCP_OK";
        return { kind: "json", body: completion(content) };
      },
    },
  );
  try {
    const r = await run({ backends: [backendFor(server.url)], mcp: { servers: [fsServer(dir)] } });
    assert.equal(r.exitCode, 0, r.failure ?? r.logs.join("\n"));
    const response = responseOf(r);
    assert.equal(
      response.choices[0].message.content,
      '[package]\nname = "spear-sample"\nversion = "0.1.0"\nedition = "2021"\n\nMCP_OK',
    );
    assert.equal(server.requests.length, 2);
    const offered = ((server.requests[0].body as any).tools as any[]).map((t) => t.function.name).sort();
    assert.ok(offered.includes("mcp__fs__read_text_file"), offered.join());
    assert.ok(offered.includes("mcp__fs__list_directory"), offered.join());
    assert.ok(offered.every((n) => /^mcp__fs__(read|list)_/.test(n)), `allowlist read_*, list_*: ${offered}`);
    // The tool result the model got came from the real server and holds the file.
    assert.match(lastToolResult(server.requests[1]), /spear-sample/);
    const sent = (server.requests[1].body as any).messages as any[];
    assert.equal(sent[1].tool_calls[0].function.name, "mcp__fs__read_text_file");
    assert.equal(sent[2].role, "tool");
    // mcp.* params are the host's: never sent upstream.
    assert.ok(!Object.keys(server.requests[0].body as any).some((k) => k.startsWith("mcp.")));
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mcp: a streamable-HTTP server (the reference 'everything' server) serves tool calls too", async () => {
  const port = freePort();
  const peer = new Deno.Command("node", {
    args: [EVERYTHING_SERVER, "streamableHttp"],
    env: { PORT: String(port) },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const server = startOpenAIServer();
  server.enqueue(
    { kind: "tool_calls", calls: [{ name: "mcp__web__echo", arguments: { message: "hello over http" } }] },
    { kind: "echo" },
  );
  try {
    await untilListening(peer.stderr);
    const r = await run(
      {
        backends: [backendFor(server.url)],
        mcp: { servers: [{ id: "web", transport: "http", url: `http://127.0.0.1:${port}/mcp` }] },
      },
      PROBE,
      ["mcp", "web", "Echo 'hello over http'."],
    );
    assert.equal(r.exitCode, 0, r.failure);
    assert.ok(r.logs.includes("set_enabled=0") && r.logs.includes("set_servers=0"), r.logs.join("\n"));
    assert.equal(server.requests.length, 2, r.logs.join("\n"));
    const offered = ((server.requests[0].body as any).tools as any[]).map((t) => t.function.name);
    assert.ok(offered.includes("mcp__web__echo"), offered.join());
    assert.match(lastToolResult(server.requests[1]), /Echo: hello over http/);
  } finally {
    await server.close();
    peer.kill("SIGTERM");
    await peer.status;
  }
});

Deno.test("mcp: a denied tool is not run; its error goes back to the model", async () => {
  const dir = await Deno.makeTempDir();
  const server = startOpenAIServer();
  server.enqueue(
    {
      kind: "tool_calls",
      calls: [{ name: "mcp__fs__write_file", arguments: { path: "x.txt", content: "no" } }],
    },
    { kind: "echo" },
  );
  try {
    const r = await run({ backends: [backendFor(server.url)], mcp: { servers: [fsServer(dir)] } });
    assert.equal(r.exitCode, 0, r.failure);
    const result = JSON.parse(lastToolResult(server.requests[1]));
    assert.equal(result.error.code, "mcp_tool_failed");
    assert.match(result.error.message, /denied by session allowlist/);
    await assert.rejects(Deno.stat(`${dir}/x.txt`), Deno.errors.NotFound);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mcp: asking for MCP on a host without it is a clear error response, and nothing goes upstream", async () => {
  const server = startOpenAIServer();
  try {
    const r = await run({ backends: [backendFor(server.url)] });
    assert.equal(r.exitCode, 0, r.failure);
    const response = responseOf(r);
    assert.equal(response.error.code, "mcp_unavailable");
    assert.match(response.error.message, /MCP is not configured on this host.*"fs"/);
    assert.equal(server.requests.length, 0);
    // A server id the host does not have names what it has.
    const other = await run({
      backends: [backendFor(server.url)],
      mcp: { servers: [{ id: "web", transport: "http", url: "http://127.0.0.1:9/mcp" }] },
    });
    assert.match(
      responseOf(other).error.message,
      /MCP server "fs" is not configured on this host \(configured: web\)/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("mcp: the task policy refuses with -EACCES (SPEAR's rules)", async () => {
  const server = startOpenAIServer();
  try {
    const disabled = await run({
      backends: [backendFor(server.url)],
      mcp: { servers: [fsServer("/tmp")], task: { enabled: false } },
    });
    assert.equal(disabled.exitCode, 1);
    assert.ok(disabled.logs.includes("set mcp.enabled failed: -13"), disabled.logs.join("\n"));
    const outside = await run({
      backends: [backendFor(server.url)],
      mcp: { servers: [fsServer("/tmp")], task: { enabled: true, allowed_server_ids: ["web"] } },
    });
    assert.equal(outside.exitCode, 1);
    assert.ok(outside.logs.includes("set mcp.server_ids failed: -13"), outside.logs.join("\n"));
    assert.equal(server.requests.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("mcp: policy rules, names and the effective session policy", () => {
  assert.ok(wildcardMatch("*", "anything"));
  assert.ok(wildcardMatch("read_*", "read_file"));
  assert.ok(!wildcardMatch("read_*", "write_file"));
  assert.ok(wildcardMatch("a?c", "abc"));
  assert.ok(!wildcardMatch("a?c", "ac"));
  assert.ok(wildcardMatch("ab*cd", "ab__cd"));
  assert.ok(!wildcardMatch("ab*cd", "ab__ce"));

  assert.equal(mcpToolName("fs", "read_text_file"), "mcp__fs__read_text_file");
  assert.equal(mcpToolName("fs", "bad name"), undefined);
  assert.deepEqual(parseMcpToolName("mcp__fs__read_text_file"), { server: "fs", tool: "read_text_file" });
  assert.deepEqual(parseMcpToolName("mcp.fs.read_file"), { server: "fs", tool: "read_file" });
  assert.equal(parseMcpToolName("mcp__fs"), undefined);

  const session = {
    server_ids: ["fs"],
    task_tool_allowlist: [],
    task_tool_denylist: ["read_secret*"],
    tool_allowlist: ["read_*"],
    tool_denylist: [],
  };
  assert.deepEqual(allowedByPolicies(["*"], session, "read_file"), { ok: true });
  assert.match((allowedByPolicies(["*"], session, "write_file") as any).reason, /session allowlist/);
  assert.match((allowedByPolicies(["*"], session, "read_secret_file") as any).reason, /task denylist/);
  assert.match((allowedByPolicies([], session, "read_file") as any).reason, /server policy/);

  const section = {
    servers: [{ id: "fs" } as any],
    task: {
      enabled: true,
      default_server_ids: ["fs"],
      allowed_server_ids: ["fs"],
      tool_allowlist: [],
      tool_denylist: ["write_*"],
    },
  };
  // Task defaults apply to a session that set nothing; a session can still turn MCP off.
  assert.deepEqual((effectiveMcp(section, undefined) as any).policy.server_ids, ["fs"]);
  assert.deepEqual(effectiveMcp(section, { enabled: false }), { off: true });
  assert.deepEqual(effectiveMcp({ servers: [] }, undefined), { off: true });
  assert.match((effectiveMcp({ servers: [] }, { enabled: true }) as any).error, /without servers/);
});

Deno.test("mcp: config errors name the field", () => {
  const bad: [unknown, RegExp][] = [
    [{ servers: [{ id: "f_s", transport: "stdio", command: "x" }] }, /mcp\.servers\[0\]\.id/],
    [{ servers: [{ id: "fs", transport: "stdio" }] }, /mcp\.servers\[0\]\.command: is required/],
    [{ servers: [{ id: "fs", transport: "http", url: "ftp://x" }] }, /mcp\.servers\[0\]\.url/],
    [{ servers: [{ id: "fs", transport: "tcp" }] }, /mcp\.servers\[0\]\.transport/],
    [{ task: { enabled: "yes" } }, /mcp\.task\.enabled/],
    [{ extra: 1 }, /mcp\.extra: unknown field/],
  ];
  for (const [mcp, field] of bad) {
    assert.throws(() => parseConfig({ mcp }), (e) => e instanceof ConfigError && field.test(e.message));
  }
});

/** Resolves when the peer says it listens (its first stderr line); keeps draining after. */
async function untilListening(stderr: ReadableStream<Uint8Array>): Promise<void> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening/i.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`MCP peer exited: ${text}`);
    text += value;
  }
  (async () => {
    while (!(await reader.read()).done) { /* drained */ }
  })();
}

function completion(content: string) {
  return {
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 0,
    model: "gpt-test",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
  };
}
