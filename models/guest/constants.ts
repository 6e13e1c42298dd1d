/**
 * x86-64 memory constants the guest model shares with the kernel. Addresses are byte offsets
 * (a number is exact up to 8 PiB); page frame numbers (pfn) are address >> PAGE_SHIFT.
 */

/** [linux:arch/x86/include/asm/page_types.h] */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** [linux:include/linux/mmzone.h]: MAX_PAGE_ORDER is 10 on x86 (4 MiB blocks). */
export const MAX_PAGE_ORDER = 10;
export const MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER;
export const MAX_ORDER_BYTES = MAX_ORDER_NR_PAGES * PAGE_SIZE;

/**
 * pageblock_nr_pages on x86-64: pageblock_order = HUGETLB_PAGE_ORDER = PMD_SHIFT - PAGE_SHIFT = 9
 * ([linux:include/linux/pageblock-flags.h]), 2 MiB of 4K pages.
 */
export const PAGEBLOCK_NR_PAGES = 1 << 9;

/** MIGRATE_PCPTYPES ([linux:include/linux/mmzone.h]): unmovable, movable, reclaimable. */
export const MIGRATE_PCPTYPES = 3;

/** EFI_UNACCEPTED_UNIT_SIZE = PMD_SIZE: one bitmap bit covers 2 MiB ([linux:drivers/firmware/efi/libstub/unaccepted_memory.c]). */
export const EFI_UNACCEPTED_UNIT_SIZE = 2 * 1024 * 1024;
export const PAGES_PER_UNIT = EFI_UNACCEPTED_UNIT_SIZE / PAGE_SIZE;

/** SECTION_SIZE_BITS = 27 on x86-64: a memory section is 128 MiB (PAGES_PER_SECTION). */
export const PAGES_PER_SECTION = (128 * 1024 * 1024) / PAGE_SIZE;

/** sizeof(struct page) on x86-64 without debug options. */
export const STRUCT_PAGE_BYTES = 64;

export const SZ_1M = 1024 * 1024;
export const SZ_4G = 4 * 1024 * 1024 * 1024;

export function pfnOf(addr: number): number {
  return Math.floor(addr / PAGE_SIZE);
}

export function addrOf(pfn: number): number {
  return pfn * PAGE_SIZE;
}

export function roundDown(x: number, align: number): number {
  return x - (x % align);
}

export function roundUp(x: number, align: number): number {
  const r = x % align;
  return r === 0 ? x : x + (align - r);
}

export function hex(addr: number): string {
  return `0x${addr.toString(16)}`;
}
