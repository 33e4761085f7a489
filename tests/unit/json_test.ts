/** Guest JSON (runtime/json.ts): invalid UTF-8 or JSON and over-deep nesting are -EINVAL. */
import assert from "node:assert/strict";
import { HostcallError } from "../../runtime/abi.ts";
import { MAX_JSON_DEPTH, parseGuestJson } from "../../runtime/json.ts";

const encoder = new TextEncoder();
const parse = (text: string | Uint8Array) =>
  parseGuestJson(typeof text === "string" ? encoder.encode(text) : text, "TEST");

function einval(text: string | Uint8Array): string {
  try {
    parse(text);
  } catch (e) {
    assert.ok(e instanceof HostcallError);
    assert.equal(e.errno, "EINVAL");
    return e.message;
  }
  assert.fail("expected -EINVAL");
}

Deno.test("guest JSON: valid documents parse, invalid UTF-8 or JSON is -EINVAL", () => {
  assert.deepEqual(parse('{"key":"model","value":[1,{"a":null}]}'), {
    key: "model",
    value: [1, { a: null }],
  });
  assert.match(einval("{"), /TEST: invalid JSON/);
  assert.match(einval(new Uint8Array([0x22, 0xc3, 0x28, 0x22])), /invalid JSON/);
});

Deno.test("guest JSON: nesting up to MAX_JSON_DEPTH parses, deeper is -EINVAL before anything walks it", () => {
  const nested = (depth: number, open = "[", close = "]") => `${open.repeat(depth)}${close.repeat(depth)}`;
  assert.equal(MAX_JSON_DEPTH, 128);
  assert.ok(Array.isArray(parse(nested(MAX_JSON_DEPTH))));
  assert.ok(parse(`{"v":${nested(MAX_JSON_DEPTH - 1)}}`));
  assert.match(einval(nested(MAX_JSON_DEPTH + 1)), /nested deeper than 128 levels/);
  assert.match(einval(`{"v":${nested(MAX_JSON_DEPTH)}}`), /nested deeper/);
  // Deep enough that storing it and sending it later (JSON.stringify) overflowed the stack.
  assert.match(einval(`{"key":"model","value":${nested(100_000)}}`), /nested deeper/);
  // Unclosed nesting counts too.
  assert.match(einval("[".repeat(MAX_JSON_DEPTH + 1)), /nested deeper/);
  // Brackets inside strings, escaped quotes included, are not nesting.
  const inString = `["${'[{\\"'.repeat(200)}"]`;
  assert.equal((parse(inString) as string[])[0].length, 600);
});
