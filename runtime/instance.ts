/**
 * Runs one guest to completion on the current thread (a Worker in production): load the
 * module (through the compiled-code cache), link WASI and the families' hostcalls with the
 * types the module declares, call its entry (`_start`, or an export with typed arguments and
 * optional input/output in guest memory), and report the exit code or the failure. Every
 * native object is freed on the way out, whatever happened.
 */
import { Errno, HostcallError, LogLevel } from "./abi.ts";
import { openWasmtime, Sizes, WASMTIME_VERSION, type WasmtimeLib } from "../ffi/wasmtime.ts";
import {
  asSignature,
  type CallOutcome,
  callRaw,
  Engine,
  ExternKind,
  funcSignature,
  type FuncType,
  type ImportDesc,
  type Instance,
  Linker,
  type MemoryLimits,
  Module,
  newTrap,
  sha256Hex,
  Store,
  tableFunc,
  type WasiOptions,
  WasmError,
} from "./engine.ts";
import { type Frame, Link } from "../protocol/channel.ts";
import { HostBudget } from "../protocol/budget.ts";
import { GuestRuntime, GuestTerminated, GuestTrapped } from "./guest.ts";
import { hostcallsFor } from "../families/registry.ts";
import {
  formatSignature,
  type Hostcall,
  importKey,
  sameSignature,
  type Signature,
  type WasmType,
  type WasmValue,
} from "./hostcall.ts";
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
  /** The guest's pipe arena (protocol/pipe.ts), shared with the host. */
  pipes?: SharedArrayBuffer;
  /** Directory for compiled modules; none disables the cache. */
  cacheDir?: string;
  /** What to run; default `{ kind: "command" }`. */
  entry?: Entry;
  /** Per-run values for families (RunOptions.context), structured-cloned into the worker. */
  context?: Record<string, unknown>;
  /** When the host stops the guest (runtime/guest.ts absoluteNow() time). */
  deadline?: number;
}

/** A WASI command: `_start`, with `GuestInit.args` as argv. */
export interface CommandEntry {
  kind: "command";
}

/**
 * One exported function, called with typed arguments (a reactor's `execute`, a skill).
 * `_initialize` runs first when the module exports it.
 */
export interface CallEntry {
  kind: "call";
  export: string;
  /** Arguments after the input pointer, by the export's parameter types (i64 as bigint). */
  args?: WasmValue[];
  /**
   * Written NUL-terminated into memory from the guest's `alloc(len + 1) -> ptr`; the pointer
   * is the first argument. Freed with `dealloc(ptr, len + 1)` afterwards if the guest has it.
   */
  input?: Uint8Array;
  /** "cstring": the i32 result points at NUL-terminated bytes (≤ 16 MiB), returned as `output`. Default "values". */
  output?: "cstring" | "values";
}

export type Entry = CommandEntry | CallEntry;

/** "abi": the guest broke the entry contract (bad pointer from `alloc` or for the output). */
export type FailureKind = "invalid_module" | "link" | "trap" | "memory" | "terminated" | "abi" | "internal";

export interface GuestResult {
  exitCode: number;
  failure?: { kind: FailureKind; message: string };
  /** A call entry's output bytes (`output: "cstring"`). */
  output?: Uint8Array;
  /** A call entry's typed results (`output: "values"`). */
  values?: WasmValue[];
  /** Frames the guest sent that were still waiting for room in the ring (the host applies them). */
  outbound?: Frame[];
}

/** Longest output a call entry may return (SPEC §9). */
export const MAX_OUTPUT_BYTES = 16 << 20;

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const WASI_MODULE = "wasi_snapshot_preview1";

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

/** A failure of the entry itself (not a trap): reported with this kind and message. */
class EntryFailure extends Error {
  constructor(readonly kind: FailureKind, message: string) {
    super(message);
  }
}

