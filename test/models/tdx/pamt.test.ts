import { describe, expect, it } from 'vitest';
import { Cpu, GiB, MiB, Sim, type Proc } from '../../../sim/index.ts';
import { Host, pamtReserves } from '../../../models/host/host.ts';
import type { PamtPolicy } from '../../../models/host/tdx_pamt.ts';
import {
  TDX_HPA_RANGE_NOT_FREE, TDX_MISSING_PAMT_PAGE_PAIR, TDX_NO_PAMT_PAGE_PAIR, TDX_PAGE_NOT_FREE, TDX_PAMT_PAGE_NOT_EMPTY,
  TDX_SUCCESS, statusClass, tdxOperandBusy,
} from '../../../models/tdx/arch.ts';
import { tdh_phymem_pamt_add_now } from '../../../models/tdx/leaves/tdh_phymem_pamt_add.ts';
import { tdh_phymem_pamt_remove } from '../../../models/tdx/leaves/tdh_phymem_pamt_remove.ts';
import { staticPamtBytes, tdmrsFor } from '../../../models/tdx/pamt.ts';
import { TdxModule } from '../../../models/tdx/tdx_module.ts';
import { Vm } from '../../../models/vm/vm.ts';
import type { AcceptFidelity } from '../../../models/vm/fidelity.ts';
import { finishHost } from '../../../experiments/wiring.ts';
import { RecordingObserver } from '../host/fixture.ts';

const M2 = 2 * MiB;

function dynamicModule(sim = new Sim({ seed: 1 })): TdxModule {
  return new TdxModule(sim, '1.5', {}, { mode: 'dynamic', tdmrs: [{ base: 0, size: GiB }] });
}

describe('PAMT sizes (tdmr_get_pamt_sz)', () => {
  it('static: 16 B per 4K, per 2M and per 1G, each level 4K aligned: 64 GiB -> 262660 KiB', () => {
    expect(staticPamtBytes([{ base: 0, size: 64 * GiB }], 'static') / 1024).toBe(262144 + 512 + 4);
  });
  it('dynamic: PAMT_2M + PAMT_1G + the 1-bit-per-4K page bitmap', () => {
    expect(staticPamtBytes([{ base: 0, size: 256 * GiB }], 'dynamic')).toBe(2 * MiB + 4096 + 8 * MiB);
  });
  it('TDMRs are the RAM ranges rounded out to 1 GiB', () => {
    expect(tdmrsFor([{ start: 0, bytes: 3 * GiB + M2 }])).toEqual([{ base: 0, size: 4 * GiB }]);
  });
});

