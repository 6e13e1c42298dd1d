import { Histogram, Mutex, countMetric, measureMetric, type Cpu, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import { CONVERSION_COSTS, type ConversionCosts } from './conversion_costs.ts';
import type { Kvm } from './kvm.ts';
import { tdx_zap_private_range } from './tdx_remove_private.ts';

/** Where KVM's fault path finds a shared page: the VMM's mapping (its host page size) or, in place, guest_memfd. */
export interface SharedMemorySource {
  /** The host mapping size of the shared backing at `page` (the largest KVM may map it at). */
  hostMappingPages(page: number): number;
  /** GUP of the shared pages [first, first + n) (one 2 MiB region): allocates and clears what is not populated yet. */
  faultIn(first: number, n: number): Proc<void>;
}

/** What KvmMemoryAttributes.metrics() writes (`vm1.kvm.attr`). */
export const KVM_ATTRIBUTE_METRICS: MetricSpecs = {
  'set.calls': countMetric('ioctls', 'KVM_SET_MEMORY_ATTRIBUTES that changed attributes'),
  'set.unchanged': countMetric('ioctls', 'KVM_SET_MEMORY_ATTRIBUTES that found nothing to change'),
  'set.pages': countMetric('pages', '4K pages whose attribute changed'),
  'set.ns_p50': measureMetric('ns', 'KVM_SET_MEMORY_ATTRIBUTES that changed something, median'),
  'set.ns_max': measureMetric('ns', 'KVM_SET_MEMORY_ATTRIBUTES that changed something, longest'),
  'mmu_lock_write.holds': countMetric('holds', 'mmu_lock write sections of attribute changes and guest_memfd punch holes (the shared backing\'s MMU notifier counts its own: mmu_notifier.*)'),
  'mmu_lock_write.hold_ns': measureMetric('ns', 'total mmu_lock write hold time of those'),
  'mmu_lock_write.hold_ns_max': measureMetric('ns', 'the longest one'),
  'mmu_lock_write.faults_delayed': countMetric('acquisitions', 'mmu_lock acquisitions (faults) that waited behind those write sections'),
  kicks: countMetric('IPIs', 'vCPUs in guest mode kicked out by remote TLB flushes and TDH.MEM.TRACK (KVM_REQ_OUTSIDE_GUEST_MODE / KVM_REQ_TLB_FLUSH)'),
  kick_requests: countMetric('requests', 'kvm_make_all_cpus_request() calls'),
  kick_lost_ns: measureMetric('ns', 'vCPU time lost by kicked vCPUs (exit, IPI, flush, entry), all vCPUs'),
  'shared_faults.4k': countMetric('faults', 'shared-memory EPT/NPT faults mapped at 4K'),
  'shared_faults.2m': countMetric('faults', 'shared-memory EPT/NPT faults mapped at 2M'),
  huge_refused_mixed: countMetric('faults', 'shared faults of a 2M-backed range mapped at 4K because the 2M range has mixed attributes'),
  mixed_2m_regions: countMetric('regions', '2 MiB ranges with mixed attributes at the end (KVM_LPAGE_MIXED_FLAG)'),
  mixed_2m_regions_peak: countMetric('regions', 'the most such ranges at any time'),
};

/**
 * The per-VM memory attributes of KVM (kvm->mem_attr_array, one entry per GFN: PRIVATE or not),
 * the 2M ranges whose attributes are mixed (hugepages disallowed there, [linux:arch/x86/kvm/mmu/mmu.c]),
 * the shared half of the TDP page tables (TDX: the shared EPT; SNP: the shared leaves of the
 * NPT; private leaves are read from the S-EPT or guest_memfd), the vCPU kicks of remote TLB
 * flushes, and KVM_SET_MEMORY_ATTRIBUTES itself ([linux:virt/kvm/kvm_main.c kvm_vm_set_mem_attributes]).
 * Made only for runs that convert memory (the accept experiments never change attributes).
 */
export class KvmMemoryAttributes {
  readonly private: PageBitmap;
  readonly mixed: Uint8Array;
  mixedCount = 0;
  mixedPeak = 0;
  /** Shared 4K leaves, and shared 2M leaves per region. */
  readonly shared4k: PageBitmap;
  readonly shared2m: Uint8Array;
  readonly costs: ConversionCosts;
  readonly setNs = new Histogram('kvm.set_memory_attributes');
  readonly counters = { calls: 0, unchanged: 0, pages: 0, writeHolds: 0, writeHoldNs: 0, writeHoldMax: 0, faultsDelayed: 0, kicks: 0, kickRequests: 0, kickLostNs: 0, sharedFaults4k: 0, sharedFaults2m: 0, hugeRefused: 0 };
  /** vCPU time each vCPU owes for kicks it took while running guest code (paid at its next step). */
  readonly kickDebt: number[];
  source: SharedMemorySource | null = null;
  /** The guest's timer period (a pending interrupt stops a MapGPA between chunks); 0: none. */
  timerPeriodNs = 0;
  /** guest_memfd's inode filemap_invalidate_lock (kvm_gmem_punch_hole() takes it exclusive). */
  readonly filemapInvalidateLock: Mutex;

  constructor(
    readonly kvm: Kvm,
    readonly vcpus: readonly Cpu[],
    pages: number,
    costs: Partial<ConversionCosts> = {},
  ) {
    this.costs = { ...CONVERSION_COSTS, ...costs };
    this.private = new PageBitmap(pages);
    // QEMU marks all guest RAM private at start ([qemu:accel/kvm/kvm-all.c kvm_convert_memory]).
    this.private.setRange(0, pages);
    this.mixed = new Uint8Array(Math.ceil(pages / PAGES_PER_2M));
    this.shared4k = new PageBitmap(pages);
    this.shared2m = new Uint8Array(this.mixed.length);
    this.kickDebt = vcpus.map(() => 0);
    this.filemapInvalidateLock = new Mutex(kvm.sim, `${kvm.name}/gmem_invalidate_lock`, 'stall');
  }

  get pages(): number {
    return this.private.pages;
  }

  isPrivate(page: number): boolean {
    return this.private.test(page);
  }

  /** Whether every page of [first, first + n) has the attribute (kvm_range_has_memory_attributes()). */
  rangeIs(first: number, n: number, toPrivate: boolean): boolean {
    const c = this.private.countRange(first, n);
    return toPrivate ? c === n : c === 0;
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES(first, n, private or not), on the calling (VMM vCPU) thread:
   * slots_lock; the early return; xa_reserve per GFN; mmu_lock for write: invalidate_begin and
   * the zap of the mappings that become wrong (to shared: the private ones, TDX removing each
   * 4K page from the S-EPT; to private: the shared ones) with the remote TLB flush; the xa_store
   * per GFN with the invalidation still in progress (faults in the range retry); mmu_lock for
   * write again: the mixed-2M flags and invalidate_end.
   */
  *kvm_vm_set_mem_attributes(first: number, n: number, toPrivate: boolean, link: number): Proc<void> {
    const { kvm, costs } = this;
    const sim = kvm.sim;
    if (first < 0 || n <= 0 || first + n > this.pages) assert(false, 'KVM_SET_MEMORY_ATTRIBUTES beyond the memslots (-EINVAL)', { first: hex(first * 4096), n });
    yield kvm.slotsLock.acquire();
    const start = sim.now;
    yield sim.stallFor(n * costs.xaWalkPerPageNs);
    if (this.rangeIs(first, n, toPrivate)) {
      this.counters.unchanged++;
      kvm.slotsLock.release();
      return;
    }
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('KVM_SET_MEMORY_ATTRIBUTES', { gpa: hex(first * 4096), size: n * 4096, private: toPrivate }, link, 'kvm') : 0;
    yield sim.stallFor(costs.setAttributesBaseNs + (n * costs.xaStorePerPageNs) / 2);
    yield* this.writeSection(function* (self) {
      kvm.mmuInvalidateBegin(first, n);
      if (toPrivate) yield* self.zapShared(first, n);
      else if (kvm.tdx !== null) yield* tdx_zap_private_range(kvm, self, first, n);
      else yield* self.zapSnpPrivate(first, n);
    });
    yield sim.stallFor((n * costs.xaStorePerPageNs) / 2);
    if (toPrivate) this.private.fillRange(first, n);
    else this.private.clearRange(first, n);
    yield* this.writeSection(function* (self) {
      const r0 = Math.floor(first / PAGES_PER_2M);
      const r1 = Math.floor((first + n - 1) / PAGES_PER_2M);
      yield sim.stallFor((r1 - r0 + 1) * costs.mixedPer2mNs);
      for (let r = r0; r <= r1; r++) self.updateMixed(r);
      kvm.mmuInvalidateEnd();
    });
    this.counters.calls++;
    this.counters.pages += n;
    this.setNs.record(sim.now - start);
    kvm.slotsLock.release();
    if (traced) sim.opEnd(id);
  }

  /** A section under mmu_lock for write, with its hold time and the faults it made wait. */
  *writeSection(body: (self: KvmMemoryAttributes) => Proc<void>): Proc<void> {
    const self = this;
    const { heldNs: held, delayed } = yield* this.kvm.mmuWriteSection(() => body(self));
    this.counters.faultsDelayed += delayed;
    this.counters.writeHolds++;
    this.counters.writeHoldNs += held;
    if (held > this.counters.writeHoldMax) this.counters.writeHoldMax = held;
  }

  private updateMixed(region: number): void {
    const first = region * PAGES_PER_2M;
    const n = Math.min(PAGES_PER_2M, this.pages - first);
    const c = this.private.countRange(first, n);
    const mixed = c !== 0 && c !== n ? 1 : 0;
    if (mixed !== this.mixed[region]) {
      this.mixed[region] = mixed;
      this.mixedCount += mixed === 1 ? 1 : -1;
      if (this.mixedCount > this.mixedPeak) this.mixedPeak = this.mixedCount;
    }
  }

  /** Zap of the shared leaves of [first, first + n) (under mmu_lock write), then the remote TLB flush. */
  *zapShared(first: number, n: number): Proc<void> {
    const sim = this.kvm.sim;
    let leaves = 0;
    const r0 = Math.floor(first / PAGES_PER_2M);
    const r1 = Math.floor((first + n - 1) / PAGES_PER_2M);
    for (let r = r0; r <= r1; r++) {
      if (this.shared2m[r] === 1) {
        // A 2M leaf partly in the range is zapped whole; its other pages fault back at 4K.
        this.shared2m[r] = 0;
        leaves++;
      }
    }
    leaves += this.shared4k.clearRange(first, n);
    if (leaves === 0) return;
    yield sim.stallFor(leaves * this.costs.zapLeafNs);
    yield* this.kickAll('KVM_REQ_TLB_FLUSH');
  }

  /** SNP to shared: zap of the private NPT leaves of the range (guest_memfd pages there), then the flush. */
  private *zapSnpPrivate(first: number, n: number): Proc<void> {
    const leaves = this.kvm.gmem.allocated.countRange(first, n);
    if (leaves === 0) return;
    yield this.kvm.sim.stallFor(leaves * this.costs.zapLeafNs);
    yield* this.kickAll('KVM_REQ_TLB_FLUSH');
  }

  /**
   * kvm_make_all_cpus_request() with a wait: every other vCPU running guest code (in guest
   * mode) gets an IPI, exits, handles the request (flush) and re-enters; the caller waits for
   * their acknowledgement. A vCPU in an exit or halted is not kicked (it sees the request at its
   * next entry). The kicked vCPUs' lost time is owed and paid at their next step (payKicks()).
   */
  *kickAll(_request: string): Proc<void> {
    const { kvm } = this;
    const sim = kvm.sim;
    this.counters.kickRequests++;
    const me = sim.current?.cpu ?? null;
    const lost = this.kickLostNsEach();
    let kicked = 0;
    for (let i = 0; i < this.vcpus.length; i++) {
      const cpu = this.vcpus[i]!;
      if (cpu === me || (cpu.state !== 'busy' && cpu.state !== 'spin')) continue;
      this.kickDebt[i]! += lost;
      kicked++;
    }
    if (kicked === 0) return;
    this.counters.kicks += kicked;
    this.counters.kickLostNs += kicked * lost;
    yield sim.stallFor(kvm.costs.ipiNs);
  }

  /** What one kick costs the kicked vCPU: its exit, the IPI's handling and its entry. */
  private kickLostNsEach(): number {
    const { kvm } = this;
    if (kvm.tdx !== null) return kvm.tdx.module.costs.tdExitNs + kvm.costs.ipiNs / 2 + kvm.tdx.module.costs.tdEntryNs;
    const c = kvm.sev!.costs;
    return c.vmExitNs + kvm.costs.ipiNs / 2 + c.vmEntryNs;
  }

  /** The calling vCPU pays what kicks cost it since its last step (stall: it was out of the guest). */
  *payKicks(vcpu: number): Proc<void> {
    const debt = this.kickDebt[vcpu]!;
    if (debt === 0) return;
    this.kickDebt[vcpu] = 0;
    yield this.kvm.sim.stallFor(debt);
  }

  /**
   * The guest touches shared pages [first, first + n) (one 2 MiB region): each page not mapped
   * in the shared EPT/NPT faults (exit, GUP of the shared backing, mmu_lock read, map, entry),
   * at 2M when the backing's host mapping is 2M or larger and the range's attributes are all
   * shared, else per 4K. Aggregated: one stall for the faults of the region.
   */
  *sharedAccess(first: number, n: number): Proc<void> {
    const { kvm } = this;
    const sim = kvm.sim;
    const region = Math.floor(first / PAGES_PER_2M);
    if (Math.floor((first + n - 1) / PAGES_PER_2M) !== region) assert(false, 'a shared access stays inside one 2 MiB region', hex(first * 4096));
    if (this.shared2m[region] === 1) return;
    const missing = n - this.shared4k.countRange(first, n);
    if (missing === 0) return;
    const src = this.source;
    if (src === null) return assert(false, 'a shared access with no shared memory source', kvm.name) as never;
    const regionFirst = region * PAGES_PER_2M;
    const huge = src.hostMappingPages(first) >= PAGES_PER_2M;
    const whole = this.rangeIs(regionFirst, PAGES_PER_2M, false);
    const faults = huge && whole ? 1 : missing;
    const exitNs = kvm.tdx !== null ? kvm.tdx.module.costs.tdExitNs + kvm.tdx.module.costs.tdEntryNs : kvm.sev!.costs.vmExitNs + kvm.sev!.costs.vmEntryNs;
    yield sim.stallFor(faults * (exitNs + kvm.costs.faultNs));
    if (huge && whole) {
      yield* src.faultIn(regionFirst, PAGES_PER_2M);
      yield kvm.mmuLock.acquire('shared');
      this.shared4k.clearRange(regionFirst, PAGES_PER_2M);
      this.shared2m[region] = 1;
      this.counters.sharedFaults2m++;
    } else {
      if (huge) this.counters.hugeRefused += missing;
      yield* src.faultIn(first, n);
      yield kvm.mmuLock.acquire('shared');
      this.shared4k.fillRange(first, n);
      this.counters.sharedFaults4k += missing;
    }
    kvm.mmuLock.release('shared');
  }

  /**
   * The guest's access to [first, first + n) as private or shared matches every layer: KVM's
   * attributes, and the module's S-EPT / the RMP (a private page accepted/validated, a shared
   * page not mapped private). Called at each access the workloads make.
   */
  checkAccess(first: number, n: number, asPrivate: boolean): void {
    const { kvm } = this;
    if (!this.rangeIs(first, n, asPrivate)) assert(false, `the guest accessed ${asPrivate ? 'shared' : 'private'} memory as ${asPrivate ? 'private' : 'shared'} (KVM attributes disagree)`, { vm: kvm.name, gpa: hex(first * 4096), n });
    if (kvm.tdx !== null) {
      const sept = kvm.tdx.td.sept;
      if (asPrivate) {
        if (sept.accepted4k.countRange(first, n) !== n) assert(false, 'a private page used before it was accepted (re-accept after a round trip missing)', { vm: kvm.name, gpa: hex(first * 4096) });
      } else if (sept.aug4k.countRange(first, n) !== 0) {
        assert(false, 'a shared page still mapped private in the S-EPT', { vm: kvm.name, gpa: hex(first * 4096) });
      }
      return;
    }
    const rmp = kvm.sev!.rmp;
    for (let p = first; p < first + n; p++) {
      const mapped = kvm.gmem.allocated.test(p);
      if (asPrivate) {
        if (!mapped || !rmp.validated.test(kvm.gmem.hostPage(p))) assert(false, 'a private page used before it was validated (PVALIDATE after a round trip missing)', { vm: kvm.name, gpa: hex(p * 4096) });
      } else if (mapped && rmp.assigned.test(kvm.gmem.hostPage(p))) {
        assert(false, 'a shared page still assigned to the guest in the RMP', { vm: kvm.name, gpa: hex(p * 4096) });
      }
    }
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.set.calls`] = c.calls;
    out[`${prefix}.set.unchanged`] = c.unchanged;
    out[`${prefix}.set.pages`] = c.pages;
    out[`${prefix}.set.ns_p50`] = this.setNs.count > 0 ? this.setNs.quantile(0.5) : 0;
    out[`${prefix}.set.ns_max`] = this.setNs.count > 0 ? this.setNs.max : 0;
    out[`${prefix}.mmu_lock_write.holds`] = c.writeHolds;
    out[`${prefix}.mmu_lock_write.hold_ns`] = c.writeHoldNs;
    out[`${prefix}.mmu_lock_write.hold_ns_max`] = c.writeHoldMax;
    out[`${prefix}.mmu_lock_write.faults_delayed`] = c.faultsDelayed;
    out[`${prefix}.kicks`] = c.kicks;
    out[`${prefix}.kick_requests`] = c.kickRequests;
    out[`${prefix}.kick_lost_ns`] = c.kickLostNs;
    out[`${prefix}.shared_faults.4k`] = c.sharedFaults4k;
    out[`${prefix}.shared_faults.2m`] = c.sharedFaults2m;
    out[`${prefix}.huge_refused_mixed`] = c.hugeRefused;
    out[`${prefix}.mixed_2m_regions`] = this.mixedCount;
    out[`${prefix}.mixed_2m_regions_peak`] = this.mixedPeak;
  }

  checkInvariants(): void {
    assert(this.kvm.mmuInvalidateInProgress === 0, 'an invalidation still in progress at the end of the run', this.kvm.name);
    assert(this.private.recount() === this.private.count, 'attribute bitmap and its count disagree', this.kvm.name);
    for (let r = 0; r < this.shared2m.length; r++) {
      if (this.shared2m[r] === 1 && this.private.countRange(r * PAGES_PER_2M, PAGES_PER_2M) !== 0) assert(false, 'a shared 2M leaf over private pages', { vm: this.kvm.name, region: r });
    }
    const sw = this.shared4k.words;
    const pw = this.private.words;
    for (let i = 0; i < sw.length; i++) if ((sw[i]! & pw[i]!) !== 0) assert(false, 'a private page mapped shared in the EPT/NPT', { vm: this.kvm.name, page: i * 32 });
  }
}

/**
 * The VMM's KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) of one memslot at VM start, before any vCPU runs
 * (QEMU marks every guest_memfd-backed RAM block private when it registers the memslot,
 * [qemu:accel/kvm/kvm-all.c kvm_convert_memory]; kvm_vm_set_mem_attributes(),
 * [linux:virt/kvm/kvm_main.c kvm_vm_set_mem_attributes]): under slots_lock, the early-return walk
 * stops at the first GFN (the xarray is empty), xa_reserve() per GFN, mmu_lock for write with
 * nothing mapped yet (no zap, no flush, no vCPU to kick), xa_store() per GFN, mmu_lock for write
 * again for the per-2M mixed flags. The costs are the conversion path's
 * ([estimate:set-memory-attributes-conversion], [estimate:tdp-zap-leaf]), so the time grows with
 * the memslot: one xarray store per 4K page. A run that converts memory keeps the attributes in
 * KvmMemoryAttributes, which starts all private: what this ioctl leaves. Returns the xa_store()s.
 */
export function* kvm_set_memory_attributes_at_start(kvm: Kvm, first: number, n: number, link: number, costs: ConversionCosts = CONVERSION_COSTS): Proc<number> {
  const sim = kvm.sim;
  assert(first >= 0 && n > 0, 'KVM_SET_MEMORY_ATTRIBUTES of an empty range (-EINVAL)', { first, n });
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('KVM_SET_MEMORY_ATTRIBUTES', { gpa: hex(first * 4096), size: n * 4096, private: true, vm: kvm.name }, link, 'kvm') : 0;
  yield kvm.slotsLock.acquire();
  yield sim.stallFor(costs.xaWalkPerPageNs + costs.setAttributesBaseNs + (n * costs.xaStorePerPageNs) / 2);
  yield kvm.mmuLock.acquire('exclusive');
  kvm.mmuLock.release('exclusive');
  yield sim.stallFor((n * costs.xaStorePerPageNs) / 2);
  yield kvm.mmuLock.acquire('exclusive');
  yield sim.stallFor(Math.ceil(n / PAGES_PER_2M) * costs.mixedPer2mNs);
  kvm.mmuLock.release('exclusive');
  kvm.slotsLock.release();
  if (traced) sim.opEnd(id);
  return n;
}
