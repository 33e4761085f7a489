/**
 * Skills end to end through real Wasmtime (SPEC.md §9, seed 004): every host function with
 * success and failure, against the scripted OpenAI server (tests/support/openai_server.ts) and
 * a local HTTP server; the limits (a spinning skill times out, allocating past the limit fails
 * inside the skill); checksums and module checks; memory that persists across runs, hosts and
 * processes; the allowlist, redirects and truncation retries; both memory styles and both
 * memory_set declarations; the sample skills.
 */
import assert from "node:assert/strict";
import { SpearHost } from "../../host/host.ts";
import { type HostConfig, parseConfig } from "../../host/config.ts";
import { runSkill, sha256Hex, SkillError, type SkillRunOptions } from "../../families/cis/skill.ts";
import { SKILL_DEFAULTS, type SkillManifest } from "../../families/cis/manifest.ts";
import { MemoryStore } from "../../families/cis/store.ts";
import { type OpenAIServer, startOpenAIServer } from "../support/openai_server.ts";
import { startHttpServer, type TestHttpServer } from "../support/http_server.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const TEST = `${root}/guests/build/test`;
const SKILLS = `${root}/guests/build/skills`;
const PROBE = `${TEST}/skill_probe.wasm`;
const PROBE_IMPORTED = `${TEST}/skill_probe_imported.wasm`;
const PROBE_VOID = `${TEST}/skill_probe_void.wasm`;

const tmp = Deno.makeTempDirSync({ prefix: "spear-skills-test-" });
let envCount = 0;

interface Env {
  dir: string;
  config: HostConfig;
  host: SpearHost;
  logs: string[];
  ai: OpenAIServer;
  web: TestHttpServer;
  /** Writes `<skills.dir>/<name>/skill.json` for `wasm` (absolute path) with its checksum. */
  install(name: string, wasm: string, extra?: Partial<SkillManifest>): Promise<string>;
  /** Runs a skill; the output parsed, or the failure. */
  run(name: string, input: unknown, options?: SkillRunOptions): Promise<Record<string, unknown>>;
}

async function withEnv(fn: (env: Env) => Promise<void>, raw: Record<string, unknown> = {}): Promise<void> {
  const dir = `${tmp}/env${++envCount}`;
  await Deno.mkdir(dir, { recursive: true });
  const ai = startOpenAIServer();
  const web = startHttpServer();
  const config = parseConfig({
    backends: [
      {
        name: "scripted",
        kind: "openai_chat_completion",
        base_url: ai.url,
        model: "test-model",
        ops: ["chat_completions"],
      },
      { name: "stub", kind: "stub", ops: ["chat_completions"] },
    ],
    memory: { path: `${dir}/memory.db` },
    skills: { dir: `${dir}/skills` },
    ...raw,
  });
  const logs: string[] = [];
  const host = new SpearHost({ config, cacheDir: null, logSink: (_g, _l, m) => void logs.push(m) });
  const env: Env = {
    dir,
    config,
    host,
    logs,
    ai,
    web,
    async install(name, wasm, extra = {}) {
      const bytes = await Deno.readFile(wasm);
      const manifest = { name, version: "1.0.0", wasm, sha256: await sha256Hex(bytes), ...extra };
      await Deno.mkdir(`${dir}/skills/${name}`, { recursive: true });
      const path = `${dir}/skills/${name}/skill.json`;
      await Deno.writeTextFile(path, JSON.stringify(manifest));
      return path;
    },
    async run(name, input, options = {}) {
      const r = await runSkill(host, name, { ...options, input: JSON.stringify(input) });
      if (r.failure) return { failure: r.failure, exitCode: r.exitCode };
      return r.json as Record<string, unknown>;
    },
  };
  try {
    await fn(env);
  } finally {
    await host.close();
    await ai.close();
    await web.close();
  }
}

// ---------------------------------------------------------------- ai_prompt

