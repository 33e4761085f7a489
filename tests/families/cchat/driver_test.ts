/**
 * The cchat family's driver side without a guest (families/cchat/backends/): backend routing
 * (ops, features, explicit names, bound models, weights), the OpenAI-compatible backend over
 * HTTP against the scripted server (tests/support/openai_server.ts) — body and params, auth,
 * key redaction, error texts, timeouts, abort, the net allow-list, permission refusals, usage —
 * and the stub backend, replying as SPEAR's does.
 */
import assert from "node:assert/strict";
import type { BackendConfig, HostConfig } from "../../../host/config.ts";
import { defaultConfig } from "../../../host/config.ts";
import { HostBudget } from "../../../protocol/budget.ts";
import { NetPolicy } from "../../../host/net/policy.ts";
import { selectBackend } from "../../../families/cchat/backends/router.ts";
import {
  chatBody,
  chatCompletionsUrl,
  openaiChatCompletion,
} from "../../../families/cchat/backends/openai.ts";
import { firstTwoIntegers, stubChatCompletion } from "../../../families/cchat/backends/stub.ts";
import {
  chatBackends,
  type ChatRoundTripRequest,
  type ChatRoundTripResult,
  EMBEDDED_LOCAL_LLM,
  requiredFeaturesFor,
  responseJson,
  runChatRoundTrip,
  usesLocalLlm,
} from "../../../families/cchat/backends/mod.ts";
import { bearerOf, type OpenAIServer, startOpenAIServer } from "../../support/openai_server.ts";

// ---------------------------------------------------------------- helpers

function backend(name: string, over: Partial<BackendConfig> = {}): BackendConfig {
  return { name, kind: "stub", ops: ["chat_completions"], features: [], weight: 1, ...over };
}

function openaiBackend(name: string, baseUrl: string, over: Partial<BackendConfig> = {}): BackendConfig {
  return backend(name, { kind: "openai_chat_completion", base_url: baseUrl, ...over });
}

