/**
 * Resource leaks across many guest runs: every run creates a Wasmtime store, linker, module,
 * 32+ FFI callbacks, an fd table and a Link, and must free them all. 1000 runs through the
 * in-thread layer (`runGuest`, shared engine, fresh Link each time) and 100 through the
 * production path (SpearHost: a pooled Worker runs guest after guest); RSS after the last run
 * must stay within a bound of RSS after the warm-up runs.
 */
import assert from "node:assert/strict";
import { openWasmtime } from "../../ffi/wasmtime.ts";
import { Link } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { Engine } from "../../runtime/engine.ts";
import { SpearHost } from "../../host/host.ts";
import { runGuest } from "../../runtime/instance.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const HELLO = `${root}/guests/build/hello.wasm`;
const BAD_INPUT = `${root}/guests/build/test/bad_input.wasm`;
const MiB = 1024 * 1024;
const BOUND = 64 * MiB;

const rss = () => Deno.memoryUsage().rss;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

Deno.test("leak: 1000 in-thread runs (shared engine, fresh Link each) keep RSS bounded", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "spear-leak-" });
  const libPath = resolveWasmtimeLib();
  const engine = Engine.create(openWasmtime(libPath));
  const hello = Deno.readFileSync(HELLO);
  const badInput = Deno.readFileSync(BAD_INPUT);
  try {
    const run = async (i: number) => {
      // Every tenth run is the bad-input guest: many failing hostcalls, fds, epoll sets.
      const bad = i % 10 === 0;
      const link = Link.create(1 << 16);
      const result = await runGuest({
        libPath,
        engineAddress: engine.address,
        name: bad ? "bad_input.wasm" : "hello.wasm",
        wasm: bad ? badInput : hello,
        args: [bad ? "bad_input.wasm" : "hello.wasm"],
        env: {},
        stdoutFile: "/dev/null",
        memoryBytes: 64 * MiB,
        maxFds: 1024,
        link: link.buffers,
        budget: HostBudget.create(64 * MiB).buffer,
        cacheDir: `${tmp}/cache`,
      });
      assert.equal(result.exitCode, 0, `run ${i}: ${JSON.stringify(result.failure)}`);
      let logs = 0;
      link.toHost.receive(() => logs++);
      assert.ok(logs >= 2, `run ${i}: ${logs} log messages`);
    };
    const t0 = performance.now();
    for (let i = 1; i <= 100; i++) await run(i);
    const at100 = rss();
    for (let i = 101; i <= 1000; i++) await run(i);
    const at1000 = rss();
    const ms = performance.now() - t0;
    console.log(
      `in-thread: RSS after run 100 ${mib(at100)}, after run 1000 ${mib(at1000)}, ` +
        `growth ${mib(at1000 - at100)}; ${(ms / 1000).toFixed(2)} ms per run`,
    );
    assert.ok(at1000 - at100 < BOUND, `RSS grew by ${mib(at1000 - at100)} between run 100 and run 1000`);
  } finally {
    engine.delete();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("leak: 100 runs through SpearHost workers keep RSS bounded", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "spear-leak-" });
  let logs = 0;
  const host = new SpearHost({ cacheDir: `${tmp}/cache`, logSink: () => logs++ });
  try {
    const wasm = Deno.readFileSync(HELLO);
    const t0 = performance.now();
    for (let i = 1; i <= 20; i++) assert.equal((await host.run(wasm, { name: "hello.wasm" })).exitCode, 0);
    const at20 = rss();
    for (let i = 21; i <= 100; i++) assert.equal((await host.run(wasm, { name: "hello.wasm" })).exitCode, 0);
    const at100 = rss();
    const ms = performance.now() - t0;
    assert.equal(logs, 200, "every run's two log lines arrived");
    assert.equal(host.activeGuests, 0);
    console.log(
      `workers: RSS after run 20 ${mib(at20)}, after run 100 ${mib(at100)}, ` +
        `growth ${mib(at100 - at20)}; ${(ms / 100).toFixed(1)} ms per run`,
    );
    assert.ok(at100 - at20 < BOUND, `RSS grew by ${mib(at100 - at20)} between run 20 and run 100`);
  } finally {
    await host.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
