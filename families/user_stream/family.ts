/** user_stream_*: framed byte streams between outside clients and a guest. Not built yet: -ENOSYS. */
import { family, spearImport } from "../family.ts";

export default family({
  name: "user_stream",
  status: "not_built",
  label: "`user_stream_*`",
  summary: "**not built**: every call returns `-ENOSYS` (38)",
  imports: [
    spearImport("user_stream_open", 2),
    spearImport("user_stream_read", 3),
    spearImport("user_stream_write", 3),
    spearImport("user_stream_close", 1),
    spearImport("user_stream_ctl_open", 0),
    spearImport("user_stream_ctl_read", 3),
  ],
  fdKinds: ["UserStream", "UserStreamCtl"],
});
