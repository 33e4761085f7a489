/**
 * Native and audio layers under the mic family's driver: PortAudio (real capture through the
 * ALSA virtual device), libsamplerate, the streaming converter/framer, and WAV parsing.
 */
import assert from "node:assert/strict";
import * as pa from "../../../ffi/portaudio.ts";
import * as src from "../../../ffi/samplerate.ts";
import {
  AudioConverter,
  frameBytes,
  frameSamples,
  mixFloat32,
  mixInt16,
} from "../../../host/audio/convert.ts";
import {
  encodeWav,
  parseAudio,
  parseRawPcm16,
  parseWav,
  readAudioFile,
  WavError,
} from "../../../host/audio/wav.ts";
import {
  alsaConfig,
  createVirtualMic,
  decodeProbeSamples,
  hasVirtualMicTools,
  runCaptureProbe,
} from "../../support/alsa_virtual.ts";

const haveTools = await hasVirtualMicTools();

// ---------------------------------------------------------------- helpers

function sine(
  freq: number,
  rate: number,
  seconds: number,
  amp = 0.5,
  channels = 1,
): Float32Array<ArrayBuffer> {
  const n = Math.round(rate * seconds);
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    const v = amp * Math.sin((2 * Math.PI * freq * i) / rate);
    for (let c = 0; c < channels; c++) out[i * channels + c] = v;
  }
  return out;
}

function concatBytes(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function asInt16(b: Uint8Array): Int16Array {
  return new Int16Array(b.slice().buffer);
}

function asFloat32(b: Uint8Array): Float32Array {
  return new Float32Array(b.slice().buffer);
}

/** Frequency from rising zero crossings over [from, to). */
function zeroCrossingFreq(x: ArrayLike<number>, rate: number, from: number, to: number): number {
  let first = -1, last = -1, count = 0;
  for (let i = from + 1; i < to; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      // linear interpolation of the crossing instant
      const t = i - 1 + -x[i - 1] / (x[i] - x[i - 1]);
      if (first < 0) first = t;
      else count++;
      last = t;
    }
  }
  return (count * rate) / (last - first);
}

/** Goertzel power of `freq` in x[from, to), normalised to amplitude. */
function goertzelAmp(x: ArrayLike<number>, rate: number, freq: number, from: number, to: number): number {
  const n = to - from;
  const w = (2 * Math.PI * freq) / rate;
  const c = 2 * Math.cos(w);
  let s1 = 0, s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = x[i] + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return (2 * Math.sqrt(Math.max(power, 0))) / n;
}

function rms(x: ArrayLike<number>, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / (to - from));
}

/** Feeds `input` in chunks of the given (cycled) sizes, then flushes. */
function pushChunked(conv: AudioConverter, input: Float32Array, sizes: number[], channels = 1): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let off = 0, k = 0;
  while (off < input.length) {
    const n = Math.min(sizes[k++ % sizes.length] * channels, input.length - off);
    frames.push(...conv.push(input.slice(off, off + n)));
    off += n;
  }
  frames.push(...conv.flush());
  return frames;
}

// ---------------------------------------------------------------- PortAudio

Deno.test("portaudio: missing library gives a clear error, version text is available", () => {
  assert.throws(
    () => pa.dlopenPortAudio("libportaudio-does-not-exist.so.2"),
    /libportaudio-does-not-exist\.so\.2 not found: install libportaudio2/,
  );
  assert.match(pa.getVersionText(), /^PortAudio V19/);
  assert.ok(pa.getVersion() >= 0x130600);
  assert.equal(pa.getErrorText(pa.PaErrorCode.paInvalidDevice), "Invalid device");
});

Deno.test("portaudio: struct encoding and argument checks never reach native code", async () => {
  const p = pa.encodeStreamParameters({
    device: 3,
    channelCount: 2,
    sampleFormat: pa.paFloat32,
    suggestedLatency: 0.25,
  });
  const dv = new DataView(p.buffer);
  assert.equal(p.length, 32);
  assert.equal(dv.getInt32(0, true), 3);
  assert.equal(dv.getInt32(4, true), 2);
  assert.equal(dv.getBigUint64(8, true), 1n);
  assert.equal(dv.getFloat64(16, true), 0.25);
  assert.equal(dv.getBigUint64(24, true), 0n);
  assert.equal(pa.sampleSize(pa.paInt16), 2);
  assert.throws(() => pa.sampleSize(0x20), /unsupported PaSampleFormat/);
  // A handle whose pointer must never be dereferenced: the checks reject first.
  const fake: pa.PaInputStream = {
    ptr: Deno.UnsafePointer.create(1n)!,
    channels: 2,
    sampleFormat: pa.paInt16,
    sampleRate: 16000,
    bytesPerFrame: 4,
    pending: null,
    closed: false,
  };
  await assert.rejects(pa.readStream(fake, new Uint8Array(399), 100), RangeError);
  await assert.rejects(pa.readStream(fake, new Uint8Array(400), 0), RangeError);
  fake.closed = true;
  assert.throws(() => pa.startStream(fake), /stream is closed/);
  pa.closeStream(fake); // second close is a no-op
});

