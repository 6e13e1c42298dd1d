import type { Proc, Sim } from '../../../sim/index.ts';
import { SIZE_1G, hex } from '../../arch/units.ts';
import {
  OPERAND_ID_RDX, TDX_INVALID_TDMR, TDX_OPERAND_INVALID, TDX_PAMT_OUTSIDE_CMRS, TDX_SUCCESS, TDX_SYS_CONFIG_NOT_PENDING,
  TDX_TDMR_OUTSIDE_CMRS, withOperand,
} from '../arch.ts';
import { TDX_MODULE_SERVICE } from '../tdx_module.ts';
import type { TdmrEntry, TdxSys } from '../tdx_sys.ts';

const LEAF = 'TDH.SYS.CONFIG';

/** The TDMR array the kernel passes (tdmr_info without the module's progress fields). */
export type TdmrInfo = Omit<TdmrEntry, 'lastInitialized' | 'locked'>;

/**
 * TDH.SYS.CONFIG(TDMR array, count, global KeyID) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_config.c]).
 * Check: the module is past TDH.SYS.INIT and not configured yet (TDX_SYS_CONFIG_NOT_PENDING); at
 * most max TDMRs (TDX_OPERAND_INVALID on RDX); each TDMR 1 GiB aligned with at most the
 * maximum reserved areas, sorted and inside it (TDX_INVALID_TDMR); every available (not
 * reserved) area of a TDMR inside the CMRs (TDX_TDMR_OUTSIDE_CMRS); every PAMT inside the CMRs
 * (TDX_PAMT_OUTSIDE_CMRS). Commit: the table is copied in, with nothing initialised yet. A
 * fixed cost on the calling CPU. The status's detail carries the failing TDMR's index.
 */
export function* tdh_sys_config(sim: Sim, sys: TdxSys, tdmrs: readonly TdmrInfo[]): Proc<bigint> {
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin(LEAF, { tdmrs: tdmrs.length }, 0, TDX_MODULE_SERVICE) : 0;
  yield sim.stallFor(sys.costs.sysConfigNs);
  const status = sysConfigCheck(sys, tdmrs);
  if (status === TDX_SUCCESS) {
    sys.tdmrs = tdmrs.map((t) => ({ ...t, reserved: [...t.reserved], lastInitialized: t.base, locked: false }));
    sys.state = 'config_done';
  }
  if (traced) sim.opEnd(id, { status: hex(status) });
  return status;
}

function sysConfigCheck(sys: TdxSys, tdmrs: readonly TdmrInfo[]): bigint {
  if (sys.state !== 'sysinit_done') return TDX_SYS_CONFIG_NOT_PENDING;
  if (tdmrs.length === 0 || tdmrs.length > sys.sysinfo.maxTdmrs) return withOperand(TDX_OPERAND_INVALID, OPERAND_ID_RDX);
  for (let i = 0; i < tdmrs.length; i++) {
    const t = tdmrs[i]!;
    const detail = BigInt(i);
    if (t.base % SIZE_1G !== 0 || t.size % SIZE_1G !== 0 || t.size <= 0 || t.reserved.length > sys.sysinfo.maxReservedPerTdmr) return TDX_INVALID_TDMR | detail;
    let prev = 0;
    for (const r of t.reserved) {
      if (r.offset < prev || r.offset + r.size > t.size) return TDX_INVALID_TDMR | detail;
      // The available area before this reserved area must be convertible.
      if (r.offset > prev && !sys.inCmr(t.base + prev, t.base + r.offset)) return TDX_TDMR_OUTSIDE_CMRS | detail;
      prev = r.offset + r.size;
    }
    if (prev < t.size && !sys.inCmr(t.base + prev, t.base + t.size)) return TDX_TDMR_OUTSIDE_CMRS | detail;
    if (!sys.inCmr(t.pamtBase, t.pamtBase + t.pamtSize)) return TDX_PAMT_OUTSIDE_CMRS | detail;
  }
  return TDX_SUCCESS;
}
