import { assert } from '../../sim/assert.ts';
import { TDX_PS_4K, type TdxPageLevel } from './arch.ts';
import { PageBitmap } from '../arch/page_bitmap.ts';
import { PAGES_PER_2M, SIZE_2M } from '../arch/units.ts';

/** State of the PD-level Secure-EPT entry of one 2 MiB region. */
export const enum Region {
  /** SEPT_FREE: no S-EPT page below it and no leaf (nothing mapped in the region). */
  Free = 0,
  /** Non-leaf: a PT page holds 4K leaves; their state is in the per-4K bitmaps. */
  PageTable = 1,
  /** 2M leaf in SEPT_PENDING (TDH.MEM.PAGE.AUG at 2M, not yet accepted). */
  LeafPending = 2,
  /** 2M leaf in SEPT_MAPPED (accepted). */
  LeafMapped = 3,
}

/** 2 MiB regions per 1 GiB (one PD page's reach) and per 512 GiB (one PDPT page's reach). */
const REGIONS_PER_1G = 512;
const REGIONS_PER_512G = 512 * REGIONS_PER_1G;

/** Which S-EPT page TDH.MEM.SEPT.ADD adds above a 2 MiB region. */
export type SeptPageKind = 'pt' | 'pd' | 'pdpt';

/** The S-EPT pages above a 2 MiB region, in the order KVM adds them (top down). */
export const UPPER_SEPT_PAGES: readonly SeptPageKind[] = ['pdpt', 'pd', 'pt'];

/**
 * The TD's Secure EPT as the TDX module keeps it, reduced to what acceptance touches, with
 * per-2M state as the unit of bookkeeping: the PD-level entry of each 2 MiB region, whether
 * the PD page of each 1 GiB and the PDPT page of each 512 GiB exist, and two bitmaps over 4K
 * leaves (AUGed = PENDING or MAPPED; accepted = MAPPED). No per-page objects.
 */
export class SecureEpt {
  readonly pages: number;
  readonly regions: Uint8Array;
  /** PD page present per 1 GiB (TDH.MEM.SEPT.ADD at level 2M's parent). */
  readonly pdPresent: Uint8Array;
  /** PDPT page present per 512 GiB. */
  readonly pdptPresent: Uint8Array;
  readonly aug4k: PageBitmap;
  readonly accepted4k: PageBitmap;
  /** 2M leaves AUGed (pending or mapped) and accepted, for the balance checks. */
  leaves2m = 0;
  accepted2m = 0;
  septPagesAdded = 0;

  constructor(readonly gpaBytes: number) {
    assert(gpaBytes > 0 && gpaBytes % SIZE_2M === 0, 'gpaBytes must be a positive multiple of 2 MiB', gpaBytes);
    this.pages = gpaBytes / 4096;
    const regions = this.pages / PAGES_PER_2M;
    this.regions = new Uint8Array(regions);
    this.pdPresent = new Uint8Array(Math.ceil(regions / REGIONS_PER_1G));
    this.pdptPresent = new Uint8Array(Math.ceil(regions / REGIONS_PER_512G));
    this.aug4k = new PageBitmap(this.pages);
    this.accepted4k = new PageBitmap(this.pages);
  }

  region(page: number): number {
    return Math.floor(page / PAGES_PER_2M);
  }

  regionState(region: number): Region {
    return this.regions[region] as Region;
  }

  /** Is the S-EPT page of `kind` above `region` still to be added for a `level` mapping? */
  pageMissing(region: number, kind: SeptPageKind, level: TdxPageLevel): boolean {
    if (kind === 'pdpt') return this.pdptPresent[Math.floor(region / REGIONS_PER_512G)] === 0;
    if (kind === 'pd') return this.pdPresent[Math.floor(region / REGIONS_PER_1G)] === 0;
    return level === TDX_PS_4K && this.regions[region] === Region.Free;
  }

  /** The state change of a successful TDH.MEM.SEPT.ADD of the page of `kind` above `region`. */
  addPage(region: number, kind: SeptPageKind): void {
    if (kind === 'pdpt') {
      const i = Math.floor(region / REGIONS_PER_512G);
      assert(this.pdptPresent[i] === 0, 'TDH.MEM.SEPT.ADD of a PDPT page that exists', region);
      this.pdptPresent[i] = 1;
    } else if (kind === 'pd') {
      const i = Math.floor(region / REGIONS_PER_1G);
      assert(this.pdPresent[i] === 0, 'TDH.MEM.SEPT.ADD of a PD page that exists', region);
      this.pdPresent[i] = 1;
    } else {
      assert(this.regions[region] === Region.Free, 'TDH.MEM.SEPT.ADD of a PT page over a non-FREE PD entry', region);
      this.regions[region] = Region.PageTable;
    }
    this.septPagesAdded++;
  }

  /** A number naming the S-EPT page of `kind` above `region` (PT pages by region, the others apart). */
  static pageKey(region: number, kind: SeptPageKind): number {
    if (kind === 'pdpt') return -1 - Math.floor(region / REGIONS_PER_512G);
    if (kind === 'pd') return 1e12 + Math.floor(region / REGIONS_PER_1G);
    return region;
  }

  /** 4K pages AUGed (as 4K leaves or inside 2M leaves). */
  augmentedPages(): number {
    return this.aug4k.count + this.leaves2m * PAGES_PER_2M;
  }

  acceptedPages(): number {
    return this.accepted4k.count + this.accepted2m * PAGES_PER_2M;
  }
}
