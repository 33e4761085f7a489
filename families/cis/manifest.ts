/**
 * The skill manifest, `skill.json` (SPEC.md §9), parsed strictly: an unknown field anywhere is
 * an error naming it, every value is type- and range-checked, `http.allow` entries are parsed
 * with the network policy's own parser (host/net/policy.ts). Host side only.
 *
 * spearhost additions, all optional: `http.timeout_ms` (per-request limit, default 10 s) and
 * `http.max_response_bytes` (default 4 MiB, at most 16 MiB).
 */
import { isJsonObject, type JsonObject } from "../../runtime/json.ts";
import { MAX_LIMITS } from "../../host/config.ts";
import { NetEntryError, parseNetEntry } from "../../host/net/policy.ts";

export interface SkillManifest {
  name: string;
  version: string;
  description?: string;
  /** The module, relative to the manifest's directory. */
  wasm: string;
  /** Lower-case hex SHA-256 of the module's bytes. */
  sha256: string;
  ai?: { backend?: string; model?: string };
  memory?: { namespace?: string; max_value_bytes?: number; max_total_bytes?: number };
  http?: { allow: string[]; timeout_ms?: number; max_response_bytes?: number };
  limits?: { timeout_ms?: number; memory_mb?: number };
}

/** Defaults of a skill's limits (seed 004: 30 s and 512 MB). */
export const SKILL_DEFAULTS = {
  timeout_ms: 30_000,
  memory_mb: 512,
  max_value_bytes: 1 << 20,
  max_total_bytes: 64 << 20,
  http_timeout_ms: 10_000,
  max_response_bytes: 4 << 20,
} as const;

/** Largest values the manifest may ask for. */
export const SKILL_MAXIMA = {
  max_value_bytes: 16 << 20,
  max_total_bytes: 1 << 30,
  max_response_bytes: 16 << 20,
} as const;

/** A name: letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most 64. */
export const SKILL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A manifest problem, reported as `<where>: <field>: <reason>`. */
export class ManifestError extends Error {
  constructor(readonly where: string, readonly field: string, reason: string) {
    super(`${where}: ${field}: ${reason}`);
  }
}

type Json = JsonObject;

