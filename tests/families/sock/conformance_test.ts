/**
 * The conformance checklist: the behaviours wasmtime's wasi:sockets tests check
 * (shared/reference/anchors.md §2.6), translated to fds and run by a C guest
 * (tests/guests/sock_probe.c) on real Wasmtime over loopback. One test per wasmtime test file;
 * where the fd translation differs on purpose (POSIX rather than WASI), the assertion says so.
 * The README's checklist lists which rows hold.
 */
import assert from "node:assert/strict";
import { Errno, Poll } from "../../../runtime/abi.ts";
import { parseConfig } from "../../../host/config.ts";
import { freePort, loopbackConfig, runGuest, SOCK_PROBE, values } from "../../support/sock.ts";

const { EACCES, EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EAGAIN, ECONNREFUSED, EINVAL, EISCONN } = Errno;
const { EMSGSIZE, ENOTCONN, EPIPE } = Errno;

/** Runs one probe mode; returns its `name=value` lines as numbers where they are numbers. */
async function probe(args: string[], config = loopbackConfig()): Promise<Map<string, string>> {
  const r = await runGuest(SOCK_PROBE, args, { config }).done;
  assert.equal(r.exitCode, 0, `${args[0]}: ${r.failure ?? ""}\n${r.stdout}\n${r.logs.join("\n")}`);
  return values(r.stdout);
}

function expect(got: Map<string, string>, want: Record<string, number | string>): void {
  const actual = Object.fromEntries(Object.keys(want).map((k) => [k, got.get(k)]));
  const expected = Object.fromEntries(Object.entries(want).map(([k, v]) => [k, String(v)]));
  assert.deepEqual(actual, expected);
}

Deno.test("conformance p2_tcp_states: each call in each state (unbound, bound, listening, connected)", async () => {
  expect(await probe(["tcp_states"]), {
    unbound_local: "0.0.0.0:0", // POSIX getsockname; wasmtime says invalid-state
    unbound_getaddr_peer: -ENOTCONN,
    unbound_recv: -ENOTCONN,
    unbound_send: -ENOTCONN,
    unbound_accept: -EINVAL,
    unbound_shutdown: -ENOTCONN,
    unbound_events: 0,
    bound_bind: 0,
    bound_bind_again: -EINVAL,
    bound_getaddr_peer: -ENOTCONN,
    bound_accept: -EINVAL,
    bound_recv: -ENOTCONN,
    listening_listen: 0,
    listening_listen_again: 0,
    listening_bind: -EINVAL,
    listening_connect: -EINVAL,
    listening_send: -ENOTCONN,
    listening_shutdown: -ENOTCONN,
    listening_accept_empty: -EAGAIN,
    connected_connect: -EISCONN,
    connected_bind: -EINVAL,
    connected_listen: -EINVAL,
    connected_accept: -EINVAL,
    connected_getaddr_peer: 1,
    connected_events: Poll.EPOLLOUT,
    connected_shutdown: 0,
    connected_shutdown_again: 0, // idempotent
  });
});

Deno.test("conformance p2_tcp_bind: ephemeral and specific ports, in use, TIME_WAIT reuse, not bindable, bad families", async () => {
  const port = freePort();
  expect(
    await probe(
      ["tcp_bind", `127.0.0.1:${port}`],
      loopbackConfig({ listen: ["tcp://192.0.2.1:0", "tcp://255.255.255.255:0", "tcp://224.0.0.1:0"] }),
    ),
    {
      ephemeral: 0,
      ephemeral_same_ip: 1,
      ephemeral_port_nonzero: 1,
      specific: 0,
      specific_matches: 1,
      in_use: -EADDRINUSE,
      reuseaddr_time_wait: 0,
      not_local: -EADDRNOTAVAIL,
      wrong_family: -EAFNOSUPPORT,
      broadcast: -EINVAL,
      multicast: -EINVAL,
      bad_text: -EINVAL,
      bad_port: -EINVAL,
      v4_on_v6: -EAFNOSUPPORT,
      v4mapped_on_v6: -EINVAL,
      v6_loopback: 0,
      v6_local_bracketed: 1,
    },
  );
});

