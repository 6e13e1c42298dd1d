import { assert } from '../../sim/assert.ts';
import type { Proc, Sim } from '../../sim/index.ts';
import type { AcceptPhase } from '../guest/platform.ts';
import type { Kvm } from '../kvm/kvm.ts';
import type { KvmSev } from '../kvm/sev.ts';
import { snp_npf } from '../kvm/snp_npf.ts';
import { sevOf, snp_vmgexit_msr_psc, snp_vmgexit_psc, type PscEntry } from '../kvm/snp_psc.ts';
import { PAGES_PER_2M, SIZE_2M, hex } from '../arch/units.ts';
import { GHCB_TERM_PVALIDATE, PVALIDATE_FAIL_NOUPDATE, PVALIDATE_FAIL_SIZEMISMATCH, SEV_TERM_SET_LINUX, SVM_VMGEXIT_PSC } from '../snp/arch.ts';

/**
 * How the guest asks for page state changes at runtime: 'ghcb' (the GHCB page, descriptors of
 * up to VMGEXIT_PSC_MAX_ENTRY entries) or 'msr' (the GHCB MSR protocol, one 4K page per
 * VMGEXIT). The early phase always uses the MSR protocol.
 */
export const PSC_PROTOCOLS = ['ghcb', 'msr'] as const;
export type PscProtocol = (typeof PSC_PROTOCOLS)[number];

/** The SNP guest's arch_accept_memory() as one VM runs it: its protocol and descriptor size. */
export class SnpGuestAccept {
  readonly sev: KvmSev;
  constructor(
    readonly sim: Sim,
    readonly kvm: Kvm,
    readonly psc: PscProtocol,
    /** Entries per PSC descriptor: Linux VMGEXIT_PSC_MAX_ENTRY (64), spec maximum 253 ([amd-ghcb-spec]). */
    readonly maxEntries: number,
  ) {
    this.sev = sevOf(kvm);
  }
}

type SnpAcceptSide = SnpGuestAccept;

/**
 * snp_accept_memory(start, end) ([linux:arch/x86/coco/sev/core.c snp_accept_memory]) on the calling vCPU: make the range
 * private with the hypervisor, then PVALIDATE it. A PVALIDATE that fails (a page validated
 * twice) terminates the guest: an assertion naming the address.
 */
export function* snp_accept_memory(side: SnpAcceptSide, start: number, end: number, phase: AcceptPhase, link: number): Proc<void> {
  if (start % 4096 !== 0 || end % 4096 !== 0 || start > end) assert(false, 'snp_accept_memory: range must be 4 KiB aligned', { start, end });
  if (end > side.kvm.gmem.allocated.pages * 4096) assert(false, 'snp_accept_memory: range beyond guest memory', { end: hex(end) });
  if (phase === 'early' || side.psc === 'msr') yield* early_set_pages_state(side, start, end, link);
  else yield* set_pages_state(side, start, end, link);
}

/** early_set_pages_state(): per 4K page, a GHCB MSR protocol VMGEXIT, then PVALIDATE. */
function* early_set_pages_state(side: SnpAcceptSide, start: number, end: number, link: number): Proc<void> {
  const sim = side.sim;
  for (let p = start / 4096; p < end / 4096; p++) {
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('VMGEXIT', { exit: 'GHCB_MSR_PSC_REQ', gpa: hex(p * 4096), size: 4096 }, link) : 0;
    yield* snp_vmgexit_msr_psc(side.kvm, p, id);
    if (traced) sim.opEnd(id);
    yield* pvalidate(side, p, false);
  }
}

/**
 * The PSC descriptors set_pages_state() fills for [start, end): up to `maxEntries` entries each,
 * an entry 2M where the address is 2M aligned and 2 MiB remain, else 4K
 * ([linux:arch/x86/coco/sev/core.c snp_accept_memory]). Used for both directions.
 */
export function* pscDescriptors(start: number, end: number, maxEntries: number): Generator<PscEntry[]> {
  let p = start;
  while (p < end) {
    const entries: PscEntry[] = [];
    while (p < end && entries.length < maxEntries) {
      const huge = p % SIZE_2M === 0 && p + SIZE_2M <= end;
      entries.push({ page: p / 4096, huge });
      p += huge ? SIZE_2M : 4096;
    }
    yield entries;
  }
}

/**
 * set_pages_state(..., SNP_PAGE_STATE_PRIVATE): descriptors of up to maxEntries entries, 2M
 * where the address is 2M aligned and 2 MiB remain; one VMGEXIT per descriptor, then
 * pvalidate_pages() on it.
 */
