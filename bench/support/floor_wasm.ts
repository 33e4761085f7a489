/**
 * The least a Deno program needs to run wasm through Wasmtime's C API: its own dlopen of the
 * few symbols used, a default engine, and one hand-assembled module — no spearhost code. The
 * architecture floors of bench/startup.ts and bench/wake_latency.ts are built from it.
 *
 * The module imports `env.wait` and `env.signal` (both `() -> ()`) and exports
 * `run(n: i32)`, which calls wait then signal n times: for the wake floor, wait blocks the
 * thread and signal is the guest's first hostcall after its return into wasm; for the
 * start-up floor, run(1) with signal printing "hello".
 */

const P = "pointer" as const;
const B = "buffer" as const;
const symbols = {
  wasm_engine_new: { parameters: [], result: P },
  wasmtime_module_new: { parameters: [P, B, "usize", B], result: P },
  wasmtime_module_serialize: { parameters: [P, B], result: P },
  wasmtime_module_deserialize: { parameters: [P, B, "usize", B], result: P },
  wasmtime_store_new: { parameters: [P, P, P], result: P },
  wasmtime_store_context: { parameters: [P], result: P },
  wasmtime_linker_new: { parameters: [P], result: P },
  wasmtime_linker_define_func_unchecked: {
    parameters: [P, B, "usize", B, "usize", P, "function", P, P],
    result: P,
  },
  wasmtime_linker_instantiate: { parameters: [P, P, P, B, B], result: P },
  wasmtime_instance_export_get: { parameters: [P, B, B, "usize", B], result: "bool" },
  wasmtime_func_call_unchecked: { parameters: [P, B, B, "usize", B], result: P, callback: true }, // as ffi/wasmtime.ts
  wasm_functype_new: { parameters: [B, B], result: P },
  wasm_byte_vec_delete: { parameters: [B], result: "void" },
} as const;

/** wasmtime_func_unchecked_callback_t, its count parameter left out (as runtime/engine.ts explains). */
const CALLBACK = { parameters: ["pointer", "pointer", "usize"], result: "pointer" } as const;

const utf8 = (s: string) => new TextEncoder().encode(s);
const name = (s: string) => [s.length, ...utf8(s)];
const section = (id: number, body: number[]) => [id, body.length, ...body];

/** The module described above, in the binary format (every size here is < 128: one LEB128 byte). */
export function floorModuleBytes(): Uint8Array<ArrayBuffer> {
  const body = [
    0x00, // no locals
    0x02,
    0x40,
    0x03,
    0x40, // block, loop
    0x20,
    0x00,
    0x45,
    0x0d,
    0x01, // if n == 0: break out
    0x10,
    0x00,
    0x10,
    0x01, // call wait, call signal
    0x20,
    0x00,
    0x41,
    0x01,
    0x6b,
    0x21,
    0x00, // n -= 1
    0x0c,
    0x00,
    0x0b,
    0x0b,
    0x0b, // continue; end loop, block, function
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [2, 0x60, 0, 0, 0x60, 1, 0x7f, 0]), // types: () -> (), (i32) -> ()
    ...section(2, [2, ...name("env"), ...name("wait"), 0, 0, ...name("env"), ...name("signal"), 0, 0]),
    ...section(3, [1, 1]), // one function of type 1
    ...section(7, [1, ...name("run"), 0, 2]), // export "run" = function 2
    ...section(10, [1, body.length, ...body]),
  ]);
}

function ok(err: Deno.PointerValue, what: string): void {
  if (err !== null) throw new Error(`wasmtime: ${what} failed`);
}

function pointerOut(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]);
}

export class FloorWasm {
  private readonly lib: Deno.DynamicLibrary<typeof symbols>["symbols"];
  private readonly engine: Deno.PointerValue;
  /** The host functions' callbacks, kept alive as long as this object (Wasmtime holds their addresses). */
  private readonly callbacks: Deno.UnsafeCallback<typeof CALLBACK>[] = [];

  constructor(libPath: string) {
    this.lib = Deno.dlopen(libPath, symbols).symbols;
    this.engine = this.lib.wasm_engine_new();
  }

  /** Compiles the floor module and returns Wasmtime's serialized code (what a module cache stores). */
  serialize(): Uint8Array<ArrayBuffer> {
    const wasm = floorModuleBytes();
    const module = new BigUint64Array(1);
    ok(
      this.lib.wasmtime_module_new(this.engine, wasm, BigInt(wasm.length), new Uint8Array(module.buffer)),
      "compile",
    );
    const vec = new BigUint64Array(2); // wasm_byte_vec_t {size, data}
    ok(this.lib.wasmtime_module_serialize(pointerOut(module), new Uint8Array(vec.buffer)), "serialize");
    const data = Deno.UnsafePointer.create(vec[1])!;
    const code = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, Number(vec[0])).slice(0));
    this.lib.wasm_byte_vec_delete(new Uint8Array(vec.buffer));
    return code;
  }

  /**
   * Deserializes `code` (from serialize(), possibly in another process), instantiates it with
   * `wait` and `signal` as its imports, and returns a caller of its `run` export.
   */
  instantiate(code: Uint8Array<ArrayBuffer>, wait: () => void, signal: () => void): (n: number) => void {
    const lib = this.lib;
    const module = new BigUint64Array(1);
    ok(
      lib.wasmtime_module_deserialize(this.engine, code, BigInt(code.length), new Uint8Array(module.buffer)),
      "deserialize",
    );
    const store = lib.wasmtime_store_new(this.engine, null, null);
    const context = lib.wasmtime_store_context(store);
    const linker = lib.wasmtime_linker_new(this.engine);
    for (const [field, fn] of [["wait", wait], ["signal", signal]] as const) {
      const callback = new Deno.UnsafeCallback(CALLBACK, () => (fn(), null));
      this.callbacks.push(callback);
      const type = lib.wasm_functype_new(new Uint8Array(16), new Uint8Array(16)); // two empty vecs
      const [m, n] = [utf8("env"), utf8(field)];
      ok(
        lib.wasmtime_linker_define_func_unchecked(
          linker,
          m,
          3n,
          n,
          BigInt(n.length),
          type,
          callback.pointer,
          null,
          null,
        ),
        "define",
      );
    }
    const instance = new Uint8Array(16);
    const trap = new BigUint64Array(1);
    ok(
      lib.wasmtime_linker_instantiate(
        linker,
        context,
        pointerOut(module),
        instance,
        new Uint8Array(trap.buffer),
      ),
      "instantiate",
    );
    const ext = new Uint8Array(32); // wasmtime_extern_t: kind, then the func at offset 8
    const run = utf8("run");
    if (!lib.wasmtime_instance_export_get(context, instance, run, 3n, ext)) throw new Error("no export run");
    const func = ext.slice(8, 24);
    const raw = new BigInt64Array(2); // one wasmtime_val_raw_t
    const rawBytes = new Uint8Array(raw.buffer);
    const trapBytes = new Uint8Array(trap.buffer);
    return (n: number) => {
      raw[0] = BigInt(n);
      ok(lib.wasmtime_func_call_unchecked(context, func, rawBytes, 1n, trapBytes), "call");
      if (trap[0] !== 0n) throw new Error("run trapped");
    };
  }
}
