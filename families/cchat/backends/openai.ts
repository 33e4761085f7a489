/**
 * OpenAI Chat Completions over HTTP (backend kind `openai_chat_completion`, reference §5.3).
 *
 * Runs on the main thread with `fetch`. Never throws for backend problems: every failure
 * (network policy, permissions, network, timeout, cancellation, non-2xx, bad JSON) comes back
 * as `{ok: false, error: {message, code}}`.
 *
 * Credentials: the API key is read from the backend's environment variable at request time
 * (host/net/credentials.ts) and sent only as `authorization: Bearer …`. An upstream can echo
 * it, so the whole response body is redacted (the key and every fragment of 8 or more
 * characters) before it is parsed, and the parsed value again (escaped spellings); every
 * error text is redacted too. A credentialed request never follows a redirect to another
 * origin: that would hand the body (and, with a careless client, the key) to a host the
 * backend's owner did not name. Each hop is checked against the network policy.
 */

import type { BackendConfig } from "../../../host/config.ts";
import { readApiKey, Redactor } from "../../../host/net/credentials.ts";
import type { NetPolicy } from "../../../host/net/policy.ts";
import { type BodyBudget, checkedFetch, hostPortOf, readBodyText } from "../../../host/net/http.ts";
import { isJsonObject } from "../../../runtime/json.ts";
import { Deadlines } from "../../../protocol/deadlines.ts";

/** SPEAR's structural SET_PARAM keys: consumed by the host, never sent upstream. */
export const STRUCTURAL_PARAM_KEYS: ReadonlySet<string> = new Set([
  "model",
  "backend",
  "timeout_ms",
  "messages",
  "tools",
  "tool_arena_ptr",
  "tool_arena_len",
  "max_tool_output_bytes",
  "max_total_tool_calls",
  "max_tool_calls",
  "max_iterations",
]);

/**
 * Keys spearhost drops on top of SPEAR's: the host parses one JSON body, so streaming is
 * refused (`stream_options` goes too, since upstreams reject it without `stream: true`).
 */
export const STREAMING_PARAM_KEYS: ReadonlySet<string> = new Set(["stream", "stream_options"]);

/** Longest redirect chain followed (307/308 only, same origin when credentialed, each hop checked). */
const MAX_REDIRECTS = 10;

export type ChatDriverErrorCode =
  | "invalid_request"
  | "credential_error"
  | "net_denied"
  | "network_error"
  | "timeout"
  | "cancelled"
  | "upstream_error"
  | "invalid_response";

export interface ChatDriverError {
  message: string;
  code: ChatDriverErrorCode;
}

export type OpenAIChatResult =
  | { ok: true; status: number; body: unknown; usage?: Record<string, unknown>; latencyMs: number }
  | { ok: false; error: ChatDriverError; status?: number; latencyMs: number };

export interface OpenAIChatCall {
  backend: BackendConfig;
  /** Effective model (after the backend default); blank → `missing model`. */
  model: string;
  /** The conversation, UTF-8 of a compact JSON array (ChatRoundTripRequest.messages); `[]` → `missing messages`. */
  messages: Uint8Array;
  tools: readonly unknown[];
  /** All SET_PARAM values; structural, `mcp.*` and streaming keys are stripped here. */
  params: Record<string, unknown>;
  /** Whole-request timeout (connect + body); none when undefined, as SPEAR. */
  timeoutMs?: number;
  /** Cancellation, e.g. when the guest closes the response fd. */
  signal?: AbortSignal;
  /** Aborts `signal` (CallContext.abort): the timeout then aborts it, with no controller joined to it. */
  abort?: (reason: unknown) => void;
  /** The network policy every hop must pass (see `netPolicy`); unchecked when undefined. */
  policy?: NetPolicy;
  /** The guest's host budget: the body is charged while it is read, and refused past it. */
  budget?: BodyBudget;
}

/** SPEAR's URL rule: base containing `/v1` → base + `/chat/completions`, else + `/v1/chat/completions`. */
export function chatCompletionsUrl(baseUrl: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  return base + (baseUrl.includes("/v1") ? "/chat/completions" : "/v1/chat/completions");
}

