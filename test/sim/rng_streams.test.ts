import { describe, expect, it } from 'vitest';
import { RngRegistry, Sim } from '../../sim/index.ts';

describe('named random streams', () => {
  it('adding a stream leaves every other stream unchanged', () => {
    const a = new RngRegistry(42);
    const before = Array.from({ length: 5 }, () => a.get('guest.vcpu.0.workload').random());
    const b = new RngRegistry(42);
    b.get('a.new.stream').random();
    b.get('another.one').exponential(3);
    const after = Array.from({ length: 5 }, () => b.get('guest.vcpu.0.workload').random());
    expect(after).toEqual(before);
  });

  it('streams differ by name and by root seed', () => {
    const x = new RngRegistry(1).get('s').random();
    expect(new RngRegistry(1).get('t').random()).not.toBe(x);
    expect(new RngRegistry(2).get('s').random()).not.toBe(x);
    expect(new RngRegistry(1).get('s').random()).toBe(x);
  });

  it('pins the first values of a stream (a snapshot: changing the generator is a visible change)', () => {
    const r = new RngRegistry(1).get('guest.vcpu.0.workload');
    const values = Array.from({ length: 3 }, () => r.random().toFixed(12));
    expect(values).toMatchInlineSnapshot(`
      [
        "0.659234853461",
        "0.825928041711",
        "0.650751152774",
      ]
    `);
  });

  it('distributions have the right means', () => {
    const sim = new Sim({ seed: 7 });
    const r = sim.rng('dist');
    const n = 200_000;
    const mean = (f: () => number) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += f();
      return s / n;
    };
    expect(mean(() => r.exponential(3))).toBeCloseTo(3, 1);
    expect(mean(() => r.uniform(2, 4))).toBeCloseTo(3, 1);
    expect(mean(() => r.normal(5, 2))).toBeCloseTo(5, 1);
    expect(mean(() => r.lognormal(1, 0.5))).toBeCloseTo(Math.exp(0.125), 1);
    expect(mean(() => (r.bernoulli(1, 4) ? 1 : 0))).toBeCloseTo(0.25, 2);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(r.choice([1, 2, 3]));
    expect([...seen].sort()).toEqual([1, 2, 3]);
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('bernoulli takes an integer ratio and rejects anything else', () => {
    const r = new RngRegistry(1).get('x');
    expect(() => r.bernoulli(0.5, 1)).toThrow(/integers/);
    expect(() => r.bernoulli(3, 2)).toThrow(/0 <= n <= d/);
  });
});
