/**
 * The fuzz guest of tests/system/fuzz_test.ts and what the fuzzer passes to its imports.
 *
 * `buildFuzzGuest(imports)` encodes (tests/support/wasm_builder.ts) one module that imports
 * every given import with its canonical signature (`signatures[0]`) and exports, per import,
 * a thunk `call_<module>_<name>` of the same type that calls it and returns its result; plus
 * a small exported memory (so random pointers often land outside it) and a function table of
 * "tools" for cchat's AUTO_TOOL_CALL loop to call back into (see TOOLS). Nothing here names
 * an import: the module is whatever the registry lists.
 *
 * `policyOf(decl)` says how to fill each parameter. Rows of IMPORT_POLICY, keyed by import
 * name, exist for two reasons only:
 *   - an import that can block must get arguments that do not (marked BLOCKING below);
 *   - a better idea of a parameter's meaning finds more (an fd, a pointer and its length).
 * Imports without a row get roles from SPEAR's naming conventions (`*_ctl(fd, cmd, arg,
 * len_ptr)`, `*_read/_recv(fd, out, len_ptr)`, `*_write(fd, ptr, len)`, `*_close(fd)`), and
 * anything else hostile values of its wasm types ("any"). The default is safe against
 * blocking: an import the fuzzer knows nothing about runs with every open fd made
 * non-blocking first (blocking on an fd is what an O_NONBLOCK fd never does), and when its
 * name says it waits (`wait`, `sleep`, `poll`) its last parameter — where SPEAR's waiting
 * calls take their timeout — is 0. A timeout can't be recognised from an all-i32 signature,
 * so anything that still blocks is caught by the per-call guard of fuzz_test.ts, which fails
 * the test naming the import (add a row), instead of letting the suite hang.
 *
 * `prepareCall` makes the arguments and what goes into guest memory first. Half the calls
 * are hostile throughout (0, -1, INT32_MIN/MAX, values around the memory size, closed and
 * made-up fds, pointers straddling the end, lengths past it, broken JSON, random bytes);
 * the other half are well-formed where the fuzzer can tell (open fds of the import's family,
 * pointers inside memory, exact lengths, JSON from a small dictionary of the keys and valid
 * values families use), because the deeper paths — a capture running, a chat round trip,
 * a queue filling — are only reached through calls that pass the first checks.
 */
import { FIRST_FD } from "../../runtime/abi.ts";
import type { ImportDecl } from "../../families/family.ts";
import type { WasmType } from "../../runtime/hostcall.ts";
import { op, WasmModuleBuilder } from "./wasm_builder.ts";
import { encodeSsfFrame } from "../../families/user_stream/protocol.ts";

/** Pages of the fuzz guest's memory: 128 KiB, so a random i32 pointer is almost never inside. */
export const FUZZ_MEMORY_PAGES = 2;
export const FUZZ_MEMORY_BYTES = FUZZ_MEMORY_PAGES * 65536;

/** The model the test binds its OpenAI-compatible backend to (well-formed SET_PARAMs use it). */
export const FUZZ_CHAT_MODEL = "gpt-fuzz";

/** The export name of an import's thunk. */
export function thunkName(decl: { module: string; name: string }): string {
  return `call_${decl.module}_${decl.name}`;
}

/**
 * The tools in the guest's function table, by index (the `offset` cchat_write_fn registers):
 * each has the tool type (arena args ptr, args len, out ptr, len ptr) -> rc except NOT_A_TOOL.
 */
export const TOOLS = {
  /** Writes an empty output: *len_ptr = 0, rc 0. */
  EMPTY: 0,
  /** rc 0 without touching *len_ptr: the output is whatever the arena holds (random bytes). */
  AS_IS: 1,
  /** rc -28: asks for more room (the host retries once, then fails the tool). */
  ENOSPC: 2,
  /** rc -5: a failing tool. */
  FAIL: 3,
  /** ()->(): the wrong type for a tool. */
  NOT_A_TOOL: 4,
  /** Re-enters the host: calls every import without parameters (fd creators included), then EMPTY. */
  REENTER: 5,
} as const;
export const TOOL_COUNT = Object.keys(TOOLS).length;

export interface FuzzGuest {
  wasm: Uint8Array<ArrayBuffer>;
  /** Thunk export names, in the order of `imports`. */
  thunks: string[];
}

/** The fuzz guest for `imports` (the registry's `allImports()`). */
export function buildFuzzGuest(imports: readonly ImportDecl[]): FuzzGuest {
  const b = new WasmModuleBuilder();
  const funcs = imports.map((d) => {
    const sig = d.signatures[0];
    return { decl: d, sig, index: b.importFunc(d.module, d.name, sig.params, sig.results) };
  });
  const thunks = funcs.map(({ decl, sig, index }) => {
    const body = [...sig.params.flatMap((_, i) => op.localGet(i)), ...op.call(index)];
    b.exportFunc(thunkName(decl), b.func(sig.params, sig.results, body));
    return thunkName(decl);
  });

  const tool = ["i32", "i32", "i32", "i32"] as const;
  const emptyOutput = [...op.localGet(3), ...op.i32Const(0), ...op.i32Store(), ...op.i32Const(0)];
  const reenter = funcs
    .filter((f) => f.sig.params.length === 0)
    .flatMap((f) => [...op.call(f.index), ...(f.sig.results.length ? op.drop : [])]);
  const table: number[] = [];
  table[TOOLS.EMPTY] = b.func(tool, ["i32"], emptyOutput);
  table[TOOLS.AS_IS] = b.func(tool, ["i32"], op.i32Const(0));
  table[TOOLS.ENOSPC] = b.func(tool, ["i32"], op.i32Const(-28));
  table[TOOLS.FAIL] = b.func(tool, ["i32"], op.i32Const(-5));
  table[TOOLS.NOT_A_TOOL] = b.func([], [], []);
  table[TOOLS.REENTER] = b.func(tool, ["i32"], [...reenter, ...emptyOutput]);

  b.memory(FUZZ_MEMORY_PAGES, FUZZ_MEMORY_PAGES).exportMemory("memory");
  b.table(table).exportTable("__indirect_function_table");
  return { wasm: b.build(), thunks };
}

