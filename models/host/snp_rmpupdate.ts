import { countMetric, prefixedMetrics, type Attrs, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, SIZE_2M, hex } from '../arch/units.ts';
import { RMPUPDATE_FAIL_OVERLAP } from '../snp/arch.ts';
import type { Rmp } from '../snp/rmp.ts';
import type { SnpCosts } from '../snp/snp_costs.ts';
import { HOST_DIRECT_MAP_METRICS, HostDirectMap } from './direct_map.ts';

/** What SnpHostKernel.metrics() writes (`host.snp`, `host.direct_map`). */
export const SNP_HOST_METRICS: MetricSpecs = {
  'host.snp.rmpupdate.fail_overlap': countMetric('answers', 'RMPUPDATEs answered FAIL_OVERLAP (another RMPUPDATE held the 2 MiB range) and re-issued'),
  ...prefixedMetrics('host.direct_map', HOST_DIRECT_MAP_METRICS),
};


/**
 * The host kernel's side of SEV-SNP that every SNP guest on the host shares
 * ([linux:arch/x86/virt/svm/sev.c]): rmpupdate(), which adjusts the direct map and then issues
 * RMPUPDATE until it does not answer FAIL_OVERLAP. The firmware locks the 2 MiB range of an
 * entry while it updates it; a concurrent RMPUPDATE in the same range fails and the kernel
 * re-issues it at once (`do { RMPUPDATE } while (ret == RMPUPDATE_FAIL_OVERLAP)`), spinning on
 * its CPU: the range's lock is kept here as the time it is busy until.
 */
export class SnpHostKernel {
  readonly directMap: HostDirectMap;
  /** Per host 2 MiB range: the virtual time an RMPUPDATE in it ends. */
  private readonly busyUntil: Float64Array;
  failOverlap = 0;

  constructor(
    readonly sim: Sim,
    readonly rmp: Rmp,
    readonly costs: SnpCosts,
    hostBytes: number,
    hostCpus: number,
    directMapSplit: boolean,
  ) {
    this.directMap = new HostDirectMap(sim, hostBytes, hostCpus, directMapSplit);
    this.busyUntil = new Float64Array(hostBytes / SIZE_2M);
  }

  /**
   * rmp_make_private() of the host pages [first, first + n) (one 2 MiB range) for the guest with
   * `asid`: one 2M entry if `as2m`, else n 4K RMPUPDATEs (n > 1: the aggregated path, one step;
   * pages already assigned are skipped). A 4K update splits the direct map around it first.
   * `gpa` is for the span. Returns the pages assigned.
   */
  *rmp_make_private(first: number, n: number, asid: number, as2m: boolean, gpa: number): Proc<number> {
    const sim = this.sim;
    const region = Math.floor(first / PAGES_PER_2M);
    assert(Math.floor((first + n - 1) / PAGES_PER_2M) === region, 'an rmp_make_private() run stays inside one 2 MiB range', hex(first * 4096));
    const todo = as2m ? n : n - this.rmp.assigned.countRange(first, n);
    if (todo === 0) return 0;
    if (!as2m) yield* this.directMap.set_memory_4k(first);
    const c = this.costs;
    while (this.busyUntil[region]! > sim.now) {
      // RMPUPDATE_FAIL_OVERLAP: re-issued at once; each answer costs a failed attempt.
      this.failOverlap++;
      if (sim.observer !== null) sim.instant('RMPUPDATE_FAIL_OVERLAP', { hpa: hex(first * 4096), status: RMPUPDATE_FAIL_OVERLAP });
      yield sim.stallFor(Math.min(this.busyUntil[region]! - sim.now, c.rmpupdateFailNs));
    }
    const ns = as2m ? c.rmpupdate2mNs : todo * c.rmpupdate4kNs;
    this.busyUntil[region] = sim.now + ns;
    const traced = sim.observer !== null;
    let id = 0;
    if (traced) {
      const attrs: Attrs = { gpa: hex(gpa), hpa: hex(first * 4096), size: as2m ? SIZE_2M : 4096 };
      if (!as2m && todo > 1) attrs['cvmsim.aggregated.count'] = todo;
      id = sim.opBegin('RMPUPDATE', attrs, 0, 'snp-firmware');
    }
    yield sim.stallFor(ns);
    const assigned = this.rmp.assign(first, n, asid, as2m);
    if (traced) sim.opEnd(id);
    return as2m ? n : assigned;
  }

  metrics(out: Record<string, number>): void {
    out['host.snp.rmpupdate.fail_overlap'] = this.failOverlap;
    this.directMap.metrics('host.direct_map', out);
  }
}
