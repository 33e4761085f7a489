/// <reference lib="deno.worker" />
/**
 * The chat floor's guest thread (bench/chat_roundtrip.ts): the least a guest in its own
 * Worker needs to have the main thread do an HTTP request for it, with no spearhost code. It
 * posts a request by bumping a SharedArrayBuffer word and notifying (the main thread sleeps in
 * Atomics.waitAsync on it), then blocks in Atomics.wait until the main thread, having done
 * fetch() + json(), has written the reply into shared memory and notified; it copies the
 * reply out, as a guest's recv does. Like bench/guests/chat_loop.c, each measurement runs
 * its K round trips once untimed, then once timed; it posts the timed pass's ms.
 */
import { type ChatFloorShared, Slot } from "./floor_chat.ts";

self.onmessage = (e: MessageEvent<ChatFloorShared | { mode: "seq" | "par"; k: number }>) => {
  if ("buffer" in e.data) {
    shared = new Slot(e.data);
    return;
  }
  const { mode, k } = e.data;
  const run = mode === "seq" ? sequential : concurrent;
  run(k);
  const started = performance.now();
  run(k);
  self.postMessage(performance.now() - started);
};

let shared: Slot;
let sent = 0; // requests posted so far (the shared request counter)
let taken = 0; // replies copied out so far
const reply = new Uint8Array(Slot.REPLY_BYTES);

/** Waits for the next reply and copies it out. */
function takeReply(): void {
  const ints = shared.ints;
  for (let done = Atomics.load(ints, Slot.DONE); done <= taken; done = Atomics.load(ints, Slot.DONE)) {
    Atomics.wait(ints, Slot.DONE, done);
  }
  const id = ints[Slot.ORDER + taken % Slot.SLOTS];
  reply.set(shared.replyBytes(id));
  taken++;
}

function post(): void {
  Atomics.store(shared.ints, Slot.REQUESTS, ++sent);
  Atomics.notify(shared.ints, Slot.REQUESTS);
}

function sequential(k: number): void {
  for (let i = 0; i < k; i++) {
    post();
    takeReply();
  }
}

function concurrent(k: number): void {
  for (let i = 0; i < k; i++) post();
  for (let i = 0; i < k; i++) takeReply();
}
