/**
 * The mic family end to end (SPEC.md §6, reference §7, seed 001):
 * - the worker side (runtime/hostcalls/mic.ts) without Wasmtime: generations, drop policies,
 *   the start call and stub upload, failures;
 * - the pacing clock with fake timers (no drift over ten minutes of audio);
 * - C guests under real Wasmtime in this process for the stub and file sources;
 * - real PortAudio capture through the ALSA virtual device (tests/support/alsa_virtual.ts),
 *   running the CLI in a subprocess whose environment points ALSA at the capture file.
 */
import assert from "node:assert/strict";
import { Errno, HostcallError, MicCtl, Poll } from "../../../runtime/abi.ts";
import { Link } from "../../../protocol/channel.ts";
import { defaultConfig, type HostConfig } from "../../../host/config.ts";
import { GuestRuntime } from "../../../runtime/guest.ts";
import { SpearHost } from "../../../host/host.ts";
import { fdHostcalls } from "../../../families/fd/worker.ts";
import {
  MIC_FRAME_HEADER_BYTES,
  micClock,
  micHostcalls,
  type MicStartRequest,
  writeMicFrameHeader,
} from "../../../families/mic/worker.ts";
import { Op } from "../../../protocol/wire.ts";
import { encodeWav } from "../../../host/audio/wav.ts";
import { type MicDriver, micDriver } from "../../../families/mic/driver.ts";
import { pace, type Timers } from "../../../families/mic/sources.ts";
import { createVirtualMic, hasVirtualMicTools, type VirtualMic } from "../../support/alsa_virtual.ts";

const { EAGAIN, EBADF, EFAULT, EINVAL, EIO, ENOSPC } = Errno;
const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const MIC_DUMP = `${root}/guests/build/test/mic_dump.wasm`;
const MIC_CHECKS = `${root}/guests/build/test/mic_checks.wasm`;
const haveTools = await hasVirtualMicTools();

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------- helpers

function int16(bytes: Uint8Array): Int16Array {
  return new Int16Array(bytes.slice().buffer);
}

function bytesOf(samples: Int16Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(samples.slice().buffer);
}

/** Samples whose value is their index (mod 2^16). */
function ramp(n: number, from = 0): Int16Array {
  return Int16Array.from({ length: n }, (_, i) => ((from + i) << 16) >> 16);
}

function sine(freq: number, rate: number, n: number, amp = 12000): Int16Array {
  return Int16Array.from(
    { length: n },
    (_, i) => Math.round(amp * Math.sin((2 * Math.PI * freq * i) / rate)),
  );
}

/** Best normalised cross-correlation of a and b over lags -maxLag..maxLag. */
function bestCorrelation(a: ArrayLike<number>, b: ArrayLike<number>, maxLag: number): number {
  let best = -1;
  const n = Math.min(a.length, b.length) - maxLag;
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let ab = 0, aa = 0, bb = 0;
    for (let i = maxLag; i < n; i++) {
      const x = a[i], y = b[i + lag];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    best = Math.max(best, ab / Math.sqrt(aa * bb || 1));
  }
  return best;
}

/** Linear-interpolation resampling: an independent reference for resampled output. */
function lerpResample(x: Int16Array, from: number, to: number): Float64Array {
  const n = Math.floor((x.length * to) / from);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = (i * from) / to, k = Math.floor(t), f = t - k;
    out[i] = (x[k] ?? 0) * (1 - f) + (x[k + 1] ?? x[k] ?? 0) * f;
  }
  return out;
}

function energy(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s / x.length;
}

interface GuestRun {
  exitCode: number;
  failure?: unknown;
  stdout: Uint8Array;
  logs: string[];
  durationMs: number;
}

