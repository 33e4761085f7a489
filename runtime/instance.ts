/**
 * Runs one guest to completion on the current thread (a Worker in production): load the
 * module (through the compiled-code cache), link WASI and the `spear` hostcalls, call
 * `_start`, and report the exit code or the failure. Every native object is freed on the
 * way out, whatever happened.
 */
import { HostcallError } from "./abi.ts";
import { openWasmtime, WASMTIME_VERSION, type WasmtimeLib } from "../ffi/wasmtime.ts";
import {
  callRaw,
  Engine,
  ExternKind,
  funcSignature,
  type Instance,
  Linker,
  Module,
  newTrap,
  Store,
  tableFunc,
  WasmError,
} from "./engine.ts";
import { Link } from "./channel.ts";
import { GuestRuntime, GuestTerminated, GuestTrapped } from "./guest.ts";
import { spearHostcalls } from "./hostcalls/mod.ts";
import type { Hostcall } from "./hostcalls/types.ts";
import { Op } from "./protocol.ts";
import { LogLevel } from "./abi.ts";

export interface GuestInit {
  libPath: string;
  engineAddress: bigint;
  /** Display name of the guest (file name). */
  name: string;
  wasm: Uint8Array<ArrayBuffer>;
  args: string[];
  env: Record<string, string>;
  stdoutFile?: string;
  stderrFile?: string;
  memoryBytes: number;
  maxFds: number;
  link: [SharedArrayBuffer, SharedArrayBuffer];
  /** Directory for compiled modules; none disables the cache. */
  cacheDir?: string;
}

export type FailureKind = "invalid_module" | "link" | "trap" | "memory" | "terminated" | "internal";

