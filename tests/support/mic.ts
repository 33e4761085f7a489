/**
 * Helpers shared by the mic family's tests (tests/families/mic/): PCM16 signals and the
 * comparisons that judge captured audio, running the mic test guests (tests/guests/mic_*.c)
 * under real Wasmtime in this process or through the CLI in a subprocess, and reading the
 * JSON those guests log.
 */
import assert from "node:assert/strict";
import { defaultConfig, type HostConfig } from "../../host/config.ts";
import { SpearHost } from "../../host/host.ts";
import { type MicDriver, micDriver } from "../../families/mic/driver.ts";

export const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const MIC_DUMP = `${root}/guests/build/test/mic_dump.wasm`;
export const MIC_CHECKS = `${root}/guests/build/test/mic_checks.wasm`;

const decoder = new TextDecoder();

// ---------------------------------------------------------------- signals

export function int16(bytes: Uint8Array): Int16Array {
  return new Int16Array(bytes.slice().buffer);
}

export function bytesOf(samples: Int16Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(samples.slice().buffer);
}

/** Samples whose value is their index (mod 2^16). */
export function ramp(n: number, from = 0): Int16Array {
  return Int16Array.from({ length: n }, (_, i) => ((from + i) << 16) >> 16);
}

export function sine(freq: number, rate: number, n: number, amp = 12000): Int16Array {
  return Int16Array.from(
    { length: n },
    (_, i) => Math.round(amp * Math.sin((2 * Math.PI * freq * i) / rate)),
  );
}

/** Best normalised cross-correlation of a and b over lags -maxLag..maxLag. */
export function bestCorrelation(a: ArrayLike<number>, b: ArrayLike<number>, maxLag: number): number {
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
export function lerpResample(x: Int16Array, from: number, to: number): Float64Array {
  const n = Math.floor((x.length * to) / from);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = (i * from) / to, k = Math.floor(t), f = t - k;
    out[i] = (x[k] ?? 0) * (1 - f) + (x[k + 1] ?? x[k] ?? 0) * f;
  }
  return out;
}

export function energy(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s / x.length;
}

// ---------------------------------------------------------------- running guests

export interface GuestRun {
  exitCode: number;
  failure?: unknown;
  stdout: Uint8Array;
  logs: string[];
  durationMs: number;
}

/** Runs a guest under real Wasmtime in this process with a mic driver. */
export async function runGuest(
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
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `deno run -A cli/main.ts ARGS` in a subprocess with `env` (the virtual mic's). */
export async function runCli(args: string[], env: Record<string, string>, cwd: string) {
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

/** The JSON logged after `label ` (mic_dump/mic_checks log "status {…}"). */
export function logged(logs: string[], label: string): Record<string, unknown> {
  const line = logs.find((l) => l.startsWith(`${label} `));
  assert.ok(line, `no "${label}" line in ${JSON.stringify(logs)}`);
  return JSON.parse(line.slice(label.length + 1));
}

export function loggedValue(logs: string[], label: string): string {
  const line = logs.find((l) => l.startsWith(`${label}`));
  assert.ok(line, `no "${label}" line in ${JSON.stringify(logs)}`);
  return line.slice(label.length);
}