function configWith(...backends: BackendConfig[]): HostConfig {
  return { ...defaultConfig(), backends };
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A round trip's request; `messages` as objects, sent as the JSON text (UTF-8) the worker makes. */
function chatReq(
  over: Partial<Omit<ChatRoundTripRequest, "messages">> & { messages?: unknown[] } = {},
): ChatRoundTripRequest {
  const { messages = [{ role: "user", content: "hello there" }], ...rest } = over;
  return {
    sessionFd: 1000,
    tools: [],
    params: {},
    model: "gpt-test",
    ...rest,
    messages: utf8(JSON.stringify(messages)),
  };
}

function expectError(r: ChatRoundTripResult): { message: string; code?: string } {
  assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r)}`);
  return (r as Extract<ChatRoundTripResult, { ok: false }>).error;
}

function expectOk(r: ChatRoundTripResult): Extract<ChatRoundTripResult, { ok: true }> {
  assert.equal(r.ok, true, `expected success, got ${JSON.stringify(r)}`);
  return r as Extract<ChatRoundTripResult, { ok: true }>;
}

/** Deterministic PRNG (mulberry32) for the weighted-pick tests. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function withServer(fn: (s: OpenAIServer) => Promise<void>) {
  const server = startOpenAIServer();
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

let envCounter = 0;
async function withEnv(value: string | undefined, fn: (name: string) => Promise<void>) {
  const name = `SPEARHOST_TEST_KEY_${Deno.pid}_${++envCounter}`;
  if (value !== undefined) Deno.env.set(name, value);
  try {
    await fn(name);
  } finally {
    Deno.env.delete(name);
  }
}

/** A port with nothing listening on it. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

// ---------------------------------------------------------------- routing (§5.4)

Deno.test("router: only backends serving chat_completions are candidates", () => {
  const asr = backend("asr", { ops: ["speech_to_text"] });
  const chat = backend("chat");
  const r = selectBackend([asr, chat], { model: "", requiredFeatures: [] });
  assert.ok("backend" in r);
  assert.equal(r.backend.name, "chat");
  const none = selectBackend([asr], { model: "", requiredFeatures: [] });
  assert.deepEqual(none, {
    error:
      "no candidate backend: op=ChatCompletions required_features=[] required_transports=[] routing_backend=None allowlist=[] denylist=[] backends=[]",
  });
});

Deno.test("router: required features filter candidates and are explained when missing", () => {
  const plain = backend("plain", { kind: "openai_chat_completion", base_url: "http://x:1" });
  const tooly = backend("tooly", { features: ["supports_tools"] });
  const r = selectBackend([plain, tooly], { model: "", requiredFeatures: ["supports_tools"] });
  assert.ok("backend" in r);
  assert.equal(r.backend.name, "tooly");

  const err = selectBackend([plain], {
    model: "",
    requiredFeatures: ["supports_tools", "supports_json_schema"],
  });
  assert.deepEqual(err, {
    error:
      'no candidate backend: op=ChatCompletions required_features=["supports_tools", "supports_json_schema"] ' +
      "required_transports=[] routing_backend=None allowlist=[] denylist=[] " +
      'backends=["plain(missing_features=[\\"supports_tools\\", \\"supports_json_schema\\"], ' +
      'missing_transports=[], features=[], transports=[\\"http\\"])"]',
  });
});

Deno.test("router: requirements derived from tools and response_format", () => {
  assert.deepEqual(requiredFeaturesFor({ tools: [], params: {} }), []);
  assert.deepEqual(requiredFeaturesFor({ tools: [{ type: "function" }], params: {} }), ["supports_tools"]);
  assert.deepEqual(
    requiredFeaturesFor({ tools: [], params: { response_format: { type: "json_schema", json_schema: {} } } }),
    ["supports_json_schema"],
  );
  assert.deepEqual(
    requiredFeaturesFor({ tools: [], params: { response_format: { type: "json_object" } } }),
    [],
  );
});

Deno.test("router: explicit backend name keeps only that backend", () => {
  const a = backend("a", { weight: 1000 });
  const b = backend("b");
  const r = selectBackend([a, b], { model: "", backend: "b", requiredFeatures: [] }, () => 0);
  assert.ok("backend" in r);
  assert.equal(r.backend.name, "b");
  const err = selectBackend([a, b], { model: "", backend: "zzz", requiredFeatures: [] });
  assert.ok("error" in err);
  assert.match(err.error, /^no candidate backend: op=ChatCompletions .*routing_backend=Some\("zzz"\) /);
  assert.match(err.error, /backends=\["a\(missing_features=\[\], .*"b\(/);
  // An empty backend param means "not set".
  const any = selectBackend([a, b], { model: "", backend: "", requiredFeatures: [] }, () => 0);
  assert.ok("backend" in any);
  assert.equal(any.backend.name, "a");
});

Deno.test("router: bound models filter candidates; SPEAR's error text when none match", () => {
  const mini = backend("mini", { model: "gpt-4o-mini" });
  const big = backend("big", { model: "gpt-4o" });
  const free = backend("free");
  const r = selectBackend([free, mini, big], { model: "gpt-4o", requiredFeatures: [] }, () => 0);
  assert.ok("backend" in r);
  assert.deepEqual([r.backend.name, r.model], ["big", "gpt-4o"]);

  const err = selectBackend([free, mini, big, backend("dup", { model: "gpt-4o" })], {
    model: "llama3",
    requiredFeatures: [],
  });
  assert.deepEqual(err, {
    error: 'no candidate backend for model="llama3": available_models=["gpt-4o", "gpt-4o-mini"]',
  });

  // available_models lists only the candidates left after the feature filter.
  const err2 = selectBackend(
    [mini, backend("t", { model: "tool-model", features: ["supports_tools"] })],
    { model: "x", requiredFeatures: ["supports_tools"] },
  );
  assert.deepEqual(err2, { error: 'no candidate backend for model="x": available_models=["tool-model"]' });

  // No candidate has a bound model: any model is accepted by any candidate.
  const open = selectBackend(
    [free, backend("free2")],
    { model: "whatever", requiredFeatures: [] },
    () => 0.99,
  );
  assert.ok("backend" in open);
  assert.deepEqual([open.backend.name, open.model], ["free2", "whatever"]);
});

Deno.test("router: empty request model takes the chosen backend's bound model", () => {
  const r = selectBackend([backend("m", { model: "gpt-4o-mini" })], { model: "", requiredFeatures: [] });
  assert.ok("backend" in r);
  assert.equal(r.model, "gpt-4o-mini");
  const r2 = selectBackend([backend("m", { model: "gpt-4o-mini" })], { model: "  ", requiredFeatures: [] });
  assert.ok("backend" in r2);
  assert.equal(r2.model, "gpt-4o-mini");
  const r3 = selectBackend([backend("u")], { model: "", requiredFeatures: [] });
  assert.ok("backend" in r3);
  assert.equal(r3.model, "");
});

Deno.test("router: weighted random pick (seeded), weight at least 1", () => {
  const a = backend("a", { weight: 1 });
  const b = backend("b", { weight: 3 });
  const pick = (x: number) => {
    const r = selectBackend([a, b], { model: "", requiredFeatures: [] }, () => x);
    assert.ok("backend" in r);
    return r.backend.name;
  };
  assert.deepEqual([0, 0.2499, 0.25, 0.5, 0.9999].map(pick), ["a", "a", "b", "b", "b"]);

  const rand = seeded(42);
  const counts: Record<string, number> = { a: 0, b: 0 };
  for (let i = 0; i < 4000; i++) {
    const r = selectBackend([a, b], { model: "", requiredFeatures: [] }, rand);
    assert.ok("backend" in r);
    counts[r.backend.name]++;
  }
  assert.ok(counts.a > 850 && counts.a < 1150, `a picked ${counts.a}/4000`);

  // Weight 0 counts as 1.
  const z = backend("z", { weight: 0 });
  const y = backend("y", { weight: 1 });
  const names = [0.1, 0.6].map((x) => {
    const r = selectBackend([z, y], { model: "", requiredFeatures: [] }, () => x);
    assert.ok("backend" in r);
    return r.backend.name;
  });
  assert.deepEqual(names, ["z", "y"]);
});

Deno.test("mod: non-chat kinds are never chosen; without chat backends the local model serves", () => {
  assert.deepEqual(chatBackends(configWith(backend("asr", { kind: "local_asr" }))), [EMBEDDED_LOCAL_LLM]);
  assert.deepEqual(chatBackends(defaultConfig()), [EMBEDDED_LOCAL_LLM]);
  const stub = backend("s");
  assert.deepEqual(chatBackends(configWith(backend("asr", { kind: "local_asr" }), stub)), [stub]);
  assert.equal(usesLocalLlm(configWith(stub)), false);
  assert.equal(usesLocalLlm(defaultConfig()), true);
});

Deno.test("mod: routing errors are SPEAR displays", async () => {
  const cfg = configWith(backend("s"));
  const err = expectError(await runChatRoundTrip(cfg, chatReq({ tools: [{ type: "function" }] })));
  assert.equal(err.code, "no_candidate_backend");
  assert.match(err.message, /^Operation not supported: no candidate backend: op=ChatCompletions /);
  const err2 = expectError(
    await runChatRoundTrip(configWith(backend("s", { model: "m1" })), chatReq({ model: "m2" })),
  );
  assert.equal(
    err2.message,
    'Operation not supported: no candidate backend for model="m2": available_models=["m1"]',
  );
});

// ---------------------------------------------------------------- URL and body (§5.3)

Deno.test("openai: URL joining follows the /v1 rule", () => {
  assert.equal(chatCompletionsUrl("https://api.openai.com/v1"), "https://api.openai.com/v1/chat/completions");
  assert.equal(
    chatCompletionsUrl("https://api.openai.com/v1/"),
    "https://api.openai.com/v1/chat/completions",
  );
  assert.equal(chatCompletionsUrl("http://h:8080"), "http://h:8080/v1/chat/completions");
  assert.equal(chatCompletionsUrl("http://h:8080/"), "http://h:8080/v1/chat/completions");
  assert.equal(chatCompletionsUrl("http://h/api/v1//"), "http://h/api/v1/chat/completions");
  assert.equal(chatCompletionsUrl("http://h/openai"), "http://h/openai/v1/chat/completions");
});

Deno.test("openai: body forwards params but strips structural, mcp.* and streaming keys", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const body = JSON.parse(text(chatBody("m", utf8(JSON.stringify([{ role: "user", content: "hi" }])), [], {
    model: "other",
    messages: [{ role: "user", content: "override" }],
    tools: [{ type: "function" }],
    backend: "b",
    timeout_ms: 5,
    tool_arena_ptr: 1,
    tool_arena_len: 2,
    max_tool_output_bytes: 3,
    max_total_tool_calls: 4,
    max_tool_calls: 5,
    max_iterations: 6,
    "mcp.enabled": true,
    "mcp.server_ids": ["fs"],
    "mcp.whatever": 1,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0.2,
    seed: 7,
  })));
  assert.deepEqual(body, {
    model: "m",
    messages: [{ role: "user", content: "hi" }],
    temperature: 0.2,
    seed: 7,
  });
  // The conversation's text goes in as it is, between the model and the rest, whatever it holds.
  const messages = JSON.stringify([{ role: "user", content: 'a "quoted" \u0000 ü \n' }]);
  assert.equal(
    text(chatBody("m", utf8(messages), [{ type: "function" }], { top_p: 1 })),
    `{"model":"m","messages":${messages},"tools":[{"type":"function"}],"top_p":1}`,
  );
  assert.equal(text(chatBody("m", utf8("[]"), [], {})), '{"model":"m","messages":[]}');
});

Deno.test("openai: request over HTTP — body, tools, params, stream dropped, /v1 and non-/v1 paths", async () => {
  await withServer(async (s) => {
    const tools = [{ type: "function", function: { name: "sum", parameters: { type: "object" } } }];
    const cfg = configWith(
      openaiBackend("v1", s.url, { features: ["supports_tools", "supports_json_schema"] }),
      openaiBackend("root", s.origin + "/"),
    );
    const params = {
      temperature: 0,
      max_tokens: 32,
      stream: true,
      response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } },
      max_iterations: 3,
      "mcp.enabled": false,
      tool_arena_ptr: 4096,
    };
    const r = expectOk(await runChatRoundTrip(cfg, chatReq({ backend: "v1", tools, params })));
    assert.equal(r.backend, "v1");
    assert.equal(s.requests[0].path, "/v1/chat/completions");
    assert.equal(s.requests[0].method, "POST");
    assert.equal(s.requests[0].headers["content-type"], "application/json");
    assert.deepEqual(s.requests[0].body, {
      model: "gpt-test",
      messages: [{ role: "user", content: "hello there" }],
      tools,
      temperature: 0,
      max_tokens: 32,
      response_format: params.response_format,
    });

    expectOk(await runChatRoundTrip(cfg, chatReq({ backend: "root" })));
    assert.equal(s.requests[1].path, "/v1/chat/completions");
    const sent = s.requests[1].body as Record<string, unknown>;
    assert.equal("tools" in sent, false, "no tools key when there are no tools");
    assert.equal("stream" in sent, false);

    // A base URL without /v1 on a server that serves /chat/completions directly.
    const direct = await openaiChatCompletion({
      backend: openaiBackend("d", s.origin + "/v1beta"),
      model: "m",
      messages: utf8(JSON.stringify([{ role: "user", content: "x" }])),
      tools: [],
      params: {},
    });
    assert.equal(direct.ok, false); // /v1beta/chat/completions is not served: 404 …
    assert.equal(s.requests[2].path, "/v1beta/chat/completions"); // … but "/v1" matched, as SPEAR.
  });
});

Deno.test("openai: authorization header only when the key variable is set", async () => {
  await withServer(async (s) => {
    await withEnv("sk-test-abc123", async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      expectOk(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(s.requests.at(-1)!.headers.authorization, "Bearer sk-test-abc123");
    });
    await withEnv(undefined, async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      expectOk(await runChatRoundTrip(cfg, chatReq()));
      assert.equal("authorization" in s.requests.at(-1)!.headers, false);
    });
    await withEnv("   ", async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      expectOk(await runChatRoundTrip(cfg, chatReq()));
      assert.equal("authorization" in s.requests.at(-1)!.headers, false);
    });
    const cfg = configWith(openaiBackend("o", s.url));
    expectOk(await runChatRoundTrip(cfg, chatReq()));
    assert.equal("authorization" in s.requests.at(-1)!.headers, false);
  });
});

Deno.test("openai: the API key never appears in error text", async () => {
  const key = "sk-proj-SECRET-0123456789abcdef";
  await withServer(async (s) => {
    await withEnv(key, async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      s.enqueue({
        status: 401,
        body: {
          error: {
            message:
              `Incorrect API key provided: ${key}. You can find your API key at https://example.invalid.`,
            type: "invalid_request_error",
            code: "invalid_api_key",
          },
        },
      });
      const e1 = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(
        e1.message,
        "Runtime error: upstream status: 401: invalid_request_error: invalid_api_key: " +
          "Incorrect API key provided: ***. You can find your API key at https://example.invalid.",
      );
      s.enqueue({ kind: "raw", text: `not json, but here is your key: ${key}` });
      const e2 = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e2.code, "invalid_response");
      for (const e of [e1, e2]) {
        assert.equal(e.message.includes(key), false, e.message);
        assert.equal(e.message.includes("SECRET"), false, e.message);
      }
    });
  });
});

