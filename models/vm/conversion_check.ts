import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import type { GuestMemEncrypt } from '../guest/set_memory.ts';
import { Region } from '../tdx/secure_ept.ts';
import type { Vm } from './vm.ts';

/**
 * A GPA is private or shared, never both, in every layer once conversions are quiet: the
 * guest's page tables, KVM's attributes, and the module's S-EPT (a shared page has no private
 * leaf) or the RMP (a shared page's host page is not assigned to the guest).
 */
export function checkConversionAgreement(vm: Vm, enc: GuestMemEncrypt): void {
  const kvm = vm.kvm;
  const attrs = kvm.attrs;
  if (attrs === null) return assert(false, 'conversion check on a VM without conversions', vm.name) as never;
  for (let p = 0; p < attrs.pages; p++) {
    const shared = enc.shared[p] === 1;
    if (shared === attrs.isPrivate(p)) assert(false, 'guest page tables and KVM attributes disagree on a GPA', { vm: vm.name, gpa: hex(p * 4096), guestShared: shared });
    if (!shared) continue;
    if (kvm.tdx !== null) {
      if (kvm.tdx.td.sept.aug4k.test(p)) assert(false, 'a shared GPA with a private S-EPT leaf', { vm: vm.name, gpa: hex(p * 4096) });
    } else if (kvm.gmem.allocated.test(p) && kvm.sev!.rmp.assigned.test(kvm.gmem.hostPage(p))) {
      assert(false, 'a shared GPA whose page the RMP assigns to the guest', { vm: vm.name, gpa: hex(p * 4096) });
    }
  }
}

/** EPT/NPT entries and page-table pages (S-EPT or NPT private side, shared EPT or NPT shared side). */
export interface TdpStats {
  private4k: number;
  private2m: number;
  shared4k: number;
  shared2m: number;
  /** Last-level (PT) pages and upper (PD, PDPT, root) pages. */
  ptPages: number;
  upperPages: number;
}

export function tdpStats(vm: Vm): TdpStats {
  const kvm = vm.kvm;
  const attrs = kvm.attrs!;
  const regions = attrs.shared2m.length;
  let shared2m = 0;
  let sharedPt = 0;
  let privatePt = 0;
  const pdShared = new Set<number>();
  const pdPrivate = new Set<number>();
  let private4k = 0;
  let private2m = 0;
  for (let r = 0; r < regions; r++) {
    const first = r * PAGES_PER_2M;
    const n = Math.min(PAGES_PER_2M, attrs.pages - first);
    const s4 = attrs.shared4k.countRange(first, n);
    if (attrs.shared2m[r] === 1) shared2m++;
    if (s4 > 0) sharedPt++;
    if (s4 > 0 || attrs.shared2m[r] === 1) pdShared.add(Math.floor(r / 512));
    if (kvm.tdx !== null) {
      const state = kvm.tdx.td.sept.regionState(r);
      if (state === Region.PageTable) privatePt++, pdPrivate.add(Math.floor(r / 512));
      if (state === Region.LeafPending || state === Region.LeafMapped) private2m++, pdPrivate.add(Math.floor(r / 512));
    } else {
      const a = kvm.gmem.allocated.countRange(first, n);
      if (a > 0) pdPrivate.add(Math.floor(r / 512));
      // One NPT: a region with private 4K leaves shares its PT page with the shared leaves.
      if (a > 0 && s4 === 0) privatePt++;
    }
  }
  if (kvm.tdx !== null) private4k = kvm.tdx.td.sept.aug4k.count;
  else private4k = kvm.gmem.allocated.count;
  // TDX has two trees (S-EPT and shared EPT), each with its root and PDPT; SNP one NPT.
  const upper = kvm.tdx !== null ? pdShared.size + pdPrivate.size + 4 : new Set([...pdShared, ...pdPrivate]).size + 2;
  return { private4k, private2m, shared4k: attrs.shared4k.count, shared2m, ptPages: sharedPt + privatePt, upperPages: upper };
}
