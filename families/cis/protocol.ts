/**
 * What crosses the boundary for skills (SPEC.md §9): one request per host function call. The
 * worker part keeps the snprintf retry cache and the time bounds; the driver part (main
 * thread) does the work — the AI backend, the SQLite store, HTTP — for the skill named in the
 * run's context (`SkillContext`, RunOptions.context.cis). Bytes (memory values, HTTP bodies)
 * cross as base64; the AI's answer as text.
 */
import * as s from "../../protocol/schema.ts";
import { method } from "../../protocol/rpc.ts";

/** The -errno a host function may return besides EFAULT (SPEC.md §9). */
export const CisErrno = s.literal("ENOENT", "EACCES", "ETIMEDOUT", "EIO", "EINVAL", "ENOSPC");
export type CisErrno = s.Infer<typeof CisErrno>;

/** One call's outcome: `data` (base64) or `text` when ok, `errno` and `message` when not. */
export const CisResult = s.object({
  ok: s.boolean,
  data: s.optional(s.string),
  text: s.optional(s.string),
  errno: s.optional(CisErrno),
  message: s.optional(s.string),
});
export type CisResult = s.Infer<typeof CisResult>;

export const aiPrompt = method("cis.ai_prompt", s.object({ prompt: s.string }), CisResult);
export const memoryGet = method("cis.memory_get", s.object({ key: s.string }), CisResult);
export const memorySet = method(
  "cis.memory_set",
  s.object({ key: s.string, value: s.string /* base64 */ }),
  CisResult,
);
export const httpRequest = method(
  "cis.http_request",
  s.object({ url: s.string, body: s.optional(s.string) /* base64; absent: GET */ }),
  CisResult,
);

/**
 * The running skill, as its manifest and the config resolve it: handed to both halves in
 * RunOptions.context.cis. Without it (a guest run with `spear run`) every host function
 * answers -EACCES.
 */
export const SkillContext = s.object({
  name: s.string,
  /** SQLite namespace of memory_get/set. */
  namespace: s.string,
  maxValueBytes: s.int,
  maxTotalBytes: s.int,
  /** The manifest's http.allow entries (SPEC.md §7 syntax), already validated. */
  httpAllow: s.array(s.string),
  /** Per-request HTTP limit; the skill's remaining time bounds it too. */
  httpTimeoutMs: s.int,
  maxResponseBytes: s.int,
  aiBackend: s.optional(s.string),
  aiModel: s.optional(s.string),
});
export type SkillContext = s.Infer<typeof SkillContext>;

/** Where the skill context sits in RunOptions.context. */
export const CONTEXT_KEY = "cis";

/** Reads the skill context of a run; undefined when the run is not a skill's. */
export function skillContextOf(context: Readonly<Record<string, unknown>>): SkillContext | undefined {
  const raw = context[CONTEXT_KEY];
  if (raw === undefined) return undefined;
  return SkillContext.check(raw, "context.cis");
}

/** Longest memory key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/** Longest prompt, URL or request body a skill may pass, in bytes. */
export const MAX_PROMPT_BYTES = 4 << 20;
export const MAX_URL_BYTES = 8192;
export const MAX_REQUEST_BODY_BYTES = 16 << 20;
