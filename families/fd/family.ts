/** spear_epoll_* and spear_fd_ctl: the generic fd layer every family shares. */
import { EpollOp, Errno, FdCtl, FdFlag, Poll } from "../../runtime/abi.ts";
import { family, spearImport } from "../family.ts";
import { lazyImport } from "../../runtime/lazy.ts";

/** Errno names that SPEAR's C header defines; every other one is a spearhost addition. */
const SPEAR_C_ERRNOS = new Set([
  "EPERM",
  "ENOENT",
  "EIO",
  "EBADF",
  "EAGAIN",
  "ENOMEM",
  "EFAULT",
  "EINVAL",
  "ENOSPC",
  "EPIPE",
  "ECONNRESET",
  "ENOTCONN",
  "ETIMEDOUT",
]);

export default family({
  name: "fd",
  status: "built",
  label: "`spear_epoll_*`, `spear_fd_ctl`",
  summary: "built",
  imports: [
    spearImport("spear_epoll_create", 0),
    spearImport("spear_epoll_ctl", 4),
    spearImport("spear_epoll_wait", 4),
    spearImport("spear_epoll_close", 1),
    spearImport("spear_fd_ctl", 4),
  ],
  fdKinds: ["Epoll"],
  abi: [
    {
      title: "errno values (Linux numbering); hostcalls return them negated, e.g. -SPEAR_EAGAIN",
      name: (k) => `SPEAR_${k}`,
      values: Errno,
      note: (k) => SPEAR_C_ERRNOS.has(k) ? undefined : "not in SPEAR's C header",
    },
    {
      title: "readiness bits for spear_epoll_ctl / spear_epoll_wait",
      name: (k) => `SPEAR_${k}`,
      values: Poll,
      hex: 3,
    },
    { title: "spear_epoll_ctl operations", name: (k) => `SPEAR_EPOLL_CTL_${k}`, values: EpollOp },
    { title: "spear_fd_ctl commands", name: (k) => `SPEAR_FD_CTL_${k}`, values: FdCtl },
    {
      title: 'fd flags (SET_FLAGS/GET_FLAGS name them in JSON, e.g. "O_NONBLOCK")',
      name: (k) => `SPEAR_${k}`,
      values: FdFlag,
      hex: 1,
      note: () => "spearhost name; SPEAR's C header has no macro for it",
    },
  ],
  worker: () => lazyImport<typeof import("./worker.ts")>("./worker.ts", import.meta.url),
});
