import { GiB, MiB, US, type Sim } from '../sim/index.ts';
import type { Curve, Experiment, MetricSpec, ParamSpec, Params } from './experiment.ts';
import { GuestKernel, defaultGuestConfig, type GuestConfig } from '../models/guest/kernel.ts';
import type { Platform, PlatformConfig } from '../models/platform.ts';
import { createSnpPlatform } from '../models/snp/snp_platform.ts';
import { createTdxPlatform } from '../models/tdx/tdx_platform.ts';
import { defaultApplicationConfig } from '../models/workloads/application.ts';
import { runGuest } from '../models/workloads/boot.ts';

/**
 * accept-boot (design.md Q1): boot a confidential guest from VM start to a shell under one
 * acceptance strategy and report boot times, acceptance CPU time, accept-lock contention, soft
 * lockups and OOMs. This file also holds the wiring the other accept-* experiments share.
 */

// ---- Shared parameters ----------------------------------------------------------------------

export const platformParams: Record<string, ParamSpec> = {
  platform: { type: 'enum', default: 'tdx', values: ['tdx', 'snp'], description: 'Intel TDX or AMD SEV-SNP host side' },
  sept: { type: 'enum', default: '4k', values: ['4k', '2m'], description: 'TDX: S-EPT mapping size KVM uses (upstream maps private memory 4K only)' },
  tdx_module: { type: 'enum', default: '1.5', values: ['1.5', '1.0'], description: 'TDX: the TDX module whose S-EPT locking is modelled' },
  psc: { type: 'enum', default: 'ghcb', values: ['ghcb', 'msr'], description: 'SNP: page state changes through GHCB batches or the MSR protocol (one 4K per VMGEXIT)' },
  snp_backing: { type: 'enum', default: '4k', values: ['4k', '2m'], description: 'SNP: guest_memfd folio size (upstream 4K; 2M with the unmerged THP series)' },
  fidelity: { type: 'enum', default: 'aggregate', values: ['aggregate', 'per-page'], description: 'host model: per-2M aggregated steps or every 4K operation its own step' },
};

export const guestParams: Record<string, ParamSpec> = {
  memory_gib: { type: 'number', default: 4, unit: 'GiB', description: 'guest RAM', min: 1, max: 4096, integer: true },
  vcpus: { type: 'number', default: 4, unit: 'vCPUs', description: 'guest vCPUs', min: 1, max: 512, integer: true },
  accept: { type: 'enum', default: 'lazy', values: ['eager', 'lazy', 'background'], description: 'accept_memory=eager|lazy, or lazy plus background acceptor threads (seed option 3)' },
  accept_lock: { type: 'enum', default: 'dropped', values: ['held', 'dropped'], description: 'unaccepted_memory_lock held across arch_accept_memory (v6.5) or dropped with accepting_list (upstream)' },
  allocator: { type: 'enum', default: 'upstream', values: ['seed', 'upstream'], description: 'seed-era PageUnaccepted buddy pages, or zone->unaccepted_pages with cond_accept_memory' },
  firmware: { type: 'enum', default: 'lazy', values: ['lazy', 'eager'], description: 'firmware pre-accepts firmware_accept_mib (lazy) or all memory (PcdLazyAcceptPartialMemorySize=0)' },
  firmware_accept_mib: { type: 'number', default: 512, unit: 'MiB', description: 'PcdLazyAcceptPartialMemorySize', min: 0, max: 1 << 22, integer: true },
  deferred_struct_page_init: { type: 'boolean', default: true, description: 'CONFIG_DEFERRED_STRUCT_PAGE_INIT' },
  wmark_zero_fix: { type: 'boolean', default: true, description: 'the 2025 fix: accept one block per allocation while watermarks are zero' },
  thp: { type: 'enum', default: 'madvise', values: ['always', 'madvise', 'never'], description: 'transparent_hugepage/enabled (Ubuntu madvise, RHEL always): when enabled, khugepaged\'s start (subsys initcall) raises min_free_kbytes to 11 pageblocks per zone (max 5% of lowmem) and with it the promo watermark cond_accept_memory() fills to' },
  hz: { type: 'number', default: 1000, unit: 'Hz', description: 'CONFIG_HZ: idle vCPUs exit at each tick', min: 0, max: 10000, integer: true },
  nohz_idle: { type: 'boolean', default: false, description: 'the tick stops on idle vCPUs (no idle exits)' },
  background_threads: { type: 'number', default: 1, unit: 'threads', description: 'accept=background: acceptor threads', min: 1, max: 512, integer: true },
  background_pace_us: { type: 'number', default: 0, unit: 'us', description: 'accept=background: pause between two blocks', min: 0, max: 1e9 },
};

