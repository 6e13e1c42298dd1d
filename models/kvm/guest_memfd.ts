import { countMetric, type Bandwidth, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { PAGES_PER_2M, SIZE_2M, hex } from '../arch/units.ts';
import type { HostMemory, OwnerId } from '../host/host_memory.ts';
import { writeMemory, type WriteRate } from '../arch/write_rate.ts';

/** guest_memfd folio sizes: order-0 upstream, 2 MiB with the unmerged THP / hugetlb series ([roth-2024-12-gmem-thp]). */
export type FolioBytes = 4096 | 2097152;

/** What GuestMemfd.metrics() writes (`vm1.kvm.gmem`). */
export const GUEST_MEMFD_METRICS: MetricSpecs = {
  folios: countMetric('folios', 'guest_memfd folios allocated'),
  bytes_cleared: countMetric('bytes', 'bytes of folios cleared on first use (clear_highpage)'),
  folios_freed: countMetric('folios', 'folios truncated by fallocate(PUNCH_HOLE) (conversions to shared)'),
};

/** The host could not give guest_memfd a page: the fault fails with -ENOMEM and the VM stops. */
export class HostOutOfMemory extends Error {
  override name = 'HostOutOfMemory';
}

/**
 * The guest's private memory backing ([linux:virt/kvm/guest_memfd.c]): folios allocated from host
 * memory on first use and cleared (clear_highpage() per page, before folio_mark_uptodate()) by
 * the CPU that faults, through the memory bandwidth of the socket the VM's memory is on.
 * Upstream uses order-0 (4 KiB) folios; the unmerged 2M THP / hugetlb series back it with
 * 2 MiB folios, cleared whole. Folios stay in the file once allocated (acceptance never punches
 * holes).
 *
 * Host memory is kept per 2 MiB (HostMemory's unit): the 4K folios of one guest 2 MiB region
 * are taken from one host 2 MiB block reserved to the VM, at the same offset, so a guest page's
 * host physical address is its region's block plus its offset. (The buddy allocator would hand
 * order-0 pages from wherever its free lists point; packing them per guest region is the model's
 * simplification, and it is what lets the host side stay per-2M with no per-4K addresses.)
 */
export class GuestMemfd {
  readonly allocated: PageBitmap;
  readonly folioPages: number;
  folios = 0;
  /** Folios truncated by fallocate(PUNCH_HOLE) (kvm_gmem_punch_hole()), 4K each. */
  foliosFreed = 0;
  /** Bytes cleared on first use. */
  bytesCleared = 0;

  /** The host 2 MiB block (host address / 2 MiB) behind each guest 2 MiB region, -1 if none yet. */
  readonly hostBlocks: Int32Array;

  constructor(
    pages: number,
    folioBytes: FolioBytes,
    /** Host memory the folios come from, the VM that owns them, and its node. */
    readonly hostMemory: HostMemory,
    readonly owner: OwnerId,
    readonly node: number,
    /** The socket bandwidth the clears share. */
    readonly memory: Bandwidth,
    /** What one host CPU clears (clear_highpage()), bytes/s as whole ns per 4 KiB. */
    readonly clearRate: WriteRate,
  ) {
    this.allocated = new PageBitmap(pages);
    this.folioPages = folioBytes / 4096;
    this.hostBlocks = new Int32Array(Math.ceil(pages / PAGES_PER_2M)).fill(-1);
  }

  /** The host page behind guest page `page` (its folio must be allocated). */
  hostPage(page: number): number {
    const block = this.hostBlocks[Math.floor(page / PAGES_PER_2M)]!;
    if (block < 0) assert(false, 'a guest page without host memory behind it', hex(page * 4096));
    return block * PAGES_PER_2M + (page % PAGES_PER_2M);
  }

  /** `n` more pages of the host block behind `region` are in use; takes the block on first use. */
  private usePages(region: number, n: number): void {
    let block = this.hostBlocks[region]!;
    if (block < 0) {
      const hpa = this.hostMemory.allocRegionBlock(this.owner, 'gmem', this.node);
      if (hpa === null) {
        throw new HostOutOfMemory(`host out of memory: guest_memfd of ${this.hostMemory.ownerName(this.owner)} found no free 2 MiB block for guest ${hex(region * SIZE_2M)} (host memory ${this.hostMemory.totalBytes() / 2 ** 30} GiB, ${this.hostMemory.usedBytes() / 2 ** 30} GiB in use); give the host more memory (host_memory_gib)`);
      }
      block = hpa / SIZE_2M;
      this.hostBlocks[region] = block;
    }
    this.hostMemory.usePages(block * SIZE_2M, n, this.owner);
  }

  /** Folios that allocate(first, n) would add (a 2 MiB folio counts once). */
  newFolios(first: number, n: number): number {
    const fp = this.folioPages;
    if (fp === 1) return n - this.allocated.countRange(first, n);
    let folios = 0;
    for (let f = first - (first % fp); f < first + n; f += fp) if (this.allocated.countRange(f, fp) === 0) folios++;
    return folios;
  }

  /** kvm_gmem_get_pfn() for `page`: allocates and clears its folio on first use. */
  *kvm_gmem_get_pfn(page: number): Proc<void> {
    yield* this.clear(this.allocate(page, 1));
  }

  /** Allocates the folios of [first, first + n) not yet allocated and clears them. */
  *getRange(first: number, n: number): Proc<void> {
    yield* this.clear(this.allocate(first, n));
  }

  /** clear_highpage() of `bytes` on the calling CPU, sharing the socket's bandwidth. */
  *clear(bytes: number): Proc<void> {
    this.bytesCleared += bytes;
    yield* writeMemory(this.memory, bytes, this.clearRate);
  }

  /**
   * Allocates the folios covering [first, first + n) that are not yet allocated, without
   * clearing them; returns the bytes the caller must clear (with clear(), or counted with
   * countCleared() when it clears them inside a stream of its own: the aggregated path).
   */
  allocate(first: number, n: number): number {
    const fp = this.folioPages;
    if (fp === 1) {
      const region = Math.floor(first / PAGES_PER_2M);
      if (Math.floor((first + n - 1) / PAGES_PER_2M) !== region) assert(false, 'guest_memfd allocations stay inside one 2 MiB region', { first, n });
      const added = this.allocated.fillRange(first, n);
      if (added > 0) this.usePages(region, added);
      this.folios += added;
      return added * 4096;
    }
    let bytes = 0;
    const end = first + n;
    for (let f = first - (first % fp); f < end; f += fp) {
      const added = this.allocated.fillRange(f, fp);
      if (added === 0) continue;
      assert(added === fp, 'guest_memfd folio partly allocated', f);
      this.usePages(f / PAGES_PER_2M, fp);
      this.folios++;
      bytes += fp * 4096;
    }
    return bytes;
  }

  /**
   * The truncate of kvm_gmem_punch_hole() over [first, first + n) (inside one 2 MiB region):
   * the 4K folios there leave the file and their host pages are freed; the region's host block
   * returns to the host when its last page goes. 2 MiB folios are truncated only whole (a
   * partial punch keeps the folio: the unmerged series split them, not modelled). Returns the
   * host pages (numbers) freed, for the caller's RMP/PAMT work.
   */
  punchHole(first: number, n: number): number[] {
    const region = Math.floor(first / PAGES_PER_2M);
    if (Math.floor((first + n - 1) / PAGES_PER_2M) !== region) assert(false, 'guest_memfd punch inside one 2 MiB region', { first, n });
    if (this.folioPages !== 1 && !(n === PAGES_PER_2M && first % PAGES_PER_2M === 0)) return [];
    const block = this.hostBlocks[region]!;
    const freed: number[] = [];
    if (block < 0) return freed;
    for (let p = first; p < first + n; p++) if (this.allocated.test(p)) freed.push(block * PAGES_PER_2M + (p % PAGES_PER_2M));
    if (freed.length === 0) return freed;
    this.allocated.clearRange(first, n);
    this.foliosFreed += freed.length / this.folioPages;
    if (this.hostMemory.unusePages(block * SIZE_2M, freed.length, this.owner)) this.hostBlocks[region] = -1;
    return freed;
  }

  /**
   * The file's last reference is dropped (kvm_gmem_release() and the truncation of its
   * folios): every host block goes back to host memory. Returns the blocks freed. The bitmap
   * is emptied; the counters of what was allocated and cleared stay.
   */
  release(): number {
    let blocks = 0;
    for (let r = 0; r < this.hostBlocks.length; r++) {
      const block = this.hostBlocks[r]!;
      if (block < 0) continue;
      this.hostMemory.freeRegionBlock(block * SIZE_2M, this.owner);
      this.hostBlocks[r] = -1;
      blocks++;
    }
    this.allocated.clearAll();
    this.released = true;
    return blocks;
  }

  /** release() ran: the file holds no memory. */
  released = false;

  /** Bytes of folios cleared by a caller's own memory stream (the aggregated accept step). */
  countCleared(bytes: number): void {
    this.bytesCleared += bytes;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.folios`] = this.folios;
    out[`${prefix}.bytes_cleared`] = this.bytesCleared;
    if (this.foliosFreed > 0) out[`${prefix}.folios_freed`] = this.foliosFreed;
  }

  /**
   * Every folio was cleared once; the bitmap agrees with its count; every region with folios has
   * a host block of this VM with as many pages in use as the region has folios' pages.
   */
  checkInvariants(): void {
    for (let r = 0; r < this.hostBlocks.length; r++) {
      const block = this.hostBlocks[r]!;
      const pages = this.allocated.countRange(r * PAGES_PER_2M, Math.min(PAGES_PER_2M, this.allocated.pages - r * PAGES_PER_2M));
      if (block < 0) {
        if (pages !== 0) assert(false, 'guest_memfd folios without host memory', { region: hex(r * SIZE_2M), pages });
        continue;
      }
      const hpa = block * SIZE_2M;
      if (this.hostMemory.ownerOf(hpa) !== this.owner) assert(false, 'a guest_memfd folio on a host block another owner holds', { region: hex(r * SIZE_2M), hpa: hex(hpa) });
      if (this.hostMemory.usedPagesOf(hpa) !== pages) assert(false, 'host pages in use and guest_memfd folios of a region disagree', { region: hex(r * SIZE_2M), used: this.hostMemory.usedPagesOf(hpa), pages });
    }
    assert(this.allocated.recount() === this.allocated.count, 'guest_memfd bitmap and its count disagree', this.allocated.count);
    if (this.released) return;
    assert(this.bytesCleared === this.folios * this.folioPages * 4096, 'bytes cleared and guest_memfd folios disagree', { cleared: this.bytesCleared, folios: this.folios });
  }
}
