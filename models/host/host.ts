import { Bandwidth, CacheLines, HostCpus, countMetric, measureMetric, prefixedMetrics, type CacheLineCosts, type MetricSpecs, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { WriteRate } from '../arch/write_rate.ts';
import { CACHE_LINE_COSTS, CACHE_LINE_METRICS, cacheLineMetrics, type LineOptions } from '../arch/cache_lines.ts';
import { SIZE_2M } from '../arch/units.ts';
import { Rmp } from '../snp/rmp.ts';
import { SnpFirmware } from '../snp/snp_firmware.ts';
import { HostMemory, equalNodes, type OwnerId } from './host_memory.ts';
import { SNP_HOST_METRICS, SnpHostKernel } from './snp_rmpupdate.ts';
import type { SnpCosts } from '../snp/snp_costs.ts';
import { TDX_COSTS, type TdxCosts } from '../tdx/tdx_costs.ts';
import { TDX_MODULE_METRICS, TdxModule, type TdxModuleVersion } from '../tdx/tdx_module.ts';
import { tdmrPamtBytes, tdmrsFor, type PamtMode } from '../tdx/pamt.ts';
import { PAMT_POLICIES, TDX_PAMT_KERNEL_METRICS, TdxPamtKernel, type PamtPolicy } from './tdx_pamt.ts';
import { SNP_COSTS } from '../snp/snp_costs.ts';
import { PlatformConfigError, costs, integerIn, oneOf, positive } from './config_check.ts';

/** The confidential-computing technology of a host: Intel TDX or AMD SEV-SNP. */
export const TECHNOLOGIES = ['tdx', 'snp'] as const;
export type Technology = (typeof TECHNOLOGIES)[number];

/** The host machine that several confidential guests share. */
export interface HostConfig {
  technology: Technology;
  /** Host CPUs (logical CPUs, hardware threads). */
  cpus: number;
  /** SMT: two hardware threads per core (cpus must be even). Default off. */
  smt?: boolean;
  /** Host RAM, bytes (a multiple of 2 MiB per socket), split evenly over the sockets' NUMA nodes. */
  memoryBytes: number;
  /** Sockets, one NUMA node and one memory bandwidth each (default 1). */
  sockets?: number;
  /**
   * Memory bandwidth of each socket, bytes/s, shared by every clear and zero (processor sharing).
   * ESTIMATE [estimate:accept-bandwidth-ceiling]: a DDR5 socket writes 100-300 GB/s; default the
   * middle, 200 GB/s.
   */
  memoryBandwidthBytesPerSec?: number;
  /**
   * What one host CPU clears, bytes/s (clear_highpage() of guest_memfd pages on first use).
   * [arora-2025-10-clear-pages]: 12.9 GB/s for 2M pages, baseline kernel (AMD Milan demand
   * faults, [R13]).
   */
  clearBytesPerSec?: number;
  /** TDX: the module whose locking is modelled. */
  tdxModule?: TdxModuleVersion;
  tdxCosts?: Partial<TdxCosts>;
  /**
   * TDX: how the kernel runs the module's PAMT: 'static' (default, upstream), 'refcount'
   * (Dynamic PAMT, v6 series) or 'lazy' (the abandoned scheme); see models/host/tdx_pamt.ts.
   */
  pamt?: PamtPolicy;
  /**
   * Admit VMs whose memory does not fit: KVM itself never refuses a VM for its size (guest_memfd
   * allocates on first use, so an overcommitted host fails a fault with -ENOMEM instead). Off by
   * default: the experiments refuse such a host up front as bad input.
   */
  overcommit?: boolean;
  snpCosts?: Partial<SnpCosts>;
  /**
   * Contended cache lines (`cache_lines`): an atomic on a shared word (TD-wide lock words,
   * mmu_lock, guest_memfd's, zone->lock) that another CPU wrote last moves its line. Default on;
   * false leaves the transfers out (hold times stay).
   */
  cacheLines?: boolean;
  cacheLineCosts?: CacheLineCosts;
  /**
   * SNP: rmpupdate() of a 4K page splits the host direct map around it (adjust_direct_map(),
   * [linux:arch/x86/virt/svm/sev.c]); default true, false leaves the mechanism out.
   */
  snpDirectMapSplit?: boolean;
}

export const HOST_DEFAULTS = {
  memoryBandwidthBytesPerSec: 200e9,
  clearBytesPerSec: 12.9e9,
} as const;

/** What the host knows of a VM it runs: its number, name, key and size. */
export interface HostVmRecord {
  /** 1, 2, ...: the order VMs joined the host. */
  readonly id: number;
  /** `vm1`. */
  readonly name: string;
  readonly vcpus: number;
  readonly memoryBytes: number;
  /** TDX: the HKID KVM allocated (tdx_guest_keyid_alloc()); SNP: the ASID (sev_asid_new()). */
  readonly key: number;
  /** Its owner id in host memory, and the NUMA node (socket) its memory and clears are on. */
  readonly owner: OwnerId;
  readonly node: number;
}

/** A socket: its memory bandwidth, which every clear and zero of memory on its node shares. */
export interface Socket {
  readonly memory: Bandwidth;
}

/** What Host.metrics() writes. */
export const HOST_METRICS: MetricSpecs = {
  'host.cpus': countMetric('CPUs', 'host CPUs'),
  'host.cpus.busy_ns': measureMetric('ns', 'host CPU time held by vCPU threads (guest code and exits)'),
  'host.cpus.idle_ns': measureMetric('ns', 'host CPU time nobody held (busy + idle = CPUs x run time)'),
  'host.cpus.utilisation': measureMetric('fraction', 'busy / (CPUs x run time)'),
  'host.cpus.grants': countMetric('grants', 'times a vCPU thread got a host CPU (on waking or after a wait)'),
  'host.cpus.waits': countMetric('waits', 'grants that waited in the run queue'),
  'host.cpus.wait_ns': measureMetric('ns', 'total run-queue wait (the guests\' steal time)'),
  'host.cpus.wait_p99_ns': measureMetric('ns', 'run-queue wait, 99th percentile of the waits'),
  'host.cpus.wait_max_ns': measureMetric('ns', 'the longest run-queue wait'),
  'host.cpus.migrations': countMetric('grants', 'grants on another host CPU than the vCPU last ran on'),
  'host.cpus.preemptions': countMetric('preemptions', 'vCPU threads that gave their host CPU to a waiter at a slice end'),
  'host.memory_bandwidth.bytes': countMetric('bytes', 'bytes written through the socket memory bandwidth'),
  'host.vms': countMetric('VMs', 'VMs on the host'),
  'host.memory.used_bytes': countMetric('bytes', 'host memory in use at the end of the run (guest_memfd, S-EPT and TD control pages, the RMP)'),
  'host.memory.used_bytes_peak': countMetric('bytes', 'the most host memory in use at any time'),
  'host.memory.used_bytes_mean': measureMetric('bytes', 'host memory in use, time-weighted mean over the run'),
  'host.memory.free_bytes': countMetric('bytes', 'host memory free at the end of the run'),
  'host.memory.reserved_bytes': countMetric('bytes', 'host memory in blocks taken from the free pool (partly used blocks whole)'),
  'host.memory.free_1g_chunks': countMetric('chunks', 'aligned 1 GiB ranges entirely free (fragmentation)'),
  'host.memory.by_kind.*.bytes': countMetric('bytes', 'host memory in use by kind (gmem, sept, tdx_control, pamt, rmp, vmm_shared, kernel, firmware: the initial image in the firmware memslot)'),
  'host.memory.by_owner.*.bytes': countMetric('bytes', 'host memory in use by owner (each VM, the SNP firmware)'),
  ...prefixedMetrics('host.lines', CACHE_LINE_METRICS),
  ...prefixedMetrics('tdx', TDX_MODULE_METRICS),
  ...prefixedMetrics('host.tdx_pamt', TDX_PAMT_KERNEL_METRICS),
  ...SNP_HOST_METRICS,
};

/**
 * Why a host of `config` refuses VMs of these sizes (joining in this order), or undefined: a TD
 * may not have more vCPUs than the host has CPUs (tdx_vm_init(): kvm->max_vcpus =
 * min(max_vcpus, num_present_cpus())), and guest memory is not overcommitted: every VM's RAM
 * must fit beside the others' in the host memory left after the RMP (SNP). Arithmetic only, so
 * an experiment's check can ask it before building anything.
 */
export function admissionRefusal(config: HostConfig, vms: readonly { vcpus: number; memoryBytes: number }[]): string | undefined {
  const topology = topologyRefusal(config);
  if (topology !== undefined) return topology;
  let promised = 0;
  const rmp = config.technology === 'snp' ? Math.ceil(config.memoryBytes / 256 / SIZE_2M) * SIZE_2M : 0;
  const pamt = config.technology === 'tdx' ? pamtReserves(config).reduce((n, b) => n + b, 0) : 0;
  const usable = config.memoryBytes - rmp - pamt;
  for (const vm of vms) {
    if (config.technology === 'tdx' && vm.vcpus > config.cpus) {
      return `vcpus must be at most host_cpus for a TD: KVM's tdx_vm_init() caps a TD's vCPUs at num_present_cpus() (got vcpus=${vm.vcpus}, host_cpus=${config.cpus})`;
    }
    promised += vm.memoryBytes;
    if (promised > usable && config.overcommit !== true) return `host_memory_gib too small: the VMs' memory (${promised / 2 ** 30} GiB) does not fit in the host's ${usable / 2 ** 30} GiB`;
  }
  return undefined;
}

/**
 * The host memory the kernel gives the TDX module's PAMT at initialisation, per TDMR (one per
 * node), in whole 2 MiB blocks: tdmr_set_up_pamt() takes one alloc_contig_pages() per TDMR on
 * its node for the PAMT_1G, PAMT_2M and PAMT_4K levels (static), or for PAMT_1G, PAMT_2M and the
 * page bitmap with Dynamic PAMT, whose PAMT_4K pairs come later, page by page
 * ([linux:arch/x86/virt/vmx/tdx/tdx.c], [dpamt-v6-2026-05]).
 */
export function pamtReserves(config: HostConfig): number[] {
  const mode: PamtMode = (config.pamt ?? 'static') === 'static' ? 'static' : 'dynamic';
  const nodes = equalNodes(config.memoryBytes, config.sockets ?? 1);
  return tdmrsFor(nodes).map((t) => {
    const b = tdmrPamtBytes(t);
    const bytes = b.pamt1g + b.pamt2m + (mode === 'static' ? b.pamt4k : b.bitmap);
    return Math.ceil(bytes / SIZE_2M) * SIZE_2M;
  });
}

/** Host CPUs split evenly over the sockets, two per core with SMT. */
function topologyRefusal(config: HostConfig): string | undefined {
  const sockets = config.sockets ?? 1;
  const threadsPerCore = config.smt === true ? 2 : 1;
  if (config.cpus % (threadsPerCore * sockets) === 0) return undefined;
  return `host_cpus must be a multiple of sockets${threadsPerCore === 2 ? ' x 2 (SMT: two threads per core)' : ''} (got host_cpus=${config.cpus}, sockets=${sockets})`;
}

/**
 * One host per run, shared by the VMs that join it: its CPUs, its socket's memory bandwidth,
 * the TDX module (one per host, with a Td per guest inside it) or the SNP firmware, and the
 * record of its VMs with their keys. A VM joins with admit(); the VM's own state (its vCPUs,
 * struct kvm, guest_memfd, VMM, guest kernel) is the Vm's (models/vm/vm.ts).
 */
export class Host {
  /**
   * The host CPUs the VMs' vCPU threads run on (sim/host_cpus.ts): a vCPU holds one while it is
   * not halted, running guest code or handling an exit, and gives it back when it halts; with
   * more runnable vCPUs than host CPUs they queue (one FIFO run queue, EEVDF-sized time slices)
   * and the guest sees the wait as steal time.
   */
  readonly cpus: HostCpus;
  readonly sockets: readonly Socket[];
  /** Host physical memory: every page a guest, the TDX module or the firmware uses comes from it. */
  readonly memory: HostMemory;
  readonly clearRate: WriteRate;
  readonly tdx: TdxModule | null;
  /** TDX: the host kernel's side of the PAMT (its policy, refcounts, pamt_lock). */
  readonly tdxPamt: TdxPamtKernel | null;
  readonly snp: SnpFirmware | null;
  /** SNP: the RMP, one entry per 4K of host memory, indexed by host physical address. */
  readonly rmp: Rmp | null;
  /** The cache lines of this machine: costs, sockets, on or off. */
  readonly lineOptions: LineOptions;
  /** zone->lock of each node (host-wide: every VM's guest_memfd allocates from it). */
  readonly zoneLines: CacheLines;
  /** SNP: the host kernel's rmpupdate() with its direct-map splits and FAIL_OVERLAP retries. */
  readonly snpKernel: SnpHostKernel | null;
  private readonly vms: HostVmRecord[] = [];
  /** Ids of VMs that stopped (release()): their memory is back, admission no longer counts them. */
  private readonly ended = new Set<number>();

  constructor(
    readonly sim: Sim,
    readonly config: HostConfig,
  ) {
    integerIn('host_cpus', config.cpus, 1, 1 << 16, 1);
    const sockets = integerIn('sockets', config.sockets, 1, 64, 1);
    const threadsPerCore = config.smt === true ? 2 : 1;
    const topology = topologyRefusal(config);
    if (topology !== undefined) throw new PlatformConfigError(topology);
    if (!(config.memoryBytes > 0 && config.memoryBytes % (sockets * SIZE_2M) === 0)) {
      throw new PlatformConfigError(`host memory must be a positive multiple of 2 MiB per socket (got ${config.memoryBytes} bytes on ${sockets} socket(s))`);
    }
    positive('memoryBandwidthBytesPerSec', config.memoryBandwidthBytesPerSec);
    positive('clearBytesPerSec', config.clearBytesPerSec);
    costs('tdxCosts', config.tdxCosts, Object.keys(TDX_COSTS));
    costs('snpCosts', config.snpCosts, Object.keys(SNP_COSTS));
    this.cpus = new HostCpus(sim, 'host_cpus', { cpus: config.cpus, threadsPerCore, sockets });
    const bandwidth = config.memoryBandwidthBytesPerSec ?? HOST_DEFAULTS.memoryBandwidthBytesPerSec;
    this.sockets = Array.from({ length: sockets }, (_, i) => ({ memory: new Bandwidth(sim, sockets === 1 ? 'host_memory' : `host_memory/socket${i}`, bandwidth) }));
    const pamt = oneOf('pamt', config.pamt, PAMT_POLICIES, 'static');
    const nodes = equalNodes(config.memoryBytes, sockets);
    this.memory = new HostMemory(sim, { nodes });
    this.clearRate = new WriteRate(config.clearBytesPerSec ?? HOST_DEFAULTS.clearBytesPerSec);
    this.lineOptions = { ...CACHE_LINE_COSTS, ...config.cacheLineCosts, sockets, enabled: config.cacheLines ?? true };
    this.zoneLines = new CacheLines(sim, 'zone_lock', { ...this.lineOptions, lines: sockets });
    this.tdx = config.technology === 'tdx' ? new TdxModule(sim, config.tdxModule ?? '1.5', config.tdxCosts ?? {}, { mode: pamt === 'static' ? 'static' : 'dynamic', tdmrs: tdmrsFor(nodes) }, this.lineOptions) : null;
    if (this.tdx !== null) this.tdx.packages = sockets;
    const maxPa = nodes[nodes.length - 1]!.start + nodes[nodes.length - 1]!.bytes;
    this.tdxPamt = this.tdx === null ? null : new TdxPamtKernel(sim, pamt, this.tdx, this.memory, maxPa);
    if (this.tdx !== null) this.reservePamt();
    this.snp = config.technology === 'snp' ? new SnpFirmware(config.snpCosts ?? {}) : null;
    this.rmp = config.technology === 'snp' ? this.reserveRmp(config.memoryBytes) : null;
    this.snpKernel = this.rmp === null ? null : new SnpHostKernel(sim, this.rmp, this.snp!.costs, config.memoryBytes, config.cpus, config.snpDirectMapSplit ?? true);
  }

  /** The PAMT's memory, taken at module initialisation (pamtReserves), each TDMR's on its node. */
  private reservePamt(): void {
    const owner = this.memory.registerOwner('tdx-module');
    pamtReserves(this.config).forEach((bytes, node) => {
      if (this.memory.allocContig(owner, 'pamt', bytes, node) === null) throw new PlatformConfigError(`host memory too small for the TDX module's PAMT (${bytes} bytes on node ${node})`);
    });
  }

  /**
   * The RMP covers all host memory and is itself host memory the firmware reserves at boot
   * (16 bytes per 4K page, snp_rmptable_init() in [linux:arch/x86/virt/svm/sev.c]).
   */
  private reserveRmp(memoryBytes: number): Rmp {
    const owner = this.memory.registerOwner('snp-firmware');
    const blocks = Math.ceil(memoryBytes / 256 / SIZE_2M);
    for (let i = 0; i < blocks; i++) {
      if (this.memory.allocBlocks(owner, 'rmp', 9, 0) === null) throw new PlatformConfigError(`host memory too small for the RMP (${memoryBytes} bytes)`);
    }
    return new Rmp(memoryBytes);
  }

  /**
   * A VM joins the host: KVM_CREATE_VM with its vCPUs. TDX refuses a TD with more vCPUs than the
   * host has CPUs, as KVM does (tdx_vm_init(): kvm->max_vcpus = min(max_vcpus,
   * num_present_cpus())): bad input, naming both numbers. The key is the next HKID / ASID.
   */
  admit(vcpus: number, memoryBytes: number): HostVmRecord {
    const refused = admissionRefusal(this.config, [...this.vms.filter((v) => !this.ended.has(v.id)), { vcpus, memoryBytes }]);
    if (refused !== undefined) throw new PlatformConfigError(refused);
    const id = this.vms.length + 1;
    const name = `vm${id}`;
    const owner = this.memory.registerOwner(name);
    const record: HostVmRecord = { id, name, vcpus, memoryBytes, key: id, owner, node: (id - 1) % this.sockets.length };
    this.vms.push(record);
    return record;
  }

  /**
   * A VM stopped and KVM tore it down: its record ends. Every page its owner held must be back
   * in host memory (guest_memfd, S-EPT and control pages).
   */
  release(record: HostVmRecord): void {
    assert(this.vms[record.id - 1] === record && !this.ended.has(record.id), 'host: release of a VM that is not running', record.name);
    const left = this.memory.usedBytesBy(record.owner);
    if (left !== 0) assert(false, 'host: a stopped VM still holds host memory', { vm: record.name, bytes: left });
    this.ended.add(record.id);
  }

  /** Has the VM of `record` stopped? */
  hasEnded(record: HostVmRecord): boolean {
    return this.ended.has(record.id);
  }

  /** The host's own metrics under `prefix` (e.g. `host`), and the TDX module's under `tdx`. */
  metrics(out: Record<string, number>): void {
    const cpus = this.cpus;
    const use = cpus.accounting();
    out['host.cpus'] = cpus.cpus;
    out['host.cpus.busy_ns'] = use.busyNs;
    out['host.cpus.idle_ns'] = use.idleNs;
    out['host.cpus.utilisation'] = cpus.elapsedNs() > 0 ? use.busyNs / (cpus.cpus * cpus.elapsedNs()) : 0;
    out['host.cpus.grants'] = cpus.stats.acquisitions;
    out['host.cpus.waits'] = cpus.stats.contended;
    out['host.cpus.wait_ns'] = cpus.stats.wait.sum;
    out['host.cpus.wait_p99_ns'] = cpus.stats.contended > 0 ? cpus.stats.wait.quantile(0.99) : 0;
    out['host.cpus.wait_max_ns'] = cpus.stats.contended > 0 ? cpus.stats.wait.max : 0;
    out['host.cpus.migrations'] = cpus.migrations;
    out['host.cpus.preemptions'] = cpus.preemptions;
    out['host.memory_bandwidth.bytes'] = this.sockets.reduce((n, s) => n + s.memory.totalBytes, 0);
    out['host.vms'] = this.vms.length;
    this.memory.metrics('host.memory', out);
    if (this.zoneLines.enabled) cacheLineMetrics('host.lines', out, this.zoneLines, 'zone_lock');
    this.tdx?.metrics('tdx', out);
    if (this.tdxPamt !== null && this.tdxPamt.dynamic) this.tdxPamt.metrics('host.tdx_pamt', out);
    this.snpKernel?.metrics(out);
  }

  /** No host CPU still held; CPU time balances; memory, the RMP and the module's TDs balance. */
  checkInvariants(): void {
    const cpus = this.cpus;
    assert(cpus.inUse === 0 && cpus.waiting === 0, 'host CPUs still held or waited for at the end of the run', cpus.describe());
    const use = cpus.accounting();
    assert(use.busyNs + use.idleNs === cpus.cpus * cpus.elapsedNs(), 'host CPU busy + idle time is not CPUs x run time', { busy: use.busyNs, idle: use.idleNs, cpus: cpus.cpus, elapsed: cpus.elapsedNs() });
    this.memory.checkInvariants();
    this.rmp?.checkInvariants();
    this.tdx?.checkInvariants();
    this.tdxPamt?.checkInvariants();
    this.zoneLines.checkInvariants();
  }
}
