/**
 * The host side (main thread): owns the shared Wasmtime engine, its drivers (started and
 * stopped with the host) and the registry of running guests; runs each guest in a Worker of
 * its own (pooled between runs, host/guest_worker.ts) and serves that guest's link: log
 * records, requests to drivers, streams and notices. Time limits are enforced by a thread of
 * their own (host/watchdog.ts).
 */
import { Engine, Module } from "../runtime/engine.ts";
import { openWasmtime } from "../ffi/wasmtime.ts";
import { quietRustBacktraces } from "../ffi/rust_env.ts";
import { type Frame, Link, type Message, TerminateReason } from "../protocol/channel.ts";
import { HostBudget } from "../protocol/budget.ts";
import { decodeUtf8 } from "../protocol/bytes.ts";
import { type BytePipe, PipeArena } from "../protocol/pipe.ts";
import { type Handler, RpcServer } from "../protocol/rpc.ts";
import { decodeCredit, decodeFrame, type Flow, streamChannel, StreamSender } from "../protocol/stream.ts";
import { encode } from "../protocol/schema.ts";
import { NoticeEnvelope, Op } from "../protocol/wire.ts";
import { defaultConfig, type HostConfig, MAX_LIMITS } from "./config.ts";
import type { Entry, FailureKind, GuestInit, GuestResult } from "../runtime/instance.ts";
import type { WasmValue } from "../runtime/hostcall.ts";
import { defaultCacheDir, resolveWasmtimeLib } from "./native.ts";
import { LogLevel } from "../runtime/abi.ts";
import { Watchdog } from "./watchdog.ts";
import { guestWorker, releaseGuestWorkers, returnGuestWorker } from "./guest_worker.ts";
import { escapeLogText } from "./log.ts";

/**
 * Where guest log lines go. A sink that returns a promise is awaited before the next record
 * is read, so a slow sink slows the guest (its log calls wait) instead of piling up records.
 */
export type LogSink = (guest: string, level: number, message: string) => unknown;

const LEVEL_NAMES = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
const encoder = new TextEncoder();

/**
 * Default sink: one line per record on the host's stderr, control characters escaped so a
 * guest can neither add lines nor drive the terminal. Written asynchronously: a slow reader
 * of stderr slows the guest (its log calls wait), never the host's event loop.
 */
export const stderrLogSink: LogSink = async (guest, level, message) => {
  const text = escapeLogText(message.endsWith("\n") ? message.slice(0, -1) : message);
  const bytes = encoder.encode(`[${escapeLogText(guest)}] ${LEVEL_NAMES[level] ?? "INFO"} ${text}\n`);
  for (let at = 0; at < bytes.length;) at += await Deno.stderr.write(bytes.subarray(at));
};

/**
 * Something slow a driver does for a guest (an AI call, an HTTP request), reported to the
 * embedder's ActivitySink while it is in flight: the CLI shows a status line on a terminal.
 */
export interface Activity {
  /** The guest's display name. */
  guest: string;
  /** What is in flight, e.g. "ai_prompt (backend openai)". */
  what: string;
  /** `performance.now()` when it started. */
  startedAt: number;
}

/** Told when an activity starts and when it ends (each `begin` gets exactly one `end`). */
export interface ActivitySink {
  begin(activity: Activity): void;
  end(activity: Activity): void;
}

/** What a driver's request handlers get besides the fd and signal. */
export interface SessionContext {
  session: GuestSession;
}

/** Receives a guest → host stream. */
export interface InboundStream {
  data(bytes: Uint8Array, at: number): void;
  event?(value: Record<string, unknown>): void;
  /** The guest closed its end. */
  closed?(): void;
}

/**
 * How long the host keeps writing a finished guest's remaining log records to a sink that
 * does not keep up (a stderr nobody reads); the rest are counted in `RunResult.droppedLogs`,
 * so a stalled reader can hold neither the run nor the host.
 */
export const LOG_DRAIN_GRACE_MS = 2000;

/** Most bytes the host holds towards one guest before it stops that guest (a driver bug guard). */
export const MAX_INBOUND_BACKLOG_BYTES = 128 << 20;

