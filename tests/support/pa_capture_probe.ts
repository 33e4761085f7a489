/**
 * Capture probe: opens an input device with PortAudio (ffi/portaudio.ts), reads N frames with
 * the nonblocking (off-thread) Pa_ReadStream, and prints one JSON line to stdout:
 *   { version, devices, defaultInput, stream, captured: { frames, reads, overflows, elapsedMs,
 *     readAvailableAfter, min, max, rms, nonZero, base64 } }
 * or { error } with exit code 1. Run it with the env from tests/support/alsa_virtual.ts:
 *
 *   ALSA_CONFIG_PATH=/tmp/x/asound.conf deno run --allow-ffi tests/support/pa_capture_probe.ts \
 *     --frames=16000 --chunk=320 --rate=16000 --channels=1 --format=int16 --device=default
 *
 * --rate defaults to the device's defaultSampleRate; --device is a name or an index (default:
 * the default input device).
 */

import * as pa from "../../ffi/portaudio.ts";

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of argv) {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`bad argument ${a} (expected --key=value)`);
    out[m[1]] = m[2];
  }
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const frames = Number(args.frames ?? 16000);
  const chunk = Number(args.chunk ?? 320);
  const channels = Number(args.channels ?? 1);
  const format = args.format ?? "int16";
  if (format !== "int16" && format !== "float32") throw new Error(`bad --format ${format}`);
  for (const [k, v] of [["frames", frames], ["chunk", chunk], ["channels", channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bad --${k}`);
  }

  pa.initialize();
  try {
    const devices = pa.listDevices().map((d) => ({
      index: d.index,
      name: d.name,
      hostApi: d.hostApi,
      hostApiName: pa.getHostApiInfo(d.hostApi)?.name ?? "",
      maxInputChannels: d.maxInputChannels,
      defaultSampleRate: d.defaultSampleRate,
      defaultLowInputLatency: d.defaultLowInputLatency,
    }));
    const defaultInput = pa.getDefaultInputDevice();
    let device = defaultInput;
    if (args.device !== undefined) {
      device = /^\d+$/.test(args.device)
        ? Number(args.device)
        : devices.find((d) => d.name === args.device && d.maxInputChannels > 0)?.index ?? pa.paNoDevice;
    }
    if (device === pa.paNoDevice || !devices.some((d) => d.index === device)) {
      throw new Error(`no input device ${args.device ?? "(default)"}`);
    }
    const info = devices.find((d) => d.index === device)!;
    const rate = Number(args.rate ?? info.defaultSampleRate);
    const sampleFormat = format === "int16" ? pa.paInt16 : pa.paFloat32;
    const params = { device, channelCount: channels, sampleFormat };
    const supported = pa.isFormatSupported(params, rate);
    if (supported !== 0) throw new pa.PortAudioError(supported, "Pa_IsFormatSupported");

    const stream = pa.openInputStream(params, rate, chunk);
    const bytesPerFrame = stream.bytesPerFrame;
    const all = new Uint8Array(frames * bytesPerFrame);
    let reads = 0, overflows = 0, got = 0, readAvailableAfter = -1;
    const t0 = performance.now();
    try {
      pa.startStream(stream);
      const buf = new Uint8Array(chunk * bytesPerFrame);
      while (got < frames) {
        const n = Math.min(chunk, frames - got);
        const r = await pa.readStream(stream, buf, n);
        reads++;
        if (r.overflowed) overflows++;
        all.set(buf.subarray(0, n * bytesPerFrame), got * bytesPerFrame);
        got += n;
      }
      readAvailableAfter = await pa.getStreamReadAvailable(stream);
      pa.stopStream(stream);
    } finally {
      await pa.idle(stream);
      pa.closeStream(stream);
    }
    const elapsedMs = performance.now() - t0;

    const samples = format === "int16" ? new Int16Array(all.buffer) : new Float32Array(all.buffer);
    const scale = format === "int16" ? 1 / 32768 : 1;
    let min = Infinity, max = -Infinity, sq = 0, nonZero = 0;
    for (const v of samples) {
      if (v < min) min = v;
      if (v > max) max = v;
      if (v !== 0) nonZero++;
      sq += (v * scale) ** 2;
    }
    console.log(JSON.stringify({
      version: pa.getVersionText(),
      devices,
      defaultInput,
      stream: { device, sampleRate: rate, channels, format },
      captured: {
        frames,
        reads,
        chunkFrames: chunk,
        overflows,
        elapsedMs,
        readAvailableAfter,
        min,
        max,
        rms: Math.sqrt(sq / samples.length),
        nonZero,
        base64: toBase64(all),
      },
    }));
  } finally {
    pa.terminate();
  }
}

try {
  await main();
} catch (e) {
  console.log(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
  Deno.exit(1);
}
