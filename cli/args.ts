/**
 * The `spear` command line's grammar (SPEC.md §7): usage text, parsing into commands and the
 * config a command names. Apart from cli/main.ts so the launcher (cli/launcher.ts), which
 * only derives permissions, does not load the host to parse its arguments.
 */
import { defaultConfig, type HostConfig, loadConfig, MAX_LIMITS } from "../host/config.ts";
import { DEFAULT_ASR_PORT } from "../families/rtasr/protocol.ts";
import { parseSockAddr } from "../families/sock/protocol.ts";

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
  spear --help | --version

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

/** The release `spear --version` names: deno.json's `version` (tests/system/cli_test.ts keeps them equal). */
export const SPEAR_VERSION = "0.1.0";

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

/** `HOST:PORT` / `[v6]:PORT` (the socket family's address syntax) for --serve. */
function parseServeAddress(text: string): { hostname: string; port: number } | undefined {
  const addr = parseSockAddr(text);
  return addr ? { hostname: addr.host, port: addr.port } : undefined;
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
  | { command: "help" }
  | { command: "version" };

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
  if (command === "--version" || command === "-V" || command === "version") return { command: "version" };
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
