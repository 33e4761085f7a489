/** Time, randomness, logging and sleep: the hostcalls every guest has. */
import { LogLevel, MAX_LOG_BYTES } from "../../runtime/abi.ts";
import { family, spearImport } from "../family.ts";
import { lazyImport } from "../../runtime/lazy.ts";

export default family({
  name: "core",
  status: "built",
  label: "`time_now_ms`, `wall_time_s`, `random_i64`, `log`, `sleep_ms`",
  summary: "built",
  imports: [
    { ...spearImport("time_now_ms", 0, "i64"), leaf: true },
    { ...spearImport("wall_time_s", 0, "i64"), leaf: true },
    { ...spearImport("random_i64", 0, "i64"), leaf: true },
    spearImport("log", 3),
    spearImport("sleep_ms", 1, null),
  ],
  fdKinds: [],
  abi: [
    { title: "log levels for the `log` import", name: (k) => `SP_LOG_${k}`, values: LogLevel },
    {
      title: "sizes (spearhost additions)",
      name: (k) => `SPEAR_${k}`,
      values: { LOG_MAX_BYTES: MAX_LOG_BYTES, EPOLL_RECORD_BYTES: 8 },
    },
  ],
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
});
