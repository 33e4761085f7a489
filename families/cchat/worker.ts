/**
 * cchat_*: chat-completion sessions on the fd table (SPEC.md §4, reference §5).
 *
 * Sessions and responses are fds. `cchat_send` is asynchronous (seed 000, route B): it
 * hands one backend round trip to the host's chat driver and returns the response fd at
 * once; EPOLLIN rises when the response is complete. With AUTO_TOOL_CALL the tool loop
 * runs here: tool calls from the backend are executed by calling the guest's function
 * table, but only where the guest waits or polls (cchat_recv, spear_epoll_wait — timeout 0
 * too —, sleep_ms, mic_read): there it is parked in a hostcall and can be re-entered safely.
 * Everything a session keeps is charged to the guest's host budget (-ENOMEM past it).
 */
import { fail, HostcallError, Poll } from "../../runtime/abi.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { isJsonObject, type JsonObject, parseGuestJson } from "../../runtime/json.ts";
import type { Outcome } from "../../protocol/rpc.ts";
import { utf8Length } from "../../protocol/bytes.ts";
import type { HostcallFn } from "../family.ts";
import {
  CchatCtl,
  CchatSendFlag,
  chatRoundTrip,
  type ChatRoundTripResult,
  MAX_CHAT_MESSAGE_BYTES,
  mcpCall,
  mcpTaskPolicy,
} from "./protocol.ts";
import { isMcpToolName, type McpSessionState, type McpTaskPolicy, taskRefuses } from "./mcp_config.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

type Json = JsonObject;

interface Tool {
  offset: number;
  /** The OpenAI tool object, sent verbatim. */
  spec: unknown;
  name?: string;
}

