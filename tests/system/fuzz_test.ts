/**
 * A seeded, time-bounded fuzz of every import in the family registry — the rule "every
 * hostcall checks pointers and lengths (-EFAULT) and JSON (-EINVAL), and never crashes the
 * host; one guest can never take the host down", checked by random calls rather than by
 * the hand-picked cases of bad_input_test.ts. A family added to the registry is fuzzed with
 * no change here.
 *
 * Design. The guest is generated from `allImports()` (tests/support/fuzz_guest.ts: one thunk
 * per import with its canonical signature, 128 KiB of memory). Calling a thunk once per
 * `call` entry through SpearHost.run would cost a Worker and an instantiation per call and
 * forget every fd between calls, so instead:
 *   - one Worker (tests/support/fuzz_worker.ts) instantiates the guest once with the
 *     production GuestInstance and calls its thunks with raw slots, as bench/support/harness.ts
 *     does, keeping the fds it creates to pass them to later calls;
 *   - this thread plays the host for that guest with the real thing: a SpearHost (so its
 *     drivers start as in production — the registry's built families, a stub and an
 *     OpenAI-compatible chat backend, a mic file), a GuestSession and RpcServer wired to the
 *     host's handlers, served by `GuestSession.serve` as SpearHost serves a guest (logs, requests,
 *     cancels, streams). Calls that reach drivers really run: chat round trips (the stub
 *     backend, and an OpenAI-compatible one — tests/support/openai_server.ts — that answers
 *     with seeded tool calls, echoes, and sometimes non-JSON, wrongly shaped JSON or an HTTP
 *     error), mic captures from the stub, file and device sources, LIST_DEVICES, socket
 *     connections to that backend's port and listeners on loopback (the config's network
 *     policy allows exactly these), and the cis calls of a skill (the guest runs as one,
 *     `runContext`): prompts, a memory store in a temporary SQLite file, HTTP requests.
 * The guest has to be in a Worker: hostcalls that wait for the host (mic SET_PARAM, a log
 * line while the host is behind) block their thread in Atomics.wait, and the host answers
 * on this thread's event loop.
 *
 * Checks: every return against the contract (fuzz_worker.ts), no "internal error" log line
 * from the binding, no programming error (TypeError, RangeError, …) thrown by a driver's
 * handler nor an `internal_error` it answered with, no crashed worker, no call blocking past
 * CALL_LIMIT_MS (the guard stops it and names it); afterwards the guest still answers and
 * closes every fd, its host budget is back to 0, the host still runs fresh guests, and the
 * drivers stop every capture. A failure prints the seed, the import, its arguments, what was
 * in memory, and the calls before it. The output reports calls/s and, per import, the calls,
 * the results ≥ 0 and the count of each errno.
 *
 * SPEARHOST_FUZZ_SEED replays a seed: the same calls and arguments for as long as the host
 * answers alike (a result that depends on timing — a reply or a frame arrived or not yet —
 * can make the runs part; the report names the call by its number and shows the calls
 * before it). SPEARHOST_FUZZ_MS sets the time spent calling (default 10 s).
 */
import assert from "node:assert/strict";
import { allImports, createDrivers, FAMILIES } from "../../families/registry.ts";
import { parseConfig } from "../../host/config.ts";
import { GuestSession, SpearHost } from "../../host/host.ts";
import { resolveWasmtimeLib } from "../../host/native.ts";
import { LogLevel } from "../../runtime/abi.ts";
import { Link } from "../../protocol/channel.ts";
import { HostBudget } from "../../protocol/budget.ts";
import { RpcServer } from "../../protocol/rpc.ts";
import { CONTEXT_KEY as CIS_CONTEXT, type SkillContext } from "../../families/cis/protocol.ts";
import {
  buildFuzzGuest,
  type CallRecord,
  FUZZ_CHAT_MODEL,
  type FuzzInit,
  type FuzzReport,
  Guard,
  GUARD_SLOTS,
  Rng,
  thunkName,
} from "../support/fuzz_guest.ts";
import { type RecordedRequest, type ScriptedReply, startOpenAIServer } from "../support/openai_server.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const HELLO = `${root}/guests/build/hello.wasm`;

