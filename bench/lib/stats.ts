/**
 * Percentiles by sorting: the benchmarks keep every sample (a few thousand at most), so an exact
 * nearest-rank percentile costs nothing and needs no histogram library.
 */

/** Latency percentiles of one scenario, in milliseconds. */
export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

/** The nearest-rank percentile `q` (0 < q ≤ 1) of samples sorted in ascending order. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error("percentile of no samples");
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const total = sorted.reduce((sum, value) => sum + value, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: total / sorted.length,
  };
}

/**
 * Applies `combine` percentile by percentile: the `overhead` row is (chain-10 − floor.core) / 10
 * at p50, at p90 and at p99. A difference of percentiles, not a percentile of differences: the
 * two were measured apart and their samples do not pair up.
 */
export function combinePercentiles(
  a: Summary,
  b: Summary,
  combine: (x: number, y: number) => number,
): Summary {
  return {
    n: Math.min(a.n, b.n),
    p50: combine(a.p50, b.p50),
    p90: combine(a.p90, b.p90),
    p99: combine(a.p99, b.p99),
    min: combine(a.min, b.min),
    max: combine(a.max, b.max),
    mean: combine(a.mean, b.mean),
  };
}

/** Milliseconds since an arbitrary origin, with sub-millisecond resolution. */
export const now = (): number => performance.now();
