/**
 * Helpers shared by the rtasr family's tests: run the scripted test guest
 * (tests/guests/rtasr_script.c) under real Wasmtime in this process with an rtasr driver, and
 * read what it logged.
 */
import assert from "node:assert/strict";
import { defaultConfig, type HostConfig, parseConfig } from "../../host/config.ts";
import { type Driver, SpearHost } from "../../host/host.ts";
import { rtasrDriver } from "../../families/rtasr/driver.ts";

export const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const RTASR_SCRIPT = `${root}/guests/build/test/rtasr_script.wasm`;

export interface ScriptRun {
  exitCode: number;
  failure?: unknown;
  logs: string[];
  /** Logged events (parsed JSON; raw text when not JSON). */
  events: unknown[];
  durationMs: number;
}

export function config(raw: Record<string, unknown> = {}): HostConfig {
  return Object.keys(raw).length ? parseConfig(raw) : defaultConfig();
}

/** Runs rtasr_script with `steps` (its argv) and an rtasr driver for `cfg`. */
export async function runScript(
  cfg: HostConfig,
  steps: string[],
  opts: { drivers?: Driver[]; timeoutMs?: number; onLog?: (line: string) => void } = {},
): Promise<ScriptRun> {
  const logs: string[] = [];
  const host = new SpearHost({
    config: cfg,
    drivers: opts.drivers ?? [rtasrDriver(cfg)],
    logSink: (_g, _l, m) => {
      const line = m.replace(/\n$/, "");
      logs.push(line);
      opts.onLog?.(line);
    },
  });
  try {
    const r = await host.run(RTASR_SCRIPT, { args: steps, timeoutMs: opts.timeoutMs ?? 30000 });
    const events = logs.filter((l) => l.startsWith("event ")).map((l) => {
      const text = l.slice(6);
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    });
    return { ...r, logs, events };
  } finally {
    await host.close();
  }
}

/** The value logged after `label ` (e.g. "connect rc=" → "0"). */
export function logged(logs: string[], prefix: string, nth = 0): string {
  const lines = logs.filter((l) => l.startsWith(prefix));
  assert.ok(lines[nth] !== undefined, `no ${nth + 1}. "${prefix}" line in ${JSON.stringify(logs, null, 1)}`);
  return lines[nth].slice(prefix.length);
}

export function loggedJson(logs: string[], label: string, nth = 0): Record<string, unknown> {
  return JSON.parse(logged(logs, `${label} `, nth));
}
