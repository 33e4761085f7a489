/**
 * The sock family's worker part (families/sock/worker.ts) without Wasmtime, over the fake guest
 * (tests/support/fake_guest.ts); the test plays the driver on the Link. Covers what the guest
 * asks the host (and with which streams), readiness as replies, bytes (in pipes) and events
 * arrive, pipe signals sent only to a host that asked, accepted connections adopted from notices,
 * and the datagram rules.
 */
import assert from "node:assert/strict";
import { Errno, FdFlag, Poll } from "../../../runtime/abi.ts";
import { Op } from "../../../protocol/wire.ts";
import { decodeCredit } from "../../../protocol/stream.ts";
import type { BytePipe } from "../../../protocol/pipe.ts";
import { encodeDatagram, SockDomain, SockOpt, SockType } from "../../../families/sock/protocol.ts";
import { fakeGuest } from "../../support/fake_guest.ts";

const ADDR = 256;
const LEN = 8;
const OUT = 1024;

async function harness() {
  const g = await fakeGuest({ families: ["fd", "sock"], memBytes: 1 << 20 });
  const addr = (text: string) => g.write(ADDR, text);
  const create = (type: number = SockType.SOCK_STREAM) => {
    g.reply({ tcp: true, udp: true }); // sock.allowed, asked once
    return g.call("sock_create", SockDomain.AF_INET, type);
  };
  const recv = (fd: number, cap: number) => {
    g.view.setUint32(LEN, cap, true);
    const rc = g.call("sock_recv", fd, OUT, LEN);
    return { rc, text: rc > 0 ? g.text(OUT, rc) : "" };
  };
  const mask = (fd: number) => g.rt.fds.get(fd).mask;
  const credits = () =>
    g.sent().filter((m) => m.op === Op.STREAM_CREDIT).map((m) => ({
      stream: m.fd,
      bytes: decodeCredit(m.payload),
    }));
  return { g, addr, create, recv, mask, credits };
}

/** Bytes into a pipe as the driver writes them; signals the guest when it asked. */
function feed(h: Awaited<ReturnType<typeof harness>>, pipe: BytePipe, bytes: Uint8Array) {
  const [n, tell] = pipe.write(bytes, (dst, at, src) => dst.set(src, at));
  assert.equal(n, bytes.length);
  if (tell) h.g.signal(pipe);
}

/** What the guest wrote into a send pipe, consumed as the driver does. */
function drain(pipe: BytePipe): string {
  let text = "";
  for (let r = pipe.readable(); r.length > 0; r = pipe.readable()) {
    text += new TextDecoder().decode(r.slice());
    pipe.consume(r.length);
  }
  return text;
}

/** Whether a host-side wait on a pipe (BytePipe.waitForData / waitForRoom) has ended. */
async function woken(waiting: Promise<unknown> | undefined): Promise<boolean> {
  assert.ok(waiting, "the host had to wait");
  return await Promise.race([
    waiting.then(() => true),
    new Promise<boolean>((r) => setTimeout(r, 200, false)),
  ]);
}

const messagesOf = (messages: { op: number }[], op: number) => messages.filter((m) => m.op === op).length;

