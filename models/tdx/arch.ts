/**
 * TDX architectural definitions: leaf numbers, status codes, operand ids and page levels, with
 * the values of the TDX module sources ([tdx-module:include/auto_gen/tdx_error_codes_defs.h] and
 * [tdx-module:include/tdx_api_defs.h], TDX 1.5). Spec names only; no behaviour lives here.
 *
 * A status is a 64-bit value: bits 63:32 the class (bit 63 = error), bits 31:0 an operand id or
 * detail (api_error_with_operand_id()). Kept as bigint so traces print what the spec says.
 */

// ---- Completion status codes (RAX) ----------------------------------------------------------
export const TDX_SUCCESS = 0x0000000000000000n;
export const TDX_OPERAND_INVALID = 0xc000010000000000n;
export const TDX_OPERAND_BUSY = 0x8000020000000000n;
export const TDX_OPERAND_BUSY_HOST_PRIORITY = 0x8000020400000000n;
export const TDX_EPT_WALK_FAILED = 0xc0000b0000000000n;
export const TDX_EPT_ENTRY_NOT_FREE = 0xc0000b0200000000n;
export const TDX_PAGE_ALREADY_ACCEPTED = 0x00000b0a00000000n;
export const TDX_PAGE_SIZE_MISMATCH = 0xc0000b0b00000000n;
export const TDX_EPT_ENTRY_STATE_INCORRECT = 0xc0000b0d00000000n;
/** TDCS.OP_STATE does not allow the leaf (e.g. TDH.MEM.PAGE.ADD after TDH.MR.FINALIZE). */
export const TDX_OP_STATE_INCORRECT = 0xc000060800000000n;
export const TDX_PAGE_METADATA_INCORRECT = 0xc000030000000000n;
/** A page handed to the module is not free in the PAMT (PT_NDA), e.g. a PAMT.ADD page pair page. */
export const TDX_PAGE_NOT_FREE = 0xc000030300000000n;
/**
 * Dynamic PAMT (tdx-module tdh_phymem_pamt_add.c / _remove.c, pamt_manager.c). TDX_HPA_RANGE_NOT_FREE
 * is the kernel's value (tdx_errno.h of the DPAMT series). The other three are not in the error
 * table of the module sources read (include/auto_gen/tdx_error_codes_defs.h predates DPAMT):
 * ASSUMED values in the same class (0x03, page metadata), so traces show the names, not the bits.
 */
export const TDX_HPA_RANGE_NOT_FREE = 0xc000030400000000n;
export const TDX_MISSING_PAMT_PAGE_PAIR = 0xc000030500000000n;
export const TDX_NO_PAMT_PAGE_PAIR = 0xc000030600000000n;
export const TDX_PAMT_PAGE_NOT_EMPTY = 0xc000030700000000n;

/**
 * TD teardown ([tdx-module:src/vmm_dispatcher/api_calls/tdh_phymem_page_reclaim.c],
 * tdh_mng_vpflushdone.c, tdh_mng_key_freeid.c, tdh_phymem_cache_wb.c): values of the module's
 * error table.
 */
export const TDX_TD_ASSOCIATED_PAGES_EXIST = 0xc000040000000000n;
export const TDX_LIFECYCLE_STATE_INCORRECT = 0xc000060700000000n;
export const TDX_FLUSHVP_NOT_DONE = 0x8000082400000000n;
export const TDX_WBCACHE_NOT_COMPLETE = 0x8000081700000000n;
export const TDX_NO_HKID_READY_TO_WBCACHE = 0x0000082100000000n;

/**
 * Module initialisation ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_config.c],
 * [tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_tdmr_init.c]): TDH.SYS.CONFIG refuses a TDMR
 * that is not 1 GiB aligned (TDX_INVALID_TDMR), a TDMR's available (not reserved) area outside
 * the CMRs (TDX_TDMR_OUTSIDE_CMRS), a PAMT outside the CMRs (TDX_PAMT_OUTSIDE_CMRS);
 * TDH.SYS.TDMR.INIT of a TDMR already done answers TDX_TDMR_ALREADY_INITIALIZED.
 */
