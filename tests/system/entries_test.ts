/**
 * Entries and typed imports through real Wasmtime:
 *   - call entries on a reactor (tests/guests/entries.c): `_initialize` once, input written
 *     through the guest's `alloc` and freed with `dealloc`, a C-string output, typed values;
 *     the same with the memory imported as `env.memory` (the host creates it, capped by the
 *     memory limit), and a command whose memory is imported;
 *   - the entry contract's failures (wrong arguments, bad output pointers, no such export);
 *   - imports with i64/f32/f64 parameters and results, and one import accepted with and
 *     without a result, through the test-only `extraHostcalls` hook (tests/guests/typed_imports.c);
 *   - a `spear` import declared with the wrong type: a link error naming both types, exit 3.
 */
import assert from "node:assert/strict";
import { fail, LogLevel } from "../../runtime/abi.ts";
import { openWasmtime } from "../../ffi/wasmtime.ts";
import { Engine } from "../../runtime/engine.ts";
import type { Hostcall, WasmValue } from "../../runtime/hostcall.ts";
import { type Entry, type GuestResult, runGuest } from "../../runtime/instance.ts";
import { Link } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";
import { type RunOptions, type RunResult, SpearHost } from "../../host/host.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const GUESTS = `${root}/guests/build/test`;
const REACTOR = `${GUESTS}/entries_reactor.wasm`;
const REACTOR_IMPORTED = `${GUESTS}/entries_reactor_imported.wasm`;
const REACTOR_BIGMEM = `${GUESTS}/entries_reactor_bigmem.wasm`;
const COMMAND_IMPORTED = `${GUESTS}/entries_command_imported.wasm`;
const TYPED = `${GUESTS}/typed_imports.wasm`;
const TYPED_VOID = `${GUESTS}/typed_imports_void.wasm`;
const TYPED_WRONG = `${GUESTS}/typed_imports_wrong.wasm`;
const WRONG_TYPE = `${GUESTS}/wrong_type.wasm`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MiB = 1024 * 1024;

/** Runs each (wasm, options) through one SpearHost; returns the results and the guests' log lines. */
async function runAll(
  runs: [string, RunOptions][],
): Promise<{ results: RunResult[]; logs: { guest: string; level: number; message: string }[] }> {
  const logs: { guest: string; level: number; message: string }[] = [];
  const host = new SpearHost({
    cacheDir: null,
    logSink: (guest, level, message) => logs.push({ guest, level, message }),
  });
  try {
    const results = await Promise.all(
      runs.map(([wasm, options]) => host.run(wasm, { timeoutMs: 20_000, ...options })),
    );
    return { results, logs };
  } finally {
    host.close();
  }
}

function memoryStyle(wasm: string): { imported: boolean; exported: boolean } {
  const module = new WebAssembly.Module(Deno.readFileSync(wasm));
  return {
    imported: WebAssembly.Module.imports(module).some((i) =>
      i.module === "env" && i.name === "memory" && i.kind === "memory"
    ),
    exported: WebAssembly.Module.exports(module).some((e) => e.name === "memory" && e.kind === "memory"),
  };
}

