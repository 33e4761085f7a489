/**
 * The one request/reply mechanism (protocol/rpc.ts), through real channels:
 *   - in one thread: an RpcClient and an RpcServer on the two channels of a Link, the test
 *     moving messages between them (round trip, error replies, cancel and late replies,
 *     deadlines, maxBytes, close, the reply budget, replies that cannot be encoded);
 *   - through GuestRuntime: blocking `call` answered by pre-queued replies or by an RpcServer
 *     on another Worker (tests/support/rpc_worker.ts) while this thread waits in Atomics.wait;
 *     asynchronous `start` whose onDone runs at `poll()`; closing an fd cancels its calls.
 */
import assert from "node:assert/strict";
import { Link, type Message } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import {
  type CallContext,
  EncodedResult,
  handle,
  type Handler,
  method,
  type Outcome,
  RpcClient,
  RpcServer,
  timeoutMessage,
} from "../../protocol/rpc.ts";
import * as s from "../../protocol/schema.ts";
import { CancelEnvelope, Op, ReplyEnvelope } from "../../protocol/wire.ts";
import { GuestRuntime } from "../../runtime/guest.ts";
import { fakeGuest } from "../support/fake_guest.ts";
import { ABORTED, echo, hold, HOLDING, type RpcWorkerInit, STOP } from "../support/rpc_worker.ts";
import { within } from "../support/within.ts";

const encoder = new TextEncoder();

const add = method("t.add", s.object({ a: s.int, b: s.int }), s.int);
const wait = method("t.wait", s.object({ tag: s.optional(s.string) }), s.string);
const big = method("t.big", s.object({ n: s.int }), s.string);
const nope = method("t.nope", s.object({}), s.json);

interface TestContext {
  who: string;
}

/** A handler that waits for its signal; `aborted` settles when it does. */
function waiter() {
  const seen: { params: unknown; fd: number; aborted: boolean }[] = [];
  let aborted!: () => void;
  const abort = new Promise<void>((r) => aborted = r);
  const handler = handle<{ tag?: string }, string, TestContext>(wait, (params, ctx) => {
    const entry = { params, fd: ctx.fd, aborted: false };
    seen.push(entry);
    return new Promise((resolve) => {
      ctx.signal.addEventListener("abort", () => {
        entry.aborted = ctx.signal.aborted;
        aborted();
        resolve("late"); // the server must not send this
      }, { once: true });
    });
  });
  return { handler, seen, abort };
}

/** Client and server on one Link in this thread; `toServer`/`toClient` move what is queued. */
function rpcPair(handlers: Handler<TestContext>[], budgetBytes = 1 << 20) {
  const link = Link.create(1 << 16);
  const budget = HostBudget.create(budgetBytes);
  const client = new RpcClient((op, fd, payload) => link.toHost.send(op, fd, payload));
  const server = new RpcServer<TestContext>(
    (op, fd, payload) => link.toGuest.send(op, fd, payload),
    new Map(handlers.map((h) => [h.method.name, h])),
    { who: "test" },
    budget,
  );
  const toHost: Message[] = [];
  const replies: Message[] = [];
  return {
    link,
    budget,
    client,
    server,
    toHost,
    replies,
    /** Delivers the client's messages to the server (and records them). */
    toServer() {
      link.toHost.receive((m) => {
        toHost.push(m);
        if (m.op === Op.REQUEST) server.receiveRequest(m.fd, m.payload);
        else if (m.op === Op.CANCEL) server.receiveCancel(m.payload);
      });
    },
    /** Delivers the server's replies to the client, releasing their charge as the worker does. */
    toClient() {
      link.toGuest.receive((m) => {
        replies.push(m);
        budget.release(m.payload.length);
        client.receive(m.payload);
      });
    },
  };
}

/** Lets handlers (promise jobs) and due timers run. */
const settle = (ms = 0) => new Promise((r) => setTimeout(r, ms));

