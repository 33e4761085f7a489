/**
 * Helpers for socket tests: peers nobody here wrote (Python's http.server, redis-server, socat,
 * curl), started on loopback by the test and stopped by it, and a runner for socket guests that
 * hands the test the guest's logged address while the guest is still running.
 */
import { SpearHost } from "../../host/host.ts";
import { type HostConfig, parseConfig } from "../../host/config.ts";
import type { Driver, GuestSession } from "../../host/host.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const SAMPLES = `${root}/guests/build`;
export const SOCK_PROBE = `${root}/guests/build/test/sock_probe.wasm`;

/** A config that lets sockets reach and listen on loopback (TCP and UDP, any port). */
export function loopbackConfig(extra: { allow?: string[]; listen?: string[] } = {}): HostConfig {
  return parseConfig({
    net: {
      allow: [
        "tcp://127.0.0.1:*",
        "udp://127.0.0.1:*",
        "tcp://[::1]:*",
        "udp://[::1]:*",
        ...(extra.allow ?? []),
      ],
      listen: [
        "tcp://127.0.0.1:*",
        "udp://127.0.0.1:*",
        "tcp://[::1]:*",
        "udp://[::1]:*",
        ...(extra.listen ?? []),
      ],
    },
  });
}

/** A port that was free a moment ago (the kernel's pick for port 0). */
export function freePort(transport: "tcp" | "udp" = "tcp"): number {
  if (transport === "udp") {
    const conn = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const port = (conn.addr as Deno.NetAddr).port;
    conn.close();
    return port;
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits until something accepts TCP connections on the port (a peer process starting up). */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${port}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A peer process: stopped (and awaited) by `stop`. */
export interface Peer {
  port: number;
  process: Deno.ChildProcess;
  stop(): Promise<void>;
}

function spawn(cmd: string, args: string[], port: number, cwd?: string): Peer {
  const process = new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  return {
    port,
    process,
    async stop() {
      try {
        process.kill("SIGTERM");
      } catch { /* already gone */ }
      await process.stderr.cancel().catch(() => {});
      await process.status;
    },
  };
}

/** Python's http.server serving `dir` on 127.0.0.1. */
export async function startHttpServer(dir: string): Promise<Peer> {
  const port = freePort();
  const peer = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1"], port, dir);
  await waitForPort(port);
  return peer;
}

/** A real redis-server (Debian's) on 127.0.0.1, without persistence. */
export async function startRedis(): Promise<Peer> {
  const port = freePort();
  const peer = spawn("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
  ], port);
  await waitForPort(port);
  return peer;
}

/** socat echoing every UDP datagram back to its sender, on 127.0.0.1. */
export async function startUdpEcho(): Promise<Peer> {
  const port = freePort("udp");
  const peer = spawn("socat", [`UDP4-RECVFROM:${port},bind=127.0.0.1,fork`, "PIPE"], port);
  // socat binds at once; give it a moment to be there before the first datagram.
  for (let i = 0; i < 100; i++) {
    const out = await new Deno.Command("ss", { args: ["-uln"], stdout: "piped", stderr: "null" }).output()
      .catch(() => null);
    if (!out || new TextDecoder().decode(out.stdout).includes(`127.0.0.1:${port}`)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return peer;
}

export interface GuestRun {
  /** Resolves with the address the guest logs as "listening on ADDR". */
  listening: Promise<string>;
  /** Resolves when the guest ends: exit code, stdout, logs. */
  done: Promise<{ exitCode: number; failure?: string; stdout: string; logs: string[] }>;
}

/** Runs a guest on its own SpearHost (closed when it ends); stdout is captured to a file. */
export function runGuest(
  wasm: string,
  args: string[],
  options: {
    config?: HostConfig;
    drivers?: Driver[];
    timeoutMs?: number;
    onLog?: (message: string) => void;
    onSession?: (session: GuestSession) => void;
  } = {},
): GuestRun {
  const logs: string[] = [];
  let listened: (addr: string) => void;
  const listening = new Promise<string>((resolve) => (listened = resolve));
  const host = new SpearHost({
    config: options.config ?? loopbackConfig(),
    drivers: options.drivers,
    cacheDir: null,
    logSink: (_guest, _level, message) => {
      logs.push(message);
      options.onLog?.(message);
      const m = /listening on (\S+)/.exec(message);
      if (m) listened(m[1]);
    },
  });
  const done = (async () => {
    const stdoutFile = await Deno.makeTempFile();
    try {
      const r = await host.run(wasm, {
        args,
        stdoutFile,
        timeoutMs: options.timeoutMs ?? 30_000,
        onSession: options.onSession,
      });
      const stdout = await Deno.readTextFile(stdoutFile);
      return { exitCode: r.exitCode, failure: r.failure?.message, stdout, logs };
    } finally {
      await host.close();
      await Deno.remove(stdoutFile);
    }
  })();
  done.then(() => listened?.("(guest ended)"), () => listened?.("(guest failed)"));
  return { listening, done };
}

/** `key=value` lines of a probe's stdout. */
export function values(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** The port of an `ip:port` / `[v6]:port` text. */
export function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(":") + 1));
}
