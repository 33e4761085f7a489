/**
 * Skills on the host side (seed 004): load → validate → instantiate → inject host functions →
 * call `execute` with a timeout → clean up, plus installing and listing skills.
 *
 * `runSkill` checks, in this order and before any guest code runs: the manifest (strict), the
 * module's SHA-256 against the manifest's (first, before the bytes are even parsed), the
 * header (not wasm, bad version), Wasmtime's validation (invalid), and the skill ABI (execute
 * and alloc exports, a memory exported or imported as env.memory). A module that passed is
 * remembered by checksum for the life of the process (warm runs skip the checks), and its
 * compiled code is cached on disk under the same checksum (runtime/instance.ts loadModule).
 * Then `SpearHost.run` calls `execute` as SPEC.md §9 describes, with the skill's limits and
 * context; the output must be UTF-8 JSON.
 */
import type { HostConfig } from "../../host/config.ts";
import type { RunResult, SpearHost } from "../../host/host.ts";
import { sha256Hex, WasmError } from "../../runtime/engine.ts";

export { sha256Hex };
import {
  type LoadedManifest,
  loadManifest,
  ManifestError,
  parseManifest,
  renderManifest,
  SKILL_DEFAULTS,
  SKILL_NAME,
  type SkillManifest,
} from "./manifest.ts";
import { inspectModule, ModuleShapeError, skillAbiProblem } from "./module.ts";
import { CONTEXT_KEY, type SkillContext } from "./protocol.ts";

/** Why a skill cannot run (or be installed); `exitCode` is the CLI's (SPEC.md §7, §9). */
export class SkillError extends Error {
  constructor(
    readonly kind: "usage" | "manifest" | "checksum" | "invalid_module",
    message: string,
  ) {
    super(message);
  }

  get exitCode(): number {
    return this.kind === "checksum" || this.kind === "invalid_module" ? 3 : 2;
  }
}

export interface SkillRunOptions {
  /** The input JSON text (default `{}`); not JSON → SkillError "usage". */
  input?: string;
  /** Override the manifest's limits (the CLI's flags). */
  timeoutMs?: number;
  memoryMb?: number;
  maxFds?: number;
  hostMemoryMb?: number;
}

export interface SkillRunResult extends Omit<RunResult, "output"> {
  /** The skill's name (from its manifest). */
  skill: string;
  /** The output JSON text, when the skill returned valid JSON. */
  outputText?: string;
  /** The output, parsed. */
  json?: unknown;
}

const encoder = new TextEncoder();

/**
 * The manifest a skill reference names: a path to a `.json` manifest, a directory holding
 * `skill.json`, or the name of a skill installed in the config's `skills.dir`.
 */
export async function resolveSkillPath(config: HostConfig, ref: string): Promise<string> {
  if (ref === "") throw new SkillError("usage", "the skill name is empty");
  if (ref.includes("/") || ref.endsWith(".json")) {
    try {
      if ((await Deno.stat(ref)).isDirectory) return `${ref.replace(/\/+$/, "")}/skill.json`;
    } catch { /* loadManifest reports it */ }
    return ref;
  }
  if (!SKILL_NAME.test(ref)) throw new SkillError("usage", `"${ref}" is not a skill name`);
  const path = `${config.skills.dir}/${ref}/skill.json`;
  try {
    await Deno.stat(path);
  } catch {
    throw new SkillError("usage", `no skill "${ref}" in ${config.skills.dir} (add it with spear skill add)`);
  }
  return path;
}

/** Checks passed, by checksum (a module is only ever checked once per process). */
const checked = new Map<string, string | undefined>();

/**
 * Checks module bytes as a skill: header, Wasmtime's validation, the skill ABI. Returns the
 * problem (one line) or undefined.
 */