for (
  const [label, wasm, imported] of [
    ["exported memory", REACTOR, false],
    ["memory imported as env.memory", REACTOR_IMPORTED, true],
  ] as const
) {
  Deno.test(`entries: reactor with ${label} — input/C-string output, _initialize once, dealloc, typed values`, async () => {
    // The build really produced the memory style under test.
    assert.deepEqual(memoryStyle(wasm), { imported, exported: !imported });
    const input = "hello, skill";
    const mixArgs: WasmValue[] = [-7, (1n << 40n) + 3n, 0.5, 0.25];
    const { results, logs } = await runAll([
      [wasm, {
        name: "execute",
        entry: { kind: "call", export: "execute", input: encoder.encode(input), output: "cstring" },
      }],
      [wasm, { name: "mix", entry: { kind: "call", export: "mix", args: mixArgs, output: "values" } }],
      [wasm, { name: "i64_of", entry: { kind: "call", export: "i64_of", args: [-3] } }],
      [wasm, {
        name: "f32_half",
        entry: { kind: "call", export: "f32_half", args: [0.1], output: "values" },
      }],
      [wasm, { name: "command" }],
    ]);
    const [execute, mix, i64Of, f32Half, command] = results;

    assert.equal(execute.failure, undefined, JSON.stringify(execute.failure));
    assert.equal(execute.exitCode, 0);
    // init=1: the constructors ran exactly once, from _initialize, before execute.
    assert.equal(decoder.decode(execute.output), "init=1:HELLO, SKILL");
    assert.equal(execute.values, undefined);
    // The input took length + NUL bytes and was freed after the call (the hostcall read guest memory).
    assert.deepEqual(
      logs.filter((l) => l.guest === "execute").map((l) => [l.level, l.message]),
      [[LogLevel.INFO, `alloc ${input.length + 1}`], [LogLevel.INFO, `dealloc ${input.length + 1}`]],
    );

    assert.equal(mix.failure, undefined, JSON.stringify(mix.failure));
    assert.deepEqual(mix.values, [-7 + 1099511627779 + 0.75]);
    assert.equal(mix.output, undefined);
    assert.deepEqual(i64Of.values, [-3n * 4294967296n + 1n], "i64 result as bigint (values is the default)");
    assert.deepEqual(f32Half.values, [Math.fround(Math.fround(0.1) / 2)], "f32 argument and result");
    assert.deepEqual(logs.filter((l) => l.guest !== "execute"), [], "only execute has an input");

    assert.equal(command.failure?.kind, "link");
    assert.match(command.failure!.message, /no _start export/);
  });
}

Deno.test("entries: a command whose memory is imported runs _start, and its hostcalls reach that memory", async () => {
  assert.deepEqual(memoryStyle(COMMAND_IMPORTED), { imported: true, exported: false });
  const { results: [run], logs } = await runAll([[COMMAND_IMPORTED, { entry: { kind: "command" } }]]);
  assert.equal(run.failure, undefined, JSON.stringify(run.failure));
  assert.equal(run.exitCode, 7);
  assert.equal(run.output, undefined);
  assert.deepEqual(logs.map((l) => l.message), ["init=1:COMMAND"]);
});

Deno.test("entries: the call contract — arguments checked by type, bad outputs are clear errors, nothing half-runs", async () => {
  const call = (e: Omit<Extract<Entry, { kind: "call" }>, "kind">): RunOptions => ({
    entry: { kind: "call", ...e },
  });
  const { results, logs } = await runAll([
    [REACTOR, call({ export: "nope" })],
    [REACTOR, call({ export: "mix", args: [1, 2n, 3] })],
    [REACTOR, call({ export: "mix", args: [1, 2, 3, 4] })],
    [REACTOR, call({ export: "mix", args: [1.5, 2n, 3, 4] })],
    [REACTOR, call({ export: "mix", args: [1, 2n, 3, 4], output: "cstring" })],
    [REACTOR, call({ export: "i64_of", args: [1], input: encoder.encode("x") })],
    [REACTOR, call({ export: "bad_output", args: [0], output: "cstring" })],
    [REACTOR, call({ export: "bad_output", args: [1], output: "cstring" })],
    [REACTOR_IMPORTED, call({ export: "bad_output", args: [2], output: "cstring" })],
    [REACTOR, call({ export: "bad_output", args: [3], output: "cstring" })],
  ]);
  const failures = results.map((r) => `${r.exitCode} ${r.failure?.kind}: ${r.failure?.message}`);
  // bad_output computes pointers from its memory size: past the end + 16, 64 bytes before the end.
  const pageOffset = (i: number) => Number(/(?:pointer|at) (\d+) /.exec(failures[i])?.[1]) % 65536;
  assert.equal(pageOffset(7), 16, failures[7]);
  assert.equal(pageOffset(8), 65536 - 64, failures[8]);
  const shown = failures.map((f) => f.replace(/(pointer|at) \d{5,} /, "$1 PTR "));
  assert.deepEqual(shown, [
    "1 link: guest has no function export nope",
    "1 link: mix has type (i32,i64,f32,f64)->f64, called with 3 argument(s)",
    "1 link: mix has type (i32,i64,f32,f64)->f64: argument 2 (2) is not an i64",
    "1 link: mix has type (i32,i64,f32,f64)->f64: argument 1 (1.5) is not an i32",
    "1 link: mix has type (i32,i64,f32,f64)->f64; a C string output needs one i32 result",
    "1 link: i64_of has type (i32)->i64, called with 2 argument(s)",
    "1 abi: output of bad_output: bad guest pointer -8 (EFAULT)",
    "1 abi: output of bad_output: bad guest pointer PTR (EFAULT)",
    "1 abi: output of bad_output: string at PTR is not NUL-terminated before the end of guest memory (EFAULT)",
    `1 abi: output of bad_output: string at PTR is longer than ${16 * MiB} bytes (ENOSPC)`,
  ]);
  // Checks come before the guest runs anything: the call with an input never reached alloc.
  assert.deepEqual(logs, []);
});

