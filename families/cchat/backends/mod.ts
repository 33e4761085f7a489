/**
 * Main-thread chat driver: one backend round trip for a guest's cchat session.
 *
 * The worker owns the session (messages, tools, params, the AUTO_TOOL_CALL loop) and hands
 * one request at a time here; `runChatRoundTrip` routes it (reference §5.4), calls the
 * backend (`stub` in-process, `openai_chat_completion` over HTTP, `local_llm` over loopback
 * to the supervised engine) and resolves with the backend JSON or an error. It never rejects.
 *
 * Error messages are SPEAR's error displays, ready for `{"error":{"message":…}}`:
 * routing failures read `Operation not supported: no candidate backend…`, backend failures
 * `Runtime error: upstream status: 401: …`, `Runtime error: missing model`,
 * `Runtime error: timeout after 500 ms`. `code` carries the machine-readable cause.
 */

import type { BackendConfig, HostConfig } from "../../../host/config.ts";
import { netPolicy } from "../../../host/config.ts";
import type { BodyBudget } from "./openai.ts";
import { openaiChatCompletion } from "./openai.ts";
import { selectBackend } from "./router.ts";
import { stubChatCompletion } from "./stub.ts";
import { LocalEngines } from "./local_llm.ts";
import { chatBackends } from "../chat_backends.ts";
import type { McpServers } from "../mcp.ts";
import { effectiveMcp, type McpSessionPolicy, type McpSessionState } from "../mcp_config.ts";
import type { CallContext } from "../../../protocol/rpc.ts";
import { decodeUtf8 } from "../../../protocol/bytes.ts";
import { isJsonObject } from "../../../runtime/json.ts";

export { chatCompletionsUrl, forwardedParams } from "./openai.ts";
export { selectBackend } from "./router.ts";
export { stubChatCompletion } from "./stub.ts";
export { CHAT_BACKEND_KINDS, chatBackends, EMBEDDED_LOCAL_LLM, usesLocalLlm } from "../chat_backends.ts";

let shared: LocalEngines | undefined;
let users = 0;

/**
 * The process's local engine, shared by every host in it (one model in memory). A host's cchat
 * driver holds it from start to stop; the last host to stop stops the engine.
 */
export function localEngines(): LocalEngines {
  return shared ??= new LocalEngines();
}

export function holdLocalEngines(): void {
  users++;
}

export async function releaseLocalEngines(): Promise<void> {
  users = Math.max(0, users - 1);
  if (users === 0 && shared) {
    const engines = shared;
    shared = undefined;
    await engines.stop();
  }
}

export interface ChatRoundTripRequest {
  /** The ChatSession fd (the stub's reply id is `chatcmpl_<sessionFd>`). */
  sessionFd: number;
  /**
   * The OpenAI message objects (`{role, content, tool_call_id?, tool_calls?, name?}`) as the
   * UTF-8 of one compact JSON array text (JSON.stringify's), copied into the request body as
   * it is.
   */
  messages: Uint8Array;
  /** Parsed OpenAI tool objects, sent verbatim; non-empty adds `supports_tools`. */
  tools: unknown[];
  /** Every SET_PARAM value; structural/`mcp.*`/streaming keys are stripped before sending. */
  params: Record<string, unknown>;
  /** Request model ("" = take the chosen backend's bound model). */
  model: string;
  /** Force the backend with this configured name. */
  backend?: string;
  /** HTTP timeout; defaults to params.timeout_ms; none when both are absent (as SPEAR). */
  timeoutMs?: number;
  /** The session's `mcp.*` settings, when it made any (the task policy's defaults apply too). */
  mcp?: McpSessionState;
}

/** What a host's chat driver lends a round trip: its local engine and its MCP servers. */
export interface ChatServices {
  engines?: () => LocalEngines;
  /** The MCP client (loaded on first use); absent: MCP is not available. */
  mcp?: () => Promise<McpServers>;
}