/** The streams of a host-created handle: toward the guest, and (duplex) the id of the one back. */
export interface HandleStreams {
  sender: StreamSender;
  /** The guest → host stream's id (return its credit with `GuestSession.credit`). */
  inbound?: number;
}

/** The main-thread view of one running guest, handed to drivers. */
export class GuestSession {
  private ended = false;
  private readonly cleanups: (() => void)[] = [];
  private readonly finishers: (() => void)[] = [];
  private finishedAll = false;
  private readonly senders = new Map<number, { sender: StreamSender; onClose?: () => void }>();
  private readonly inbound = new Map<number, InboundStream>();
  private readonly openPipes = new Set<number>();
  private nextHostStream = -1;
  private drainDeadline?: Promise<void>;
  /** Log records not written because the sink did not drain after the guest ended. */
  droppedLogs = 0;
  /** Set by the host: answers this guest's requests. */
  rpc!: RpcServer<SessionContext>;

  /** Per-run values for families (RunOptions.context), e.g. `cis`: the running skill. */
  context: Readonly<Record<string, unknown>> = {};
  /** When the host stops the guest (runtime/guest.ts absoluteNow() time); Infinity if never. */
  deadline = Infinity;
  /** Where `activity` reports to (HostOptions.activity). */
  activitySink?: ActivitySink;
  /**
   * Where this guest's byte pipes live (protocol/pipe.ts). It may grow to twice the host budget:
   * the budget bounds the pipes in use, the rest is room for blocks of other sizes waiting for reuse.
   */
  readonly pipes: PipeArena;

  constructor(
    readonly id: number,
    readonly name: string,
    private readonly link: Link,
    readonly config: HostConfig,
    readonly budget: HostBudget,
  ) {
    this.pipes = PipeArena.create(2 * budget.limit);
  }

  /**
   * A byte pipe of window `limit` for this guest, charged to its host budget; null past the
   * budget or the arena. The host waits on it directly (BytePipe.waitForData / waitForRoom).
   */
  openPipe(limit: number): BytePipe | null {
    const pipe = this.pipes.allocate(limit);
    if (!pipe) return null;
    if (!this.budget.tryCharge(pipe.ref.capacity)) {
      this.pipes.release(pipe.ref);
      return null;
    }
    this.openPipes.add(pipe.id);
    return pipe;
  }

  /** Frees a pipe once neither side uses it: its block is reused, its budget returned. */
  closePipe(pipe: BytePipe): void {
    if (!this.openPipes.delete(pipe.id)) return;
    this.budget.release(pipe.ref.capacity);
    this.pipes.release(pipe.ref);
  }

  /** Tells the worker's side of a pipe to look again (it asked with `wantData` / `wantRoom`). */
  signalPipe(pipe: BytePipe): void {
    this.send(Op.PIPE_SIGNAL, pipe.id);
  }

  /** Milliseconds left before the host stops this guest (0 when past). */
  remainingMs(): number {
    return Math.max(0, this.deadline - (performance.timeOrigin + performance.now()));
  }

  /**
   * Reports a slow operation for this guest to the embedder's activity sink; call the
   * returned function when it ends (it is also ended when the guest ends). Idempotent.
   */
  activity(what: string): () => void {
    const sink = this.activitySink;
    if (!sink) return () => {};
    const activity: Activity = { guest: this.name, what, startedAt: performance.now() };
    let open = true;
    const end = () => {
      if (!open) return;
      open = false;
      try {
        sink.end(activity);
      } catch { /* a failing sink must not fail the request */ }
    };
    try {
      sink.begin(activity);
    } catch { /* as above */ }
    this.onEnd(end);
    return end;
  }

  get alive(): boolean {
    return !this.ended;
  }

  /** Sends one message towards the guest; a guest that lets too much pile up is stopped. */
  send(op: number, fd: number, payload?: Uint8Array | string, head?: Uint8Array): void {
    if (this.ended) return;
    const channel = this.link.toGuest;
    channel.send(op, fd, payload, head);
    if (channel.backlogBytes > MAX_INBOUND_BACKLOG_BYTES) channel.requestTerminate(TerminateReason.OVERFLOW);
  }

