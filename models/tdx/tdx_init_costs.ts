/**
 * Costs of TDX module initialisation, in ns, each with its source (docs/sources.md). The
 * SEAMCALLs of initialisation run once per boot; only TDH.SYS.TDMR.INIT has a published cost.
 */
export interface TdxInitCosts {
  /**
   * TDH.SYS.INIT, once, under the kernel's sysinit_lock. ESTIMATE [estimate:tdx-sys-init-leaves]:
   * 20 us, global checks of the platform (MSRs, CPUID, the SEAM range).
   */
  sysInitNs: number;
  /** TDH.SYS.LP.INIT on one CPU (every CPU in parallel). ESTIMATE [estimate:tdx-sys-init-leaves]: 5 us. */
  lpInitNs: number;
  /**
   * TDH.SYS.RD of one global metadata field (get_tdx_sys_info(): CMRs, TDMR limits, PAMT entry
   * sizes, features): a SEAMCALL's transitions and a table read.
   * ESTIMATE [estimate:seamcall-transition]: 300 ns.
   */
  sysRdNs: number;
  /** Global metadata fields the kernel reads (tdx_global_metadata.c: features, TDMR, CMR, TD control fields). ESTIMATE [estimate:tdx-sys-init-leaves]: 24. */
  sysRdFields: number;
  /**
   * TDH.SYS.CONFIG: the checks of every TDMR, reserved area and PAMT against each other and
   * the CMRs ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_config.c]).
   * ESTIMATE [estimate:tdx-sys-init-leaves]: 50 us.
   */
  sysConfigNs: number;
  /**
   * TDH.SYS.KEY.CONFIG on one CPU of a package: program the global KeyID's key into the
   * package's memory controllers (PCONFIG). ESTIMATE [estimate:tdx-sys-init-leaves]: 20 us.
   */
  keyConfigNs: number;
  /**
   * wbinvd_on_all_cpus() before the key configuration: every package writes back and
   * invalidates its caches, in parallel. ESTIMATE [estimate:wbinvd]: 1 ms.
   */
  wbinvdNs: number;
  /** An IPI with wait (smp_call_on_cpu() of TDH.SYS.KEY.CONFIG, on_each_cpu()). [estimate:ipi]: 2 us. */
  ipiNs: number;
  /**
   * One TDH.SYS.TDMR.INIT call, transitions included: ~7 us per call on a two-socket 2.2 GHz
   * host ([tdx-host-rfc-2022-02], the per-call figure of [R10]).
   */
  tdmrInitCallNs: number;
  /**
   * TDMR bytes one TDH.SYS.TDMR.INIT call initialises: TDMR_4K_PAMT_INIT_COUNT = 1024 4K PAMT
   * entries, 4 MiB of TDMR, with static PAMT; TDMR_4K_DYNAMIC_PAMT_INIT_COUNT = 4096 entries,
   * 16 MiB, with Dynamic PAMT ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_tdmr_init.c]).
   */
  tdmrInitChunkStatic: number;
  tdmrInitChunkDynamic: number;
  /** cond_resched() between calls. [estimate:cond-resched]: 20 ns. */
  condReschedNs: number;
  /**
   * alloc_contig_pages() per 4K page taken (isolating and taking the range off the buddy
   * lists). [estimate:page-allocator]: 50 ns per page off the buddy lists.
   */
  contigPerPageNs: number;
}

export const TDX_INIT_COSTS: TdxInitCosts = {
  sysInitNs: 20_000,
  lpInitNs: 5_000,
  sysRdNs: 300,
  sysRdFields: 24,
  sysConfigNs: 50_000,
  keyConfigNs: 20_000,
  wbinvdNs: 1_000_000,
  ipiNs: 2_000,
  tdmrInitCallNs: 7_000,
  tdmrInitChunkStatic: 1024 * 4096,
  tdmrInitChunkDynamic: 4096 * 4096,
  condReschedNs: 20,
  contigPerPageNs: 50,
};
