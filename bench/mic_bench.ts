/**
 * mic benchmarks: `deno bench --allow-all bench/mic_bench.ts` (needs guests/build.sh, and
 * espeak-ng/sox-free: the virtual microphone is fed explicit samples).
 *
 * Printed once, each beside a floor measured in the same run:
 * 1. Host CPU per second of captured audio, 24 kHz mono, 20 ms frames: process CPU time
 *    (all threads, node:process cpuUsage) of a guest reading N frames through epoll, for two
 *    values of N; the difference divided by the extra audio removes start-up costs. The clock
 *    runs SPEED× real time (MicDriverOptions.speed), so a minute of audio takes seconds.
 *    - stub source vs floor: the same paced stub frames sent over a bare Channel to a worker
 *      parked in Atomics.wait (one wakeup per frame, no wasm, no fd table).
 *    - device source (PortAudio, ALSA virtual device) vs floor: bare Pa_ReadStream of the same
 *      audio in the same chunks, no host.
 * 2. Frame latency at real time, device source: capture (Pa_ReadStream returned) → frame in
 *    the guest's fd queue with EPOLLIN raised ("deliver") and → mic_read ("read"), p50/p99,
 *    from the mic fd's GET_METRICS; floor: a bare Channel send → worker wakeup, same pacing.
 * Then per-frame Deno.bench cases: a stream frame → fd queue → mic_read without wasm (the fake
 * guest, tests/support/fake_guest.ts), against a bare channel send → receive of the same bytes.
 */
import process from "node:process";
import { Channel } from "../protocol/channel.ts";
import { defaultConfig } from "../host/config.ts";
import { SpearHost } from "../host/host.ts";
import { MicCtl, type MicStartRequest } from "../families/mic/protocol.ts";
import { STREAM_HEADER_BYTES, streamClock, StreamSender } from "../protocol/stream.ts";
import { Op } from "../protocol/wire.ts";
import { micDriver } from "../families/mic/driver.ts";
import { pace, stubFrames } from "../families/mic/sources.ts";
import * as pa from "../ffi/portaudio.ts";
import { applyToCurrentProcess, createVirtualMic } from "../tests/support/alsa_virtual.ts";
import { fakeGuest } from "../tests/support/fake_guest.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const MIC_DUMP = `${root}/guests/build/test/mic_dump.wasm`;
const RATE = 24000;
const FRAME_MS = 20;
const FRAME_BYTES = (RATE * FRAME_MS / 1000) * 2;
const SPEED = 25;
const SHORT_S = 5;
const LONG_S = 30;
const REPEATS = 3;
const LATENCY_FRAMES = 250;
const CONFIG = { sample_rate_hz: RATE, channels: 1, frame_ms: FRAME_MS, format: "pcm16" as const };

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// The virtual microphone must be configured before this process first initializes PortAudio.
const signal = Int16Array.from(
  { length: RATE * (LONG_S + 10) },
  (_, i) => Math.round(8000 * Math.sin(i * 0.07)),
);
const mic = await createVirtualMic({ sampleRate: RATE, channels: 1, samples: signal });
applyToCurrentProcess(mic);

/** A guest (mic_dump) reading `frames` frames; returns process CPU and its mic metrics. */
async function hostRun(source: string, frames: number, speed: number) {
  const config = defaultConfig();
  let metrics: Record<string, unknown> = {};
  const host = new SpearHost({
    config,
    drivers: [micDriver(config, { speed })],
    logSink: (_g, _l, m) => {
      if (m.startsWith("metrics ")) metrics = JSON.parse(m.slice(8));
    },
  });
  const json = JSON.stringify({ source, ...CONFIG, max_queue_bytes: 64 << 20, fallback: { to_stub: false } });
  const cpu0 = cpuMs(), t0 = performance.now();
  const r = await host.run(MIC_DUMP, {
    // discard: the guest reads every frame but does not print it (a line-buffered stdout would
    // add a WASI write per newline byte in the audio, which is not the mic's cost).
    args: [json, String(frames), "discard"],
    stdoutFile: "/dev/null",
    timeoutMs: 120000,
    // The queue's cap is reserved in the guest's host budget (64 MiB by default).
    hostMemoryMb: 128,
  });
  const cpu = cpuMs() - cpu0, wall = performance.now() - t0;
  await host.close();
  if (r.exitCode !== 0) throw new Error(`mic_dump failed: ${JSON.stringify(r)}`);
  if (metrics.frames_read !== frames || metrics.dropped_frames !== 0) {
    throw new Error(`unexpected metrics ${JSON.stringify(metrics)}`);
  }
  return { cpu, wall, metrics };
}