Deno.test("sock worker: a non-blocking connect asks the host; the reply's pipes carry the bytes, and a waiting side is woken", async () => {
  const h = await harness();
  const fd = h.create();
  h.g.rt.fds.get(fd).flags |= FdFlag.O_NONBLOCK;
  const len = h.addr("example.test:80");
  assert.equal(h.g.call("sock_connect", fd, ADDR, len), -Errno.EINPROGRESS);
  const request = h.g.requests().find((r) => r.method === "sock.connect")!;
  const params = request.params as Record<string, unknown>;
  assert.equal(request.fd, fd);
  assert.deepEqual(
    { host: params.host, port: params.port, version: params.version, window: params.window },
    { host: "example.test", port: 80, version: 4, window: 1 << 20 },
  );
  assert.equal(h.mask(fd), 0);
  const [rx, tx] = [h.g.pipe(1 << 20), h.g.pipe(1 << 20)];
  h.g.reply({ ok: true, local: "10.0.0.2:5000", peer: "10.0.0.1:80", rx: rx.ref, tx: tx.ref }, 2);
  h.g.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLOUT);
  assert.equal(h.g.call("sock_getopt", fd, SockOpt.ERROR), 0);

  // Bytes arrive in the receive pipe; the guest found it empty, so the first write signals.
  h.g.sent();
  feed(h, rx, new TextEncoder().encode("hello world"));
  h.g.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLOUT);
  assert.deepEqual(h.recv(fd, 5), { rc: 5, text: "hello" });
  assert.deepEqual(h.recv(fd, 100), { rc: 6, text: " world" });
  assert.equal(h.recv(fd, 100).rc, -Errno.EAGAIN);
  assert.equal(messagesOf(h.g.sent(), Op.PIPE_SIGNAL), 0, "the worker never messages the host about pipes");

  // A full pipe: the host waits for room on the pipe itself, and the guest's read wakes it.
  feed(h, rx, new Uint8Array(1 << 20).fill(9));
  h.g.rt.pump();
  assert.equal(rx.room, 0);
  const roomWait = rx.waitForRoom();
  assert.equal(h.recv(fd, 65536).rc, 65536);
  assert.equal(await woken(roomWait), true, "the host's wait for room ended");
  assert.equal(h.recv(fd, 100).rc, 100);
  for (let left = (1 << 20) - 65636; left > 0;) left -= h.recv(fd, 1 << 20).rc;
  assert.equal(h.g.call("spear_fd_ctl", fd, 5, OUT, (h.g.view.setUint32(LEN, 4096, true), LEN)) > 0, true);
  const metrics = JSON.parse(h.g.text(OUT, h.g.view.getUint32(LEN, true)));
  assert.equal(metrics.bytes_received, 11 + (1 << 20));
  assert.equal(metrics.receive_window, 1 << 20);

  // Sends go into the send pipe and wake the host waiting on it.
  const dataWait = tx.waitForData();
  assert.equal(h.g.call("sock_send", fd, ADDR, 4), 4);
  assert.equal(await woken(dataWait), true, "the host's wait for data ended");
  assert.equal(h.g.call("sock_send", fd, ADDR, 4), 4);
  assert.equal(drain(tx), "examexam");

  h.g.event(params.handle as number, { type: "eof" });
  h.g.rt.pump();
  assert.equal(h.recv(fd, 100).rc, 0, "end of stream");
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLOUT);
  assert.equal(h.g.call("sock_shutdown", fd, 1), 0);
  assert.ok(
    h.g.sent().some((m) => m.op === Op.STREAM_CLOSE && m.fd === params.outbound),
    "closing the send stream is the FIN",
  );
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLHUP, "both directions finished");
  assert.equal(h.g.call("sock_send", fd, ADDR, 1), -Errno.EPIPE);
});

Deno.test("sock worker: a full send pipe takes a partial send, then -EAGAIN; EPOLLOUT returns on the host's signal", async () => {
  const h = await harness();
  const fd = h.create();
  h.g.rt.fds.get(fd).flags |= FdFlag.O_NONBLOCK;
  assert.equal(h.g.call("sock_connect", fd, ADDR, h.addr("127.0.0.1:80")), -Errno.EINPROGRESS);
  const [rx, tx] = [h.g.pipe(4096), h.g.pipe(4096)];
  h.g.reply({ ok: true, local: "127.0.0.1:5000", peer: "127.0.0.1:80", rx: rx.ref, tx: tx.ref }, 2);
  h.g.rt.pump();
  const big = 600_000;
  assert.equal(h.g.call("sock_send", fd, 0, big), 4096, "a partial send: what the window takes");
  assert.equal(h.g.call("sock_send", fd, 0, 10), -Errno.EAGAIN);
  assert.equal(h.mask(fd) & Poll.EPOLLOUT, 0);
  h.g.sent();
  if (tx.consume(1000)) h.g.signal(tx); // the host wrote some to the peer
  h.g.rt.pump();
  assert.equal(h.mask(fd) & Poll.EPOLLOUT, Poll.EPOLLOUT);
  assert.equal(h.g.call("sock_send", fd, 0, 5000), 1000);
});

