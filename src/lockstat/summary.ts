/** Repeats -> median and spread; latency histograms -> percentiles. */
import { bucketValue } from './ram.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) return { median: 0, min: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/**
 * a / b with the spread of both: the median ratio is median(a) / median(b); its bounds are the
 * least and most favourable pairings, min(a) / max(b) and max(a) / min(b).
 */
export function ratioSpread(a: Spread, b: Spread): Spread {
  const r = (x: number, y: number): number => (y > 0 ? x / y : 0);
  return { median: r(a.median, b.median), min: r(a.min, b.max), max: r(a.max, b.min) };
}

/** The q-quantile (0..1) of a latency histogram, ns (a bucket's middle). 0 for no samples. */
export function percentile(hist: readonly number[], q: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const want = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b]!;
    if (seen >= want) return bucketValue(b);
  }
  return bucketValue(hist.length - 1);
}

export function roundSpread(s: Spread, digits = 0): Spread {
  const f = 10 ** digits;
  const r = (x: number): number => Math.round(x * f) / f;
  return { median: r(s.median), min: r(s.min), max: r(s.max) };
}
