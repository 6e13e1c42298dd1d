import type { Attrs, Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import { TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, tdxOperandBusy, tdxStatusName, type TdxPageLevel } from '../tdx/arch.ts';
import { tdh_mem_page_aug } from '../tdx/leaves/tdh_mem_page_aug.ts';
import { tdh_mem_sept_add } from '../tdx/leaves/tdh_mem_sept_add.ts';
import { Region, UPPER_SEPT_PAGES } from '../tdx/secure_ept.ts';
import type { Kvm } from './kvm.ts';
import { MMU_LOCK_WORD } from './kvm_words.ts';
import type { KvmTdx } from './tdx.ts';

/** The TD state of a VM's KVM: every TDX exit path needs it. */
export function tdxOf(kvm: Kvm): KvmTdx {
  const tdx = kvm.tdx;
  if (tdx === null) return assert(false, 'a TDX exit on a VM that is not a TD', kvm.name) as never;
  return tdx;
}

/**
 * One EPT-violation TD exit caused by TDG.MEM.PAGE.ACCEPT on the calling vCPU, until the vCPU
 * is back in the guest: TD exit, tdx_handle_ept_violation() -> kvm_mmu_page_fault() (guest_memfd
 * folio on first use, cleared), mmu_lock for read, TDH.MEM.SEPT.ADD for missing S-EPT pages,
 * TDH.MEM.PAGE.AUG, read_unlock, TDH.VP.ENTER. A BUSY SEAMCALL makes the fault RET_PF_RETRY:
 * KVM retries locally or re-enters the guest (Kvm.retry). Returns after the re-entry. The vCPU
 * thread runs all of it on the host CPU it holds.
 */
export function* tdx_ept_violation_exit(kvm: Kvm, gpa: number, acceptLevel: TdxPageLevel, link: number): Proc<void> {
  const sim = kvm.sim;
  const { module } = tdxOf(kvm);
  const start = sim.now;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('tdx_handle_ept_violation', { gpa: hex(gpa), 'accept.level': acceptLevel }, link, 'kvm') : 0;
  let pendingNs = module.costs.tdExitNs;
  for (;;) {
    pendingNs += kvm.costs.faultNs;
    yield sim.stallFor(pendingNs);
    pendingNs = 0;
    const status = yield* tdx_private_fault(kvm, gpa, acceptLevel);
    // read_unlock(&kvm->mmu_lock) at the end of the fault: an atomic on its line.
    pendingNs = (status === KVM_SPTE_FROZEN ? 0 : module.seamcallHalfNs) + kvm.words.touch(MMU_LOCK_WORD);
    if (status === TDX_SUCCESS) break;
    // tdx_mem_page_aug()/tdx_sept_link_private_spt(): BUSY is -EBUSY -> RET_PF_RETRY, as is a
    // frozen SPTE; any other error is KVM_BUG_ON() in KVM, a bug in this model.
    if (status !== KVM_SPTE_FROZEN && !tdxOperandBusy(status)) assert(false, `KVM_BUG_ON: SEAMCALL failed with ${tdxStatusName(status)}`, hex(status));
    kvm.retries++;
    if (traced) sim.instant('RET_PF_RETRY', retryAttrs(gpa, status, kvm.retry));
    if (kvm.retry === 'reenter') break;
  }
  yield sim.stallFor(pendingNs + module.costs.tdEntryNs + tdxOf(kvm).td.enterWords());
  kvm.exits.record('EPT_VIOLATION', sim.now - start);
  if (traced) sim.opEnd(id);
}

/** The RET_PF_RETRY event: what made the fault retry, by name and, for a SEAMCALL, its status in hex. */
function retryAttrs(gpa: number, status: bigint, retry: string): Attrs {
  if (status === KVM_SPTE_FROZEN) return { gpa: hex(gpa), 'status.name': 'FROZEN_SPTE', retry };
  return { gpa: hex(gpa), status: hex(status), 'status.name': tdxStatusName(status), retry };
}

/**
 * Not a TDX status: an upper-level mirror SPTE was frozen by another vCPU's fault in flight
 * (its TDH.MEM.SEPT.ADD running), so tdp_mmu_link_sp() fails and the fault is RET_PF_RETRY.
 */
export const KVM_SPTE_FROZEN = -2n;

/**
 * The private-fault part of kvm_tdp_mmu_page_fault() for a TD: guest_memfd, then under
 * mmu_lock (read) the missing S-EPT pages top-down and the leaf. The state is read again before
 * each step, since other vCPUs fault concurrently. Returns the first failing SEAMCALL's status,
 * KVM_SPTE_FROZEN, or TDX_SUCCESS; one SEAMCALL exit transition is left for the caller.
 */
function* tdx_private_fault(kvm: Kvm, gpa: number, acceptLevel: TdxPageLevel): Proc<bigint> {
  const sim = kvm.sim;
  const tdx = tdxOf(kvm);
  const { td } = tdx;
  const sept = td.sept;
  const page = gpa / 4096;
  const region = sept.region(page);
  const level = mappingLevel(tdx, region, acceptLevel);
  // guest_memfd's first use of each index (folio, page-cache insert; kvm.gmemFolioNs()), the
  // clflush of the page(s) AUG will add (tdx_clflush_pfn()), and read_lock(&kvm->mmu_lock)'s atomic.
  const first = level === TDX_PS_4K ? page : region * PAGES_PER_2M;
  const pages = level === TDX_PS_4K ? 1 : PAGES_PER_2M;
  const folios = kvm.gmem.newFolios(first, pages);
  const hostNs = kvm.gmemFolioNs(folios) + pages * tdx.module.costs.clflushPageNs + kvm.words.touch(MMU_LOCK_WORD);
  if (hostNs > 0) yield sim.stallFor(hostNs);
  yield* kvm.gmem.getRange(first, pages);
  const cpu = sim.current?.cpu ?? null;
  tdx.pamtTopup(cpu);
  yield kvm.mmuLock.acquire('shared');
  let status = TDX_SUCCESS;
  let outNs = 0;
  for (const kind of UPPER_SEPT_PAGES) {
    if (!sept.pageMissing(region, kind, level)) continue;
    if (outNs > 0) yield sim.stallFor(outNs), (outNs = 0);
    if (!sept.pageMissing(region, kind, level)) continue;
    if (tdx.septPageFrozen(region, kind)) {
      status = KVM_SPTE_FROZEN;
      break;
    }
    tdx.freezeSeptPage(region, kind);
    const hpa = tdx.allocSeptPage();
    // tdh_mem_sept_add() flushes the new S-EPT page's lines first (tdx_clflush_page()).
    if (tdx.module.costs.clflushPageNs > 0) yield sim.stallFor(tdx.module.costs.clflushPageNs);
    status = yield* tdx.withPamt(hpa, 1, cpu, () => tdh_mem_sept_add(td, region, kind, hpa, 0));
    tdx.thawSeptPage(region, kind);
    if (status === TDX_SUCCESS) tdx.septPageAdded(hpa);
    else tdx.freeSeptPage(hpa);
    outNs = tdx.module.seamcallHalfNs;
    if (status !== TDX_SUCCESS) break;
  }
  if (status === TDX_SUCCESS) {
    if (outNs > 0) yield sim.stallFor(outNs);
    const leafGpa = level === TDX_PS_4K ? gpa : region * PAGES_PER_2M * 4096;
    const hpa = kvm.gmem.hostPage(leafGpa / 4096) * 4096;
    // Only 4K mappings need a PAMT page pair; a 2M leaf keeps its PAMT in the 2M entry.
    status = level === TDX_PS_4K
      ? yield* tdx.withPamt(hpa, 1, cpu, () => tdh_mem_page_aug(td, leafGpa, hpa, level, 0))
      : yield* tdh_mem_page_aug(td, leafGpa, hpa, level, 0);
  } else if (status === KVM_SPTE_FROZEN && outNs > 0) {
    yield sim.stallFor(outNs);
  }
  kvm.mmuLock.release('shared');
  return status;
}

/** The S-EPT level KVM maps a faulting GPA at (see SeptMapping). */
export function mappingLevel(tdx: KvmTdx, region: number, acceptLevel: TdxPageLevel): TdxPageLevel {
  if (tdx.sept === '2m' && acceptLevel === TDX_PS_2M && tdx.td.sept.regionState(region) === Region.Free) return TDX_PS_2M;
  return TDX_PS_4K;
}
