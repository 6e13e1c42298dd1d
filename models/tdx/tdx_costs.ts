/**
 * Costs of the TDX module and of TD transitions, in ns (rates in bytes/s). Every default cites
 * its entry of docs/sources.md. The one measured quantity, ~2.5 us per 4K page end to end on one
 * vCPU of a quiet host ([kirill-2024-10-accept-90g], [R2]), sits below the sum of the ranges'
 * midpoints, so the defaults take the low ends of the ESTIMATE ranges (docs/sources.md section 8,
 * e.g. [estimate:vm-exit-round-trip]) and the high end of the zeroing rate; the resulting uncontended per-page cost is ~2.67 us (docs/calibration-host.md).
 */
export interface TdxCosts {
  /**
   * A TDCALL that the module completes without a VMM exit (TDG.MEM.PAGE.ACCEPT that succeeds,
   * or answers TDX_PAGE_SIZE_MISMATCH / TDX_OPERAND_INVALID), without the page zeroing.
   * [cvm-eval-vmexit]: CPUID handled in the module without a VMM exit, 0.65 us (1744 cycles).
   */
  tdcallNs: number;
  /**
   * The module zeroing accepted memory with the TD key (zero_area_cacheline, MOVDIR64B), one CPU,
   * bytes/s. ESTIMATE [estimate:tdx-2m-accept]: the module zeroes at 10-20 GB/s; high end.
   */
  zeroBytesPerSec: number;
  /**
   * TDCALL -> asynchronous TD exit (EPT violation, VMX_EEQ_ACCEPT) -> KVM's exit dispatch: the
   * guest's TDCALL into the module, the module saving the TD's state and exiting to the host
   * (SEAMRET), KVM restoring host state in tdx_vcpu_run() and dispatching the exit.
   * ESTIMATE [estimate:td-exit-entry] from [cvm-eval-vmexit]: a CPUID through #VE -> TDVMCALL ->
   * KVM takes 3.85 us, of which 0.65 us is the CPUID exit that injects the #VE (a TD -> module ->
   * TD round trip, as the in-module CPUID), 0.65 us TDG.VP.VEINFO.GET, ~0.2 us the #VE entry and
   * IRET, ~0.15 us KVM's CPUID emulation: ~2.2 us for a TDCALL exit to KVM and TDH.VP.ENTER back,
   * split evenly.
   */
  tdExitNs: number;
  /** TDH.VP.ENTER back into the TD, up to the guest re-executing its TDCALL; see tdExitNs. */
  tdEntryNs: number;
  /**
   * The host kernel's clflush of a page before it hands it to the module (tdx_clflush_page() /
   * tdx_clflush_pfn() in tdh_mem_page_aug() and tdh_mem_sept_add(), [linux:arch/x86/virt/vmx/tdx/tdx.c]:
   * clflush_cache_range() of 64 lines; a 2M AUG flushes its 512 pages one by one). ESTIMATE
   * [estimate:guest-cpa]: 64 clflushes of ~5 ns, 320 ns per 4 KiB. 0 leaves it out (`tdx_clflush=false`,
   * a module with CLFLUSH_BEFORE_ALLOC clear).
   */
  clflushPageNs: number;
  /**
   * SEAMCALL entry and exit transitions around a leaf's body.
   * ESTIMATE [estimate:seamcall-transition] (0.3-1 us + work): low end, 300 ns.
   */
  seamcallNs: number;
  /**
   * TDH.MEM.PAGE.AUG body: TDR/TDCS checks, S-EPT walk, entry lock, PAMT walk of the new page,
   * leaf set PENDING. Held under the secure_ept_lock. ESTIMATE [estimate:tdh-mem-page-aug]
   * (1-3 us, SEAMCALL + walks/locks, no zeroing): 1 us total = 300 ns transitions + 700 ns body.
   */
  augBodyNs: number;
  /**
   * TDH.MEM.SEPT.ADD body, without filling the new S-EPT page (fill_area_cacheline of 4 KiB,
   * charged at zeroBytesPerSec): walks and locks as AUG. Same ESTIMATE as augBodyNs,
   * [estimate:tdh-mem-page-aug].
   */
  septAddBodyNs: number;
  /**
   * TDH.VP.FLUSH of a vCPU on the host CPU it last ran on, when it is loaded on another one
   * (tdx_vcpu_load() -> tdx_flush_vp_on_cpu()): the SEAMCALL's transitions and the flush of the
   * TD VMCS and the vCPU's TLB and cache state. ESTIMATE 1 us [estimate:tdh-vp-flush]: a
   * SEAMCALL's transitions (0.3-1 us + work) with ~0.7 us of VMCLEAR-like work, as augBodyNs.
   */
  vpFlushNs: number;
  /**
   * TDH.PHYMEM.PAMT.ADD body: walk to the 2M entry (exclusive), check and set the two pages'
   * PAMT_PAGE_BITMAP bits, zero the 2 x 4 KiB pair, make the entry a PT_PAMT node. ESTIMATE
   * [estimate:tdh-phymem-pamt-add] (2-5 us): low end, 2 us total = 300 ns
   * transitions + 1.7 us body, held under the 2M entry's exclusive lock.
   */
  pamtAddBodyNs: number;
  /** TDH.PHYMEM.PAMT.REMOVE body: the 512-entry scan and the node's release; as pamtAddBodyNs. */
  pamtRemoveBodyNs: number;
  /**
   * TDH.PHYMEM.PAGE.RECLAIM body (TD teardown): walk to the page's PAMT entry (exclusive), the
   * TDR shared, the lifecycle check, TDR.CHLDCNT decremented, the entry set PT_NDA with the
   * node's count and its "can remove" hint; no data touched. ESTIMATE
   * [estimate:tdh-phymem-page-reclaim]: as an AUG body, 700 ns (1 us with the transitions).
   */
  reclaimBodyNs: number;
  /**
   * TDH.MNG.VPFLUSHDONE and TDH.MNG.KEY.FREEID bodies: the TDR exclusive, the KOT lock, a state
   * change. ESTIMATE [estimate:tdh-mng-key-teardown]: as an AUG body, 700 ns.
   */
  mngTeardownBodyNs: number;
  /**
   * TDH.PHYMEM.CACHE.WB on one package: WBNOINVD of every cache sub-block (the whole LLC written
   * back, not only the TD's lines). ESTIMATE [estimate:tdh-phymem-cache-wb]: 500 us.
   */
  cacheWbNs: number;
  /**
   * TDH.PHYMEM.PAGE.WBINVD of the TDR page after its reclaim (tdh_phymem_page_wbinvd_tdr(),
   * [linux:arch/x86/kvm/vmx/tdx.c]): one 4 KiB written back and invalidated with its key, charged
   * inside the TDR's reclaim (the leaf is another change's). ESTIMATE
   * [estimate:tdh-phymem-page-wbinvd]: 700 ns body, as an AUG body.
   */
  pageWbinvdBodyNs: number;
}

export const TDX_COSTS: TdxCosts = {
  tdcallNs: 650,
  zeroBytesPerSec: 20e9,
  tdExitNs: 1_100,
  tdEntryNs: 1_100,
  clflushPageNs: 320,
  seamcallNs: 300,
  augBodyNs: 700,
  septAddBodyNs: 700,
  vpFlushNs: 1_000,
  pamtAddBodyNs: 1_700,
  pamtRemoveBodyNs: 1_700,
  reclaimBodyNs: 700,
  mngTeardownBodyNs: 700,
  cacheWbNs: 500_000,
  pageWbinvdBodyNs: 700,
};