Deno.test("entries: an imported memory is capped by the memory limit", async () => {
  assert.deepEqual(memoryStyle(REACTOR_BIGMEM), { imported: true, exported: false });
  const { results: [tooBig, small, fits] } = await runAll([
    [REACTOR_IMPORTED, {
      memoryMb: 2,
      entry: {
        kind: "call",
        export: "execute",
        input: new Uint8Array(3 * MiB).fill(0x61),
        output: "cstring",
      },
    }],
    [REACTOR_BIGMEM, { memoryMb: 16, entry: { kind: "call", export: "mix", args: [0, 0n, 0, 0] } }],
    [REACTOR_BIGMEM, { memoryMb: 48, entry: { kind: "call", export: "mix", args: [1, 2n, 3, 4] } }],
  ]);
  // The guest's malloc cannot grow the host-made memory past 2 MiB: alloc returns 0.
  assert.deepEqual(tooBig.failure, {
    kind: "abi",
    message: `alloc(${3 * MiB + 1}) returned 0, not a block inside guest memory`,
  });
  // A declared minimum (32 MiB) above the limit is refused before anything runs.
  assert.equal(small.failure?.kind, "memory");
  assert.match(
    small.failure!.message,
    /env\.memory minimum size of 512 pages exceeds memory limits \(16 MiB\)/,
  );
  assert.equal(fits.failure, undefined, JSON.stringify(fits.failure));
  assert.deepEqual(fits.values, [10]);
});

// ---- typed imports, through the in-thread runGuest and its test-only hook ----

let sharedEngine: Engine | undefined;
const libPath = resolveWasmtimeLib();

async function runInThread(
  wasm: string,
  entry: Entry,
  extraHostcalls?: () => Hostcall[],
): Promise<GuestResult> {
  sharedEngine ??= Engine.create(openWasmtime(libPath));
  const link = Link.create(1 << 16);
  return await runGuest({
    libPath,
    engineAddress: sharedEngine.address,
    name: wasm.split("/").pop()!,
    wasm: await Deno.readFile(wasm),
    args: ["guest"],
    env: {},
    memoryBytes: 64 * MiB,
    maxFds: 64,
    link: link.buffers,
    budget: HostBudget.create(64 * MiB).buffer,
    entry,
  }, { extraHostcalls });
}

/** Test hostcalls of module "spear_test"; `seen` records the arguments each one got. */
function testHostcalls(seen: WasmValue[][]): Hostcall[] {
  return [
    {
      module: "spear_test",
      name: "typed",
      signatures: [{ params: ["i32", "i64", "f32", "f64"], results: ["f64"] }],
      run: (a, b, c, d) => {
        seen.push([a, b, c, d]);
        if (a === 0) throw fail("EINVAL");
        return (a as number) + Number(b) + (c as number) + (d as number) + 0.125;
      },
    },
    {
      module: "spear_test",
      name: "wide",
      signatures: [{ params: ["i64"], results: ["i64"] }],
      run: (x) => {
        seen.push([x]);
        if (x === 0n) throw fail("ENOENT");
        return BigInt.asIntN(64, (x as bigint) * 3n + 1n);
      },
    },
    {
      module: "spear_test",
      name: "narrow",
      signatures: [{ params: ["f64"], results: ["f32"] }],
      run: (x) => (x as number) / 2,
    },
    {
      module: "spear_test",
      name: "note",
      signatures: [{ params: ["i32", "i32"], results: ["i32"] }, { params: ["i32", "i32"], results: [] }],
      run: (a, b) => {
        seen.push([a, b]);
        return (a as number) + (b as number);
      },
    },
  ];
}