Deno.test("skills: ai_prompt — the config's first chat backend answers; a truncated answer is kept for the retry", async () => {
  await withEnv(async (env) => {
    await env.install("probe", PROBE);
    const out = await env.run("probe", {
      op: "ai",
      prompt: "What is WAL?",
      cap: 6,
      retry: true,
      again: true,
    });
    assert.deepEqual(out, {
      op: "ai",
      first_rc: 18,
      first: "echo: ",
      retry_rc: 18,
      retry: "echo: What is WAL?",
      again_rc: 18,
      again: "echo: What is WAL?",
    });
    // One user message, the backend's bound model; the retry did not ask again, the call after a full read did.
    assert.equal(env.ai.requests.length, 2);
    const body = env.ai.requests[0].body as { model: string; messages: unknown[] };
    assert.equal(body.model, "test-model");
    assert.deepEqual(body.messages, [{ role: "user", content: "What is WAL?" }]);
  });
});

Deno.test("skills: ai_prompt — the manifest's ai picks the backend; failures are -EIO with a WARN line", async () => {
  await withEnv(async (env) => {
    await env.install("stubbed", PROBE, { ai: { backend: "stub" } });
    assert.deepEqual(await env.run("stubbed", { op: "ai", prompt: "hi", cap: 100 }), {
      op: "ai",
      first_rc: 24,
      first: "stub chat completion: hi",
    });
    assert.equal(env.ai.requests.length, 0);
    // An upstream error, a backend that does not exist, a reply without text.
    await env.install("probe", PROBE);
    env.ai.enqueue({ status: 500, body: { error: { message: "overloaded", type: "server_error" } } });
    assert.deepEqual(await env.run("probe", { op: "ai", prompt: "x" }), { op: "ai", first_rc: -5 });
    await env.install("ghost", PROBE, { ai: { backend: "nope" } });
    assert.deepEqual(await env.run("ghost", { op: "ai", prompt: "x" }), { op: "ai", first_rc: -5 });
    env.ai.enqueue({ kind: "tool_calls", calls: [{ name: "f", arguments: {} }] });
    assert.deepEqual(await env.run("probe", { op: "ai", prompt: "x" }), { op: "ai", first_rc: -5 });
    assert.ok(
      env.logs.some((l) =>
        /^cis\.ai_prompt: Runtime error: upstream status: 500: server_error: overloaded$/.test(l)
      ),
      env.logs.join("\n"),
    );
    assert.ok(env.logs.some((l) => /^cis\.ai_prompt: Operation not supported: no candidate backend/.test(l)));
    assert.ok(env.logs.some((l) => /answered without assistant text/.test(l)));
  });
});

Deno.test("skills: ai_prompt with no chat backend configured is the local model's; a slow backend is cut at the skill's time limit", async () => {
  await withEnv(async (env) => {
    await env.install("probe", PROBE, { limits: { timeout_ms: 500 } });
    env.ai.enqueue({ body: {}, bodyDelayMs: 5000 });
    const t0 = performance.now();
    const out = await env.run("probe", { op: "ai", prompt: "slow" });
    assert.deepEqual(out, { failure: { kind: "timeout", message: "timeout after 500 ms" }, exitCode: 124 });
    assert.ok(performance.now() - t0 < 4000, "the run ended at its limit, not when the backend answered");
    assert.ok(await env.ai.waitCancelled(1, 3000), "the backend request was cancelled");
  });
  await withEnv(async (env) => {
    await env.install("probe", PROBE);
    // No chat backend: the embedded local_llm backend (the packaged model) answers.
    const out = await env.run("probe", { op: "ai", prompt: "Say hello." }) as {
      first_rc: number;
      first: string;
    };
    assert.ok(out.first_rc > 0 && out.first.length > 0, JSON.stringify(out));
  }, { backends: [] });
});

// ---------------------------------------------------------------- memory

