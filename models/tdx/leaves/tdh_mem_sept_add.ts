import type { Proc } from '../../../sim/index.ts';
import { assert } from '../../../sim/assert.ts';
import { SIZE_2M, hex } from '../../arch/units.ts';
import { OPERAND_ID_SEPT_TREE, TDX_OPERAND_BUSY, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { SeptPageKind } from '../secure_ept.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MEM.SEPT.ADD';

/**
 * TDH.MEM.SEPT.ADD(gpa | level, hpa): add the S-EPT page at host physical address `hpa` as the
 * page of `kind` above 2 MiB region `region` (a PT page under its PD entry, the PD page of its
 * 1 GiB, or the PDPT page of its 512 GiB); the module fills the new page (fill_area_cacheline,
 * 4 KiB). Locks: the new page's PAMT entry (pamt_walk, 4K leaf exclusive: TDX_OPERAND_BUSY, or
 * TDX_MISSING_PAMT_PAGE_PAIR with Dynamic PAMT and no pair), then the secure_ept_lock as AUG
 * ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_sept_add.c]).
 */
export function* tdh_mem_sept_add(td: Td, region: number, kind: SeptPageKind, hpa: number, link: number): Proc<bigint> {
  const sim = td.sim;
  const gpa = region * SIZE_2M;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { gpa: hex(gpa), hpa: hex(hpa), page: kind }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(td.module.seamcallHalfNs);
  const status = yield* septAddWalked(td, region, kind, hpa);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}

function* septAddWalked(td: Td, region: number, kind: SeptPageKind, hpa: number): Proc<bigint> {
  const { module, sim } = td;
  const pamt = module.pamt;
  const gpa = region * SIZE_2M;
  // Lock: the new page's PAMT entry; check it is a free page.
  const walk = pamt.walk4k(hpa, 'exclusive');
  if (typeof walk === 'bigint') return module.countPamtAnswer(walk, LEAF, hpa);
  if (pamt.inUse(hpa)) assert(false, `${LEAF} of a page whose PAMT entry is in use`, hex(hpa));
  const mode = module.treeLockMode;
  let status: bigint;
  // Lock: the secure_ept_lock.
  if (td.secureEptLock.tryAcquire(mode, 'host') !== 'acquired') {
    status = td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), LEAF, gpa);
  } else {
    // Commit: fill the new page and link it; the page becomes a TD page in the PAMT; release.
    // The TD-wide words and the page's 1G PAMT entry are atomics on shared lines (Td.lockWords()).
    yield sim.stallFor(module.costs.septAddBodyNs + td.lockWords() + module.pamt1gTouch(hpa));
    yield* td.zero(4096);
    td.commitSeptAdd(region, kind);
    pamt.setInUse(hpa);
    const released = td.releaseWords();
    if (released > 0) yield sim.stallFor(released);
    td.secureEptLock.release(mode);
    status = TDX_SUCCESS;
  }
  pamt.unwalk(walk);
  return status;
}
