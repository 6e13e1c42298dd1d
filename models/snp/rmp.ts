import { assert } from '../../sim/assert.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { PAGES_PER_2M, SIZE_2M, hex } from '../arch/units.ts';

/**
 * The Reverse Map Table of one host, indexed by host physical address as the hardware indexes it
 * (one entry per 4K page of host memory; 16 bytes each in hardware, rmpentry_raw in
 * [linux:arch/x86/virt/svm/sev.c]; the table itself is host memory the firmware reserves), reduced to what page
 * state changes touch: whether each 4K page is assigned to a guest (RMPUPDATE to private) and
 * validated (PVALIDATE), whether a 2 MiB region is one 2M entry, and the ASID of the guest that
 * owns the region's pages. Two bits per 4K page and three bytes per 2M here.
 */
export class Rmp {
  readonly pages: number;
  readonly assigned: PageBitmap;
  readonly validated: PageBitmap;
  /** 1 where the region is a single 2M RMP entry. */
  readonly size2m: Uint8Array;
  /** The ASID of the assigned pages of each 2M region (0: none; a region serves one guest). */
  readonly asid: Uint16Array;

  constructor(readonly hostBytes: number) {
    assert(hostBytes > 0 && hostBytes % SIZE_2M === 0, 'the RMP covers a positive multiple of 2 MiB', hostBytes);
    this.pages = hostBytes / 4096;
    this.assigned = new PageBitmap(this.pages);
    this.validated = new PageBitmap(this.pages);
    this.size2m = new Uint8Array(this.pages / PAGES_PER_2M);
    this.asid = new Uint16Array(this.pages / PAGES_PER_2M);
  }

  /**
   * RMPUPDATE: assign the host pages [first, first + n) (inside one 2 MiB region) to the guest
   * with `asid`, as one 2M entry if `as2m`; pages already assigned are left as they are (the
   * aggregated path assigns a run). Returns how many pages it assigned.
   */
  assign(first: number, n: number, asid: number, as2m: boolean): number {
    const region = Math.floor(first / PAGES_PER_2M);
    assert(Math.floor((first + n - 1) / PAGES_PER_2M) === region, 'an RMPUPDATE run stays inside one 2 MiB region', hex(first * 4096));
    assert(asid > 0, 'RMPUPDATE to private needs an ASID', asid);
    const owner = this.asid[region]!;
    if (owner !== 0 && owner !== asid) assert(false, 'RMPUPDATE of a region whose pages another guest owns', { hpa: hex(first * 4096), asid, owner });
    this.asid[region] = asid;
    if (as2m) {
      assert(n === PAGES_PER_2M && first % PAGES_PER_2M === 0, 'a 2M RMP entry covers one aligned 2 MiB region', hex(first * 4096));
      this.size2m[region] = 1;
      this.assigned.setRange(first, n);
      return n;
    }
    return this.assigned.fillRange(first, n);
  }

  /** PVALIDATE(validate) of the host pages [first, first + n): the guest's half of the RMP entry. */
  validate(first: number, n: number): void {
    this.validated.setRange(first, n);
  }

  /**
   * RMPUPDATE back to hypervisor-owned (rmp_make_shared(), from guest_memfd's invalidation when a
   * folio leaves the file): the host pages [first, first + n) of one 2 MiB region become
   * unassigned. A 2M entry must have been smashed (PSMASH) first; a validated page means the guest
   * did not rescind it (PVALIDATE) before asking for shared: the security bug the guest's order
   * of operations prevents. Returns how many pages it unassigned.
   */
  makeShared(first: number, n: number): number {
    const region = Math.floor(first / PAGES_PER_2M);
    assert(Math.floor((first + n - 1) / PAGES_PER_2M) === region, 'an RMPUPDATE run stays inside one 2 MiB region', hex(first * 4096));
    assert(this.size2m[region] === 0, 'RMPUPDATE to shared of 4K entries under a 2M RMP entry (PSMASH first)', hex(first * 4096));
    const v = this.validated.firstSet(first, n);
    if (v >= 0) assert(false, 'a validated page made shared: the guest did not PVALIDATE-rescind it first', hex(v * 4096));
    const cleared = this.assigned.clearRange(first, n);
    if (this.assigned.countRange(region * PAGES_PER_2M, PAGES_PER_2M) === 0) this.asid[region] = 0;
    return cleared;
  }

  /** PSMASH: a 2M RMP entry becomes 512 4K entries with the same state. */
  psmash(region: number): void {
    assert(this.size2m[region] === 1, 'PSMASH of a region that is not a 2M RMP entry', region);
    this.size2m[region] = 0;
  }

  /** PVALIDATE(rescind) of the host pages [first, first + n): they are no longer validated. */
  rescind(first: number, n: number): number {
    return this.validated.clearRange(first, n);
  }

  /** The bitmaps agree with their counts, and nothing is validated that is not assigned. */
  checkInvariants(): void {
    assert(this.assigned.recount() === this.assigned.count, 'RMP assigned bitmap and its count disagree', this.assigned.count);
    assert(this.validated.recount() === this.validated.count, 'RMP validated bitmap and its count disagree', this.validated.count);
    const as = this.assigned.words;
    const va = this.validated.words;
    for (let i = 0; i < va.length; i++) {
      if ((va[i]! & ~as[i]!) !== 0) assert(false, 'a page was PVALIDATEd without RMPUPDATE', { hpa: hex(i * 32 * 4096) });
    }
  }
}
