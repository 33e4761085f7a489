/**
 * Backend selection for one chat round trip (reference §5.4), as SPEAR's router does it:
 *
 * 1. candidates = backends serving `chat_completions` that have every required feature;
 * 2. an explicit `backend` name keeps only the backend with exactly that name;
 * 3. a non-empty request model, when any candidate has a bound model, keeps only the
 *    candidates bound to that model (else `no candidate backend for model="m": available_models=[…]`);
 * 4. no candidates → `no candidate backend: op=ChatCompletions …` listing every chat backend;
 * 5. weighted random pick (weight at least 1);
 * 6. an empty request model takes the chosen backend's bound model.
 *
 * Error texts use Rust's `{:?}` rendering so they read exactly like SPEAR's.
 */

import type { BackendConfig } from "../../../host/config.ts";

export const CHAT_OP = "chat_completions";

export interface RouteRequest {
  /** Request model; blank means "use the chosen backend's bound model". */
  model: string;
  /** Force the backend with exactly this configured name (blank = not set). */
  backend?: string;
  /** e.g. `supports_tools`, `supports_json_schema`. */
  requiredFeatures: string[];
}

export type RouteResult = { backend: BackendConfig; model: string } | { error: string };

/** Rust `{:?}` of a &str: double-quoted, with `\`, `"` and control characters escaped. */
export function rustDebugStr(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\0") out += "\\0";
    else if (cp < 0x20 || cp === 0x7f) out += `\\u{${cp.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/** Rust `{:?}` of a Vec<String>: `["a", "b"]`. */
export function rustDebugList(items: readonly string[]): string {
  return `[${items.map(rustDebugStr).join(", ")}]`;
}

/** Transports SPEAR attaches to each kind (only used in the no-candidate diagnostic). */
function transportsOf(b: BackendConfig): string[] {
  switch (b.kind) {
    case "openai_chat_completion":
      return ["http"];
    case "openai_realtime_ws":
      return ["websocket"];
    default:
      return ["in_process"];
  }
}

function boundModel(b: BackendConfig): string | undefined {
  const m = (b.model ?? "").trim();
  return m === "" ? undefined : m;
}

function noCandidateError(
  backends: BackendConfig[],
  requiredFeatures: string[],
  routingBackend: string | undefined,
): string {
  const supporting = backends
    .filter((b) => b.ops.includes(CHAT_OP))
    .map((b) => {
      const missing = requiredFeatures.filter((f) => !b.features.includes(f));
      return `${b.name}(missing_features=${rustDebugList(missing)}, missing_transports=[], features=${
        rustDebugList(b.features)
      }, transports=${rustDebugList(transportsOf(b))})`;
    });
  const rb = routingBackend === undefined ? "None" : `Some(${rustDebugStr(routingBackend)})`;
  return `no candidate backend: op=ChatCompletions required_features=${
    rustDebugList(requiredFeatures)
  } required_transports=[] routing_backend=${rb} allowlist=[] denylist=[] backends=${
    rustDebugList(supporting)
  }`;
}

/**
 * Picks the backend for a chat request. Never throws; `random` returns [0, 1) and is
 * injectable so tests can make the weighted pick deterministic.
 */
export function selectBackend(
  backends: BackendConfig[],
  req: RouteRequest,
  random: () => number = Math.random,
): RouteResult {
  const requiredFeatures = [...new Set(req.requiredFeatures)];
  let candidates = backends.filter(
    (b) => b.ops.includes(CHAT_OP) && requiredFeatures.every((f) => b.features.includes(f)),
  );

  const routingBackend = req.backend !== undefined && req.backend.trim() !== "" ? req.backend : undefined;
  if (routingBackend !== undefined) candidates = candidates.filter((b) => b.name === routingBackend);

  const model = (req.model ?? "").trim();
  if (model !== "" && candidates.some((b) => boundModel(b) !== undefined)) {
    const exact = candidates.filter((b) => boundModel(b) === model);
    if (exact.length === 0) {
      const available = [
        ...new Set(candidates.map(boundModel).filter((m): m is string => m !== undefined)),
      ].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return {
        error: `no candidate backend for model=${rustDebugStr(model)}: available_models=${
          rustDebugList(available)
        }`,
      };
    }
    candidates = exact;
  }

  if (candidates.length === 0) return { error: noCandidateError(backends, requiredFeatures, routingBackend) };

  const weightOf = (b: BackendConfig) => Math.max(1, Math.floor(Number.isFinite(b.weight) ? b.weight : 1));
  const total = candidates.reduce((sum, b) => sum + weightOf(b), 0);
  let r = random();
  if (!(r >= 0 && r < 1)) r = 0;
  let pick = Math.min(total - 1, Math.floor(r * total));
  let chosen = candidates[candidates.length - 1];
  for (const b of candidates) {
    const w = weightOf(b);
    if (pick < w) {
      chosen = b;
      break;
    }
    pick -= w;
  }
  return { backend: chosen, model: model !== "" ? model : (boundModel(chosen) ?? "") };
}
