/**
 * Thin typed bindings to the Wasmtime C API (the subset spearhost uses), loaded with
 * `Deno.dlopen`. Struct layouts are those of Wasmtime 50 on x86_64 / aarch64 Linux.
 * Nothing here manages lifetimes; runtime/engine.ts does.
 */
import { quietRustBacktraces } from "./rust_env.ts";

const P = "pointer" as const;
const B = "buffer" as const;
/**
 * For the calls that run guest code, which calls hostcalls, which are JavaScript. Without it
 * Deno may make the call a V8 fast API call, and then a hostcall that invalidates the caller's
 * optimized code (a lazy deoptimization) aborts the whole process: "Lazy deopt after a fast
 * API call with return value is unsupported", seen once in the fuzz test.
 */
const REENTERS = { callback: true } as const;

export const wasmtimeSymbols = {
  wasm_config_new: { parameters: [], result: P },
  wasmtime_config_epoch_interruption_set: { parameters: [P, "bool"], result: "void" },
  wasmtime_config_max_wasm_stack_set: { parameters: [P, "usize"], result: "void" },
  wasmtime_config_cranelift_opt_level_set: { parameters: [P, "u8"], result: "void" },
  wasmtime_config_memory_may_move_set: { parameters: [P, "bool"], result: "void" },
  wasm_engine_new_with_config: { parameters: [P], result: P },
  wasm_engine_delete: { parameters: [P], result: "void" },
  wasmtime_engine_increment_epoch: { parameters: [P], result: "void" },

  wasmtime_module_new: { parameters: [P, B, "usize", B], result: P },
  wasmtime_module_validate: { parameters: [P, B, "usize"], result: P },
  wasmtime_module_delete: { parameters: [P], result: "void" },
  wasmtime_module_serialize: { parameters: [P, B], result: P },
  wasmtime_module_deserialize: { parameters: [P, B, "usize", B], result: P },
  wasmtime_module_imports: { parameters: [P, B], result: "void" },
  wasm_importtype_vec_delete: { parameters: [B], result: "void" },
  wasm_importtype_module: { parameters: [P], result: P },
  wasm_importtype_name: { parameters: [P], result: P },
  wasm_importtype_type: { parameters: [P], result: P },
  wasm_externtype_kind: { parameters: [P], result: "u8" },
  wasm_externtype_as_functype_const: { parameters: [P], result: P },
  wasm_externtype_as_memorytype_const: { parameters: [P], result: P },

  wasmtime_error_new: { parameters: [B], result: P },
  wasmtime_error_message: { parameters: [P, B], result: "void" },
  wasmtime_error_delete: { parameters: [P], result: "void" },
  wasmtime_error_exit_status: { parameters: [P, B], result: "bool" },
  wasmtime_error_wasm_trace: { parameters: [P, B], result: "void" },
  wasm_byte_vec_delete: { parameters: [B], result: "void" },

  wasmtime_store_new: { parameters: [P, P, P], result: P },
  wasmtime_store_context: { parameters: [P], result: P },
  wasmtime_store_delete: { parameters: [P], result: "void" },
  wasmtime_store_limiter: { parameters: [P, "i64", "i64", "i64", "i64", "i64"], result: "void" },
  wasmtime_context_set_epoch_deadline: { parameters: [P, "u64"], result: "void" },
  wasmtime_store_epoch_deadline_callback: { parameters: [P, "function", P, P], result: "void" },
  wasmtime_context_set_wasi: { parameters: [P, P], result: P },

  wasi_config_new: { parameters: [], result: P },
  wasi_config_delete: { parameters: [P], result: "void" },
  wasi_config_inherit_stdout: { parameters: [P], result: "void" },
  wasi_config_inherit_stderr: { parameters: [P], result: "void" },
  wasi_config_set_stdout_file: { parameters: [P, B], result: "bool" },
  wasi_config_set_stderr_file: { parameters: [P, B], result: "bool" },
  wasi_config_set_argv: { parameters: [P, "usize", B], result: "bool" },
  wasi_config_set_env: { parameters: [P, "usize", B, B], result: "bool" },

  wasmtime_linker_new: { parameters: [P], result: P },
  wasmtime_linker_delete: { parameters: [P], result: "void" },
  wasmtime_linker_define_wasi: { parameters: [P], result: P },
  wasmtime_linker_allow_shadowing: { parameters: [P, "bool"], result: "void" },
  wasmtime_linker_define_func_unchecked: {
    parameters: [P, B, "usize", B, "usize", P, "function", P, P],
    result: P,
  },
  wasmtime_linker_define: { parameters: [P, P, B, "usize", B, "usize", B], result: P },
  wasmtime_linker_instantiate: { parameters: [P, P, P, B, B], result: P, ...REENTERS }, // a start function

  wasmtime_instance_export_get: { parameters: [P, B, B, "usize", B], result: "bool" },
  wasmtime_caller_context: { parameters: [P], result: P },
  wasmtime_memory_data: { parameters: [P, B], result: P },
  wasmtime_memory_data_size: { parameters: [P, B], result: "usize" },
  wasmtime_memory_new: { parameters: [P, P, B], result: P },
  wasmtime_func_call_unchecked: { parameters: [P, B, B, "usize", B], result: P, ...REENTERS },
  wasmtime_func_type: { parameters: [P, B], result: P },
  wasmtime_table_get: { parameters: [P, B, "u64", B], result: "bool" },
  wasmtime_table_size: { parameters: [P, B], result: "u64" },

  wasm_functype_new: { parameters: [B, B], result: P },
  wasm_functype_delete: { parameters: [P], result: "void" },
  wasm_functype_params: { parameters: [P], result: P },
  wasm_functype_results: { parameters: [P], result: P },
  wasm_valtype_new: { parameters: ["u8"], result: P },
  wasm_valtype_kind: { parameters: [P], result: "u8" },
  wasm_valtype_vec_new: { parameters: [B, "usize", B], result: "void" },

  wasmtime_memorytype_new: { parameters: ["u64", "bool", "u64", "bool", "bool", "u8", B], result: P },
  wasmtime_memorytype_minimum: { parameters: [P], result: "u64" },
  wasmtime_memorytype_maximum: { parameters: [P, B], result: "bool" },
  wasmtime_memorytype_is64: { parameters: [P], result: "bool" },
  wasmtime_memorytype_isshared: { parameters: [P], result: "bool" },
  wasmtime_memorytype_page_size_log2: { parameters: [P], result: "u8" },
  wasm_memorytype_delete: { parameters: [P], result: "void" },

  wasmtime_trap_new: { parameters: [B, "usize"], result: P },
  wasm_trap_message: { parameters: [P, B], result: "void" },
  wasm_trap_delete: { parameters: [P], result: "void" },
  wasm_trap_trace: { parameters: [P, B], result: "void" },
  wasmtime_trap_code: { parameters: [P, B], result: "bool" },
  wasm_frame_vec_delete: { parameters: [B], result: "void" },
  wasm_frame_func_index: { parameters: [P], result: "u32" },
  wasm_frame_module_offset: { parameters: [P], result: "usize" },
  wasmtime_frame_func_name: { parameters: [P], result: P },
} as const;

