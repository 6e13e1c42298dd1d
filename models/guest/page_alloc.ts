import { Spinlock, assert, type Proc, type Sim } from '../../sim/index.ts';
import { MAX_ORDER_BYTES, MAX_ORDER_NR_PAGES, MAX_PAGE_ORDER, PAGE_SIZE, addrOf, hex } from './constants.ts';
import type { AcceptLedger } from './accept_ledger.ts';
import type { GuestCosts } from './costs.ts';
import type { AcceptCause, GuestMetrics } from './metrics.ts';
import type { UnacceptedMemory } from './unaccepted_memory.ts';
import { Zone, type PerCpuPages } from './zone.ts';

/**
 * How the page allocator treats unaccepted memory:
 * - `upstream` (v6.5+, [linux:mm/page_alloc.c cond_accept_memory]): unaccepted MAX_ORDER blocks wait on
 *   zone->unaccepted_pages and cond_accept_memory() accepts them up to the promo watermark.
 * - `seed` (PATCHv2..v7, [unaccepted-v2-2022-01], [unaccepted-v7-2022-06]): unaccepted blocks sit in the buddy lists marked
 *   PageUnaccepted; expand() passes the mark to split halves and post_alloc_hook() accepts the
 *   allocated pages (accept_page()), taking the global lock for every marked page.
 */
export const ALLOCATOR_MODES = ['seed', 'upstream'] as const;
export type AllocatorMode = (typeof ALLOCATOR_MODES)[number];

export interface PageAllocatorOptions {
  mode: AllocatorMode;
  /** accept_memory=lazy (the default); false is accept_memory=eager. */
  lazyAccept: boolean;
  /**
   * The Mar 2025 fix ([kirill-2025-03-wmark-zero], stable 6.5+): with watermarks still zero, cond_accept_memory()
   * accepts one MAX_ORDER block per call to ensure progress. Without it nothing is accepted
   * before the postcore initcall and boot can OOM early.
   */
  wmarkZeroFix: boolean;
  /**
   * CONFIG_PREEMPT_VOLUNTARY (distro kernels): kernel code is preempted only where it calls
   * cond_resched(), and cond_accept_memory()'s loop has none, so a CPU accepting many blocks
   * runs them as one non-preemptible stretch for the soft-lockup watchdog. false: CONFIG_PREEMPT.
   */
  preemptVoluntary: boolean;
}

/** Pages an allocation returned, as (pfn, count) pairs. */
export type Extents = number[];

/** sysctl_lowmem_reserve_ratio[] defaults: DMA 256, DMA32 256, Normal 32. */
const LOWMEM_RESERVE_RATIO = [256, 256, 32];
/** watermark_scale_factor default: 10 / 10000 of the zone's managed pages. */
const WATERMARK_SCALE_FACTOR = 10;

/**
 * The guest's page allocator ([linux:mm/page_alloc.c]): zones with buddy free lists, per-CPU page
 * lists, watermarks, and the unaccepted-memory hooks: __free_pages_core(), __free_unaccepted(),
 * try_to_accept_memory_one(), cond_accept_memory(). Order-0 allocations of a workload are
 * aggregated: one call hands out up to `want` pages from the pcp list without refilling it; the
 * call that refills it (`batch` pages) takes one page, so cond_accept_memory() and the watermark
 * are checked against every value of NR_FREE_PAGES a per-page caller would see (per page while
 * watermarks are zero, when every call accepts a block).
 */
export class PageAllocator {
  readonly zones: Zone[];
  /** pgdat_resize_lock: deferred_grow_zone() and deferred_init_memmap() exclude each other. */
  readonly pgdat_resize_lock: Spinlock;
  /** Set when deferred_init_memmap() starts: the zone can no longer grow on demand. */
  deferredInitStarted = false;
  /** Pages handed to callers and not freed. */
  allocatedPages = 0;
  /** min_free_kbytes (vm.min_free_kbytes): 0 until init_per_zone_wmark_min(). */
  min_free_kbytes = 0;
  /** Extra behaviour for memory the zone has not initialised yet (set by mm_init). */
  deferredGrow: ((zone: Zone) => Proc<boolean>) | null = null;

