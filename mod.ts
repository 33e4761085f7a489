/**
 * spearhost: run WebAssembly guests built for SPEAR's C SDK (import module `spear`) on
 * Wasmtime, from Deno, with an fd table and level-triggered epoll per guest.
 *
 * ```ts
 * import { loadConfig, SpearHost } from "./mod.ts";
 *
 * const config = await loadConfig("guests/configs/stub.json");
 * const host = new SpearHost({ config }); // every built family's driver
 * const result = await host.run("guests/build/chat_completion.wasm", { timeoutMs: 10_000 });
 * console.log(result.exitCode, result.failure?.message);
 * await host.close();
 * ```
 *
 * Each `run` starts the guest in its own Worker; many guests can run at once in one host,
 * and one guest's trap, timeout or memory exhaustion never affects another.
 * @module
 */

export {
  /** Runs guests: one Worker and one Wasmtime store per guest, sharing one engine. */
  SpearHost,
  /** The default log sink: `[guest] LEVEL message` lines on stderr. */
  stderrLogSink,
} from "./host/host.ts";
export type {
  /** A main-thread driver for one hostcall family (how the host talks to the world). */
  Driver,
  /** The main-thread view of a running guest, handed to drivers. */
  GuestSession,
  /** Options of a SpearHost: config, drivers, log sink, module cache, libwasmtime path. */
  HostOptions,
  /** Where guest log lines go. */
  LogSink,
  /** Per-run options: args, env, limits, stdout/stderr files. */
  RunOptions,
  /** Exit code, or the failure (trap, timeout, memory, link, invalid module) and duration. */
  RunResult,
} from "./host/host.ts";
export type {
  /** What a run calls: `_start` (command, the default) or one export with typed args, input and output. */
  Entry,
} from "./runtime/instance.ts";
export type {
  /** A wasm value: i64 as bigint, i32/f32/f64 as number. */
  WasmValue,
} from "./runtime/hostcall.ts";
export {
  /** A config problem, with the field it concerns. */
  ConfigError,
  /** The config used when none is given. */
  defaultConfig,
  /** Reads and validates a JSON config file; throws ConfigError naming the bad field. */
  loadConfig,
  /** Validates an already-parsed config object. */
  parseConfig,
} from "./host/config.ts";
export type { BackendConfig, HostConfig, Limits } from "./host/config.ts";
export {
  /** The drivers of every built family, configured from the host config (a host uses them by default). */
  createDrivers as defaultDrivers,
  /** Every hostcall family, built or not, with its imports, fd kinds and status. */
  FAMILIES,
} from "./families/registry.ts";
export {
  /** Audio input devices seen by PortAudio. */
  listDevices,
} from "./families/mic/devices.ts";
export {
  /** Installs a module as a skill (checks it, copies it, writes skill.json with its checksum). */
  addSkill,
  /** The skills installed in the config's skills.dir. */
  listSkills,
  /** Runs a skill once: manifest, checksum, module checks, execute with its limits, output JSON. */
  runSkill,
  /** Why a skill cannot run or be installed (manifest, checksum, module, input), with the CLI's exit code. */
  SkillError,
} from "./families/cis/skill.ts";
export type { SkillRunOptions, SkillRunResult } from "./families/cis/skill.ts";
export {
  /** Parses a skill manifest strictly (unknown fields are errors naming them). */
  parseManifest,
} from "./families/cis/manifest.ts";
export type { SkillManifest } from "./families/cis/manifest.ts";
export {
  /** The skills' SQLite key-value store (namespaces, caps, WAL), as the host uses it. */
  MemoryStore,
} from "./families/cis/store.ts";
export type {
  /** A slow driver operation in flight, and who is told about it (HostOptions.activity). */
  Activity,
  ActivitySink,
} from "./host/host.ts";
export {
  /** Linux errno numbers returned negated by hostcalls. */
  Errno,
  /** EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP. */
  Poll,
} from "./runtime/abi.ts";
