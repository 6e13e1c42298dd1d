/**
 * Costs of KVM's own work on the exit paths, in ns. No source publishes them: each default is
 * an ESTIMATE with its entry in docs/sources.md (such as [estimate:userspace-exit]), a share of a
 * range that bounds it, with the reasoning.
 */
export interface KvmCosts {
  /**
   * kvm_mmu_page_fault() for a private GPA, without SEAMCALLs/RMPUPDATE and without clearing:
   * TDP MMU walk, SPTE freeze/set, guest_memfd lookup and folio allocation.
   * [estimate:vm-exit-round-trip] (0.5-2 us) bounds a whole exit including its fault handling;
   * ESTIMATE 150 ns of it for the fault path, with the TD exit and entry
   * (models/tdx/tdx_costs.ts) taking the rest of the 0.5 us low end.
   */
  faultNs: number;
  /**
   * An idle vCPU's timer tick: KVM's HLT emulation, kvm_vcpu_halt(), the hrtimer expiry and
   * the wake-up of the halted vCPU thread, without the exit/entry transitions.
   * ESTIMATE 1 us [estimate:hlt-tick-host]: [cvm-eval-vmexit]'s #VE->TDVMCALL->KVM CPUID
   * 3.85 us minus the in-module round trip 0.65 us bounds a TDVMCALL exit to KVM at ~3.2 us;
   * halting and waking adds a schedule-out/in of the vCPU thread (order 1 us).
   */
  hltNs: number;
  /**
   * KVM's emulation of a guest WRMSR to IA32_TSC_DEADLINE (kvm_set_lapic_tscdeadline_msr():
   * cancel and restart the vCPU's APIC-timer hrtimer), without the exit/entry transitions.
   * ESTIMATE 1 us [estimate:tsc-deadline-msr].
   */
  msrNs: number;
  /**
   * An exit to the VMM in userspace (KVM_EXIT_HYPERCALL with KVM_HC_MAP_GPA_RANGE and the
   * ioctl return). ESTIMATE [estimate:userspace-exit] (5-20 us): low end, 5 us.
   */
  userspaceExitNs: number;
  /**
   * The VMM's KVM_SET_MEMORY_ATTRIBUTES for a range that is already private (acceptance converts
   * nothing): kvm_vm_set_mem_attributes() takes kvm->slots_lock and returns once
   * kvm_range_has_memory_attributes() finds nothing to change. ESTIMATE 1 us
   * [estimate:set-memory-attributes-unchanged]: one more ioctl (two extra kernel/user
   * transitions) and an xarray walk; the 10-100 us of [estimate:set-memory-attributes-conversion]
   * are for real conversions (zap, TLB flush), which acceptance does not do. Held under slots_lock.
   */
  setMemoryAttributesNs: number;
  /**
   * smp_call_function_single() with wait: an IPI to another host CPU, the remote handler's entry
   * and exit, and the caller's wait for its completion (tdx_flush_vp_on_cpu() runs TDH.VP.FLUSH
   * on the vCPU's previous CPU this way). ESTIMATE 2 us [estimate:ipi]: the order of a
   * lightweight exit round trip ([estimate:vm-exit-round-trip], 0.5-2 us), high end, for two
   * CPUs' interrupt entry and exit.
   */
  ipiNs: number;
}

export const KVM_COSTS: KvmCosts = {
  faultNs: 150,
  hltNs: 1_000,
  msrNs: 1_000,
  userspaceExitNs: 5_000,
  setMemoryAttributesNs: 1_000,
  ipiNs: 2_000,
};
