import { countMetric, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { writeMemory, type WriteRate } from '../arch/write_rate.ts';
import { PAGES_PER_2M, SIZE_1G, SIZE_2M, hex } from '../arch/units.ts';
import { ORDER_1G, ORDER_2M, type HostMemory, type OwnerId } from '../host/host_memory.ts';
import type { Bandwidth } from '../../sim/index.ts';
import type { ConversionCosts } from '../kvm/conversion_costs.ts';
import type { GuestMemfd } from '../kvm/guest_memfd.ts';
import type { SharedMemorySource } from '../kvm/memory_attributes.ts';

/**
 * The VMM's backing of shared guest memory: anonymous memory, shmem (memfd), hugetlb with 2M or
 * 1G pages (memory-backend-memfd with hugetlb=on), or `in_place`: the unmerged in-place
 * conversion, where guest_memfd holds shared and private pages alike and nothing else backs
 * shared memory ([ackerley-2025-gmem-hugetlb] [roth-2024-12-gmem-thp]).
 */
export const SHARED_BACKINGS = ['anon', 'shmem', 'hugetlb2m', 'hugetlb1g', 'in_place'] as const;
export type SharedBackingKind = (typeof SHARED_BACKINGS)[number];

/** What SharedBacking.metrics() writes (`vm1.vmm.shared`). */
export const SHARED_BACKING_METRICS: MetricSpecs = {
  bytes: countMetric('bytes', 'host memory backing shared guest memory at the end'),
  bytes_peak: countMetric('bytes', 'the most at any time'),
  discarded_pages: countMetric('pages', '4K pages of shared backing discarded on conversions to private'),
  discard_skipped_pages: countMetric('pages', '4K pages whose discard QEMU skips (hugetlb: "supposed to be pre-allocated")'),
  host_ptes: countMetric('entries', 'the VMM\'s page-table entries mapping the shared backing (4K PTEs, 2M PMDs or 1G PUDs) at the end'),
  host_pt_bytes: countMetric('bytes', 'the VMM\'s last-level page-table pages for the shared mapping (one 4 KiB PTE page per 2 MiB with 4K pages)'),
  hvo_saved_bytes: countMetric('bytes', 'vmemmap the HugeTLB Vmemmap Optimization frees for the hugetlb pages in use (7 of 8 pages per 2M, 4095 of 4096 per 1G)'),
};

/**
 * Shared backing of one VM: which guest pages have host memory behind them on the shared side,
 * and the host memory itself (HostMemory kind `vmm_shared`, owned by the VM): a 4K page per
 * guest page for anon and shmem, a 2 MiB block per 2 MiB region for hugetlb2m, a 1 GiB run per
 * 1 GiB for hugetlb1g. Pages are allocated and cleared on first touch (no prealloc); hugetlb
 * cannot free less than a hugepage, and QEMU never discards it.
 */
export class SharedBacking implements SharedMemorySource {
  readonly populated: PageBitmap;
  /** anon/shmem: host page number per guest page (-1: none); hugetlb: host block (2M) per region or 1G. */
  private readonly hostPage: Int32Array;
  private readonly hugeBlock: Int32Array;
  bytesPeak = 0;
  discarded = 0;
  discardSkipped = 0;

  constructor(
    readonly kind: SharedBackingKind,
    pages: number,
    readonly memory: HostMemory,
    readonly owner: OwnerId,
    readonly node: number,
    readonly bandwidth: Bandwidth,
    readonly clearRate: WriteRate,
    readonly costs: ConversionCosts,
    readonly gmem: GuestMemfd,
  ) {
    this.populated = new PageBitmap(pages);
    this.hostPage = new Int32Array(kind === 'anon' || kind === 'shmem' ? pages : 0).fill(-1);
    const hugePages = kind === 'hugetlb1g' ? SIZE_1G / 4096 : PAGES_PER_2M;
    this.hugeBlock = new Int32Array(kind === 'hugetlb2m' || kind === 'hugetlb1g' ? Math.ceil(pages / hugePages) : 0).fill(-1);
  }

  get hugePages(): number {
    return this.kind === 'hugetlb1g' ? SIZE_1G / 4096 : this.kind === 'hugetlb2m' ? PAGES_PER_2M : 1;
  }

  hostMappingPages(_page: number): number {
    if (this.kind === 'in_place') return this.gmem.folioPages;
    return this.hugePages;
  }

  /** Host bytes behind shared memory now. */
  bytes(): number {
    if (this.kind === 'in_place') return 0;
    if (this.kind === 'anon' || this.kind === 'shmem') return this.populated.count * 4096;
    let blocks = 0;
    for (const b of this.hugeBlock) if (b >= 0) blocks++;
    return blocks * this.hugePages * 4096;
  }

  *faultIn(first: number, n: number): Proc<void> {
    let bytes = 0;
    let faults = 0;
    if (this.kind === 'in_place') {
      // The shared view maps guest_memfd's own folio; a page never used gets its folio now.
      const cleared = this.gmem.allocate(first, n);
      if (cleared > 0) yield* this.gmem.clear(cleared);
      return;
    }
    if (this.kind === 'anon' || this.kind === 'shmem') {
      for (let p = first; p < first + n; p++) {
        if (this.populated.test(p)) continue;
        const hpa = this.memory.allocPage(this.owner, 'vmm_shared', this.node);
        if (hpa === null) throw new Error(`host out of memory: no 4K page for the shared backing of guest ${hex(p * 4096)}; give the host more memory (host_memory_gib)`);
        this.hostPage[p] = hpa / 4096;
        this.populated.set(p);
        bytes += 4096;
        faults++;
      }
    } else {
      const hp = this.hugePages;
      for (let h = Math.floor(first / hp); h <= Math.floor((first + n - 1) / hp); h++) {
        if (this.hugeBlock[h]! >= 0) continue;
        const hpa = this.memory.allocBlocks(this.owner, 'vmm_shared', this.kind === 'hugetlb1g' ? ORDER_1G : ORDER_2M, this.node);
        if (hpa === null) throw new Error(`host out of memory: no free ${this.kind === 'hugetlb1g' ? '1 GiB' : '2 MiB'} hugepage for the shared backing of guest ${hex(h * hp * 4096)}; give the host more memory (host_memory_gib)`);
        this.hugeBlock[h] = hpa / SIZE_2M;
        this.populated.fillRange(h * hp, Math.min(hp, this.populated.pages - h * hp));
        bytes += hp * 4096;
        faults++;
      }
    }
    if (faults > 0) {
      yield this.memory.sim.stallFor(faults * this.costs.hostFaultNs);
      yield* writeMemory(this.bandwidth, bytes, this.clearRate);
    }
    this.notePeak();
  }

  /**
   * ram_block_discard_range() of [first, first + n) on a conversion to private: anon/shmem free
   * the pages (madvise(MADV_DONTNEED) / fallocate(PUNCH_HOLE)); hugetlb is skipped by QEMU, so
   * the pages stay (double allocation). Returns the pages freed.
   */
  discard(first: number, n: number): number {
    if (this.kind === 'in_place') return 0;
    if (this.kind === 'hugetlb2m' || this.kind === 'hugetlb1g') {
      this.discardSkipped += this.populated.countRange(first, n);
      return 0;
    }
    let freed = 0;
    for (let p = first; p < first + n; p++) {
      const hp = this.hostPage[p]!;
      if (hp < 0) continue;
      this.memory.freePage(hp * 4096, this.owner);
      this.hostPage[p] = -1;
      freed++;
    }
    this.populated.clearRange(first, n);
    this.discarded += freed;
    return freed;
  }

  private notePeak(): void {
    const b = this.bytes();
    if (b > this.bytesPeak) this.bytesPeak = b;
  }

  /** The VMM's page-table entries and last-level page-table pages for the shared mapping. */
  hostPageTables(): { entries: number; ptBytes: number } {
    if (this.kind === 'in_place') return { entries: 0, ptBytes: 0 };
    if (this.kind === 'anon' || this.kind === 'shmem') {
      let ptPages = 0;
      for (let r = 0; r * PAGES_PER_2M < this.populated.pages; r++) if (this.populated.countRange(r * PAGES_PER_2M, Math.min(PAGES_PER_2M, this.populated.pages - r * PAGES_PER_2M)) > 0) ptPages++;
      return { entries: this.populated.count, ptBytes: ptPages * 4096 };
    }
    let blocks = 0;
    for (const b of this.hugeBlock) if (b >= 0) blocks++;
    // 2M PMDs live in PMD pages (one per 1 GiB), 1G PUDs in PUD pages: counted as the PMD/PUD pages touched.
    return { entries: blocks, ptBytes: Math.ceil(blocks / 512) * 4096 };
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const pt = this.hostPageTables();
    let blocks = 0;
    for (const b of this.hugeBlock) if (b >= 0) blocks++;
    out[`${prefix}.bytes`] = this.bytes();
    out[`${prefix}.bytes_peak`] = this.bytesPeak;
    out[`${prefix}.discarded_pages`] = this.discarded;
    out[`${prefix}.discard_skipped_pages`] = this.discardSkipped;
    out[`${prefix}.host_ptes`] = pt.entries;
    out[`${prefix}.host_pt_bytes`] = pt.ptBytes;
    // [linux:Documentation/mm/vmemmap_dedup.rst]: HVO keeps 1 vmemmap page of 8 per 2M page, 1 of 4096 per 1G page.
    out[`${prefix}.hvo_saved_bytes`] = this.kind === 'hugetlb2m' ? blocks * 7 * 4096 : this.kind === 'hugetlb1g' ? blocks * 4095 * 4096 : 0;
  }

  /** Bytes balance: the populated pages equal the host memory this backing holds. */
  checkInvariants(): void {
    assert(this.populated.recount() === this.populated.count, 'shared backing bitmap and its count disagree', this.populated.count);
    if (this.kind === 'anon' || this.kind === 'shmem') {
      let held = 0;
      for (let p = 0; p < this.hostPage.length; p++) {
        const has = this.hostPage[p]! >= 0;
        if (has !== this.populated.test(p)) assert(false, 'shared backing page and its populated bit disagree', hex(p * 4096));
        if (has) held++;
      }
      assert(held * 4096 === this.bytes(), 'shared backing bytes do not balance', { held, bytes: this.bytes() });
    }
    void SIZE_2M;
  }
}
