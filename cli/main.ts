/**
 * `spear` command line (SPEC.md §7). Usually started through cli/launcher.ts, which grants
 * only the permissions the config needs; a `deno compile` binary starts here directly.
 */
import { ConfigError, defaultConfig, type HostConfig, loadConfig, MAX_LIMITS } from "../host/config.ts";
import { type RunResult, SpearHost } from "../host/host.ts";
import { listDevices } from "../families/mic/devices.ts";
import { escapeLogText } from "../host/log.ts";
import { DEFAULT_ASR_PORT, startAsrServer } from "../families/rtasr/server.ts";

export const USAGE = `spear — run WebAssembly guests built for SPEAR's C SDK

Usage:
  spear run [--config FILE] [--timeout-ms N] [--memory-mb N] [--max-fds N] [--host-memory-mb N]
            GUEST.wasm [-- ARGS...]
  spear devices [--config FILE]      list audio input devices (PortAudio)
  spear asr-server [--port N] [--host H]
                                     serve OpenAI's realtime transcription protocol (GA) over
                                     WebSocket at ws://H:N/v1/realtime, backed by the offline
                                     Whisper engine (default 127.0.0.1:8765)
  spear --help

Options:
  --config FILE     JSON host config (backends, limits, net, mic); default ./spear.json if present
  --timeout-ms N    end the guest after N ms of wall time (default: limits.timeout_ms, 30000)
  --memory-mb N     cap the guest's linear memory (default: limits.memory_mb, 512)
  --max-fds N       cap open fds per guest (default: limits.max_fds, 1024)
  --host-memory-mb N  cap what the host keeps for the guest (default: limits.host_memory_mb, 64)

Exit status: the guest's own exit code when it exits; otherwise
  2 usage or config error    3 invalid module or missing import    124 timeout
  125 memory limit           134 trap                               70 host error
Every failure prints one line on stderr naming its cause.`;

export class UsageError extends Error {}

export interface RunCommand {
  command: "run";
  configPath?: string;
  timeoutMs?: number;
  memoryMb?: number;
  maxFds?: number;
  hostMemoryMb?: number;
  guest: string;
  args: string[];
}

export interface AsrServerCommand {
  command: "asr-server";
  port: number;
  host: string;
}

export type Command =
  | RunCommand
  | { command: "devices"; configPath?: string }
  | AsrServerCommand
  | { command: "help" };

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
  const host = new SpearHost({ config });
  const result = await host.run(cmd.guest, {
    args: cmd.args,
    timeoutMs: cmd.timeoutMs,
    memoryMb: cmd.memoryMb,
    maxFds: cmd.maxFds,
    hostMemoryMb: cmd.hostMemoryMb,
  });
  await host.close();
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
