/**
 * rtasr over the stub transport, end to end in a real guest: the state machine, SPEAR's stub
 * events, backpressure with EPOLLOUT, drop_oldest counted in dropped_events, a -ENOSPC read
 * that keeps its event, GET/SET_AUTOFLUSH, and no silent stub for a backend that is missing.
 */
import assert from "node:assert/strict";
import { config, logged, loggedJson, runScript } from "../../support/rtasr.ts";

const STUB_FAST = ["param", "stub_event_interval_ms", "10", "param", "stub_event_payload_bytes", "100"];

Deno.test("stub: Init → Configured → Connected, events readable one per read, Closed after close", async () => {
  const r = await runScript(config(), [
    "status",
    ...STUB_FAST,
    "param",
    "stub_emit_completed_every",
    "3",
    "status",
    "connect",
    "read",
    "transcription.completed",
    "3000",
    "status",
    "close",
    "status",
  ]);
  assert.equal(r.exitCode, 0);
  assert.equal(loggedJson(r.logs, "status", 0).state, "Init");
  assert.equal(loggedJson(r.logs, "status", 1).state, "Configured");
  assert.equal(logged(r.logs, "connect rc="), "0");
  const st = loggedJson(r.logs, "status", 2);
  assert.equal(st.state, "Connected");
  assert.equal(st.max_send_queue_bytes, 1 << 20);
  assert.equal(st.dropped_events, 0);
  const events = r.events as { type: string; seq: number; text: string }[];
  assert.deepEqual(events.map((e) => e.type), [
    "transcription.delta",
    "transcription.delta",
    "transcription.completed",
  ]);
  assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
  assert.equal(events[0].text, "a".repeat(20));
  assert.equal(logged(r.logs, "close rc="), "0");
  assert.equal(logged(r.logs, "status rc="), "-9"); // a closed fd is EBADF
});

Deno.test("stub: a full send queue is -EAGAIN, EPOLLOUT comes back as the transport drains", async () => {
  const r = await runScript(config(), [
    "param",
    "max_send_queue_bytes",
    "16",
    "mask",
    "write1",
    "16",
    "0",
    "mask",
    "write1",
    "1",
    "0",
    "status",
    "connect",
    "write",
    "16",
    "0",
    "status",
  ]);
  assert.equal(logged(r.logs, "mask ", 0), "0x4"); // writable before CONNECT
  assert.equal(logged(r.logs, "write1 rc=", 0), "16");
  assert.equal(logged(r.logs, "mask ", 1), "0x0"); // full: no EPOLLOUT
  assert.equal(logged(r.logs, "write1 rc=", 1), "-11");
  assert.equal(loggedJson(r.logs, "status", 0).send_queue_bytes, 16);
  // After CONNECT the stub takes one item per 10 ms: the retry waits for EPOLLOUT and succeeds.
  const w = logged(r.logs, "write rc=");
  assert.match(w, /^16 eagain=[1-9]/);
});

Deno.test("stub: drop_oldest on the receive queue is counted in dropped_events", async () => {
  const r = await runScript(config(), [
    ...STUB_FAST,
    "param",
    "max_recv_queue_bytes",
    "300",
    "connect",
    "sleep",
    "400",
    "status",
    "drain",
    "50",
  ]);
  const st = loggedJson(r.logs, "status");
  assert.ok((st.dropped_events as number) > 0, JSON.stringify(st));
  assert.ok((st.recv_queue_bytes as number) <= 300);
  const events = r.events as { seq: number }[];
  // What is left is the newest events, in order.
  assert.ok(events.length >= 2);
  for (let i = 1; i < events.length; i++) assert.ok(events[i].seq > events[i - 1].seq);
  assert.ok(events[0].seq > 3, "the oldest events were the ones dropped");
});

Deno.test("stub: a -ENOSPC read keeps the event; the next read gets it whole", async () => {
  const r = await runScript(config(), [
    ...STUB_FAST,
    "connect",
    "sleep",
    "50",
    "small",
    "read",
    "transcription",
    "1000",
  ]);
  assert.match(logged(r.logs, "small rc="), /^-28 need=\d+/);
  const need = Number(logged(r.logs, "small rc=").split("need=")[1]);
  const first = r.events[0] as { seq: number };
  assert.equal(first.seq, 1, "the event that did not fit is still first");
  assert.equal(JSON.stringify(first).length, need);
});

Deno.test("SET_AUTOFLUSH / GET_AUTOFLUSH: defaults, new format, legacy format, invalid", async () => {
  const r = await runScript(config(), [
    "getseg",
    "seg",
    '{"strategy":"client_commit","client_commit":{"flush_interval_ms":123,"max_buffer_bytes":7}}',
    "getseg",
    "seg",
    '{"enabled":true,"mode":"silence","silence_ms":321,"flush_on_close":true}',
    "getseg",
    "seg",
    '{"strategy":"sometimes"}',
    "seg",
    "[1]",
  ]);
  assert.deepEqual(loggedJson(r.logs, "autoflush", 0), {
    strategy: "server_vad",
    flush_on_close: false,
    vad: { silence_ms: 500, threshold: 0.5, prefix_padding_ms: 300 },
    client_commit: null,
  });
  assert.deepEqual(loggedJson(r.logs, "autoflush", 1).client_commit, {
    flush_interval_ms: 123,
    max_buffer_bytes: 7,
    silence_ms: null,
    min_flush_gap_ms: 500,
  });
  const legacy = loggedJson(r.logs, "autoflush", 2);
  assert.equal(legacy.strategy, "server_vad");
  assert.equal(legacy.flush_on_close, true);
  assert.deepEqual(legacy.vad, { silence_ms: 321, threshold: 0.5, prefix_padding_ms: 300 });
  assert.deepEqual(r.logs.filter((l) => l.startsWith("seg rc=")), [
    "seg rc=0",
    "seg rc=0",
    "seg rc=-22",
    "seg rc=-22",
  ]);
});

Deno.test("SET_PARAM: bad JSON, empty key and an unknown transport are -EINVAL", async () => {
  const r = await runScript(config(), [
    "param",
    "",
    "1",
    "param",
    "transport",
    '"carrier-pigeon"',
    "param",
    "max_recv_queue_bytes",
    '"big"',
    "param",
    "transport",
    '"stub"',
  ]);
  assert.deepEqual(r.logs.filter((l) => l.startsWith("param rc=")), [
    "param rc=-22",
    "param rc=-22",
    "param rc=-22",
    "param rc=0",
  ]);
});

Deno.test("no silent stub: a websocket transport with no backend fails CONNECT with a clear last_error", async () => {
  const r = await runScript(config(), [
    "param",
    "transport",
    '"websocket"',
    "param",
    "backend",
    '"openai-realtime-asr"',
    "connect",
    "mask",
    "status",
    "write1",
    "10",
    "0",
  ]);
  assert.equal(logged(r.logs, "connect rc="), "-5");
  const st = loggedJson(r.logs, "status");
  assert.equal(st.state, "Error");
  assert.match(String(st.last_error), /no realtime ASR backend named "openai-realtime-asr"/);
  assert.equal(Number(logged(r.logs, "mask ")) & 0x8, 0x8); // EPOLLERR
  assert.equal(logged(r.logs, "write1 rc="), "-5");
});