// ------------------------------------------- credentials (security review: keys echoed upstream)

/** Every 8-character fragment of `key` (the redaction threshold) absent from `text`. */
function assertNoKeyFragment(text: string, key: string, what: string) {
  for (let i = 0; i + 8 <= key.length; i++) {
    const fragment = key.slice(i, i + 8);
    assert.equal(text.includes(fragment), false, `${what}: fragment "${fragment}" leaked in ${text}`);
  }
}

/** Everything a guest can read of a result: the response fd's JSON and the metrics. */
function guestVisible(r: ChatRoundTripResult): string {
  return JSON.stringify(responseJson(r)) + JSON.stringify(r);
}

const ECHO_KEY = "sk-proj-EchoedKey-0123456789abcdefghijklmnopqrstuvwxyz";

Deno.test("openai: a 200 reply echoing the key never reaches the guest (content, usage, model, tool args)", async () => {
  await withServer(async (s) => {
    await withEnv(ECHO_KEY, async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env, model: "bound-model" }));
      const key = ECHO_KEY;
      // The upstream echoes what it received, whole and in pieces, in every field a guest sees.
      s.enqueue({
        kind: "dynamic",
        reply: (req) => {
          const got = bearerOf(req);
          return {
            body: {
              id: "chatcmpl-echo",
              object: "chat.completion",
              model: `model-${got.slice(0, 10)}`,
              choices: [{
                index: 0,
                message: {
                  role: "assistant",
                  content: `you sent ${got}; prefix ${got.slice(0, 10)}; middle ${got.slice(20, 28)}`,
                  tool_calls: [{
                    id: "call_1",
                    type: "function",
                    function: { name: "sum", arguments: JSON.stringify({ a: got, b: got.slice(5, 17) }) },
                  }],
                },
                finish_reason: "tool_calls",
              }],
              usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, note: got.slice(-12) },
              [got]: "a key as a property name",
            },
          };
        },
      });
      const r = expectOk(await runChatRoundTrip(cfg, chatReq({ model: "" })));
      assert.equal(s.requests.at(-1)!.headers.authorization, `Bearer ${key}`, "the key was sent upstream");
      assertNoKeyFragment(guestVisible(r), key, "200 reply");
      const msg = (r.body.choices as { message: { content: string } }[])[0].message;
      assert.equal(msg.content, "you sent ***; prefix ***; middle ***");
      assert.equal(r.body.model, "model-***");
      assert.equal(r.model, "model-***", "_spear.model falls back to the (redacted) response model");
      assert.deepEqual(r.usage, { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, note: "***" });
      const call = (r.body.choices as { message: { tool_calls: { function: { arguments: string } }[] } }[])[0]
        .message.tool_calls[0];
      assert.deepEqual(JSON.parse(call.function.arguments), { a: "***", b: "***" }, "arguments stay JSON");

      // Escaped spellings decode to the key, so they are caught after parsing too.
      const escaped = key.split("").map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(
        "",
      );
      s.enqueue({
        kind: "raw",
        contentType: "application/json",
        text: `{"choices":[],"model":"${escaped}"}`,
      });
      const r2 = expectOk(await runChatRoundTrip(cfg, chatReq({ model: "" })));
      assert.equal(r2.body.model, "***");
      assertNoKeyFragment(guestVisible(r2), key, "\\u-escaped echo");

      // Fragments shorter than 8 characters are ordinary text and stay.
      s.enqueue({ body: { choices: [], model: key.slice(0, 7) } });
      assert.equal(expectOk(await runChatRoundTrip(cfg, chatReq({ model: "" }))).body.model, key.slice(0, 7));
    });
  });
});

