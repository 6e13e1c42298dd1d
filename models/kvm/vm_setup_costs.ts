/**
 * The VMM's and KVM's costs of setting a confidential VM up before its firmware runs, in ns.
 * No source times them: each is an ESTIMATE with its row in docs/sources.md section 8
 * ([estimate:memslot-ioctls], [estimate:gmem-populate], [estimate:snp-psp-commands]).
 * The attribute stores reuse the conversion path's per-page costs (models/kvm/conversion_costs.ts).
 */
export interface VmSetupCosts {
  /**
   * KVM_CREATE_GUEST_MEMFD or KVM_SET_USER_MEMORY_REGION2 of one memslot: the ioctl, the
   * memslot metadata (lpage_info, per 2M) and the SRCU synchronisation of the memslot swap.
   * ESTIMATE 20 us [estimate:memslot-ioctls].
   */
  memslotIoctlNs: number;
  /**
   * Per image page, KVM's kvm_gmem_populate(): the guest_memfd folio, the copy of the VMM's
   * source page (4 KiB) and the mirror/NPT mapping (kvm_tdp_map_page() on TDX), before the
   * SEAMCALL or firmware command. ESTIMATE 2 us [estimate:gmem-populate].
   */
  populatePerPageNs: number;
  /** SNP_LAUNCH_START: the PSP creates the guest context. ESTIMATE 100 us [estimate:snp-psp-commands]. */
  pspLaunchStartNs: number;
  /** SNP_LAUNCH_UPDATE of one 4 KiB page (a PSP mailbox command: the page encrypted and measured into the launch digest). ESTIMATE 20 us [estimate:snp-psp-commands]. */
  pspLaunchUpdatePageNs: number;
  /** SNP_LAUNCH_FINISH: the PSP finalises the launch digest (the ID block checks). ESTIMATE 100 us [estimate:snp-psp-commands]. */
  pspLaunchFinishNs: number;
}

export const VM_SETUP_COSTS: VmSetupCosts = {
  memslotIoctlNs: 20_000,
  populatePerPageNs: 2_000,
  pspLaunchStartNs: 100_000,
  pspLaunchUpdatePageNs: 20_000,
  pspLaunchFinishNs: 100_000,
};

/**
 * The firmware image the VMM loads: OVMF/TDVF built with FD_SIZE_4MB, a 4 MiB flash of which
 * the code volume (the TDVF BFV) is 0x37C000 bytes and the variable store (CFV) 0x84000
 * ([edk2:OvmfPkg/OvmfPkgDefines.fdf.inc]). On TDX QEMU adds every TDVF section with
 * KVM_TDX_INIT_MEM_REGION and measures those with the MR_EXTEND attribute, the BFV
 * ([qemu:target/i386/kvm/tdx.c tdx_finalize_vm]); on SNP the whole flash goes through
 * SNP_LAUNCH_UPDATE ([qemu:target/i386/sev.c]).
 */
export const FIRMWARE_IMAGE_BYTES = 4 * 1024 * 1024;
export const FIRMWARE_MEASURED_BYTES_TDX = 0x37c000;
/** Where the flash ends: just below 4 GiB (OVMF's reset vector). */
export const FIRMWARE_IMAGE_END = 2 ** 32;
