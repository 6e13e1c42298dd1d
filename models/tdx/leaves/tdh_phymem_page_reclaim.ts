import type { Proc } from '../../../sim/index.ts';
import { SIZE_2M, hex } from '../../arch/units.ts';
import {
  OPERAND_ID_RCX, TDX_LIFECYCLE_STATE_INCORRECT, TDX_MISSING_PAMT_PAGE_PAIR, TDX_PAGE_METADATA_INCORRECT, TDX_PS_2M, TDX_PS_4K,
  TDX_SUCCESS, TDX_TD_ASSOCIATED_PAGES_EXIST, withOperand, type TdxPageLevel,
} from '../arch.ts';
import type { PamtWalk } from '../pamt.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.PHYMEM.PAGE.RECLAIM';

/** What RECLAIM answers: its status and, on success, R9's "can remove" hint (the node's count is 0). */
export interface ReclaimResult {
  status: bigint;
  canRemove: boolean;
}

/** Which page of the TD is reclaimed: its TDR (last), or a child page (control, S-EPT, private). */
export type ReclaimKind = 'tdr' | 'child';

/**
 * TDH.PHYMEM.PAGE.RECLAIM(hpa) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_phymem_page_reclaim.c]),
 * allowed only in TD teardown. Check-lock: walk the PAMT to the page's leaf exclusive (4K entry,
 * or the 2M entry of a 2M private page; TDX_OPERAND_BUSY); the entry must not be PT_NDA
 * (TDX_PAGE_METADATA_INCORRECT); the TDR shared and the TD in TD_TEARDOWN
 * (TDX_LIFECYCLE_STATE_INCORRECT); reclaiming the TDR needs TDR.CHLDCNT 0
 * (TDX_TD_ASSOCIATED_PAGES_EXIST). Commit: a child decrements CHLDCNT (512 for a 2M page); the
 * entry becomes PT_NDA and pamt_dec_nl_page_count_and_get_hint() returns the "can remove" hint
 * (Dynamic PAMT: the 2M node's count reached 0). Release.
 */
export function* tdh_phymem_page_reclaim(td: Td, hpa: number, level: TdxPageLevel, kind: ReclaimKind, link: number): Proc<ReclaimResult> {
  const module = td.module;
  const sim = module.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name, hpa: hex(hpa), level }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const walked = reclaimCheckLock(td, hpa, level, kind);
  let result: ReclaimResult;
  if (typeof walked === 'bigint') {
    result = { status: walked, canRemove: false };
    yield sim.stallFor(module.seamcallHalfNs);
  } else {
    yield sim.stallFor(module.costs.reclaimBodyNs + module.seamcallHalfNs);
    result = { status: TDX_SUCCESS, canRemove: reclaimCommit(td, hpa, level, kind) };
    module.pamt.unwalk(walked);
  }
  if (traced) sim.opEnd(id, { status: hex(result.status), can_remove: result.canRemove });
  return result;
}

/**
 * RECLAIM of `hpas` (4K child pages of one 2M host range) as one aggregated step: each
 * page's check-lock, commit and release at once (nothing else walks a TD's range in teardown),
 * their time charged by the caller. Returns the statuses' first failure or TDX_SUCCESS, and
 * whether the last commit gave the "can remove" hint.
 */
export function tdh_phymem_page_reclaim_run(td: Td, hpas: readonly number[]): ReclaimResult {
  let canRemove = false;
  for (const hpa of hpas) {
    const walked = reclaimCheckLock(td, hpa, TDX_PS_4K, 'child');
    if (typeof walked === 'bigint') return { status: walked, canRemove };
    canRemove = reclaimCommit(td, hpa, TDX_PS_4K, 'child');
    td.module.pamt.unwalk(walked);
  }
  return { status: TDX_SUCCESS, canRemove };
}

function reclaimCheckLock(td: Td, hpa: number, level: TdxPageLevel, kind: ReclaimKind): PamtWalk | bigint {
  const module = td.module;
  const pamt = module.pamt;
  const walk = level === TDX_PS_4K ? pamt.walk4k(hpa, 'exclusive') : pamt.walk2m(hpa, 'exclusive');
  // A 4K entry under a 2M range without a pair is PT_NDA by construction (dynamic).
  if (walk === TDX_MISSING_PAMT_PAGE_PAIR) return withOperand(TDX_PAGE_METADATA_INCORRECT, OPERAND_ID_RCX);
  if (typeof walk === 'bigint') return module.countPamtAnswer(walk, LEAF, hpa);
  const fail = (status: bigint): bigint => {
    pamt.unwalk(walk);
    return status;
  };
  if (level === TDX_PS_4K && !pamt.inUse(hpa)) return fail(withOperand(TDX_PAGE_METADATA_INCORRECT, OPERAND_ID_RCX));
  if (level === TDX_PS_2M && hpa % SIZE_2M !== 0) return fail(withOperand(TDX_PAGE_METADATA_INCORRECT, OPERAND_ID_RCX));
  if (td.lifecycle !== 'teardown') return fail(TDX_LIFECYCLE_STATE_INCORRECT);
  if (kind === 'tdr' && td.childPages !== 0) return fail(TDX_TD_ASSOCIATED_PAGES_EXIST);
  return walk;
}

/** The commit: CHLDCNT, the entry PT_NDA, the hint. A 2M page keeps no 4K entries in the model. */
function reclaimCommit(td: Td, hpa: number, level: TdxPageLevel, kind: ReclaimKind): boolean {
  if (kind === 'child') td.reclaimedChildren += level === TDX_PS_4K ? 1 : 512;
  else td.lifecycle = 'reclaimed';
  return level === TDX_PS_4K ? td.module.pamt.clearInUse(hpa) : false;
}
