import { GiB, MiB, countMetric, measureMetric, type Proc, type Sim } from '../sim/index.ts';
import { Host } from '../models/host/host.ts';
import { PAMT_REFCOUNT_BYTES } from '../models/host/tdx_pamt.ts';
import { Vm } from '../models/vm/vm.ts';
import { finishHost } from './wiring.ts';
import { TDCS_PAGES, TDR_PAGES, TDVPS_PAGES } from '../models/tdx/arch.ts';
import { PAMT_PAIR_PAGES, staticPamtBytes, tdmrsFor } from '../models/tdx/pamt.ts';
import { assert } from '../sim/assert.ts';
import { enumParam, numberParam, type Experiment } from './experiment.ts';

/**
 * pamt-memory (Q4): how much memory the PAMT costs a host, static vs Dynamic PAMT, with the
 * kernel's refcounts, from the model's own formulas (models/tdx/pamt.ts tdmr_get_pamt_sz, the
 * page bitmap, 2 pages per 2M pair; models/host/tdx_pamt.ts 4 B per 2M to max_pfn), for a host
 * and its TDs. Arithmetic: no simulated time. What a TD needs pairs for:
 * - its guest memory mapped 4K (upstream KVM): one pair per guest 2 MiB (guest_memfd packs a
 *   region's 4K folios in one host 2M block); mapped 2M: none (a 2M leaf keeps its PAMT in the
 *   2M entry);
 * - its S-EPT pages (PT pages per 2M region if 4K-mapped, a PD page per 1 GiB, PDPT, PML4) and its
 *   control pages (TDR, TDCS, TDVPS per vCPU): one pair per 2M host range they land in:
 *   `packed` as the simulator's HostMemory places them (pages of one kind share 2M blocks), or
 *   `scattered`, every page in its own 2M range (the buddy allocator's order-0 pages, worst case).
 * A small simulated TD (`simulate_mib`, pamt=refcount, every page accepted on two vCPUs) checks
 * the formula's `packed` count against the pairs the simulator's refcount path actually added.
 * Reproduces [R8] (TD sizes, 4K maps vs 1G-backed) and [R9] (no TDs, max_pfn at RAM end
 * vs maxpa); docs/calibration-host.md has the tables.
 */

export const MAX_PFN_PLACEMENTS = ['ram_end', 'maxpa'] as const;
export const PAGE_PLACEMENTS = ['packed', 'scattered'] as const;
export const TD_MAPPINGS = ['4k', '2m'] as const;

const params = {
  host_memory_gib: numberParam({ default: 256, unit: 'GiB', description: 'host RAM, one TDMR from 0 rounded up to 1 GiB', min: 1, max: 1 << 22, integer: true }),
  max_pfn: enumParam(MAX_PFN_PLACEMENTS, 'ram_end', 'where max_pfn is: the end of RAM, or the top of the physical address space (v6 sizes pamt_refcounts[] to max_pfn)'),
  phys_bits: numberParam({ default: 52, unit: 'bits', description: 'max_pfn=maxpa: physical address bits', min: 32, max: 52, integer: true }),
  tds: numberParam({ default: 0, unit: 'TDs', description: 'TDs on the host', min: 0, max: 4096, integer: true }),
  td_gib: numberParam({ default: 704, unit: 'GiB', description: 'private memory of each TD, all faulted in', min: 1, max: 1 << 20, integer: true }),
  td_vcpus: numberParam({ default: 4, unit: 'vCPUs', description: 'vCPUs of each TD (TDVPS pages)', min: 1, max: 4096, integer: true }),
  mapping: enumParam(TD_MAPPINGS, '4k', 'S-EPT mapping of private memory: 4K (upstream) or 2M (huge pages, e.g. 1G-backed guests)'),
  placement: enumParam(PAGE_PLACEMENTS, 'scattered', 'S-EPT and control pages: packed in shared 2M blocks (the simulator) or each in its own 2M range (worst case)'),
  tdx_module: enumParam(['1.5', '1.0'] as const, '1.5', 'TDCS pages: 6 (1.5) or 4 (1.0)'),
  simulate_mib: numberParam({ default: 64, unit: 'MiB', description: 'size of the simulated check TD (0: none)', min: 0, max: 65536, integer: true }),
};

