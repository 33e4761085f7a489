/**
 * Owning wrappers around the Wasmtime C API: engine, module (with an on-disk cache of
 * compiled code), store with limits and epoch deadline, linker with WASI and host
 * functions, instance exports, and trap/error decoding. Every native object has exactly
 * one owner and one `delete()`.
 */
import {
  ExternKind,
  Sizes,
  TRAP_CODE_INTERRUPT,
  ValKind,
  WASMTIME_FUNCREF,
  type WasmtimeLib,
} from "../ffi/wasmtime.ts";
import type { Signature, WasmType } from "./hostcall.ts";
import { utf8Length } from "../protocol/bytes.ts";

type Ptr = Deno.PointerValue;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** NUL-terminated UTF-8 for C string parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(utf8Length(s) + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

function pointerAddress(p: Ptr): bigint {
  return p === null ? 0n : BigInt(Deno.UnsafePointer.value(p));
}

/** Reads a {size_t size; u8* data} vector as text. */
function readVecText(vec: Uint8Array): string {
  const view = new DataView(vec.buffer, vec.byteOffset, Sizes.VEC);
  const size = Number(view.getBigUint64(0, true));
  const data = Deno.UnsafePointer.create(view.getBigUint64(8, true));
  if (size === 0 || data === null) return "";
  return decoder.decode(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, size)));
}

function readNameAt(p: Ptr): string {
  if (p === null) return "";
  const view = new Deno.UnsafePointerView(p);
  const size = Number(view.getBigUint64(0));
  const data = view.getPointer(8);
  if (size === 0 || data === null) return "";
  return decoder.decode(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, size)));
}

/**
 * Wasmtime's messages can span many lines: a context line (or "error while executing at wasm
 * backtrace:" and the frames), then the causes under "Caused by:". Keeps one line: the context
 * (unless it is only the backtrace header) and the causes, joined by ": ".
 */
export function oneLine(text: string): string {
  const [head, causes = ""] = text.split(/\n\s*Caused by:\s*\n/, 2);
  const first = head.split("\n")[0].trim();
  const parts = causes.split("\n").map((l) => l.trim().replace(/^\d+: /, "")).filter((l) =>
    l && !l.startsWith("note:")
  );
  if (!/^error while executing at wasm backtrace:?$/.test(first) || parts.length === 0) parts.unshift(first);
  return parts.map((p) => p.replace(/^wasm trap: /, "")).join(": ");
}

/** A failure reported by Wasmtime, with a category the CLI can explain. */
export class WasmError extends Error {
  constructor(
    readonly kind: "invalid_module" | "link" | "trap" | "exit" | "internal",
    message: string,
    readonly exitCode?: number,
    readonly trapCode?: number,
  ) {
    super(message);
  }
}

/** Consumes a wasmtime_error_t*, returning its message (and exit status if it is a WASI exit). */
export function takeError(lib: WasmtimeLib, err: Ptr): { message: string; exitCode?: number } {
  const vec = new Uint8Array(Sizes.VEC);
  lib.wasmtime_error_message(err, vec);
  const message = oneLine(readVecText(vec));
  lib.wasm_byte_vec_delete(vec);
  const status = new Int32Array(1);
  const isExit = lib.wasmtime_error_exit_status(err, new Uint8Array(status.buffer));
  lib.wasmtime_error_delete(err);
  return isExit ? { message, exitCode: status[0] } : { message };
}

const SIZE_MAX = 0xffff_ffff_ffff_ffffn;

