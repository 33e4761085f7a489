/**
 * Instantiates a reactor guest (bench/guests/reactor/) in the current thread with the
 * production GuestInstance (same linker, hostcalls and binding as a real run) and returns typed callers for its exports, so a bench can call a guest
 * loop many times without paying for instantiation each time. Optionally some `spear` imports
 * can be C functions (`native`), for the wasm → native floor.
 */
import { openWasmtime, Sizes } from "../../ffi/wasmtime.ts";
import { Engine, ExternKind } from "../../runtime/engine.ts";
import { Link } from "../../protocol/channel.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { GuestInstance } from "../../runtime/instance.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";

type Ptr = Deno.PointerValue;

export interface BenchGuestOptions {
  maxFds?: number;
  /** `spear` imports served by a C function (wasmtime_func_unchecked_callback_t) instead of TS. */
  native?: Record<string, { params: ("i32" | "i64")[]; results: ("i32" | "i64")[]; fn: Ptr }>;
}

export interface BenchGuest {
  readonly rt: GuestRuntime;
  /** A caller for an export taking i32 arguments and returning one i32 or i64. */
  func(name: string, result: "i32"): (...args: number[]) => number;
  func(name: string, result: "i64"): (...args: number[]) => bigint;
}

let engine: Engine | undefined;

function sharedEngine(): Engine {
  engine ??= Engine.create(openWasmtime(resolveWasmtimeLib()));
  return engine;
}

/** Loads and instantiates `wasmPath` (a reactor) and runs its `_initialize`. Lives until the process ends. */
export async function instantiateBenchGuest(
  wasmPath: string,
  options: BenchGuestOptions = {},
): Promise<BenchGuest> {
  const native = options.native ?? {};
  const guest = await GuestInstance.create(sharedEngine(), await Deno.readFile(wasmPath), {
    link: Link.create(),
    maxFds: options.maxFds ?? 1024,
    memoryBytes: 256 << 20,
    wasi: { args: [wasmPath.split("/").pop()!], env: {} },
    bindOverride: (linker, hc) => {
      const spec = native[hc.name];
      if (spec) linker.defineRaw("spear", hc.name, spec.params, spec.results, spec.fn);
      return spec !== undefined;
    },
  });
  const { rt, instance } = guest;

  const call = (handle: Uint8Array, raw: Uint8Array, name: string) => {
    const outcome = guest.call(handle, raw);
    if (outcome.error) throw new Error(`${name}: ${outcome.error.message}`);
  };
  const init = instance.export("_initialize");
  if (init?.kind === ExternKind.FUNC) call(init.handle, new Uint8Array(Sizes.VAL_RAW), "_initialize");

  function func(name: string, result: "i32" | "i64") {
    const exp = instance.export(name);
    if (exp?.kind !== ExternKind.FUNC) throw new Error(`${wasmPath} has no export ${name}`);
    const raw = new Uint8Array(Sizes.VAL_RAW * 8);
    const view = new DataView(raw.buffer);
    return (...args: number[]) => {
      args.forEach((a, i) => view.setBigInt64(i * Sizes.VAL_RAW, BigInt(a), true));
      call(exp.handle, raw, name);
      return result === "i32" ? view.getInt32(0, true) : view.getBigInt64(0, true);
    };
  }
  return { rt, func: func as BenchGuest["func"] };
}
