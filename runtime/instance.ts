/**
 * Runs one guest to completion on the current thread (a Worker in production): load the
 * module (through the compiled-code cache), link WASI and the `spear` hostcalls, call
 * `_start`, and report the exit code or the failure. Every native object is freed on the
 * way out, whatever happened.
 */
import { Errno, HostcallError, LogLevel } from "./abi.ts";
import { openWasmtime, Sizes, WASMTIME_VERSION, type WasmtimeLib } from "../ffi/wasmtime.ts";
import {
  type CallOutcome,
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
  type WasiOptions,
  WasmError,
} from "./engine.ts";
import { type Frame, Link } from "../protocol/channel.ts";
import { HostBudget } from "../protocol/budget.ts";
import { GuestRuntime, GuestTerminated, GuestTrapped } from "./guest.ts";
import { hostcallsFor } from "../families/registry.ts";
import { type Hostcall, importKey } from "./hostcall.ts";
import { Op } from "../protocol/wire.ts";

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
  /** The guest's host budget (protocol/budget.ts), shared with the host. */
  budget: SharedArrayBuffer;
  /** Directory for compiled modules; none disables the cache. */
  cacheDir?: string;
  /** How the guest is entered; `_start` by default. */
  entry?: GuestEntry;
}

/** How a guest is entered. */
export type GuestEntry = { kind: "command" };

export type FailureKind = "invalid_module" | "link" | "trap" | "memory" | "terminated" | "internal";

export interface GuestResult {
  exitCode: number;
  failure?: { kind: FailureKind; message: string };
  /** The output of an export-call entry. */
  output?: Uint8Array;
  /** Frames the guest sent that were still waiting for room in the ring (host applies them). */
  outbound?: Frame[];
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

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

/** Names the first import no family provides, in the form `module.field`. */
function missingImport(module: Module, provided: Set<string>): string | undefined {
  for (const imp of module.imports()) {
    if (imp.module === "wasi_snapshot_preview1") continue;
    if (!provided.has(importKey(imp))) return importKey(imp);
  }
  return undefined;
}

/**
 * The Wasmtime context of the innermost active call (a hostcall's caller, or the store when
 * the host calls in). Resolved lazily: a hostcall that never touches memory or calls back
 * into the guest costs no extra FFI call.
 */
export class CallStack {
  private readonly callers: Deno.PointerValue[] = [];
  private readonly contexts: (Deno.PointerValue | undefined)[] = [];

  constructor(private readonly lib: WasmtimeLib) {}

  enterHostcall(caller: Deno.PointerValue): void {
    this.callers.push(caller);
    this.contexts.push(undefined);
  }

  enterStore(context: Deno.PointerValue): void {
    this.callers.push(null);
    this.contexts.push(context);
  }

  leave(): void {
    this.callers.pop();
    this.contexts.pop();
  }

