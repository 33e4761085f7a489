/**
 * The cis worker part on the fake guest (no Wasmtime, the test plays the host): argument
 * checks before any request, the snprintf rule and its retry cache (a kept result is served
 * without a second request, dropped once delivered or when the inputs change, charged to the
 * budget meanwhile), errno mapping of the host's answers, and time bounds.
 */
import assert from "node:assert/strict";
import { type FakeGuest, fakeGuest } from "../../support/fake_guest.ts";
import { Errno, LogLevel } from "../../../runtime/abi.ts";
import { absoluteNow } from "../../../runtime/guest.ts";
import { Op } from "../../../protocol/wire.ts";
import type { SkillContext } from "../../../families/cis/protocol.ts";

const SKILL: SkillContext = {
  name: "probe",
  namespace: "probe",
  maxValueBytes: 1024,
  maxTotalBytes: 1 << 20,
  httpAllow: [],
  httpTimeoutMs: 10_000,
  maxResponseBytes: 1 << 20,
};

const PROMPT = 100, RESULT = 4096, KEY = 200, VALUE = 300, URL_AT = 400, BODY = 600;

async function skillGuest(overrides: Partial<SkillContext> = {}, deadline?: number): Promise<FakeGuest> {
  return await fakeGuest({ families: ["cis"], context: { cis: { ...SKILL, ...overrides } }, deadline });
}

function logs(g: FakeGuest): string[] {
  return g.sent().filter((m) => m.op === Op.LOG && m.fd === LogLevel.WARN).map((m) =>
    new TextDecoder().decode(m.payload)
  );
}

Deno.test("cis worker: without a skill context every host function is -EACCES, with a WARN line", async () => {
  const g = await fakeGuest({ families: ["cis"] });
  const n = g.write(PROMPT, "hi");
  assert.equal(g.call("ai_prompt", PROMPT, n, RESULT, 64), -Errno.EACCES);
  assert.equal(g.call("memory_get", PROMPT, n, RESULT, 64), -Errno.EACCES);
  assert.equal(g.call("memory_set", PROMPT, n, RESULT, 2), -Errno.EACCES);
  assert.equal(g.call("http_request", PROMPT, n, 0, 0, RESULT, 64), -Errno.EACCES);
  const warned = logs(g);
  assert.equal(warned.length, 4);
  assert.match(warned[0], /^cis\.ai_prompt: cis host functions serve skills only/);
});

Deno.test("cis worker: snprintf — the full length returned, what fits written, the rest kept for the retry", async () => {
  const g = await skillGuest();
  const n = g.write(PROMPT, "tell me");
  g.reply({ ok: true, text: "hello world" });
  assert.equal(g.call("ai_prompt", PROMPT, n, RESULT, 4), 11);
  assert.equal(g.text(RESULT, 4), "hell");
  assert.equal(g.mem[RESULT + 4], 0, "nothing past the capacity is written");
  const [first] = g.requests();
  assert.equal(first.method, "cis.ai_prompt");
  assert.deepEqual(first.params, { prompt: "tell me" });
  // The kept result is charged to the guest's budget until it is delivered.
  const held = g.rt.budget.used;
  assert.ok(held >= 11, `budget holds the kept result (${held})`);

  // The retry with room: same length, the whole text, and no second request.
  assert.equal(g.call("ai_prompt", PROMPT, n, RESULT, 64), 11);
  assert.equal(g.text(RESULT, 11), "hello world");
  assert.deepEqual(g.requests(), []);
  assert.equal(g.rt.budget.used, held - 11, "released once delivered");

  // Delivered in full: the next call asks again.
  g.reply({ ok: true, text: "again" });
  assert.equal(g.call("ai_prompt", PROMPT, n, RESULT, 64), 5);
  assert.equal(g.requests().length, 1);

  // A capacity of 0 (and a null buffer) only measures; the retry is served from what was kept.
  g.reply({ ok: true, text: "measured" });
  assert.equal(g.call("ai_prompt", PROMPT, n, 0, 0), 8);
  assert.equal(g.call("ai_prompt", PROMPT, n, RESULT, 8), 8);
  assert.equal(g.text(RESULT, 8), "measured");
  assert.equal(g.requests().length, 1);
});