Deno.test("skills: memory — set/get, ENOENT, namespaces per skill, caps are ENOSPC", async () => {
  await withEnv(async (env) => {
    await env.install("a", PROBE, { memory: { max_value_bytes: 10, max_total_bytes: 40 } });
    await env.install("b", PROBE);
    await env.install("shares-a", PROBE, { memory: { namespace: "a" } });
    assert.deepEqual(await env.run("a", { op: "get", key: "k" }), { op: "get", first_rc: -2 });
    assert.deepEqual(await env.run("a", { op: "set", key: "k", value: "héllo" }), { op: "set", set_rc: 0 });
    assert.deepEqual(await env.run("a", { op: "get", key: "k", cap: 2, retry: true }), {
      op: "get",
      first_rc: 6,
      first: "h\ufffd", // the cut falls inside "é"
      retry_rc: 6,
      retry: "héllo",
    });
    assert.deepEqual(
      await env.run("b", { op: "get", key: "k" }),
      { op: "get", first_rc: -2 },
      "b has its own namespace",
    );
    assert.deepEqual(await env.run("shares-a", { op: "get", key: "k" }), {
      op: "get",
      first_rc: 6,
      first: "héllo",
    });
    // Per value: 11 bytes over max_value_bytes 10. Per namespace: 40 bytes in all.
    assert.deepEqual(await env.run("a", { op: "set", key: "big", value_bytes: 11 }), {
      op: "set",
      set_rc: -28,
    });
    assert.deepEqual(await env.run("a", { op: "set", key: "k2", value_bytes: 10 }), { op: "set", set_rc: 0 });
    assert.deepEqual(await env.run("a", { op: "set", key: "k3", value_bytes: 10 }), { op: "set", set_rc: 0 });
    assert.deepEqual(await env.run("a", { op: "set", key: "k4", value_bytes: 10 }), {
      op: "set",
      set_rc: -28,
    });
    assert.ok(
      env.logs.some((l) =>
        /^cis\.memory_set: namespace "a" would hold 43 bytes, over the skill's max_total_bytes \(40\)$/.test(
          l,
        )
      ),
      env.logs.join("\n"),
    );
    const store = MemoryStore.open(env.config.memory.path);
    assert.deepEqual(store.list("a").map((k) => k.key), ["k", "k2", "k3"]);
    store.close();
  });
});

