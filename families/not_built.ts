/**
 * Families that are not built yet. Their imports exist so every SPEAR guest links, and
 * each answers -ENOSYS (README "Status").
 */
import { fail } from "../runtime/abi.ts";
import { type Hostcall, i32call } from "../runtime/hostcall.ts";

/** [name, arity] of the imports still answering -ENOSYS. */
export const NOT_BUILT: readonly [string, number][] = [
  ["rtasr_create", 0],
  ["rtasr_ctl", 4],
  ["rtasr_write", 3],
  ["rtasr_read", 3],
  ["rtasr_close", 1],
  ["user_stream_open", 2],
  ["user_stream_read", 3],
  ["user_stream_write", 3],
  ["user_stream_close", 1],
  ["user_stream_ctl_open", 0],
  ["user_stream_ctl_read", 3],
];

export function notBuiltHostcalls(skip: Set<string>): Hostcall[] {
  return NOT_BUILT.filter(([name]) => !skip.has(name)).map(([name, arity]) =>
    i32call(name, arity, () => {
      throw fail("ENOSYS", `${name} is not built in this spearhost yet`);
    })
  );
}
