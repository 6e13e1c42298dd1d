import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { hex } from '../arch/units.ts';
import { TDX_SUCCESS, tdxOperandBusy, tdxStatusName } from '../tdx/arch.ts';
import { tdh_mem_page_remove } from '../tdx/leaves/tdh_mem_page_remove.ts';
import { tdh_mem_range_block } from '../tdx/leaves/tdh_mem_range_block.ts';
import { tdh_mem_track, trackDrained } from '../tdx/leaves/tdh_mem_track.ts';
import { tdh_phymem_page_wbinvd } from '../tdx/leaves/tdh_phymem_page_wbinvd.ts';
import { TDX_MODULE_SERVICE } from '../tdx/tdx_module.ts';
import { TDX_REMOVAL_COSTS } from '../tdx/removal_costs.ts';
import type { Kvm } from './kvm.ts';
import type { KvmMemoryAttributes } from './memory_attributes.ts';
import { tdxOf } from './tdx_ept_violation.ts';

/**
 * The zap of the private leaves of [first, first + n) for a TD, under mmu_lock for write (the
 * caller holds it): for each 4K leaf, tdx_sept_remove_private_spte()
 * ([linux:arch/x86/kvm/vmx/tdx.c tdx_sept_remove_private_spte]): TDH.MEM.RANGE.BLOCK,
 * tdx_track() = TDH.MEM.TRACK and a kick of every vCPU out of the guest (waited for), then
 * TDH.MEM.PAGE.REMOVE, TDH.PHYMEM.PAGE.WBINVD, tdx_clear_page() (MOVDIR64B of 4 KiB) and, with
 * Dynamic PAMT, tdx_pamt_put(). A BUSY BLOCK or REMOVE (a fault holding the S-EPT) retries
 * after dropping and retaking mmu_lock (upstream stops vCPUs entering and retries). The
 * guest_memfd folio stays until the VMM punches the hole.
 */
export function* tdx_zap_private_range(kvm: Kvm, attrs: KvmMemoryAttributes, first: number, n: number): Proc<void> {
  const sim = kvm.sim;
  const tdx = tdxOf(kvm);
  const { td, module } = tdx;
  const c = module.costs;
  const rc = TDX_REMOVAL_COSTS;
  const traced = sim.observer !== null;
  for (let p = first; p < first + n; p++) {
    if (!td.sept.aug4k.test(p)) continue;
    const hpa = kvm.gmem.hostPage(p) * 4096;
    const id = traced ? sim.opBegin('tdx_sept_remove_private_spte', { gpa: hex(p * 4096), hpa: hex(hpa), size: 4096 }, 0, 'kvm') : 0;
    yield sim.stallFor(attrs.costs.zapLeafNs + c.seamcallNs + rc.blockBodyNs);
    let status = tdh_mem_range_block(td, p);
    while (tdxOperandBusy(status)) {
      kvm.mmuLock.release('exclusive');
      yield sim.stallFor(c.seamcallNs);
      yield kvm.mmuLock.acquire('exclusive');
      status = tdh_mem_range_block(td, p);
    }
    if (status !== TDX_SUCCESS) assert(false, `KVM_BUG_ON: TDH.MEM.RANGE.BLOCK failed with ${tdxStatusName(status)}`, hex(p * 4096));
    if (traced) sim.opSpan('TDH.MEM.RANGE.BLOCK', sim.now - c.seamcallNs - rc.blockBodyNs, sim.now, { gpa: hex(p * 4096) }, id, TDX_MODULE_SERVICE);
    yield sim.stallFor(c.seamcallNs + rc.trackBodyNs);
    tdh_mem_track(td);
    yield* attrs.kickAll('KVM_REQ_OUTSIDE_GUEST_MODE');
    trackDrained(td);
    yield sim.stallFor(c.seamcallNs + rc.removeBodyNs);
    status = tdh_mem_page_remove(td, p, hpa);
    while (tdxOperandBusy(status)) {
      yield sim.stallFor(c.seamcallNs + rc.removeBodyNs);
      status = tdh_mem_page_remove(td, p, hpa);
    }
    if (status !== TDX_SUCCESS) assert(false, `KVM_BUG_ON: TDH.MEM.PAGE.REMOVE failed with ${tdxStatusName(status)}`, hex(p * 4096));
    yield sim.stallFor(c.seamcallNs + rc.wbinvdBodyNs + module.zeroRate.nsPer4K);
    tdh_phymem_page_wbinvd(td, hpa);
    if (tdx.pamt?.refcounted === true) yield* tdx.pamt.put(hpa, 1);
    if (traced) sim.opEnd(id);
  }
}