Deno.test("cis worker: a kept result serves only the same inputs; other inputs drop it and ask", async () => {
  const g = await skillGuest();
  const a = g.write(PROMPT, "question A");
  g.reply({ ok: true, text: "answer to A, long" });
  assert.equal(g.call("ai_prompt", PROMPT, a, RESULT, 2), 17);
  const b = g.write(PROMPT, "question B");
  g.reply({ ok: true, text: "answer B" });
  assert.equal(g.call("ai_prompt", PROMPT, b, RESULT, 64), 8);
  assert.equal(g.text(RESULT, 8), "answer B");
  assert.equal(g.requests().length, 2);
  // A is gone: asking A again is a new request.
  g.write(PROMPT, "question A");
  g.reply({ ok: true, text: "fresh A" });
  assert.equal(g.call("ai_prompt", PROMPT, a, RESULT, 64), 7);
  assert.equal(g.requests().length, 1);

  // http_request keys on the URL and the body together.
  const u = g.write(URL_AT, "http://127.0.0.1:1/x");
  const body = g.write(BODY, "one");
  g.reply({ ok: true, data: new TextEncoder().encode("0123456789").toBase64() });
  assert.equal(g.call("http_request", URL_AT, u, BODY, body, RESULT, 3), 10);
  g.write(BODY, "two");
  g.reply({ ok: true, data: new TextEncoder().encode("other").toBase64() });
  assert.equal(
    g.call("http_request", URL_AT, u, BODY, body, RESULT, 64),
    5,
    "another body is another request",
  );
  const reqs = g.requests();
  assert.equal(reqs.length, 2);
  assert.deepEqual(reqs[0].params, {
    url: "http://127.0.0.1:1/x",
    body: new TextEncoder().encode("one").toBase64(),
  });
  // No body: a GET (no body field).
  g.reply({ ok: true, data: "" });
  assert.equal(g.call("http_request", URL_AT, u, 0, 0, RESULT, 64), 0);
  assert.deepEqual(g.requests()[0].params, { url: "http://127.0.0.1:1/x" });
});

Deno.test("cis worker: memory_set drops what memory_get kept (it may be the old value)", async () => {
  const g = await skillGuest();
  const k = g.write(KEY, "k");
  g.reply({ ok: true, data: new TextEncoder().encode("old value").toBase64() });
  assert.equal(g.call("memory_get", KEY, k, RESULT, 1), 9);
  const v = g.write(VALUE, "new");
  g.reply({ ok: true });
  assert.equal(g.call("memory_set", KEY, k, VALUE, v), 0);
  g.reply({ ok: true, data: new TextEncoder().encode("new").toBase64() });
  assert.equal(g.call("memory_get", KEY, k, RESULT, 64), 3);
  assert.equal(g.text(RESULT, 3), "new");
  const reqs = g.requests();
  assert.deepEqual(reqs.map((r) => r.method), ["cis.memory_get", "cis.memory_set", "cis.memory_get"]);
  assert.deepEqual(reqs[1].params, { key: "k", value: new TextEncoder().encode("new").toBase64() });
});

Deno.test("cis worker: pointers and lengths are checked before any request (EFAULT, EINVAL)", async () => {
  const g = await skillGuest();
  const far = g.mem.length + 10;
  const k = g.write(KEY, "k");
  assert.equal(g.call("memory_get", far, 4, RESULT, 8), -Errno.EFAULT);
  assert.equal(g.call("memory_get", KEY, k, far, 8), -Errno.EFAULT);
  assert.equal(
    g.call("memory_get", KEY, k, g.mem.length - 4, 8),
    -Errno.EFAULT,
    "buffer running past the end",
  );
  assert.equal(g.call("ai_prompt", KEY, k, -8, 8), -Errno.EFAULT);
  assert.equal(g.call("memory_set", KEY, k, far, 4), -Errno.EFAULT);
  assert.equal(g.call("http_request", KEY, k, far, 4, RESULT, 8), -Errno.EFAULT);
  assert.equal(g.call("memory_get", KEY, -1, RESULT, 8), -Errno.EINVAL);
  assert.equal(g.call("memory_get", KEY, k, RESULT, -1), -Errno.EINVAL);
  assert.equal(g.call("memory_get", KEY, 0, RESULT, 8), -Errno.EINVAL, "empty key");
  assert.equal(g.call("ai_prompt", KEY, 0, RESULT, 8), -Errno.EINVAL, "empty prompt");
  assert.equal(g.call("memory_get", KEY, 2000, RESULT, 8), -Errno.EINVAL, "key over 1024 bytes");
  g.mem.set([0xff, 0xfe], KEY);
  assert.equal(g.call("memory_get", KEY, 2, RESULT, 8), -Errno.EINVAL, "key not UTF-8");
  // A value over the skill's cap never crosses: ENOSPC here.
  g.write(KEY, "k");
  assert.equal(g.call("memory_set", KEY, 1, VALUE, 2048), -Errno.ENOSPC);
  assert.deepEqual(g.requests(), [], "no request was made");
  // With a null buffer and capacity 0 the call is valid (it only measures).
  g.reply({ ok: true, data: "" });
  assert.equal(g.call("memory_get", KEY, 1, 0, 0), 0);
});

