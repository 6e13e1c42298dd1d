import { describe, expect, it } from 'vitest';
import { MS, type Proc } from '../../../sim/index.ts';
import { BackgroundAcceptor } from '../../../models/guest/acceptor.ts';
import { deferred_init_memmap } from '../../../models/guest/mm_init.ts';
import { bringUpAllocator, guestContext } from './guest_context.ts';

describe('background acceptor (option 3 of the unaccepted-memory changelog)', () => {
  it('kacceptd threads only use idle CPU, then accept everything left', () => {
    const { sim, k, platform, run } = guestContext({ vcpus: 1, accept: 'background' });
    let busyUntil = 0;
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      yield* deferred_init_memmap(k);
      k.allocator.init_per_zone_wmark_min();
      const start = platform.calls.length;
      k.acceptor!.start();
      // A normal thread keeps the only vCPU busy for 50 ms.
      yield sim.compute(50 * MS);
      busyUntil = sim.now;
      expect(platform.calls.length).toBe(start);
      expect(k.metrics.backgroundBlocks).toBe(0);
    })());
    const background = platform.calls.filter((c) => c.t0 >= busyUntil);
    expect(background.length).toBeGreaterThan(0);
    expect(k.allocator.zones.every((z) => z.unaccepted_pages.length === 0)).toBe(true);
    expect(k.metrics.backgroundBlocks).toBeGreaterThan(100);
    expect(k.metrics.acceptNsBy.get('background')).toBeGreaterThan(0);
  });

  it('pacing spaces the blocks out', () => {
    const { sim, k, platform, run } = guestContext({ vcpus: 2, accept: 'background', background: { threads: 1, paceNs: 10 * MS } });
    let startedAt = 0;
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      yield* deferred_init_memmap(k);
      k.allocator.init_per_zone_wmark_min();
      const acceptor = k.acceptor as BackgroundAcceptor;
      startedAt = sim.now;
      acceptor.start();
      yield sim.sleep(100 * MS);
      k.stopping = true;
    })());
    const bg = platform.calls.filter((c) => c.vcpu === 1 && c.t0 >= startedAt);
    for (let i = 1; i < bg.length; i++) expect(bg[i]!.t0 - bg[i - 1]!.t1).toBeGreaterThanOrEqual(10 * MS);
    expect(bg.length).toBeGreaterThan(3);
    expect(bg.length).toBeLessThanOrEqual(11);
  });

  it('a normal thread waking on the acceptor\'s vCPU waits at most for the block in progress (cond_resched between blocks)', () => {
    const { sim, k, run } = guestContext({ vcpus: 1, accept: 'background' });
    const delays: number[] = [];
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      yield* deferred_init_memmap(k);
      k.allocator.init_per_zone_wmark_min();
      k.acceptor!.start();
      for (let i = 0; i < 5; i++) {
        yield sim.sleep(7 * MS); // the vCPU idles: kacceptd takes it
        const woke = sim.now;
        yield sim.compute(1000);
        delays.push(sim.now - woke - 1000);
      }
      k.stopping = true;
    })());
    // A 4 MiB block plus its guard unit costs 1536 x 2.5 us = 3.84 ms on the fixed-cost double.
    expect(Math.max(...delays)).toBeLessThanOrEqual(3.84 * MS + 10_000);
    expect(delays.some((d) => d > 0)).toBe(true);
    expect(k.metrics.backgroundBlocks).toBeGreaterThan(5);
  });
});