/** A call running longer than this is stopped and fails the test (nothing the fuzzer calls should wait). */
const CALL_LIMIT_MS = 5000;
const MAX_FDS = 48;
/** Room for 48 fds with mic queues of up to 1 MiB reserved each, sessions and responses. */
const HOST_BUDGET_MB = 128;

function envInt(name: string): number | undefined {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

const SEED = (envInt("SPEARHOST_FUZZ_SEED") ?? crypto.getRandomValues(new Uint32Array(1))[0]) >>> 0;
const DURATION_MS = envInt("SPEARHOST_FUZZ_MS") ?? 10_000;

/** Errors a driver throws on purpose are Errors; these are bugs. */
const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

function formatCall(c: CallRecord): string {
  const notes = c.notes.map((n) => `\n      ${n}`).join("");
  return `#${c.seq} ${c.import}(${c.args.join(", ")}) → ${c.result ?? "(did not return)"}${notes}`;
}

function formatStats(report: FuzzReport): string {
  const rows = Object.entries(report.stats).map(([key, s]) => {
    const errnos = Object.entries(s.errno).sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n} ${c}`);
    return `  ${key.padEnd(28)} ${String(s.calls).padStart(7)} calls  ok ${String(s.ok).padStart(7)}  ${
      errnos.join(", ")
    }`;
  });
  return rows.join("\n");
}

/**
 * What the OpenAI-compatible backend answers, seeded: mostly a tool call to the request's
 * first tool (so AUTO_TOOL_CALL calls into the guest) or an echo, sometimes an upstream gone
 * wrong — a body that is not JSON, JSON of the wrong shape, an HTTP error.
 */
function upstreamReply(rng: Rng, request: RecordedRequest): ScriptedReply {
  const body = request.body as { tools?: { function?: { name?: unknown } }[] } | undefined;
  const tool = body?.tools?.[0]?.function?.name;
  const r = rng.int(20);
  if (typeof tool === "string" && r < 10) {
    const args = rng.pick([`{"a":${rng.i32()},"b":${rng.i32()}}`, "{}", "not json", `"${"x".repeat(5000)}"`]);
    return {
      kind: "tool_calls",
      calls: [{ name: rng.chance(0.9) ? tool : "unknown_tool", arguments: args }],
    };
  }
  if (r < 12) {
    return {
      kind: "raw",
      text: rng.pick(["", "{", "null", "[]", "\u0000\uffff"]),
      contentType: "application/json",
    };
  }
  if (r < 14) {
    return {
      body: rng.pick([
        { choices: "nope" },
        { choices: [null] },
        { choices: [{ message: { role: 7, content: {}, tool_calls: [1, null, { function: "x" }] } }] },
        {
          choices: [{ message: { tool_calls: [{ id: 5, function: { name: tool ?? "t", arguments: [] } }] } }],
        },
        { usage: { prompt_tokens: "many" }, choices: [] },
      ]),
    };
  }
  if (r < 15) {
    return { status: rng.pick([400, 429, 500, 503]), body: { error: { message: "upstream says no" } } };
  }
  return { kind: "echo" };
}

/**
 * What the guest runs as, for both of its halves: a run with `--serve` (user streams open) and a
 * skill's (the cis host functions serve it), so every family's checks are reached, not only
 * -ENOTCONN or -EACCES at their door. Small memory limits, so quotas are reached too; HTTP may
 * reach the scripted upstream only, and prompts are routed to it.
 */
function runContext(upstream: string): Record<string, unknown> {
  const skill: SkillContext = {
    name: "fuzz",
    namespace: "fuzz",
    maxValueBytes: 4096,
    maxTotalBytes: 64 << 10,
    httpAllow: [upstream],
    httpTimeoutMs: 2000,
    maxResponseBytes: 64 << 10,
    aiModel: FUZZ_CHAT_MODEL,
  };
  return { user_stream: { run: "fuzz" }, [CIS_CONTEXT]: skill };
}

/**
 * Addresses for the socket calls: the upstream (allowed: a connection carries the fuzz's bytes
 * to it), one loopback port the guest may both listen on and connect to (so its listeners
 * accept), binds the policy allows on either family, and refusals of every kind (policy, port
 * 0, unspecified, multicast, broadcast, the wrong family, mapped, out of range). Names are
 * left out: resolving one would wait on DNS.
 */
function socketAddresses(port: number, guestPort: number): string[] {
  return [
    `127.0.0.1:${port}`,
    `127.0.0.1:${port}`,
    `127.0.0.1:${guestPort}`,
    `127.0.0.1:${guestPort}`,
    "127.0.0.1:0",
    "[::1]:0",
    `[::1]:${port}`,
    "127.0.0.1:1",
    "0.0.0.0:0",
    "[::]:0",
    "224.0.0.1:9",
    "255.255.255.255:9",
    "[::ffff:127.0.0.1]:80",
    "127.0.0.1:65536",
    "10.0.0.1:80",
  ];
}

/** URLs for cis.http_request: the upstream's, and ones the skill's policy or the scheme refuses. */
function skillUrls(hostPort: string): string[] {
  return [
    `http://${hostPort}/v1/chat/completions`,
    `http://${hostPort}/`,
    `http://${hostPort}/v1/models?x=1`,
    "http://10.0.0.1/",
    "https://127.0.0.1:1/",
    "ftp://127.0.0.1/",
    "file:///etc/passwd",
    "http://[::1]:1/",
    "not a url",
  ];
}

/** Headerless PCM16 (the mic driver reads it as 16 kHz mono): half a second of a tone. */
function tone(): Uint8Array {
  const samples = Int16Array.from({ length: 8000 }, (_, i) => Math.round(8000 * Math.sin(i / 5)));
  return new Uint8Array(samples.buffer);
}

Deno.test("fuzz: every registry import, seeded and time-bounded; the host survives and leaks nothing", async () => {
  console.log(
    `fuzz seed ${SEED}: replay with SPEARHOST_FUZZ_SEED=${SEED} (SPEARHOST_FUZZ_MS=${DURATION_MS})`,
  );
  const tmp = await Deno.makeTempDir({ prefix: "spear-fuzz-" });
  // A port that was free a moment ago, for the guest's own listeners (taken by then: EADDRINUSE, a valid answer).
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const guestPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const openai = startOpenAIServer();
  const upstreamRng = new Rng(SEED ^ 0x5eed);
  // Each request takes one reply; this one queues its successor.
  const upstream: ScriptedReply = {
    kind: "dynamic",
    reply: (request) => {
      openai.enqueue(upstream);
      return upstreamReply(upstreamRng, request);
    },
  };
  openai.enqueue(upstream);
  const problems: string[] = [];
  const logs = { records: 0, internal: [] as string[] };
  let host: SpearHost | undefined;
  try {
    await Deno.writeFile(`${tmp}/mic.raw`, tone());
    const features = ["supports_tools", "supports_json_schema"];
    const config = parseConfig({
      backends: [
        { name: "stub", kind: "stub", ops: ["chat_completions"], features },
        {
          name: "openai",
          kind: "openai_chat_completion",
          base_url: openai.url,
          model: FUZZ_CHAT_MODEL,
          ops: ["chat_completions"],
          features,
        },
      ],
      mic: { file: `${tmp}/mic.raw` },
      memory: { path: `${tmp}/memory.db` },
      // Sockets and skills may reach the scripted upstream and listen on loopback, nothing else.
      net: { allow: [openai.hostPort, `127.0.0.1:${guestPort}`], listen: ["127.0.0.1:*", "[::1]:*"] },
    });

    // The built families' drivers, each handler watched for programming errors.
    const drivers = await createDrivers(config);
    for (const driver of drivers) {
      (driver as { handlers?: unknown }).handlers = driver.handlers?.map((h) => ({
        method: h.method,
        run(params: unknown, ctx: Parameters<typeof h.run>[1]) {
          const note = (e: unknown) => {
            if (PROGRAMMING_ERRORS.some((c) => e instanceof c)) {
              problems.push(`driver ${driver.family}, ${h.method.name}: ${(e as Error).stack}`);
            }
            throw e;
          };
          // A handler that catches its own bugs answers {error: {code: "internal_error"}}: a bug too.
          const check = (result: unknown) => {
            const error = (result as { error?: { code?: unknown } } | null)?.error;
            if (error?.code === "internal_error") {
              problems.push(`driver ${driver.family}, ${h.method.name}: ${JSON.stringify(result)}`);
            }
            return result;
          };
          try {
            const result = h.run(params, ctx);
            return result instanceof Promise ? result.then(check, note) : check(result);
          } catch (e) {
            note(e);
          }
        },
      }));
    }
    host = new SpearHost({ config, drivers, cacheDir: null, logSink: () => {} });
    const handlers = await host.start();

    // The guest's link and session, served as SpearHost serves a guest.
    const link = Link.create();
    const budget = HostBudget.create(HOST_BUDGET_MB << 20);
    const session = new GuestSession(1_000_000, "fuzz", link, config, budget);
    session.context = runContext(openai.hostPort);
    session.rpc = new RpcServer((op, fd, p) => session.send(op, fd, p), handlers, { session }, budget);
    // Served by the session's own loop, as SpearHost serves a guest; the sink counts records.
    const sink = (_guest: string, level: number, text: string) => {
      logs.records++;
      if (level === LogLevel.ERROR && text.startsWith("host: internal error")) logs.internal.push(text);
    };

    const imports = allImports();
    const families = FAMILIES.flatMap((f) => f.imports.map(() => f.name)); // allImports' order
    assert.equal(families.length, imports.length);
    const guest = buildFuzzGuest(imports);
    const guard = new Float64Array(new SharedArrayBuffer(GUARD_SLOTS * 8));
    const init: FuzzInit = {
      libPath: resolveWasmtimeLib(),
      wasm: guest.wasm,
      imports,
      thunks: guest.thunks,
      families,
      link: link.buffers,
      budget: budget.buffer,
      maxFds: MAX_FDS,
      memoryBytes: 64 << 20,
      seed: SEED,
      durationMs: DURATION_MS,
      guard: guard.buffer as SharedArrayBuffer,
      context: session.context,
      addresses: socketAddresses(openai.port, guestPort),
      loopback: `127.0.0.1:${guestPort}`,
      pipes: session.pipes.buffer,
      urls: skillUrls(openai.hostPort),
    };

    const served = session.serve(sink);
    const worker = new Worker(new URL("../support/fuzz_worker.ts", import.meta.url), { type: "module" });
    let blocked = "";
    let report: FuzzReport;
    const timers: ReturnType<typeof setTimeout>[] = [];
    try {
      report = await new Promise<FuzzReport>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<FuzzReport>) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`the fuzz worker crashed: ${e.message}`));
        };
        // The per-call guard: a call that blocks is stopped (it then traps) and named.
        timers.push(setInterval(() => {
          if (guard[Guard.IN_CALL] !== 1 || link.toGuest.terminateRequested) return;
          if (Date.now() - guard[Guard.STARTED_AT] <= CALL_LIMIT_MS) return;
          const d = imports[guard[Guard.IMPORT]];
          blocked = `call #${
            guard[Guard.SEQ]
          } to ${d.module}.${d.name} blocked for more than ${CALL_LIMIT_MS} ms`;
          link.toGuest.requestTerminate();
        }, 100));
        // If even that does not end it, give up on the worker.
        timers.push(setTimeout(() => {
          worker.terminate();
          reject(new Error(`the fuzz worker did not finish (${blocked || "no call was blocked"})`));
        }, DURATION_MS + CALL_LIMIT_MS + 60_000));
        worker.postMessage(init);
      });
    } finally {
      timers.forEach((t) => clearTimeout(t));
      worker.terminate();
      session.end();
      link.toHost.ring(); // release the serve loop
      await served;
    }

    const seconds = report.elapsedMs / 1000;
    console.log(
      `fuzz: ${report.calls} calls in ${seconds.toFixed(1)} s (${
        Math.round(report.calls / seconds)
      } calls/s), ` +
        `${report.fdsCreated} fds opened, ${report.scenarios} scripted sequences, ` +
        `${report.toolCalls} tool calls into the guest, ` +
        `${report.reentrantCalls} hostcalls from tools, ${logs.records} log records, ` +
        `${openai.requests.length} requests to the OpenAI backend, host budget after closing every fd ` +
        `${report.budgetUsedAfterClose} bytes; per import (calls, ok, errno):\n` +
        formatStats(report),
    );
    const replay = `(seed ${SEED}: SPEARHOST_FUZZ_SEED=${SEED})`;
    if (report.fatal) assert.fail(`the fuzz worker failed ${replay}: ${report.fatal}`);
    for (const f of report.failures) {
      assert.fail(
        `${f.message}\n  in call ${formatCall(f.call)}\n  ${replay}\n  calls before it:\n` +
          f.recent.map((c) => `    ${formatCall(c)}`).join("\n"),
      );
    }
    if (blocked) assert.fail(`${blocked} ${replay}`);
    const firstOf = (
      list: string[],
    ) => [...list.slice(0, 3), ...(list.length > 3 ? [`… ${list.length} in all`] : [])];
    assert.deepEqual(firstOf(logs.internal), [], `internal errors logged by the hostcall binding ${replay}`);
    assert.deepEqual(firstOf(problems), [], `bugs of driver handlers ${replay}`);
    assert.ok(report.alive, `the guest did not answer a trivial call after the run ${replay}`);
    assert.equal(
      report.budgetUsedAfterClose,
      0,
      `host budget still charged after the guest closed every fd (a leak) ${replay}`,
    );
    if (report.calls >= 100 * imports.length) {
      const missed = imports.filter((d) => report.stats[`${d.module}.${d.name}`].calls === 0);
      assert.deepEqual(missed, [], "every import was called");
    }

    // The host still runs fresh guests: hello, and the fuzz guest itself through a call entry.
    const out = `${tmp}/hello.out`;
    const hello = await host.run(HELLO, { args: ["after", "fuzz"], stdoutFile: out, timeoutMs: 20_000 });
    assert.equal(hello.failure, undefined, JSON.stringify(hello.failure));
    assert.equal(hello.exitCode, 0);
    assert.equal(await Deno.readTextFile(out), "after fuzz\n");
    const trivial = imports.find((d) =>
      d.signatures[0].params.length === 0 && d.signatures[0].results[0] === "i64"
    )!;
    const call = await host.run(guest.wasm, {
      name: "fuzz-guest",
      timeoutMs: 20_000,
      entry: { kind: "call", export: thunkName(trivial) },
    });
    assert.equal(call.failure, undefined, JSON.stringify(call.failure));
    assert.equal(typeof call.values?.[0], "bigint");

    // The guest is gone: every driver that counts captures must have stopped them.
    for (const driver of drivers) {
      const counted = driver as { activeCaptures?: number };
      if (typeof counted.activeCaptures !== "number") continue;
      for (let i = 0; i < 100 && counted.activeCaptures > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(counted.activeCaptures, 0, `driver ${driver.family} still captures after the guest ended`);
    }
  } finally {
    await host?.close();
    await openai.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
