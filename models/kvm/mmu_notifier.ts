import { countMetric, measureMetric, type MetricSpecs, type Proc } from '../../sim/index.ts';
import type { ConversionCosts } from './conversion_costs.ts';
import type { Kvm } from './kvm.ts';

/** What KVM's MMU notifier did (`vm1.kvm.mmu_notifier`). */
export const KVM_MMU_NOTIFIER_METRICS: MetricSpecs = {
  invalidations: countMetric('invalidations', 'MMU notifier invalidations of the shared backing (invalidate_range_start/end pairs), e.g. the VMM\'s discard on a conversion to private'),
  write_holds: countMetric('holds', 'mmu_lock write sections they took (two per invalidation: begin and end)'),
  write_hold_ns: measureMetric('ns', 'total mmu_lock write hold time of those'),
  faults_delayed: countMetric('acquisitions', 'mmu_lock acquisitions (faults) that queued behind those write sections'),
  faults_retried: countMetric('faults', 'private faults answered RET_PF_RETRY because an invalidation ran while they were in flight (mmu_invalidate_seq changed)'),
};

export interface MmuNotifierCounters {
  invalidations: number;
  writeHolds: number;
  writeHoldNs: number;
  faultsDelayed: number;
  faultsRetried: number;
}

/**
 * kvm_mmu_notifier_invalidate_range_start() for the guest pages [first, first + n) whose shared
 * backing (the memslot's userspace mapping) is being unmapped ([linux:virt/kvm/kvm_main.c]):
 * the range overlaps a memslot, so __kvm_handle_hva_range() takes mmu_lock for write whether or
 * not anything is mapped, runs kvm_mmu_invalidate_begin() (in progress, the range recorded) and
 * kvm_mmu_unmap_gfn_range() (shared leaves only: `zapShared`, with its remote TLB flush).
 */
export function* kvm_mmu_notifier_invalidate_range_start(kvm: Kvm, costs: ConversionCosts, first: number, n: number, zapShared: ((first: number, n: number) => Proc<void>) | null): Proc<void> {
  const sim = kvm.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('kvm_mmu_notifier_invalidate_range_start', { gfn: first, pages: n }, 0, 'kvm') : 0;
  const r = yield* kvm.mmuWriteSection(function* () {
    kvm.mmuInvalidateBegin(first, n);
    yield sim.stallFor(costs.mmuNotifierNs);
    if (zapShared !== null) yield* zapShared(first, n);
  });
  count(kvm, r);
  kvm.mmuNotifier.invalidations++;
  if (traced) sim.opEnd(id);
}

/**
 * kvm_mmu_notifier_invalidate_range_end(): mmu_lock for write again, kvm_mmu_invalidate_end():
 * mmu_invalidate_seq++ (every fault that read the old value and has not yet mapped retries)
 * and the invalidation is no longer in progress.
 */
export function* kvm_mmu_notifier_invalidate_range_end(kvm: Kvm, costs: ConversionCosts): Proc<void> {
  const sim = kvm.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('kvm_mmu_notifier_invalidate_range_end', {}, 0, 'kvm') : 0;
  const r = yield* kvm.mmuWriteSection(function* () {
    yield sim.stallFor(costs.mmuNotifierNs);
    kvm.mmuInvalidateEnd();
  });
  count(kvm, r);
  if (traced) sim.opEnd(id);
}

function count(kvm: Kvm, r: { heldNs: number; delayed: number }): void {
  const c = kvm.mmuNotifier;
  c.writeHolds++;
  c.writeHoldNs += r.heldNs;
  c.faultsDelayed += r.delayed;
}