function* set_pages_state(side: SnpAcceptSide, start: number, end: number, link: number): Proc<void> {
  const sim = side.sim;
  for (const entries of pscDescriptors(start, end, side.maxEntries)) {
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('VMGEXIT', { exit: hex(SVM_VMGEXIT_PSC), entries: entries.length, gpa: hex(entries[0]!.page * 4096) }, link) : 0;
    yield* snp_vmgexit_psc(side.kvm, entries, id);
    if (traced) sim.opEnd(id);
    for (const e of entries) yield* pvalidate(side, e.page, e.huge);
  }
}

/**
 * PVALIDATE(validate) of a 4K or 2M page; a 2M page the RMP holds as 4K entries answers
 * PVALIDATE_FAIL_SIZEMISMATCH and pvalidate_pages() falls back to 512 4K PVALIDATEs. Upstream
 * (no prefault) the PSC left the pages unmapped: each PVALIDATE of a page not in the NPT takes a
 * nested page fault first (snp_npf.ts, the RMPUPDATE inside it): with 4K folios the 2M attempt
 * faults in its first 4K page and then answers SIZEMISMATCH, and each 4K PVALIDATE of the
 * fallback faults its own page. Traced, the answer is an event with its value and the
 * fallback's 4K PVALIDATEs nest in the 2M one's span: one span each per page, or one with
 * `cvmsim.aggregated.count` when aggregated.
 */
function* pvalidate(side: SnpAcceptSide, page: number, huge: boolean): Proc<void> {
  const sim = side.sim;
  const kvm = side.kvm;
  const { rmp, costs, counters, perPage, prefault } = side.sev;
  const n = huge ? PAGES_PER_2M : 1;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('PVALIDATE', { gpa: hex(page * 4096), size: n * 4096 }) : 0;
  // The NPT walk of the first access: a 2M PVALIDATE touches its first 4K page (or, with a 2M folio, the region).
  if (!prefault) yield* snp_npf(kvm, page, huge && kvm.gmem.folioPages === PAGES_PER_2M ? n : 1, perPage, id);
  // The hardware finds the RMP entry through the nested page table: the host page behind the GPA.
  const h = kvm.gmem.hostPage(page);
  const twice = rmp.validated.firstSet(h, n);
  if (twice >= 0) {
    assert(false, `PVALIDATE(${hex((page + twice - h) * 4096)}, validate) of a validated page: PVALIDATE_FAIL_NOUPDATE (${PVALIDATE_FAIL_NOUPDATE}); sev_es_terminate(SEV_TERM_SET_LINUX=${SEV_TERM_SET_LINUX}, GHCB_TERM_PVALIDATE=${GHCB_TERM_PVALIDATE})`, hex((page + twice - h) * 4096));
  }
  if (!huge) {
    yield sim.compute(costs.pvalidate4kNs);
    counters.pvalidate4k++;
  } else {
    yield sim.compute(costs.pvalidate2mNs);
    counters.pvalidate2m++;
    if (rmp.size2m[h / PAGES_PER_2M] !== 1) {
      counters.pvalidateSizeMismatch++;
      if (traced) sim.instant('PVALIDATE_FAIL_SIZEMISMATCH', { gpa: hex(page * 4096), status: hex(PVALIDATE_FAIL_SIZEMISMATCH), 'status.name': 'PVALIDATE_FAIL_SIZEMISMATCH' });
      if (perPage) {
        for (let i = 0; i < n; i++) {
          const one = traced ? sim.opBegin('PVALIDATE', { gpa: hex((page + i) * 4096), size: 4096 }) : 0;
          if (!prefault) yield* snp_npf(kvm, page + i, 1, true, one);
          yield sim.compute(costs.pvalidate4kNs);
          if (traced) sim.opEnd(one, {});
        }
      } else {
        const all = traced ? sim.opBegin('PVALIDATE', { gpa: hex(page * 4096), size: 4096, 'cvmsim.aggregated.count': n }) : 0;
        if (!prefault) yield* snp_npf(kvm, page, n, false, all);
        yield sim.compute(n * costs.pvalidate4kNs);
        if (traced) sim.opEnd(all, {});
      }
      counters.pvalidate4k += n;
    }
  }
  if (rmp.assigned.countRange(h, n) !== n) assert(false, 'PVALIDATE of a page the hypervisor has not assigned to the guest', hex(page * 4096));
  rmp.validate(h, n);
  if (traced) sim.opEnd(id, {});
}