// ---------------------------------------------------------------- the worker's protocol (tests/support/fuzz_worker.ts)

export interface FuzzInit {
  libPath: string;
  wasm: Uint8Array<ArrayBuffer>;
  imports: ImportDecl[];
  /** Thunk export names, in the order of `imports`. */
  thunks: string[];
  /** The family of each import. */
  families: string[];
  link: [SharedArrayBuffer, SharedArrayBuffer];
  budget: SharedArrayBuffer;
  maxFds: number;
  memoryBytes: number;
  seed: number;
  durationMs: number;
  /** Float64Array(GUARD_SLOTS): see Guard. */
  guard: SharedArrayBuffer;
  /** RunOptions.context of the guest (user streams need an endpoint's, or they are -ENOTCONN). */
  context?: Record<string, unknown>;
  /** Socket addresses for `addr` parameters (host:port, [v6]:port). */
  addresses: string[];
  /** Where the guest's own listeners go (loopbackScenario): a loopback port free at the start. */
  loopback: string;
  /** The session's byte-pipe arena (GuestSession.pipes), where TCP connections' bytes flow. */
  pipes: SharedArrayBuffer;
  /** URLs for `url` parameters. */
  urls: string[];
}

/** The guard's slots: written by the worker, read by the test. */
export const Guard = { IN_CALL: 0, IMPORT: 1, SEQ: 2, STARTED_AT: 3 } as const;
export const GUARD_SLOTS = 4;

export interface CallRecord {
  seq: number;
  import: string;
  args: string[];
  /** What was written into guest memory for the call. */
  notes: string[];
  result?: string;
}

export interface FuzzFailure {
  message: string;
  call: CallRecord;
  /** The calls before it, oldest first. */
  recent: CallRecord[];
}

export interface ImportStats {
  calls: number;
  /** Results ≥ 0 (or calls with no i32 result). */
  ok: number;
  /** -errno results by errno name. */
  errno: Record<string, number>;
}

export interface FuzzReport {
  calls: number;
  elapsedMs: number;
  stats: Record<string, ImportStats>;
  failures: FuzzFailure[];
  /** fds the guest opened. */
  fdsCreated: number;
  /** Tool calls from the host into the guest (cchat's AUTO_TOOL_CALL loop). */
  toolCalls: number;
  /** Hostcalls made while another was running (a tool that called the host). */
  reentrantCalls: number;
  /** Scripted sequences run (toolLoopScenario, loopbackScenario). */
  scenarios: number;
  /** The trivial call after the run returned normally. */
  alive: boolean;
  /** The guest's host budget in use once every fd was closed. */
  budgetUsedAfterClose: number;
  /** An exception of the worker itself (a harness bug or a host crash), with its stack. */
  fatal?: string;
}

// ---------------------------------------------------------------- what each parameter gets

/**
 * How the fuzzer fills one parameter:
 *  - fd: an fd the fuzzer created, one near those numbers, or a hostile value;
 *  - rfd: an fd read from: made non-blocking before the call (a read on a blocking fd waits
 *    for data that may never come);
 *  - cmd / op / bits / level / index: small numbers around the valid ones, and hostile ones;
 *  - in + len: a pointer to bytes the host reads (JSON, text, random bytes), then a length;
 *    addr + len and url + len likewise, with a socket address or a URL (FuzzInit.addresses,
 *    FuzzInit.urls: some the test's network policy allows, some it does not, some malformed);
 *    frame + len: an SSF v1 frame (user streams) for a small stream id, sometimes damaged;
 *  - domain: a socket address family (AF_INET, AF_INET6, and others);
 *  - buf + lenPtr: an in/out buffer (SPEAR's ctl convention: the u32 at len_ptr is the length
 *    in and the capacity for the reply); out + lenPtr: an output buffer and its capacity;
 *  - sleep: 0..2 ms; timeout: 0 (see BLOCKING rows);
 *  - any: hostile values of the parameter's wasm type.
 */
export type Role =
  | "fd"
  | "rfd"
  | "cmd"
  | "op"
  | "bits"
  | "level"
  | "index"
  | "in"
  | "addr"
  | "url"
  | "frame"
  | "domain"
  | "len"
  | "buf"
  | "out"
  | "lenPtr"
  | "sleep"
  | "timeout"
  | "any";

export interface ImportPolicy {
  params: Role[];
  /** Make every open fd non-blocking before each call (imports the fuzzer has no row for). */
  nonBlockingFds?: boolean;
  /** A trap this import documents (none does today): not a failure. */
  traps?: RegExp;
}

/**
 * Rows by import name. BLOCKING ones are there so the fuzzer never waits forever:
 *   sleep_ms: a negative value sleeps forever (SPEAR casts it to u64), a large one for long;
 *   spear_epoll_wait: a timeout other than 0 waits for readiness that may never come;
 *   cchat_recv: on a blocking fd it waits for the response (rfd makes the fd non-blocking).
 * The others only give better arguments than the naming conventions would.
 */
