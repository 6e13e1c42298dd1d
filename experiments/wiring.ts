import { GiB, MiB, US, prefixedMetrics, type MetricSpecs, type Sim } from '../sim/index.ts';
import { booleanParam, enumParam, numberParam, withPresets, type ParamsOf } from './experiment.ts';
import { ACCEPT_STRATEGIES, FIRMWARE_ACCEPTS, defaultGuestConfig, type GuestConfig } from '../models/guest/kernel.ts';
import { THP_MODES } from '../models/guest/khugepaged.ts';
import { ALLOCATOR_MODES } from '../models/guest/page_alloc.ts';
import { ACCEPTING_LIST_CHECKS, ACCEPT_LOCK_MODES } from '../models/guest/unaccepted_memory.ts';
import { PlatformConfigError } from '../models/host/config_check.ts';
import { HOST_METRICS, Host, TECHNOLOGIES, admissionRefusal, type HostConfig } from '../models/host/host.ts';
import { SEPT_MAPPINGS } from '../models/kvm/tdx.ts';
import { PAMT_POLICIES } from '../models/host/tdx_pamt.ts';
import { TDX_MODULE_VERSIONS } from '../models/tdx/tdx_module.ts';
import { ACCEPT_FIDELITIES } from '../models/vm/fidelity.ts';
import { PSC_PROTOCOLS } from '../models/vm/snp_accept_memory.ts';
import { SNP_BACKINGS, VM_METRICS, Vm, type VmConfig } from '../models/vm/vm.ts';

/**
 * The parameters every experiment shares, declared once with the model's own value lists, and
 * the wiring from them to a Host, its VMs and their guests.
 */

/** The host: its technology and module, and its CPUs. */
export const hostParams = {
  platform: enumParam(TECHNOLOGIES, 'tdx', 'Intel TDX or AMD SEV-SNP host'),
  tdx_module: enumParam(TDX_MODULE_VERSIONS, '1.5', 'TDX: the TDX module whose S-EPT locking is modelled', '[tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c] [linux:arch/x86/kvm/vmx/tdx.c]'),
  host_cpus: numberParam({ default: 0, unit: 'CPUs', description: 'host CPUs; 0: one per vCPU of every VM (nothing else competes for them)', min: 0, max: 65536, integer: true }),
  host_memory_gib: numberParam({ default: 0, unit: 'GiB', description: 'host RAM; 0: the VMs\' memory plus 25% and 2 GiB (enough for every page table, control page and firmware table)', min: 0, max: 65536, integer: true }),
  smt: booleanParam(false, 'SMT: host_cpus are hardware threads, two per core (a waking vCPU prefers a core whose sibling is idle)'),
  pamt: enumParam(PAMT_POLICIES, 'static', 'TDX: the kernel\'s PAMT: static (all PAMT_4K at module init, upstream), refcount (Dynamic PAMT, v6: per-2M refcounts under a global pamt_lock) lazy (the abandoned scheme: PAMT.ADD after TDX_MISSING_PAMT_PAGE_PAIR) or hashed (refcount with 64 hashed per-2M spinlocks, a rejected alternative)'),
  snp_direct_map_split: booleanParam(true, 'SNP: rmpupdate() of a 4K page splits the host direct map around it (cpa_lock, flush_tlb_all on every host CPU; false: leave it out)', '[linux:arch/x86/virt/svm/sev.c] [roth-2024-01-cpa-lock]'),
  sockets: numberParam({ default: 1, unit: 'sockets', description: 'host sockets: one NUMA node and one memory bandwidth each; VM n\'s memory is on node (n-1) mod sockets', min: 1, max: 8, integer: true }),
  cache_lines: booleanParam(true, 'contended cache lines: an atomic on a shared word (the TD\'s lock words and CHLDCNT, PAMT 1G entries, mmu_lock, guest_memfd\'s file, policy and i_pages locks, zone->lock) that another CPU wrote last moves its line (80 ns, 200 ns across sockets); false: no transfers', '[estimate:cache-line-transfer] [tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c]'),
  tdx_clflush: booleanParam(true, 'TDX: the host kernel clflushes each page before TDH.MEM.PAGE.AUG and TDH.MEM.SEPT.ADD (tdx_clflush_pfn(), 320 ns per 4K); false: a module without CLFLUSH_BEFORE_ALLOC', '[linux:arch/x86/virt/vmx/tdx/tdx.c]'),
};