Deno.test("sock worker: a refused connect is EPOLLERR and SO_ERROR once; a reset is ECONNRESET then EPOLLHUP", async () => {
  const h = await harness();
  const fd = h.create();
  h.g.rt.fds.get(fd).flags |= FdFlag.O_NONBLOCK;
  assert.equal(h.g.call("sock_connect", fd, ADDR, h.addr("127.0.0.1:9")), -Errno.EINPROGRESS);
  h.g.reply({ ok: false, errno: "ECONNREFUSED", message: "refused" }, 2);
  h.g.rt.pump();
  h.g.sent(); // the first attempt's messages
  assert.equal(h.mask(fd), Poll.EPOLLERR);
  assert.equal(h.g.call("sock_getopt", fd, SockOpt.ERROR), Errno.ECONNREFUSED);
  assert.equal(h.g.call("sock_getopt", fd, SockOpt.ERROR), 0);
  assert.equal(h.mask(fd), 0);

  assert.equal(h.g.call("sock_connect", fd, ADDR, h.addr("127.0.0.1:9")), -Errno.EINPROGRESS);
  const stream =
    (h.g.requests().find((r) => r.method === "sock.connect")!.params as { handle: number }).handle;
  const [rx, tx] = [h.g.pipe(65536), h.g.pipe(65536)];
  h.g.reply({ ok: true, local: "127.0.0.1:4000", peer: "127.0.0.1:9", rx: rx.ref, tx: tx.ref }, 3);
  feed(h, rx, new Uint8Array([1, 2]));
  h.g.event(stream, { type: "error", errno: "ECONNRESET" });
  h.g.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLERR | Poll.EPOLLHUP);
  assert.equal(h.recv(fd, 10).rc, 2, "bytes that came before the reset are read first");
  assert.equal(h.recv(fd, 10).rc, -Errno.ECONNRESET);
  assert.equal(h.recv(fd, 10).rc, 0);
  assert.equal(h.g.call("sock_send", fd, ADDR, 1), -Errno.EPIPE);
});

Deno.test("sock worker: a reply without pipes, or with one outside the arena, fails the connect (-EIO), not the host", async () => {
  const h = await harness();
  const fd = h.create();
  h.g.rt.fds.get(fd).flags |= FdFlag.O_NONBLOCK;
  assert.equal(h.g.call("sock_connect", fd, ADDR, h.addr("127.0.0.1:9")), -Errno.EINPROGRESS);
  h.g.reply({ ok: true, local: "127.0.0.1:4000", peer: "127.0.0.1:9" }, 2);
  h.g.rt.pump();
  assert.equal(h.g.call("sock_getopt", fd, SockOpt.ERROR), Errno.EIO);
  assert.equal(h.mask(fd), 0);

  assert.equal(h.g.call("sock_connect", fd, ADDR, h.addr("127.0.0.1:9")), -Errno.EINPROGRESS);
  const rx = h.g.pipe(4096);
  const outside = { offset: 1 << 30, capacity: 4096, limit: 4096 };
  h.g.reply({ ok: true, local: "127.0.0.1:4000", peer: "127.0.0.1:9", rx: rx.ref, tx: outside }, 3);
  h.g.rt.pump();
  assert.equal(h.g.call("sock_getopt", fd, SockOpt.ERROR), Errno.EIO);
  assert.equal(h.g.call("sock_recv", fd, OUT, LEN), -Errno.ENOTCONN);
});

