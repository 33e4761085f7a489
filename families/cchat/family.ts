/** cchat_*: chat-completion sessions on the fd table (SPEC.md §4, reference §5). */
import { family, spearImport } from "../family.ts";
import { CchatCtl, CchatSendFlag } from "./protocol.ts";

export default family({
  name: "cchat",
  status: "built",
  label: "`cchat_*`",
  summary: "built: asynchronous send, tools, `openai_chat_completion` and `stub` backends",
  imports: [
    spearImport("cchat_create", 0),
    spearImport("cchat_write_msg", 5),
    spearImport("cchat_write_fn", 4),
    spearImport("cchat_ctl", 4),
    spearImport("cchat_send", 2),
    spearImport("cchat_recv", 3),
    spearImport("cchat_close", 1),
  ],
  fdKinds: ["ChatSession", "ChatResponse"],
  abi: [
    { title: "cchat_ctl commands", name: (k) => `SPEAR_CCHAT_CTL_${k}`, values: CchatCtl },
    {
      title: "cchat_send flag bits",
      name: (k) => `SPEAR_CCHAT_SEND_FLAG_${k}`,
      values: CchatSendFlag,
      hex: 1,
    },
  ],
  backendKinds: ["openai_chat_completion", "stub"],
  worker: () => import("./worker.ts"),
  driver: () => import("./driver.ts"),
});
