import { Spinlock, countMetric, measureMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { PAGES_PER_2M, SIZE_1G, SIZE_2M, hex } from '../arch/units.ts';

/** What HostDirectMap.metrics() writes (`host.direct_map`). */
export const HOST_DIRECT_MAP_METRICS: MetricSpecs = {
  'splits.1g': countMetric('splits', '1G direct-map mappings split into 2M (the first RMPUPDATE of a 4K page in that 1 GiB)'),
  'splits.2m': countMetric('splits', '2M direct-map mappings split into 4K (the first RMPUPDATE of a 4K page in that 2 MiB)'),
  tlb_flush_all: countMetric('flushes', 'flush_tlb_all() IPIs to every host CPU, one per split'),
  'cpa_lock.acquisitions': countMetric('acquisitions', 'cpa_lock acquisitions by those splits'),
  'cpa_lock.waits': countMetric('acquisitions', 'cpa_lock acquisitions that spun'),
  'cpa_lock.wait_ns': measureMetric('ns', 'total spin on cpa_lock'),
};

/** Costs of a direct-map split, in ns. */
export interface DirectMapCosts {
  /**
   * One split of a large direct-map mapping (__split_large_page(): a page-table page allocated,
   * 512 entries written, the PMD/PUD replaced under pgd_lock), without its TLB flush. ESTIMATE
   * 2 us [estimate:cpa-split].
   */
  splitNs: number;
  /**
   * flush_tlb_all() (on_each_cpu(), waited for) after a split: a fixed part plus a share per host
   * CPU that takes the IPI. ESTIMATE 2 us + 40 ns per host CPU [estimate:flush-tlb-all].
   */
  flushBaseNs: number;
  flushPerCpuNs: number;
}

export const DIRECT_MAP_COSTS: DirectMapCosts = {
  splitNs: 2_000,
  flushBaseNs: 2_000,
  flushPerCpuNs: 40,
};

/**
 * The host kernel's direct map ([linux:arch/x86/mm/pat/set_memory.c]), reduced to what SNP
 * changes in it: which 1 GiB and 2 MiB ranges are still mapped large (the boot-time direct map
 * uses 1G pages) and the global cpa_lock that serialises every change of it. rmpupdate() of a
 * 4K page splits the large mapping around it first (adjust_direct_map() -> set_memory_4k(),
 * [linux:arch/x86/virt/svm/sev.c]) so that no host access through a 2M+ mapping can overlap a
 * private page; a split holds cpa_lock, and under pgd_lock replaces the entry and flushes every
 * host CPU's TLB (flush_tlb_all()). Splits are never undone. `enabled` false: no split (the
 * mechanism left out).
 */
export class HostDirectMap {
  readonly split1g: Uint8Array;
  readonly split2m: Uint8Array;
  /** cpa_lock: taken around each __change_page_attr() step (without CONFIG_DEBUG_PAGEALLOC). */
  readonly cpaLock: Spinlock;
  readonly counters = { splits1g: 0, splits2m: 0, flushes: 0 };

  constructor(
    readonly sim: Sim,
    hostBytes: number,
    /** Host CPUs every flush_tlb_all() interrupts. */
    readonly hostCpus: number,
    readonly enabled: boolean,
    readonly costs: DirectMapCosts = DIRECT_MAP_COSTS,
  ) {
    this.split1g = new Uint8Array(Math.ceil(hostBytes / SIZE_1G));
    this.split2m = new Uint8Array(hostBytes / SIZE_2M);
    this.cpaLock = new Spinlock(sim, 'host/cpa_lock');
  }

  /** Whether the 2M range of host page `page` is still mapped large. */
  isLarge(page: number): boolean {
    return this.split2m[Math.floor(page / PAGES_PER_2M)] === 0;
  }

  /**
   * set_memory_4k() of host page `page`, on the calling thread: under cpa_lock, split the 1G
   * mapping if it is still whole, then the 2M one, each split followed by flush_tlb_all().
   * Nothing to do when the range is already 4K or splitting is off.
   */
  *set_memory_4k(page: number): Proc<void> {
    if (!this.enabled || !this.isLarge(page)) return;
    const sim = this.sim;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('set_memory_4k', { hpa: hex(page * 4096) }, 0, 'kvm') : 0;
    yield this.cpaLock.acquire();
    const g = Math.floor((page * 4096) / SIZE_1G);
    const r = Math.floor(page / PAGES_PER_2M);
    // Another CPU may have split it while this one spun on cpa_lock (__change_page_attr() looks again).
    if (this.split1g[g] === 0) {
      yield* this.split();
      this.split1g[g] = 1;
      this.counters.splits1g++;
    }
    if (this.split2m[r] === 0) {
      yield* this.split();
      this.split2m[r] = 1;
      this.counters.splits2m++;
    }
    this.cpaLock.release();
    if (traced) sim.opEnd(id);
  }

  private *split(): Proc<void> {
    const sim = this.sim;
    const c = this.costs;
    yield sim.stallFor(c.splitNs);
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('flush_tlb_all', { cpus: this.hostCpus }, 0, 'kvm') : 0;
    yield sim.stallFor(c.flushBaseNs + c.flushPerCpuNs * this.hostCpus);
    this.counters.flushes++;
    if (traced) sim.opEnd(id);
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.splits.1g`] = c.splits1g;
    out[`${prefix}.splits.2m`] = c.splits2m;
    out[`${prefix}.tlb_flush_all`] = c.flushes;
    out[`${prefix}.cpa_lock.acquisitions`] = this.cpaLock.stats.acquisitions;
    out[`${prefix}.cpa_lock.waits`] = this.cpaLock.stats.contended;
    out[`${prefix}.cpa_lock.wait_ns`] = this.cpaLock.stats.wait.sum;
  }
}
