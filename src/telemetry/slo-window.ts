/**
 * Good/bad event counts over a sliding time window, for SLO burn rates. A 30-day window cannot
 * keep every call, so the window is a ring of equal buckets (60 by default): memory is fixed,
 * adding is O(1), and the window slides one bucket at a time. The span counted is therefore
 * between (n-1)/n and the whole window, never more: a bucket leaves whole when it expires.
 */
export class SlidingCounts {
  readonly windowMs: number;
  private readonly widthMs: number;
  private readonly totals: Float64Array;
  private readonly bads: Float64Array;
  /** Absolute index (time / width) of the newest bucket; -Infinity before the first event. */
  private head = Number.NEGATIVE_INFINITY;
  private sumTotal = 0;
  private sumBad = 0;

  constructor(windowMs: number, buckets = 60) {
    this.windowMs = windowMs;
    this.widthMs = windowMs / buckets;
    this.totals = new Float64Array(buckets);
    this.bads = new Float64Array(buckets);
  }

  add(now: number, bad: boolean): void {
    this.advance(now);
    const slot = this.slot(this.head);
    this.totals[slot]! += 1;
    this.sumTotal += 1;
    if (bad) {
      this.bads[slot]! += 1;
      this.sumBad += 1;
    }
  }

  /** Events in the window ending at `now`. */
  read(now: number): { total: number; bad: number } {
    this.advance(now);
    return { total: this.sumTotal, bad: this.sumBad };
  }

  private slot(index: number): number {
    const n = this.totals.length;
    return ((index % n) + n) % n;
  }

  /** Expire the buckets that fell out of the window since the last event. */
  private advance(now: number): void {
    const index = Math.floor(now / this.widthMs);
    if (index <= this.head) return;
    const n = this.totals.length;
    const steps = this.head === Number.NEGATIVE_INFINITY ? n : Math.min(index - this.head, n);
    for (let k = 1; k <= steps; k++) {
      const slot = this.slot(index - steps + k);
      this.sumTotal -= this.totals[slot]!;
      this.sumBad -= this.bads[slot]!;
      this.totals[slot] = 0;
      this.bads[slot] = 0;
    }
    this.head = index;
  }
}
