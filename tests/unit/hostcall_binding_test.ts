/**
 * The production hostcall binding (runtime/instance.ts bindHostcall) writes an i64 result
 * exactly: a number crosses as two 32-bit halves without a BigInt (times, sizes, -errno), a
 * bigint as it is. A module built here imports `spear_test.value(i32)->i64` and exports `get`,
 * which returns it; the host function answers the i-th value of a list.
 */
import assert from "node:assert/strict";
import { op, WasmModuleBuilder } from "../support/wasm_builder.ts";
import { openWasmtime, Sizes } from "../../ffi/wasmtime.ts";
import { Engine, ExternKind } from "../../runtime/engine.ts";
import { Link } from "../../protocol/channel.ts";
import { GuestInstance } from "../../runtime/instance.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";
import type { WasmValue } from "../../runtime/abi.ts";

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

Deno.test("hostcall binding: an i64 result is written exactly, from a number or a bigint", async () => {
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
      run: (i) => VALUES[i as number],
    }],
  });
  try {
    const get = guest.instance.export("get");
    assert.equal(get?.kind, ExternKind.FUNC);
    const raw = new Uint8Array(Sizes.VAL_RAW);
    const view = new DataView(raw.buffer);
    VALUES.forEach((v, i) => {
      view.setBigInt64(0, BigInt(i), true);
      const outcome = guest.call(get!.handle, raw);
      assert.equal(outcome.error, undefined);
      assert.equal(view.getBigInt64(0, true), expected(v), `value ${i}: ${v}`);
    });
  } finally {
    guest.dispose();
    engine.delete();
  }
});
