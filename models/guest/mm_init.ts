import { Priority, assert, type Proc } from '../../sim/index.ts';
import { MAX_ORDER_NR_PAGES, MAX_PAGE_ORDER, PAGE_SIZE, PAGES_PER_SECTION, SZ_4G, addrOf, pfnOf, roundUp } from './constants.ts';
import { lowestSetBit } from './page_alloc.ts';
import { Zone } from './zone.ts';
import type { GuestKernel } from './kernel.ts';
import type { PhysRange } from './memory_map.ts';

/**
 * Memory initialisation ([linux:mm/mm_init.c]): zones, memmap_init(), memblock_free_all(), and
 * with CONFIG_DEFERRED_STRUCT_PAGE_INIT the deferred part of the highest zone, initialised on
 * demand (deferred_grow_zone) or by the pgdatinit thread with padata helpers on every CPU of
 * the node (deferred_init_memmap), freeing MAX_ORDER chunks ([linux-commit:3f6dac0fd1b8]).
 */

/** ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB, ZONE_NORMAL above; empty zones are left out. */
export function createZones(kernel: GuestKernel): Zone[] {
  const maxPfn = pfnOf(kernel.map.maxAddr);
  const bounds: [Zone['name'], number, number][] = [
    ['DMA', 0, pfnOf(16 * 1024 * 1024)],
    ['DMA32', pfnOf(16 * 1024 * 1024), pfnOf(SZ_4G)],
    ['Normal', pfnOf(SZ_4G), Infinity],
  ];
  const zones: Zone[] = [];
  bounds.forEach(([name, start, end], idx) => {
    const zoneEnd = Math.min(end, maxPfn);
    if (zoneEnd <= start) return;
    const present = pagesIn(kernel.map.ram, start, zoneEnd);
    if (present === 0) return;
    const z = new Zone(kernel.sim, name, idx, start, zoneEnd, kernel.vcpus.length);
    z.present_pages = present;
    zones.push(z);
  });
  return zones;
}

function pagesIn(ranges: readonly PhysRange[], startPfn: number, endPfn: number): number {
  let n = 0;
  for (const r of ranges) n += Math.max(0, Math.min(endPfn, pfnOf(r.end)) - Math.max(startPfn, pfnOf(r.start)));
  return n;
}

/** defer_init(): only the highest zone of the node is deferred, after its first section. */
export function setDeferredBoundary(zones: Zone[], enabled: boolean): void {
  if (!enabled) return;
  const top = zones[zones.length - 1]!;
  const first = top.start_pfn + PAGES_PER_SECTION;
  if (first < top.end_pfn) top.first_deferred_pfn = first;
}

/** free_area_init() -> memmap_init(): struct pages of everything not deferred, on the BSP. */
export function* memmap_init(kernel: GuestKernel): Proc<void> {
  let pages = 0;
  for (const z of kernel.allocator.zones) pages += pagesIn(kernel.map.ram, z.start_pfn, Math.min(z.end_pfn, z.first_deferred_pfn));
  yield kernel.sim.compute(pages * kernel.costs.structPageInitNs);
}

/** memblock_free_all() -> __free_pages_memory(): free RAM below each zone's deferred boundary. */
export function* memblock_free_all(kernel: GuestKernel): Proc<void> {
  const free = kernel.memblock.freeRanges();
  for (const z of kernel.allocator.zones) {
    const limit = Math.min(z.end_pfn, z.first_deferred_pfn);
    for (const r of free) {
      const s = Math.max(z.start_pfn, pfnOf(r.start));
      const e = Math.min(limit, pfnOf(r.end));
      if (s < e) yield* __free_pages_memory(kernel, s, e);
    }
  }
}

/** Frees [start, end) pfns as maximal aligned blocks, as memblock_free_pages() does. */
function* __free_pages_memory(kernel: GuestKernel, start: number, end: number): Proc<void> {
  let pfn = start;
  while (pfn < end) {
    let order = Math.min(MAX_PAGE_ORDER, lowestSetBit(pfn));
    while (pfn + (1 << order) > end) order--;
    yield kernel.sim.compute(kernel.costs.freeBlockNs);
    yield* kernel.allocator.__free_pages_core(pfn, order, 'free_pages_core');
    pfn += 1 << order;
  }
}

/**
 * deferred_init_maxorder() for [start, end) pfns of free memory: struct pages, then
 * deferred_free_pages(): a whole MAX_ORDER block through __free_pages_core(); a smaller piece is
 * accepted up front and freed page by page, each __free_pages_core(page, 0) checking
 * range_contains_unaccepted_memory() under unaccepted_memory_lock and taking zone->lock
 * ([linux:mm/mm_init.c]; the pages merge in the buddy allocator as the kernel's do).
 */
