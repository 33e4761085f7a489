/**
 * The host's JSON configuration (SPEC.md §7): backends, limits, network policy and the
 * microphone file source. `parseConfig` validates every field and names the first one that
 * is wrong, so a bad config is one clear line on stderr. Network entries are parsed by
 * host/net/policy.ts here, at load time, so a typo never surfaces as a refused request later.
 */

import { isJsonObject, type JsonObject } from "../runtime/json.ts";
import {
  backendEntry,
  NetEntryError,
  type NetEntryKind,
  NetPolicy,
  type NetPolicyOptions,
  parseNetEntry,
} from "./net/policy.ts";

export type BackendKind = "openai_chat_completion" | "openai_realtime_ws" | "local_asr" | "stub";
const BACKEND_KINDS: readonly BackendKind[] = [
  "openai_chat_completion",
  "openai_realtime_ws",
  "local_asr",
  "stub",
];

export interface BackendConfig {
  name: string;
  kind: BackendKind;
  base_url?: string;
  model?: string;
  /** Name of the environment variable holding the API key; the key never enters the guest. */
  api_key_env?: string;
  /** Operations this backend serves, e.g. "chat_completions", "speech_to_text". */
  ops: string[];
  /** e.g. "supports_tools", "supports_json_schema". */
  features: string[];
  weight: number;
}

export interface Limits {
  timeout_ms: number;
  memory_mb: number;
  max_fds: number;
}

export interface HostConfig {
  backends: BackendConfig[];
  limits: Limits;
  /** Raw `net.allow` / `net.listen` entries, validated; `netPolicy(config)` builds the policy. */
  net: { allow: string[]; listen: string[] };
  mic: { file?: string };
}

export const DEFAULT_LIMITS: Limits = { timeout_ms: 30000, memory_mb: 512, max_fds: 1024 };

/** A config problem, reported as `config: <field>: <reason>`. */
export class ConfigError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`config: ${field}: ${reason}`);
  }
}

type Json = JsonObject;

function rejectUnknownKeys(obj: Json, allowed: readonly string[], where: string) {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new ConfigError(where ? `${where}.${key}` : key, "unknown field");
  }
}

function optString(obj: Json, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new ConfigError(`${where}.${key}`, "must be a non-empty string");
  }
  return v;
}

function stringArray(obj: Json, key: string, where: string): string[] {
  const v = obj[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new ConfigError(`${where}.${key}`, "must be an array of strings");
  }
  return v as string[];
}

function positiveInt(obj: Json, key: string, where: string, fallback: number, max: number): number {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new ConfigError(`${where}.${key}`, `must be an integer from 1 to ${max}`);
  }
  return v;
}

function parseBackend(raw: unknown, index: number, names: Set<string>): BackendConfig {
  const where = `backends[${index}]`;
  if (!isJsonObject(raw)) throw new ConfigError(where, "must be an object");
  rejectUnknownKeys(
    raw,
    ["name", "kind", "base_url", "model", "api_key_env", "ops", "features", "weight"],
    where,
  );
  const name = optString(raw, "name", where);
  if (!name) throw new ConfigError(`${where}.name`, "is required");
  if (names.has(name)) throw new ConfigError(`${where}.name`, `duplicate backend name "${name}"`);
  names.add(name);
  const kind = raw.kind;
  if (!BACKEND_KINDS.includes(kind as BackendKind)) {
    throw new ConfigError(`${where}.kind`, `must be one of ${BACKEND_KINDS.join(", ")}`);
  }
  const base_url = optString(raw, "base_url", where);
  if (base_url !== undefined) {
    let url: URL;
    try {
      url = new URL(base_url);
    } catch {
      throw new ConfigError(`${where}.base_url`, "is not a valid URL");
    }
    if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) {
      throw new ConfigError(`${where}.base_url`, "must be http, https, ws or wss");
    }
    try {
      backendEntry(base_url); // its host becomes a policy entry
    } catch (e) {
      if (!(e instanceof NetEntryError)) throw e;
      throw new ConfigError(`${where}.base_url`, e.message);
    }
  } else if (kind === "openai_chat_completion" || kind === "openai_realtime_ws") {
    throw new ConfigError(`${where}.base_url`, `is required for kind ${kind}`);
  }
  const api_key_env = optString(raw, "api_key_env", where);
  if (api_key_env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(api_key_env)) {
    throw new ConfigError(`${where}.api_key_env`, "must be an environment variable name");
  }
  const ops = stringArray(raw, "ops", where);
  if (ops.length === 0) throw new ConfigError(`${where}.ops`, "must list at least one operation");
  return {
    name,
    kind: kind as BackendKind,
    base_url,
    model: optString(raw, "model", where),
    api_key_env,
    ops,
    features: stringArray(raw, "features", where),
    weight: positiveInt(raw, "weight", where, 1, 1_000_000),
  };
}

