import type { Proc } from '../../sim/index.ts';

/**
 * The VMM as KVM sees it: KVM_RUN returning to userspace with an exit that KVM cannot finish
 * alone, handled on the same vCPU thread (the VMM's vCPU thread), which calls back into KVM with
 * ioctls and re-enters KVM_RUN. KVM defines this; the VMM (models/vmm) implements it, so KVM does
 * not depend on any one VMM.
 */
export interface KvmUserspace {
  /**
   * KVM_EXIT_HYPERCALL with KVM_HC_MAP_GPA_RANGE(gpa, pages, to private or shared): returns when
   * the VMM has handled it (its KVM_SET_MEMORY_ATTRIBUTES included) and re-entered KVM_RUN.
   */
  map_gpa_range(gpa: number, pages: number, toPrivate: boolean, link: number): Proc<void>;
}
