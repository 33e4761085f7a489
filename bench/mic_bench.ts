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
 * Then per-frame Deno.bench cases: MIC_FRAME → fd queue → mic_read without wasm, against a
 * bare channel send → receive of the same bytes.
 */
import process from "node:process";
import { HostcallError, MicCtl } from "../runtime/abi.ts";
import { Channel, Link } from "../protocol/channel.ts";
import { defaultConfig } from "../host/config.ts";
import { GuestRuntime } from "../runtime/guest.ts";
import { SpearHost } from "../host/host.ts";
import {
  MIC_FRAME_HEADER_BYTES,
  micClock,
  micHostcalls,
  writeMicFrameHeader,
} from "../families/mic/worker.ts";
import { Op } from "../protocol/wire.ts";
import { micDriver } from "../families/mic/driver.ts";
import { pace, stubFrames } from "../families/mic/sources.ts";
import * as pa from "../ffi/portaudio.ts";
import { applyToCurrentProcess, createVirtualMic } from "../tests/support/alsa_virtual.ts";

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
    args: [json, String(frames)],
    stdoutFile: "/dev/null",
    timeoutMs: 120000,
  });
  const cpu = cpuMs() - cpu0, wall = performance.now() - t0;
  host.close();
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
  const payload = new Uint8Array(MIC_FRAME_HEADER_BYTES + FRAME_BYTES);
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
        writeMicFrameHeader(payload, {
          generation: 1,
          seq: sent,
          capturedAt: micClock(),
          hostDropped: 0,
          overflows: 0,
        });
        payload.set(frame, MIC_FRAME_HEADER_BYTES);
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

const benchLink = Link.create(1 << 22);
const mem = new Uint8Array(1 << 16);
const view = new DataView(mem.buffer);
const rt = new GuestRuntime({
  link: benchLink,
  maxFds: 16,
  memory: { locate: () => [BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(mem))), mem.length] },
});
const calls = new Map(micHostcalls(rt).map((h) => [h.name, h]));
const call = (name: string, ...args: number[]) => {
  rt.mem.refresh();
  try {
    return Number(calls.get(name)!.run(...args));
  } catch (e) {
    if (e instanceof HostcallError) return e.code;
    throw e;
  }
};
const fd = call("mic_create");
benchLink.toGuest.sendJson(Op.REPLY, 0, {
  id: 1,
  result: { ok: true, source: "stub", device: null, fallback_reason: null, native: null },
});
const setParam = new TextEncoder().encode(JSON.stringify({ source: "stub", ...CONFIG }));
mem.set(setParam, 64);
view.setUint32(8, setParam.length, true);
if (call("mic_ctl", fd, MicCtl.SET_PARAM, 64, 8) !== 0) throw new Error("SET_PARAM failed");
const framePayload = new Uint8Array(MIC_FRAME_HEADER_BYTES + FRAME_BYTES);
const bare = Channel.create(1 << 22);

Deno.bench({
  name: "bare channel send → receive (984 B)",
  group: "mic frame",
  baseline: true,
  fn() {
    bare.send(Op.MIC_FRAME, fd, framePayload);
    bare.receive(() => {});
  },
});

Deno.bench({
  name: "MIC_FRAME → fd queue (EPOLLIN) → mic_read",
  group: "mic frame",
  fn() {
    writeMicFrameHeader(framePayload, {
      generation: 1,
      seq: 0,
      capturedAt: micClock(),
      hostDropped: 0,
      overflows: 0,
    });
    benchLink.toGuest.send(Op.MIC_FRAME, fd, framePayload);
    view.setUint32(8, 4096, true);
    if (call("mic_read", fd, 64, 8) !== FRAME_BYTES) throw new Error("mic_read failed");
  },
});