/** The same parameter with another default. */
export function withDefault(spec: ParamSpec, value: number | string | boolean): ParamSpec {
  return { ...spec, default: value } as ParamSpec;
}

/** The guest configuration a parameter set describes. */
export function guestConfigFrom(p: Params, overrides: Partial<GuestConfig> = {}): GuestConfig {
  return defaultGuestConfig({
    memoryBytes: (p['memory_gib'] as number) * GiB,
    vcpus: p['vcpus'] as number,
    accept: p['accept'] as GuestConfig['accept'],
    acceptLock: p['accept_lock'] as GuestConfig['acceptLock'],
    allocator: p['allocator'] as GuestConfig['allocator'],
    firmware: p['firmware'] as GuestConfig['firmware'],
    firmwareAcceptBytes: (p['firmware_accept_mib'] as number) * MiB,
    deferredStructPageInit: p['deferred_struct_page_init'] as boolean,
    wmarkZeroFix: p['wmark_zero_fix'] as boolean,
    thp: p['thp'] as GuestConfig['thp'],
    hz: p['hz'] as number,
    nohzIdle: p['nohz_idle'] as boolean,
    background: { threads: p['background_threads'] as number, paceNs: (p['background_pace_us'] as number) * US },
    ...overrides,
  });
}

/** The host side for the guest's vCPUs, and its memory bandwidth for the guest's own page touching. */
export function createPlatform(sim: Sim, p: Params, config: PlatformConfig): Platform {
  const fidelity = p['fidelity'] as 'aggregate' | 'per-page';
  switch (p['platform']) {
    case 'tdx':
      return createTdxPlatform(sim, { ...config, sept: p['sept'] as '4k' | '2m', tdxModule: p['tdx_module'] as '1.5' | '1.0', fidelity });
    case 'snp':
      return createSnpPlatform(sim, { ...config, psc: p['psc'] as 'ghcb' | 'msr', snpBacking: p['snp_backing'] as '4k' | '2m', fidelity });
    default:
      throw new Error(`platform ${String(p['platform'])} is not available`);
  }
}

/** Builds the guest on its platform (the guest's page clearing shares the platform's memory bandwidth). */
export function buildGuest(sim: Sim, p: Params, overrides: Partial<GuestConfig> = {}): { k: GuestKernel; platform: Platform } {
  const k = new GuestKernel(sim, guestConfigFrom(p, overrides), (config) => createPlatform(sim, p, config));
  return { k, platform: k.platform };
}

// ---- Shared metrics ---------------------------------------------------------------------------

/** Combinations of valid values that the guest model cannot run, as bad input (exit 2). */
export function checkGuestParams(p: Params): string | undefined {
  if (p['accept'] === 'background' && p['allocator'] === 'seed') {
    return 'accept=background needs allocator=upstream: the seed-era allocator keeps unaccepted memory in the buddy lists, with no unaccepted_pages list for acceptor threads to take blocks from';
  }
  return undefined;
}

const times = (unit: string, description: string): MetricSpec => ({ unit, description, tolerance: { kind: 'relative', value: 0.05 } });
const count = (unit: string, description: string): MetricSpec => ({ unit, description, tolerance: { kind: 'exact' } });

export const acceptMetricSpecs: Record<string, MetricSpec> = {
  accept_cpu_s: times('s', 'vCPU time inside arch_accept_memory(), all vCPUs'),
  accept_cpu_max_vcpu_s: times('s', 'the busiest vCPU\'s time inside arch_accept_memory()'),
  accepted_gib: times('GiB', 'memory accepted by the end of the run (firmware included)'),
  accepting_list_waits: count('waits', 'accept_memory() callers that found an overlapping range on accepting_list'),
  accepting_list_wait_ms: times('ms', 'time those callers spun, interrupts off'),
  accept_lock_acquisitions: count('acquisitions', 'unaccepted_memory_lock acquisitions'),
  accept_lock_contended: count('acquisitions', 'unaccepted_memory_lock acquisitions that had to spin'),
  accept_lock_wait_ms: times('ms', 'total spin time on unaccepted_memory_lock'),
  soft_lockups: count('reports', 'non-preemptible stretches longer than 20 s (watchdog_thresh x 2)'),
  oom_events: count('events', 'allocations that found no page in any zone'),
  wmark_zero_blocks: count('blocks', 'MAX_ORDER blocks accepted while watermarks were zero'),
  background_accept_s: times('s', 'accept=background: vCPU time the acceptor threads spent accepting'),
  background_cpu_s: times('s', 'accept=background: compute time of the acceptor threads outside arch_accept_memory()'),
  idle_ticks: count('ticks', 'timer ticks taken by idle vCPUs (each an exit to the host)'),
};

