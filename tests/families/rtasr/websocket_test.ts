/**
 * The openai_realtime_ws transport against a scripted GA server on loopback
 * (tests/support/realtime_server.ts), driven by a real guest: URL, headers and the
 * session.update shape; appended audio byte-exact; commit on FLUSH; backpressure; a dropped
 * server; close 4000 (beta_api_shape_disabled); bad JSON; connect timeout; the network
 * policy; and the key never reaching guest-visible bytes.
 */
import assert from "node:assert/strict";
import { config, logged, loggedJson, runScript } from "../../support/rtasr.ts";
import { gaHello, type RealtimeConnection, startRealtimeServer } from "../../support/realtime_server.ts";

const KEY_ENV = "SPEARHOST_RTASR_TEST_KEY";
const KEY = "sk-test-0123456789abcdefGHIJKLMNOPqrstuvwxyz";

function wsConfig(baseUrl: string, extra: Record<string, unknown> = {}) {
  return config({
    backends: [{
      name: "openai-realtime-asr",
      kind: "openai_realtime_ws",
      base_url: baseUrl,
      api_key_env: KEY_ENV,
      model: "gpt-4o-mini-transcribe",
      ops: ["speech_to_text"],
      ...extra,
    }],
  });
}

const WS = ["param", "transport", '"websocket"', "param", "backend", '"openai-realtime-asr"'];

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed + i) & 0xff);
}

/** Every 8-character fragment of the key, which must appear nowhere the guest can read. */
function assertNoKey(text: string) {
  for (let i = 0; i + 8 <= KEY.length; i++) {
    assert.ok(!text.includes(KEY.slice(i, i + 8)), `key fragment "${KEY.slice(i, i + 8)}" reached the guest`);
  }
}

Deno.env.set(KEY_ENV, KEY);

Deno.test("ws: GA URL, Authorization header, no beta header, session.update shape", async () => {
  const server = startRealtimeServer();
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "seg",
      '{"strategy":"server_vad","vad":{"silence_ms":321}}',
      "connect",
      "status",
      "read",
      "session.updated",
      "5000",
      "status",
    ]);
    assert.equal(logged(r.logs, "connect rc="), "0");
    assert.equal(loggedJson(r.logs, "status", 0).state, "Connecting");
    const st = loggedJson(r.logs, "status", 1);
    assert.equal(st.state, "Connected");
    assert.equal(st.protocol, "ga");
    assert.equal(st.url, `ws://${server.hostPort}/v1/realtime?intent=transcription`);
    const conn = await server.connection();
    assert.equal(conn.path, "/v1/realtime?intent=transcription");
    assert.equal(conn.headers.authorization, `Bearer ${KEY}`);
    assert.equal(conn.headers["openai-beta"], undefined);
    assert.deepEqual(conn.messages[0].json, {
      type: "session.update",
      session: {
        type: "transcription",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: 24000 },
            transcription: { model: "gpt-4o-mini-transcribe" },
            turn_detection: {
              type: "server_vad",
              threshold: 0.5,
              prefix_padding_ms: 300,
              silence_duration_ms: 321,
            },
          },
        },
      },
    });
    assert.deepEqual((r.events as { type: string }[]).map((e) => e.type), [
      "session.created",
      "session.updated",
    ]);
    assertNoKey(r.logs.join("\n"));
  } finally {
    await server.close();
  }
});

Deno.test("ws: appended audio arrives byte-exact; FLUSH commits after it; turn_detection null for manual", async () => {
  const server = startRealtimeServer(async (conn) => {
    await gaHello(conn);
    await conn.waitFor((m) => m.json?.type === "input_audio_buffer.commit", 10000);
    await conn.sendJson({
      type: "input_audio_buffer.committed",
      event_id: "e3",
      item_id: "item_1",
      previous_item_id: null,
    });
    await conn.sendJson({
      type: "conversation.item.input_audio_transcription.completed",
      event_id: "e4",
      item_id: "item_1",
      content_index: 0,
      transcript: "hello world",
    });
  });
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "seg",
      '{"strategy":"manual"}',
      "write",
      "9600",
      "1", // before CONNECT: held, then sent in order
      "connect",
      "write",
      "4801",
      "7",
      "write",
      "20000",
      "3",
      "flush",
      "read",
      "transcription.completed",
      "10000",
      "metrics",
    ]);
    assert.equal(logged(r.logs, "flush rc="), "0");
    const conn = await server.connection();
    const session = conn.messages[0].json as { session: { audio: { input: { turn_detection: unknown } } } };
    assert.equal(session.session.audio.input.turn_detection, null);
    const appends = conn.messages.filter((m) => m.json?.type === "input_audio_buffer.append");
    const audio = appends.flatMap((m) => [...Uint8Array.fromBase64(m.json!.audio as string)]);
    const expected = [...pattern(9600, 1), ...pattern(4801, 7), ...pattern(20000, 3)];
    assert.equal(audio.length, expected.length);
    assert.deepEqual(Uint8Array.from(audio), Uint8Array.from(expected));
    const commitAt = conn.messages.findIndex((m) => m.json?.type === "input_audio_buffer.commit");
    assert.ok(commitAt > conn.messages.indexOf(appends[appends.length - 1]), "commit after the audio");
    assert.deepEqual(conn.messages[commitAt].json, { type: "input_audio_buffer.commit" });
    const completed = (r.events as { type: string; transcript?: string }[]).find((e) =>
      e.type.endsWith("completed")
    );
    assert.equal(completed?.transcript, "hello world");
    const metrics = loggedJson(r.logs, "metrics");
    assert.equal(metrics.bytes_written, 9600 + 4801 + 20000);
    assert.equal(metrics.send_queue_bytes, 0);
  } finally {
    await server.close();
  }
});