export const pamtMemory: Experiment<typeof params> = {
  name: 'pamt-memory',
  question: 'Q4: how much memory does the PAMT take, static vs Dynamic PAMT with the kernel\'s refcounts, by host size, max_pfn placement, TD count and size, and 4K vs 2M private mappings?',
  params,
  metrics: {
    static_pamt_bytes: countMetric('bytes', 'static PAMT: PAMT_1G + PAMT_2M + PAMT_4K, each 4K aligned (tdmr_get_pamt_sz)'),
    dpamt_static_bytes: countMetric('bytes', 'Dynamic PAMT at module init: PAMT_1G + PAMT_2M + the 1-bit-per-4K page bitmap'),
    refcount_bytes: countMetric('bytes', 'pamt_refcounts[]: 4 B per 2 MiB from 0 to max_pfn'),
    dpamt_pairs: countMetric('pairs', 'page pairs the TDs need: 2M host ranges holding their 4K-PAMT pages'),
    dpamt_pairs_bytes: countMetric('bytes', 'page-pair memory (8 KiB per pair)'),
    dpamt_total_bytes: countMetric('bytes', 'Dynamic PAMT in all: static part + refcounts + pairs'),
    static_pamt_gib: measureMetric('GiB', 'static PAMT, GiB'),
    dpamt_total_gib: measureMetric('GiB', 'Dynamic PAMT in all, GiB'),
    dpamt_pairs_mib: measureMetric('MiB', 'page-pair memory of the TDs, MiB'),
    saving_gib: measureMetric('GiB', 'static minus Dynamic PAMT'),
    td_4k_pages: countMetric('pages', '4K PAMT entries the TDs use: guest pages mapped 4K, S-EPT pages, control pages'),
    sim_pairs: countMetric('pairs', 'simulated check TD: pairs the refcount path added'),
    sim_pairs_formula: countMetric('pairs', 'simulated check TD: pairs the formula gives (4K mapping, packed)'),
    sim_td_pages: countMetric('pages', 'simulated check TD: PAMT 4K entries in use (= kernel refcount users)'),
  },
  check(p) {
    if (p.tds * p.td_gib > p.host_memory_gib) return `the TDs' memory (${p.tds} x ${p.td_gib} GiB) does not fit in host_memory_gib=${p.host_memory_gib}`;
    if (p.simulate_mib % 4 !== 0) return `simulate_mib must be a multiple of 4 MiB (two vCPUs, 2 MiB pieces; got ${p.simulate_mib})`;
    if (p.max_pfn === 'maxpa' && 2 ** p.phys_bits < p.host_memory_gib * GiB) return `phys_bits=${p.phys_bits} is below the host's RAM`;
    return undefined;
  },
  run(p, sim) {
    const tdmrs = tdmrsFor([{ start: 0, bytes: p.host_memory_gib * GiB }]);
    const staticBytes = staticPamtBytes(tdmrs, 'static');
    const dpamtStatic = staticPamtBytes(tdmrs, 'dynamic');
    const maxPa = p.max_pfn === 'ram_end' ? p.host_memory_gib * GiB : 2 ** p.phys_bits;
    const refcountBytes = Math.ceil(maxPa / (2 * 2 ** 20)) * PAMT_REFCOUNT_BYTES;
    const td = tdPages(p.td_gib, p.td_vcpus, p.mapping, p.tdx_module);
    const pairsPerTd = td.guest4kRegions + pagePairs(td.septPages, p.placement) + pagePairs(td.controlPages, p.placement);
    const pairs = p.tds * pairsPerTd;
    const pairBytes = pairs * PAMT_PAIR_PAGES * 4096;
    const dpamtTotal = dpamtStatic + refcountBytes + pairBytes;
    const check = p.simulate_mib > 0 ? simulateTd(sim, p.simulate_mib, p.tdx_module) : { pairs: 0, formula: 0, tdPages: 0 };
    return {
      metrics: {
        static_pamt_bytes: staticBytes,
        dpamt_static_bytes: dpamtStatic,
        refcount_bytes: refcountBytes,
        dpamt_pairs: pairs,
        dpamt_pairs_bytes: pairBytes,
        dpamt_total_bytes: dpamtTotal,
        static_pamt_gib: staticBytes / GiB,
        dpamt_total_gib: dpamtTotal / GiB,
        dpamt_pairs_mib: pairBytes / 2 ** 20,
        saving_gib: (staticBytes - dpamtTotal) / GiB,
        td_4k_pages: p.tds * (td.guest4kRegions * 512 + td.septPages + td.controlPages),
        sim_pairs: check.pairs,
        sim_pairs_formula: check.formula,
        sim_td_pages: check.tdPages,
      },
    };
  },
};