/** Consumes a wasm_trap_t*, returning its message, code and the innermost frames. */
export function takeTrap(lib: WasmtimeLib, trap: Ptr): { message: string; code?: number; frames: string[] } {
  const vec = new Uint8Array(Sizes.VEC);
  lib.wasm_trap_message(trap, vec);
  let message = readVecText(vec).replace(/\0$/, "");
  lib.wasm_byte_vec_delete(vec);
  const code = new Uint8Array(1);
  const hasCode = lib.wasmtime_trap_code(trap, code);
  const frames: string[] = [];
  const fvec = new Uint8Array(Sizes.VEC);
  lib.wasm_trap_trace(trap, fvec);
  const fview = new DataView(fvec.buffer);
  const count = Number(fview.getBigUint64(0, true));
  const data = Deno.UnsafePointer.create(fview.getBigUint64(8, true));
  if (data !== null) {
    const list = new Deno.UnsafePointerView(data);
    for (let i = 0; i < Math.min(count, 8); i++) {
      const frame = list.getPointer(i * 8);
      const name = readNameAt(lib.wasmtime_frame_func_name(frame));
      const index = lib.wasm_frame_func_index(frame);
      // usize: Number() would round large values; SIZE_MAX is the C API's "offset unknown".
      const offset = BigInt(lib.wasm_frame_module_offset(frame));
      const at = offset === SIZE_MAX ? "" : ` @ 0x${offset.toString(16)}`;
      frames.push(`${name || `func[${index}]`}${at}`);
    }
  }
  lib.wasm_frame_vec_delete(fvec);
  lib.wasm_trap_delete(trap);
  // Wasmtime appends a multi-line backtrace to the message; the frames carry it instead.
  message = oneLine(message);
  return { message, code: hasCode ? code[0] : undefined, frames };
}

function check(lib: WasmtimeLib, err: Ptr, kind: WasmError["kind"]): void {
  if (err === null) return;
  const { message, exitCode } = takeError(lib, err);
  throw new WasmError(exitCode === undefined ? kind : "exit", message, exitCode);
}

export interface EngineOptions {
  /** Maximum wasm stack in bytes (Wasmtime's default is 512 KiB). */
  maxWasmStack?: number;
}

/** A Wasmtime engine with epoch interruption enabled. Thread-safe; shared by all guests. */
export class Engine {
  private constructor(readonly lib: WasmtimeLib, readonly ptr: Ptr) {}

  static create(lib: WasmtimeLib, options: EngineOptions = {}): Engine {
    const config = lib.wasm_config_new();
    lib.wasmtime_config_epoch_interruption_set(config, true);
    // Linear memories never move: a 32-bit memory has a 4 GiB reservation to grow into anyway,
    // and with a fixed base a hostcall reaches guest memory without asking Wasmtime where it
    // is (runtime/memory.ts growsInPlace).
    lib.wasmtime_config_memory_may_move_set(config, false);
    if (options.maxWasmStack) lib.wasmtime_config_max_wasm_stack_set(config, BigInt(options.maxWasmStack));
    return new Engine(lib, lib.wasm_engine_new_with_config(config)); // takes ownership of config
  }

  /** Wraps an engine created on another thread by `create` (pointers are process-wide). */
  static fromAddress(lib: WasmtimeLib, address: bigint): Engine {
    return new Engine(lib, Deno.UnsafePointer.create(address));
  }

  get address(): bigint {
    return pointerAddress(this.ptr);
  }

  /** Makes every store whose deadline has passed run its deadline callback. */
  incrementEpoch(): void {
    this.lib.wasmtime_engine_increment_epoch(this.ptr);
  }

  delete(): void {
    this.lib.wasm_engine_delete(this.ptr);
  }
}

const VALTYPE_NAMES: Record<number, string> = {
  [ValKind.I32]: "i32",
  [ValKind.I64]: "i64",
  [ValKind.F32]: "f32",
  [ValKind.F64]: "f64",
  [ValKind.V128]: "v128",
  [ValKind.EXTERNREF]: "externref",
  [ValKind.FUNCREF]: "funcref",
};
const VALKINDS: Record<WasmType, number> = {
  i32: ValKind.I32,
  i64: ValKind.I64,
  f32: ValKind.F32,
  f64: ValKind.F64,
};

/**
 * A function type as a module declares it. Types a host function cannot take (v128,
 * references) keep their name, so they can be shown in an error and never match a Signature.
 */
