/** Small statistics used by the report: percentiles of samples and medians across rounds. */

/** Percentile (0–100) of the first `count` samples, nearest-rank; sorts a copy. */
export function percentile(samples: Float64Array, count: number, p: number): number {
  if (count === 0) return Number.NaN;
  const sorted = samples.slice(0, count).sort();
  return sorted[Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1))]!;
}

/** Several percentiles at once with one sort. */
export function percentiles(samples: Float64Array, count: number, ps: readonly number[]): number[] {
  if (count === 0) return ps.map(() => Number.NaN);
  const sorted = samples.slice(0, count).sort();
  return ps.map((p) => sorted[Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1))]!);
}

/** Median of finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** Round for the JSON output (keeps NaN out: null). */
export function round(value: number, digits = 1): number | null {
  if (!Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
