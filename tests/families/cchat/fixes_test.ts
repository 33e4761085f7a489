/**
 * Two defects SPEAR has and spearhost fixes (issue 12), through the sample guests on real
 * Wasmtime against a scripted OpenAI-compatible server:
 * - a tool call whose arguments are not a JSON object (cut off by the token limit) is never run;
 * - a request's timeout ends before the run's, so the guest gets its own timeout error.
 */
import assert from "node:assert/strict";
import { SpearHost } from "../../../host/host.ts";
import { parseConfig } from "../../../host/config.ts";
import { createDrivers } from "../../../families/registry.ts";
import { startOpenAIServer } from "../../support/openai_server.ts";
import { requestTimeout, toolArguments } from "../../../families/cchat/worker.ts";

const SAMPLES = new URL("../../../guests/build", import.meta.url).pathname;

async function run(url: string, wasm: string, timeoutMs: number) {
  const config = parseConfig({
    backends: [{
      name: "scripted",
      kind: "openai_chat_completion",
      base_url: url,
      ops: ["chat_completions"],
      features: ["supports_tools"],
    }],
  });
  const logs: string[] = [];
  const host = new SpearHost({
    config,
    drivers: await createDrivers(config),
    cacheDir: null,
    logSink: (_g, _level, message) => logs.push(message),
  });
  try {
    const result = await host.run(`${SAMPLES}/${wasm}`, { timeoutMs });
    return { exitCode: result.exitCode, failure: result.failure?.message, logs };
  } finally {
    await host.close();
  }
}

function cutOffToolCall(args: string) {
  return {
    id: "chatcmpl-cut",
    object: "chat.completion",
    created: 0,
    model: "gpt-test",
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "sum", arguments: args } }],
      },
      finish_reason: "length",
    }],
    usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 },
  };
}

Deno.test("fix: a tool call with arguments cut off by the token limit is not run; the response is an error", async () => {
  const server = startOpenAIServer();
  server.enqueue({ kind: "json", body: cutOffToolCall('{"a": 7, "b"') });
  try {
    const r = await run(server.url, "chat_tool_sum.wasm", 20_000);
    assert.equal(r.exitCode, 0, r.failure);
    assert.ok(!r.logs.some((l) => l.startsWith("sum invoked")), `the tool ran: ${r.logs.join("\n")}`);
    const line = r.logs.find((l) => l.startsWith("chat response"))!;
    const response = JSON.parse(line.slice(line.indexOf("\n") + 1));
    assert.equal(response.error.code, "invalid_tool_arguments");
    assert.match(
      response.error.message,
      /"sum" with arguments that are not a JSON object.*finish_reason "length"/,
    );
    // Nothing went back upstream: exactly the one request.
    assert.equal(server.requests.length, 1);
  } finally {
    await server.close();
  }
});

Deno.test("fix: tool arguments must be a JSON object", () => {
  assert.deepEqual(toolArguments('{"a":1}'), { a: 1 });
  assert.deepEqual(toolArguments("{}"), {});
  assert.equal(toolArguments(""), undefined, "cut off before the arguments began");
  assert.equal(toolArguments("{"), undefined);
  assert.equal(toolArguments('{"a": 7, "b"'), undefined);
  assert.equal(toolArguments("[1,2]"), undefined);
  assert.equal(toolArguments("null"), undefined);
});

Deno.test("fix: a request's timeout fires before the run's; the guest reports it and exits 0", async () => {
  const server = startOpenAIServer();
  // The sample asks for timeout_ms 30000; the run has 8000 ms; the server answers after 20 s.
  server.enqueue({ kind: "echo", delayMs: 20_000 });
  try {
    const r = await run(server.url, "chat_completion.wasm", 8000);
    assert.equal(r.exitCode, 0, `the run ended first: ${r.failure}`);
    const line = r.logs.find((l) => l.startsWith("response_json="))!;
    const response = JSON.parse(line.slice("response_json=".length));
    assert.match(
      response.error.message,
      /^Runtime error: timeout after \d+ ms \(cut to \d+ ms so that it ends before/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("fix: request timeouts are cut a margin before the run's deadline", () => {
  assert.deepEqual(requestTimeout(30000, Infinity), { timeoutMs: 30000, capped: false });
  assert.deepEqual(requestTimeout(undefined, Infinity), { timeoutMs: undefined, capped: false });
  assert.deepEqual(requestTimeout(30000, 30000), { timeoutMs: 29000, capped: true });
  assert.deepEqual(requestTimeout(5000, 30000), { timeoutMs: 5000, capped: false });
  assert.deepEqual(requestTimeout(undefined, 30000), { timeoutMs: 29000, capped: true });
  assert.deepEqual(requestTimeout(30000, 500), { timeoutMs: 450, capped: true });
  assert.deepEqual(requestTimeout(30000, 0), { timeoutMs: 1, capped: true });
});
