import type { Proc } from '../../sim/index.ts';
import { MIGRATE_PCPTYPES, PAGEBLOCK_NR_PAGES, PAGE_SHIFT } from './constants.ts';
import type { PageAllocator } from './page_alloc.ts';

/**
 * /sys/kernel/mm/transparent_hugepage/enabled at boot (CONFIG_TRANSPARENT_HUGEPAGE=y, the
 * default set by CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS / _MADVISE): Ubuntu builds `madvise`, RHEL
 * `always`; `never` turns THP off but keeps the code.
 */
export const THP_MODES = ['always', 'madvise', 'never'] as const;
export type ThpEnabled = (typeof THP_MODES)[number];

/** hugepage_init(): "disable transparent hugepages on smaller systems", below 512 MiB of RAM. */
const THP_MIN_TOTALRAM_PAGES = 512 << (20 - PAGE_SHIFT);

/**
 * hugepage_init() ([linux:mm/huge_memory.c], a subsys_initcall) -> start_stop_khugepaged() ->
 * set_recommended_min_free_kbytes() ([linux:mm/khugepaged.c set_recommended_min_free_kbytes]). It runs after the postcore
 * init_per_zone_wmark_min(), so the zero-watermark window and the first watermarks are those of
 * calculate_min_free_kbytes(); this then recomputes them:
 * - THP enabled (always or madvise: hugepage_pmd_enabled(), PMD order inherits the global
 *   setting): min_free_kbytes is raised to the recommended minimum when that is larger;
 * - THP `never`: calculate_min_free_kbytes() runs again, now with nr_free_buffer_pages() net of
 *   the high watermarks the postcore initcall set (a slightly smaller value);
 * then setup_per_zone_wmarks() in both cases. Below 512 MiB of RAM hugepage_init() clears the
 * THP flags and returns before start_stop_khugepaged(): nothing changes.
 *
 * Only the watermark effect is modelled: the khugepaged thread itself sleeps (nothing calls
 * madvise(MADV_HUGEPAGE) in these workloads) and huge-page faults of `always` are not modelled.
 */
export function* hugepage_init(alloc: PageAllocator, thp: ThpEnabled): Proc<void> {
  const totalram = alloc.zones.reduce((n, z) => n + z.managed_pages, 0);
  if (totalram < THP_MIN_TOTALRAM_PAGES) return;
  yield* set_recommended_min_free_kbytes(alloc, thp);
}

/** set_recommended_min_free_kbytes() ([linux:mm/khugepaged.c set_recommended_min_free_kbytes]). */
export function* set_recommended_min_free_kbytes(alloc: PageAllocator, thp: ThpEnabled): Proc<void> {
  if (thp === 'never') {
    alloc.calculate_min_free_kbytes();
  } else {
    const recommended = recommended_min_free_kbytes(alloc);
    if (recommended > alloc.min_free_kbytes) {
      // pr_info("raising min_free_kbytes from %d to %lu to help transparent hugepage allocations")
      alloc.sim.instant('khugepaged: raising min_free_kbytes', { from: alloc.min_free_kbytes, to: recommended });
      alloc.min_free_kbytes = recommended;
    }
  }
  yield* alloc.setup_per_zone_wmarks();
}

/**
 * The recommended minimum in KiB: per populated zone up to ZONE_NORMAL (gfp_zone(GFP_USER)),
 * 2 free pageblocks "to assist fragmentation avoidance" plus MIGRATE_PCPTYPES^2 pageblocks "so
 * that on average at least two pageblocks are almost free of another type": 11 x 512 pages per
 * zone, at most 5% of nr_free_buffer_pages() ("don't ever allow to reserve more than 5% of the
 * lowmem").
 */
export function recommended_min_free_kbytes(alloc: PageAllocator): number {
  // Every zone of this guest (DMA, DMA32, Normal) is populated and at most ZONE_NORMAL.
  const nrZones = alloc.zones.filter((z) => z.present_pages > 0).length;
  let recommended = PAGEBLOCK_NR_PAGES * nrZones * 2;
  recommended += PAGEBLOCK_NR_PAGES * nrZones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES;
  recommended = Math.min(recommended, Math.floor(alloc.nr_free_buffer_pages() / 20));
  return recommended << (PAGE_SHIFT - 10);
}
