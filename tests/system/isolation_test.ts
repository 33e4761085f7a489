/**
 * Several guests at once in one SpearHost (one shared Wasmtime engine, one Worker and store
 * per guest): a trap, a timeout, a memory-limit failure and a normal run side by side must
 * each get their own, correct result; a slow guest must not hold up the others; and the host
 * keeps working afterwards.
 */
import assert from "node:assert/strict";
import { SpearHost } from "../../host/host.ts";
import { guestWorkersStarted } from "../../host/guest_worker.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const HELLO = `${root}/guests/build/hello.wasm`;
const MISBEHAVE = `${root}/guests/build/test/misbehave.wasm`;
const EXIT_CODE = `${root}/guests/build/test/exit_code.wasm`;

interface Captured {
  guest: string;
  level: number;
  message: string;
}

async function withHost(
  fn: (host: SpearHost, logs: Captured[], tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "spear-isolation-" });
  const logs: Captured[] = [];
  const host = new SpearHost({
    cacheDir: `${tmp}/cache`,
    logSink: (guest, level, message) => logs.push({ guest, level, message }),
  });
  try {
    await fn(host, logs, tmp);
  } finally {
    await host.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("isolation: trap, timeout, memory limit and success in parallel — each result is its own", async () => {
  await withHost(async (host, logs, tmp) => {
    const out = (name: string) => `${tmp}/${name}.out`;
    // A time limit counts from the run's start, Worker boot included, and `deno test` type-checks
    // a Worker's modules when the first one loads them: seven at once after a source change took
    // 18 s here. Booting one first keeps that out of the limits this test checks.
    assert.equal((await host.run(EXIT_CODE, { args: ["0"], stdoutFile: out("boot") })).exitCode, 0);
    const t0 = performance.now();
    const [trap, timeout, blocked, memory, soft, ok, exit] = await Promise.all([
      host.run(MISBEHAVE, { name: "trap", args: ["unreachable"], stdoutFile: out("trap") }),
      host.run(MISBEHAVE, { name: "spin", args: ["spin"], timeoutMs: 600, stdoutFile: out("spin") }),
      host.run(MISBEHAVE, { name: "block", args: ["block"], timeoutMs: 800, stdoutFile: out("block") }),
      host.run(MISBEHAVE, { name: "memory", args: ["malloc-trap"], memoryMb: 16, stdoutFile: out("memory") }),
      host.run(MISBEHAVE, { name: "soft", args: ["malloc"], memoryMb: 24, stdoutFile: out("soft") }),
      host.run(HELLO, { name: "hello", args: ["isolated", "guest"], stdoutFile: out("hello") }),
      host.run(EXIT_CODE, { name: "exit", args: ["17"], stdoutFile: out("exit") }),
    ]);
    const wall = performance.now() - t0;
    assert.equal(host.activeGuests, 0);

    assert.equal(trap.failure?.kind, "trap");
    assert.match(trap.failure!.message, /unreachable/);
    assert.notEqual(trap.exitCode, 0);

    assert.equal(timeout.exitCode, 124);
    assert.deepEqual(timeout.failure, { kind: "timeout", message: "timeout after 600 ms" });
    assert.ok(
      timeout.durationMs >= 600 && timeout.durationMs < 5_000,
      `spin ended after ${timeout.durationMs} ms`,
    );
    assert.equal(blocked.exitCode, 124);
    assert.deepEqual(blocked.failure, { kind: "timeout", message: "timeout after 800 ms" });
    assert.equal(await Deno.readTextFile(out("block")), "", "the blocked guest never got past epoll_wait");

    assert.equal(memory.failure?.kind, "memory");
    assert.match(memory.failure!.message, /memory limit of 16 MiB reached/);
    assert.match(await Deno.readTextFile(out("memory")), /^allocated \d+ MiB\n$/);
    assert.equal(soft.failure, undefined);
    assert.equal(soft.exitCode, 42);
    const mib = Number(/^allocated (\d+) MiB\n$/.exec(await Deno.readTextFile(out("soft")))?.[1]);
    assert.ok(mib >= 16 && mib < 24, `the 24 MiB guest got ${mib} MiB (limits are per guest)`);

    assert.equal(ok.failure, undefined);
    assert.equal(ok.exitCode, 0);
    assert.equal(await Deno.readTextFile(out("hello")), "isolated guest\n");
    assert.equal(exit.exitCode, 17);
    assert.equal(exit.failure, undefined);
    assert.ok(wall < 15_000, `all seven took ${wall} ms`);

    // Logs are attributed to the right guest and only the logging guest logged.
    assert.deepEqual(
      logs.filter((l) => l.guest === "hello").map((l) => l.message.split(":")[0]),
      ["hello spear wasm\n", "time_now_ms"],
    );
    assert.deepEqual(logs.filter((l) => l.guest !== "hello"), []);
  });
});

Deno.test("isolation: guests keep running while another one spins; the host is reusable after timeouts", async () => {
  await withHost(async (host, _logs, tmp) => {
    const spinner = host.run(MISBEHAVE, {
      name: "spin",
      args: ["spin"],
      timeoutMs: 5_000,
      stdoutFile: `${tmp}/s`,
    });
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) {
      const r = await host.run(EXIT_CODE, { args: [String(i + 1)], stdoutFile: `${tmp}/e${i}` });
      assert.equal(r.exitCode, i + 1);
    }
    const elapsed = performance.now() - t0;
    // Well inside the spinner's limit, so it was spinning all along (slack for a loaded machine).
    assert.ok(elapsed < 4_000, `five runs beside a spinning guest took ${elapsed} ms`);
    assert.equal(host.activeGuests, 1, "the spinner is still running");
    const spun = await spinner;
    assert.equal(spun.exitCode, 124);
    assert.ok(spun.durationMs >= 5_000);
    // The epoch increments of the timeouts did not disturb later guests.
    const after = await host.run(EXIT_CODE, { args: ["5"], stdoutFile: `${tmp}/after` });
    assert.equal(after.exitCode, 5);
    assert.equal(after.failure, undefined);
  });
});