  constructor(
    readonly sim: Sim,
    zones: Zone[],
    readonly unaccepted: UnacceptedMemory,
    readonly ledger: AcceptLedger,
    readonly metrics: GuestMetrics,
    readonly costs: GuestCosts,
    readonly nrCpus: number,
    readonly options: PageAllocatorOptions,
  ) {
    this.zones = zones;
    this.zonelist = [...zones].reverse();
    this.pgdat_resize_lock = new Spinlock(sim, 'pgdat_resize_lock');
  }

  zoneOf(pfn: number): Zone {
    for (const z of this.zones) if (z.contains(pfn)) return z;
    assert(false, 'pfn outside every zone', pfn);
  }

  /** The zonelist of GFP_KERNEL / GFP_HIGHUSER_MOVABLE: highest zone first. */
  readonly zonelist: Zone[];

  /** The highest zone with blocks on unaccepted_pages, or null. */
  highestZoneWithUnaccepted(): Zone | null {
    for (const z of this.zonelist) if (z.unaccepted_pages.length > 0) return z;
    return null;
  }

  // ---- Freeing memory into the allocator at boot ---------------------------------------------

  /**
   * __free_pages_core(page, order): a block leaves memblock for the buddy allocator. With
   * unaccepted memory in it (or in the guard unit after it), a MAX_ORDER block goes to
   * zone->unaccepted_pages when accepting lazily; anything else is accepted now.
   */
  *__free_pages_core(pfn: number, order: number, cause: AcceptCause): Proc<void> {
    const zone = this.zoneOf(pfn);
    zone.managed_pages += 1 << order;
    const start = addrOf(pfn);
    const size = PAGE_SIZE << order;
    let pageUnaccepted = false;
    if (yield* this.unaccepted.range_contains_unaccepted_memory(start, start + size)) {
      if (this.options.mode === 'upstream') {
        if (order === MAX_PAGE_ORDER && (yield* this.__free_unaccepted(zone, pfn))) return;
        yield* this.unaccepted.accept_memory(start, size, cause);
      } else if (order === MAX_PAGE_ORDER && this.options.lazyAccept) {
        pageUnaccepted = true;
      } else {
        yield* this.unaccepted.accept_memory(start, size, cause);
      }
    }
    yield* this.__free_pages_ok(zone, pfn, order, pageUnaccepted);
  }

  /** __free_unaccepted(): queue a MAX_ORDER block on zone->unaccepted_pages (lazy accept only). */
  private *__free_unaccepted(zone: Zone, pfn: number): Proc<boolean> {
    if (!this.options.lazyAccept) return false;
    yield zone.lock.acquire({ irqsave: true });
    zone.unaccepted_pages.list_add_tail(pfn);
    zone.NR_FREE_PAGES += MAX_ORDER_NR_PAGES;
    zone.NR_UNACCEPTED += MAX_ORDER_NR_PAGES;
    zone.lock.release({ irqrestore: true });
    return true;
  }

  /** __free_pages_ok(..., FPI_TO_TAIL): the block into the buddy lists under zone->lock. */
  *__free_pages_ok(zone: Zone, pfn: number, order: number, pageUnaccepted = false): Proc<void> {
    yield zone.lock.acquire({ irqsave: true });
    this.__free_one_page(zone, pfn, order, pageUnaccepted);
    zone.NR_FREE_PAGES += 1 << order;
    zone.lock.release({ irqrestore: true });
  }

  /** __free_one_page(): merge with free buddies up to MAX_PAGE_ORDER. zone->lock held. */
  private __free_one_page(zone: Zone, pfn: number, order: number, pageUnaccepted: boolean): void {
    const fa = zone.free_area;
    while (order < MAX_PAGE_ORDER) {
      const buddy = pfn ^ (1 << order);
      if (!zone.contains(buddy) || !fa.has(buddy, order)) break;
      // Seed era: a merged block is unaccepted if either half was.
      if (fa.remove(buddy, order)) pageUnaccepted = true;
      pfn = Math.min(pfn, buddy);
      order++;
    }
    fa.add(pfn, order, pageUnaccepted);
  }

  // ---- Accepting memory on demand ------------------------------------------------------------

