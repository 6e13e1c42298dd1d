import type { Proc } from '../../../sim/index.ts';
import { assert } from '../../../sim/assert.ts';
import { TDX_NO_HKID_READY_TO_WBCACHE, TDX_SUCCESS } from '../arch.ts';
import { TDX_MODULE_SERVICE, type TdxModule } from '../tdx_module.ts';

const LEAF = 'TDH.PHYMEM.CACHE.WB';

/**
 * TDH.PHYMEM.CACHE.WB(start) on a CPU of `pkg`
 * ([tdx-module:src/vmm_dispatcher/api_calls/tdh_phymem_cache_wb.c]). Check-lock: the package's
 * WBT mutex and the KOT shared (KVM's tdx_lock keeps both free); the HKIDs in state
 * HKID_FLUSHED are the ones this write-back serves (none: TDX_NO_HKID_READY_TO_WBCACHE, which KVM
 * takes as done). Body: WBNOINVD of every cache sub-block of the package (`cacheWbNs`; the
 * module would stop with TDX_INTERRUPTED_RESUMABLE on a pending interrupt and KVM resume it:
 * not modelled, the write-back is charged whole). Commit: the package's bit cleared in every
 * served HKID's write-back bitmap. Release.
 */
export function* tdh_phymem_cache_wb(module: TdxModule, pkg: number, link: number): Proc<bigint> {
  const sim = module.sim;
  assert(pkg >= 0 && pkg < module.packages, 'TDH.PHYMEM.CACHE.WB on a package the host does not have', { pkg, packages: module.packages });
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { pkg }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  const served: number[] = [];
  for (const [hkid, k] of [...module.kot].sort(([a], [b]) => a - b)) if (k.state === 'flushed') served.push(hkid);
  let status: bigint = TDX_NO_HKID_READY_TO_WBCACHE;
  if (served.length > 0) {
    yield sim.stallFor(module.costs.cacheWbNs);
    for (const hkid of served) {
      const k = module.kot.get(hkid)!;
      k.wbinvd &= ~(1 << pkg);
    }
    status = TDX_SUCCESS;
  }
  yield sim.stallFor(module.seamcallHalfNs);
  if (traced) sim.opEnd(id, { status: `0x${status.toString(16)}`, hkids: served.length });
  return status;
}