export interface FuncType {
  params: string[];
  results: string[];
}

/** Narrows a declared function type to one the host can bind (only i32/i64/f32/f64). */
export function asSignature(type: FuncType): Signature | undefined {
  const plain = (t: string) => t in VALKINDS;
  return type.params.every(plain) && type.results.every(plain) ? type as Signature : undefined;
}

/** Reads a borrowed wasm_functype_t. */
function readFuncType(lib: WasmtimeLib, type: Ptr): FuncType {
  const names = (vec: Ptr) => {
    const view = new Deno.UnsafePointerView(vec!);
    const size = Number(view.getBigUint64(0));
    const data = view.getPointer(8);
    const out: string[] = [];
    for (let i = 0; i < size; i++) {
      const kind = lib.wasm_valtype_kind(new Deno.UnsafePointerView(data!).getPointer(i * 8));
      out.push(VALTYPE_NAMES[kind] ?? `valkind${kind}`);
    }
    return out;
  };
  return { params: names(lib.wasm_functype_params(type)), results: names(lib.wasm_functype_results(type)) };
}

/** A memory type's limits, in pages of `1 << pageSizeLog2` bytes. */
export interface MemoryLimits {
  min: bigint;
  max?: bigint;
  is64: boolean;
  shared: boolean;
  pageSizeLog2: number;
}

function readMemoryType(lib: WasmtimeLib, type: Ptr): MemoryLimits {
  const max = new BigUint64Array(1);
  const hasMax = lib.wasmtime_memorytype_maximum(type, new Uint8Array(max.buffer));
  return {
    min: lib.wasmtime_memorytype_minimum(type),
    max: hasMax ? max[0] : undefined,
    is64: lib.wasmtime_memorytype_is64(type),
    shared: lib.wasmtime_memorytype_isshared(type),
    pageSizeLog2: lib.wasmtime_memorytype_page_size_log2(type),
  };
}

export interface ImportDesc {
  module: string;
  name: string;
  kind: number;
  /** The declared type of a function import. */
  func?: FuncType;
  /** The declared limits of a memory import. */
  memory?: MemoryLimits;
}

/**
 * The hex SHA-256 of a module's bytes: its identity for the compiled-code cache and for a
 * skill manifest's checksum, so both agree on what "the same module" is.
 */
export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A compiled module. */
export class Module {
  private constructor(readonly lib: WasmtimeLib, readonly ptr: Ptr) {}

  static compile(engine: Engine, wasm: Uint8Array<ArrayBuffer>): Module {
    const out = new BigUint64Array(1);
    check(
      engine.lib,
      engine.lib.wasmtime_module_new(engine.ptr, wasm, BigInt(wasm.length), new Uint8Array(out.buffer)),
      "invalid_module",
    );
    return new Module(engine.lib, Deno.UnsafePointer.create(out[0]));
  }

  /**
   * Validates bytes as a module for this engine without compiling them; throws WasmError
   * ("invalid_module") with Wasmtime's reason.
   */
  static validate(engine: Engine, wasm: Uint8Array<ArrayBuffer>): void {
    check(
      engine.lib,
      engine.lib.wasmtime_module_validate(engine.ptr, wasm, BigInt(wasm.length)),
      "invalid_module",
    );
  }

  /** Loads code produced by `serialize()` with the same Wasmtime version and engine settings. */
  static deserialize(engine: Engine, bytes: Uint8Array<ArrayBuffer>): Module {
    const out = new BigUint64Array(1);
    check(
      engine.lib,
      engine.lib.wasmtime_module_deserialize(
        engine.ptr,
        bytes,
        BigInt(bytes.length),
        new Uint8Array(out.buffer),
      ),
      "invalid_module",
    );
    return new Module(engine.lib, Deno.UnsafePointer.create(out[0]));
  }