Deno.test("skills: memory persists across runs, host restarts and processes; both memory styles and both memory_set declarations", async () => {
  await withEnv(async (env) => {
    await env.install("counter", PROBE);
    await env.install("counter-imported", PROBE_IMPORTED, { memory: { namespace: "counter" } });
    await env.install("counter-void", PROBE_VOID, { memory: { namespace: "counter" } });
    assert.deepEqual(await env.run("counter", { op: "count" }), {
      op: "count",
      get_rc: -2,
      set_rc: 0,
      count: 1,
    });
    assert.deepEqual(await env.run("counter-imported", { op: "count" }), {
      op: "count",
      get_rc: 1,
      set_rc: 0,
      count: 2,
    });
    assert.deepEqual(await env.run("counter-void", { op: "count" }), { op: "count", get_rc: 1, count: 3 });
    // A new host (a restart) on the same file.
    const again = new SpearHost({ config: env.config, cacheDir: null, logSink: () => {} });
    const r = await runSkill(again, "counter", { input: '{"op":"count"}' });
    await again.close();
    assert.deepEqual(r.json, { op: "count", get_rc: 1, set_rc: 0, count: 4 });
    // Other processes, through the CLI.
    const config = `${env.dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ memory: { path: env.config.memory.path }, skills: { dir: env.config.skills.dir } }),
    );
    for (const expected of [5, 6]) {
      const o = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-all",
          `${root}/cli/main.ts`,
          "skill",
          "run",
          "--config",
          config,
          "counter",
          "--input",
          '{"op":"count"}',
        ],
        stdout: "piped",
        stderr: "piped",
        env: { SPEARHOST_CACHE_DIR: `${env.dir}/cache` },
      }).output();
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
      assert.equal(JSON.parse(new TextDecoder().decode(o.stdout)).count, expected);
    }
    assert.deepEqual(await env.run("counter", { op: "count" }), {
      op: "count",
      get_rc: 1,
      set_rc: 0,
      count: 7,
    });
  });
});

// ---------------------------------------------------------------- http_request

Deno.test("skills: http_request — GET and POST through the allowlist; truncation retries never repeat the request", async () => {
  await withEnv(async (env) => {
    await env.install("web", PROBE, { http: { allow: [`127.0.0.1:${env.web.port}`] } });
    const o = env.web.origin;
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/text?body=hi`, cap: 64 }), {
      op: "http",
      first_rc: 2,
      first: "hi",
    });
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/echo`, body: '{"a":1}', cap: 64 }), {
      op: "http",
      first_rc: 12,
      first: 'POST {"a":1}',
    });
    const post = env.web.requests.find((r) => r.path === "/echo")!;
    assert.equal(post.contentType, "application/json");
    assert.match(post.userAgent!, /^spearhost-skill\/\S+ \(web\)$/);

    // Truncated: the retry gets the kept body; the server counted one request. Then a full
    // read, and the same call again is a new request.
    assert.deepEqual(
      await env.run("web", { op: "http", url: `${o}/count`, cap: 4, retry: true, again: true }),
      {
        op: "http",
        first_rc: 7,
        first: "coun",
        retry_rc: 7,
        retry: "count=1",
        again_rc: 7,
        again: "count=2",
      },
    );
    assert.equal(env.web.requests.filter((r) => r.path === "/count").length, 2);
  });
});

Deno.test("skills: http_request — not allowed is -EACCES before any connection; loopback needs an explicit entry", async () => {
  await withEnv(async (env) => {
    const o = env.web.origin;
    await env.install("none", PROBE);
    await env.install("star", PROBE, { http: { allow: ["*:*"] } });
    await env.install("other-port", PROBE, { http: { allow: ["127.0.0.1:1"] } });
    await env.install("localhost", PROBE, { http: { allow: [`localhost:${env.web.port}`] } });
    for (const name of ["none", "star", "other-port"]) {
      assert.deepEqual(
        await env.run(name, { op: "http", url: `${o}/text` }),
        { op: "http", first_rc: -13 },
        name,
      );
    }
    assert.equal(env.web.requests.length, 0, "nothing reached the server");
    assert.ok(
      env.logs.some((l) =>
        l.includes("127.0.0.1 is a loopback address, which only an IP or CIDR entry in http.allow allows")
      ),
    );
    assert.ok(
      env.logs.some((l) => /is not allowed \(not in http\.allow\)/.test(l)),
      env.logs.join("\n"),
    );
    assert.deepEqual(
      await env.run("localhost", { op: "http", url: `http://localhost:${env.web.port}/text?body=ok` }),
      { op: "http", first_rc: 2, first: "ok" },
    );
  });
});

Deno.test("skills: http_request — redirects are followed and re-checked; 303 continues as GET", async () => {
  await withEnv(async (env) => {
    const o = env.web.origin;
    const elsewhere = startHttpServer();
    try {
      await env.install("web", PROBE, { http: { allow: [`127.0.0.1:${env.web.port}`] } });
      const to = (url: string, status = 302) =>
        `${o}/redirect?status=${status}&to=${encodeURIComponent(url)}`;
      assert.deepEqual(await env.run("web", { op: "http", url: to("/text?body=followed") }), {
        op: "http",
        first_rc: 8,
        first: "followed",
      });
      // To a server the manifest does not allow: refused at that hop, nothing sent there.
      assert.deepEqual(await env.run("web", { op: "http", url: to(`${elsewhere.origin}/text`) }), {
        op: "http",
        first_rc: -13,
      });
      assert.equal(elsewhere.requests.length, 0);
      // POST + 303 → GET without the body; 307 keeps the method and body.
      assert.deepEqual(await env.run("web", { op: "http", url: to("/echo", 303), body: "data", cap: 64 }), {
        op: "http",
        first_rc: 4,
        first: "GET ",
      });
      assert.deepEqual(await env.run("web", { op: "http", url: to("/echo", 307), body: "data", cap: 64 }), {
        op: "http",
        first_rc: 9,
        first: "POST data",
      });
      // Too many hops: the last redirect is a non-2xx answer.
      assert.deepEqual(await env.run("web", { op: "http", url: `${o}/loop` }), {
        op: "http",
        first_rc: -5,
      });
    } finally {
      await elsewhere.close();
    }
  });
});

