import { describe, expect, it } from 'vitest';
import { GiB, MiB, type Proc } from '../../../sim/index.ts';
import { MAX_ORDER_NR_PAGES } from '../../../models/guest/constants.ts';
import type { GuestConfig } from '../../../models/guest/kernel.ts';
import { hugepage_init } from '../../../models/guest/khugepaged.ts';
import { deferred_init_memmap } from '../../../models/guest/mm_init.ts';
import type { Extents } from '../../../models/guest/page_alloc.ts';
import { runGuest } from '../../../models/workloads/boot.ts';
import { bringUpAllocator, guestContext } from './guest_context.ts';

type Wmarks = { min: number; low: number; high: number; promo: number };

/**
 * Boots the allocator to the initcalls (firmware, the EFI stub, memblock_free_all, deferred
 * init), runs the postcore init_per_zone_wmark_min() and the subsys hugepage_init(), and returns
 * min_free_kbytes and each zone's watermarks at both points, plus the blocks the first
 * allocation after the subsys initcalls accepted.
 */
function initcalls(overrides: Partial<GuestConfig>) {
  const { k, platform, run } = guestContext(overrides);
  const snap = () => Object.fromEntries(k.allocator.zones.map((z) => [z.name, { ...z.wmark }])) as Record<string, Wmarks>;
  const out = { managed: {} as Record<string, number>, postcore: {} as Record<string, Wmarks>, subsys: {} as Record<string, Wmarks>, minFreePostcore: 0, minFreeSubsys: 0, firstAllocBlocks: 0 };
  run((function* (): Proc<void> {
    yield* bringUpAllocator(k);
    yield* deferred_init_memmap(k);
    out.managed = Object.fromEntries(k.allocator.zones.map((z) => [z.name, z.managed_pages]));
    k.allocator.init_per_zone_wmark_min();
    out.postcore = snap();
    out.minFreePostcore = k.allocator.min_free_kbytes;
    yield* hugepage_init(k.allocator, k.config.thp);
    out.subsys = snap();
    out.minFreeSubsys = k.allocator.min_free_kbytes;
    const before = platform.calls.length;
    const held: Extents = [];
    yield* k.allocator.alloc_pages(0, 1, held);
    // Each block is one arch accept of its 4 MiB + guard unit (the guard overlaps the next block).
    out.firstAllocBlocks = platform.calls.length - before;
  })());
  return out;
}