  serialize(): Uint8Array {
    const vec = new Uint8Array(Sizes.VEC);
    check(this.lib, this.lib.wasmtime_module_serialize(this.ptr, vec), "internal");
    const view = new DataView(vec.buffer);
    const size = Number(view.getBigUint64(0, true));
    const data = Deno.UnsafePointer.create(view.getBigUint64(8, true))!;
    const copy = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, size).slice(0));
    this.lib.wasm_byte_vec_delete(vec);
    return copy;
  }

  imports(): ImportDesc[] {
    const vec = new Uint8Array(Sizes.VEC);
    this.lib.wasmtime_module_imports(this.ptr, vec);
    const view = new DataView(vec.buffer);
    const count = Number(view.getBigUint64(0, true));
    const data = Deno.UnsafePointer.create(view.getBigUint64(8, true));
    const result: ImportDesc[] = [];
    if (data !== null) {
      const list = new Deno.UnsafePointerView(data);
      for (let i = 0; i < count; i++) {
        const imp = list.getPointer(i * 8);
        const type = this.lib.wasm_importtype_type(imp);
        const desc: ImportDesc = {
          module: readNameAt(this.lib.wasm_importtype_module(imp)),
          name: readNameAt(this.lib.wasm_importtype_name(imp)),
          kind: this.lib.wasm_externtype_kind(type),
        };
        // Both types are borrowed from the import vector: read them before it is freed.
        if (desc.kind === ExternKind.FUNC) {
          desc.func = readFuncType(this.lib, this.lib.wasm_externtype_as_functype_const(type));
        } else if (desc.kind === ExternKind.MEMORY) {
          desc.memory = readMemoryType(this.lib, this.lib.wasm_externtype_as_memorytype_const(type));
        }
        result.push(desc);
      }
    }
    this.lib.wasm_importtype_vec_delete(vec);
    return result;
  }

  delete(): void {
    this.lib.wasmtime_module_delete(this.ptr);
  }
}

export interface WasiOptions {
  args: string[];
  env: Record<string, string>;
  /** Inherit the host's stdout/stderr (default) or write them to files. */
  stdoutFile?: string;
  stderrFile?: string;
}

/** Builds a char*[] from strings; keeps the backing buffers alive with the array. */
function cStringArray(items: string[]): { array: Uint8Array; keep: Uint8Array[] } {
  const keep = items.map(cString);
  const ptrs = new BigUint64Array(Math.max(1, items.length));
  keep.forEach((b, i) => ptrs[i] = pointerAddress(Deno.UnsafePointer.of(b)));
  return { array: new Uint8Array(ptrs.buffer), keep };
}

const DEADLINE_CALLBACK = {
  parameters: ["pointer", "pointer", "pointer", "pointer"],
  result: "pointer",
} as const;

/** A store: one guest instance's state, with a memory limit and an epoch deadline. */
export class Store {
  readonly ptr: Ptr;
  readonly context: Ptr;
  private deadlineCallback?: Deno.UnsafeCallback<typeof DEADLINE_CALLBACK>;

  constructor(readonly engine: Engine, limits: { memoryBytes: number }) {
    const lib = engine.lib;
    this.ptr = lib.wasmtime_store_new(engine.ptr, null, null);
    this.context = lib.wasmtime_store_context(this.ptr);
    lib.wasmtime_store_limiter(this.ptr, BigInt(limits.memoryBytes), -1n, -1n, -1n, -1n);
  }