Deno.test("isolation: one pooled Worker runs guest after guest — after a trap, a timeout and a memory hog, the next starts clean", async () => {
  await withHost(async (host, _logs, tmp) => {
    const out = (name: string) => Deno.readTextFile(`${tmp}/${name}`);
    const first = await host.run(EXIT_CODE, { args: ["3"], stdoutFile: `${tmp}/first` });
    assert.equal(first.exitCode, 3);
    const before = guestWorkersStarted();
    const trap = await host.run(MISBEHAVE, { args: ["unreachable"], stdoutFile: `${tmp}/trap` });
    assert.equal(trap.failure?.kind, "trap");
    const spin = await host.run(MISBEHAVE, { args: ["spin"], timeoutMs: 300, stdoutFile: `${tmp}/spin` });
    assert.equal(spin.exitCode, 124);
    // Each hog gets the whole memory limit: nothing of the one before is left in the Worker.
    const hogs = [];
    for (const i of [1, 2]) {
      const hog = await host.run(MISBEHAVE, { args: ["malloc"], memoryMb: 16, stdoutFile: `${tmp}/hog${i}` });
      assert.equal(hog.exitCode, 42);
      hogs.push(await out(`hog${i}`));
    }
    assert.match(hogs[0], /allocated \d+ MiB/);
    assert.equal(hogs[1], hogs[0]);
    // A run that fails before its guest starts (the file cannot be read) gives its Worker back.
    await assert.rejects(host.run(`${tmp}/no-such.wasm`), Deno.errors.NotFound);
    const last = await host.run(EXIT_CODE, { args: ["5"], stdoutFile: `${tmp}/last` });
    assert.equal(last.exitCode, 5);
    assert.equal(await out("last"), "exit_code: 5\n");
    assert.equal(guestWorkersStarted(), before, "every guest after the first ran in the pooled Worker");
  });
});