Deno.test("portaudio: initialize/terminate in-process and PaError → Error with Pa_GetErrorText", () => {
  pa.initialize();
  try {
    assert.ok(pa.getDeviceCount() >= 0);
    assert.ok(pa.getHostApiCount() >= 1);
    const names = Array.from({ length: pa.getHostApiCount() }, (_, i) => pa.getHostApiInfo(i)?.name);
    assert.ok(names.includes("ALSA"), `host APIs: ${names}`);
    assert.equal(pa.getDeviceInfo(100000), null);
    assert.equal(pa.getHostApiInfo(1000), null);
    assert.equal(
      pa.isFormatSupported({ device: 100000, channelCount: 1, sampleFormat: pa.paInt16 }, 16000),
      -9996,
    );
    assert.throws(
      () =>
        pa.openInputStream({
          device: 100000,
          channelCount: 1,
          sampleFormat: pa.paInt16,
          suggestedLatency: 0.05,
        }, 16000),
      (e: unknown) => e instanceof pa.PortAudioError && e.code === -9996 && /Invalid device/.test(e.message),
    );
  } finally {
    pa.terminate();
  }
});

Deno.test({
  name: "portaudio: ALSA virtual device enumerates and captures the file's samples exactly (int16 mono)",
  ignore: !haveTools,
  fn: async () => {
    const mic = await createVirtualMic({ sampleRate: 16000, channels: 1, text: "testing one two three" });
    try {
      assert.ok(mic.frames > 8000, `speech too short: ${mic.frames}`);
      const r = await runCaptureProbe(mic, { frames: mic.frames, chunk: 320, format: "int16" });
      assert.equal(r.error, null, `${r.error}\n${r.stderr}`);
      const res = r.result!;
      // Enumeration: exactly one device, the ALSA "default" PCM at the file's rate.
      assert.equal(res.devices.length, 1);
      assert.equal(res.defaultInput, 0);
      const d = res.devices[0];
      assert.equal(d.name, "default");
      assert.equal(d.hostApiName, "ALSA");
      assert.ok(d.maxInputChannels >= 1);
      assert.equal(d.defaultSampleRate, 16000);
      assert.ok(d.defaultLowInputLatency > 0);
      // Capture: sample-exact from the first frame.
      const got = decodeProbeSamples(res) as Int16Array;
      assert.equal(got.length, mic.samples.length);
      assert.deepEqual(got, mic.samples);
      assert.equal(res.captured.overflows, 0);
      assert.ok(res.captured.nonZero > mic.frames / 4);
      // No clock behind the null slave: faster than real time.
      const seconds = mic.frames / mic.sampleRate;
      assert.ok(res.captured.elapsedMs < seconds * 1000, `${res.captured.elapsedMs} ms for ${seconds} s`);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "portaudio: stereo capture keeps channel order across odd-sized reads (exact in the file's format)",
  ignore: !haveTools,
  fn: async () => {
    const frames = 12345;
    const samples = new Int16Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      samples[2 * i] = i;
      samples[2 * i + 1] = -i - 1;
    }
    const mic = await createVirtualMic({ samples, sampleRate: 22050, channels: 2 });
    try {
      const r = await runCaptureProbe(mic, { frames, chunk: 317, channels: 2, format: "int16" });
      assert.equal(r.error, null, `${r.error}\n${r.stderr}`);
      assert.equal(r.result!.stream.sampleRate, 22050);
      assert.equal(r.result!.captured.reads, Math.ceil(frames / 317));
      assert.deepEqual(decodeProbeSamples(r.result!), samples);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "portaudio: a converted capture (float32 via ALSA plug) has exact values, in order, but may skip",
  ignore: !haveTools,
  fn: async () => {
    // Measured: when the client's format differs from the file's, ALSA's plug converts exactly
    // (s16/32768) but the file plugin reads ahead, so whole periods are skipped. What holds is
    // that every value is a converted file sample and the file order is kept.
    const frames = 12345;
    const samples = new Int16Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      samples[2 * i] = i;
      samples[2 * i + 1] = -i - 1;
    }
    const mic = await createVirtualMic({ samples, sampleRate: 16000, channels: 2 });
    try {
      const f = await runCaptureProbe(mic, { frames: 6000, chunk: 1000, channels: 2, format: "float32" });
      assert.equal(f.error, null, `${f.error}\n${f.stderr}`);
      const got = decodeProbeSamples(f.result!) as Float32Array;
      assert.equal(got.length, 12000);
      let prev = -1;
      for (let i = 0; i < got.length; i += 2) {
        const l = got[i] * 32768, r = got[i + 1] * 32768;
        if (!Number.isInteger(l) || r !== -l - 1) assert.fail(`frame ${i / 2}: ${l}, ${r}`);
        if (l <= prev) assert.fail(`frame ${i / 2}: ${l} after ${prev}`);
        prev = l;
      }
      assert.equal(got[0], 0); // the first read starts at the file's beginning
      assert.equal(got[2 * 999] * 32768, 999);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test({
  name: "portaudio: captured speech converts to 24 kHz pcm16 20 ms frames",
  ignore: !haveTools,
  fn: async () => {
    const mic = await createVirtualMic({ sampleRate: 16000, channels: 1, padSeconds: 0.1 });
    try {
      const r = await runCaptureProbe(mic, { frames: mic.frames, chunk: 256 });
      assert.equal(r.error, null, `${r.error}\n${r.stderr}`);
      const bytes = Uint8Array.from(atob(r.result!.captured.base64), (c) => c.charCodeAt(0));
      const conv = new AudioConverter({ sampleRate: 16000, channels: 1, format: "int16" }, {
        sample_rate_hz: 24000,
        channels: 1,
        format: "pcm16",
        frame_ms: 20,
      });
      const frames: Uint8Array[] = [];
      for (let o = 0; o < bytes.length; o += 640) frames.push(...conv.push(bytes.subarray(o, o + 640)));
      frames.push(...conv.flush());
      conv.close();
      const expectedSamples = Math.round((mic.frames * 24000) / 16000);
      const total = frames.reduce((a, f) => a + f.length, 0) / 2;
      assert.ok(Math.abs(total - expectedSamples) <= 1, `${total} vs ${expectedSamples}`);
      for (const f of frames.slice(0, -1)) assert.equal(f.length, 960);
      const out = asInt16(concatBytes(frames));
      const rIn = rms(mic.samples, 0, mic.samples.length), rOut = rms(out, 0, out.length);
      assert.ok(Math.abs(rOut / rIn - 1) < 0.05, `rms ${rIn} → ${rOut}`);
    } finally {
      await mic.cleanup();
    }
  },
});

Deno.test("alsa_virtual: config text is a plug over a file PCM with a null slave", () => {
  const text = alsaConfig('/tmp/a "b"/mic.raw', 24000, 2);
  assert.match(text, /pcm\.!default \{\n {2}type plug/);
  assert.match(text, /type file\n {6}slave\.pcm \{ type null \}\n {6}file "\/dev\/null"/);
  assert.match(text, /infile "\/tmp\/a \\"b\\"\/mic\.raw"/);
  assert.match(text, /format S16_LE\n {4}rate 24000\n {4}channels 2/);
});

// ---------------------------------------------------------------- libsamplerate

Deno.test("samplerate: constants, SRC_DATA layout, errors", () => {
  assert.deepEqual(
    [
      src.SRC_SINC_BEST_QUALITY,
      src.SRC_SINC_MEDIUM_QUALITY,
      src.SRC_SINC_FASTEST,
      src.SRC_ZERO_ORDER_HOLD,
      src.SRC_LINEAR,
    ],
    [0, 1, 2, 3, 4],
  );
  assert.equal(src.srcGetName(src.SRC_SINC_MEDIUM_QUALITY), "Medium Sinc Interpolator");
  assert.equal(src.srcGetName(src.SRC_LINEAR), "Linear Interpolator");
  assert.match(src.srcGetVersion(), /libsamplerate-0\.2/);
  assert.throws(() => src.dlopenSampleRate("libsamplerate-nope.so.0"), /not found: install libsamplerate0/);

  const a = new Float32Array(8), b = new Float32Array(16);
  const d = new DataView(
    src.encodeSrcData({
      dataIn: a,
      dataOut: b,
      inputFrames: 4,
      outputFrames: 8,
      srcRatio: 1.5,
      endOfInput: true,
      channels: 2,
    })
      .buffer,
  );
  assert.equal(d.getBigUint64(0, true), BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a))));
  assert.equal(d.getBigUint64(8, true), BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b))));
  assert.equal(d.getBigInt64(16, true), 4n);
  assert.equal(d.getBigInt64(24, true), 8n);
  assert.equal(d.getInt32(48, true), 1);
  assert.equal(d.getFloat64(56, true), 1.5);

  assert.throws(
    () => src.srcNew(99, 1),
    (e: unknown) => e instanceof src.SampleRateError && /src_new/.test(e.message),
  );
  assert.equal(src.srcStrerror(0), "No error.");
  const st = src.srcNew(src.SRC_LINEAR, 1);
  try {
    // Bounds are checked before the native call.
    assert.throws(
      () =>
        src.srcProcess(st, {
          dataIn: a,
          dataOut: b,
          inputFrames: 9,
          outputFrames: 8,
          srcRatio: 1,
          endOfInput: false,
          channels: 1,
        }),
      RangeError,
    );
    // A bad ratio is reported by libsamplerate itself.
    assert.throws(
      () =>
        src.srcProcess(st, {
          dataIn: a,
          dataOut: b,
          inputFrames: 8,
          outputFrames: 16,
          srcRatio: 1000,
          endOfInput: false,
          channels: 1,
        }),
      src.SampleRateError,
    );
    src.srcReset(st);
  } finally {
    src.srcDelete(st);
  }
});

Deno.test("resample 48k → 24k: frequency and amplitude preserved, output length exact", () => {
  const input = sine(1000, 48000, 1, 0.5);
  const conv = new AudioConverter({ sampleRate: 48000, channels: 1, format: "float32" }, {
    sample_rate_hz: 24000,
    channels: 1,
    format: "f32le",
    frame_ms: 20,
  });
  assert.ok(conv.resampling);
  const frames = [...conv.push(input), ...conv.flush()];
  conv.close();
  const out = asFloat32(concatBytes(frames));
  assert.equal(out.length, 24000);
  for (const f of frames) assert.equal(f.length, 480 * 4);
  const from = 1000, to = 23000; // skip filter edges
  const f = zeroCrossingFreq(out, 24000, from, to);
  assert.ok(Math.abs(f - 1000) < 1, `zero-crossing frequency ${f}`);
  const amp = goertzelAmp(out, 24000, 1000, from, from + 21000); // 21000 = 875 whole periods
  assert.ok(Math.abs(amp - 0.5) < 0.005, `goertzel amplitude ${amp}`);
  assert.ok(Math.abs(rms(out, from, to) - 0.5 / Math.SQRT2) < 0.003);
  assert.ok(goertzelAmp(out, 24000, 3000, from, from + 21000) < 0.001, "no energy at an unrelated frequency");
});

Deno.test("resample 48k → 24k filters content above the new Nyquist (no aliasing)", () => {
  const conv = new AudioConverter({ sampleRate: 48000, channels: 1, format: "float32" }, {
    sample_rate_hz: 24000,
    channels: 1,
    format: "f32le",
  });
  const out = asFloat32(concatBytes([...conv.push(sine(15000, 48000, 0.5, 0.5)), ...conv.flush()]));
  conv.close();
  // A naive decimator would alias 15 kHz to 9 kHz at full amplitude.
  assert.ok(rms(out, 500, out.length - 500) < 0.005, `rms ${rms(out, 500, out.length - 500)}`);
});

Deno.test("resample streaming in odd-sized chunks equals one-shot (no boundary clicks)", () => {
  const input = sine(440, 48000, 0.7, 0.8);
  const make = () =>
    new AudioConverter({ sampleRate: 48000, channels: 1, format: "float32" }, {
      sample_rate_hz: 24000,
      channels: 1,
      format: "f32le",
      frame_ms: 10,
    });
  const a = make(), b = make();
  const oneShot = asFloat32(concatBytes([...a.push(input), ...a.flush()]));
  const streamed = asFloat32(concatBytes(pushChunked(b, input, [1, 333, 7, 4097, 160, 2, 999])));
  a.close();
  b.close();
  assert.equal(streamed.length, oneShot.length);
  let maxDiff = 0;
  for (let i = 0; i < oneShot.length; i++) maxDiff = Math.max(maxDiff, Math.abs(streamed[i] - oneShot[i]));
  assert.ok(maxDiff < 1e-6, `max diff ${maxDiff}`); // measured: bit-identical
  // No click: the largest step between samples stays at the sine's own slope.
  const maxStep = (2 * Math.PI * 440 * 0.8) / 24000;
  for (let i = 1000; i < streamed.length - 1000; i++) {
    if (Math.abs(streamed[i] - streamed[i - 1]) > maxStep * 1.05) assert.fail(`click at ${i}`);
  }
});

Deno.test("resample int16 stereo 44.1k → 16k mono pcm16, chunked bytes", () => {
  const f = sine(500, 44100, 1, 0.25, 2);
  const bytes = new Uint8Array(new Int16Array(Array.from(f, (v) => Math.round(v * 32768))).buffer);
  const conv = new AudioConverter({ sampleRate: 44100, channels: 2, format: "int16" }, {
    sample_rate_hz: 16000,
    channels: 1,
    format: "pcm16",
    frame_ms: 20,
  });
  const frames: Uint8Array[] = [];
  for (let o = 0, k = 0; o < bytes.length; k++) {
    const n = [13, 1001, 3, 4410][k % 4]; // odd byte counts split samples and frames
    frames.push(...conv.push(bytes.subarray(o, o + n)));
    o += n;
  }
  const body = frames.length;
  frames.push(...conv.flush());
  conv.close();
  for (const fr of frames.slice(0, body)) assert.equal(fr.length, 640);
  const out = asInt16(concatBytes(frames));
  assert.ok(Math.abs(out.length - 16000) <= 1, `${out.length} samples`); // libsamplerate rounds
  const freq = zeroCrossingFreq(out, 16000, 500, 15500);
  assert.ok(Math.abs(freq - 500) < 0.5, `freq ${freq}`);
  const amp = goertzelAmp(out, 16000, 500, 500, 15500) / 32768;
  assert.ok(Math.abs(amp - 0.25) < 0.003, `amp ${amp}`);
});

// ---------------------------------------------------------------- mixing and framing

Deno.test("channel mixing: exact values", () => {
  // stereo → mono: average, Math.round (halves go up)
  assert.deepEqual(
    mixInt16(new Int16Array([100, 201, -3, -4, 32767, 32767, -32768, -32768]), 2, 1),
    new Int16Array([151, -3, 32767, -32768]),
  );
  // mono → stereo: duplication
  assert.deepEqual(mixInt16(new Int16Array([1, -2, 3]), 1, 2), new Int16Array([1, 1, -2, -2, 3, 3]));
  // 3 → 2: out0 = avg(in0, in2), out1 = in1
  assert.deepEqual(
    mixInt16(new Int16Array([10, 20, 30, -1, -2, -4]), 3, 2),
    new Int16Array([20, 20, -2, -2]),
  ); // round(-2.5) = -2
  // 2 → 3: out2 = in0
  assert.deepEqual(mixInt16(new Int16Array([5, 6]), 2, 3), new Int16Array([5, 6, 5]));
  assert.deepEqual(mixFloat32(new Float32Array([0.25, 0.75, -1, 0]), 2, 1), new Float32Array([0.5, -0.5]));
  // identity returns the same samples
  const same = new Int16Array([1, 2]);
  assert.equal(mixInt16(same, 2, 2), same);

  // Through the converter at equal rates: integer domain, exact.
  const conv = new AudioConverter({ sampleRate: 8000, channels: 2, format: "int16" }, {
    sample_rate_hz: 8000,
    channels: 1,
    format: "pcm16",
    frame_ms: 1,
  });
  const inS = new Int16Array(16);
  for (let i = 0; i < 8; i++) {
    inS[2 * i] = i * 1001;
    inS[2 * i + 1] = -i * 10;
  }
  const out = conv.push(new Uint8Array(inS.buffer));
  assert.equal(out.length, 1);
  assert.deepEqual(
    asInt16(out[0]),
    new Int16Array(Array.from({ length: 8 }, (_, i) => Math.round((i * 1001 - i * 10) / 2))),
  );
  conv.close();
});

Deno.test("framer: exact frame sizes and sample-exact pass-through with carried leftovers", () => {
  assert.equal(frameSamples({ sample_rate_hz: 24000, channels: 1, format: "pcm16", frame_ms: 20 }), 480);
  assert.equal(frameBytes({ sample_rate_hz: 24000, channels: 1, format: "pcm16", frame_ms: 20 }), 960);
  assert.equal(frameBytes({ sample_rate_hz: 44100, channels: 2, format: "pcm16", frame_ms: 10 }), 1764);
  assert.equal(frameBytes({ sample_rate_hz: 16000, channels: 1, format: "f32le", frame_ms: 20 }), 1280);
  assert.equal(frameBytes({ sample_rate_hz: 11025, channels: 1, format: "pcm16", frame_ms: 10 }), 220); // floor(110.25)
  assert.equal(frameBytes({ sample_rate_hz: 16000, channels: 1, format: "pcm16", frame_ms: 0 }), 640); // 0 → 20 ms

  for (const [rate, ch, ms] of [[16000, 1, 20], [44100, 2, 10], [24000, 1, 30], [11025, 1, 10]]) {
    const total = rate * ch * 2; // one second of int16
    const input = new Uint8Array(total + 123);
    for (let i = 0; i < input.length; i++) input[i] = (i * 31 + (i >> 8)) & 0xff;
    const conv = new AudioConverter({ sampleRate: rate, channels: ch, format: "int16" }, {
      sample_rate_hz: rate,
      channels: ch,
      format: "pcm16",
      frame_ms: ms,
    });
    assert.equal(conv.resampling, false);
    const fb = conv.frameBytes;
    assert.equal(fb, Math.floor((rate * ms) / 1000) * ch * 2);
    const frames: Uint8Array[] = [];
    let o = 0;
    for (const n of [1, 3, 0, fb - 1, fb + 1, 7, 2 * fb + 5]) {
      frames.push(...conv.push(input.subarray(o, o + n)));
      o += n;
    }
    for (; o < input.length; o += 997) frames.push(...conv.push(input.subarray(o, o + 997)));
    for (const f of frames) assert.equal(f.length, fb);
    const tail = conv.flush();
    const wholeFrames = Math.floor(input.length / (ch * 2)) * ch * 2;
    assert.equal(frames.length, Math.floor(wholeFrames / fb));
    const all = concatBytes([...frames, ...tail]);
    assert.equal(all.length, wholeFrames); // a partial source frame is never emitted
    assert.deepEqual(all, input.subarray(0, wholeFrames));
    assert.ok(tail.length <= 1 && (tail.length === 0 || tail[0].length < fb));
    conv.close();
  }
});

Deno.test("converter: float32 source to pcm16 without resampling is clamp(round(x*32768))", () => {
  const conv = new AudioConverter({ sampleRate: 1000, channels: 1, format: "float32" }, {
    sample_rate_hz: 1000,
    channels: 1,
    format: "pcm16",
    frame_ms: 8,
  });
  const x = new Float32Array([0, 0.5, -0.5, 1, -1, 1.5, -2, 1 / 32768]);
  const bytes = new Uint8Array(x.buffer);
  const out = [...conv.push(bytes.subarray(0, 5)), ...conv.push(bytes.subarray(5))];
  assert.equal(out.length, 1);
  assert.deepEqual(asInt16(out[0]), new Int16Array([0, 16384, -16384, 32767, -32768, 32767, -32768, 1]));
  // Typed arrays describe themselves: Int16Array into a float32-declared source works too.
  assert.deepEqual(
    asInt16(conv.push(new Int16Array([1, 2, 3, 4, 5, 6, 7, 8]))[0]),
    new Int16Array([1, 2, 3, 4, 5, 6, 7, 8]),
  );
  conv.close();
});

Deno.test("converter: reset drops buffered audio, close frees and is idempotent, bad configs rejected", () => {
  const conv = new AudioConverter({ sampleRate: 48000, channels: 2, format: "int16" }, {
    sample_rate_hz: 24000,
    channels: 1,
    format: "pcm16",
  });
  assert.equal(conv.frameBytes, 960);
  assert.deepEqual(conv.push(new Uint8Array(1001)), []); // < one output frame, 1 byte carried
  conv.reset();
  const after = [...conv.push(new Uint8Array(48000 * 4 * 0.1)), ...conv.flush()];
  assert.equal(after.reduce((a, f) => a + f.length, 0), 2400 * 2); // exactly 100 ms
  conv.close();
  conv.close();
  assert.ok(conv.closed);
  assert.throws(() => conv.push(new Uint8Array(4)), /closed/);

  const s = { sampleRate: 16000, channels: 1, format: "int16" as const };
  const o = { sample_rate_hz: 16000, channels: 1, format: "pcm16" as const, frame_ms: 20 };
  assert.throws(() => new AudioConverter({ ...s, sampleRate: 0 }, o), RangeError);
  assert.throws(() => new AudioConverter({ ...s, channels: 1.5 }, o), RangeError);
  assert.throws(() => new AudioConverter({ ...s, format: "int8" as never }, o), /source format/);
  assert.throws(() => new AudioConverter(s, { ...o, format: "opus" as never }), /format must be/);
  assert.throws(() => new AudioConverter(s, { ...o, channels: 0 }), /channels/);
  assert.throws(
    () => new AudioConverter(s, { ...o, sample_rate_hz: 100, frame_ms: 1 }),
    /shorter than one sample/,
  );
  assert.throws(
    () => new AudioConverter({ ...s, sampleRate: 1000 }, { ...o, sample_rate_hz: 300000 }),
    /cannot resample/,
  );
  const mono = new AudioConverter({ ...s, channels: 2 }, o);
  assert.throws(() => mono.push(new Int16Array(3)), /whole 2-channel frames/);
  mono.close();
});

// ---------------------------------------------------------------- WAV

function chunk(id: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + body.length + (body.length & 1));
  for (let i = 0; i < 4; i++) out[i] = id.charCodeAt(i);
  new DataView(out.buffer).setUint32(4, body.length, true);
  out.set(body, 8);
  return out;
}

