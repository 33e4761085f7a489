/// <reference lib="deno.worker" />
/**
 * The guest side of tests/system/fuzz_test.ts: one Worker that instantiates the fuzz guest
 * (tests/support/fuzz_guest.ts) once with the production GuestInstance — same linker, same
 * hostcall binding, same families' worker parts as a real run — on a Link whose host end the
 * test serves with the real drivers, then calls the guest's thunks with seeded arguments until
 * its time is up, checking every return against the contract:
 *   - an i32 result is ≥ 0 or -errno for an errno of the Errno table (runtime/abi.ts);
 *   - no call traps (unless its policy names the trap), and no hostcall implementation throws
 *     anything but HostcallError (the binding would turn it into -EIO and a log line, which
 *     looks like a valid return; so each implementation is wrapped — through the instance's
 *     `bindOverride` hook, leaving the production binding in place — and any other exception,
 *     or a JS value that is no i32 for an i32 result, is a failure of that call).
 * The first failure ends the run; the report names the call, its arguments, what was written
 * into memory, and the calls before it. At the end the guest must still answer a trivial call
 * and close every fd without an exception, after which the guest's host budget must be back
 * to 0 (everything a family charged was released: no leak).
 *
 * Which import comes next: half the calls from a family in focus (it changes every 64
 * calls), half from all; closes weigh less. The fuzzer keeps the fds it created that are
 * still open, and learns which creators' fds each import accepts; a well-formed call that
 * an fd accepted often starts a streak on that fd, so state builds up (a session with
 * params, tools and messages, then a send and a receive). Now and then a scripted sequence
 * runs instead (fuzz_guest.ts: toolLoopScenario, a session whose tool loop calls into the guest;
 * loopbackScenario, a TCP connection between two of the guest's sockets).
 *
 * The worker keeps the test's guard (a SharedArrayBuffer) up to date: which call is running
 * and since when, so the test can stop a call that blocks (link terminate request).
 */
import { Errno, FdFlag, FIRST_FD, HostcallError } from "../../runtime/abi.ts";
import { openWasmtime, Sizes } from "../../ffi/wasmtime.ts";
import { Engine } from "../../runtime/engine.ts";
import { GuestInstance } from "../../runtime/instance.ts";
import { GuestTerminated, GuestTrapped } from "../../runtime/guest.ts";
import { Link } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import type { WasmValue } from "../../runtime/hostcall.ts";
import {
  type CallRecord,
  FUZZ_MEMORY_BYTES,
  type FuzzInit,
  type FuzzReport,
  type FuzzState,
  Guard,
  keptResultsFlush,
  loopbackScenario,
  policyOf,
  prepareCall,
  type PreparedCall,
  Rng,
  SCENARIO_SHARE,
  type ScenarioStep,
  toolLoopScenario,
  WELL_FORMED_SHARE,
} from "./fuzz_guest.ts";

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([name, n]) => [n, name]));
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;
const HISTORY = 12;
const MAX_CLOSED = 16;

const show = (v: WasmValue) => (typeof v === "bigint" ? `${v}n` : String(v));