Deno.test("conformance p2_tcp_connect: invalid targets, refusal, dual stack, bind before connect, names", async () => {
  const closed = freePort();
  expect(
    await probe(["tcp_connect", `127.0.0.1:${closed}`], loopbackConfig({ allow: ["tcp://localhost:*"] })),
    {
      unspecified: -EINVAL,
      port_zero: -EINVAL,
      wrong_family: -EAFNOSUPPORT,
      multicast: -EINVAL,
      broadcast: -EINVAL,
      bad_text: -EINVAL,
      refused: -ECONNREFUSED,
      error_after_refused: 0, // a blocking connect returns its error; SO_ERROR is clear
      connect_after_refused: 0, // POSIX lets a socket try again (wasmtime: one connect per socket)
      v6_unspecified: -EINVAL,
      v6_dual_stack: -EINVAL, // IPv4-mapped on IPv6: IPV6_V6ONLY, as wasmtime
      bind_then_connect_bind: 0,
      bind_then_connect: 0,
      bind_then_connect_local: 1,
      connect_connected: -EISCONN,
      name_without_port: -EINVAL,
      localhost: 0,
    },
  );
});

Deno.test("conformance p2_tcp_listen / p3_cli_deny_listen: listen binds the wildcard first, which net.listen must allow", async () => {
  expect(await probe(["tcp_listen"], loopbackConfig({ listen: ["tcp://0.0.0.0:0"] })), {
    listen_unbound: 0,
    listen_unbound_wildcard: 1,
    listen_udp: -EINVAL,
  });
  expect(await probe(["tcp_listen"]), { listen_unbound: -EACCES });
});

Deno.test("conformance p2_tcp_streams: remote and local shutdown, reads of 0, -EPIPE, nothing lost", async () => {
  expect(await probe(["tcp_streams"]), {
    remote_shutdown: 0,
    remote_read_data: 3,
    remote_read_eof: 0, // POSIX end of stream (wasmtime: StreamError::Closed)
    remote_read_zero_cap: 0,
    remote_eof_events: Poll.EPOLLIN,
    write_after_remote_shutdown: 1, // half-close: the other direction still works
    local_shutdown_write: 0,
    both_finished_events: Poll.EPOLLIN | Poll.EPOLLHUP,
    local_shutdown_read: 0,
    read_after_shutdown_read: 0, // queued bytes dropped, as wasmtime
    send_after_shutdown_read: 1,
    shutdown_during_write: 0,
    send_after_shutdown_write: -EPIPE,
    peer_end: 0,
    peer_received_all: 1, // 4 MiB, checksummed: FIN only after every queued byte
  });
});

Deno.test("conformance p2_tcp_sockopts: invalid values, clamping, exact read-back, inheritance", async () => {
  expect(await probe(["tcp_sockopts"]), {
    default_rcvbuf_positive: 1,
    default_sndbuf_positive: 1,
    default_nodelay: 0,
    default_rcvtimeo: 0,
    zero_rcvbuf: -EINVAL,
    zero_sndbuf: -EINVAL,
    negative_timeout: -EINVAL,
    unknown_option: -EINVAL,
    set_error_option: -EINVAL,
    huge_rcvbuf: 0,
    huge_rcvbuf_clamped: 16 << 20,
    tiny_sndbuf: 0,
    tiny_sndbuf_clamped: 4096,
    readback_rcvbuf: 0x10000,
    readback_rcvtimeo: 42000,
    readback_keepalive: 1,
    inherit_rcvbuf: 0x20000,
    inherit_nodelay: 1,
    inherit_keepalive_after_listen: 1,
    inherit_sndtimeo_after_listen: 1234,
    independent_listener_nodelay: 1,
    independent_accepted_nodelay: 0,
  });
});

Deno.test("conformance p2_tcp_busy_poll: epoll_wait(0) loops still see readiness (100 rounds)", async () => {
  expect(await probe(["tcp_busy_poll"]), { busy_poll_rounds: 100 });
});

Deno.test("conformance p2_tcp_sample_application: two clients in turn, zero-length write and read", async () => {
  const got = await probe(["tcp_sample_application"]);
  for (const k of [0, 1]) {
    expect(got, {
      [`client${k}_accept_addr_is_peer`]: 1,
      [`client${k}_zero_write`]: 0,
      [`client${k}_zero_read`]: 0,
      [`client${k}_read`]: 5,
    });
  }
});

