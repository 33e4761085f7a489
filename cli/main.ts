/**
 * `spear` command line (SPEC.md §7). Usually started through cli/launcher.ts, which grants
 * only the permissions the config needs; a `deno compile` binary starts here directly.
 */
import { ConfigError, type HostConfig } from "../host/config.ts";
import { type GuestSession, type RunResult, SpearHost } from "../host/host.ts";
import { escapeLogText } from "../host/log.ts";
import { addSkill, listSkills, runSkill, SkillError, type SkillRunResult } from "../families/cis/skill.ts";
import { loadManifest, SKILL_DEFAULTS, SKILL_NAME } from "../families/cis/manifest.ts";
import { StatusLine } from "./status.ts";
import type { UserStreamEndpoint } from "../families/user_stream/endpoint.ts";

import {
  parseArgs,
  resolveConfig,
  type RunCommand,
  type SkillCommand,
  STREAM_TOKEN_ENV,
  USAGE,
  UsageError,
} from "./args.ts";
import { lazyImport } from "../runtime/lazy.ts";

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
  // Loaded only for --serve, so a plain run does not pay for it at start-up.
  const { EndpointError, UserStreamEndpoint } = await lazyImport<
    typeof import("../families/user_stream/endpoint.ts")
  >("../families/user_stream/endpoint.ts", import.meta.url);
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
  // node:sqlite loads only for this command: importing it starts Deno's Node layer (30-40 ms
  // of every cold `spear run` when it was imported up front).
  const { MemoryStore, StoreError } = await lazyImport<typeof import("../families/cis/store.ts")>(
    "../families/cis/store.ts",
    import.meta.url,
  );
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
      // Loaded for its command only, as below: a cold `spear run` does not pay for them.
      const { startAsrServer } = await lazyImport<typeof import("../families/rtasr/server.ts")>(
        "../families/rtasr/server.ts",
        import.meta.url,
      );
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
      const { listDevices } = await lazyImport<typeof import("../families/mic/devices.ts")>(
        "../families/mic/devices.ts",
        import.meta.url,
      );
      console.log(JSON.stringify(await listDevices(), null, 2));
      return 0;
    }
    if (cmd.command === "skill") return await skillCommand(cmd);
    if (cmd.command === "stream") {
      const token = cmd.token ?? Deno.env.get(STREAM_TOKEN_ENV);
      if (!token) throw new UsageError(`stream connect needs --token T (or $${STREAM_TOKEN_ENV})`);
      const { connectStream } = await lazyImport<typeof import("../families/user_stream/client.ts")>(
        "../families/user_stream/client.ts",
        import.meta.url,
      );
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
