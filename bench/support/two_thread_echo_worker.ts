/// <reference lib="deno.worker" />
/** The worker of bench/support/two_thread_echo.ts: receive ring → private buffer → send ring. */
import { Cell } from "./two_thread_echo.ts";

self.onmessage = (
  e: MessageEvent<{ ctl: SharedArrayBuffer; rx: SharedArrayBuffer; tx: SharedArrayBuffer; capacity: number }>,
) => {
  const ctl = new Int32Array(e.data.ctl);
  const [rx, tx] = [new Uint8Array(e.data.rx), new Uint8Array(e.data.tx)];
  const capacity = e.data.capacity;
  const buffer = new Uint8Array(256 * 1024);
  const wakeMain = () => {
    Atomics.add(ctl, Cell.MAIN_BELL, 1);
    if (Atomics.load(ctl, Cell.MAIN_SLEEPING)) Atomics.notify(ctl, Cell.MAIN_BELL);
  };
  /** Copies n bytes between a ring at index `at` and `buffer`, in two parts across the wrap. */
  const ringCopy = (ring: Uint8Array, at: number, n: number, intoRing: boolean) => {
    const i = at & (capacity - 1);
    const first = Math.min(n, capacity - i);
    if (intoRing) {
      ring.set(buffer.subarray(0, first), i);
      ring.set(buffer.subarray(first, n), 0);
    } else {
      buffer.set(ring.subarray(i, i + first), 0);
      buffer.set(ring.subarray(0, n - first), first);
    }
  };
  for (;;) {
    const seen = Atomics.load(ctl, Cell.WORKER_BELL);
    const rxRead = Atomics.load(ctl, Cell.RX_READ) >>> 0;
    const available = (Atomics.load(ctl, Cell.RX_WRITE) - rxRead) >>> 0;
    const txWrite = Atomics.load(ctl, Cell.TX_WRITE) >>> 0;
    const room = capacity - ((txWrite - Atomics.load(ctl, Cell.TX_READ)) >>> 0);
    const n = Math.min(available, room, buffer.length);
    if (n === 0) {
      if (available === 0 && Atomics.load(ctl, Cell.END) === 1) {
        Atomics.store(ctl, Cell.END, 2);
        wakeMain();
        return;
      }
      Atomics.store(ctl, Cell.WORKER_SLEEPING, 1);
      Atomics.wait(ctl, Cell.WORKER_BELL, seen);
      Atomics.store(ctl, Cell.WORKER_SLEEPING, 0);
      continue;
    }
    ringCopy(rx, rxRead, n, false);
    Atomics.store(ctl, Cell.RX_READ, (rxRead + n) | 0);
    ringCopy(tx, txWrite, n, true);
    Atomics.store(ctl, Cell.TX_WRITE, (txWrite + n) | 0);
    wakeMain();
  }
};
