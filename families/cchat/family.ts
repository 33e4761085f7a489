/** cchat_*: chat-completion sessions on the fd table (SPEC.md §4, reference §5). */
import { family, spearImport } from "../family.ts";
import { CchatCtl, CchatSendFlag } from "./protocol.ts";
import { usesLocalLlm } from "./chat_backends.ts";
import type { Permissions } from "../family.ts";
import { type McpSection, parseMcpSection } from "./mcp_config.ts";
import { lazyImport } from "../../runtime/lazy.ts";

export default family<McpSection>({
  name: "cchat",
  status: "built",
  label: "`cchat_*`",
  summary:
    "built: asynchronous send, tools, MCP tools, `openai_chat_completion`, `local_llm` (the default) and `stub` backends",
  imports: [
    spearImport("cchat_create", 0),
    spearImport("cchat_write_msg", 5),
    spearImport("cchat_write_fn", 4),
    spearImport("cchat_ctl", 4),
    spearImport("cchat_send", 2),
    spearImport("cchat_recv", 3),
    spearImport("cchat_close", 1),
  ],
  fdKinds: ["ChatSession", "ChatResponse"],
  abi: [
    { title: "cchat_ctl commands", name: (k) => `SPEAR_CCHAT_CTL_${k}`, values: CchatCtl },
    {
      title: "cchat_send flag bits",
      name: (k) => `SPEAR_CCHAT_SEND_FLAG_${k}`,
      values: CchatSendFlag,
      hex: 1,
    },
  ],
  backendKinds: ["openai_chat_completion", "local_llm", "stub"],
  config: { key: "mcp", parse: parseMcpSection },
  permissions: (config) =>
    merge(usesLocalLlm(config) ? localLlmPermissions() : {}, mcpPermissions(config.mcp ?? { servers: [] })),
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
  driver: () => lazyImport<typeof import("./driver.ts")>("./driver.ts", import.meta.url),
});

/**
 * What the host needs to run the local engine: start the Deno binary (the engine is a child with
 * its own narrower flags, see local_llm/supervisor.ts) and reach it on one loopback port, which
 * the launcher reserves here and hands over in SPEARHOST_LLM_PORT.
 */
function localLlmPermissions(): Permissions {
  const env = ["SPEARHOST_LLM_PORT", "SPEARHOST_LLM_DIR", "SPEARHOST_LLM_THREADS"];
  const llmDir = Deno.env.get("SPEARHOST_LLM_DIR");
  const read = llmDir ? [llmDir] : [];
  const reserved = Deno.env.get("SPEARHOST_LLM_PORT") ?? reservePort();
  const net = reserved ? [`127.0.0.1:${reserved}`] : ["127.0.0.1"];
  return {
    run: [Deno.execPath()],
    net,
    env,
    read,
    ...(reserved ? { childEnv: { SPEARHOST_LLM_PORT: reserved } } : {}),
  };
}

/** A loopback port free right now (the OS picks it), or undefined without the right to ask. */
function reservePort(): string | undefined {
  try {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    return String(port);
  } catch {
    return undefined;
  }
}

/**
 * What the configured MCP servers need: running each stdio command (the SDK reads the usual
 * HOME, PATH, … to build its environment), and reaching each HTTP server's address.
 */
function mcpPermissions(mcp: McpSection): Permissions {
  const run: string[] = [];
  const net: string[] = [];
  for (const s of mcp.servers) {
    if (s.transport === "stdio") run.push(s.command!);
    else {
      const url = new URL(s.url!);
      net.push(`${url.hostname}:${url.port || (url.protocol === "https:" ? 443 : 80)}`);
    }
  }
  // The SDK's default child environment, and `which` (through cross-spawn) reading OSTYPE.
  const env = run.length
    ? ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "OSTYPE", "NODE_V8_COVERAGE"]
    : [];
  return { run, net, env };
}

function merge(a: Permissions, b: Permissions): Permissions {
  const out: Permissions = {};
  for (const key of ["net", "env", "read", "write", "unstable", "run"] as const) {
    const list = [...(a[key] ?? []), ...(b[key] ?? [])];
    if (list.length) out[key] = list;
  }
  if (a.childEnv || b.childEnv) out.childEnv = { ...a.childEnv, ...b.childEnv };
  return out;
}
