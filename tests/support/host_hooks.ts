/**
 * Test-only worker hooks for tests/system/host_test.ts: a "host-created handle" as a family's
 * worker part would implement one, given to a guest through runGuest's hooks
 * (runtime/instance.ts GuestHooks) by tests/support/hooked_guest_worker.ts.
 *
 *  - `setup` registers the notice handler (`rt.onNotice("hosttest", "conn")`): it adopts the
 *    notice's host-allocated stream (`rt.adoptStream`) into a new fd whose queue
 *    (runtime/queue_fd.ts, policy "credit", capped at the window the notice names) returns
 *    credit to the host's sender as the guest reads;
 *  - `extraHostcalls` are the imports of tests/guests/host_handle.c (module "spear_test"):
 *    `open` makes the blocking `hosttest.open` request and returns the adopted fd, `read`
 *    blocks for an item (0 at the end event), `close` closes the fd (its stream too).
 * When an fd closes, one log record reports what its queue saw (HostTestReport, as JSON).
 */
import { fail, LogLevel } from "../../runtime/abi.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import type { GuestHooks } from "../../runtime/instance.ts";
import { type Hostcall, i32call } from "../../runtime/hostcall.ts";
import { QueuedStream } from "../../runtime/queue_fd.ts";
import type { FdEntry } from "../../runtime/fd_table.ts";
import { method } from "../../protocol/rpc.ts";
import * as s from "../../protocol/schema.ts";
import { Op } from "../../protocol/wire.ts";

export const testOpen = method(
  "hosttest.open",
  s.object({ bytes: s.int, window: s.int }),
  s.object({ stream: s.int }),
);
export const HandleInfo = s.object({ window: s.int });

/** What the worker saw of one handle, logged as `{"hosttest": …}` when its fd closes. */
export interface HostTestReport {
  stream: number;
  fd: number;
  /** Items the queue did not take (a producer past its credit): must stay 0. */
  notQueued: number;
  /** Most bytes the queue held at once. */
  maxQueued: number;
  /** Credit returned to the host. */
  credited: number;
  items: number;
  ended: boolean;
}

interface Conn {
  stream: number;
  queue: QueuedStream;
  ended: boolean;
  report: HostTestReport;
}

const encoder = new TextEncoder();

export function hostTestHooks(): GuestHooks {
  const byStream = new Map<number, FdEntry<Conn>>();
  const adopt = (rt: GuestRuntime, stream: number, window: number) => {
    const report: HostTestReport = {
      stream,
      fd: 0,
      notQueued: 0,
      maxQueued: 0,
      credited: 0,
      items: 0,
      ended: false,
    };
    const queue = new QueuedStream({
      capacity: window,
      policy: "credit",
      budget: rt.budget,
      returnCredit: (n) => {
        report.credited += n;
        rt.credit(stream, n);
      },
    });
    const conn: Conn = { stream, queue, ended: false, report };
    const entry = rt.fds.alloc("TestConn", conn, {
      onClose() {
        rt.closeStream(stream);
        queue.dispose();
        report.ended = conn.ended;
        rt.send(Op.LOG, LogLevel.INFO, encoder.encode(JSON.stringify({ hosttest: report })));
      },
    });
    report.fd = entry.fd;
    rt.adoptStream(stream, {
      data(frame) {
        if (queue.push({ bytes: frame.bytes, at: frame.at }) !== "queued") report.notQueued++;
        else report.items++;
        report.maxQueued = Math.max(report.maxQueued, queue.bytes);
        rt.fds.setMask(entry, queue.readiness);
      },
      event(value) {
        if (value.type === "end") conn.ended = true;
      },
    });
    byStream.set(stream, entry);
  };
  return {
    setup(rt) {
      rt.onNotice("hosttest", "conn", (notice) => {
        if (notice.stream === undefined) throw new Error("a hosttest notice without a stream");
        adopt(rt, notice.stream, HandleInfo.check(notice.info, "notice info").window);
      });
    },
    extraHostcalls(rt): Hostcall[] {
      return [
        i32call("open", 2, (bytes, window) => {
          const out = rt.call(testOpen, { bytes, window }, { timeoutMs: 30_000 });
          if (!out.ok) throw fail("EIO", out.error);
          const entry = byStream.get(out.value.stream);
          if (!entry) throw fail("EIO", `no notice adopted stream ${out.value.stream} before the reply`);
          return entry.fd;
        }, "spear_test"),
        i32call("read", 3, (fd, ptr, lenPtr) => {
          const entry = rt.fds.getOpen<Conn>(fd, "TestConn");
          const { queue } = entry.state;
          rt.block(() => queue.length > 0 || entry.state.ended, -1);
          if (queue.length === 0) return 0;
          const n = queue.readInto(rt.mem, ptr, lenPtr);
          rt.fds.setMask(entry, queue.readiness);
          return n;
        }, "spear_test"),
        i32call("close", 1, (fd) => {
          rt.fds.close(fd);
          return 0;
        }, "spear_test"),
      ];
    },
  };
}
