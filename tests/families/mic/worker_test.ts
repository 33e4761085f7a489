/**
 * The mic family's worker part (families/mic/worker.ts) without Wasmtime, over the fake guest
 * (tests/support/fake_guest.ts); the test plays the driver on the Link: it answers `mic.start`
 * and `mic.list_devices` and sends frames and events on the capture's stream. Covers the start
 * request, a new stream per SET_PARAM (frames and events of an older capture are ignored),
 * drop policies and drop counts, metrics, the stub buffer, failed starts and bad input.
 */
import assert from "node:assert/strict";
import { Errno, Poll } from "../../../runtime/abi.ts";
import { Op } from "../../../protocol/wire.ts";
import { MicCtl, type MicDeviceInfo, type MicStartRequest } from "../../../families/mic/protocol.ts";
import { fakeGuest } from "../../support/fake_guest.ts";
import { bytesOf, int16 } from "../../support/mic.ts";

const { EAGAIN, EBADF, EFAULT, EINVAL, EIO, ENOSPC } = Errno;

const decoder = new TextDecoder();

const LEN = 8;
const ARG = 64;
const MEM_BYTES = 8 << 20;

/** The fake guest with the fd and mic hostcalls, and mic helpers. */
async function harness() {
  const g = await fakeGuest({ families: ["fd", "mic"], maxFds: 64, memBytes: MEM_BYTES, linkBytes: 1 << 22 });
  const { rt, mem, view, call } = g;
  const ctl = (fd: number, cmd: number, input = "", capacity = 65536) => {
    const length = g.write(ARG, input);
    view.setUint32(LEN, input ? length : capacity, true);
    const rc = call("mic_ctl", fd, cmd, ARG, LEN);
    const len = view.getUint32(LEN, true);
    return { rc, len, text: rc > 0 ? decoder.decode(mem.subarray(ARG, ARG + rc)) : "" };
  };
  const status = (fd: number) => JSON.parse(ctl(fd, MicCtl.GET_STATUS).text);
  const read = (fd: number, capacity = 65536) => {
    view.setUint32(LEN, capacity, true);
    const rc = call("mic_read", fd, ARG, LEN);
    return {
      rc,
      len: view.getUint32(LEN, true),
      bytes: rc > 0 ? mem.slice(ARG, ARG + rc) : new Uint8Array(0),
    };
  };
  const mask = (fd: number) => rt.fds.get(fd).mask;
  const metrics = (fd: number) => {
    view.setUint32(LEN, 65536, true);
    const rc = call("spear_fd_ctl", fd, 5, ARG, LEN);
    return JSON.parse(decoder.decode(mem.subarray(ARG, ARG + rc))) as Record<string, unknown>;
  };
  const ok = { ok: true, source: "stub", device: null, fallback_reason: null, native: null };
  return { g, rt, call, ctl, status, read, mask, metrics, ok };
}