Deno.test("openai: a reply after a same-origin 307 that echoes the key is redacted", async () => {
  await withServer(async (s) => {
    await withEnv(ECHO_KEY, async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      s.enqueue(
        { status: 307, body: {}, headers: { location: `${s.origin}/chat/completions` } },
        { kind: "dynamic", reply: (req) => ({ body: { choices: [], echoed: bearerOf(req) } }) },
      );
      const r = expectOk(await runChatRoundTrip(cfg, chatReq()));
      assert.deepEqual(s.requests.map((q) => q.path), ["/v1/chat/completions", "/chat/completions"]);
      assert.equal(s.requests[1].headers.authorization, `Bearer ${ECHO_KEY}`, "same origin keeps the key");
      assert.equal(r.body.echoed, "***");
      assertNoKeyFragment(guestVisible(r), ECHO_KEY, "reply after 307");
    });
  });
});

Deno.test("openai: host error texts never carry a key fragment (parse error, upstream error, redirect)", async () => {
  await withServer(async (s) => {
    await withEnv(ECHO_KEY, async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      // V8 quotes the text around a JSON syntax error: a 10-character prefix sits in the message.
      s.enqueue({
        kind: "dynamic",
        reply: (req) => ({ kind: "raw", text: `{"id": ${bearerOf(req).slice(0, 10)}` }),
      });
      const e1 = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e1.code, "invalid_response");
      assert.match(e1.message, /is not JSON: .*\*\*\*/);
      // Upstream errors that quote a prefix, as OpenAI's "Incorrect API key provided: sk-proj-…" does.
      s.enqueue({
        kind: "dynamic",
        reply: (req) => ({
          status: 401,
          body: {
            error: { message: `Incorrect API key provided: ${bearerOf(req).slice(0, 12)}…`, code: "k" },
          },
        }),
      });
      const e2 = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e2.message, "Runtime error: upstream status: 401: k: Incorrect API key provided: ***…");
      // A redirect whose target host spells a fragment (the error names the target origin).
      s.enqueue({
        status: 307,
        body: {},
        headers: { location: `http://${ECHO_KEY.slice(28, 40)}.example:1/` },
      });
      const e3 = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e3.code, "net_denied");
      for (const [i, e] of [e1, e2, e3].entries()) {
        assertNoKeyFragment(e.message, ECHO_KEY, `error ${i + 1}`);
        assertNoKeyFragment(
          JSON.stringify(responseJson({ ok: false, error: e, latencyMs: 0 })),
          ECHO_KEY,
          "fd",
        );
      }
    });
  });
});