Deno.test("conformance p2_udp_bind: ephemeral, specific, in use, not bindable, wrong family, IPv6", async () => {
  const port = freePort("udp");
  expect(await probe(["udp_bind", `127.0.0.1:${port}`], loopbackConfig({ listen: ["udp://192.0.2.1:0"] })), {
    ephemeral: 0,
    ephemeral_same_ip: 1,
    bind_again: -EINVAL,
    specific: 0,
    in_use: -EADDRINUSE,
    not_local: -EADDRNOTAVAIL,
    wrong_family: -EAFNOSUPPORT,
    v6_loopback: 0,
  });
});

Deno.test("conformance p2_udp_connect / p2_udp_states: connect, reconnect, disconnect, invalid targets", async () => {
  expect(await probe(["udp_connect"]), {
    peer_unconnected: -ENOTCONN,
    send_unconnected: -ENOTCONN, // POSIX EDESTADDRREQ, spelled with §8's list
    unspecified: -EINVAL,
    port_zero: -EINVAL,
    wrong_family: -EAFNOSUPPORT,
    connect: 0, // an unbound socket binds implicitly (POSIX; wasmtime p2: invalid-state)
    implicitly_bound: 1,
    peer_is_a: 1,
    writable_after_connect: 1,
    reconnect: 0,
    peer_is_b: 1,
    sendto_other_peer: -EISCONN,
    sendto_same_peer: 1,
    disconnect: 0,
    peer_after_disconnect: -ENOTCONN,
    still_bound_same_port: 1,
  });
});

Deno.test("conformance p2_udp_stream: datagrams in order, -ENOSPC keeps one, connect filters other peers", async () => {
  const got = await probe(["udp_stream"]);
  expect(got, {
    multi_datagram_in_order: 1,
    small_buffer: -Errno.ENOSPC,
    needed_length: 3000,
    still_queued: 3000,
    small_address_buffer: -Errno.ENOSPC,
    address_needed: 1,
    after_address_retry: 1,
    connected_filter_first: 1, // "from-c" had arrived before the connect: filtered out
    connected_filter_late: 1,
    overflow_kept: 4,
  });
  const overflow = JSON.parse(got.get("overflow_metrics")!);
  assert.equal(overflow.datagrams_received, 4);
  assert.equal(overflow.receive_overflows, 16, "20 sent, 4 fit in a 4 KiB queue, 16 counted");
  assert.equal(overflow.datagrams_dropped, 16);
  const sender = JSON.parse(got.get("sender_metrics")!);
  assert.ok(sender.datagrams_sent >= 25 && sender.bytes_sent > 20000, got.get("sender_metrics"));
});

Deno.test("conformance p2_udp_send_too_much: over 65507 bytes or over SNDBUF is -EMSGSIZE (no trap)", async () => {
  expect(await probe(["udp_send_too_much"]), {
    max_datagram: 65507,
    too_large: -EMSGSIZE,
    over_sndbuf: -EMSGSIZE,
  });
});

Deno.test("conformance p2_udp_send_to_closed_receiver: does not hold — no ICMP error; RCVTIMEO ends the wait", async () => {
  // Deno's UDP sockets are never connect()ed at the kernel, which then reports no ICMP
  // port-unreachable; the guest's receive timeout is what ends the wait.
  expect(await probe(["udp_send_to_closed_receiver", `127.0.0.1:${freePort("udp")}`]), { recv: -EAGAIN });
});

Deno.test("conformance p2_cli_no_tcp / p2_cli_no_udp: a config without tcp or udp entries makes sock_create -EACCES", async () => {
  const none = parseConfig({});
  expect(await probe(["denied", "127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:0"], none), {
    tcp_create: -EACCES,
    udp_create: -EACCES,
    bad_family: -EAFNOSUPPORT,
    bad_type: -EINVAL,
  });
  const tcpOnly = parseConfig({ net: { allow: ["tcp://127.0.0.1:9"] } });
  const got = await probe(["denied", "127.0.0.1:8", "127.0.0.1:9", "127.0.0.1:0"], tcpOnly);
  assert.ok(Number(got.get("tcp_create")) >= 1000);
  expect(got, { connect: -EACCES, bind: -EACCES, listen_unbound: -EACCES, udp_create: -EACCES });
});
