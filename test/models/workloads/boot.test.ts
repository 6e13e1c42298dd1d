import { describe, expect, it } from 'vitest';
import { GiB, MS, Sim } from '../../../sim/index.ts';
import { defaultGuestConfig, type GuestConfig } from '../../../models/guest/kernel.ts';
import { runGuest, swiotlbBytes } from '../../../models/workloads/boot.ts';
import { fixedCostKernel } from '../guest/fixed_cost_platform.ts';

function boot(overrides: Partial<GuestConfig>, seed = 1) {
  const sim = new Sim({ seed });
  const { k, platform } = fixedCostKernel(sim, defaultGuestConfig({ memoryBytes: 4 * GiB, vcpus: 2, hz: 100, ...overrides }));
  const result = runGuest(sim, k);
  platform.checkInvariants();
  return { sim, k, platform, result, at: (m: string) => k.metrics.milestones.get(m)! };
}

describe('boot workload', () => {
  it('reaches init and userspace with its milestones in kernel order', () => {
    const { k } = boot({});
    const order = ['vm_start', 'exit_boot_services', 'start_kernel', 'smp_done', 'deferred_init_done', 'postcore_initcall', 'init', 'userspace'];
    const times = order.map((m) => k.metrics.milestones.get(m));
    expect(times.every((t) => t !== undefined)).toBe(true);
    for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
  });

  it('accept_memory=lazy reaches userspace before accept_memory=eager, which accepts all RAM at boot', () => {
    const lazy = boot({ accept: 'lazy', memoryBytes: 8 * GiB });
    const eager = boot({ accept: 'eager', memoryBytes: 8 * GiB });
    expect(lazy.at('userspace')).toBeLessThan(eager.at('userspace'));
    expect(eager.k.ledger.acceptedBytes).toBe(eager.k.ramPages * 4096);
    expect(lazy.k.ledger.acceptedBytes).toBeLessThan(lazy.k.ramPages * 4096 / 2);
  });

  it('accept_memory=eager runs in pgdatinit and padata helpers on every vCPU at once', () => {
    const { platform, at } = boot({ accept: 'eager', memoryBytes: 16 * GiB, vcpus: 4 });
    const deferred = platform.calls.filter((c) => c.t0 >= at('smp_done') && c.t1 <= at('deferred_init_done'));
    expect(new Set(deferred.map((c) => c.vcpu)).size).toBe(4);
    const busy = deferred.reduce((n, c) => n + (c.t1 - c.t0), 0);
    expect(busy / (at('deferred_init_done') - at('smp_done'))).toBeGreaterThan(3);
  });

  it('the memblock allocations (memmap, SWIOTLB) are accepted at once, even when lazy', () => {
    const { k } = boot({ memoryBytes: 64 * GiB, vcpus: 2 });
    expect(swiotlbBytes(64 * GiB)).toBe(1 * GiB);
    expect(swiotlbBytes(4 * GiB)).toBe(256 * 1024 * 1024); // "SWIOTLB bounce buffer size roundup to 256MB"
    // 64 GiB of RAM needs 1 GiB of struct pages, plus the 1 GiB SWIOTLB pool.
    expect(k.metrics.acceptedBytesBy.get('memblock')!).toBeGreaterThan(2 * GiB);
  });

  it('idle vCPUs take a VM exit at every tick; with NOHZ idle only until clocksource_done_booting, and one re-arm exit per tick', () => {
    const ticking = boot({ hz: 250, vcpus: 4 });
    const idleTime = ticking.at('userspace') - ticking.at('smp_done');
    expect(ticking.platform.idleExits).toBeGreaterThan((idleTime / (4 * MS)) * 0.5);
    expect(ticking.platform.rearmExits).toBe(ticking.platform.idleExits);
    const nohz = boot({ hz: 250, vcpus: 4, nohzIdle: true });
    // Each vCPU ticks while idle from when it came online to the switch (and takes the tick that switches it).
    const early = nohz.at('clocksource_done_booting') - nohz.at('start_kernel');
    expect(nohz.platform.idleExits).toBeGreaterThan(0);
    expect(nohz.platform.idleExits).toBeLessThanOrEqual(4 * (early / (4 * MS) + 2));
    expect(nohz.platform.idleExits).toBeLessThan(ticking.platform.idleExits / 2);
  });

  it('without deferred struct page init every allocation during SMP bring-up accepts a 4 MiB block', () => {
    const deferred = boot({ vcpus: 8, memoryBytes: 16 * GiB });
    const flat = boot({ vcpus: 8, memoryBytes: 16 * GiB, deferredStructPageInit: false });
    const c = flat.k.config.costs;
    expect(flat.k.metrics.wmarkZeroBlocks).toBe(c.preSmpAllocations + 7 * c.apBringupAllocations + c.coreInitcallAllocations);
    expect(deferred.k.metrics.wmarkZeroBlocks).toBeLessThan(flat.k.metrics.wmarkZeroBlocks);
  });

  it('runs the same way twice for a seed', () => {
    const a = boot({ accept: 'background', vcpus: 4 }, 7);
    const b = boot({ accept: 'background', vcpus: 4 }, 7);
    expect(a.sim.fingerprint.hex()).toBe(b.sim.fingerprint.hex());
  });
});