export const TDX_INVALID_TDMR = 0xc0000a0000000000n;
export const TDX_TDMR_OUTSIDE_CMRS = 0xc0000a0200000000n;
export const TDX_TDMR_ALREADY_INITIALIZED = 0x00000a0300000000n;
export const TDX_PAMT_OUTSIDE_CMRS = 0xc0000a1100000000n;
export const TDX_SYS_CONFIG_NOT_PENDING = 0xc000050c00000000n;

/** The class of a status, without its operand id (KVM's TDX_SEAMCALL_STATUS_MASK). */
export const TDX_SEAMCALL_STATUS_MASK = 0xffffffff00000000n;

// ---- Operand ids ORed into a status --------------------------------------------------------
export const OPERAND_ID_RCX = 1n;
export const OPERAND_ID_RDX = 2n;
export const OPERAND_ID_R8 = 8n;
/** The TD's Secure-EPT tree lock (tdcs.executions_ctl_fields.secure_ept_lock). */
export const OPERAND_ID_SEPT_TREE = 146n;
export const OPERAND_ID_TD_EPOCH = 169n;

// ---- Leaf numbers ---------------------------------------------------------------------------
/** SEAMCALL leaves (host -> module). */
export const TDH_VP_ENTER = 0;
export const TDH_MEM_SEPT_ADD = 3;
export const TDH_MEM_PAGE_AUG = 6;
/** Dynamic PAMT leaves ([tdx-module:src/vmm_dispatcher/api_calls/tdh_phymem_pamt_add.c]: leaf 58 and 59). */
export const TDH_PHYMEM_PAMT_ADD = 58;
export const TDH_PHYMEM_PAMT_REMOVE = 59;
/** TDCALL leaves (guest -> module). */
export const TDG_MEM_PAGE_ACCEPT = 6;

// ---- Page levels (RCX[2:0] of TDG.MEM.PAGE.ACCEPT / TDH.MEM.PAGE.AUG, ept_level_t) ----------
export const TDX_PS_4K = 0;
export const TDX_PS_2M = 1;
export const TDX_PS_1G = 2;
export type TdxPageLevel = typeof TDX_PS_4K | typeof TDX_PS_2M | typeof TDX_PS_1G;

/** Extended exit qualification type of an ACCEPT-induced EPT violation (vmx_eeq_type_t). */
export const VMX_EEQ_ACCEPT = 1;

/** status | operand id, as api_error_with_operand_id() builds it. */
export function withOperand(status: bigint, operand: bigint): bigint {
  return status | operand;
}

/** The status class of a full status value. */
export function statusClass(status: bigint): bigint {
  return status & TDX_SEAMCALL_STATUS_MASK;
}

/** KVM's tdx_operand_busy(): TDX_OPERAND_BUSY or its host-priority variant, any operand. */
export function tdxOperandBusy(status: bigint): boolean {
  const c = statusClass(status);
  return c === TDX_OPERAND_BUSY || c === TDX_OPERAND_BUSY_HOST_PRIORITY;
}

