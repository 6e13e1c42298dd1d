import { assert } from '../../../sim/assert.ts';
import { hex } from '../../arch/units.ts';
import { OPERAND_ID_RCX, OPERAND_ID_SEPT_TREE, TDX_GPA_RANGE_NOT_BLOCKED, TDX_OPERAND_BUSY, TDX_SUCCESS, TDX_TLB_TRACKING_NOT_DONE, withOperand } from '../arch.ts';
import type { Td } from '../td.ts';

/**
 * TDH.MEM.PAGE.REMOVE(gpa, 4K) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_remove.c]):
 * lock: the page's PAMT entry exclusive, the secure_ept_lock exclusive; check: the leaf is
 * BLOCKED (TDX_GPA_RANGE_NOT_BLOCKED) and is_tlb_tracked(BEPOCH) (TDX_TLB_TRACKING_NOT_DONE:
 * a TDH.MEM.TRACK after the block and every vCPU out of the old epoch); commit: the S-EPT entry
 * FREE, the page's PAMT entry PT_NDA. Untimed; the caller charges the SEAMCALL. `hpa` is the
 * page's host address, for the PAMT.
 */
export function tdh_mem_page_remove(td: Td, page: number, hpa: number): bigint {
  const pamt = td.module.pamt;
  const walk = pamt.walk4k(hpa, 'exclusive');
  if (typeof walk === 'bigint') return td.module.countPamtAnswer(walk, 'TDH.MEM.PAGE.REMOVE', hpa);
  if (td.secureEptLock.tryAcquire('exclusive', 'host') !== 'acquired') {
    pamt.unwalk(walk);
    return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), 'TDH.MEM.PAGE.REMOVE', page * 4096);
  }
  const bepoch = td.blockedEpoch.get(page);
  let status = TDX_SUCCESS;
  if (bepoch === undefined) status = withOperand(TDX_GPA_RANGE_NOT_BLOCKED, OPERAND_ID_RCX);
  else if (!(bepoch < td.removal.drainedEpoch)) status = withOperand(TDX_TLB_TRACKING_NOT_DONE, OPERAND_ID_RCX);
  else {
    if (!pamt.inUse(hpa)) assert(false, 'TDH.MEM.PAGE.REMOVE of a page whose PAMT entry is PT_NDA', hex(hpa));
    td.blockedEpoch.delete(page);
    td.sept.aug4k.clearRange(page, 1);
    if (td.sept.accepted4k.clearRange(page, 1) === 1) td.removal.removedAccepted4k++;
    pamt.clearInUse(hpa);
    td.removal.removed4k++;
  }
  td.secureEptLock.release('exclusive');
  pamt.unwalk(walk);
  return status;
}
