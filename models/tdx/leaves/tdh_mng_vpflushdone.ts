import type { Proc } from '../../../sim/index.ts';
import { TDX_FLUSHVP_NOT_DONE, TDX_LIFECYCLE_STATE_INCORRECT, TDX_SUCCESS } from '../arch.ts';
import type { Td } from '../td.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';

const LEAF = 'TDH.MNG.VPFLUSHDONE';

/**
 * TDH.MNG.VPFLUSHDONE(tdr) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mng_vpflushdone.c]):
 * the first step of releasing a TD's HKID. Check-lock: the TDR exclusive and the KOT exclusive
 * (KVM serialises the callers with its tdx_lock mutex, so neither is found busy); the lifecycle
 * must be keys-configured (TDX_LIFECYCLE_STATE_INCORRECT); no vCPU may still be associated
 * (TDX_FLUSHVP_NOT_DONE: KVM flushed each with TDH.VP.FLUSH first, `associatedVcpus`).
 * Commit: the HKID's KOT entry becomes HKID_FLUSHED with one write-back bit per package; the TD
 * becomes TD_BLOCKED. Release.
 */
export function* tdh_mng_vpflushdone(td: Td, associatedVcpus: number, link: number): Proc<bigint> {
  const module = td.module;
  const sim = module.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { td: td.name, hkid: td.hkid }, link, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(module.seamcallHalfNs);
  let status: bigint = TDX_SUCCESS;
  if (td.lifecycle !== 'keys_configured') status = TDX_LIFECYCLE_STATE_INCORRECT;
  else if (associatedVcpus !== 0) status = TDX_FLUSHVP_NOT_DONE;
  yield sim.stallFor(module.costs.mngTeardownBodyNs + module.seamcallHalfNs);
  if (status === TDX_SUCCESS) {
    module.kot.set(td.hkid, { state: 'flushed', wbinvd: (1 << module.packages) - 1 });
    td.lifecycle = 'blocked';
  }
  if (traced) sim.opEnd(id, { status: `0x${status.toString(16)}` });
  return status;
}
