/**
 * SEV-SNP architectural definitions used by acceptance, with the values of Linux
 * ([linux:arch/x86/include/asm/sev-common.h], [linux:arch/x86/include/asm/sev.h],
 * [linux:arch/x86/include/uapi/asm/svm.h], [linux:include/uapi/linux/kvm_para.h]).
 * Spec names only; no behaviour lives here.
 */

/** SVM_VMGEXIT_PSC: the GHCB Page State Change NAE event. */
export const SVM_VMGEXIT_PSC = 0x80000010n;

/** GHCB MSR protocol: page state change request / response (GHCBData[11:0]). */
export const GHCB_MSR_PSC_REQ = 0x014n;
export const GHCB_MSR_PSC_RESP = 0x015n;

/** enum psc_op. */
export const SNP_PAGE_STATE_PRIVATE = 1;
export const SNP_PAGE_STATE_SHARED = 2;

/** Linux's PSC descriptor size (a stack variable in set_pages_state()). */
export const VMGEXIT_PSC_MAX_ENTRY = 64;
/** The GHCB specification's maximum entries per PSC request ([amd-ghcb-spec]). */
export const VMGEXIT_PSC_MAX_COUNT = 253;

/** RMP page sizes (psc_entry.pagesize, PVALIDATE rCX). */
export const RMP_PG_SIZE_4K = 0;
export const RMP_PG_SIZE_2M = 1;

/** PVALIDATE return codes; NOUPDATE is software-defined (rFLAGS.CF = 1: state already as asked). */
export const PVALIDATE_FAIL_INPUT = 1;
export const PVALIDATE_FAIL_SIZEMISMATCH = 6;
export const PVALIDATE_FAIL_NOUPDATE = 255;

/** RMPUPDATE return code: the firmware holds the 2 MiB range for another update (overlap); the kernel re-issues. */
export const RMPUPDATE_FAIL_OVERLAP = 4;

/** KVM hypercall number a PSC becomes in userspace (KVM_EXIT_HYPERCALL). */
export const KVM_HC_MAP_GPA_RANGE = 12;

/** sev_es_terminate() reason set/code for a failed PVALIDATE. */
export const SEV_TERM_SET_LINUX = 1;
export const GHCB_TERM_PVALIDATE = 2;

/** GHCB_MSR_PSC_REQ_GFN(gfn, op): GHCBData[55:52] op, [51:12] gfn, [11:0] request code. */
export function GHCB_MSR_PSC_REQ_GFN(gfn: number, op: number): bigint {
  return (BigInt(op & 0xf) << 52n) | ((BigInt(gfn) & 0xffffffffffn) << 12n) | GHCB_MSR_PSC_REQ;
}