/** Worker that drains a Channel, timestamping each message; op 2 ends it. */
function channelWorker(): { channel: Channel; done: Promise<number[]> } {
  const channel = Channel.create(1 << 22);
  const url = new URL("../protocol/channel.ts", import.meta.url).href;
  const code = `import { Channel } from ${JSON.stringify(url)};
self.onmessage = (e) => {
  const ch = new Channel(e.data);
  const lat = [];
  for (let done = false; !done;) {
    const seen = ch.bell;
    ch.receive((m) => {
      const sent = new DataView(m.payload.buffer, m.payload.byteOffset, 16).getFloat64(8, true);
      lat.push(performance.timeOrigin + performance.now() - sent);
      if (m.op === 2) done = true;
    });
    if (!done) ch.waitBell(seen, 5000);
  }
  self.postMessage(lat);
};`;
  const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })), {
    type: "module",
  });
  const done = new Promise<number[]>((resolve) => {
    worker.onmessage = (e) => {
      resolve(e.data);
      worker.terminate();
    };
  });
  worker.postMessage(channel.buffer);
  return { channel, done };
}

/** Floor for the stub source: the same paced frames, bare Channel to a parked worker. */
async function channelRun(frames: number, speed: number) {
  const { channel, done } = channelWorker();
  // A stream frame: u32 seq, u32 dropped, f64 capture time (protocol/stream.ts), then the audio.
  const payload = new Uint8Array(STREAM_HEADER_BYTES + FRAME_BYTES);
  const header = new DataView(payload.buffer, 0, STREAM_HEADER_BYTES);
  const next = stubFrames(CONFIG, null);
  const cpu0 = cpuMs(), t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const paced = pace({
      next,
      frameMs: FRAME_MS,
      speed,
      onEnd: () => {},
      emit: (frame) => {
        header.setUint32(0, sent, true);
        header.setFloat64(8, streamClock(), true);
        payload.set(frame, STREAM_HEADER_BYTES);
        channel.send(++sent === frames ? 2 : 1, 1000, payload);
        if (sent === frames) {
          paced.stop();
          resolve();
        }
      },
    });
  });
  const lat = await done;
  return { cpu: cpuMs() - cpu0, wall: performance.now() - t0, lat };
}