Deno.test("isolation: failures before start (invalid module, missing import) do not affect other guests", async () => {
  await withHost(async (host, _logs, tmp) => {
    const [bad, missing, good] = await Promise.all([
      host.run(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff]), { name: "bad" }),
      host.run(`${root}/guests/build/test/missing_import.wasm`),
      host.run(EXIT_CODE, { args: ["9"], stdoutFile: `${tmp}/good` }),
    ]);
    assert.equal(bad.failure?.kind, "invalid_module");
    assert.equal(missing.failure?.kind, "link");
    assert.match(missing.failure!.message, /env\.nonexistent/);
    assert.equal(good.exitCode, 9);
    assert.equal(good.failure, undefined);
  });
});

Deno.test("host: run rejects limits out of the config's ranges before starting a guest", async () => {
  await withHost(async (host) => {
    const bad: [Record<string, number>, RegExp][] = [
      [{ timeoutMs: 2 ** 31 }, /timeoutMs must be an integer from 1 to 2147483647/],
      [{ timeoutMs: 0 }, /timeoutMs/],
      [{ timeoutMs: 1.5 }, /timeoutMs/],
      [{ timeoutMs: NaN }, /timeoutMs/],
      [{ memoryMb: 1e300 }, /memoryMb must be an integer from 1 to 65536/],
      [{ memoryMb: Infinity }, /memoryMb/],
      [{ maxFds: 1_000_001 }, /maxFds must be an integer from 1 to 1000000/],
      [{ maxFds: -1 }, /maxFds/],
    ];
    for (const [options, pattern] of bad) {
      await assert.rejects(host.run(EXIT_CODE, options), (e: unknown) => {
        assert.ok(e instanceof RangeError, `${JSON.stringify(options)}: ${e}`);
        assert.match(e.message, pattern);
        return true;
      });
      assert.equal(host.activeGuests, 0);
    }
    // Limits from a config built by hand are checked the same way.
    const handMade = new SpearHost({
      config: {
        backends: [],
        limits: { timeout_ms: 2 ** 40, memory_mb: 16, max_fds: 8, host_memory_mb: 64 },
        net: { allow: [], listen: [] },
        mic: {},
        memory: { store: "sqlite", path: "unused.db" },
        skills: { dir: "unused" },
        user_stream: {},
      },
      cacheDir: null,
    });
    await assert.rejects(handMade.run(EXIT_CODE), RangeError);
    await handMade.close();
    // The host still runs guests afterwards.
    const ok = await host.run(EXIT_CODE, {
      args: ["3"],
      timeoutMs: 2147483647,
      memoryMb: 65536,
      stdoutFile: "/dev/null",
    });
    assert.equal(ok.exitCode, 3, ok.failure?.message);
  });
});

Deno.test("isolation: RUST_BACKTRACE does not reach libwasmtime — RUST_LIB_BACKTRACE=0 is set before it loads, a user's own value kept", async () => {
  // With library backtraces on, every trap symbolizes a native backtrace under a process-wide
  // lock: guests trapping side by side stalled every thread for seconds (a time limit took
  // effect 24 s late in the parallel test above).
  const script = `
    import { openWasmtime } from "${root}/ffi/wasmtime.ts";
    import { resolveWasmtimeLib } from "${root}/host/native.ts";
    openWasmtime(resolveWasmtimeLib());
    console.log(Deno.env.get("RUST_LIB_BACKTRACE") ?? "unset");`;
  const libBacktraceAfterOpen = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      clearEnv: true,
      env: { HOME: Deno.env.get("HOME") ?? "/", RUST_BACKTRACE: "1", ...env },
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    return new TextDecoder().decode(out.stdout).trim();
  };
  assert.equal(await libBacktraceAfterOpen({}), "0");
  assert.equal(await libBacktraceAfterOpen({ RUST_LIB_BACKTRACE: "full" }), "full");
});
