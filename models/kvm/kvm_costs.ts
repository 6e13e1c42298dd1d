/**
 * Costs of KVM's own work on the exit paths, in ns. No source publishes them: each default is
 * an ESTIMATE with its entry in docs/sources.md (such as [estimate:userspace-exit]), a share of a
 * range that bounds it, with the reasoning.
 */
export interface KvmCosts {
  /**
   * KVM's own work on a private EPT-violation fault, without guest_memfd, SEAMCALLs and
   * clearing: tdx_handle_ept_violation() -> __vmx_handle_ept_violation() -> kvm_mmu_page_fault():
   * the memslot lookup, the memory-attribute check (kvm_mem_is_private(): an xarray load), the
   * mmu_invalidate_seq checks, kvm_tdp_mmu_map()'s walk of the mirror root and the SPTE freeze
   * and set ([linux:arch/x86/kvm/mmu/mmu.c], [linux:arch/x86/kvm/mmu/tdp_mmu.c]). ESTIMATE 300 ns
   * [estimate:kvm-private-fault].
   */
  faultNs: number;
  /**
   * guest_memfd's first use of a 4K index, besides the clear and the page-cache insert
   * ([linux:virt/kvm/guest_memfd.c] kvm_gmem_get_pfn() -> kvm_gmem_get_folio()): the file
   * reference, the bindings and page-cache lookups that miss, mpol_shared_policy_lookup(), the
   * folio allocation with that policy (the pcp lists), the memcg charge and the LRU add. ESTIMATE
   * 400 ns [estimate:gmem-folio].
   */
  gmemFolioNs: number;
  /**
   * __filemap_add_folio(): the xarray store of the new folio and the mapping's counters, under
   * the gmem inode's i_pages lock (xa_lock_irq: one per VM, exclusive). ESTIMATE 150 ns
   * [estimate:gmem-folio].
   */
  gmemInsertNs: number;
  /**
   * The host page allocator refilling a CPU's pcp list: rmqueue_bulk() of `pcp->batch` (63) pages
   * under zone->lock ([linux:mm/page_alloc.c]), once per 63 folios. ESTIMATE
   * [estimate:page-allocator]: 63 x 50 ns (__rmqueue_smallest per page) = 3150 ns held.
   */
  zoneRefillNs: number;
  /**
   * An idle vCPU's timer tick: KVM's HLT emulation, kvm_vcpu_halt(), the hrtimer expiry and
   * the wake-up of the halted vCPU thread, without the exit/entry transitions.
   * ESTIMATE 1 us [estimate:hlt-tick-host]: [cvm-eval-vmexit]'s #VE->TDVMCALL->KVM CPUID
   * 3.85 us minus the in-module round trip 0.65 us bounds a TDVMCALL exit to KVM at ~3.2 us, of
   * which the transitions take ~2.2 us ([estimate:td-exit-entry]); halting and waking adds a
   * schedule-out/in of the vCPU thread (order 1 us).
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
  faultNs: 300,
  gmemFolioNs: 400,
  gmemInsertNs: 150,
  zoneRefillNs: 3_150,
  hltNs: 1_000,
  msrNs: 1_000,
  userspaceExitNs: 5_000,
  setMemoryAttributesNs: 1_000,
  ipiNs: 2_000,
};
