import type { Proc } from '../../../sim/index.ts';
import { assert } from '../../../sim/assert.ts';
import { hex } from '../../arch/units.ts';
import {
  OPERAND_ID_RCX, OPERAND_ID_SEPT_TREE, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_BUSY, TDX_PAGE_METADATA_INCORRECT, TDX_PS_4K,
  TDX_SUCCESS, tdxStatusName, withOperand, type TdxPageLevel,
} from '../arch.ts';
import { Region } from '../secure_ept.ts';
import { SeptEntryLocks } from '../sept_entry_locks.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE, levelBytes } from '../tdx_module.ts';

const LEAF = 'TDH.MEM.PAGE.AUG';

/**
 * TDH.MEM.PAGE.AUG(gpa | level, hpa): add a PENDING page at host physical address `hpa` to the
 * TD's Secure EPT ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c]). Called by KVM on
 * the stalled vCPU thread. Charges the entry transition and the body; the caller charges
 * seamcallHalfNs for the exit transition (merged with its next stall).
 */
export function* tdh_mem_page_aug(td: Td, gpa: number, hpa: number, level: TdxPageLevel, link: number): Proc<bigint> {
  const sim = td.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { gpa: hex(gpa), hpa: hex(hpa), size: levelBytes(level), level }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(td.module.seamcallHalfNs);
  const status = yield* augWalked(td, gpa, hpa, level);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}

/**
 * Lock, first: the page's PAMT entry (check_and_lock_explicit_4k_private_hpa(): pamt_walk with
 * the 4K leaf exclusive; a 2M page locks its 2M entry exclusive). TDX_OPERAND_BUSY or, with
 * Dynamic PAMT and no page pair under the 2M range, TDX_MISSING_PAMT_PAGE_PAIR.
 */
function* augWalked(td: Td, gpa: number, hpa: number, level: TdxPageLevel): Proc<bigint> {
  const { module } = td;
  const pamt = module.pamt;
  const walk = level === TDX_PS_4K ? pamt.walk4k(hpa, 'exclusive') : pamt.walk2m(hpa, 'exclusive');
  if (typeof walk === 'bigint') return module.countPamtAnswer(walk, LEAF, hpa);
  // Check: the page's PAMT entry must be PT_NDA (a free page); KVM hands AUG a fresh folio.
  if (level === TDX_PS_4K && pamt.inUse(hpa)) assert(false, `${LEAF}(4K) of a page whose PAMT entry is in use: ${tdxStatusName(TDX_PAGE_METADATA_INCORRECT)}`, hex(hpa));
  if (level !== TDX_PS_4K && pamt.countOf(hpa) !== 0) assert(false, `${LEAF}(2M) over 4K PAMT entries in use`, hex(hpa));
  const status = yield* augLocked(td, gpa, hpa, level);
  if (status === TDX_SUCCESS && level === TDX_PS_4K) pamt.setInUse(hpa);
  pamt.unwalk(walk);
  return status;
}

function* augLocked(td: Td, gpa: number, hpa: number, level: TdxPageLevel): Proc<bigint> {
  const mode = td.module.treeLockMode;
  // Lock: the secure_ept_lock, then the target entry's host-side lock.
  const tree = td.secureEptLock.tryAcquire(mode, 'host');
  if (tree !== 'acquired') return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), LEAF, gpa);
  const page = gpa / 4096;
  const region = td.sept.region(page);
  const entry = level === TDX_PS_4K ? page : SeptEntryLocks.entry2m(region);
  if (td.entryLocks.acquireHost(entry) !== 'acquired') {
    td.secureEptLock.release(mode);
    return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RCX), LEAF, gpa);
  }
  // Check: sept_state_is_seamcall_leaf_allowed(TDH_MEM_PAGE_AUG): only a FREE leaf entry; KVM
  // never AUGs a mapped GPA (it would KVM_BUG_ON the error), so anything else is a model bug.
  const state = td.sept.regionState(region);
  if (level === TDX_PS_4K) {
    if (state !== Region.PageTable || td.sept.aug4k.test(page)) assert(false, `TDH.MEM.PAGE.AUG(4K) on a non-FREE entry: ${tdxStatusName(TDX_EPT_ENTRY_STATE_INCORRECT)}`, hex(gpa));
  } else if (state !== Region.Free) {
    assert(false, `TDH.MEM.PAGE.AUG(2M) on a non-FREE entry: ${tdxStatusName(TDX_EPT_ENTRY_STATE_INCORRECT)}`, hex(gpa));
  }
  // Commit: the leaf becomes PENDING. The TD-wide words and the page's 1G PAMT entry are atomics
  // on shared cache lines: a line another CPU wrote last is a transfer (Td.lockWords()).
  yield td.sim.stallFor(td.module.costs.augBodyNs + td.lockWords() + td.module.pamt1gTouch(hpa));
  if (level === TDX_PS_4K) {
    td.sept.aug4k.set(page);
    td.counters.augs4k++;
  } else {
    td.sept.regions[region] = Region.LeafPending;
    td.sept.leaves2m++;
    td.counters.augs2m++;
  }
  // Release, in reverse order: TDR.CHLDCNT's atomic add, then the lock words.
  const released = td.releaseWords();
  if (released > 0) yield td.sim.stallFor(released);
  td.entryLocks.release(entry, 'host');
  td.secureEptLock.release(mode);
  return TDX_SUCCESS;
}
