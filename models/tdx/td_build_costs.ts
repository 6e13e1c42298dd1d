/**
 * The TDX module's costs of building a TD (the SEAMCALLs KVM makes before the TD first runs), in
 * ns. No source times them: each is an ESTIMATE with its row in docs/sources.md section 8
 * ([estimate:td-build-seamcalls], [estimate:tdx-sha384]). The SEAMCALL transitions
 * (TdxCosts.seamcallNs) come on top of each body.
 */
export interface TdBuildCosts {
  /**
   * Bodies of TDH.MNG.CREATE, TDH.MNG.ADDCX, TDH.VP.CREATE and TDH.VP.ADDCX: PAMT walks of the
   * page and the TDR and a state change, as TDH.MEM.PAGE.AUG's body; the page is then
   * initialised with the TD's key at the module's zeroing rate (ADDCX, VP.CREATE, VP.ADDCX).
   * ESTIMATE 700 ns [estimate:td-build-seamcalls].
   */
  controlPageBodyNs: number;
  /** TDH.MNG.KEY.CONFIG on one CPU of each package: PCONFIG programs the HKID into the memory controllers. ESTIMATE 20 us [estimate:td-build-seamcalls]. */
  keyConfigNs: number;
  /** TDH.MNG.INIT: TD_PARAMS checked against the module's CPUID and feature configuration, the TDCS filled, the SHA-384 context started. ESTIMATE 20 us [estimate:td-build-seamcalls]. */
  mngInitNs: number;
  /** TDH.VP.INIT: the TD VMCS and the vCPU state initialised. ESTIMATE 5 us [estimate:td-build-seamcalls]. */
  vpInitNs: number;
  /** TDH.MEM.PAGE.ADD's walks and locks (TDR, S-EPT entry, the new page's PAMT entry), as AUG; the 4 KiB copy is charged at the zeroing rate. ESTIMATE 700 ns [estimate:td-build-seamcalls]. */
  pageAddBodyNs: number;
  /** One 128-byte SHA-384 block (sha384_update_128B()) with the YMM save and restore around it. ESTIMATE 300 ns [estimate:tdx-sha384]. */
  sha384BlockNs: number;
  /** TDH.MR.EXTEND's walks (TDR, the S-EPT leaf of the GPA) before its three SHA-384 blocks. ESTIMATE 300 ns [estimate:tdx-sha384]. */
  mrExtendBodyNs: number;
  /** TDH.MR.FINALIZE: SHA-384 finalisation of MRTD and the OP_STATE change. ESTIMATE 2 us [estimate:td-build-seamcalls]. */
  mrFinalizeNs: number;
}

export const TD_BUILD_COSTS: TdBuildCosts = {
  controlPageBodyNs: 700,
  keyConfigNs: 20_000,
  mngInitNs: 20_000,
  vpInitNs: 5_000,
  pageAddBodyNs: 700,
  sha384BlockNs: 300,
  mrExtendBodyNs: 300,
  mrFinalizeNs: 2_000,
};

/** TDX_EXTENDMR_CHUNKSIZE: TDH.MR.EXTEND measures 256 bytes ([linux:arch/x86/kvm/vmx/tdx.c]). */
export const TDX_EXTENDMR_CHUNKSIZE = 256;
