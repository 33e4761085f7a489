/**
 * rtasr benchmarks (issue 9). Run: deno run --allow-all bench/rtasr_bench.ts [SECONDS]
 * (also part of `deno task bench`). Prints each figure beside its floor.
 *
 * 1. websocket transport: a guest (tests/guests/rtasr_script.c) streams SECONDS (default 30)
 *    of 24 kHz pcm16 in 20 ms rtasr_writes, one every 20 ms as a microphone would, to the scripted
 *    GA server on loopback (in this process). Host CPU per second of audio (process CPU,
 *    server included) beside the floor: the same audio sent from the main thread over a bare
 *    WebSocket to the same server (base64 + JSON + send, no guest, no fd). Latency from
 *    rtasr_write (the guest's stream send) to the chunk leaving through WebSocket.send.
 * 2. local transport: six espeak-ng sentences with 1.2 s pauses fed in 20 ms chunks at real
 *    time to a LocalAsrSession (server VAD, silence 500 ms). CPU per second of audio, end of
 *    speech → `completed` latency (the VAD's 500 ms of silence included, and after the commit),
 *    deltas per second of speech, word error rate.
 */
import { cpuUsage } from "node:process";
import { parseConfig } from "../host/config.ts";
import { SpearHost } from "../host/host.ts";
import { rtasrDriver } from "../families/rtasr/driver.ts";
import { loadEngine, whisperFiles, whisperInstalled } from "../families/rtasr/local/engine.ts";
import { LocalAsrSession } from "../families/rtasr/local/session.ts";
import { gaHello, startRealtimeServer } from "../tests/support/realtime_server.ts";
import { concat, SENTENCES, silence, speak, wordErrorRate } from "../tests/support/speech.ts";

const SECONDS = Number(Deno.args[0] ?? 10);
const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const cpuMs = () => {
  const u = cpuUsage();
  return (u.user + u.system) / 1000;
};
const f = (n: number | null, d = 2) => (n === null ? "n/a" : n.toFixed(d));

// ---------------------------------------------------------------- 1. websocket
{
  const server = startRealtimeServer(gaHello);
  const config = parseConfig({
    backends: [{ name: "ws", kind: "openai_realtime_ws", base_url: server.baseUrl, ops: ["speech_to_text"] }],
  });
  const driver = rtasrDriver(config);
  const host = new SpearHost({ config, drivers: [driver], logSink: () => {} });
  const frames = SECONDS * 50;
  const steps = [
    "param",
    "transport",
    '"websocket"',
    "param",
    "backend",
    '"ws"',
    "connect",
    "read",
    "session.updated",
    "5000",
  ];
  // Paced as a microphone would: one 20 ms frame every 20 ms.
  for (let i = 0; i < frames; i++) steps.push("write", "960", String(i & 0xff), "sleep", "20");
  steps.push("sleep", "200");
  await host.run(`${root}/guests/build/test/rtasr_script.wasm`, {
    args: steps.slice(0, 10).concat("write", "960", "0"),
  });
  const before = cpuMs(), t0 = performance.now();
  await host.run(`${root}/guests/build/test/rtasr_script.wasm`, { args: steps, timeoutMs: 120000 });
  const hostCpu = cpuMs() - before, wall = performance.now() - t0;
  const conn = driver.connections[driver.connections.length - 1];
  const lat = conn.writeToSend.summary();
  await host.close();

  // Floor: the same frames over a bare WebSocket from the main thread.
  const ws = new WebSocket(`ws://${server.hostPort}/v1/realtime?intent=transcription`);
  await new Promise((r) => (ws.onopen = r));
  const frame = new Uint8Array(960);
  const floorBefore = cpuMs();
  const floorStart = performance.now();
  for (let i = 0; i < frames; i++) {
    frame.fill(i & 0xff);
    ws.send(`{"type":"input_audio_buffer.append","audio":"${frame.toBase64()}"}`);
    const wait = (i + 1) * 20 - (performance.now() - floorStart);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
  const sentAll = performance.now();
  while (server.connections.length < 3 || server.connections[2].messages.length < frames) {
    await new Promise((r) => setTimeout(r, 5));
    if (performance.now() - sentAll > 10000) break;
  }
  const floorCpu = cpuMs() - floorBefore;
  ws.close();
  await server.close();
  console.log(`rtasr websocket: ${SECONDS} s of audio in ${f(wall / 1000)} s wall`);
  console.log(
    `  host CPU per second of audio: ${f(hostCpu / SECONDS)} ms (guest, fd, driver, socket, server)` +
      ` | floor ${f(floorCpu / SECONDS)} ms (bare WebSocket from the main thread, same server)`,
  );
  console.log(
    `  rtasr_write → WebSocket.send: p50 ${f(lat.p50, 3)} ms, p99 ${f(lat.p99, 3)} ms, max ${
      f(lat.max, 3)
    } ms` +
      ` (${lat.count} chunks)`,
  );
}

// ---------------------------------------------------------------- 2. local
if (!whisperInstalled()) {
  console.log("rtasr local: skipped (run scripts/setup.sh to install whisper)");
} else {
  const engine = await loadEngine(whisperFiles());
  const pcm: Int16Array[] = [silence(0.5)];
  let speech = 0;
  for (const s of SENTENCES) {
    const spoken = await speak(s);
    speech += spoken.length / 24000;
    pcm.push(spoken, silence(1.2));
  }
  const audio = concat(...pcm);
  const seconds = audio.length / 24000;
  const completed: { transcript: string; latency: number }[] = [];
  let deltas = 0;
  const session = new LocalAsrSession({
    emit: (e) => {
      if (e.includes("transcription.delta")) deltas++;
    },
    decoder: await engine.stream(),
    turnDetection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
    onCompleted: ({ transcript, speechEndedAt }) =>
      completed.push({ transcript, latency: performance.now() - speechEndedAt }),
  });
  const before = cpuMs();
  const t0 = performance.now();
  for (let at = 0; at < audio.length; at += 480) {
    session.appendAudio(new Uint8Array(audio.slice(at, at + 480).buffer));
    const wait = ((at + 480) / 24000) * 1000 - (performance.now() - t0);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
  await session.idle();
  const cpu = cpuMs() - before;
  session.close();
  const wers = SENTENCES.map((s, i) => wordErrorRate(s, completed[i]?.transcript ?? ""));
  const refWords = SENTENCES.join(" ").split(/\s+/).length;
  const wer = wers.reduce((sum, w, i) => sum + w * SENTENCES[i].split(/\s+/).length, 0) / refWords;
  const lats = completed.map((c) => c.latency).sort((a, b) => a - b);
  console.log(
    `rtasr local (whisper tiny.en): ${f(seconds, 1)} s of audio, ${f(speech, 1)} s of speech, real time`,
  );
  console.log(`  CPU per second of audio: ${f(cpu / seconds / 1000, 3)} CPU-s (target ≤ 1 core)`);
  console.log(
    `  end of speech → completed: median ${f(lats[lats.length >> 1] + 500, 0)} ms, max ${
      f(lats[lats.length - 1] + 500, 0)
    } ms (500 ms of VAD silence included; after the commit: median ${f(lats[lats.length >> 1], 0)} ms)` +
      ` (target ≤ 2000 ms)`,
  );
  console.log(`  deltas per second of speech: ${f(deltas / speech)} (target ≥ 1)`);
  console.log(`  word error rate: ${f(wer * 100, 1)} % over ${SENTENCES.length} sentences (target ≤ 20 %)`);
  for (const [i, c] of completed.entries()) console.log(`    ${f(wers[i] * 100, 0)} % "${c.transcript}"`);
}
