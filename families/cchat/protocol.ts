/**
 * What crosses the boundary for cchat: one request per backend round trip. The worker owns
 * the session (messages, tools, the AUTO_TOOL_CALL loop) and asks the driver for one round
 * trip at a time; closing the response fd cancels the request in flight.
 *
 * The conversation is the request's attachment (protocol/rpc.ts): the OpenAI message objects
 * as one JSON array text, whose bytes the driver copies into the HTTP body. A long
 * conversation, sent again on every round trip of a tool loop, is then neither parsed, checked
 * nor serialized again on the main thread, nor made a string there (bench:chat's 64 KiB row).
 */
import * as s from "../../protocol/schema.ts";
import { method } from "../../protocol/rpc.ts";

export const CchatCtl = { SET_PARAM: 1, GET_METRICS: 2 } as const;
export const CchatSendFlag = { ENABLE_METRICS: 1, AUTO_TOOL_CALL: 2 } as const;

/** Largest request or response that crosses to the host in one message. */
export const MAX_CHAT_MESSAGE_BYTES = 32 << 20;

/** What a session set of `mcp.*` (reference §5.2); the driver applies the task policy. */
export const McpSessionState = s.object({
  enabled: s.optional(s.boolean),
  server_ids: s.optional(s.array(s.string)),
  tool_allowlist: s.optional(s.array(s.string)),
  tool_denylist: s.optional(s.array(s.string)),
});

export const ChatRoundTripRequest = s.object({
  /** The ChatSession fd (the stub's reply id is `chatcmpl_<sessionFd>`). */
  sessionFd: s.int,
  /** OpenAI tool objects, sent verbatim; non-empty adds `supports_tools`. */
  tools: s.array(s.json),
  /** Every SET_PARAM value; structural/`mcp.*`/streaming keys are stripped before sending. */
  params: s.record,
  /** Request model ("" = take the chosen backend's bound model). */
  model: s.string,
  /** Force the backend with this configured name. */
  backend: s.optional(s.string),
  /** HTTP timeout; none when absent (as SPEAR). */
  timeoutMs: s.optional(s.number),
  /** The session's `mcp.*` settings, when it made any. */
  mcp: s.optional(McpSessionState),
  /** The guest runs the tool loop (AUTO_TOOL_CALL): the result then carries the assistant's turn. */
  toolLoop: s.optional(s.boolean),
});
export type ChatRoundTripRequest = s.Infer<typeof ChatRoundTripRequest>;

export const ChatRoundTripError = s.object({ message: s.string, code: s.optional(s.string) });
export type ChatRoundTripError = s.Infer<typeof ChatRoundTripError>;

/**
 * One round trip's outcome; `error` when not ok. When ok, the reply's attachment (Outcome
 * .attachment) is the JSON text the guest reads from the response fd (reference §5.5): the
 * backend's body (a non-object value wrapped as `{result: value}`, as SPEAR) with `_spear:
 * {backend, model}`. The host makes it once on the main thread, where the body was parsed
 * anyway, and it crosses beside the result, not escaped inside it: the worker neither parses
 * the body again nor serializes it back (6–12 µs less worker CPU per sequential round trip,
 * measured with a driver that answers at once).
 */
export const ChatRoundTripResult = s.object({
  ok: s.boolean,
  /** With `toolLoop`: the first choice's `message` and `finish_reason`, which the loop runs on. */
  message: s.optional(s.record),
  finishReason: s.optional(s.json),
  /** Name of the chosen backend (also on failure when one was chosen). */
  backend: s.optional(s.string),
  /** Request model, or the response's `model` when the request model was empty. */
  model: s.optional(s.string),
  /** Upstream `usage` block, when the backend sent one. */
  usage: s.optional(s.record),
  /** Request start to body parsed, milliseconds. */
  latencyMs: s.number,
  error: s.optional(ChatRoundTripError),
});
export type ChatRoundTripResult = s.Infer<typeof ChatRoundTripResult>;

export const chatRoundTrip = method("cchat.round_trip", ChatRoundTripRequest, ChatRoundTripResult);

/** The host's MCP task policy (config `mcp.task`), asked once per guest at its first cchat_create. */
export const McpTaskPolicy = s.object({
  enabled: s.boolean,
  default_server_ids: s.array(s.string),
  allowed_server_ids: s.array(s.string),
  tool_allowlist: s.array(s.string),
  tool_denylist: s.array(s.string),
});
export const mcpTaskPolicy = method(
  "cchat.mcp_task_policy",
  s.object({}),
  s.object({ task: s.optional(McpTaskPolicy) }),
);

/** One MCP tool call of the tool loop (a `mcp__<server>__<tool>` name); the result is text for the model. */
export const mcpCall = method(
  "cchat.mcp_call",
  s.object({ name: s.string, arguments: s.record, mcp: s.optional(McpSessionState), maxBytes: s.int }),
  s.object({ ok: s.boolean, content: s.optional(s.string), error: s.optional(ChatRoundTripError) }),
);
