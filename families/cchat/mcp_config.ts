/**
 * The host config's `mcp` section and SPEAR's MCP policy rules (reference §5.2; SPEAR's
 * `mcp/policy.rs` and `task_subset.rs`). No I/O: the family descriptor parses the section, the
 * worker and the driver apply the rules.
 *
 *   "mcp": {
 *     "servers": [
 *       { "id": "fs", "transport": "stdio", "command": "node", "args": ["server.js", "/data"],
 *         "cwd"?: "/", "env"?: {"K": "V"}, "allowed_tools"?: ["read_*"], "tool_timeout_ms"?: 30000 },
 *       { "id": "web", "transport": "http", "url": "http://127.0.0.1:8931/mcp" }
 *     ],
 *     "task"?: { "enabled": true, "default_server_ids": ["fs"], "allowed_server_ids"?: ["fs"],
 *                "tool_allowlist"?: [], "tool_denylist"?: [] }
 *   }
 */
import {
  ConfigError,
  isConfigObject,
  optString,
  positiveInt,
  rejectUnknownKeys,
  stringArray,
} from "../../host/config.ts";

export interface McpServerConfig {
  /** Letters, digits and `-`: it is part of tool names (`mcp__<id>__<tool>`). */
  id: string;
  transport: "stdio" | "http";
  command?: string;
  args: string[];
  cwd?: string;
  env?: Record<string, string>;
  url?: string;
  /** Tool name patterns this server may offer; absent = every tool (`["*"]`), `[]` = none (SPEAR). */
  allowed_tools: string[];
  /** Per tool call (SPEAR's budgets.tool_timeout_ms: 100–120000, default 8000). */
  tool_timeout_ms: number;
}

/** The task's MCP policy (SPEAR's McpTaskPolicy), when the config sets `mcp.task`. */
export interface McpTaskPolicy {
  enabled: boolean;
  default_server_ids: string[];
  allowed_server_ids: string[];
  tool_allowlist: string[];
  tool_denylist: string[];
}

export interface McpSection {
  servers: McpServerConfig[];
  task?: McpTaskPolicy;
}

declare module "../../host/config.ts" {
  interface FamilySections {
    /** Optional so configs built by hand (embedders, older code) need not name it. */
    mcp?: McpSection;
  }
}

const SERVER_ID = /^[A-Za-z0-9-]{1,32}$/;

function parseServer(raw: unknown, where: string, ids: Set<string>): McpServerConfig {
  if (!isConfigObject(raw)) throw new ConfigError(where, "must be an object");
  rejectUnknownKeys(
    raw,
    ["id", "transport", "command", "args", "cwd", "env", "url", "allowed_tools", "tool_timeout_ms"],
    where,
  );
  const id = optString(raw, "id", where);
  if (!id) throw new ConfigError(`${where}.id`, "is required");
  if (!SERVER_ID.test(id)) throw new ConfigError(`${where}.id`, "must be 1-32 letters, digits or '-'");
  if (ids.has(id)) throw new ConfigError(`${where}.id`, `duplicate server id "${id}"`);
  ids.add(id);
  const transport = raw.transport;
  if (transport !== "stdio" && transport !== "http") {
    throw new ConfigError(`${where}.transport`, 'must be "stdio" or "http"');
  }
  const command = optString(raw, "command", where);
  const url = optString(raw, "url", where);
  if (transport === "stdio" && !command) throw new ConfigError(`${where}.command`, "is required for stdio");
  if (transport === "http") {
    if (!url) throw new ConfigError(`${where}.url`, "is required for http");
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`${where}.url`, "is not a valid URL");
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new ConfigError(`${where}.url`, "must be http or https");
    }
  }
  let env: Record<string, string> | undefined;
  if (raw.env !== undefined) {
    if (!isConfigObject(raw.env) || !Object.values(raw.env).every((v) => typeof v === "string")) {
      throw new ConfigError(`${where}.env`, "must be an object of strings");
    }
    env = raw.env as Record<string, string>;
  }
  const server: McpServerConfig = {
    id,
    transport,
    args: stringArray(raw, "args", where),
    allowed_tools: raw.allowed_tools === undefined ? ["*"] : stringArray(raw, "allowed_tools", where),
    tool_timeout_ms: positiveInt(raw, "tool_timeout_ms", where, 8000, 120_000),
  };
  if (command) server.command = command;
  const cwd = optString(raw, "cwd", where);
  if (cwd) server.cwd = cwd;
  if (env) server.env = env;
  if (url) server.url = url;
  return server;
}