/** A VM's host side: how KVM maps its memory, how it asks for page state changes, the simulation's fidelity. */
export const vmParams = {
  sept: enumParam(SEPT_MAPPINGS, '4k', 'TDX: S-EPT mapping size KVM uses (upstream maps private memory 4K only)', '[linux:arch/x86/kvm/vmx/tdx.c] [tdx-huge-page-series]'),
  psc: enumParam(PSC_PROTOCOLS, 'ghcb', 'SNP: page state changes through GHCB batches or the MSR protocol (one 4K per VMGEXIT)', '[linux:arch/x86/coco/sev/core.c snp_accept_memory]'),
  snp_backing: enumParam(SNP_BACKINGS, '4k', 'SNP: guest_memfd folio size (upstream 4K; 2M with the unmerged THP series)', '[linux:virt/kvm/guest_memfd.c] [roth-2024-12-gmem-thp]'),
  snp_prefault: booleanParam(false, 'SNP: the VMM prefaults private memory on each page state change (unmerged QEMU patch; RMPUPDATE inside the PSC exit); false (upstream): each PVALIDATE of an unmapped page takes a nested page fault that does it', '[linux:arch/x86/kvm/svm/sev.c] [lendacky-2025-03-snp-prefault]'),
  vmm_discard: booleanParam(true, 'the VMM discards the shared backing on each conversion to private, also the accept path\'s SNP PSC (MMU notifier: mmu_lock for write twice, in-flight faults retry); false: leave it out', '[qemu:accel/kvm/kvm-all.c kvm_convert_memory]'),
  fidelity: enumParam(ACCEPT_FIDELITIES, 'aggregate', 'host model: per-2M aggregated steps or every 4K operation its own step'),
  vm_setup: booleanParam(true, 'the VMM\'s setup before the firmware runs, on its own thread: memslots, KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) (one xarray store per 4K), the TD build (TDH.MNG.*, TDH.VP.*, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND of the 4 MiB TDVF image, TDH.MR.FINALIZE) or the SNP launch (SNP_LAUNCH_START/UPDATE/FINISH); boot times include it (false: the VM is ready at VM start)', '[qemu:accel/kvm/kvm-all.c kvm_convert_memory] [qemu:target/i386/kvm/tdx.c tdx_finalize_vm] [linux:arch/x86/kvm/vmx/tdx.c] [linux:arch/x86/kvm/svm/sev.c]'),
};

/** Host and VM parameters together (the old `platformParams`). */
export const platformParams = { ...hostParams, ...vmParams };

/** Kernel configurations users run, as presets of the guest parameters below. */
export const KERNEL_CONFIGS = ['distro', 'defconfig'] as const;

/**
 * `kernel_config`: a preset of the guest kernel's build options the model has parameters for.
 * `distro` keeps every default ([distro-kernel-config]); `defconfig` is x86_64_defconfig
 * ([linux:arch/x86/configs/x86_64_defconfig]), the base of many confidential-container guest
 * kernels ([dstack-kernel-config]): no CONFIG_DEFERRED_STRUCT_PAGE_INIT, CONFIG_NO_HZ=y
 * (NO_HZ_IDLE: the tick stops on idle CPUs), CONFIG_HZ_1000=y, CONFIG_PREEMPT_VOLUNTARY=y (the
 * model's only preemption model), and CONFIG_TRANSPARENT_HUGEPAGE unset (no default in
 * mm/Kconfig): khugepaged never raises the watermarks, the model's thp=never. A parameter given
 * explicitly (--set, --config) keeps its value.
 */
