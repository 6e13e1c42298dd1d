import { describe, expect, it } from 'vitest';
import { Sim } from '../../sim/index.ts';
import { defaultsOf } from '../../experiments/experiment.ts';
import { pamtChurn } from '../../experiments/pamt_churn.ts';

function run(over: Partial<ReturnType<typeof defaultsOf<typeof pamtChurn.params>>>) {
  const p = { ...defaultsOf(pamtChurn.params), memory_gib: 1, vcpus: 1, vms: 3, ...over };
  expect(pamtChurn.check!(p)).toBeUndefined();
  return pamtChurn.run(p, new Sim({ seed: 1 }));
}

describe('pamt-churn', () => {
  it('churn under refcount: every TD stops, every pair added is removed, no leak, the curve returns to 0', () => {
    const { metrics: m, curves } = run({ pamt: 'refcount', workload: 'churn' });
    expect(m['tds_stopped']).toBe(3);
    expect(m['pairs_removed']).toBe(m['pairs_added']);
    expect(m['host.tdx_pamt.puts_to_zero']).toBe(m['pairs_removed']);
    expect(m['leaked_pairs']).toBe(0);
    expect(m['tdx.pamt.td_pages']).toBe(0);
    expect(m['fault_ns_p50']).toBeGreaterThan(0);
    expect(m['fault_ns_max']).toBeGreaterThanOrEqual(m['fault_ns_p99']!);
    expect(Math.max(...curves!['pamt_mib']!.y)).toBeGreaterThan(0);
    expect(curves!['pamt_mib']!.y.at(-1)).toBe(0);
  });

  it('churn under lazy with overlapping lifetimes counts its races (hint REMOVEs against new TDs) and its leaks', () => {
    const { metrics: m } = run({ pamt: 'lazy', workload: 'churn', arrival_ms: 300 });
    expect(m['tds_stopped']).toBe(3);
    expect(m['host.tdx_pamt.lazy_hints']).toBeGreaterThan(0);
    const races = m['host.tdx_pamt.lazy_pair_lost']! + m['host.tdx_pamt.lazy_remove_not_empty']! + m['host.tdx_pamt.lazy_remove_busy']! + m['host.tdx_pamt.lazy_remove_no_pair']!;
    expect(races).toBeGreaterThanOrEqual(0);
    // Leaks are counted, never asserted away; here every hint was acted on.
    expect(m['leaked_pairs']).toBe(m['host.tdx_pamt.idle_pairs']);
  });

  it('fill stops at the host running out of memory and counts it', () => {
    const { metrics: m } = run({ pamt: 'refcount', workload: 'fill', vms: 2, arrival_ms: 0 });
    expect(m['host_oom']).toBe(1);
    expect(m['oom_at_s']).toBeGreaterThan(0);
    expect(m['tds_stopped']).toBe(0);
  });

  it('a storm tears every TD down at once: pamt_lock is contended by the teardowns', () => {
    const { metrics: m } = run({ pamt: 'refcount', workload: 'shutdown_storm' });
    expect(m['tds_stopped']).toBe(3);
    expect(m['pairs_removed']).toBe(m['pairs_added']);
    expect(m['host.tdx_pamt.pamt_lock.contended']).toBeGreaterThan(0);
  });
});