Deno.test("rpc: text attached to a result arrives beside it, unescaped and whole, also past the ring's size", async () => {
  const doc = method("test.doc", s.object({ n: s.int }), s.object({ kind: s.string }));
  const p = rpcPair([handle(doc, ({ n }) => {
    const text = `{"quote":"\\"ü\\"","pad":"${"x".repeat(n)}"}`;
    return new EncodedResult(JSON.stringify({ kind: "doc" }), text);
  })], 1 << 22);
  for (const n of [0, 100, 200_000]) {
    const outcomes: Outcome<{ kind: string }>[] = [];
    p.client.start(doc, { n }, { onDone: (o) => outcomes.push(o) });
    p.toServer();
    await settle();
    for (let i = 0; i < 100 && outcomes.length === 0; i++) {
      p.toClient();
      p.link.toGuest.flush();
    }
    const [o] = outcomes;
    assert.ok(o?.ok, `n=${n}: ${JSON.stringify(o)?.slice(0, 200)}`);
    assert.deepEqual(o.value, { kind: "doc" });
    assert.equal(o.attachment, `{"quote":"\\"ü\\"","pad":"${"x".repeat(n)}"}`);
    assert.equal(p.budget.used, 0, "the reply's charge, attachment included, is released");
  }
  // A reply without one has none.
  const plain: Outcome<number>[] = [];
  const q = rpcPair([handle(add, ({ a, b }) => a + b)]);
  q.client.start(add, { a: 1, b: 2 }, { onDone: (o) => plain.push(o) });
  q.toServer();
  await settle();
  q.toClient();
  assert.deepEqual(plain, [{ ok: true, value: 3 }]);
});

Deno.test("rpc: text attached to a request reaches the handler whole, NUL bytes and all; maxBytes counts it", async () => {
  const echo = method("test.echo", s.object({ n: s.int }), s.object({ length: s.int }));
  const seen: (string | undefined)[] = [];
  const p = rpcPair([handle<{ n: number }, { length: number }, TestContext>(echo, (_params, ctx) => {
    const text = ctx.attachment && new TextDecoder().decode(ctx.attachment); // the handler gets bytes
    seen.push(text);
    return { length: text?.length ?? -1 };
  })], 1 << 22);
  const texts = ["", "a\0b\0", `[{"role":"user","content":"ü ${"x".repeat(200_000)}"}]`];
  for (const text of [...texts, undefined]) {
    const outcomes: Outcome<{ length: number }>[] = [];
    p.client.start(echo, { n: 1 }, { attachment: text, onDone: (o) => outcomes.push(o) });
    for (let i = 0; i < 100 && outcomes.length === 0; i++) {
      p.toServer();
      p.link.toHost.flush();
      await settle();
      p.toClient();
    }
    assert.deepEqual(outcomes, [{ ok: true, value: { length: text?.length ?? -1 } }]);
  }
  assert.deepEqual(seen, [...texts, undefined]);
  // The limit is on the whole request: a small envelope with a large attachment is refused.
  const refused: Outcome<{ length: number }>[] = [];
  p.client.start(echo, { n: 1 }, {
    attachment: "x".repeat(1000),
    maxBytes: 500,
    onDone: (o) => refused.push(o),
  });
  assert.equal(refused.length, 1);
  assert.ok(
    !refused[0].ok && /exceeds the host limit of 500 bytes/.test(refused[0].error),
    JSON.stringify(refused),
  );
});

Deno.test("rpc: a request and its reply round-trip through a Link; the handler sees params, fd and context", async () => {
  const ctxSeen: (CallContext & TestContext)[] = [];
  const p = rpcPair([handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }, ctx) => {
    ctxSeen.push(ctx);
    return a + b;
  })]);
  const outcomes: Outcome<number>[] = [];
  const call = p.client.start(add, { a: 2, b: 40 }, { fd: 1007, onDone: (o) => outcomes.push(o) });
  assert.equal(call.done, false);
  assert.equal(p.client.outstanding, 1);
  p.toServer();
  assert.deepEqual(p.toHost.map((m) => [m.op, m.fd]), [[Op.REQUEST, 1007]]);
  await settle();
  assert.equal(p.server.active, 0);
  p.toClient();
  assert.deepEqual(outcomes, [{ ok: true, value: 42 }]);
  assert.deepEqual(call.outcome, { ok: true, value: 42 });
  assert.equal(p.client.outstanding, 0);
  assert.deepEqual(ctxSeen.map((c) => [c.fd, c.who, c.signal.aborted]), [[1007, "test", false]]);
  // Two calls in flight get their own replies, matched by id.
  const a = p.client.start(add, { a: 1, b: 1 });
  const b = p.client.start(add, { a: 5, b: -9 });
  p.toServer();
  await settle();
  p.toClient();
  assert.deepEqual([a.outcome, b.outcome], [{ ok: true, value: 2 }, { ok: true, value: -4 }]);
  assert.equal(p.client.lateReplies, 0);
});