  /**
   * try_to_accept_memory_one(zone): take the first block off unaccepted_pages (under
   * zone->lock), accept its 4 MiB (+ the guard unit) without the lock, free it to the buddy
   * allocator's tail.
   */
  *try_to_accept_memory_one(zone: Zone, cause: AcceptCause): Proc<boolean> {
    if (zone.unaccepted_pages.length === 0) return false;
    yield zone.lock.acquire({ irqsave: true });
    const pfn = zone.unaccepted_pages.popFirst();
    if (pfn < 0) {
      zone.lock.release({ irqrestore: true });
      return false;
    }
    zone.NR_FREE_PAGES -= MAX_ORDER_NR_PAGES;
    zone.NR_UNACCEPTED -= MAX_ORDER_NR_PAGES;
    zone.lock.release({ irqrestore: true });
    yield* this.unaccepted.accept_memory(addrOf(pfn), MAX_ORDER_BYTES, cause);
    yield* this.__free_pages_ok(zone, pfn, MAX_PAGE_ORDER);
    return true;
  }

  /**
   * cond_accept_memory(zone, order): accept blocks until the zone's accepted free memory reaches
   * the promo watermark; exactly one block while watermarks are still zero.
   */
  *cond_accept_memory(zone: Zone, order: number): Proc<boolean> {
    if (this.options.mode !== 'upstream' || zone.unaccepted_pages.length === 0) return false;
    const wmark = zone.wmark.promo;
    if (wmark === 0) {
      // Watermarks have not been initialised yet: accept one MAX_ORDER block to ensure progress.
      if (!this.options.wmarkZeroFix) return false;
      const id = this.sim.observer === null ? 0 : this.sim.opBegin('cond_accept_memory', { zone: zone.name, wmark: 0 });
      const accepted = yield* this.try_to_accept_memory_one(zone, 'wmark_zero');
      if (accepted) this.metrics.wmarkZeroBlocks++;
      this.sim.opEnd(id);
      return accepted;
    }
    let to_accept = wmark - (zone.NR_FREE_PAGES - this.unusableFree(order) - zone.NR_UNACCEPTED);
    if (to_accept <= 0) return false;
    const id = this.sim.observer === null ? 0 : this.sim.opBegin('cond_accept_memory', { zone: zone.name, to_accept });
    const voluntary = this.options.preemptVoluntary;
    if (voluntary) this.sim.preemptDisable();
    let ret = false;
    while (to_accept > 0) {
      if (!(yield* this.try_to_accept_memory_one(zone, 'cond_accept_memory'))) break;
      ret = true;
      to_accept -= MAX_ORDER_NR_PAGES;
    }
    if (voluntary) this.sim.preemptEnable();
    this.sim.opEnd(id);
    return ret;
  }

  /** __zone_watermark_unusable_free() for an ordinary allocation (no highatomic or CMA reserves). */
  private unusableFree(order: number): number {
    return (1 << order) - 1;
  }

  /** zone_watermark_ok() at the low watermark for an allocation whose highest zone is Normal. */
  private watermarkOk(zone: Zone, order: number): boolean {
    const free = zone.NR_FREE_PAGES - this.unusableFree(order);
    const highestIdx = this.zones[this.zones.length - 1]!.idx;
    return free > zone.wmark.low + (zone.lowmem_reserve[highestIdx] ?? 0);
  }

  // ---- Allocating ----------------------------------------------------------------------------

  /**
   * Allocates `want` order-0 pages for a thread on vCPU `cpu` into `out` (the calling thread's
   * own list: what it appends is checked after each step), as `want` alloc_pages() calls would.
   * With `record`, each group's first page (which pays for refills and acceptance) and the rest
   * (allocFastNs each) go into the latency histogram. Returns fewer pages than asked for only
   * when every zone is exhausted (an OOM event).
   */
  *alloc_pages(cpu: number, want: number, out: Extents, record = false): Proc<number> {
    let got = 0;
    while (got < want) {
      const t0 = this.sim.now;
      const n = yield* this.get_page_from_freelist(cpu, want - got, out);
      if (n === 0) {
        this.metrics.oomEvents++;
        this.sim.instant('oom', { want: want - got, cpu });
        break;
      }
      if (record) {
        const fast = this.costs.allocFastNs;
        this.metrics.recordAllocLatency(this.sim.now - t0 - (n - 1) * fast, 1);
        if (n > 1) this.metrics.recordAllocLatency(fast, n - 1);
      }
      got += n;
    }
    this.allocatedPages += got;
    this.metrics.allocatedPages += got;
    return got;
  }