describe('pamt_walk and the PAMT leaves (dynamic)', () => {
  it('a 4K walk under a 2M range without a pair answers TDX_MISSING_PAMT_PAGE_PAIR and holds nothing', () => {
    const m = dynamicModule();
    expect(m.pamt.walk4k(M2 + 4096, 'exclusive')).toBe(TDX_MISSING_PAMT_PAGE_PAIR);
    expect(m.pamt.heldLocks).toBe(0);
    expect(m.pamt.counters.missingPair).toBe(1);
  });

  it('TDH.PHYMEM.PAMT.ADD makes the 2M entry a node; a second ADD answers TDX_HPA_RANGE_NOT_FREE', () => {
    const m = dynamicModule();
    expect(tdh_phymem_pamt_add_now(m, M2, 10 * M2, 10 * M2 + 4096)).toBe(TDX_SUCCESS);
    expect(m.pamt.hasPair(M2 + 8192)).toBe(true);
    expect(statusClass(tdh_phymem_pamt_add_now(m, M2, 11 * M2, 11 * M2 + 4096))).toBe(TDX_HPA_RANGE_NOT_FREE);
    expect(m.pamt.pairs).toBe(1);
    m.checkInvariants();
  });

  it('PAMT.ADD refuses a page pair page that is a TD page or already a DPAMT page (TDX_PAGE_NOT_FREE)', () => {
    const m = dynamicModule();
    expect(tdh_phymem_pamt_add_now(m, 0, 10 * M2, 10 * M2 + 4096)).toBe(TDX_SUCCESS);
    expect(statusClass(tdh_phymem_pamt_add_now(m, M2, 10 * M2, 12 * M2))).toBe(TDX_PAGE_NOT_FREE);
    expect(m.addControlPage(4096, 'TDH.MNG.CREATE')).toBe(TDX_SUCCESS);
    expect(statusClass(tdh_phymem_pamt_add_now(m, 3 * M2, 4096, 12 * M2))).toBe(TDX_PAGE_NOT_FREE);
  });

  it('a walk meets a 2M entry held exclusive: TDX_OPERAND_BUSY, the host-priority bit stays until a host acquire succeeds', () => {
    const m = dynamicModule();
    tdh_phymem_pamt_add_now(m, M2, 10 * M2, 10 * M2 + 4096);
    const remover = m.pamt.walk2m(M2, 'exclusive');
    expect(typeof remover).toBe('object');
    const status = m.pamt.walk4k(M2 + 4096, 'exclusive');
    expect(typeof status === 'bigint' && tdxOperandBusy(status)).toBe(true);
    m.pamt.unwalk(remover as Exclude<typeof remover, bigint>);
    const again = m.pamt.walk4k(M2 + 4096, 'exclusive');
    expect(typeof again).toBe('object');
    m.pamt.unwalk(again as Exclude<typeof again, bigint>);
    expect(m.pamt.heldLocks).toBe(0);
  });

  it('TDH.PHYMEM.PAMT.REMOVE: TDX_NO_PAMT_PAGE_PAIR without a node, TDX_PAMT_PAGE_NOT_EMPTY while a TD page is in the range, else the pair back', () => {
    const sim = new Sim({ seed: 1 });
    const m = dynamicModule(sim);
    const results: bigint[] = [];
    let pages: [number, number] | null = null;
    sim.spawn((function* (): Proc<void> {
      results.push((yield* tdh_phymem_pamt_remove(m, M2, 0)).status);
      tdh_phymem_pamt_add_now(m, M2, 10 * M2, 10 * M2 + 4096);
      m.addControlPage(M2 + 4096, 'TDH.MNG.ADDCX');
      results.push((yield* tdh_phymem_pamt_remove(m, M2, 0)).status);
      const w = m.pamt.walk4k(M2 + 4096, 'exclusive');
      if (typeof w === 'bigint') throw new Error('walk failed');
      m.pamt.unwalk(w);
      // TDH.PHYMEM.PAGE.RECLAIM's commit (the leaf is not modelled): the entry back to PT_NDA, with the hint.
      expect(m.pamt.clearInUse(M2 + 4096)).toBe(true);
      const r = yield* tdh_phymem_pamt_remove(m, M2, 0);
      results.push(r.status);
      pages = r.pages;
    })(), { name: 'host', cpu: new Cpu(sim, 'cpu0') });
    sim.run();
    expect(results.map(statusClass)).toEqual([TDX_NO_PAMT_PAGE_PAIR, TDX_PAMT_PAGE_NOT_EMPTY, TDX_SUCCESS]);
    expect(pages).toEqual([10 * M2, 10 * M2 + 4096]);
    expect(m.pamt.pairs).toBe(0);
    m.checkInvariants();
  });
});

