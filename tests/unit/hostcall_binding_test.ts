/**
 * The production hostcall binding (runtime/instance.ts bindHostcall) writes an i64 result
 * exactly: a number crosses as two 32-bit halves without a BigInt (times, sizes, -errno), a
 * bigint as it is; a HostcallError becomes its -errno. Both bindings are checked: the usual
 * one and a leaf's (ImportDecl.leaf), which keeps no call-stack entry. A module built here
 * imports `spear_test.value(i32)->i64` and exports `get`, which returns it; the host function
 * answers the i-th value of a list.
 */
import assert from "node:assert/strict";
import { op, WasmModuleBuilder } from "../support/wasm_builder.ts";
import { openWasmtime, Sizes, wasmtimeSymbols } from "../../ffi/wasmtime.ts";
import { Engine, ExternKind } from "../../runtime/engine.ts";
import { Link } from "../../protocol/channel.ts";
import { GuestInstance } from "../../runtime/instance.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";
import { Errno, fail, type WasmValue } from "../../runtime/abi.ts";

const VALUES: WasmValue[] = [
  0,
  1,
  -1,
  -28, // an -errno
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 32 + 5,
  1_795_000_000_123, // a time in ms
  -(2 ** 33) - 7,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  2.9, // fractions truncate toward zero, as ToBigInt of the truncated value would
  -2.9,
  -0.5,
  (1n << 63n) - 1n,
  -(1n << 63n),
];

function expected(v: WasmValue): bigint {
  return typeof v === "bigint" ? v : BigInt(Math.trunc(v));
}

/**
 * Instantiates a module importing `spear_test.value(i32)->i64` (exported as `get`) served by
 * `run`, bound as a leaf or not (ImportDecl.leaf), and returns a caller of `get`.
 */
async function valueGuest(run: (i: number) => WasmValue, leaf: boolean) {
  const b = new WasmModuleBuilder();
  const value = b.importFunc("spear_test", "value", ["i32"], ["i64"]);
  b.exportFunc("get", b.func(["i32"], ["i64"], [...op.localGet(0), ...op.call(value)]));
  b.memory(1).exportMemory();
  const engine = Engine.create(openWasmtime(resolveWasmtimeLib()));
  const guest = await GuestInstance.create(engine, b.build(), {
    link: Link.create(),
    maxFds: 16,
    memoryBytes: 1 << 20,
    wasi: { args: ["i64"], env: {} },
    extraHostcalls: () => [{
      module: "spear_test",
      name: "value",
      signatures: [{ params: ["i32"], results: ["i64"] }],
      leaf,
      run: (i) => run(i as number),
    }],
  });
  const get = guest.instance.export("get");
  assert.equal(get?.kind, ExternKind.FUNC);
  const raw = new Uint8Array(Sizes.VAL_RAW);
  const view = new DataView(raw.buffer);
  return {
    get(i: number): bigint {
      view.setBigInt64(0, BigInt(i), true);
      const outcome = guest.call(get!.handle, raw);
      assert.equal(outcome.error, undefined);
      return view.getBigInt64(0, true);
    },
    dispose() {
      guest.dispose();
      engine.delete();
    },
  };
}

for (const leaf of [false, true]) {
  Deno.test(`hostcall binding${leaf ? " (leaf)" : ""}: an i64 result is written exactly, from a number or a bigint; an error is its -errno`, async () => {
    const guest = await valueGuest((i) => {
      if (i < 0) throw fail("EINVAL");
      return VALUES[i];
    }, leaf);
    try {
      VALUES.forEach((v, i) => assert.equal(guest.get(i), expected(v), `value ${i}: ${v}`));
      assert.equal(guest.get(-1), BigInt(-Errno.EINVAL));
    } finally {
      guest.dispose();
    }
  });
}

Deno.test("hostcall binding: every Wasmtime call that can run guest code is declared to re-enter JavaScript", () => {
  // Guest code calls hostcalls, which are JavaScript. As a V8 fast API call, such a call aborts
  // the process when a hostcall deoptimizes its caller (ffi/wasmtime.ts REENTERS).
  const runsGuestCode = Object.entries(wasmtimeSymbols).filter(([name]) =>
    /func_call|instantiate|instance_new/.test(name)
  );
  assert.deepEqual(runsGuestCode.map(([name]) => name).sort(), [
    "wasmtime_func_call_unchecked",
    "wasmtime_linker_instantiate",
  ]);
  for (const [name, decl] of runsGuestCode) {
    assert.equal((decl as { callback?: boolean }).callback, true, `${name} is declared with callback: true`);
  }
});