/** The acceptance metrics every accept-* experiment reports. */
export function acceptMetrics(sim: Sim, k: GuestKernel): Record<string, number> {
  const m = k.metrics;
  const lock = k.unaccepted.unaccepted_memory_lock.stats;
  return {
    accept_cpu_s: m.acceptNsTotal / 1e9,
    accept_cpu_max_vcpu_s: Math.max(...m.acceptNsPerVcpu) / 1e9,
    accepted_gib: m.acceptedBytes / GiB,
    accepting_list_waits: m.acceptingListWaits,
    accepting_list_wait_ms: m.acceptingListWaitNs / 1e6,
    accept_lock_acquisitions: lock.acquisitions,
    accept_lock_contended: lock.contended,
    accept_lock_wait_ms: lock.wait.sum / 1e6,
    soft_lockups: sim.softLockups.length,
    oom_events: m.oomEvents,
    wmark_zero_blocks: m.wmarkZeroBlocks,
    background_accept_s: (m.acceptNsBy.get('background') ?? 0) / 1e9,
    background_cpu_s: (k.acceptor?.cpuNs() ?? 0) / 1e9,
    idle_ticks: k.idle.ticks,
  };
}

/** Memory accepted over time (GiB against seconds of virtual time). */
export function acceptedCurve(k: GuestKernel): Curve {
  const m = k.metrics;
  return { x: m.acceptedCurveT.map((t) => t / 1e9), y: m.acceptedCurveBytes.map((b) => b / GiB), xUnit: 's', yUnit: 'GiB' };
}

/** Acceptance time per vCPU. */
export function acceptPerVcpuCurve(k: GuestKernel): Curve {
  const per = k.metrics.acceptNsPerVcpu;
  return { x: per.map((_, i) => i), y: per.map((ns) => ns / 1e9), xUnit: 'vCPU', yUnit: 's' };
}

// ---- accept-boot ---------------------------------------------------------------------------

export const acceptBoot: Experiment = {
  name: 'accept-boot',
  question: 'Q1: how long does a confidential guest take to boot to init and to a shell when it accepts its memory eagerly, lazily, or lazily with background acceptor threads?',
  params: {
    ...platformParams,
    ...guestParams,
    app_gib: { type: 'number', default: 0, unit: 'GiB', description: 'optional application phase after boot: memory allocated and touched', min: 0, max: 4096 },
    app_threads: { type: 'number', default: 4, unit: 'threads', description: 'application threads', min: 1, max: 512, integer: true },
  },
  metrics: {
    boot_to_init_s: times('s', 'VM start to run_init_process()'),
    boot_to_userspace_s: times('s', 'VM start to a shell (boot-to-shell)'),
    firmware_s: times('s', 'VM start to ExitBootServices (firmware, its pre-accept included)'),
    kernel_s: times('s', 'start_kernel() to run_init_process()'),
    app_s: times('s', 'application phase duration (0 without one)'),
    ...acceptMetricSpecs,
  },
  check: checkGuestParams,
  run(p: Params, sim: Sim) {
    const { k } = buildGuest(sim, p);
    const appGib = p['app_gib'] as number;
    const application = appGib > 0 ? defaultApplicationConfig({ threads: p['app_threads'] as number, bytes: Math.round(appGib * GiB) }) : null;
    const result = runGuest(sim, k, { application });
    const at = (name: string) => (k.metrics.milestones.get(name) ?? 0) / 1e9;
    return {
      metrics: {
        boot_to_init_s: at('init'),
        boot_to_userspace_s: at('userspace'),
        firmware_s: at('exit_boot_services'),
        kernel_s: at('init') - at('start_kernel'),
        app_s: result.application === null ? 0 : (result.application.endNs - result.application.startNs) / 1e9,
        ...acceptMetrics(sim, k),
      },
      curves: { accepted_gib: acceptedCurve(k), accept_s_per_vcpu: acceptPerVcpuCurve(k) },
    };
  },
};
