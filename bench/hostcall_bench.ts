/**
 * The cost of a trivial hostcall from a guest loop, beside its floors. Every bench iteration
 * makes 100 calls; divide by 100 for one call.
 *   ffi callback   the floor: a C loop (bench/native/ffi_floor.c) calling a Deno.UnsafeCallback
 *                  declared exactly as the production binding declares host functions
 *                  (runtime/engine.ts HOST_CALLBACK), with a body that does nothing — the bare
 *                  cost of entering V8 from native code and returning (the baseline);
 *   guest          the C guest bench/guests/reactor/epoll_guest.c looping `time_now_ms` through
 *                  the real `spear` import and production binding (runtime/instance.ts
 *                  bindHostcall): wasm → Wasmtime → UnsafeCallback → TS → back;
 *   wasm → native  the same guest loop with `spear.time_now_ms` served by a C function
 *                  (ffi_floor.c native_time_now_ms) defined straight on the Wasmtime linker:
 *                  Wasmtime's own host-call overhead, no JS at all.
 */
import { HOST_CALLBACK } from "../runtime/engine.ts";
import { instantiateBenchGuest } from "./support/harness.ts";
import { benchGuest, buildNative } from "./support/native.ts";

const CALLS = 100;

const ffi = Deno.dlopen(buildNative("ffi_floor", "lib"), {
  ffi_floor_loop: { parameters: ["function", "i32"], result: "i32", callback: true }, // re-enters JS, as a guest call does
  native_time_now_ms: { type: "pointer" },
});
const callback = new Deno.UnsafeCallback(HOST_CALLBACK, () => null);

const wasm = benchGuest("epoll_guest");
const viaTs = (await instantiateBenchGuest(wasm)).func("bench_time_now", "i64");
const viaNative = (await instantiateBenchGuest(wasm, {
  native: { time_now_ms: { params: [], results: ["i64"], fn: ffi.symbols.native_time_now_ms } },
})).func("bench_time_now", "i64");

if (ffi.symbols.ffi_floor_loop(callback.pointer, CALLS) !== CALLS) {
  throw new Error("ffi_floor_loop: callback failed");
}
const sane = (t: bigint) => Math.abs(Number(t) - Date.now()) < 60_000;
if (!sane(viaTs(1)) || !sane(viaNative(1))) throw new Error("time_now_ms returned nonsense");

const group = "trivial hostcall (time_now_ms)";
Deno.bench({
  name: `ffi callback round trip ×${CALLS}`,
  group,
  baseline: true,
  fn: () => void ffi.symbols.ffi_floor_loop(callback.pointer, CALLS),
});
Deno.bench({ name: `guest time_now_ms ×${CALLS}`, group, fn: () => void viaTs(CALLS) });
Deno.bench({ name: `wasm → native time_now_ms ×${CALLS}`, group, fn: () => void viaNative(CALLS) });
