import { OPERAND_ID_TD_EPOCH, TDX_OPERAND_BUSY, TDX_SUCCESS, withOperand } from '../arch.ts';
import type { Td } from '../td.ts';

/**
 * TDH.MEM.TRACK ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_track.c]): increments the TD
 * epoch under the epoch lock (exclusive; BUSY if another TRACK holds it, never in this model
 * since KVM serialises removals under mmu_lock for write). The epoch counts as drained once KVM
 * has kicked every vCPU out of the guest (tdx_track(): KVM_REQ_OUTSIDE_GUEST_MODE, waited for),
 * which trackDrained() records.
 */
export function tdh_mem_track(td: Td, epochLockHeld = false): bigint {
  if (epochLockHeld) return td.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_TD_EPOCH), 'TDH.MEM.TRACK', 0);
  td.removal.epoch++;
  td.removal.tracks++;
  return TDX_SUCCESS;
}

/** Every vCPU has left the guest since the last TDH.MEM.TRACK: blocked leaves up to it are tracked. */
export function trackDrained(td: Td): void {
  td.removal.drainedEpoch = td.removal.epoch;
}