Deno.test("skills: http_request — non-2xx and oversized bodies are -EIO, the request limit -ETIMEDOUT, bad URLs -EINVAL", async () => {
  await withEnv(async (env) => {
    const o = env.web.origin;
    await env.install("web", PROBE, {
      http: { allow: [`127.0.0.1:${env.web.port}`], timeout_ms: 300, max_response_bytes: 1000 },
    });
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/status/404` }), {
      op: "http",
      first_rc: -5,
    });
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/status/500` }), {
      op: "http",
      first_rc: -5,
    });
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/big?bytes=1000`, cap: 0 }), {
      op: "http",
      first_rc: 1000,
      first: "",
    });
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/big?bytes=1001` }), {
      op: "http",
      first_rc: -5,
    });
    const t0 = performance.now();
    assert.deepEqual(await env.run("web", { op: "http", url: `${o}/slow?ms=5000` }), {
      op: "http",
      first_rc: -110,
    });
    assert.ok(performance.now() - t0 < 3000, "cut at the request limit");
    assert.deepEqual(await env.run("web", { op: "http", url: "not a url" }), { op: "http", first_rc: -22 });
    assert.deepEqual(await env.run("web", { op: "http", url: "ftp://127.0.0.1/x" }), {
      op: "http",
      first_rc: -22,
    });
    assert.ok(
      env.logs.some((l) => l === `cis.http_request: HTTP status 404 from ${o}/status/404`),
      env.logs.join("\n"),
    );
    assert.ok(
      env.logs.some((l) =>
        /exceeds the host limit of 1000 bytes \(the skill's http\.max_response_bytes\)/.test(l)
      ),
    );
    assert.ok(env.logs.some((l) => /timed out after 300 ms \(the request limit of 300 ms\)/.test(l)));
  });
});

Deno.test("skills: bad pointers are -EFAULT and bad lengths -EINVAL inside a real guest", async () => {
  await withEnv(async (env) => {
    await env.install("probe", PROBE);
    assert.deepEqual(await env.run("probe", { op: "badptr" }), {
      op: "badptr",
      get_key: -14,
      get_value: -14,
      ai_prompt: -14,
      ai_result: -14,
      http_url: -14,
      http_result: -14,
      set_value: -14,
    });
    assert.deepEqual(await env.run("probe", { op: "badlen" }), {
      op: "badlen",
      get_key: -22,
      get_cap: -22,
      get_empty: -22,
      ai_empty: -22,
      http_len: -22,
      key_utf8: -22,
    });
    assert.equal(env.ai.requests.length, 0);
  });
});

// ---------------------------------------------------------------- limits

