import { describe, expect, it } from 'vitest';
import { MiB, Sim, type Proc } from '../../../sim/index.ts';
import { acceptInParallel, onVcpu0, tdxVm, type TestVmOptions } from '../host/fixture.ts';

/** The counts that must not depend on fidelity (lock acquisitions and step counters do). */
const SAME = [
  'exits.EPT_VIOLATION', 'exit_ns.EPT_VIOLATION', 'tdx.aug.4k', 'tdx.aug.2m', 'tdx.sept_add', 'tdx.tdcalls',
  'tdx.accept.4k', 'tdx.accept.2m', 'tdx.accept.size_mismatch', 'tdx.accept.operand_invalid',
  'tdx.bytes_zeroed', 'host.bytes_cleared', 'host.memory.bytes', 'kvm.gmem.folios', 'tdx.busy.total',
];

function both(run: (fidelity: 'aggregate' | 'per-page') => { end: number; metrics: Record<string, number> }) {
  const agg = run('aggregate');
  const per = run('per-page');
  expect(agg.metrics['model.aggregated_steps']).toBeGreaterThan(0);
  expect(per.metrics['model.aggregated_steps']).toBe(0);
  return { agg, per };
}

describe('aggregated per-2M steps and the per-page path agree when uncontended', () => {
  it.each([
    ['4K S-EPT, TDX 1.5', { sept: '4k', tdxModule: '1.5' }],
    ['4K S-EPT, TDX 1.0 (exclusive S-EPT lock, fluid in aggregate)', { sept: '4k', tdxModule: '1.0' }],
    ['2M S-EPT', { sept: '2m', tdxModule: '1.5' }],
  ] as const)('%s: same end time to the ns and same counts, for aligned and unaligned ranges', (_name, extra) => {
    const ranges: [number, number][] = [
      [0, 4 * MiB], [4 * MiB + 12288, 6 * MiB], [6 * MiB, 10 * MiB + 4096], [10 * MiB + 4096, 16 * MiB], [20 * MiB, 30 * MiB],
    ];
    const { agg, per } = both((fidelity) => {
      const sim = new Sim({ seed: 3 });
      const platform = tdxVm(sim, { gpaBytes: 32 * MiB, vcpus: 1, fidelity, ...(extra as Partial<TestVmOptions>) });
      onVcpu0(sim, platform, function* (): Proc<void> {
        for (const [s, e] of ranges) yield* platform.arch_accept_memory(0, s, e, 'runtime');
      });
      platform.checkInvariants();
      return { end: sim.now, metrics: platform.metrics() };
    });
    expect(agg.end).toBe(per.end);
    for (const k of SAME) expect([k, agg.metrics[k]]).toEqual([k, per.metrics[k]]);
  });

  it('four vCPUs on disjoint memory with TDX 1.5 (no lock in common, cache_lines=false): same end time and counts', () => {
    const { agg, per } = both((fidelity) => {
      const sim = new Sim({ seed: 3 });
      const platform = tdxVm(sim, { gpaBytes: 64 * MiB, vcpus: 4, fidelity, cacheLines: false });
      const end = acceptInParallel(sim, platform, 64 * MiB);
      return { end, metrics: platform.metrics() };
    });
    // The first exits of vCPUs 1-3 meet vCPU 0's frozen PD SPTE in the per-page path only, so
    // compare the steady state: end times within the few retried faults (each a TD exit and
    // entry, ~2.5 us), counts exactly.
    expect(Math.abs(agg.end - per.end)).toBeLessThan(20_000);
    for (const k of SAME.filter((k) => !k.startsWith('exit'))) expect([k, agg.metrics[k]]).toEqual([k, per.metrics[k]]);
  });

  it.each([1, 2])('four vCPUs sharing the TD-wide and VM-wide words (cache lines, %i socket(s)): end times within 5 percent, transfers within 15 percent', (sockets) => {
    const { agg, per } = both((fidelity) => {
      const sim = new Sim({ seed: 3 });
      const platform = tdxVm(sim, { gpaBytes: 64 * MiB, vcpus: 4, fidelity, sockets });
      const end = acceptInParallel(sim, platform, 64 * MiB);
      return { end, metrics: platform.metrics() };
    });
    expect(Math.abs(agg.end - per.end) / per.end).toBeLessThan(0.05);
    for (const k of ['tdx.lines.transfers', 'kvm.lines.transfers']) {
      expect(per.metrics[k]).toBeGreaterThan(0);
      expect(Math.abs(agg.metrics[k]! - per.metrics[k]!) / per.metrics[k]!).toBeLessThan(0.15);
    }
  });
});
