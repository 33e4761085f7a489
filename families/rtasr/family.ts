/** rtasr_*: realtime speech recognition streams (SPEC.md §5, reference §6, seed 002). */
import { family, spearImport } from "../family.ts";
import { RtasrCtl } from "./protocol.ts";
import { lazyImport } from "../../runtime/lazy.ts";

export default family({
  name: "rtasr",
  status: "built",
  label: "`rtasr_*`",
  summary:
    'built: `stub`, `openai_realtime_ws` (GA protocol) and `local_asr` (offline Whisper); see "Realtime ASR"',
  imports: [
    spearImport("rtasr_create", 0),
    spearImport("rtasr_ctl", 4),
    spearImport("rtasr_write", 3),
    spearImport("rtasr_read", 3),
    spearImport("rtasr_close", 1),
  ],
  fdKinds: ["RtAsr"],
  abi: [{
    title: "rtasr_ctl commands (SPEAR spells the prefix RTA)",
    name: (k) => `SPEAR_RTA_CTL_${k}`,
    values: RtasrCtl,
  }],
  backendKinds: ["openai_realtime_ws", "local_asr"],
  permissions(config) {
    // WebSocket hosts come from the network policy (each backend's base_url) and key variables
    // from the backends, both granted by the launcher; a local model outside the install is read.
    const read: string[] = [];
    for (const b of config.backends) {
      if (b.kind === "local_asr" && b.model && (b.model.includes("/") || b.model.endsWith(".bin"))) {
        read.push(b.model);
      }
    }
    return { read };
  },
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
  driver: () => lazyImport<typeof import("./driver.ts")>("./driver.ts", import.meta.url),
});
