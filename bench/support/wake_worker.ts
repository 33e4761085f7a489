/// <reference lib="deno.worker" />
/**
 * The guest thread of bench/wake_latency.ts. Phase 1 runs bench/guests/wake_guest.c through
 * runtime/instance.ts runGuest, with a setup hook that adds one "UserStream" fd, made ready by
 * each item arriving on the stream the hook opens (as a family's worker part does), and an
 * extra import `bench.woke(fd)` that the guest calls as soon as its wait returns: it stamps
 * the wake time (shared clock), clears the readiness and acks the main thread. Phase 2 is the
 * floor on this same thread: a bare Atomics.wait woken by the main thread's Atomics.notify,
 * stamped and acked the same way. Phase 3 is the architecture floor: the same wait, but made
 * from a host function called by wasm (floor_wasm.ts, Wasmtime through Deno's FFI, no
 * spearhost code), which on waking returns into the guest, whose next hostcall stamps and acks
 * — the futex wake plus the unavoidable way back into wasm and out again.
 */
import { Poll } from "../../runtime/abi.ts";
import { type GuestInit, runGuest } from "../../runtime/instance.ts";
import { i32call } from "../../runtime/hostcall.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import { monotonicNs } from "./clock.ts";
import { FloorWasm } from "./floor_wasm.ts";

export const STAMPS_AT = 32;

export interface WakeWorkerInit {
  init: GuestInit;
  /**
   * Int32 [0] guest acks, [1] floor bell, [2] floor acks, [3] wasm floor bell, [4] wasm floor
   * acks; then Float64 stamps at byte STAMPS_AT: [0] guest, [1] floor, [2] wasm floor.
   */
  shared: SharedArrayBuffer;
  rounds: number;
  /** The stream whose items make the fd ready: the first one the guest opens (1). */
  stream: number;
}

self.onmessage = async (event: MessageEvent<WakeWorkerInit>) => {
  const { init, shared, rounds, stream } = event.data;
  const ints = new Int32Array(shared, 0, STAMPS_AT / 4);
  const stamps = new Float64Array(shared, STAMPS_AT, 3);
  let entry: FdEntry | undefined;
  const result = await runGuest(init, {
    setup(rt) {
      entry = rt.fds.alloc("UserStream", null);
      if (String(entry.fd) !== init.args[1]) {
        throw new Error(`bench fd is ${entry.fd}, guest expects ${init.args[1]}`);
      }
      const ready = entry;
      const opened = rt.openStream({ data: () => rt.fds.setMask(ready, Poll.EPOLLIN), event: () => {} });
      if (opened !== stream) throw new Error(`bench stream is ${opened}, the host sends on ${stream}`);
    },
    extraHostcalls: (rt) => [i32call("woke", 1, (fd) => {
      stamps[0] = monotonicNs();
      if (fd !== entry?.fd) return -1;
      rt.fds.setMask(entry, 0);
      Atomics.add(ints, 0, 1);
      Atomics.notify(ints, 0);
      return 0;
    }, "bench")],
  });
  self.postMessage({ phase: "guest", result });
  for (let i = 0; i < rounds; i++) {
    Atomics.wait(ints, 1, i); // the main thread stores i + 1 and notifies
    stamps[1] = monotonicNs();
    Atomics.add(ints, 2, 1);
    Atomics.notify(ints, 2);
  }
  self.postMessage({ phase: "floor" });
  const wasm = new FloorWasm(init.libPath);
  let round = 0;
  const run = wasm.instantiate(
    wasm.serialize(),
    () => void Atomics.wait(ints, 3, round), // the main thread stores round + 1 and notifies
    () => {
      stamps[2] = monotonicNs();
      round++;
      Atomics.add(ints, 4, 1);
      Atomics.notify(ints, 4);
    },
  );
  run(rounds);
  self.postMessage({ phase: "wasm" });
  self.close();
};