  /** Opens the host end of a host → guest stream the guest asked for (its id came in a request). */
  openStream(id: number, flow: Flow, onClose?: () => void): StreamSender {
    // The levels are read live: a lossy stream drops by the ring's state at each send.
    const channel = streamChannel(this.link.toGuest, (op, fd, p, head) => this.send(op, fd, p, head));
    const sender = new StreamSender(channel, id, flow);
    this.senders.set(id, { sender, onClose });
    return sender;
  }

  /**
   * A handle the host creates for the guest (an accepted connection): a host-allocated stream
   * plus a notice the guest's family adopts into an fd. A duplex handle (`inbound`) also gets a
   * guest → host stream, registered here before the notice goes, so the guest's first bytes
   * always find their receiver; the guest adopts it with `GuestRuntime.adoptOutbound`.
   */
  createHandle(
    family: string,
    type: string,
    info: unknown,
    flow: Flow,
    onClose?: () => void,
    inbound?: { stream: InboundStream; window: number },
  ): HandleStreams {
    const sender = this.openStream(this.nextHostStream--, flow, onClose);
    let outbound: NoticeEnvelope["outbound"];
    if (inbound) {
      outbound = { stream: this.nextHostStream--, window: inbound.window };
      this.receiveStream(outbound.stream, inbound.stream);
    }
    this.notice(family, type, info, sender.id, outbound);
    return { sender, inbound: outbound?.stream };
  }

  /** Tells the guest's family about something the host did for it. */
  notice(
    family: string,
    type: string,
    info: unknown,
    stream?: number,
    outbound?: NoticeEnvelope["outbound"],
  ): void {
    const notice: NoticeEnvelope = { family, type, info };
    if (stream !== undefined) notice.stream = stream;
    if (outbound !== undefined) notice.outbound = outbound;
    this.send(Op.NOTICE, 0, encode(NoticeEnvelope, notice));
  }

  /** Receives a guest → host stream; `credit` returns room to the guest's writer. */
  receiveStream(id: number, stream: InboundStream): void {
    this.inbound.set(id, stream);
  }

