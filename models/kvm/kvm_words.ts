/**
 * The VM-wide words a private fault touches with atomics, one cache line each: kvm->mmu_lock
 * (read_lock and read_unlock, [linux:arch/x86/kvm/mmu/tdp_mmu.c]), and in guest_memfd
 * ([linux:virt/kvm/guest_memfd.c] kvm_gmem_get_pfn()) the file's reference count
 * (get_file_active() and fput()), the inode's shared-policy lock (mpol_shared_policy_lookup():
 * read_lock) and its page cache's i_pages lock (xa_lock_irq() around __filemap_add_folio(), held
 * for the insert).
 */
export const KVM_WORDS = ['mmu_lock', 'gmem_file', 'gmem_policy', 'gmem_pages'] as const;
export const MMU_LOCK_WORD = 0;
export const GMEM_FILE = 1;
export const GMEM_POLICY = 2;
export const GMEM_PAGES = 3;
/** Pages rmqueue_bulk() moves to a pcp list under zone->lock (`pcp->batch`, zone_batchsize()). */
export const PCP_BATCH = 63;

/** The zone->lock refills (one per PCP_BATCH) of `n` more folios after `folios`. */
export function pcpRefills(folios: number, n: number): number {
  return Math.floor((folios + n) / PCP_BATCH) - Math.floor(folios / PCP_BATCH);
}