/** Runs a guest under real Wasmtime in this process with a mic driver. */
async function runGuest(
  wasm: string,
  args: string[],
  opts: { config?: HostConfig; driver?: MicDriver; onLog?: (line: string) => void } = {},
): Promise<GuestRun> {
  const config = opts.config ?? defaultConfig();
  const driver = opts.driver ?? micDriver(config);
  const logs: string[] = [];
  const host = new SpearHost({
    config,
    drivers: [driver],
    logSink: (_g, _l, m) => {
      const line = m.replace(/\n$/, "");
      logs.push(line);
      opts.onLog?.(line);
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "spear_mic_" });
  try {
    const stdoutFile = `${dir}/stdout`;
    const r = await host.run(wasm, { args, stdoutFile, timeoutMs: 30000 });
    return { ...r, stdout: await Deno.readFile(stdoutFile), logs };
  } finally {
    host.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The JSON logged after `label ` (mic_dump/mic_checks log "status {…}"). */
function logged(logs: string[], label: string): Record<string, unknown> {
  const line = logs.find((l) => l.startsWith(`${label} `));
  assert.ok(line, `no "${label}" line in ${JSON.stringify(logs)}`);
  return JSON.parse(line.slice(label.length + 1));
}

function loggedValue(logs: string[], label: string): string {
  const line = logs.find((l) => l.startsWith(`${label}`));
  assert.ok(line, `no "${label}" line in ${JSON.stringify(logs)}`);
  return line.slice(label.length);
}

/** Runs `deno run -A cli/main.ts ARGS` in a subprocess with `env` (the virtual mic's). */
async function runCli(args: string[], env: Record<string, string>, cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/cli/main.ts`, ...args],
    env,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(out.stderr);
  const logs = stderr.split("\n").filter((l) => l.startsWith("[")).map((l) =>
    l.replace(/^\[[^\]]+\] \w+ /, "")
  );
  return { code: out.code, stdout: out.stdout, stderr, logs };
}

// ---------------------------------------------------------------- worker side, no Wasmtime

const LEN = 8;
const ARG = 64;
const MEM_BYTES = 8 << 20;

/** micHostcalls over a Uint8Array "guest memory"; the test plays the driver on the Link. */
function harness() {
  const mem = new Uint8Array(MEM_BYTES);
  const view = new DataView(mem.buffer);
  const link = Link.create(1 << 22);
  const rt = new GuestRuntime({
    link,
    maxFds: 64,
    memory: { locate: () => [BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(mem))), mem.length] },
  });
  const calls = new Map([...fdHostcalls(rt), ...micHostcalls(rt)].map((h) => [h.name, h]));
  const call = (name: string, ...args: number[]): number => {
    rt.mem.refresh();
    try {
      return Number(calls.get(name)!.run(...args) ?? 0);
    } catch (e) {
      if (e instanceof HostcallError) return e.code;
      throw e;
    }
  };
  let nextCallId = 1;
  /** Queues the driver's answer to the next blocking call (ids count from 1). */
  const reply = (result: unknown) => link.toGuest.sendJson(Op.REPLY, 0, { id: nextCallId++, result });
  const ctl = (fd: number, cmd: number, input = "", capacity = 65536) => {
    const bytes = encoder.encode(input);
    mem.set(bytes, ARG);
    view.setUint32(LEN, input ? bytes.length : capacity, true);
    const rc = call("mic_ctl", fd, cmd, ARG, LEN);
    const len = view.getUint32(LEN, true);
    return { rc, len, text: rc > 0 ? decoder.decode(mem.subarray(ARG, ARG + rc)) : "" };
  };
  const status = (fd: number) => JSON.parse(ctl(fd, MicCtl.GET_STATUS).text);
  const read = (fd: number, capacity = 65536) => {
    view.setUint32(LEN, capacity, true);
    const rc = call("mic_read", fd, ARG, LEN);
    return {
      rc,
      len: view.getUint32(LEN, true),
      bytes: rc > 0 ? mem.slice(ARG, ARG + rc) : new Uint8Array(0),
    };
  };
  const frame = (fd: number, generation: number, bytes: Uint8Array, seq = 0, hostDropped = 0) => {
    const payload = new Uint8Array(MIC_FRAME_HEADER_BYTES + bytes.length);
    writeMicFrameHeader(payload, { generation, seq, capturedAt: micClock(), hostDropped, overflows: 0 });
    payload.set(bytes, MIC_FRAME_HEADER_BYTES);
    link.toGuest.send(Op.MIC_FRAME, fd, payload);
  };
  /** Messages the guest side sent to the host since the last call. */
  const sent = () => {
    const out: { op: number; fd: number; payload: Uint8Array }[] = [];
    link.toHost.flush();
    link.toHost.receive((m) => out.push(m));
    return out;
  };
  const mask = (fd: number) => rt.fds.get(fd).mask;
  const metrics = (fd: number) => {
    view.setUint32(LEN, 65536, true);
    const rc = call("spear_fd_ctl", fd, 5, ARG, LEN);
    return JSON.parse(decoder.decode(mem.subarray(ARG, ARG + rc))) as Record<string, unknown>;
  };
  const ok = { ok: true, source: "stub", device: null, fallback_reason: null, native: null };
  return { rt, call, reply, ctl, status, read, frame, sent, mask, metrics, ok, link };
}

Deno.test("mic worker: SET_PARAM starts through mic.start, generations filter old frames and events", () => {
  const h = harness();
  const fd = h.call("mic_create");
  assert.equal(fd, 1000);
  assert.equal(h.status(fd).config, null);

  h.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":16000}').rc, 0);
  const call = h.sent().find((m) => m.op === Op.CALL)!;
  const request = JSON.parse(decoder.decode(call.payload));
  assert.equal(request.method, "mic.start");
  assert.deepEqual(request.params as MicStartRequest, {
    fd,
    generation: 1,
    source: "stub",
    config: { sample_rate_hz: 16000, channels: 1, frame_ms: 20, format: "pcm16" },
    device: null,
    fallback_to_stub: true,
    loop: false,
  });
  h.frame(fd, 1, new Uint8Array(640).fill(1));
  assert.equal(h.read(fd).rc, 640);
  h.frame(fd, 1, new Uint8Array(640).fill(2));
  h.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN);

  // A new SET_PARAM clears the queue and bumps the generation; generation 1 is history.
  h.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":16000}').rc, 0);
  assert.equal(h.mask(fd), 0);
  h.frame(fd, 1, new Uint8Array(640).fill(3));
  h.link.toGuest.sendJson(Op.MIC_EVENT, fd, { generation: 1, type: "error", error: "stale" });
  assert.equal(h.read(fd).rc, -EAGAIN);
  let s = h.status(fd);
  assert.deepEqual([s.generation, s.running, s.last_error, s.captured_frames], [2, true, null, 2]);
  h.frame(fd, 2, new Uint8Array(640).fill(4));
  assert.deepEqual([...h.read(fd).bytes.subarray(0, 2)], [4, 4]);

  // A current-generation error raises EPOLLERR; EOF raises EPOLLHUP.
  h.link.toGuest.sendJson(Op.MIC_EVENT, fd, {
    generation: 2,
    type: "error",
    error: "device read failed: gone",
  });
  h.rt.pump();
  s = h.status(fd);
  assert.deepEqual([s.running, s.last_error], [false, "device read failed: gone"]);
  assert.equal(h.mask(fd), Poll.EPOLLERR);
  h.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub"}').rc, 0);
  assert.equal(h.mask(fd), 0, "SET_PARAM clears last_error");
  h.frame(fd, 3, new Uint8Array(960));
  h.link.toGuest.sendJson(Op.MIC_EVENT, fd, { generation: 3, type: "eof" });
  h.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLHUP);
  assert.equal(h.read(fd).rc, 960);
  assert.equal(h.mask(fd), Poll.EPOLLHUP);
  assert.equal(h.status(fd).eof, true);

  // Close: MIC_STOP for the live generation, then EBADF.
  h.sent();
  assert.equal(h.call("mic_close", fd), 0);
  const stop = h.sent().find((m) => m.op === Op.MIC_STOP)!;
  assert.deepEqual(JSON.parse(decoder.decode(stop.payload)), { generation: 3, closed: true });
  assert.equal(h.read(fd).rc, -EBADF);
  assert.equal(h.ctl(fd, MicCtl.GET_STATUS).rc, -EBADF);
  assert.equal(h.call("mic_close", fd), 0);
});

Deno.test("mic worker: drop_oldest and drop_newest count drops; host drops add up; metrics agree", () => {
  const h = harness();
  const fd = h.call("mic_create");
  const fill = (gen: number, n: number, from = 0) => {
    for (let i = 0; i < n; i++) {
      h.frame(
        fd,
        gen,
        bytesOf(Int16Array.from({ length: 80 }, () => from + i)),
        from + i,
      );
    }
    h.rt.pump();
  };
  // 8 kHz, 10 ms: 160-byte frames; a cap of 4 frames.
  h.reply(h.ok);
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":8000,"frame_ms":10,"max_queue_bytes":640}')
      .rc,
    0,
  );
  fill(1, 10);
  let s = h.status(fd);
  assert.deepEqual([s.queue_bytes, s.queue_frames, s.dropped_frames], [640, 4, 6]);
  assert.deepEqual([0, 1, 2, 3].map(() => int16(h.read(fd).bytes)[0]), [6, 7, 8, 9]);

  // drop_policy is kept by a later SET_PARAM that does not name it; max_queue_bytes too.
  h.reply(h.ok);
  assert.equal(
    h.ctl(
      fd,
      MicCtl.SET_PARAM,
      '{"source":"stub","sample_rate_hz":8000,"frame_ms":10,"drop_policy":"drop_newest"}',
    ).rc,
    0,
  );
  fill(2, 10);
  s = h.status(fd);
  assert.deepEqual([s.max_queue_bytes, s.drop_policy, s.dropped_frames], [640, "drop_newest", 12]);
  assert.deepEqual([0, 1, 2, 3].map(() => int16(h.read(fd).bytes)[0]), [0, 1, 2, 3]);

  // Frames the driver could not deliver (congested channel) are reported in the header.
  h.frame(fd, 2, new Uint8Array(160), 14, 3);
  h.rt.pump();
  assert.equal(h.status(fd).dropped_frames, 15);
  h.ctl(fd, MicCtl.SET_PARAM, "{"); // EINVAL: nothing changes
  h.reply(h.ok);
  h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":8000,"frame_ms":10}');
  assert.equal(h.status(fd).dropped_frames, 15, "dropped_frames counts across generations");

  // spear_fd_ctl GET_METRICS reports the same counters.
  h.frame(fd, 3, new Uint8Array(160));
  assert.equal(h.read(fd).rc, 160);
  const m = h.metrics(fd);
  assert.equal(m.dropped_frames, 15);
  assert.equal(m.queue_dropped_frames, 12);
  assert.equal(m.host_dropped_frames, 3);
  assert.equal(m.frames_read, 9);
  assert.equal(m.bytes_read, 9 * 160);
  const latency = m.latency_ms as { read: { count: number; p50: number } };
  assert.equal(latency.read.count, 9);
  assert.ok(latency.read.p50 >= 0 && latency.read.p50 < 1000);
});

Deno.test("mic worker: stub upload, failed starts are -EIO with EPOLLERR, bad input", () => {
  const h = harness();
  const fd = h.call("mic_create");
  const stub = new Uint8Array((3 << 20) + 6); // larger than a channel frame: sent as one message
  for (let i = 0; i < stub.length; i++) stub[i] = i * 7;
  h.reply(h.ok);
  const json = JSON.stringify({ source: "stub", stub_pcm16_base64: stub.toBase64() });
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, json).rc, 0);
  const uploads = h.sent().filter((m) => m.op === Op.MIC_STUB_DATA);
  assert.equal(uploads.length, 1);
  assert.deepEqual(uploads[0].payload, stub);

  // The driver cannot start the source: -EIO, last_error, EPOLLERR, not running.
  h.reply({ ok: false, error: 'no input device named "nope" (available: "default")' });
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"device":{"name":"nope"},"fallback":{"to_stub":false}}').rc,
    -EIO,
  );
  let s = h.status(fd);
  assert.deepEqual([s.running, s.last_error, s.generation], [
    false,
    'no input device named "nope" (available: "default")',
    2,
  ]);
  assert.equal(h.mask(fd), Poll.EPOLLERR);
  // No mic driver on the host: the call answers {error} at once, also -EIO.
  h.reply({ error: "no host method mic.start" });
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub"}').rc, -EIO);
  s = h.status(fd);
  assert.equal(s.last_error, "no host method mic.start");

  // Bad JSON changes nothing (no call made, generation kept).
  h.sent();
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"sample_rate_hz":').rc, -EINVAL);
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"sample_rate_hz":48000,"channels":8,"frame_ms":1000}').rc,
    -EINVAL,
  ); // 768000-byte frames > 512 KiB cap
  assert.deepEqual(h.sent(), []);
  assert.equal(h.status(fd).generation, 3);
  assert.equal(h.ctl(fd, 7).rc, -EINVAL);
  assert.equal(h.ctl(fd, MicCtl.GET_STATUS, "", 4).rc, -ENOSPC);
  assert.equal(h.call("mic_read", fd, -1, LEN), -EAGAIN); // empty queue is checked before the buffer
  assert.equal(h.call("mic_read", fd, ARG, MEM_BYTES), -EFAULT);
  assert.equal(h.call("mic_read", 4242, ARG, LEN), -EBADF);

  // LIST_DEVICES relays the driver's array; an error reply is -EIO.
  h.reply([{ name: "default", index: 0 }]);
  assert.deepEqual(JSON.parse(h.ctl(fd, MicCtl.LIST_DEVICES).text), [{ name: "default", index: 0 }]);
  h.reply({ error: "libportaudio.so.2 not found" });
  assert.equal(h.ctl(fd, MicCtl.LIST_DEVICES).rc, -EIO);
});

// ---------------------------------------------------------------- pacing

Deno.test("mic pacing: frames follow the start time, late timers catch up, no drift over 10 min", () => {
  let now = 1000;
  const queue: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      queue.push({ at: now + ms, fn, id: ++ids });
      return ids;
    },
    clearTimeout: (id) => {
      const i = queue.findIndex((t) => t.id === id);
      if (i >= 0) queue.splice(i, 1);
    },
  };
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const emittedAt: number[] = [];
  const frameMs = 20;
  const paced = pace({
    next: () => new Uint8Array(1),
    frameMs,
    timers,
    emit: () => emittedAt.push(now),
    onEnd: () => assert.fail("the stub never ends"),
  });
  const start = 1000;
  const end = start + 10 * 60 * 1000;
  while (queue.length && now < end) {
    const t = queue.shift()!;
    // Timers fire late by 0–30 ms, sometimes by 300 ms (a busy event loop).
    now = Math.max(now, t.at + (random() < 0.01 ? 300 : random() * 30));
    t.fn();
    // Never ahead, never more than the lateness behind.
    assert.equal(emittedAt.length, Math.floor((now - start) / frameMs));
  }
  paced.stop();
  assert.equal(queue.length, 0, "stop cancels the timer");
  for (let k = 0; k < emittedAt.length; k++) assert.ok(emittedAt[k] >= start + (k + 1) * frameMs);
  const frames = emittedAt.length;
  assert.ok(Math.abs(frames - 30000) <= 16, `${frames} frames in 10 minutes`);
});

// ---------------------------------------------------------------- guests: stub source

/** mic_checks' expected results: return codes, or 0/1 for checks. */
const CHECKS: Record<string, number> = {
  bad_json: -EINVAL,
  not_object: -EINVAL,
  empty: -EINVAL,
  rate_low: -EINVAL,
  rate_high: -EINVAL,
  rate_type: -EINVAL,
  rate_float: -EINVAL,
  channels_zero: -EINVAL,
  channels_high: -EINVAL,
  frame_ms_zero: -EINVAL,
  frame_ms_high: -EINVAL,
  format: -EINVAL,
  source: -EINVAL,
  drop_policy: -EINVAL,
  queue_small: -EINVAL,
  queue_type: -EINVAL,
  device_type: -EINVAL,
  device_name_type: -EINVAL,
  fallback_type: -EINVAL,
  loop_type: -EINVAL,
  stub_invalid: -EINVAL,
  stub_unpadded: -EINVAL,
  stub_type: -EINVAL,
  queue_one_frame: 0,
  stub_10mib: 0,
  stub_over_10mib: -EINVAL,
  bad_cmd: -EINVAL,
  cap_kept_too_small: -EINVAL,
  set_stub: 0,
  read_empty: -EAGAIN,
  epoll_in: 1,
  read_enospc: -ENOSPC,
  enospc_len: 3200,
  read_ok: 3200,
  frame0_first: 0, // -ENOSPC did not lose frame 0
  frame0_last: 1599,
  status_enospc: -ENOSPC,
  status_needed_gt8: 1,
  fd_kind_mic: 1,
  fd_metrics: 1,
  wrong_kind_read: -EBADF,
  wrong_kind_ctl: -EBADF,
  unknown_fd_read: -EBADF,
  read_bad_len_ptr: -EFAULT,
  epoll_in_again: 1,
  read_bad_ptr: -EFAULT,
  read_after_fault: 3200,
  frame1_first: 1600, // nor did -EFAULT lose frame 1
  close: 0,
  hup_after_close: 1,
  read_closed: -EBADF,
  ctl_closed: -EBADF,
  close_twice: 0,
};

Deno.test("mic guest: the ABI case by case (mic_checks), and close stops the driver", async () => {
  const config = defaultConfig();
  const driver = micDriver(config);
  let afterClose: Promise<{ active: number; sentDelta: number }> | undefined;
  const stub = bytesOf(ramp(8000)).toBase64();
  const run = await runGuest(MIC_CHECKS, [stub], {
    config,
    driver,
    onLog: (line) => {
      if (line !== "closed") return;
      const sentAtClose = driver.framesSent;
      afterClose = new Promise((resolve) =>
        setTimeout(
          () => resolve({ active: driver.activeCaptures, sentDelta: driver.framesSent - sentAtClose }),
          250,
        )
      );
    },
  });
  assert.equal(run.exitCode, 0, JSON.stringify(run));
  assert.equal(run.logs.at(-1), "done");
  const got = new Map<string, number>();
  for (const line of run.logs) {
    const m = /^(\w+) (-?\d+)$/.exec(line);
    if (m) got.set(m[1], Number(m[2]));
  }
  const wrong = Object.entries(CHECKS).filter(([k, v]) => got.get(k) !== v).map(([k, v]) =>
    `${k}: got ${got.get(k)}, want ${v}`
  );
  assert.deepEqual(wrong, []);
  assert.deepEqual([...got.keys()].filter((k) => !(k in CHECKS)), []);

  // GET_STATUS: SPEAR's fields in SPEAR's order, then ours.
  const before = logged(run.logs, "status_before");
  assert.deepEqual(Object.keys(before).slice(0, 7), [
    "running",
    "last_error",
    "queue_bytes",
    "max_queue_bytes",
    "dropped_frames",
    "generation",
    "config",
  ]);
  assert.deepEqual(
    [
      before.running,
      before.last_error,
      before.queue_bytes,
      before.max_queue_bytes,
      before.generation,
      before.config,
    ],
    [false, null, 0, 524288, 0, null],
  );
  const stubStatus = logged(run.logs, "status_stub");
  assert.deepEqual(stubStatus.config, { sample_rate_hz: 8000, channels: 1, frame_ms: 200, format: "pcm16" });
  assert.deepEqual([stubStatus.running, stubStatus.generation, stubStatus.source], [true, 3, "stub"]);
  assert.deepEqual(stubStatus.ignored_fields, ["extra_field", "device.id"]);

  // The capture stopped with mic_close: nothing sent after it, no capture left.
  assert.ok(afterClose, "the guest logged 'closed'");
  assert.deepEqual(await afterClose, { active: 0, sentDelta: 0 });
});

Deno.test("mic guest: stub_pcm16_base64 loops byte-exact across frame boundaries; zeros otherwise", async () => {
  const pattern = new Uint8Array(1001); // odd: frames cut it anywhere, even mid-sample
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 37 + 11) & 0xff;
  const json = JSON.stringify({
    source: "stub",
    sample_rate_hz: 16000,
    frame_ms: 20,
    stub_pcm16_base64: pattern.toBase64(),
  });
  const run = await runGuest(MIC_DUMP, [json, "8"]);
  assert.equal(run.exitCode, 0, run.logs.join("\n"));
  assert.equal(run.stdout.length, 8 * 640);
  for (let i = 0; i < run.stdout.length; i++) {
    if (run.stdout[i] !== pattern[i % pattern.length]) assert.fail(`byte ${i} differs`);
  }
  // Zeros and frame sizing: rate * frame_ms / 1000 * channels * 2, floor as SPEAR.
  for (const [rate, ch, ms] of [[24000, 1, 20], [44100, 2, 10], [11025, 1, 10], [48000, 8, 5]]) {
    const r = await runGuest(MIC_DUMP, [
      JSON.stringify({ source: "stub", sample_rate_hz: rate, channels: ch, frame_ms: ms }),
      "3",
    ]);
    const size = Math.floor((rate * ms) / 1000) * ch * 2;
    assert.equal(r.stdout.length, 3 * size, `${rate}/${ch}/${ms}`);
    assert.ok(r.stdout.every((b) => b === 0));
    assert.equal(logged(r.logs, "status").frame_bytes, size);
  }
});

Deno.test("mic guest: real-time pacing, and the driver stops when the guest ends without closing", async () => {
  const config = defaultConfig();
  const driver = micDriver(config);
  const run = await runGuest(MIC_DUMP, ['{"source":"stub","frame_ms":20}', "25"], { config, driver });
  // 25 frames of 20 ms: half a second of audio takes half a second to capture.
  const metrics = logged(run.logs, "metrics");
  assert.equal(metrics.frames_read, 25);
  assert.ok(run.durationMs >= 480, `${run.durationMs} ms`);
  const status = logged(run.logs, "status");
  assert.ok((status.captured_frames as number) <= 26, "no burst ahead of the clock");

  // status_only exits with the capture running and the fd open.
  const ended = await runGuest(MIC_DUMP, ['{"source":"stub"}', "0", "status_only"], { config, driver });
  assert.equal(ended.exitCode, 0);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(driver.activeCaptures, 0);
});

/** Overflow: a guest that sleeps 600 ms while 10 ms frames pile into a 10-frame queue. */
async function overflow(policy: "drop_oldest" | "drop_newest") {
  const frames = 256;
  const pattern = new Int16Array(frames * 80); // 8 kHz, 10 ms: 80 samples; frame k holds k
  for (let k = 0; k < frames; k++) pattern.fill(k, k * 80, (k + 1) * 80);
  const json = JSON.stringify({
    source: "stub",
    sample_rate_hz: 8000,
    frame_ms: 10,
    max_queue_bytes: 1600,
    drop_policy: policy,
    stub_pcm16_base64: bytesOf(pattern).toBase64(),
  });
  const run = await runGuest(MIC_DUMP, [json, "10", "sleep=600"]);
  assert.equal(run.exitCode, 0, run.logs.join("\n"));
  const ids = Array.from({ length: 10 }, (_, i) => int16(run.stdout.subarray(i * 160, (i + 1) * 160)));
  for (const f of ids) assert.ok(f.every((v) => v === f[0]), "whole frames");
  const status = logged(run.logs, "status");
  const metrics = logged(run.logs, "metrics");
  return { first: ids.map((f) => f[0]), status, metrics };
}

Deno.test("mic guest: overflow with drop_oldest keeps the newest frames and counts the drops", async () => {
  const { first, status, metrics } = await overflow("drop_oldest");
  const dropped = status.dropped_frames as number;
  assert.ok(dropped >= 40, `dropped ${dropped}`);
  assert.equal(metrics.dropped_frames, dropped);
  assert.equal(first[0], dropped % 256, "the oldest frames went");
  for (let i = 1; i < 10; i++) assert.equal(first[i], (first[0] + i) % 256, "then consecutive");
  assert.ok(
    Math.abs((status.captured_frames as number) - 60) <= 8,
    `captured ${status.captured_frames} in ~600 ms`,
  );
});

Deno.test("mic guest: overflow with drop_newest keeps the first frames and counts the drops", async () => {
  const { first, status, metrics } = await overflow("drop_newest");
  assert.deepEqual(first, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.ok((status.dropped_frames as number) >= 40, `dropped ${status.dropped_frames}`);
  assert.equal(metrics.dropped_frames, status.dropped_frames);
  assert.equal(status.drop_policy, "drop_newest");
});

// ---------------------------------------------------------------- guests: file source

async function withFile<T>(
  name: string,
  bytes: Uint8Array,
  fn: (config: HostConfig) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "spear_micfile_" });
  try {
    const path = `${dir}/${name}`;
    await Deno.writeFile(path, bytes);
    return await fn({ ...defaultConfig(), mic: { file: path } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("mic guest: file source plays a WAV sample-exact, then EPOLLHUP after a short last frame", async () => {
  const samples = ramp(8100, -4000); // 25 frames of 320 samples + 100
  const wav = encodeWav({ sampleRate: 16000, channels: 1, format: "int16", data: bytesOf(samples) });
  await withFile("a.wav", wav, async (config) => {
    const run = await runGuest(MIC_DUMP, ['{"source":"file","sample_rate_hz":16000}', "1000"], { config });
    assert.equal(run.exitCode, 0, run.logs.join("\n"));
    assert.deepEqual(int16(run.stdout), samples);
    assert.equal(loggedValue(run.logs, "frames="), "26 bytes=16200 end=hup");
    const status = logged(run.logs, "status");
    assert.deepEqual([status.running, status.eof, status.source, status.last_error], [
      false,
      true,
      "file",
      null,
    ]);
    assert.equal(status.device, "a.wav");
    assert.deepEqual(status.native, { sample_rate_hz: 16000, channels: 1, format: "int16" });
  });
});

Deno.test("mic guest: file source mixes stereo to mono exactly and loops seamlessly", async () => {
  const frames = 4800; // 0.1 s at 48 kHz
  const stereo = new Int16Array(frames * 2);
  for (let i = 0; i < frames; i++) {
    stereo[2 * i] = (i * 13) % 20000 - 10000;
    stereo[2 * i + 1] = (i * 7) % 3001 - 1500;
  }
  const mono = Int16Array.from(
    { length: frames },
    (_, i) => Math.round((stereo[2 * i] + stereo[2 * i + 1]) / 2),
  );
  const wav = encodeWav({ sampleRate: 48000, channels: 2, format: "int16", data: bytesOf(stereo) });
  await withFile("s.wav", wav, async (config) => {
    // 10 ms frames of 480 samples; 25 frames = 2.5 passes over the file.
    const json = '{"source":"file","sample_rate_hz":48000,"channels":1,"frame_ms":10,"loop":true}';
    const run = await runGuest(MIC_DUMP, [json, "25"], { config });
    assert.equal(run.exitCode, 0, run.logs.join("\n"));
    const got = int16(run.stdout);
    assert.equal(got.length, 25 * 480);
    for (let i = 0; i < got.length; i++) if (got[i] !== mono[i % frames]) assert.fail(`sample ${i}`);
    const status = logged(run.logs, "status");
    assert.deepEqual([status.running, status.eof, status.loop], [true, false, true]);
  });
});

Deno.test("mic guest: a raw file is 16 kHz mono PCM16; resampled to 24 kHz it keeps its tone", async () => {
  const tone = sine(440, 16000, 16000);
  await withFile("t.raw", bytesOf(tone), async (config) => {
    const exact = await runGuest(MIC_DUMP, ['{"source":"file","sample_rate_hz":16000,"frame_ms":20}', "10"], {
      config,
    });
    assert.deepEqual(int16(exact.stdout), tone.subarray(0, 3200));

    const run = await runGuest(MIC_DUMP, ['{"source":"file","sample_rate_hz":24000,"frame_ms":20}', "40"], {
      config,
    });
    assert.equal(run.exitCode, 0, run.logs.join("\n"));
    const got = int16(run.stdout);
    assert.equal(got.length, 40 * 480);
    const reference = lerpResample(tone, 16000, 24000).subarray(0, got.length);
    const corr = bestCorrelation(got.subarray(100), reference.subarray(100), 40);
    assert.ok(corr > 0.999, `correlation ${corr}`);
    const ratio = energy(got.subarray(1000)) / energy(reference.subarray(1000, got.length));
    assert.ok(Math.abs(ratio - 1) < 0.02, `energy ratio ${ratio}`);
  });
});

Deno.test("mic guest: a missing mic.file is -EIO with last_error, or the stub with fallback", async () => {
  const noFile = await runGuest(MIC_DUMP, ['{"source":"file","fallback":{"to_stub":false}}', "1"]);
  assert.equal(noFile.exitCode, 3);
  assert.equal(loggedValue(noFile.logs, "set_param rc="), String(-EIO));
  assert.equal(loggedValue(noFile.logs, "events="), "0x8");
  assert.equal(logged(noFile.logs, "status").last_error, "the host config names no mic.file");
  const config = { ...defaultConfig(), mic: { file: "/nonexistent/dir/gone.wav" } };
  const gone = await runGuest(MIC_DUMP, ['{"source":"file","fallback":{"to_stub":false}}', "1"], { config });
  assert.equal(gone.exitCode, 3);
  assert.equal(logged(gone.logs, "status").last_error, "mic.file gone.wav: no such file"); // no host path

  await withFile("bad.wav", encoder.encode("RIFF\0\0\0\0WAVEjunk"), async (config) => {
    const run = await runGuest(MIC_DUMP, ['{"source":"file"}', "2"], { config });
    assert.equal(run.exitCode, 0, run.logs.join("\n"));
    assert.ok(run.stdout.every((b) => b === 0));
    const status = logged(run.logs, "status");
    assert.deepEqual([status.source, status.requested_source, status.fallback, status.last_error], [
      "stub",
      "file",
      true,
      null,
    ]);
    assert.match(status.fallback_reason as string, /bad\.wav: WAV file has no fmt chunk/);
  });
});

// ---------------------------------------------------------------- real PortAudio capture (subprocess)

async function withVirtualMic(
  opts: Parameters<typeof createVirtualMic>[0],
  fn: (mic: VirtualMic) => Promise<void>,
): Promise<void> {
  const mic = await createVirtualMic(opts);
  try {
    await fn(mic);
  } finally {
    await mic.cleanup();
  }
}

Deno.test({
  name: "mic device: PortAudio capture through the ALSA virtual device is sample-exact",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, text: "one two three four five" }, async (mic) => {
      const json = '{"source":"device","sample_rate_hz":16000,"frame_ms":20,"fallback":{"to_stub":false}}';
      const r = await runCli(["run", MIC_DUMP, "--", json, "50"], mic.env, mic.dir);
      assert.equal(r.code, 0, r.stderr);
      const got = int16(r.stdout);
      assert.equal(got.length, 50 * 320);
      assert.ok(mic.frames >= got.length, "the file is longer than the capture");
      assert.deepEqual(got, mic.samples.subarray(0, got.length));
      const status = logged(r.logs, "status");
      assert.deepEqual([status.source, status.device, status.dropped_frames, status.last_error], [
        "device",
        "default",
        0,
        null,
      ]);
      assert.deepEqual(status.native, { sample_rate_hz: 16000, channels: 1, format: "int16" });
    }),
});

Deno.test({
  name: "mic device: closing the fd mid-capture stops and closes the PortAudio stream",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, samples: sine(300, 16000, 32000) }, async (mic) => {
      // A host in a child process (ALSA_CONFIG_PATH must precede Pa_Initialize) that reports
      // the driver's captures once the guest has closed its fd after 5 of ~100 frames.
      const script = `${mic.dir}/close_probe.ts`;
      await Deno.writeTextFile(
        script,
        `import { defaultConfig } from ${JSON.stringify(`${root}/host/config.ts`)};
import { SpearHost } from ${JSON.stringify(`${root}/host/host.ts`)};
import { micDriver } from ${JSON.stringify(`${root}/families/mic/driver.ts`)};
const config = defaultConfig();
const driver = micDriver(config);
const host = new SpearHost({ config, drivers: [driver], logSink: () => {} });
const json = '{"source":"device","sample_rate_hz":16000,"fallback":{"to_stub":false}}';
const r = await host.run(${JSON.stringify(MIC_DUMP)}, { args: [json, "5"], stdoutFile: "/dev/null" });
const sent = driver.framesSent;
const t0 = performance.now();
while (driver.activeCaptures > 0 && performance.now() - t0 < 2000) await new Promise((ok) => setTimeout(ok, 10));
await new Promise((ok) => setTimeout(ok, 200));
console.log(JSON.stringify({ exit: r.exitCode, active: driver.activeCaptures, sent, later: driver.framesSent - sent }));
host.close();
`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        env: mic.env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, decoder.decode(out.stderr));
      const result = JSON.parse(decoder.decode(out.stdout).trim().split("\n").pop()!);
      assert.equal(result.exit, 0);
      assert.equal(result.active, 0, "the capture (and its stream) is closed");
      assert.equal(result.later, 0, "no frame after the close");
      assert.ok(result.sent >= 5 && result.sent <= 8, `${result.sent} frames sent`);
    }),
});

Deno.test({
  name: "mic device: 16 kHz capture resampled to 24 kHz matches the speech (correlation, energy)",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic(
      { sampleRate: 16000, channels: 1, text: "resampling the spear microphone" },
      async (mic) => {
        const json = '{"source":"device","sample_rate_hz":24000,"frame_ms":20,"fallback":{"to_stub":false}}';
        const r = await runCli(["run", MIC_DUMP, "--", json, "60"], mic.env, mic.dir);
        assert.equal(r.code, 0, r.stderr);
        const got = int16(r.stdout);
        assert.equal(got.length, 60 * 480);
        const reference = lerpResample(mic.samples, 16000, 24000).subarray(0, got.length);
        const corr = bestCorrelation(got, reference, 60);
        assert.ok(corr > 0.95, `correlation ${corr}`);
        const ratio = energy(got) / energy(reference);
        assert.ok(ratio > 0.8 && ratio < 1.2, `energy ratio ${ratio}`);
      },
    ),
});

Deno.test({
  name: "mic device: unknown device is -EIO + EPOLLERR + last_error, or the stub by fallback; LIST_DEVICES",
  ignore: !haveTools,
  fn: () =>
    withVirtualMic({ sampleRate: 16000, channels: 1, samples: ramp(16000) }, async (mic) => {
      const strict = await runCli(
        ["run", MIC_DUMP, "--", '{"device":{"name":"nope"},"fallback":{"to_stub":false}}', "1"],
        mic.env,
        mic.dir,
      );
      assert.equal(strict.code, 3, strict.stderr);
      assert.equal(loggedValue(strict.logs, "set_param rc="), String(-EIO));
      assert.equal(loggedValue(strict.logs, "events="), "0x8");
      const status = logged(strict.logs, "status");
      assert.equal(status.last_error, 'no input device named "nope" (available: "default")');
      assert.equal(status.running, false);

      const loose = await runCli(
        ["run", MIC_DUMP, "--", '{"device":{"name":"nope"}}', "2"],
        mic.env,
        mic.dir,
      );
      assert.equal(loose.code, 0, loose.stderr);
      assert.ok(loose.stdout.length === 2 * 960 && loose.stdout.every((b) => b === 0));
      const fell = logged(loose.logs, "status");
      assert.deepEqual([fell.source, fell.requested_source, fell.fallback, fell.last_error], [
        "stub",
        "device",
        true,
        null,
      ]);
      assert.match(fell.fallback_reason as string, /no input device named "nope"/);

      const expected = [{
        name: "default",
        index: 0,
        max_input_channels: 128,
        default_sample_rate: 16000,
        host_api: "ALSA",
        is_default: true,
      }];
      const listed = await runCli(["run", MIC_DUMP, "--", "{}", "0", "list"], mic.env, mic.dir);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(JSON.parse(loggedValue(listed.logs, "devices ")), expected);

      // `deno task spear devices`: through the launcher and its narrowed permissions.
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-env", "--allow-run", `${root}/cli/launcher.ts`, "devices"],
        env: mic.env,
        cwd: mic.dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, decoder.decode(out.stderr));
      assert.deepEqual(JSON.parse(decoder.decode(out.stdout)), expected);
    }),
});
