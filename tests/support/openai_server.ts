/**
 * A scripted OpenAI-compatible Chat Completions server for tests, on a real socket
 * (`Deno.serve`, 127.0.0.1, port 0).
 *
 * Tests enqueue replies (JSON with a status, raw text, a tool_calls reply, optional delay
 * and headers, or a reply built from the request itself — e.g. one that echoes the
 * Authorization header back, as a hostile or buggy upstream might); each POST to `/v1/chat/completions` or `/chat/completions` takes the next
 * one, or an echo reply with a realistic `usage` block when the script is empty. Every
 * request is recorded (method, path, lower-cased headers incl. authorization, parsed body).
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  rawBody: string;
  /** Parsed JSON body, or undefined if it was not JSON. */
  body: unknown;
  /** Set when the client went away while a `bodyDelayMs` body was still pending. */
  cancelled: boolean;
}

interface ReplyCommon {
  status?: number;
  /** Wait this long before sending the status line (cut short by close()). */
  delayMs?: number;
  /** Wait for this before sending the status line (e.g. until another request has arrived). */
  until?: Promise<unknown>;
  /** Send status and headers at once, then wait this long before sending the body; a client
   * that disconnects meanwhile marks the request `cancelled`. */
  bodyDelayMs?: number;
  headers?: Record<string, string>;
}

export type ScriptedReply =
  | (ReplyCommon & { kind?: "json"; body: unknown })
  | (ReplyCommon & { kind: "raw"; text: string; contentType?: string })
  | (ReplyCommon & {
    kind: "tool_calls";
    calls: { name: string; arguments: string | Record<string, unknown>; id?: string }[];
    content?: string | null;
  })
  | (ReplyCommon & { kind: "echo" })
  | { kind: "dynamic"; reply: (request: RecordedRequest) => ScriptedReply };

/** The bearer token a recorded request carried ("" when none). */
export function bearerOf(request: RecordedRequest): string {
  return (request.headers.authorization ?? "").replace(/^Bearer /, "");
}

