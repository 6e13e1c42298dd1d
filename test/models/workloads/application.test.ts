import { describe, expect, it } from 'vitest';
import { GiB, MiB, MS, Sim } from '../../../sim/index.ts';
import { defaultGuestConfig, type GuestConfig } from '../../../models/guest/kernel.ts';
import { defaultApplicationConfig, type ApplicationConfig } from '../../../models/workloads/application.ts';
import { runGuest } from '../../../models/workloads/boot.ts';
import { fixedCostKernel } from '../guest/fixed_cost_platform.ts';

function run(guest: Partial<GuestConfig>, app: Partial<ApplicationConfig>, seed = 1, nsPer4K = 2500) {
  const sim = new Sim({ seed });
  const { k, platform } = fixedCostKernel(sim, defaultGuestConfig({ memoryBytes: 8 * GiB, vcpus: 2, hz: 100, ...guest }), nsPer4K);
  const result = runGuest(sim, k, { application: defaultApplicationConfig(app) });
  platform.checkInvariants();
  return { sim, k, result, platform };
}

describe('application phase', () => {
  it('the aggregated and per-page allocation paths give the same timings', () => {
    const app = { threads: 1, bytes: 64 * MiB, rateBytesPerSec: 0 };
    const per = run({}, { ...app, chunkPages: 1 });
    const agg = run({}, { ...app, chunkPages: 64 });
    expect(agg.result.application!.endNs).toBe(per.result.application!.endNs);
    expect(agg.k.ledger.acceptedBytes).toBe(per.k.ledger.acceptedBytes);
    const a = agg.k.metrics.allocLatency.snapshot();
    const p = per.k.metrics.allocLatency.snapshot();
    expect(a.count).toBe(p.count);
    expect(a.sum).toBe(p.sum);
    expect(a.max).toBe(p.max);
    expect(agg.k.metrics.allocSpikes).toBe(per.k.metrics.allocSpikes);
    // The aggregated path needs fewer engine events (boot events are common to both).
    expect(agg.sim.eventsExecuted).toBeLessThan(per.sim.eventsExecuted);
  });

  it('lazy acceptance puts 4 MiB accepts into allocations: spikes above 1 ms', () => {
    const { k } = run({ accept: 'lazy' }, { threads: 2, bytes: 2 * GiB });
    const lat = k.metrics.allocLatency.snapshot();
    expect(lat.count).toBe((2 * GiB) / 4096);
    // A 4 MiB block + its 2 MiB guard unit at 2.5 us per 4K is 2.56-3.84 ms in one allocation.
    expect(lat.max).toBeGreaterThan(2.5 * MS);
    expect(k.metrics.acceptedBytesBy.get('cond_accept_memory')!).toBeGreaterThan(1 * GiB);
    expect(k.metrics.allocSpikes).toBeGreaterThan(200);
    expect(lat.p50).toBeLessThan(1000);
  });

  it('a background acceptor on idle vCPUs takes the acceptance out of the allocation path', () => {
    const app = { threads: 1, bytes: 1 * GiB, rateBytesPerSec: 1 * GiB };
    const lazy = run({ accept: 'lazy', vcpus: 4 }, app);
    const bg = run({ accept: 'background', vcpus: 4, background: { threads: 2, paceNs: 0 } }, app);
    expect(bg.k.metrics.allocSpikes).toBeLessThan(lazy.k.metrics.allocSpikes / 4);
    expect(bg.k.metrics.acceptNsBy.get('background')!).toBeGreaterThan(0);
  });

  it('churn reuses accepted memory: acceptance stops once the working set is accepted', () => {
    const { k } = run({}, { threads: 1, bytes: 2 * GiB, pattern: 'churn', workingSetBytes: 128 * MiB });
    const onDemand = k.metrics.acceptedBytesBy.get('cond_accept_memory') ?? 0;
    expect(onDemand).toBeLessThan(512 * MiB);
    expect(k.metrics.allocLatency.count).toBe((2 * GiB) / 4096);
  });

  it('accept_lock=held: 128 vCPUs allocating at once spin behind one accept at a time into soft lockups; dropped does not', () => {
    // A slow accept path (30 us per 4K, e.g. SNP page state changes through the VMM) and a
    // CONFIG_PREEMPT_VOLUNTARY kernel whose cond_accept_memory() loop never reschedules.
    const guest = { memoryBytes: 128 * GiB, vcpus: 128, hz: 0 };
    const app = { threads: 128, bytes: 128 * 64 * MiB };
    const held = run({ ...guest, acceptLock: 'held' }, app, 1, 30_000);
    const dropped = run({ ...guest, acceptLock: 'dropped' }, app, 1, 30_000);
    expect(held.sim.softLockups.length).toBeGreaterThan(0);
    expect(held.sim.softLockups.every((l) => l.thread.startsWith('app/'))).toBe(true);
    expect(dropped.sim.softLockups).toHaveLength(0);
    expect(held.k.metrics.allocLatency.max).toBeGreaterThan(20 * dropped.k.metrics.allocLatency.max);
  });
});