  credit(id: number, bytes: number): void {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, bytes, true);
    this.send(Op.STREAM_CREDIT, id, payload);
  }

  /** Routes the stream ops of one message from the guest. */
  applyStream(m: Message): void {
    switch (m.op) {
      case Op.STREAM_CREDIT:
        this.senders.get(m.fd)?.sender.grant(decodeCredit(m.payload));
        return;
      case Op.STREAM_CLOSE: {
        const out = this.senders.get(m.fd);
        this.senders.delete(m.fd);
        out?.sender.close();
        out?.onClose?.();
        const into = this.inbound.get(m.fd);
        this.inbound.delete(m.fd);
        into?.closed?.();
        return;
      }
      case Op.STREAM_DATA: {
        const frame = decodeFrame(m.payload);
        this.inbound.get(m.fd)?.data(frame.bytes, frame.at);
        return;
      }
      case Op.STREAM_EVENT:
        this.inbound.get(m.fd)?.event?.(JSON.parse(decodeUtf8(m.payload)));
        return;
    }
  }

  /**
   * Serves the guest's outbound channel until the session ends: log records go to `sink`,
   * requests to the session's RpcServer, stream messages to their streams. A record is
   * written before the next is read, so a slow sink backs up into the guest, not into host
   * memory. Call `finish` after the guest's worker has ended, with the frames it handed over.
   */
  async serve(sink: LogSink): Promise<void> {
    const { toHost, toGuest } = this.link;
    const backlog: Message[] = [];
    for (;;) {
      const seen = toHost.bell;
      toHost.receive((m) => backlog.push(m), () => toGuest.ring());
      for (const m of backlog.splice(0)) {
        const pending = this.deliver(m, sink);
        if (pending) await pending;
      }
      toGuest.flush();
      if (!this.alive) {
        toHost.receive((m) => backlog.push(m)); // the last records
        for (const m of backlog.splice(0)) {
          const pending = this.deliver(m, sink);
          if (pending) await pending;
        }
        return;
      }
      // More already waiting: still let promise callbacks (handlers finishing) run in between.
      await (toHost.used === 0 ? toHost.waitBellAsync(seen) : undefined);
    }
  }

  /**
   * Applies the frames a finished worker handed over (records still waiting for room in the
   * ring), then runs the `onFinished` work: everything the guest sent has now been applied.
   */
  async finish(frames: Frame[], sink: LogSink): Promise<void> {
    const out: Message[] = [];
    this.link.toHost.receive((m) => out.push(m));
    this.link.toHost.receiveFrames(frames, (m) => out.push(m));
    for (const m of out) {
      const pending = this.deliver(m, sink);
      if (pending) await pending;
    }
    if (this.finishedAll) return;
    this.end();
    this.finishedAll = true;
    for (const work of this.finishers.splice(0)) {
      try {
        work();
      } catch { /* one failing finisher must not stop the others */ }
    }
  }

  /**
   * Dispatches one message; a log record's write is awaited, bounded once the guest ended.
   * Returns a promise only when there is something to wait for: most messages cost no hop.
   */
  private deliver(m: Message, sink: LogSink): Promise<void> | undefined {
    if (m.op === Op.LOG && this.droppedLogs > 0) {
      this.droppedLogs++; // the sink stalled: the rest of this guest's records are counted
      return;
    }
    const pending = this.dispatch(m, sink);
    if (!pending) return;
    return this.drained(pending).then((drained) => {
      if (!drained) this.droppedLogs++;
    });
  }

  private dispatch(m: Message, sink: LogSink): void | Promise<void> {
    switch (m.op) {
      case Op.LOG: {
        const known = m.fd >= LogLevel.TRACE && m.fd <= LogLevel.ERROR;
        const written = sink(this.name, known ? m.fd : LogLevel.INFO, decodeUtf8(m.payload));
        return written instanceof Promise ? written.then(() => {}) : undefined;
      }
      case Op.REQUEST:
        this.rpc.receiveRequest(m.fd, m.payload);
        return;
      case Op.CANCEL:
        this.rpc.receiveCancel(m.payload);
        return;
      default:
        this.applyStream(m);
    }
  }

  /** Registers teardown work run when the guest ends (stop captures, abort requests). */
  onEnd(cleanup: () => void): void {
    if (this.ended) cleanup();
    else this.cleanups.push(cleanup);
  }

  /**
   * Registers work run once everything the guest sent has been applied, after it ended: what a
   * guest wrote just before exiting (the last bytes of a reply, a stream close) still reaches
   * its driver, as a process's queued socket data is still sent after it exits.
   */
  onFinished(work: () => void): void {
    if (this.finishedAll) work();
    else this.finishers.push(work);
  }

  /** Settles when `p` does, or at the latest LOG_DRAIN_GRACE_MS after the guest ended (false). */
  async drained(p: Promise<void>): Promise<boolean> {
    this.drainDeadline ??= new Promise<void>((resolve) => {
      this.onEnd(() => setTimeout(resolve, LOG_DRAIN_GRACE_MS));
    });
    let timedOut = false;
    await Promise.race([p, this.drainDeadline.then(() => void (timedOut = true))]);
    return !timedOut;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.rpc?.close();
    for (const { sender, onClose } of this.senders.values()) {
      sender.close();
      try {
        onClose?.();
      } catch { /* one failing cleanup must not stop the others */ }
    }
    this.senders.clear();
    for (const stream of this.inbound.values()) {
      try {
        stream.closed?.();
      } catch { /* one failing cleanup must not stop the others */ }
    }
    this.inbound.clear();
    for (const cleanup of this.cleanups.splice(0)) {
      try {
        cleanup();
      } catch { /* one failing cleanup must not stop the others */ }
    }
  }
}

/** A main-thread driver for one hostcall family. */
export interface Driver {
  readonly family: string;
  /** The requests this driver answers. */
  readonly handlers?: readonly Handler<SessionContext>[];
  /** Runs when the host starts (before its first guest). */
  start?(host: SpearHost): void | Promise<void>;
  /** Runs when the host closes: release devices, stop servers. */
  stop?(): void | Promise<void>;
}