function parseTask(raw: unknown): McpTaskPolicy | undefined {
  if (raw === undefined) return undefined;
  if (!isConfigObject(raw)) throw new ConfigError("mcp.task", "must be an object");
  rejectUnknownKeys(
    raw,
    ["enabled", "default_server_ids", "allowed_server_ids", "tool_allowlist", "tool_denylist"],
    "mcp.task",
  );
  if (raw.enabled !== undefined && typeof raw.enabled !== "boolean") {
    throw new ConfigError("mcp.task.enabled", "must be a boolean");
  }
  const defaults = stringArray(raw, "default_server_ids", "mcp.task");
  return {
    enabled: raw.enabled === true,
    default_server_ids: defaults,
    // As SPEAR: the allowed set defaults to the default servers.
    allowed_server_ids: raw.allowed_server_ids === undefined
      ? defaults
      : stringArray(raw, "allowed_server_ids", "mcp.task"),
    tool_allowlist: stringArray(raw, "tool_allowlist", "mcp.task"),
    tool_denylist: stringArray(raw, "tool_denylist", "mcp.task"),
  };
}

export function parseMcpSection(raw: unknown): McpSection {
  if (raw === undefined) return { servers: [] };
  if (!isConfigObject(raw)) throw new ConfigError("mcp", "must be an object");
  rejectUnknownKeys(raw, ["servers", "task"], "mcp");
  if (raw.servers !== undefined && !Array.isArray(raw.servers)) {
    throw new ConfigError("mcp.servers", "must be an array");
  }
  const ids = new Set<string>();
  const servers = ((raw.servers as unknown[]) ?? []).map((s, i) => parseServer(s, `mcp.servers[${i}]`, ids));
  const task = parseTask(raw.task);
  return task ? { servers, task } : { servers };
}

/** What a session set with SET_PARAM (`mcp.enabled`, `mcp.server_ids`, allow/deny lists); unset = absent. */
export interface McpSessionState {
  enabled?: boolean;
  server_ids?: string[];
  tool_allowlist?: string[];
  tool_denylist?: string[];
}

/** The MCP policy a session runs with (SPEAR's McpSessionParams), task lists included. */
export interface McpSessionPolicy {
  server_ids: string[];
  task_tool_allowlist: string[];
  task_tool_denylist: string[];
  tool_allowlist: string[];
  tool_denylist: string[];
}

