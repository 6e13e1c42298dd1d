import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import type { Kvm } from './kvm.ts';
import { sevOf } from './snp_psc.ts';

/**
 * Whether guest page `page` is mapped private in the NPT: its guest_memfd folio exists and its
 * RMP entry is assigned to the guest. (KVM maps and assigns in the same fault, and a conversion
 * to shared undoes both; so the RMP stands in for the NPT leaf.)
 */
export function snpMappedPrivate(kvm: Kvm, page: number): boolean {
  if (!kvm.gmem.allocated.test(page)) return false;
  return sevOf(kvm).rmp.assigned.test(kvm.gmem.hostPage(page));
}

/** Pages of [first, first + n) not mapped private yet. */
function unmapped(kvm: Kvm, first: number, n: number): number {
  let m = 0;
  for (let p = first; p < first + n; p++) if (!snpMappedPrivate(kvm, p)) m++;
  return m;
}

/**
 * The nested page faults a guest access (PVALIDATE) takes on the private pages [first, first + n)
 * of one 2 MiB region that are not in the NPT (upstream, snp_prefault=false): #NPF, VMEXIT,
 * kvm_mmu_page_fault() -> kvm_mmu_faultin_pfn(), which reads mmu_invalidate_seq, then
 * kvm_gmem_get_pfn() ([linux:virt/kvm/guest_memfd.c]): the folio is allocated and cleared on
 * first use and prepared once, kvm_gmem_prepare_folio() -> sev_gmem_prepare()
 * ([linux:arch/x86/kvm/svm/sev.c]) -> rmp_make_private() of the whole folio (a 2M entry when the
 * folio is 2M and its range is all shared: is_large_rmp_possible()); then mmu_lock for read, and
 * is_page_fault_stale() ([linux:arch/x86/kvm/mmu/mmu.c]): if an MMU-notifier invalidation ran
 * meanwhile the fault answers RET_PF_RETRY, the guest re-executes the access and faults again
 * (the folio is prepared by then); else the leaf is mapped and VMRUN. With 4K folios each 4K
 * page is its own fault; with 2M folios one fault maps the region at 2M. `perPage` false: the
 * faults of the range as one step (one mmu_lock read acquisition, one staleness check). Returns
 * the faults taken.
 */
export function* snp_npf(kvm: Kvm, first: number, n: number, perPage: boolean, link: number): Proc<number> {
  const region = Math.floor(first / PAGES_PER_2M);
  if (Math.floor((first + n - 1) / PAGES_PER_2M) !== region) assert(false, 'an NPF run stays inside one 2 MiB region', hex(first * 4096));
  if (kvm.gmem.folioPages === PAGES_PER_2M) {
    const r0 = region * PAGES_PER_2M;
    if (unmapped(kvm, r0, PAGES_PER_2M) === 0) return 0;
    yield* faultStep(kvm, first, r0, PAGES_PER_2M, 1, link);
    return 1;
  }
  if (perPage) {
    let faults = 0;
    for (let p = first; p < first + n; p++) {
      if (snpMappedPrivate(kvm, p)) continue;
      yield* faultStep(kvm, p, p, 1, 1, link);
      faults++;
    }
    return faults;
  }
  const m = unmapped(kvm, first, n);
  if (m === 0) return 0;
  yield* faultStep(kvm, first, first, n, m, link);
  return m;
}

/**
 * `faults` faults (4K each, or one 2M) that map [first, first + n), the faulting GPA `gpa`; when
 * aggregated, the pages of the range already mapped are skipped by the folio allocation and the
 * RMP update.
 */
function* faultStep(kvm: Kvm, gpa: number, first: number, n: number, faults: number, link: number): Proc<void> {
  const sim = kvm.sim;
  const sev = sevOf(kvm);
  const c = sev.costs;
  const start = sim.now;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('NPF', faults > 1 ? { gpa: hex(gpa * 4096), 'cvmsim.aggregated.count': faults } : { gpa: hex(gpa * 4096) }, link, 'kvm') : 0;
  yield sim.stallFor(faults * (c.vmExitNs + kvm.costs.faultNs));
  let seq = kvm.mmuInvalidateSeq;
  // kvm_gmem_get_pfn(): allocate and clear what is new, then prepare the folio(s).
  yield* kvm.gmem.getRange(first, n);
  const h = kvm.gmem.hostPage(first);
  const as2m = n === PAGES_PER_2M && kvm.gmem.folioPages === PAGES_PER_2M && sev.rmp.assigned.countRange(h, n) === 0;
  const assigned = yield* sev.host.rmp_make_private(h, n, sev.asid, as2m, first * 4096);
  if (as2m) sev.counters.rmpupdate2m++;
  else sev.counters.rmpupdate4k += assigned;
  for (;;) {
    yield kvm.mmuLock.acquire('shared');
    const stale = kvm.faultIsStale(seq, gpa);
    kvm.mmuLock.release('shared');
    if (!stale) break;
    // RET_PF_RETRY: back into the guest, which re-executes PVALIDATE and faults again.
    kvm.mmuNotifier.faultsRetried++;
    if (traced) sim.instant('RET_PF_RETRY', { gpa: hex(gpa * 4096), reason: 'mmu_invalidate_seq' });
    yield sim.stallFor(c.vmEntryNs + c.vmExitNs + kvm.costs.faultNs);
    seq = kvm.mmuInvalidateSeq;
  }
  yield sim.stallFor(faults * c.vmEntryNs);
  sev.counters.npfFaults += faults;
  kvm.exits.record('NPF', sim.now - start, faults);
  if (traced) sim.opEnd(id);
}