Deno.test("rpc: a handler's abort aborts its own signal with the reason; its reply still goes", async () => {
  const reasons: unknown[] = [];
  const p = rpcPair([handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }, ctx) => {
    ctx.abort("own deadline");
    reasons.push(ctx.signal.aborted ? ctx.signal.reason : "not aborted");
    return a + b;
  })]);
  const call = p.client.start(add, { a: 1, b: 2 });
  p.toServer();
  await settle();
  p.toClient();
  assert.deepEqual(reasons, ["own deadline"]);
  assert.deepEqual(call.outcome, { ok: true, value: 3 });
  assert.equal(p.server.active, 0);
});

Deno.test("rpc: unknown methods, invalid params, failing handlers and invalid results give error replies", async () => {
  const p = rpcPair([
    handle<{ a: number; b: number }, number, TestContext>(add, ({ a }) => {
      if (a < 0) throw new Error("negative");
      if (a === 99) return "ninety-nine" as unknown as number; // a driver bug: the wrong type
      return a;
    }),
  ]);
  const calls = [
    p.client.start(nope, {}),
    p.client.start(add, { a: "x", b: 1 } as unknown as { a: number; b: number }),
    p.client.start(add, { a: -1, b: 0 }),
    p.client.start(add, { a: 99, b: 0 }),
  ];
  p.toServer();
  await settle();
  p.toClient();
  assert.deepEqual(calls.map((c) => c.outcome), [
    { ok: false, error: "no host method t.nope" },
    { ok: false, error: "t.add params.a: expected an integer" },
    { ok: false, error: "negative" },
    { ok: false, error: "invalid reply from the host: t.add result: expected an integer" },
  ]);
  assert.equal(p.server.active, 0);
  // A request without an id cannot be answered: nothing comes back, nothing stays in flight.
  p.link.toHost.send(Op.REQUEST, 0, encoder.encode('{"method":"t.add","params":{}}'));
  p.link.toHost.send(Op.REQUEST, 0, encoder.encode("not json"));
  p.toServer();
  await settle();
  assert.equal(p.link.toGuest.used, 0);
  assert.equal(p.server.active, 0);
  // A failed reply without an error text still fails the call.
  const c = p.client.start(add, { a: 1, b: 1 });
  p.client.receive(s.encode(ReplyEnvelope, { id: c.id, ok: false }));
  assert.deepEqual(c.outcome, { ok: false, error: "host request failed" });
});

Deno.test("rpc: cancel sends CANCEL; the handler's signal aborts; its late reply is not sent", async () => {
  const w = waiter();
  const p = rpcPair([w.handler]);
  let onDone = 0;
  const call = p.client.start(wait, { tag: "a" }, { fd: 1003, onDone: () => onDone++ });
  p.toServer();
  await settle();
  assert.equal(p.server.active, 1);
  assert.deepEqual(w.seen.map((e) => [e.params, e.fd]), [[{ tag: "a" }, 1003]]);
  p.client.cancel(call, "no longer wanted");
  assert.deepEqual(call.outcome, { ok: false, error: "no longer wanted", cancelled: true });
  assert.equal(p.client.outstanding, 0);
  p.client.cancel(call); // a second cancel sends nothing more
  p.toServer();
  const cancels = p.toHost.filter((m) => m.op === Op.CANCEL);
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0].fd, 1003);
  assert.deepEqual(s.decode(CancelEnvelope, cancels[0].payload), { id: call.id });
  await within(w.abort, "the handler's abort");
  await settle();
  assert.equal(w.seen[0].aborted, true);
  assert.equal(p.server.active, 0);
  assert.equal(p.link.toGuest.used, 0, "the handler's value after the abort is not sent");
  assert.equal(p.budget.used, 0);
  assert.equal(onDone, 0, "onDone does not run for a cancelled call");
});