export const IMPORT_POLICY: Readonly<Record<string, ImportPolicy>> = {
  sleep_ms: { params: ["sleep"] }, // BLOCKING
  spear_epoll_wait: { params: ["fd", "out", "lenPtr", "timeout"] }, // BLOCKING
  cchat_recv: { params: ["rfd", "out", "lenPtr"] }, // BLOCKING
  log: { params: ["level", "in", "len"] },
  spear_epoll_ctl: { params: ["fd", "op", "fd", "bits"] },
  cchat_write_msg: { params: ["fd", "in", "len", "in", "len"] },
  cchat_write_fn: { params: ["fd", "index", "in", "len"] },
  cchat_send: { params: ["fd", "bits"] },
  user_stream_open: { params: ["index", "cmd"] }, // small stream ids, directions around 1..3
  user_stream_write: { params: ["fd", "frame", "len"] },
  // Sockets: data calls on non-blocking fds (a blocking accept, send or recv waits for a peer).
  sock_create: { params: ["domain", "cmd"] }, // types around SOCK_STREAM 1, SOCK_DGRAM 2
  sock_connect: { params: ["fd", "addr", "len"] },
  sock_bind: { params: ["fd", "addr", "len"] },
  sock_listen: { params: ["fd", "cmd"] },
  sock_accept: { params: ["rfd", "out", "lenPtr"] }, // BLOCKING
  sock_send: { params: ["rfd", "in", "len"] }, // BLOCKING (a full send window)
  sock_sendto: { params: ["rfd", "in", "len", "addr", "len"] }, // BLOCKING
  sock_recvfrom: { params: ["rfd", "out", "lenPtr", "out", "lenPtr"] }, // BLOCKING
  sock_getaddr: { params: ["fd", "op", "out", "lenPtr"] },
  sock_setopt: { params: ["fd", "op", "any"] },
  sock_getopt: { params: ["fd", "op"] },
  sock_shutdown: { params: ["fd", "op"] },
  // Skills (the test runs the guest as one): inputs, then a result buffer and its capacity.
  ai_prompt: { params: ["in", "len", "out", "len"] },
  memory_get: { params: ["in", "len", "out", "len"] },
  memory_set: { params: ["in", "len", "in", "len"] },
  http_request: { params: ["url", "len", "in", "len", "out", "len"] },
};

/** The policy of one import: its row, else SPEAR's naming conventions, else the safe default. */
export function policyOf(decl: ImportDecl): ImportPolicy {
  const row = IMPORT_POLICY[decl.name];
  if (row) return row;
  const params = decl.signatures[0].params;
  const n = params.length;
  if (params.every((t) => t === "i32")) {
    if (/_ctl$/.test(decl.name) && n === 4) return { params: ["fd", "cmd", "buf", "lenPtr"] };
    if (/_(read|recv)$/.test(decl.name) && n === 3) return { params: ["rfd", "out", "lenPtr"] };
    if (/_write$/.test(decl.name) && n === 3) return { params: ["fd", "in", "len"] };
    if (/_close$/.test(decl.name) && n === 1) return { params: ["fd"] };
    if (n === 0) return { params: [] };
  }
  const roles: Role[] = params.map(() => "any");
  if (n > 0 && params[n - 1] === "i32" && /(^|_)(wait|sleep|poll)(_|$)/.test(decl.name)) {
    roles[n - 1] = "timeout";
  }
  return { params: roles, nonBlockingFds: true };
}

// ---------------------------------------------------------------- seeded randomness

/** sfc32, seeded through splitmix32: small, fast, and the same sequence for the same seed. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 0..n-1 */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  /** lo..hi inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  i32(): number {
    return this.u32() | 0;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      out[i] = v;
      if (i + 1 < n) out[i + 1] = v >>> 8;
      if (i + 2 < n) out[i + 2] = v >>> 16;
      if (i + 3 < n) out[i + 3] = v >>> 24;
    }
    return out;
  }
}

// ---------------------------------------------------------------- arguments

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** Where the fuzzer writes into guest memory (only the part inside memory is written). */
export interface MemoryWrite {
  ptr: number;
  bytes: Uint8Array;
}

/** One prepared call: its arguments, what to write into memory first, and what was written (for reports). */
export interface PreparedCall {
  args: (number | bigint)[];
  writes: MemoryWrite[];
  notes: string[];
  /** fds to make non-blocking before the call. */
  nonBlocking: number[] | "all";
}

/** An open fd the fuzzer created, and the family of the import that created it. */
export interface OpenFd {
  fd: number;
  /** `cchat` for cchat_create and cchat_send: imports of the same family likely take it. */
  family: string;
  /** The import that created it. */
  creator: number;
}

export interface FuzzState {
  rng: Rng;
  memBytes: number;
  /** fds the fuzzer created that are still open (the worker keeps this up to date). */
  open: OpenFd[];
  /** fds it created that are closed since (most recent last). */
  closed: number[];
  /** The highest fd seen. */
  topFd: number;
  /** Family of the import being called. */
  family: string;
  /**
   * This call is well-formed where the fuzzer can tell: open fds of the import's family,
   * pointers inside memory, exact lengths, JSON with valid values. Without such calls the
   * host's deeper paths (a capture running, a chat round trip with tools) are hardly reached.
   */
  wellFormed: boolean;
  /**
   * Creators (import indices) of the fds the import being called has accepted before: a
   * well-formed call prefers their fds (cchat_recv learns to take cchat_send's, not
   * cchat_create's).
   */
  accepts: ReadonlySet<number>;
  /**
   * In a streak: the streak's first call, whose fds and small numbers (cmd, op, flags) the
   * call repeats, with new memory contents (a session getting several params in a row).
   */
  repeat?: PreparedCall;
  /** The fds the prepared call passes, with their creators (for learning `accepts`). */
  passed: OpenFd[];
  /** FuzzInit.addresses, FuzzInit.urls and FuzzInit.loopback. */
  addresses: readonly string[];
  urls: readonly string[];
  loopback: string;
}

/** Share of well-formed calls. */
export const WELL_FORMED_SHARE = 0.5;

