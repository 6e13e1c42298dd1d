import type { Proc } from '../../sim/index.ts';
import { hex } from '../arch/units.ts';
import type { ConversionCosts } from '../kvm/conversion_costs.ts';
import type { Kvm } from '../kvm/kvm.ts';
import { kvm_mmu_notifier_invalidate_range_end, kvm_mmu_notifier_invalidate_range_start } from '../kvm/mmu_notifier.ts';
import type { SharedBacking } from './shared_backing.ts';

/**
 * QEMU's ram_block_discard_range() of the shared backing of [first, first + pages) on a
 * conversion to private ([qemu:accel/kvm/kvm-all.c kvm_convert_memory]), on the vCPU thread that
 * exited: madvise(MADV_DONTNEED) (anon) or fallocate(PUNCH_HOLE) (shmem). The host mm unmaps the
 * range, which fires KVM's MMU notifier: mmu_lock for write at invalidate_range_start (shared
 * leaves zapped) and again at invalidate_range_end (mmu_invalidate_seq moves on, so every private
 * fault in flight retries), even when nothing was populated or mapped: the accept path's PSC
 * reaches here with no shared page at all. Skipped for hugetlb ("supposed to be pre-allocated")
 * and in place (guest_memfd is the only backing). `shared` null: the VMM's anonymous RAM mapping
 * that nothing ever touched (runs that do not model conversions).
 */
export function* ram_block_discard_range(kvm: Kvm, shared: SharedBacking | null, costs: ConversionCosts, first: number, pages: number, link: number): Proc<void> {
  const sim = kvm.sim;
  if (shared !== null && (shared.kind === 'in_place' || shared.kind === 'hugetlb2m' || shared.kind === 'hugetlb1g')) {
    shared.discard(first, pages);
    return;
  }
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('ram_block_discard_range', { gpa: hex(first * 4096), size: pages * 4096 }, link, `vmm/${kvm.name}`) : 0;
  yield sim.stallFor(costs.discardBaseNs);
  const attrs = kvm.attrs;
  yield* kvm_mmu_notifier_invalidate_range_start(kvm, costs, first, pages, attrs === null ? null : (f, n) => attrs.zapShared(f, n));
  const freed = shared === null ? 0 : shared.discard(first, pages);
  if (freed > 0) yield sim.stallFor(freed * costs.discardPerPageNs);
  yield* kvm_mmu_notifier_invalidate_range_end(kvm, costs);
  if (traced) sim.opEnd(id);
}
