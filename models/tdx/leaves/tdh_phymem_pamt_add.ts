import type { Proc } from '../../../sim/index.ts';
import { hex } from '../../arch/units.ts';
import { OPERAND_ID_R8, OPERAND_ID_RCX, OPERAND_ID_RDX, TDX_HPA_RANGE_NOT_FREE, TDX_PAGE_NOT_FREE, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { PamtWalk } from '../pamt.ts';
import { TDX_MODULE_SERVICE, type TdxModule } from '../tdx_module.ts';

const LEAF = 'TDH.PHYMEM.PAMT.ADD';

/**
 * TDH.PHYMEM.PAMT.ADD(hpa | 2M, page0, page1) (leaf 58; tdx-module
 * src/vmm_dispatcher/api_calls/tdh_phymem_pamt_add.c): give the module a page pair holding the
 * PAMT_4K entries of one 2M range. Check-lock: walk to the 2M entry exclusive (TDX_OPERAND_BUSY);
 * the entry must be PT_NDA (TDX_HPA_RANGE_NOT_FREE: someone added a pair already); the two pages
 * must be free (TDX_PAGE_NOT_FREE: a TD page or a DPAMT page). Commit: set their bitmap bits,
 * zero them, the entry becomes a PT_PAMT node with count 0. Release. Timed on the calling CPU.
 */
export function* tdh_phymem_pamt_add(module: TdxModule, hpa2m: number, page0: number, page1: number, link: number): Proc<bigint> {
  const sim = module.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { hpa: hex(hpa2m), page0: hex(page0), page1: hex(page1) }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const walked = pamtAddCheckLock(module, hpa2m, page0, page1);
  let status: bigint;
  if (typeof walked === 'bigint') {
    status = walked;
  } else {
    yield sim.stallFor(module.costs.pamtAddBodyNs);
    module.pamt.commitPairAdd(hpa2m, page0, page1);
    module.pamt.unwalk(walked);
    status = TDX_SUCCESS;
  }
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}

/** The leaf without time (module build and tests): check-lock, commit, release at once. */
export function tdh_phymem_pamt_add_now(module: TdxModule, hpa2m: number, page0: number, page1: number): bigint {
  const walked = pamtAddCheckLock(module, hpa2m, page0, page1);
  if (typeof walked === 'bigint') return walked;
  module.pamt.commitPairAdd(hpa2m, page0, page1);
  module.pamt.unwalk(walked);
  return TDX_SUCCESS;
}

/** Check and lock: the 2M entry exclusive, PT_NDA; both pages free. Nothing held on failure. */
function pamtAddCheckLock(module: TdxModule, hpa2m: number, page0: number, page1: number): PamtWalk | bigint {
  const pamt = module.pamt;
  const walk = pamt.walk2m(hpa2m, 'exclusive');
  if (typeof walk === 'bigint') return module.countPamtAnswer(walk, LEAF, hpa2m);
  if (pamt.hasPair(hpa2m)) {
    pamt.unwalk(walk);
    return withOperand(TDX_HPA_RANGE_NOT_FREE, OPERAND_ID_RCX);
  }
  for (const [page, operand] of [[page0, OPERAND_ID_RDX], [page1, OPERAND_ID_R8]] as const) {
    if (pamt.inUse(page) || pamt.isPamtPage(page)) {
      pamt.unwalk(walk);
      return withOperand(TDX_PAGE_NOT_FREE, operand);
    }
  }
  return walk;
}
