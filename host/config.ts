/**
/**
 * The host's JSON configuration (SPEC.md §7): backends, limits, network policy, plus one
 * section per family that declares one (families/<name>/family.ts `config`, e.g. `mic`).
 * `parseConfig` validates every field and names the first one that is wrong, so a bad config
 * is one clear line on stderr. Network entries are parsed by host/net/policy.ts here, at load
 * time, so a typo never surfaces as a refused request later.
 */

import { isJsonObject, type JsonObject } from "../runtime/json.ts";
import { backendKinds, configSections } from "../families/registry.ts";
import {
  backendEntry,
  NetEntryError,
  type NetEntryKind,
  NetPolicy,
  type NetPolicyOptions,
  parseNetEntry,
} from "./net/policy.ts";

/** A backend kind some family serves (families/registry.ts). */
export type BackendKind = string;

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
  /** Realtime backends: "beta" selects OpenAI's older realtime shape (local servers); GA otherwise. */
  protocol?: "ga" | "beta";
}

export interface Limits {
  timeout_ms: number;
  memory_mb: number;
  max_fds: number;
  /** What the host may keep on a guest's behalf (messages, queues, fds), in MiB. */
  host_memory_mb: number;
}

export interface CoreConfig {
  backends: BackendConfig[];
  limits: Limits;
  /** Raw `net.allow` / `net.listen` entries, validated; `netPolicy(config)` builds the policy. */
  net: { allow: string[]; listen: string[] };
}

/**
 * The sections families own, keyed by section name; each family adds its own with a module
 * augmentation next to its descriptor (see families/mic/family.ts).
 */
// deno-lint-ignore no-empty-interface
export interface FamilySections {}

export type HostConfig = CoreConfig & FamilySections;

export const DEFAULT_LIMITS: Limits = {
  timeout_ms: 30000,
  memory_mb: 512,
  max_fds: 1024,
  host_memory_mb: 64,
};

/**
 * Largest accepted limits, wherever they come from (config, command line, `SpearHost.run`):
 * setTimeout wraps a delay beyond 2^31-1 ms to 1 ms, and wasm32 memory ends far below 64 GiB.
 */
export const MAX_LIMITS: Limits = {
  timeout_ms: 2_147_483_647,
  memory_mb: 65536,
  max_fds: 1_000_000,
  host_memory_mb: 1024,
};

/** A config problem, reported as `config: <field>: <reason>`. */
export class ConfigError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`config: ${field}: ${reason}`);
  }
}

type Json = JsonObject;

/** A JSON object (sections are objects; null is not). */
export const isConfigObject = isJsonObject;

export function rejectUnknownKeys(obj: Json, allowed: readonly string[], where: string) {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new ConfigError(where ? `${where}.${key}` : key, "unknown field");
  }
}

export function optString(obj: Json, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new ConfigError(`${where}.${key}`, "must be a non-empty string");
  }
  return v;
}

export function stringArray(obj: Json, key: string, where: string): string[] {
  const v = obj[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new ConfigError(`${where}.${key}`, "must be an array of strings");
  }
  return v as string[];
}

export function positiveInt(obj: Json, key: string, where: string, fallback: number, max: number): number {
  const v = obj[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new ConfigError(`${where}.${key}`, `must be an integer from 1 to ${max}`);
  }
  return v;
}

/** An optional top-level section: absent means empty; anything but an object (null too) is an error. */
export function section(raw: Json, key: string): Json {
  const v = raw[key];
  if (v === undefined) return {};
  if (!isJsonObject(v)) throw new ConfigError(key, "must be an object");
  return v;
}

