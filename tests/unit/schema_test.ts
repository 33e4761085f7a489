/**
 * The runtime-checked message types (protocol/schema.ts) and the envelopes declared with them
 * (protocol/wire.ts): objects keep exactly their declared fields, optional fields may be
 * absent, every error is a ProtocolError that names the path of the first bad field (nested
 * objects, arrays, tagged unions, the prefix `decode` is given), and bytes that are not JSON
 * fail as a ProtocolError too.
 */
import assert from "node:assert/strict";
import * as s from "../../protocol/schema.ts";
import { NoticeEnvelope, ReplyEnvelope, RequestEnvelope } from "../../protocol/wire.ts";

const encoder = new TextEncoder();

/** Asserts that `check` throws a ProtocolError whose message is exactly `message`. */
function rejects(check: () => unknown, message: string): void {
  assert.throws(check, (e) => {
    assert.ok(e instanceof s.ProtocolError, `expected a ProtocolError, got ${e}`);
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("schema: scalars accept their type and reject the rest, naming the path", () => {
  assert.equal(s.string.check("x", "a"), "x");
  rejects(() => s.string.check(1, "a"), "a: expected a string");
  assert.equal(s.number.check(1.5, "n"), 1.5);
  rejects(() => s.number.check(Infinity, "n"), "n: expected a finite number");
  rejects(() => s.number.check(NaN, "n"), "n: expected a finite number");
  rejects(() => s.number.check("1", "n"), "n: expected a finite number");
  assert.equal(s.int.check(-7, "i"), -7);
  rejects(() => s.int.check(1.5, "i"), "i: expected an integer");
  rejects(() => s.int.check(2 ** 53, "i"), "i: expected an integer");
  assert.equal(s.boolean.check(false, "b"), false);
  rejects(() => s.boolean.check(0, "b"), "b: expected a boolean");
  // The root has no path: the message says "message".
  rejects(() => s.string.check(null, ""), "message: expected a string");
  assert.deepEqual(s.record.check({ k: [1] }, "r"), { k: [1] });
  rejects(() => s.record.check([1], "r"), "r: expected an object");
  rejects(() => s.record.check(null, "r"), "r: expected an object");
  const anything = { deep: [1, { x: null }] };
  assert.equal(s.json.check(anything, "j"), anything, "json is passed through unchecked");
  const Mixed = s.literal<"a" | 2 | true>("a", 2, true);
  assert.equal(Mixed.check(2, "l"), 2);
  rejects(() => Mixed.check("b", "l"), 'l: expected "a" | 2 | true');
  assert.equal(s.nullable(s.int).check(null, "x"), null);
  rejects(() => s.nullable(s.int).check(undefined, "x"), "x: expected an integer");
});

Deno.test("schema: objects drop unknown fields; optional fields may be absent, required ones may not", () => {
  const Point = s.object({ x: s.int, y: s.int, label: s.optional(s.string) });
  const checked = Point.check({ x: 1, y: 2, z: 3, extra: { big: true } }, "");
  assert.deepEqual(checked, { x: 1, y: 2 });
  assert.ok(!("label" in checked), "an absent optional field is not set to undefined");
  assert.ok(!("z" in checked) && !("extra" in checked));
  assert.deepEqual(Point.check({ x: 1, y: 2, label: "p" }, ""), { x: 1, y: 2, label: "p" });
  assert.deepEqual(Point.check({ x: 1, y: 2, label: undefined }, ""), { x: 1, y: 2 });
  rejects(() => Point.check({ x: 1 }, ""), "y: expected an integer");
  rejects(() => Point.check({ x: 1, y: 2, label: 5 }, ""), "label: expected a string");
  rejects(() => Point.check({ x: 1, y: 2, label: null }, ""), "label: expected a string");
  rejects(() => Point.check([1, 2], "pt"), "pt: expected an object");
  rejects(() => Point.check("x", ""), "message: expected an object");
  // A checked value is a new object: changing it does not touch the input.
  const input = { x: 1, y: 2 };
  assert.notEqual(Point.check(input, ""), input);
});

Deno.test("schema: errors name the nested path of the first bad field", () => {
  const Inner = s.object({ c: s.int, tags: s.optional(s.array(s.string)) });
  const Outer = s.object({ a: s.object({ b: s.array(Inner) }) });
  const good = { a: { b: [{ c: 1 }, { c: 2, tags: ["x"] }] } };
  assert.deepEqual(Outer.check(good, ""), good);
  rejects(() => Outer.check({ a: { b: [{ c: 1 }, { c: "2" }] } }, ""), "a.b[1].c: expected an integer");
  rejects(
    () => Outer.check({ a: { b: [{ c: 1, tags: ["x", 3] }] } }, ""),
    "a.b[0].tags[1]: expected a string",
  );
  rejects(() => Outer.check({ a: { b: {} } }, ""), "a.b: expected an array");
  rejects(() => Outer.check({}, ""), "a: expected an object");
  // With a root path (what `decode` is given), every path starts with it.
  rejects(
    () => Outer.check({ a: { b: [{}] } }, "mic.start params"),
    "mic.start params.a.b[0].c: expected an integer",
  );
});

Deno.test("schema: tagged unions choose the variant by the tag field", () => {
  const Event = s.tagged("type", {
    data: s.object({ type: s.literal("data"), bytes: s.int }),
    end: s.object({ type: s.literal("end"), error: s.optional(s.string) }),
  });
  assert.deepEqual(Event.check({ type: "data", bytes: 3, junk: 1 }, "ev"), { type: "data", bytes: 3 });
  assert.deepEqual(Event.check({ type: "end" }, "ev"), { type: "end" });
  rejects(() => Event.check({ type: "data" }, "ev"), "ev.bytes: expected an integer");
  rejects(() => Event.check({ type: "nope" }, "ev"), 'ev.type: expected "data" | "end"');
  rejects(() => Event.check({ type: 1 }, "ev"), 'ev.type: expected "data" | "end"');
  rejects(() => Event.check({}, ""), 'type: expected "data" | "end"');
  rejects(() => Event.check(null, "ev"), 'ev.type: expected "data" | "end"');
  // Inside an object, the tag's path is nested too.
  const Wrapper = s.object({ events: s.array(Event) });
  rejects(
    () => Wrapper.check({ events: [{ type: "end" }, { type: "x" }] }, ""),
    'events[1].type: expected "data" | "end"',
  );
});

Deno.test("schema: field and tag names that Object.prototype also has are read from the value only", () => {
  // A tag naming an inherited property is an unknown variant (a ProtocolError, which the rpc
  // client turns into a failed call), not a TypeError thrown out of the receiving thread.
  const Event = s.tagged("type", { end: s.object({ type: s.literal("end") }) });
  for (const tag of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    rejects(() => Event.check({ type: tag }, "ev"), 'ev.type: expected "end"');
  }
  // An absent optional field is absent even when Object.prototype has a property of that name.
  const Odd = s.object({ constructor: s.optional(s.string), valueOf: s.optional(s.int) });
  assert.deepEqual(Odd.check({}, ""), {});
  assert.deepEqual(Odd.check({ constructor: "c", valueOf: 1 }, ""), { constructor: "c", valueOf: 1 });
  rejects(() => s.object({ toString: s.string }).check({}, "o"), "o.toString: expected a string");
});

Deno.test("schema: decode parses and checks JSON bytes; non-JSON is a ProtocolError naming what", () => {
  const Msg = s.object({ id: s.int, name: s.string });
  assert.deepEqual(s.decode(Msg, encoder.encode('{"id":1,"name":"ü","x":[]}')), { id: 1, name: "ü" });
  rejects(() => s.decode(Msg, encoder.encode("{not json"), "reply"), "reply: not JSON");
  rejects(() => s.decode(Msg, new Uint8Array(0)), "message: not JSON");
  rejects(() => s.decode(Msg, new Uint8Array([0xff, 0xfe, 0x00])), "message: not JSON");
  rejects(
    () => s.decode(Msg, encoder.encode('{"id":1.5,"name":"a"}'), "reply"),
    "reply.id: expected an integer",
  );
  rejects(() => s.decode(Msg, encoder.encode("[1]"), "reply"), "reply: expected an object");
  // encode is JSON of the value; it decodes back to the same value.
  const value = { id: 7, name: "a\nb\u0000c" };
  assert.deepEqual(s.decode(Msg, s.encode(Msg, value)), value);
});

Deno.test("schema: the wire envelopes — required ids, optional fields, unknown fields dropped", () => {
  const request = { id: 3, method: "mic.start", params: { a: [1] }, timeoutMs: 50, sneaky: true };
  assert.deepEqual(s.decode(RequestEnvelope, s.encode(RequestEnvelope, request as RequestEnvelope)), {
    id: 3,
    method: "mic.start",
    params: { a: [1] },
    timeoutMs: 50,
  });
  rejects(
    () => RequestEnvelope.check({ method: "m", params: null }, "request"),
    "request.id: expected an integer",
  );
  assert.deepEqual(ReplyEnvelope.check({ id: 1, ok: true }, "reply"), { id: 1, ok: true });
  rejects(
    () => ReplyEnvelope.check({ id: 1, ok: false, error: 5 }, "reply"),
    "reply.error: expected a string",
  );
  assert.deepEqual(NoticeEnvelope.check({ family: "f", type: "t", info: null }, "notice"), {
    family: "f",
    type: "t",
    info: null,
  });
  rejects(
    () => NoticeEnvelope.check({ family: "f", type: "t", stream: 1.5, info: 1 }, "notice"),
    "notice.stream: expected an integer",
  );
});