Deno.test("rpc: a reply that crosses a cancel is dropped by the client and counted in lateReplies", async () => {
  const p = rpcPair([handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }) => a + b)]);
  let onDone = 0;
  const call = p.client.start(add, { a: 1, b: 2 }, { onDone: () => onDone++ });
  p.toServer();
  await settle(); // the server has replied; the reply is on its way
  p.client.cancel(call);
  p.toServer(); // the CANCEL finds nothing in flight: ignored
  p.toClient();
  assert.equal(p.client.lateReplies, 1);
  assert.deepEqual(call.outcome, { ok: false, error: "cancelled", cancelled: true });
  assert.equal(onDone, 0);
  assert.equal(p.budget.used, 0, "the late reply's charge was released all the same");
  // A reply for an id that was never asked for is late too.
  p.client.receive(s.encode(ReplyEnvelope, { id: 999, ok: true, result: 1 }));
  assert.equal(p.client.lateReplies, 2);
});

Deno.test("rpc: a deadline (timeoutMs) aborts the handler and replies with a timeout error", async () => {
  const w = waiter();
  const p = rpcPair([w.handler]);
  const call = p.client.start(wait, {}, { timeoutMs: 30 });
  p.toServer();
  await within(w.abort, "the handler's abort");
  await settle();
  assert.equal(w.seen[0].aborted, true);
  assert.equal(p.server.active, 0);
  p.toClient();
  assert.deepEqual(call.outcome, { ok: false, error: timeoutMessage(30) });
  assert.equal(timeoutMessage(30), "timed out after 30 ms");
  assert.equal(p.replies.length, 1, "one reply: the timeout, not the handler's late value");
  assert.equal(p.client.lateReplies, 0);
  // A handler that finishes in time is not affected by its deadline.
  const quick = rpcPair([handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }) => a * b)]);
  const ok = quick.client.start(add, { a: 6, b: 7 }, { timeoutMs: 60_000 });
  quick.toServer();
  await settle();
  quick.toClient();
  assert.deepEqual(ok.outcome, { ok: true, value: 42 });
});

Deno.test("rpc: a request over maxBytes fails at once, is not sent, and leaves nothing pending", () => {
  const p = rpcPair([]);
  const outcomes: Outcome<string>[] = [];
  const params = { n: 1, pad: "x".repeat(200) } as unknown as { n: number };
  const call = p.client.start(big, params, { maxBytes: 100, onDone: (o) => outcomes.push(o) });
  assert.equal(call.done, true);
  assert.equal(outcomes.length, 1, "onDone ran now");
  assert.equal(outcomes[0].ok, false);
  assert.match(
    (outcomes[0] as { error: string }).error,
    /^request of \d+ bytes exceeds the host limit of 100 bytes$/,
  );
  assert.equal(p.link.toHost.used, 0, "nothing sent");
  assert.equal(p.client.outstanding, 0);
  // At exactly the limit it goes.
  const size = encoder.encode(JSON.stringify({ id: 2, method: "t.big", params: { n: 1 } })).length;
  const fits = p.client.start(big, { n: 1 }, { maxBytes: size });
  assert.equal(fits.done, false);
  assert.equal(fits.id, 2);
  assert.ok(p.link.toHost.used > 0);
});

Deno.test("rpc: RpcServer.close aborts every handler and replies to nothing, not even errors", async () => {
  const w = waiter();
  const p = rpcPair([w.handler]);
  p.client.start(wait, { tag: "1" });
  p.client.start(wait, { tag: "2" }, { timeoutMs: 60_000 });
  p.toServer();
  await settle();
  assert.equal(p.server.active, 2);
  p.server.close();
  assert.equal(p.server.active, 0);
  assert.deepEqual(w.seen.map((e) => e.aborted), [true, true]);
  await settle();
  assert.equal(p.link.toGuest.used, 0);
  assert.equal(p.budget.used, 0);
  assert.equal(p.client.outstanding, 2);
  p.client.cancelAll();
  assert.equal(p.client.outstanding, 0);
});