Deno.test("skills: limits — a spinning skill times out; allocating past the limit fails inside the skill", async () => {
  await withEnv(async (env) => {
    assert.equal(SKILL_DEFAULTS.timeout_ms, 30_000);
    assert.equal(SKILL_DEFAULTS.memory_mb, 512);
    await env.install("spin", PROBE, { limits: { timeout_ms: 300 } });
    assert.deepEqual(await env.run("spin", { op: "spin" }), {
      failure: { kind: "timeout", message: "timeout after 300 ms" },
      exitCode: 124,
    });
    await env.install("small", PROBE, { limits: { memory_mb: 16 } });
    const small = await env.run("small", { op: "alloc", mb: 32 });
    assert.equal(small.failed, true);
    assert.ok((small.allocated_mb as number) < 16, JSON.stringify(small));
    // The default is 512 MB.
    await env.install("default", PROBE);
    const big = await env.run("default", { op: "alloc", mb: 600 });
    assert.equal(big.failed, true);
    assert.ok((big.allocated_mb as number) >= 500 && (big.allocated_mb as number) < 512, JSON.stringify(big));
    // The same with an imported memory, which the host creates capped.
    await env.install("small-imported", PROBE_IMPORTED, { limits: { memory_mb: 16 } });
    const imported = await env.run("small-imported", { op: "alloc", mb: 32 });
    assert.equal(imported.failed, true);
    // A flag overrides the manifest.
    assert.deepEqual(await env.run("small", { op: "spin" }, { timeoutMs: 200 }), {
      failure: { kind: "timeout", message: "timeout after 200 ms" },
      exitCode: 124,
    });
  });
});

// ---------------------------------------------------------------- checks before running

async function refusal(env: Env, name: string): Promise<string> {
  try {
    await runSkill(env.host, name, { input: '{"op":"echo"}' });
  } catch (e) {
    assert.ok(e instanceof SkillError, String(e));
    return `${e.exitCode} ${e.message}`;
  }
  return "ran";
}

Deno.test("skills: a tampered checksum or module is refused before anything runs (exit 3)", async () => {
  await withEnv(async (env) => {
    const path = await env.install("probe", PROBE);
    const manifest = JSON.parse(await Deno.readTextFile(path));
    // The manifest's checksum changed.
    await Deno.writeTextFile(path, JSON.stringify({ ...manifest, sha256: "0".repeat(64) }));
    assert.match(
      await refusal(env, "probe"),
      /^3 checksum mismatch: .*skill_probe\.wasm has sha256 [0-9a-f]{64}, the manifest says 0{64}; refusing to run$/,
    );
    // The module changed under the manifest.
    const copy = `${env.dir}/copy.wasm`;
    const bytes = await Deno.readFile(PROBE);
    await Deno.writeFile(copy, bytes);
    const path2 = await env.install("copied", copy);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(copy, bytes);
    assert.match(await refusal(env, "copied"), /^3 checksum mismatch/);
    assert.equal(path2.endsWith("skill.json"), true);
    assert.deepEqual(env.logs, [], "nothing ran");
  });
});

Deno.test("skills: module checks — not wasm, bad version, invalid, missing execute or alloc (exit 3); bad manifests exit 2", async () => {
  await withEnv(async (env) => {
    const write = async (name: string, bytes: Uint8Array) => {
      const p = `${env.dir}/${name}.wasm`;
      await Deno.writeFile(p, bytes);
      await env.install(name, p);
    };
    await write("text", new TextEncoder().encode("hello"));
    await write("v2", new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]));
    await write(
      "garbage",
      new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x01, 0xff, 0xff, 0x03, 0x60, 0x99]),
    );
    await env.install("no-alloc", `${TEST}/skill_no_alloc.wasm`);
    await env.install("no-execute", `${TEST}/skill_no_execute.wasm`);
    await env.install("command", `${root}/guests/build/hello.wasm`);
    assert.equal(await refusal(env, "text"), "3 not a WebAssembly module (missing \\0asm header)");
    assert.equal(await refusal(env, "v2"), "3 unsupported WebAssembly version 2 (expected 1)");
    assert.match(await refusal(env, "garbage"), /^3 invalid module: \S.*\(at offset 0x[0-9a-f]+\)$/);
    assert.equal(
      await refusal(env, "no-alloc"),
      "3 missing export alloc: a skill exports alloc(size) -> ptr",
    );
    assert.equal(
      await refusal(env, "no-execute"),
      "3 missing export execute: a skill exports execute(input_ptr) -> output_ptr",
    );
    assert.match(await refusal(env, "command"), /^3 missing export execute/);

    const path = await env.install("strict", PROBE);
    await Deno.writeTextFile(
      path,
      JSON.stringify({ ...JSON.parse(await Deno.readTextFile(path)), timeout: 5 }),
    );
    assert.equal(await refusal(env, "strict"), `2 invalid manifest ${path}: timeout: unknown field`);
    assert.match(await refusal(env, "missing"), /^2 no skill "missing" in /);
    await env.install("gone", `${env.dir}/nowhere.wasm`).catch(() => {});
    // The input must be JSON; the output too.
    await assert.rejects(runSkill(env.host, "no-alloc", { input: "{" }), /the input is not JSON/);
    await env.install("probe", PROBE);
    assert.deepEqual(await env.run("probe", { op: "notjson" }), {
      failure: {
        kind: "abi",
        message:
          `the output of execute is not JSON: Unexpected token 'h', "this is not JSON" is not valid JSON`,
      },
      exitCode: 1,
    });
    // A skill may be named by its manifest path or directory too.
    const dir = `${env.config.skills.dir}/probe`;
    for (const ref of [dir, `${dir}/skill.json`]) {
      const r = await runSkill(env.host, ref, { input: '{"op":"echo","x":1}' });
      assert.deepEqual(r.json, { op: "echo", x: 1 });
    }
  });
});