/** Floor for the device source: bare Pa_ReadStream of the same audio in 20 ms chunks. */
async function paRun(frames: number) {
  pa.initialize();
  const stream = pa.openInputStream(
    { device: pa.getDefaultInputDevice(), channelCount: 1, sampleFormat: pa.paInt16 },
    RATE,
    480,
  );
  const buf = new Uint8Array(FRAME_BYTES);
  const cpu0 = cpuMs(), t0 = performance.now();
  pa.startStream(stream);
  for (let i = 0; i < frames; i++) await pa.readStream(stream, buf, 480);
  const cpu = cpuMs() - cpu0, wall = performance.now() - t0;
  pa.abortStream(stream);
  pa.closeStream(stream);
  pa.terminate();
  return { cpu, wall };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const perSecond = (short: { cpu: number }, long: { cpu: number }) =>
  (long.cpu - short.cpu) / (LONG_S - SHORT_S);
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

const results: string[] = [];
try {
  // Warm-up: compiles and caches the guest, loads PortAudio and libsamplerate.
  await hostRun("stub", 5, SPEED);

  const perSecondOf = async (run: (frames: number) => Promise<{ cpu: number }>) => {
    const values: number[] = [];
    for (let i = 0; i < REPEATS; i++) values.push(perSecond(await run(SHORT_S * 50), await run(LONG_S * 50)));
    return quantile(values, 0.5);
  };
  const stub = await perSecondOf((n) => hostRun("stub", n, SPEED));
  const chan = await perSecondOf((n) => channelRun(n, SPEED));
  const dev = await perSecondOf((n) => hostRun("device", n, SPEED));
  const bareRead = await perSecondOf((n) => paRun(n));
  results.push(
    `host CPU per second of audio (24 kHz mono, 20 ms frames, clock ${SPEED}x real time, median of ${REPEATS}):`,
    `  stub source, guest epoll+read   ${fmt(stub)}   floor (bare channel → parked worker): ${fmt(chan)}`,
    `  device source (PortAudio+host)  ${fmt(dev)}   floor (bare Pa_ReadStream, same chunks): ${
      fmt(bareRead)
    }`,
    `  target stub ≤ 2× the bare channel: ${(stub / chan).toFixed(2)}× (${
      stub <= 2 * chan ? "met" : "NOT met"
    })`,
  );

  const live = await hostRun("device", LATENCY_FRAMES, 1);
  const latency = live.metrics.latency_ms as Record<string, { p50: number; p99: number }>;
  const floor = await channelRun(LATENCY_FRAMES, 1);
  results.push(
    `frame latency at real time, device source (${LATENCY_FRAMES} frames):`,
    `  capture → EPOLLIN (fd queue)    p50 ${fmt(latency.deliver.p50)}  p99 ${fmt(latency.deliver.p99)}`,
    `  capture → mic_read              p50 ${fmt(latency.read.p50)}  p99 ${fmt(latency.read.p99)}`,
    `  floor: channel send → worker    p50 ${fmt(quantile(floor.lat, 0.5))}  p99 ${
      fmt(quantile(floor.lat, 0.99))
    }`,
  );
} finally {
  await mic.cleanup();
}
console.log(results.join("\n"));

// ---------------------------------------------------------------- per-frame Deno.bench cases

const guest = await fakeGuest({ families: ["mic"], maxFds: 16, memBytes: 1 << 16, linkBytes: 1 << 22 });
const fd = guest.call("mic_create");
guest.reply({ ok: true, source: "stub", device: null, fallback_reason: null, native: null });
guest.view.setUint32(8, guest.write(64, JSON.stringify({ source: "stub", ...CONFIG })), true);
if (guest.call("mic_ctl", fd, MicCtl.SET_PARAM, 64, 8) !== 0) throw new Error("SET_PARAM failed");
const { stream } = guest.requests()[0].params as MicStartRequest;
// The driver's end of the capture's stream.
const sender = new StreamSender(guest.link.toGuest, stream, { mode: "lossy" });
const frame = new Uint8Array(FRAME_BYTES);
const framePayload = new Uint8Array(STREAM_HEADER_BYTES + FRAME_BYTES);
const bare = Channel.create(1 << 22);

Deno.bench({
  name: `bare channel send → receive (${framePayload.length} B)`,
  group: "mic frame",
  baseline: true,
  fn() {
    bare.send(Op.STREAM_DATA, stream, framePayload);
    bare.receive(() => {});
  },
});

Deno.bench({
  name: "stream frame → fd queue (EPOLLIN) → mic_read",
  group: "mic frame",
  fn() {
    if (!sender.send(frame)) throw new Error("frame dropped");
    guest.view.setUint32(8, 4096, true);
    if (guest.call("mic_read", fd, 64, 8) !== FRAME_BYTES) throw new Error("mic_read failed");
  },
});
