/**
 * The cis family's driver part (main thread): answers the skills' host functions for the
 * skill named in the run's context.
 *
 * - ai_prompt: one user message through the chat driver's routing and backends
 *   (families/cchat/backends, `runChatRoundTrip`): the manifest's `ai.backend`, else its
 *   `ai.model` routed as cchat routes it, else the config's first chat backend. The answer is
 *   the assistant message's text.
 * - memory_get/set: the SQLite store of the config's `memory.path` (opened on first use, closed
 *   with the host), in the skill's namespace, with its caps.
 * - http_request: GET (no body) or POST through host/net/http.ts `checkedFetch` with the
 *   manifest's `http.allow` as the policy (every redirect hop re-checked), the body read up to
 *   the manifest's `max_response_bytes` and charged to the guest's budget; non-2xx is EIO.
 *
 * Time bounds come with each request (the worker computes them from the skill's remaining
 * time); when one passes, the request's signal aborts the backend call or the fetch.
 * AI and HTTP calls are reported as activities (the CLI's status line on a terminal).
 */
import type { HostConfig } from "../../host/config.ts";
import type { Driver, GuestSession, SessionContext } from "../../host/host.ts";
import { checkedFetch, readBodyBytes } from "../../host/net/http.ts";
import { NetPolicy } from "../../host/net/policy.ts";
import { handle } from "../../protocol/rpc.ts";
import { isJsonObject } from "../../runtime/json.ts";
import { chatBackends, runChatRoundTrip } from "../cchat/backends/mod.ts";
import {
  aiPrompt,
  type CisErrno,
  type CisResult,
  httpRequest,
  memoryGet,
  memorySet,
  type SkillContext,
  skillContextOf,
} from "./protocol.ts";
import type { MemoryStore } from "./store.ts";
import { lazyImport } from "../../runtime/lazy.ts";

const utf8 = new TextEncoder();

const USER_AGENT = "spearhost-skill/0.1";

function failed(errno: CisErrno, message: string): CisResult {
  return { ok: false, errno, message };
}

/** The assistant's text in a chat completion body: a string, or the text parts of an array. */
export function assistantText(body: Record<string, unknown>): string | undefined {
  const choices = body.choices;
  if (!Array.isArray(choices) || !isJsonObject(choices[0])) return undefined;
  const message = choices[0].message;
  if (!isJsonObject(message)) return undefined;
  const content = message.content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const parts = content.filter((p) => isJsonObject(p) && typeof p.text === "string");
    if (parts.length > 0) return parts.map((p) => (p as { text: string }).text).join("");
  }
  return undefined;
}

/** The errno of a failed chat round trip (SPEC.md §9): denied → EACCES, timeout → ETIMEDOUT, else EIO. */
export function chatErrno(code: string | undefined): CisErrno {
  if (code === "net_denied") return "EACCES";
  if (code === "timeout") return "ETIMEDOUT";
  return "EIO";
}