export const kernelConfigParam = withPresets(
  enumParam(KERNEL_CONFIGS, 'distro', 'preset of the guest kernel\'s build options: distro (the defaults of deferred_struct_page_init, thp, hz, nohz_idle) or defconfig (x86_64_defconfig: deferred_struct_page_init=false, thp=never, hz=1000, nohz_idle=true); an explicit --set of one of those wins', '[distro-kernel-config] [linux:arch/x86/configs/x86_64_defconfig]'),
  { defconfig: { deferred_struct_page_init: false, thp: 'never', hz: 1000, nohz_idle: true } },
);

/** The guest kernel. */
export const guestParams = {
  kernel_config: kernelConfigParam,
  memory_gib: numberParam({ default: 4, unit: 'GiB', description: 'guest RAM', min: 1, max: 4096, integer: true }),
  vcpus: numberParam({ default: 4, unit: 'vCPUs', description: 'guest vCPUs', min: 1, max: 512, integer: true }),
  accept: enumParam(ACCEPT_STRATEGIES, 'lazy', 'accept_memory=eager|lazy, or lazy plus background acceptor threads (option 3 of the seed-era changelog, never merged)', '[linux:mm/page_alloc.c] [unaccepted-v7-2022-06]'),
  accept_lock: enumParam(ACCEPT_LOCK_MODES, 'dropped', 'unaccepted_memory_lock held across arch_accept_memory (v6.5) or dropped with accepting_list (upstream)', '[linux-commit:50e782a86c98]'),
  accepting_list_check: enumParam(ACCEPTING_LIST_CHECKS, 'upstream', 'accept_memory()\'s accepting_list overlap test: upstream (entry->end <= range.start skips an adjacent entry) or v6.6 (entry->end < range.start: an entry ending where the range starts is a false overlap, the caller spins until it is done)', '[linux-commit:50e782a86c98] [roth-2023-11-accepting-list-off-by-one]'),
  allocator: enumParam(ALLOCATOR_MODES, 'upstream', 'seed-era PageUnaccepted buddy pages, or zone->unaccepted_pages with cond_accept_memory', '[linux:mm/page_alloc.c cond_accept_memory] [unaccepted-v2-2022-01]'),
  firmware: enumParam(FIRMWARE_ACCEPTS, 'lazy', 'firmware pre-accepts firmware_accept_mib (lazy) or all memory (PcdLazyAcceptPartialMemorySize=0)', '[edk2:PcdLazyAcceptPartialMemorySize]'),
  firmware_accept_mib: numberParam({ default: 512, unit: 'MiB', description: 'PcdLazyAcceptPartialMemorySize', min: 0, max: 1 << 22, integer: true, source: '[edk2:PcdLazyAcceptPartialMemorySize] [linux:Documentation/arch/x86/tdx.rst]' }),
  deferred_struct_page_init: booleanParam(true, 'CONFIG_DEFERRED_STRUCT_PAGE_INIT', '[distro-kernel-config] [dstack-kernel-config]'),
  wmark_zero_fix: booleanParam(true, 'the 2025 fix: accept one block per allocation while watermarks are zero', '[kirill-2025-03-wmark-zero]'),
  thp: enumParam(THP_MODES, 'madvise', 'transparent_hugepage/enabled (Ubuntu madvise, RHEL always): when enabled, khugepaged\'s start (subsys initcall) raises min_free_kbytes to 11 pageblocks per zone (max 5% of lowmem) and with it the promo watermark cond_accept_memory() fills to', '[distro-kernel-config] [linux:mm/khugepaged.c set_recommended_min_free_kbytes]'),
  hz: numberParam({ default: 1000, unit: 'Hz', description: 'CONFIG_HZ: idle vCPUs exit at each tick', min: 0, max: 10000, integer: true, source: '[distro-kernel-config]' }),
  nohz_idle: booleanParam(false, 'CONFIG_NO_HZ_IDLE: from clocksource_done_booting (an fs_initcall) on, the tick stops on idle vCPUs (no idle exits); before it they tick', '[slow-many-vcpu-td-boot] [distro-kernel-config] [linux:kernel/time/tick-sched.c]'),
  tick_rearm_exit: booleanParam(true, 'each tick re-arms IA32_TSC_DEADLINE: a #VE/#VC-driven exit to KVM on TDX and SNP (false: leave it out)', '[linux:arch/x86/kvm/vmx/tdx.c]'),
  skew_tick: booleanParam(false, 'skew_tick=1: each vCPU\'s tick offset by cpu x TICK_NSEC/2/nr_cpus; default all vCPUs tick at once', '[linux:kernel/time/tick-sched.c]'),
  variation: booleanParam(true, 'seeds vary what real boots vary (the phase of the guest\'s tick grid); false: every seed gives the same run'),
  background_threads: numberParam({ default: 1, unit: 'threads', description: 'accept=background: acceptor threads', min: 1, max: 512, integer: true }),
  background_pace_us: numberParam({ default: 0, unit: 'us', description: 'accept=background: pause between two blocks', min: 0, max: 1e9 }),
};