  /** get_page_from_freelist(): the zonelist walk with its accept-and-retry points. */
  private *get_page_from_freelist(cpu: number, want: number, out: Extents): Proc<number> {
    for (const zone of this.zonelist) {
      for (;;) {
        yield* this.cond_accept_memory(zone, 0);
        if (!this.watermarkOk(zone, 0)) {
          if (yield* this.cond_accept_memory(zone, 0)) continue;
          if (yield* this.growDeferred(zone)) continue;
          break;
        }
        // While watermarks are zero every call accepts a block: no aggregation across calls.
        const maxTake = zone.wmark.promo === 0 && zone.unaccepted_pages.length > 0 ? 1 : want;
        const n = yield* this.rmqueue(zone, cpu, maxTake, out);
        if (n > 0) return n;
        if (yield* this.cond_accept_memory(zone, 0)) continue;
        if (yield* this.growDeferred(zone)) continue;
        break;
      }
    }
    return 0;
  }

  private *growDeferred(zone: Zone): Proc<boolean> {
    if (this.deferredGrow === null || this.deferredInitStarted || zone.first_deferred_pfn >= zone.end_pfn) return false;
    return yield* this.deferredGrow(zone);
  }

  /** rmqueue() for order 0: from the pcp list, refilled by rmqueue_bulk() when empty. */
  private *rmqueue(zone: Zone, cpu: number, maxTake: number, out: Extents): Proc<number> {
    const pcp = zone.pcp[cpu]!;
    if (pcp.count === 0) {
      yield zone.lock.acquire({ irqsave: true });
      const taken = this.rmqueue_bulk(zone, zone.pcpBatch, pcp);
      yield this.sim.compute(taken * this.costs.rmqueuePerPageNs);
      zone.NR_FREE_PAGES -= taken;
      zone.lock.release({ irqrestore: true });
      if (taken === 0) return 0;
      // A refill lowers NR_FREE_PAGES: the next page's call (get_page_from_freelist) checks
      // cond_accept_memory() and the watermark against the new value, so this call stops at the
      // page the refill was for (otherwise the acceptance it triggers comes pages late or never).
      maxTake = 1;
    }
    const k = Math.min(maxTake, pcp.count);
    const marked = this.takeFromPcp(pcp, k, out);
    yield this.sim.compute(k * this.costs.allocFastNs);
    if (marked.length > 0) yield* this.seedPostAllocAccept(marked);
    this.checkAllocated(out, k);
    return k;
  }

  /** rmqueue_bulk(): `count` order-0 pages off the free lists, smallest blocks first (expand() for larger). */
  private rmqueue_bulk(zone: Zone, count: number, pcp: PerCpuPages): number {
    const fa = zone.free_area;
    let taken = 0;
    while (taken < count) {
      const order = fa.smallestNonEmpty(0);
      if (order < 0) break;
      const pfn = fa.head(order);
      const marked = fa.remove(pfn, order);
      const size = 1 << order;
      const need = count - taken;
      const n = Math.min(size, need);
      pcp.runs.push(pfn, n, marked ? 1 : 0);
      pcp.count += n;
      taken += n;
      // expand(): the rest of the block goes back as aligned halves (carrying PageUnaccepted).
      if (n < size) this.freeRangeNoMerge(zone, pfn + n, pfn + size, marked);
    }
    return taken;
  }

  /** Puts [start, end) on the free lists as maximal aligned blocks; their buddies are in use. */
  private freeRangeNoMerge(zone: Zone, start: number, end: number, marked: boolean): void {
    let pfn = start;
    while (pfn < end) {
      let order = Math.min(MAX_PAGE_ORDER, lowestSetBit(pfn));
      while (pfn + (1 << order) > end) order--;
      zone.free_area.add(pfn, order, marked);
      pfn += 1 << order;
    }
  }

  /** Moves k pages from the top of the pcp stack to `out`; returns the PageUnaccepted runs taken. */
  private takeFromPcp(pcp: PerCpuPages, k: number, out: Extents): number[] {
    const marked: number[] = [];
    let left = k;
    const runs = pcp.runs;
    while (left > 0) {
      const n = runs.length;
      const pfn = runs[n - 3]!;
      const count = runs[n - 2]!;
      const m = runs[n - 1]!;
      const take = Math.min(left, count);
      const first = pfn + count - take;
      out.push(first, take);
      if (m === 1) marked.push(first, take);
      if (take === count) runs.length = n - 3;
      else runs[n - 2] = count - take;
      left -= take;
    }
    pcp.count -= k;
    return marked;
  }

