/**
 * Costs of the TDX module's private-page removal leaves, in ns. No source publishes them: each
 * is an ESTIMATE with its row in docs/sources.md section 8, sized against the AUG body it
 * mirrors ([estimate:tdh-mem-page-aug]: S-EPT walk and locks, 700 ns) plus what the leaf does on
 * top. The SEAMCALL transitions are TdxCosts.seamcallNs ([estimate:seamcall-transition]).
 */
export interface TdxRemovalCosts {
  /** TDH.MEM.RANGE.BLOCK body: walk, secure_ept_lock exclusive, entry BLOCKED, BEPOCH recorded. ESTIMATE [estimate:tdh-mem-removal]. */
  blockBodyNs: number;
  /** TDH.MEM.TRACK body: the TD epoch incremented under its lock. ESTIMATE [estimate:tdh-mem-removal]. */
  trackBodyNs: number;
  /** TDH.MEM.PAGE.REMOVE body: walk, BEPOCH checked against the tracked epoch, entry FREE, PAMT entry PT_NDA. ESTIMATE [estimate:tdh-mem-removal]. */
  removeBodyNs: number;
  /** TDH.PHYMEM.PAGE.WBINVD of one 4K page with the TD's HKID (64 lines written back and invalidated). ESTIMATE [estimate:tdh-mem-removal]. */
  wbinvdBodyNs: number;
}

export const TDX_REMOVAL_COSTS: TdxRemovalCosts = {
  blockBodyNs: 700,
  trackBodyNs: 300,
  removeBodyNs: 700,
  wbinvdBodyNs: 1_000,
};
