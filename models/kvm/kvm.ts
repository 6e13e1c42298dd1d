import { assert } from '../../sim/assert.ts';
import { CacheLines, Mutex, RwLock, countMetric, measureMetric, prefixedMetrics, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { CACHE_LINE_METRICS, DEFAULT_LINE_OPTIONS, cacheLineMetrics, type LineOptions } from '../arch/cache_lines.ts';
import { ExitStats } from './exit_stats.ts';
import { GMEM_FILE, GMEM_PAGES, GMEM_POLICY, KVM_WORDS, pcpRefills } from './kvm_words.ts';
import { GUEST_MEMFD_METRICS, type GuestMemfd } from './guest_memfd.ts';
import { KVM_COSTS, type KvmCosts } from './kvm_costs.ts';
import { KVM_ATTRIBUTE_METRICS, type KvmMemoryAttributes } from './memory_attributes.ts';
import { KVM_MMU_NOTIFIER_METRICS, type MmuNotifierCounters } from './mmu_notifier.ts';
import { KVM_SEV_METRICS, type KvmSev } from './sev.ts';
import type { KvmTdx } from './tdx.ts';
import type { KvmUserspace } from './userspace.ts';

/**
 * What KVM does on RET_PF_RETRY for a TD's private fault (a SEAMCALL answered BUSY):
 * - 'local': upstream (tdx_handle_ept_violation() loops __vmx_handle_ept_violation() while no
 *   signal/interrupt is pending, with cond_resched(); [zhao-tdx-local-retry], merged with the
 *   TDX MMU series);
 * - 'reenter': the earlier tree ([intel-tdx-2024-kvm]): return to the guest, which re-executes the
 *   TDCALL and takes the EPT violation again.
 */
export const KVM_RETRIES = ['local', 'reenter'] as const;
export type KvmRetry = (typeof KVM_RETRIES)[number];

export interface KvmConfig {
  retry?: KvmRetry;
  costs?: Partial<KvmCosts>;
  /** The host's cache lines (costs, sockets, on/off); default one socket, on. */
  lines?: LineOptions;
  /** The zone->lock words of the host's nodes (one line each) and the node this VM's folios come from. */
  zoneLines?: CacheLines;
  node?: number;
}

/** What Kvm.metrics() writes, under the VM's prefix (`vm1.kvm`). */
export const KVM_METRICS: MetricSpecs = {
  'exits.*': countMetric('exits', 'VM exits by reason (EPT_VIOLATION, TDVMCALL_HLT, VMGEXIT_PSC, HLT, KVM_EXIT_HYPERCALL) and in total'),
  'exit_ns.*': measureMetric('ns', 'time vCPUs spent out of the guest, by exit reason and in total'),
  'mmu_lock.acquisitions': countMetric('acquisitions', 'kvm->mmu_lock acquisitions (read and write)'),
  'mmu_lock.waits': countMetric('acquisitions', 'kvm->mmu_lock acquisitions that waited'),
  'mmu_lock.wait_ns': measureMetric('ns', 'total wait for kvm->mmu_lock'),
  'slots_lock.acquisitions': countMetric('acquisitions', 'kvm->slots_lock acquisitions'),
  'slots_lock.waits': countMetric('acquisitions', 'kvm->slots_lock acquisitions that waited'),
  'slots_lock.wait_ns': measureMetric('ns', 'total wait for kvm->slots_lock'),
  ret_pf_retry: countMetric('retries', 'RET_PF_RETRY rounds after a BUSY SEAMCALL or a frozen SPTE'),
  vcpu_migrations: countMetric('loads', 'vcpu_load() on another host CPU than the vCPU last ran on'),
  vcpu_migration_ns: measureMetric('ns', 'what those cost the vCPUs (TDX: IPI + TDH.VP.FLUSH on the old CPU)'),
  ...prefixedMetrics('lines', CACHE_LINE_METRICS),
  ...prefixedMetrics('gmem', GUEST_MEMFD_METRICS),
  ...prefixedMetrics('sev', KVM_SEV_METRICS),
  ...prefixedMetrics('attr', KVM_ATTRIBUTE_METRICS),
  ...prefixedMetrics('mmu_notifier', KVM_MMU_NOTIFIER_METRICS),
};

/**
 * `struct kvm` of one VM: its locks, its exit accounting, its costs, its guest_memfd, and the
 * technology's per-VM state (`struct kvm_tdx` or `struct kvm_sev_info`). Lock names carry the
 * VM (`vm1/mmu_lock`), so lock statistics of several VMs stay apart.
 */
export class Kvm {
  /**
   * kvm->mmu_lock, an rwlock_t on x86: the TDP MMU fault path takes it for read
   * (kvm_tdp_mmu_page_fault(): read_lock), zaps and attribute changes for write. A queued
   * rwlock (qrwlock): fair, an arrival waits behind any queued waiter and consecutive readers at
   * the head enter together. Its waiters spin on the host CPU the vCPU thread holds; the vCPU is
   * inside a VM exit, so its wait is stall time.
   */
  readonly mmuLock: RwLock;
  /**
   * kvm->slots_lock, a mutex: memslot and memory-attribute updates. Its waiter (the VMM's
   * ioctl on the vCPU thread) sleeps in the host, but the vCPU stays in its exit: stall time.
   */
  readonly slotsLock: Mutex;
  readonly exits = new ExitStats();
  readonly costs: KvmCosts;
  readonly retry: KvmRetry;
  /** RET_PF_RETRY rounds taken after a BUSY SEAMCALL. */
  retries = 0;
  /** vcpu_load() on another host CPU than last time, and the time it cost (TDX: the flush). */
  vcpuMigrations = 0;
  vcpuMigrationNs = 0;
  /** struct kvm_tdx (a TD) or struct kvm_sev_info (an SNP guest); exactly one is set. */
  tdx: KvmTdx | null = null;
  sev: KvmSev | null = null;
  /** Memory attributes and their conversions (memory_attributes.ts); null when the run converts nothing. */
  attrs: KvmMemoryAttributes | null = null;
  /** The VMM process this VM's exits to userspace go to. */
  userspace: KvmUserspace | null = null;
  /**
   * kvm->mmu_invalidate_seq and kvm->mmu_invalidate_in_progress ([linux:virt/kvm/kvm_main.c]
   * kvm_mmu_invalidate_begin/end): a fault that read the sequence before an invalidation ended,
   * or finds one in progress over its GFN, answers RET_PF_RETRY (is_page_fault_stale(),
   * [linux:arch/x86/kvm/mmu/mmu.c]). The GFN range of the invalidations in progress is kept as
   * the union of their ranges (kvm->mmu_invalidate_range_start/end).
   */
  mmuInvalidateSeq = 0;
  mmuInvalidateInProgress = 0;
  mmuInvalidateRangeStart = 0;
  mmuInvalidateRangeEnd = 0;
  /** What the MMU notifier's invalidations did (models/kvm/mmu_notifier.ts). */
  readonly mmuNotifier: MmuNotifierCounters = { invalidations: 0, writeHolds: 0, writeHoldNs: 0, faultsDelayed: 0, faultsRetried: 0 };

  constructor(
    readonly sim: Sim,
    /** The VM's name: `vm1`. */
    readonly name: string,
    readonly gmem: GuestMemfd,
    config: KvmConfig = {},
  ) {
    this.mmuLock = new RwLock(sim, `${name}/mmu_lock`, 'fifo', 'stall');
    this.slotsLock = new Mutex(sim, `${name}/slots_lock`, 'stall');
    this.costs = { ...KVM_COSTS, ...config.costs };
    this.retry = config.retry ?? 'local';
    this.words = new CacheLines(sim, `${name}/kvm_words`, { ...(config.lines ?? DEFAULT_LINE_OPTIONS), lines: KVM_WORDS.length });
    this.zoneLines = config.zoneLines ?? null;
    this.node = config.node ?? 0;
  }

  /** The VM-wide words (KVM_WORDS) as cache lines. */
  readonly words: CacheLines;
  /** zone->lock of each host node (host-wide), and the node of this VM's memory. */
  readonly zoneLines: CacheLines | null;
  readonly node: number;

  /**
   * The host work of guest_memfd's first use of `folios` folios in a row, besides the clear:
   * each folio (gmemFolioNs) and its page-cache insert under the i_pages lock, the file reference
   * and the shared-policy lock, and zone->lock when the pcp list needs a refill. Called before the
   * folios are allocated (gmem.folios counts them afterwards). Returns ns to stall.
   */
  gmemFolioNs(folios: number): number {
    const w = this.words;
    const c = this.costs;
    let ns = 0;
    for (let i = 0; i < folios; i++) {
      ns += c.gmemFolioNs + w.touch(GMEM_FILE) + w.touch(GMEM_POLICY) + w.touch(GMEM_PAGES, c.gmemInsertNs) + w.touch(GMEM_FILE);
    }
    const refills = pcpRefills(this.gmem.folios, folios);
    for (let i = 0; i < refills; i++) ns += this.zoneLines === null ? c.zoneRefillNs : this.zoneLines.touch(this.node, c.zoneRefillNs);
    return ns;
  }

  /**
   * kvm_arch_vcpu_load() of a vCPU on host CPU `to` after it last ran on `from`: for a TD,
   * tdx_vcpu_load() flushes it off `from` first (tdx_flush_vp_on_cpu(): an IPI that runs
   * TDH.VP.FLUSH there, waited for); a normal or SNP vCPU pays nothing modelled. Returns the ns
   * the vCPU thread spends before it continues.
   */
  vcpuLoad(): number {
    this.vcpuMigrations++;
    const ns = this.tdx === null ? 0 : this.costs.ipiNs + this.tdx.module.costs.vpFlushNs;
    this.vcpuMigrationNs += ns;
    return ns;
  }

  /** Whether a vCPU still holds one of KVM's locks (none may at the end of a run). */
  get locksHeld(): boolean {
    const mmu = this.mmuLock;
    return mmu.writer !== null || mmu.readers.size > 0 || this.slotsLock.holder !== null;
  }

  /**
   * A section under mmu_lock held for write: returns how long it was held and how many
   * acquisitions (faults) queued behind it meanwhile, for the caller's own counters.
   */
  *mmuWriteSection(body: () => Proc<void>): Proc<{ heldNs: number; delayed: number }> {
    const sim = this.sim;
    yield this.mmuLock.acquire('exclusive');
    const t0 = sim.now;
    const waits0 = this.mmuLock.stats.contended;
    yield* body();
    const delayed = this.mmuLock.stats.contended - waits0;
    this.mmuLock.release('exclusive');
    return { heldNs: sim.now - t0, delayed };
  }

  /** kvm_mmu_invalidate_begin() over [first, first + n) (under mmu_lock for write). */
  mmuInvalidateBegin(first: number, n: number): void {
    if (this.mmuInvalidateInProgress === 0) {
      this.mmuInvalidateRangeStart = first;
      this.mmuInvalidateRangeEnd = first + n;
    } else {
      this.mmuInvalidateRangeStart = Math.min(this.mmuInvalidateRangeStart, first);
      this.mmuInvalidateRangeEnd = Math.max(this.mmuInvalidateRangeEnd, first + n);
    }
    this.mmuInvalidateInProgress++;
  }

  /** kvm_mmu_invalidate_end() (under mmu_lock for write): the sequence moves on, faults that read it retry. */
  mmuInvalidateEnd(): void {
    assert(this.mmuInvalidateInProgress > 0, 'kvm_mmu_invalidate_end() without a begin', this.name);
    this.mmuInvalidateSeq++;
    this.mmuInvalidateInProgress--;
  }

  /**
   * Whether a fault on `gfn` that read mmu_invalidate_seq as `seq` is stale
   * (mmu_invalidate_retry_gfn(), [linux:include/linux/kvm_host.h]): an invalidation in progress
   * over the GFN, or one that ended since the fault read the sequence.
   */
  faultIsStale(seq: number, gfn: number): boolean {
    if (this.mmuInvalidateInProgress > 0 && gfn >= this.mmuInvalidateRangeStart && gfn < this.mmuInvalidateRangeEnd) return true;
    return this.mmuInvalidateSeq !== seq;
  }

  /**
   * A VM exit with no work of its own, `ns` from exit to re-entry, recorded under `reason` (an
   * idle vCPU's timer tick). The vCPU thread runs it on the host CPU it holds.
   */
  *fixedExit(reason: string, ns: number): Proc<void> {
    const start = this.sim.now;
    yield this.sim.stallFor(ns);
    this.exits.record(reason, this.sim.now - start);
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES from the VMM for a range that is already private (acceptance
   * converts nothing): kvm_vm_set_mem_attributes() takes slots_lock and returns once
   * kvm_range_has_memory_attributes() finds nothing to change.
   */
  *kvm_vm_set_mem_attributes_unchanged(): Proc<void> {
    yield this.slotsLock.acquire();
    yield this.sim.stallFor(this.costs.setMemoryAttributesNs);
    this.slotsLock.release();
  }

  /** KVM's metrics of this VM under `prefix` (e.g. `vm1.kvm`). */
  metrics(prefix: string, out: Record<string, number>): void {
    this.exits.metrics(prefix, out);
    const mmu = this.mmuLock.stats;
    out[`${prefix}.mmu_lock.acquisitions`] = mmu.acquisitions;
    out[`${prefix}.mmu_lock.waits`] = mmu.contended;
    out[`${prefix}.mmu_lock.wait_ns`] = mmu.wait.sum;
    out[`${prefix}.slots_lock.acquisitions`] = this.slotsLock.stats.acquisitions;
    out[`${prefix}.slots_lock.waits`] = this.slotsLock.stats.contended;
    out[`${prefix}.slots_lock.wait_ns`] = this.slotsLock.stats.wait.sum;
    out[`${prefix}.ret_pf_retry`] = this.retries;
    out[`${prefix}.vcpu_migrations`] = this.vcpuMigrations;
    out[`${prefix}.vcpu_migration_ns`] = this.vcpuMigrationNs;
    if (this.words.enabled) cacheLineMetrics(`${prefix}.lines`, out, this.words, KVM_WORDS);
    this.gmem.metrics(`${prefix}.gmem`, out);
    this.sev?.metrics(`${prefix}.sev`, out);
    this.attrs?.metrics(`${prefix}.attr`, out);
    // Only where a VMM can discard shared backing: SNP guests (their PSC reaches the VMM) and VMs that convert.
    if (this.sev !== null || this.attrs !== null) {
      const n = this.mmuNotifier;
      out[`${prefix}.mmu_notifier.invalidations`] = n.invalidations;
      out[`${prefix}.mmu_notifier.write_holds`] = n.writeHolds;
      out[`${prefix}.mmu_notifier.write_hold_ns`] = n.writeHoldNs;
      out[`${prefix}.mmu_notifier.faults_delayed`] = n.faultsDelayed;
      out[`${prefix}.mmu_notifier.faults_retried`] = n.faultsRetried;
    }
  }
}
