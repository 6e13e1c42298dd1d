import type { Proc, Sim } from '../../../sim/index.ts';
import { SIZE_1G, hex } from '../../arch/units.ts';
import { OPERAND_ID_RCX, TDX_OPERAND_BUSY, TDX_OPERAND_INVALID, TDX_SUCCESS, TDX_TDMR_ALREADY_INITIALIZED, withOperand } from '../arch.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';
import type { TdxSys } from '../tdx_sys.ts';

const LEAF = 'TDH.SYS.TDMR.INIT';

/**
 * TDH.SYS.TDMR.INIT(tdmr base) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_tdmr_init.c]).
 * Check-lock: the base is one of the configured TDMRs (TDX_OPERAND_INVALID); the TDMR entry's
 * mutex (TDX_OPERAND_BUSY if another CPU holds it); the TDMR not done already
 * (TDX_TDMR_ALREADY_INITIALIZED). Commit: initialise the next chunk of PAMT entries (1024 4K
 * entries, 4 MiB of TDMR, or 4096 with Dynamic PAMT) and advance last_initialized. Release.
 * Returns the status and RDX, the next-to-initialize address rounded down to 1 GiB (so the
 * kernel never uses a 1 GiB block that is only partly initialised).
 */
export function* tdh_sys_tdmr_init(sim: Sim, sys: TdxSys, base: number): Proc<{ status: bigint; next: number }> {
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { tdmr: hex(base) }, 0, TDX_MODULE_SERVICE) : 0;
  sys.counters.tdmrInitCalls++;
  const half = sys.costs.tdmrInitCallNs / 2;
  yield sim.stallFor(half);
  const t = sys.tdmrs.find((x) => x.base === base);
  let status: bigint = TDX_SUCCESS;
  let next = 0;
  if (t === undefined || sys.state !== 'key_config_done') {
    status = withOperand(TDX_OPERAND_INVALID, OPERAND_ID_RCX);
  } else if (t.locked) {
    sys.counters.tdmrInitBusy++;
    status = withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RCX);
  } else if (t.lastInitialized >= t.base + t.size) {
    status = TDX_TDMR_ALREADY_INITIALIZED;
  } else {
    t.locked = true;
    yield sim.stallFor(sys.costs.tdmrInitCallNs - half);
    const chunk = sys.dynamicPamt ? sys.costs.tdmrInitChunkDynamic : sys.costs.tdmrInitChunkStatic;
    t.lastInitialized = Math.min(t.base + t.size, t.lastInitialized + chunk);
    next = Math.floor(t.lastInitialized / SIZE_1G) * SIZE_1G;
    t.locked = false;
    if (sys.allTdmrsInitialised) sys.state = 'ready';
  }
  if (traced) sim.opEnd(id, { status: hex(status), next: hex(next) });
  return { status, next };
}