export interface ChatSession {
  /**
   * Each message's JSON text, made once when it is written: a send joins them into the
   * request's attachment, so a long conversation is not serialized again for every send, nor
   * parsed and serialized once more on the main thread.
   */
  messages: string[];
  /** What the guest set of `mcp.*` (the host applies the task policy at send). */
  mcp: McpSessionState;
  tools: Tool[];
  params: Map<string, unknown>;
  /** What each param costs the budget, so replacing it releases the old value. */
  paramBytes: Map<string, number>;
  sends: number;
  /** Bytes charged to the host budget for this session. */
  held: number;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatResponse {
  session: FdEntry<ChatSession>;
  flags: number;
  /** The JSON text the guest reads, once the response is complete, and its UTF-8 size (charged). */
  text?: string;
  size: number;
  roundTrips: number;
  toolCalls: number;
  latencyMs: number;
  usage?: Usage;
  backend?: string;
  model?: string;
  failed: boolean;
  /** The timeout the last round trip ran with, when it was cut to end before the run's time limit. */
  cappedTimeoutMs?: number;
  /** Turns this response appended to its session after the session closed (charged until this fd closes). */
  held: number;
}

const LIMITS = {
  max_tool_output_bytes: { fallback: 65536, max: 1 << 20 },
  max_total_tool_calls: { fallback: 32, max: 10000 },
  max_iterations: { fallback: 8, max: 128 },
};

/** Keys the host interprets, with the JSON type each must have. */
const TYPED_KEYS: Record<string, "string" | "number" | "boolean"> = {
  model: "string",
  backend: "string",
  timeout_ms: "number",
  tool_arena_ptr: "number",
  tool_arena_len: "number",
  max_tool_output_bytes: "number",
  max_total_tool_calls: "number",
  max_tool_calls: "number",
  max_iterations: "number",
  "mcp.enabled": "boolean",
};

/** `mcp.*` keys holding string lists (non-strings inside are dropped, as SPEAR). */
const MCP_LIST_KEYS = ["mcp.server_ids", "mcp.tool_allowlist", "mcp.tool_denylist"];

/**
 * The timeout a request runs with: the guest's `timeout_ms`, but never past the run's own time
 * limit — it ends a margin before (a tenth of what is left, at most a second), so the guest
 * gets its timeout error and can still report it instead of the whole run ending (exit 124).
 */
export function requestTimeout(requested: number | undefined, remainingMs: number): {
  timeoutMs?: number;
  capped: boolean;
} {
  if (!Number.isFinite(remainingMs)) return { timeoutMs: requested, capped: false };
  const cap = Math.max(1, Math.floor(remainingMs - Math.min(1000, remainingMs / 10)));
  if (requested !== undefined && requested <= cap) return { timeoutMs: requested, capped: false };
  return { timeoutMs: cap, capped: true };
}

/**
 * A tool call's arguments as a JSON object, or undefined when they are not one (e.g. cut off by
 * the token limit, even right before the arguments: empty text is not `{}`): such a call is
 * never run.
 */
export function toolArguments(text: string): Json | undefined {
  try {
    const v = JSON.parse(text);
    return isJsonObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Validates one SET_PARAM {key, value}; EINVAL/EACCES as SPEC.md §4 and reference §5.2. */
function parseParam(bytes: Uint8Array): { key: string; value: unknown } {
  const json = parseGuestJson(bytes, "SET_PARAM");
  if (!isJsonObject(json) || typeof json.key !== "string" || json.key === "") {
    throw fail("EINVAL", 'SET_PARAM: expected {"key": non-empty string, "value": …}');
  }
  const { key, value } = json as { key: string; value: unknown };
  if (key.startsWith("mcp.task_")) throw fail("EACCES", `${key} is reserved for the task policy`);
  const type = TYPED_KEYS[key];
  if (type && typeof value !== type) throw fail("EINVAL", `${key} must be a ${type}`);
  if (type === "number" && (!Number.isFinite(value as number) || (value as number) < 0)) {
    throw fail("EINVAL", `${key} must be a non-negative number`);
  }
  if (MCP_LIST_KEYS.includes(key) && !Array.isArray(value)) throw fail("EINVAL", `${key} must be an array`);
  return { key, value };
}

function numberParam(session: ChatSession, key: keyof typeof LIMITS, alias?: string): number {
  const { fallback, max } = LIMITS[key];
  const raw = session.params.get(key) ?? (alias ? session.params.get(alias) : undefined);
  return typeof raw === "number" ? Math.min(Math.floor(raw), max) : fallback;
}

function toolName(spec: unknown): string | undefined {
  if (!isJsonObject(spec)) return undefined;
  const fn = spec.function;
  if (isJsonObject(fn) && typeof fn.name === "string") return fn.name;
  return typeof spec.name === "string" ? spec.name : undefined;
}

function addUsage(total: Usage | undefined, usage: Json | undefined): Usage | undefined {
  if (!usage) return total;
  const n = (k: string) => (typeof usage[k] === "number" ? usage[k] as number : 0);
  const t = total ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  return {
    prompt_tokens: t.prompt_tokens + n("prompt_tokens"),
    completion_tokens: t.completion_tokens + n("completion_tokens"),
    total_tokens: t.total_tokens + n("total_tokens"),
  };
}

const align8 = (n: number) => (n + 7) & ~7;

/** A call's arguments as text (OpenAI sends a JSON string; some servers an object). */
function argumentsText(fn: Json): string {
  return typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments ?? {});
}

/** What one message, tool or param costs the host budget besides its bytes (object, map entry). */
const ITEM_OVERHEAD_BYTES = 64;

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;

  const sessionOf = (fd: number) => fds.getOpen<ChatSession>(fd, "ChatSession");

  /** Charges what a session keeps (messages, tools, params) to the guest's host budget. */
  const hold = (session: ChatSession, bytes: number, what: string) => {
    rt.charge(bytes, what);
    session.held += bytes;
  };
  const release = (session: ChatSession, bytes: number) => {
    rt.budget.release(bytes);
    session.held -= bytes;
  };

  /** The host's MCP task policy, asked once (only by guests that set `mcp.*`). */
  let task: McpTaskPolicy | null | undefined;
  const taskPolicy = (): McpTaskPolicy | undefined => {
    if (task === undefined) {
      const outcome = rt.call(mcpTaskPolicy, {}, { timeoutMs: 10_000 });
      if (!outcome.ok) throw fail("EIO", `MCP task policy: ${outcome.error}`);
      task = outcome.value.task ?? null;
    }
    return task ?? undefined;
  };

  /** `mcp.*` keys: checked against the task policy (-EACCES, as SPEAR), then kept for the host. */
  const setMcp = (session: ChatSession, key: string, value: unknown) => {
    if (key === "mcp.enabled" || key === "mcp.server_ids") {
      const refused = taskRefuses(taskPolicy(), key, value);
      if (refused) throw fail("EACCES", refused);
    }
    const strings = Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
    if (key === "mcp.enabled") session.mcp.enabled = value as boolean;
    else if (key === "mcp.server_ids") session.mcp.server_ids = strings;
    else if (key === "mcp.tool_allowlist") session.mcp.tool_allowlist = strings;
    else if (key === "mcp.tool_denylist") session.mcp.tool_denylist = strings;
  };

  const setParam = (session: ChatSession, key: string, value: unknown, size: number) => {
    if (key.startsWith("mcp.")) setMcp(session, key, value);
    hold(session, size + ITEM_OVERHEAD_BYTES, "cchat_ctl SET_PARAM");
    const previous = session.paramBytes.get(key);
    if (previous !== undefined) release(session, previous);
    session.paramBytes.set(key, size + ITEM_OVERHEAD_BYTES);
    session.params.set(key, value);
  };

  /**
   * Stores the response JSON text (its UTF-8 size charged until the fd closes) and raises
   * EPOLLIN. It stays text until cchat_recv encodes it into guest memory (GuestMemory.writeTextOut).
   */
  const complete = (entry: FdEntry<ChatResponse>, text: string) => {
    const resp = entry.state;
    let size = utf8Length(text);
    if (!rt.budget.tryCharge(size)) {
      resp.failed = true;
      const message = `response of ${size} bytes is over the guest's host budget (${rt.budget})`;
      text = JSON.stringify({ error: { message, code: "host_budget" } });
      size = utf8Length(text);
      rt.budget.force(size);
    }
    resp.text = text;
    resp.size = size;
    fds.updateMask(entry, Poll.EPOLLIN);
  };

  const failResponse = (entry: FdEntry<ChatResponse>, error: Json) => {
    entry.state.failed = true;
    complete(entry, JSON.stringify({ error }));
  };

  /**
   * Starts the next backend round trip for a response (closing the response fd cancels it),
   * or fails the response at once when the request is too large to send.
   */
  const request = (entry: FdEntry<ChatResponse>) => {
    if (entry.closed) return; // closed by a tool call: nothing more goes upstream
    const session = entry.state.session.state;
    const params = Object.fromEntries(session.params);
    entry.state.roundTrips++;
    const timeout = requestTimeout(
      typeof params.timeout_ms === "number" ? params.timeout_ms : undefined,
      rt.remainingMs(),
    );
    entry.state.cappedTimeoutMs = timeout.capped ? timeout.timeoutMs : undefined;
    rt.rpc.start(chatRoundTrip, {
      sessionFd: entry.state.session.fd,
      tools: session.tools.map((t) => t.spec),
      params,
      model: typeof params.model === "string" ? params.model : "",
      ...(typeof params.backend === "string" ? { backend: params.backend } : {}),
      ...(timeout.timeoutMs !== undefined ? { timeoutMs: timeout.timeoutMs } : {}),
      ...(Object.keys(session.mcp).length > 0 ? { mcp: session.mcp } : {}),
      ...(entry.state.flags & CchatSendFlag.AUTO_TOOL_CALL ? { toolLoop: true } : {}),
    }, {
      fd: entry.fd,
      attachment: `[${session.messages.join(",")}]`,
      maxBytes: MAX_CHAT_MESSAGE_BYTES,
      onDone: (outcome) => applyResult(entry, outcome),
    });
  };

  /**
   * Runs one guest tool with the arena layout of reference §5.7 and returns its output,
   * or throws HostcallError whose code becomes the "tool rc".
   */
  const runTool = (session: ChatSession, offset: number, args: string): string => {
    const arenaPtr = Number(session.params.get("tool_arena_ptr") ?? 0);
    const arenaLen = Number(session.params.get("tool_arena_len") ?? 0);
    if (!(arenaPtr > 0 && arenaLen > 0) || offset < 0) throw fail("EFAULT", "no tool arena");
    const maxOut = numberParam(session, "max_tool_output_bytes");
    const argBytes = encoder.encode(args);
    const arenaEnd = arenaPtr + arenaLen;
    mem.check(arenaPtr, arenaLen);
    const outPtr = arenaPtr + align8(argBytes.length + 1);
    let capacity = Math.min(arenaEnd - outPtr - 8, maxOut);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (capacity <= 0) throw fail("ENOSPC");
      const lenPtr = outPtr + align8(capacity);
      if (lenPtr + 4 > arenaEnd) throw fail("ENOSPC");
      mem.write(arenaPtr, argBytes);
      mem.write(arenaPtr + argBytes.length, new Uint8Array(1));
      mem.setU32(lenPtr, capacity);
      const rc = rt.invoker!.callTableI32x4(offset, [arenaPtr, argBytes.length, outPtr, lenPtr]);
      const written = mem.u32(lenPtr);
      if (rc === 0) {
        if (written > capacity) throw fail("EIO", "tool wrote more than its capacity");
        try {
          return decoder.decode(mem.slice(outPtr, written));
        } catch {
          throw fail("EIO", "tool output is not UTF-8");
        }
      }
      if (rc !== -28) throw new HostcallError("EIO", `tool rc: ${rc}`, rc);
      if (written > maxOut || outPtr + align8(written) + 4 > arenaEnd) throw fail("ENOSPC");
      capacity = written;
    }
    throw fail("EIO", "tool asked for more room twice");
  };