Deno.test("sock worker: connections the host accepted are adopted from notices and become fds at sock_accept", async () => {
  const h = await harness();
  const fd = h.create();
  h.g.reply({ ok: true, local: "127.0.0.1:7000" }, 2); // sock.bind (a reply is for a call in flight)
  assert.equal(h.g.call("sock_bind", fd, ADDR, h.addr("127.0.0.1:7000")), 0);
  h.g.reply({ ok: true, local: "127.0.0.1:7000" }, 3); // sock.listen
  assert.equal(h.g.call("sock_listen", fd, 2), 0);
  const [credit] = h.credits();
  const handle = credit.stream;
  assert.equal(credit.bytes, 2, "the backlog is the listener's credit");

  const [rx, tx] = [h.g.pipe(65536), h.g.pipe(65536)];
  feed(h, rx, new TextEncoder().encode("early bytes")); // before the guest knows the connection
  h.g.notice({
    family: "sock",
    type: "accepted",
    stream: -1,
    outbound: { stream: -2, window: 0 },
    info: { listener: handle, local: "127.0.0.1:7000", peer: "127.0.0.1:5555", rx: rx.ref, tx: tx.ref },
  });
  h.g.frame(handle, new Uint8Array(1));
  h.g.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN);
  h.g.view.setUint32(LEN, 4, true);
  assert.equal(
    h.g.call("sock_accept", fd, OUT, LEN),
    -Errno.ENOSPC,
    "the address does not fit: still queued",
  );
  assert.equal(h.g.view.getUint32(LEN, true), "127.0.0.1:5555".length);
  h.g.view.setUint32(LEN, 64, true);
  const conn = h.g.call("sock_accept", fd, OUT, LEN);
  assert.ok(conn >= 1000);
  assert.equal(h.g.text(OUT, h.g.view.getUint32(LEN, true)), "127.0.0.1:5555");
  assert.deepEqual(h.credits(), [{ stream: handle, bytes: 1 }], "room for one more");
  assert.equal(h.recv(conn, 64).text, "early bytes");
  assert.equal(h.mask(conn), Poll.EPOLLOUT);
  h.g.write(ADDR, "hello");
  const dataWait = tx.waitForData();
  assert.equal(h.g.call("sock_send", conn, ADDR, 5), 5);
  assert.equal(await woken(dataWait), true, "writes go into the adopted send pipe and wake the host");
  assert.equal(drain(tx), "hello");
  assert.equal(h.mask(fd), 0);
  assert.equal(h.g.call("sock_close", conn), 0);
  const closed = h.g.sent().filter((m) => m.op === Op.STREAM_CLOSE).map((m) => m.fd);
  assert.deepEqual(
    closed.sort((a, b) => a - b),
    [-2, -1],
    "closing lets go of both ends (the host frees the pipes)",
  );
});

Deno.test("sock worker: a datagram larger than the buffer is -ENOSPC and stays queued; overflow is counted", async () => {
  const h = await harness();
  const fd = h.create(SockType.SOCK_DGRAM);
  h.g.reply({ ok: true, local: "127.0.0.1:9000" }, 2);
  assert.equal(h.g.call("sock_setopt", fd, SockOpt.RCVBUF, 4096), 0);
  assert.equal(h.g.call("sock_bind", fd, ADDR, h.addr("127.0.0.1:9000")), 0);
  const handle = (h.g.requests().find((r) => r.method === "sock.bind")!.params as { handle: number }).handle;
  const from = { address: "127.0.0.1", port: 4242, name: "" };
  h.g.frame(handle, encodeDatagram(from, new Uint8Array(3000).fill(7)));
  h.g.frame(handle, encodeDatagram(from, new Uint8Array(3000).fill(8)), { dropped: 2 });
  h.g.rt.pump();
  h.g.view.setUint32(LEN, 100, true);
  assert.equal(h.g.call("sock_recvfrom", fd, OUT, LEN, 0, 0), -Errno.ENOSPC);
  assert.equal(h.g.view.getUint32(LEN, true), 3000);
  h.g.view.setUint32(LEN, 4000, true);
  h.g.view.setUint32(LEN + 4, 64, true);
  assert.equal(h.g.call("sock_recvfrom", fd, OUT, LEN, ADDR, LEN + 4), 3000);
  assert.equal(h.g.text(ADDR, h.g.view.getUint32(LEN + 4, true)), "127.0.0.1:4242");
  assert.equal(h.g.mem[OUT], 7);
  h.g.view.setUint32(LEN, 20, true);
  assert.equal(h.g.call("spear_fd_ctl", fd, 5, OUT, LEN), -Errno.ENOSPC);
  h.g.view.setUint32(LEN, 4096, true);
  const metrics = JSON.parse(h.g.text(OUT, h.g.call("spear_fd_ctl", fd, 5, OUT, LEN)));
  assert.equal(metrics.receive_overflows, 1, "the second 3000-byte datagram did not fit in 4 KiB");
  assert.equal(metrics.host_dropped, 2);
  assert.equal(metrics.datagrams_dropped, 3);
  assert.equal(metrics.bytes_received, 3000);
});
