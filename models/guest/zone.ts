import { Spinlock, assert, type Sim } from '../../sim/index.ts';
import { FreeArea } from './free_area.ts';
import { MAX_ORDER_NR_PAGES } from './constants.ts';

/** enum zone_type on x86-64 (ZONE_MOVABLE and ZONE_DEVICE are not used by these guests). */
export type ZoneName = 'DMA' | 'DMA32' | 'Normal';

/** enum zone_watermarks; WMARK_PROMO is the target of cond_accept_memory() since 2024 ([kirill-2024-08-unaccepted-fixes]). */
export interface Watermarks {
  min: number;
  low: number;
  high: number;
  promo: number;
}

/**
 * zone->unaccepted_pages: MAX_ORDER blocks (by first pfn) whose memory is not yet accepted, in
 * the order __free_unaccepted() added them (list_add_tail) and try_to_accept_memory_one() takes
 * them (list_first_entry).
 */
export class UnacceptedList {
  private items: number[] = [];
  private headIndex = 0;

  get length(): number {
    return this.items.length - this.headIndex;
  }

  list_add_tail(pfn: number): void {
    this.items.push(pfn);
  }

  /** list_first_entry_or_null + list_del; -1 when empty. */
  popFirst(): number {
    if (this.headIndex >= this.items.length) return -1;
    const pfn = this.items[this.headIndex++]!;
    if (this.headIndex > 4096 && this.headIndex * 2 > this.items.length) {
      this.items = this.items.slice(this.headIndex);
      this.headIndex = 0;
    }
    return pfn;
  }

  toArray(): number[] {
    return this.items.slice(this.headIndex);
  }
}

/** struct per_cpu_pages for order 0: pages cached per CPU, taken and refilled in batches. */
export class PerCpuPages {
  /** Cached page runs as (pfn, count, pageUnaccepted) triples; the top of the stack is the end. */
  readonly runs: number[] = [];
  count = 0;
}

/**
 * struct zone: a range of page frames with its own buddy free lists, zone->lock, vmstat
 * counters, watermarks and (with unaccepted memory) the unaccepted_pages list.
 */
export class Zone {
  readonly free_area = new FreeArea();
  readonly lock: Spinlock;
  readonly unaccepted_pages = new UnacceptedList();
  /** vmstat NR_FREE_PAGES: buddy pages plus unaccepted blocks (counted as free since Aug 2024, [linux-commit:807174a93d24]). */
  NR_FREE_PAGES = 0;
  /** vmstat NR_UNACCEPTED (/proc/meminfo Unaccepted). */
  NR_UNACCEPTED = 0;
  /** RAM pages in the zone (spanned minus holes). */
  present_pages = 0;
  /** Pages handed to the buddy allocator so far (adjust_managed_page_count). */
  managed_pages = 0;
  /** All zero until init_per_zone_wmark_min() (a postcore initcall). */
  readonly wmark: Watermarks = { min: 0, low: 0, high: 0, promo: 0 };
  /** lowmem_reserve[highest_zoneidx]: pages kept back from allocations that could use a higher zone. */
  lowmem_reserve: number[] = [0, 0, 0];
  /** pgdat->first_deferred_pfn for this zone (Infinity: nothing deferred). */
  first_deferred_pfn = Infinity;
  readonly pcp: PerCpuPages[] = [];
  /** pcp->batch (zone_batchsize). */
  pcpBatch = 1;

  constructor(
    sim: Sim,
    readonly name: ZoneName,
    readonly idx: number,
    readonly start_pfn: number,
    readonly end_pfn: number,
    nrCpus: number,
  ) {
    this.lock = new Spinlock(sim, `zone->lock(${name})`);
    for (let i = 0; i < nrCpus; i++) this.pcp.push(new PerCpuPages());
  }

  contains(pfn: number): boolean {
    return pfn >= this.start_pfn && pfn < this.end_pfn;
  }

  /** Free pages that are accepted and in the buddy allocator. */
  get acceptedFree(): number {
    return this.NR_FREE_PAGES - this.NR_UNACCEPTED;
  }

  /** zone_batchsize(): a quarter of 1 MiB worth of pages, rounded to 2^n - 1 (63 for large zones). */
  updateBatch(): void {
    let batch = Math.min(Math.floor(this.managed_pages / 1024), 256);
    batch = Math.max(1, Math.floor(batch / 4));
    const x = batch + Math.floor(batch / 2);
    this.pcpBatch = Math.max(1, 2 ** Math.floor(Math.log2(x)) - 1);
  }

  /** pcp->high: the zone's low watermark split over the CPUs, at least 4 batches (zone_highsize). */
  pcpHigh(nrCpus: number): number {
    return Math.max(Math.floor(this.wmark.low / nrCpus), 4 * this.pcpBatch);
  }

  /** Asserts the vmstat counters agree with the lists. */
  checkCounters(): void {
    const listPages = this.unaccepted_pages.length * MAX_ORDER_NR_PAGES;
    if (this.NR_UNACCEPTED !== listPages) assert(false, 'NR_UNACCEPTED disagrees with zone->unaccepted_pages', { zone: this.name, NR_UNACCEPTED: this.NR_UNACCEPTED, listPages });
    if (this.NR_FREE_PAGES !== this.free_area.freePages + listPages) assert(false, 'NR_FREE_PAGES disagrees with the free lists', { zone: this.name, NR_FREE_PAGES: this.NR_FREE_PAGES, buddy: this.free_area.freePages, listPages });
  }

  describe(): string {
    return `zone ${this.name} [${this.start_pfn}, ${this.end_pfn}) free=${this.NR_FREE_PAGES} unaccepted=${this.NR_UNACCEPTED}`;
  }
}