export interface ChatRoundTripError {
  message: string;
  /** e.g. no_candidate_backend, invalid_request, upstream_error, invalid_response, network_error,
   * timeout, cancelled, net_denied, credential_error, unsupported_operation, internal_error. */
  code?: string;
}

export interface ChatRoundTripOk {
  ok: true;
  /** The backend JSON (a non-object JSON value comes wrapped as `{result: value}`, as SPEAR). */
  body: Record<string, unknown>;
  /** Name of the chosen backend. */
  backend: string;
  /** Request model, or the response's `model` when the request model was empty (for `_spear`). */
  model: string;
  /** Upstream `usage` block, when the backend sent one. */
  usage?: Record<string, unknown>;
  /** Request start to body parsed, milliseconds. */
  latencyMs: number;
}

export interface ChatRoundTripFailure {
  ok: false;
  error: ChatRoundTripError;
  /** The backend that failed, once one was chosen (for GET_METRICS). */
  backend?: string;
  /** The model asked of it. */
  model?: string;
  latencyMs: number;
}

export type ChatRoundTripResult = ChatRoundTripOk | ChatRoundTripFailure;

function nonNegativeInt(v: unknown): number | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** Routing requirements of a request: `supports_tools`, `supports_json_schema`. */
export function requiredFeaturesFor(req: Pick<ChatRoundTripRequest, "tools" | "params">): string[] {
  const features: string[] = [];
  if (req.tools.length > 0) features.push("supports_tools");
  const rf = req.params.response_format;
  if (isJsonObject(rf) && rf.type === "json_schema") features.push("supports_json_schema");
  return features;
}

/**
 * The JSON the guest reads from the response fd (reference §5.5): the body plus
 * `_spear: {backend, model}` on success, `{"error": {"message"}}` on failure.
 */
export function responseJson(result: ChatRoundTripResult): Record<string, unknown> {
  if (result.ok) return { ...result.body, _spear: { backend: result.backend, model: result.model } };
  return { error: { message: result.error.message } };
}

/** The message objects of a conversation's JSON text, for the one backend that reads them (stub). */
function parsedMessages(text: Uint8Array): unknown[] {
  try {
    const messages = JSON.parse(decodeUtf8(text));
    return Array.isArray(messages) ? messages : [];
  } catch {
    return [];
  }
}

/**
 * A round trip's cancellation: a signal, or a request's context (protocol/rpc.ts CallContext),
 * whose `abort` then serves the HTTP timeout too.
 */
export type ChatCancel = AbortSignal | Pick<CallContext, "signal" | "abort">;

