/**
 * Costs of SEV-SNP acceptance in the guest, the CPU and the firmware-defined RMP, in ns. No
 * source publishes them: each default is an ESTIMATE with its entry in docs/sources.md
 * (such as [estimate:snp-4k-accept-msr]), bounded by the ranges named there.
 */
export interface SnpCosts {
  /**
   * VMGEXIT: the guest's world switch out (VMSA saved encrypted) and KVM's exit dispatch.
   * ESTIMATE [estimate:vm-exit-round-trip] (0.5-2 us): low end, 0.5 us, split 250 ns out /
   * 250 ns back in (vmEntryNs). Same low end as the TDX model.
   */
  vmExitNs: number;
  /** VMRUN back into the guest; see vmExitNs. */
  vmEntryNs: number;
  /**
   * RMPUPDATE of one 4K RMP entry (KVM's rmp_make_private()). ESTIMATE 600 ns
   * [estimate:snp-4k-accept-msr] (2-5 us per page = VMGEXIT round trip + RMPUPDATE + PVALIDATE):
   * with the 0.5 us round trip and the 0.32 us host clear, RMPUPDATE and PVALIDATE share the rest
   * of the 2 us low end.
   */
  rmpupdate4kNs: number;
  /** PVALIDATE of a 4K page; see rmpupdate4kNs. */
  pvalidate4kNs: number;
  /**
   * RMPUPDATE of one 2M RMP entry. ESTIMATE 2 us [estimate:snp-2m-accept-ghcb]: one entry
   * written, the 511 4K entries it covers checked; small next to the 2 MiB host clear (162 us at
   * 12.9 GB/s) that dominates a 2M accept through a GHCB PSC (50-300 us per 2M).
   */
  rmpupdate2mNs: number;
  /** PVALIDATE of a 2M page; see rmpupdate2mNs. */
  pvalidate2mNs: number;
  /**
   * An RMPUPDATE answered FAIL_OVERLAP (the firmware holds the 2 MiB range for another update):
   * the instruction's entry checks and its early return. ESTIMATE 100 ns
   * [estimate:rmpupdate-fail-overlap].
   */
  rmpupdateFailNs: number;
}

export const SNP_COSTS: SnpCosts = {
  vmExitNs: 250,
  vmEntryNs: 250,
  rmpupdate4kNs: 600,
  pvalidate4kNs: 600,
  rmpupdate2mNs: 2_000,
  pvalidate2mNs: 2_000,
  rmpupdateFailNs: 100,
};