function fmtBody(tag: number, ch: number, rate: number, bits: number, ext?: number): Uint8Array {
  const b = new Uint8Array(ext === undefined ? 16 : 40);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, tag, true);
  dv.setUint16(2, ch, true);
  dv.setUint32(4, rate, true);
  dv.setUint32(8, (rate * ch * bits) / 8, true);
  dv.setUint16(12, (ch * bits) / 8, true);
  dv.setUint16(14, bits, true);
  if (ext !== undefined) {
    dv.setUint16(16, 22, true);
    dv.setUint16(18, bits, true);
    dv.setUint32(20, ch === 2 ? 3 : 4, true);
    dv.setUint16(24, ext, true);
    b.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 26);
  }
  return b;
}

function riff(...chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const body = concatBytes(chunks);
  const out = new Uint8Array(12 + body.length);
  out.set([0x52, 0x49, 0x46, 0x46], 0);
  new DataView(out.buffer).setUint32(4, 4 + body.length, true);
  out.set([0x57, 0x41, 0x56, 0x45], 8);
  out.set(body, 12);
  return out;
}

Deno.test("wav: PCM16 stereo with unknown and odd-sized chunks skipped", () => {
  const pcm = new Int16Array([1, -1, 2, -2, 32767, -32768]);
  const wav = riff(
    chunk("LIST", new TextEncoder().encode("INFOISFT\x05\x00\x00\x00spear")), // 17 bytes: padded
    chunk("fmt ", fmtBody(1, 2, 22050, 16)),
    chunk("fact", new Uint8Array(4)),
    chunk("data", new Uint8Array(pcm.buffer)),
    chunk("cue ", new Uint8Array(3)),
  );
  const a = parseWav(wav);
  assert.deepEqual({ sampleRate: a.sampleRate, channels: a.channels, format: a.format, frames: a.frames }, {
    sampleRate: 22050,
    channels: 2,
    format: "int16",
    frames: 3,
  });
  assert.deepEqual(new Int16Array(a.data.buffer), pcm);
});