const encoder = new TextEncoder();

function hostileI32(s: FuzzState): number {
  const m = s.memBytes;
  const { rng } = s;
  switch (rng.int(4)) {
    case 0:
      return rng.pick([0, 1, -1, 2, 3, 4, 7, 8, 16, 255, 256, 4096, 65535, 65536, I32_MIN, I32_MAX]);
    case 1:
      return rng.pick([I32_MIN + 1, I32_MAX - 1, -2, -4, -8, 0x40000000, -0x40000000, 0x7fff, -0x8000]);
    case 2:
      return m + rng.range(-16, 16);
    default:
      return rng.i32();
  }
}

function fdArg(s: FuzzState): number {
  const { rng, open } = s;
  const r = s.wellFormed ? 0 : rng.int(20);
  const chosen = (candidates: OpenFd[]) => {
    // Often the newest: consecutive calls then build up one fd's state (a session, a capture).
    const o = rng.chance(0.5) ? candidates[candidates.length - 1] : rng.pick(candidates);
    s.passed.push(o);
    return o.fd;
  };
  if (r < 8 && open.length) {
    const accepted = s.wellFormed && rng.chance(0.8) ? open.filter((o) => s.accepts.has(o.creator)) : [];
    if (accepted.length) return chosen(accepted);
    const mine = open.filter((o) => o.family === s.family);
    return chosen(mine.length ? mine : open);
  }
  if (r < 11 && open.length) return chosen(open);
  if (r < 13 && s.closed.length) return rng.pick(s.closed);
  if (r < 16) return rng.range(FIRST_FD - 2, s.topFd + 3);
  if (r < 17) return rng.range(0, 3);
  return hostileI32(s);
}

function smallArg(s: FuzzState, lo: number, hi: number): number {
  return s.wellFormed || s.rng.chance(0.8) ? s.rng.range(lo, hi) : hostileI32(s);
}

function hostileOf(s: FuzzState, type: WasmType): number | bigint {
  const { rng } = s;
  switch (type) {
    case "i32":
      return rng.chance(0.5) ? fdArg(s) : hostileI32(s);
    case "i64":
      return rng.chance(0.5)
        ? rng.pick([0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 32n, BigInt(I32_MIN), BigInt(FIRST_FD)])
        : BigInt.asIntN(64, (BigInt(rng.u32()) << 32n) | BigInt(rng.u32()));
    default:
      return rng.chance(0.5)
        ? rng.pick([0, -0, NaN, Infinity, -Infinity, 1e308, -1e-308, 0.5, 2 ** 31, -(2 ** 63)])
        : (rng.u32() / 65536) * (rng.chance(0.5) ? 1 : -1);
  }
}

/**
 * A pointer for `len` bytes: mostly inside memory (often ending right at its end), sometimes
 * straddling the end, sometimes hostile.
 */
function pointerFor(s: FuzzState, len: number): number {
  const { rng } = s;
  const m = s.memBytes;
  const r = s.wellFormed && len <= m ? 0 : rng.int(20);
  if (len <= m) {
    if (r < 11) return rng.range(0, m - len);
    if (r < 13) return m - len;
    if (r < 15 && len > 0) return m - len + rng.range(1, Math.min(len, 64));
  }
  if (r < 16) return 0;
  return hostileI32(s);
}

// JSON: a dictionary of the keys and values families' JSON uses (as a fuzzer's dictionary),
// random structure around it, and broken variants. Unknown keys still come out at random.
const KEYS = [
  "key",
  "value",
  "set",
  "clear",
  "source",
  "sample_rate_hz",
  "channels",
  "frame_ms",
  "format",
  "device",
  "name",
  "fallback",
  "to_stub",
  "max_queue_bytes",
  "drop_policy",
  "stub_pcm16_base64",
  "loop",
  "model",
  "backend",
  "timeout_ms",
  "tool_arena_ptr",
  "tool_arena_len",
  "max_tool_output_bytes",
  "max_total_tool_calls",
  "max_tool_calls",
  "max_iterations",
  "mcp.enabled",
  "mcp.task_id",
  "type",
  "function",
  "parameters",
  "role",
  "content",
  "flags",
  "__proto__",
  "constructor",
  "",
];
const STRINGS = [
  "stub",
  "file",
  "device",
  "pcm16",
  "f32le",
  "O_NONBLOCK",
  "O_APPEND",
  "drop_oldest",
  "drop_newest",
  "function",
  "object",
  "user",
  "assistant",
  "system",
  "tool",
  "default",
  "openai",
  "",
  "add 2 and 3",
  "-9223372036854775809 and 99999999999999999999",
  "\u0000",
  "\ud83d\ude00",
  "\ud800",
];

/** Valid values of known keys, for well-formed calls. */
function validValue(s: FuzzState, key: string): unknown {
  const { rng } = s;
  const m = s.memBytes;
  switch (key) {
    case "sample_rate_hz":
      return rng.pick([8000, 16000, 24000, 44100, 48000]);
    case "channels":
      return rng.pick([1, 1, 2]);
    case "frame_ms":
      return rng.pick([10, 20, 40, 100]);
    case "format":
      return "pcm16";
    case "source":
      return rng.pick(["stub", "stub", "file", "device"]);
    case "device":
      return rng.pick([null, { name: "default" }, {}]);
    case "fallback":
      return { to_stub: rng.chance(0.8) };
    case "max_queue_bytes":
      return rng.pick([65536, 524288, 1 << 20]);
    case "drop_policy":
      return rng.pick(["drop_oldest", "drop_newest"]);
    case "loop":
      return rng.chance(0.5);
    case "stub_pcm16_base64":
      return btoa(String.fromCharCode(...rng.bytes(rng.pick([0, 2, 960]))));
    case "model":
      return rng.pick(["", "", FUZZ_CHAT_MODEL, "no-such-model"]);
    case "backend":
      return rng.pick(["stub", "openai", "nope"]);
    case "timeout_ms":
      return rng.pick([0, 50, 5000]);
    case "tool_arena_ptr":
      return rng.range(8, m - 16384);
    case "tool_arena_len":
      return rng.pick([64, 4096, 16384]);
    case "max_tool_output_bytes":
    case "max_total_tool_calls":
    case "max_tool_calls":
    case "max_iterations":
      return rng.pick([1, 2, 8]);
    case "mcp.enabled":
      return rng.chance(0.5);
    case "set":
    case "clear":
      return rng.pick([[], ["O_NONBLOCK"]]);
    default:
      return undefined;
  }
}

