/**
 * What a backend's API key costs a chat reply on the main thread: `Redactor.parseJson` (the
 * secret and its fragments taken out of the body, then the value parsed) beside a bare
 * `JSON.parse` of the same text (the floor), for a short completion and for 23 KB of tool
 * calls. Every reply from a credentialed backend goes through it (families/cchat/backends/openai.ts).
 * Run: deno bench bench/redact_bench.ts (also in `deno task bench`).
 */
import { Redactor } from "../host/net/credentials.ts";

const KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z".repeat(4);
const redactor = new Redactor([KEY]);

const short = JSON.stringify(
  {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "gpt-4o",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "Hello! How can I help you today?\nLine two.", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage: { prompt_tokens: 10, completion_tokens: 9, total_tokens: 19 },
  },
  null,
  2, // as OpenAI sends it
);
const toolCalls = JSON.stringify({
  choices: [{
    message: {
      role: "assistant",
      content: "word ".repeat(4000),
      tool_calls: Array.from({ length: 20 }, (_, i) => ({
        id: `call_${i}`,
        type: "function",
        function: { name: "f", arguments: JSON.stringify({ a: i, b: "x".repeat(50) }) },
      })),
    },
  }],
});

for (const [name, text] of [["short completion", short], ["23 KB of tool calls", toolCalls]] as const) {
  Deno.bench({ name: `JSON.parse (floor), ${name}`, group: name, baseline: true }, () => {
    JSON.parse(text);
  });
  Deno.bench({ name: `Redactor.parseJson with a key, ${name}`, group: name }, () => {
    redactor.parseJson(text);
  });
}