  /**
   * Appends a turn of the tool loop to the response's session, charged like a written message:
   * to the session while it is open, else to the response — a closed session has released what
   * it held, so the turns its responses still append are released when the response closes.
   */
  const appendTurn = (entry: FdEntry<ChatResponse>, message: Json): boolean => {
    const text = JSON.stringify(message);
    const size = text.length + ITEM_OVERHEAD_BYTES;
    if (!rt.budget.tryCharge(size)) return false;
    const session = entry.state.session;
    if (session.closed) entry.state.held += size;
    else session.state.held += size;
    session.state.messages.push(text);
    return true;
  };

  const overBudget = (entry: FdEntry<ChatResponse>) =>
    failResponse(entry, {
      code: "host_budget",
      message: `the session is over the guest's host budget (${rt.budget})`,
    });

  /**
   * Executes the tool calls of one assistant turn, then continues the loop. A turn with a call
   * whose arguments are not a JSON object (cut off by the token limit, say) runs no tool and
   * ends the response with an error: a tool never sees broken arguments, and they are never
   * sent back upstream (servers such as llama.cpp refuse a history holding them).
   */
  const runToolTurn = (entry: FdEntry<ChatResponse>, message: Json, calls: Json[], finish: unknown) => {
    if (entry.closed) return;
    for (const call of calls) {
      const fn = isJsonObject(call.function) ? call.function : {};
      if (toolArguments(argumentsText(fn)) !== undefined) continue;
      const cut = finish === "length"
        ? ' (the reply was cut off by the token limit: finish_reason "length")'
        : "";
      failResponse(entry, {
        code: "invalid_tool_arguments",
        message: `the model called ${
          JSON.stringify(typeof fn.name === "string" ? fn.name : "")
        } with arguments that are not a JSON object${cut}; no tool was run`,
      });
      return;
    }
    if (!appendTurn(entry, message)) return overBudget(entry);
    runCalls(entry, calls, 0);
  };

