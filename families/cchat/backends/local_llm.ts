/**
 * A packaged model on this machine (backend kind `local_llm`): the engine (local_llm/engine.ts)
 * runs as a supervised child on loopback and speaks OpenAI Chat Completions, so a request takes
 * exactly the path of `openai_chat_completion` — same body, params, tools, `usage`, errors —
 * minus credentials and the guest network policy (the address is the host's own child, not a
 * destination a guest or config chose).
 *
 * With no chat backend in the config, the host serves chat with this backend (chat_backends.ts).
 */
import { type EngineState, EngineSupervisor, type SupervisorOptions } from "../local_llm/supervisor.ts";
import { type OpenAIChatCall, openaiChatCompletion, type OpenAIChatResult } from "./openai.ts";

/** One engine per host (the cchat driver's), started on its first request. */
export class LocalEngines {
  private readonly supervisor: EngineSupervisor;

  constructor(options: SupervisorOptions = {}) {
    this.supervisor = new EngineSupervisor(options);
  }

  get engine(): EngineSupervisor {
    return this.supervisor;
  }

  /** One chat completion on the local engine. Never rejects. */
  async chat(call: Omit<OpenAIChatCall, "policy">): Promise<OpenAIChatResult> {
    const start = performance.now();
    const failed = (code: "network_error" | "timeout" | "cancelled", message: string): OpenAIChatResult => ({
      ok: false,
      error: { code, message },
      latencyMs: performance.now() - start,
    });
    // Starting the engine (loading the model) counts against the request's timeout.
    const waited = await untilReady(this.supervisor.ensure(), call.timeoutMs, call.signal);
    if (waited === "timeout") {
      return failed("timeout", `timeout after ${call.timeoutMs} ms (the local_llm engine was starting)`);
    }
    if (waited === "cancelled") return failed("cancelled", "request cancelled");
    const state = waited;
    if (!state.ok) return failed("network_error", state.error);
    const model = call.model.trim() !== "" ? call.model : state.model;
    const left = call.timeoutMs === undefined
      ? undefined
      : Math.max(1, Math.round(call.timeoutMs - (performance.now() - start)));
    const r = await openaiChatCompletion({
      ...call,
      timeoutMs: left,
      model,
      backend: { ...call.backend, base_url: `${state.baseUrl}/v1`, api_key_env: undefined },
    });
    if (!r.ok && r.error.code === "timeout") {
      return { ...r, error: { code: "timeout", message: `timeout after ${call.timeoutMs} ms` } };
    }
    if (!r.ok && r.error.code === "network_error" && !(await this.supervisor.check())) {
      return {
        ...r,
        error: {
          code: "network_error",
          message: `the local_llm engine failed during the request (${r.error.message}); ` +
            "it is started again for the next request",
        },
      };
    }
    return r;
  }

  stop(): Promise<void> {
    return this.supervisor.stop();
  }
}

function untilReady(
  ready: Promise<EngineState>,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): Promise<EngineState | "timeout" | "cancelled"> {
  if (signal?.aborted) return Promise.resolve("cancelled");
  return new Promise((resolve) => {
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done("timeout"), timeoutMs);
    const onAbort = () => done("cancelled");
    signal?.addEventListener("abort", onAbort, { once: true });
    function done(v: EngineState | "timeout" | "cancelled") {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(v);
    }
    ready.then(done);
  });
}