/**
 * The parsed completions URL of a base URL, parsed once: base URLs come from the config, and
 * parsing costs more than a lookup on every request. Never mutated (redirects make new URLs).
 */
const completionsUrls = new Map<string, URL | null>();
function completionsUrlOf(baseUrl: string): URL | null {
  let url = completionsUrls.get(baseUrl);
  if (url === undefined) {
    try {
      url = new URL(chatCompletionsUrl(baseUrl));
    } catch {
      url = null;
    }
    if (completionsUrls.size >= 256) completionsUrls.clear(); // configs name few; stay bounded anyway
    completionsUrls.set(baseUrl, url);
  }
  return url;
}

/** The params that go into the request body as top-level fields. */
export function forwardedParams(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (STRUCTURAL_PARAM_KEYS.has(k) || STREAMING_PARAM_KEYS.has(k) || k.startsWith("mcp.")) continue;
    out[k] = v;
  }
  return out;
}

const utf8 = new TextEncoder();

/**
 * The request body, `{model, messages, tools? (non-empty only), ...forwarded params}`, as
 * bytes: the conversation's go in as they are; params cannot override the first three.
 */
export function chatBody(
  model: string,
  messages: Uint8Array,
  tools: readonly unknown[],
  params: Record<string, unknown>,
): Uint8Array<ArrayBuffer> {
  const rest: Record<string, unknown> = tools.length > 0 ? { tools } : {};
  const tail = JSON.stringify(Object.assign(rest, forwardedParams(params)));
  const head = utf8.encode(`{"model":${JSON.stringify(model)},"messages":`);
  const end = utf8.encode(tail === "{}" ? "}" : `,${tail.slice(1)}`);
  const body = new Uint8Array(head.length + messages.length + end.length);
  body.set(head);
  body.set(messages, head.length);
  body.set(end, head.length + messages.length);
  return body;
}

/** Whether a conversation is `[]`. */
function noMessages(messages: Uint8Array): boolean {
  return messages.length === 2 && messages[0] === 0x5b && messages[1] === 0x5d;
}

export { hostPortOf };

/** `: type: code: message` from an OpenAI error body, parts that exist (SPEAR's format). */
export function openaiErrorDetail(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const e = (json as Record<string, unknown>).error;
  if (typeof e === "string") return e === "" ? undefined : e;
  if (typeof e !== "object" || e === null) return undefined;
  const err = e as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof err.type === "string" && err.type !== "") parts.push(err.type);
  if (typeof err.code === "string" && err.code !== "") parts.push(err.code);
  else if (typeof err.code === "number" && Number.isInteger(err.code)) parts.push(String(err.code));
  if (typeof err.message === "string" && err.message !== "") parts.push(err.message);
  return parts.length > 0 ? parts.join(": ") : undefined;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export type { BodyBudget };

/**
 * Longest upstream body read: past it the reply could not reach the guest anyway (the host's
 * 32 MiB message limit), so reading stops there instead of holding an unbounded body.
 */
export const MAX_BODY_BYTES = 32 << 20;

class Timeout extends Error {}
// Unref'd, the shared timer outlives the last request (protocol/deadlines.ts): no timer per request.
const requestDeadlines = new Deadlines(undefined, {
  set: (fire, ms) => setTimeout(fire, ms),
  clear: (timer) => clearTimeout(timer),
  unref: (timer) => Deno.unrefTimer(timer),
});
class Cancelled extends Error {}

