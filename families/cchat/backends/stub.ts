/**
 * SPEAR's deterministic stub chat backend (kind `stub`, reference §5.8). No I/O.
 *
 * - tools present, no `tool` message yet, and the last user message holds two integers
 *   (the first two signed integer runs) → one tool call `call_stub_1` to the first tool
 *   with arguments `{"a":X,"b":Y}`, content null, finish_reason `tool_calls`;
 * - otherwise a text reply: `stub chat completion after tool` when a tool message exists,
 *   else `stub chat completion: <last user text>` or `stub chat completion`.
 */

export interface StubRequest {
  sessionFd: number;
  model: string;
  messages: readonly unknown[];
  tools: readonly unknown[];
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/**
 * The first two signed integer runs of `s` as decimal strings (i64 range), or undefined.
 * A run starts at `-` or a digit and continues over digits; runs that are not a valid
 * i64 (a lone `-`, an overflow) are skipped, as SPEAR does.
 */
export function firstTwoIntegers(s: string): [string, string] | undefined {
  const nums: string[] = [];
  let i = 0;
  while (i < s.length && nums.length < 2) {
    while (i < s.length && !(s[i] === "-" || isDigit(s[i]))) i++;
    if (i >= s.length) break;
    const start = i;
    i++;
    while (i < s.length && isDigit(s[i])) i++;
    const run = s.slice(start, i);
    if (run === "-") continue;
    // An i64 has at most 19 significant digits; anything much longer overflows, and parsing a
    // million-digit run with BigInt would hold the main thread (and every guest) for seconds.
    if (run.replace(/^-?0*/, "").length > 19) continue;
    const v = BigInt(run);
    if (v >= I64_MIN && v <= I64_MAX) nums.push(v.toString());
  }
  return nums.length === 2 ? [nums[0], nums[1]] : undefined;
}

function roleOf(m: unknown): string {
  if (typeof m !== "object" || m === null) return "";
  const role = (m as Record<string, unknown>).role;
  return typeof role === "string" ? role.toLowerCase() : "";
}

function firstToolName(tools: readonly unknown[]): string {
  const t = tools[0];
  if (typeof t === "object" && t !== null) {
    const fn = (t as Record<string, unknown>).function;
    if (typeof fn === "object" && fn !== null) {
      const name = (fn as Record<string, unknown>).name;
      if (typeof name === "string") return name;
    }
  }
  return "tool_call";
}

/** Builds the stub's chat.completion body. `nowMs` is injectable for tests. */
export function stubChatCompletion(req: StubRequest, nowMs: number = Date.now()): Record<string, unknown> {
  const hasToolResult = req.messages.some((m) => roleOf(m) === "tool");
  let lastUser = "";
  for (let i = req.messages.length - 1; i >= 0; i--) {
    if (roleOf(req.messages[i]) === "user") {
      const content = (req.messages[i] as Record<string, unknown>).content;
      lastUser = typeof content === "string" ? content : "";
      break;
    }
  }

  const envelope = {
    id: `chatcmpl_${req.sessionFd}`,
    object: "chat.completion",
    created: Math.floor(nowMs / 1000),
    model: req.model,
  };

  const ints = req.tools.length > 0 && !hasToolResult ? firstTwoIntegers(lastUser) : undefined;
  if (ints) {
    return {
      ...envelope,
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: null,
          tool_calls: [{
            id: "call_stub_1",
            type: "function",
            // Built by hand so i64 values beyond 2^53 keep every digit.
            function: { name: firstToolName(req.tools), arguments: `{"a":${ints[0]},"b":${ints[1]}}` },
          }],
        },
        finish_reason: "tool_calls",
      }],
    };
  }

  const content = hasToolResult
    ? "stub chat completion after tool"
    : lastUser === ""
    ? "stub chat completion"
    : `stub chat completion: ${lastUser}`;
  return {
    ...envelope,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  };
}