export type WasmtimeLib = Deno.DynamicLibrary<typeof wasmtimeSymbols>["symbols"];

/** The version of the pinned library that scripts/setup.sh installs. */
export const WASMTIME_VERSION = "50.0.1";

/** wasm_valkind_t */
export const ValKind = { I32: 0, I64: 1, F32: 2, F64: 3, V128: 4, EXTERNREF: 128, FUNCREF: 129 } as const;
/** wasmtime_valkind_t value of a funcref in wasmtime_val_t */
export const WASMTIME_FUNCREF = 5;
/** wasmtime_extern_kind_t */
export const ExternKind = { FUNC: 0, GLOBAL: 1, TABLE: 2, MEMORY: 3, SHAREDMEMORY: 4 } as const;
/** wasmtime_trap_code_t of an epoch interruption. */
export const TRAP_CODE_INTERRUPT = 10;
export const TRAP_CODE_STACK_OVERFLOW = 0;

/** Byte sizes of the C structs passed by pointer. */
export const Sizes = {
  /** wasm_byte_vec_t, wasm_importtype_vec_t, wasm_frame_vec_t, wasm_valtype_vec_t: {size_t size; T* data} */
  VEC: 16,
  /** wasmtime_extern_t: {u8 kind; union (24 bytes, 8-aligned)} */
  EXTERN: 32,
  /** offset of the union inside wasmtime_extern_t / wasmtime_val_t */
  UNION_OFFSET: 8,
  /** wasmtime_memory_t / wasmtime_table_t / wasmtime_func_t inside the union */
  HANDLE: 16,
  /** wasmtime_instance_t */
  INSTANCE: 16,
  /** wasmtime_val_t */
  VAL: 32,
  /** wasmtime_val_raw_t */
  VAL_RAW: 16,
} as const;

let loaded: WasmtimeLib | undefined;
let loadedPath = "";

/**
 * Opens libwasmtime once per thread (each Worker has its own JS realm but the same
 * process-wide library mapping, so pointers are valid across threads). Symbols are bound on
 * first use: Deno builds a call stub per bound symbol (about 0.2-0.3 ms each here), and a
 * thread uses few of the ~80 — the main thread a handful to make the engine, the time-limit
 * thread one — so binding them all up front cost each thread 15-25 ms of start-up.
 */
export function openWasmtime(path: string): WasmtimeLib {
  if (loaded) {
    if (path !== loadedPath) throw new Error(`libwasmtime already loaded from ${loadedPath}`);
    return loaded;
  }
  quietRustBacktraces(); // a last resort: see ffi/rust_env.ts
  // Open it now with one symbol, so a wrong path fails here and not at some later call.
  Deno.dlopen(path, { wasm_config_new: wasmtimeSymbols.wasm_config_new });
  const lib = {} as Record<string, unknown>;
  for (const name of Object.keys(wasmtimeSymbols) as (keyof typeof wasmtimeSymbols)[]) {
    Object.defineProperty(lib, name, {
      configurable: true,
      enumerable: true,
      get() {
        const symbol = Deno.dlopen(path, { [name]: wasmtimeSymbols[name] }).symbols[name];
        Object.defineProperty(lib, name, { value: symbol, enumerable: true });
        return symbol;
      },
    });
  }
  loaded = lib as WasmtimeLib;
  loadedPath = path;
  return loaded;
}
