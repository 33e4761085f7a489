/**
 * Runs the `local_llm` engine (engine.ts) as a supervised child of the host: started on the
 * first request, health-checked before it is used, started again on the next request after it
 * died (a request in flight when it dies fails with an error response), and stopped with the
 * host (the cchat driver's `stop`; closing its stdin ends it even if the host is killed).
 *
 * The child gets its own narrow permissions and an empty environment: it reads the engine and
 * the model, loads the Node-API binary (FFI), listens on one loopback address, and may run the
 * Deno binary (node-llama-cpp forks a probe of its prebuilt binary before loading it). It can
 * write nothing and sees none of the host's environment variables (no API keys).
 */

/** Where setup.sh installs the engine and the model. */
export interface LocalLlmInstall {
  /** The engine's npm install (node_modules of node-llama-cpp and @huggingface/jinja). */
  engineDir: string;
  /** The GGUF model file. */
  modelPath: string;
}

const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const ENGINE_SCRIPT = new URL("./engine.ts", import.meta.url).pathname;

/** The packaged model (scripts/setup.sh `LLM_MODEL_FILE`). */
export const DEFAULT_MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/** The install that setup.sh makes; `SPEARHOST_LLM_DIR` points elsewhere (tests, packagers). */
export function defaultInstall(): LocalLlmInstall {
  const dir = Deno.env.get("SPEARHOST_LLM_DIR") ?? `${root}/.tools/llm`;
  return { engineDir: `${dir}/engine`, modelPath: `${dir}/${DEFAULT_MODEL_FILE}` };
}

/**
 * The loopback port the engine listens on: the launcher picks a free one and grants exactly it
 * (`SPEARHOST_LLM_PORT`); 0 (any) when the host runs with broader permissions (tests, embedding).
 */
export function enginePort(): number {
  const raw = Deno.env.get("SPEARHOST_LLM_PORT");
  const port = raw ? Number(raw) : 0;
  return Number.isInteger(port) && port >= 0 && port < 65536 ? port : 0;
}

/**
 * llama.cpp threads: `SPEARHOST_LLM_THREADS`, else 1. Measured here: on an idle 2-core machine
 * two threads generate about twice as fast, but under load (CI, other guests) their barrier
 * spinning made 10 tokens take 12 s instead of 1 s.
 */
export function engineThreads(): number {
  const n = Number(Deno.env.get("SPEARHOST_LLM_THREADS") ?? 1);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 1;
}

/** System library folders node-llama-cpp inspects to tell glibc from musl. */
const LIBRARY_DIRS = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

export interface SupervisorOptions {
  install?: LocalLlmInstall;
  port?: number;
  /** llama.cpp threads (engineThreads() by default). */
  threads?: number;
  contextSize?: number;
  /** Longest wait for the model to load and the port to listen. */
  startTimeoutMs?: number;
  /** Engine stderr lines (model loader errors); dropped by default. */
  onLog?: (line: string) => void;
}

export type EngineState = { ok: true; baseUrl: string; model: string } | { ok: false; error: string };

interface Running {
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  ready: Promise<EngineState>;
  exited: boolean;
  /** Last stderr lines, for the error that names why it died or would not start. */
  tail: string[];
}

export class EngineSupervisor {
  private running: Running | undefined;
  /** How many times the engine was started (1 after the first start; tests read it). */
  starts = 0;
  private stopped = false;

  constructor(private readonly options: SupervisorOptions = {}) {}

  get install(): LocalLlmInstall {
    return this.options.install ?? defaultInstall();
  }

  /** The engine's process id while it runs (tests kill it to check supervision). */
  get pid(): number | undefined {
    return this.running && !this.running.exited ? this.running.child.pid : undefined;
  }

  /** The running engine's address, starting it (and waiting for it) when it is not running. */
  ensure(): Promise<EngineState> {
    if (this.stopped) {
      return Promise.resolve({ ok: false, error: "the local_llm engine was stopped with the host" });
    }
    if (!this.running || this.running.exited) this.running = this.start();
    return this.running.ready;
  }

  /** Stops the engine (and keeps it stopped). */
  async stop(): Promise<void> {
    this.stopped = true;
    const r = this.running;
    this.running = undefined;
    if (!r || r.exited) return;
    await r.stdin.close().catch(() => {});
    try {
      r.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        r.child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 2000);
    await r.child.status;
    clearTimeout(timer);
  }