  /** Runs calls[from…] in order; an MCP call goes to the host and the rest resume when it answers. */
  const runCalls = (entry: FdEntry<ChatResponse>, calls: Json[], from: number) => {
    const resp = entry.state;
    const session = resp.session.state;
    const maxCalls = numberParam(session, "max_total_tool_calls", "max_tool_calls");
    for (let i = from; i < calls.length; i++) {
      if (entry.closed) return;
      if (resp.toolCalls >= maxCalls) {
        failResponse(entry, { code: "tool_call_limit", message: "exceeded max_total_tool_calls" });
        return;
      }
      resp.toolCalls++;
      const call = calls[i];
      const fn = isJsonObject(call.function) ? call.function : {};
      const name = typeof fn.name === "string" ? fn.name : "";
      const args = argumentsText(fn);
      const tool = session.tools.find((t) => t.name === name);
      if (!tool && isMcpToolName(name)) {
        rt.rpc.start(mcpCall, {
          name,
          arguments: toolArguments(args)!,
          ...(Object.keys(session.mcp).length > 0 ? { mcp: session.mcp } : {}),
          maxBytes: numberParam(session, "max_tool_output_bytes"),
        }, {
          fd: entry.fd,
          onDone: (outcome) => {
            const result = outcome.ok && outcome.value.ok ? outcome.value.content ?? "" : JSON.stringify({
              error: {
                code: "mcp_tool_failed",
                message: outcome.ok ? outcome.value.error?.message ?? "MCP tool failed" : outcome.error,
              },
            });
            // Guest tools may follow: they run where the guest waits, never inside a message pump.
            if (toolResult(entry, call, result)) rt.defer(() => runCalls(entry, calls, i + 1));
          },
        });
        return;
      }
      let result: string;
      if (tool) {
        try {
          result = runTool(session, tool.offset, args);
        } catch (e) {
          if (!(e instanceof HostcallError)) throw e; // a trap in the tool ends the guest
          result = JSON.stringify({
            error: { code: "tool_exec_failed", message: `tool rc: ${e.rc ?? e.code}` },
          });
        }
      } else {
        result = JSON.stringify({ error: { code: "unknown_tool", message: `unknown tool: ${name}` } });
      }
      if (!toolResult(entry, call, result)) return;
    }
    if (resp.roundTrips >= numberParam(session, "max_iterations")) {
      failResponse(entry, { code: "tool_call_limit", message: "exceeded max_iterations" });
      return;
    }
    request(entry);
  };

