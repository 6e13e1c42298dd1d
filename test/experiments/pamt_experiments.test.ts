import { describe, expect, it } from 'vitest';
import { GiB, MiB, Sim } from '../../sim/index.ts';
import { defaultsOf } from '../../experiments/experiment.ts';
import { pamtMemory } from '../../experiments/pamt_memory.ts';
import { pamtContention } from '../../experiments/pamt_contention.ts';

function memory(params: Partial<ReturnType<typeof defaultsOf<typeof pamtMemory.params>>>) {
  const p = { ...defaultsOf(pamtMemory.params), simulate_mib: 0, ...params };
  expect(pamtMemory.check!(p)).toBeUndefined();
  return pamtMemory.run(p, new Sim({ seed: 1 })).metrics;
}

describe('pamt-memory: R9 (no TDs), exact where the formula is known', () => {
  it.each([
    // host GiB, max_pfn, static PAMT bytes, Dynamic PAMT total bytes
    [256, 'ram_end', GiB + 2 * MiB + 4096, 2 * MiB + 4096 + 8 * MiB + 512 * 1024],
    [256, 'maxpa', GiB + 2 * MiB + 4096, 2 * MiB + 4096 + 8 * MiB + 8 * GiB],
    [2048, 'ram_end', 8 * GiB + 16 * MiB + 32768, 16 * MiB + 32768 + 64 * MiB + 4 * MiB],
    [2048, 'maxpa', 8 * GiB + 16 * MiB + 32768, 16 * MiB + 32768 + 64 * MiB + 8 * GiB],
  ] as const)('%d GiB host, max_pfn at %s', (gib, maxPfn, staticBytes, dpamtBytes) => {
    const m = memory({ host_memory_gib: gib, max_pfn: maxPfn });
    expect(m['static_pamt_bytes']).toBe(staticBytes);
    expect(m['dpamt_total_bytes']).toBe(dpamtBytes);
    expect(m['dpamt_pairs']).toBe(0);
  });

  it('within 10% of the published table: 1.02 / 0.01 / 8.01 GB (256 GB) and 8.19 / 0.08 / 8.08 GB (2 TB), in GiB', () => {
    const gib = (m: Record<string, number>, k: string) => m[k]! / GiB;
    const within = (model: number, published: number) => expect(Math.abs(model - published) / published).toBeLessThan(0.1);
    within(gib(memory({ host_memory_gib: 256 }), 'static_pamt_bytes'), 1.02);
    within(gib(memory({ host_memory_gib: 256 }), 'dpamt_total_bytes'), 0.01);
    within(gib(memory({ host_memory_gib: 256, max_pfn: 'maxpa' }), 'dpamt_total_bytes'), 8.01);
    within(gib(memory({ host_memory_gib: 2048 }), 'static_pamt_bytes'), 8.19);
    within(gib(memory({ host_memory_gib: 2048 }), 'dpamt_total_bytes'), 0.08);
    within(gib(memory({ host_memory_gib: 2048, max_pfn: 'maxpa' }), 'dpamt_total_bytes'), 8.08);
  });
});

describe('pamt-memory: R8 (large TDs)', () => {
  it('704 GiB TD, all private memory 4K: 8 KiB per guest 2 MiB plus its S-EPT and control pages (~3 GB)', () => {
    const m = memory({ host_memory_gib: 1024, tds: 1, td_gib: 704, placement: 'packed' });
    expect(m['dpamt_pairs']).toBe(704 * 512 + Math.ceil((704 * 512 + 704 + 2 + 1) / 512) + 1);
    expect(m['dpamt_pairs_bytes']! / 1e9).toBeGreaterThan(2.9);
    expect(m['dpamt_pairs_bytes']! / 1e9).toBeLessThan(3.1);
  });
  it('704 GiB TD mapped 2M (1G-backed): pairs only for S-EPT and control pages, each in its own 2M range (~5 MB)', () => {
    const m = memory({ host_memory_gib: 1024, tds: 1, td_gib: 704, mapping: '2m', placement: 'scattered' });
    expect(m['dpamt_pairs']).toBe(704 + 2 + 1 + (1 + 6 + 4 * 6));
    expect(m['dpamt_pairs_bytes']! / 2 ** 20).toBeCloseTo(5.77, 2);
  });
  it('4 TiB TD, all private memory 4K: ~16 GB', () => {
    const m = memory({ host_memory_gib: 4096, tds: 1, td_gib: 4096, placement: 'packed' });
    expect(m['dpamt_pairs_bytes']! / GiB).toBeCloseTo(16.03, 2);
  });
});

describe('pamt-memory: the simulated check TD', () => {
  it('the refcount path adds exactly the pairs the packed formula counts', () => {
    const m = memory({ simulate_mib: 64 });
    expect(m['sim_pairs']).toBe(m['sim_pairs_formula']);
    expect(m['sim_td_pages']).toBe(16384 + 34 + 19);
  });
});

describe('pamt-contention: three policies on 2 TDs x 2 vCPUs x 1 GiB (invariants checked at the end of each run)', () => {
  const run = (pamt: 'static' | 'refcount' | 'lazy' | 'hashed') => {
    const p = { ...defaultsOf(pamtContention.params), pamt, vms: 2, vcpus: 2, memory_gib: 1 };
    expect(pamtContention.check!(p)).toBeUndefined();
    return pamtContention.run(p, new Sim({ seed: 1 })).metrics;
  };
  it('static: no pairs, no pamt_lock; refcount: one lock acquisition per slow get; lazy: a MISSING answer before every pair', () => {
    const s = run('static');
    const r = run('refcount');
    const l = run('lazy');
    expect(s['tdx.pamt.pairs_added']).toBe(0);
    expect(s['host.tdx_pamt.gets']).toBeUndefined();
    expect(r['tdx.aug.total']).toBe(s['tdx.aug.total']);
    expect(r['host.tdx_pamt.pamt_lock.acquisitions']).toBe(r['host.tdx_pamt.gets_slow']);
    expect(r['host.tdx_pamt.gets']).toBe(r['tdx.pamt.td_pages']);
    expect(r['tdx.pamt.busy']).toBe(0);
    expect(l['tdx.pamt.pairs_added']).toBe(r['tdx.pamt.pairs_added']);
    expect(l['tdx.pamt.missing_pair']).toBeGreaterThanOrEqual(l['tdx.pamt.pairs_added']!);
    expect(l['host.tdx_pamt.pamt_lock.acquisitions']).toBe(0);
    expect(l['host.tdx_pamt.leaked_pairs']).toBe(0);
  });
  it('hashed: the same pairs and gets as refcount; a hashed lock spins only when two gets race for the same 2M range', () => {
    const r = run('refcount');
    const h = run('hashed');
    expect(h['tdx.pamt.pairs_added']).toBe(r['tdx.pamt.pairs_added']);
    expect(h['host.tdx_pamt.gets']).toBe(r['host.tdx_pamt.gets']);
    expect(h['host.tdx_pamt.pamt_lock.contended']).toBeLessThanOrEqual(h['host.tdx_pamt.gets_recheck']!);
    expect(h['host.tdx_pamt.pamt_lock.contended']).toBeLessThanOrEqual(r['host.tdx_pamt.pamt_lock.contended']!);
  });
});