Deno.test("openai: a credentialed request never follows a redirect to another origin", async () => {
  const other = startOpenAIServer();
  try {
    await withServer(async (s) => {
      await withEnv(ECHO_KEY, async (env) => {
        // The other origin is allowed by the network policy: the refusal is about credentials.
        const cfg = { ...configWith(openaiBackend("o", s.url, { api_key_env: env })) };
        cfg.net = { allow: [other.hostPort], listen: [] };
        for (const status of [307, 308]) {
          s.enqueue({ status, body: {}, headers: { location: `${other.url}/chat/completions` } });
          const e = expectError(await runChatRoundTrip(cfg, chatReq()));
          assert.equal(e.code, "net_denied");
          assert.match(
            e.message,
            /refusing to follow a redirect from http:\/\/127\.0\.0\.1:\d+ to another origin/,
          );
          assert.ok(e.message.includes(other.origin), e.message);
        }
        assert.equal(other.requests.length, 0, "the other origin was never contacted");
      });
      // Without a key there is nothing to protect: the hop is followed, after the policy allows it.
      const open = { ...configWith(openaiBackend("o", s.url)), net: { allow: [other.hostPort], listen: [] } };
      s.enqueue({ status: 307, body: {}, headers: { location: `${other.url}/chat/completions` } });
      expectOk(await runChatRoundTrip(open, chatReq()));
      assert.equal(other.requests.length, 1);
      assert.equal("authorization" in other.requests[0].headers, false);
      const closed = configWith(openaiBackend("o", s.url));
      s.enqueue({ status: 307, body: {}, headers: { location: `${other.url}/chat/completions` } });
      const e = expectError(await runChatRoundTrip(closed, chatReq()));
      assert.equal(e.code, "net_denied");
      assert.ok(e.message.includes(other.hostPort), e.message);
      assert.equal(other.requests.length, 1, "a hop the policy refuses is never made");
    });
  } finally {
    await other.close();
  }
});

Deno.test("openai: 4xx/5xx error text as SPEAR", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url));
    s.enqueue(
      {
        status: 429,
        body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
      },
      { status: 400, body: { error: { message: "bad param", type: "invalid_request_error", code: null } } },
      { status: 503, body: { error: { code: 503, message: "overloaded" } } },
      { status: 404, body: { detail: "nope" } },
      { status: 500, kind: "raw", text: "<html>Internal Server Error</html>", contentType: "text/html" },
    );
    const messages: string[] = [];
    for (let i = 0; i < 5; i++) {
      const e = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e.code, "upstream_error");
      messages.push(e.message);
    }
    assert.deepEqual(messages, [
      "Runtime error: upstream status: 429: requests: rate_limit_exceeded: Rate limit reached",
      "Runtime error: upstream status: 400: invalid_request_error: bad param",
      "Runtime error: upstream status: 503: 503: overloaded",
      "Runtime error: upstream status: 404",
      "Runtime error: upstream status: 500",
    ]);
  });
});

Deno.test("openai: invalid JSON from a 200 reply is a clear error", async () => {
  await withServer(async (s) => {
    s.enqueue({ kind: "raw", text: "{ this is not json" });
    const e = expectError(await runChatRoundTrip(configWith(openaiBackend("o", s.url)), chatReq()));
    assert.equal(e.code, "invalid_response");
    assert.match(e.message, /^Runtime error: invalid response: upstream body \(status 200\) is not JSON: /);
  });
});

Deno.test("openai: connection refused is an error result", async () => {
  const port = closedPort();
  const r = await runChatRoundTrip(configWith(openaiBackend("o", `http://127.0.0.1:${port}/v1`)), chatReq());
  const e = expectError(r);
  assert.equal(e.code, "network_error");
  assert.match(e.message, /^Runtime error: network error: /);
  assert.match(e.message, /refused|connect/i);
});

