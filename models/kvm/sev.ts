import { countMetric, type MetricSpecs } from '../../sim/index.ts';
import { PAGES_PER_2M } from '../arch/units.ts';
import type { SnpHostKernel } from '../host/snp_rmpupdate.ts';
import type { Rmp } from '../snp/rmp.ts';
import type { SnpCosts } from '../snp/snp_costs.ts';

/** What an SNP guest's page state changes and validations did (KVM and the guest's PVALIDATEs). */
export interface SnpCounters {
  pscRequests: number;
  pscEntries4k: number;
  pscEntries2m: number;
  userspaceExits: number;
  rmpupdate4k: number;
  rmpupdate2m: number;
  pvalidate4k: number;
  pvalidate2m: number;
  pvalidateSizeMismatch: number;
  /** Conversions to shared: 4K RMP entries made shared again (rmp_make_shared()), 2M entries smashed, pages the guest rescinded. */
  rmpupdateShared: number;
  psmash: number;
  pvalidateRescinded: number;
  /** Nested page faults PVALIDATE took on private pages not yet in the NPT (snp_prefault=false). */
  npfFaults: number;
}

/** What KvmSev.metrics() writes (`vm1.kvm.sev`). */
export const KVM_SEV_METRICS: MetricSpecs = {
  'psc.requests': countMetric('requests', 'page state change requests (VMGEXIT PSC and MSR protocol)'),
  'psc.entries_4k': countMetric('entries', '4K entries of page state changes'),
  'psc.entries_2m': countMetric('entries', '2M entries of page state changes'),
  userspace_exits: countMetric('exits', 'KVM_HC_MAP_GPA_RANGE exits to the VMM'),
  'rmpupdate.4k': countMetric('RMPUPDATEs', 'RMPUPDATE of 4K entries'),
  'rmpupdate.2m': countMetric('RMPUPDATEs', 'RMPUPDATE of 2M entries'),
  'pvalidate.4k': countMetric('PVALIDATEs', 'PVALIDATE of 4K pages (the 2M fallback included)'),
  'pvalidate.2m': countMetric('PVALIDATEs', 'PVALIDATE of 2M pages'),
  'pvalidate.size_mismatch': countMetric('answers', '2M PVALIDATEs answered PVALIDATE_FAIL_SIZEMISMATCH'),
  validated_pages: countMetric('pages', '4K pages the guest validated'),
  'rmpupdate.shared': countMetric('RMPUPDATEs', '4K RMP entries made shared again (conversions to shared)'),
  psmash: countMetric('PSMASHes', '2M RMP entries smashed before a partial conversion'),
  'pvalidate.rescinded': countMetric('pages', '4K pages the guest rescinded (PVALIDATE validate=0) before conversion to shared'),
  'npf.faults': countMetric('faults', 'nested page faults taken by PVALIDATE on private pages not yet mapped (upstream: RMPUPDATE inside the fault)'),
};

/**
 * `struct kvm_sev_info` of one SNP guest: its ASID, the host's RMP and the SNP costs, whether
 * per-4K RMP work is simulated page by page, and what its page state changes did.
 */
export class KvmSev {
  readonly counters: SnpCounters = {
    pscRequests: 0, pscEntries4k: 0, pscEntries2m: 0, userspaceExits: 0,
    rmpupdate4k: 0, rmpupdate2m: 0, pvalidate4k: 0, pvalidate2m: 0, pvalidateSizeMismatch: 0,
    rmpupdateShared: 0, psmash: 0, pvalidateRescinded: 0, npfFaults: 0,
  };
  /** Host addresses of the firmware image's pages SNP_LAUNCH_UPDATE made private and validated (outside guest RAM's guest_memfd). */
  readonly imagePages: number[] = [];

  constructor(
    readonly asid: number,
    readonly rmp: Rmp,
    readonly costs: SnpCosts,
    /** Per-4K RMPUPDATEs and PVALIDATEs as separate steps (exact) or one step per entry. */
    readonly perPage: boolean,
    /** The host kernel's rmpupdate() (direct-map splits, FAIL_OVERLAP). */
    readonly host: SnpHostKernel,
    /**
     * true: the VMM prefaults on each page state change to private (KVM_PRE_FAULT_MEMORY, the
     * unmerged QEMU patch [lendacky-2025-03-snp-prefault]), so the PSC exit makes the pages
     * private; false (upstream): the PSC only reaches the VMM and the guest's PVALIDATE faults
     * each page in (models/kvm/snp_npf.ts).
     */
    readonly prefault: boolean,
  ) {}

  /** 4K pages this guest validated (a 2M PVALIDATE that answered SIZEMISMATCH counts by its 4K fallback). */
  validatedPages(): number {
    const c = this.counters;
    return c.pvalidate4k + PAGES_PER_2M * (c.pvalidate2m - c.pvalidateSizeMismatch) - c.pvalidateRescinded;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.psc.requests`] = c.pscRequests;
    out[`${prefix}.psc.entries_4k`] = c.pscEntries4k;
    out[`${prefix}.psc.entries_2m`] = c.pscEntries2m;
    out[`${prefix}.userspace_exits`] = c.userspaceExits;
    out[`${prefix}.rmpupdate.4k`] = c.rmpupdate4k;
    out[`${prefix}.rmpupdate.2m`] = c.rmpupdate2m;
    out[`${prefix}.pvalidate.4k`] = c.pvalidate4k;
    out[`${prefix}.pvalidate.2m`] = c.pvalidate2m;
    out[`${prefix}.pvalidate.size_mismatch`] = c.pvalidateSizeMismatch;
    out[`${prefix}.validated_pages`] = this.validatedPages();
    out[`${prefix}.npf.faults`] = c.npfFaults;
    if (c.rmpupdateShared + c.pvalidateRescinded > 0) {
      out[`${prefix}.rmpupdate.shared`] = c.rmpupdateShared;
      out[`${prefix}.psmash`] = c.psmash;
      out[`${prefix}.pvalidate.rescinded`] = c.pvalidateRescinded;
    }
  }
}
