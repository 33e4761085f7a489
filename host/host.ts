/**
 * The host side (main thread): owns the shared Wasmtime engine, starts one Worker per
 * guest, serves each guest's link (logs, driver requests) and enforces the time limit.
 * Drivers — the code that talks to the outside world — plug in per family.
 */
import { Engine } from "../runtime/engine.ts";
import { openWasmtime } from "../ffi/wasmtime.ts";
import { decodeJson, Link, type Message } from "../protocol/channel.ts";
import { defaultConfig, type HostConfig } from "./config.ts";
import type { Entry, FailureKind, GuestInit, GuestResult } from "../runtime/instance.ts";
import type { WasmValue } from "../runtime/hostcall.ts";
import { type LogRecord, Op, opFamily } from "../protocol/wire.ts";
import { defaultCacheDir, resolveWasmtimeLib } from "./native.ts";
import { LogLevel } from "../runtime/abi.ts";

/** Where guest log lines go. */
export type LogSink = (guest: string, level: number, message: string) => void;

const LEVEL_NAMES = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/** Default sink: one line per record on the host's stderr. */
export const stderrLogSink: LogSink = (guest, level, message) => {
  const text = message.endsWith("\n") ? message.slice(0, -1) : message;
  const line = `[${guest}] ${LEVEL_NAMES[level] ?? "INFO"} ${text}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
};

/** The main-thread view of one running guest, handed to drivers. */
export class GuestSession {
  private ended = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    readonly id: number,
    readonly name: string,
    readonly link: Link,
    readonly config: HostConfig,
  ) {}

  get alive(): boolean {
    return !this.ended;
  }

  /** Sends a message into the guest's fd table and wakes it. */
  send(op: number, fd: number, payload?: Uint8Array): void {
    if (!this.ended) this.link.toGuest.send(op, fd, payload);
  }

  sendJson(op: number, fd: number, value: unknown): void {
    if (!this.ended) this.link.toGuest.sendJson(op, fd, value);
  }

  /** Registers teardown work run when the guest ends (stop captures, abort requests). */
  onEnd(cleanup: () => void): void {
    if (this.ended) cleanup();
    else this.cleanups.push(cleanup);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0)) {
      try {
        cleanup();
      } catch { /* one failing cleanup must not stop the others */ }
    }
  }
}

/**
 * State a driver keeps per guest fd. When a guest ends, each of its values goes to
 * `release` (abort a request, stop a capture) and the guest's map is dropped.
 */
export class FdSlots<T> {
  private readonly sessions = new Map<GuestSession, Map<number, T>>();

  constructor(private readonly release: (value: T) => void) {}

  /** The guest's fd → value map, created (and its cleanup registered) on first use. */
  of(session: GuestSession): Map<number, T> {
    let slots = this.sessions.get(session);
    if (!slots) {
      const created = new Map<number, T>();
      this.sessions.set(session, created);
      session.onEnd(() => {
        for (const value of created.values()) this.release(value);
        this.sessions.delete(session);
      });
      slots = created;
    }
    return slots;
  }

  /** The guest's map if it has one, without creating it. */
  peek(session: GuestSession): Map<number, T> | undefined {
    return this.sessions.get(session);
  }

  /** Every value of every guest. */
  *values(): IterableIterator<T> {
    for (const slots of this.sessions.values()) yield* slots.values();
  }
}

/** A main-thread driver for one hostcall family. */
export interface Driver {
  readonly family: "cchat" | "mic";
  handle(session: GuestSession, message: Message): void;
  /** Blocking guest requests (`GuestRuntime.call`) this driver answers, by method name. */
  readonly calls?: Record<string, (session: GuestSession, params: unknown) => Promise<unknown>>;
}

export interface HostOptions {
  config?: HostConfig;
  /** Path of libwasmtime; resolved from the install by default. */
  wasmtimeLib?: string;
  /** Directory for compiled modules; null disables the cache. */
  cacheDir?: string | null;
  logSink?: LogSink;
  drivers?: Driver[];
}

export interface RunOptions {
  /** argv for the guest after argv[0] (the guest's name). */
  args?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  memoryMb?: number;
  maxFds?: number;
  stdoutFile?: string;
  stderrFile?: string;
  /** Display name (defaults to the file name). */
  name?: string;
  /** `_start` with args (default), or one export called with typed args and input/output. */
  entry?: Entry;
}

export interface RunResult {
  exitCode: number;
  failure?: { kind: FailureKind | "timeout"; message: string };
  durationMs: number;
  /** A call entry's output bytes (`output: "cstring"`). */
  output?: Uint8Array;
  /** A call entry's typed results (`output: "values"`). */
  values?: WasmValue[];
}

let nextGuestId = 1;
const MAX_IDLE_LINKS = 4;

/** Runs guests. One host can run many guests at once; each gets its own Worker and store. */
export class SpearHost {
  readonly config: HostConfig;
  private engine?: Engine;
  private readonly libPath: string;
  private readonly cacheDir?: string;
  private readonly logSink: LogSink;
  private readonly drivers = new Map<string, Driver>();
  private readonly calls = new Map<string, Driver>();
  private running = 0;
  /**
   * Links of ended guests, reused: a Link's two SharedArrayBuffers are large, the allocator
   * zero-fills them (making them resident) and only GC frees them, so a fresh Link per run
   * grew RSS by ~10 MiB per sequential run with 16 MiB rings (tests/leak_test.ts).
   */
  private readonly idleLinks: Link[] = [];

  constructor(options: HostOptions = {}) {
    this.config = options.config ?? defaultConfig();
    this.libPath = options.wasmtimeLib ?? resolveWasmtimeLib();
    this.cacheDir = options.cacheDir === null ? undefined : options.cacheDir ?? defaultCacheDir();
    this.logSink = options.logSink ?? stderrLogSink;
    for (const driver of options.drivers ?? []) {
      this.drivers.set(driver.family, driver);
      for (const method of Object.keys(driver.calls ?? {})) this.calls.set(method, driver);
    }
  }

  private sharedEngine(): Engine {
    this.engine ??= Engine.create(openWasmtime(this.libPath));
    return this.engine;
  }

  /** Number of guests currently running. */
  get activeGuests(): number {
    return this.running;
  }

  /** Runs a guest to completion. Never throws for guest faults; see RunResult.failure. */
  async run(wasm: string | Uint8Array<ArrayBuffer>, options: RunOptions = {}): Promise<RunResult> {
    const started = performance.now();
    const bytes = typeof wasm === "string" ? await Deno.readFile(wasm) : wasm;
    const name = options.name ?? (typeof wasm === "string" ? wasm.split("/").pop()! : "guest.wasm");
    const limits = this.config.limits;
    const timeoutMs = options.timeoutMs ?? limits.timeout_ms;
    const memoryMb = options.memoryMb ?? limits.memory_mb;
    const link = this.idleLinks.pop()?.reset() ?? Link.create();
    const session = new GuestSession(nextGuestId++, name, link, this.config);
    const engine = this.sharedEngine();
    const init: GuestInit = {
      libPath: this.libPath,
      engineAddress: engine.address,
      name,
      wasm: bytes,
      args: [name, ...(options.args ?? [])],
      env: options.env ?? {},
      stdoutFile: options.stdoutFile,
      stderrFile: options.stderrFile,
      memoryBytes: memoryMb * 1024 * 1024,
      maxFds: options.maxFds ?? limits.max_fds,
      link: link.buffers,
      cacheDir: this.cacheDir,
      entry: options.entry,
    };

    this.running++;
    const worker = new Worker(new URL("../runtime/worker.ts", import.meta.url), { type: "module" });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      link.toGuest.requestTerminate(); // wakes a guest parked in a hostcall
      engine.incrementEpoch(); // interrupts a guest running wasm
    }, timeoutMs);
    const served = this.serve(session);
    let guestDone = false; // the worker sent its result: it no longer touches the link
    try {
      const result = await new Promise<GuestResult>((resolve) => {
        worker.onmessage = (e: MessageEvent<GuestResult>) => {
          guestDone = true;
          resolve(e.data);
        };
        worker.onerror = (e) => {
          e.preventDefault();
          resolve({
            exitCode: 1,
            failure: { kind: "internal", message: `guest worker failed: ${e.message}` },
          });
        };
        worker.postMessage(init);
      });
      const durationMs = performance.now() - started;
      if (timedOut && result.failure?.kind === "terminated") {
        return {
          exitCode: 124,
          failure: { kind: "timeout", message: `timeout after ${timeoutMs} ms` },
          durationMs,
        };
      }
      return { ...result, durationMs };
    } finally {
      clearTimeout(timer);
      worker.terminate();
      session.end();
      link.toHost.ring(); // release the serve loop
      await served;
      if (guestDone && this.idleLinks.length < MAX_IDLE_LINKS) this.idleLinks.push(link);
      this.running--;
    }
  }

  /** Serves the guest's outbound channel until the session ends. */
  private async serve(session: GuestSession): Promise<void> {
    const { toHost, toGuest } = session.link;
    for (;;) {
      const seen = toHost.bell;
      toHost.receive((m) => this.dispatch(session, m), () => toGuest.ring());
      toGuest.flush();
      if (!session.alive) {
        toHost.receive((m) => this.dispatch(session, m)); // the last log lines
        return;
      }
      await toHost.waitBellAsync(seen);
    }
  }

  private dispatch(session: GuestSession, m: Message): void {
    if (m.op === Op.LOG) {
      const record = decodeJson<LogRecord & { host?: boolean }>(m.payload);
      this.logSink(session.name, record.level, record.message);
      return;
    }
    if (m.op === Op.CALL) {
      this.answerCall(session, decodeJson(m.payload));
      return;
    }
    const family = opFamily(m.op);
    const driver = this.drivers.get(family);
    if (driver) driver.handle(session, m);
    else this.logSink(session.name, LogLevel.ERROR, `host: no driver for ${family} (op ${m.op})`);
  }

  private answerCall(session: GuestSession, call: { id: number; method: string; params: unknown }): void {
    const driver = this.calls.get(call.method);
    const reply = (result: unknown) => session.sendJson(Op.REPLY, 0, { id: call.id, result });
    if (!driver) {
      reply({ error: `no host method ${call.method}` });
      return;
    }
    driver.calls![call.method](session, call.params).then(
      reply,
      (e) => reply({ error: String(e?.message ?? e) }),
    );
  }

  /** Frees the engine. Call when no guest is running and the host is no longer needed. */
  close(): void {
    if (this.running > 0) throw new Error("guests are still running");
    this.engine?.delete();
    this.engine = undefined;
  }
}