  /** The current context, or undefined outside any call. */
  current(): Deno.PointerValue | undefined {
    const top = this.contexts.length - 1;
    if (top < 0) return undefined;
    return this.contexts[top] ??= this.lib.wasmtime_caller_context(this.callers[top]);
  }
}

/**
 * Replaces WASI's `proc_exit`, which rejects statuses of 126 and above: any status ends the
 * guest with `status & 0xff`, as a POSIX process would. The trap unwinds the guest (from a
 * tool call too); the recorded code wins over the trap when the run is classified.
 */
function defineProcExit(linker: Linker, rt: GuestRuntime) {
  linker.allowShadowing(true);
  linker.define("wasi_snapshot_preview1", "proc_exit", ["i32"], [], (_caller, raw) => {
    rt.exitCode = raw.getInt32(0, true) & 0xff;
    return newTrap(linker.engine.lib, `exit(${rt.exitCode})`);
  });
}

/** Binds a family's hostcall to Wasmtime: decode i32 args, run, encode result or errno. */
function bindHostcall(lib: WasmtimeLib, linker: Linker, rt: GuestRuntime, calls: CallStack, hc: Hostcall) {
  const { params, results } = hc.signatures[0];
  const arity = params.length;
  const resultType = results[0];
  const args: number[] = new Array(arity);
  linker.define(hc.module, hc.name, params, results, (caller, raw) => {
    calls.enterHostcall(caller);
    rt.mem.invalidate();
    let result: number | bigint | void;
    try {
      for (let i = 0; i < arity; i++) args[i] = raw.getInt32(i * 16, true);
      result = hc.run(...args);
    } catch (e) {
      if (e instanceof GuestTerminated || e instanceof GuestTrapped) return newTrap(lib, e.message);
      if (e instanceof HostcallError) result = e.code;
      else {
        const message = `host: internal error in ${hc.name}: ${e}`;
        rt.send(Op.LOG, LogLevel.ERROR, new TextEncoder().encode(message));
        result = -Errno.EIO;
      }
    } finally {
      calls.leave();
      rt.mem.invalidate();
    }
    if (resultType === "i32") raw.setInt32(0, Number(result), true);
    else if (resultType === "i64") raw.setBigInt64(0, BigInt(result ?? 0), true);
    return null;
  });
}

const TOOL_SIGNATURE = "0,0,0,0->0"; // (i32, i32, i32, i32) -> i32

/** Re-entrant calls through the guest's exported function table (tool functions). */
function tableInvoker(lib: WasmtimeLib, instance: Instance, rt: GuestRuntime, calls: CallStack) {
  const table = instance.table(["__indirect_function_table", "table"]);
  return {
    callTableI32x4(index: number, args: [number, number, number, number]): number {
      const context = calls.current() ?? null;
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
      rt.mem.invalidate(); // the guest may have grown its memory
      if (outcome.error) {
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
  if (rt.exitCode !== undefined) return { exitCode: rt.exitCode };
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

export interface InstantiateOptions {
  link: Link;
  maxFds: number;
  memoryBytes: number;
  /** The guest's host budget; a private default one when absent (benches). */
  budget?: HostBudget;
  wasi: WasiOptions;
  /** Directory for compiled modules; none disables the cache. */
  cacheDir?: string;
  /** Runs once the guest's runtime exists, before the module loads (tests, benches). */
  setup?: (rt: GuestRuntime) => void;
  /** Binds an import differently (benches: native floors); returns true when it did. */
  bindOverride?: (linker: Linker, hc: Hostcall) => boolean;
}

/**
 * A guest instantiated on the current thread: store, linker with WASI and every `spear`
 * hostcall, its runtime (fd table, memory) and the call stack. `dispose()` frees it all.
 */
export class GuestInstance {
  private constructor(
    readonly rt: GuestRuntime,
    readonly calls: CallStack,
    readonly module: Module,
    readonly store: Store,
    readonly linker: Linker,
    readonly instance: Instance,
  ) {}

  static async create(
    engine: Engine,
    wasm: Uint8Array<ArrayBuffer>,
    options: InstantiateOptions,
  ): Promise<GuestInstance> {
    const lib = engine.lib;
    const calls = new CallStack(lib);
    let memoryHandle: Uint8Array | undefined;
    const rt = new GuestRuntime({
      link: options.link,
      maxFds: options.maxFds,
      budget: options.budget,
      memory: {
        locate: () => {
          const ctx = calls.current();
          if (!memoryHandle || ctx === undefined) return [0n, 0];
          const base = lib.wasmtime_memory_data(ctx, memoryHandle);
          const size = Number(lib.wasmtime_memory_data_size(ctx, memoryHandle));
          return [base === null ? 0n : BigInt(Deno.UnsafePointer.value(base)), size];
        },
      },
    });
    options.setup?.(rt);
    const module = await loadModule(engine, wasm, options.cacheDir);
    let store: Store | undefined;
    let linker: Linker | undefined;
    try {
      const hostcalls = await hostcallsFor(rt);
      const missing = missingImport(module, new Set(hostcalls.map(importKey)));
      if (missing) throw new WasmError("link", `missing import ${missing}`);
      store = new Store(engine, { memoryBytes: options.memoryBytes });
      store.onEpoch(() => (options.link.toGuest.terminateRequested ? "terminated by host" : null));
      store.setWasi(options.wasi);
      linker = new Linker(engine);
      linker.defineWasi();
      defineProcExit(linker, rt);
      for (const hc of hostcalls) {
        if (!options.bindOverride?.(linker, hc)) bindHostcall(lib, linker, rt, calls, hc);
      }
      const instance = linker.instantiate(store, module);
      const memory = instance.export("memory");
      if (memory?.kind !== ExternKind.MEMORY) {
        throw new WasmError("link", 'guest does not export its memory as "memory"');
      }
      memoryHandle = memory.handle;
      rt.invoker = tableInvoker(lib, instance, rt, calls);
      return new GuestInstance(rt, calls, module, store, linker, instance);
    } catch (e) {
      store?.delete();
      linker?.delete();
      module.delete();
      throw e;
    }
  }

  /** Calls an exported function with raw slots, from the host (not from a hostcall). */
  call(func: Uint8Array, raw: Uint8Array): CallOutcome {
    this.calls.enterStore(this.store.context);
    try {
      const outcome = callRaw(this.store.engine.lib, this.store.context, func, raw);
      this.rt.mem.invalidate();
      this.rt.mem.refresh(); // while the store's context is current: the size tells a memory fault
      return outcome;
    } finally {
      this.calls.leave();
    }
  }

  /** An exported function's handle, checked to be `() -> ()` (a command's `_start`). */
  command(name: string): Uint8Array {
    const exp = this.instance.export(name);
    if (exp?.kind !== ExternKind.FUNC) {
      throw new WasmError("link", `guest has no ${name} export (not a WASI command)`);
    }
    const sig = funcSignature(this.store.engine.lib, this.store.context, exp.handle);
    if (sig.params.length || sig.results.length) {
      throw new WasmError("link", `${name} must take no parameters and return nothing`);
    }
    return exp.handle;
  }

  dispose(): void {
    try {
      this.rt.fds.closeAll();
    } catch { /* teardown must not mask the result */ }
    this.store.delete();
    this.linker.delete();
    this.module.delete();
  }
}

function failureOf(e: unknown): GuestResult {
  if (!(e instanceof WasmError)) return { exitCode: 1, failure: { kind: "internal", message: String(e) } };
  if (e.kind === "exit") return { exitCode: e.exitCode ?? 1 };
  const memoryLimit = /memory minimum size|exceeds memory limits|resource limit exceeded/i.test(e.message);
  const kinds: Record<string, FailureKind> = { trap: "trap", link: "link", invalid_module: "invalid_module" };
  const kind = memoryLimit ? "memory" : kinds[e.kind] ?? "internal";
  return { exitCode: 1, failure: { kind, message: e.message.split("\n")[0] } };
}

/** Test and bench hooks of `runGuest`; production never passes any. */
export interface GuestHooks {
  /** Runs once the guest's runtime exists, before the module loads (pre-populate fds, add ops). */
  setup?: (rt: GuestRuntime) => void;
}

/** Runs the guest to completion; never throws for guest faults. */
export async function runGuest(init: GuestInit, hooks: GuestHooks = {}): Promise<GuestResult> {
  const engine = Engine.fromAddress(openWasmtime(init.libPath), init.engineAddress);
  const link = Link.attach(init.link);
  let guest: GuestInstance | undefined;
  let result: GuestResult;
  try {
    guest = await GuestInstance.create(engine, init.wasm, {
      link,
      maxFds: init.maxFds,
      budget: new HostBudget(init.budget),
      memoryBytes: init.memoryBytes,
      wasi: { args: init.args, env: init.env, stdoutFile: init.stdoutFile, stderrFile: init.stderrFile },
      cacheDir: init.cacheDir,
      setup: hooks.setup,
    });
    const start = guest.command("_start");
    // The deadline is armed; a stop requested before this point would otherwise be missed.
    if (link.toGuest.terminateRequested) {
      result = { exitCode: 137, failure: { kind: "terminated", message: "terminated before start" } };
    } else {
      const outcome = guest.call(start, new Uint8Array(Sizes.VAL_RAW));
      result = outcome.error ? classifyTrap(outcome.error, guest.instance, guest.rt, init) : { exitCode: 0 };
    }
  } catch (e) {
    result = failureOf(e);
  } finally {
    guest?.dispose();
  }
  // What the guest sent that is still waiting for room goes with the result: nothing is lost.
  const outbound = guest?.rt.takeOutbound() ?? [];
  return outbound.length ? { ...result, outbound } : result;
}
