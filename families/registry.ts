/** Assembles every `spear` import: the built families plus -ENOSYS for the rest. */
import type { GuestRuntime } from "../runtime/guest.ts";
import { cchatHostcalls } from "./cchat/worker.ts";
import { coreHostcalls } from "./core/worker.ts";
import { fdHostcalls } from "./fd/worker.ts";
import { micHostcalls } from "./mic/worker.ts";
import { notBuiltHostcalls } from "./not_built.ts";
import type { Hostcall } from "../runtime/hostcall.ts";

/** The 32 import names of SPEAR's `spear` module (reference §1). */
export const SPEAR_IMPORTS: readonly string[] = [
  "time_now_ms",
  "wall_time_s",
  "random_i64",
  "log",
  "sleep_ms",
  "cchat_create",
  "cchat_write_msg",
  "cchat_write_fn",
  "cchat_ctl",
  "cchat_send",
  "cchat_recv",
  "cchat_close",
  "rtasr_create",
  "rtasr_ctl",
  "rtasr_write",
  "rtasr_read",
  "rtasr_close",
  "mic_create",
  "mic_ctl",
  "mic_read",
  "mic_close",
  "user_stream_open",
  "user_stream_read",
  "user_stream_write",
  "user_stream_close",
  "user_stream_ctl_open",
  "user_stream_ctl_read",
  "spear_epoll_create",
  "spear_epoll_ctl",
  "spear_epoll_wait",
  "spear_epoll_close",
  "spear_fd_ctl",
];

export type { Hostcall };

/** All hostcalls for one guest, exactly one per SPEAR import. */
export function spearHostcalls(rt: GuestRuntime): Hostcall[] {
  const built = [...coreHostcalls(rt), ...fdHostcalls(rt), ...cchatHostcalls(rt), ...micHostcalls(rt)];
  const all = [...built, ...notBuiltHostcalls(new Set(built.map((h) => h.name)))];
  const names = all.map((h) => h.name).sort();
  const expected = [...SPEAR_IMPORTS].sort();
  if (names.join() !== expected.join()) throw new Error(`hostcall table mismatch: ${names.join()}`);
  return all;
}