  /**
   * Seed era post_alloc_hook(): every allocated page still marked PageUnaccepted calls
   * accept_page(page, 0) -> accept_memory(), which takes the global lock each time; only the
   * first call for a 2 MiB unit finds its bit set and accepts it.
   */
  private *seedPostAllocAccept(marked: number[]): Proc<void> {
    for (let i = 0; i < marked.length; i += 2) {
      const pfn = marked[i]!;
      const count = marked[i + 1]!;
      for (let p = pfn; p < pfn + count; p++) {
        yield* this.unaccepted.accept_memory(addrOf(p), PAGE_SIZE, 'seed_post_alloc');
      }
    }
  }

  /** No allocation returns unaccepted memory: every page handed out is in the accept ledger. */
  private checkAllocated(out: Extents, k: number): void {
    let left = k;
    for (let i = out.length - 2; left > 0; i -= 2) {
      const pfn = out[i]!;
      const count = out[i + 1]!;
      if (!this.ledger.isAccepted(addrOf(pfn), addrOf(pfn + count))) assert(false, 'an allocation returned unaccepted memory', { pfn: hex(addrOf(pfn)), count, t: this.sim.now });
      left -= count;
    }
  }

  // ---- Freeing -------------------------------------------------------------------------------

  /**
   * Frees pages (pairs of pfn, count) from a thread on vCPU `cpu`: onto the pcp list, and in
   * batches back to the buddy lists (free_pcppages_bulk) when the list exceeds pcp->high.
   */
  *free_pages(cpu: number, extents: Extents): Proc<void> {
    let pages = 0;
    for (let i = 0; i < extents.length; i += 2) {
      const pfn = extents[i]!;
      const count = extents[i + 1]!;
      const zone = this.zoneOf(pfn);
      const pcp = zone.pcp[cpu]!;
      pcp.runs.push(pfn, count, 0);
      pcp.count += count;
      pages += count;
      if (pcp.count > zone.pcpHigh(this.nrCpus)) yield* this.free_pcppages_bulk(zone, pcp);
    }
    this.allocatedPages -= pages;
    yield this.sim.compute(pages * this.costs.freePerPageNs);
  }

  /** free_pcppages_bulk(): the oldest pcp pages back to the buddy lists, down to high - batch. */
  private *free_pcppages_bulk(zone: Zone, pcp: PerCpuPages): Proc<void> {
    let toFree = pcp.count - Math.max(0, zone.pcpHigh(this.nrCpus) - zone.pcpBatch);
    yield zone.lock.acquire({ irqsave: true });
    const runs = pcp.runs;
    let consumed = 0;
    while (toFree > 0) {
      const pfn = runs[consumed]!;
      const count = runs[consumed + 1]!;
      const marked = runs[consumed + 2] === 1;
      const n = Math.min(count, toFree);
      this.freeRangeMerge(zone, pfn, pfn + n, marked);
      zone.NR_FREE_PAGES += n;
      pcp.count -= n;
      toFree -= n;
      if (n === count) consumed += 3;
      else {
        runs[consumed] = pfn + n;
        runs[consumed + 1] = count - n;
      }
    }
    runs.splice(0, consumed);
    zone.lock.release({ irqrestore: true });
  }

  /** Frees [start, end) as aligned blocks with buddy merging. zone->lock held. */
  private freeRangeMerge(zone: Zone, start: number, end: number, marked: boolean): void {
    let pfn = start;
    while (pfn < end) {
      let order = Math.min(MAX_PAGE_ORDER, lowestSetBit(pfn));
      while (pfn + (1 << order) > end) order--;
      this.__free_one_page(zone, pfn, order, marked);
      pfn += 1 << order;
    }
  }

  // ---- Watermarks ----------------------------------------------------------------------------