  /**
   * Arms the epoch deadline: when the engine's epoch is incremented, `shouldStop` decides
   * whether this store traps (returns a message) or keeps running (returns null).
   */
  onEpoch(shouldStop: () => string | null): void {
    const lib = this.engine.lib;
    lib.wasmtime_context_set_epoch_deadline(this.context, 1n);
    this.deadlineCallback = new Deno.UnsafeCallback(DEADLINE_CALLBACK, (_ctx, _data, deltaPtr, kindPtr) => {
      const reason = shouldStop();
      if (reason !== null) return lib.wasmtime_error_new(cString(reason));
      new DataView(Deno.UnsafePointerView.getArrayBuffer(deltaPtr!, 8)).setBigUint64(0, 1n, true);
      new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(kindPtr!, 1))[0] = 0; // continue
      return null;
    });
    lib.wasmtime_store_epoch_deadline_callback(this.ptr, this.deadlineCallback.pointer, null, null);
  }

  setWasi(options: WasiOptions): void {
    const lib = this.engine.lib;
    const config = lib.wasi_config_new();
    const argv = cStringArray(options.args);
    lib.wasi_config_set_argv(config, BigInt(options.args.length), argv.array);
    const entries = Object.entries(options.env);
    const names = cStringArray(entries.map(([k]) => k));
    const values = cStringArray(entries.map(([, v]) => v));
    lib.wasi_config_set_env(config, BigInt(entries.length), names.array, values.array);
    if (options.stdoutFile) {
      if (!lib.wasi_config_set_stdout_file(config, cString(options.stdoutFile))) {
        lib.wasi_config_delete(config);
        throw new WasmError("internal", `cannot open ${options.stdoutFile} for guest stdout`);
      }
    } else lib.wasi_config_inherit_stdout(config);
    if (options.stderrFile) {
      if (!lib.wasi_config_set_stderr_file(config, cString(options.stderrFile))) {
        lib.wasi_config_delete(config);
        throw new WasmError("internal", `cannot open ${options.stderrFile} for guest stderr`);
      }
    } else lib.wasi_config_inherit_stderr(config);
    check(lib, lib.wasmtime_context_set_wasi(this.context, config), "internal"); // takes ownership
  }

  /**
   * Creates a memory owned by this store (for a guest that imports its memory). Returns the
   * wasmtime_memory_t handle; the store's limiter applies to it like to a module's own memory.
   */
  newMemory(limits: MemoryLimits): Uint8Array {
    const lib = this.engine.lib;
    const typeOut = new BigUint64Array(1);
    check(
      lib,
      lib.wasmtime_memorytype_new(
        limits.min,
        limits.max !== undefined,
        limits.max ?? 0n,
        limits.is64,
        limits.shared,
        limits.pageSizeLog2,
        new Uint8Array(typeOut.buffer),
      ),
      "link",
    );
    const type = Deno.UnsafePointer.create(typeOut[0]);
    const handle = new Uint8Array(Sizes.HANDLE);
    try {
      check(lib, lib.wasmtime_memory_new(this.context, type, handle), "link");
    } finally {
      lib.wasm_memorytype_delete(type);
    }
    return handle;
  }

  delete(): void {
    this.engine.lib.wasmtime_store_delete(this.ptr);
    this.deadlineCallback?.close();
  }
}

/** A host function: reads its arguments from and writes its result into `raw` (wasmtime_val_raw_t[]). */
export type HostFunction = (caller: Ptr, raw: DataView) => Ptr;

/**
 * How a TypeScript host function is declared to Deno: a wasmtime_func_unchecked_callback_t
 * `(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args_and_results, size_t n)`
 * with its last parameter left out. Every argument travels in a register on the ABIs
 * spearhost runs on (x86-64 System V, AArch64), so a callee that declares fewer parameters
 * just ignores the rest — and Deno skips converting `n` (the count is known from the type).
 * The slot address is a `usize` (a bigint compared by value) rather than a pointer object,
 * whose address would take an extra call to read. This is the cheapest way into V8 that
 * serves the signature; bench/hostcall_bench.ts uses the same declaration as its floor.
 */
export const HOST_CALLBACK = {
  parameters: ["pointer", "pointer", "usize"],
  result: "pointer",
} as const;

function valtypeVec(lib: WasmtimeLib, types: readonly WasmType[]): Uint8Array {
  const ptrs = new BigUint64Array(Math.max(1, types.length));
  types.forEach((t, i) => ptrs[i] = pointerAddress(lib.wasm_valtype_new(VALKINDS[t])));
  const vec = new Uint8Array(Sizes.VEC);
  lib.wasm_valtype_vec_new(vec, BigInt(types.length), new Uint8Array(ptrs.buffer));
  return vec;
}

