/**
 * The `local_llm` engine: an OpenAI-compatible chat server on loopback around one GGUF model,
 * run by llama.cpp through node-llama-cpp's prebuilt Node-API binary. The host starts it as a
 * child process (supervisor.ts) with its own narrow permissions, so a crash in native code
 * never takes the host down, and talks to it with the same HTTP client as any OpenAI backend.
 *
 *   deno run --no-config --node-modules-dir=manual … engine.ts --engine DIR --model FILE --port N
 *
 * Chat semantics are llama-server's with `--jinja`: the prompt is the model's own chat template
 * (from the GGUF) rendered with the request's messages and tools; tool calls are read back in
 * the Hermes/Qwen `<tool_call>{"name":…,"arguments":…}</tool_call>` form the template asks
 * for. Requests run one at a time on one sequence whose cached prefix is reused (a tool loop
 * re-sends the same conversation). The first stdout line is `{"ready":true,…}` once the model
 * is loaded and the port listens; everything else goes to stderr.
 */

// The engine's packages are loaded from its install (scripts/setup.sh), not from the repo.
type Token = number;
interface Sequence {
  contextTokens: Token[];
  nextTokenIndex: number;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
  evaluate(tokens: Token[], options: Record<string, unknown>): AsyncGenerator<Token, void, void>;
}
interface Model {
  tokenize(text: string, specialTokens?: boolean): Token[];
  detokenize(tokens: readonly Token[], specialTokens?: boolean): string;
  isEogToken(token: Token): boolean;
  fileInfo: { metadata: Record<string, unknown> };
  createContext(options: Record<string, unknown>): Promise<{ contextSize: number; getSequence(): Sequence }>;
}

export interface EngineArgs {
  engineDir: string;
  modelPath: string;
  port: number;
  contextSize: number;
  threads: number;
}

function parseArgs(argv: string[]): EngineArgs {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const engineDir = get("engine");
  const modelPath = get("model");
  if (!engineDir || !modelPath) throw new Error("usage: engine.ts --engine DIR --model FILE [--port N]");
  return {
    engineDir,
    modelPath,
    port: Number(get("port") ?? 0),
    contextSize: Number(get("ctx") ?? 4096),
    threads: Number(get("threads") ?? 1),
  };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** An OpenAI-style error reply. */
function errorReply(
  status: number,
  message: string,
  type = "invalid_request_error",
  code?: string,
): Response {
  return Response.json({ error: { message, type, ...(code ? { code } : {}) } }, { status });
}

/** Message content as text: a string, or the text parts of a content array. */
function textOf(content: unknown): string | null {
  if (content === null || content === undefined) return null;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => (isObject(p) && typeof p.text === "string" ? p.text : "")).join("");
  }
  return JSON.stringify(content);
}

/**
 * Messages as chat templates expect them (the Hugging Face convention): text content, and
 * tool-call arguments as objects (OpenAI sends them as JSON text) so `tojson` renders JSON.
 */
export function templateMessages(messages: unknown[]): Json[] {
  return messages.filter(isObject).map((m) => {
    const out: Json = { ...m, role: String(m.role ?? "user"), content: textOf(m.content) ?? "" };
    if (Array.isArray(m.tool_calls)) {
      out.tool_calls = m.tool_calls.filter(isObject).map((c) => {
        const fn = isObject(c.function) ? c.function : {};
        let args: unknown = fn.arguments;
        if (typeof args === "string") {
          try {
            args = JSON.parse(args);
          } catch { /* left as text: the model sees what it wrote */ }
        }
        return { ...c, function: { ...fn, arguments: args } };
      });
    }
    return out;
  });
}

export interface ParsedReply {
  content: string | null;
  toolCalls: { name: string; arguments: string }[];
}

/**
 * Splits a completion into text and tool calls: `<tool_call>{json}</tool_call>` blocks (the
 * closing tag may be missing when the token limit cut it off — the arguments then stay as the
 * text that was produced, so the host can refuse them), or, from small models that drop the
 * tags, a whole reply that is one `{"name": <a tool>, "arguments": …}` object.
 */
