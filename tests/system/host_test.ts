/**
 * SpearHost (host/host.ts) with real guests under Wasmtime and test-only drivers given through
 * `HostOptions.drivers`:
 *   - driver lifecycle: `start()` runs each driver's `start` once (in order, with the host),
 *     `close()` refuses while guests run and stops each started driver once;
 *   - `host.sessions` lists the running guests and is empty once they end;
 *   - a host-created handle: the guest (tests/guests/host_handle.c) makes a request, the test
 *     driver calls `session.createHandle`, and the worker adopts the notice's stream into an fd
 *     (tests/support/host_hooks.ts) that the guest reads through test imports;
 *   - credit flow end to end: 1 MiB through a 64 KiB window, never more than the window
 *     outstanding, every byte in order on the guest's stdout.
 *
 * SpearHost starts guests on runtime/worker.ts and has no way to pass runGuest hooks, so
 * these tests point that Worker URL at tests/support/hooked_guest_worker.ts (same runGuest,
 * plus the hooks) while a host runs.
 */
import assert from "node:assert/strict";
import { type Driver, type GuestSession, type SessionContext, SpearHost } from "../../host/host.ts";
import { handle, type Handler, method } from "../../protocol/rpc.ts";
import * as s from "../../protocol/schema.ts";
import { type HostTestReport, testOpen } from "../support/host_hooks.ts";
import { within } from "../support/within.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const HOST_HANDLE = `${root}/guests/build/test/host_handle.wasm`;
const EXIT_CODE = `${root}/guests/build/test/exit_code.wasm`;
const GUEST_WORKER = new URL("../../runtime/worker.ts", import.meta.url).href;
const HOOKED_WORKER = new URL("../support/hooked_guest_worker.ts", import.meta.url);
const KiB = 1024;

/** Runs `fn` with guest Workers started on the hooked worker; returns how many were. */
async function withHookedWorkers(fn: () => Promise<void>): Promise<number> {
  const Real = globalThis.Worker;
  let redirected = 0;
  globalThis.Worker = class extends Real {
    constructor(url: string | URL, options?: WorkerOptions) {
      const guest = String(url) === GUEST_WORKER;
      if (guest) redirected++;
      super(guest ? HOOKED_WORKER : url, options);
    }
  };
  try {
    await fn();
  } finally {
    globalThis.Worker = Real;
  }
  return redirected;
}