export type HostParams = ParamsOf<typeof hostParams>;
export type VmParams = ParamsOf<typeof vmParams>;
export type GuestParams = ParamsOf<typeof guestParams>;

/** The guest configuration a parameter set describes (fields the experiment fixes in `overrides`). */
export function guestConfigFrom(p: GuestParams, overrides: Partial<GuestConfig> = {}): GuestConfig {
  return defaultGuestConfig({
    memoryBytes: p.memory_gib * GiB,
    vcpus: p.vcpus,
    accept: p.accept,
    acceptLock: p.accept_lock,
    acceptingListCheck: p.accepting_list_check,
    allocator: p.allocator,
    firmware: p.firmware,
    firmwareAcceptBytes: p.firmware_accept_mib * MiB,
    deferredStructPageInit: p.deferred_struct_page_init,
    wmarkZeroFix: p.wmark_zero_fix,
    thp: p.thp,
    hz: p.hz,
    nohzIdle: p.nohz_idle,
    skewTick: p.skew_tick,
    tickRearmExit: p.tick_rearm_exit,
    variation: p.variation,
    background: { threads: p.background_threads, paceNs: p.background_pace_us * US },
    ...overrides,
  });
}

/**
 * The host for VMs with `totalVcpus` vCPUs and `totalMemoryBytes` of RAM in all: host_cpus=0 gives
 * each vCPU its own CPU, host_memory_gib=0 gives the VMs' memory plus 25% and 2 GiB, per socket
 * rounded up to whole GiB.
 */
export function buildHost(sim: Sim, p: HostParams, totalVcpus: number, totalMemoryBytes: number, extra: Partial<HostConfig> = {}): Host {
  return new Host(sim, { ...hostConfigFrom(p, totalVcpus, totalMemoryBytes), ...extra });
}

/** The host configuration of buildHost (bad combinations throw PlatformConfigError). */
function hostConfigFrom(p: HostParams, totalVcpus: number, totalMemoryBytes: number): HostConfig {
  const autoGib = Math.ceil((totalMemoryBytes * 1.25) / GiB + 2);
  const gib = p.host_memory_gib === 0 ? Math.ceil(autoGib / p.sockets) * p.sockets : p.host_memory_gib;
  if (gib % p.sockets !== 0) throw new PlatformConfigError(`host_memory_gib must be a multiple of sockets (got host_memory_gib=${gib}, sockets=${p.sockets})`);
  return {
    technology: p.platform,
    cpus: p.host_cpus === 0 ? totalVcpus : p.host_cpus,
    memoryBytes: gib * GiB,
    sockets: p.sockets,
    smt: p.smt,
    tdxModule: p.tdx_module,
    pamt: p.pamt,
    cacheLines: p.cache_lines,
    ...(p.tdx_clflush ? {} : { tdxCosts: { clflushPageNs: 0 } }),
    snpDirectMapSplit: p.snp_direct_map_split,
  };
}

