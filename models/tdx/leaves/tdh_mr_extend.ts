import type { Proc } from '../../../sim/index.ts';
import { hex } from '../../arch/units.ts';
import { OPERAND_ID_RDX, TDX_OPERAND_BUSY, TDX_OP_STATE_INCORRECT, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { Td } from '../td.ts';
import type { TdBuildCosts } from '../td_build_costs.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MR.EXTEND';

/**
 * TDH.MR.EXTEND(gpa, tdr) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mr_extend.c]): measure
 * 256 bytes of an added page into MRTD. Check-lock: the TDR's PAMT entry EXCLUSIVE
 * (TDX_OPERAND_BUSY with the TDR as operand); OP_STATE before TDH.MR.FINALIZE
 * (TDX_OP_STATE_INCORRECT); the GPA's S-EPT leaf MAPPED (the page was added). Commit: three
 * 128-byte SHA-384 blocks (one header with "MR.EXTEND" and the GPA, two of page data) with the
 * YMM state saved around them. Release.
 */
export function* tdh_mr_extend(td: Td, costs: TdBuildCosts, tdrHpa: number, gpa: number, link: number): Proc<bigint> {
  const { module, sim } = td;
  const pamt = module.pamt;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name, gpa: hex(gpa) }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  let status: bigint = TDX_SUCCESS;
  const tdr = pamt.walk4k(tdrHpa, 'exclusive');
  if (typeof tdr === 'bigint') {
    status = withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RDX);
  } else {
    if (td.opState !== 'initialized') status = TDX_OP_STATE_INCORRECT;
    else {
      yield sim.stallFor(costs.mrExtendBodyNs + 3 * costs.sha384BlockNs);
      td.image.chunksMeasured++;
    }
    pamt.unwalk(tdr);
  }
  yield sim.stallFor(module.seamcallHalfNs);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}
