/** rtasr_*: realtime speech recognition streams (SPEC.md §5). Not built yet: every call is -ENOSYS. */
import { family, spearImport } from "../family.ts";

export const RtasrCtl = {
  SET_PARAM: 1,
  CONNECT: 2,
  GET_STATUS: 3,
  SEND_EVENT: 4,
  FLUSH: 5,
  CLEAR: 6,
  SET_AUTOFLUSH: 7,
  GET_AUTOFLUSH: 8,
} as const;

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
