/// <reference lib="deno.worker" />
/**
 * A helper Worker for channel and epoll tests: acts on a Link from another thread, so the
 * main thread can block in Atomics.wait (as a guest does) while something else happens.
 *
 * Commands (the init message), each answered with {done: true, ...} when finished:
 *  - {kind: "wake", delayMs, stream}: posts {armed: true}, sleeps, then sends one item on
 *    `stream` (a STREAM_DATA frame on link.toGuest, which rings the guest's doorbell), as a
 *    driver's stream sender does.
 *  - {kind: "ring", delayMs, times}: posts {armed: true}, then rings link.toGuest's bell
 *    `times` times, delayMs apart, without sending anything (spurious wakeups).
 *  - {kind: "terminate", delayMs}: posts {armed: true}, sleeps, requests termination.
 *  - {kind: "produce", count, maxPayload}: sends `count` messages on link.toHost with
 *    payloads from `testPayload`; when the ring is full it waits on link.toGuest's bell (the
 *    consumer rings it when it frees room) and flushes its backlog. Reports the largest
 *    backlog it had.
 *  - {kind: "consume", count, gate}: waits until the Int32 gate[0] is non-zero, then plays the
 *    host: receives `count` messages from link.toHost (ringing link.toGuest when the producer
 *    wants room, as the host's serve loop does) and checks that message i has fd i and the
 *    payload `testPayload(i, maxPayload)`. Reports how many arrived and the first mismatch.
 */
import { Link } from "../../protocol/channel.ts";
import { StreamSender } from "../../protocol/stream.ts";

export type LinkWorkerCommand =
  | { kind: "wake"; buffers: [SharedArrayBuffer, SharedArrayBuffer]; delayMs: number; stream: number }
  | { kind: "ring"; buffers: [SharedArrayBuffer, SharedArrayBuffer]; delayMs: number; times: number }
  | { kind: "terminate"; buffers: [SharedArrayBuffer, SharedArrayBuffer]; delayMs: number }
  | { kind: "produce"; buffers: [SharedArrayBuffer, SharedArrayBuffer]; count: number; maxPayload: number }
  | {
    kind: "consume";
    buffers: [SharedArrayBuffer, SharedArrayBuffer];
    count: number;
    maxPayload: number;
    gate: SharedArrayBuffer;
  };

/** Deterministic payload of message `i`: varied length, bytes derived from i. */
export function testPayload(i: number, maxPayload: number): Uint8Array {
  const len = (i * 7919 + (i >> 3) * 13) % (maxPayload + 1);
  const out = new Uint8Array(len);
  for (let j = 0; j < len; j++) out[j] = (i * 31 + j) & 0xff;
  return out;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleep(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

self.onmessage = (event: MessageEvent<LinkWorkerCommand>) => {
  const cmd = event.data;
  const link = Link.attach(cmd.buffers);
  switch (cmd.kind) {
    case "wake":
      self.postMessage({ armed: true });
      sleep(cmd.delayMs);
      new StreamSender(link.toGuest, cmd.stream, { mode: "lossy" }).send(new Uint8Array([1, 2, 3]));
      self.postMessage({ done: true });
      break;
    case "ring":
      self.postMessage({ armed: true });
      for (let i = 0; i < cmd.times; i++) {
        sleep(cmd.delayMs);
        link.toGuest.ring();
      }
      self.postMessage({ done: true });
      break;
    case "terminate":
      self.postMessage({ armed: true });
      sleep(cmd.delayMs);
      link.toGuest.requestTerminate();
      self.postMessage({ done: true });
      break;
    case "produce": {
      let maxBacklog = 0;
      for (let i = 0; i < cmd.count; i++) {
        link.toHost.send(i & 0xffff, i, testPayload(i, cmd.maxPayload));
        maxBacklog = Math.max(maxBacklog, link.toHost.backlog);
        // Keep the backlog bounded: wait for the consumer to free room.
        while (link.toHost.backlog > 64) {
          const seen = link.toGuest.bell;
          if (link.toHost.flush()) break;
          link.toGuest.waitBell(seen, 20);
        }
      }
      while (!link.toHost.flush()) {
        const seen = link.toGuest.bell;
        link.toGuest.waitBell(seen, 20);
      }
      self.postMessage({ done: true, maxBacklog });
      break;
    }
    case "consume": {
      const gate = new Int32Array(cmd.gate);
      self.postMessage({ armed: true });
      while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 100);
      let received = 0;
      let mismatch = "";
      while (received < cmd.count) {
        const seen = link.toHost.bell;
        link.toHost.receive((m) => {
          const want = testPayload(received, cmd.maxPayload);
          if (
            !mismatch &&
            (m.fd !== received || m.payload.length !== want.length || m.payload.some((b, j) => b !== want[j]))
          ) {
            mismatch = `message ${received} arrived as fd ${m.fd} with ${m.payload.length} bytes`;
          }
          received++;
        }, () => link.toGuest.ring());
        if (received < cmd.count) link.toHost.waitBell(seen, 50);
      }
      self.postMessage({ done: true, received, mismatch });
      break;
    }
  }
};