/** A linker holding WASI and the host functions; instantiates modules into stores. */
export class Linker {
  readonly ptr: Ptr;
  private callbacks: Deno.UnsafeCallback<typeof HOST_CALLBACK>[] = [];

  constructor(readonly engine: Engine) {
    this.ptr = engine.lib.wasmtime_linker_new(engine.ptr);
  }

  /** Lets a later definition replace an earlier one of the same name (WASI overrides). */
  allowShadowing(allow: boolean): void {
    this.engine.lib.wasmtime_linker_allow_shadowing(this.ptr, allow);
  }

  defineWasi(): void {
    check(this.engine.lib, this.engine.lib.wasmtime_linker_define_wasi(this.ptr), "internal");
  }

  /**
   * Defines a host function implemented in TypeScript. The raw-slot view is cached per
   * address: Wasmtime passes the same slots for repeated calls from one call site, and
   * building a view is the largest fixed cost of a hostcall.
   */
  define(
    module: string,
    name: string,
    params: readonly WasmType[],
    results: readonly WasmType[],
    fn: HostFunction,
  ): void {
    const bytes = Math.max(params.length, results.length, 1) * Sizes.VAL_RAW;
    let lastAddress = -1n;
    let lastView = new DataView(new ArrayBuffer(0));
    const callback = new Deno.UnsafeCallback(HOST_CALLBACK, (_env, caller, address) => {
      if (address !== lastAddress) {
        lastView = new DataView(
          Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(address)!, bytes),
        );
        lastAddress = address;
      }
      return fn(caller, lastView);
    });
    this.callbacks.push(callback);
    this.defineRaw(module, name, params, results, callback.pointer);
  }

  /** Defines a host function implemented natively (a wasmtime_func_unchecked_callback_t). */
  defineRaw(
    module: string,
    name: string,
    params: readonly WasmType[],
    results: readonly WasmType[],
    fn: Ptr,
  ): void {
    const lib = this.engine.lib;
    const type = lib.wasm_functype_new(valtypeVec(lib, params), valtypeVec(lib, results)); // takes the vecs
    const m = encoder.encode(module);
    const n = encoder.encode(name);
    const err = lib.wasmtime_linker_define_func_unchecked(
      this.ptr,
      m,
      BigInt(m.length),
      n,
      BigInt(n.length),
      type,
      fn,
      null,
      null,
    );
    lib.wasm_functype_delete(type);
    check(lib, err, "internal");
  }

  /** Defines a memory of `store` (Store.newMemory) under `module.name`. */
  defineMemory(store: Store, module: string, name: string, memory: Uint8Array): void {
    const lib = this.engine.lib;
    const ext = new Uint8Array(Sizes.EXTERN);
    ext[0] = ExternKind.MEMORY;
    ext.set(memory, Sizes.UNION_OFFSET);
    const m = encoder.encode(module);
    const n = encoder.encode(name);
    check(
      lib,
      lib.wasmtime_linker_define(this.ptr, store.context, m, BigInt(m.length), n, BigInt(n.length), ext),
      "link",
    );
  }

  instantiate(store: Store, module: Module): Instance {
    const lib = this.engine.lib;
    const instance = new Uint8Array(Sizes.INSTANCE);
    const trapOut = new BigUint64Array(1);
    const err = lib.wasmtime_linker_instantiate(
      this.ptr,
      store.context,
      module.ptr,
      instance,
      new Uint8Array(trapOut.buffer),
    );
    if (err !== null) {
      const { message, exitCode } = takeError(lib, err);
      throw new WasmError(exitCode === undefined ? "link" : "exit", message, exitCode);
    }
    if (trapOut[0] !== 0n) {
      const trap = takeTrap(lib, Deno.UnsafePointer.create(trapOut[0]));
      throw new WasmError("trap", trap.message, undefined, trap.code);
    }
    return new Instance(lib, store, instance);
  }

  delete(): void {
    this.engine.lib.wasmtime_linker_delete(this.ptr);
    for (const cb of this.callbacks) cb.close();
    this.callbacks = [];
  }
}

