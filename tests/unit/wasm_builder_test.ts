/**
 * The test-only wasm encoder (tests/support/wasm_builder.ts) and the fuzz guest built with it
 * (tests/support/fuzz_guest.ts), checked with V8's WebAssembly (independent of Wasmtime):
 * LEB128 against known encodings, a module with typed imports, thunks, locals, a table and a
 * memory that validates and runs, and the fuzz guest: one import and one thunk per registry
 * import, its memory and its tools.
 */
import assert from "node:assert/strict";
import { op, sleb, uleb, WasmModuleBuilder } from "../support/wasm_builder.ts";
import { buildFuzzGuest, FUZZ_MEMORY_BYTES, thunkName, TOOL_COUNT, TOOLS } from "../support/fuzz_guest.ts";
import { allImports } from "../../families/registry.ts";

Deno.test("wasm builder: LEB128", () => {
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [0x7f]);
  assert.deepEqual(uleb(128), [0x80, 0x01]);
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(uleb(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.throws(() => uleb(-1), RangeError);
  assert.deepEqual(sleb(0), [0]);
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(63), [0x3f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-64), [0x40]);
  assert.deepEqual(sleb(-65), [0xbf, 0x7f]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(sleb(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  assert.deepEqual(sleb(-(2n ** 63n)), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
});

Deno.test("wasm builder: typed imports, thunks, locals, a table and a memory validate and run", () => {
  const b = new WasmModuleBuilder();
  const add = b.importFunc("env", "add", ["i32", "i64", "f32", "f64"], ["f64"]);
  const note = b.importFunc("env", "note", ["i32"], []);
  const mix = b.func(
    ["i32", "i64", "f32", "f64"],
    ["f64"],
    [0, 1, 2, 3].flatMap((i) => op.localGet(i)).concat(op.call(add)),
  );
  const noted = b.func(["i32"], [], [...op.localGet(0), ...op.call(note)]);
  // A local after the parameter, stored through memory: *(i32*)p = 7; return 7.
  const store = b.func(["i32"], ["i32"], [
    ...op.localGet(0),
    ...op.i32Const(7),
    ...op.i32Store(),
    ...op.i32Const(7),
  ], [
    "i32",
    "i64",
  ]);
  const big = b.func([], ["i64"], op.i64Const(-(2n ** 40n)));
  b.exportFunc("mix", mix).exportFunc("noted", noted).exportFunc("store", store).exportFunc("big", big);
  b.memory(1, 2).exportMemory();
  b.table([store, big]).exportTable("table");
  const bytes = b.build();
  assert.ok(WebAssembly.validate(bytes));

  const notes: number[] = [];
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    env: {
      add: (a: number, b: bigint, c: number, d: number) => a + Number(b) + c + d,
      note: (x: number) => void notes.push(x),
    },
  });
  const e = exports as Record<string, CallableFunction> & {
    memory: WebAssembly.Memory;
    table: WebAssembly.Table;
  };
  assert.equal(e.mix(1, 2n, 0.5, 0.25), 3.75);
  e.noted(-5);
  assert.deepEqual(notes, [-5]);
  assert.equal(e.store(16), 7);
  assert.equal(new DataView(e.memory.buffer).getInt32(16, true), 7);
  assert.equal(e.big(), -(2n ** 40n));
  assert.equal(e.memory.buffer.byteLength, 65536);
  assert.equal(e.table.length, 2);
  assert.equal(e.table.get(1)!(), -(2n ** 40n));
  assert.throws(() => new WasmModuleBuilder().exportMemory(), /no memory/);
  const late = new WasmModuleBuilder();
  late.func([], [], []);
  assert.throws(() => late.importFunc("env", "f", [], []), /before defining/);
});

Deno.test("fuzz guest: one import and one thunk per registry import, a small memory, the tools", () => {
  const imports = allImports();
  const { wasm, thunks } = buildFuzzGuest(imports);
  assert.ok(WebAssembly.validate(wasm));
  const module = new WebAssembly.Module(wasm);
  assert.deepEqual(
    WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`),
    imports.map((d) => `${d.module}.${d.name}:function`),
  );
  assert.deepEqual(thunks, imports.map(thunkName));
  const exports = WebAssembly.Module.exports(module);
  for (const t of thunks) assert.ok(exports.some((e) => e.name === t && e.kind === "function"), t);

  // Every thunk passes its arguments through and returns the import's result; tools behave as documented.
  const calls: string[] = [];
  const env: Record<string, Record<string, (...args: unknown[]) => unknown>> = {};
  for (const d of imports) {
    const result = d.signatures[0].results[0];
    (env[d.module] ??= {})[d.name] = (...args: unknown[]) => {
      calls.push(`${d.name}(${args.join(",")})`);
      return result === "i64" ? 42n : result ? 42 : undefined;
    };
  }
  const instance = new WebAssembly.Instance(module, env);
  const e = instance.exports as Record<string, CallableFunction> & {
    memory: WebAssembly.Memory;
    __indirect_function_table: WebAssembly.Table;
  };
  for (const d of imports) {
    calls.length = 0;
    const sig = d.signatures[0];
    const args = sig.params.map((t, i) => (t === "i64" ? BigInt(i + 1) : i + 1));
    const r = e[thunkName(d)](...args);
    assert.deepEqual(calls, [`${d.name}(${args.join(",")})`]);
    assert.equal(r, sig.results[0] === "i64" ? 42n : sig.results[0] ? 42 : undefined);
  }
  assert.equal(e.memory.buffer.byteLength, FUZZ_MEMORY_BYTES);
  const table = e.__indirect_function_table;
  assert.equal(table.length, TOOL_COUNT);
  const view = new DataView(e.memory.buffer);
  view.setUint32(64, 999, true);
  assert.equal(table.get(TOOLS.EMPTY)!(0, 0, 0, 64), 0);
  assert.equal(view.getUint32(64, true), 0, "EMPTY writes an empty output");
  assert.equal(table.get(TOOLS.AS_IS)!(0, 0, 0, 64), 0);
  assert.equal(table.get(TOOLS.ENOSPC)!(0, 0, 0, 64), -28);
  assert.equal(table.get(TOOLS.FAIL)!(0, 0, 0, 64), -5);
  assert.equal(table.get(TOOLS.NOT_A_TOOL)!.length, 0);
  calls.length = 0;
  assert.equal(table.get(TOOLS.REENTER)!(0, 0, 0, 64), 0);
  assert.deepEqual(
    calls,
    imports.filter((d) => d.signatures[0].params.length === 0).map((d) => `${d.name}()`),
    "REENTER calls every import without parameters",
  );
});
