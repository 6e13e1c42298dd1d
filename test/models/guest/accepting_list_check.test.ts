import { describe, expect, it } from 'vitest';
import type { Proc } from '../../../sim/index.ts';
import { acceptingListOverlaps, type AcceptingListCheck } from '../../../models/guest/unaccepted_memory.ts';
import { acceptContext, UNIT } from './context.ts';

describe('accept_memory: the accepting_list overlap test, upstream and v6.6 ([roth-2023-11-accepting-list-off-by-one])', () => {
  it.each([
    // entry, range, upstream, v6.6
    [[0, 3], [3, 6], false, true], // adjacent: the v6.6 test finds a false overlap
    [[0, 4], [3, 6], true, true], // sharing unit 3: both find it
    [[6, 9], [3, 6], false, false], // starts where the range ends: neither
    [[0, 2], [3, 6], false, false], // a unit apart: neither
  ] as const)('entry [%j) against range [%j): upstream %s, v6.6 %s', (e, r, upstream, v66) => {
    const entry = { start: e[0], end: e[1] };
    const range = { start: r[0], end: r[1] };
    expect(acceptingListOverlaps('upstream', entry, range)).toBe(upstream);
    expect(acceptingListOverlaps('v6.6', entry, range)).toBe(v66);
  });

  /** A accepts units [0, 3) (two units and the guard unit), B from 1 us on units [3, 6): adjacent, no unit shared. */
  function adjacent(check: AcceptingListCheck) {
    const c = acceptContext({ units: 16, check });
    const log: [string, number][] = [];
    c.on(0, (function* (): Proc<void> {
      yield* c.um.accept_memory(0, 2 * UNIT, 'cond_accept_memory');
      log.push(['A done', c.sim.now]);
    })());
    c.on(1, (function* (): Proc<void> {
      yield c.sim.sleep(1000);
      yield* c.um.accept_memory(3 * UNIT, 2 * UNIT, 'cond_accept_memory');
      log.push(['B done', c.sim.now]);
    })());
    c.sim.run();
    return { c, log };
  }

  it('upstream: B accepts the adjacent units at once, beside A', () => {
    const { c, log } = adjacent('upstream');
    expect(c.metrics.acceptingListWaits).toBe(0);
    const [a, b] = c.platform.calls;
    expect(b!.t0).toBeLessThan(a!.t1);
    expect(log.map(([n]) => n)).toEqual(['A done', 'B done']);
  });

  it('v6.6: B spins behind A although they share no unit, and starts only when A is done', () => {
    const { c, log } = adjacent('v6.6');
    expect(c.metrics.acceptingListWaits).toBe(1);
    expect(c.metrics.acceptingListFalseWaits).toBe(1);
    const [a, b] = c.platform.calls;
    expect([a!.start / UNIT, a!.end / UNIT, b!.start / UNIT, b!.end / UNIT]).toEqual([0, 3, 3, 6]);
    expect(b!.t0).toBeGreaterThanOrEqual(a!.t1);
    // B's accept takes as long as A's, so it ends one accept later than upstream's B.
    expect(log[1]![1] - log[0]![1]).toBeGreaterThanOrEqual(b!.t1 - b!.t0);
    expect(c.metrics.acceptingListWaitNs).toBeGreaterThan(0);
  });
});
