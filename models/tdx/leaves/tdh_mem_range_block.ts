import { assert } from '../../../sim/assert.ts';
import { hex } from '../../arch/units.ts';
import { OPERAND_ID_RCX, OPERAND_ID_SEPT_TREE, TDX_GPA_RANGE_ALREADY_BLOCKED, TDX_OPERAND_BUSY, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { Td } from '../td.ts';

/**
 * TDH.MEM.RANGE.BLOCK(gpa, 4K) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_range_block.c]):
 * the 4K leaf stops translating (new TLB entries cannot be made) and records the TD epoch in its
 * PAMT entry (BEPOCH), so TDH.MEM.PAGE.REMOVE can later check that TDH.MEM.TRACK has moved every
 * vCPU past it. Lock: secure_ept_lock exclusive (BUSY otherwise), then the entry's host lock.
 * Check: a MAPPED or PENDING 4K leaf (KVM never blocks anything else). Commit: BLOCKED. Untimed
 * here: the caller charges the SEAMCALL (models/kvm/tdx_remove_private.ts).
 */
export function tdh_mem_range_block(td: Td, page: number): bigint {
  if (td.secureEptLock.tryAcquire('exclusive', 'host') !== 'acquired') return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), 'TDH.MEM.RANGE.BLOCK', page * 4096);
  if (td.entryLocks.acquireHost(page) !== 'acquired') {
    td.secureEptLock.release('exclusive');
    return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RCX), 'TDH.MEM.RANGE.BLOCK', page * 4096);
  }
  let status = TDX_SUCCESS;
  if (td.blockedEpoch.has(page)) status = TDX_GPA_RANGE_ALREADY_BLOCKED;
  else {
    if (!td.sept.aug4k.test(page)) assert(false, 'TDH.MEM.RANGE.BLOCK of a GPA with no 4K leaf (KVM blocks only mapped leaves)', hex(page * 4096));
    td.blockedEpoch.set(page, td.removal.epoch);
    td.removal.blocks++;
  }
  td.entryLocks.release(page, 'host');
  td.secureEptLock.release('exclusive');
  return status;
}