Deno.test("wav: IEEE float32 and WAVE_FORMAT_EXTENSIBLE PCM16", () => {
  const f = new Float32Array([0.5, -0.25, 1]);
  const a = parseWav(riff(chunk("fmt ", fmtBody(3, 1, 48000, 32)), chunk("data", new Uint8Array(f.buffer))));
  assert.equal(a.format, "float32");
  assert.equal(a.sampleRate, 48000);
  assert.deepEqual(new Float32Array(a.data.buffer), f);

  const p = new Int16Array([7, 8, 9, 10]);
  const b = parseWav(
    riff(chunk("fmt ", fmtBody(0xfffe, 2, 16000, 16, 1)), chunk("data", new Uint8Array(p.buffer))),
  );
  assert.equal(b.format, "int16");
  assert.equal(b.channels, 2);
  assert.equal(b.frames, 2);
  const c = parseWav(
    riff(chunk("fmt ", fmtBody(0xfffe, 1, 16000, 32, 3)), chunk("data", new Uint8Array(f.buffer))),
  );
  assert.equal(c.format, "float32");

  // encodeWav round-trips
  const e = parseWav(
    encodeWav({ sampleRate: 8000, channels: 1, format: "int16", data: new Uint8Array(p.buffer) }),
  );
  assert.deepEqual(new Int16Array(e.data.buffer), p);
  assert.equal(e.sampleRate, 8000);
});