async function fuzz(init: FuzzInit): Promise<FuzzReport> {
  const guard = new Float64Array(init.guard);
  const engine = Engine.create(openWasmtime(init.libPath));
  const link = Link.attach(init.link);
  const report: FuzzReport = {
    calls: 0,
    elapsedMs: 0,
    stats: {},
    failures: [],
    fdsCreated: 0,
    toolCalls: 0,
    reentrantCalls: 0,
    scenarios: 0,
    alive: false,
    budgetUsedAfterClose: -1,
  };
  const history: CallRecord[] = [];
  /** What went wrong inside hostcalls during the current call. */
  const problems: string[] = [];
  let current: CallRecord = { seq: -1, import: "(instantiation)", args: [], notes: [] };
  /** Hostcalls running (more than one: a tool re-entered the guest, which called the host again). */
  let depth = 0;
  const fail = (message: string) => {
    report.failures.push({ message, call: current, recent: history.slice(0, -1) });
  };

  const guest = await GuestInstance.create(engine, init.wasm, {
    link,
    maxFds: init.maxFds,
    memoryBytes: init.memoryBytes,
    budget: new HostBudget(init.budget),
    wasi: { args: ["fuzz"], env: {} },
    context: init.context,
    pipes: init.pipes,
    // Wraps each implementation; returns false so the production binding binds the wrapper.
    bindOverride: (_linker, hc, sig) => {
      const run = hc.run;
      const key = `${hc.module}.${hc.name}`;
      const result = sig.results[0];
      hc.run = (...args: WasmValue[]) => {
        let value: WasmValue | void;
        if (depth++ > 0) report.reentrantCalls++;
        try {
          value = run(...args);
        } catch (e) {
          const expected = e instanceof HostcallError || e instanceof GuestTerminated ||
            e instanceof GuestTrapped;
          if (!expected) problems.push(`${key} threw ${e instanceof Error ? e.stack : String(e)}`);
          throw e;
        } finally {
          depth--;
        }
        if (
          result === "i32" &&
          !(typeof value === "number" && Number.isInteger(value) && value >= I32_MIN && value <= I32_MAX)
        ) {
          problems.push(`${key} returned ${String(value)} (${typeof value}) for an i32 result`);
        } else if (result === "i64" && typeof value !== "bigint" && !Number.isSafeInteger(value)) {
          problems.push(`${key} returned ${String(value)} (${typeof value}) for an i64 result`);
        }
        return value;
      };
      return false;
    },
  });
  try {
    const { rt } = guest;
    // Counts the tool calls cchat's AUTO_TOOL_CALL loop makes into the guest.
    const invoker = rt.invoker!;
    const callTable = invoker.callTableI32x4.bind(invoker);
    invoker.callTableI32x4 = (index, args) => {
      report.toolCalls++;
      return callTable(index, args);
    };
    const thunks = init.imports.map((decl, i) => {
      const func = guest.exportedFunc(init.thunks[i]);
      if (!func) throw new Error(`the fuzz guest has no export ${init.thunks[i]}`);
      return {
        decl,
        key: `${decl.module}.${decl.name}`,
        family: init.families[i],
        func,
        sig: decl.signatures[0],
        policy: policyOf(decl),
      };
    });
    for (const t of thunks) report.stats[t.key] = { calls: 0, ok: 0, errno: {} };
    const rng = new Rng(init.seed);
    const state: FuzzState = {
      rng,
      memBytes: FUZZ_MEMORY_BYTES,
      open: [],
      closed: [],
      topFd: FIRST_FD,
      family: "",
      wellFormed: false,
      accepts: new Set(),
      passed: [],
      addresses: init.addresses,
      urls: init.urls,
      loopback: init.loopback,
    };
    /** Per import: creators of the fds it accepted (see FuzzState.accepts). */
    const accepts = thunks.map(() => new Set<number>());
    /** The last call returned ≥ 0 (or had no i32 result) without a failure. */
    let lastAccepted = false;
    const isOpen = (fd: number) => {
      try {
        return !rt.fds.get(fd).closed;
      } catch {
        return false;
      }
    };
    /** Moves the fds closed since to `closed` (any call may close some: a close, a tool call). */
    const prune = () => {
      state.open = state.open.filter((o) => {
        if (isOpen(o.fd)) return true;
        state.closed.push(o.fd);
        if (state.closed.length > MAX_CLOSED) state.closed.shift();
        return false;
      });
    };
    const slots = Math.max(1, ...thunks.map((t) => Math.max(t.sig.params.length, t.sig.results.length)));
    const raw = new Uint8Array(slots * Sizes.VAL_RAW);
    const view = new DataView(raw.buffer);

    const write = (ptr: number, bytes: Uint8Array) => {
      const start = Math.max(ptr, 0);
      const end = Math.min(ptr + bytes.length, state.memBytes);
      if (start < end) guest.write(start, bytes.subarray(start - ptr, end - ptr));
    };
    const makeNonBlocking = (fd: number) => {
      try {
        rt.fds.get(fd).flags |= FdFlag.O_NONBLOCK;
      } catch { /* not an fd: the call says EBADF */ }
    };

    /** Calls thunk `index` with `prepared`; false once a failure was recorded. */
    const callOne = (index: number, prepared: PreparedCall, seq: number): boolean => {
      const t = thunks[index];
      current = { seq, import: t.key, args: prepared.args.map(show), notes: prepared.notes };
      history.push(current);
      if (history.length > HISTORY) history.shift();
      for (const w of prepared.writes) write(w.ptr, w.bytes);
      if (prepared.nonBlocking === "all") {
        for (const o of state.open) makeNonBlocking(o.fd);
      } else for (const fd of prepared.nonBlocking) makeNonBlocking(fd);
      t.sig.params.forEach((type, i) => {
        const at = i * Sizes.VAL_RAW;
        const v = prepared.args[i];
        if (type === "i32") view.setInt32(at, v as number, true);
        else if (type === "i64") view.setBigInt64(at, v as bigint, true);
        else if (type === "f32") view.setFloat32(at, v as number, true);
        else view.setFloat64(at, v as number, true);
      });
      const openBefore = rt.fds.openCount;
      problems.length = 0;
      lastAccepted = false;
      guard[Guard.IMPORT] = index;
      guard[Guard.SEQ] = seq;
      guard[Guard.STARTED_AT] = Date.now();
      guard[Guard.IN_CALL] = 1;
      const outcome = guest.call(t.func.handle, raw);
      guard[Guard.IN_CALL] = 0;
      report.calls++;
      const stats = report.stats[t.key];
      stats.calls++;
      if (outcome.error) {
        current.result = `trap: ${outcome.error.message}`;
        if (link.toGuest.terminateRequested) {
          fail(`the call blocked past the test's per-call limit and was stopped: ${outcome.error.message}`);
          return false;
        }
        if (!t.policy.traps?.test(outcome.error.message)) {
          fail(`trapped: ${outcome.error.message}${problems.length ? `\n${problems.join("\n")}` : ""}`);
          return false;
        }
      }
      const type = t.sig.results[0];
      if (!outcome.error && type) {
        current.result = show(
          type === "i32"
            ? view.getInt32(0, true)
            : type === "i64"
            ? view.getBigInt64(0, true)
            : type === "f32"
            ? view.getFloat32(0, true)
            : view.getFloat64(0, true),
        );
      }
      if (problems.length) {
        fail(problems.join("\n"));
        return false;
      }
      if (outcome.error) return true;
      if (type !== "i32") {
        stats.ok++;
        lastAccepted = true;
        return true;
      }
      const r = view.getInt32(0, true);
      if (r >= 0) {
        stats.ok++;
        lastAccepted = true;
        for (const o of state.passed) accepts[index].add(o.creator);
        if (r >= FIRST_FD && rt.fds.openCount > openBefore && isOpen(r)) {
          state.open.push({ fd: r, family: t.family, creator: index });
          state.topFd = Math.max(state.topFd, r);
          report.fdsCreated++;
        }
        return true;
      }
      const name = ERRNO_NAMES.get(-r);
      if (!name) {
        fail(`returned ${r}: neither ≥ 0 nor -errno of an errno in runtime/abi.ts`);
        return false;
      }
      stats.errno[name] = (stats.errno[name] ?? 0) + 1;
      return true;
    };

    // Fill memory with random bytes: every pointer the fuzzer does not write to points at noise.
    write(0, rng.bytes(state.memBytes));
    const closers = thunks.flatMap((t, i) =>
      t.policy.params.length === 1 && t.policy.params[0] === "fd" && /_close$/.test(t.decl.name) ? [i] : []
    );
    const closerFor = (o: { family: string }) => {
      const mine = closers.filter((i) => thunks[i].family === o.family);
      return rng.pick(mine.length ? mine : closers);
    };
    const started = performance.now();
    const deadline = started + init.durationMs;
    let seq = 0;
    // Which import: half the calls from the family in focus (a burst of calls on one family
    // builds up state: a session with tools and messages, then a send), half from all; closes
    // weigh a quarter, so fds live long enough for captures and round trips to deliver.
    const weights = thunks.map((t) => (closers.includes(thunks.indexOf(t)) ? 0.25 : 1));
    const pickWeighted = (indices: number[]) => {
      let r = rng.u32() / 4294967296 * indices.reduce((sum, i) => sum + weights[i], 0);
      for (const i of indices) if ((r -= weights[i]) < 0) return i;
      return indices[indices.length - 1];
    };
    const everyImport = thunks.map((_, i) => i);
    const families = [...new Set(thunks.map((t) => t.family))];
    const byName = new Map(thunks.map((t, i) => [t.decl.name, i]));
    /** Calls the steps in order; false once a failure was recorded. */
    const runSteps = (steps: ScenarioStep[]): boolean => {
      const results: number[] = [];
      for (const step of steps) {
        const prepared = step.prepare(results);
        if (!prepared) return true;
        const index = byName.get(step.name)!;
        state.passed = [];
        if (!callOne(index, prepared, seq++)) return false;
        results.push(thunks[index].sig.results[0] === "i32" ? view.getInt32(0, true) : 0);
      }
      return true;
    };
    /** Runs a scripted sequence (skipped when the registry lacks one of its imports). */
    const runScenario = (steps: ScenarioStep[]): boolean => {
      if (!steps.every((step) => byName.has(step.name))) return true;
      report.scenarios++;
      // Room for the sequence's fds: at the limit its first create would be EMFILE.
      while (closers.length && state.open.length && rt.fds.openCount > init.maxFds - 4) {
        const o = state.open.shift()!;
        state.passed = [];
        if (!callOne(closerFor(o), { args: [o.fd], writes: [], notes: [], nonBlocking: [] }, seq++)) {
          return false;
        }
      }
      return runSteps(steps);
    };
    let focus = everyImport;
    for (let ok = true; ok && performance.now() < deadline; seq++) {
      if (seq % 16 === 0) prune();
      if (rng.chance(SCENARIO_SHARE)) {
        ok = runScenario(rng.chance(0.5) ? toolLoopScenario(state) : loopbackScenario(state));
        continue;
      }
      if (seq % 64 === 0) {
        const family = rng.pick(families);
        focus = everyImport.filter((i) => thunks[i].family === family);
      }
      // At the fd limit, close something now and then, or every create is EMFILE from then on.
      if (closers.length && state.open.length && rt.fds.openCount >= init.maxFds - 2 && rng.chance(0.03)) {
        const o = rng.pick(state.open);
        state.passed = [];
        ok = callOne(closerFor(o), { args: [o.fd], writes: [], notes: [], nonBlocking: [] }, seq);
        prune();
        continue;
      }
      const index = pickWeighted(rng.chance(0.5) ? focus : everyImport);
      const t = thunks[index];
      state.family = t.family;
      state.accepts = accepts[index];
      state.wellFormed = rng.chance(WELL_FORMED_SHARE);
      const prepared = prepareCall(state, t.policy, t.sig.params);
      if (state.wellFormed) prepared.notes.unshift("(well-formed)");
      ok = callOne(index, prepared, seq);
      // A well-formed call an fd accepted often starts a streak of well-formed calls of the
      // same import with the same fds and numbers (a session gets several params in a row).
      if (ok && lastAccepted && state.wellFormed && state.passed.length && rng.chance(0.7)) {
        const fd = state.passed[0].fd;
        state.repeat = prepared;
        for (let n = rng.range(1, 8); ok && n > 0 && isOpen(fd); n--) {
          const next = prepareCall(state, t.policy, t.sig.params);
          next.notes.unshift(`(well-formed, streak on fd ${fd})`);
          ok = callOne(index, next, ++seq);
        }
        state.repeat = undefined;
      }
    }
    report.elapsedMs = performance.now() - started;

    // Still alive: a trivial call (no parameters, not an fd creator: an i64 result) answers.
    if (report.failures.length === 0) {
      const trivial = thunks.findIndex((t) => t.sig.params.length === 0 && t.sig.results[0] === "i64");
      if (trivial < 0) {
        throw new Error("the registry has no import without parameters and with an i64 result");
      }
      report.alive = callOne(trivial, { args: [], writes: [], notes: [], nonBlocking: [] }, seq++);
      current = { seq: seq++, import: "(closing every fd)", args: [], notes: [] };
      try {
        rt.fds.closeAll();
      } catch (e) {
        fail(`closing every fd threw ${e instanceof Error ? e.stack : String(e)}`);
      }
      if (rt.fds.openCount !== 0) fail(`${rt.fds.openCount} fds still open after closing every fd`);
      const flush = keptResultsFlush(state).filter((step) => byName.has(step.name));
      if (!runSteps(flush)) return report;
      // Replies still on their way are applied (releasing what the host charged for them).
      for (const until = performance.now() + 3000; rt.budget.used > 0 && performance.now() < until;) {
        rt.poll();
        await new Promise((r) => setTimeout(r, 10));
      }
      report.budgetUsedAfterClose = rt.budget.used;
    }
  } catch (e) {
    report.fatal = `${e instanceof Error ? e.stack : String(e)}\nduring call ${JSON.stringify(current)}`;
  } finally {
    guard[Guard.IN_CALL] = 0;
    guest.dispose();
    engine.delete();
  }
  return report;
}

self.onmessage = async (event: MessageEvent<FuzzInit>) => {
  let report: FuzzReport;
  try {
    report = await fuzz(event.data);
  } catch (e) {
    report = {
      calls: 0,
      elapsedMs: 0,
      stats: {},
      failures: [],
      fdsCreated: 0,
      toolCalls: 0,
      reentrantCalls: 0,
      scenarios: 0,
      alive: false,
      budgetUsedAfterClose: -1,
      fatal: e instanceof Error ? e.stack : String(e),
    };
  }
  self.postMessage(report);
};