/** One chat completion request. Resolves (never rejects) with the parsed body or an error. */
export async function openaiChatCompletion(call: OpenAIChatCall): Promise<OpenAIChatResult> {
  const start = performance.now();
  const elapsed = () => roundMs(performance.now() - start);
  let redactor = Redactor.NONE;
  const fail = (code: ChatDriverErrorCode, message: string, status?: number): OpenAIChatResult => ({
    ok: false,
    error: { code, message: redactor.redact(message) },
    ...(status === undefined ? {} : { status }),
    latencyMs: elapsed(),
  });

  const { backend } = call;
  const model = call.model.trim();
  if (model === "") return fail("invalid_request", "missing model");
  if (noMessages(call.messages)) return fail("invalid_request", "missing messages");
  if (!backend.base_url) return fail("invalid_request", `backend "${backend.name}" has no base_url`);

  const credential = readApiKey(backend);
  if (!credential.ok) return fail("credential_error", credential.error);
  const key = credential.key;
  redactor = credential.redactor;

  const url = completionsUrlOf(backend.base_url);
  if (!url) return fail("invalid_request", `backend "${backend.name}" has an invalid base_url`);

  let requestBody: Uint8Array<ArrayBuffer>;
  try {
    requestBody = chatBody(model, call.messages, call.tools, call.params);
  } catch (e) {
    return fail("invalid_request", `cannot serialize request: ${(e as Error).message}`);
  }

  if (call.signal?.aborted) return fail("cancelled", "request cancelled");

  // Without a timeout the guest's own signal is the request's. With one (on the shared deadline
  // timer: a platform timer per request is costly), the timeout aborts that signal when its
  // owner lends `abort`; otherwise a controller joins the two.
  const timeoutMs = call.timeoutMs;
  let signal = call.signal;
  let disarm: (() => void) | undefined;
  let unjoin: (() => void) | undefined;
  if (timeoutMs !== undefined) {
    const abort = call.abort;
    if (abort && signal) disarm = requestDeadlines.after(timeoutMs, () => abort(new Timeout()));
    else {
      const joined = new AbortController();
      const onAbort = () => joined.abort(new Cancelled());
      disarm = requestDeadlines.after(timeoutMs, () => joined.abort(new Timeout()));
      signal?.addEventListener("abort", onAbort, { once: true });
      unjoin = () => call.signal?.removeEventListener("abort", onAbort);
      signal = joined.signal;
    }
  }

  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;

  try {
    const fetched = await checkedFetch(url, {
      method: "POST",
      headers,
      body: requestBody,
      policy: call.policy,
      signal,
      follow: [307, 308],
      maxRedirects: MAX_REDIRECTS,
      refuseRedirect: (from, to) =>
        to.origin !== from.origin && key !== undefined
          ? `refusing to follow a redirect from ${from.origin} to another origin (${to.origin}) ` +
            `on a request that carries the backend's API key`
          : undefined,
    });
    if (!fetched.ok) {
      if (fetched.code === "invalid_redirect") {
        return fail(
          "upstream_error",
          `upstream status: ${fetched.status}: ${fetched.message}`,
          fetched.status,
        );
      }
      return fail("net_denied", fetched.message, fetched.status);
    }
    const res = fetched.response;

    // Redacted as a whole before parsing, so neither the value nor a parse error quoting the
    // text can carry the key (or a fragment of it) to the guest.
    const read = await readBodyText(res, MAX_BODY_BYTES, call.budget);
    if ("error" in read) return fail("invalid_response", read.error, res.status);
    const text = read.text;
    if (!res.ok) {
      let json: unknown;
      try {
        json = redactor.parseJson(text);
      } catch {
        json = undefined;
      }
      const detail = openaiErrorDetail(json);
      return fail(
        "upstream_error",
        detail === undefined ? `upstream status: ${res.status}` : `upstream status: ${res.status}: ${detail}`,
        res.status,
      );
    }
    let body: unknown;
    try {
      body = redactor.parseJson(text);
    } catch (e) {
      return fail(
        "invalid_response",
        `invalid response: upstream body (status ${res.status}) is not JSON: ${(e as Error).message}`,
        res.status,
      );
    }
    const usage = isJsonObject(body) && isJsonObject(body.usage) ? body.usage : undefined;
    return { ok: true, status: res.status, body, ...(usage ? { usage } : {}), latencyMs: elapsed() };
  } catch (e) {
    if (signal?.aborted && signal.reason instanceof Timeout) {
      return fail("timeout", `timeout after ${timeoutMs} ms`);
    }
    if (signal?.aborted) return fail("cancelled", "request cancelled");
    const err = e as Error;
    const cause = err.cause instanceof Error && !err.message.includes(err.cause.message)
      ? `: ${err.cause.message}`
      : "";
    return fail("network_error", `network error: ${err.message}${cause}`);
  } finally {
    disarm?.();
    unjoin?.();
  }
}
