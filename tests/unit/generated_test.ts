/**
 * What derives from the family registry stays derived: the committed C header's numbers and
 * the README's status table must equal what the registry renders now (`deno task gen-header`
 * regenerates both), and the import list is exactly the families' declarations — all 32 of
 * SPEAR's `spear` imports, each once.
 */
import assert from "node:assert/strict";
import { ABI_HEADER_PATH, README_PATH, renderAbiHeader, withStatusTable } from "../../scripts/gen_header.ts";
import { allImports, FAMILIES } from "../../families/registry.ts";

const root = new URL("../../", import.meta.url);

/** SPEAR's 32 import names (reference §1). */
const SPEAR_IMPORTS = [
  "time_now_ms",
  "wall_time_s",
  "random_i64",
  "log",
  "sleep_ms",
  "cchat_create",
  "cchat_write_msg",
  "cchat_write_fn",
  "cchat_ctl",
  "cchat_send",
  "cchat_recv",
  "cchat_close",
  "rtasr_create",
  "rtasr_ctl",
  "rtasr_write",
  "rtasr_read",
  "rtasr_close",
  "mic_create",
  "mic_ctl",
  "mic_read",
  "mic_close",
  "user_stream_open",
  "user_stream_read",
  "user_stream_write",
  "user_stream_close",
  "user_stream_ctl_open",
  "user_stream_ctl_read",
  "spear_epoll_create",
  "spear_epoll_ctl",
  "spear_epoll_wait",
  "spear_epoll_close",
  "spear_fd_ctl",
];

/** The socket imports of SPEC.md §8 (seed 003), in module `spear` too. */
const SOCKET_IMPORTS = [
  "sock_create",
  "sock_connect",
  "sock_bind",
  "sock_listen",
  "sock_accept",
  "sock_send",
  "sock_recv",
  "sock_sendto",
  "sock_recvfrom",
  "sock_getaddr",
  "sock_setopt",
  "sock_getopt",
  "sock_shutdown",
  "sock_close",
];

Deno.test("generated: guests/include/spear_abi.h matches the registry's ABI numbers", async () => {
  assert.equal(await Deno.readTextFile(new URL(ABI_HEADER_PATH, root)), renderAbiHeader());
});

Deno.test("generated: the README's status table matches the registry", async () => {
  const readme = await Deno.readTextFile(new URL(README_PATH, root));
  assert.equal(readme, withStatusTable(readme), "run deno task gen-header (then deno fmt README.md)");
  for (const f of FAMILIES) assert.ok(readme.includes(f.label), `README lists ${f.name}`);
});

Deno.test("registry: the spear module is exactly SPEAR's 32 imports plus SPEC §8's 14 socket imports, each declared once", () => {
  const spear = allImports().filter((i) => i.module === "spear").map((i) => i.name);
  assert.deepEqual([...spear].sort(), [...SPEAR_IMPORTS, ...SOCKET_IMPORTS].sort());
  const keys = allImports().map((i) => `${i.module}.${i.name}`);
  assert.equal(new Set(keys).size, keys.length);
});

Deno.test("registry: family names, fd kinds and backend kinds are unique; built families have a worker part", () => {
  const names = FAMILIES.map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
  const kinds = FAMILIES.flatMap((f) => f.fdKinds);
  assert.equal(new Set(kinds).size, kinds.length);
  for (const f of FAMILIES) {
    if (f.status === "built") assert.ok(f.worker, `${f.name} is built but has no worker part`);
    for (const i of f.imports) assert.ok(i.signatures.length > 0, `${i.name} declares a signature`);
  }
});
