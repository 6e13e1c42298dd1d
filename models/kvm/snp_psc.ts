import type { Proc } from '../../sim/index.ts';
import type { HostParts } from '../host/host_platform.ts';
import { PAGES_PER_2M, hex } from '../host/units.ts';
import type { Rmp } from '../snp/rmp.ts';
import type { SnpCosts } from '../snp/snp_costs.ts';

/** One entry of a PSC descriptor (struct psc_entry): a 4K page or an aligned 2M page, to private. */
export interface PscEntry {
  page: number;
  huge: boolean;
}

/** What the hypervisor side of an SNP page state change needs. */
export interface SnpHostSide extends HostParts {
  readonly rmp: Rmp;
  readonly costs: SnpCosts;
  /** Per-4K RMPUPDATEs as separate steps (exact) or one step per entry. */
  readonly perPage: boolean;
  readonly counters: SnpCounters;
}

export interface SnpCounters {
  pscRequests: number;
  pscEntries4k: number;
  pscEntries2m: number;
  userspaceExits: number;
  rmpupdate4k: number;
  rmpupdate2m: number;
  pvalidate4k: number;
  pvalidate2m: number;
  pvalidateSizeMismatch: number;
}

/**
 * The runs of entries snp_begin_psc() forwards to userspace as one KVM_HC_MAP_GPA_RANGE exit
 * each: adjacent GPAs with the same operation and the same page size.
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
export function* snp_vmgexit_psc(side: SnpHostSide, entries: readonly PscEntry[], link: number): Proc<void> {
  const { sim, host, kvm, costs } = side;
  const start = sim.now;
  side.counters.pscRequests++;
  yield host.cpus.acquire();
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('snp_begin_psc', { entries: entries.length }, link, 'kvm') : 0;
  yield sim.stallFor(costs.vmExitNs);
  for (const range of pscRanges(entries)) yield* kvm_hc_map_gpa_range(side, range.first, range.pages, id);
  for (const e of entries) {
    if (e.huge) side.counters.pscEntries2m++;
    else side.counters.pscEntries4k++;
    yield* makePrivate(side, e.page, e.huge ? PAGES_PER_2M : 1, e.huge);
  }
  yield sim.stallFor(costs.vmEntryNs);
  host.cpus.release();
  kvm.exits.record('VMGEXIT_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}

/**
 * The GHCB MSR protocol (GHCB_MSR_PSC_REQ_GFN(gfn, SNP_PAGE_STATE_PRIVATE)): one 4K page per
 * VMGEXIT, forwarded to userspace by snp_begin_psc_msr(), then made private.
 */
export function* snp_vmgexit_msr_psc(side: SnpHostSide, page: number, link: number): Proc<void> {
  const { sim, host, kvm, costs } = side;
  const start = sim.now;
  side.counters.pscRequests++;
  side.counters.pscEntries4k++;
  yield host.cpus.acquire();
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('snp_begin_psc_msr', { gpa: hex(page * 4096) }, link, 'kvm') : 0;
  yield sim.stallFor(costs.vmExitNs);
  yield* kvm_hc_map_gpa_range(side, page, 1, id);
  yield* makePrivate(side, page, 1, false);
  yield sim.stallFor(costs.vmEntryNs);
  host.cpus.release();
  kvm.exits.record('VMGEXIT_MSR_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}

/** The exit to the VMM and its KVM_SET_MEMORY_ATTRIBUTES (already private: slots_lock, no change). */
function* kvm_hc_map_gpa_range(side: SnpHostSide, first: number, pages: number, link: number): Proc<void> {
  const { sim, kvm } = side;
  side.counters.userspaceExits++;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('KVM_HC_MAP_GPA_RANGE', { gpa: hex(first * 4096), size: pages * 4096 }, link, 'vmm') : 0;
  const start = sim.now;
  yield sim.stallFor(kvm.costs.userspaceExitNs);
  yield kvm.slotsLock.acquire();
  yield sim.stallFor(kvm.costs.setMemoryAttributesNs);
  kvm.slotsLock.release();
  kvm.exits.record('KVM_EXIT_HYPERCALL', sim.now - start);
  if (traced) sim.opEnd(id);
}

/** guest_memfd folios for [first, first + n) and RMPUPDATE of what is not yet assigned. */
function* makePrivate(side: SnpHostSide, first: number, n: number, huge: boolean): Proc<void> {
  const { sim, host, gmem, rmp, costs } = side;
  const clear = gmem.allocate(first, n);
  if (clear > 0) yield* host.clearPages(clear);
  const assigned = rmp.assigned.countRange(first, n);
  if (assigned === n) return;
  const traced = sim.observer !== null;
  // A 2M RMP entry needs a 2M folio and a region with no 4K entry assigned yet (else KVM
  // handles the rest 4K at a time).
  if (huge && assigned === 0 && gmem.folioPages === PAGES_PER_2M) {
    const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex(first * 4096), size: n * 4096 }, 0, 'snp-firmware') : 0;
    yield sim.stallFor(costs.rmpupdate2mNs);
    rmp.assign(first, n, true);
    side.counters.rmpupdate2m++;
    if (traced) sim.opEnd(id);
    return;
  }
  const todo = n - assigned;
  if (side.perPage || todo === 1) {
    for (let p = first; p < first + n; p++) {
      if (rmp.assigned.test(p)) continue;
      const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex(p * 4096), size: 4096 }, 0, 'snp-firmware') : 0;
      yield sim.stallFor(costs.rmpupdate4kNs);
      rmp.assign(p, 1, false);
      if (traced) sim.opEnd(id);
    }
  } else {
    const id = traced ? sim.opBegin('RMPUPDATE', { gpa: hex(first * 4096), size: 4096, 'cvmsim.aggregated.count': todo }, 0, 'snp-firmware') : 0;
    yield sim.stallFor(todo * costs.rmpupdate4kNs);
    rmp.assigned.fillRange(first, n);
    if (traced) sim.opEnd(id);
  }
  side.counters.rmpupdate4k += todo;
}