/**
 * What one TD of `gib` GiB hands the module as 4K pages: its 2M regions mapped 4K, its S-EPT
 * pages (KVM's 4-level S-EPT: a PT page per 4K-mapped 2M region, a PD page per 1 GiB, a PDPT
 * page per 512 GiB, one PML4 page) and its control pages.
 */
export function tdPages(gib: number, vcpus: number, mapping: '4k' | '2m', module: '1.5' | '1.0'): { guest4kRegions: number; septPages: number; controlPages: number } {
  const regions = gib * 512;
  const guest4kRegions = mapping === '4k' ? regions : 0;
  const septPages = guest4kRegions + gib + Math.ceil(gib / 512) + 1;
  const controlPages = TDR_PAGES + TDCS_PAGES[module] + vcpus * TDVPS_PAGES;
  return { guest4kRegions, septPages, controlPages };
}

/** 2M host ranges `pages` 4K pages occupy: packed 512 to a block, or one each. */
function pagePairs(pages: number, placement: 'packed' | 'scattered'): number {
  return placement === 'packed' ? Math.ceil(pages / 512) : pages;
}

/**
 * One bare TD of `mib` MiB on a host with pamt=refcount, every page accepted by two vCPUs in
 * 2 MiB pieces: the pairs the simulator added against the formula's packed count.
 */
function simulateTd(sim: Sim, mib: number, module: '1.5' | '1.0'): { pairs: number; formula: number; tdPages: number } {
  assert(mib % 4 === 0, 'simulate_mib must be a multiple of 4 MiB', mib);
  const vcpus = 2;
  const bytes = mib * MiB;
  const host = new Host(sim, { technology: 'tdx', cpus: vcpus, memoryBytes: 2 * bytes + 256 * MiB, tdxModule: module, pamt: 'refcount' });
  const vm = new Vm(sim, host, { bare: { vcpus, gpaBytes: bytes } });
  const per = bytes / vcpus;
  vm.vcpus.forEach((cpu, i) => {
    sim.spawn((function* (): Proc<void> {
      sim.localIrqDisable();
      for (let a = i * per; a < (i + 1) * per; a += 2 * MiB) yield* vm.arch_accept_memory(i, a, a + 2 * MiB, 'runtime');
      sim.localIrqEnable();
    })(), { name: `vm1/check${i}`, cpu, service: 'guest/vm1' });
  });
  sim.run();
  const m = finishHost(host, [vm]);
  // The simulator adds no PML4 page (the root comes with the TD): the formula's count minus one S-EPT page.
  const td = tdPages(bytes / GiB, vcpus, '4k', module);
  const regions = bytes / (2 * MiB);
  const formula = regions + pagePairs(regions + Math.ceil(bytes / GiB) + 1, 'packed') + pagePairs(td.controlPages, 'packed');
  return { pairs: m['tdx.pamt.pairs_added']!, formula, tdPages: m['tdx.pamt.td_pages']! };
}
