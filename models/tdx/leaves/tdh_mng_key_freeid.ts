import type { Proc } from '../../../sim/index.ts';
import { TDX_LIFECYCLE_STATE_INCORRECT, TDX_SUCCESS, TDX_WBCACHE_NOT_COMPLETE } from '../arch.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MNG.KEY.FREEID';

/**
 * TDH.MNG.KEY.FREEID(tdr) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mng_key_freeid.c]).
 * Check-lock: the TDR exclusive; the TD must be TD_BLOCKED (TDX_LIFECYCLE_STATE_INCORRECT); the
 * KOT exclusive (kept free by KVM's tdx_lock); every package's cache written back
 * (TDX_WBCACHE_NOT_COMPLETE). Commit: the HKID's KOT entry becomes HKID_FREE, the TD
 * TD_TEARDOWN (only now may TDH.PHYMEM.PAGE.RECLAIM take its pages). Release.
 */
export function* tdh_mng_key_freeid(td: Td, link: number): Proc<bigint> {
  const module = td.module;
  const sim = module.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name, hkid: td.hkid }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const kot = module.kot.get(td.hkid)!;
  let status: bigint = TDX_SUCCESS;
  if (td.lifecycle !== 'blocked') status = TDX_LIFECYCLE_STATE_INCORRECT;
  else if (kot.wbinvd !== 0) status = TDX_WBCACHE_NOT_COMPLETE;
  yield sim.stallFor(module.costs.mngTeardownBodyNs + module.seamcallHalfNs);
  if (status === TDX_SUCCESS) {
    kot.state = 'free';
    td.lifecycle = 'teardown';
  }
  if (traced) sim.opEnd(id, { status: `0x${status.toString(16)}` });
  return status;
}
