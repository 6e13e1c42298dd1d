import { countMetric, measureMetric, type Cpu, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { hex } from '../arch/units.ts';
import { kvm_set_memory_attributes_at_start } from '../kvm/memory_attributes.ts';
import { snp_launch } from '../kvm/sev_launch.ts';
import { tdx_td_build } from '../kvm/tdx_td_build.ts';
import { FIRMWARE_IMAGE_BYTES, FIRMWARE_IMAGE_END, FIRMWARE_MEASURED_BYTES_TDX, VM_SETUP_COSTS, type VmSetupCosts } from '../kvm/vm_setup_costs.ts';
import type { SnpFirmware } from '../snp/snp_firmware.ts';
import type { Vmm } from './vmm.ts';

/** What the setup did (`vm1.vmm.setup.*`); all zero when the run does not simulate it. */
export interface VmSetupCounters {
  ns: number;
  memslots: number;
  attrStores: number;
  imagePages: number;
  measureOps: number;
  seamcalls: number;
  pspCommands: number;
}

export const VM_SETUP_METRICS: MetricSpecs = {
  ns: measureMetric('ns', 'VM setup on the VMM\'s thread before the vCPUs start: memslots, KVM_SET_MEMORY_ATTRIBUTES, the TD build or SNP launch (0 with vm_setup=false)'),
  memslots: countMetric('memslots', 'memslots the VMM registered (guest RAM below and above 4 GiB, the firmware flash)'),
  attr_stores: countMetric('stores', 'xa_store()s of KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) at start: one per 4K page of RAM and image'),
  image_pages: countMetric('pages', 'pages of the initial image added (TDH.MEM.PAGE.ADD, or SNP_LAUNCH_UPDATE)'),
  measure_ops: countMetric('operations', 'measurements: TDH.MR.EXTEND calls (256 bytes each), or pages the PSP measured (image and VMSAs)'),
  seamcalls: countMetric('SEAMCALLs', 'SEAMCALLs of the TD build'),
  psp_commands: countMetric('commands', 'PSP commands of the SNP launch (under sev_cmd_mutex)'),
};

/** What the VMM sets up: its RAM memslots (guest-physical byte ranges) and vCPUs. */
export interface VmSetupPlan {
  ram: readonly { start: number; end: number }[];
  vcpus: number;
  /** The SNP firmware (null on TDX). */
  snp: SnpFirmware | null;
  /** A 4K host page for the image (guest_memfd of the firmware memslot), or null when the host is out of memory. */
  allocImagePage: () => number | null;
  /** Every TDH.MR.EXTEND its own step (fidelity=per-page), or a page's 16 as one. */
  perPage: boolean;
  costs?: VmSetupCosts;
}

/**
 * The VMM's setup of a confidential VM, on its main thread before any vCPU runs (QEMU's machine
 * init and its machine-done notifiers): per memslot (RAM below and above 4 GiB, the 4 MiB
 * firmware flash just below 4 GiB) KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2 and
 * KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) ([qemu:accel/kvm/kvm-all.c kvm_convert_memory]), then the
 * TD build ([qemu:target/i386/kvm/tdx.c tdx_finalize_vm], models/kvm/tdx_td_build.ts) or the SNP
 * launch ([qemu:target/i386/sev.c], models/kvm/sev_launch.ts). Its time is the VM's before the
 * firmware's first instruction; boot times include it.
 */
export function* vmm_setup_vm(vmm: Vmm, plan: VmSetupPlan, cpu: Cpu | null): Proc<void> {
  const { sim, kvm } = vmm;
  const costs = plan.costs ?? VM_SETUP_COSTS;
  const c = vmm.setup;
  const start = sim.now;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('vm_setup', { vm: vmm.name, 'cvmsim.level': 'phase' }, 0, `vmm/${vmm.name}`) : 0;
  const imageGpa = FIRMWARE_IMAGE_END - FIRMWARE_IMAGE_BYTES;
  const slots = [...plan.ram, { start: imageGpa, end: FIRMWARE_IMAGE_END }];
  for (const s of slots) {
    const slot = traced ? sim.opBegin('KVM_SET_USER_MEMORY_REGION2', { gpa: hex(s.start), size: s.end - s.start }, id, `vmm/${vmm.name}`) : 0;
    yield sim.stallFor(2 * costs.memslotIoctlNs);
    c.memslots++;
    if (traced) sim.opEnd(slot);
    c.attrStores += yield* kvm_set_memory_attributes_at_start(kvm, s.start / 4096, (s.end - s.start) / 4096, id);
  }
  if (kvm.tdx !== null) {
    const r = yield* tdx_td_build(kvm, plan.vcpus, { gpa: imageGpa, bytes: FIRMWARE_IMAGE_BYTES, measuredBytes: FIRMWARE_MEASURED_BYTES_TDX }, plan.allocImagePage, cpu, id, plan.perPage, costs);
    c.imagePages += r.pagesAdded;
    c.measureOps += r.chunksMeasured;
    c.seamcalls += r.seamcalls;
  } else {
    const r = yield* snp_launch(kvm, plan.snp!, plan.vcpus, imageGpa, FIRMWARE_IMAGE_BYTES, plan.allocImagePage, id, costs);
    c.imagePages += r.pagesAdded;
    c.measureOps += r.pagesMeasured;
    c.pspCommands += r.pspCommands;
  }
  c.ns = sim.now - start;
  if (traced) sim.opEnd(id);
}
