import { describe, expect, it } from 'vitest';
import { Sim } from '../../../sim/index.ts';
import { defaultsOf } from '../../../experiments/experiment.ts';
import { hotplugInitParams, runHotplugInit } from '../../../experiments/hotplug_init.ts';

const base = { ...defaultsOf(hotplugInitParams), host_memory_gib: 8, hotadd_gib: 1 };
const run = (over: Partial<typeof base>) => runHotplugInit({ ...base, ...over } as typeof base, new Sim({ seed: 1 }));

describe('TDX module initialisation against memory hot-add (Q3)', () => {
  it('runs its steps in order at the virtual times the costs give', () => {
    const r = run({ timing: 'after' });
    const steps = r.init.log.map((l) => l.step.split(':')[0]!.replace(/ 0x[0-9a-f]+ done| package \d| x\d+/g, ''));
    expect([...new Set(steps)]).toEqual([
      'TDH.SYS.INIT', 'TDH.SYS.LP.INIT', 'get_tdx_sys_info', 'get_online_mems', 'build_tdx_memlist', 'fill_out_tdmrs',
      'tdmrs_set_up_pamt_all', 'tdmrs_populate_rsvd_areas_all', 'TDH.SYS.CONFIG', 'wbinvd_on_all_cpus', 'TDH.SYS.KEY.CONFIG',
      'TDH.SYS.TDMR.INIT', 'module initialized',
    ]);
    expect(r.init.log[0]).toEqual({ step: 'TDH.SYS.INIT', t: 1_000_020_000 });
    // 8 GiB in 4 MiB chunks at 7 us per call (+ cond_resched): 2048 calls.
    expect(r.metrics.metrics['tdx_init.tdmr_init_calls']).toBe(2048);
    expect(r.metrics.metrics.tdmr_init_ms).toBeCloseTo(2048 * 7.02e-3, 6);
  });

  it('R10: 64 GiB of TDMRs initialise within 30% of ~100 ms', () => {
    const r = run({ host_memory_gib: 64 });
    expect(r.metrics.metrics.tdmr_init_ms / 100).toBeGreaterThan(0.7);
    expect(r.metrics.metrics.tdmr_init_ms / 100).toBeLessThan(1.3);
  });

  const outcome = (policy: string, timing: string, kind = 'convertible') => {
    const m = run({ policy: policy as never, timing: timing as never, kind: kind as never }).metrics.metrics;
    return [m.outcome_unsafe, m.outcome_refused_safe, m.outcome_init_failed].join('');
  };

  it('each policy in the three timings (convertible DIMM): unsafe, refused safe memory, init failed', () => {
    const table = Object.fromEntries(['none', 'reject_all', 'cmr_check', 'merged'].map((p) => [p, ['before', 'during', 'after'].map((t) => outcome(p, t))]));
    expect(table).toEqual({
      none: ['100', '100', '100'],
      reject_all: ['010', '010', '010'],
      cmr_check: ['000', '010', '010'],
      merged: ['000', '010', '010'],
    });
  });

  it('merged: non-convertible memory onlined before initialisation fails TDH.SYS.CONFIG; cmr_check refuses it instead', () => {
    expect(outcome('merged', 'before', 'cxl')).toBe('001');
    expect(outcome('cmr_check', 'before', 'cxl')).toBe('000');
    expect(outcome('merged', 'after', 'cxl')).toBe('000');
  });

  it('a hot-add during initialisation waits for mem_hotplug_lock until TDMR.INIT is done (merged)', () => {
    const r = run({ policy: 'merged', timing: 'during' });
    expect(r.metrics.metrics['tdx_init.races']).toBe(1);
    expect(r.metrics.metrics['tdx_init.race_wait_ns']).toBeCloseTo(r.metrics.metrics['tdx_init.tdmr_init_ns']!, -4);
    expect(r.init.hotAdds[0]!.order).toBe('after_init');
  });

  it('init fails with -ENOSPC when a TDMR needs more reserved areas than the module allows', () => {
    const r = run({ map: 'fragmented', holes_per_gib: 16 });
    expect(r.init.status).toBe('error');
    expect(r.init.failure).toBe('rsvd_exhausted');
    expect(r.init.errno).toBe(-28);
    expect(r.metrics.metrics['tdx_init.pamt_bytes']).toBe(0);
  });

  it('init fails with -ENOMEM when no node has a contiguous run for a TDMR\'s PAMT', () => {
    const r = run({ host_busy_pct: 20 });
    expect(r.init.failure).toBe('pamt_enomem');
    expect(r.init.errno).toBe(-12);
    expect(r.map.memory.usedBytesOfKind('pamt')).toBe(0);
  });
});
