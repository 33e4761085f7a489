/**
 * `spear` command line (SPEC.md §7). Usually started through cli/launcher.ts, which grants
 * only the permissions the config needs; a `deno compile` binary starts here directly.
 */
import { ConfigError, defaultConfig, type HostConfig, loadConfig, MAX_LIMITS } from "../host/config.ts";
import { type GuestSession, type RunResult, SpearHost } from "../host/host.ts";
import { listDevices } from "../families/mic/devices.ts";
import { escapeLogText } from "../host/log.ts";
import { DEFAULT_ASR_PORT, startAsrServer } from "../families/rtasr/server.ts";
import { addSkill, listSkills, runSkill, SkillError, type SkillRunResult } from "../families/cis/skill.ts";
import { loadManifest, SKILL_DEFAULTS, SKILL_NAME } from "../families/cis/manifest.ts";
import { MemoryStore, StoreError } from "../families/cis/store.ts";
import { StatusLine } from "./status.ts";
import { EndpointError, parseServeAddress, UserStreamEndpoint } from "../families/user_stream/endpoint.ts";
import { connectStream } from "../families/user_stream/client.ts";

export const USAGE = `spear — run WebAssembly guests built for SPEAR's C SDK

Usage:
  spear run [--config FILE] [--timeout-ms N] [--memory-mb N] [--max-fds N] [--host-memory-mb N]
            [--serve HOST:PORT] GUEST.wasm [-- ARGS...]
  spear stream connect URL [--token T] [--stream N]
                                     terminal client of a run's user streams: stdin goes out as
                                     SSF frames on stream N (default 1), frames received go to
                                     stdout (token: --token or $SPEAR_STREAM_TOKEN)
  spear devices [--config FILE]      list audio input devices (PortAudio)
  spear asr-server [--port N] [--host H]
                                     serve OpenAI's realtime transcription protocol (GA) over
                                     WebSocket at ws://H:N/v1/realtime, backed by the offline
                                     Whisper engine (default 127.0.0.1:8765)
  spear skill run [--config FILE] SKILL [--input JSON | --input-file FILE] [--timeout-ms N] [--memory-mb N]
            run a skill: SKILL is an installed name, a skill.json or its directory; output JSON on stdout
  spear skill add [--config FILE] WASM --name NAME [--allow-host ENTRY]... [--version V]
            [--description TEXT] [--ai-backend NAME] [--ai-model MODEL]
            check WASM, copy it to the skills directory and write its manifest with the checksum
  spear skill list [--config FILE]   installed skills
  spear skill memory [--config FILE] NAME get KEY | set KEY VALUE | delete KEY | list
            the skill's key-value memory (list prints JSON)
  spear --help

Options:
  --config FILE     JSON host config (backends, limits, net, mic); default ./spear.json if present
  --timeout-ms N    end the guest after N ms of wall time (default: limits.timeout_ms, 30000)
  --memory-mb N     cap the guest's linear memory (default: limits.memory_mb, 512)
  --max-fds N       cap open fds per guest (default: limits.max_fds, 1024)
  --host-memory-mb N  cap what the host keeps for the guest (default: limits.host_memory_mb, 64)
  --serve HOST:PORT serve the guest's user streams for this run: WebSocket at ws://HOST:PORT/ws,
                    a web page at http://HOST:PORT/ (the address must pass net.listen; the token
                    is printed on stderr, or read from the variable user_stream.token_env names)

Exit status: the guest's own exit code when it exits; otherwise
  2 usage, config or manifest error    3 invalid module, missing import or checksum mismatch
  124 timeout    125 memory limit    134 trap    70 host error    1 a skill's output is not JSON
Every failure prints one line on stderr naming its cause.`;

export class UsageError extends Error {}

export interface RunCommand {
  command: "run";
  configPath?: string;
  timeoutMs?: number;
  memoryMb?: number;
  maxFds?: number;
  hostMemoryMb?: number;
  /** --serve: the user-stream endpoint's address. */
  serve?: { hostname: string; port: number };
  guest: string;
  args: string[];
}

export interface StreamCommand {
  command: "stream";
  url: string;
  token?: string;
  streamId: number;
}