Deno.test("openai: timeout_ms bounds the whole request", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url));
    s.enqueue({ kind: "echo", delayMs: 3000 });
    const t0 = performance.now();
    const r = await runChatRoundTrip(cfg, chatReq({ params: { timeout_ms: 150 } }));
    const took = performance.now() - t0;
    const e = expectError(r);
    assert.deepEqual(e, { message: "Runtime error: timeout after 150 ms", code: "timeout" });
    assert.ok(took >= 140 && took < 2000, `took ${took} ms`);
    assert.ok(r.latencyMs >= 140);
    assert.equal(s.requests[0].body && (s.requests[0].body as Record<string, unknown>).timeout_ms, undefined);

    // The timeout also covers a body that arrives too slowly after the headers.
    s.enqueue({ kind: "echo", bodyDelayMs: 3000 });
    const e3 = expectError(await runChatRoundTrip(cfg, chatReq({ params: { timeout_ms: 100 } })));
    assert.deepEqual(e3, { message: "Runtime error: timeout after 100 ms", code: "timeout" });
    assert.equal(await s.waitCancelled(1, 3000), true, "server saw the client go away");

    // timeoutMs on the request wins over the param.
    s.enqueue({ kind: "echo", delayMs: 3000 });
    const e2 = expectError(
      await runChatRoundTrip(cfg, chatReq({ timeoutMs: 80, params: { timeout_ms: 10000 } })),
    );
    assert.equal(e2.message, "Runtime error: timeout after 80 ms");
  });
});

Deno.test("openai: given a request's context, the timeout aborts the context's own signal", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url));
    const context = () => {
      const ctrl = new AbortController();
      return { ctrl, ctx: { signal: ctrl.signal, abort: (reason: unknown) => ctrl.abort(reason) } };
    };
    s.enqueue({ kind: "echo", delayMs: 3000 });
    const timed = context();
    const e = expectError(await runChatRoundTrip(cfg, chatReq({ params: { timeout_ms: 120 } }), timed.ctx));
    assert.deepEqual(e, { message: "Runtime error: timeout after 120 ms", code: "timeout" });
    assert.equal(timed.ctrl.signal.aborted, true, "no second controller: the timeout aborted this one");

    // Cancelled through the same signal: cancelled, not a timeout.
    s.enqueue({ kind: "echo", delayMs: 3000 });
    const cancelled = context();
    setTimeout(() => cancelled.ctrl.abort(), 100);
    const e2 = expectError(
      await runChatRoundTrip(cfg, chatReq({ params: { timeout_ms: 10_000 } }), cancelled.ctx),
    );
    assert.deepEqual(e2, { message: "Runtime error: request cancelled", code: "cancelled" });

    // Answered in time: the timeout never fires.
    const answered = context();
    expectOk(await runChatRoundTrip(cfg, chatReq({ params: { timeout_ms: 10_000 } }), answered.ctx));
    assert.equal(answered.ctrl.signal.aborted, false);
  });
});

Deno.test("openai: abort signal cancels the request promptly", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url));
    s.enqueue({ kind: "echo", delayMs: 5000 });
    const ctrl = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ctrl.abort(), 100);
    const r = await runChatRoundTrip(cfg, chatReq(), ctrl.signal);
    const took = performance.now() - t0;
    assert.deepEqual(expectError(r), { message: "Runtime error: request cancelled", code: "cancelled" });
    assert.ok(took < 1500, `took ${took} ms`);

    // Abort while the body is still arriving.
    s.enqueue({ kind: "echo", bodyDelayMs: 5000 });
    const ctrl2 = new AbortController();
    setTimeout(() => ctrl2.abort(), 100);
    const t1 = performance.now();
    assert.equal(expectError(await runChatRoundTrip(cfg, chatReq(), ctrl2.signal)).code, "cancelled");
    assert.ok(performance.now() - t1 < 1500);
    assert.equal(await s.waitCancelled(1, 3000), true, "server saw the client go away");

    // Already aborted: no connection at all.
    const before = s.requests.length;
    const r2 = await runChatRoundTrip(cfg, chatReq(), AbortSignal.abort());
    assert.equal(expectError(r2).code, "cancelled");
    assert.equal(s.requests.length, before);
  });
});