Deno.test("cis worker: the host's answers map to -errno (ENOENT quietly, the rest with a WARN line)", async () => {
  const g = await skillGuest();
  const k = g.write(KEY, "k");
  g.reply({ ok: false, errno: "ENOENT", message: "no key" });
  assert.equal(g.call("memory_get", KEY, k, RESULT, 8), -Errno.ENOENT);
  g.reply({ ok: false, errno: "ENOSPC", message: "namespace full" });
  assert.equal(g.call("memory_set", KEY, k, VALUE, 1), -Errno.ENOSPC);
  g.reply({ ok: false, errno: "EACCES", message: "not allowed" });
  assert.equal(g.call("http_request", KEY, k, 0, 0, RESULT, 8), -Errno.EACCES);
  g.replyError("driver exploded");
  assert.equal(g.call("ai_prompt", KEY, k, RESULT, 8), -Errno.EIO);
  assert.deepEqual(logs(g), [
    "cis.memory_set: namespace full",
    "cis.http_request: not allowed",
    "cis.ai_prompt: driver exploded",
  ]);
});

Deno.test("cis worker: time bounds — the request limit and the skill's remaining time give -ETIMEDOUT", async () => {
  // The per-request HTTP limit: nobody answers, the call gives up after 50 ms and cancels.
  const g = await skillGuest({ httpTimeoutMs: 50 });
  const u = g.write(URL_AT, "http://127.0.0.1:1/slow");
  const t0 = performance.now();
  assert.equal(g.call("http_request", URL_AT, u, 0, 0, RESULT, 8), -Errno.ETIMEDOUT);
  assert.ok(performance.now() - t0 >= 45);
  const sent = g.sent();
  const request = sent.find((m) => m.op === Op.REQUEST)!;
  assert.equal(
    JSON.parse(new TextDecoder().decode(request.payload)).timeoutMs,
    50,
    "the host gets the bound",
  );
  assert.ok(sent.some((m) => m.op === Op.CANCEL), "the request is cancelled on the host");
  assert.match(
    new TextDecoder().decode(sent.find((m) => m.op === Op.LOG)!.payload),
    /timed out after 50 ms \(the request limit of 50 ms\)/,
  );

  // The skill's remaining time bounds every call; none left: -ETIMEDOUT without a request.
  const late = await skillGuest({}, absoluteNow() - 1);
  const k = late.write(KEY, "k");
  assert.equal(late.call("memory_get", KEY, k, RESULT, 8), -Errno.ETIMEDOUT);
  assert.deepEqual(late.requests(), []);
  const soon = await skillGuest({}, absoluteNow() + 5_000);
  const p = soon.write(PROMPT, "q");
  soon.reply({ ok: true, text: "a" });
  assert.equal(soon.call("ai_prompt", PROMPT, p, RESULT, 8), 1);
  const bound =
    soon.sent().map((m) => m.op === Op.REQUEST ? JSON.parse(new TextDecoder().decode(m.payload)) : null)
      .find((r) => r)!.timeoutMs;
  // Bounded by the remaining time, plus a grace period: the host's stop at the deadline comes first.
  assert.ok(bound > 5_000 && bound <= 6_000, `AI bounded by the remaining time (${bound} ms)`);
});