/** The variable `spear stream connect` reads the token from when --token is absent. */
export const STREAM_TOKEN_ENV = "SPEAR_STREAM_TOKEN";

function parseStream(rest: string[]): StreamCommand {
  const [action, ...args] = rest;
  if (action !== "connect") throw new UsageError('stream: expected "connect URL --token T [--stream N]"');
  const cmd: Partial<StreamCommand> = { command: "stream", streamId: 1 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? args[i].split(/=(.*)/s, 2)
      : [args[i], undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (!v) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === "--token") cmd.token = value();
    else if (flag === "--stream") {
      const v = value();
      const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
      if (!(n >= 0 && n <= 0x7fffffff)) throw new UsageError(`--stream must be 0–2147483647, got "${v}"`);
      cmd.streamId = n;
    } else if (flag.startsWith("-")) throw new UsageError(`stream connect: unknown option ${flag}`);
    else if (cmd.url === undefined) cmd.url = flag;
    else throw new UsageError(`stream connect: unexpected argument "${flag}"`);
  }
  if (cmd.url === undefined) throw new UsageError("stream connect: missing URL (ws://HOST:PORT/ws)");
  return cmd as StreamCommand;
}

export interface AsrServerCommand {
  command: "asr-server";
  port: number;
  host: string;
}

function parseAsrServer(rest: string[]): AsrServerCommand {
  const cmd: AsrServerCommand = { command: "asr-server", port: DEFAULT_ASR_PORT, host: "127.0.0.1" };
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = rest[i].includes("=") ? rest[i].split(/=(.*)/s, 2) : [rest[i], undefined];
    const value = () => inline ?? rest[++i];
    if (flag === "--port") {
      const v = value();
      const n = v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : NaN;
      if (!(n >= 0 && n <= 65535)) throw new UsageError(`--port must be 0–65535, got "${v}"`);
      cmd.port = n;
    } else if (flag === "--host") {
      const v = value();
      if (!v) throw new UsageError("--host needs a value");
      cmd.host = v;
    } else throw new UsageError(`asr-server: unknown argument ${flag}`);
  }
  return cmd;
}
export type SkillCommand =
  | {
    command: "skill";
    action: "run";
    configPath?: string;
    skill: string;
    input?: string;
    inputFile?: string;
    timeoutMs?: number;
    memoryMb?: number;
    maxFds?: number;
    hostMemoryMb?: number;
  }
  | {
    command: "skill";
    action: "add";
    configPath?: string;
    wasm: string;
    name: string;
    allowHosts: string[];
    version?: string;
    description?: string;
    aiBackend?: string;
    aiModel?: string;
  }
  | { command: "skill"; action: "list"; configPath?: string }
  | {
    command: "skill";
    action: "memory";
    configPath?: string;
    skill: string;
    op: "get" | "set" | "delete" | "list";
    key?: string;
    value?: string;
  };

export type Command =
  | RunCommand
  | SkillCommand
  | { command: "devices"; configPath?: string }
  | AsrServerCommand
  | StreamCommand
  | { command: "help" };

/** A limit flag's value: plain decimal digits within the config's range for that limit. */
function limitValue(flag: string, value: string | undefined, max: number): number {
  if (value === undefined) throw new UsageError(`${flag} needs a value`);
  // Number() would also take "1e300", "0x10", " 5" and "16.0".
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) {
    throw new UsageError(`${flag} must be a positive integer no larger than ${max}, got "${value}"`);
  }
  return n;
}

