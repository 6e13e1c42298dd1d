import type { Proc } from '../../../sim/index.ts';
import { OPERAND_ID_RDX, TDX_OPERAND_BUSY, TDX_OP_STATE_INCORRECT, withOperand } from '../arch.ts';
import type { Td } from '../td.ts';

/**
 * The check-lock every SEAMCALL that builds a TD's initial image starts with (TDH.MEM.PAGE.ADD,
 * TDH.MR.EXTEND, TDH.MR.FINALIZE): the TDR's PAMT entry EXCLUSIVE (TDX_OPERAND_BUSY with the TDR
 * as operand), then TDCS.OP_STATE INITIALIZED, i.e. before TDH.MR.FINALIZE
 * (TDX_OP_STATE_INCORRECT). `body` is the rest of the leaf (its own check-lock and commit), run
 * with the TDR held; the TDR is released after it.
 */
export function* withBuildingTdr(td: Td, tdrHpa: number, body: () => Proc<bigint>): Proc<bigint> {
  const pamt = td.module.pamt;
  const tdr = pamt.walk4k(tdrHpa, 'exclusive');
  if (typeof tdr === 'bigint') return withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RDX);
  const status = td.opState !== 'initialized' ? TDX_OP_STATE_INCORRECT : yield* body();
  pamt.unwalk(tdr);
  return status;
}