Deno.test("typed imports: i32/i64/f32/f64 parameters and results are decoded and encoded by type", async () => {
  const seen: WasmValue[][] = [];
  const hooks = () => testHostcalls(seen);
  const call = (name: string, args: WasmValue[]) =>
    runInThread(TYPED, { kind: "call", export: name, args }, hooks);
  const big = (1n << 40n) + 3n;
  const results = [
    await call("probe_typed", [-7, big, 0.1, 0.25]),
    await call("probe_typed", [0, 1n, 1, 1]),
    await call("probe_wide", [-(1n << 61n) - 5n]),
    await call("probe_wide", [1n << 62n]),
    await call("probe_wide", [0n]),
    await call("probe_narrow", [3.3]),
  ];
  assert.deepEqual(results.map((r) => r.failure), results.map(() => undefined));
  assert.deepEqual(results.map((r) => r.values), [
    [-7 + Number(big) + Math.fround(0.1) + 0.25 + 0.125],
    [-22], // -EINVAL as the f64 result
    [BigInt.asIntN(64, (-(1n << 61n) - 5n) * 3n + 1n)],
    [BigInt.asIntN(64, (1n << 62n) * 3n + 1n)], // wraps to a negative i64
    [-2n], // -ENOENT as the i64 result
    [Math.fround(3.3 / 2)],
  ]);
  assert.deepEqual(seen, [
    [-7, big, Math.fround(0.1), 0.25],
    [0, 1n, 1, 1],
    [-(1n << 61n) - 5n],
    [1n << 62n],
    [0n],
  ]);
});

Deno.test("typed imports: an import accepted with and without a result links both ways; any other type is refused", async () => {
  const seen: WasmValue[][] = [];
  const hooks = () => testHostcalls(seen);
  const entry: Entry = { kind: "call", export: "probe_note", args: [2, 40] };
  const withResult = await runInThread(TYPED, entry, hooks);
  const withoutResult = await runInThread(TYPED_VOID, entry, hooks);
  const wrong = await runInThread(TYPED_WRONG, entry, hooks);
  assert.deepEqual(withResult, { exitCode: 0, values: [42] });
  assert.deepEqual(
    withoutResult,
    { exitCode: 0, values: [1234] },
    "the result is dropped, the call still made",
  );
  assert.deepEqual(seen, [[2, 40], [2, 40]]);
  assert.deepEqual(wrong, {
    exitCode: 1,
    failure: {
      kind: "link",
      message: "spear_test.note has type (i32)->i64, expected (i32,i32)->i32 or (i32,i32)->()",
    },
  });
  // Without the hook (production), nothing provides the module.
  const bare = await runInThread(TYPED, entry);
  assert.deepEqual(bare.failure, { kind: "link", message: "missing import spear_test.note" });
});

Deno.test("link: a spear import declared with the wrong type is refused, naming both types; the CLI exits 3", async () => {
  const { results: [run] } = await runAll([[WRONG_TYPE, {}]]);
  const message = "spear.log has type (i32)->i32, expected (i32,i32,i32)->i32";
  assert.deepEqual(run.failure, { kind: "link", message });
  const cacheDir = await Deno.makeTempDir({ prefix: "spear-entries-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", `${root}/cli/main.ts`, "run", WRONG_TYPE],
    env: { SPEARHOST_CACHE_DIR: cacheDir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(cacheDir, { recursive: true }));
  assert.equal(out.code, 3);
  assert.equal(decoder.decode(out.stderr), `spear: wrong_type.wasm: cannot link: ${message}\n`);
  assert.equal(decoder.decode(out.stdout), "");
});