function parseNetList(raw: Json, kind: NetEntryKind): string[] {
  const list = stringArray(raw, kind, "net");
  for (const [i, entry] of list.entries()) {
    try {
      parseNetEntry(entry, kind);
    } catch (e) {
      if (!(e instanceof NetEntryError)) throw e;
      throw new ConfigError(`net.${kind}[${i}]`, `"${entry}": ${e.message}`);
    }
  }
  return list;
}

/** Validates a parsed JSON value as a host config. Throws ConfigError naming the field. */
export function parseConfig(raw: unknown): HostConfig {
  if (!isJsonObject(raw)) throw new ConfigError("(root)", "must be a JSON object");
  rejectUnknownKeys(raw, ["backends", "limits", "net", "mic"], "");
  if (raw.backends !== undefined && !Array.isArray(raw.backends)) {
    throw new ConfigError("backends", "must be an array");
  }
  const names = new Set<string>();
  const backends = ((raw.backends as unknown[]) ?? []).map((b, i) => parseBackend(b, i, names));

  const limitsRaw = raw.limits ?? {};
  if (!isJsonObject(limitsRaw)) throw new ConfigError("limits", "must be an object");
  rejectUnknownKeys(limitsRaw, ["timeout_ms", "memory_mb", "max_fds"], "limits");
  const limits: Limits = {
    timeout_ms: positiveInt(limitsRaw, "timeout_ms", "limits", DEFAULT_LIMITS.timeout_ms, 2_147_483_647),
    memory_mb: positiveInt(limitsRaw, "memory_mb", "limits", DEFAULT_LIMITS.memory_mb, 65536),
    max_fds: positiveInt(limitsRaw, "max_fds", "limits", DEFAULT_LIMITS.max_fds, 1_000_000),
  };

  const netRaw = raw.net ?? {};
  if (!isJsonObject(netRaw)) throw new ConfigError("net", "must be an object");
  rejectUnknownKeys(netRaw, ["allow", "listen"], "net");

  const micRaw = raw.mic ?? {};
  if (!isJsonObject(micRaw)) throw new ConfigError("mic", "must be an object");
  rejectUnknownKeys(micRaw, ["file"], "mic");

  return {
    backends,
    limits,
    net: { allow: parseNetList(netRaw, "allow"), listen: parseNetList(netRaw, "listen") },
    mic: { file: optString(micRaw, "file", "mic") },
  };
}

/** Reads and validates a config file; errors name the file and the field. */
export async function loadConfig(path: string): Promise<HostConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(path, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, `invalid JSON: ${(e as Error).message}`);
  }
  return parseConfig(json);
}

/** The config used when none is given: no backends, default limits. */
export function defaultConfig(): HostConfig {
  return { backends: [], limits: { ...DEFAULT_LIMITS }, net: { allow: [], listen: [] }, mic: {} };
}

/**
 * The network policy of a config: `net.allow` plus every backend's base_url host (for the web
 * schemes), and `net.listen`. Every outbound connection and the launcher's `--allow-net` go
 * through it (host/net/policy.ts).
 */
export function netPolicy(config: HostConfig, options?: NetPolicyOptions): NetPolicy {
  const allow = (config.net.allow ?? []).map((e) => parseNetEntry(e, "allow"));
  for (const b of config.backends) if (b.base_url) allow.push(backendEntry(b.base_url));
  const listen = (config.net.listen ?? []).map((e) => parseNetEntry(e, "listen"));
  return new NetPolicy(allow, listen, options);
}