Deno.test("mic worker: SET_PARAM starts through mic.start, generations filter old frames and events", async () => {
  const h = await harness();
  const fd = h.call("mic_create");
  assert.equal(fd, 1000);
  assert.equal(h.status(fd).config, null);

  // Each SET_PARAM opens a new stream for its capture: generation N is stream N here.
  h.g.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":16000}').rc, 0);
  const request = h.g.requests().find((r) => r.method === "mic.start")!;
  assert.equal(request.fd, fd);
  assert.deepEqual(request.params as MicStartRequest, {
    stream: 1,
    source: "stub",
    config: { sample_rate_hz: 16000, channels: 1, frame_ms: 20, format: "pcm16" },
    device: null,
    fallback_to_stub: true,
    loop: false,
  });
  h.g.frame(1, new Uint8Array(640).fill(1));
  assert.equal(h.read(fd).rc, 640);
  h.g.frame(1, new Uint8Array(640).fill(2));
  h.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN);

  // A new SET_PARAM clears the queue and bumps the generation; stream 1 is history.
  h.g.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":16000}').rc, 0);
  assert.equal(h.mask(fd), 0);
  h.g.frame(1, new Uint8Array(640).fill(3));
  h.g.event(1, { type: "error", error: "stale", dropped: 0 });
  assert.equal(h.read(fd).rc, -EAGAIN);
  let s = h.status(fd);
  assert.deepEqual([s.generation, s.running, s.last_error, s.captured_frames], [2, true, null, 2]);
  h.g.frame(2, new Uint8Array(640).fill(4));
  assert.deepEqual([...h.read(fd).bytes.subarray(0, 2)], [4, 4]);

  // An error on the current stream raises EPOLLERR; EOF raises EPOLLHUP.
  h.g.event(2, { type: "error", error: "device read failed: gone", dropped: 0 });
  h.rt.pump();
  s = h.status(fd);
  assert.deepEqual([s.running, s.last_error], [false, "device read failed: gone"]);
  assert.equal(h.mask(fd), Poll.EPOLLERR);
  h.g.reply(h.ok);
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub"}').rc, 0);
  assert.equal(h.mask(fd), 0, "SET_PARAM clears last_error");
  h.g.frame(3, new Uint8Array(960));
  h.g.event(3, { type: "eof", dropped: 0 });
  h.rt.pump();
  assert.equal(h.mask(fd), Poll.EPOLLIN | Poll.EPOLLHUP);
  assert.equal(h.read(fd).rc, 960);
  assert.equal(h.mask(fd), Poll.EPOLLHUP);
  assert.equal(h.status(fd).eof, true);

  // Close: STREAM_CLOSE for the live stream (the driver stops), then EBADF.
  h.g.sent();
  assert.equal(h.call("mic_close", fd), 0);
  const stop = h.g.sent().find((m) => m.op === Op.STREAM_CLOSE)!;
  assert.equal(stop.fd, 3);
  assert.equal(h.read(fd).rc, -EBADF);
  assert.equal(h.ctl(fd, MicCtl.GET_STATUS).rc, -EBADF);
  assert.equal(h.call("mic_close", fd), 0);
});

Deno.test("mic worker: drop_oldest and drop_newest count drops; host drops add up; metrics agree", async () => {
  const h = await harness();
  const fd = h.call("mic_create");
  const fill = (stream: number, n: number, from = 0) => {
    for (let i = 0; i < n; i++) {
      h.g.frame(stream, bytesOf(Int16Array.from({ length: 80 }, () => from + i)), { seq: from + i });
    }
    h.rt.pump();
  };
  // 8 kHz, 10 ms: 160-byte frames; a cap of 4 frames.
  h.g.reply(h.ok);
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":8000,"frame_ms":10,"max_queue_bytes":640}')
      .rc,
    0,
  );
  fill(1, 10);
  let s = h.status(fd);
  assert.deepEqual([s.queue_bytes, s.queue_frames, s.dropped_frames], [640, 4, 6]);
  assert.deepEqual([0, 1, 2, 3].map(() => int16(h.read(fd).bytes)[0]), [6, 7, 8, 9]);

  // drop_policy is kept by a later SET_PARAM that does not name it; max_queue_bytes too.
  h.g.reply(h.ok);
  assert.equal(
    h.ctl(
      fd,
      MicCtl.SET_PARAM,
      '{"source":"stub","sample_rate_hz":8000,"frame_ms":10,"drop_policy":"drop_newest"}',
    ).rc,
    0,
  );
  fill(2, 10);
  s = h.status(fd);
  assert.deepEqual([s.max_queue_bytes, s.drop_policy, s.dropped_frames], [640, "drop_newest", 12]);
  assert.deepEqual([0, 1, 2, 3].map(() => int16(h.read(fd).bytes)[0]), [0, 1, 2, 3]);

  // Frames the driver could not deliver (congested channel) are reported in the frame header.
  h.g.frame(2, new Uint8Array(160), { seq: 14, dropped: 3 });
  h.rt.pump();
  assert.equal(h.status(fd).dropped_frames, 15);
  h.ctl(fd, MicCtl.SET_PARAM, "{"); // EINVAL: nothing changes
  h.g.reply(h.ok);
  h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub","sample_rate_hz":8000,"frame_ms":10}');
  assert.equal(h.status(fd).dropped_frames, 15, "dropped_frames counts across generations");

  // spear_fd_ctl GET_METRICS reports the same counters.
  h.g.frame(3, new Uint8Array(160));
  assert.equal(h.read(fd).rc, 160);
  const m = h.metrics(fd);
  assert.equal(m.dropped_frames, 15);
  assert.equal(m.queue_dropped_frames, 12);
  assert.equal(m.host_dropped_frames, 3);
  assert.equal(m.frames_read, 9);
  assert.equal(m.bytes_read, 9 * 160);
  const latency = m.latency_ms as { read: { count: number; p50: number } };
  assert.equal(latency.read.count, 9);
  assert.ok(latency.read.p50 >= 0 && latency.read.p50 < 1000);
});

