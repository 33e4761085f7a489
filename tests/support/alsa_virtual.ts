/**
 * Test helper: an ALSA virtual capture device fed from a raw PCM file, with no root-level or
 * global changes (DESIGN fact 6).
 *
 * What it builds, in a temp dir:
 *   speech.wav   espeak-ng output (22050 Hz mono), unless explicit samples are given
 *   mic.raw      the capture source: raw S16_LE at the chosen rate/channels (sox)
 *   asound.conf  a complete ALSA configuration whose only PCM is `default`:
 *
 *     pcm.!default {
 *       type plug                       # converts to whatever the client asks for
 *       slave {
 *         pcm {
 *           type file                   # ALSA "file" plugin
 *           slave.pcm { type null }     # no sound card, no clock
 *           file "/dev/null"            # the plugin requires an output file
 *           infile "<dir>/mic.raw"      # capture data comes from here (raw only)
 *           format "raw"
 *         }
 *         format S16_LE  rate <R>  channels <C>   # the file's real format
 *       }
 *     }
 *
 * It is pointed at with ALSA_CONFIG_PATH=<dir>/asound.conf, which REPLACES alsa.conf for that
 * process (so no sound-server plugins, no other devices: PortAudio lists exactly one device,
 * "default", whose defaultSampleRate is R). ALSA reads it when PortAudio's Pa_Initialize first
 * touches libasound, so the variable must be in the environment before that: pass `env` to a
 * child process (tests/support/pa_capture_probe.ts), or call applyToCurrentProcess() before the
 * first Pa_Initialize of this process. JACK_NO_START_SERVER=1 stops PortAudio's JACK backend
 * from trying to spawn jackd (the host's mic driver sets it too, and keeps what libjack prints
 * off stderr: ffi/audio_diagnostics.ts).
 *
 * Measured behaviour (PortAudio 19.6.0, alsa-lib 1.2.8):
 * - Opened in the file's own format (paInt16, rate R, C channels, so plug converts nothing),
 *   capture is sample-exact from the very first frame, for any read size; each Pa_OpenStream
 *   reopens the file at offset 0.
 * - It runs much faster than real time (about 3 s of audio in 15 ms: the null slave has no
 *   clock), so a reader is never paced by the device.
 * - Opened in another format/rate/channel count, plug converts each value exactly (paFloat32
 *   gives s16/32768) but whole periods of the file are skipped (the file plugin reads ahead of
 *   what is delivered): the stream is in order, not contiguous.
 * - After the end of the file there is no EOF: reads keep returning stale ring-buffer data,
 *   so only the first `frames` frames are meaningful (padSeconds adds a silent tail).
 */

import { wavToPcm16 } from "./speech.ts";

export interface VirtualMicOptions {
  /** Text spoken by espeak-ng (ignored when `samples` is given). */
  text?: string;
  /** espeak-ng voice, default "en-us". */
  voice?: string;
  /** Explicit interleaved S16 samples instead of speech (must be whole frames). */
  samples?: Int16Array;
  /** Rate of the capture file and of the device, default 16000. */
  sampleRate?: number;
  /** Channels of the capture file and of the device, default 1. */
  channels?: number;
  /** Seconds of digital silence appended after the audio, default 0. */
  padSeconds?: number;
  /** Directory to use (default: a new temp dir, removed by cleanup()). */
  dir?: string;
}

export interface VirtualMic {
  dir: string;
  configPath: string;
  rawPath: string;
  /** espeak-ng output, when speech was generated. */
  wavPath: string | null;
  /** Environment for the process that runs PortAudio. */
  env: Record<string, string>;
  /** PortAudio device name of the virtual microphone. */
  deviceName: string;
  sampleRate: number;
  channels: number;
  /** Exactly the samples the device delivers first (interleaved), padding included. */
  samples: Int16Array;
  /** samples.length / channels. */
  frames: number;
  /** Removes the temp dir (only if this helper created it). */
  cleanup(): Promise<void>;
}

async function run(cmd: string, args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(`cannot run ${cmd}: ${e instanceof Error ? e.message : e}`);
  }
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** True when espeak-ng and sox can be run. */
export async function hasVirtualMicTools(): Promise<boolean> {
  for (const cmd of ["espeak-ng", "sox"]) {
    try {
      const o = await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
      if (!o.success) return false;
    } catch {
      return false;
    }
  }
  return true;
}

function alsaString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The ALSA configuration text for a raw S16_LE capture file. */
export function alsaConfig(rawPath: string, sampleRate: number, channels: number): string {
  return `# spearhost virtual microphone (tests/support/alsa_virtual.ts); use as ALSA_CONFIG_PATH
pcm.!default {
  type plug
  slave {
    pcm {
      type file
      slave.pcm { type null }
      file "/dev/null"
      infile ${alsaString(rawPath)}
      format "raw"
    }
    format S16_LE
    rate ${sampleRate}
    channels ${channels}
  }
}
`;
}

