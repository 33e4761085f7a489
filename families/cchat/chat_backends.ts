/**
 * Which backends serve chat for a config. No I/O here: the family descriptor (both threads and
 * the launcher) uses it to derive permissions, the driver to route.
 */
import type { BackendConfig, HostConfig } from "../../host/config.ts";

/** Backend kinds that serve chat completions. */
export const CHAT_BACKEND_KINDS: readonly string[] = ["stub", "openai_chat_completion", "local_llm"];

/** What serves chat when the config names no chat backend. No bound model: any model name routes here. */
export const EMBEDDED_LOCAL_LLM: BackendConfig = Object.freeze({
  name: "local",
  kind: "local_llm",
  ops: ["chat_completions"],
  features: ["supports_tools"],
  weight: 1,
}) as BackendConfig;

/**
 * The backends that serve chat for a config: its chat backends, or — when it names none (no
 * config at all, or only ASR backends) — the embedded local model.
 */
export function chatBackends(config: HostConfig): BackendConfig[] {
  const chat = config.backends.filter((b) => CHAT_BACKEND_KINDS.includes(b.kind));
  return chat.length > 0 ? chat : [EMBEDDED_LOCAL_LLM];
}

/** Whether a config may start the local engine (the launcher grants what it needs). */
export function usesLocalLlm(config: HostConfig): boolean {
  return chatBackends(config).some((b) => b.kind === "local_llm");
}
