/**
 * The cchat family's driver part (main thread): answers `cchat.round_trip` by routing the
 * request to a backend and running it. Cancellation (the guest closed the response fd, the
 * guest ended) arrives as the request's abort signal and aborts the HTTP request.
 */
import type { HostConfig } from "../../host/config.ts";
import type { Driver } from "../../host/host.ts";
import { EncodedResult, handle } from "../../protocol/rpc.ts";
import {
  type ChatRoundTripResult as BackendResult,
  type ChatServices,
  holdLocalEngines,
  releaseLocalEngines,
  responseJson,
  runChatRoundTrip,
} from "./backends/mod.ts";
import {
  chatRoundTrip,
  type ChatRoundTripResult,
  MAX_CHAT_MESSAGE_BYTES,
  mcpCall,
  mcpTaskPolicy,
} from "./protocol.ts";
import { isJsonObject } from "../../runtime/json.ts";
import { utf8Length } from "../../protocol/bytes.ts";
import type { McpServers } from "./mcp.ts";
import { effectiveMcp, parseMcpToolName } from "./mcp_config.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/**
 * What crosses back for a backend's result: the result, and on success the guest's response
 * text as its attachment, made here (ChatRoundTripResult says why), with the assistant's turn
 * for the tool loop. A reply too large to hand to a guest becomes an error result naming its
 * size (measured on the way: one encoding, not two).
 */
function wireReply(result: BackendResult, toolLoop: boolean): EncodedResult | ChatRoundTripResult {
  const { latencyMs, backend, model } = result;
  if (!result.ok) {
    return {
      ok: false,
      error: result.error,
      latencyMs,
      ...(backend ? { backend } : {}),
      ...(model ? { model } : {}),
    };
  }
  const wire: ChatRoundTripResult = { ok: true, backend, model, latencyMs };
  if (result.usage) wire.usage = result.usage;
  if (toolLoop) {
    const choice = Array.isArray(result.body.choices) ? result.body.choices[0] : undefined;
    if (isJsonObject(choice) && isJsonObject(choice.message)) {
      wire.message = choice.message;
      wire.finishReason = choice.finish_reason;
    }
  }
  const json = JSON.stringify(wire);
  const response = JSON.stringify(responseJson(result));
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most replies need no encoding to be measured.
  const chars = json.length + response.length;
  const size = chars * 3 <= MAX_CHAT_MESSAGE_BYTES ? 0 : utf8Length(json) + utf8Length(response);
  if (size <= MAX_CHAT_MESSAGE_BYTES) return new EncodedResult(json, response);
  return {
    ok: false,
    error: { message: `response of ${size} bytes exceeds the host limit of ${MAX_CHAT_MESSAGE_BYTES} bytes` },
    latencyMs,
    backend,
    model,
  };
}

const NO_MESSAGES = new TextEncoder().encode("[]");

export function chatDriver(config: HostConfig): Driver {
  // The MCP SDK is loaded, and servers connected, only when a session uses MCP.
  let mcp: Promise<McpServers> | undefined;
  const services: ChatServices = {
    mcp: () =>
      mcp ??= lazyImport<typeof import("./mcp.ts")>("./mcp.ts", import.meta.url).then((m) =>
        new m.McpServers(config.mcp ?? { servers: [] })
      ).catch((e) => {
        mcp = undefined; // the next session tries again; this one gets the error
        throw e;
      }),
  };
  return {
    family: "cchat",
    // The local engine (started on the first local_llm request) lives as long as the host.
    start: () => holdLocalEngines(),
    stop: async () => {
      await releaseLocalEngines();
      if (mcp) await (await mcp.catch(() => undefined))?.close();
    },
    handlers: [
      handle(
        chatRoundTrip,
        async (request, ctx) =>
          wireReply(
            await runChatRoundTrip(
              config,
              { ...request, messages: ctx.attachment ?? NO_MESSAGES }, // the conversation is the attachment (protocol.ts)
              ctx, // its signal, and its abort for the HTTP timeout
              Math.random,
              ctx.session.budget,
              services,
            ),
            request.toolLoop === true,
          ),
      ),
      handle(mcpTaskPolicy, () => (config.mcp?.task ? { task: config.mcp.task } : {})),
      handle(mcpCall, async ({ name, arguments: args, mcp, maxBytes }, { signal }) => {
        const failed = (message: string) => ({ ok: false, error: { code: "mcp_tool_failed", message } });
        const parsed = parseMcpToolName(name);
        if (!parsed) return failed("invalid mcp tool name");
        const effective = effectiveMcp(config.mcp, mcp);
        if ("error" in effective) return failed(effective.error);
        if ("off" in effective) return failed("MCP is not enabled for this session");
        try {
          const servers = await services.mcp!();
          const content = await servers.call(
            parsed.server,
            parsed.tool,
            args,
            effective.policy,
            maxBytes,
            signal,
          );
          return { ok: true, content };
        } catch (e) {
          return failed((e as Error).message);
        }
      }),
    ],
  };
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return chatDriver(config);
}