/**
 * Keys of SET_PARAM-style {"key": …, "value": …} documents (the tool arena's two keys count
 * three times: a tool is only called with both set).
 */
const PARAM_KEYS = [
  "model",
  "backend",
  "timeout_ms",
  ...Array(3).fill(["tool_arena_ptr", "tool_arena_len"]).flat() as string[],
  "max_tool_output_bytes",
  "max_total_tool_calls",
  "max_tool_calls",
  "max_iterations",
  "mcp.enabled",
  "mcp.task_id",
  "temperature",
];

function jsonNumber(s: FuzzState): number {
  const { rng } = s;
  switch (rng.int(4)) {
    case 0:
      return rng.pick([0, 1, -1, 2, 8, 20, 1000, 1001, 8000, 16000, 24000, 48000, 192000, 192001, 7999]);
    case 1:
      return rng.pick([0.5, -0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 32, 1e-300, 256 << 20]);
    case 2:
      return rng.range(0, s.memBytes);
    default:
      return hostileI32(s);
  }
}

function base64Value(s: FuzzState): string {
  const { rng } = s;
  const text = btoa(String.fromCharCode(...rng.bytes(rng.pick([0, 1, 2, 3, 4, 64, 960]))));
  if (rng.chance(0.75)) return text;
  return rng.pick([`${text}=`, text.slice(1), `${text}!`, "====", "A", text.replace(/.$/, "-")]);
}

function jsonValue(s: FuzzState, depth: number, key?: string): unknown {
  const { rng } = s;
  if (key !== undefined && s.wellFormed && rng.chance(0.9)) {
    const valid = validValue(s, key);
    if (valid !== undefined) return valid;
  }
  if (key === "stub_pcm16_base64" && rng.chance(0.8)) return base64Value(s);
  if ((key === "tool_arena_ptr" || key === "tool_arena_len") && rng.chance(0.8)) {
    return rng.range(0, s.memBytes);
  }
  if ((key === "set" || key === "clear") && rng.chance(0.7)) {
    return Array.from({ length: rng.int(3) }, () => rng.pick(STRINGS));
  }
  switch (rng.int(depth > 3 ? 5 : 8)) {
    case 0:
    case 1:
      return jsonNumber(s);
    case 2:
    case 3:
      return rng.pick(STRINGS);
    case 4:
      return rng.pick([true, false, null]);
    case 5:
      return Array.from({ length: rng.int(4) }, () => jsonValue(s, depth + 1));
    default:
      return jsonObject(s, depth + 1);
  }
}