export function parseToolCalls(text: string, toolNames: readonly string[]): ParsedReply {
  const calls: { name: string; arguments: string }[] = [];
  const rest: string[] = [];
  const re = /<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g;
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    rest.push(text.slice(last, m.index));
    last = re.lastIndex;
    const call = readCall(m[1].trim());
    if (call) calls.push(call);
    else rest.push(m[0]);
  }
  rest.push(text.slice(last));
  if (calls.length === 0) {
    const whole = readCall(text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, "$1"));
    if (whole && toolNames.includes(whole.name) && whole.complete) {
      return { content: null, toolCalls: [{ name: whole.name, arguments: whole.arguments }] };
    }
    return { content: text, toolCalls: [] };
  }
  const content = rest.join("").trim();
  return {
    content: content === "" ? null : content,
    toolCalls: calls.map(({ name, arguments: a }) => ({ name, arguments: a })),
  };
}

/** One `{"name":…, "arguments":…}` call; `complete` when it parsed as JSON. */
function readCall(body: string): { name: string; arguments: string; complete: boolean } | undefined {
  try {
    const v = JSON.parse(body);
    if (!isObject(v) || typeof v.name !== "string") return undefined;
    const args = v.arguments ?? v.parameters ?? {};
    return {
      name: v.name,
      arguments: typeof args === "string" ? args : JSON.stringify(args),
      complete: true,
    };
  } catch {
    // Cut off: keep the name if it is there and the arguments as far as they got.
    const name = /"name"\s*:\s*"([^"]*)"/.exec(body)?.[1];
    if (name === undefined) return undefined;
    const at = /"arguments"\s*:\s*/.exec(body);
    const args = at ? body.slice(at.index + at[0].length).replace(/\}\s*$/, "") : "";
    return { name, arguments: args, complete: false };
  }
}

let callSerial = 0;
const callId = () => `call_${Date.now().toString(36)}${(callSerial++).toString(36)}`;

