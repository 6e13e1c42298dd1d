import type { Proc } from '../../../sim/index.ts';
import { assert } from '../../../sim/assert.ts';
import { hex } from '../../arch/units.ts';
import { TDX_SUCCESS } from '../arch.ts';
import { withBuildingTdr } from './building_tdr.ts';
import type { Td } from '../td.ts';
import type { TdBuildCosts } from '../td_build_costs.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MEM.PAGE.ADD';

/**
 * TDH.MEM.PAGE.ADD(gpa, tdr, hpa, source) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_add.c]):
 * add a page of the TD's initial image. Check-lock: the TDR's PAMT entry EXCLUSIVE (which
 * implicitly locks the S-EPT tree: one build SEAMCALL of a TD at a time; TDX_OPERAND_BUSY with
 * the TDR as operand otherwise); TDCS.OP_STATE must allow it, i.e. before TDH.MR.FINALIZE
 * (TDX_OP_STATE_INCORRECT); the new page's PAMT entry exclusive and PT_NDA (TDX_OPERAND_BUSY, or
 * TDX_MISSING_PAMT_PAGE_PAIR with Dynamic PAMT). Commit: copy the source page with the TD's key
 * (MOVDIR64B, 4 KiB), map the S-EPT leaf MAPPED, one SHA-384 block ("MEM.PAGE.ADD" and the GPA)
 * into MRTD, TDR.CHLDCNT++, the page PT_REG. Release. The S-EPT walk itself is not modelled (the
 * image is outside guest RAM, whose S-EPT the model keeps).
 */
export function* tdh_mem_page_add(td: Td, costs: TdBuildCosts, tdrHpa: number, gpa: number, hpa: number, link: number): Proc<bigint> {
  const { module, sim } = td;
  const pamt = module.pamt;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name, gpa: hex(gpa), hpa: hex(hpa) }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const status = yield* withBuildingTdr(td, tdrHpa, function* () {
    // Check-lock: the new page's PAMT entry.
    const page = pamt.walk4k(hpa, 'exclusive');
    if (typeof page === 'bigint') return module.countPamtAnswer(page, LEAF, hpa);
    if (pamt.inUse(hpa)) assert(false, `${LEAF} of a page whose PAMT entry is in use`, hex(hpa));
    // Commit.
    yield sim.stallFor(costs.pageAddBodyNs + costs.sha384BlockNs);
    yield* td.zero(4096);
    pamt.setInUse(hpa);
    td.image.hpas.push(hpa);
    // Release.
    pamt.unwalk(page);
    return TDX_SUCCESS;
  });
  yield sim.stallFor(module.seamcallHalfNs);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}