/** Shortens a URL for the status line (no query, at most 80 characters). */
function shortUrl(url: URL): string {
  const text = `${url.origin}${url.pathname}`;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function cisDriver(config: HostConfig): Driver {
  let store: MemoryStore | undefined;
  // The store (node:sqlite) loads on the first memory call: importing it starts Deno's Node
  // layer, 30-40 ms of every host's start-up, most of which never touch the store.
  let storeModule: Promise<typeof import("./store.ts")> | undefined;
  /** Each skill's policy, parsed once per run context. */
  const policies = new WeakMap<GuestSession, NetPolicy>();

  const skillOf = (session: GuestSession): SkillContext | undefined => skillContextOf(session.context);
  const notSkill = () =>
    failed("EACCES", "cis host functions serve skills only (run it with `spear skill run`)");

  const storeCall = async (fn: (store: MemoryStore) => CisResult): Promise<CisResult> => {
    let mod: typeof import("./store.ts") | undefined;
    try {
      mod = await (storeModule ??= lazyImport<typeof import("./store.ts")>("./store.ts", import.meta.url));
      store ??= mod.MemoryStore.open(config.memory.path);
      return fn(store);
    } catch (e) {
      if (mod && e instanceof mod.StoreError) return failed(e.errno, e.message);
      return failed("EIO", `memory store ${config.memory.path}: ${(e as Error)?.message ?? e}`);
    }
  };

  return {
    family: "cis",
    handlers: [
      handle<{ prompt: string }, CisResult, SessionContext>(
        aiPrompt,
        async ({ prompt }, { signal, session }) => {
          const skill = skillOf(session);
          if (!skill) return notSkill();
          // The manifest's backend; else its model, routed as cchat routes it; else the first chat backend.
          const backend = skill.aiBackend ??
            (skill.aiModel ? undefined : chatBackends(config)[0]?.name);
          const end = session.activity(`ai_prompt${backend ? ` (backend ${backend})` : ""}`);
          try {
            const r = await runChatRoundTrip(
              config,
              {
                sessionFd: 0,
                messages: utf8.encode(JSON.stringify([{ role: "user", content: prompt }])),
                tools: [],
                params: {},
                model: skill.aiModel ?? "",
                ...(backend ? { backend } : {}),
              },
              signal,
              Math.random,
              session.budget,
            );
            if (!r.ok) return failed(chatErrno(r.error.code), r.error.message);
            const text = assistantText(r.body);
            if (text === undefined) {
              return failed("EIO", `backend ${r.backend} answered without assistant text`);
            }
            return { ok: true, text };
          } finally {
            end();
          }
        },
      ),

      handle<{ key: string }, CisResult, SessionContext>(memoryGet, ({ key }, { session }) => {
        const skill = skillOf(session);
        if (!skill) return notSkill();
        return storeCall((store) => {
          const value = store.get(skill.namespace, key);
          if (value === undefined) {
            return failed("ENOENT", `no key "${key}" in namespace "${skill.namespace}"`);
          }
          return { ok: true, data: value.toBase64() };
        });
      }),

      handle<{ key: string; value: string }, CisResult, SessionContext>(
        memorySet,
        ({ key, value }, { session }) => {
          const skill = skillOf(session);
          if (!skill) return notSkill();
          return storeCall((store) => {
            store.set(skill.namespace, key, Uint8Array.fromBase64(value), {
              maxValueBytes: skill.maxValueBytes,
              maxTotalBytes: skill.maxTotalBytes,
            });
            return { ok: true };
          });
        },
      ),

      handle<{ url: string; body?: string }, CisResult, SessionContext>(
        httpRequest,
        async ({ url: text, body }, { signal, session }) => {
          const skill = skillOf(session);
          if (!skill) return notSkill();
          let url: URL;
          try {
            url = new URL(text);
          } catch {
            return failed("EINVAL", `"${text.slice(0, 200)}" is not a URL`);
          }
          if (url.protocol !== "http:" && url.protocol !== "https:") {
            return failed("EINVAL", `${url.protocol} URLs are not supported (http and https only)`);
          }
          if (url.username || url.password) {
            return failed("EINVAL", "URLs with credentials are not supported");
          }
          let policy = policies.get(session);
          if (!policy) {
            policies.set(
              session,
              policy = NetPolicy.parse(skill.httpAllow, [], { names: { allow: "http.allow" } }),
            );
          }
          const method = body === undefined ? "GET" : "POST";
          const end = session.activity(`http_request ${method} ${shortUrl(url)}`);
          try {
            const payload = body === undefined ? undefined : Uint8Array.fromBase64(body);
            const headers: Record<string, string> = { "user-agent": `${USER_AGENT} (${skill.name})` };
            if (payload) {
              headers["content-type"] = looksLikeJson(payload)
                ? "application/json"
                : "application/octet-stream";
            }
            const fetched = await checkedFetch(url, { method, headers, body: payload, policy, signal });
            if (!fetched.ok) {
              const errno = fetched.code === "net_denied" ? "EACCES" : "EIO";
              const why = fetched.message;
              return failed(errno, why);
            }
            const res = fetched.response;
            if (res.status < 200 || res.status > 299) {
              await res.body?.cancel();
              return failed("EIO", `HTTP status ${res.status} from ${shortUrl(fetched.url)}`);
            }
            const read = await readBodyBytes(res, skill.maxResponseBytes, session.budget);
            if ("error" in read) {
              return failed(
                "EIO",
                "tooLarge" in read ? `${read.error} (the skill's http.max_response_bytes)` : read.error,
              );
            }
            return { ok: true, data: read.bytes.toBase64() };
          } catch (e) {
            if (signal.aborted) return failed("ETIMEDOUT", "request aborted");
            const err = e as Error;
            const cause = err?.cause instanceof Error ? `: ${err.cause.message}` : "";
            return failed("EIO", `network error: ${err?.message ?? e}${cause}`);
          } finally {
            end();
          }
        },
      ),
    ],
    stop() {
      store?.close();
      store = undefined;
    },
  };
}

function looksLikeJson(bytes: Uint8Array): boolean {
  try {
    JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return true;
  } catch {
    return false;
  }
}

/** The driver part's entry (families/registry.ts). */
export function createDriver(config: HostConfig): Driver {
  return cisDriver(config);
}