/** A call into the guest trapped or exited; the result is classified like a trap of `_start`. */
class GuestCallFailed extends Error {
  constructor(readonly error: WasmError) {
    super(error.message);
  }
}

/** What the linker must provide for one module: each hostcall with the type it is imported with, and the memory. */
interface LinkPlan {
  hostcalls: { hc: Hostcall; sig: Signature }[];
  /** Limits of `env.memory` when the module imports its memory. */
  memory?: MemoryLimits;
}

function expectedTypes(hc: Hostcall): string {
  return hc.signatures.map(formatSignature).join(" or ");
}

/** Matches every import against the hostcalls; a link error names the first that fails. */
function planLink(imports: ImportDesc[], hostcalls: Hostcall[]): LinkPlan {
  const byKey = new Map<string, Hostcall>();
  for (const hc of hostcalls) {
    const key = importKey(hc);
    if (byKey.has(key)) throw new Error(`hostcall ${key} is defined twice`);
    byKey.set(key, hc);
  }
  const plan: LinkPlan = { hostcalls: [] };
  const linked = new Map<string, Signature>();
  for (const imp of imports) {
    const key = importKey(imp);
    if (imp.module === WASI_MODULE) continue;
    if (key === "env.memory" && imp.kind === ExternKind.MEMORY) {
      if (imp.memory!.shared) {
        throw new WasmError("link", "env.memory is a shared memory, which is not supported");
      }
      plan.memory = imp.memory;
      continue;
    }
    const hc = byKey.get(key);
    if (!hc) throw new WasmError("link", `missing import ${key}`);
    if (imp.kind !== ExternKind.FUNC) {
      throw new WasmError("link", `${key} is not imported as a function, expected ${expectedTypes(hc)}`);
    }
    const declared = asSignature(imp.func!);
    const sig = declared && hc.signatures.find((s) => sameSignature(s, declared));
    if (!sig) {
      throw new WasmError(
        "link",
        `${key} has type ${formatSignature(imp.func!)}, expected ${expectedTypes(hc)}`,
      );
    }
    const seen = linked.get(key);
    if (seen === sig) continue; // imported twice with the same type: one definition serves both
    if (seen) throw new WasmError("link", `${key} is imported twice with different types`);
    linked.set(key, sig);
    plan.hostcalls.push({ hc, sig });
  }
  return plan;
}

/**
 * The memory the host creates for a module importing `env.memory`: the declared minimum, and
 * a maximum no larger than the store's memory limit (the limiter would refuse growth past it
 * anyway; a declared maximum makes `memory.grow` fail the same way in every host).
 */
function importedMemoryLimits(declared: MemoryLimits, memoryBytes: number): MemoryLimits {
  const pageBytes = 2 ** declared.pageSizeLog2;
  const capPages = BigInt(Math.floor(memoryBytes / pageBytes));
  if (declared.min > capPages) {
    // Worded like Wasmtime's own message for a module's memory, so failureOf calls it "memory".
    throw new WasmError(
      "link",
      `env.memory minimum size of ${declared.min} pages exceeds memory limits (${memoryBytes >> 20} MiB)`,
    );
  }
  const max = declared.max === undefined || declared.max > capPages ? capPages : declared.max;
  return { ...declared, max };
}

/**
 * The Wasmtime context of the innermost active call (a hostcall's caller, or the store when
 * the host calls in). Resolved lazily: a hostcall that never touches memory or calls back
 * into the guest costs no extra FFI call.
 */
export class CallStack {
  // Slots reused across calls (no push/pop): a hostcall enters and leaves on every crossing.
  private readonly callers: Deno.PointerValue[] = [];
  private readonly contexts: (Deno.PointerValue | undefined)[] = [];
  private depth = 0;

  constructor(private readonly lib: WasmtimeLib) {}

  enterHostcall(caller: Deno.PointerValue): void {
    this.callers[this.depth] = caller;
    this.contexts[this.depth++] = undefined;
  }

