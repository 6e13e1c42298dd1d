import { countMetric, prefixedMetrics, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { hex } from '../arch/units.ts';
import type { Kvm } from '../kvm/kvm.ts';
import type { KvmUserspace } from '../kvm/userspace.ts';
import { CONVERSION_COSTS } from '../kvm/conversion_costs.ts';
import { CONVERT_MEMORY_METRICS, kvm_convert_memory, type ConvertCounters } from './convert_memory.ts';
import { ram_block_discard_range } from './ram_block_discard.ts';
import { SHARED_BACKING_METRICS, type SharedBacking } from './shared_backing.ts';
import { VM_SETUP_METRICS, type VmSetupCounters } from './vm_setup.ts';

/** What Vmm.metrics() writes (`vm1.vmm`). */
export const VMM_METRICS: MetricSpecs = {
  'map_gpa_range.exits': countMetric('exits', 'KVM_HC_MAP_GPA_RANGE exits the VMM handled'),
  'map_gpa_range.pages': countMetric('pages', '4K pages those exits covered'),
  ...prefixedMetrics('convert', CONVERT_MEMORY_METRICS),
  ...prefixedMetrics('shared', SHARED_BACKING_METRICS),
  ...prefixedMetrics('setup', VM_SETUP_METRICS),
};

/**
 * The VMM process of one VM (QEMU): it owns the VM's file descriptors and its vCPU threads, one
 * per vCPU, each looping on ioctl(KVM_RUN). An exit KVM cannot finish in the kernel returns to
 * the VMM on that same thread, which handles it and calls back into KVM; so the VMM's work runs
 * on the host CPU the vCPU thread holds. What it handles today: KVM_HC_MAP_GPA_RANGE
 * (kvm_handle_hc_map_gpa_range() -> kvm_convert_memory(), [qemu:accel/kvm/kvm-all.c kvm_convert_memory]), whose
 * KVM_SET_MEMORY_ATTRIBUTES finds acceptance's ranges already private, followed, to private, by
 * the discard of the shared backing (ram_block_discard_range(): the MMU notifier takes mmu_lock
 * for write even though nothing is mapped; `discard` false leaves it out). Its spans are the
 * `vmm` service. Not modelled yet: the main-loop and I/O threads (no device work is simulated).
 */
export class Vmm implements KvmUserspace {
  /** Exits to userspace handled, by kind. */
  mapGpaRangeExits = 0;
  mapGpaRangePages = 0;
  /** The shared backing, when the run converts memory (KVM has memory attributes); null otherwise. */
  shared: SharedBacking | null = null;
  readonly convert: ConvertCounters = { toPrivate: 0, toShared: 0, punched: 0 };
  /** The VM's setup before its vCPUs start (vm_setup.ts). */
  readonly setup: VmSetupCounters = { ns: 0, memslots: 0, attrStores: 0, imagePages: 0, measureOps: 0, seamcalls: 0, pspCommands: 0 };
  /** kvm_convert_memory() discards the shared backing on every conversion to private (QEMU); false: it does not. */
  discard = true;

  constructor(
    readonly sim: Sim,
    /** `vm1`: the process is named `qemu/vm1` in traces. */
    readonly name: string,
    readonly kvm: Kvm,
  ) {}

  *map_gpa_range(gpa: number, pages: number, toPrivate: boolean, link: number): Proc<void> {
    const { sim, kvm } = this;
    this.mapGpaRangeExits++;
    this.mapGpaRangePages += pages;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('KVM_HC_MAP_GPA_RANGE', { gpa: hex(gpa), size: pages * 4096, vm: this.name }, link, `vmm/${this.name}`) : 0;
    // Back to userspace and QEMU's exit dispatch, then the ioctl into KVM.
    yield sim.stallFor(kvm.costs.userspaceExitNs);
    if (this.shared !== null) {
      yield* kvm_convert_memory(kvm, this.shared, this.convert, gpa, pages, toPrivate, this.discard, id);
    } else {
      yield* kvm.kvm_vm_set_mem_attributes_unchanged();
      if (toPrivate && this.discard) yield* ram_block_discard_range(kvm, null, CONVERSION_COSTS, gpa / 4096, pages, id);
    }
    if (traced) sim.opEnd(id);
  }

  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.map_gpa_range.exits`] = this.mapGpaRangeExits;
    out[`${prefix}.map_gpa_range.pages`] = this.mapGpaRangePages;
    const st = this.setup;
    out[`${prefix}.setup.ns`] = st.ns;
    out[`${prefix}.setup.memslots`] = st.memslots;
    out[`${prefix}.setup.attr_stores`] = st.attrStores;
    out[`${prefix}.setup.image_pages`] = st.imagePages;
    out[`${prefix}.setup.measure_ops`] = st.measureOps;
    out[`${prefix}.setup.seamcalls`] = st.seamcalls;
    out[`${prefix}.setup.psp_commands`] = st.pspCommands;
    if (this.shared !== null) {
      out[`${prefix}.convert.to_private`] = this.convert.toPrivate;
      out[`${prefix}.convert.to_shared`] = this.convert.toShared;
      out[`${prefix}.convert.punched_folios`] = this.convert.punched;
      this.shared.metrics(`${prefix}.shared`, out);
    }
  }
}
