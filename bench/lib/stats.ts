/** Small numeric helpers for the benchmark: percentiles, medians, rounding. */

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Rounds to `digits` significant decimals, keeping JSON and tables readable. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Concatenates the latency samples of several runs. */
export function pooled(runs: Array<{ latenciesMs: Float64Array }>): Float64Array {
  const total = runs.reduce((n, r) => n + r.latenciesMs.length, 0);
  const out = new Float64Array(total);
  let at = 0;
  for (const r of runs) {
    out.set(r.latenciesMs, at);
    at += r.latenciesMs.length;
  }
  return out;
}

/** Rounds to `digits` significant digits: for ratios far below 1 (0.00163, not 0.0016). */
export function significant(value: number, digits = 3): number {
  return Number.isFinite(value) && value !== 0 ? Number(value.toPrecision(digits)) : value;
}