Deno.test("rpc: requests that arrive after RpcServer.close run no handler and get no reply", async () => {
  // The host closes a session's server when the guest ends, then still reads what the guest
  // sent last: a request among it must not start work (a capture, a backend call) that no
  // signal would ever stop.
  const w = waiter();
  const p = rpcPair([w.handler]);
  p.server.close();
  p.client.start(nope, {});
  p.client.start(wait, { tag: "after" }, { timeoutMs: 10 });
  p.toServer();
  await settle(20);
  assert.equal(w.seen.length, 0, "a handler ran for a closed session");
  assert.equal(p.server.active, 0);
  assert.equal(p.link.toGuest.used, 0);
  assert.equal(p.budget.used, 0);
});

Deno.test("rpc: a reply is charged to the guest's budget until applied; one over the budget becomes an error", async () => {
  const p = rpcPair([handle<{ n: number }, string, TestContext>(big, ({ n }) => "y".repeat(n))], 1000);
  p.budget.tryCharge(100); // held by something else
  const small = p.client.start(big, { n: 10 });
  p.toServer();
  await settle();
  const charged = p.budget.used - 100;
  assert.ok(charged > 10, "the reply's bytes are charged while it waits for the worker");
  assert.equal(p.link.toGuest.used > 0, true);
  p.toClient();
  assert.equal(p.replies[0].payload.length, charged, "the charge is the reply's size");
  assert.equal(p.budget.used, 100, "released when applied: back to what it was");
  assert.deepEqual(small.outcome, { ok: true, value: "y".repeat(10) });
  // Too large for what is left: an error reply (forced through) instead of the result.
  const large = p.client.start(big, { n: 2000 });
  p.toServer();
  await settle();
  assert.equal(p.budget.refused, 1);
  p.toClient();
  assert.equal(large.outcome?.ok, false);
  assert.match(
    (large.outcome as { error: string }).error,
    /^reply of \d+ bytes is over the guest's host budget/,
  );
  assert.equal(p.budget.used, 100);
});

Deno.test("rpc: a handler result that cannot be encoded fails that call, not the host", async () => {
  const bad = method("t.bad", s.object({}), s.json);
  const p = rpcPair([
    handle<Record<string, never>, unknown, TestContext>(bad, () => ({ n: 1n })),
    handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }) => a + b),
  ]);
  const broken = p.client.start(bad, {});
  const fine = p.client.start(add, { a: 1, b: 2 });
  p.toServer();
  await settle();
  p.toClient();
  assert.equal(broken.outcome?.ok, false);
  assert.match(
    (broken.outcome as { error: string }).error,
    /^the host's reply could not be encoded: .*BigInt/,
  );
  assert.deepEqual(fine.outcome, { ok: true, value: 3 });
  assert.equal(p.server.active, 0);
  assert.equal(p.budget.used, 0);
});

// ------------------------------------------------------------ through GuestRuntime

Deno.test("rpc: GuestRuntime.call returns a pre-queued reply; a stale reply before it is counted late", async () => {
  const g = await fakeGuest({ families: ["core"] });
  g.reply(5, 77); // a reply nobody waits for
  g.reply(42, 1);
  const before = g.rt.budget.used;
  const outcome = g.rt.call(add, { a: 40, b: 2 }, { fd: 1001, timeoutMs: 5000 });
  assert.deepEqual(outcome, { ok: true, value: 42 });
  assert.equal(g.rt.rpc.lateReplies, 1);
  assert.ok(g.rt.budget.used < before, "applying the replies released what the host charged");
  const [request] = g.requests();
  assert.deepEqual(request, { id: 1, method: "t.add", params: { a: 40, b: 2 }, timeoutMs: 5000, fd: 1001 });
  g.replyError("busy", 2);
  assert.deepEqual(g.rt.call(add, { a: 1, b: 1 }, { timeoutMs: 5000 }), { ok: false, error: "busy" });
});