/** Parses a manifest value; `where` names the file in errors. */
export function parseManifest(raw: unknown, where = "skill.json"): SkillManifest {
  const err = (field: string, reason: string) => new ManifestError(where, field, reason);
  const object = (v: unknown, field: string): Json => {
    if (!isJsonObject(v)) throw err(field, "must be an object");
    return v;
  };
  const only = (obj: Json, allowed: string[], prefix: string) => {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) throw err(prefix ? `${prefix}.${key}` : key, "unknown field");
    }
  };
  const str = (obj: Json, key: string, field: string, required = false): string | undefined => {
    const v = obj[key];
    if (v === undefined) {
      if (required) throw err(field, "is required");
      return undefined;
    }
    if (typeof v !== "string" || v === "") throw err(field, "must be a non-empty string");
    return v;
  };
  const int = (obj: Json, key: string, field: string, max: number): number | undefined => {
    const v = obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
      throw err(field, `must be an integer from 1 to ${max}`);
    }
    return v;
  };

  if (!isJsonObject(raw)) throw err("(root)", "must be a JSON object");
  only(raw, ["name", "version", "description", "wasm", "sha256", "ai", "memory", "http", "limits"], "");
  const name = str(raw, "name", "name", true)!;
  if (!SKILL_NAME.test(name)) {
    throw err("name", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  const version = str(raw, "version", "version", true)!;
  const description = raw.description === undefined ? undefined : raw.description;
  if (description !== undefined && typeof description !== "string") {
    throw err("description", "must be a string");
  }
  const wasm = str(raw, "wasm", "wasm", true)!;
  if (wasm.includes("\0")) throw err("wasm", "must be a file path");
  const sha256 = str(raw, "sha256", "sha256", true)!;
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) throw err("sha256", "must be 64 hexadecimal digits");

  const manifest: SkillManifest = { name, version, wasm, sha256: sha256.toLowerCase() };
  if (description !== undefined) manifest.description = description;

  if (raw.ai !== undefined) {
    const ai = object(raw.ai, "ai");
    only(ai, ["backend", "model"], "ai");
    manifest.ai = {};
    const backend = str(ai, "backend", "ai.backend");
    const model = str(ai, "model", "ai.model");
    if (backend !== undefined) manifest.ai.backend = backend;
    if (model !== undefined) manifest.ai.model = model;
  }
  if (raw.memory !== undefined) {
    const memory = object(raw.memory, "memory");
    only(memory, ["namespace", "max_value_bytes", "max_total_bytes"], "memory");
    manifest.memory = {};
    const namespace = str(memory, "namespace", "memory.namespace");
    if (namespace !== undefined) {
      if (!SKILL_NAME.test(namespace)) {
        throw err("memory.namespace", "must be 1-64 letters, digits, '.', '_' or '-'");
      }
      manifest.memory.namespace = namespace;
    }
    const maxValue = int(memory, "max_value_bytes", "memory.max_value_bytes", SKILL_MAXIMA.max_value_bytes);
    const maxTotal = int(memory, "max_total_bytes", "memory.max_total_bytes", SKILL_MAXIMA.max_total_bytes);
    if (maxValue !== undefined) manifest.memory.max_value_bytes = maxValue;
    if (maxTotal !== undefined) manifest.memory.max_total_bytes = maxTotal;
  }
  if (raw.http !== undefined) {
    const http = object(raw.http, "http");
    only(http, ["allow", "timeout_ms", "max_response_bytes"], "http");
    const allow = http.allow ?? [];
    if (!Array.isArray(allow) || !allow.every((e) => typeof e === "string")) {
      throw err("http.allow", "must be an array of strings");
    }
    for (const [i, entry] of (allow as string[]).entries()) {
      try {
        parseNetEntry(entry, "allow");
      } catch (e) {
        if (!(e instanceof NetEntryError)) throw e;
        throw err(`http.allow[${i}]`, `"${entry}": ${e.message}`);
      }
    }
    manifest.http = { allow: allow as string[] };
    const timeout = int(http, "timeout_ms", "http.timeout_ms", MAX_LIMITS.timeout_ms);
    const maxResponse = int(
      http,
      "max_response_bytes",
      "http.max_response_bytes",
      SKILL_MAXIMA.max_response_bytes,
    );
    if (timeout !== undefined) manifest.http.timeout_ms = timeout;
    if (maxResponse !== undefined) manifest.http.max_response_bytes = maxResponse;
  }
  if (raw.limits !== undefined) {
    const limits = object(raw.limits, "limits");
    only(limits, ["timeout_ms", "memory_mb"], "limits");
    manifest.limits = {};
    const timeout = int(limits, "timeout_ms", "limits.timeout_ms", MAX_LIMITS.timeout_ms);
    const memory = int(limits, "memory_mb", "limits.memory_mb", MAX_LIMITS.memory_mb);
    if (timeout !== undefined) manifest.limits.timeout_ms = timeout;
    if (memory !== undefined) manifest.limits.memory_mb = memory;
  }
  return manifest;
}

/** A manifest file read and parsed, with the module's resolved path. */
export interface LoadedManifest {
  manifest: SkillManifest;
  /** The manifest file. */
  path: string;
  /** The module, resolved against the manifest's directory. */
  wasmPath: string;
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
}

/** Reads and parses a manifest file; ManifestError names the file and the field. */
export async function loadManifest(path: string): Promise<LoadedManifest> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ManifestError(
      path,
      "(file)",
      e instanceof Deno.errors.NotFound ? "no such file" : `cannot read: ${(e as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(path, "(file)", `invalid JSON: ${(e as Error).message}`);
  }
  const manifest = parseManifest(json, path);
  const wasmPath = manifest.wasm.startsWith("/") ? manifest.wasm : `${dirOf(path)}/${manifest.wasm}`;
  return { manifest, path, wasmPath };
}

/** The manifest as `spear skill add` writes it (stable key order, two-space indent). */
export function renderManifest(m: SkillManifest): string {
  return JSON.stringify(m, null, 2) + "\n";
}
