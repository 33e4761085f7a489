/** How guest-controlled log text is printed: escapeLogText and the default stderr sink. */
import assert from "node:assert/strict";
import { escapeLogText } from "../../host/log.ts";

Deno.test("log: escapeLogText keeps printable text, including non-ASCII and backslashes", () => {
  for (
    const text of [
      "",
      "hello spear wasm",
      "naïve — 日本語 😀",
      'json {"a":"b\\n"}',
      "C:\\path",
      "~ \u00a0 \u00ff",
    ]
  ) {
    assert.equal(escapeLogText(text), text);
  }
});

Deno.test("log: escapeLogText makes line breaks and terminal controls visible", () => {
  const cases: [string, string][] = [
    ["a\nb", "a\\nb"],
    ["a\r\nb", "a\\r\\nb"],
    ["col\tcol", "col\\tcol"],
    ["\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"],
    ["bell\x07", "bell\\x07"],
    ["\0nul", "\\x00nul"],
    ["\x08\x0b\x0c\x1f", "\\x08\\x0b\\x0c\\x1f"],
    ["del\x7f", "del\\x7f"],
    ["csi\u009b31m", "csi\\u009b31m"],
    ["nel\u0085 \u0080 \u009f", "nel\\u0085 \\u0080 \\u009f"],
    ["ls\u2028ps\u2029", "ls\\u2028ps\\u2029"],
    [
      "a\nspear: x.wasm: timeout after 5 ms\x1b[31m\x07",
      "a\\nspear: x.wasm: timeout after 5 ms\\x1b[31m\\x07",
    ],
  ];
  for (const [raw, shown] of cases) assert.equal(escapeLogText(raw), shown, JSON.stringify(raw));
  // Nothing that a terminal acts on is left.
  let all = "";
  for (let c = 0; c < 0xa0; c++) all += String.fromCharCode(c);
  // deno-lint-ignore no-control-regex -- looking for control characters is the point
  assert.doesNotMatch(escapeLogText(all), /[\x00-\x1f\x7f-\x9f]/);
});
