/**
 * spear_epoll_wait(timeout 0) as a guest sees it, beside its floors, over 1, 64 and 1024 ready
 * fds and over 10 000 watched-but-idle fds plus 1 ready (target: the wait costs O(ready), so
 * the idle case costs about what the 1-ready case does).
 *
 * Every bench iteration makes 100 calls; divide the times by 100 for one call. Per group:
 *   native   Linux epoll_wait(timeout 0) over as many eventfds (bench/native/epoll_floor.c,
 *            called through FFI in a C loop) — the baseline;
 *   guest    the C guest bench/guests/reactor/epoll_guest.c looping spear_epoll_wait through
 *            the real `spear` import, instantiated in this thread with the production binding
 *            (bench/support/harness.ts); its fds are "UserStream" entries made ready directly in
 *            the guest's fd table (the table is what a driver message would update);
 *   ts       Epoll.collectInto on the same epoll set (what the wait calls to pick the ready fds
 *            and write their records): the TypeScript part alone.
 * At start the standalone native program (epoll_floor) prints its own ns/call for the same cases.
 */
import { Poll } from "../runtime/abi.ts";
import type { Epoll } from "../runtime/epoll.ts";
import { instantiateBenchGuest } from "./support/harness.ts";
import { benchGuest, buildNative } from "./support/native.ts";

const CALLS = 100;
const MAX_EVENTS = 1024;
const IDLE = 10_000;
const CASES = [
  { label: "1 ready", ready: 1, idle: 0 },
  { label: "64 ready", ready: 64, idle: 0 },
  { label: "1024 ready", ready: 1024, idle: 0 },
  { label: "10000 idle + 1 ready", ready: 1, idle: IDLE },
];

// The native floor as a program: its own numbers, printed beside ours.
const program = buildNative("epoll_floor", "exe");
const out = new Deno.Command(program, { stdout: "piped", stderr: "inherit" }).outputSync();
if (!out.success) throw new Error("epoll_floor failed");
console.log(`bench/native/epoll_floor (${CALLS}× fewer calls per line than the groups below):`);
console.log(new TextDecoder().decode(out.stdout).trimEnd().replace(/^/gm, "  "));

// The native floor in this process, through FFI.
const floor = Deno.dlopen(buildNative("epoll_floor", "lib"), {
  floor_epoll_setup: { parameters: ["i32", "i32"], result: "i32" },
  floor_epoll_wait: { parameters: ["i32", "i32", "i32"], result: "i32" },
}).symbols;

// The guest: one instance, 1024 ready fds then 10 000 idle ones, one epoll set per case.
const guest = await instantiateBenchGuest(benchGuest("epoll_guest"), { maxFds: 1024 + IDLE + 16 });
const { fds } = guest.rt;
const firstReady = fds.alloc("UserStream", null, {}, Poll.EPOLLIN).fd;
for (let i = 1; i < 1024; i++) fds.alloc("UserStream", null, {}, Poll.EPOLLIN);
const firstIdle = fds.alloc("UserStream", null).fd;
for (let i = 1; i < IDLE; i++) fds.alloc("UserStream", null);

const epollCreate = guest.func("bench_epoll_create", "i32");
const epollAdd = guest.func("bench_epoll_add", "i32");
const epollWait = guest.func("bench_epoll_wait", "i32");
const records = new DataView(new ArrayBuffer(MAX_EVENTS * 8));

for (const c of CASES) {
  const epfd = epollCreate();
  if (epfd < 0) throw new Error(`spear_epoll_create: ${epfd}`);
  const added = [epollAdd(epfd, firstReady, c.ready), c.idle ? epollAdd(epfd, firstIdle, c.idle) : 0];
  if (added.some((rc) => rc < 0)) throw new Error(`spear_epoll_ctl: ${added}`);
  const nativeEpfd = floor.floor_epoll_setup(c.ready, c.idle);
  if (nativeEpfd < 0) throw new Error("floor_epoll_setup failed (RLIMIT_NOFILE?)");
  const epoll = fds.get(epfd).state as Epoll;
  // Check once that every path returns what it should.
  const got = [
    epollWait(epfd, 1, MAX_EVENTS),
    floor.floor_epoll_wait(nativeEpfd, 1, MAX_EVENTS),
    epoll.collectInto(MAX_EVENTS, records, 0),
  ];
  if (got.some((n) => n !== c.ready)) throw new Error(`${c.label}: got ${got} records, want ${c.ready}`);

  const group = `epoll_wait(timeout 0), ${c.label}`;
  Deno.bench({
    name: `native epoll_wait ×${CALLS}`,
    group,
    baseline: true,
    fn: () => void floor.floor_epoll_wait(nativeEpfd, CALLS, MAX_EVENTS),
  });
  Deno.bench({
    name: `guest spear_epoll_wait ×${CALLS}`,
    group,
    fn: () => void epollWait(epfd, CALLS, MAX_EVENTS),
  });
  Deno.bench({
    name: `ts Epoll.collectInto ×${CALLS}`,
    group,
    fn: () => {
      for (let i = 0; i < CALLS; i++) epoll.collectInto(MAX_EVENTS, records, 0);
    },
  });
}
