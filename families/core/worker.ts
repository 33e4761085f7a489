/** Time, randomness, logging and sleep: the hostcalls every guest has. */
import { fail, LogLevel, MAX_LOG_BYTES } from "../../runtime/abi.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { Op } from "../../protocol/wire.ts";
import { type Hostcall, i32call } from "../../runtime/hostcall.ts";

export function coreHostcalls(rt: GuestRuntime): Hostcall[] {
  const random = new BigInt64Array(1);
  return [
    { name: "time_now_ms", params: [], result: "i64", run: () => BigInt(Date.now()) },
    { name: "wall_time_s", params: [], result: "i64", run: () => BigInt(Math.floor(Date.now() / 1000)) },
    {
      name: "random_i64",
      params: [],
      result: "i64",
      run: () => {
        crypto.getRandomValues(random);
        return random[0];
      },
    },
    i32call("log", 3, (level, ptr, len) => {
      if (len < 0 || len > MAX_LOG_BYTES) {
        throw fail("EINVAL", `log length ${len} out of 0..${MAX_LOG_BYTES}`);
      }
      const text = rt.mem.string(ptr, len);
      const known = level >= LogLevel.TRACE && level <= LogLevel.ERROR;
      rt.sendJson(Op.LOG, 0, { level: known ? level : LogLevel.INFO, message: text });
      return 0;
    }),
    {
      name: "sleep_ms",
      params: ["i32"],
      result: null,
      // SPEAR casts to u64, so a negative value sleeps "forever"; the host timeout still ends it.
      run: (ms) => void rt.block(() => false, ms < 0 ? -1 : ms),
    },
  ];
}
