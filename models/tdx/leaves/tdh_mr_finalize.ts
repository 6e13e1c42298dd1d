import type { Proc } from '../../../sim/index.ts';
import { hex } from '../../arch/units.ts';
import { TDX_SUCCESS } from '../arch.ts';
import { withBuildingTdr } from './building_tdr.ts';
import type { Td } from '../td.ts';
import type { TdBuildCosts } from '../td_build_costs.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MR.FINALIZE';

/**
 * TDH.MR.FINALIZE(tdr) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mr_finalize.c]): end the
 * build. Check-lock: the TDR's PAMT entry EXCLUSIVE (TDX_OPERAND_BUSY); OP_STATE INITIALIZED
 * (TDX_OP_STATE_INCORRECT). Commit: MRTD finalised (SHA-384 final), OP_STATE RUNNABLE: from now
 * TDH.VP.ENTER may run and TDH.MEM.PAGE.ADD / TDH.MR.EXTEND answer TDX_OP_STATE_INCORRECT. Release.
 */
export function* tdh_mr_finalize(td: Td, costs: TdBuildCosts, tdrHpa: number, link: number): Proc<bigint> {
  const { module, sim } = td;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const status = yield* withBuildingTdr(td, tdrHpa, function* () {
    yield sim.stallFor(costs.mrFinalizeNs);
    td.opState = 'runnable';
    return TDX_SUCCESS;
  });
  yield sim.stallFor(module.seamcallHalfNs);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}
