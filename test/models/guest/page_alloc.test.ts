import { describe, expect, it } from 'vitest';
import { GiB, MiB, type Proc } from '../../../sim/index.ts';
import { MAX_ORDER_NR_PAGES, PAGE_SIZE } from '../../../models/guest/constants.ts';
import { deferred_grow_zone, deferred_init_memmap } from '../../../models/guest/mm_init.ts';
import type { Extents } from '../../../models/guest/page_alloc.ts';
import { countPages } from '../../../models/workloads/application.ts';
import { bringUpAllocator, guestContext } from './guest_context.ts';
import { UNIT } from './context.ts';

const zoneNamed = (k: ReturnType<typeof guestContext>['k'], name: string) => k.allocator.zones.find((z) => z.name === name)!;

describe('page allocator and unaccepted memory ([linux:mm/page_alloc.c])', () => {
  it('__free_pages_core: unaccepted MAX_ORDER blocks wait on unaccepted_pages, counted in NR_FREE_PAGES and NR_UNACCEPTED', () => {
    const { k, run } = guestContext();
    run(bringUpAllocator(k));
    const normal = zoneNamed(k, 'Normal');
    // Deferred struct page init: only the first section (128 MiB) of the highest zone is freed early.
    expect(normal.unaccepted_pages.length).toBe(32);
    expect(normal.NR_UNACCEPTED).toBe(32 * MAX_ORDER_NR_PAGES);
    expect(normal.NR_FREE_PAGES).toBe(normal.NR_UNACCEPTED + normal.free_area.freePages);
    const dma32 = zoneNamed(k, 'DMA32');
    expect(dma32.NR_UNACCEPTED).toBeGreaterThan(0);
    // Nothing was accepted at free time except the stub's edges and what firmware did.
    expect(k.metrics.acceptedBytesBy.get('cond_accept_memory') ?? 0).toBe(0);
    k.allocator.checkInvariants();
  });

  it('cond_accept_memory: accepts one MAX_ORDER block per allocation while watermarks are zero', () => {
    const { k, platform, run } = guestContext();
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      const before = platform.calls.length;
      const held: Extents = [];
      for (let i = 0; i < 3; i++) yield* k.allocator.alloc_pages(0, 1, held);
      const calls = platform.calls.slice(before);
      // Three blocks: the first 4 MiB + its guard unit, then the rest of each next block + guard.
      expect(calls.map((c) => (c.end - c.start) / UNIT)).toEqual([3, 2, 2]);
      expect(k.metrics.wmarkZeroBlocks).toBe(3);
      expect(zoneNamed(k, 'Normal').unaccepted_pages.length).toBe(29);
    })());
  });

  it('cond_accept_memory: with watermarks set, accepts until accepted free memory reaches the promo watermark', () => {
    const { k, run } = guestContext({ memoryBytes: 8 * GiB });
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      yield* deferred_init_memmap(k);
      k.allocator.init_per_zone_wmark_min();
      const normal = zoneNamed(k, 'Normal');
      expect(normal.acceptedFree).toBeLessThan(normal.wmark.promo);
      const held: Extents = [];
      yield* k.allocator.alloc_pages(0, 1, held);
      expect(normal.acceptedFree + normal.pcp[0]!.count + 1).toBeGreaterThanOrEqual(normal.wmark.promo);
      expect(normal.acceptedFree).toBeLessThan(normal.wmark.promo + 2 * MAX_ORDER_NR_PAGES);
      expect(k.metrics.wmarkZeroBlocks).toBe(0);
    })());
  });

  it('without the 2025 zero-watermark fix, allocations before the postcore initcall OOM with memory left unaccepted', () => {
    const outcome = (wmarkZeroFix: boolean) => {
      const { k, run } = guestContext({ memoryBytes: 4 * GiB, firmwareAcceptBytes: 32 * MiB, wmarkZeroFix });
      run((function* (): Proc<void> {
        yield* bringUpAllocator(k);
        const held: Extents = [];
        yield* k.allocator.alloc_pages(0, (64 * MiB) / PAGE_SIZE, held);
      })());
      return { oom: k.metrics.oomEvents, unaccepted: k.allocator.zones.reduce((n, z) => n + z.NR_UNACCEPTED, 0) };
    };
    const broken = outcome(false);
    expect(broken.oom).toBeGreaterThan(0);
    expect(broken.unaccepted).toBeGreaterThan((1 * GiB) / PAGE_SIZE);
    expect(outcome(true).oom).toBe(0);
  });

  it('no allocation returns unaccepted memory, and freeing it all balances the zone again', () => {
    const { k, run } = guestContext({ memoryBytes: 4 * GiB });
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      yield* deferred_init_memmap(k);
      k.allocator.init_per_zone_wmark_min();
      const freeBefore = k.allocator.freePagesTotal();
      const held: Extents = [];
      const got = yield* k.allocator.alloc_pages(1, (1 * GiB) / PAGE_SIZE, held);
      expect(got).toBe((1 * GiB) / PAGE_SIZE);
      for (let i = 0; i < held.length; i += 2) {
        const start = held[i]! * PAGE_SIZE;
        expect(k.ledger.isAccepted(start, start + held[i + 1]! * PAGE_SIZE)).toBe(true);
      }
      expect(countPages(held)).toBe(got);
      yield* k.allocator.free_pages(1, held);
      expect(k.allocator.freePagesTotal()).toBe(freeBefore);
      expect(k.allocator.allocatedPages).toBe(0);
      k.allocator.checkInvariants();
    })());
  });

  it('deferred_init_memmap() takes pgdat_resize_lock: it starts after a deferred_grow_zone() in progress and skips what that grew', () => {
    const { sim, k } = guestContext({ memoryBytes: 4 * GiB });
    const normal = zoneNamed(k, 'Normal');
    let grownTo = 0;
    const boot = sim.spawn((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      // vCPU 1 grows the zone by a section (an allocation that found it empty); vCPU 0 reaches
      // page_alloc_init_late() while that is still freeing blocks.
      const grow = sim.spawn((function* (): Proc<void> {
        yield* deferred_grow_zone(k, normal);
        grownTo = normal.first_deferred_pfn;
      })(), { name: 'grow/1', cpu: k.vcpus[1]!, service: 'guest' });
      yield sim.sleep(10_000);
      yield* deferred_init_memmap(k);
      yield grow.join();
    })(), { name: 'boot/0', cpu: k.vcpus[0]!, service: 'guest' });
    sim.run();
    expect(boot.state).toBe('done');
    expect(grownTo).toBe(normal.start_pfn + 2 * 32768);
    // Every page of the zone handed to the buddy allocator exactly once.
    expect(normal.first_deferred_pfn).toBe(Infinity);
    expect(normal.managed_pages).toBe(normal.present_pages);
    k.allocator.checkInvariants();
  });

  it('deferred_free_pages(): a chunk smaller than MAX_ORDER is accepted up front, then each page goes through __free_pages_core() and its range_contains_unaccepted_memory()', () => {
    const { k, run } = guestContext({ memoryBytes: 4 * GiB });
    const normal = zoneNamed(k, 'Normal');
    const base = 4 * GiB + 512 * MiB;
    let lockRoundTrips = 0;
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      // A reservation inside the deferred part leaves two pieces of one MAX_ORDER block free:
      // [base, base + 1 MiB) and [base + 2 MiB, base + 4 MiB), 256 + 512 pages.
      k.memblock.reserve(base + 1 * MiB, base + 2 * MiB);
      const before = k.unaccepted.unaccepted_memory_lock.stats.acquisitions;
      yield* deferred_init_memmap(k);
      lockRoundTrips = k.unaccepted.unaccepted_memory_lock.stats.acquisitions - before;
    })());
    // The deferred part [4 GiB + 128 MiB, 6 GiB) has 480 blocks; 479 are whole, each one check.
    const wholeBlocks = 479;
    expect(lockRoundTrips).toBeGreaterThanOrEqual(wholeBlocks + 768);
    // ... plus the two accept_memory() calls of the pieces (lock taken and retaken per run).
    expect(lockRoundTrips).toBeLessThanOrEqual(wholeBlocks + 768 + 4);
    expect(k.ledger.isAccepted(base, base + 4 * MiB)).toBe(true);
    expect(normal.managed_pages).toBe(normal.present_pages - 256);
    k.allocator.checkInvariants();
  });

  it('seed allocator: post_alloc_hook accepts the 2M unit of a PageUnaccepted page; split halves keep the mark', () => {
    const { k, platform, run } = guestContext({ allocator: 'seed' });
    run((function* (): Proc<void> {
      yield* bringUpAllocator(k);
      const normal = zoneNamed(k, 'Normal');
      expect(normal.unaccepted_pages.length).toBe(0);
      expect(normal.free_area.unaccepted.size).toBeGreaterThan(0);
      const callsBefore = platform.calls.length;
      const locksBefore = k.unaccepted.unaccepted_memory_lock.stats.acquisitions;
      const held: Extents = [];
      yield* k.allocator.alloc_pages(0, 512, held);
      const calls = platform.calls.slice(callsBefore);
      // 512 pages of one unit: one arch accept of that 2 MiB (the last page's aligned end adds
      // the guard unit), but a global lock round trip for every page.
      expect(calls.length).toBeLessThanOrEqual(2);
      expect(calls[0]!.end - calls[0]!.start).toBe(UNIT);
      expect(k.unaccepted.unaccepted_memory_lock.stats.acquisitions - locksBefore).toBeGreaterThanOrEqual(512);
      // The rest of the split 4 MiB block is still marked PageUnaccepted in the free lists.
      expect([...normal.free_area.unaccepted].some((pfn) => pfn % MAX_ORDER_NR_PAGES !== 0)).toBe(true);
    })());
  });
});