Deno.test("ws: backpressure — no credit while the socket is not open, EPOLLOUT once it is", async () => {
  const server = startRealtimeServer(gaHello, { handshakeDelayMs: 600 });
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "param",
      "max_send_queue_bytes",
      "32000",
      "connect",
      "write1",
      "32000",
      "0",
      "write1",
      "1",
      "0",
      "mask",
      "status",
      "write",
      "32000",
      "5",
      "read",
      "session.updated",
      "5000",
      "sleep",
      "100",
      "status",
    ]);
    assert.equal(logged(r.logs, "write1 rc=", 0), "32000");
    assert.equal(logged(r.logs, "write1 rc=", 1), "-11");
    assert.equal(Number(logged(r.logs, "mask ")) & 0x4, 0, "no EPOLLOUT while full");
    assert.equal(loggedJson(r.logs, "status", 0).send_queue_bytes, 32000);
    assert.match(logged(r.logs, "write rc="), /^32000 eagain=[1-9]/);
    assert.equal(loggedJson(r.logs, "status", 1).send_queue_bytes, 0);
    const conn = await server.connection();
    const sent = conn.messages.filter((m) => m.json?.type === "input_audio_buffer.append")
      .reduce((n, m) => n + Uint8Array.fromBase64(m.json!.audio as string).length, 0);
    assert.equal(sent, 64000);
  } finally {
    await server.close();
  }
});

Deno.test("ws: a dropped server is Error + EPOLLERR with last_error", async () => {
  const server = startRealtimeServer(async (conn) => {
    await gaHello(conn);
    await conn.waitFor((m) => m.json?.type === "input_audio_buffer.append");
    conn.drop();
  });
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "connect",
      "read",
      "session.updated",
      "5000",
      "write",
      "4800",
      "0",
      "read",
      "never",
      "5000",
      "status",
      "write1",
      "10",
      "0",
    ]);
    assert.equal(logged(r.logs, "read end=", 1), "err");
    const st = loggedJson(r.logs, "status");
    assert.equal(st.state, "Error");
    assert.match(String(st.last_error), /dropped/);
    assert.equal(logged(r.logs, "write1 rc="), "-5");
  } finally {
    await server.close();
  }
});

Deno.test("ws: close 4000 beta_api_shape_disabled reads as what it is; beta shape only when asked", async () => {
  const server = startRealtimeServer(async (conn: RealtimeConnection) => {
    await conn.sendJson({
      type: "error",
      error: {
        type: "invalid_request_error",
        code: "beta_api_shape_disabled",
        message: "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
        param: null,
      },
    });
    await conn.close(4000, "beta_api_shape_disabled");
  });
  try {
    const r = await runScript(wsConfig(server.baseUrl, { protocol: "beta" }), [
      ...WS,
      "connect",
      "read",
      "never",
      "5000",
      "status",
    ]);
    assert.equal(logged(r.logs, "read end="), "err");
    const st = loggedJson(r.logs, "status");
    assert.equal(st.state, "Error");
    assert.equal(st.close_code, 4000);
    assert.match(String(st.last_error), /refused the beta realtime protocol .*beta_api_shape_disabled.*GA/);
    const error = (r.events as { type: string; error?: { code: string } }[]).find((e) => e.type === "error");
    assert.equal(
      error?.error?.code,
      "beta_api_shape_disabled",
      "the server's error event reaches the guest unchanged",
    );
    const conn = await server.connection();
    assert.equal(conn.headers["openai-beta"], "realtime=v1");
    assert.equal(conn.path, "/v1/realtime?intent=transcription&model=gpt-4o-mini-transcribe");
    assert.deepEqual(conn.messages[0].json, {
      type: "session.update",
      session: {
        input_audio_format: "pcm16",
        input_audio_transcription: { model: "gpt-4o-mini-transcribe" },
        turn_detection: {
          type: "server_vad",
          threshold: 0.5,
          prefix_padding_ms: 300,
          silence_duration_ms: 500,
        },
      },
    });
  } finally {
    await server.close();
  }
});