  /** After a failed request: a dead or unhealthy engine is replaced on the next request. */
  async check(): Promise<boolean> {
    const r = this.running;
    if (!r) return false;
    const state = await r.ready;
    if (!r.exited && state.ok && (await healthy(state.baseUrl))) return true;
    // Dead (its exit may not be reported yet) or hung: the next request starts a new one.
    if (this.running === r) this.running = undefined;
    try {
      r.child.kill("SIGKILL");
    } catch { /* already gone */ }
    return false;
  }

  private start(): Running {
    // Permissions are checked on real paths (.tools may be a symlink).
    const engineDir = realPath(this.install.engineDir);
    const modelPath = realPath(this.install.modelPath);
    const port = this.options.port ?? enginePort();
    const deno = Deno.execPath();
    this.starts++;
    const child = new Deno.Command(deno, {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--no-config",
        "--node-modules-dir=manual",
        `--allow-read=${[engineDir, modelPath, ENGINE_SCRIPT, ...LIBRARY_DIRS].join(",")}`,
        "--allow-ffi",
        "--allow-sys",
        // The environment is cleared below: these are the engine's own (node-llama-cpp's switches).
        "--allow-env",
        `--allow-run=${deno}`,
        `--allow-net=127.0.0.1${port ? `:${port}` : ""}`,
        ENGINE_SCRIPT,
        "--engine",
        engineDir,
        "--model",
        modelPath,
        "--port",
        String(port),
        "--threads",
        String(this.options.threads ?? engineThreads()),
        "--ctx",
        String(this.options.contextSize ?? 4096),
      ],
      cwd: engineDir,
      clearEnv: true,
      env: {},
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const running: Running = {
      child,
      stdin: child.stdin.getWriter(),
      ready: Promise.resolve({ ok: false, error: "starting" }),
      exited: false,
      tail: [],
    };
    const exited = child.status.then((status) => {
      running.exited = true;
      return status;
    });
    this.collectStderr(running);
    running.ready = this.awaitReady(running, exited);
    return running;
  }

  private async collectStderr(r: Running): Promise<void> {
    for await (const line of lines(r.child.stderr)) {
      r.tail.push(line);
      if (r.tail.length > 5) r.tail.shift();
      this.options.onLog?.(line);
    }
  }

  private async awaitReady(r: Running, exited: Promise<Deno.CommandStatus>): Promise<EngineState> {
    const timeoutMs = this.options.startTimeoutMs ?? 180_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) =>
      timer = setTimeout(() => resolve("timeout"), timeoutMs)
    );
    const stdout = lines(r.child.stdout)[Symbol.asyncIterator]();
    const first = stdout.next().then((x) => (x.done ? undefined : x.value));
    try {
      const got = await Promise.race([first, exited, timeout]);
      if (got === "timeout") {
        r.child.kill("SIGKILL");
        return { ok: false, error: `the local_llm engine did not start within ${timeoutMs} ms` };
      }
      if (typeof got !== "string") {
        const status = await exited;
        return {
          ok: false,
          error: `the local_llm engine exited while starting (${exitText(status)})${why(r)}`,
        };
      }
      const ready = JSON.parse(got) as { ready?: boolean; port?: number; model?: string };
      if (!ready.ready || !ready.port) throw new Error(`unexpected first line ${got}`);
      const baseUrl = `http://127.0.0.1:${ready.port}`;
      if (!(await healthy(baseUrl))) {
        r.child.kill("SIGKILL");
        return { ok: false, error: "the local_llm engine started but failed its health check" };
      }
      return { ok: true, baseUrl, model: ready.model ?? "local" };
    } catch (e) {
      r.child.kill("SIGKILL");
      return { ok: false, error: `the local_llm engine did not start: ${(e as Error).message}${why(r)}` };
    } finally {
      clearTimeout(timer);
      // Drain stdout so the child never blocks on a full pipe.
      (async () => {
        for (let x = await stdout.next(); !x.done; x = await stdout.next()) { /* ignored */ }
      })().catch(() => {});
    }
  }
}

function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path; // missing: the engine says so when it starts
  }
}

function why(r: Running): string {
  return r.tail.length > 0 ? `: ${r.tail.join(" | ")}` : "";
}

function exitText(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

async function healthy(baseUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(5000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered !== "") yield buffered;
}
