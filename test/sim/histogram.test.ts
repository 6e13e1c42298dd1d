import { describe, expect, it } from 'vitest';
import { Histogram, RngRegistry } from '../../sim/index.ts';

describe('latency histogram', () => {
  it('percentiles are within 1% of the exact order statistics; max exact', () => {
    const rng = new RngRegistry(3).get('h');
    const h = new Histogram('lat');
    const values: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const v = Math.round(rng.lognormal(50_000, 1.5));
      values.push(v);
      h.record(v);
    }
    values.sort((a, b) => a - b);
    const exact = (q: number) => values[Math.ceil(q * values.length) - 1]!;
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      expect(Math.abs(h.quantile(q) - exact(q)) / exact(q)).toBeLessThan(0.01);
    }
    expect(h.snapshot().max).toBe(values[values.length - 1]);
    expect(h.snapshot().min).toBe(values[0]);
  });

  it('small values are exact and the CDF ends at 1', () => {
    const h = new Histogram('small');
    for (const v of [1, 2, 2, 3, 100]) h.record(v);
    expect(h.quantile(0.5)).toBe(2);
    expect(h.quantile(1)).toBe(100);
    expect(h.cdf().at(-1)).toEqual([100, 1]);
  });

  it('rejects negative values', () => {
    expect(() => new Histogram('x').record(-1)).toThrow(/non-negative/);
  });
});

describe('aggregated samples', () => {
  it('record(v, n) equals n records of v', () => {
    const a = new Histogram('a');
    const b = new Histogram('b');
    a.record(12345, 1000);
    a.record(7);
    for (let i = 0; i < 1000; i++) b.record(12345);
    b.record(7);
    expect(a.snapshot()).toEqual(b.snapshot());
  });
});
