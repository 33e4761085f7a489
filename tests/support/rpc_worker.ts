/// <reference lib="deno.worker" />
/**
 * A helper Worker for tests/unit/protocol_rpc_test.ts: the host's side of a Link on its own
 * thread, so the main thread can block in `GuestRuntime.call` (Atomics.wait) as a guest's
 * worker does while an RpcServer answers. It serves link.toHost (REQUEST, CANCEL) until
 * `flags[STOP]` is set and the bell rung.
 *
 * Methods: `echo` answers at once with the text and the fd the call was about; `hold` never
 * answers by itself: it counts itself in flags[HOLDING] (ringing the guest's bell), and when
 * its signal aborts it counts flags[ABORTED] (notifying that word) and returns a value the
 * server must not send.
 */
import { Link } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { handle, method, RpcServer } from "../../protocol/rpc.ts";
import * as s from "../../protocol/schema.ts";
import { Op } from "../../protocol/wire.ts";

export const echo = method(
  "w.echo",
  s.object({ text: s.string }),
  s.object({ text: s.string, fd: s.int, thread: s.string }),
);
export const hold = method("w.hold", s.object({}), s.object({ late: s.boolean }));

export const HOLDING = 0;
export const ABORTED = 1;
export const STOP = 2;

export interface RpcWorkerInit {
  buffers: [SharedArrayBuffer, SharedArrayBuffer];
  budget: SharedArrayBuffer;
  /** Int32 words: HOLDING, ABORTED, STOP. */
  flags: SharedArrayBuffer;
}

self.onmessage = async (event: MessageEvent<RpcWorkerInit>) => {
  const { buffers, budget, flags: flagBuffer } = event.data;
  const link = Link.attach(buffers);
  const flags = new Int32Array(flagBuffer);
  const handlers = new Map([
    handle(echo, ({ text }, ctx) => ({ text, fd: ctx.fd, thread: "worker" })),
    handle(hold, (_params, { signal }) => {
      Atomics.add(flags, HOLDING, 1);
      link.toGuest.ring();
      return new Promise<{ late: boolean }>((resolve) => {
        signal.addEventListener("abort", () => {
          Atomics.add(flags, ABORTED, 1);
          Atomics.notify(flags, ABORTED);
          resolve({ late: true });
        }, { once: true });
      });
    }),
  ].map((h) => [h.method.name, h]));
  const server = new RpcServer(
    (op, fd, payload) => link.toGuest.send(op, fd, payload),
    handlers,
    {},
    new HostBudget(budget),
  );
  for (;;) {
    const seen = link.toHost.bell;
    link.toHost.receive((m) => {
      if (m.op === Op.REQUEST) server.receiveRequest(m.fd, m.payload);
      else if (m.op === Op.CANCEL) server.receiveCancel(m.payload);
    }, () => link.toGuest.ring());
    link.toGuest.flush();
    if (Atomics.load(flags, STOP) !== 0) break;
    await link.toHost.waitBellAsync(seen);
  }
  server.close();
  self.postMessage({ stopped: true });
};
