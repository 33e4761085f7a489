/**
 * cchat end to end: a C guest (tests/guests/chat_probe.c) on real Wasmtime talks through
 * the host's chat driver to a scripted OpenAI-compatible server on loopback.
 */
// deno-lint-ignore-file no-explicit-any -- JSON from the guest is checked field by field
import assert from "node:assert/strict";
import { SpearHost } from "../../../host/host.ts";
import { parseConfig } from "../../../host/config.ts";
import { createDrivers } from "../../../families/registry.ts";
import { type OpenAIServer, startOpenAIServer } from "../../support/openai_server.ts";
import { MAX_CHAT_MESSAGE_BYTES } from "../../../families/cchat/protocol.ts";

const PROBE = new URL("../../../guests/build/test/chat_probe.wasm", import.meta.url).pathname;
const SAMPLES = new URL("../../../guests/build", import.meta.url).pathname;

interface Probe {
  exitCode: number;
  failure?: string;
  values: Map<string, string>;
  logs: string[];
}

function configFor(server: OpenAIServer, extra: Record<string, unknown>[] = []) {
  return parseConfig({
    backends: [{
      name: "mock-openai",
      kind: "openai_chat_completion",
      base_url: server.url,
      api_key_env: "SPEARHOST_TEST_KEY",
      model: "gpt-test",
      ops: ["chat_completions"],
      features: ["supports_tools"],
    }, ...extra],
  });
}

async function runProbe(config = parseConfig({}), args: string[], wasm = PROBE): Promise<Probe> {
  const logs: string[] = [];
  const host = new SpearHost({
    config,
    drivers: await createDrivers(config),
    cacheDir: null,
    logSink: (_g, level, message) => logs.push(`${level} ${message}`),
  });
  const stdoutFile = await Deno.makeTempFile();
  try {
    const result = await host.run(wasm, { args, stdoutFile, timeoutMs: 20000 });
    const values = new Map<string, string>();
    for (const line of (await Deno.readTextFile(stdoutFile)).split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0 && !values.has(line.slice(0, eq))) values.set(line.slice(0, eq), line.slice(eq + 1));
      else if (eq > 0) values.set(`${line.slice(0, eq)}#2`, line.slice(eq + 1));
    }
    return { exitCode: result.exitCode, failure: result.failure?.message, values, logs };
  } finally {
    await host.close();
    await Deno.remove(stdoutFile);
  }
}

function json(probe: Probe, key: string): Record<string, any> {
  const text = probe.values.get(key);
  assert.ok(text !== undefined, `missing ${key} in ${[...probe.values.keys()]}`);
  return JSON.parse(text);
}

Deno.test("cchat: one round trip with forwarded params, _spear annotation, real usage and latency", async () => {
  const server = startOpenAIServer();
  Deno.env.set("SPEARHOST_TEST_KEY", "sk-test-secret-123");
  try {
    const probe = await runProbe(configFor(server), ["basic"]);
    assert.equal(probe.exitCode, 0, probe.failure);
    assert.equal(probe.values.get("set_model"), "0");
    assert.equal(probe.values.get("set_temperature"), "0");
    assert.ok(Number(probe.values.get("resp_fd")) >= 1000);
    const response = json(probe, "response");
    assert.deepEqual(response._spear, { backend: "mock-openai", model: "gpt-test" });
    assert.equal(response.object, "chat.completion");
    assert.deepEqual(json(probe, "response#2"), response, "recv is repeatable");

    assert.equal(server.requests.length, 1);
    const req = server.requests[0];
    assert.equal(req.headers.authorization, "Bearer sk-test-secret-123");
    const body = req.body as Record<string, unknown>;
    assert.equal(body.model, "gpt-test");
    assert.equal(body.temperature, 0.25);
    assert.equal(body.stream, undefined, "stream is never forwarded");
    assert.deepEqual(body.messages, [{ role: "user", content: "Say hello" }]);

    const metrics = json(probe, "metrics");
    assert.equal(metrics.prompt_tokens, response.usage.prompt_tokens);
    assert.equal(metrics.completion_tokens, response.usage.completion_tokens);
    assert.equal(metrics.total_tokens, response.usage.total_tokens);
    assert.ok(metrics.latency_ms > 0 && metrics.latency_ms < 10000);
    assert.equal(metrics.round_trips, 1);
    assert.deepEqual(json(probe, "fd_metrics"), metrics);
    assert.ok(!probe.logs.some((l) => l.includes("sk-test-secret-123")), "the key never reaches a log");
  } finally {
    Deno.env.delete("SPEARHOST_TEST_KEY");
    await server.close();
  }
});

