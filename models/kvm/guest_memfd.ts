import { countMetric, type Bandwidth, type MetricSpecs, type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { writeMemory, type WriteRate } from '../arch/write_rate.ts';

/** guest_memfd folio sizes: order-0 upstream, 2 MiB with the unmerged THP / hugetlb series. */
export type FolioBytes = 4096 | 2097152;

/** What GuestMemfd.metrics() writes (`vm1.kvm.gmem`). */
export const GUEST_MEMFD_METRICS: MetricSpecs = {
  folios: countMetric('folios', 'guest_memfd folios allocated'),
  bytes_cleared: countMetric('bytes', 'bytes of folios cleared on first use (clear_highpage)'),
};

/**
 * The guest's private memory backing (virt/kvm/guest_memfd.c): folios allocated on first use
 * and cleared (clear_highpage() per page, before folio_mark_uptodate()) by the CPU that faults,
 * through the memory bandwidth of the socket the VM's memory is on. Upstream uses order-0
 * (4 KiB) folios; the unmerged 2M THP / hugetlb series back it with 2 MiB folios, cleared whole.
 * Folios stay in the file once allocated (acceptance never punches holes).
 */
export class GuestMemfd {
  readonly allocated: PageBitmap;
  readonly folioPages: number;
  folios = 0;
  /** Bytes cleared on first use. */
  bytesCleared = 0;

  constructor(
    pages: number,
    folioBytes: FolioBytes,
    /** The socket bandwidth the clears share. */
    readonly memory: Bandwidth,
    /** What one host CPU clears (clear_highpage()), bytes/s as whole ns per 4 KiB. */
    readonly clearRate: WriteRate,
  ) {
    this.allocated = new PageBitmap(pages);
    this.folioPages = folioBytes / 4096;
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
      const added = this.allocated.fillRange(first, n);
      this.folios += added;
      return added * 4096;
    }
    let bytes = 0;
    const end = first + n;
    for (let f = first - (first % fp); f < end; f += fp) {
      const added = this.allocated.fillRange(f, fp);
      if (added === 0) continue;
      assert(added === fp, 'guest_memfd folio partly allocated', f);
      this.folios++;
      bytes += fp * 4096;
    }
    return bytes;
  }

  /** Bytes of folios cleared by a caller's own memory stream (the aggregated accept step). */
  countCleared(bytes: number): void {
    this.bytesCleared += bytes;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.folios`] = this.folios;
    out[`${prefix}.bytes_cleared`] = this.bytesCleared;
  }

  /** Every folio was cleared once; the bitmap agrees with its count. */
  checkInvariants(): void {
    assert(this.allocated.recount() === this.allocated.count, 'guest_memfd bitmap and its count disagree', this.allocated.count);
    assert(this.bytesCleared === this.folios * this.folioPages * 4096, 'bytes cleared and guest_memfd folios disagree', { cleared: this.bytesCleared, folios: this.folios });
  }
}