Deno.test("ws: bad JSON from the server passes through unchanged; bad JSON from the guest is -EINVAL", async () => {
  const server = startRealtimeServer(async (conn) => {
    await gaHello(conn);
    await conn.sendText("this is {not json");
    await conn.waitFor((m) => m.json?.type === "custom.ping");
    await conn.sendJson({ type: "custom.pong" });
  });
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "connect",
      "send",
      "{broken",
      "read",
      "not json",
      "5000",
      "send",
      '{"type":"custom.ping","n":1}',
      "read",
      "custom.pong",
      "5000",
      "status",
    ]);
    assert.equal(logged(r.logs, "send rc=", 0), "-22");
    assert.equal(logged(r.logs, "send rc=", 1), "0");
    assert.ok(r.events.includes("this is {not json"));
    assert.equal(logged(r.logs, "read end=", 1), "found");
    assert.equal(loggedJson(r.logs, "status").state, "Connected");
    const conn = await server.connection();
    assert.ok(conn.messages.some((m) => m.text === '{"type":"custom.ping","n":1}'));
  } finally {
    await server.close();
  }
});

Deno.test("ws: a server that echoes the key never hands it to the guest", async () => {
  const server = startRealtimeServer(async (conn) => {
    await gaHello(conn);
    const auth = conn.headers.authorization;
    await conn.sendJson({
      type: "error",
      error: { type: "invalid_request_error", code: "echo", message: `got ${auth}` },
    });
    await conn.sendJson({ type: "debug", headers: conn.headers, prefix: KEY.slice(0, 12) });
    await conn.close(4001, `bad key ${KEY}`);
  });
  try {
    const r = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "connect",
      "read",
      "never",
      "5000",
      "status",
      "metrics",
    ]);
    assert.ok(r.events.length >= 3);
    assert.equal(loggedJson(r.logs, "status").state, "Error");
    assertNoKey(r.logs.join("\n"));
  } finally {
    await server.close();
  }
});

Deno.test("ws: connect timeout and refused connections become Error with last_error", async () => {
  const silent = startRealtimeServer(gaHello, { handshake: false });
  try {
    const r = await runScript(wsConfig(silent.baseUrl), [
      ...WS,
      "param",
      "connect_timeout_ms",
      "300",
      "connect",
      "read",
      "never",
      "5000",
      "status",
    ]);
    assert.equal(logged(r.logs, "connect rc="), "0");
    const st = loggedJson(r.logs, "status");
    assert.equal(st.state, "Error");
    assert.match(String(st.last_error), /connect timeout after 300 ms/);
  } finally {
    await silent.close();
  }
});

Deno.test("ws: a ws_url the network policy does not allow fails CONNECT; the key goes nowhere else", async () => {
  const server = startRealtimeServer();
  const other = startRealtimeServer();
  try {
    const denied = await runScript(wsConfig(server.baseUrl), [
      ...WS,
      "param",
      "ws_url",
      '"ws://192.0.2.1:9/v1/realtime"',
      "connect",
      "status",
    ]);
    assert.equal(logged(denied.logs, "connect rc="), "-5");
    assert.match(String(loggedJson(denied.logs, "status").last_error), /not allowed/);
    // Allowed by net.allow but not the backend's origin: no Authorization header.
    const cfg = config({
      backends: [{
        name: "openai-realtime-asr",
        kind: "openai_realtime_ws",
        base_url: server.baseUrl,
        api_key_env: KEY_ENV,
        ops: ["speech_to_text"],
      }],
      net: { allow: [other.hostPort] },
    });
    const r = await runScript(cfg, [
      ...WS,
      "param",
      "ws_url",
      `"ws://${other.hostPort}/custom"`,
      "connect",
      "read",
      "session.updated",
      "5000",
    ]);
    assert.equal(logged(r.logs, "read end="), "found");
    const conn = await other.connection();
    assert.equal(conn.path, "/custom");
    assert.equal(conn.headers.authorization, undefined);
  } finally {
    await server.close();
    await other.close();
  }
});
