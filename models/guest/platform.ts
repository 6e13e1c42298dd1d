import type { Bandwidth, Proc } from '../../sim/index.ts';

/**
 * What the guest kernel needs from below it, as it calls it: arch_accept_memory() and an idle
 * vCPU's timer tick. The guest defines this contract and knows nothing of what implements it: a
 * VM on a host (models/vm/vm.ts: KVM, the VMM, the TDX module or the SNP firmware, host CPUs and
 * memory) or a test double.
 */

/** early: decompressor / before the GHCB is up (SNP uses the MSR protocol); runtime: afterwards. */
export type AcceptPhase = 'early' | 'runtime';

export interface GuestPlatform {
  readonly kind: 'tdx' | 'snp';
  /**
   * arch_accept_memory(start, end): accept guest-physical [start, end) (bytes, 4 KiB aligned)
   * on the calling vCPU thread, which owns `vcpus[vcpu]` (sim.current). VM exits keep the vCPU
   * busy (sim.stall / sim.compute on its CPU).
   */
  arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void>;
  /** A timer tick on an idle (HLT) vCPU: the exit to the host and the re-entry. */
  idle_tick_exit(vcpu: number): Proc<void>;
  /**
   * The tick re-arming the local APIC timer: WRMSR IA32_TSC_DEADLINE, which the TDX module and
   * SEV-ES/SNP hardware do not virtualise, so the guest's #VE / #VC handler turns it into an exit
   * to KVM (TDVMCALL<WRMSR>, or a GHCB MSR VMGEXIT). The host's part only: the guest's handler
   * is the guest's cost.
   */
  tsc_deadline_exit(vcpu: number): Proc<void>;
  /**
   * The memory bandwidth of the socket the guest's memory is on (shared with the host's clears
   * and zeroing), for the guest's own memory writes. Optional: a test double may leave it out.
   */
  readonly memoryBandwidth?: Bandwidth;
}

/**
 * What a guest that converts memory between private and shared needs from below it (optional:
 * a VM provides it once conversions are enabled, models/vm/vm.ts).
 */
export interface GuestConversionPlatform {
  /**
   * x86_platform.guest.enc_status_change_prepare/finish for [start, end) (bytes, 4K aligned) on
   * the calling vCPU: TDX MapGPA (and, to private, the re-accept); SNP PVALIDATE rescind + PSC
   * to shared, PSC + PVALIDATE to private. Returns false when the hypervisor refused.
   */
  enc_status_change(vcpu: number, start: number, end: number, enc: boolean): Proc<boolean>;
  /** The guest touches [start, end) as private or shared: shared pages fault into the EPT/NPT; every layer is checked. */
  touch(vcpu: number, start: number, end: number, shared: boolean): Proc<void>;
  /** The calling vCPU pays the time host kicks (remote TLB flushes, TDH.MEM.TRACK) took from it. */
  pay_kicks(vcpu: number): Proc<void>;
}