  enterStore(context: Deno.PointerValue): void {
    this.callers[this.depth] = null;
    this.contexts[this.depth++] = context;
  }

  /** Pops the innermost call. Its slots are left as they are: every entry writes both first. */
  leave(): void {
    this.depth--;
  }

  /**
   * The store's own context, once a caller's context was seen to be that same pointer (as
   * Wasmtime's C API makes it: both are the store's inner state). From then on a hostcall
   * needs no wasmtime_caller_context call to reach guest memory.
   */
  private storeContext: Deno.PointerValue = null;
  private callerIsStore = false;

  /** The store whose guest calls the hostcalls: its context stands for a caller's once proven equal. */
  attachStore(context: Deno.PointerValue): void {
    this.storeContext = context;
  }

  /** The current context, or undefined outside any call. */
  current(): Deno.PointerValue | undefined {
    const top = this.depth - 1;
    if (top < 0) return undefined;
    const known = this.contexts[top];
    if (known !== undefined) return known;
    if (this.callerIsStore) return this.contexts[top] = this.storeContext;
    const context = this.lib.wasmtime_caller_context(this.callers[top]);
    this.callerIsStore = this.storeContext !== null && Deno.UnsafePointer.equals(context, this.storeContext);
    return this.contexts[top] = context;
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

/**
 * Replaces WASI's `fd_fdstat_get` for the guest's stdio (fds 0–2, the only fds a guest has:
 * no preopens): each reports a character device without seek/tell rights, which is what
 * wasi-libc's isatty() looks for, so stdout is line-buffered as on a terminal and a line a
 * guest prints with fwrite/puts reaches the host's stdout when it ends, not when the guest
 * exits (SPEAR's mic_rtasr prints transcripts that way; a guest stopped by its time limit no
 * longer loses what it printed). Writes still go through Wasmtime's WASI to the real stdio.
 */
function defineStdioFdstat(linker: Linker, rt: GuestRuntime, calls: CallStack) {
  const WASI_EBADF = 8, WASI_EFAULT = 21, CHARACTER_DEVICE = 2;
  // fd_read | fd_fdstat_set_flags | fd_write | poll_fd_readwrite; no fd_seek (1<<2) or fd_tell (1<<5).
  const RIGHTS = (1n << 1n) | (1n << 3n) | (1n << 6n) | (1n << 27n);
  const stat = new Uint8Array(24);
  const view = new DataView(stat.buffer);
  view.setUint8(0, CHARACTER_DEVICE);
  view.setBigUint64(8, RIGHTS, true);
  view.setBigUint64(16, 0n, true);
  linker.define("wasi_snapshot_preview1", "fd_fdstat_get", ["i32", "i32"], ["i32"], (caller, raw) => {
    const fd = raw.getInt32(0, true);
    const ptr = raw.getInt32(16, true);
    let errno = 0;
    if (fd < 0 || fd > 2) errno = WASI_EBADF;
    else {
      calls.enterHostcall(caller);
      rt.mem.invalidate();
      try {
        rt.mem.write(ptr, stat);
      } catch {
        errno = WASI_EFAULT;
      } finally {
        calls.leave();
      }
    }
    raw.setInt32(0, errno, true);
    return null;
  });
}

const I32 = 0, I64 = 1, F32 = 2, F64 = 3, NONE = -1;
const TYPE_CODES: Record<WasmType, number> = { i32: I32, i64: I64, f32: F32, f64: F64 };

/** Decodes the arguments of a signature that is not all-i32 (off the common path). */
function decodeTyped(raw: DataView, codes: Uint8Array, args: WasmValue[]): void {
  for (let i = 0; i < codes.length; i++) {
    const at = i * 16;
    const code = codes[i];
    args[i] = code === I32
      ? raw.getInt32(at, true)
      : code === I64
      ? raw.getBigInt64(at, true)
      : code === F32
      ? raw.getFloat32(at, true)
      : raw.getFloat64(at, true);
  }
}

/**
 * What a hostcall's exception becomes: a trap when the guest must unwind (stopped by the
 * host, or a call back into it failed), else the -errno to return.
 */
function hostcallFailure(
  lib: WasmtimeLib,
  rt: GuestRuntime,
  hc: Hostcall,
  e: unknown,
): number | Deno.PointerValue {
  if (e instanceof GuestTerminated || e instanceof GuestTrapped) return newTrap(lib, e.message);
  if (e instanceof HostcallError) return e.code;
  const message = `host: internal error in ${hc.module}.${hc.name}: ${e}`;
  rt.send(Op.LOG, LogLevel.ERROR, new TextEncoder().encode(message));
  return -Errno.EIO;
}

const TWO_POW_32 = 2 ** 32;

/**
 * Writes an i64 result: a number (a time, a size; a fraction truncated) as two 32-bit
 * halves, which costs no BigInt; a bigint as it is.
 */
function setI64(raw: DataView, value: WasmValue | void): void {
  if (typeof value === "bigint") raw.setBigInt64(0, value, true);
  else {
    const v = Math.trunc(Number(value ?? 0));
    // `>>> 0` is already v mod 2^32; `%` on a double that is not an int32 (any time in ms)
    // would be a call to fmod.
    raw.setUint32(0, v >>> 0, true);
    raw.setInt32(4, Math.floor(v / TWO_POW_32), true);
  }
}

/** Calls `run` with the first `arity` i32 slots of `raw` as arguments, without an argument array. */
function runI32(run: Hostcall["run"], arity: number, raw: DataView): WasmValue | void {
  switch (arity) {
    case 0:
      return run();
    case 1:
      return run(raw.getInt32(0, true));
    case 2:
      return run(raw.getInt32(0, true), raw.getInt32(16, true));
    case 3:
      return run(raw.getInt32(0, true), raw.getInt32(16, true), raw.getInt32(32, true));
    case 4:
      return run(
        raw.getInt32(0, true),
        raw.getInt32(16, true),
        raw.getInt32(32, true),
        raw.getInt32(48, true),
      );
    case 5: // cchat_write_msg, sock_sendto, sock_recvfrom
      return run(
        raw.getInt32(0, true),
        raw.getInt32(16, true),
        raw.getInt32(32, true),
        raw.getInt32(48, true),
        raw.getInt32(64, true),
      );
    default:
      return run(...Array.from({ length: arity }, (_, i) => raw.getInt32(i * 16, true)));
  }
}

/**
 * Binds a family's hostcall to Wasmtime with the signature the module imports it with:
 * decode the args by type from the raw slots (16 bytes each), run, encode the result (or
 * -errno) by type, or drop it when the linked signature has none. All-i32 arguments with an
 * i32/i64/no result — every `spear` import — get their own small callback that allocates
 * nothing per call (no argument array; an i64 returned as a number is written without a
 * BigInt), so the typed decoding costs them nothing (bench/hostcall_bench.ts measures this path).
 */
function bindHostcall(
  lib: WasmtimeLib,
  linker: Linker,
  rt: GuestRuntime,
  calls: CallStack,
  hc: Hostcall,
  sig: Signature,
) {
  const arity = sig.params.length;
  const codes = Uint8Array.from(sig.params, (t) => TYPE_CODES[t]);
  const resultCode = sig.results.length ? TYPE_CODES[sig.results[0]] : NONE;
  const args: WasmValue[] = new Array(arity);
  // Unbound: family implementations are plain functions, and a bound one costs more to call.
  const run = hc.run;
  // A leaf (ImportDecl.leaf: a clock, a random number) reaches no memory and calls nothing
  // back, so it needs no call-stack entry: 5–15 ns of a hostcall that costs about 300.
  const leaf = hc.leaf === true;
  if (codes.every((c) => c === I32) && resultCode !== F32 && resultCode !== F64) {
    linker.define(hc.module, hc.name, sig.params, sig.results, (caller, raw) => {
      if (!leaf) {
        calls.enterHostcall(caller);
        rt.mem.invalidate();
      }
      let result: WasmValue | void;
      try {
        result = runI32(run, arity, raw);
      } catch (e) {
        const failure = hostcallFailure(lib, rt, hc, e);
        if (typeof failure !== "number") return failure;
        result = failure;
      } finally {
        if (!leaf) {
          calls.leave();
          rt.mem.invalidate();
        }
      }
      if (resultCode === I32) raw.setInt32(0, Number(result), true);
      else if (resultCode === I64) setI64(raw, result);
      return null;
    });
    return;
  }
  linker.define(hc.module, hc.name, sig.params, sig.results, (caller, raw) => {
    calls.enterHostcall(caller);
    rt.mem.invalidate();
    let result: WasmValue | void;
    try {
      decodeTyped(raw, codes, args);
      result = hc.run(...args);
      if (resultCode === I64) result = BigInt(result ?? 0);
    } catch (e) {
      const failure = hostcallFailure(lib, rt, hc, e);
      if (typeof failure !== "number") return failure;
      result = resultCode === I64 ? BigInt(failure) : failure;
    } finally {
      calls.leave();
      rt.mem.invalidate();
    }
    if (resultCode === I32) raw.setInt32(0, Number(result), true);
    else if (resultCode === I64) raw.setBigInt64(0, result as bigint, true);
    else if (resultCode === F32) raw.setFloat32(0, Number(result), true);
    else if (resultCode === F64) raw.setFloat64(0, Number(result), true);
    return null;
  });
}

const TOOL_SIGNATURE = "(i32,i32,i32,i32)->i32";

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
      if (formatSignature(funcSignature(lib, context, func)) !== TOOL_SIGNATURE) {
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

function classifyTrap(error: WasmError, rt: GuestRuntime, init: GuestInit): GuestResult {
  if (rt.link.toGuest.terminateRequested) {
    return { exitCode: 137, failure: { kind: "terminated", message: error.message } };
  }
  if (error.kind === "exit") return { exitCode: error.exitCode ?? 1 };
  if (rt.exitCode !== undefined) return { exitCode: rt.exitCode };
  // The limiter makes memory.grow fail without saying so; a trap with less room left than a
  // typical allocation (malloc grows in steps of its request plus headers) is blamed on the limit.
  const headroom = Math.max(2 << 20, init.memoryBytes / 16);
  const size = rt.mem.size;
  if (size > 0 && size + headroom > init.memoryBytes) {
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
  bindOverride?: (linker: Linker, hc: Hostcall, sig: Signature) => boolean;
  /** Hostcalls beside the families' (tests: imports of other types and modules). */
  extraHostcalls?: (rt: GuestRuntime) => Hostcall[];
  /** Per-run values for families (GuestRuntime.context). */
  context?: Record<string, unknown>;
  /** When the host stops the guest (GuestRuntime.deadline). */
  deadline?: number;
  /** The guest's pipe arena (GuestOptions.pipes). */
  pipes?: SharedArrayBuffer;
}

const VALUE_RANGES: Record<WasmType, (v: WasmValue) => boolean> = {
  i32: (v) => typeof v === "number" && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 32,
  i64: (v) => typeof v === "bigint" && v >= -(1n << 63n) && v < 1n << 64n,
  f32: (v) => typeof v === "number",
  f64: (v) => typeof v === "number",
};

function describeValue(v: WasmValue): string {
  return typeof v === "bigint" ? `${v}n` : String(v);
}

/** An exported function with its declared type. */
export interface ExportedFunc {
  name: string;
  handle: Uint8Array;
  type: FuncType;
}

/**
 * A guest instantiated on the current thread: store, linker with WASI and the hostcalls its
 * module imports, its runtime (fd table, memory) and the call stack. `dispose()` frees it all.
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
      pipes: options.pipes,
      context: options.context,
      deadline: options.deadline,
      memory: {
        locate: () => {
          const ctx = calls.current();
          if (!memoryHandle || ctx === undefined) return [0n, 0];
          const base = lib.wasmtime_memory_data(ctx, memoryHandle);
          const size = Number(lib.wasmtime_memory_data_size(ctx, memoryHandle));
          return [base === null ? 0n : BigInt(Deno.UnsafePointer.value(base)), size];
        },
        growsInPlace: true, // Engine.create turns Wasmtime's memory_may_move off
      },
    });
    options.setup?.(rt);
    const module = await loadModule(engine, wasm, options.cacheDir);
    let store: Store | undefined;
    let linker: Linker | undefined;
    try {
      const imports = module.imports();
      const imported = new Set(imports.map(importKey));
      const hostcalls = [
        ...await hostcallsFor(rt, undefined, imported),
        ...(options.extraHostcalls?.(rt) ?? []),
      ];
      const plan = planLink(imports, hostcalls);
      store = new Store(engine, { memoryBytes: options.memoryBytes });
      calls.attachStore(store.context);
      store.onEpoch(() => (options.link.toGuest.terminateRequested ? "terminated by host" : null));
      store.setWasi(options.wasi);
      linker = new Linker(engine);
      linker.defineWasi();
      defineProcExit(linker, rt);
      defineStdioFdstat(linker, rt, calls);
      for (const { hc, sig } of plan.hostcalls) {
        if (!options.bindOverride?.(linker, hc, sig)) bindHostcall(lib, linker, rt, calls, hc, sig);
      }
      if (plan.memory) {
        memoryHandle = store.newMemory(importedMemoryLimits(plan.memory, options.memoryBytes));
        linker.defineMemory(store, "env", "memory", memoryHandle);
      }
      const instance = linker.instantiate(store, module);
      if (!memoryHandle) {
        const memory = instance.export("memory");
        if (memory?.kind !== ExternKind.MEMORY) {
          throw new WasmError("link", 'guest neither exports its memory as "memory" nor imports env.memory');
        }
        memoryHandle = memory.handle;
      }
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

  /** An exported function and its type; undefined if there is no such export or it is not a function. */
  exportedFunc(name: string): ExportedFunc | undefined {
    const exp = this.instance.export(name);
    if (exp?.kind !== ExternKind.FUNC) return undefined;
    return {
      name,
      handle: exp.handle,
      type: funcSignature(this.store.engine.lib, this.store.context, exp.handle),
    };
  }

  /**
   * Checks typed arguments against an export's type: a link error names the export, its
   * type and the first mismatch.
   */
  checkCall(func: ExportedFunc, args: readonly WasmValue[]): Signature {
    const sig = asSignature(func.type);
    const shown = () => `${func.name} has type ${formatSignature(func.type)}`;
    if (!sig) throw new WasmError("link", `${shown()}, which the host cannot call`);
    if (args.length !== sig.params.length) {
      throw new WasmError("link", `${shown()}, called with ${args.length} argument(s)`);
    }
    sig.params.forEach((t, i) => {
      if (!VALUE_RANGES[t](args[i])) {
        throw new WasmError(
          "link",
          `${shown()}: argument ${i + 1} (${describeValue(args[i])}) is not an ${t}`,
        );
      }
    });
    return sig;
  }

  /**
   * Calls an export with typed arguments (checked: see checkCall) and returns its typed
   * results. A trap or exit inside throws GuestCallFailed.
   */
  invoke(func: ExportedFunc, args: readonly WasmValue[]): WasmValue[] {
    const sig = this.checkCall(func, args);
    const raw = new Uint8Array(Math.max(sig.params.length, sig.results.length, 1) * Sizes.VAL_RAW);
    const view = new DataView(raw.buffer);
    sig.params.forEach((t, i) => {
      const at = i * Sizes.VAL_RAW;
      const v = args[i];
      if (t === "i32") view.setInt32(at, v as number, true);
      else if (t === "i64") view.setBigInt64(at, BigInt.asIntN(64, v as bigint), true);
      else if (t === "f32") view.setFloat32(at, v as number, true);
      else view.setFloat64(at, v as number, true);
    });
    const outcome = this.call(func.handle, raw);
    if (outcome.error) throw new GuestCallFailed(outcome.error);
    return sig.results.map((t, i) => {
      const at = i * Sizes.VAL_RAW;
      if (t === "i32") return view.getInt32(at, true);
      if (t === "i64") return view.getBigInt64(at, true);
      if (t === "f32") return view.getFloat32(at, true);
      return view.getFloat64(at, true);
    });
  }

  /** Runs `fn` with the store's context current: guest memory is reachable from the host only then. */
  private withMemory<T>(fn: () => T): T {
    this.calls.enterStore(this.store.context);
    this.rt.mem.invalidate();
    try {
      return fn();
    } finally {
      this.calls.leave();
    }
  }

  /** `alloc(size) -> ptr` of the guest; the block must lie inside guest memory. */
  alloc(size: number): number {
    const alloc = this.exportedFunc("alloc");
    if (!alloc) throw new WasmError("link", "guest exports no alloc(size) -> ptr, needed to pass the input");
    if (formatSignature(alloc.type) !== "(i32)->i32") {
      throw new WasmError(
        "link",
        `alloc has type ${formatSignature(alloc.type)}, expected (i32)->i32`,
      );
    }
    const ptr = this.invoke(alloc, [size])[0] as number;
    const inside = this.withMemory(() => ptr !== 0 && ptr > 0 && ptr + size <= this.rt.mem.size);
    if (!inside) {
      throw new EntryFailure("abi", `alloc(${size}) returned ${ptr}, not a block inside guest memory`);
    }
    return ptr;
  }

  /** Copies bytes into guest memory (EFAULT outside it). */
  write(ptr: number, bytes: Uint8Array): void {
    this.withMemory(() => this.rt.mem.write(ptr, bytes));
  }

  /** A copy of the NUL-terminated bytes at `ptr`, at most `max` bytes (see GuestMemory.cString). */
  readCString(ptr: number, max = MAX_OUTPUT_BYTES): Uint8Array {
    return this.withMemory(() => this.rt.mem.cString(ptr, max));
  }

  /** `dealloc(ptr, size)` if the guest exports it (optional in the skill ABI); whatever it returns is ignored. */
  dealloc(ptr: number, size: number): void {
    const dealloc = this.exportedFunc("dealloc");
    if (!dealloc) return;
    const sig = asSignature(dealloc.type);
    if (sig?.params.join() !== "i32,i32") {
      throw new WasmError(
        "link",
        `dealloc has type ${formatSignature(dealloc.type)}, expected (i32,i32)->()`,
      );
    }
    this.invoke(dealloc, [ptr, size]);
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
  if (e instanceof EntryFailure) return { exitCode: 1, failure: { kind: e.kind, message: e.message } };
  if (!(e instanceof WasmError)) return { exitCode: 1, failure: { kind: "internal", message: String(e) } };
  if (e.kind === "exit") return { exitCode: e.exitCode ?? 1 };
  const memoryLimit = /memory minimum size|exceeds memory limits|resource limit exceeded/i.test(e.message);
  const kinds: Record<string, FailureKind> = { trap: "trap", link: "link", invalid_module: "invalid_module" };
  const kind = memoryLimit ? "memory" : kinds[e.kind] ?? "internal";
  return { exitCode: 1, failure: { kind, message: e.message.split("\n")[0] } };
}

/**
 * Calls a call entry's export: `_initialize` first if exported, the input (if any) into
 * guest memory through `alloc`, the export with typed arguments, the output read back, the
 * input freed. Everything is checked before the guest runs any of it.
 */
function runCall(guest: GuestInstance, entry: CallEntry): GuestResult {
  const func = guest.exportedFunc(entry.export);
  if (!func) throw new WasmError("link", `guest has no function export ${entry.export}`);
  const input = entry.input;
  const inputSize = input ? input.length + 1 : 0;
  // The pointer's value is not known yet; 0 stands in for it while the types are checked.
  const args = input ? [0, ...(entry.args ?? [])] : [...(entry.args ?? [])];
  const sig = guest.checkCall(func, args);
  const output = entry.output ?? "values";
  if (output === "cstring" && formatSignature({ params: [], results: sig.results }) !== "()->i32") {
    throw new WasmError(
      "link",
      `${entry.export} has type ${formatSignature(sig)}; a C string output needs one i32 result`,
    );
  }
  if (input && inputSize > 2 ** 31 - 1) {
    throw new EntryFailure("abi", `input of ${input.length} bytes is too large`);
  }

  const init = guest.exportedFunc("_initialize");
  if (init) {
    if (init.type.params.length || init.type.results.length) {
      throw new WasmError("link", "_initialize must take no parameters and return nothing");
    }
    guest.invoke(init, []);
  }
  let inputPtr = 0;
  if (input) {
    inputPtr = guest.alloc(inputSize);
    const bytes = new Uint8Array(inputSize); // zero-filled: the last byte is the NUL
    bytes.set(input);
    guest.write(inputPtr, bytes);
    args[0] = inputPtr;
  }
  const results = guest.invoke(func, args);
  let bytes: Uint8Array | undefined;
  if (output === "cstring") {
    try {
      bytes = guest.readCString(results[0] as number);
    } catch (e) {
      if (!(e instanceof HostcallError)) throw e;
      throw new EntryFailure("abi", `output of ${entry.export}: ${e.message} (${e.errno})`);
    }
  }
  if (input) guest.dealloc(inputPtr, inputSize);
  return output === "cstring" ? { exitCode: 0, output: bytes } : { exitCode: 0, values: results };
}

/** Test and bench hooks of `runGuest`; production never passes any. */
export interface GuestHooks {
  /** Runs once the guest's runtime exists, before the module loads (pre-populate fds, add ops). */
  setup?: (rt: GuestRuntime) => void;
  /** Hostcalls beside the families' (imports of other types and modules). */
  extraHostcalls?: (rt: GuestRuntime) => Hostcall[];
}

/** Runs the guest to completion; never throws for guest faults. The frames it sent that still
 * wait for room in the ring go with the result. */
export async function runGuest(init: GuestInit, hooks: GuestHooks = {}): Promise<GuestResult> {
  const engine = Engine.fromAddress(openWasmtime(init.libPath), init.engineAddress);
  const link = Link.attach(init.link);
  const entry = init.entry ?? { kind: "command" };
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
      extraHostcalls: hooks.extraHostcalls,
      context: init.context,
      deadline: init.deadline,
      pipes: init.pipes,
    });
    const start = entry.kind === "command" ? guest.command("_start") : undefined;
    // The deadline is armed; a stop requested before this point would otherwise be missed.
    if (link.toGuest.terminateRequested) {
      result = { exitCode: 137, failure: { kind: "terminated", message: "terminated before start" } };
    } else if (entry.kind === "call") result = runCall(guest, entry);
    else {
      const outcome = guest.call(start!, new Uint8Array(Sizes.VAL_RAW));
      result = outcome.error ? classifyTrap(outcome.error, guest.rt, init) : { exitCode: 0 };
    }
  } catch (e) {
    result = e instanceof GuestCallFailed ? classifyTrap(e.error, guest!.rt, init) : failureOf(e);
  } finally {
    guest?.dispose();
  }
  // What the guest sent that still waits for room in the ring goes with the result: nothing is lost.
  const outbound = guest?.rt.takeOutbound() ?? [];
  return outbound.length ? { ...result, outbound } : result;
}