/** Parses argv into a command; throws UsageError with a one-line reason. */
export function parseArgs(argv: string[]): Command {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    return { command: "help" };
  }
  if (command === "asr-server") return parseAsrServer(rest);
  if (command === "skill") return parseSkillArgs(rest);
  if (command === "stream") return parseStream(rest);
  if (command !== "run" && command !== "devices") {
    throw new UsageError(`unknown command "${command}" (try --help)`);
  }
  const parsed: Partial<RunCommand> = {};
  let guest: string | undefined;
  let args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === "--") {
      args = rest.slice(i + 1);
      break;
    }
    if (arg === "--help" || arg === "-h") return { command: "help" };
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? arg.split(/=(.*)/s, 2)
      : [arg, undefined];
    const value = () => inline ?? rest[++i];
    switch (flag) {
      case "--config":
        parsed.configPath = value();
        if (!parsed.configPath) throw new UsageError("--config needs a file");
        break;
      case "--timeout-ms":
        parsed.timeoutMs = limitValue(flag, value(), MAX_LIMITS.timeout_ms);
        break;
      case "--memory-mb":
        parsed.memoryMb = limitValue(flag, value(), MAX_LIMITS.memory_mb);
        break;
      case "--max-fds":
        parsed.maxFds = limitValue(flag, value(), MAX_LIMITS.max_fds);
        break;
      case "--host-memory-mb":
        parsed.hostMemoryMb = limitValue(flag, value(), MAX_LIMITS.host_memory_mb);
        break;
      case "--serve": {
        const v = value();
        parsed.serve = v === undefined ? undefined : parseServeAddress(v);
        if (!parsed.serve || command !== "run") {
          throw new UsageError(`--serve needs HOST:PORT (or [v6]:PORT), got "${v ?? ""}"`);
        }
        break;
      }
      default:
        if (flag.startsWith("-")) throw new UsageError(`unknown option ${flag}`);
        if (command === "devices") throw new UsageError(`devices takes no argument "${flag}"`);
        if (guest !== undefined) args.push(flag);
        else guest = flag;
    }
  }
  if (command === "devices") return { command: "devices", configPath: parsed.configPath };
  if (guest === undefined) throw new UsageError("missing GUEST.wasm (try --help)");
  return { ...parsed, command: "run", guest, args } as RunCommand;
}

const SKILL_ACTIONS = ["run", "add", "list", "memory"];

