import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { SIZE_2M, hex } from '../arch/units.ts';
import type { Kvm } from './kvm.ts';
import { tdxOf } from './tdx_ept_violation.ts';

/** KVM's chunk per userspace exit of a MapGPA: TDX_MAP_GPA_MAX_LEN ([linux:arch/x86/kvm/vmx/tdx.c]). */
export const TDX_MAP_GPA_MAX_LEN = SIZE_2M;

/** TDVMCALL status codes of MapGPA ([linux:arch/x86/include/asm/shared/tdx.h]). */
export const TDVMCALL_STATUS_SUCCESS = 0n;
export const TDVMCALL_STATUS_RETRY = 1n;

/** What the guest gets back from TDG.VP.VMCALL<MapGPA>: the status and, for RETRY, R11 = the next GPA. */
export interface MapGpaAnswer {
  status: bigint;
  next: number;
}

/**
 * TDG.VP.VMCALL<MapGPA>(gpa, size) from the calling vCPU, as KVM handles it (tdx_map_gpa(),
 * tdx_complete_vmcall_map_gpa()): the TD exit; then 2 MiB at a time (TDX_MAP_GPA_MAX_LEN) one
 * KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) to the VMM each, whose KVM_SET_MEMORY_ATTRIBUTES
 * and discard run on this vCPU thread; between chunks, if an interrupt is pending
 * (kvm_vcpu_has_events(): here the guest's timer, one every `timerPeriodNs`), KVM stops with
 * TDVMCALL_STATUS_RETRY and R11 = the next GPA; then TDH.VP.ENTER. Returns the guest's answer.
 */
export function* tdx_map_gpa(kvm: Kvm, gpa: number, bytes: number, toShared: boolean, timerPeriodNs: number, link: number): Proc<MapGpaAnswer> {
  const sim = kvm.sim;
  const c = tdxOf(kvm).module.costs;
  const userspace = kvm.userspace;
  if (userspace === null) return assert(false, 'MapGPA on a VM without a VMM', kvm.name) as never;
  if (gpa % 4096 !== 0 || bytes % 4096 !== 0 || bytes === 0) assert(false, 'MapGPA of an unaligned range (TDVMCALL_STATUS_INVALID_OPERAND)', { gpa: hex(gpa), bytes });
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('tdx_map_gpa', { gpa: hex(gpa), size: bytes, shared: toShared }, link, 'kvm') : 0;
  const start = sim.now;
  yield sim.stallFor(c.tdExitNs + kvm.costs.faultNs);
  const nextTick = timerPeriodNs > 0 ? (Math.floor(start / timerPeriodNs) + 1) * timerPeriodNs : Infinity;
  const end = gpa + bytes;
  let next = gpa;
  let status = TDVMCALL_STATUS_SUCCESS;
  while (next < end) {
    const size = Math.min(end - next, TDX_MAP_GPA_MAX_LEN);
    const t = sim.now;
    yield* userspace.map_gpa_range(next, size / 4096, !toShared, id);
    kvm.exits.record('KVM_EXIT_HYPERCALL', sim.now - t);
    next += size;
    if (next < end && sim.now >= nextTick) {
      status = TDVMCALL_STATUS_RETRY;
      if (traced) sim.instant('TDVMCALL_STATUS_RETRY', { r11: hex(next) });
      break;
    }
  }
  yield sim.stallFor(c.tdEntryNs);
  kvm.exits.record('TDVMCALL_MAP_GPA', sim.now - start);
  if (traced) sim.opEnd(id, { status: status === TDVMCALL_STATUS_RETRY ? 'TDVMCALL_STATUS_RETRY' : 'TDVMCALL_STATUS_SUCCESS' });
  return { status, next };
}