Deno.test("rpc: GuestRuntime.call times out when no reply comes: the call is cancelled and CANCEL sent", async () => {
  const g = await fakeGuest({ families: ["core"] });
  const outcome = g.rt.call(add, { a: 1, b: 1 }, { fd: 1002, timeoutMs: 20 });
  assert.deepEqual(outcome, {
    ok: false,
    error: "host request t.add timed out after 20 ms",
    cancelled: true,
  });
  assert.deepEqual(g.sent().map((m) => [m.op, m.fd]), [[Op.REQUEST, 1002], [Op.CANCEL, 1002]]);
  assert.equal(g.rt.rpc.outstanding, 0);
  g.reply(2, 1); // the reply that crosses the cancel
  g.rt.poll();
  assert.equal(g.rt.rpc.lateReplies, 1);
});

Deno.test("rpc: GuestRuntime.start is asynchronous — onDone runs when a poll applies the reply", async () => {
  const g = await fakeGuest({ families: ["core"] });
  const outcomes: Outcome<number>[] = [];
  const call = g.rt.rpc.start(add, { a: 1, b: 2 }, { fd: 1005, onDone: (o) => outcomes.push(o) });
  assert.equal(g.rt.rpc.outstanding, 1);
  g.reply(3, call.id);
  assert.equal(outcomes.length, 0, "a queued reply is not applied until the guest polls");
  g.rt.poll();
  assert.deepEqual(outcomes, [{ ok: true, value: 3 }]);
  g.rt.poll();
  assert.equal(outcomes.length, 1);
  // block() applies replies too, and returns once the call is done.
  const second = g.rt.rpc.start(add, { a: 2, b: 2 }, { fd: 0, onDone: (o) => outcomes.push(o) });
  g.reply(4, second.id);
  assert.equal(g.rt.block(() => second.done, 5000), true);
  assert.deepEqual(outcomes[1], { ok: true, value: 4 });
});

Deno.test("rpc: closing an fd cancels the calls about it (fds.onClose), and only those", async () => {
  const link = Link.create(1 << 16);
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16 });
  const w = waiter();
  const server = new RpcServer<TestContext>(
    (op, fd, payload) => link.toGuest.send(op, fd, payload),
    new Map([[wait.name, w.handler]]),
    { who: "test" },
    rt.budget,
  );
  const serve = () =>
    link.toHost.receive((m) => {
      if (m.op === Op.REQUEST) server.receiveRequest(m.fd, m.payload);
      if (m.op === Op.CANCEL) server.receiveCancel(m.payload);
    });
  const a = rt.fds.alloc("Mic", {});
  const b = rt.fds.alloc("Mic", {});
  let done = 0;
  const onA = rt.rpc.start(wait, { tag: "a" }, { fd: a.fd, onDone: () => done++ });
  const onB = rt.rpc.start(wait, { tag: "b" }, { fd: b.fd, onDone: () => done++ });
  serve();
  await settle();
  assert.equal(server.active, 2);
  rt.fds.close(a.fd);
  assert.deepEqual(onA.outcome, { ok: false, error: "fd closed", cancelled: true });
  assert.equal(onB.done, false);
  assert.equal(rt.rpc.outstanding, 1);
  serve();
  await within(w.abort, "the handler's abort");
  await settle();
  assert.deepEqual(w.seen.map((e) => [e.fd, e.aborted]), [[a.fd, true], [b.fd, false]]);
  assert.equal(server.active, 1);
  rt.poll();
  assert.equal(done, 0);
  rt.rpc.cancelAll();
  serve();
  await settle();
  assert.equal(server.active, 0);
  assert.deepEqual(onB.outcome, { ok: false, error: "guest ended", cancelled: true });
});

