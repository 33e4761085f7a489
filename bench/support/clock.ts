/**
 * One clock every thread can read: CLOCK_MONOTONIC through libc's clock_gettime, in
 * nanoseconds as a float (exact to the ns for 104 days of uptime). performance.now() is
 * relative to each thread's own time origin, so cross-thread latencies use this instead.
 */
const libc = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
});
const CLOCK_MONOTONIC = 1;
const ts = new BigInt64Array(2);
const tsBytes = new Uint8Array(ts.buffer);

/** CLOCK_MONOTONIC now, in nanoseconds. */
export function monotonicNs(): number {
  libc.symbols.clock_gettime(CLOCK_MONOTONIC, tsBytes);
  return Number(ts[0]) * 1e9 + Number(ts[1]);
}