const NAMES: ReadonlyArray<readonly [bigint, string]> = [
  [TDX_SUCCESS, 'TDX_SUCCESS'],
  [TDX_OPERAND_INVALID, 'TDX_OPERAND_INVALID'],
  [TDX_OPERAND_BUSY, 'TDX_OPERAND_BUSY'],
  [TDX_OPERAND_BUSY_HOST_PRIORITY, 'TDX_OPERAND_BUSY_HOST_PRIORITY'],
  [TDX_EPT_WALK_FAILED, 'TDX_EPT_WALK_FAILED'],
  [TDX_EPT_ENTRY_NOT_FREE, 'TDX_EPT_ENTRY_NOT_FREE'],
  [TDX_PAGE_ALREADY_ACCEPTED, 'TDX_PAGE_ALREADY_ACCEPTED'],
  [TDX_PAGE_SIZE_MISMATCH, 'TDX_PAGE_SIZE_MISMATCH'],
  [TDX_EPT_ENTRY_STATE_INCORRECT, 'TDX_EPT_ENTRY_STATE_INCORRECT'],
  [TDX_OP_STATE_INCORRECT, 'TDX_OP_STATE_INCORRECT'],
  [TDX_PAGE_METADATA_INCORRECT, 'TDX_PAGE_METADATA_INCORRECT'],
  [TDX_PAGE_NOT_FREE, 'TDX_PAGE_NOT_FREE'],
  [TDX_HPA_RANGE_NOT_FREE, 'TDX_HPA_RANGE_NOT_FREE'],
  [TDX_MISSING_PAMT_PAGE_PAIR, 'TDX_MISSING_PAMT_PAGE_PAIR'],
  [TDX_NO_PAMT_PAGE_PAIR, 'TDX_NO_PAMT_PAGE_PAIR'],
  [TDX_PAMT_PAGE_NOT_EMPTY, 'TDX_PAMT_PAGE_NOT_EMPTY'],
  [0xc0000b0600000000n, 'TDX_GPA_RANGE_NOT_BLOCKED'],
  [0x00000b0700000000n, 'TDX_GPA_RANGE_ALREADY_BLOCKED'],
  [0xc0000b0800000000n, 'TDX_TLB_TRACKING_NOT_DONE'],
  [TDX_TD_ASSOCIATED_PAGES_EXIST, 'TDX_TD_ASSOCIATED_PAGES_EXIST'],
  [TDX_LIFECYCLE_STATE_INCORRECT, 'TDX_LIFECYCLE_STATE_INCORRECT'],
  [TDX_FLUSHVP_NOT_DONE, 'TDX_FLUSHVP_NOT_DONE'],
  [TDX_WBCACHE_NOT_COMPLETE, 'TDX_WBCACHE_NOT_COMPLETE'],
  [TDX_NO_HKID_READY_TO_WBCACHE, 'TDX_NO_HKID_READY_TO_WBCACHE'],
  [TDX_INVALID_TDMR, 'TDX_INVALID_TDMR'],
  [TDX_TDMR_OUTSIDE_CMRS, 'TDX_TDMR_OUTSIDE_CMRS'],
  [TDX_TDMR_ALREADY_INITIALIZED, 'TDX_TDMR_ALREADY_INITIALIZED'],
  [TDX_PAMT_OUTSIDE_CMRS, 'TDX_PAMT_OUTSIDE_CMRS'],
  [TDX_SYS_CONFIG_NOT_PENDING, 'TDX_SYS_CONFIG_NOT_PENDING'],
];

/** The spec name of a status's class, e.g. 'TDX_OPERAND_BUSY'. */
export function tdxStatusName(status: bigint): string {
  const c = statusClass(status);
  for (const [value, name] of NAMES) if (value === c) return name;
  return 'TDX_UNKNOWN_STATUS';
}

/**
 * Control pages of a TD, as TDH.SYS.INFO reports them (tdcs_base_size, tdvps_base_size) and the
 * kernel allocates them (tdx_alloc_control_page() for the TDR, TDH.MNG.ADDCX per TDCS page,
 * TDH.VP.CREATE / TDH.VP.ADDCX per vCPU):
 * - TDR: one page;
 * - TDCS: 4 pages in TDX 1.0; 6 in 1.5 without TD partitioning (MIN_NUM_TDCS_PAGES = 6; L2 VMs
 *   raise it, up to MAX_NUM_TDCS_PAGES = 9; [tdx-module:src/common/data_structures/td_control_structures.h]);
 * - TDVPS per vCPU: TDVPR + TDCX pages, 6 without L2 VMs (1.0 MAX_TDVPS_PAGES = 6, 1.5
 *   MIN_TDVPS_PAGES = 6; [tdx-module-1.0:src/common/data_structures/tdx_tdvps.h],
 *   [tdx-module:src/common/data_structures/tdx_tdvps.h]).
 */
export const TDR_PAGES = 1;
export const TDCS_PAGES = { '1.0': 4, '1.5': 6 } as const;
export const TDVPS_PAGES = 6;

// ---- Private page removal (conversion to shared, punch hole) --------------------------------
/** Leaves ([linux:arch/x86/virt/vmx/tdx/tdx.h]). */
export const TDH_MEM_RANGE_BLOCK = 7;
export const TDH_MEM_PAGE_REMOVE = 29;
export const TDH_MEM_TRACK = 38;
export const TDH_PHYMEM_PAGE_WBINVD = 41;
/** [tdx-module:include/auto_gen/tdx_error_codes_defs.h] */
export const TDX_GPA_RANGE_NOT_BLOCKED = 0xc0000b0600000000n;
export const TDX_GPA_RANGE_ALREADY_BLOCKED = 0x00000b0700000000n;
export const TDX_TLB_TRACKING_NOT_DONE = 0xc0000b0800000000n;