export interface HostOptions {
  config?: HostConfig;
  /** Path of libwasmtime; resolved from the install by default. */
  wasmtimeLib?: string;
  /** Directory for compiled modules; null disables the cache. */
  cacheDir?: string | null;
  logSink?: LogSink;
  /** The drivers; every built family's (families/registry.ts) when absent. */
  drivers?: Driver[];
  /** Told about slow driver work in flight (AI and HTTP calls of skills). */
  activity?: ActivitySink;
}

export interface RunOptions {
  /** argv for the guest after argv[0] (the guest's name). */
  args?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  memoryMb?: number;
  maxFds?: number;
  /** What the host may keep on the guest's behalf, in MiB (limits.host_memory_mb). */
  hostMemoryMb?: number;
  stdoutFile?: string;
  stderrFile?: string;
  /** Display name (defaults to the file name). */
  name?: string;
  /** `_start` with args (default), or one export called with typed args and input/output. */
  entry?: Entry;
  /**
   * Per-run values for families, by family name (structured-cloneable): the worker part sees
   * them as `GuestRuntime.context`, the driver part as `GuestSession.context`. Skills pass
   * their manifest's limits here (`cis`).
   */
  context?: Record<string, unknown>;
  /**
   * Called with the guest's session before its worker starts: something that serves outside
   * clients for this run (the user-stream endpoint) binds to it here.
   */
  onSession?: (session: GuestSession) => void;
}

export interface RunResult {
  exitCode: number;
  failure?: { kind: FailureKind | "timeout"; message: string };
  durationMs: number;
  /** A call entry's output bytes (`output: "cstring"`). */
  output?: Uint8Array;
  /** A call entry's typed results (`output: "values"`). */
  values?: WasmValue[];
  /** Log records dropped because the log sink did not drain (LOG_DRAIN_GRACE_MS); normally 0. */
  droppedLogs?: number;
}

/** Limits an embedder may pass; anything outside is a RangeError before a guest starts. */
export const LIMIT_RANGES = {
  timeoutMs: [1, MAX_LIMITS.timeout_ms],
  memoryMb: [1, MAX_LIMITS.memory_mb],
  maxFds: [1, MAX_LIMITS.max_fds],
  hostMemoryMb: [1, MAX_LIMITS.host_memory_mb],
} as const;

