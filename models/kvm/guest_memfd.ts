import { type Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import type { Host } from '../host/host.ts';
import { PageBitmap } from '../host/page_bitmap.ts';

/**
 * The guest's private memory backing (virt/kvm/guest_memfd.c): folios allocated on first use
 * and cleared (clear_highpage() per page, before folio_mark_uptodate()). Upstream uses order-0
 * (4 KiB) folios; the unmerged 2M THP / hugetlb series back it with 2 MiB folios, cleared whole.
 * Folios stay in the file once allocated (acceptance never punches holes).
 */
export class GuestMemfd {
  readonly allocated: PageBitmap;
  readonly folioPages: number;
  folios = 0;

  constructor(
    readonly host: Host,
    pages: number,
    folioBytes: 4096 | 2097152,
  ) {
    this.allocated = new PageBitmap(pages);
    this.folioPages = folioBytes / 4096;
  }

  /** kvm_gmem_get_pfn() for `page`: allocates and clears its folio on first use. */
  *kvm_gmem_get_pfn(page: number): Proc<void> {
    const bytes = this.allocate(page, 1);
    if (bytes > 0) yield* this.host.clearPages(bytes);
  }

  /**
   * Allocates the folios covering [first, first + n) that are not yet allocated, without
   * clearing them; returns the bytes the caller must clear (aggregated path).
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
}