describe('THP: khugepaged raises min_free_kbytes at the subsys initcall ([linux:mm/khugepaged.c set_recommended_min_free_kbytes])', () => {
  // The 4 GiB guest of guestContext: DMA 4000, DMA32 501632, Normal 524288 managed pages
  // (1029920 in all) once deferred init is done; Normal's unaccepted blocks are all on its list.
  const managed = { DMA: 4000, DMA32: 501632, Normal: 524288 };

  it('postcore: min_free_kbytes = int_sqrt(16 x lowmem KiB) whatever transparent_hugepage/enabled says', () => {
    for (const thp of ['never', 'madvise', 'always'] as const) {
      const r = initcalls({ memoryBytes: 4 * GiB, thp });
      expect(r.managed).toEqual(managed);
      // sqrt(16 x 1029920 x 4 KiB) = sqrt(65914880) = 8118.8
      expect(r.minFreePostcore).toBe(8118);
      // Normal: pages_min 8118 >> 2 = 2029; min = 2029 x 524288 / 1029920 = 1032.9;
      // step = max(1032 >> 2, 524288 x 10 / 10000) = max(258, 524) = 524.
      expect(r.postcore['Normal']).toEqual({ min: 1032, low: 1556, high: 2080, promo: 2604 });
    }
  });

  it('madvise: 11 pageblocks x 3 zones = 16896 pages (67584 KiB) of min_free_kbytes, and Normal\'s watermarks follow', () => {
    const r = initcalls({ memoryBytes: 4 * GiB, thp: 'madvise' });
    // recommended = 512 x 3 x 2 + 512 x 3 x MIGRATE_PCPTYPES^2 = 3072 + 13824 = 16896 pages,
    // below the 5% cap: nr_free_buffer_pages() = 1029920 - (15 + 1990 + 2080) high = 1025835, / 20 = 51291.
    expect(r.minFreeSubsys).toBe(16896 * 4);
    // Normal: min = 16896 x 524288 / 1029920 = 8601.05; step = max(8601 >> 2, 524) = 2150.
    expect(r.subsys['Normal']).toEqual({ min: 8601, low: 8601 + 2150, high: 8601 + 2 * 2150, promo: 8601 + 3 * 2150 });
    expect(r.subsys['Normal']!.promo).toBe(15051);
    // DMA32: min = 16896 x 501632 / 1029920 = 8229.4; step = max(2057, 501) = 2057.
    expect(r.subsys['DMA32']).toEqual({ min: 8229, low: 10286, high: 12343, promo: 14400 });
  });

  it('always raises the watermarks exactly as madvise does (both make hugepage_pmd_enabled() true)', () => {
    const a = initcalls({ memoryBytes: 4 * GiB, thp: 'always' });
    const m = initcalls({ memoryBytes: 4 * GiB, thp: 'madvise' });
    expect(a.subsys).toEqual(m.subsys);
    expect(a.minFreeSubsys).toBe(m.minFreeSubsys);
  });

  it('never: calculate_min_free_kbytes() again, net of the postcore high watermarks: 2 pages lower in Normal', () => {
    const r = initcalls({ memoryBytes: 4 * GiB, thp: 'never' });
    // sqrt(16 x 1025835 x 4) = sqrt(65653440) = 8102.7; pages_min 2025; min = 2025 x 524288 / 1029920 = 1030.9.
    expect(r.minFreeSubsys).toBe(8102);
    expect(r.subsys['Normal']).toEqual({ min: 1030, low: 1554, high: 2078, promo: 2602 });
  });

  it('cond_accept_memory: the first allocation after the subsys initcalls accepts up to the raised promo watermark', () => {
    // Normal has no accepted free memory: to_accept = promo, in 1024-page blocks.
    const madvise = initcalls({ memoryBytes: 4 * GiB, thp: 'madvise' });
    const never = initcalls({ memoryBytes: 4 * GiB, thp: 'never' });
    expect(madvise.firstAllocBlocks).toBe(Math.ceil(15051 / MAX_ORDER_NR_PAGES));
    expect(madvise.firstAllocBlocks).toBe(15);
    expect(never.firstAllocBlocks).toBe(Math.ceil(2602 / MAX_ORDER_NR_PAGES));
    expect(never.firstAllocBlocks).toBe(3);
  });

  it('the 5% cap: a 768 MiB guest (DMA + DMA32) gets nr_free_buffer_pages() / 20, not 2 x 11 x 512 pages', () => {
    const r = initcalls({ memoryBytes: 768 * MiB, thp: 'madvise' });
    expect(r.managed).toEqual({ DMA: 4000, DMA32: 173952 });
    // recommended 11264 pages; nr_free_buffer_pages() = 177952 - (26 + 1236) = 176690, / 20 = 8834.
    expect(r.minFreeSubsys).toBe(8834 * 4);
  });

  it('below 512 MiB of RAM hugepage_init() turns THP off before khugepaged: watermarks stay the postcore ones', () => {
    const r = initcalls({ memoryBytes: 256 * MiB, thp: 'madvise' });
    expect(r.minFreeSubsys).toBe(r.minFreePostcore);
    expect(r.subsys).toEqual(r.postcore);
  });

  it('a whole boot: the zero-watermark window is the same with THP on and off, and only the later watermarks rise', () => {
    const boot = (thp: GuestConfig['thp']) => {
      const { sim, k } = guestContext({ memoryBytes: 4 * GiB, thp });
      runGuest(sim, k);
      const at = (m: string) => k.metrics.milestones.get(m)!;
      return { k, postcore: at('postcore_initcall'), subsys: at('subsys_initcall'), init: at('init') };
    };
    const on = boot('madvise');
    const off = boot('never');
    expect(on.k.metrics.wmarkZeroBlocks).toBe(off.k.metrics.wmarkZeroBlocks);
    expect(on.k.metrics.wmarkZeroBlocks).toBeGreaterThan(0);
    expect(on.postcore).toBe(off.postcore);
    expect(on.subsys).toBeGreaterThanOrEqual(on.postcore);
    expect(on.init).toBeGreaterThan(on.subsys);
    expect(on.k.allocator.min_free_kbytes).toBe(67584);
    const normal = (k: typeof on.k) => k.allocator.zones.find((z) => z.name === 'Normal')!;
    expect(normal(on.k).wmark.promo).toBeGreaterThan(5 * normal(off.k).wmark.promo);
  });
});