  /** Appends one tool result; false when the loop ends here (response closed, over budget). */
  const toolResult = (entry: FdEntry<ChatResponse>, call: Json, result: string): boolean => {
    // A tool may close its own response: then nothing more runs and nothing goes upstream.
    if (entry.closed) return false;
    if (!appendTurn(entry, { role: "tool", content: result, tool_call_id: call.id })) {
      overBudget(entry);
      return false;
    }
    return true;
  };

  /** Applies one round trip's result: complete the response, or run the tool calls it asks for. */
  function applyResult(entry: FdEntry<ChatResponse>, outcome: Outcome<ChatRoundTripResult>): void {
    if (entry.closed) return;
    const result: ChatRoundTripResult = outcome.ok
      ? outcome.value
      : { ok: false, latencyMs: 0, error: { message: outcome.error } };
    const response = outcome.ok ? outcome.attachment : undefined;
    const resp = entry.state;
    resp.latencyMs += result.latencyMs;
    resp.usage = addUsage(resp.usage, result.usage);
    // Set before the failure check: GET_METRICS names the backend that failed too.
    resp.backend = result.backend;
    resp.model = result.model;
    if (!result.ok || response === undefined) {
      const capped = result.error?.code === "timeout" && resp.cappedTimeoutMs !== undefined
        ? ` (cut to ${resp.cappedTimeoutMs} ms so that it ends before the run's time limit)`
        : "";
      failResponse(entry, {
        message: (result.error?.message ?? "chat backend failed") + capped,
        ...(result.error?.code ? { code: result.error.code } : {}),
      });
      return;
    }
    const auto = (resp.flags & CchatSendFlag.AUTO_TOOL_CALL) !== 0;
    const message = auto ? result.message : undefined; // the host sends it for the tool loop only
    const calls = message && Array.isArray(message.tool_calls) ? message.tool_calls.filter(isJsonObject) : [];
    if (message && calls.length > 0) {
      const turn: Json = {
        role: message.role ?? "assistant",
        content: message.content ?? null,
        tool_calls: calls,
      };
      if (typeof message.name === "string") turn.name = message.name;
      rt.defer(() => runToolTurn(entry, turn, calls, result.finishReason));
      return;
    }
    if (message) {
      const turn = { role: message.role ?? "assistant", content: message.content ?? null };
      if (!appendTurn(entry, turn)) return overBudget(entry);
    }
    complete(entry, response);
  }

  const responseMetrics = (resp: ChatResponse): Json => {
    if (!(resp.flags & CchatSendFlag.ENABLE_METRICS) || resp.text === undefined) return {};
    return {
      ...(resp.usage ?? {}),
      latency_ms: Math.round(resp.latencyMs * 1000) / 1000,
      round_trips: resp.roundTrips,
      tool_calls: resp.toolCalls,
      backend: resp.backend ?? null,
      model: resp.model ?? null,
      error: resp.failed,
    };
  };

  const newSession = (): ChatSession => ({
    messages: [],
    mcp: {},
    tools: [],
    params: new Map(),
    paramBytes: new Map(),
    sends: 0,
    held: 0,
  });

