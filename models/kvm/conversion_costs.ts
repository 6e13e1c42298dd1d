/**
 * KVM's and the VMM's costs on the conversion path, in ns. No source publishes them: each is
 * an ESTIMATE with its row in docs/sources.md section 8 ([estimate:set-memory-attributes-conversion],
 * [estimate:tdp-zap-leaf], [estimate:gmem-punch-hole], [estimate:host-page-fault]).
 */
export interface ConversionCosts {
  /**
   * KVM_SET_MEMORY_ATTRIBUTES that changes something: the ioctl and kvm_vm_set_mem_attributes()'s
   * fixed work (two kvm_handle_gfn_range() passes over the memslots, invalidate begin/end).
   * ESTIMATE 10 us [estimate:set-memory-attributes-conversion] (10-100 us per call for small
   * ranges): the low end, with the per-GFN work below on top.
   */
  setAttributesBaseNs: number;
  /** Per 4K: xa_reserve() and xa_store() of the attribute (two xarray operations). ESTIMATE 100 ns [estimate:set-memory-attributes-conversion]. */
  xaStorePerPageNs: number;
  /** Per 4K: kvm_range_has_memory_attributes()'s walk for the early return. ESTIMATE 10 ns [estimate:set-memory-attributes-conversion]. */
  xaWalkPerPageNs: number;
  /** Zap of one leaf SPTE (clear, mark the page dirty/accessed). ESTIMATE 50 ns [estimate:tdp-zap-leaf]. */
  zapLeafNs: number;
  /** kvm_arch_post_set_memory_attributes(): hugepage_set_mixed() recomputed per 2M. ESTIMATE 50 ns [estimate:tdp-zap-leaf]. */
  mixedPer2mNs: number;
  /**
   * fallocate(PUNCH_HOLE) on guest_memfd: the syscall, filemap_invalidate_lock, invalidate
   * begin/end. ESTIMATE 2 us base and 100 ns per folio truncated [estimate:gmem-punch-hole].
   */
  punchHoleBaseNs: number;
  punchHolePerFolioNs: number;
  /** madvise(MADV_DONTNEED) / fallocate(PUNCH_HOLE) of the shared backing: as the punch hole, [estimate:gmem-punch-hole]. */
  discardBaseNs: number;
  discardPerPageNs: number;
  /**
   * One mmu_lock write section of KVM's MMU notifier over a range with nothing mapped:
   * the memslot interval-tree lookup by host address, kvm_mmu_invalidate_begin() or _end(),
   * the TDP MMU walk of an empty range. ESTIMATE 200 ns [estimate:mmu-notifier-invalidate].
   */
  mmuNotifierNs: number;
  /**
   * A host page fault of the VMM's shared mapping reached through the guest's access (GUP from
   * KVM's fault path): the allocation and page-table update, before the page is cleared at the
   * host's clear rate. ESTIMATE 500 ns [estimate:host-page-fault].
   */
  hostFaultNs: number;
}

export const CONVERSION_COSTS: ConversionCosts = {
  setAttributesBaseNs: 10_000,
  xaStorePerPageNs: 100,
  xaWalkPerPageNs: 10,
  zapLeafNs: 50,
  mixedPer2mNs: 50,
  punchHoleBaseNs: 2_000,
  punchHolePerFolioNs: 100,
  discardBaseNs: 2_000,
  discardPerPageNs: 100,
  mmuNotifierNs: 200,
  hostFaultNs: 500,
};
