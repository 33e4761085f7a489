/** spear_epoll_* and spear_fd_ctl: the generic fd layer every family shares. */
import { EPOLL_RECORD_BYTES, fail, FdCtl, FdFlag, pollNames } from "../../runtime/abi.ts";
import { Epoll } from "../../runtime/epoll.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import type { HostcallFn } from "../family.ts";
import { isJsonObject, parseGuestJson } from "../../runtime/json.ts";

const encoder = new TextEncoder();

function flagNames(flags: number): string[] {
  return flags & FdFlag.O_NONBLOCK ? ["O_NONBLOCK"] : [];
}

/** Parses SET_FLAGS JSON {"set":[...], "clear":[...]}; EINVAL on anything else. */
function parseFlagChange(bytes: Uint8Array): { set: number; clear: number } {
  const json = parseGuestJson(bytes, "SET_FLAGS");
  if (!isJsonObject(json)) throw fail("EINVAL", "SET_FLAGS: not an object");
  const bits = (key: string): number => {
    const list = json[key];
    if (list === undefined) return 0;
    if (!Array.isArray(list)) throw fail("EINVAL", `SET_FLAGS: ${key} must be an array`);
    let mask = 0;
    for (const name of list) {
      if (name !== "O_NONBLOCK") throw fail("EINVAL", `SET_FLAGS: unknown flag ${JSON.stringify(name)}`);
      mask |= FdFlag.O_NONBLOCK;
    }
    return mask;
  };
  return { set: bits("set"), clear: bits("clear") };
}

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { fds, mem } = rt;

  const epollOf = (fd: number): FdEntry<Epoll> => fds.getOpen<Epoll>(fd, "Epoll");

  const statusJson = (entry: FdEntry) => ({
    kind: entry.kind,
    flags: flagNames(entry.flags),
    poll_mask: pollNames(entry.mask),
    closed: entry.closed,
  });

  return {
    spear_epoll_create: () => {
      const ep = new Epoll();
      return fds.alloc("Epoll", ep, {
        onClose: (entry) => entry.state.clear(fds),
        metrics: (entry) => entry.state.metrics(),
      }).fd;
    },

    spear_epoll_ctl: (epfd: number, op: number, fd: number, events: number) => {
      if (epfd === fd) throw fail("EINVAL", "epfd == fd");
      const ep = fds.get(epfd);
      const target = fds.get(fd);
      if (ep.kind !== "Epoll" || ep.closed) throw fail("EBADF", `fd ${epfd} is not an open epoll`);
      if (target.kind === "Epoll") throw fail("EINVAL", "nested epoll");
      (ep.state as Epoll).control(fds, op, target, events);
      return 0;
    },

    spear_epoll_wait: (epfd: number, outPtr: number, lenPtr: number, timeoutMs: number) => {
      const max = Math.floor(mem.u32(lenPtr) / EPOLL_RECORD_BYTES);
      if (max === 0) {
        mem.setU32(lenPtr, EPOLL_RECORD_BYTES);
        throw fail("ENOSPC");
      }
      const entry = epollOf(epfd);
      const ep = entry.state;
      const bytes = max * EPOLL_RECORD_BYTES;
      mem.check(outPtr, bytes);
      ep.waits++;
      rt.poll(); // timeout 0 is a polling point too: messages apply and tool calls run
      if (entry.closed) epollOf(epfd); // a tool call closed it: EBADF (fd numbers are never reused)
      if (!ep.hasReady && timeoutMs !== 0) {
        // A tool call re-entered during the wait may have closed the epfd.
        if (rt.block(() => ep.hasReady, timeoutMs)) ep.wakeups++;
        if (entry.closed) epollOf(epfd);
      }
      // Written straight into guest memory, located afresh after any wait.
      const n = ep.collectInto(max, mem.dataView(outPtr, bytes), outPtr);
      mem.setU32(lenPtr, n * EPOLL_RECORD_BYTES);
      ep.recordsReturned += n;
      return n;
    },

    spear_epoll_close: (epfd: number) => {
      fds.close(epfd);
      return 0;
    },

    spear_fd_ctl: (fd: number, cmd: number, argPtr: number, lenPtr: number) => {
      const entry = fds.get(fd);
      const reply = (value: unknown) => mem.writeOut(argPtr, lenPtr, encoder.encode(JSON.stringify(value)));
      switch (cmd) {
        case FdCtl.SET_FLAGS: {
          if (entry.closed) throw fail("EBADF", `fd ${fd} is closed`);
          const change = parseFlagChange(mem.slice(argPtr, mem.u32(lenPtr)));
          entry.flags = (entry.flags | change.set) & ~change.clear;
          return 0;
        }
        case FdCtl.GET_FLAGS:
          return reply({ flags: flagNames(entry.flags) });
        case FdCtl.GET_KIND:
          return reply({ kind: entry.kind });
        case FdCtl.GET_STATUS:
          return reply(statusJson(entry));
        case FdCtl.GET_METRICS:
          return reply(fds.metrics(entry));
        default:
          throw fail("EINVAL", `unknown fd ctl ${cmd}`);
      }
    },
  };
}
