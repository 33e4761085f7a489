/**
 * Bad input through real Wasmtime: tests/guests/bad_input.c calls every built hostcall with
 * bad pointers and lengths, wrong fd kinds, closed and unknown fds, and prints each return code. Every one must be the documented -errno (never
 * a trap, never a host crash), and the guest must then finish normally.
 */
import assert from "node:assert/strict";
import { Errno } from "../../runtime/abi.ts";
import { SpearHost } from "../../host/host.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const BAD_INPUT = `${root}/guests/build/test/bad_input.wasm`;
const ABI_LINK = `${root}/guests/build/test/abi_link.wasm`;

const { EAGAIN, EBADF, EFAULT, EINVAL, ENOSPC, EEXIST, ENOENT, ENOTCONN } = Errno;

/** case name → expected return value (0 or 1 for "ok" checks, -errno for failures). */
const EXPECTED: Record<string, number> = {
  // log
  log_ok: 0,
  log_weird_level: 0,
  log_max_len: 0,
  log_len_over: -EINVAL,
  log_len_huge: -EINVAL,
  log_len_neg: -EINVAL,
  log_len_intmin: -EINVAL,
  log_ptr_neg: -EFAULT,
  log_ptr_intmin: -EFAULT,
  log_ptr_straddle: -EFAULT,
  log_ptr_past: -EFAULT,
  log_ptr_end_len0: 0, // an empty range at the very end is inside memory
  time_ok: 1,
  wall_ok: 1,
  random_ok: 1,
  epoll_create_ok: 1,
  cchat_create_ok: 1,
  close_ep: 0,
  close_session: 0,
  // spear_epoll_ctl
  ctl_unknown_epfd: -EBADF,
  ctl_unknown_fd: -EBADF,
  ctl_negative_fd: -EBADF,
  ctl_epfd_is_fd: -EINVAL,
  ctl_nested: -EINVAL,
  ctl_wrong_kind_epfd: -EBADF,
  ctl_closed_epfd: -EBADF,
  ctl_closed_fd: -EBADF,
  ctl_op_0: -EINVAL,
  ctl_op_4: -EINVAL,
  ctl_op_neg: -EINVAL,
  ctl_mod_nonmember: -ENOENT,
  ctl_del_nonmember: -ENOENT,
  ctl_add_all_bits: 0,
  ctl_add_twice: -EEXIST,
  // spear_epoll_wait
  wait_ok: 0,
  wait_out_neg: -EFAULT,
  wait_out_intmin: -EFAULT,
  wait_out_past: -EFAULT,
  wait_out_straddle: -EFAULT,
  wait_cap_huge: -EFAULT,
  wait_len_neg: -EFAULT,
  wait_len_intmin: -EFAULT,
  wait_len_straddle: -EFAULT,
  wait_len_past: -EFAULT,
  wait_cap_small: -ENOSPC,
  wait_cap_small_len: 8,
  wait_cap_zero_unknown_epfd: -ENOSPC,
  wait_unknown_epfd: -EBADF,
  wait_wrong_kind: -EBADF,
  wait_closed_epfd: -EBADF,
  // spear_fd_ctl
  fdctl_unknown_fd: -EBADF,
  fdctl_negative_fd: -EBADF,
  fdctl_closed_fd: -EBADF,
  fdctl_cmd_0: -EINVAL,
  fdctl_cmd_6: -EINVAL,
  fdctl_cmd_neg: -EINVAL,
  fdctl_arg_neg: -EFAULT,
  fdctl_arg_straddle: -EFAULT,
  fdctl_arg_past: -EFAULT,
  fdctl_len_neg: -EFAULT,
  fdctl_len_straddle: -EFAULT,
  fdctl_len_past: -EFAULT,
  fdctl_setflags_len_huge: -EFAULT,
  fdctl_setflags_bad_json: -EINVAL,
  fdctl_setflags_bad_flag: -EINVAL,
  fdctl_small_buffer: -ENOSPC,
  fdctl_small_buffer_len: '{"kind":"Epoll"}'.length,
  // cchat
  write_msg_role_neg: -EFAULT,
  write_msg_role_len_neg: -EFAULT,
  write_msg_role_len_huge: -EFAULT,
  write_msg_content_past: -EFAULT,
  write_msg_content_straddle: -EFAULT,
  write_msg_unknown_fd: -EBADF,
  write_msg_wrong_kind: -EBADF,
  write_msg_closed: -EBADF,
  write_fn_ptr_neg: -EFAULT,
  write_fn_len_huge: -EFAULT,
  write_fn_wrong_kind: -EBADF,
  write_fn_unknown_fd: -EBADF,
  cchat_ctl_len_neg: -EFAULT,
  cchat_ctl_arg_past: -EFAULT,
  cchat_ctl_metrics_wrong_kind: -EBADF,
  cchat_ctl_unknown_fd: -EBADF,
  cchat_ctl_bad_cmd: -EINVAL,
  send_unknown_fd: -EBADF,
  send_wrong_kind: -EBADF,
  send_closed: -EBADF,
  recv_unknown_fd: -EBADF,
  recv_wrong_kind: -EBADF,
  cchat_close_unknown: -EBADF,
  cchat_close_twice: 0,
  // epoll_close
  epoll_close_unknown: -EBADF,
  epoll_close_never: -EBADF,
  epoll_close_twice: 0,
  // rtasr
  rtasr_create: 1,
  rtasr_ctl: -EBADF,
  rtasr_ctl_len_ptr_bad: -EFAULT,
  rtasr_ctl_bad_cmd: -EINVAL,
  rtasr_write: -EBADF,
  rtasr_write_len_huge: -EFAULT,
  rtasr_read: -EBADF,
  rtasr_read_empty: -EAGAIN,
  rtasr_close: -EBADF,
  rtasr_close_own: 0,
  // user streams: no endpoint serves this run (-ENOTCONN, as SPEAR without an execution); unknown fds
  user_stream_open: -ENOTCONN,
  user_stream_read: -EBADF,
  user_stream_write: -EBADF,
  user_stream_close: -EBADF,
  user_stream_ctl_open: -ENOTCONN,
  user_stream_ctl_read: -EBADF,
  // the instance still works
  sanity_get_kind: 1,
  sanity_next_fd: 1,
};

