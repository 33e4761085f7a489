/**
 * What a hostcall family is, as one value: its imports with their typed signatures, its fd
 * kinds, its ABI numbers, its config section, the permissions it needs for a config, and
 * its two halves — the worker part (fd state, queues, readiness; runs in the guest's worker)
 * and the driver part (I/O on the main thread). The halves are loaded lazily by whichever
 * thread needs them, so a worker never loads driver code (or PortAudio) and a driver never
 * loads worker code. Everything derived — the import list, -ENOSYS for families not built,
 * the launcher's flags, the C header's numbers, the README's status table — comes from these
 * descriptors through families/registry.ts.
 */
import type { HostConfig } from "../host/config.ts";
import type { Driver } from "../host/host.ts";
import type { GuestRuntime } from "../runtime/guest.ts";
import type { WasmType, WasmValue } from "../runtime/abi.ts";

export interface Signature {
  readonly params: readonly WasmType[];
  readonly results: readonly WasmType[];
}

export interface ImportDecl {
  /** Import module: "spear", "cis", … */
  readonly module: string;
  readonly name: string;
  /** Accepted wasm types; [0] is canonical. A module is linked with the one it declares. */
  readonly signatures: readonly Signature[];
  /**
   * The implementation never touches guest memory and never calls into the guest (a clock, a
   * random number): its binding skips the call-stack bookkeeping those need (runtime/instance.ts).
   */
  readonly leaf?: boolean;
}

/** `module.name`, as link errors spell an import and as a module's import list is matched. */
export function importKey(i: { module: string; name: string }): string {
  return `${i.module}.${i.name}`;
}

/** `spear` import with i32 params and an i32 result (or none / i64). */
export function spearImport(name: string, arity: number, result: WasmType | null = "i32"): ImportDecl {
  return {
    module: "spear",
    name,
    signatures: [{ params: Array(arity).fill("i32"), results: result ? [result] : [] }],
  };
}

/**
 * A worker-side implementation of one import: typed args in (i32/f32/f64 as number, i64 as
 * bigint, per the declared signature), the result (if any) out; throw HostcallError for -errno.
 * Declared with `never[]` so an implementation can name its own parameter types.
 */
export type HostcallFn = (...args: never[]) => WasmValue | void;

/** The worker half: implementations by import name (every import the family declares). */
export interface WorkerPart {
  implement(rt: GuestRuntime): Record<string, HostcallFn>;
}

/** The driver half. */
export interface DriverPart {
  createDriver(config: HostConfig): Driver;
}

/** A group of ABI numbers for guests/include/spear_abi.h. */
export interface AbiGroup {
  title: string;
  /** Macro name for a key of `values`. */
  name: (key: string) => string;
  values: Readonly<Record<string, number>>;
  /** Print as 0x with this many digits. */
  hex?: number;
  note?: (key: string) => string | undefined;
}

/** Deno permissions a config needs for this family (merged by the launcher). */
export interface Permissions {
  net?: string[];
  env?: string[];
  read?: string[];
  write?: string[];
  /** `--unstable-*` features, e.g. "net" for UDP. */
  unstable?: string[];
  /** Programs the host may start (`--allow-run`), e.g. the local LLM engine, MCP servers. */
  run?: string[];
  /** Environment values the launcher hands the host process (with `--allow-env` to their names). */
  childEnv?: Record<string, string>;
}

/** A top-level config section owned by the family (e.g. "mic"). */
export interface ConfigSection<T> {
  readonly key: string;
  /** Validates the section; `raw` is undefined when absent. Throws ConfigError naming the field. */
  parse(raw: unknown): T;
}

export interface Family<C = unknown> {
  readonly name: string;
  readonly status: "built" | "not_built";
  /** The README status table's first column: the imports, e.g. "`mic_*`". */
  readonly label: string;
  /** Its second column: what works. */
  readonly summary: string;
  readonly imports: readonly ImportDecl[];
  /** fd kinds as spear_fd_ctl GET_KIND names them. */
  readonly fdKinds: readonly string[];
  readonly abi?: readonly AbiGroup[];
  /** Backend kinds (config `backends[].kind`) this family serves. */
  readonly backendKinds?: readonly string[];
  /** The top-level config section(s) the family owns (skills own `memory` and `skills`). */
  readonly config?: ConfigSection<C> | readonly ConfigSection<unknown>[];
  permissions?(config: HostConfig): Permissions;
  /** Families whose drivers this one calls (skills' ai_prompt goes through cchat's backends): a
   * guest that imports this family gets their permissions too. */
  readonly uses?: readonly string[];
  readonly worker?: () => Promise<WorkerPart>;
  readonly driver?: () => Promise<DriverPart>;
}

/** Declares a family (identity, for inference of the config section's type). */
export function family<C>(f: Family<C>): Family<C> {
  return f;
}
