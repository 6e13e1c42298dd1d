import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import type { Kvm } from './kvm.ts';
import type { KvmSev } from './sev.ts';

/** One entry of a PSC descriptor (struct psc_entry): a 4K page or an aligned 2M page, to private. */
export interface PscEntry {
  page: number;
  huge: boolean;
}

/** The SNP state of a VM's KVM: every SNP exit path needs it. */
export function sevOf(kvm: Kvm): KvmSev {
  const sev = kvm.sev;
  if (sev === null) return assert(false, 'an SNP exit on a VM that is not an SNP guest', kvm.name) as never;
  return sev;
}

/**
 * The runs of entries snp_begin_psc() forwards to userspace as one KVM_HC_MAP_GPA_RANGE exit
 * each: adjacent GPAs with the same operation and the same page size
 * ([linux:arch/x86/kvm/svm/sev.c snp_begin_psc]).
 */
export function pscRanges(entries: readonly PscEntry[]): { first: number; pages: number; huge: boolean }[] {
  const ranges: { first: number; pages: number; huge: boolean }[] = [];
  for (const e of entries) {
    const pages = e.huge ? PAGES_PER_2M : 1;
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.huge === e.huge && last.first + last.pages === e.page) last.pages += pages;
    else ranges.push({ first: e.page, pages, huge: e.huge });
  }
  return ranges;
}

/**
 * VMGEXIT(SVM_VMGEXIT_PSC) with a descriptor of `entries`, until VMRUN back into the guest:
 * snp_begin_psc() forwards each run to the VMM (KVM_HC_MAP_GPA_RANGE; the VMM's
 * KVM_SET_MEMORY_ATTRIBUTES finds the range already private, under kvm->slots_lock), then every
 * entry's memory is made private: guest_memfd folio allocated and cleared on first use,
 * RMPUPDATE (one 2M entry when the entry is 2M and the backing folio is 2M, else per 4K).
 */
export function* snp_vmgexit_psc(kvm: Kvm, entries: readonly PscEntry[], link: number): Proc<void> {
  const sim = kvm.sim;
  const sev = sevOf(kvm);
  const start = sim.now;
  sev.counters.pscRequests++;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('snp_begin_psc', { entries: entries.length }, link, 'kvm') : 0;
  yield sim.stallFor(sev.costs.vmExitNs);
  for (const range of pscRanges(entries)) yield* kvm_hc_map_gpa_range(kvm, range.first, range.pages, id);
  for (const e of entries) {
    if (e.huge) sev.counters.pscEntries2m++;
    else sev.counters.pscEntries4k++;
    yield* makePrivate(kvm, e.page, e.huge ? PAGES_PER_2M : 1, e.huge);
  }
  yield sim.stallFor(sev.costs.vmEntryNs);
  kvm.exits.record('VMGEXIT_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}

/**
 * The GHCB MSR protocol (GHCB_MSR_PSC_REQ_GFN(gfn, SNP_PAGE_STATE_PRIVATE)): one 4K page per
 * VMGEXIT, forwarded to userspace by snp_begin_psc_msr(), then made private.
 */
export function* snp_vmgexit_msr_psc(kvm: Kvm, page: number, link: number): Proc<void> {
  const sim = kvm.sim;
  const sev = sevOf(kvm);
  const start = sim.now;
  sev.counters.pscRequests++;
  sev.counters.pscEntries4k++;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('snp_begin_psc_msr', { gpa: hex(page * 4096) }, link, 'kvm') : 0;
  yield sim.stallFor(sev.costs.vmExitNs);
  yield* kvm_hc_map_gpa_range(kvm, page, 1, id);
  yield* makePrivate(kvm, page, 1, false);
  yield sim.stallFor(sev.costs.vmEntryNs);
  kvm.exits.record('VMGEXIT_MSR_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}

/** The exit to the VMM (KVM_EXIT_HYPERCALL with KVM_HC_MAP_GPA_RANGE) and back. */
function* kvm_hc_map_gpa_range(kvm: Kvm, first: number, pages: number, link: number): Proc<void> {
  const userspace = kvm.userspace;
  if (userspace === null) return assert(false, 'KVM_HC_MAP_GPA_RANGE on a VM without a VMM', kvm.name) as never;
  sevOf(kvm).counters.userspaceExits++;
  const start = kvm.sim.now;
  yield* userspace.map_gpa_range(first * 4096, pages, true, link);
  kvm.exits.record('KVM_EXIT_HYPERCALL', kvm.sim.now - start);
}

/**
 * guest_memfd folios for the guest pages [first, first + n) (one 4K page or one 2M region), then
 * RMPUPDATE of the host pages behind them that are not yet assigned to this guest.
 */
function* makePrivate(kvm: Kvm, first: number, n: number, huge: boolean): Proc<void> {
  const sim = kvm.sim;
  const sev = sevOf(kvm);
  const { rmp, costs, counters, asid } = sev;
  yield* kvm.gmem.getRange(first, n);
  const h = kvm.gmem.hostPage(first);
  const assigned = rmp.assigned.countRange(h, n);
  if (assigned === n) return;
  const traced = sim.observer !== null;
  // A 2M RMP entry needs a 2M folio and a region with no 4K entry assigned yet (else KVM
  // handles the rest 4K at a time).
  if (huge && assigned === 0 && kvm.gmem.folioPages === PAGES_PER_2M) {
    const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex(first * 4096), hpa: hex(h * 4096), size: n * 4096 }, 0, 'snp-firmware') : 0;
    yield sim.stallFor(costs.rmpupdate2mNs);
    rmp.assign(h, n, asid, true);
    counters.rmpupdate2m++;
    if (traced) sim.opEnd(id);
    return;
  }
  const todo = n - assigned;
  if (sev.perPage || todo === 1) {
    for (let i = 0; i < n; i++) {
      if (rmp.assigned.test(h + i)) continue;
      const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex((first + i) * 4096), hpa: hex((h + i) * 4096), size: 4096 }, 0, 'snp-firmware') : 0;
      yield sim.stallFor(costs.rmpupdate4kNs);
      rmp.assign(h + i, 1, asid, false);
      if (traced) sim.opEnd(id);
    }
  } else {
    const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex(first * 4096), hpa: hex(h * 4096), size: 4096, 'cvmsim.aggregated.count': todo }, 0, 'snp-firmware') : 0;
    yield sim.stallFor(todo * costs.rmpupdate4kNs);
    rmp.assign(h, n, asid, false);
    if (traced) sim.opEnd(id);
  }
  counters.rmpupdate4k += todo;
}