export interface OpenAIServer {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`. */
  url: string;
  /** Base URL without `/v1` (the driver then appends `/v1/chat/completions`). */
  origin: string;
  hostname: string;
  port: number;
  /** `127.0.0.1:<port>`, as a net.allow entry spells it. */
  hostPort: string;
  requests: RecordedRequest[];
  enqueue(...replies: ScriptedReply[]): void;
  /** Resolves once `n` requests have been seen as cancelled by the client. */
  waitCancelled(n?: number, timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Rough token estimate (~4 characters per token), enough for a realistic usage block. */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function usageFor(promptText: string, completionText: string) {
  const prompt_tokens = tokens(promptText);
  const completion_tokens = tokens(completionText);
  return {
    prompt_tokens,
    completion_tokens,
    total_tokens: prompt_tokens + completion_tokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
  };
}

function promptText(body: unknown): string {
  const msgs = (body as { messages?: unknown })?.messages;
  if (!Array.isArray(msgs)) return "";
  return msgs.map((m) => {
    const c = (m as { content?: unknown })?.content;
    return typeof c === "string" ? c : JSON.stringify(c ?? "");
  }).join("\n");
}

function lastUserText(body: unknown): string {
  const msgs = (body as { messages?: unknown })?.messages;
  if (!Array.isArray(msgs)) return "";
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i] as { role?: unknown; content?: unknown };
    if (m?.role === "user") return typeof m.content === "string" ? m.content : JSON.stringify(m.content);
  }
  return "";
}

export function startOpenAIServer(): OpenAIServer {
  const script: ScriptedReply[] = [];
  const requests: RecordedRequest[] = [];
  const pendingDelays = new Set<() => void>();
  /** Waiters for cancellations: each re-checks its count; `true` forces it to finish. */
  const cancelWaiters = new Set<(closing?: boolean) => void>();
  let seq = 0;

  // request.signal is deliberately not used: touching it makes Deno print a legacy-abort
  // warning. A client that leaves during a body delay is seen through the stream's cancel().
  const delay = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        pendingDelays.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      pendingDelays.add(done);
    });

  const completion = (model: unknown, message: Record<string, unknown>, finish: string, usage: unknown) => ({
    id: `chatcmpl-test${++seq}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: typeof model === "string" && model !== "" ? model : "test-model",
    system_fingerprint: "fp_test",
    choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
    usage,
  });

  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const headers: Record<string, string> = {};
    request.headers.forEach((v, k) => (headers[k] = v));
    let rawBody: string;
    try {
      rawBody = await request.text();
    } catch {
      // The client went away before its body arrived (a cancelled request): nobody to answer.
      return new Response(null, { status: 499 });
    }
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const rec: RecordedRequest = { method: request.method, path, headers, rawBody, body, cancelled: false };
    requests.push(rec);

    if (request.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/chat/completions")) {
      return Response.json(
        {
          error: {
            message: `unknown route ${request.method} ${path}`,
            type: "invalid_request_error",
            code: null,
          },
        },
        { status: 404 },
      );
    }

    let reply: ScriptedReply = script.shift() ?? { kind: "echo" };
    while (reply.kind === "dynamic") reply = reply.reply(rec);
    if (reply.delayMs) await delay(reply.delayMs);
    if (reply.until) await reply.until;
    const status = reply.status ?? 200;
    const model = (body as { model?: unknown })?.model;
    let payload: unknown;
    switch (reply.kind) {
      case "raw":
        return new Response(reply.text, {
          status,
          headers: { "content-type": reply.contentType ?? "text/plain", ...reply.headers },
        });
      case "tool_calls": {
        const tool_calls = reply.calls.map((c, i) => ({
          id: c.id ?? `call_test_${i + 1}`,
          type: "function",
          function: {
            name: c.name,
            arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
          },
        }));
        payload = completion(
          model,
          { role: "assistant", content: reply.content ?? null, tool_calls, refusal: null },
          "tool_calls",
          usageFor(promptText(body), JSON.stringify(tool_calls)),
        );
        break;
      }
      case "echo": {
        const content = `echo: ${lastUserText(body)}`;
        payload = completion(
          model,
          { role: "assistant", content, refusal: null },
          "stop",
          usageFor(promptText(body), content),
        );
        break;
      }
      default:
        payload = reply.body;
        break;
    }
    const text = JSON.stringify(payload);
    const responseHeaders = { "content-type": "application/json", ...reply.headers };
    if (!reply.bodyDelayMs) return new Response(text, { status, headers: responseHeaders });
    const stop = new AbortController();
    const stream = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        await delay(reply.bodyDelayMs!, stop.signal);
        if (stop.signal.aborted) return;
        ctrl.enqueue(new TextEncoder().encode(text));
        ctrl.close();
      },
      cancel() {
        rec.cancelled = true;
        stop.abort();
        for (const w of [...cancelWaiters]) w();
      },
    });
    return new Response(stream, { status, headers: responseHeaders });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const port = server.addr.port;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    hostname: "127.0.0.1",
    port,
    hostPort: `127.0.0.1:${port}`,
    requests,
    enqueue(...replies) {
      script.push(...replies);
    },
    waitCancelled(n = 1, timeoutMs = 2000) {
      return new Promise<boolean>((resolve) => {
        const check = (closing?: boolean) => {
          if (requests.filter((r) => r.cancelled).length >= n) finish(true);
          else if (closing) finish(false);
        };
        const finish = (v: boolean) => {
          clearTimeout(timer);
          cancelWaiters.delete(check);
          resolve(v);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        cancelWaiters.add(check);
        check();
      });
    },
    async close() {
      for (const done of [...pendingDelays]) done();
      for (const w of [...cancelWaiters]) w(true);
      await server.shutdown();
    },
  };
}
