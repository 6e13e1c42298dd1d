import type { Cpu, Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { hex } from '../arch/units.ts';
import type { HostMemory, HostMemoryKind, OwnerId } from '../host/host_memory.ts';
import { TdxPamtKernel, type TdxPamtCache } from '../host/tdx_pamt.ts';
import { TDCS_PAGES, TDR_PAGES, TDVPS_PAGES, TDX_SUCCESS, tdxStatusName } from '../tdx/arch.ts';
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
  /** The host kernel's PAMT management (policy, refcounts); null: static, nothing to do. */
  pamt?: TdxPamtKernel | null;
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
  /** The kernel's PAMT management; null when static (nothing to do around a SEAMCALL). */
  readonly pamt: TdxPamtKernel | null;
  /** Per-vCPU tdx_pamt_cache (reached through kvm_get_running_vcpu()). */
  private readonly pamtCaches = new Map<Cpu, TdxPamtCache>();
  /**
   * Host addresses of the control pages (kvm_tdx->td.tdr_page, tdcs_pages[], each vCPU's
   * tdvpr_page and tdcx_pages[]): TDR, TDCS..., then per vCPU TDVPR and its TDCX pages.
   */
  readonly controlHpas: number[] = [];
  /** Host addresses of the S-EPT pages TDH.MEM.SEPT.ADD linked, in order (reclaimed at teardown). */
  readonly septHpas: number[] = [];
  /** The TD was torn down (models/kvm/tdx_teardown.ts): every page back, the HKID free. */
  tornDown = false;

  /**
   * tdx_td_init() / tdx_vcpu_create(): the TDR and TDCS pages and each vCPU's TDVPS pages, from
   * host memory (tdx_alloc_control_page(): with Dynamic PAMT a tdx_pamt_get() first); the
   * SEAMCALLs that hand them over (TDH.MNG.CREATE, TDH.MNG.ADDCX, TDH.VP.CREATE, TDH.VP.ADDCX)
   * walk the PAMT of each page and are not timed.
   */
  constructor(
    readonly module: TdxModule,
    readonly td: Td,
    readonly sept: SeptMapping,
    readonly pages: TdHostPages,
    vcpus: number,
  ) {
    const kernel = pages.pamt ?? null;
    this.pamt = kernel !== null && kernel.dynamic ? kernel : null;
    const tdcs = TDCS_PAGES[module.version];
    this.controlPages = TDR_PAGES + tdcs + vcpus * TDVPS_PAGES;
    for (let i = 0; i < this.controlPages; i++) {
      const leaf = i === 0 ? 'TDH.MNG.CREATE' : i <= tdcs ? 'TDH.MNG.ADDCX' : (i - 1 - tdcs) % TDVPS_PAGES === 0 ? 'TDH.VP.CREATE' : 'TDH.VP.ADDCX';
      const hpa = this.hostPage('tdx_control');
      this.controlHpas.push(hpa);
      this.addControlPage(hpa, leaf);
    }
  }

  /** One control page handed to the module at build, with the kernel's PAMT handling. */
  private addControlPage(hpa: number, leaf: string): void {
    const kernel = this.pamt;
    if (kernel?.refcounted === true) kernel.getNow(hpa);
    let status = this.module.addControlPage(hpa, leaf, this.td);
    if (kernel?.policy === 'lazy' && TdxPamtKernel.missingPair(status)) {
      kernel.lazyAddNow(hpa);
      status = this.module.addControlPage(hpa, leaf, this.td);
    }
    if (status !== TDX_SUCCESS) assert(false, `KVM_BUG_ON: ${leaf} failed with ${tdxStatusName(status)}`, { td: this.td.name, hpa: hex(hpa) });
  }

  /**
   * The host page for an S-EPT page TDH.MEM.SEPT.ADD is about to link (KVM takes it from the
   * vCPU's MMU cache, topped up from the page allocator before mmu_lock:
   * kvm_mmu_topup_memory_cache()). Returns its host physical address.
   */
  allocSeptPage(): number {
    return this.hostPage('sept');
  }

  /** TDH.MEM.SEPT.ADD linked the page at `hpa`: it stays the module's until teardown. */
  septPageAdded(hpa: number): void {
    this.septPages++;
    this.septHpas.push(hpa);
  }

  /** TDH.MEM.SEPT.ADD failed: the page goes back (to the MMU cache; here, host memory). */
  freeSeptPage(hpa: number): void {
    this.pages.memory.freePage(hpa, this.pages.owner);
  }

  private hostPage(kind: HostMemoryKind): number {
    const { memory, owner, node } = this.pages;
    const hpa = memory.allocPage(owner, kind, node);
    if (hpa === null) {
      throw new HostOutOfMemory(`host out of memory: no 4K page for a ${kind} page of ${this.td.name} (host memory ${memory.totalBytes() / 2 ** 30} GiB, ${memory.usedBytes() / 2 ** 30} GiB in use); give the host more memory (host_memory_gib)`);
    }
    return hpa;
  }

  // ---- Dynamic PAMT around the fault path's SEAMCALLs -----------------------------------------

  /** The calling vCPU's tdx_pamt_cache (kvm_get_running_vcpu()). */
  pamtCache(cpu: Cpu | null): TdxPamtCache | null {
    const kernel = this.pamt;
    if (kernel === null || cpu === null) return null;
    let c = this.pamtCaches.get(cpu);
    if (c === undefined) {
      c = kernel.newCache();
      this.pamtCaches.set(cpu, c);
    }
    return c;
  }

  /** mmu_topup_memory_caches() for the calling vCPU, before mmu_lock (no-op when static). */
  pamtTopup(cpu: Cpu | null): void {
    const c = this.pamtCache(cpu);
    if (c !== null) this.pamt!.topup(c);
  }

  /**
   * A fault-path SEAMCALL that hands the module the 4K page at `hpa` (`n` pages of one 2M range
   * for an aggregated step), with the policy's PAMT handling around it:
   * - static: the call alone;
   * - refcount: tdx_pamt_get() before (pair from the vCPU's cache), tdx_pamt_put() if the call
   *   fails;
   * - lazy: the call; on TDX_MISSING_PAMT_PAGE_PAIR, PAMT.ADD and the call again (a BUSY
   *   PAMT.ADD is retried, each answer counted).
   * Returns the call's final status.
   */
  *withPamt(hpa: number, n: number, cpu: Cpu | null, call: () => Proc<bigint>): Proc<bigint> {
    const kernel = this.pamt;
    if (kernel === null) return yield* call();
    const cache = this.pamtCache(cpu);
    if (kernel.refcounted) {
      yield* kernel.get(hpa, n, cache);
      const status = yield* call();
      if (status !== TDX_SUCCESS) yield* kernel.put(hpa, n);
      return status;
    }
    for (;;) {
      const status = yield* call();
      if (!TdxPamtKernel.missingPair(status)) return status;
      let added = yield* kernel.lazyAdd(hpa, cache);
      while (added !== TDX_SUCCESS) {
        yield this.module.sim.stallFor(this.module.seamcallHalfNs);
        added = yield* kernel.lazyAdd(hpa, cache);
      }
    }
  }

  /** KVM's host pages of the TD agree with what the module holds: one per S-EPT page added. */
  checkInvariants(): void {
    const adds = this.td.counters.septAdds;
    if (this.septHpas.length !== adds) assert(false, 'S-EPT page addresses KVM kept and TDH.MEM.SEPT.ADD count disagree', { td: this.td.name, kept: this.septHpas.length, adds });
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