Deno.test("cchat: send is asynchronous; O_NONBLOCK recv gives EAGAIN, epoll reports EPOLLIN on completion", async () => {
  const server = startOpenAIServer();
  server.enqueue({ kind: "echo", delayMs: 400 });
  try {
    const probe = await runProbe(configFor(server), ["nonblock"]);
    assert.equal(probe.exitCode, 0, probe.failure);
    assert.equal(probe.values.get("set_nonblock"), "0");
    assert.equal(probe.values.get("recv_early"), "-11");
    assert.equal(probe.values.get("ep_add"), "0");
    assert.equal(probe.values.get("wait_zero"), "0");
    assert.equal(probe.values.get("wait_n"), "1");
    assert.equal(probe.values.get("wait_events"), "1");
    assert.equal(probe.values.get("recv_small"), "-28");
    assert.ok(Number(probe.values.get("needed")) > 4);
    assert.ok(json(probe, "response").choices);
  } finally {
    await server.close();
  }
});

for (const scenario of ["tools", "tools_epoll"]) {
  Deno.test(`cchat: AUTO_TOOL_CALL runs the guest's tools (${scenario}) and keeps the turns`, async () => {
    const server = startOpenAIServer();
    server.enqueue(
      { kind: "tool_calls", calls: [{ name: "sum", arguments: { a: 7, b: 35 }, id: "call_1" }] },
      {
        kind: "tool_calls",
        calls: [
          { name: "sum", arguments: { a: 1, b: 2 }, id: "call_2" },
          { name: "broken", arguments: {}, id: "call_3" },
          { name: "nope", arguments: {}, id: "call_4" },
        ],
      },
      { kind: "echo" },
      { kind: "echo" },
    );
    try {
      const probe = await runProbe(configFor(server), [scenario, "with_failing"]);
      assert.equal(probe.exitCode, 0, probe.failure);
      if (scenario === "tools_epoll") assert.equal(probe.values.get("wait_n"), "1");
      assert.equal(probe.values.get("tool_runs"), "3");
      assert.ok(json(probe, "response").choices, probe.values.get("response"));
      const third = server.requests[2].body as { messages: Record<string, any>[]; tools: unknown[] };
      assert.equal(third.tools.length, 2);
      const tools = third.messages.filter((m) => m.role === "tool");
      assert.deepEqual(tools.map((m) => m.tool_call_id), ["call_1", "call_2", "call_3", "call_4"]);
      assert.deepEqual(JSON.parse(tools[0].content), { sum: 42 });
      assert.deepEqual(JSON.parse(tools[1].content), { sum: 3 });
      assert.deepEqual(JSON.parse(tools[2].content).error, {
        code: "tool_exec_failed",
        message: "tool rc: -7",
      });
      assert.equal(JSON.parse(tools[3].content).error.code, "unknown_tool");
      const assistant = third.messages.filter((m) => m.role === "assistant");
      assert.equal(assistant.length, 2);
      assert.equal(assistant[0].tool_calls[0].id, "call_1");
      const metrics = json(probe, "metrics");
      assert.equal(metrics.round_trips, 3);
      assert.equal(metrics.tool_calls, 4);
      // The follow-up send carries the whole conversation: tool turns and the final reply.
      const fourth = server.requests[3].body as { messages: Record<string, any>[] };
      assert.equal(fourth.messages.at(-1)!.content, "thanks");
      assert.equal(fourth.messages.at(-2)!.role, "assistant");
      assert.equal(fourth.messages.length, third.messages.length + 2);
    } finally {
      await server.close();
    }
  });
}

