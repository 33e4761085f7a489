/**
 * The cchat family's worker part (families/cchat/worker.ts) without Wasmtime, over the fake
 * guest (tests/support/fake_guest.ts); the test plays the chat driver by replying to the
 * round-trip requests. Covers what the host budget holds for sessions and responses.
 */
import assert from "node:assert/strict";
import { Errno } from "../../../runtime/abi.ts";
import { CchatSendFlag } from "../../../families/cchat/protocol.ts";
import { type FakeGuest, fakeGuest } from "../../support/fake_guest.ts";

const LEN = 8;
const OUT = 64;
const ROLE = 4096;
const CONTENT = 4160;

/**
 * The driver's reply for a plain assistant message (families/cchat/driver.ts wireReply, toolLoop
 * on): the result, and the guest's response text attached.
 */
function reply(g: FakeGuest, content: string): void {
  const message = { role: "assistant", content };
  const response = JSON.stringify({ choices: [{ message }], _spear: { backend: "stub", model: "m" } });
  g.reply({ ok: true, latencyMs: 1, backend: "stub", model: "m", message }, undefined, response);
}

Deno.test("cchat worker: a turn appended after the session closed is released with its response", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const base = g.rt.budget.used;
  const session = g.call("cchat_create");
  const roleLen = g.write(ROLE, "user");
  const contentLen = g.write(CONTENT, "hello");
  assert.equal(g.call("cchat_write_msg", session, ROLE, roleLen, CONTENT, contentLen), 0);
  // AUTO_TOOL_CALL appends the assistant's turn to the session when the response completes.
  const response = g.call("cchat_send", session, CchatSendFlag.AUTO_TOOL_CALL);
  assert.equal(g.call("cchat_close", session), 0);
  reply(g, "x".repeat(10_000));
  g.view.setUint32(LEN, 65536, true);
  assert.ok(g.call("cchat_recv", response, OUT, LEN) > 10_000);
  assert.equal(g.call("cchat_close", response), 0);
  assert.equal(g.rt.budget.used, base, "the turn appended to the closed session is still charged");
});

Deno.test("cchat worker: a turn appended while the session is open is released with the session", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const base = g.rt.budget.used;
  const session = g.call("cchat_create");
  const response = g.call("cchat_send", session, CchatSendFlag.AUTO_TOOL_CALL);
  reply(g, "hi");
  g.view.setUint32(LEN, 65536, true);
  assert.ok(g.call("cchat_recv", response, OUT, LEN) > 0);
  assert.equal(g.call("cchat_close", response), 0);
  assert.ok(g.rt.budget.used > base, "the session holds the appended turn");
  assert.equal(g.call("cchat_close", session), 0);
  assert.equal(g.rt.budget.used, base);
});

Deno.test("cchat worker: the conversation crosses as the request's attachment, one JSON array, turns included", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const session = g.call("cchat_create");
  const write = (role: string, content: string) =>
    g.call("cchat_write_msg", session, ROLE, g.write(ROLE, role), CONTENT, g.write(CONTENT, content));
  assert.equal(write("system", 'be "brief"'), 0);
  assert.equal(write("user", "ü\u0000\nhi"), 0);
  const response = g.call("cchat_send", session, CchatSendFlag.AUTO_TOOL_CALL);
  const [first] = g.requests();
  assert.equal("messages" in (first.params as object), false, "not inside the params");
  const asked = [{ role: "system", content: 'be "brief"' }, { role: "user", content: "ü\u0000\nhi" }];
  assert.equal(first.attachment, JSON.stringify(asked));
  // The tool loop's turn joins the conversation the next send carries.
  reply(g, "hello");
  g.view.setUint32(LEN, 65536, true);
  assert.ok(g.call("cchat_recv", response, OUT, LEN) > 0);
  g.call("cchat_send", session, 0);
  const [later] = g.requests();
  assert.deepEqual(JSON.parse(later.attachment!), [...asked, { role: "assistant", content: "hello" }]);
});

Deno.test("cchat worker: the guest reads the host's response text as it is; only the tool loop asks for the turn", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const session = g.call("cchat_create");
  const plain = g.call("cchat_send", session, 0);
  const looped = g.call("cchat_send", session, CchatSendFlag.AUTO_TOOL_CALL);
  const [first, second] = g.requests().map((r) => r.params as { toolLoop?: boolean });
  assert.equal(first.toolLoop, undefined, "a plain send does not ask for the assistant's turn");
  assert.equal(second.toolLoop, true);
  // Spacing and key order are the host's: the worker does not parse and re-serialize the body.
  const text =
    '{ "choices": [ {"message": {"role": "assistant", "content": "hi"}} ], "_spear": {"backend": "b", "model": "m"} }';
  g.reply({ ok: true, latencyMs: 1, backend: "b", model: "m" }, undefined, text);
  reply(g, "again");
  g.view.setUint32(LEN, 65536, true);
  const n = g.call("cchat_recv", plain, OUT, LEN);
  assert.equal(new TextDecoder().decode(g.mem.subarray(OUT, OUT + n)), text);
  g.view.setUint32(LEN, 65536, true);
  assert.ok(g.call("cchat_recv", looped, OUT, LEN) > 0);
});

Deno.test("cchat worker: a response too large for the buffer is -ENOSPC with its UTF-8 size; then read whole", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const base = g.rt.budget.used;
  const session = g.call("cchat_create");
  const response = g.call("cchat_send", session, 0);
  const text = JSON.stringify({ choices: [{ message: { role: "assistant", content: "日本語 ✓ 🎤" } }] });
  const size = new TextEncoder().encode(text).length;
  assert.ok(size > text.length, "the text has multi-byte characters");
  g.reply({ ok: true, latencyMs: 1, backend: "b", model: "m" }, undefined, text);
  g.view.setUint32(LEN, size - 1, true);
  assert.equal(g.call("cchat_recv", response, OUT, LEN), -Errno.ENOSPC);
  assert.equal(g.view.getUint32(LEN, true), size, "the size needed, in bytes");
  assert.equal(g.rt.budget.used - base > size, true, "the response is charged while the fd is open");
  assert.equal(g.call("cchat_recv", response, OUT, LEN), size);
  assert.equal(g.text(OUT, size), text);
  assert.equal(g.call("cchat_close", response), 0);
  assert.equal(g.call("cchat_close", session), 0);
  assert.equal(g.rt.budget.used, base, "all of it is released");
});

Deno.test("cchat worker: JSON nested too deep is -EINVAL up front, so a later cchat_send still works", async () => {
  const g = await fakeGuest({ families: ["fd", "cchat"] });
  const session = g.call("cchat_create");
  const deep = `${"[".repeat(50_000)}${"]".repeat(50_000)}`;
  // Before: accepted, stored, and the next cchat_send threw RangeError in JSON.stringify
  // (the binding made that -EIO and left an open response fd the guest never got).
  const param = g.write(OUT, `{"key":"model","value":${deep}}`);
  g.view.setUint32(LEN, param, true);
  assert.equal(g.call("cchat_ctl", session, 1, OUT, LEN), -Errno.EINVAL);
  const tool = g.write(OUT, `{"type":"function","function":{"name":"t","parameters":${deep}}}`);
  assert.equal(g.call("cchat_write_fn", session, 0, OUT, tool), -Errno.EINVAL);
  const response = g.call("cchat_send", session, 0);
  assert.equal(response, session + 1);
  assert.equal(g.requests().length, 1);
  assert.equal(g.rt.fds.openCount, 2);
});
