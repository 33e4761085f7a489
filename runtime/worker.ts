/// <reference lib="deno.worker" />
/**
 * Worker entry: one guest per worker. The guest runs synchronously on this thread (Wasmtime's
 * synchronous API; DESIGN.md fact 1), so this worker's event loop is idle until it returns.
 */
import { type GuestInit, runGuest } from "./instance.ts";

self.onmessage = async (event: MessageEvent<GuestInit>) => {
  const result = await runGuest(event.data);
  self.postMessage(result);
  self.close();
};