/** A host with `vms` bare TDs under `pamt`, each accepting its memory on `vcpus` vCPUs at once. */
function bootTogether(pamt: PamtPolicy, fidelity: AcceptFidelity, { vms = 2, vcpus = 2, bytes = 8 * MiB, chunk = 2 * MiB, traced = false, tdxModule = '1.5' as '1.5' | '1.0' } = {}) {
  const sim = new Sim({ seed: 3 });
  const obs = traced ? new RecordingObserver(sim) : null;
  sim.observer = obs;
  const host = new Host(sim, { technology: 'tdx', cpus: vms * vcpus, memoryBytes: 2 * GiB, pamt, tdxModule });
  const tds = Array.from({ length: vms }, () => new Vm(sim, host, { bare: { vcpus, gpaBytes: bytes }, fidelity }));
  for (const vm of tds) {
    const per = bytes / vcpus;
    vm.vcpus.forEach((cpu, i) => {
      sim.spawn((function* (): Proc<void> {
        sim.localIrqDisable();
        for (let a = i * per; a < (i + 1) * per; a += chunk) yield* vm.arch_accept_memory(i, a, Math.min(a + chunk, (i + 1) * per), 'runtime');
        sim.localIrqEnable();
      })(), { name: `${vm.name}/guest${i}`, cpu, service: 'guest' });
    });
  }
  sim.run();
  const m = finishHost(host, tds);
  return { sim, host, tds, m, log: obs?.log ?? [] };
}

describe('the kernel\'s PAMT policies on a host with two TDs', () => {
  it('static: every TD page, S-EPT page and control page has a PAMT 4K entry; no pair, no refcount', () => {
    const { m } = bootTogether('static', 'aggregate');
    expect(m['tdx.pamt.dynamic']).toBe(0);
    // Per TD: 2048 AUGed pages, its S-EPT pages, TDR + 6 TDCS + 2 vCPUs x 6 TDVPS.
    expect(m['tdx.pamt.td_pages']).toBe(2 * 2048 + m['vm1.tdx.sept_add']! + m['vm2.tdx.sept_add']! + 2 * (1 + 6 + 2 * 6));
    expect(m['tdx.pamt.pairs_added']).toBe(0);
    expect(m['host.tdx_pamt.gets']).toBeUndefined();
  });

  it.each(['aggregate', 'per-page'] as const)('refcount (%s): one pair per 2M host range in use, refcount = users, pamt_lock taken once per 0->1', (fidelity) => {
    const { m, host } = bootTogether('refcount', fidelity);
    const pairs = m['tdx.pamt.pairs_added']!;
    // Each TD: 4 guest 2M regions on 4 host blocks, its S-EPT pages on one block, its control pages on one.
    expect(pairs).toBe(2 * (4 + 1 + 1));
    expect(m['host.tdx_pamt.gets']).toBe(m['tdx.pamt.td_pages']);
    expect(m['host.tdx_pamt.pamt_lock.acquisitions']).toBe(m['host.tdx_pamt.gets_slow']);
    expect(m['host.tdx_pamt.gets_slow']).toBe(pairs + m['host.tdx_pamt.gets_recheck']!);
    expect(m['tdx.pamt.dynamic_bytes']).toBe(pairs * 8192);
    expect(m['tdx.pamt.busy']).toBe(0);
    expect(m['tdx.pamt.missing_pair']).toBe(0);
    const reserved = pamtReserves(host.config).reduce((a, b) => a + b, 0); // the static part, at module initialisation
    expect(host.memory.usedBytesOfKind('pamt')).toBe(reserved + pairs * 8192 + m['host.tdx_pamt.cached_pages']! * 4096);
  });

  it('refcount: aggregated and per-page steps give the same pairs, refcounts and PAMT pages', () => {
    const a = bootTogether('refcount', 'aggregate').m;
    const p = bootTogether('refcount', 'per-page').m;
    for (const k of ['tdx.pamt.pairs_added', 'tdx.pamt.td_pages', 'host.tdx_pamt.gets', 'tdx.aug.total']) expect(a[k]).toBe(p[k]);
  });

  it.each(['aggregate', 'per-page'] as const)('lazy (%s): PAMT.ADD only after TDX_MISSING_PAMT_PAGE_PAIR; no refcounts, no lock; the same pairs', (fidelity) => {
    const { m } = bootTogether('lazy', fidelity, { vcpus: 4 });
    expect(m['tdx.pamt.pairs_added']).toBe(2 * (4 + 1 + 1));
    expect(m['host.tdx_pamt.lazy_adds']).toBe(m['tdx.pamt.pairs_added']);
    expect(m['host.tdx_pamt.pamt_lock.acquisitions']).toBe(0);
    expect(m['tdx.pamt.missing_pair']).toBeGreaterThanOrEqual(m['tdx.pamt.pairs_added']! - 2 * 3 /* control pages, at build */);
  });

  it('the static policy leaves the accept timing as it was (the walk costs nothing extra)', () => {
    const s = bootTogether('static', 'aggregate');
    const r = bootTogether('refcount', 'aggregate');
    expect(r.sim.now).toBeGreaterThan(s.sim.now);
    expect(s.m['tdx.aug.total']).toBe(r.m['tdx.aug.total']);
  });
});