/** SPEAR's wildcard match: `*` any run, `?` one character. */
export function wildcardMatch(pattern: string, s: string): boolean {
  if (pattern === "*") return true;
  let p = 0, i = 0, star = -1, mark = 0;
  while (i < s.length) {
    if (p < pattern.length && (pattern[p] === s[i] || pattern[p] === "?")) {
      p++;
      i++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

const matchAny = (patterns: readonly string[], s: string) => patterns.some((p) => wildcardMatch(p, s));

/** SPEAR's order: server allow-list, task allow/deny, session allow/deny. */
export function allowedByPolicies(
  serverAllowed: readonly string[],
  session: McpSessionPolicy,
  tool: string,
): { ok: true } | { ok: false; reason: string } {
  const allowed = serverAllowed.filter((p) => p !== "");
  if (allowed.length === 0 || !matchAny(allowed, tool)) {
    return { ok: false, reason: "mcp tool denied by server policy" };
  }
  if (session.task_tool_allowlist.length > 0 && !matchAny(session.task_tool_allowlist, tool)) {
    return { ok: false, reason: "mcp tool denied by task allowlist" };
  }
  if (session.task_tool_denylist.length > 0 && matchAny(session.task_tool_denylist, tool)) {
    return { ok: false, reason: "mcp tool denied by task denylist" };
  }
  if (session.tool_allowlist.length > 0 && !matchAny(session.tool_allowlist, tool)) {
    return { ok: false, reason: "mcp tool denied by session allowlist" };
  }
  if (session.tool_denylist.length > 0 && matchAny(session.tool_denylist, tool)) {
    return { ok: false, reason: "mcp tool denied by session denylist" };
  }
  return { ok: true };
}

/** OpenAI function names: letters, digits, `_`, `-`, at most 64. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `mcp__<server>__<tool>`, readable for the model (server ids hold no `_`, so the first `__`
 * after the prefix ends the id); undefined when the tool's name cannot be an OpenAI name.
 */
export function mcpToolName(server: string, tool: string): string | undefined {
  const name = `mcp__${server}__${tool}`;
  return FUNCTION_NAME.test(name) ? name : undefined;
}

/** `{server, tool}` of a `mcp__<server>__<tool>` or SPEAR's `mcp.<server>.<tool>` name. */
export function parseMcpToolName(name: string): { server: string; tool: string } | undefined {
  let rest: string;
  let sep: string;
  if (name.startsWith("mcp__")) {
    rest = name.slice(5);
    sep = "__";
  } else if (name.startsWith("mcp.")) {
    rest = name.slice(4);
    sep = ".";
  } else return undefined;
  const at = rest.indexOf(sep);
  if (at <= 0 || at + sep.length >= rest.length) return undefined;
  return { server: rest.slice(0, at), tool: rest.slice(at + sep.length) };
}

/** Whether a tool name is an MCP tool's (SPEAR routes both spellings to MCP). */
export function isMcpToolName(name: string): boolean {
  return name.startsWith("mcp__") || name.startsWith("mcp.");
}

/**
 * The policy a session runs with: its own settings over the task's defaults (SPEAR applies
 * `mcp.task` defaults to every new session; a session that set nothing gets them), or `off`,
 * or an error that names why MCP cannot serve a session that asked for it.
 */
export function effectiveMcp(
  section: McpSection | undefined,
  state: McpSessionState | undefined,
): { policy: McpSessionPolicy } | { off: true } | { error: string } {
  const task = section?.task;
  let enabled = state?.enabled;
  let ids = state?.server_ids ?? [];
  if (task?.enabled) {
    const defaults = [
      ...new Set(task.default_server_ids.filter((id) => task.allowed_server_ids.includes(id))),
    ];
    if (defaults.length > 0) {
      enabled ??= true;
      if (ids.length === 0) ids = defaults;
    }
  }
  if (!enabled) return { off: true };
  const why = mcpUnavailable(section, ids);
  if (why !== undefined) return { error: why };
  return {
    policy: {
      server_ids: ids,
      task_tool_allowlist: task?.tool_allowlist ?? [],
      task_tool_denylist: task?.tool_denylist ?? [],
      tool_allowlist: state?.tool_allowlist ?? [],
      tool_denylist: state?.tool_denylist ?? [],
    },
  };
}

/** Why a session's MCP servers cannot be used here, or undefined when all are configured. */
export function mcpUnavailable(
  section: McpSection | undefined,
  serverIds: readonly string[],
): string | undefined {
  const known = (section?.servers ?? []).map((s) => s.id);
  if (serverIds.length === 0) {
    return "MCP was enabled (mcp.enabled) without servers: set mcp.server_ids" +
      (known.length
        ? ` (this host has ${known.join(", ")})`
        : " (and this host has no mcp.servers configured)");
  }
  const missing = serverIds.filter((id) => !known.includes(id));
  if (missing.length === 0) return undefined;
  const names = missing.map((id) => `"${id}"`).join(", ");
  return known.length === 0
    ? `MCP is not configured on this host: the session asked for server ${names} and the host config has no mcp.servers`
    : `MCP server ${names} is not configured on this host (configured: ${known.join(", ")})`;
}

/** SPEAR's -EACCES rules for SET_PARAM under a task policy; the reason when refused. */
export function taskRefuses(
  task: McpTaskPolicy | undefined,
  key: string,
  value: unknown,
): string | undefined {
  if (!task) return undefined;
  if (key === "mcp.enabled" && value === true && !task.enabled) return "the task policy disables MCP";
  if (key === "mcp.server_ids" && Array.isArray(value)) {
    const outside = value.filter((v) =>
      typeof v === "string" && v !== "" && !task.allowed_server_ids.includes(v)
    );
    if (outside.length > 0) return `mcp server not allowed: ${outside.join(", ")}`;
  }
  return undefined;
}