export interface GuestResult {
  exitCode: number;
  failure?: { kind: FailureKind; message: string };
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const ALLOWED_MODULES = new Set(["spear", "wasi_snapshot_preview1"]);

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compiles, or loads Wasmtime's compiled code for the same bytes from the cache dir. */
export async function loadModule(
  engine: Engine,
  wasm: Uint8Array<ArrayBuffer>,
  cacheDir?: string,
): Promise<Module> {
  if (wasm.length < 8 || !WASM_MAGIC.every((b, i) => wasm[i] === b)) {
    throw new WasmError("invalid_module", "not a WebAssembly module (missing \\0asm header)");
  }
  if (!cacheDir) return Module.compile(engine, wasm);
  const path = `${cacheDir}/${await sha256Hex(wasm)}-wasmtime${WASMTIME_VERSION}.cwasm`;
  try {
    return Module.deserialize(engine, await Deno.readFile(path));
  } catch {
    // missing or stale cache entry: compile and (best effort) store
  }
  const module = Module.compile(engine, wasm);
  try {
    await Deno.mkdir(cacheDir, { recursive: true });
    const tmp = `${path}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(tmp, module.serialize());
    await Deno.rename(tmp, path);
  } catch {
    // a read-only cache only costs compile time
  }
  return module;
}

/** Names the first import no host provides, in the form `module.field`. */
function missingImport(module: Module, provided: Set<string>): string | undefined {
  for (const imp of module.imports()) {
    if (imp.module === "wasi_snapshot_preview1") continue;
    if (!ALLOWED_MODULES.has(imp.module) || !provided.has(imp.name)) return `${imp.module}.${imp.name}`;
  }
  return undefined;
}

/**
 * Binds a family's hostcall to Wasmtime: decode i32 args, run, encode result or errno.
 * Exported for benches (bench/support/harness.ts) that drive a guest's exports directly.
 */
export function bindHostcall(
  lib: WasmtimeLib,
  linker: Linker,
  rt: GuestRuntime,
  contexts: Deno.PointerValue[],
  hc: Hostcall,
) {
  const arity = hc.params.length;
  const args: number[] = new Array(arity);
  linker.define("spear", hc.name, hc.params, hc.result ? [hc.result] : [], (caller, raw) => {
    contexts.push(lib.wasmtime_caller_context(caller));
    let result: number | bigint | void;
    try {
      rt.mem.refresh();
      for (let i = 0; i < arity; i++) args[i] = raw.getInt32(i * 16, true);
      result = hc.run(...args);
    } catch (e) {
      if (e instanceof GuestTerminated || e instanceof GuestTrapped) return newTrap(lib, e.message);
      if (e instanceof HostcallError) result = e.code;
      else {
        rt.sendJson(Op.LOG, 0, {
          level: LogLevel.ERROR,
          message: `host: internal error in ${hc.name}: ${e}`,
          host: true,
        });
        result = -5; // EIO
      }
    } finally {
      contexts.pop();
    }
    if (hc.result === "i32") raw.setInt32(0, Number(result), true);
    else if (hc.result === "i64") raw.setBigInt64(0, BigInt(result ?? 0), true);
    return null;
  });
}

const TOOL_SIGNATURE = "0,0,0,0->0"; // (i32, i32, i32, i32) -> i32

/** Re-entrant calls through the guest's exported function table (tool functions). */
function tableInvoker(lib: WasmtimeLib, instance: Instance, rt: GuestRuntime, contexts: Deno.PointerValue[]) {
  const table = instance.table(["__indirect_function_table", "table"]);
  return {
    callTableI32x4(index: number, args: [number, number, number, number]): number {
      const context = contexts[contexts.length - 1];
      if (!table) {
        throw new HostcallError("EIO", "guest exports no function table (link with --export-table)");
      }
      const func = tableFunc(lib, context, table, index);
      if (!func) throw new HostcallError("EIO", `no function at table index ${index}`);
      const sig = funcSignature(lib, context, func);
      if (`${sig.params}->${sig.results}` !== TOOL_SIGNATURE) {
        throw new HostcallError("EIO", `table index ${index} is not (i32,i32,i32,i32)->i32`);
      }
      const raw = new Uint8Array(4 * 16);
      const view = new DataView(raw.buffer);
      args.forEach((a, i) => view.setInt32(i * 16, a, true));
      const outcome = callRaw(lib, context, func, raw);
      rt.mem.refresh();
      if (outcome.error) {
        if (outcome.error.kind === "exit") rt.exitFromNestedCall = outcome.error.exitCode ?? 0;
        throw new GuestTrapped(outcome.error.message);
      }
      return view.getInt32(0, true);
    },
  };
}

function classifyTrap(
  error: WasmError,
  instance: Instance | undefined,
  rt: GuestRuntime,
  init: GuestInit,
): GuestResult {
  if (rt.link.toGuest.terminateRequested) {
    return { exitCode: 137, failure: { kind: "terminated", message: error.message } };
  }
  if (error.kind === "exit") return { exitCode: error.exitCode ?? 1 };
  if (rt.exitFromNestedCall !== undefined) return { exitCode: rt.exitFromNestedCall };
  const memory = instance?.export("memory");
  // The limiter makes memory.grow fail without saying so; a trap with less room left than a
  // typical allocation (malloc grows in steps of its request plus headers) is blamed on the limit.
  const headroom = Math.max(2 << 20, init.memoryBytes / 16);
  if (memory && rt.mem.size + headroom > init.memoryBytes) {
    return {
      exitCode: 1,
      failure: {
        kind: "memory",
        message: `memory limit of ${init.memoryBytes >> 20} MiB reached: ${error.message}`,
      },
    };
  }
  return { exitCode: 1, failure: { kind: "trap", message: error.message } };
}

/** Test and bench hooks of `runGuest`; production never passes any. */
export interface GuestHooks {
  /** Runs once the guest's runtime exists, before the module loads (pre-populate fds, add ops). */
  setup?: (rt: GuestRuntime) => void;
}

/** Runs the guest; never throws for guest faults. */
export async function runGuest(init: GuestInit, hooks: GuestHooks = {}): Promise<GuestResult> {
  const lib = openWasmtime(init.libPath);
  const engine = Engine.fromAddress(lib, init.engineAddress);
  const link = Link.attach(init.link);
  const contexts: Deno.PointerValue[] = [];
  let memoryHandle: Uint8Array | undefined;
  const rt = new GuestRuntime({
    link,
    maxFds: init.maxFds,
    memory: {
      locate: () => {
        const ctx = contexts[contexts.length - 1];
        if (!memoryHandle || ctx === undefined) return [0n, 0];
        const base = lib.wasmtime_memory_data(ctx, memoryHandle);
        const size = Number(lib.wasmtime_memory_data_size(ctx, memoryHandle));
        return [base === null ? 0n : BigInt(Deno.UnsafePointer.value(base)), size];
      },
    },
  });

  let module: Module | undefined;
  let store: Store | undefined;
  let linker: Linker | undefined;
  let instance: Instance | undefined;
  try {
    hooks.setup?.(rt);
    module = await loadModule(engine, init.wasm, init.cacheDir);
    const hostcalls = spearHostcalls(rt);
    const missing = missingImport(module, new Set(hostcalls.map((h) => h.name)));
    if (missing) return { exitCode: 1, failure: { kind: "link", message: `missing import ${missing}` } };

    store = new Store(engine, { memoryBytes: init.memoryBytes });
    store.onEpoch(() => (link.toGuest.terminateRequested ? "terminated by host" : null));
    store.setWasi({
      args: init.args,
      env: init.env,
      stdoutFile: init.stdoutFile,
      stderrFile: init.stderrFile,
    });
    linker = new Linker(engine);
    linker.defineWasi();
    for (const hc of hostcalls) bindHostcall(lib, linker, rt, contexts, hc);

    instance = linker.instantiate(store, module);
    const memory = instance.export("memory");
    if (memory?.kind !== ExternKind.MEMORY) {
      return {
        exitCode: 1,
        failure: { kind: "link", message: 'guest does not export its memory as "memory"' },
      };
    }
    memoryHandle = memory.handle;
    rt.invoker = tableInvoker(lib, instance, rt, contexts);
    const start = instance.export("_start");
    if (start?.kind !== ExternKind.FUNC) {
      return {
        exitCode: 1,
        failure: { kind: "link", message: "guest has no _start export (not a WASI command)" },
      };
    }
    const sig = funcSignature(lib, store.context, start.handle);
    if (sig.params.length || sig.results.length) {
      return {
        exitCode: 1,
        failure: { kind: "link", message: "_start must take no parameters and return nothing" },
      };
    }
    // The deadline is armed; a stop requested before this point would otherwise be missed.
    if (link.toGuest.terminateRequested) {
      return { exitCode: 137, failure: { kind: "terminated", message: "terminated before start" } };
    }
    contexts.push(store.context);
    const outcome = callRaw(lib, store.context, start.handle, new Uint8Array(16));
    rt.mem.refresh(); // while the store's context is still current: classifyTrap reads the size
    contexts.pop();
    return outcome.error ? classifyTrap(outcome.error, instance, rt, init) : { exitCode: 0 };
  } catch (e) {
    if (e instanceof WasmError) {
      if (e.kind === "exit") return { exitCode: e.exitCode ?? 1 };
      const memoryLimit = /memory minimum size|exceeds memory limits|resource limit exceeded/i.test(
        e.message,
      );
      const kind: FailureKind = memoryLimit
        ? "memory"
        : e.kind === "trap"
        ? "trap"
        : e.kind === "link"
        ? "link"
        : e.kind === "invalid_module"
        ? "invalid_module"
        : "internal";
      return { exitCode: 1, failure: { kind, message: e.message.split("\n")[0] } };
    }
    return { exitCode: 1, failure: { kind: "internal", message: String(e) } };
  } finally {
    try {
      rt.fds.closeAll();
    } catch { /* teardown must not mask the result */ }
    store?.delete();
    linker?.delete();
    module?.delete();
  }
}
