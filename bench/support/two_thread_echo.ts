/**
 * The floor of bench/sock_echo.ts's structure, with no spearhost code: the echo's bytes cross to
 * a Worker and back through two shared byte rings, as a guest's do. The main thread reads the
 * socket straight into the receive ring and writes the send ring straight to the socket; the
 * worker copies each chunk from the receive ring into a private 256 KiB buffer (a guest's recv)
 * and from there into the send ring (its send). A side that finds nothing to do sleeps on a
 * futex word (the worker with Atomics.wait, the main thread with Atomics.waitAsync) and is woken
 * by Atomics.notify: the two thread crossings and wakes per exchange that no guest can avoid,
 * without the channel, fd table, epoll or wasm around them.
 */
const CAPACITY = 1 << 20;
const CHUNK = 256 * 1024;
/** Control cells: ring indices, the two bells, the sleepers on each, the end of input. */
export const Cell = {
  RX_WRITE: 0,
  RX_READ: 1,
  TX_WRITE: 2,
  TX_READ: 3,
  WORKER_BELL: 4,
  MAIN_BELL: 5,
  WORKER_SLEEPING: 6,
  MAIN_SLEEPING: 7,
  /** 1: the peer finished (set by main); 2: the worker has echoed everything (set by the worker). */
  END: 8,
} as const;

export function twoThreadEcho(): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const workers: Worker[] = [];
  // One worker per connection, started before it arrives (as a guest is running before its peers).
  const start = () => {
    const w = new Worker(new URL("./two_thread_echo_worker.ts", import.meta.url), { type: "module" });
    workers.push(w);
    return w;
  };
  let spare = start();
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      serve(conn, spare);
      spare = start();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: () => {
      listener.close();
      for (const w of workers) w.terminate();
    },
  };
}

function serve(conn: Deno.TcpConn, worker: Worker): void {
  const ctl = new Int32Array(new SharedArrayBuffer(64));
  const rx = new Uint8Array(new SharedArrayBuffer(CAPACITY));
  const tx = new Uint8Array(new SharedArrayBuffer(CAPACITY));
  worker.postMessage({ ctl: ctl.buffer, rx: rx.buffer, tx: tx.buffer, capacity: CAPACITY });
  const wakeWorker = () => {
    Atomics.add(ctl, Cell.WORKER_BELL, 1);
    if (Atomics.load(ctl, Cell.WORKER_SLEEPING)) Atomics.notify(ctl, Cell.WORKER_BELL);
  };
  const sleep = async (seen: number) => {
    Atomics.add(ctl, Cell.MAIN_SLEEPING, 1);
    const r = Atomics.waitAsync(ctl, Cell.MAIN_BELL, seen);
    if (r.async) await r.value;
    Atomics.sub(ctl, Cell.MAIN_SLEEPING, 1);
  };
  const used = (w: number, r: number) => (Atomics.load(ctl, w) - Atomics.load(ctl, r)) >>> 0;
  (async () => { // socket → receive ring
    for (;;) {
      const seen = Atomics.load(ctl, Cell.MAIN_BELL);
      const free = CAPACITY - used(Cell.RX_WRITE, Cell.RX_READ);
      if (free === 0) {
        await sleep(seen);
        continue;
      }
      const write = Atomics.load(ctl, Cell.RX_WRITE) >>> 0;
      const at = write & (CAPACITY - 1);
      const n = await conn.read(rx.subarray(at, at + Math.min(free, CAPACITY - at, CHUNK)));
      if (n === null) break;
      Atomics.store(ctl, Cell.RX_WRITE, (write + n) | 0);
      wakeWorker();
    }
    Atomics.store(ctl, Cell.END, 1);
    wakeWorker();
  })().catch(() => {});
  (async () => { // send ring → socket
    for (;;) {
      const seen = Atomics.load(ctl, Cell.MAIN_BELL);
      const pending = used(Cell.TX_WRITE, Cell.TX_READ);
      if (pending === 0) {
        if (Atomics.load(ctl, Cell.END) === 2) break;
        await sleep(seen);
        continue;
      }
      const read = Atomics.load(ctl, Cell.TX_READ) >>> 0;
      const at = read & (CAPACITY - 1);
      const n = await conn.write(tx.subarray(at, at + Math.min(pending, CAPACITY - at)));
      Atomics.store(ctl, Cell.TX_READ, (read + n) | 0);
      wakeWorker();
    }
    conn.close();
  })().catch(() => {});
}