Deno.test("wav: clear errors for unsupported or broken files", () => {
  const data = chunk("data", new Uint8Array(8));
  const cases: [Uint8Array, RegExp][] = [
    [riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), data), /8-bit integer PCM \(only 16-bit\)/],
    [riff(chunk("fmt ", fmtBody(1, 1, 8000, 24)), data), /24-bit integer PCM/],
    [riff(chunk("fmt ", fmtBody(3, 1, 8000, 64)), data), /64-bit float/],
    [riff(chunk("fmt ", fmtBody(6, 1, 8000, 8)), data), /A-law/],
    [riff(chunk("fmt ", fmtBody(0x55, 1, 8000, 0)), data), /MP3/],
    [riff(chunk("fmt ", fmtBody(0xfffe, 1, 8000, 16, 2)), data), /MS ADPCM/],
    [riff(chunk("fmt ", fmtBody(1, 1, 8000, 16))), /no data chunk/],
    [riff(data), /data chunk before fmt/],
    [riff(chunk("LIST", new Uint8Array(2))), /no fmt chunk/],
    [riff(chunk("fmt ", new Uint8Array(10)), data), /fmt chunk too short/],
    [riff(chunk("fmt ", fmtBody(1, 0, 8000, 16)), data), /0 channels/],
    [new TextEncoder().encode("RIFX\0\0\0\0WAVE"), /big-endian RIFX/],
    [new TextEncoder().encode("OggS\0\0\0\0\0\0\0\0\0"), /not a WAV file/],
    [new Uint8Array(5), /not a WAV file: only 5 bytes/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(
      () => parseWav(bytes),
      (e: unknown) => e instanceof WavError && re.test(e.message),
      String(re),
    );
  }
  const badAlign = fmtBody(1, 2, 8000, 16);
  new DataView(badAlign.buffer).setUint16(12, 3, true);
  assert.throws(() => parseWav(riff(chunk("fmt ", badAlign), data)), /block align 3/);
});