Deno.test("bad input: every hostcall answers -errno, and the guest then exits 0", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "spear-badinput-" });
  const logs: { level: number; message: string }[] = [];
  const host = new SpearHost({
    cacheDir: `${tmp}/cache`,
    logSink: (_guest, level, message) => logs.push({ level, message }),
  });
  try {
    const stdoutFile = `${tmp}/stdout.txt`;
    const result = await host.run(BAD_INPUT, { stdoutFile, timeoutMs: 20_000 });
    const stdout = await Deno.readTextFile(stdoutFile);
    assert.equal(result.failure, undefined, `guest failed: ${JSON.stringify(result.failure)}\n${stdout}`);
    assert.equal(result.exitCode, 0);
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines.at(-1), "done", "the guest ran to the end");
    const got = new Map<string, number>();
    for (const line of lines.slice(0, -1)) {
      const m = /^(\w+) (-?\d+)$/.exec(line);
      assert.ok(m, `unexpected output line ${JSON.stringify(line)}`);
      assert.ok(!got.has(m[1]), `case ${m[1]} printed twice`);
      got.set(m[1], Number(m[2]));
    }
    const wrong = Object.entries(EXPECTED)
      .filter(([name, want]) => got.get(name) !== want)
      .map(([name, want]) => `${name}: got ${got.get(name)}, want ${want}`);
    assert.deepEqual(wrong, [], "return codes differ");
    assert.deepEqual([...got.keys()].filter((k) => !(k in EXPECTED)), [], "cases without an expectation");

    // Logs: the accepted messages arrived (unknown level → INFO), no host-internal error.
    assert.deepEqual(logs.filter((l) => l.message === "bad_input: hello").map((l) => l.level), [2, 2]);
    const longest = logs.find((l) => l.message.length === 16384);
    assert.ok(longest && /^x+$/.test(longest.message), "the 16384-byte message arrives whole");
    assert.deepEqual(logs.filter((l) => /internal error/.test(l.message)), []);
  } finally {
    await host.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("bad input: abi_link (all 32 imports, each called once) links and exits 0", async () => {
  const logs: string[] = [];
  const host = new SpearHost({ cacheDir: null, logSink: (_g, _l, m) => logs.push(m) });
  try {
    const result = await host.run(ABI_LINK, { timeoutMs: 20_000 });
    assert.equal(result.failure, undefined, JSON.stringify(result.failure));
    assert.equal(result.exitCode, 0);
    assert.ok(logs.includes("abi_link\n"), JSON.stringify(logs));
  } finally {
    await host.close();
  }
});
