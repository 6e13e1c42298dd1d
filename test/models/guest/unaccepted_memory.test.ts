import { describe, expect, it } from 'vitest';
import { MS, S, type Proc } from '../../../sim/index.ts';
import { acceptContext, UNIT } from './context.ts';

describe('accept_memory ([linux:drivers/firmware/efi/unaccepted_memory.c])', () => {
  it('accepts each run of set bits with one arch_accept_memory() and clears the bits', () => {
    const c = acceptContext({ units: 16 });
    c.table.bitmap_clear(2, 1); // unit 2 already accepted: two runs below
    c.ledger.record(2 * UNIT, 3 * UNIT, 0);
    c.on(0, c.um.accept_memory(UNIT, 3 * UNIT - 4096, 'cond_accept_memory'));
    c.sim.run();
    expect(c.platform.calls.map((x) => [x.start / UNIT, x.end / UNIT])).toEqual([[1, 2], [3, 4]]);
    expect(c.table.test_bit(1) || c.table.test_bit(3)).toBe(false);
    expect(c.table.test_bit(0)).toBe(true);
    expect(c.table.test_bit(4)).toBe(true); // end not unit aligned: no guard unit
  });

  it('extends a unit-aligned end by one guard unit (load_unaligned_zeropad)', () => {
    const c = acceptContext({ units: 16 });
    c.on(0, c.um.accept_memory(4 * UNIT, 2 * UNIT, 'cond_accept_memory'));
    c.sim.run();
    expect(c.platform.calls.map((x) => [x.start / UNIT, x.end / UNIT])).toEqual([[4, 7]]);
    expect(c.table.setBits).toBe(13);
  });

  it('does not run past the end of the bitmap with the guard unit', () => {
    const c = acceptContext({ units: 8 });
    c.on(0, c.um.accept_memory(6 * UNIT, 2 * UNIT, 'cond_accept_memory'));
    c.sim.run();
    expect(c.platform.calls.map((x) => [x.start / UNIT, x.end / UNIT])).toEqual([[6, 8]]);
  });

  it('a second accept of an overlapping range waits on accepting_list and does not accept twice', () => {
    const c = acceptContext({ units: 16 });
    const log: [string, number][] = [];
    c.on(0, (function* (): Proc<void> {
      yield* c.um.accept_memory(0, 2 * UNIT, 'cond_accept_memory'); // units 0..2 (guard 2)
      log.push(['A done', c.sim.now]);
    })());
    c.on(1, (function* (): Proc<void> {
      yield c.sim.sleep(1000);
      yield* c.um.accept_memory(2 * UNIT, 2 * UNIT, 'cond_accept_memory'); // units 2..4 overlap at 2
      log.push(['B done', c.sim.now]);
    })());
    c.sim.run();
    expect(c.metrics.acceptingListWaits).toBe(1);
    const [a, b] = c.platform.calls;
    expect([a!.start / UNIT, a!.end / UNIT, a!.vcpu]).toEqual([0, 3, 0]);
    // B accepts only what A left: units 3 and its guard 4, after A finished.
    expect([b!.start / UNIT, b!.end / UNIT, b!.vcpu]).toEqual([3, 5, 1]);
    expect(b!.t0).toBeGreaterThanOrEqual(a!.t1);
    expect(log[0]![0]).toBe('A done');
    expect(c.metrics.acceptingListWaitNs).toBeGreaterThan(0);
  });

  it('disjoint ranges are accepted concurrently with the lock dropped', () => {
    const c = acceptContext({ vcpus: 4, units: 32 });
    for (let i = 0; i < 4; i++) c.on(i, c.um.accept_memory(i * 8 * UNIT, 4 * UNIT, 'cond_accept_memory'));
    c.sim.run();
    const calls = c.platform.calls;
    expect(calls).toHaveLength(4);
    // All four in flight together: the last starts before the first ends (only the short
    // bookkeeping under the lock is serialised).
    expect(Math.max(...calls.map((x) => x.t0))).toBeLessThan(Math.min(...calls.map((x) => x.t1)));
    expect(c.metrics.acceptingListWaits).toBe(0);
  });

  it('accept_lock=held serialises acceptance: one arch_accept_memory() at a time', () => {
    const c = acceptContext({ vcpus: 4, units: 32, mode: 'held' });
    for (let i = 0; i < 4; i++) c.on(i, c.um.accept_memory(i * 8 * UNIT, 4 * UNIT, 'cond_accept_memory'));
    c.sim.run();
    const calls = [...c.platform.calls].sort((a, b) => a.t0 - b.t0);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.t0).toBeGreaterThanOrEqual(calls[i - 1]!.t1);
    const one = calls[0]!.t1 - calls[0]!.t0;
    expect(calls[3]!.t1).toBeGreaterThanOrEqual(4 * one);
    expect(c.um.unaccepted_memory_lock.stats.contended).toBe(3);
  });

  it('accept_lock=held with many vCPUs and slow accepts produces soft lockups; dropped does not', () => {
    // 8 vCPUs each accept 6 MiB at 1 ms per 4K (a slow host): 1.5 s per accept, and the last
    // spinner waits 7 x 1.5 s with interrupts off... below 20 s; 16 vCPUs push it past.
    const run = (mode: 'held' | 'dropped') => {
      const c = acceptContext({ vcpus: 16, units: 16 * 4, mode, nsPer4K: 1 * MS });
      for (let i = 0; i < 16; i++) c.on(i, c.um.accept_memory(i * 4 * UNIT, 2 * UNIT, 'cond_accept_memory'));
      c.sim.run();
      c.sim.finishRun();
      return c.sim.softLockups;
    };
    const held = run('held');
    expect(held.length).toBeGreaterThan(0);
    expect(held.every((l) => l.stuckNs > 20 * S)).toBe(true);
    expect(run('dropped')).toHaveLength(0);
  });

  it('range_contains_unaccepted_memory also looks at the unit after a unit-aligned end', () => {
    const c = acceptContext({ units: 8 });
    c.table.bitmap_clear(0, 3);
    let aligned = false;
    let unaligned = true;
    c.on(0, (function* (): Proc<void> {
      aligned = yield* c.um.range_contains_unaccepted_memory(0, 3 * UNIT); // looks at unit 3 too
      unaligned = yield* c.um.range_contains_unaccepted_memory(0, 3 * UNIT - 4096);
    })());
    c.sim.run();
    expect(aligned).toBe(true);
    expect(unaligned).toBe(false);
  });

  it('memory counts as accepted when arch_accept_memory() returns, not when it starts (bitmap_clear follows it)', () => {
    const c = acceptContext({ units: 16 });
    const seen: { accepted: boolean; bitSet: boolean }[] = [];
    c.on(0, c.um.accept_memory(0, 2 * UNIT, 'cond_accept_memory')); // units 0..3 (guard 2): 3.84 ms
    c.on(1, (function* (): Proc<void> {
      yield c.sim.sleep(10_000);
      seen.push({ accepted: c.ledger.isAccepted(0, UNIT), bitSet: c.table.test_bit(0) });
    })());
    c.sim.run();
    // In flight: the bit is still set, and nothing may hand this memory out yet.
    expect(seen).toEqual([{ accepted: false, bitSet: true }]);
    expect(c.ledger.isAccepted(0, 3 * UNIT)).toBe(true);
    expect(c.ledger.inFlight).toBe(0);
  });

  it('the ledger refuses to accept a 2M unit twice', () => {
    const c = acceptContext({ units: 8 });
    c.ledger.record(0, UNIT, 0);
    expect(() => c.ledger.record(0, UNIT, 5)).toThrow(/accepted twice/);
    c.ledger.record(UNIT, UNIT + 4096, 0);
    expect(() => c.ledger.record(UNIT, 2 * UNIT, 7)).toThrow(/accepted twice/);
  });
});
