/** rtasr_*: realtime speech recognition streams (SPEC.md §5). Not built yet: every call is -ENOSYS. */
import { family, spearImport } from "../family.ts";
import { RtasrCtl } from "./protocol.ts";

export default family({
  name: "rtasr",
  status: "not_built",
  label: "`rtasr_*`",
  summary: "**not built**: every call returns `-ENOSYS` (38)",
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
});