Deno.test("rpc: cancelFd cancels the calls still pending on that fd, once, and no finished or other-fd call", async () => {
  const w = waiter();
  const p = rpcPair([
    w.handler,
    handle<{ a: number; b: number }, number, TestContext>(add, ({ a, b }) => a + b),
  ]);
  const sum = p.client.start(add, { a: 1, b: 2 }, { fd: 7 });
  const held = p.client.start(wait, { tag: "7" }, { fd: 7 });
  const other = p.client.start(wait, { tag: "8" }, { fd: 8 });
  p.toServer();
  await settle();
  p.toClient();
  assert.deepEqual(sum.outcome, { ok: true, value: 3 });
  p.client.cancelFd(7);
  p.client.cancelFd(7); // nothing left on fd 7: no second CANCEL
  p.toServer();
  const cancels = p.toHost.filter((m) => m.op === Op.CANCEL);
  assert.deepEqual(cancels.map((m) => [m.fd, JSON.parse(new TextDecoder().decode(m.payload)).id]), [[
    7,
    held.id,
  ]]);
  assert.deepEqual(held.outcome, { ok: false, error: "fd closed", cancelled: true });
  assert.equal(other.done, false);
  assert.equal(p.client.outstanding, 1);
  p.client.cancelAll();
  p.toServer();
  await within(w.abort, "the handlers' abort");
});

Deno.test("rpc: GuestRuntime.call and start answered by an RpcServer on another Worker, budget shared", async () => {
  const link = Link.create(1 << 16);
  const budget = HostBudget.create(1 << 20);
  const flags = new Int32Array(new SharedArrayBuffer(12));
  const rt = new GuestRuntime({ link, memory: null, maxFds: 16, budget });
  const worker = new Worker(new URL("../support/rpc_worker.ts", import.meta.url), { type: "module" });
  const stopped = new Promise<void>((resolve, reject) => {
    worker.onmessage = (e) => e.data.stopped && resolve();
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
  });
  const init: RpcWorkerInit = {
    buffers: link.buffers,
    budget: budget.buffer,
    flags: flags.buffer as SharedArrayBuffer,
  };
  worker.postMessage(init);
  /** Waits (without blocking this thread's event loop) until flags[i] reaches n. */
  const flagReaches = async (i: number, n: number) => {
    for (;;) {
      const v = Atomics.load(flags, i);
      if (v >= n) return;
      const r = Atomics.waitAsync(flags, i, v, 1000);
      if (r.async) await r.value;
    }
  };
  try {
    // Blocking: this thread waits in Atomics.wait until the other thread's reply rings it.
    const first = rt.call(echo, { text: "hello" }, { fd: 1234, timeoutMs: 30_000 });
    assert.deepEqual(first, { ok: true, value: { text: "hello", fd: 1234, thread: "worker" } });
    assert.equal(budget.used, 0, "the worker released the reply's charge when it applied it");
    assert.ok(budget.peak > 0, "the server charged the reply");

    // Cancel across threads: the handler is running there, the guest gives up here.
    const held = rt.rpc.start(hold, {}, { fd: 1500 });
    assert.equal(rt.block(() => Atomics.load(flags, HOLDING) === 1, 30_000), true);
    rt.rpc.cancel(held);
    await within(flagReaches(ABORTED, 1), "the worker handler's abort");
    assert.deepEqual(held.outcome, { ok: false, error: "cancelled", cancelled: true });
    // The aborted handler's value was not sent: the next reply is the only one to arrive.
    const second = rt.call(echo, { text: "again" }, { timeoutMs: 30_000 });
    assert.equal(second.ok, true);
    assert.equal(rt.rpc.lateReplies, 0, "a reply to the cancelled call arrived");

    // A blocking call past its deadline: cancelled here or timed out there; the handler aborts.
    const late = rt.call(hold, {}, { timeoutMs: 100 });
    assert.equal(late.ok, false);
    assert.match((late as { error: string }).error, /timed out after 100 ms/);
    await within(flagReaches(ABORTED, 2), "the worker handler's abort at its deadline");
    assert.equal(rt.rpc.outstanding, 0);

    // Asynchronous: the reply is applied at a poll.
    let value: Outcome<{ text: string; fd: number; thread: string }> | undefined;
    const call = rt.rpc.start(echo, { text: "async" }, { fd: 7, onDone: (o) => value = o });
    assert.equal(rt.block(() => call.done, 30_000), true);
    assert.deepEqual(value, { ok: true, value: { text: "async", fd: 7, thread: "worker" } });
    assert.equal(budget.used, 0);
  } finally {
    Atomics.store(flags, STOP, 1);
    link.toHost.ring();
    await within(stopped, "the rpc worker stopping");
    worker.terminate();
  }
});
