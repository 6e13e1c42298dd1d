import type { Proc } from '../../../sim/index.ts';
import { hex } from '../../arch/units.ts';
import { TDX_SUCCESS } from '../arch.ts';
import { withBuildingTdr } from './building_tdr.ts';
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
 *
 * `chunks` > 1: that many consecutive calls (the 256-byte chunks of one page, KVM's loop) as one
 * timed step, the TDR taken once: nothing else runs on a TD being built, so the calls cannot
 * interleave with another actor (the aggregated fidelity; per-page runs each call alone).
 */
export function* tdh_mr_extend(td: Td, costs: TdBuildCosts, tdrHpa: number, gpa: number, link: number, chunks = 1): Proc<bigint> {
  const { module, sim } = td;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, chunks === 1 ? { td: td.name, gpa: hex(gpa) } : { td: td.name, gpa: hex(gpa), size: chunks * 256, 'size.each': 256, 'cvmsim.aggregated.count': chunks }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(chunks * module.seamcallHalfNs);
  const status = yield* withBuildingTdr(td, tdrHpa, function* () {
    yield sim.stallFor(chunks * (costs.mrExtendBodyNs + 3 * costs.sha384BlockNs));
    td.image.chunksMeasured += chunks;
    return TDX_SUCCESS;
  });
  yield sim.stallFor(chunks * module.seamcallHalfNs);
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}