Deno.test("wav: truncated data is used in whole frames; raw PCM16 needs rate and channels", () => {
  const wav = riff(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", new Uint8Array(12)));
  new DataView(wav.buffer).setUint32(wav.length - 16, 0xffffffff, true); // streaming writer's size
  const t = parseWav(wav.subarray(0, wav.length - 2)); // and 2 bytes cut off
  assert.equal(t.frames, 2);
  assert.equal(t.data.length, 8);

  const raw = new Uint8Array(new Int16Array([1, 2, 3, 4]).buffer);
  const r = parseRawPcm16(raw, { sampleRate: 24000, channels: 2 });
  assert.deepEqual([r.sampleRate, r.channels, r.format, r.frames], [24000, 2, "int16", 2]);
  assert.throws(
    () => parseRawPcm16(raw.subarray(0, 6), { sampleRate: 24000, channels: 2 }),
    /not a multiple of 4/,
  );
  assert.throws(() => parseRawPcm16(raw, { sampleRate: 0, channels: 1 }), /sample rate/);
  assert.throws(() => parseAudio(raw), /raw PCM16 needs sample_rate_hz and channels/);
  assert.equal(parseAudio(raw, { sampleRate: 8000, channels: 1 }).frames, 4);
});

Deno.test({
  name: "wav: an espeak-ng file parses as 22050 Hz mono PCM16 and converts to 24 kHz frames",
  ignore: !haveTools,
  fn: async () => {
    const mic = await createVirtualMic({ sampleRate: 16000, text: "one two three" });
    try {
      const a = await readAudioFile(mic.wavPath!);
      assert.deepEqual([a.sampleRate, a.channels, a.format], [22050, 1, "int16"]);
      assert.ok(a.frames > 11025);
      const conv = new AudioConverter(a, {
        sample_rate_hz: 24000,
        channels: 1,
        format: "pcm16",
        frame_ms: 20,
      });
      const frames = [...conv.push(a.data), ...conv.flush()];
      conv.close();
      for (const f of frames.slice(0, -1)) assert.equal(f.length, 960);
      const total = frames.reduce((s, f) => s + f.length, 0) / 2;
      assert.ok(Math.abs(total - Math.round((a.frames * 24000) / 22050)) <= 1);
    } finally {
      await mic.cleanup();
    }
  },
});
