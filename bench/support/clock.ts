/**
 * Clocks through libc's clock_gettime, in nanoseconds as a float (exact to the ns for 104 days).
 * CLOCK_MONOTONIC is one clock every thread can read: performance.now() is relative to each
 * thread's own time origin, so cross-thread latencies use this instead. The thread CPU clock
 * says what one thread (the main thread, with the drivers) spends, whatever else runs.
 */
const libc = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
});
const CLOCK_MONOTONIC = 1;
const CLOCK_THREAD_CPUTIME_ID = 3;
const ts = new BigInt64Array(2);
const tsBytes = new Uint8Array(ts.buffer);

function readNs(clock: number): number {
  libc.symbols.clock_gettime(clock, tsBytes);
  return Number(ts[0]) * 1e9 + Number(ts[1]);
}

/** CLOCK_MONOTONIC now, in nanoseconds. */
export function monotonicNs(): number {
  return readNs(CLOCK_MONOTONIC);
}

/** CPU time the calling thread has used, in nanoseconds. */
export function threadCpuNs(): number {
  return readNs(CLOCK_THREAD_CPUTIME_ID);
}
