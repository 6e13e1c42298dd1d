import type { Mutex, Proc } from '../../sim/index.ts';
import { kvmGlobalMutex } from './kvm_globals.ts';
import { assert } from '../../sim/assert.ts';
import { hex } from '../arch/units.ts';
import type { SnpFirmware } from '../snp/snp_firmware.ts';
import { HostOutOfMemory } from './guest_memfd.ts';
import type { Kvm } from './kvm.ts';
import { VM_SETUP_COSTS, type VmSetupCosts } from './vm_setup_costs.ts';

/**
 * The ccp driver's `sev_cmd_mutex`, one per host: every command to the AMD Secure Processor
 * (PSP) is issued under it (__sev_do_cmd_locked(), drivers/crypto/ccp/sev-dev.c, reached from
 * [linux:arch/x86/kvm/svm/sev.c]), so the launches of VMs starting together take turns at the PSP.
 */
export function sevCmdMutexOf(kvm: Kvm, fw: SnpFirmware): Mutex {
  return kvmGlobalMutex(kvm.sim, fw, 'sev_cmd_mutex');
}

/** What the launch did, for the VMM's metrics. */
export interface SnpLaunchCounts {
  pspCommands: number;
  pagesAdded: number;
  /** Pages the PSP measured into the launch digest (the image and one VMSA per vCPU). */
  pagesMeasured: number;
}

/**
 * The SNP guest's launch by KVM on the VMM's thread ([linux:arch/x86/kvm/svm/sev.c]):
 * SNP_LAUNCH_START; SNP_LAUNCH_UPDATE of the firmware image (snp_launch_update() ->
 * kvm_gmem_populate() -> sev_gmem_post_populate(): per 4 KiB the guest_memfd folio and the copy
 * of the source page, rmp_make_private() (RMPUPDATE) and one SEV_CMD_SNP_LAUNCH_UPDATE, which
 * encrypts the page, measures it into the launch digest and leaves it validated in the RMP);
 * SNP_LAUNCH_FINISH (one LAUNCH_UPDATE of each vCPU's VMSA page, then the PSP's
 * LAUNCH_FINISH). Each PSP command holds the host-wide sev_cmd_mutex.
 */
export function* snp_launch(kvm: Kvm, fw: SnpFirmware, vcpus: number, imageGpa: number, imageBytes: number, allocImagePage: () => number | null, link: number, setup: VmSetupCosts = VM_SETUP_COSTS): Proc<SnpLaunchCounts> {
  const sev = kvm.sev;
  if (sev === null) return assert(false, 'snp_launch of a VM that is not an SNP guest', kvm.name) as never;
  const sim = kvm.sim;
  const mutex = sevCmdMutexOf(kvm, fw);
  const counts: SnpLaunchCounts = { pspCommands: 0, pagesAdded: 0, pagesMeasured: 0 };
  const traced = sim.observer !== null;
  const psp = function* (cmd: string, ns: number, parent: number): Proc<void> {
    yield mutex.acquire();
    const id = traced ? sim.opBegin(cmd, { vm: kvm.name }, parent, 'snp-firmware') : 0;
    yield sim.stallFor(ns);
    if (traced) sim.opEnd(id);
    mutex.release();
    counts.pspCommands++;
  };

  yield* psp('SNP_LAUNCH_START', setup.pspLaunchStartNs, link);
  const update = traced ? sim.opBegin('KVM_SEV_SNP_LAUNCH_UPDATE', { gpa: hex(imageGpa), size: imageBytes }, link, 'kvm') : 0;
  for (let off = 0; off < imageBytes; off += 4096) {
    const hpa = allocImagePage();
    if (hpa === null) throw new HostOutOfMemory(`host out of memory: no 4K page for the firmware image of ${kvm.name}; give the host more memory (host_memory_gib)`);
    yield sim.stallFor(setup.populatePerPageNs + sev.costs.rmpupdate4kNs);
    const page = hpa / 4096;
    sev.rmp.assign(page, 1, sev.asid, false);
    yield* psp('SNP_LAUNCH_UPDATE', setup.pspLaunchUpdatePageNs, update);
    sev.rmp.validate(page, 1);
    sev.imagePages.push(hpa);
    counts.pagesAdded++;
    counts.pagesMeasured++;
  }
  if (traced) sim.opEnd(update);
  const finish = traced ? sim.opBegin('KVM_SEV_SNP_LAUNCH_FINISH', { vcpus }, link, 'kvm') : 0;
  for (let v = 0; v < vcpus; v++) {
    yield* psp('SNP_LAUNCH_UPDATE', setup.pspLaunchUpdatePageNs, finish);
    counts.pagesMeasured++;
  }
  yield* psp('SNP_LAUNCH_FINISH', setup.pspLaunchFinishNs, finish);
  if (traced) sim.opEnd(finish);
  return counts;
}
