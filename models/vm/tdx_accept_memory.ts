import { Bandwidth, countMetric, type Attrs, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { writeMemory2 } from '../arch/write_rate.ts';
import { PAGES_PER_2M, SIZE_1G, SIZE_2M, hex } from '../arch/units.ts';
import type { Kvm } from '../kvm/kvm.ts';
import { GMEM_FILE, GMEM_PAGES, GMEM_POLICY, MMU_LOCK_WORD, pcpRefills } from '../kvm/kvm_words.ts';
import type { KvmTdx } from '../kvm/tdx.ts';
import { tdx_ept_violation_exit, tdxOf } from '../kvm/tdx_ept_violation.ts';
import { TDX_MISSING_PAMT_PAGE_PAIR, TDX_PS_1G, TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, tdxStatusName, type TdxPageLevel } from '../tdx/arch.ts';
import { tdg_mem_page_accept } from '../tdx/leaves/tdg_mem_page_accept.ts';
import { Region, UPPER_SEPT_PAGES, type SeptPageKind } from '../tdx/secure_ept.ts';
import { CHLDCNT, EPOCH, OP_STATE, SECURE_EPT, TDR_PAMT } from '../tdx/td.ts';
import { TDX_MODULE_SERVICE as MODULE, TD_EXIT_EPT_VIOLATION, levelBytes } from '../tdx/tdx_module.ts';
import type { AcceptFidelity } from './fidelity.ts';

const PAGES_PER_1G = SIZE_1G / 4096;

/*
 * How TDX simulates the 4K work of an accept (AcceptFidelity):
 * - 'aggregate': a run of 4K accepts inside one 2 MiB region is one timed step (a handful of
 *   engine events per 2 MiB): the exits' host time as one stall, the clears and zeroes as one
 *   transfer each, the TDCALLs as one compute. Uncontended it takes exactly the per-page time.
 *   Where the per-4K work would interleave with other vCPUs on an exclusive S-EPT lock (TDX 1.0
 *   module), the AUG bodies share a fluid "lock time" resource (processor sharing): the lock's
 *   throughput is kept, its BUSY/retry gaps are not (see docs/calibration-host.md).
 * - 'per-page': every TDCALL, exit, SEAMCALL, clear and zero is its own step (exact, slow).
 */

/** What TdxGuestAccept.metrics() writes (`vm1.model`): how the simulation ran, not the system. */
export const TDX_ACCEPT_MODEL_METRICS: MetricSpecs = {
  aggregated_steps: countMetric('steps', 'runs of 4K accepts simulated as one aggregated step'),
  aggregated_pages: countMetric('pages', '4K accepts inside aggregated steps'),
  aggregated_contended_steps: countMetric('steps', 'aggregated steps that shared the fluid secure_ept_lock (TDX 1.0)'),
  aggregated_fallbacks: countMetric('steps', 'aggregated steps that gave way to the per-page path'),
};

/**
 * The TD guest's arch_accept_memory() as one VM runs it: the guest's TDCALL loop, the exits it
 * causes into its KVM, and the simulation's fidelity with its own bookkeeping (how many steps
 * were aggregated, and the fluid stand-in for an exclusive secure_ept_lock, TDX 1.0 only).
 */
export class TdxGuestAccept {
  readonly tdx: KvmTdx;
  readonly septLockTime: Bandwidth | null;
  readonly counters = { aggregatedSteps: 0, aggregatedPages: 0, contendedSteps: 0, fallbackSteps: 0 };

  constructor(
    readonly sim: Sim,
    readonly kvm: Kvm,
    readonly fidelity: AcceptFidelity,
  ) {
    this.tdx = tdxOf(kvm);
    const exclusive = this.tdx.module.version === '1.0';
    this.septLockTime = exclusive && fidelity === 'aggregate' ? new Bandwidth(sim, `${kvm.name}/secure_ept_lock (fluid)`, 1e9) : null;
  }

  /** The simulation's own counters under `prefix` (e.g. `vm1.model`). */
  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.aggregated_steps`] = this.counters.aggregatedSteps;
    out[`${prefix}.aggregated_pages`] = this.counters.aggregatedPages;
    out[`${prefix}.aggregated_contended_steps`] = this.counters.contendedSteps;
    out[`${prefix}.aggregated_fallbacks`] = this.counters.fallbackSteps;
  }
}

type TdxAcceptSide = TdxGuestAccept;

/**
 * tdx_accept_memory(start, end) ([linux:arch/x86/coco/tdx/tdx-shared.c tdx_accept_memory]) on the calling vCPU: accept
 * [start, end) with the largest TDG.MEM.PAGE.ACCEPT that fits (1G, then 2M, then 4K); any 4K
 * failure makes arch_accept_memory() panic the guest (an assertion here).
 */
export function* tdx_accept_memory(side: TdxAcceptSide, start: number, end: number, link: number): Proc<void> {
  if (start % 4096 !== 0 || end % 4096 !== 0 || start > end) assert(false, 'tdx_accept_memory: range must be 4 KiB aligned', { start, end });
  if (end > side.tdx.td.sept.gpaBytes) assert(false, 'tdx_accept_memory: range beyond guest memory', { end: hex(end) });
  let p = start;
  while (p < end) {
    const regionEnd = Math.floor(p / SIZE_2M) * SIZE_2M + SIZE_2M;
    const runEnd = Math.min(end, regionEnd);
    if (side.fidelity === 'per-page' || !aggregatable(side, p, end)) {
      yield* acceptRangePerPage(side, p, runEnd, end, link);
    } else if (!(yield* acceptRunAggregated(side, p, runEnd, end, link))) {
      side.counters.fallbackSteps++;
      yield* acceptRangePerPage(side, p, runEnd, end, link);
    }
    p = runEnd;
  }
}

/**
 * The Linux loop on [from, to), with `end` the end of the whole request (it decides whether a
 * 1G or 2M accept fits): try_accept_one() at 1G, 2M, then 4K.
 */
function* acceptRangePerPage(side: TdxAcceptSide, from: number, to: number, end: number, link: number): Proc<void> {
  let p = from;
  while (p < to) {
    let size = yield* try_accept_one(side, p, end - p, TDX_PS_1G, link);
    if (size === 0) size = yield* try_accept_one(side, p, end - p, TDX_PS_2M, link);
    if (size === 0) {
      const status = yield* acceptOnce(side, p, TDX_PS_4K, link);
      if (status !== TDX_SUCCESS) assert(false, `TDX: Failed to accept memory: TDG.MEM.PAGE.ACCEPT(${hex(p)}, 4K) = ${tdxStatusName(status)} (${hex(status)})`, hex(p));
      size = 4096;
    }
    p += size;
  }
}

function* try_accept_one(side: TdxAcceptSide, start: number, len: number, level: TdxPageLevel, link: number): Proc<number> {
  const size = levelBytes(level);
  if (start % size !== 0 || len < size) return 0;
  const status = yield* acceptOnce(side, start, level, link);
  return status === TDX_SUCCESS ? size : 0;
}

/** One TDCALL, re-executed after each EPT-violation exit until the module answers. */
function* acceptOnce(side: TdxAcceptSide, gpa: number, level: TdxPageLevel, link: number): Proc<bigint> {
  for (;;) {
    const status = yield* tdg_mem_page_accept(side.tdx.td, gpa, level, link);
    if (status !== TD_EXIT_EPT_VIOLATION) return status;
    yield* tdx_ept_violation_exit(side.kvm, gpa, level, side.tdx.td.lastAcceptOp);
  }
}

/** May [from, to) be one aggregated step? Only 4K work in a region not mapped by a 2M leaf. */
function aggregatable(side: TdxAcceptSide, from: number, end: number): boolean {
  const state = side.tdx.td.sept.regionState(Math.floor(from / SIZE_2M));
  if (state === Region.LeafPending || state === Region.LeafMapped) return false;
  // A full region that KVM will map with a 2M leaf is a few events already.
  const full = from % SIZE_2M === 0 && end - from >= SIZE_2M;
  return !(full && side.tdx.sept === '2m' && state === Region.Free);
}

/**
 * The 4K accepts of [from, to) inside one 2 MiB region as one timed step, with exactly the
 * per-page path's counts and (uncontended) duration. Returns false, doing nothing, if the
 * secure_ept_lock cannot be taken shared (someone holds it exclusive) or an S-EPT page it needs
 * is being added by another vCPU: then the caller runs the per-page path, which meets the real
 * TDX_OPERAND_BUSY or frozen SPTE and retries.
 *
 * Traced, the step shows the per-page chain with aggregated counts (`cvmsim.aggregated.count`),
 * built only when an observer is attached:
 *   TDG.MEM.PAGE.ACCEPT (guest; count = 4K accepts)
 *     tdx_handle_ept_violation (kvm; count = exits): from the first exit until the host CPU is
 *       released: the exits' stall and the memory stream of the host's clears (with the module's
 *       zeroing, which shares that stream);
 *       TDH.MEM.SEPT.ADD (tdx-module; count = S-EPT pages added, if any), then
 *       TDH.MEM.PAGE.AUG (tdx-module; count = AUGs) over the exits' stall;
 *   then the TDCALLs that complete the accepts, in the ACCEPT span after the kvm span (TDX 1.5;
 *   under the TDX 1.0 fluid lock they are inside the AUG span's interval).
 * The exits are one stall; with the 1.5 module the SEAMCALLs are laid out inside it afterwards
 * with sim.opSpan (SEPT.ADD at the first exit, then the AUGs), so tracing adds no engine event.
 * Under the 1.0 fluid lock the AUG span stays open over the lock interval and SEPT.ADD is a
 * zero-length span at its start. Each module span carries the total time of its SEAMCALLs
 * (`cvmsim.aggregated.ns`).
 */
function* acceptRunAggregated(side: TdxAcceptSide, from: number, to: number, end: number, link: number): Proc<boolean> {
  const { sim, kvm } = side;
  const { td, module } = side.tdx;
  const gmem = kvm.gmem;
  const sept = td.sept;
  const c = module.costs;
  const first = from / 4096;
  const n = (to - from) / 4096;
  const region = Math.floor(first / PAGES_PER_2M);
  const already = sept.accepted4k.firstSet(first, n);
  if (already >= 0) assert(false, `TDX: Failed to accept memory: TDG.MEM.PAGE.ACCEPT(${hex(already * 4096)}, 4K) = TDX_PAGE_ALREADY_ACCEPTED`, hex(already * 4096));
  const try1G = from % SIZE_1G === 0 && end - from >= SIZE_1G;
  const try2M = from % SIZE_2M === 0 && end - from >= SIZE_2M;
  const augs = n - sept.aug4k.countRange(first, n);
  const tdcalls = (try1G ? 1 : 0) + (try2M ? 1 : 0) + n;
  const exclusive = side.septLockTime !== null;
  const traced = sim.observer !== null;
  const start = sim.now;
  let septAdds: SeptPageKind[] = [];
  let septHpas: number[] = [];
  // Dynamic PAMT: the run's host pages are known before the step (guest_memfd allocates them
  // first), so the pair of their 2M range is there before any AUG of the step commits.
  const dynamic = side.tdx.pamt !== null;
  // guest_memfd's new folios of the run (before any allocation below) and the pcp refills they take.
  const foliosBefore = gmem.folios;
  const newFolios = gmem.newFolios(first, n);
  const earlyClearBytes = dynamic && augs > 0 ? gmem.allocate(first, n) : 0;
  const runHpa = dynamic && augs > 0 ? gmem.hostPage(first) * 4096 : 0;
  if (augs > 0) {
    if (dynamic) yield* pamtBeforeRun(side, runHpa, augs);
    const claimed = claimUpperPages(side, region, exclusive);
    if (typeof claimed === 'string') {
      if (traced) sim.instant('cvmsim.aggregated.fallback', { reason: claimed, gpa: hex(from), size: n * 4096 });
      if (dynamic && side.tdx.pamt!.refcounted) yield* side.tdx.pamt!.put(runHpa, augs);
      // The folios allocated early for the pair are cleared now (the per-page path finds them allocated).
      if (earlyClearBytes > 0) yield* gmem.clear(earlyClearBytes);
      return false;
    }
    septAdds = claimed.kinds;
    septHpas = claimed.hpas;
    for (const hpa of claimed.hpas) {
      if (dynamic) yield* pamtForSeptPage(side, hpa);
      module.pamt.setInUse(hpa);
    }
  } else if (sept.regionState(region) !== Region.PageTable) {
    assert(false, 'a run with nothing to AUG in a region without a PT page', hex(from));
  }
  // Each AUG is one exit (the 2M attempt on a FREE region exits and AUGs the base page, whose
  // 4K accept then needs no exit); S-EPT pages are added on the first exit.
  const bodyNs = augs * c.augBodyNs + septAdds.length * c.septAddBodyNs;
  const hostNs = newFolios * kvm.costs.gmemFolioNs + (augs + septAdds.length) * c.clflushPageNs;
  let exitNs = augs * (c.tdExitNs + kvm.costs.faultNs + c.seamcallNs + c.tdEntryNs) + septAdds.length * c.seamcallNs + hostNs;
  const lines: StepLines = { socket: -1, augs, septAdds: septAdds.length, folios: newFolios, refills: pcpRefills(foliosBefore, newFolios), pamtLine: 0 };
  const id = traced ? sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: hex(from), size: n * 4096, level: TDX_PS_4K, 'cvmsim.aggregated.count': n, tdcalls, exits: augs }, link) : 0;
  if (augs > 0) {
    const exitId = traced ? sim.opBegin('tdx_handle_ept_violation', { gpa: hex(from), 'accept.level': TDX_PS_4K, 'cvmsim.aggregated.count': augs }, 0, 'kvm') : 0;
    // guest_memfd's folios of the run (their clears are in the step's memory stream below).
    const clearBytes = dynamic ? earlyClearBytes : gmem.allocate(first, n);
    yield kvm.mmuLock.acquire('shared');
    if (augs > 0) {
      lines.pamtLine = Math.floor(gmem.hostPage(first + n - 1) / PAGES_PER_1G);
      exitNs += beginStepLines(side, lines, exitNs + bodyNs);
      for (const hpa of septHpas) exitNs += module.pamt1gTouch(hpa);
    }
    const exitsAt = sim.now;
    if (exclusive) {
      const augId = traced ? openSeamcallSpans(side, from, region, septAdds, augs, null) : 0;
      yield* exitsUnderExclusiveLock(side, exitNs, bodyNs, tdcalls * c.tdcallNs);
      // How much longer than alone the step took under the fluid lock (it has no BUSY events).
      if (traced) sim.opEnd(augId, { status: hex(TDX_SUCCESS), 'secure_ept_lock.fluid_wait_ns': sim.now - exitsAt - (exitNs + bodyNs + tdcalls * c.tdcallNs) });
    } else {
      yield sim.stallFor(exitNs + bodyNs);
      if (traced) openSeamcallSpans(side, from, region, septAdds, augs, exitsAt);
    }
    // The host's clears and fills and the module's zeroing of this step as one memory stream
    // (two per step made the shared bandwidth the simulator's hot spot at 64 vCPUs).
    const zeroBytes = (septAdds.length + n) * 4096;
    gmem.countCleared(clearBytes);
    td.countZeroed(zeroBytes);
    yield* writeMemory2(gmem.memory, clearBytes, gmem.clearRate, zeroBytes, module.zeroRate);
    kvm.mmuLock.release('shared');
    endStepLines(side, lines);
    if (!exclusive) td.secureEptLock.release('shared');
    if (dynamic) yield* lazyPairLost(side, gmem.hostPage(first) * 4096);
    commitPamtRun(side, first, n);
    td.commitAug4kRun(first, n, augs);
    const guestNs = n * module.zeroRate.nsPer4K + (exclusive ? tdcalls * c.tdcallNs : 0);
    kvm.exits.record('EPT_VIOLATION', sim.now - start - guestNs, augs);
    if (traced) sim.opEnd(exitId, { 'host.clear_bytes': clearBytes, 'tdx.zero_bytes': zeroBytes });
    if (!exclusive) yield sim.compute(tdcalls * c.tdcallNs);
  } else {
    yield sim.compute(tdcalls * c.tdcallNs);
    yield* td.zero(n * 4096);
  }
  td.commitAccept4kRun(first, n, try1G, try2M);
  side.counters.aggregatedSteps++;
  side.counters.aggregatedPages += n;
  if (traced) sim.opEnd(id, { status: hex(TDX_SUCCESS) });
  return true;
}

/**
 * Traced steps only: the SEAMCALLs of an aggregated step as tdx-module spans under KVM's exit
 * span. With `laidOutFrom` (the start of a finished stall), SEPT.ADD (if S-EPT pages were added)
 * and then the AUGs are recorded with their times inside the stall, which ends now. With null,
 * SEPT.ADD is a zero-length span now and the AUG span is opened; its id is returned for the
 * caller to end.
 */
function openSeamcallSpans(side: TdxAcceptSide, gpa: number, region: number, septAdds: readonly SeptPageKind[], augs: number, laidOutFrom: number | null): number {
  const { sim } = side;
  const module = side.tdx.module;
  const c = module.costs;
  const addNs = septAdds.length * (c.seamcallNs + c.septAddBodyNs);
  const start = laidOutFrom ?? sim.now;
  const addEnd = laidOutFrom === null ? start : start + addNs;
  const ok = hex(TDX_SUCCESS);
  if (septAdds.length > 0) {
    sim.opSpan('TDH.MEM.SEPT.ADD', start, addEnd, {
      gpa: hex(region * SIZE_2M), page: septAdds.join(','),
      'cvmsim.aggregated.count': septAdds.length, 'cvmsim.aggregated.ns': addNs, status: ok,
    }, 0, MODULE);
  }
  const attrs: Attrs = {
    gpa: hex(gpa), size: 4096, level: TDX_PS_4K,
    'cvmsim.aggregated.count': augs, 'cvmsim.aggregated.ns': augs * (c.seamcallNs + c.augBodyNs),
  };
  if (laidOutFrom !== null) {
    sim.opSpan('TDH.MEM.PAGE.AUG', addEnd, sim.now, { ...attrs, status: ok }, 0, MODULE);
    return 0;
  }
  // TDX 1.0: the aggregated steps sharing the fluid secure_ept_lock when this one starts.
  if (side.septLockTime !== null) attrs['secure_ept_lock.fluid_sharers'] = side.septLockTime.activeCount;
  return sim.opBegin('TDH.MEM.PAGE.AUG', attrs, 0, MODULE);
}

/** Why an aggregated step gave way to the per-page path (an event when traced). */
type ClaimRefused = 'secure_ept_lock busy' | 'S-EPT page being added (frozen SPTE)';

/**
 * Before an aggregated step's exits (host CPU held): the S-EPT pages the step must add, now
 * committed so other vCPUs see them (they are added on the step's first exit), and the
 * secure_ept_lock taken shared (TDX 1.5). Refused, with nothing changed, if another vCPU's fault
 * is adding one of them (a frozen SPTE) or someone holds the lock exclusive: the per-page path
 * then meets the real retry.
 */
function claimUpperPages(side: TdxAcceptSide, region: number, exclusive: boolean): { kinds: SeptPageKind[]; hpas: number[] } | ClaimRefused {
  const { td } = side.tdx;
  const septAdds: SeptPageKind[] = [];
  const hpas: number[] = [];
  // Read the upper S-EPT state after any wait: other vCPUs fault in the same 1 GiB.
  for (const kind of UPPER_SEPT_PAGES) {
    if (!td.sept.pageMissing(region, kind, TDX_PS_4K)) continue;
    if (side.tdx.septPageFrozen(region, kind)) return 'S-EPT page being added (frozen SPTE)';
    septAdds.push(kind);
  }
  if (!exclusive && td.secureEptLock.tryAcquire('shared', 'host') !== 'acquired') return 'secure_ept_lock busy';
  for (const kind of septAdds) {
    const hpa = side.tdx.allocSeptPage();
    td.commitSeptAdd(region, kind);
    side.tdx.septPageAdded(hpa);
    hpas.push(hpa);
  }
  return { kinds: septAdds, hpas };
}

/**
 * Dynamic PAMT before an aggregated step's AUGs of `augs` pages in the 2M host range of `hpa`:
 * refcount: one tdx_pamt_get() for all of them (the slow path once, if the range had no users);
 * lazy: the first AUG would fail with TDX_MISSING_PAMT_PAGE_PAIR, then PAMT.ADD (retried while
 * BUSY); both with the vCPU's cache topped up first.
 */
function* pamtBeforeRun(side: TdxAcceptSide, hpa: number, augs: number): Proc<void> {
  const kernel = side.tdx.pamt!;
  const cpu = side.sim.current?.cpu ?? null;
  side.tdx.pamtTopup(cpu);
  if (kernel.refcounted) yield* kernel.get(hpa, augs, side.tdx.pamtCache(cpu));
  else yield* lazyEnsurePair(side, hpa, 'TDH.MEM.PAGE.AUG');
}

/** Dynamic PAMT for an S-EPT page an aggregated step adds (its TDH.MEM.SEPT.ADD). */
function* pamtForSeptPage(side: TdxAcceptSide, hpa: number): Proc<void> {
  const kernel = side.tdx.pamt!;
  const cpu = side.sim.current?.cpu ?? null;
  if (kernel.refcounted) yield* kernel.get(hpa, 1, side.tdx.pamtCache(cpu));
  else yield* lazyEnsurePair(side, hpa, 'TDH.MEM.SEPT.ADD');
}

/**
 * The lazy scheme inside an aggregated step: while the range has no pair, the SEAMCALL that
 * needs it fails (its transitions, and the TDX_MISSING_PAMT_PAGE_PAIR answer counted under
 * `leaf`) and the kernel runs PAMT.ADD.
 */
function* lazyEnsurePair(side: TdxAcceptSide, hpa: number, leaf: string): Proc<void> {
  const { module } = side.tdx;
  const kernel = side.tdx.pamt!;
  const cache = side.tdx.pamtCache(side.sim.current?.cpu ?? null);
  while (!module.pamt.hasPair(hpa)) {
    module.pamt.counters.missingPair++;
    module.countPamtAnswer(TDX_MISSING_PAMT_PAGE_PAIR, leaf, hpa);
    yield side.sim.stallFor(module.costs.seamcallNs);
    // A BUSY PAMT.ADD (another CPU's ADD holds the 2M entry) is retried until it answers.
    while ((yield* kernel.lazyAdd(hpa, cache)) !== TDX_SUCCESS) yield side.sim.stallFor(module.seamcallHalfNs);
  }
}

/**
 * policy=lazy: a "can remove" hint of a stopped TD's teardown removed the pair of this range
 * while the step's AUGs were in flight (the range's block was freed and taken by this TD before
 * the REMOVE). Per page, the step's first AUG would have met TDX_MISSING_PAMT_PAGE_PAIR and the
 * kernel added a pair again: the same here, counted as a race (`lazy_pair_lost`).
 */
function* lazyPairLost(side: TdxAcceptSide, hpa: number): Proc<void> {
  const kernel = side.tdx.pamt;
  if (kernel === null || kernel.policy !== 'lazy' || side.tdx.module.pamt.hasPair(hpa)) return;
  kernel.counters.lazyPairLost++;
  yield* lazyEnsurePair(side, hpa, 'TDH.MEM.PAGE.AUG');
}

/** The PAMT side of an aggregated step's AUGs: every page not yet AUGed becomes a TD page. */
function commitPamtRun(side: TdxAcceptSide, first: number, n: number): void {
  const { td, module } = side.tdx;
  const gmem = side.kvm.gmem;
  // Usually no page of the run was AUGed before: one word-wise commit of the contiguous host pages.
  if (td.sept.aug4k.countRange(first, n) === 0) module.pamt.setRangeInUse(gmem.hostPage(first) * 4096, n);
  else for (let p = first; p < first + n; p++) if (!td.sept.aug4k.test(p)) module.pamt.setInUse(gmem.hostPage(p) * 4096);
}

/**
 * The exits and TDCALLs of an aggregated step when every AUG holds the secure_ept_lock
 * exclusively (TDX 1.0), as fluid lock time. Per page, the lock is wanted for the AUG body only,
 * spread over the page's exit and TDCALL time; so the step asks for `bodyNs` of lock time at rate
 * bodyNs / (exitNs + bodyNs + tdcallNs), and the lock serves all asking vCPUs max-min fairly.
 * Uncontended this takes exactly exitNs + bodyNs + tdcallNs; with the lock saturated the steps
 * stretch so that it runs one AUG at a time. Spreading the demand over the step (rather than
 * one block of lock time) keeps vCPUs from falling into lock-step, which per-page AUGs never do.
 * Its BUSY/retry gaps are not kept (docs/calibration-host.md measures the difference), so a
 * traced step has no TDX_OPERAND_BUSY events: its AUG span gets the stretch instead,
 * `secure_ept_lock.fluid_wait_ns`. Accounted as busy CPU time, not stall.
 */
function* exitsUnderExclusiveLock(side: TdxAcceptSide, exitNs: number, bodyNs: number, tdcallNs: number): Proc<void> {
  const lock = side.septLockTime!;
  if (lock.activeCount > 0) side.counters.contendedSteps++;
  yield lock.transfer(bodyNs, (bodyNs / (exitNs + bodyNs + tdcallNs)) * 1e9);
}

/** The shared words an aggregated step's exits touch, as runs of touches on their cache lines. */
interface StepLines {
  /** The socket the runs were begun on (CacheLines.currentSocket()), -1 if none were. */
  socket: number;
  augs: number;
  septAdds: number;
  /** guest_memfd folios the step allocates, and the pcp refills (zone->lock) they take. */
  folios: number;
  refills: number;
  /** The 1G PAMT entry (host GiB) of the step's pages. */
  pamtLine: number;
}

/**
 * Per AUG exit, as the per-page path touches them: mmu_lock twice (read_lock, read_unlock);
 * the TDR's PAMT entry and op_state three times (AUG's lock and release, TDH.VP.ENTER), the
 * secure_ept_lock twice, TDR.CHLDCNT and the epoch once, the page's 1G PAMT entry once; per
 * S-EPT page the same as an AUG without the entry; per new folio the file reference twice, the
 * shared-policy lock once, the i_pages lock once for the insert; zone->lock per refill. Returns
 * the ns the exits stall for them (CacheLines.beginRun()).
 */
function beginStepLines(side: TdxAcceptSide, l: StepLines, spanNs: number): number {
  const { kvm } = side;
  const { td, module } = side.tdx;
  const w = td.words;
  const k = kvm.words;
  const kc = kvm.costs;
  l.socket = w.currentSocket();
  const calls = l.augs + l.septAdds;
  let ns = k.beginRun(MMU_LOCK_WORD, 2 * l.augs, 0, spanNs)
    + k.beginRun(GMEM_FILE, 2 * l.folios, 0, spanNs)
    + k.beginRun(GMEM_POLICY, l.folios, 0, spanNs)
    + k.beginRun(GMEM_PAGES, l.folios, kc.gmemInsertNs, spanNs)
    + w.beginRun(TDR_PAMT, 3 * l.augs + 2 * l.septAdds, 0, spanNs)
    + w.beginRun(OP_STATE, 3 * l.augs + 2 * l.septAdds, 0, spanNs)
    + w.beginRun(SECURE_EPT, 2 * calls, 0, spanNs)
    + w.beginRun(CHLDCNT, calls, 0, spanNs)
    + w.beginRun(EPOCH, l.augs, 0, spanNs)
    + module.pamt1gLines.beginRun(l.pamtLine, l.augs, 0, spanNs);
  if (l.refills > 0) ns += kvm.zoneLines === null ? l.refills * kc.zoneRefillNs : kvm.zoneLines.beginRun(kvm.node, l.refills, kc.zoneRefillNs, spanNs);
  return ns;
}

/** The runs of beginStepLines() are over. */
function endStepLines(side: TdxAcceptSide, l: StepLines): void {
  const { kvm } = side;
  const { td, module } = side.tdx;
  const w = td.words;
  const k = kvm.words;
  const s = l.socket;
  const calls = l.augs + l.septAdds;
  k.endRun(MMU_LOCK_WORD, s, 2 * l.augs);
  k.endRun(GMEM_FILE, s, 2 * l.folios);
  k.endRun(GMEM_POLICY, s, l.folios);
  k.endRun(GMEM_PAGES, s, l.folios);
  w.endRun(TDR_PAMT, s, 3 * l.augs + 2 * l.septAdds);
  w.endRun(OP_STATE, s, 3 * l.augs + 2 * l.septAdds);
  w.endRun(SECURE_EPT, s, 2 * calls);
  w.endRun(CHLDCNT, s, calls);
  w.endRun(EPOCH, s, l.augs);
  module.pamt1gLines.endRun(l.pamtLine, s, l.augs);
  if (l.refills > 0 && kvm.zoneLines !== null) kvm.zoneLines.endRun(kvm.node, s, l.refills);
}
