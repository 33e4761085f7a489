/**
 * `spear` command line (SPEC.md §7). Usually started through cli/launcher.ts, which grants
 * only the permissions the config needs; a `deno compile` binary starts here directly.
 */
import { ConfigError, type HostConfig } from "../host/config.ts";
import { type GuestSession, type RunResult, SpearHost } from "../host/host.ts";
import { escapeLogText } from "../host/log.ts";
import type { UserStreamEndpoint } from "../families/user_stream/endpoint.ts";

import {
  parseArgs,
  resolveConfig,
  type RunCommand,
  SPEAR_VERSION,
  STREAM_TOKEN_ENV,
  USAGE,
  UsageError,
} from "./args.ts";
import { WASMTIME_VERSION } from "../ffi/wasmtime.ts";
import { lazyImport } from "../runtime/lazy.ts";
import { describeFailure, EXIT_FOR_FAILURE } from "./output.ts";

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

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const cmd = parseArgs(argv);
    if (cmd.command === "help") {
      console.log(USAGE);
      return 0;
    }
    if (cmd.command === "version") {
      console.log(`spear ${SPEAR_VERSION} (Deno ${Deno.version.deno}, Wasmtime C API ${WASMTIME_VERSION})`);
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
    if (cmd.command === "skill") {
      const { skillCommand } = await lazyImport<typeof import("./skill_commands.ts")>(
        "./skill_commands.ts",
        import.meta.url,
      );
      return await skillCommand(cmd);
    }
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