/** A 16-byte wasmtime_{func,memory,table}_t handle plus its kind. */
export interface ExternHandle {
  kind: number;
  handle: Uint8Array;
}

export interface CallOutcome {
  /** undefined when the call returned normally */
  error?: WasmError;
}

/** Exports of an instantiated module. Handles stay valid as long as the store lives. */
export class Instance {
  constructor(readonly lib: WasmtimeLib, readonly store: Store, readonly handle: Uint8Array) {}

  export(name: string): ExternHandle | undefined {
    const n = encoder.encode(name);
    const ext = new Uint8Array(Sizes.EXTERN);
    if (!this.lib.wasmtime_instance_export_get(this.store.context, this.handle, n, BigInt(n.length), ext)) {
      return undefined;
    }
    return { kind: ext[0], handle: ext.slice(Sizes.UNION_OFFSET, Sizes.UNION_OFFSET + Sizes.HANDLE) };
  }

  /** The first exported table among the given names, else any exported table. */
  table(names: string[]): Uint8Array | undefined {
    for (const name of names) {
      const e = this.export(name);
      if (e?.kind === ExternKind.TABLE) return e.handle;
    }
    return undefined;
  }
}

/** The type of a function (an export, a table entry). */
export function funcSignature(lib: WasmtimeLib, context: Ptr, func: Uint8Array): FuncType {
  const type = lib.wasmtime_func_type(context, func);
  const sig = readFuncType(lib, type);
  lib.wasm_functype_delete(type);
  return sig;
}

/**
 * Calls a function with raw slots (`raw` holds args on entry, results on return; 16 bytes each).
 * The caller must have checked the signature (funcSignature). Traps and WASI exits come back
 * as a WasmError; the call itself never throws for guest faults.
 */
export function callRaw(lib: WasmtimeLib, context: Ptr, func: Uint8Array, raw: Uint8Array): CallOutcome {
  const trapOut = new BigUint64Array(1);
  const err = lib.wasmtime_func_call_unchecked(
    context,
    func,
    raw,
    BigInt(raw.length / Sizes.VAL_RAW),
    new Uint8Array(trapOut.buffer),
  );
  if (err !== null) {
    const { message, exitCode } = takeError(lib, err);
    return { error: new WasmError(exitCode === undefined ? "trap" : "exit", message, exitCode) };
  }
  if (trapOut[0] !== 0n) {
    const trap = takeTrap(lib, Deno.UnsafePointer.create(trapOut[0]));
    const where = trap.frames.length ? ` (at ${trap.frames[0]})` : "";
    return { error: new WasmError("trap", trap.message + where, undefined, trap.code) };
  }
  return {};
}

/** Looks up a funcref in a table; undefined for out-of-range or null entries. */
export function tableFunc(
  lib: WasmtimeLib,
  context: Ptr,
  table: Uint8Array,
  index: number,
): Uint8Array | undefined {
  if (index < 0 || BigInt(index) >= lib.wasmtime_table_size(context, table)) return undefined;
  const val = new Uint8Array(Sizes.VAL);
  if (!lib.wasmtime_table_get(context, table, BigInt(index), val)) return undefined;
  if (val[0] !== WASMTIME_FUNCREF) return undefined;
  const func = val.slice(Sizes.UNION_OFFSET, Sizes.UNION_OFFSET + Sizes.HANDLE);
  const storeId = new DataView(func.buffer).getBigUint64(0, true);
  return storeId === 0n ? undefined : func;
}

/** Builds a wasm_trap_t* for a host function to return. */
export function newTrap(lib: WasmtimeLib, message: string): Ptr {
  const bytes = encoder.encode(message);
  return lib.wasmtime_trap_new(bytes, BigInt(bytes.length));
}

export { ExternKind, TRAP_CODE_INTERRUPT };