Deno.test("cchat: tool loop limits give SPEAR's tool_call_limit errors", async () => {
  const server = startOpenAIServer();
  const loop = { kind: "tool_calls" as const, calls: [{ name: "sum", arguments: { a: 1, b: 1 } }] };
  server.enqueue(loop, loop, loop, { kind: "echo" });
  try {
    const iterations = await runProbe(configFor(server), ["tools", "-", "2", "100"]);
    assert.deepEqual(json(iterations, "response").error, {
      code: "tool_call_limit",
      message: "exceeded max_iterations",
    });
    assert.equal(server.requests.length, 3, "two round trips, then the follow-up send");
  } finally {
    await server.close();
  }
  const server2 = startOpenAIServer();
  server2.enqueue(
    { kind: "tool_calls", calls: [{ name: "sum", arguments: {} }, { name: "sum", arguments: {} }] },
    { kind: "echo" },
  );
  try {
    const calls = await runProbe(configFor(server2), ["tools", "-", "8", "1"]);
    assert.deepEqual(json(calls, "response").error, {
      code: "tool_call_limit",
      message: "exceeded max_total_tool_calls",
    });
    assert.equal(calls.values.get("tool_runs"), "1");
  } finally {
    await server2.close();
  }
});

Deno.test("cchat: closing an in-flight response cancels the HTTP request", async () => {
  const server = startOpenAIServer();
  server.enqueue({ kind: "echo", bodyDelayMs: 3000 });
  try {
    const probe = await runProbe(configFor(server), ["cancel"]);
    assert.equal(probe.exitCode, 0, probe.failure);
    assert.equal(probe.values.get("close"), "0");
    assert.equal(probe.values.get("recv_after_close"), "-9");
    assert.ok(await server.waitCancelled(1, 3000), "the server saw the request go away");
  } finally {
    await server.close();
  }
});

Deno.test("cchat: backend faults become error responses and the guest goes on", async () => {
  const server = startOpenAIServer();
  try {
    server.enqueue({ kind: "echo", delayMs: 2000 });
    const slow = await runProbe(configFor(server), ["timeout"]);
    assert.match(json(slow, "response").error.message, /timeout after 200 ms/);

    server.enqueue({ status: 503, body: { error: { type: "server_error", message: "overloaded" } } });
    const unavailable = await runProbe(configFor(server), ["timeout"]);
    assert.match(json(unavailable, "response").error.message, /upstream status: 503.*overloaded/);

    server.enqueue({ kind: "raw", text: "<html>not json</html>" });
    const garbage = await runProbe(configFor(server), ["timeout"]);
    assert.ok(json(garbage, "response").error.message.length > 0);
  } finally {
    await server.close();
  }
  const down = await runProbe(configFor(server), ["timeout"]); // server closed: connection refused
  assert.equal(down.exitCode, 0);
  assert.ok(json(down, "response").error.message.length > 0);
});

Deno.test("cchat: metrics after a backend error name the backend and model that failed", async () => {
  const server = startOpenAIServer();
  server.enqueue({ status: 500, body: { error: { type: "server_error", message: "boom" } } });
  try {
    const probe = await runProbe(configFor(server), ["basic"]);
    assert.equal(probe.exitCode, 0, probe.failure);
    assert.match(json(probe, "response").error.message, /upstream status: 500.*boom/);
    const metrics = json(probe, "metrics");
    assert.equal(metrics.error, true);
    assert.equal(metrics.backend, "mock-openai");
    assert.equal(metrics.model, "gpt-test");
    assert.equal(metrics.round_trips, 1);
    assert.deepEqual(json(probe, "fd_metrics"), metrics);
  } finally {
    await server.close();
  }
  // No backend was chosen: there is none to name.
  const unrouted = await runProbe(
    parseConfig({
      backends: [{ name: "bound", kind: "stub", model: "only-this", ops: ["chat_completions"] }],
    }),
    ["basic", "other-model"],
  );
  const metrics = json(unrouted, "metrics");
  assert.equal(metrics.error, true);
  assert.equal(metrics.backend, null);
});