function parseBackend(raw: unknown, index: number, names: Set<string>): BackendConfig {
  const where = `backends[${index}]`;
  if (!isJsonObject(raw)) throw new ConfigError(where, "must be an object");
  rejectUnknownKeys(
    raw,
    ["name", "kind", "base_url", "model", "api_key_env", "ops", "features", "weight", "protocol"],
    where,
  );
  const name = optString(raw, "name", where);
  if (!name) throw new ConfigError(`${where}.name`, "is required");
  if (names.has(name)) throw new ConfigError(`${where}.name`, `duplicate backend name "${name}"`);
  names.add(name);
  const kind = raw.kind;
  const kinds = backendKinds();
  if (typeof kind !== "string" || !kinds.includes(kind)) {
    throw new ConfigError(`${where}.kind`, `must be one of ${kinds.join(", ")}`);
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
  const protocol = raw.protocol;
  if (protocol !== undefined && protocol !== "ga" && protocol !== "beta") {
    throw new ConfigError(`${where}.protocol`, 'must be "ga" or "beta"');
  }
  return {
    name,
    kind: kind as BackendKind,
    base_url,
    model: optString(raw, "model", where),
    api_key_env,
    ops,
    features: stringArray(raw, "features", where),
    weight: positiveInt(raw, "weight", where, 1, 1_000_000),
    ...(protocol !== undefined ? { protocol } : {}),
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
  const sections = configSections();
  rejectUnknownKeys(raw, ["backends", "limits", "net", ...sections.map((c) => c.key)], "");
  if (raw.backends !== undefined && !Array.isArray(raw.backends)) {
    throw new ConfigError("backends", "must be an array");
  }
  const names = new Set<string>();
  const backends = ((raw.backends as unknown[]) ?? []).map((b, i) => parseBackend(b, i, names));

  const limitsRaw = section(raw, "limits");
  rejectUnknownKeys(limitsRaw, Object.keys(DEFAULT_LIMITS), "limits");
  const limits: Limits = {
    timeout_ms: positiveInt(
      limitsRaw,
      "timeout_ms",
      "limits",
      DEFAULT_LIMITS.timeout_ms,
      MAX_LIMITS.timeout_ms,
    ),
    memory_mb: positiveInt(limitsRaw, "memory_mb", "limits", DEFAULT_LIMITS.memory_mb, MAX_LIMITS.memory_mb),
    max_fds: positiveInt(limitsRaw, "max_fds", "limits", DEFAULT_LIMITS.max_fds, MAX_LIMITS.max_fds),
    host_memory_mb: positiveInt(
      limitsRaw,
      "host_memory_mb",
      "limits",
      DEFAULT_LIMITS.host_memory_mb,
      MAX_LIMITS.host_memory_mb,
    ),
  };

  const netRaw = section(raw, "net");
  rejectUnknownKeys(netRaw, ["allow", "listen"], "net");

  const config: Record<string, unknown> = {
    backends,
    limits,
    net: { allow: parseNetList(netRaw, "allow"), listen: parseNetList(netRaw, "listen") },
  };
  for (const c of sections) config[c.key] = c.parse(raw[c.key]);
  return config as unknown as HostConfig;
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
  const config: Record<string, unknown> = {
    backends: [],
    limits: { ...DEFAULT_LIMITS },
    net: { allow: [], listen: [] },
  };
  for (const c of configSections()) config[c.key] = c.parse(undefined);
  return config as unknown as HostConfig;
}

/**
 * The network policy of a config: `net.allow` plus every backend's base_url host (for the web
 * schemes), and `net.listen`. Every outbound connection and the launcher's `--allow-net` go
 * through it (host/net/policy.ts).
 */
export function netPolicy(config: HostConfig, options?: NetPolicyOptions): NetPolicy {
  // Every request asks for the policy: build it once per config (options make a custom one).
  if (!options) {
    let policy = policies.get(config);
    if (!policy) policies.set(config, policy = buildPolicy(config));
    return policy;
  }
  return buildPolicy(config, options);
}

const policies = new WeakMap<HostConfig, NetPolicy>();

function buildPolicy(config: HostConfig, options?: NetPolicyOptions): NetPolicy {
  const allow = (config.net.allow ?? []).map((e) => parseNetEntry(e, "allow"));
  for (const b of config.backends) if (b.base_url) allow.push(backendEntry(b.base_url));
  const listen = (config.net.listen ?? []).map((e) => parseNetEntry(e, "listen"));
  return new NetPolicy(allow, listen, options);
}