Deno.test("openai: hosts outside the allow-list are refused before connecting", async () => {
  await withServer(async (s) => {
    const r = await openaiChatCompletion({
      backend: openaiBackend("o", s.url),
      model: "m",
      messages: utf8(JSON.stringify([{ role: "user", content: "x" }])),
      tools: [],
      params: {},
      policy: NetPolicy.parse(["api.openai.com:443"]),
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.error.code, "net_denied");
    assert.ok(r.error.message.includes(s.hostPort), r.error.message);
    assert.equal(s.requests.length, 0);

    // A redirect to a host that is not allowed is refused too; one within the list is followed.
    await withEnv("sk-redirect", async (env) => {
      const cfg = configWith(openaiBackend("o", s.url, { api_key_env: env }));
      s.enqueue({ status: 307, body: {}, headers: { location: `${s.origin}/chat/completions` } });
      const ok = expectOk(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(ok.body.object, "chat.completion");
      assert.deepEqual(s.requests.slice(-2).map((q) => q.path), [
        "/v1/chat/completions",
        "/chat/completions",
      ]);
      assert.equal(s.requests.at(-1)!.headers.authorization, "Bearer sk-redirect");
      assert.deepEqual(s.requests.at(-1)!.body, s.requests.at(-2)!.body);

      const n = s.requests.length;
      s.enqueue({
        status: 308,
        body: {},
        headers: { location: `http://127.0.0.2:${s.port}/v1/chat/completions` },
      });
      const e = expectError(await runChatRoundTrip(cfg, chatReq()));
      assert.equal(e.code, "net_denied");
      assert.ok(e.message.includes(`127.0.0.2:${s.port}`), e.message);
      assert.equal(s.requests.length, n + 1);
    });
  });
});

Deno.test("openai: a Deno permission refusal becomes an error result, not a crash", async () => {
  await withServer(async (s) => {
    const driver = new URL("../../../families/cchat/backends/openai.ts", import.meta.url).href;
    const script = `
      import { openaiChatCompletion } from ${JSON.stringify(driver)};
      const r = await openaiChatCompletion({
        backend: { name: "o", kind: "openai_chat_completion", base_url: ${JSON.stringify(s.url)},
                   ops: ["chat_completions"], features: [], weight: 1 },
        model: "m", messages: new TextEncoder().encode(JSON.stringify([{ role: "user", content: "x" }])), tools: [], params: {},
      });
      console.log(JSON.stringify(r));
    `;
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    let out: Deno.CommandOutput;
    try {
      await Deno.writeTextFile(file, script);
      out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-prompt",
          `--allow-net=127.0.0.1:${closedPort()}`,
          "--allow-read",
          file,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } finally {
      await Deno.remove(file);
    }
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(r.ok, false);
    assert.equal(r.error.code, "net_denied");
    assert.ok(r.error.message.includes(s.hostPort), r.error.message);
    assert.equal(s.requests.length, 0);
  });
});

Deno.test("openai: usage and latency are returned; _spear model falls back to the response's", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url, { model: "bound-model" }));
    s.enqueue({ kind: "echo", bodyDelayMs: 120 });
    const r = expectOk(await runChatRoundTrip(cfg, chatReq({ model: "" })));
    assert.equal((s.requests[0].body as Record<string, unknown>).model, "bound-model");
    assert.equal(r.model, "bound-model");
    assert.equal(r.backend, "o");
    assert.ok(r.latencyMs >= 110, `latency ${r.latencyMs}`);
    assert.deepEqual(r.usage, r.body.usage);
    assert.equal(typeof r.usage!.prompt_tokens, "number");
    assert.equal(
      r.usage!.total_tokens,
      (r.usage!.prompt_tokens as number) + (r.usage!.completion_tokens as number),
    );
    const choices = r.body.choices as { message: { content: string } }[];
    assert.equal(choices[0].message.content, "echo: hello there");
    const annotated = responseJson(r);
    assert.deepEqual(annotated._spear, { backend: "o", model: "bound-model" });

    // Request model is reported as given; the response's model only when it was empty.
    s.enqueue({ body: { id: "x", model: "served-model", choices: [] } });
    const cfg2 = configWith(openaiBackend("o2", s.url));
    const r2 = expectOk(await runChatRoundTrip(cfg2, chatReq({ model: "asked" })));
    assert.equal(r2.model, "asked");
    assert.equal(r2.usage, undefined);

    // A tool_calls reply comes back verbatim; a non-object body is wrapped as {result}.
    s.enqueue({ kind: "tool_calls", calls: [{ name: "sum", arguments: { a: 1, b: 2 } }] });
    const r3 = expectOk(await runChatRoundTrip(cfg2, chatReq()));
    const msg = (r3.body.choices as { message: Record<string, unknown> }[])[0].message;
    assert.deepEqual(msg.tool_calls, [
      { id: "call_test_1", type: "function", function: { name: "sum", arguments: '{"a":1,"b":2}' } },
    ]);
    s.enqueue({ body: [1, 2] });
    const r4 = expectOk(await runChatRoundTrip(cfg2, chatReq()));
    assert.deepEqual(r4.body, { result: [1, 2] });
    assert.deepEqual(responseJson(r4), { result: [1, 2], _spear: { backend: "o2", model: "gpt-test" } });
  });
});

Deno.test("openai: missing model / missing messages never reach the network", async () => {
  await withServer(async (s) => {
    const cfg = configWith(openaiBackend("o", s.url));
    const e1 = expectError(await runChatRoundTrip(cfg, chatReq({ model: "" })));
    assert.deepEqual(e1, { message: "Runtime error: missing model", code: "invalid_request" });
    const e2 = expectError(await runChatRoundTrip(cfg, chatReq({ messages: [] })));
    assert.deepEqual(e2, { message: "Runtime error: missing messages", code: "invalid_request" });
    assert.deepEqual(responseJson(await runChatRoundTrip(cfg, chatReq({ messages: [] }))), {
      error: { message: "Runtime error: missing messages" },
    });
    assert.equal(s.requests.length, 0);
  });
});

// ---------------------------------------------------------------- stub (§5.8)

Deno.test("stub: integer parsing takes the first two signed integer runs", () => {
  assert.deepEqual(firstTwoIntegers("sum 7 35"), ["7", "35"]);
  assert.deepEqual(firstTwoIntegers("add -7 and +35 then 9"), ["-7", "35"]);
  assert.deepEqual(firstTwoIntegers("a-b 3x4"), ["3", "4"]);
  assert.deepEqual(firstTwoIntegers("12-5"), ["12", "-5"]);
  assert.deepEqual(firstTwoIntegers("007 and 08"), ["7", "8"]);
  assert.deepEqual(firstTwoIntegers("99999999999999999999 1 2"), ["1", "2"]);
  assert.deepEqual(firstTwoIntegers("9223372036854775807 -9223372036854775808"), [
    "9223372036854775807",
    "-9223372036854775808",
  ]);
  assert.equal(firstTwoIntegers("only 1"), undefined);
  assert.equal(firstTwoIntegers("none"), undefined);
});

