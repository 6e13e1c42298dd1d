import type { Proc } from '../../../sim/index.ts';
import { SIZE_2M, hex } from '../../arch/units.ts';
import { OPERAND_ID_SEPT_TREE, TDX_OPERAND_BUSY, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { SeptPageKind } from '../secure_ept.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

/**
 * TDH.MEM.SEPT.ADD: add the S-EPT page of `kind` above 2 MiB region `region` (a PT page under
 * its PD entry, the PD page of its 1 GiB, or the PDPT page of its 512 GiB); the module fills
 * the new page (fill_area_cacheline, 4 KiB). Same locks as AUG on the parent entry
 * ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_sept_add.c]).
 */
export function* tdh_mem_sept_add(td: Td, region: number, kind: SeptPageKind, link: number): Proc<bigint> {
  const sim = td.sim;
  const gpa = region * SIZE_2M;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('TDH.MEM.SEPT.ADD', { gpa: hex(gpa), page: kind }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(td.module.seamcallHalfNs);
  const mode = td.module.treeLockMode;
  let status: bigint;
  // Lock: the secure_ept_lock.
  if (td.secureEptLock.tryAcquire(mode, 'host') !== 'acquired') {
    status = td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), 'TDH.MEM.SEPT.ADD', gpa);
  } else {
    // Commit: fill the new page and link it; release.
    yield sim.stallFor(td.module.costs.septAddBodyNs);
    yield* td.zero(4096);
    td.commitSeptAdd(region, kind);
    td.secureEptLock.release(mode);
    status = TDX_SUCCESS;
  }
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}
