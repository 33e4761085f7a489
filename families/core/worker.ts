/** Time, randomness, logging and sleep: the worker part of the hostcalls every guest has. */
import { fail, LogLevel, MAX_LOG_BYTES } from "../../runtime/abi.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { Op } from "../../protocol/wire.ts";
import type { HostcallFn } from "../family.ts";

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const random = new BigInt64Array(1);
  return {
    time_now_ms: () => Date.now(), // a number: written as i64 without a BigInt
    wall_time_s: () => BigInt(Math.floor(Date.now() / 1000)),
    random_i64: () => {
      crypto.getRandomValues(random);
      return random[0];
    },
    // The record crosses as raw bytes (the level in the frame's fd field; the host decodes
    // lossily, as SPEAR). Sending waits while the host is behind, so a slow stderr slows the
    // guest instead of growing memory, and a record accepted here is never dropped.
    log: (level: number, ptr: number, len: number) => {
      if (len < 0 || len > MAX_LOG_BYTES) {
        throw fail("EINVAL", `log length ${len} out of 0..${MAX_LOG_BYTES}`);
      }
      const known = level >= LogLevel.TRACE && level <= LogLevel.ERROR;
      rt.send(Op.LOG, known ? level : LogLevel.INFO, rt.mem.copy(ptr, len));
      return 0;
    },
    // SPEAR casts to u64, so a negative value sleeps "forever"; the host timeout still ends it.
    sleep_ms: (ms: number) => void rt.block(() => false, ms < 0 ? -1 : ms),
  };
}
