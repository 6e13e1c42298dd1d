import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { PAGES_PER_2M, SIZE_2M } from '../arch/units.ts';

/**
 * The Reverse Map Table as acceptance sees it, per-2M as the unit of bookkeeping: whether each
 * 4K page is assigned to the guest (RMPUPDATE to private), whether it is validated (PVALIDATE),
 * and whether a 2 MiB region is one 2M RMP entry. 16 bytes per 4K page in hardware
 * (domain.md: "SNP RMP table 16 B per 4K page"); two bits per 4K page here.
 */
export class Rmp {
  readonly pages: number;
  readonly assigned: PageBitmap;
  readonly validated: PageBitmap;
  /** 1 where the region is a single 2M RMP entry. */
  readonly size2m: Uint8Array;

  constructor(readonly gpaBytes: number) {
    assert(gpaBytes > 0 && gpaBytes % SIZE_2M === 0, 'gpaBytes must be a positive multiple of 2 MiB', gpaBytes);
    this.pages = gpaBytes / 4096;
    this.assigned = new PageBitmap(this.pages);
    this.validated = new PageBitmap(this.pages);
    this.size2m = new Uint8Array(this.pages / PAGES_PER_2M);
  }

  /** RMPUPDATE: assign [first, first + n) to the guest, as one 2M entry if `as2m`. */
  assign(first: number, n: number, as2m: boolean): void {
    if (as2m) {
      assert(n === PAGES_PER_2M && first % PAGES_PER_2M === 0, 'a 2M RMP entry covers one aligned 2 MiB region', first);
      this.size2m[first / PAGES_PER_2M] = 1;
    }
    this.assigned.setRange(first, n);
  }
}