Deno.test("cchat: huge messages cross in fragments; past the host limit they are an error response", async () => {
  const server = startOpenAIServer();
  try {
    const big = await runProbe(configFor(server), ["huge", String(6 << 20)]);
    assert.equal(big.exitCode, 0, big.failure);
    assert.equal(big.values.get("write_huge"), "0");
    const sent = (server.requests[0].body as { messages: { content: string }[] }).messages[0].content;
    assert.equal(sent.length, 6 << 20);
    assert.ok(Number(big.values.get("response_bytes")) > 6 << 20, "the echo reply came back whole");

    const tooBig = await runProbe(configFor(server), ["huge", String(33 << 20)]);
    assert.equal(tooBig.exitCode, 0, tooBig.failure);
    assert.match(tooBig.values.get("response_head")!, /exceeds the host limit of 33554432 bytes/);
    assert.equal(server.requests.length, 1, "nothing was sent upstream");
  } finally {
    await server.close();
  }
});

Deno.test("cchat: the README states the host's request/response cap", async () => {
  const readme = await Deno.readTextFile(new URL("../../../README.md", import.meta.url));
  const stated = /Requests and responses are capped at (\d+) MiB/.exec(readme.replace(/\s+/g, " "));
  assert.ok(stated, "README names the cap");
  assert.equal(Number(stated[1]) << 20, MAX_CHAT_MESSAGE_BYTES);
});

Deno.test("cchat: bad input gets errno codes, never a crash", async () => {
  const config = parseConfig({ backends: [{ name: "stub", kind: "stub", ops: ["chat_completions"] }] });
  const probe = await runProbe(config, ["bad"]);
  assert.equal(probe.exitCode, 0, probe.failure);
  const expect: Record<string, string> = {
    malformed: "-22",
    not_object: "-22",
    empty_key: "-22",
    mcp_task: "-13",
    bad_type: "-22",
    unknown_key: "0",
    bad_fn_json: "-22",
    neg_offset: "-22",
    bad_role_ptr: "-14",
    bad_content_len: "-14",
    write_msg_badfd: "-9",
    recv_on_session: "-9",
    metrics_on_session: "-9",
    unknown_cmd: "-22",
    bad_len_ptr: "-14",
    send_badfd: "-9",
    recv_bad_out: "-14",
    close: "0",
    close_again: "0",
    write_after_close: "-9",
  };
  for (const [key, value] of Object.entries(expect)) assert.equal(probe.values.get(key), value, key);
  assert.ok(json(probe, "response").choices, "the stub answers even an empty session, as SPEAR");
});

Deno.test("cchat: many requests in flight from one guest, collected with epoll", async () => {
  const server = startOpenAIServer();
  for (let i = 0; i < 32; i++) server.enqueue({ kind: "echo", delayMs: 200 });
  try {
    const started = performance.now();
    const probe = await runProbe(configFor(server), ["many", "32"]);
    assert.equal(probe.values.get("done"), "32");
    assert.equal(server.requests.length, 32);
    // 32 × 200 ms serially would take 6.4 s; concurrent requests take a fraction of that.
    assert.ok(performance.now() - started < 5000);
  } finally {
    await server.close();
  }
});

Deno.test("cchat: routing — unknown backend name and model mismatch are error responses", async () => {
  const config = parseConfig({
    backends: [{ name: "bound", kind: "stub", model: "only-this", ops: ["chat_completions"] }],
  });
  const probe = await runProbe(config, ["basic", "other-model"]);
  assert.match(json(probe, "response").error.message, /no candidate backend for model="other-model"/);
});

Deno.test("cchat samples: chat_completion, chat_tool_sum and chat_epoll run on the stub backend", async () => {
  const config = parseConfig({
    backends: [{ name: "stub", kind: "stub", ops: ["chat_completions"], features: ["supports_tools"] }],
  });
  const single = await runProbe(config, [], `${SAMPLES}/chat_completion.wasm`);
  assert.equal(single.exitCode, 0);
  assert.ok(single.logs.some((l) => l.includes("stub chat completion: Hi, what is your name?")));
  const tool = await runProbe(config, [], `${SAMPLES}/chat_tool_sum.wasm`);
  assert.equal(tool.exitCode, 0, tool.failure);
  assert.ok(tool.logs.some((l) => l.includes("sum invoked: a=7 b=35 sum=42")));
  assert.ok(tool.logs.some((l) => l.includes("stub chat completion after tool")));
  const many = await runProbe(config, ["5"], `${SAMPLES}/chat_epoll.wasm`);
  assert.equal(many.exitCode, 0);
  assert.ok(many.logs.some((l) => l.includes("all 5 answers received")));
});