  return {
    cchat_create: () =>
      fds.alloc<ChatSession>("ChatSession", newSession(), {
        onClose: (e) => release(e.state, e.state.held),
        metrics: (e) => ({
          messages: e.state.messages.length,
          tools: e.state.tools.length,
          sends: e.state.sends,
          held_bytes: e.state.held,
        }),
      }).fd,

    cchat_write_msg: (
      fd: number,
      rolePtr: number,
      roleLen: number,
      contentPtr: number,
      contentLen: number,
    ) => {
      const session = sessionOf(fd).state;
      const role = mem.string(rolePtr, roleLen);
      const content = mem.string(contentPtr, contentLen);
      hold(session, roleLen + contentLen + ITEM_OVERHEAD_BYTES, "cchat_write_msg");
      session.messages.push(JSON.stringify({ role, content }));
      return 0;
    },

    cchat_write_fn: (fd: number, offset: number, ptr: number, len: number) => {
      const text = mem.slice(ptr, len);
      const session = sessionOf(fd).state;
      if (offset < 0) throw fail("EINVAL", "negative function offset");
      const spec = parseGuestJson(text, "cchat_write_fn");
      if (!isJsonObject(spec)) throw fail("EINVAL", "cchat_write_fn: tool must be a JSON object");
      const name = toolName(spec);
      hold(session, len + ITEM_OVERHEAD_BYTES, "cchat_write_fn");
      // First registration of a name wins, as in SPEAR.
      session.tools.push({
        offset,
        spec,
        name: session.tools.some((t) => t.name === name) ? undefined : name,
      });
      return 0;
    },

    cchat_ctl: (fd: number, cmd: number, argPtr: number, lenPtr: number) => {
      const entry = fds.get(fd);
      if (cmd === CchatCtl.SET_PARAM) {
        if (entry.closed || (entry.kind !== "ChatSession" && entry.kind !== "ChatResponse")) {
          throw fail("EBADF");
        }
        const json = mem.slice(argPtr, mem.u32(lenPtr));
        const { key, value } = parseParam(json);
        if (entry.kind === "ChatSession") setParam(entry.state as ChatSession, key, value, json.length);
        return 0; // on a response fd: accepted and ignored, as SPEAR
      }
      if (cmd === CchatCtl.GET_METRICS) {
        if (entry.kind !== "ChatResponse") throw fail("EBADF");
        return mem.writeOut(
          argPtr,
          lenPtr,
          encoder.encode(JSON.stringify(responseMetrics(entry.state as ChatResponse))),
        );
      }
      throw fail("EINVAL", `unknown cchat ctl ${cmd}`);
    },

    cchat_send: (fd: number, flags: number) => {
      const session = sessionOf(fd);
      const entry = fds.alloc<ChatResponse>("ChatResponse", {
        session,
        flags,
        size: 0,
        roundTrips: 0,
        toolCalls: 0,
        latencyMs: 0,
        failed: false,
        held: 0,
      }, {
        // The request in flight, if any, is cancelled by the runtime (closing an fd cancels its calls).
        onClose: (e) => rt.budget.release(e.state.size + e.state.held),
        metrics: (e) => responseMetrics(e.state),
      });
      session.state.sends++;
      try {
        request(entry);
      } catch (e) {
        fds.close(entry.fd); // the guest never learns this fd: do not leave it open
        throw e;
      }
      return entry.fd;
    },

    cchat_recv: (fd: number, outPtr: number, lenPtr: number) => {
      const entry = fds.getOpen<ChatResponse>(fd, "ChatResponse");
      mem.u32(lenPtr); // validate before possibly blocking
      rt.poll(); // a polling point: results arrive and tool calls run even without blocking
      if (entry.state.text === undefined) {
        if (entry.closed) throw fail("EBADF", "response closed by a tool call");
        if (fds.isNonBlocking(entry)) throw fail("EAGAIN");
        rt.block(() => entry.state.text !== undefined || entry.closed, -1);
        if (entry.closed) throw fail("EBADF", "response closed while waiting");
      }
      return mem.writeTextOut(outPtr, lenPtr, entry.state.text!, entry.state.size);
    },

    cchat_close: (fd: number) => {
      fds.close(fd);
      return 0;
    },
  };
}
