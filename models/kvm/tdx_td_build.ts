import type { Cpu, Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { hex } from '../arch/units.ts';
import { TDCS_PAGES, TDVPS_PAGES, TDX_SUCCESS, tdxStatusName } from '../tdx/arch.ts';
import { tdh_mem_page_add } from '../tdx/leaves/tdh_mem_page_add.ts';
import { tdh_mr_extend } from '../tdx/leaves/tdh_mr_extend.ts';
import { tdh_mr_finalize } from '../tdx/leaves/tdh_mr_finalize.ts';
import { TD_BUILD_COSTS, TDX_EXTENDMR_CHUNKSIZE, type TdBuildCosts } from '../tdx/td_build_costs.ts';
import type { Kvm } from './kvm.ts';
import { HostOutOfMemory } from './guest_memfd.ts';
import { tdxLockOf } from './tdx_teardown.ts';
import type { KvmTdx } from './tdx.ts';
import { VM_SETUP_COSTS, type VmSetupCosts } from './vm_setup_costs.ts';

/** The initial image KVM_TDX_INIT_MEM_REGION adds: where it is, how many bytes, how many of them are measured. */
export interface TdImage {
  gpa: number;
  bytes: number;
  measuredBytes: number;
}

/** What the build did, for the VMM's metrics. */
export interface TdBuildCounts {
  seamcalls: number;
  pagesAdded: number;
  chunksMeasured: number;
}

/**
 * The TD's build by KVM, on the VMM's thread, before any vCPU runs ([linux:arch/x86/kvm/vmx/tdx.c]):
 * - KVM_TDX_INIT_VM (tdx_td_init()): TDH.MNG.CREATE under KVM's tdx_lock, TDH.MNG.KEY.CONFIG on
 *   one CPU of each package (smp_call_on_cpu(), one after the other), TDH.MNG.ADDCX per TDCS
 *   page, TDH.MNG.INIT (OP_STATE INITIALIZED);
 * - KVM_TDX_INIT_VCPU per vCPU (tdx_vcpu_init()): TDH.VP.CREATE, TDH.VP.ADDCX per TDCX page,
 *   TDH.VP.INIT;
 * - KVM_TDX_INIT_MEM_REGION (tdx_gmem_post_populate()): per 4 KiB of the image the guest_memfd
 *   folio and mapping, TDH.MEM.PAGE.ADD, and with KVM_TDX_MEASURE_MEMORY_REGION one
 *   TDH.MR.EXTEND per 256 bytes (TDX_EXTENDMR_CHUNKSIZE; aggregated fidelity: a page's calls as
 *   one step);
 * - KVM_TDX_FINALIZE_VM: TDH.MR.FINALIZE (OP_STATE RUNNABLE).
 * The control pages' PAMT commits were made when the VM was created (KvmTdx); here their
 * SEAMCALLs take their time. A failed SEAMCALL is KVM_BUG_ON (nothing else runs on the TD).
 */
export function* tdx_td_build(kvm: Kvm, vcpus: number, image: TdImage, allocImagePage: () => number | null, cpu: Cpu | null, link: number, perPage: boolean, setup: VmSetupCosts = VM_SETUP_COSTS, costs: TdBuildCosts = TD_BUILD_COSTS): Proc<TdBuildCounts> {
  const tdx = kvm.tdx;
  if (tdx === null) return assert(false, 'tdx_td_build of a VM that is not a TD', kvm.name) as never;
  const { module, td } = tdx;
  const sim = kvm.sim;
  const counts: TdBuildCounts = { seamcalls: 0, pagesAdded: 0, chunksMeasured: 0 };
  const tdrHpa = tdx.controlHpas[0]!;
  const traced = sim.observer !== null;
  const call = function* (leaf: string, bodyNs: number, zeroBytes: number): Proc<void> {
    const id = traced ? sim.opBegin(leaf, { td: td.name }, link, 'tdx-module') : 0;
    yield sim.stallFor(module.costs.seamcallNs + bodyNs);
    if (zeroBytes > 0) yield* td.zero(zeroBytes);
    counts.seamcalls++;
    if (traced) sim.opEnd(id);
  };

  // KVM_TDX_INIT_VM
  const initVm = traced ? sim.opBegin('KVM_TDX_INIT_VM', { td: td.name }, link, 'kvm') : 0;
  const lock = tdxLockOf(module);
  yield lock.acquire();
  yield* call('TDH.MNG.CREATE', costs.controlPageBodyNs, 0);
  lock.release();
  for (let pkg = 0; pkg < module.packages; pkg++) yield* call('TDH.MNG.KEY.CONFIG', kvm.costs.ipiNs + costs.keyConfigNs, 0);
  for (let i = 0; i < TDCS_PAGES[module.version]; i++) yield* call('TDH.MNG.ADDCX', costs.controlPageBodyNs, 4096);
  td.opState = 'initialized';
  yield* call('TDH.MNG.INIT', costs.mngInitNs, 0);
  if (traced) sim.opEnd(initVm);

  // KVM_TDX_INIT_VCPU, per vCPU
  for (let v = 0; v < vcpus; v++) {
    yield* call('TDH.VP.CREATE', costs.controlPageBodyNs, 4096);
    for (let i = 1; i < TDVPS_PAGES; i++) yield* call('TDH.VP.ADDCX', costs.controlPageBodyNs, 4096);
    yield* call('TDH.VP.INIT', costs.vpInitNs, 0);
  }

  // KVM_TDX_INIT_MEM_REGION
  const region = traced ? sim.opBegin('KVM_TDX_INIT_MEM_REGION', { td: td.name, gpa: hex(image.gpa), size: image.bytes, measured: image.measuredBytes }, link, 'kvm') : 0;
  for (let off = 0; off < image.bytes; off += 4096) {
    const hpa = allocImagePage();
    if (hpa === null) throw new HostOutOfMemory(`host out of memory: no 4K page for the initial image of ${td.name}; give the host more memory (host_memory_gib)`);
    yield sim.stallFor(setup.populatePerPageNs);
    const gpa = image.gpa + off;
    tdx.pamtTopup(cpu);
    check(yield* tdx.withPamt(hpa, 1, cpu, () => tdh_mem_page_add(td, costs, tdrHpa, gpa, hpa, region)), 'TDH.MEM.PAGE.ADD', tdx);
    counts.seamcalls++;
    counts.pagesAdded++;
    if (off >= image.measuredBytes) continue;
    const chunks = 4096 / TDX_EXTENDMR_CHUNKSIZE;
    if (!perPage) {
      // Aggregated: the page's 16 calls as one step (tdh_mr_extend's `chunks`).
      check(yield* tdh_mr_extend(td, costs, tdrHpa, gpa, region, chunks), 'TDH.MR.EXTEND', tdx);
      counts.seamcalls += chunks;
      counts.chunksMeasured += chunks;
      continue;
    }
    for (let c = 0; c < 4096; c += TDX_EXTENDMR_CHUNKSIZE) {
      check(yield* tdh_mr_extend(td, costs, tdrHpa, gpa + c, region), 'TDH.MR.EXTEND', tdx);
      counts.seamcalls++;
      counts.chunksMeasured++;
    }
  }
  if (traced) sim.opEnd(region);

  // KVM_TDX_FINALIZE_VM
  check(yield* tdh_mr_finalize(td, costs, tdrHpa, link), 'TDH.MR.FINALIZE', tdx);
  counts.seamcalls++;
  return counts;
}

function check(status: bigint, leaf: string, tdx: KvmTdx): void {
  if (status !== TDX_SUCCESS) assert(false, `KVM_BUG_ON: ${leaf} failed with ${tdxStatusName(status)}`, { td: tdx.td.name });
}