function checkLimit(name: keyof typeof LIMIT_RANGES, value: number): number {
  const [min, max] = LIMIT_RANGES[name];
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

let nextGuestId = 1;
const MAX_IDLE_LINKS = 4;

/** Runs guests. One host can run many guests at once; each gets its own Worker and store. */
export class SpearHost {
  readonly config: HostConfig;
  private engine?: Engine;
  private watchdog?: Watchdog;
  private readonly libPath: string;
  private readonly cacheDir?: string;
  private readonly logSink: LogSink;
  private readonly activitySink?: ActivitySink;
  /** The embedder's drivers (HostOptions.drivers): started all together. */
  private readonly givenDrivers?: Driver[];
  private started?: Promise<Map<string, Handler<SessionContext>>>;
  /** Without given drivers: the registry's, created and started per family on first need. */
  private familyDrivers = new Map<string, Promise<void>>();
  /** Every registry driver made, started or not (close stops what a failed start began). */
  private madeDrivers: Driver[] = [];
  private handlers = new Map<string, Handler<SessionContext>>();
  private readonly live = new Map<number, GuestSession>();
  /**
   * Links of ended guests, reused: a Link's two SharedArrayBuffers are large, the allocator
   * zero-fills them (making them resident) and only GC frees them, so a fresh Link per run
   * grew RSS by ~10 MiB per sequential run with 16 MiB rings (tests/system/leak_test.ts).
   */
  private readonly idleLinks: Link[] = [];

  constructor(options: HostOptions = {}) {
    quietRustBacktraces(); // before any Worker: see ffi/rust_env.ts
    this.config = options.config ?? defaultConfig();
    this.libPath = options.wasmtimeLib ?? resolveWasmtimeLib();
    this.cacheDir = options.cacheDir === null ? undefined : options.cacheDir ?? defaultCacheDir();
    this.logSink = options.logSink ?? stderrLogSink;
    this.givenDrivers = options.drivers;
    this.activitySink = options.activity;
  }

  private sharedEngine(): Engine {
    this.engine ??= Engine.create(openWasmtime(this.libPath));
    return this.engine;
  }

  /**
   * Validates bytes as a WebAssembly module with the host's engine, without compiling them;
   * throws WasmError ("invalid_module") with the engine's reason.
   */
  validateModule(wasm: Uint8Array<ArrayBuffer>): void {
    Module.validate(this.sharedEngine(), wasm);
  }

  /** Starts the drivers (once); `run` does it on first use. */
  start(): Promise<Map<string, Handler<SessionContext>>> {
    return this.startDrivers();
  }

  /**
   * Starts the drivers of `families` (every family when absent), each once, and returns the
   * handlers of all started so far. The embedder's drivers start all together; the registry's
   * are made per family, so a guest pays for the drivers of the families its imports reach
   * and no other (their modules were ~15 ms of a hello guest's cold start). The launcher grants
   * a guest the permissions of those families only, so other drivers could do nothing for it.
   */
  private startDrivers(families?: ReadonlySet<string>): Promise<Map<string, Handler<SessionContext>>> {
    if (this.givenDrivers) {
      const drivers = this.givenDrivers;
      this.started ??= (async () => {
        for (const driver of drivers) await this.startDriver(driver);
        return this.handlers;
      })();
      return this.started;
    }
    return (async () => {
      const { FAMILIES, createFamilyDriver } = await import("../families/registry.ts");
      const starts = FAMILIES.filter((f) => !families || families.has(f.name)).map((f) => {
        let started = this.familyDrivers.get(f.name);
        if (!started) {
          started = createFamilyDriver(this.config, f).then(async (driver) => {
            if (!driver) return;
            this.madeDrivers.push(driver);
            await this.startDriver(driver);
          });
          this.familyDrivers.set(f.name, started);
        }
        return started;
      });
      await Promise.all(starts);
      return this.handlers;
    })();
  }

  private async startDriver(driver: Driver): Promise<void> {
    await driver.start?.(this);
    for (const h of driver.handlers ?? []) this.handlers.set(h.method.name, h);
  }

  /** The families a module's imports reach (with those they use), or undefined (all) when unreadable. */
  private async familiesOf(bytes: Uint8Array): Promise<ReadonlySet<string> | undefined> {
    const { familiesOfModule } = await import("../families/registry.ts");
    return familiesOfModule(bytes);
  }

  /** Number of guests currently running. */
  get activeGuests(): number {
    return this.live.size;
  }

  /** The running guests by id (drivers find a guest for an outside client here). */
  get sessions(): ReadonlyMap<number, GuestSession> {
    return this.live;
  }

  /** Runs a guest to completion. Never throws for guest faults; see RunResult.failure. */
  async run(wasm: string | Uint8Array<ArrayBuffer>, options: RunOptions = {}): Promise<RunResult> {
    const started = performance.now();
    const limits = this.config.limits;
    const timeoutMs = checkLimit("timeoutMs", options.timeoutMs ?? limits.timeout_ms);
    const memoryMb = checkLimit("memoryMb", options.memoryMb ?? limits.memory_mb);
    const maxFds = checkLimit("maxFds", options.maxFds ?? limits.max_fds);
    const hostMemoryMb = checkLimit("hostMemoryMb", options.hostMemoryMb ?? limits.host_memory_mb);
    // The worker boots (an isolate and its modules: tens of ms) while the engine is made (the
    // first time), the module is read and its families' drivers start, instead of after them.
    // The CLI's child has one booting already (cli/child.ts).
    const worker = guestWorker();
    let engine: Engine;
    let handlers: Map<string, Handler<SessionContext>>;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      engine = this.sharedEngine();
      bytes = typeof wasm === "string" ? await Deno.readFile(wasm) : wasm;
      handlers = await this.startDrivers(await this.familiesOf(bytes));
    } catch (e) {
      returnGuestWorker(worker); // it was never given the guest: the next one can have it
      throw e;
    }
    const name = options.name ?? (typeof wasm === "string" ? wasm.split("/").pop()! : "guest.wasm");
    const link = this.idleLinks.pop()?.reset() ?? Link.create();
    const budget = HostBudget.create(hostMemoryMb << 20);
    const session = new GuestSession(nextGuestId++, name, link, this.config, budget);
    const deadline = performance.timeOrigin + performance.now() + timeoutMs;
    session.context = options.context ?? {};
    session.deadline = deadline;
    session.activitySink = this.activitySink;
    session.rpc = new RpcServer(
      (op, fd, payload) => session.send(op, fd, payload),
      handlers,
      { session },
      budget,
    );
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
      maxFds,
      link: link.buffers,
      budget: budget.buffer,
      pipes: session.pipes.buffer,
      cacheDir: this.cacheDir,
      entry: options.entry,
      context: options.context,
      deadline,
    };

    options.onSession?.(session);
    this.live.set(session.id, session);
    const served = session.serve(this.logSink);
    let guestDone = false; // the worker sent its result: it no longer touches the link
    let leftover: Frame[] = [];
    try {
      const result = await new Promise<GuestResult>((resolve) => {
        worker.onmessage = (e: MessageEvent<GuestResult>) => {
          guestDone = true;
          leftover = e.data.outbound ?? [];
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
        // Armed once the guest is on its way: making the time-limit thread (~25 ms, the first
        // time) overlaps its start-up. The deadline is an instant, so it is not pushed back.
        this.watchdog ??= new Watchdog(this.libPath, engine.address);
        this.watchdog.arm(session.id, deadline, link.toGuest);
      });
      const durationMs = performance.now() - started;
      const reason = link.toGuest.terminateReason;
      const { outbound: _, ...plain } = result;
      if (result.failure?.kind === "terminated" && reason === TerminateReason.TIMEOUT) {
        return {
          exitCode: 124,
          failure: { kind: "timeout", message: `timeout after ${timeoutMs} ms` },
          durationMs,
        };
      }
      if (result.failure?.kind === "terminated" && reason === TerminateReason.OVERFLOW) {
        return {
          exitCode: 70,
          failure: { kind: "internal", message: "the guest stopped reading what the host sent it" },
          durationMs,
        };
      }
      return { ...plain, durationMs, ...(session.droppedLogs ? { droppedLogs: session.droppedLogs } : {}) };
    } finally {
      this.watchdog?.disarm(session.id);
      // A worker that sent its result has disposed of everything the guest had: the next guest can use it.
      if (guestDone) returnGuestWorker(worker);
      else worker.terminate();
      session.end();
      link.toHost.ring(); // release the serve loop
      await served;
      // Records the guest wrote that were still waiting for room in the ring.
      await session.finish(leftover, this.logSink);
      if (guestDone && this.idleLinks.length < MAX_IDLE_LINKS) this.idleLinks.push(link);
      this.live.delete(session.id);
    }
  }

  /**
   * Stops the drivers (if they were started; once) and frees the engine. Call when no guest
   * is running. A host used again afterwards starts its drivers again.
   */
  async close(): Promise<void> {
    if (this.live.size > 0) throw new Error("guests are still running");
    const started = this.started;
    const familyStarts = [...this.familyDrivers.values()];
    this.started = undefined;
    this.familyDrivers = new Map();
    this.handlers = new Map();
    if (started) {
      await started.catch(() => {}); // a failed start still stops what it started
      for (const driver of this.givenDrivers ?? []) await driver.stop?.();
    }
    await Promise.all(familyStarts.map((p) => p.catch(() => {})));
    const made = this.madeDrivers;
    this.madeDrivers = [];
    for (const driver of made) await driver.stop?.();
    this.watchdog?.close();
    this.watchdog = undefined;
    releaseGuestWorkers();
    this.engine?.delete();
    this.engine = undefined;
  }
}
