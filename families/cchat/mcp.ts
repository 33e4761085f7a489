/**
 * MCP tools for cchat (reference §5.2, §5.7), on the host's main thread: the servers the host
 * config names (`mcp.servers`: a stdio command with arguments, or a streamable-HTTP URL) are
 * reached with the official MCP TypeScript SDK, connected on first use and again after they go
 * away. A session that enables MCP gets each server's tools offered to the model as
 * `mcp__<server>__<tool>`, filtered by the server's `allowed_tools` and the task's and
 * session's allow/deny lists (SPEAR's policy, patterns with `*` and `?`); a tool call by that
 * name runs here and its result (the MCP CallToolResult as JSON) goes back to the model.
 */
// Inline, pinned npm specifiers (deno.lock holds their integrity): the CLI also runs from
// directories without the repo's deno.json, where an import map would not be found. This module
// is loaded only when a session uses MCP.
// deno-lint-ignore no-import-prefix
import { Client } from "npm:@modelcontextprotocol/sdk@1.32.2/client/index.js";
// deno-lint-ignore no-import-prefix
import { StdioClientTransport } from "npm:@modelcontextprotocol/sdk@1.32.2/client/stdio.js";
// deno-lint-ignore no-import-prefix
import { StreamableHTTPClientTransport } from "npm:@modelcontextprotocol/sdk@1.32.2/client/streamableHttp.js";
import type { McpSection, McpServerConfig } from "./mcp_config.ts";
import { allowedByPolicies, type McpSessionPolicy, mcpToolName, mcpUnavailable } from "./mcp_config.ts";

const CLIENT_INFO = { name: "spearhost", version: "0.1.0" };

/** How long connecting and listing tools may take before the request fails. */
const CONNECT_TIMEOUT_MS = 30_000;

export class McpError extends Error {
  constructor(readonly code: "mcp_unavailable" | "mcp_error" | "mcp_denied", message: string) {
    super(message);
  }
}

interface Tool {
  name: string;
  description?: string;
  inputSchema?: unknown;
}

interface Connection {
  client: Client;
  tools?: Tool[];
}

export class McpServers {
  private readonly connections = new Map<string, Promise<Connection>>();

  constructor(private readonly section: McpSection) {}

  private server(id: string): McpServerConfig {
    const server = this.section.servers.find((s) => s.id === id);
    if (!server) throw new McpError("mcp_unavailable", mcpUnavailable(this.section, [id])!);
    return server;
  }

  private connect(server: McpServerConfig): Promise<Connection> {
    let pending = this.connections.get(server.id);
    if (pending) return pending;
    pending = (async () => {
      const client = new Client(CLIENT_INFO);
      const transport = server.transport === "stdio"
        ? new StdioClientTransport({
          command: server.command!,
          args: server.args,
          ...(server.cwd ? { cwd: server.cwd } : {}),
          ...(server.env ? { env: server.env } : {}),
          stderr: "ignore",
        })
        : new StreamableHTTPClientTransport(new URL(server.url!));
      // A server that goes away is connected again on next use.
      client.onclose = () => this.connections.delete(server.id);
      try {
        await withTimeout(
          client.connect(transport),
          CONNECT_TIMEOUT_MS,
          `connecting to MCP server "${server.id}"`,
        );
      } catch (e) {
        this.connections.delete(server.id);
        await client.close().catch(() => {});
        throw new McpError("mcp_error", `MCP server "${server.id}": ${(e as Error).message}`);
      }
      return { client };
    })();
    this.connections.set(server.id, pending);
    return pending;
  }

  /** The OpenAI tool objects a session is offered from these servers, after every policy. */
  async toolsFor(policy: McpSessionPolicy, signal?: AbortSignal): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const id of policy.server_ids) {
      const server = this.server(id);
      const connection = await this.connect(server);
      if (!connection.tools) {
        try {
          const listed = await withTimeout(
            connection.client.listTools(undefined, { signal }),
            CONNECT_TIMEOUT_MS,
            `listing the tools of MCP server "${id}"`,
          );
          connection.tools = (listed as { tools: Tool[] }).tools;
        } catch (e) {
          throw new McpError("mcp_error", `MCP server "${id}": ${(e as Error).message}`);
        }
      }
      for (const tool of connection.tools) {
        const name = mcpToolName(id, tool.name);
        if (!name || !allowedByPolicies(server.allowed_tools, policy, tool.name).ok) continue;
        out.push({
          type: "function",
          function: {
            name,
            description: tool.description ?? "",
            parameters: tool.inputSchema ?? { type: "object" },
          },
        });
      }
    }
    return out;
  }

  /**
   * Runs one tool call (`server`, `tool` already parsed from the name) after checking every
   * policy again; the result is the CallToolResult as JSON text, cut at `maxBytes`.
   */
  async call(
    serverId: string,
    tool: string,
    args: Record<string, unknown>,
    policy: McpSessionPolicy,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<string> {
    if (!policy.server_ids.includes(serverId)) {
      throw new McpError("mcp_denied", `MCP server "${serverId}" is not enabled for this session`);
    }
    const server = this.server(serverId);
    const verdict = allowedByPolicies(server.allowed_tools, policy, tool);
    if (!verdict.ok) throw new McpError("mcp_denied", verdict.reason);
    const connection = await this.connect(server);
    let result: unknown;
    try {
      result = await connection.client.callTool({ name: tool, arguments: args }, undefined, {
        signal,
        timeout: server.tool_timeout_ms,
      });
    } catch (e) {
      throw new McpError("mcp_error", `MCP tool ${tool} on server "${serverId}": ${(e as Error).message}`);
    }
    return truncateUtf8(JSON.stringify(result), maxBytes);
  }

  async close(): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map(async (p) => {
      try {
        await (await p).client.close();
      } catch { /* never connected */ }
    }));
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** At most `max` bytes of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, max: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
