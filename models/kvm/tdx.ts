import { assert } from '../../sim/assert.ts';
import type { HostMemory, HostMemoryKind, OwnerId } from '../host/host_memory.ts';
import { TDCS_PAGES, TDR_PAGES, TDVPS_PAGES } from '../tdx/arch.ts';
import { SecureEpt, type SeptPageKind } from '../tdx/secure_ept.ts';
import type { Td } from '../tdx/td.ts';
import type { TdxModule } from '../tdx/tdx_module.ts';
import { HostOutOfMemory } from './guest_memfd.ts';

/**
 * How KVM maps TD private memory in the Secure EPT:
 * - '4k': upstream KVM (tdx_sept_set_private_spte(): KVM_BUG_ON(level != PG_LEVEL_4K),
 *   [linux:arch/x86/kvm/vmx/tdx.c]), so a
 *   2M ACCEPT of an unmapped range gets a PT page and a 4K leaf, then TDX_PAGE_SIZE_MISMATCH;
 * - '2m': the unmerged "KVM: TDX huge page support" series ([tdx-huge-page-series]): KVM maps at most at the guest's
 *   ACCEPT level, so a 2M ACCEPT of an unmapped 2M range gets a 2M leaf (2 MiB folios).
 */
export const SEPT_MAPPINGS = ['4k', '2m'] as const;
export type SeptMapping = (typeof SEPT_MAPPINGS)[number];

/** Where KVM takes the host pages of a TD (S-EPT pages, control pages) from. */
export interface TdHostPages {
  memory: HostMemory;
  owner: OwnerId;
  node: number;
}

/**
 * `struct kvm_tdx`: KVM's side of one TD: the module and the TD's state in it, how KVM maps
 * private memory, the mirror SPTEs frozen while their TDH.MEM.SEPT.ADD runs, and the host pages
 * KVM gave the module for the TD (control pages at creation, S-EPT pages as they are added).
 */
export class KvmTdx {
  private readonly frozen = new Set<number>();
  /** Host pages given to the module: S-EPT pages and control pages (TDR, TDCS, TDVPS). */
  septPages = 0;
  readonly controlPages: number;

  /**
   * tdx_td_init() / tdx_vcpu_create(): the TDR and TDCS pages and each vCPU's TDVPS pages, from
   * host memory (tdx_alloc_control_page()); the SEAMCALLs that hand them over are not timed.
   */
  constructor(
    readonly module: TdxModule,
    readonly td: Td,
    readonly sept: SeptMapping,
    readonly pages: TdHostPages,
    vcpus: number,
  ) {
    this.controlPages = TDR_PAGES + TDCS_PAGES[module.version] + vcpus * TDVPS_PAGES;
    for (let i = 0; i < this.controlPages; i++) this.hostPage('tdx_control');
  }

  /**
   * The host page for an S-EPT page TDH.MEM.SEPT.ADD has just linked (KVM takes it from the
   * vCPU's MMU cache, topped up from the page allocator before mmu_lock: kvm_mmu_topup_memory_cache()).
   */
  septPageAdded(): void {
    this.hostPage('sept');
    this.septPages++;
  }

  private hostPage(kind: HostMemoryKind): void {
    const { memory, owner, node } = this.pages;
    if (memory.allocPage(owner, kind, node) === null) {
      throw new HostOutOfMemory(`host out of memory: no 4K page for a ${kind} page of ${this.td.name} (host memory ${memory.totalBytes() / 2 ** 30} GiB, ${memory.usedBytes() / 2 ** 30} GiB in use); give the host more memory (host_memory_gib)`);
    }
  }

  /** KVM's host pages of the TD agree with what the module holds: one per S-EPT page added. */
  checkInvariants(): void {
    const adds = this.td.counters.septAdds;
    if (this.septPages !== adds) assert(false, 'S-EPT pages from host memory and TDH.MEM.SEPT.ADD count disagree', { td: this.td.name, pages: this.septPages, adds });
    if (this.frozen.size !== 0) assert(false, 'mirror SPTEs still frozen at the end of the run', { td: this.td.name, frozen: this.frozen.size });
  }

  /**
   * KVM's mirror SPTE of an S-EPT page being added is frozen (FROZEN_SPTE) while its
   * TDH.MEM.SEPT.ADD runs; another vCPU's fault that meets it retries.
   */
  septPageFrozen(region: number, kind: SeptPageKind): boolean {
    return this.frozen.has(SecureEpt.pageKey(region, kind));
  }

  freezeSeptPage(region: number, kind: SeptPageKind): void {
    const key = SecureEpt.pageKey(region, kind);
    assert(!this.frozen.has(key), 'mirror SPTE frozen twice', { td: this.td.name, region, kind });
    this.frozen.add(key);
  }

  thawSeptPage(region: number, kind: SeptPageKind): void {
    assert(this.frozen.delete(SecureEpt.pageKey(region, kind)), 'thawing a mirror SPTE that is not frozen', { td: this.td.name, region, kind });
  }

}
