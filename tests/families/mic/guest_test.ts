/**
 * The mic family end to end with C guests (tests/guests/mic_checks.c, mic_dump.c) under real
 * Wasmtime in this process, through SpearHost and the mic driver: the ABI case by case, the
 * stub source (byte-exact loops, frame sizing, real-time pacing, overflow under both drop
 * policies, the capture stopping when the guest closes its fd or ends), and the file source
 * (WAV and raw PCM16, mixing, looping, resampling, missing or broken files).
 */
import assert from "node:assert/strict";
import { Errno } from "../../../runtime/abi.ts";
import { defaultConfig, type HostConfig } from "../../../host/config.ts";
import { encodeWav } from "../../../host/audio/wav.ts";
import { micDriver } from "../../../families/mic/driver.ts";
import {
  bestCorrelation,
  bytesOf,
  energy,
  int16,
  lerpResample,
  logged,
  loggedValue,
  MIC_CHECKS,
  MIC_DUMP,
  ramp,
  runGuest,
  sine,
} from "../../support/mic.ts";

const { EAGAIN, EBADF, EFAULT, EINVAL, EIO, ENOSPC } = Errno;

const encoder = new TextEncoder();

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