/** A VM's configuration from its parameters and its guest's. */
export function vmConfigFrom(p: VmParams, guest: GuestConfig): VmConfig {
  return { guest, sept: p.sept, psc: p.psc, snpBacking: p.snp_backing, snpPrefault: p.snp_prefault, vmmDiscard: p.vmm_discard, fidelity: p.fidelity, setup: p.vm_setup };
}

/** One host with one VM on it, as the single-guest experiments run. */
export function buildSingleVm(sim: Sim, p: HostParams & VmParams & GuestParams, overrides: Partial<GuestConfig> = {}): { host: Host; vm: Vm } {
  const guest = guestConfigFrom(p, overrides);
  const host = buildHost(sim, p, guest.vcpus, guest.memoryBytes);
  const vm = new Vm(sim, host, vmConfigFrom(p, guest));
  return { host, vm };
}

/** `p.vms` identical VMs of the guest `p` describes on one host built for them all. */
export function buildIdenticalVms(sim: Sim, p: HostParams & VmParams & GuestParams & { vms: number }, overrides: Partial<GuestConfig> = {}): { host: Host; vms: Vm[]; guest: GuestConfig } {
  const guest = guestConfigFrom(p, overrides);
  const host = buildHost(sim, p, p.vms * guest.vcpus, p.vms * guest.memoryBytes);
  const vms = Array.from({ length: p.vms }, () => new Vm(sim, host, vmConfigFrom(p, guest)));
  return { host, vms, guest };
}

/** The checks of an experiment of `p.vms` identical VMs: the guest's combinations, then the host's admission. */
export function checkIdenticalVms(p: HostParams & GuestParams & { vms: number }): string | undefined {
  const vm = { vcpus: p.vcpus, memoryBytes: p.memory_gib * GiB };
  return checkGuestParams(p) ?? checkHostParams(p, Array.from({ length: p.vms }, () => vm));
}

/** Combinations of valid values that the guest model cannot run, as bad input (exit 2). */
export function checkGuestParams(p: GuestParams): string | undefined {
  if (p.accept === 'background' && p.allocator === 'seed') {
    return 'accept=background needs allocator=upstream: the seed-era allocator keeps unaccepted memory in the buddy lists, with no unaccepted_pages list for acceptor threads to take blocks from';
  }
  return undefined;
}

/**
 * Whether the host takes these VMs, asked of the model itself before any run: the host is built
 * on a scratch Sim and admits each VM as KVM would (a TD with more vCPUs than host CPUs, or VMs
 * whose memory does not fit, are refused), so the CLI can report bad input (exit 2) up front.
 */
export function checkHostParams(p: HostParams, vms: readonly { vcpus: number; memoryBytes: number }[], extra: Partial<HostConfig> = {}): string | undefined {
  try {
    const config = { ...hostConfigFrom(p, vms.reduce((n, v) => n + v.vcpus, 0), vms.reduce((n, v) => n + v.memoryBytes, 0)), ...extra };
    return admissionRefusal(config, vms);
  } catch (e) {
    if (e instanceof PlatformConfigError) return e.message;
    throw e;
  }
}

/** The checks of a single-VM experiment: the guest's combinations, then the host's admission. */
export function checkSingleVm(p: HostParams & GuestParams): string | undefined {
  return checkGuestParams(p) ?? checkHostParams(p, [{ vcpus: p.vcpus, memoryBytes: p.memory_gib * GiB }]);
}

/** The model owners' metric families every experiment reports: the host's and each VM's (`vm*`). */
export const ownerMetricSpecs: MetricSpecs = {
  ...HOST_METRICS,
  ...prefixedMetrics('vm*', VM_METRICS),
};

/**
 * The end of a run on `host`: every VM's host side and the host's own state balance (invariants,
 * always on), then every owner's metrics: the host's, and each VM's under its name.
 */
export function finishHost(host: Host, vms: readonly Vm[]): Record<string, number> {
  for (const vm of vms) vm.checkInvariants();
  host.checkInvariants();
  const out: Record<string, number> = {};
  host.metrics(out);
  for (const vm of vms) vm.metrics(vm.name, out);
  return out;
}