function jsonObject(s: FuzzState, depth = 0): Record<string, unknown> {
  const { rng } = s;
  const out: Record<string, unknown> = {};
  const n = rng.int(6);
  for (let i = 0; i < n; i++) {
    const key = rng.chance(0.9)
      ? rng.pick(KEYS)
      : String.fromCharCode(rng.range(32, 126)).repeat(rng.range(1, 4));
    // defineProperty: "__proto__" becomes an own key (as JSON.parse makes it), not the prototype.
    Object.defineProperty(out, key, {
      value: jsonValue(s, depth, key),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** JSON text a family might expect: a SET_PARAM {key, value}, a flat object, a tool, or anything. */
function plausibleJson(s: FuzzState): string {
  const { rng } = s;
  switch (s.wellFormed && rng.chance(0.4) ? 1 : rng.int(5)) {
    case 0:
      if (s.wellFormed) return JSON.stringify(jsonObject(s)); // a flat object of valid fields
      return JSON.stringify({ key: rng.pick(KEYS), value: jsonValue(s, 1, undefined) });
    case 1: {
      const key = rng.pick(s.wellFormed ? PARAM_KEYS : KEYS);
      return JSON.stringify({ key, value: jsonValue(s, 1, key) });
    }
    case 2:
      return JSON.stringify({
        type: "function",
        function: { name: rng.pick(["sum", "add", "", "mcp.x", "mcp__y"]), parameters: jsonObject(s, 2) },
      });
    case 3:
      return JSON.stringify(jsonValue(s, 0));
    default:
      return JSON.stringify(jsonObject(s));
  }
}

/** Broken JSON: truncated, a byte changed, trailing garbage, deep nesting, not UTF-8. */
function brokenJson(s: FuzzState): Uint8Array {
  const { rng } = s;
  const text = plausibleJson(s);
  switch (rng.int(6)) {
    case 0:
      return encoder.encode(text.slice(0, rng.int(text.length)));
    case 1: {
      const bytes = encoder.encode(text);
      if (bytes.length) bytes[rng.int(bytes.length)] = rng.pick([0x22, 0x7b, 0x7d, 0x00, 0xff, 0x5c, 0x2c]);
      return bytes;
    }
    case 2:
      return encoder.encode(`${text}${rng.pick([",", "}", "]", " x", "\u0000"])}`);
    case 3: {
      // Nesting deeper than any recursive walk of the value can go (valid JSON half the time).
      const depth = rng.range(1000, 30000);
      const key = rng.pick(["value", "set", "parameters"]);
      return encoder.encode(
        `{"key":"model","${key}":${"[".repeat(depth)}${rng.chance(0.5) ? "]".repeat(depth) : ""}}`,
      );
    }
    case 4:
      return new Uint8Array([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]); // {"k":"\xc3("}
    default:
      return encoder.encode(` ${text} `);
  }
}

/** Text for logs, roles and messages (two integers make the stub backend call a tool). */
function text(s: FuzzState): Uint8Array {
  const { rng } = s;
  switch (rng.int(s.wellFormed ? 2 : 4)) {
    case 0:
      return encoder.encode(
        rng.pick(s.wellFormed ? ["user", "user", "assistant", "system", "tool"] : STRINGS),
      );
    case 1:
      return encoder.encode(`what is ${rng.i32()} plus ${rng.range(-99, 99)}?`);
    case 2:
      return rng.bytes(rng.int(64));
    default:
      return encoder.encode(plausibleJson(s));
  }
}

/** Bytes the host is given to read. */
function content(s: FuzzState, json: boolean): { bytes: Uint8Array; kind: string } {
  const { rng } = s;
  if (s.wellFormed) {
    return json || rng.chance(0.6)
      ? { bytes: encoder.encode(plausibleJson(s)), kind: "json" }
      : { bytes: text(s), kind: "text" };
  }
  const r = rng.int(20);
  if (r < 9) return { bytes: encoder.encode(plausibleJson(s)), kind: "json" };
  if (r < 12) return { bytes: brokenJson(s), kind: "broken json" };
  if (r < 16) return { bytes: text(s), kind: "text" };
  if (r < 18) return { bytes: rng.bytes(rng.int(512)), kind: "random" };
  if (r < 19) return { bytes: new Uint8Array(0), kind: "empty" };
  return { bytes: rng.bytes(rng.range(4096, 20000)), kind: "large random" };
}

/** A socket address or URL: mostly one of `known`, sometimes cut short, padded or noise. */
function locator(s: FuzzState, known: readonly string[]): { bytes: Uint8Array; kind: string } {
  const { rng } = s;
  const chosen = rng.pick(known);
  if (s.wellFormed || rng.chance(0.6)) return { bytes: encoder.encode(chosen), kind: "locator" };
  const r = rng.int(4);
  if (r === 0) return { bytes: encoder.encode(chosen.slice(0, rng.int(chosen.length))), kind: "cut locator" };
  if (r === 1) return { bytes: encoder.encode(`${chosen}\0\0`), kind: "nul-padded locator" };
  if (r === 2) {
    return { bytes: encoder.encode(`${chosen}${rng.pick(["0", ":1", "/", " "])}`), kind: "bent locator" };
  }
  return content(s, false);
}

/** An SSF v1 frame for one of the stream ids user_stream_open gets (`index`), sometimes damaged. */
function ssfFrame(s: FuzzState): { bytes: Uint8Array; kind: string } {
  const { rng } = s;
  const frame = encodeSsfFrame(
    { streamId: rng.range(0, TOOL_COUNT + 1), msgType: rng.pick([2, 2, 2, 1, 3, 9]), seq: rng.u32() },
    rng.bytes(rng.pick([0, 1, 64, 4096])),
  );
  if (s.wellFormed || rng.chance(0.6)) return { bytes: frame, kind: "ssf frame" };
  const damaged = frame.slice(0, rng.chance(0.5) ? frame.length : rng.int(frame.length));
  if (damaged.length > 0) damaged[rng.int(Math.min(damaged.length, 32))] ^= 1 << rng.int(8);
  return { bytes: damaged, kind: "damaged ssf frame" };
}

function describe(bytes: Uint8Array): string {
  const shown = new TextDecoder().decode(bytes.subarray(0, 120));
  return `${JSON.stringify(shown)}${bytes.length > 120 ? `… (${bytes.length} bytes)` : ""}`;
}

function u32Bytes(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

/** Arguments (and memory contents) for one call of an import with this policy and signature. */
export function prepareCall(s: FuzzState, policy: ImportPolicy, params: readonly WasmType[]): PreparedCall {
  const { rng } = s;
  const m = s.memBytes;
  const call: PreparedCall = {
    args: [],
    writes: [],
    notes: [],
    nonBlocking: policy.nonBlockingFds ? "all" : [],
  };
  s.passed = [];
  /** The last input's pointer and length (for `len`) or the last buffer's (for `lenPtr`). */
  let last = { ptr: 0, len: 0, output: false };
  policy.params.forEach((role, i) => {
    const type = params[i];
    if (type !== "i32") return void call.args.push(hostileOf(s, type));
    let v: number;
    if (s.repeat && ["fd", "rfd", "cmd", "op", "bits", "level", "index"].includes(role)) {
      v = s.repeat.args[i] as number;
      if (role === "rfd" && Array.isArray(call.nonBlocking)) call.nonBlocking.push(v);
      return void call.args.push(v);
    }
    switch (role) {
      case "fd":
        v = fdArg(s);
        break;
      case "rfd":
        v = fdArg(s);
        if (Array.isArray(call.nonBlocking)) call.nonBlocking.push(v);
        break;
      case "cmd":
        v = s.wellFormed ? rng.range(1, 3) : smallArg(s, -1, 9);
        break;
      case "op":
        v = smallArg(s, -1, 5);
        break;
      case "bits":
        v = smallArg(s, 0, 0x1f);
        break;
      case "level":
        v = smallArg(s, -1, 6);
        break;
      case "index":
        v = smallArg(s, -1, TOOL_COUNT + 1);
        break;
      case "sleep":
        v = rng.range(0, 2);
        break;
      case "timeout":
        v = 0;
        break;
      case "domain":
        v = s.wellFormed ? rng.pick([2, 10]) : smallArg(s, -1, 12);
        break;
      case "addr":
      case "url":
      case "frame":
      case "in":
      case "buf": {
        const { bytes, kind } = role === "frame"
          ? ssfFrame(s)
          : role === "addr" || role === "url"
          ? locator(s, role === "addr" ? s.addresses : s.urls)
          : content(s, role === "buf"); // a ctl's argument is JSON
        v = pointerFor(s, bytes.length);
        call.writes.push({ ptr: v, bytes });
        call.notes.push(`arg ${i + 1} → ${kind} ${describe(bytes)}`);
        last = { ptr: v, len: bytes.length, output: false };
        break;
      }
      case "out": {
        const len = s.wellFormed ? 16384 : rng.chance(0.2) ? rng.int(16) : rng.int(4096);
        v = pointerFor(s, len);
        last = { ptr: v, len, output: true };
        break;
      }
      case "len": {
        const r = s.wellFormed ? 0 : rng.int(10);
        v = r < 6
          ? last.len
          : r < 7
          ? 0
          : r < 8
          ? last.len + rng.range(-8, 8)
          : r < 9
          ? m - last.ptr
          : hostileI32(s);
        break;
      }
      case "lenPtr": {
        const r = s.wellFormed ? 0 : rng.int(10);
        const value = r < 6
          ? (last.output && !s.wellFormed ? rng.pick([last.len, rng.int(16), m - last.ptr]) : last.len)
          : r < 8
          ? rng.int(m)
          : hostileI32(s);
        if (s.wellFormed) v = rng.range(0, m / 4 - 1) * 4;
        else {
          v = rng.chance(0.85)
            ? (rng.chance(0.9) ? rng.range(0, m / 4 - 1) * 4 : rng.range(0, m - 4))
            : hostileI32(s);
          if (rng.chance(0.1)) v = m - rng.range(1, 4); // the u32 straddles the end
        }
        call.writes.push({ ptr: v, bytes: u32Bytes(value) });
        call.notes.push(`arg ${i + 1} → u32 ${value >>> 0}`);
        break;
      }
      default:
        v = hostileOf(s, "i32") as number;
    }
    call.args.push(v);
  });
  return call;
}

// ---------------------------------------------------------------- scripted sequences

/** One step of a scripted sequence: an import, and its call made from the results before it. */
export interface ScenarioStep {
  name: string;
  /** The call, given the i32 results of the steps before (undefined: the sequence stops here). */
  prepare(results: readonly number[]): PreparedCall | undefined;
}

/** Share of the fuzzer's turns that run a scripted sequence instead of one random call. */
export const SCENARIO_SHARE = 0.0005;

/** cchat's SET_PARAM and AUTO_TOOL_CALL (families/cchat/protocol.ts), spelled as a guest would. */
const SET_PARAM = 1;
const AUTO_TOOL_CALL = 2;

/**
 * A chat session that runs cchat's tool loop into the guest, which random calls almost never
 * assemble (a tool, both arena params, a user message with two numbers and AUTO_TOOL_CALL on
 * one session: a few tool calls in a 90 s run): the tool is one of TOOLS (REENTER calls the
 * host back from inside the loop, fd creators included), the backend the stub or the test's
 * upstream, and the response is then polled (cchat_recv, non-blocking, and sleep_ms: the
 * loop runs at polling points). Its fds stay open for the random calls that follow.
 */
export function toolLoopScenario(s: FuzzState): ScenarioStep[] {
  const { rng } = s;
  const arenaLen = 16384;
  const arena = s.memBytes - arenaLen;
  const scratch = arena - 4096; // texts, then the ctl's length word at its end
  const lenWord = arena - 4;
  const call = (args: number[], writes: MemoryWrite[], note: string, nonBlocking: number[] = []) => ({
    args,
    writes,
    notes: [`(tool loop) ${note}`],
    nonBlocking,
  });
  const session = (r: readonly number[]) => (r[0] >= FIRST_FD ? r[0] : undefined);
  const setParam = (key: string, value: unknown): ScenarioStep => ({
    name: "cchat_ctl",
    prepare: (r) => {
      const fd = session(r);
      const json = encoder.encode(JSON.stringify({ key, value }));
      return fd === undefined ? undefined : call(
        [fd, SET_PARAM, scratch, lenWord],
        [{ ptr: scratch, bytes: json }, { ptr: lenWord, bytes: u32Bytes(json.length) }],
        `SET_PARAM ${key}`,
      );
    },
  });
  const tool = rng.pick([TOOLS.EMPTY, TOOLS.AS_IS, TOOLS.ENOSPC, TOOLS.FAIL, TOOLS.REENTER, TOOLS.REENTER]);
  const spec = encoder.encode(
    JSON.stringify({ type: "function", function: { name: "add", parameters: { type: "object" } } }),
  );
  const user = encoder.encode("user");
  const question = encoder.encode("add 2 and 3");
  const SEND = 7; // the index of cchat_send's step below
  const poll: ScenarioStep[] = Array.from({ length: 4 }, () => [
    {
      name: "cchat_recv",
      prepare: (r: readonly number[]) =>
        r[SEND] >= FIRST_FD
          ? call([r[SEND], scratch, lenWord], [{ ptr: lenWord, bytes: u32Bytes(4096) }], "poll", [r[SEND]])
          : undefined,
    },
    { name: "sleep_ms", prepare: () => call([2], [], "wait") },
  ]).flat();
  return [
    { name: "cchat_create", prepare: () => call([], [], "session") },
    {
      name: "cchat_write_fn",
      prepare: (r) => {
        const fd = session(r);
        return fd === undefined
          ? undefined
          : call([fd, tool, scratch, spec.length], [{ ptr: scratch, bytes: spec }], `tool ${tool}`);
      },
    },
    setParam("tool_arena_ptr", arena),
    setParam("tool_arena_len", arenaLen),
    setParam("backend", rng.pick(["stub", "openai"])),
    setParam("max_iterations", rng.pick([1, 2, 8])),
    {
      name: "cchat_write_msg",
      prepare: (r) => {
        const fd = session(r);
        return fd === undefined ? undefined : call(
          [fd, scratch, user.length, scratch + 64, question.length],
          [{ ptr: scratch, bytes: user }, { ptr: scratch + 64, bytes: question }],
          "user message",
        );
      },
    },
    {
      name: "cchat_send",
      prepare: (r) => {
        const fd = session(r);
        return fd === undefined ? undefined : call([fd, AUTO_TOOL_CALL | rng.int(2)], [], "send");
      },
    },
    ...poll,
  ];
}

/** sock_create's AF_INET and SOCK_STREAM, REUSEADDR and SHUT_WR (families/sock/protocol.ts). */
const AF_INET = 2;
const SOCK_STREAM = 1;
const SO_REUSEADDR = 3;
const SHUT_WR = 1;

/**
 * A TCP connection between two of the guest's own sockets on loopback, which random calls
 * never line up (a listener, a connect to its port and an accept in time: no accept succeeded
 * in a 90 s run): a listener on FuzzState.loopback, a client connecting to it, the accepted
 * socket, bytes each way, a half-close and the end of stream seen. The data calls use
 * non-blocking fds; the fds stay open for the random calls that follow.
 */
export function loopbackScenario(s: FuzzState): ScenarioStep[] {
  const { rng } = s;
  const scratch = s.memBytes - 8192;
  const lenWord = s.memBytes - 4;
  const addr = encoder.encode(s.loopback);
  const data = rng.bytes(rng.pick([1, 512, 4096]));
  const [LISTENER, CLIENT, ACCEPTED] = [0, 4, 7]; // the steps whose results are those fds
  const step = (
    name: string,
    args: (r: readonly number[]) => number[] | undefined,
    note: string,
    extra: { writes?: MemoryWrite[]; nonBlocking?: (r: readonly number[]) => number[] } = {},
  ): ScenarioStep => ({
    name,
    prepare: (r) => {
      const a = args(r);
      if (!a || a.some((v) => Number.isNaN(v))) return undefined;
      return {
        args: a,
        writes: extra.writes ?? [],
        notes: [`(loopback) ${note}`],
        nonBlocking: extra.nonBlocking?.(r) ?? [],
      };
    },
  });
  const fd = (r: readonly number[], at: number) => (r[at] >= FIRST_FD ? r[at] : NaN);
  const send = (from: number) =>
    step("sock_send", (r) => [fd(r, from), scratch, data.length], `send ${data.length} bytes`, {
      writes: [{ ptr: scratch, bytes: data }],
      nonBlocking: (r) => [r[from]],
    });
  const recv = (on: number) =>
    step("sock_recv", (r) => [fd(r, on), scratch, lenWord], "receive", {
      writes: [{ ptr: lenWord, bytes: u32Bytes(4096) }],
      nonBlocking: (r) => [r[on]],
    });
  const wait = step("sleep_ms", () => [2], "wait");
  const toLoopback = { writes: [{ ptr: scratch, bytes: addr }] };
  return [
    step("sock_create", () => [AF_INET, SOCK_STREAM], "listener"),
    step("sock_setopt", (r) => [fd(r, LISTENER), SO_REUSEADDR, 1], "REUSEADDR"),
    step("sock_bind", (r) => [fd(r, LISTENER), scratch, addr.length], `bind ${s.loopback}`, toLoopback),
    step("sock_listen", (r) => [fd(r, LISTENER), 4], "listen"),
    step("sock_create", () => [AF_INET, SOCK_STREAM], "client"),
    step("sock_connect", (r) => [fd(r, CLIENT), scratch, addr.length], `connect ${s.loopback}`, toLoopback),
    wait,
    step("sock_accept", (r) => [fd(r, LISTENER), scratch, lenWord], "accept", {
      writes: [{ ptr: lenWord, bytes: u32Bytes(64) }],
      nonBlocking: (r) => [r[LISTENER]],
    }),
    send(CLIENT),
    wait,
    recv(ACCEPTED),
    send(ACCEPTED),
    wait,
    recv(CLIENT),
    step("sock_shutdown", (r) => [fd(r, CLIENT), SHUT_WR], "half-close"),
    wait,
    recv(ACCEPTED),
  ];
}

/**
 * One more call of each skill function that keeps a result, with other inputs and room for the
 * answer: what a cis call keeps by design (a result larger than its buffer, held for the retry
 * with a larger one: the snprintf rule of families/cis/worker.ts) is let go, so that the budget
 * left after the run shows leaks only. Each drops the kept result before its own request, which
 * may fail (an absent key, a refused URL).
 */
export function keptResultsFlush(s: FuzzState): ScenarioStep[] {
  const text = s.memBytes - 20480;
  const out = s.memBytes - 16384;
  const call = (name: string, input: string, note: string): ScenarioStep => {
    const bytes = encoder.encode(input);
    const args = name === "http_request"
      ? [text, bytes.length, 0, 0, out, 16384]
      : [text, bytes.length, out, 16384];
    return {
      name,
      prepare: () => ({ args, writes: [{ ptr: text, bytes }], notes: [`(flush) ${note}`], nonBlocking: [] }),
    };
  };
  return [
    call("memory_get", "fuzz: no such key", "an absent key"),
    call("http_request", "http://10.0.0.1/", "a refused URL"),
    call("ai_prompt", "ok", "a short prompt"),
  ];
}
