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
 * KVM_SET_MEMORY_ATTRIBUTES finds the range already private, under kvm->slots_lock, and its
 * discard of the shared backing fires the MMU notifier). Upstream that is all: the guest's
 * PVALIDATEs fault the pages in (snp_npf.ts). With the VMM's prefault (sev.prefault) every
 * entry's memory is made private here: guest_memfd folio allocated and cleared on first use,
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
    if (sev.prefault) yield* makePrivate(kvm, e.page, e.huge ? PAGES_PER_2M : 1, e.huge);
  }
  yield sim.stallFor(sev.costs.vmEntryNs);
  kvm.exits.record('VMGEXIT_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}

/**
 * The GHCB MSR protocol (GHCB_MSR_PSC_REQ_GFN(gfn, SNP_PAGE_STATE_PRIVATE)): one 4K page per
 * VMGEXIT, forwarded to userspace by snp_begin_psc_msr(), then made private if the VMM
 * prefaults (else the guest's PVALIDATE faults it in).
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
  if (sev.prefault) yield* makePrivate(kvm, page, 1, false);
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
 * The VMM's prefault of the guest pages [first, first + n) (one 4K page or one 2M region) on a
 * PSC to private (KVM_PRE_FAULT_MEMORY, [lendacky-2025-03-snp-prefault]): guest_memfd folios
 * allocated and cleared, then rmp_make_private() of the host pages behind them not yet assigned
 * to this guest (a 2M entry when the entry is 2M, the folio is 2M and no 4K entry of the region
 * is assigned; else 4K at a time).
 */
function* makePrivate(kvm: Kvm, first: number, n: number, huge: boolean): Proc<void> {
  const sev = sevOf(kvm);
  const { rmp, counters, asid } = sev;
  yield* kvm.gmem.getRange(first, n);
  const h = kvm.gmem.hostPage(first);
  const assigned = rmp.assigned.countRange(h, n);
  if (assigned === n) return;
  if (huge && assigned === 0 && kvm.gmem.folioPages === PAGES_PER_2M) {
    yield* sev.host.rmp_make_private(h, n, asid, true, first * 4096);
    counters.rmpupdate2m++;
    return;
  }
  if (sev.perPage || n - assigned === 1) {
    for (let i = 0; i < n; i++) {
      // (A local first: `counters.x += yield* ...` would read the counter before other vCPUs run.)
      const one = yield* sev.host.rmp_make_private(h + i, 1, asid, false, (first + i) * 4096);
      counters.rmpupdate4k += one;
    }
  } else {
    const run = yield* sev.host.rmp_make_private(h, n, asid, false, first * 4096);
    counters.rmpupdate4k += run;
  }
}