function* deferredInitRange(kernel: GuestKernel, start: number, end: number): Proc<void> {
  const sim = kernel.sim;
  const costs = kernel.costs;
  let pfn = start;
  while (pfn < end) {
    const blockEnd = Math.min(end, pfn - (pfn % MAX_ORDER_NR_PAGES) + MAX_ORDER_NR_PAGES);
    const nr = blockEnd - pfn;
    if (nr === MAX_ORDER_NR_PAGES) {
      yield sim.compute(nr * costs.structPageInitNs + costs.freeBlockNs);
      yield* kernel.allocator.__free_pages_core(pfn, MAX_PAGE_ORDER, 'free_pages_core');
    } else {
      yield sim.compute(nr * costs.structPageInitNs);
      yield* kernel.unaccepted.accept_memory(addrOf(pfn), nr * PAGE_SIZE, 'free_pages_core');
      for (let p = pfn; p < blockEnd; p++) {
        yield sim.compute(costs.freeBlockNs);
        yield* kernel.allocator.__free_pages_core(p, 0, 'free_pages_core');
      }
    }
    pfn = blockEnd;
  }
}

/** Free (unreserved) pfn ranges of the zone within [start, end). */
function freePfnRanges(kernel: GuestKernel, start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  for (const r of kernel.memblock.freeRanges()) {
    const s = Math.max(start, pfnOf(r.start));
    const e = Math.min(end, pfnOf(r.end));
    if (s < e) out.push([s, e]);
  }
  return out;
}

/**
 * deferred_grow_zone(): an allocation failed before deferred init ran: initialise and free the
 * next section of the zone on the calling CPU, under pgdat_resize_lock.
 */
export function* deferred_grow_zone(kernel: GuestKernel, zone: Zone): Proc<boolean> {
  const lock = kernel.allocator.pgdat_resize_lock;
  const before = zone.first_deferred_pfn;
  yield lock.acquire({ irqsave: true });
  if (zone.first_deferred_pfn !== before || kernel.allocator.deferredInitStarted) {
    lock.release({ irqrestore: true });
    return true;
  }
  const start = zone.first_deferred_pfn;
  const end = Math.min(zone.end_pfn, start + PAGES_PER_SECTION);
  for (const [s, e] of freePfnRanges(kernel, start, end)) yield* deferredInitRange(kernel, s, e);
  zone.first_deferred_pfn = end >= zone.end_pfn ? Infinity : end;
  lock.release({ irqrestore: true });
  return true;
}

/**
 * page_alloc_init_late() -> deferred_init_memmap(): padata_do_multithreaded() over the deferred
 * range with one worker per CPU of the node, chunks of at least a section, a quarter of an even
 * share each (load_balance_factor 4). The caller (kernel_init on the BSP) waits for completion.
 */
export function* deferred_init_memmap(kernel: GuestKernel): Proc<void> {
  const alloc = kernel.allocator;
  const zone = alloc.zones[alloc.zones.length - 1]!;
  // Under pgdat_resize_lock, as the kernel reads and clears pgdat->first_deferred_pfn: a
  // deferred_grow_zone() in progress on another CPU finishes first, and none can start after.
  const lock = alloc.pgdat_resize_lock;
  yield lock.acquire({ irqsave: true });
  alloc.deferredInitStarted = true;
  const start = zone.first_deferred_pfn;
  const end = zone.end_pfn;
  zone.first_deferred_pfn = Infinity;
  lock.release({ irqrestore: true });
  if (start >= end) return;
  const size = end - start;
  const nworks = Math.max(1, Math.min(kernel.vcpus.length, Math.floor(size / PAGES_PER_SECTION)));
  let chunk = Math.max(Math.floor(size / (nworks * 4)), PAGES_PER_SECTION);
  chunk = roundUp(chunk, PAGES_PER_SECTION);
  let cursor = start;
  const sim = kernel.sim;
  function* worker(): Proc<void> {
    while (cursor < end) {
      const s = cursor;
      const e = Math.min(end, s + chunk);
      cursor = e;
      for (const [fs, fe] of freePfnRanges(kernel, s, e)) yield* deferredInitRange(kernel, fs, fe);
    }
  }
  const workers = [];
  for (let i = 0; i < nworks; i++) {
    workers.push(kernel.spawn(worker(), i === 0 ? 'pgdatinit0' : `padata/${i}`, i, { priority: Priority.Normal }));
  }
  const id = sim.opBegin('deferred_init_memmap', { pages: size, threads: nworks });
  for (const w of workers) yield w.join();
  sim.opEnd(id);
  assert(cursor >= end, 'deferred init left memory uninitialised', { cursor, end });
}
