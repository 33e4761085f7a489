/** How the CLI's commands report a failed run: its exit code and its one stderr line. */
import type { RunResult } from "../host/host.ts";
import { escapeLogText } from "../host/log.ts";

export const EXIT_FOR_FAILURE: Record<string, number> = {
  abi: 1,
  invalid_module: 3,
  link: 3,
  timeout: 124,
  memory: 125,
  trap: 134,
  terminated: 137,
  internal: 70,
};

/** One stderr line for a failed run, or none for a normal exit. */
export function describeFailure(guest: string, result: RunResult): string | undefined {
  const f = result.failure;
  if (!f) return undefined;
  const label: Record<string, string> = {
    invalid_module: "invalid module",
    link: "cannot link",
    timeout: "timeout",
    memory: "memory limit",
    trap: "trap",
    terminated: "terminated",
    internal: "host error",
    abi: "entry contract broken",
  };
  // Timeout and memory messages name their cause already ("timeout after…", "memory limit of…").
  const selfExplained = f.kind === "timeout" || f.kind === "memory";
  const message = selfExplained ? f.message : `${label[f.kind] ?? f.kind}: ${f.message}`;
  // The file name and a trap's function names (the module's name section) are the guest's text.
  return `spear: ${escapeLogText(guest)}: ${escapeLogText(message)}`;
}
