/// <reference lib="deno.worker" />
/**
 * runtime/worker.ts with the test hooks of tests/support/host_hooks.ts: SpearHost starts its
 * guests on runtime/worker.ts, which passes no hooks, so tests/system/host_test.ts points
 * that URL here for the duration of a test. Everything else is as in production.
 */
import { type GuestInit, runGuest } from "../../runtime/instance.ts";
import { hostTestHooks } from "./host_hooks.ts";

self.onmessage = async (event: MessageEvent<GuestInit>) => {
  self.postMessage(await runGuest(event.data, hostTestHooks()));
};
