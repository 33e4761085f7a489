/**
 * rtasr segmentation (SET_AUTOFLUSH 7 / GET_AUTOFLUSH 8), SPEAR's JSON both ways (reference
 * §6.6): the new format with `strategy`, and the legacy format (`enabled`, `mode`, …) mapped
 * onto it. Shared by the worker (parse, report) and the driver (turn detection, autoflush).
 */
import { fail } from "../../runtime/abi.ts";
import { isJsonObject, type JsonObject } from "../../runtime/json.ts";
import type { Segmentation } from "./protocol.ts";

export const DEFAULT_SEGMENTATION: Segmentation = {
  strategy: "server_vad",
  flush_on_close: false,
  vad: { silence_ms: 500, threshold: 0.5, prefix_padding_ms: 300 },
  client_commit: null,
};

function num(obj: JsonObject, key: string, where: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw fail("EINVAL", `${where}${key} must be a non-negative number`);
  }
  return v;
}

function bool(obj: JsonObject, key: string, fallback: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw fail("EINVAL", `${key} must be a boolean`);
  return v;
}

/** Parses SET_AUTOFLUSH's payload (new or legacy format); EINVAL when invalid. */
export function parseSegmentation(json: unknown): Segmentation {
  if (!isJsonObject(json)) throw fail("EINVAL", "SET_AUTOFLUSH: expected a JSON object");
  const flush_on_close = bool(json, "flush_on_close", false);
  if (json.strategy !== undefined) {
    const strategy = json.strategy === "off" ? "manual" : json.strategy;
    if (strategy !== "manual" && strategy !== "server_vad" && strategy !== "client_commit") {
      throw fail("EINVAL", 'strategy must be "manual", "off", "server_vad" or "client_commit"');
    }
    let vad: Segmentation["vad"] = null;
    if (json.vad !== undefined && json.vad !== null) {
      if (!isJsonObject(json.vad)) throw fail("EINVAL", "vad must be an object");
      vad = {
        silence_ms: num(json.vad, "silence_ms", "vad.") ?? 500,
        threshold: num(json.vad, "threshold", "vad.") ?? null,
        prefix_padding_ms: num(json.vad, "prefix_padding_ms", "vad.") ?? null,
      };
    } else if (strategy === "server_vad") {
      vad = { silence_ms: 500, threshold: null, prefix_padding_ms: null };
    }
    let client_commit: Segmentation["client_commit"] = null;
    if (json.client_commit !== undefined && json.client_commit !== null) {
      const cc = json.client_commit;
      if (!isJsonObject(cc)) throw fail("EINVAL", "client_commit must be an object");
      client_commit = {
        flush_interval_ms: num(cc, "flush_interval_ms", "client_commit.") ?? null,
        max_buffer_bytes: num(cc, "max_buffer_bytes", "client_commit.") ?? null,
        silence_ms: num(cc, "silence_ms", "client_commit.") ?? null,
        min_flush_gap_ms: num(cc, "min_flush_gap_ms", "client_commit.") ?? 500,
      };
    }
    return { strategy, flush_on_close, vad, client_commit };
  }
  // Legacy format.
  const enabled = bool(json, "enabled", false);
  const mode = json.mode ?? "off";
  if (typeof mode !== "string") throw fail("EINVAL", "mode must be a string");
  const flush_interval_ms = num(json, "flush_interval_ms", "") ?? null;
  const max_buffer_bytes = num(json, "max_buffer_bytes", "") ?? null;
  const silence_ms = num(json, "silence_ms", "") ?? null;
  const min_flush_gap_ms = num(json, "min_flush_gap_ms", "") ?? 500;
  if (!enabled || mode === "off") {
    return { strategy: "manual", flush_on_close, vad: null, client_commit: null };
  }
  if (mode === "silence") {
    return {
      strategy: "server_vad",
      flush_on_close,
      vad: { silence_ms: silence_ms ?? flush_interval_ms ?? 500, threshold: 0.5, prefix_padding_ms: 300 },
      client_commit: null,
    };
  }
  const cc = {
    flush_interval_ms: null,
    max_buffer_bytes: null,
    silence_ms: null,
    min_flush_gap_ms,
  } as NonNullable<
    Segmentation["client_commit"]
  >;
  if (mode === "bytes") cc.max_buffer_bytes = max_buffer_bytes;
  else if (mode === "time") cc.flush_interval_ms = flush_interval_ms;
  else Object.assign(cc, { flush_interval_ms, max_buffer_bytes, silence_ms });
  return { strategy: "client_commit", flush_on_close, vad: null, client_commit: cc };
}

/** GET_AUTOFLUSH's JSON (reference §6.6 shape; absent vad numbers are left out). */
export function segmentationJson(s: Segmentation): JsonObject {
  let vad: JsonObject | null = null;
  if (s.vad) {
    vad = { silence_ms: s.vad.silence_ms };
    if (s.vad.threshold != null) vad.threshold = s.vad.threshold;
    if (s.vad.prefix_padding_ms != null) vad.prefix_padding_ms = s.vad.prefix_padding_ms;
  }
  return { strategy: s.strategy, flush_on_close: s.flush_on_close, vad, client_commit: s.client_commit };
}

/**
 * The GA `turn_detection` for a segmentation: server_vad → `{type, threshold, prefix_padding_ms,
 * silence_duration_ms}` (defaults 0.5 / 300 / 500), manual and client_commit → null.
 */
export function turnDetection(s: Segmentation): JsonObject | null {
  if (s.strategy !== "server_vad") return null;
  return {
    type: "server_vad",
    threshold: s.vad?.threshold ?? 0.5,
    prefix_padding_ms: s.vad?.prefix_padding_ms ?? 300,
    silence_duration_ms: s.vad?.silence_ms ?? 500,
  };
}
