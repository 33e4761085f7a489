/// <reference lib="deno.worker" />
/**
 * Worker entry: one guest per worker. The guest runs synchronously on this thread (Wasmtime's
 * synchronous API; DESIGN.md fact 1), so this worker's event loop is idle until it returns.
 * The host terminates the worker once it has the result (closing from here could drop the
 * result message).
 */
import { type GuestInit, runGuest } from "./instance.ts";

self.onmessage = async (event: MessageEvent<GuestInit>) => {
  self.postMessage(await runGuest(event.data));
};
