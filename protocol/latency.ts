/** Latency samples for GET_METRICS and driver counters; shared by both sides of the boundary. */

/** The last `size` latency samples, for p50/p99 in GET_METRICS. */
export class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  count = 0;
  max = 0;

  constructor(size = 4096) {
    this.samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  summary(): { count: number; p50: number | null; p99: number | null; max: number | null } {
    const n = Math.min(this.count, this.samples.length);
    if (n === 0) return { count: 0, p50: null, p99: null, max: null };
    const sorted = this.samples.slice(0, n).sort();
    const at = (q: number) => Math.round(sorted[Math.min(n - 1, Math.floor(q * n))] * 1000) / 1000;
    return { count: this.count, p50: at(0.5), p99: at(0.99), max: Math.round(this.max * 1000) / 1000 };
  }
}