export function moduleProblem(host: SpearHost, wasm: Uint8Array<ArrayBuffer>): string | undefined {
  let shape;
  try {
    shape = inspectModule(wasm);
  } catch (e) {
    if (!(e instanceof ModuleShapeError)) throw e;
    if (e.reason !== "malformed") return e.message;
    shape = undefined; // Wasmtime names the defect better
  }
  try {
    host.validateModule(wasm);
  } catch (e) {
    if (!(e instanceof WasmError)) throw e;
    return `invalid module: ${e.message.split("\n").filter((l) => l.trim() !== "").join(": ")}`;
  }
  if (!shape) return "invalid module: cannot read its sections";
  return skillAbiProblem(shape);
}

/** Loads a skill's manifest and module and checks them; SkillError says what is wrong. */
export async function loadSkill(
  host: SpearHost,
  manifestPath: string,
): Promise<{ loaded: LoadedManifest; wasm: Uint8Array<ArrayBuffer> }> {
  let loaded: LoadedManifest;
  try {
    loaded = await loadManifest(manifestPath);
  } catch (e) {
    if (e instanceof ManifestError) throw new SkillError("manifest", `invalid manifest ${e.message}`);
    throw e;
  }
  const { manifest, wasmPath } = loaded;
  let wasm: Uint8Array<ArrayBuffer>;
  try {
    wasm = await Deno.readFile(wasmPath);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new SkillError("manifest", `cannot read the module ${wasmPath}: ${why}`);
  }
  // The checksum before anything else looks at the bytes.
  const actual = await sha256Hex(wasm);
  if (actual !== manifest.sha256) {
    throw new SkillError(
      "checksum",
      `checksum mismatch: ${wasmPath} has sha256 ${actual}, the manifest says ${manifest.sha256}; refusing to run`,
    );
  }
  if (!checked.has(actual)) checked.set(actual, moduleProblem(host, wasm));
  const problem = checked.get(actual);
  if (problem !== undefined) throw new SkillError("invalid_module", problem);
  return { loaded, wasm };
}

/** The context both halves of the cis family get for this skill. */
export function skillContext(manifest: SkillManifest): SkillContext {
  const ctx: SkillContext = {
    name: manifest.name,
    namespace: manifest.memory?.namespace ?? manifest.name,
    maxValueBytes: manifest.memory?.max_value_bytes ?? SKILL_DEFAULTS.max_value_bytes,
    maxTotalBytes: manifest.memory?.max_total_bytes ?? SKILL_DEFAULTS.max_total_bytes,
    httpAllow: manifest.http?.allow ?? [],
    httpTimeoutMs: manifest.http?.timeout_ms ?? SKILL_DEFAULTS.http_timeout_ms,
    maxResponseBytes: manifest.http?.max_response_bytes ?? SKILL_DEFAULTS.max_response_bytes,
  };
  if (manifest.ai?.backend) ctx.aiBackend = manifest.ai.backend;
  if (manifest.ai?.model) ctx.aiModel = manifest.ai.model;
  return ctx;
}

/**
 * Runs a skill once: `ref` as resolveSkillPath takes it. SkillError for what refuses to run
 * (manifest, checksum, module, input); a run that fails (timeout, trap, memory, bad output)
 * comes back with `failure` set, as SpearHost.run reports it.
 */
export async function runSkill(
  host: SpearHost,
  ref: string,
  options: SkillRunOptions = {},
): Promise<SkillRunResult> {
  const input = options.input ?? "{}";
  try {
    JSON.parse(input);
  } catch (e) {
    throw new SkillError("usage", `the input is not JSON: ${(e as Error).message}`);
  }
  const path = await resolveSkillPath(host.config, ref);
  const { loaded, wasm } = await loadSkill(host, path);
  const { manifest } = loaded;
  const result = await host.run(wasm, {
    name: manifest.name,
    timeoutMs: options.timeoutMs ?? manifest.limits?.timeout_ms ?? SKILL_DEFAULTS.timeout_ms,
    memoryMb: options.memoryMb ?? manifest.limits?.memory_mb ?? SKILL_DEFAULTS.memory_mb,
    maxFds: options.maxFds,
    hostMemoryMb: options.hostMemoryMb,
    entry: { kind: "call", export: "execute", input: encoder.encode(input), output: "cstring" },
    context: { [CONTEXT_KEY]: skillContext(manifest) },
  });
  const { output: bytes, ...rest } = result;
  const out: SkillRunResult = { ...rest, skill: manifest.name };
  if (result.failure || !bytes) return out;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    out.json = JSON.parse(text);
    out.outputText = text;
  } catch (e) {
    const why = e instanceof SyntaxError ? `not JSON: ${e.message}` : "not UTF-8";
    return { ...out, exitCode: 1, failure: { kind: "abi", message: `the output of execute is ${why}` } };
  }
  return out;
}