/** Parses `spear skill …` (after "skill"). */
function parseSkillArgs(argv: string[]): Command {
  const [action, ...rest] = argv;
  if (action === undefined || action === "--help" || action === "-h") return { command: "help" };
  if (!SKILL_ACTIONS.includes(action)) {
    throw new UsageError(`unknown skill command "${action}" (run, add, list or memory)`);
  }
  const flags: Record<string, string> = {};
  const allowHosts: string[] = [];
  const positional: string[] = [];
  const valued: Record<string, string[]> = {
    run: [
      "--config",
      "--input",
      "--input-file",
      "--timeout-ms",
      "--memory-mb",
      "--max-fds",
      "--host-memory-mb",
    ],
    add: ["--config", "--name", "--allow-host", "--version", "--description", "--ai-backend", "--ai-model"],
    list: ["--config"],
    memory: ["--config"],
  };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === "--help" || arg === "-h") return { command: "help" };
    if (arg === "--") {
      positional.push(...rest.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || (action === "memory" && positional.length >= 2)) {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (!valued[action].includes(flag)) throw new UsageError(`unknown option ${flag} for skill ${action}`);
    const value = inline ?? rest[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (flag === "--allow-host") allowHosts.push(value);
    else if (flag in flags) throw new UsageError(`${flag} given twice`);
    else flags[flag] = value;
  }
  const configPath = flags["--config"];
  if (configPath === "") throw new UsageError("--config needs a file");
  const extra = (n: number) => {
    if (positional.length > n) throw new UsageError(`unexpected argument "${positional[n]}"`);
  };
  switch (action) {
    case "run": {
      if (positional.length === 0) {
        throw new UsageError("missing SKILL (a name, a skill.json or its directory)");
      }
      extra(1);
      if (flags["--input"] !== undefined && flags["--input-file"] !== undefined) {
        throw new UsageError("give --input or --input-file, not both");
      }
      const limit = (flag: string, max: number) =>
        flags[flag] === undefined ? undefined : limitValue(flag, flags[flag], max);
      return {
        command: "skill",
        action: "run",
        configPath,
        skill: positional[0],
        input: flags["--input"],
        inputFile: flags["--input-file"],
        timeoutMs: limit("--timeout-ms", MAX_LIMITS.timeout_ms),
        memoryMb: limit("--memory-mb", MAX_LIMITS.memory_mb),
        maxFds: limit("--max-fds", MAX_LIMITS.max_fds),
        hostMemoryMb: limit("--host-memory-mb", MAX_LIMITS.host_memory_mb),
      };
    }
    case "add":
      if (positional.length === 0) throw new UsageError("missing WASM (the module to add)");
      extra(1);
      if (flags["--name"] === undefined) throw new UsageError("skill add needs --name NAME");
      return {
        command: "skill",
        action: "add",
        configPath,
        wasm: positional[0],
        name: flags["--name"],
        allowHosts,
        version: flags["--version"],
        description: flags["--description"],
        aiBackend: flags["--ai-backend"],
        aiModel: flags["--ai-model"],
      };
    case "list":
      extra(0);
      return { command: "skill", action: "list", configPath };
    default: {
      const [skill, op, key, value] = positional;
      if (skill === undefined) throw new UsageError("missing NAME (skill memory NAME get|set|delete|list …)");
      if (op !== "get" && op !== "set" && op !== "delete" && op !== "list") {
        throw new UsageError(`skill memory ${skill}: expected get, set, delete or list`);
      }
      const need = op === "list" ? 2 : op === "set" ? 4 : 3;
      if (positional.length < need) {
        throw new UsageError(`skill memory ${skill} ${op} needs ${op === "set" ? "KEY VALUE" : "KEY"}`);
      }
      extra(need);
      return { command: "skill", action: "memory", configPath, skill, op, key, value };
    }
  }
}

/** The config named on the command line, else ./spear.json if it exists, else defaults. */
export async function resolveConfig(path?: string): Promise<HostConfig> {
  if (path) return await loadConfig(path);
  try {
    await Deno.stat("spear.json");
  } catch {
    return defaultConfig();
  }
  return await loadConfig("spear.json");
}

const EXIT_FOR_FAILURE: Record<string, number> = {
  abi: 1,
  invalid_module: 3,
  link: 3,
  timeout: 124,
  memory: 125,
  trap: 134,
  terminated: 137,
  internal: 70,
};

/** One stderr line for a failed run, or none for a normal exit. */
export function describeFailure(guest: string, result: RunResult): string | undefined {
  const f = result.failure;
  if (!f) return undefined;
  const label: Record<string, string> = {
    invalid_module: "invalid module",
    link: "cannot link",
    timeout: "timeout",
    memory: "memory limit",
    trap: "trap",
    terminated: "terminated",
    internal: "host error",
    abi: "entry contract broken",
  };
  // Timeout and memory messages name their cause already ("timeout after…", "memory limit of…").
  const selfExplained = f.kind === "timeout" || f.kind === "memory";
  const message = selfExplained ? f.message : `${label[f.kind] ?? f.kind}: ${f.message}`;
  // The file name and a trap's function names (the module's name section) are the guest's text.
  return `spear: ${escapeLogText(guest)}: ${escapeLogText(message)}`;
}

async function runCommand(cmd: RunCommand): Promise<number> {
  const config = await resolveConfig(cmd.configPath);
  try {
    const info = await Deno.stat(cmd.guest);
    if (!info.isFile) throw new UsageError(`${cmd.guest} is not a file`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `cannot read ${cmd.guest}: ${
        e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
      }`,
    );
  }
  const endpoint = cmd.serve ? await startEndpoint(config, cmd.serve, cmd.guest) : undefined;
  const host = new SpearHost({ config });
  let result: RunResult | undefined;
  try {
    result = await host.run(cmd.guest, {
      args: cmd.args,
      timeoutMs: cmd.timeoutMs,
      memoryMb: cmd.memoryMb,
      maxFds: cmd.maxFds,
      hostMemoryMb: cmd.hostMemoryMb,
      ...(endpoint ? { context: endpoint.endpoint.context, onSession: endpoint.attach } : {}),
    });
  } finally {
    await endpoint?.close(result);
    await host.close();
  }
  if (result.droppedLogs) {
    const guest = escapeLogText(cmd.guest.split("/").pop()!);
    console.error(`spear: ${guest}: ${result.droppedLogs} log records not written: stderr did not drain`);
  }
  const line = describeFailure(cmd.guest.split("/").pop()!, result);
  if (line) {
    console.error(line);
    return EXIT_FOR_FAILURE[result.failure!.kind] ?? 1;
  }
  return result.exitCode;
}

/**
 * Starts the run's user-stream endpoint (`--serve`): its address must pass net.listen, its token
 * is the variable `user_stream.token_env` names or a fresh one. The address line goes to stderr
 * once the guest's session exists, so a client that reads it can connect at once.
 */
async function startEndpoint(config: HostConfig, serve: { hostname: string; port: number }, guest: string) {
  const tokenEnv = config.user_stream?.token_env;
  let token: string | undefined;
  if (tokenEnv) {
    token = Deno.env.get(tokenEnv);
    if (!token || token.length < 16) {
      throw new ConfigError(
        "user_stream.token_env",
        `$${tokenEnv} must hold a token of at least 16 characters`,
      );
    }
  }
  let endpoint: UserStreamEndpoint;
  try {
    endpoint = await UserStreamEndpoint.listen(config, {
      ...serve,
      token,
      origins: config.user_stream?.origins,
    });
  } catch (e) {
    if (e instanceof EndpointError) throw new UsageError(e.message);
    throw e;
  }
  const name = escapeLogText(guest.split("/").pop()!);
  return {
    endpoint,
    attach: (session: GuestSession) => {
      endpoint.attach(session);
      const shown = tokenEnv ? `(token from $${tokenEnv})` : `token ${endpoint.token}`;
      const page = tokenEnv ? endpoint.pageUrl.replace(/#.*/, "") : endpoint.pageUrl;
      console.error(`spear: ${name}: user streams at ${endpoint.url} ${shown}; page ${page}`);
    },
    close: async (result?: RunResult) => {
      await endpoint.finish(result ? endReason(result) : "the host stopped");
      await endpoint.close();
    },
  };
}

/** The close reason clients get when the guest ends. */
function endReason(result: RunResult): string {
  const f = result.failure;
  if (!f) return `the guest exited with code ${result.exitCode}`;
  return f.kind === "timeout" || f.kind === "memory"
    ? `the guest stopped: ${f.message}`
    : `the guest failed: ${f.kind}`;
}

const encoder = new TextEncoder();

/** Writes bytes to stdout, all of them. */
async function writeStdout(bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
}

async function skillRunCommand(
  cmd: Extract<SkillCommand, { action: "run" }>,
  config: HostConfig,
): Promise<number> {
  let input = cmd.input;
  if (cmd.inputFile !== undefined) {
    try {
      input = await Deno.readTextFile(cmd.inputFile);
    } catch (e) {
      throw new UsageError(
        `cannot read ${cmd.inputFile}: ${
          e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
        }`,
      );
    }
  }
  // A status line while a slow AI or HTTP call is in flight, only where a person watches.
  const status = Deno.stderr.isTerminal() ? new StatusLine() : undefined;
  const host = new SpearHost({ config, activity: status });
  let result: SkillRunResult;
  try {
    result = await runSkill(host, cmd.skill, {
      input,
      timeoutMs: cmd.timeoutMs,
      memoryMb: cmd.memoryMb,
      maxFds: cmd.maxFds,
      hostMemoryMb: cmd.hostMemoryMb,
    });
  } finally {
    status?.clear();
    await host.close();
  }
  const line = describeFailure(`skill ${result.skill}`, result as RunResult);
  if (line) {
    console.error(line);
    return EXIT_FOR_FAILURE[result.failure!.kind] ?? 1;
  }
  if (result.exitCode !== 0) return result.exitCode; // proc_exit from inside execute
  await writeStdout(encoder.encode(`${result.outputText}\n`));
  return 0;
}

async function skillMemoryCommand(
  cmd: Extract<SkillCommand, { action: "memory" }>,
  config: HostConfig,
): Promise<number> {
  // An installed skill's manifest names its namespace and caps; any other NAME is a namespace.
  let namespace = cmd.skill;
  const limits = {
    maxValueBytes: SKILL_DEFAULTS.max_value_bytes,
    maxTotalBytes: SKILL_DEFAULTS.max_total_bytes,
  };
  if (!SKILL_NAME.test(cmd.skill)) throw new UsageError(`"${cmd.skill}" is not a skill name`);
  const manifestPath = `${config.skills.dir}/${cmd.skill}/skill.json`;
  try {
    await Deno.stat(manifestPath);
    const { manifest } = await loadManifest(manifestPath);
    namespace = manifest.memory?.namespace ?? manifest.name;
    limits.maxValueBytes = manifest.memory?.max_value_bytes ?? limits.maxValueBytes;
    limits.maxTotalBytes = manifest.memory?.max_total_bytes ?? limits.maxTotalBytes;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const store = MemoryStore.open(config.memory.path);
  const where = `skill memory ${escapeLogText(cmd.skill)}`;
  try {
    switch (cmd.op) {
      case "get": {
        const value = store.get(namespace, cmd.key!);
        if (value === undefined) {
          console.error(`spear: ${where}: no key "${escapeLogText(cmd.key!)}"`);
          return 1;
        }
        await writeStdout(value);
        if (Deno.stdout.isTerminal()) await writeStdout(encoder.encode("\n"));
        return 0;
      }
      case "set":
        store.set(namespace, cmd.key!, encoder.encode(cmd.value!), limits);
        return 0;
      case "delete":
        if (!store.delete(namespace, cmd.key!)) {
          console.error(`spear: ${where}: no key "${escapeLogText(cmd.key!)}"`);
          return 1;
        }
        return 0;
      default:
        console.log(
          JSON.stringify({ namespace, total_bytes: store.usage(namespace), keys: store.list(namespace) }),
        );
        return 0;
    }
  } catch (e) {
    if (e instanceof StoreError) {
      console.error(`spear: ${where}: ${escapeLogText(e.message)}`);
      return e.errno === "EINVAL" ? 2 : 1;
    }
    throw e;
  } finally {
    store.close();
  }
}

async function skillCommand(cmd: SkillCommand): Promise<number> {
  const config = await resolveConfig(cmd.configPath);
  try {
    switch (cmd.action) {
      case "run":
        return await skillRunCommand(cmd, config);
      case "add": {
        const host = new SpearHost({ config });
        try {
          const path = await addSkill(host, cmd.wasm, {
            name: cmd.name,
            allowHosts: cmd.allowHosts,
            version: cmd.version,
            description: cmd.description,
            aiBackend: cmd.aiBackend,
            aiModel: cmd.aiModel,
          });
          console.log(path);
        } finally {
          await host.close();
        }
        return 0;
      }
      case "list":
        for (const s of await listSkills(config)) {
          const m = s.manifest;
          console.log(
            m
              ? `${m.name}\t${m.version}\t${m.description ?? ""}`.trimEnd()
              : `${s.name}\t(unusable: ${escapeLogText(s.error ?? "")})`,
          );
        }
        return 0;
      default:
        return await skillMemoryCommand(cmd, config);
    }
  } catch (e) {
    if (e instanceof SkillError) {
      const name = "skill" in cmd ? cmd.skill : "name" in cmd ? cmd.name : "";
      console.error(`spear: skill ${escapeLogText(name)}: ${escapeLogText(e.message)}`);
      return e.exitCode;
    }
    throw e;
  }
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const cmd = parseArgs(argv);
    if (cmd.command === "help") {
      console.log(USAGE);
      return 0;
    }
    if (cmd.command === "asr-server") {
      const server = await startAsrServer({
        hostname: cmd.host,
        port: cmd.port,
        onListen: ({ hostname, port }) =>
          console.error(
            `spear asr-server: listening on ws://${hostname}:${port}/v1/realtime (offline Whisper)`,
          ),
      });
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        Deno.addSignalListener(signal, () => server.close());
      }
      await server.finished;
      return 0;
    }
    if (cmd.command === "devices") {
      await resolveConfig(cmd.configPath);
      console.log(JSON.stringify(await listDevices(), null, 2));
      return 0;
    }
    if (cmd.command === "skill") return await skillCommand(cmd);
    if (cmd.command === "stream") {
      const token = cmd.token ?? Deno.env.get(STREAM_TOKEN_ENV);
      if (!token) throw new UsageError(`stream connect needs --token T (or $${STREAM_TOKEN_ENV})`);
      return await connectStream({ url: cmd.url, token, streamId: cmd.streamId });
    }
    return await runCommand(cmd);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      console.error(`spear: ${e.message}`);
      return 2;
    }
    console.error(`spear: host error: ${(e as Error)?.message ?? e}`);
    return 70;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
