import { assert } from './assert.ts';

/**
 * A latency histogram with log-linear buckets: values below 256 are exact, above that each
 * power of two is split into 128 buckets, so a bucket is at most 1/128 (0.8%) wide relative to
 * its value and every percentile is within 1%. Min, max, count and sum are exact.
 */
const LINEAR = 256;
const SUB = 128;
const SUB_BITS = 7;

function bucketOf(v: number): number {
  if (v < LINEAR) return Math.floor(v);
  if (v < 4294967296) {
    // Integer fast path: the top 8 bits of v are the mantissa bucket.
    const e = 31 - Math.clz32(v);
    return LINEAR + (e - 8) * SUB + ((v >>> (e - SUB_BITS)) - SUB);
  }
  const e = Math.floor(Math.log2(v));
  const m = Math.floor(v / 2 ** (e - SUB_BITS)); // in [128, 256)
  return LINEAR + (e - 8) * SUB + (m - SUB);
}

function bucketLow(b: number): number {
  if (b < LINEAR) return b;
  const e = Math.floor((b - LINEAR) / SUB) + 8;
  const m = ((b - LINEAR) % SUB) + SUB;
  return m * 2 ** (e - SUB_BITS);
}

function bucketHigh(b: number): number {
  if (b < LINEAR) return b + 1;
  return bucketLow(b + 1);
}

export interface HistogramSnapshot {
  count: number;
  sum: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

export class Histogram {
  private counts: number[] = [];
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(readonly name: string) {}

  /** Records v, `times` times (an aggregated batch of equal samples). */
  record(v: number, times = 1): void {
    if (!(v >= 0)) assert(false, 'histogram values are non-negative', { histogram: this.name, value: v });
    const b = bucketOf(v);
    const counts = this.counts;
    while (counts.length <= b) counts.push(0);
    counts[b]! += times;
    this.count += times;
    this.sum += v * times;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The q-quantile (0 < q <= 1): the midpoint of the bucket holding rank ceil(q * count), clamped to [min, max]. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    const counts = this.counts;
    for (let b = 0; b < counts.length; b++) {
      seen += counts[b]!;
      if (seen >= rank) {
        const mid = b < LINEAR ? b : (bucketLow(b) + bucketHigh(b)) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Cumulative distribution as [value, fraction <= value] points, one per non-empty bucket. */
  cdf(): [number, number][] {
    const points: [number, number][] = [];
    let seen = 0;
    this.counts.forEach((c, b) => {
      if (c === 0) return;
      seen += c;
      points.push([Math.min(this.max, bucketHigh(b)), seen / this.count]);
    });
    return points;
  }

  merge(other: Histogram): void {
    other.counts.forEach((c, b) => {
      while (this.counts.length <= b) this.counts.push(0);
      this.counts[b]! += c;
    });
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  snapshot(): HistogramSnapshot {
    const empty = this.count === 0;
    return {
      count: this.count,
      sum: this.sum,
      mean: this.mean(),
      min: empty ? 0 : this.min,
      max: empty ? 0 : this.max,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
    };
  }
}