Deno.test("stub: replies exactly as SPEAR's stub backend", () => {
  const now = 1_700_000_123_456;
  const tools = [{ type: "function", function: { name: "sum", parameters: {} } }];
  const env = { id: "chatcmpl_1007", object: "chat.completion", created: 1_700_000_123, model: "m" };

  assert.deepEqual(
    stubChatCompletion({
      sessionFd: 1007,
      model: "m",
      tools,
      messages: [{ role: "user", content: "sum 7 35" }],
    }, now),
    {
      ...env,
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: null,
          tool_calls: [{
            id: "call_stub_1",
            type: "function",
            function: { name: "sum", arguments: '{"a":7,"b":35}' },
          }],
        },
        finish_reason: "tool_calls",
      }],
    },
  );
  const text = (messages: unknown[], t: unknown[] = tools) => {
    const b = stubChatCompletion({ sessionFd: 1007, model: "m", tools: t, messages }, now);
    const c = (b.choices as { message: { content: unknown }; finish_reason: string }[])[0];
    assert.equal(c.finish_reason, "stop");
    return c.message.content;
  };
  assert.equal(
    text([{ role: "user", content: "sum 7 35" }, { role: "assistant", content: null }, {
      role: "tool",
      content: "42",
      tool_call_id: "call_stub_1",
    }]),
    "stub chat completion after tool",
  );
  assert.equal(text([{ role: "user", content: "sum 7 35" }], []), "stub chat completion: sum 7 35");
  assert.equal(text([{ role: "user", content: "no numbers here" }]), "stub chat completion: no numbers here");
  assert.equal(
    text([{ role: "USER", content: "first" }, { role: "user", content: "" }]),
    "stub chat completion",
  );
  assert.equal(text([]), "stub chat completion");
  assert.equal(text([{ role: "system", content: "1 2" }]), "stub chat completion");
  assert.deepEqual(
    stubChatCompletion(
      { sessionFd: 1, model: "", tools: [], messages: [{ role: "user", content: "hi" }] },
      now,
    ),
    {
      id: "chatcmpl_1",
      object: "chat.completion",
      created: 1_700_000_123,
      model: "",
      choices: [{
        index: 0,
        message: { role: "assistant", content: "stub chat completion: hi" },
        finish_reason: "stop",
      }],
    },
  );

  // Tool without OpenAI function form → name "tool_call"; big integers keep every digit.
  const b = stubChatCompletion({
    sessionFd: 1,
    model: "m",
    tools: [{ name: "bare" }],
    messages: [{ role: "user", content: "9007199254740993 plus -1" }],
  }, now);
  const call = (b.choices as { message: { tool_calls: { function: unknown }[] } }[])[0].message.tool_calls[0];
  assert.deepEqual(call.function, { name: "tool_call", arguments: '{"a":9007199254740993,"b":-1}' });
});

Deno.test("stub: through runChatRoundTrip, with default model and metrics fields", async () => {
  const cfg = configWith(backend("stub", { model: "stub-model", features: ["supports_tools"] }));
  const r = expectOk(await runChatRoundTrip(cfg, chatReq({ sessionFd: 1003, model: "" })));
  assert.equal(r.backend, "stub");
  assert.equal(r.model, "stub-model");
  assert.equal(r.body.id, "chatcmpl_1003");
  assert.equal(r.body.model, "stub-model");
  assert.equal(r.usage, undefined);
  assert.ok(r.latencyMs >= 0);
  const tools = [{ type: "function", function: { name: "add", parameters: {} } }];
  const r2 = expectOk(
    await runChatRoundTrip(
      cfg,
      chatReq({ tools, model: "stub-model", messages: [{ role: "user", content: "add 2 and 40" }] }),
    ),
  );
  const msg = (r2.body.choices as { message: Record<string, unknown> }[])[0].message;
  assert.deepEqual(msg.tool_calls, [
    { id: "call_stub_1", type: "function", function: { name: "add", arguments: '{"a":2,"b":40}' } },
  ]);
  assert.deepEqual(responseJson(r2)._spear, { backend: "stub", model: "stub-model" });
});

Deno.test("openai: the body is charged to the guest's budget while it is read; past it the reply is an error", async () => {
  await withServer(async (server) => {
    const cfg = configWith(openaiBackend("o", server.url));
    const big = "x".repeat(2 << 20);
    const budget = HostBudget.create(1 << 20);
    server.enqueue({ kind: "echo" });
    const err = expectError(
      await runChatRoundTrip(
        cfg,
        chatReq({ messages: [{ role: "user", content: big }] }),
        undefined,
        Math.random,
        budget,
      ),
    );
    assert.match(err.message, /over the guest's host budget/);
    assert.equal(budget.used, 0, "what was charged for the partial body is released");

    const roomy = HostBudget.create(8 << 20);
    server.enqueue({ kind: "echo" });
    const ok = expectOk(
      await runChatRoundTrip(
        cfg,
        chatReq({ messages: [{ role: "user", content: big }] }),
        undefined,
        Math.random,
        roomy,
      ),
    );
    assert.ok(JSON.stringify(ok.body).length > 2 << 20);
    assert.equal(roomy.used, 0);
    assert.ok(roomy.peak > 2 << 20, "the body was charged while it was read");
  });
});

Deno.test("stub: a digit run far longer than an i64 is skipped without parsing it (the main thread stays free)", () => {
  assert.deepEqual(firstTwoIntegers(`${"9".repeat(20_000_000)} then 7 and 35`), ["7", "35"]);
  assert.deepEqual(firstTwoIntegers(`-${"0".repeat(100)}42 and 1`), ["-42", "1"]);
});