/** Deterministic, non-repeating test bytes. */
function pattern(n: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

interface StreamStats {
  opens: number;
  /** Times the producer ran out of credit and waited for `whenWritable`. */
  waits: number;
  /** Most bytes sent and not yet credited back, measured by the driver. */
  maxOutstanding: number;
  sentBytes: number;
  streams: number[];
  /** The guest closed its end while it was still running (STREAM_CLOSE reached the driver). */
  closedByGuest: number;
}

/**
 * The test driver of family "hosttest": `hosttest.open` creates a handle (a credit stream of
 * the asked window plus a notice) and produces `bytes` bytes of `pattern` into it in items of
 * varied size, pausing when out of credit, then sends an "end" event.
 */
function streamDriver(onOpen?: (ctx: SessionContext) => void | Promise<void>) {
  const stats: StreamStats = {
    opens: 0,
    waits: 0,
    maxOutstanding: 0,
    sentBytes: 0,
    streams: [],
    closedByGuest: 0,
  };
  const open = handle<{ bytes: number; window: number }, { stream: number }, SessionContext>(
    testOpen,
    async ({ bytes, window }, ctx) => {
      stats.opens++;
      await onOpen?.(ctx);
      const { session } = ctx;
      const data = pattern(bytes);
      const { sender } = session.createHandle(
        "hosttest",
        "conn",
        { window },
        { mode: "credit", window },
        () => {
          if (session.alive) stats.closedByGuest++;
        },
      );
      stats.streams.push(sender.id);
      // Count the credit coming back independently of the sender's own bookkeeping.
      let granted = 0;
      const grant = sender.grant.bind(sender);
      sender.grant = (n: number) => {
        granted += n;
        grant(n);
      };
      let offset = 0;
      let next = 12345;
      const produce = () => {
        while (offset < bytes && !sender.closed) {
          next = (next * 1103515245 + 12345) & 0x7fffffff;
          const n = Math.min(1 + (next % 20_000), bytes - offset, sender.available);
          if (n <= 0) {
            stats.waits++;
            sender.whenWritable(produce);
            return;
          }
          assert.equal(sender.send(data.subarray(offset, offset + n)), true);
          offset += n;
          stats.sentBytes += n;
          stats.maxOutstanding = Math.max(stats.maxOutstanding, sender.sentBytes - granted);
        }
        sender.event({ type: "end" });
      };
      produce();
      return { stream: sender.id };
    },
  );
  const driver: Driver = { family: "hosttest", handlers: [open as Handler<SessionContext>] };
  return { driver, stats };
}

/** Log records of the host_handle guests' fds (HostTestReport), by guest name. */
function reportsOf(logs: { guest: string; message: string }[]): Map<string, HostTestReport> {
  const out = new Map<string, HostTestReport>();
  for (const l of logs) {
    const parsed = JSON.parse(l.message);
    if (parsed.hosttest) out.set(l.guest, parsed.hosttest);
  }
  return out;
}

async function tempFile(): Promise<string> {
  return await Deno.makeTempFile({ prefix: "spear_host_test_" });
}

Deno.test("host: drivers start once with the host; close stops each started driver once; a reused host restarts them", async () => {
  const events: string[] = [];
  let seenHost: SpearHost | undefined;
  const ping = method("life.ping", s.object({}), s.int);
  const a: Driver = {
    family: "life_a",
    handlers: [handle(ping, () => 1) as Handler<SessionContext>],
    start(host) {
      seenHost = host;
      events.push("a.start");
    },
    stop() {
      events.push("a.stop");
    },
  };
  const b: Driver = {
    family: "life_b",
    async start() {
      await new Promise((r) => setTimeout(r, 1));
      events.push("b.start");
    },
    async stop() {
      await new Promise((r) => setTimeout(r, 1));
      events.push("b.stop");
    },
  };
  const host = new SpearHost({ drivers: [a, b], cacheDir: null, logSink: () => {} });
  const first = host.start();
  assert.equal(host.start(), first, "start() is one promise, however often it is called");
  const handlers = await first;
  assert.equal(seenHost, host);
  assert.deepEqual(events, ["a.start", "b.start"]);
  assert.deepEqual([...handlers.keys()], ["life.ping"]);
  // run() uses the started drivers; it does not start them again.
  const stdoutFile = await tempFile();
  const run = await host.run(EXIT_CODE, { args: ["5"], stdoutFile, timeoutMs: 20_000 }).finally(() =>
    Deno.remove(stdoutFile)
  );
  assert.equal(run.exitCode, 5, JSON.stringify(run.failure));
  assert.deepEqual(events, ["a.start", "b.start"]);
  assert.equal(host.sessions.size, 0);
  await host.close();
  assert.deepEqual(events, ["a.start", "b.start", "a.stop", "b.stop"]);
  await host.close();
  assert.deepEqual(events, ["a.start", "b.start", "a.stop", "b.stop"], "a second close stops nothing");
  // A host used again after close starts its drivers again (and stops them again).
  await host.start();
  assert.deepEqual(events.slice(4), ["a.start", "b.start"]);
  await host.close();
  assert.deepEqual(events.slice(6), ["a.stop", "b.stop"]);

  // A host that never started stops nothing.
  const idle: string[] = [];
  const never = new SpearHost({
    drivers: [{ family: "idle", start: () => void idle.push("start"), stop: () => void idle.push("stop") }],
    cacheDir: null,
  });
  await never.close();
  assert.deepEqual(idle, []);
});

Deno.test("host: sessions lists the running guests; a driver-created handle is adopted by the guest's worker", async () => {
  const logs: { guest: string; message: string }[] = [];
  const stops: string[] = [];
  const seen: { self: number; ids: number[]; names: string[]; alive: boolean[] }[] = [];
  let arrived = 0;
  let release!: () => void;
  const bothArrived = new Promise<void>((r) => release = r);
  let closeWhileRunning: unknown;
  const { driver, stats } = streamDriver(async ({ session }) => {
    // Both guests wait here, inside their open request, so both are certainly running.
    if (++arrived === 2) release();
    await within(bothArrived, "the second guest's request");
    const sessions: GuestSession[] = [...host.sessions.values()];
    seen.push({
      self: session.id,
      ids: sessions.map((x) => x.id),
      names: sessions.map((x) => x.name),
      alive: sessions.map((x) => x.alive),
    });
    if (seen.length === 1) closeWhileRunning = await host.close().then(() => "closed", (e) => e);
  });
  driver.stop = () => void stops.push("stop");
  const host: SpearHost = new SpearHost({
    drivers: [driver],
    cacheDir: null,
    logSink: (guest, _level, message) => logs.push({ guest, message }),
  });
  const out = [await tempFile(), await tempFile()];
  try {
    const redirected = await withHookedWorkers(async () => {
      const runs = await Promise.all(["one", "two"].map((name, i) =>
        host.run(HOST_HANDLE, {
          name,
          args: [String(3000 + i), "1000"],
          stdoutFile: out[i],
          timeoutMs: 30_000,
        })
      ));
      for (const r of runs) assert.deepEqual([r.exitCode, r.failure], [0, undefined]);
    });
    assert.equal(redirected, 2, "SpearHost no longer starts guests on runtime/worker.ts");
    // Each handler saw both guests, itself among them, both alive.
    assert.equal(seen.length, 2);
    for (const view of seen) {
      assert.equal(view.ids.length, 2);
      assert.ok(view.ids.includes(view.self));
      assert.deepEqual([...view.names].sort(), ["one", "two"]);
      assert.deepEqual(view.alive, [true, true]);
    }
    assert.notEqual(seen[0].self, seen[1].self);
    assert.ok(closeWhileRunning instanceof Error && /still running/.test(closeWhileRunning.message));
    assert.deepEqual(stops, [], "a refused close stopped the drivers");
    assert.equal(host.sessions.size, 0, "sessions empties once the guests end");
    assert.equal(host.activeGuests, 0);
    // The handles: host-allocated (negative) stream ids, adopted into fds, read to the end.
    assert.equal(stats.opens, 2);
    assert.ok(stats.streams.every((id) => id < 0), `stream ids ${stats.streams}`);
    for (const [i, file] of out.entries()) {
      assert.deepEqual(await Deno.readFile(file), pattern(3000 + i), `guest ${i}'s bytes`);
    }
    const reports = reportsOf(logs);
    for (const name of ["one", "two"]) {
      const r = reports.get(name);
      assert.ok(r, `no report from ${name}`);
      assert.ok(r.fd >= 1000);
      assert.deepEqual([r.notQueued, r.ended], [0, true]);
    }
    assert.equal(stats.closedByGuest, 2, "the guests' close reached the driver as STREAM_CLOSE");
  } finally {
    await host.close();
    for (const f of out) await Deno.remove(f);
  }
  assert.deepEqual(stops, ["stop"]);
});

Deno.test("host: credit flow end to end — 1 MiB through a 64 KiB window, never more outstanding, every byte in order", async () => {
  const logs: { guest: string; message: string }[] = [];
  const { driver, stats } = streamDriver();
  const host = new SpearHost({
    drivers: [driver],
    cacheDir: null,
    logSink: (guest, _level, message) => logs.push({ guest, message }),
  });
  const total = 1024 * KiB;
  const window = 64 * KiB;
  const stdoutFile = await tempFile();
  try {
    await withHookedWorkers(async () => {
      const run = await host.run(HOST_HANDLE, {
        name: "credit",
        args: [String(total), String(window)],
        stdoutFile,
        timeoutMs: 60_000,
      });
      assert.deepEqual([run.exitCode, run.failure], [0, undefined]);
    });
    const got = await Deno.readFile(stdoutFile);
    assert.equal(got.length, total);
    assert.deepEqual(got, pattern(total), "the bytes arrived intact and in order");
    assert.equal(stats.sentBytes, total);
    assert.ok(stats.maxOutstanding <= window, `${stats.maxOutstanding} bytes outstanding`);
    assert.ok(stats.maxOutstanding > window - 20_000, "the window was used");
    assert.ok(stats.waits >= total / window - 1, `the producer waited for credit only ${stats.waits} times`);
    const report = reportsOf(logs).get("credit");
    assert.ok(report, "no report from the guest's fd");
    assert.equal(report.notQueued, 0, "the producer never sent past its credit");
    assert.ok(report.maxQueued <= window);
    assert.equal(report.credited, total, "every byte read was credited back");
    assert.equal(stats.closedByGuest, 1);
  } finally {
    await host.close();
    await Deno.remove(stdoutFile);
  }
});