export interface AddSkillOptions {
  name: string;
  allowHosts?: string[];
  version?: string;
  description?: string;
  aiBackend?: string;
  aiModel?: string;
}

/**
 * Installs a module as a skill: checks it, copies it to `<skills.dir>/<name>/<name>.wasm` and
 * writes `skill.json` with its checksum. Re-adding a skill replaces its module and keeps the
 * settings of its manifest that the options do not change. Returns the manifest path.
 */
export async function addSkill(host: SpearHost, wasmPath: string, options: AddSkillOptions): Promise<string> {
  const { name } = options;
  if (!SKILL_NAME.test(name)) {
    throw new SkillError("usage", `--name "${name}": 1-64 letters, digits, '.', '_' or '-'`);
  }
  let wasm: Uint8Array<ArrayBuffer>;
  try {
    wasm = await Deno.readFile(wasmPath);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new SkillError("usage", `cannot read ${wasmPath}: ${why}`);
  }
  const problem = moduleProblem(host, wasm);
  if (problem !== undefined) throw new SkillError("invalid_module", problem);
  const dir = `${host.config.skills.dir}/${name}`;
  const manifestPath = `${dir}/skill.json`;
  let previous: SkillManifest | undefined;
  try {
    previous = (await loadManifest(manifestPath)).manifest;
  } catch { /* new, or unreadable: written afresh */ }
  const manifest: SkillManifest = {
    ...previous,
    name,
    version: options.version ?? previous?.version ?? "0.1.0",
    wasm: `${name}.wasm`,
    sha256: await sha256Hex(wasm),
  };
  if (options.description !== undefined) manifest.description = options.description;
  if (options.aiBackend !== undefined || options.aiModel !== undefined) {
    manifest.ai = { ...previous?.ai };
    if (options.aiBackend !== undefined) manifest.ai.backend = options.aiBackend;
    if (options.aiModel !== undefined) manifest.ai.model = options.aiModel;
  }
  if (options.allowHosts?.length) manifest.http = { ...previous?.http, allow: options.allowHosts };
  // Checked like any manifest (entries, names) before anything is written.
  try {
    parseManifest(JSON.parse(renderManifest(manifest)), "skill.json");
  } catch (e) {
    if (e instanceof ManifestError) throw new SkillError("usage", e.message);
    throw e;
  }
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/.${name}.wasm.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(tmp, wasm);
  await Deno.rename(tmp, `${dir}/${name}.wasm`);
  await Deno.writeTextFile(`${manifestPath}.tmp`, renderManifest(manifest));
  await Deno.rename(`${manifestPath}.tmp`, manifestPath);
  return manifestPath;
}

export interface SkillListing {
  name: string;
  path: string;
  manifest?: SkillManifest;
  /** Why the manifest cannot be used. */
  error?: string;
}

/** The skills installed in the config's `skills.dir`, by name. */
export async function listSkills(config: HostConfig): Promise<SkillListing[]> {
  const out: SkillListing[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(config.skills.dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    const path = `${config.skills.dir}/${entry.name}/skill.json`;
    try {
      await Deno.stat(path);
    } catch {
      continue;
    }
    try {
      out.push({ name: entry.name, path, manifest: (await loadManifest(path)).manifest });
    } catch (e) {
      out.push({ name: entry.name, path, error: (e as Error).message });
    }
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