  /**
   * init_per_zone_wmark_min() (postcore initcall, [linux:mm/page_alloc.c]):
   * calculate_min_free_kbytes(), the per-zone min/low/high/promo watermarks
   * (setup_per_zone_wmarks) and lowmem_reserve (setup_per_zone_lowmem_reserve). Nothing else
   * runs yet (the BSP is in do_initcalls, APs idle, no acceptor started), so the zone locks the
   * kernel takes here are uncontended and not modelled.
   */
  init_per_zone_wmark_min(): void {
    this.calculate_min_free_kbytes();
    for (const z of this.zones) this.__setup_zone_wmarks(z);
    for (const z of this.zones) {
      z.lowmem_reserve = [0, 0, 0];
      let above = 0;
      for (const higher of this.zones) {
        if (higher.idx <= z.idx) continue;
        above += higher.managed_pages;
        z.lowmem_reserve[higher.idx] = Math.floor(above / LOWMEM_RESERVE_RATIO[z.idx]!);
      }
      z.updateBatch();
    }
  }

  /**
   * calculate_min_free_kbytes(): int_sqrt(16 x lowmem KiB) clamped to [128, 262144], lowmem
   * being nr_free_buffer_pages() (user_min_free_kbytes is -1: no sysctl override).
   */
  calculate_min_free_kbytes(): void {
    const lowmemKbytes = this.nr_free_buffer_pages() * (PAGE_SIZE / 1024);
    this.min_free_kbytes = Math.min(262144, Math.max(128, Math.floor(Math.sqrt(lowmemKbytes * 16))));
  }

  /**
   * nr_free_buffer_pages() = nr_free_zone_pages(gfp_zone(GFP_USER)): managed pages above the
   * high watermark, summed over the zones up to ZONE_NORMAL (all of this guest's zones). Equal to
   * the managed pages while watermarks are zero (the postcore initcall).
   */
  nr_free_buffer_pages(): number {
    let sum = 0;
    for (const z of this.zones) if (z.managed_pages > z.wmark.high) sum += z.managed_pages - z.wmark.high;
    return sum;
  }

  /**
   * setup_per_zone_wmarks() after a change of min_free_kbytes (the khugepaged path): each zone's
   * watermarks under its zone->lock, as __setup_per_zone_wmarks() does. zone_pcp_update() follows
   * in the kernel; here pcp->high is read from the low watermark when used and pcp->batch depends
   * only on managed pages, so both follow.
   */
  *setup_per_zone_wmarks(): Proc<void> {
    for (const z of this.zones) {
      yield z.lock.acquire({ irqsave: true });
      this.__setup_zone_wmarks(z);
      z.lock.release({ irqrestore: true });
    }
  }

  /**
   * One zone of __setup_per_zone_wmarks(): its share of min_free_kbytes as the min watermark
   * (pages_min x managed / lowmem_pages), then low, high and promo each a step of
   * max(min / 4, managed x watermark_scale_factor / 10000) above the previous one.
   */
  private __setup_zone_wmarks(z: Zone): void {
    const pagesMin = Math.floor(this.min_free_kbytes / (PAGE_SIZE / 1024));
    const lowmemPages = this.zones.reduce((n, zone) => n + zone.managed_pages, 0);
    const min = Math.floor((pagesMin * z.managed_pages) / lowmemPages);
    const tmp = Math.max(min >> 2, Math.floor((z.managed_pages * WATERMARK_SCALE_FACTOR) / 10000));
    z.wmark.min = min;
    z.wmark.low = min + tmp;
    z.wmark.high = z.wmark.low + tmp;
    z.wmark.promo = z.wmark.high + tmp;
  }

  /** Pages on pcp lists, free lists and unaccepted lists of every zone. */
  freePagesTotal(): number {
    let n = 0;
    for (const z of this.zones) {
      n += z.NR_FREE_PAGES;
      for (const pcp of z.pcp) n += pcp.count;
    }
    return n;
  }

  /** Counter and list invariants of every zone. */
  checkInvariants(): void {
    for (const z of this.zones) {
      z.checkCounters();
      assert(z.free_area.countPages() === z.free_area.freePages, 'free_area page count drifted', z);
      for (const pcp of z.pcp) {
        let n = 0;
        for (let i = 1; i < pcp.runs.length; i += 3) n += pcp.runs[i]!;
        assert(n === pcp.count, 'pcp count disagrees with its runs', z);
      }
    }
  }
}

/** __ffs(pfn) for pfn > 0; a large number for pfn 0. */
export function lowestSetBit(pfn: number): number {
  if (pfn === 0) return 64;
  let n = 0;
  let x = pfn;
  while (x % 2 === 0) {
    x /= 2;
    n++;
  }
  return n;
}

