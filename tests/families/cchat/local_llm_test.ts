/**
 * The `local_llm` backend with the real packaged model (Qwen2.5-Coder-0.5B-Instruct, installed by
 * setup): the embedded default end to end, a real tool call, and supervision of the engine
 * child. Replies are short (tiny max_tokens) and greedy (temperature 0), and only behaviour is
 * asserted, never timing: CI is a loaded 2-core machine.
 */
// deno-lint-ignore-file no-explicit-any -- JSON from the guest is checked field by field
import assert from "node:assert/strict";
import { SpearHost } from "../../../host/host.ts";
import { defaultConfig, type HostConfig, parseConfig } from "../../../host/config.ts";
import { createDrivers } from "../../../families/registry.ts";
import { localEngines } from "../../../families/cchat/backends/mod.ts";

import { parseToolCalls, samplingOf, templateMessages } from "../../../families/cchat/local_llm/engine.ts";

const PROBE = new URL("../../../guests/build/test/llm_probe.wasm", import.meta.url).pathname;

interface Probe {
  exitCode: number;
  failure?: string;
  lines: string[];
}

async function probe(
  args: string[],
  config: HostConfig = defaultConfig(),
  during?: (stdout: string) => Promise<void>,
) {
  const host = new SpearHost({
    config,
    drivers: await createDrivers(config),
    cacheDir: null,
    logSink: () => {},
  });
  const stdoutFile = await Deno.makeTempFile();
  try {
    const running = host.run(PROBE, { args, stdoutFile, timeoutMs: 300_000 });
    if (during) await during(stdoutFile);
    const result = await running;
    const lines = (await Deno.readTextFile(stdoutFile)).split("\n").filter((l) => l !== "");
    return { exitCode: result.exitCode, failure: result.failure?.message, lines } as Probe;
  } finally {
    await host.close();
    await Deno.remove(stdoutFile);
  }
}

function responses(p: Probe): Record<string, any>[] {
  return p.lines.filter((l) => l.startsWith("response=")).map((l) => JSON.parse(l.slice("response=".length)));
}

Deno.test({
  name: "local_llm: with no config the packaged model answers, with usage; the engine stops with the host",
  async fn() {
    const engines = localEngines();
    let pid = 0;
    const p = await probe(["chat", "Hi, what is your name?", "12"], defaultConfig(), async () => {
      assert.ok((await engines.engine.ensure()).ok);
      pid = engines.engine.pid!;
    });
    assert.equal(p.exitCode, 0, p.failure);
    assert.ok(pid > 0);
    await assert.rejects(Deno.stat(`/proc/${pid}`), Deno.errors.NotFound, "the engine outlived its host");
    const [r] = responses(p);
    assert.equal(r.object, "chat.completion", JSON.stringify(r));
    assert.deepEqual(r._spear, { backend: "local", model: r.model });
    assert.match(r.model, /qwen2\.5-coder-0\.5b-instruct/);
    const message = r.choices[0].message;
    assert.equal(message.role, "assistant");
    assert.ok(typeof message.content === "string" && message.content.trim().length > 0);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 5);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12, JSON.stringify(r.usage));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  },
});

Deno.test({
  name: "local_llm: the model calls the guest's tool with valid arguments (greedy, Qwen's tool template)",
  async fn() {
    const p = await probe(["tool"]);
    assert.equal(p.exitCode, 0, p.failure);
    assert.ok(p.lines.includes("tool=sum(7,35)"), p.lines.join("\n"));
  },
});

Deno.test({
  name: "local_llm: an engine killed mid-request gives an error response; the next request works",
  async fn() {
    const engines = localEngines();
    const p = await probe(
      ["chat", "Count from 1 to 500, one number per line.", "400", "Say OK.", "4"],
      defaultConfig(),
      async (stdout) => {
        const ready = await engines.engine.ensure();
        assert.ok(ready.ok, JSON.stringify(ready));
        while (!(await Deno.readTextFile(stdout)).includes("sent=")) await delay(50);
        await delay(1500); // into the long generation
        Deno.kill(engines.engine.pid!, "SIGKILL");
      },
    );
    assert.equal(p.exitCode, 0, p.failure);
    const [first, second] = responses(p);
    assert.match(first.error?.message ?? JSON.stringify(first), /local_llm engine failed during the request/);
    assert.ok(second.choices?.[0]?.message?.content !== undefined, JSON.stringify(second));
    assert.equal(engines.engine.starts, 2);
  },
});

Deno.test({
  name: "local_llm: a config with chat backends does not start the engine",
  async fn() {
    const config = parseConfig({ backends: [{ name: "s", kind: "stub", ops: ["chat_completions"] }] });
    const engines = localEngines();
    const p = await probe(["chat", "hello", "4"], config);
    assert.equal(p.exitCode, 0, p.failure);
    assert.equal(responses(p)[0]._spear.backend, "s");
    assert.equal(engines.engine.starts, 0);
  },
});

Deno.test("local_llm engine: tool calls are read back from Qwen's <tool_call> form, cut-off ones kept as text", () => {
  assert.deepEqual(
    parseToolCalls('<tool_call>\n{"name": "sum", "arguments": {"a": 7, "b": 35}}\n</tool_call>', ["sum"]),
    {
      content: null,
      toolCalls: [{ name: "sum", arguments: '{"a":7,"b":35}' }],
    },
  );
  assert.deepEqual(parseToolCalls('Sure.\n<tool_call>\n{"name": "sum", "arguments": {"a": 7, "b"', ["sum"]), {
    content: "Sure.",
    toolCalls: [{ name: "sum", arguments: '{"a": 7, "b"' }],
  });
  // A small model that drops the tags: a whole reply naming a known tool is a call.
  assert.equal(
    parseToolCalls('```json\n{"name": "sum", "arguments": {"a": 1, "b": 2}}\n```', ["sum"]).toolCalls.length,
    1,
  );
  assert.deepEqual(parseToolCalls('{"name": "other", "arguments": {}}', ["sum"]).toolCalls, []);
  assert.deepEqual(parseToolCalls("plain text", ["sum"]), { content: "plain text", toolCalls: [] });
});

Deno.test("local_llm engine: messages and sampling as templates and llama.cpp expect them", () => {
  const [assistant] = templateMessages([{
    role: "assistant",
    content: null,
    tool_calls: [{ id: "c", type: "function", function: { name: "sum", arguments: '{"a":1}' } }],
  }]);
  assert.equal(assistant.content, "");
  assert.deepEqual((assistant.tool_calls as any)[0].function.arguments, { a: 1 });
  assert.deepEqual(samplingOf({ max_tokens: 5, temperature: 0, stop: "x" }), {
    maxTokens: 5,
    temperature: 0,
    topP: 0.8,
    topK: 20,
    stop: ["x"],
  });
  assert.equal(samplingOf({ max_completion_tokens: 3, max_tokens: 9 }).maxTokens, 3);
});

function delay(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
