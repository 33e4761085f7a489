/**
 * The cchat family's main-thread driver: runs each CHAT_REQUEST from a guest as one
 * backend round trip and sends the result back as CHAT_RESULT. A CHAT_CANCEL (the guest
 * closed the response fd) or the guest ending aborts the request.
 */
import { decodeJson, type Message } from "../../protocol/channel.ts";
import type { HostConfig } from "../../host/config.ts";
import { type Driver, FdSlots, type GuestSession } from "../../host/host.ts";
import { MAX_CHAT_MESSAGE_BYTES } from "./worker.ts";
import { Op } from "../../protocol/wire.ts";
import { type ChatRoundTripRequest, type ChatRoundTripResult, runChatRoundTrip } from "./backends/mod.ts";

const encoder = new TextEncoder();

export function chatDriver(config: HostConfig): Driver {
  /** Requests in flight, per guest, by response fd. */
  const inflight = new FdSlots<AbortController>((c) => c.abort());

  const deliver = (session: GuestSession, fd: number, result: ChatRoundTripResult) => {
    let payload = encoder.encode(JSON.stringify(result));
    if (payload.length > MAX_CHAT_MESSAGE_BYTES) {
      const tooLarge: ChatRoundTripResult = {
        ok: false,
        error: {
          message:
            `response of ${payload.length} bytes exceeds the host limit of ${MAX_CHAT_MESSAGE_BYTES} bytes`,
        },
        backend: result.backend,
        model: result.model,
        latencyMs: result.latencyMs,
      };
      payload = encoder.encode(JSON.stringify(tooLarge));
    }
    session.send(Op.CHAT_RESULT, fd, payload);
  };

  const start = (session: GuestSession, fd: number, request: ChatRoundTripRequest) => {
    const controller = new AbortController();
    const requests = inflight.of(session);
    requests.set(fd, controller);
    runChatRoundTrip(config, request, controller.signal).then((result) => {
      if (requests.get(fd) !== controller) return;
      requests.delete(fd);
      if (!controller.signal.aborted) deliver(session, fd, result);
    });
  };

  return {
    family: "cchat",
    handle(session: GuestSession, m: Message) {
      if (m.op === Op.CHAT_REQUEST) start(session, m.fd, decodeJson<ChatRoundTripRequest>(m.payload));
      else if (m.op === Op.CHAT_CANCEL) {
        const requests = inflight.peek(session);
        requests?.get(m.fd)?.abort();
        requests?.delete(m.fd);
      }
    },
  };
}
