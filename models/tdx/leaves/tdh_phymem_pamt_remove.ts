import type { Proc } from '../../../sim/index.ts';
import { hex } from '../../arch/units.ts';
import { OPERAND_ID_RCX, TDX_NO_PAMT_PAGE_PAIR, TDX_PAMT_PAGE_NOT_EMPTY, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { PamtWalk } from '../pamt.ts';
import { TDX_MODULE_SERVICE, type TdxModule } from '../tdx_module.ts';

const LEAF = 'TDH.PHYMEM.PAMT.REMOVE';

/** What PAMT.REMOVE answers: its status and, on success, the pair's pages (RDX, R8). */
export interface PamtRemoveResult {
  status: bigint;
  pages: [number, number] | null;
}

/**
 * TDH.PHYMEM.PAMT.REMOVE(hpa | 2M) (leaf 59; tdx-module
 * src/vmm_dispatcher/api_calls/tdh_phymem_pamt_remove.c): take back the page pair of a 2M range.
 * Check-lock: walk to the 2M entry exclusive (TDX_OPERAND_BUSY); it must be a PT_PAMT node
 * (TDX_NO_PAMT_PAGE_PAIR); all 512 of its 4K entries PT_NDA (TDX_PAMT_PAGE_NOT_EMPTY). Commit:
 * clear the pages' bitmap bits, the entry becomes PT_NDA, the pages are returned. Release.
 */
export function* tdh_phymem_pamt_remove(module: TdxModule, hpa2m: number, link: number): Proc<PamtRemoveResult> {
  const sim = module.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { hpa: hex(hpa2m) }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const walked = pamtRemoveCheckLock(module, hpa2m);
  let result: PamtRemoveResult;
  if (typeof walked === 'bigint') {
    result = { status: walked, pages: null };
  } else {
    yield sim.stallFor(module.costs.pamtRemoveBodyNs);
    const pages = module.pamt.commitPairRemove(hpa2m);
    module.pamt.unwalk(walked);
    result = { status: TDX_SUCCESS, pages };
  }
  if (traced) sim.opEnd(id, { status: hex(result.status) });
  return result;
}

function pamtRemoveCheckLock(module: TdxModule, hpa2m: number): PamtWalk | bigint {
  const pamt = module.pamt;
  const walk = pamt.walk2m(hpa2m, 'exclusive');
  if (typeof walk === 'bigint') return module.countPamtAnswer(walk, LEAF, hpa2m);
  if (!pamt.hasPair(hpa2m) || pamt.mode !== 'dynamic') {
    pamt.unwalk(walk);
    return withOperand(TDX_NO_PAMT_PAGE_PAIR, OPERAND_ID_RCX);
  }
  if (pamt.countOf(hpa2m) !== 0) {
    pamt.unwalk(walk);
    return withOperand(TDX_PAMT_PAGE_NOT_EMPTY, OPERAND_ID_RCX);
  }
  return walk;
}