describe('tdx_pamt_put after a failed SEAMCALL', () => {
  it('TDX 1.0 (exclusive secure_ept_lock): a BUSY AUG puts its get back; 1->0 runs PAMT.REMOVE under pamt_lock and the retry adds the pair again', () => {
    const { m } = bootTogether('refcount', 'per-page', { vms: 1, vcpus: 4, tdxModule: '1.0', chunk: 64 * 1024 });
    expect(m['vm1.tdx.busy.total']).toBeGreaterThan(0);
    expect(m['host.tdx_pamt.puts']).toBeGreaterThan(0);
    expect(m['host.tdx_pamt.gets']! - m['host.tdx_pamt.puts']!).toBe(m['tdx.pamt.td_pages']);
    expect(m['tdx.pamt.pairs_added']! - m['tdx.pamt.pairs_removed']!).toBe(4 + 1 + 1);
    expect(m['host.tdx_pamt.puts_to_zero']).toBe(m['tdx.pamt.pairs_removed']);
    expect(m['tdx.pamt.pairs_removed']).toBeGreaterThan(0); // 2 with seed 3: the first AUG of a range met BUSY
    expect(m['host.tdx_pamt.leaked_pairs']).toBe(0);
  });
});

describe('traces of the PAMT paths', () => {
  it('refcount: every slow tdx_pamt_get holds TDH.PHYMEM.PAMT.ADD inside it, on the vCPU that faulted', () => {
    const { log, m } = bootTogether('refcount', 'per-page', { traced: true });
    const gets = log.filter((e) => e.name === 'tdx_pamt_get');
    const adds = log.filter((e) => e.name === 'TDH.PHYMEM.PAMT.ADD');
    // Control pages are added at build, untimed and untraced; the rest go through a traced get.
    expect(adds.length).toBe(m['tdx.pamt.pairs_added']! - 2);
    expect(gets.length).toBe(adds.length + m['host.tdx_pamt.gets_recheck']!);
    for (const add of adds) expect(gets.some((g) => g.at <= add.at && add.end! <= g.end!)).toBe(true);
  });

  it('lazy: TDX_MISSING_PAMT_PAGE_PAIR events name the leaf, and each is followed by a PAMT.ADD', () => {
    const { log } = bootTogether('lazy', 'per-page', { traced: true, vcpus: 4 });
    const missing = log.filter((e) => e.kind === 'instant' && e.name === 'TDX_MISSING_PAMT_PAGE_PAIR');
    expect(missing.length).toBeGreaterThan(0);
    // TDH.MNG.CREATE: the TDR, at build (untimed; its PAMT.ADD is untraced).
    expect(new Set(missing.map((e) => e.attrs['leaf']))).toEqual(new Set(['TDH.MNG.CREATE', 'TDH.MEM.PAGE.AUG', 'TDH.MEM.SEPT.ADD']));
    const runtime = missing.filter((e) => e.attrs['leaf'] !== 'TDH.MNG.CREATE');
    const adds = log.filter((e) => e.name === 'TDH.PHYMEM.PAMT.ADD');
    expect(adds.length).toBeGreaterThanOrEqual(runtime.length);
    for (const miss of runtime) expect(adds.some((a) => a.at >= miss.at)).toBe(true);
  });
});