/** Builds the capture file and the ALSA config. */
export async function createVirtualMic(opts: VirtualMicOptions = {}): Promise<VirtualMic> {
  const sampleRate = opts.sampleRate ?? 16000;
  const channels = opts.channels ?? 1;
  if (!Number.isInteger(sampleRate) || sampleRate < 1000) {
    throw new RangeError(`bad sampleRate ${sampleRate}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 8) {
    throw new RangeError(`bad channels ${channels}`);
  }
  const ownDir = !opts.dir;
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "spear_vmic_" });
  const rawPath = `${dir}/mic.raw`;
  const configPath = `${dir}/asound.conf`;
  let wavPath: string | null = null;
  let body: Int16Array;
  if (opts.samples) {
    if (opts.samples.length % channels !== 0) throw new RangeError("samples must be whole frames");
    body = opts.samples;
  } else {
    wavPath = `${dir}/speech.wav`;
    const text = opts.text ?? "hello world, this is the spear microphone test";
    await run("espeak-ng", ["-v", opts.voice ?? "en-us", "-w", wavPath, text]);
    body = await wavToPcm16(wavPath, sampleRate, channels);
  }
  const pad = Math.round((opts.padSeconds ?? 0) * sampleRate) * channels;
  const samples = new Int16Array(body.length + pad);
  samples.set(body, 0);
  await Deno.writeFile(rawPath, new Uint8Array(samples.buffer));
  await Deno.writeTextFile(configPath, alsaConfig(rawPath, sampleRate, channels));
  return {
    dir,
    configPath,
    rawPath,
    wavPath,
    env: { ALSA_CONFIG_PATH: configPath, JACK_NO_START_SERVER: "1" },
    deviceName: "default",
    sampleRate,
    channels,
    samples,
    frames: samples.length / channels,
    cleanup: async () => {
      if (ownDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Sets the virtual mic's env in this process. Only effective if PortAudio has not been
 * initialized yet in this process (libasound reads ALSA_CONFIG_PATH at first use).
 */
export function applyToCurrentProcess(mic: VirtualMic): void {
  for (const [k, v] of Object.entries(mic.env)) Deno.env.set(k, v);
}

export interface ProbeDevice {
  index: number;
  name: string;
  hostApi: number;
  hostApiName: string;
  maxInputChannels: number;
  defaultSampleRate: number;
  defaultLowInputLatency: number;
}

export interface ProbeResult {
  version: string;
  devices: ProbeDevice[];
  defaultInput: number;
  stream: { device: number; sampleRate: number; channels: number; format: "int16" | "float32" };
  captured: {
    frames: number;
    reads: number;
    chunkFrames: number;
    overflows: number;
    elapsedMs: number;
    readAvailableAfter: number;
    min: number;
    max: number;
    rms: number;
    nonZero: number;
    /** Captured interleaved samples (int16 LE or float32 LE bytes), base64. */
    base64: string;
  };
}

export interface ProbeArgs {
  frames?: number;
  chunk?: number;
  rate?: number;
  channels?: number;
  format?: "int16" | "float32";
  device?: string;
}

/** Runs tests/support/pa_capture_probe.ts in a child Deno with the mic's env; parses its JSON. */
export async function runCaptureProbe(
  mic: VirtualMic,
  args: ProbeArgs = {},
): Promise<{ result: ProbeResult | null; error: string | null; stderr: string; code: number }> {
  const probe = new URL("./pa_capture_probe.ts", import.meta.url).pathname;
  const argv = ["run", "--quiet", "--allow-ffi", probe];
  for (const [k, v] of Object.entries(args)) if (v !== undefined) argv.push(`--${k}=${v}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: argv,
    env: mic.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr);
  let parsed: { error?: string } & Partial<ProbeResult> = {};
  try {
    parsed = JSON.parse(stdout.split("\n").pop() ?? "");
  } catch {
    return { result: null, error: `probe printed no JSON: ${stdout || stderr}`, stderr, code: out.code };
  }
  if (parsed.error !== undefined) return { result: null, error: parsed.error, stderr, code: out.code };
  return { result: parsed as ProbeResult, error: null, stderr, code: out.code };
}

/** Decodes a probe's base64 capture into samples. */
export function decodeProbeSamples(r: ProbeResult): Int16Array | Float32Array {
  const bin = atob(r.captured.base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return r.stream.format === "int16" ? new Int16Array(bytes.buffer) : new Float32Array(bytes.buffer);
}
