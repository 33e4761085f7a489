/** Time, randomness, logging and sleep: the hostcalls every guest has. */
import { fail, LogLevel, MAX_LOG_BYTES } from "../../runtime/abi.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { Op } from "../../protocol/wire.ts";
import { type Hostcall, i32call, type Signature } from "../../runtime/hostcall.ts";

const I64_RESULT: Signature = { params: [], results: ["i64"] };

export function coreHostcalls(rt: GuestRuntime): Hostcall[] {
  const random = new BigInt64Array(1);
  return [
    { module: "spear", name: "time_now_ms", signatures: [I64_RESULT], run: () => BigInt(Date.now()) },
    {
      module: "spear",
      name: "wall_time_s",
      signatures: [I64_RESULT],
      run: () => BigInt(Math.floor(Date.now() / 1000)),
    },
    {
      module: "spear",
      name: "random_i64",
      signatures: [I64_RESULT],
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
      module: "spear",
      name: "sleep_ms",
      signatures: [{ params: ["i32"], results: [] }],
      // SPEAR casts to u64, so a negative value sleeps "forever"; the host timeout still ends it.
      run: (ms: number) => void rt.block(() => false, ms < 0 ? -1 : ms),
    },
  ];
}