Deno.test("mic worker: stub upload, failed starts are -EIO with EPOLLERR, bad input", async () => {
  const h = await harness();
  const fd = h.call("mic_create");
  const stub = new Uint8Array((3 << 20) + 6); // larger than a channel frame: sent as one message
  for (let i = 0; i < stub.length; i++) stub[i] = i * 7;
  h.g.reply(h.ok);
  const json = JSON.stringify({ source: "stub", stub_pcm16_base64: stub.toBase64() });
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, json).rc, 0);
  // The stub buffer rides in the mic.start request.
  const uploads = h.g.requests().filter((r) => (r.params as MicStartRequest).stub_base64 !== undefined);
  assert.equal(uploads.length, 1);
  assert.deepEqual(Uint8Array.fromBase64((uploads[0].params as MicStartRequest).stub_base64!), stub);

  // The driver cannot start the source: -EIO, last_error, EPOLLERR, not running.
  h.g.reply({ ok: false, error: 'no input device named "nope" (available: "default")' });
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"device":{"name":"nope"},"fallback":{"to_stub":false}}').rc,
    -EIO,
  );
  let s = h.status(fd);
  assert.deepEqual([s.running, s.last_error, s.generation], [
    false,
    'no input device named "nope" (available: "default")',
    2,
  ]);
  assert.equal(h.mask(fd), Poll.EPOLLERR);
  // No mic driver on the host: the request fails at once, also -EIO.
  h.g.replyError("no host method mic.start");
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"source":"stub"}').rc, -EIO);
  s = h.status(fd);
  assert.equal(s.last_error, "no host method mic.start");

  // Bad JSON changes nothing (no request made, generation kept).
  h.g.sent();
  assert.equal(h.ctl(fd, MicCtl.SET_PARAM, '{"sample_rate_hz":').rc, -EINVAL);
  assert.equal(
    h.ctl(fd, MicCtl.SET_PARAM, '{"sample_rate_hz":48000,"channels":8,"frame_ms":1000}').rc,
    -EINVAL,
  ); // 768000-byte frames > 512 KiB cap
  assert.deepEqual(h.g.sent(), []);
  assert.equal(h.status(fd).generation, 3);
  assert.equal(h.ctl(fd, 7).rc, -EINVAL);
  assert.equal(h.ctl(fd, MicCtl.GET_STATUS, "", 4).rc, -ENOSPC);
  assert.equal(h.call("mic_read", fd, -1, LEN), -EAGAIN); // empty queue is checked before the buffer
  assert.equal(h.call("mic_read", fd, ARG, MEM_BYTES), -EFAULT);
  assert.equal(h.call("mic_read", 4242, ARG, LEN), -EBADF);

  // LIST_DEVICES relays the driver's array; an error reply is -EIO.
  const devices: MicDeviceInfo[] = [{
    name: "default",
    index: 0,
    max_input_channels: 2,
    default_sample_rate: 48000,
    host_api: "ALSA",
    is_default: true,
  }];
  h.g.reply(devices);
  assert.deepEqual(JSON.parse(h.ctl(fd, MicCtl.LIST_DEVICES).text), devices);
  h.g.replyError("libportaudio.so.2 not found");
  assert.equal(h.ctl(fd, MicCtl.LIST_DEVICES).rc, -EIO);
});

Deno.test("mic worker: mic_create refused at the fd limit reserves nothing (its queue's budget is released)", async () => {
  const g = await fakeGuest({ families: ["fd", "mic"], maxFds: 2 });
  const before = g.rt.budget.used;
  const a = g.call("mic_create");
  const b = g.call("mic_create");
  assert.deepEqual([a, b], [1000, 1001]);
  const held = g.rt.budget.used;
  for (let i = 0; i < 300; i++) assert.equal(g.call("mic_create"), -Errno.EMFILE);
  assert.equal(g.rt.budget.used, held, "a refused mic_create leaked its queue's reservation");
  assert.equal(g.call("mic_close", a), 0);
  assert.equal(g.call("mic_close", b), 0);
  assert.equal(g.rt.budget.used, before);
  // The budget is still there for new fds (before the fix, 128 refusals used up 64 MiB: ENOMEM).
  assert.equal(g.call("mic_create"), 1002);
});