/** The longest common prefix of two token lists. */
function commonPrefix(a: readonly Token[], b: readonly Token[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

interface Generation {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finish: "stop" | "length";
  promptMs: number;
  predictedMs: number;
}

export class Engine {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly template: { render(ctx: Json): string };

  private constructor(
    private readonly model: Model,
    private readonly sequence: Sequence,
    readonly contextSize: number,
    readonly modelName: string,
    templateClass: new (src: string) => { render(ctx: Json): string },
    templateSource: string,
    readonly specialTokens: { bos: string; eos: string },
  ) {
    this.template = new templateClass(templateSource);
    this.supportsTools = /\btools\b/.test(templateSource);
  }

  /** The model's template mentions `tools`: tool definitions reach the model. */
  readonly supportsTools: boolean;

  static async load(args: EngineArgs): Promise<Engine> {
    const modules = `${args.engineDir}/node_modules`;
    const nlc = await import(`file://${modules}/node-llama-cpp/dist/index.js`);
    const jinja = await import(`file://${modules}/@huggingface/jinja/dist/index.js`);
    const llama = await nlc.getLlama({
      gpu: false,
      build: "never",
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      logLevel: "error",
    });
    const model: Model = await llama.loadModel({ modelPath: args.modelPath });
    const context = await model.createContext({
      contextSize: args.contextSize,
      sequences: 1,
      ...(args.threads > 0 ? { threads: args.threads } : {}),
    });
    const meta = model.fileInfo.metadata as {
      general?: { name?: string };
      tokenizer?: {
        chat_template?: string;
        ggml?: { tokens?: string[]; bos_token_id?: number; eos_token_id?: number };
      };
    };
    const source = meta.tokenizer?.chat_template;
    if (!source) throw new Error(`${args.modelPath} has no chat template: it is not a chat (instruct) model`);
    const vocab = meta.tokenizer?.ggml?.tokens ?? [];
    const special = {
      bos: vocab[meta.tokenizer?.ggml?.bos_token_id ?? -1] ?? "",
      eos: vocab[meta.tokenizer?.ggml?.eos_token_id ?? -1] ?? "",
    };
    const name = (meta.general?.name ?? "local").toLowerCase().replace(/\s+/g, "-");
    return new Engine(
      model,
      context.getSequence(),
      context.contextSize,
      name,
      jinja.Template,
      source,
      special,
    );
  }

  /** Renders the prompt for a request. Throws on a template error. */
  render(messages: unknown[], tools: unknown[]): string {
    return this.template.render({
      messages: templateMessages(messages),
      ...(tools.length > 0 ? { tools } : {}),
      add_generation_prompt: true,
      bos_token: this.specialTokens.bos,
      eos_token: this.specialTokens.eos,
    });
  }

  /** Runs one completion after those before it (one sequence, one at a time). */
  generate(prompt: string, options: Sampling, signal: AbortSignal): Promise<Generation> {
    const run = this.queue.then(() => this.generateNow(prompt, options, signal));
    this.queue = run.catch(() => {});
    return run;
  }

  private async generateNow(prompt: string, options: Sampling, signal: AbortSignal): Promise<Generation> {
    signal.throwIfAborted();
    const start = performance.now();
    const tokens = this.model.tokenize(prompt, true);
    if (tokens.length + 1 > this.contextSize) {
      throw new ContextLengthError(
        `the prompt is ${tokens.length} tokens; this model's context is ${this.contextSize} tokens`,
      );
    }
    const maxTokens = Math.max(
      1,
      Math.min(options.maxTokens ?? DEFAULT_MAX_TOKENS, this.contextSize - tokens.length),
    );
    // Reuse the cached prefix: erase what differs, evaluate the rest (at least one token).
    const seq = this.sequence;
    const keep = Math.min(commonPrefix(seq.contextTokens, tokens), tokens.length - 1);
    if (keep < seq.nextTokenIndex) {
      await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
    }
    const out: Token[] = [];
    let firstTokenAt = 0;
    // The generator ends by itself at an end-of-generation token.
    let finish: "stop" | "length" = "stop";
    let stopAt = -1;
    for await (
      const token of seq.evaluate(tokens.slice(keep), {
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        ...(options.seed !== undefined ? { seed: options.seed } : {}),
        repeatPenalty: { penalty: 1.05 },
      })
    ) {
      if (out.length === 0) firstTokenAt = performance.now();
      if (this.model.isEogToken(token)) break;
      out.push(token);
      if (options.stop.length > 0) {
        stopAt = firstStop(this.model.detokenize(out), options.stop);
        if (stopAt >= 0) break;
      }
      if (out.length >= maxTokens) {
        finish = "length";
        break;
      }
      if (signal.aborted) break;
    }
    signal.throwIfAborted();
    const full = this.model.detokenize(out);
    const text = stopAt >= 0 ? full.slice(0, stopAt) : full;
    const end = performance.now();
    if (firstTokenAt === 0) firstTokenAt = end;
    return {
      text,
      promptTokens: tokens.length,
      completionTokens: out.length,
      finish,
      promptMs: firstTokenAt - start,
      predictedMs: end - firstTokenAt,
    };
  }
}

export class ContextLengthError extends Error {}

/**
 * Tokens generated when a request sets no `max_tokens`: a small model can repeat itself
 * without end, and a reply this long takes the better part of a minute on two cores.
 */
export const DEFAULT_MAX_TOKENS = 512;

function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

export interface Sampling {
  maxTokens?: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  stop: string[];
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Sampling from an OpenAI request; Qwen's recommended defaults where the request says nothing. */
export function samplingOf(body: Json): Sampling {
  const stop = typeof body.stop === "string"
    ? [body.stop]
    : Array.isArray(body.stop)
    ? body.stop.filter((s): s is string => typeof s === "string" && s !== "")
    : [];
  const maxTokens = num(body.max_completion_tokens) ?? num(body.max_tokens);
  return {
    ...(maxTokens !== undefined ? { maxTokens: Math.floor(maxTokens) } : {}),
    temperature: Math.max(0, num(body.temperature) ?? 0.7),
    topP: Math.min(1, Math.max(0, num(body.top_p) ?? 0.8)),
    topK: 20,
    ...(num(body.seed) !== undefined ? { seed: Math.floor(num(body.seed)! >>> 0) } : {}),
    stop,
  };
}

function toolNamesOf(tools: unknown[]): string[] {
  return tools.flatMap((t) => {
    const fn = isObject(t) && isObject(t.function) ? t.function : t;
    return isObject(fn) && typeof fn.name === "string" ? [fn.name] : [];
  });
}

let completionSerial = 0;

/** POST /v1/chat/completions. */
export async function chatCompletion(engine: Engine, req: Request): Promise<Response> {
  let body: unknown;
  try {
    body = await req.json();
  } catch (e) {
    return errorReply(400, `invalid JSON body: ${(e as Error).message}`);
  }
  if (!isObject(body)) return errorReply(400, "the body must be a JSON object");
  if (body.stream === true) return errorReply(400, "stream: true is not supported by this engine");
  const messages = Array.isArray(body.messages) ? body.messages : [];
  if (messages.length === 0) return errorReply(400, "messages must be a non-empty array");
  const tools = Array.isArray(body.tools) && body.tool_choice !== "none" ? body.tools : [];
  let prompt: string;
  try {
    prompt = engine.render(messages, tools);
  } catch (e) {
    return errorReply(400, `chat template error: ${(e as Error).message}`);
  }
  let gen: Generation;
  try {
    gen = await engine.generate(prompt, samplingOf(body), req.signal);
  } catch (e) {
    if (e instanceof ContextLengthError) {
      return errorReply(400, e.message, "invalid_request_error", "context_length_exceeded");
    }
    if (req.signal.aborted) return errorReply(499, "request cancelled", "cancelled");
    return errorReply(500, `generation failed: ${(e as Error).message}`, "server_error");
  }
  const parsed = tools.length > 0 && engine.supportsTools
    ? parseToolCalls(gen.text, toolNamesOf(tools))
    : { content: gen.text, toolCalls: [] };
  const message: Json = { role: "assistant", content: parsed.content };
  if (parsed.toolCalls.length > 0) {
    message.tool_calls = parsed.toolCalls.map((c) => ({
      id: callId(),
      type: "function",
      function: { name: c.name, arguments: c.arguments },
    }));
  }
  const finish = gen.finish === "length" ? "length" : parsed.toolCalls.length > 0 ? "tool_calls" : "stop";
  return Response.json({
    id: `chatcmpl-local-${++completionSerial}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: engine.modelName,
    choices: [{ index: 0, message, finish_reason: finish }],
    usage: {
      prompt_tokens: gen.promptTokens,
      completion_tokens: gen.completionTokens,
      total_tokens: gen.promptTokens + gen.completionTokens,
    },
    // As llama-server reports them: time to the first generated token, then generation speed.
    timings: {
      prompt_n: gen.promptTokens,
      prompt_ms: round(gen.promptMs),
      predicted_n: gen.completionTokens,
      predicted_ms: round(gen.predictedMs),
      predicted_per_second: gen.predictedMs > 0
        ? round((gen.completionTokens - 1) / (gen.predictedMs / 1000))
        : 0,
    },
  });
}

const round = (x: number) => Math.round(x * 100) / 100;

export function serve(engine: Engine, port: number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/health") {
      return Response.json({ status: "ok", model: engine.modelName });
    }
    if (req.method === "GET" && path === "/v1/models") {
      return Response.json({
        object: "list",
        data: [{ id: engine.modelName, object: "model", owned_by: "local" }],
      });
    }
    if (req.method === "POST" && path === "/v1/chat/completions") return chatCompletion(engine, req);
    return errorReply(404, `no route ${req.method} ${path}`, "not_found");
  });
}

if (import.meta.main) {
  try {
    const args = parseArgs(Deno.args);
    const engine = await Engine.load(args);
    const server = serve(engine, args.port);
    console.log(JSON.stringify({
      ready: true,
      port: server.addr.port,
      model: engine.modelName,
      context: engine.contextSize,
      tools: engine.supportsTools,
    }));
    // The host closing our stdin (or dying) ends the engine: it never outlives its host.
    (async () => {
      for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
      Deno.exit(0);
    })();
  } catch (e) {
    console.error(`local_llm engine: ${(e as Error)?.message ?? e}`);
    Deno.exit(1);
  }
}
