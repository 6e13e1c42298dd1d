import { countMetric, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import { kvm_gmem_punch_hole } from '../kvm/gmem_punch_hole.ts';
import type { Kvm } from '../kvm/kvm.ts';
import { ram_block_discard_range } from './ram_block_discard.ts';
import type { SharedBacking } from './shared_backing.ts';

/** What the VMM's conversions write (`vm1.vmm.convert`). */
export const CONVERT_MEMORY_METRICS: MetricSpecs = {
  to_private: countMetric('exits', 'KVM_HC_MAP_GPA_RANGE exits to private'),
  to_shared: countMetric('exits', 'KVM_HC_MAP_GPA_RANGE exits to shared'),
  punched_folios: countMetric('folios', 'guest_memfd folios freed by the punch hole of conversions to shared'),
};

/** The VMM's conversion counters. */
export interface ConvertCounters {
  toPrivate: number;
  toShared: number;
  punched: number;
}

/**
 * QEMU's kvm_convert_memory() ([qemu:accel/kvm/kvm-all.c kvm_convert_memory]) for the range
 * [gpa, gpa + pages x 4K) on the vCPU thread that exited: KVM_SET_MEMORY_ATTRIBUTES, then the
 * discard of the backing no longer used: to shared, ram_block_discard_guest_memfd_range()
 * (fallocate(PUNCH_HOLE) on guest_memfd); to private, ram_block_discard_range() of the shared
 * backing (models/vmm/ram_block_discard.ts), whose MMU notifier takes mmu_lock for write and
 * invalidates even when nothing was mapped, skipped when the shared backing is hugetlb. In
 * place, neither (one guest_memfd holds both). The punch is done per 2 MiB region (the model's
 * bookkeeping unit). `discard` false leaves the discard to private out (the shared pages stay).
 */
export function* kvm_convert_memory(kvm: Kvm, shared: SharedBacking, counters: ConvertCounters, gpa: number, pages: number, toPrivate: boolean, discard: boolean, link: number): Proc<void> {
  const attrs = kvm.attrs;
  if (attrs === null) return assert(false, 'kvm_convert_memory on a VM without memory attributes', kvm.name) as never;
  const sim = kvm.sim;
  const first = gpa / 4096;
  if (toPrivate) counters.toPrivate++;
  else counters.toShared++;
  yield* attrs.kvm_vm_set_mem_attributes(first, pages, toPrivate, link);
  if (toPrivate) {
    if (discard) yield* ram_block_discard_range(kvm, shared, attrs.costs, first, pages, link);
    return;
  }
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('ram_block_discard_guest_memfd_range', { gpa: hex(gpa), size: pages * 4096 }, link, `vmm/${kvm.name}`) : 0;
  for (let p = first; p < first + pages;) {
    const run = Math.min(first + pages, (Math.floor(p / PAGES_PER_2M) + 1) * PAGES_PER_2M) - p;
    // A local first: `counters.punched += yield* ...` reads the counter before other vCPUs' exits run.
    const punched = yield* kvm_gmem_punch_hole(kvm, attrs, p, run, shared.kind !== 'in_place');
    counters.punched += punched;
    p += run;
  }
  if (traced) sim.opEnd(id);
}