// ---------------------------------------------------------------- the sample skills

Deno.test("skills: samples — summarise fetches a page and asks the AI; counter counts; notes (Rust) remembers", async () => {
  await withEnv(async (env) => {
    await env.install("summarise", `${SKILLS}/summarise.wasm`, {
      http: { allow: [`127.0.0.1:${env.web.port}`] },
    });
    env.ai.enqueue({
      kind: "dynamic",
      reply: (req) => {
        const prompt = (req.body as { messages: { content: string }[] }).messages[0].content;
        assert.match(
          prompt,
          /^Summarise this web page in two or three sentences\.\n\nURL: http:\/\/127\.0\.0\.1:\d+\/html\n\nT Solar power Panels turn sunlight into electricity & store it\.$/,
        );
        return {
          body: {
            choices: [{ index: 0, message: { role: "assistant", content: "A page about solar power." } }],
          },
        };
      },
    });
    assert.deepEqual(await env.run("summarise", { url: `${env.web.origin}/html` }), {
      url: `${env.web.origin}/html`,
      bytes: 189,
      summary: "A page about solar power.",
    });
    assert.deepEqual(await env.run("summarise", { url: "https://example.com/" }), {
      error: "http_request failed",
      rc: -13,
    });

    await env.install("counter", `${SKILLS}/counter.wasm`);
    assert.deepEqual(await env.run("counter", {}), { count: 1 });
    assert.deepEqual(await env.run("counter", { by: 5 }), { count: 6 });
    assert.deepEqual(await env.run("counter", { reset: true }), { count: 1 });

    let notes: string;
    try {
      notes = (await Deno.stat(`${SKILLS}/notes.wasm`)).isFile ? `${SKILLS}/notes.wasm` : "";
    } catch {
      notes = "";
    }
    if (!notes) return; // no wasm32-wasi Rust target on this machine (guests/build.sh said so)
    await env.install("notes", notes, { ai: { backend: "stub" } });
    assert.deepEqual(await env.run("notes", { add: "keys are on the hook" }), {
      notes: ["keys are on the hook"],
      count: 1,
    });
    assert.deepEqual(await env.run("notes", { add: "milk is in the fridge" }), {
      notes: ["keys are on the hook", "milk is in the fridge"],
      count: 2,
    });
    const asked = await env.run("notes", { ask: "where are the keys?" });
    assert.match(
      asked.answer as string,
      /^stub chat completion: Answer the question using only these notes\.\n\nNotes:\n- keys are on the hook\n- milk is in the fridge\n\nQuestion: where are the keys\?$/,
    );
  });
});

Deno.test("skills: cleanup", () => {
  Deno.removeSync(tmp, { recursive: true });
});