/** Runs one backend round trip. Never rejects; `random` drives the weighted pick. */
export async function runChatRoundTrip(
  config: HostConfig,
  req: ChatRoundTripRequest,
  cancel?: ChatCancel,
  random: () => number = Math.random,
  budget?: BodyBudget,
  services: ChatServices = {},
): Promise<ChatRoundTripResult> {
  const start = performance.now();
  const elapsed = () => Math.round((performance.now() - start) * 1000) / 1000;
  const signal = cancel instanceof AbortSignal ? cancel : cancel?.signal;
  const abort = cancel instanceof AbortSignal ? undefined : cancel?.abort;
  let chosen: BackendConfig | undefined;
  try {
    const params = isJsonObject(req.params) ? req.params : {};
    const messages = req.messages;
    let tools = Array.isArray(req.tools) ? req.tools : [];
    const mcp = effectiveMcp(config.mcp, req.mcp);
    if ("error" in mcp) {
      return {
        ok: false,
        error: { message: `Runtime error: ${mcp.error}`, code: "mcp_unavailable" },
        latencyMs: elapsed(),
      };
    }
    if ("policy" in mcp) {
      const offered = await mcpTools(mcp.policy, services, signal);
      if (!Array.isArray(offered)) return { ok: false, error: offered, latencyMs: elapsed() };
      tools = [...tools, ...offered];
    }
    const requestModel = typeof req.model === "string"
      ? req.model
      : typeof params.model === "string"
      ? params.model
      : "";
    const backendName = typeof req.backend === "string"
      ? req.backend
      : typeof params.backend === "string"
      ? params.backend
      : undefined;
    const timeoutMs = nonNegativeInt(req.timeoutMs) ?? nonNegativeInt(params.timeout_ms);

    const route = selectBackend(
      chatBackends(config),
      { model: requestModel, backend: backendName, requiredFeatures: requiredFeaturesFor({ tools, params }) },
      random,
    );
    if ("error" in route) {
      return {
        ok: false,
        error: { message: `Operation not supported: ${route.error}`, code: "no_candidate_backend" },
        latencyMs: elapsed(),
      };
    }
    chosen = route.backend;
    const backend = route.backend;

    let body: unknown;
    let usage: Record<string, unknown> | undefined;
    let latencyMs: number;
    if (backend.kind === "stub") {
      if (signal?.aborted) {
        return {
          ok: false,
          error: { message: "Runtime error: request cancelled", code: "cancelled" },
          backend: backend.name,
          model: route.model,
          latencyMs: elapsed(),
        };
      }
      body = stubChatCompletion({
        sessionFd: req.sessionFd,
        model: route.model,
        messages: parsedMessages(messages),
        tools,
      });
      latencyMs = elapsed();
    } else if (backend.kind === "openai_chat_completion" || backend.kind === "local_llm") {
      const call = { backend, model: route.model, messages, tools, params, timeoutMs, signal, abort, budget };
      const r = backend.kind === "local_llm"
        ? await (services.engines ?? localEngines)().chat(call)
        : await openaiChatCompletion({ ...call, policy: netPolicy(config) });
      if (!r.ok) {
        return {
          ok: false,
          error: { message: `Runtime error: ${r.error.message}`, code: r.error.code },
          backend: backend.name,
          model: route.model,
          latencyMs: r.latencyMs,
        };
      }
      body = r.body;
      usage = r.usage;
      latencyMs = r.latencyMs;
    } else {
      return {
        ok: false,
        error: {
          message:
            `Runtime error: backend ${backend.name} (kind ${backend.kind}) does not serve chat_completions`,
          code: "unsupported_operation",
        },
        backend: backend.name,
        model: route.model,
        latencyMs: elapsed(),
      };
    }

    const obj = isJsonObject(body) ? body : { result: body };
    let model = requestModel;
    if (requestModel.trim() === "") {
      const respModel = typeof obj.model === "string" ? obj.model.trim() : "";
      model = respModel !== "" ? respModel : route.model;
    }
    return {
      ok: true,
      body: obj,
      backend: backend.name,
      model,
      ...(usage ? { usage } : {}),
      latencyMs,
    };
  } catch (e) {
    // Defensive: nothing above should throw, but a driver bug must not take the host down.
    return {
      ok: false,
      error: {
        message: `Runtime error: internal error: ${(e as Error)?.message ?? String(e)}`,
        code: "internal_error",
      },
      ...(chosen ? { backend: chosen.name } : {}),
      latencyMs: elapsed(),
    };
  }
}

/** The MCP tools a session is offered, or the error that says why MCP cannot serve it. */
async function mcpTools(
  policy: McpSessionPolicy,
  services: ChatServices,
  signal?: AbortSignal,
): Promise<unknown[] | ChatRoundTripError> {
  if (!services.mcp) {
    return { message: "Runtime error: MCP is not available in this host", code: "mcp_unavailable" };
  }
  try {
    return await (await services.mcp()).toolsFor(policy, signal);
  } catch (e) {
    const code = (e as { code?: string }).code ?? "mcp_error";
    return { message: `Runtime error: ${(e as Error).message}`, code };
  }
}
