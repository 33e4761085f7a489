/**
 * The cchat family's driver part (main thread): answers `cchat.round_trip` by routing the
 * request to a backend and running it. Cancellation (the guest closed the response fd, the
 * guest ended) arrives as the request's abort signal and aborts the HTTP request.
 */
import type { HostConfig } from "../../host/config.ts";
import type { Driver } from "../../host/host.ts";
import { handle } from "../../protocol/rpc.ts";
import { runChatRoundTrip } from "./backends/mod.ts";
import { chatRoundTrip, type ChatRoundTripResult, MAX_CHAT_MESSAGE_BYTES } from "./protocol.ts";

const encoder = new TextEncoder();

/** A result too large to hand to a guest becomes an error result naming the size. */
function bounded(result: ChatRoundTripResult): ChatRoundTripResult {
  const text = JSON.stringify(result);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most results need no encoding to be measured.
  if (text.length * 3 <= MAX_CHAT_MESSAGE_BYTES) return result;
  const size = encoder.encode(text).length;
  if (size <= MAX_CHAT_MESSAGE_BYTES) return result;
  return {
    ok: false,
    error: { message: `response of ${size} bytes exceeds the host limit of ${MAX_CHAT_MESSAGE_BYTES} bytes` },
    latencyMs: result.latencyMs,
    ...(result.backend ? { backend: result.backend } : {}),
    ...(result.model ? { model: result.model } : {}),
  };
}

export function chatDriver(config: HostConfig): Driver {
  return {
    family: "cchat",
    handlers: [
      handle(
        chatRoundTrip,
        async (request, { signal, session }) =>
          bounded(await runChatRoundTrip(config, request, signal, Math.random, session.budget)),
      ),
    ],
  };
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return chatDriver(config);
}
