import { Spinlock, assert, type Proc, type Sim, type SimEvent } from '../../sim/index.ts';
import { hex } from './constants.ts';
import type { ArchAccept } from './arch_accept.ts';
import type { EfiUnacceptedMemory } from './efi_unaccepted_memory.ts';
import type { GuestCosts } from './costs.ts';
import type { AcceptCause, GuestMetrics } from './metrics.ts';

/**
 * Where the lock is during arch_accept_memory():
 * - `dropped`: upstream since [linux-commit:50e782a86c98] (Oct 2023): spin_unlock() (interrupts stay
 *   off) around arch_accept_memory(), with accepting_list keeping two CPUs off the same units.
 * - `held`: the seed era and v6.5: unaccepted_memory_lock held across arch_accept_memory(),
 *   which serialises acceptance and starves the spinning CPUs into soft lockups.
 */
export const ACCEPT_LOCK_MODES = ['held', 'dropped'] as const;
export type AcceptLockMode = (typeof ACCEPT_LOCK_MODES)[number];

/**
 * accept_memory()'s overlap test against each accepting_list entry, in units [start, end):
 * - `upstream`: `entry->end <= range.start` skips an entry that ends where the range starts
 *   (the off-by-one fix, [roth-2023-11-accepting-list-off-by-one]);
 * - `v6.6`: `entry->end < range.start` as [linux-commit:50e782a86c98] added it (v6.6 era): an
 *   entry ending exactly at range.start counts as an overlap, so a caller accepting the adjacent
 *   units spins until that entry is done although they share no unit (a false overlap; no real
 *   overlap is missed).
 */
export const ACCEPTING_LIST_CHECKS = ['upstream', 'v6.6'] as const;
export type AcceptingListCheck = (typeof ACCEPTING_LIST_CHECKS)[number];

/** Whether accept_memory() finds `entry` overlapping `range` (units) with the given test. */
export function acceptingListOverlaps(check: AcceptingListCheck, entry: { start: number; end: number }, range: { start: number; end: number }): boolean {
  if (check === 'upstream' ? entry.end <= range.start : entry.end < range.start) return false;
  return !(entry.start >= range.end);
}

/** struct accept_range: units [start, end) some CPU is accepting, with an event for its waiters. */
interface AcceptRange {
  start: number;
  end: number;
  done: SimEvent<void>;
}

/**
 * [linux:drivers/firmware/efi/unaccepted_memory.c]: accept_memory() and
 * range_contains_unaccepted_memory() over the EFI bitmap, with the global
 * unaccepted_memory_lock (a spinlock taken irqsave) and accepting_list.
 */
export class UnacceptedMemory {
  readonly unaccepted_memory_lock: Spinlock;
  readonly accepting_list: AcceptRange[] = [];
  /**
   * Until lockup_detector_init() (kernel_init_freeable) there is no watchdog; early callers tell
   * the engine so a long single-CPU accept at boot is not reported as a soft lockup.
   */
  watchdogRunning = false;

  constructor(
    readonly sim: Sim,
    readonly table: EfiUnacceptedMemory | null,
    readonly arch: ArchAccept,
    readonly mode: AcceptLockMode,
    readonly costs: GuestCosts,
    readonly metrics: GuestMetrics,
    /** The overlap test of accepting_list (upstream, or the v6.6 off-by-one). */
    readonly overlapCheck: AcceptingListCheck = 'upstream',
  ) {
    this.unaccepted_memory_lock = new Spinlock(sim, 'unaccepted_memory_lock');
  }

  /**
   * The unit range [start, end) accept_memory() covers for guest-physical [start, start + size):
   * clamped to the bitmap, extended by one guard unit when the end is unit aligned so that
   * load_unaligned_zeropad() never touches unaccepted memory (on TDX that is a fatal TD exit).
   */
  unitRange(start: number, size: number): { start: number; end: number } | null {
    const t = this.table;
    if (t === null) return null;
    let end = start + size;
    if (start < t.phys_base) start = t.phys_base;
    if (end < t.phys_base) return null;
    start -= t.phys_base;
    end -= t.phys_base;
    if (end % t.unit_size === 0) end += t.unit_size;
    const limit = t.nbits * t.unit_size;
    if (end > limit) end = limit;
    const range = { start: Math.floor(start / t.unit_size), end: Math.ceil(end / t.unit_size) };
    return range.start < range.end ? range : null;
  }

  /** accept_memory(start, size): accept every unaccepted unit of the range (and the guard unit). */
  *accept_memory(start: number, size: number, cause: AcceptCause): Proc<void> {
    const range = this.unitRange(start, size);
    if (range === null) return;
    const sim = this.sim;
    // Attributes are built only when a trace observer is attached (the hot path stays cheap).
    const id = sim.observer === null ? 0 : sim.opBegin('accept_memory', { start: hex(start), size, cause, lock: this.mode });
    if (this.mode === 'held') yield* this.acceptHeld(range, cause);
    else yield* this.acceptDropped(range, cause);
    sim.opEnd(id);
  }

  /** v6.5 / seed era: one lock hold for the whole range, arch_accept_memory() included. */
  private *acceptHeld(range: { start: number; end: number }, cause: AcceptCause): Proc<void> {
    const sim = this.sim;
    const lock = this.unaccepted_memory_lock;
    yield lock.acquire({ irqsave: true });
    yield sim.compute(this.costs.acceptBookkeepingNs);
    yield* this.acceptRuns(range, cause, false);
    if (!this.watchdogRunning) sim.touchSoftlockupWatchdog();
    lock.release({ irqrestore: true });
  }

  /**
   * Upstream: register the range on accepting_list, drop the lock (interrupts stay disabled)
   * around each arch_accept_memory(), retake it to clear the bits. A caller whose units overlap a
   * range on the list busy-waits (lock dropped, interrupts off) and retries.
   */
  private *acceptDropped(range: { start: number; end: number }, cause: AcceptCause): Proc<void> {
    const sim = this.sim;
    const lock = this.unaccepted_memory_lock;
    for (;;) {
      yield lock.acquire({ irqsave: true });
      yield sim.compute(this.costs.acceptBookkeepingNs);
      const busy = this.overlapping(range);
      if (busy === null) break;
      lock.release({ irqrestore: true });
      yield* this.spinUntilDone(busy);
    }
    const entry: AcceptRange = { start: range.start, end: range.end, done: sim.event(`accept_range ${range.start}`) };
    this.accepting_list.push(entry);
    yield* this.acceptRuns(range, cause, true);
    this.accepting_list.splice(this.accepting_list.indexOf(entry), 1);
    entry.done.succeed();
    sim.touchSoftlockupWatchdog();
    lock.release({ irqrestore: true });
  }

  /** An accepting_list entry sharing a unit with `range` (unit granularity, as the kernel checks). */
  private overlapping(range: { start: number; end: number }): AcceptRange | null {
    for (const e of this.accepting_list) {
      if (!acceptingListOverlaps(this.overlapCheck, e, range)) continue;
      // The v6.6 test's false overlap: the entry ends where the range starts, no unit shared.
      if (e.end <= range.start) this.metrics.acceptingListFalseWaits++;
      return e;
    }
    return null;
  }

  /**
   * The `goto retry` loop: the kernel re-takes the lock until the overlapping range is gone, with
   * interrupts disabled around each attempt. Modelled as one non-preemptible wait on the CPU
   * that ends when that range leaves accepting_list (the retries in between find nothing new).
   */
  private *spinUntilDone(busy: AcceptRange): Proc<void> {
    const sim = this.sim;
    const t0 = sim.now;
    this.metrics.acceptingListWaits++;
    const id = sim.opBegin('accepting_list wait', { 'range.start': busy.start, 'range.end': busy.end, 'cvmsim.level': 'lock' });
    sim.localIrqDisable();
    yield sim.spinUntil(busy.done);
    sim.localIrqEnable();
    sim.opEnd(id);
    this.metrics.acceptingListWaitNs += sim.now - t0;
  }

  /** for_each_set_bitrange_from(): accept each run of set bits and clear it, lock held on entry and exit. */
  private *acceptRuns(range: { start: number; end: number }, cause: AcceptCause, dropLock: boolean): Proc<void> {
    const t = this.table!;
    const lock = this.unaccepted_memory_lock;
    let from = range.start;
    for (let run = t.nextSetRange(from, range.end); run !== null; run = t.nextSetRange(from, range.end)) {
      const physStart = t.unitAddr(run.start);
      const physEnd = t.unitAddr(run.end);
      if (dropLock) lock.release();
      const id = this.sim.observer === null ? 0 : this.sim.opBegin('arch_accept_memory', { start: hex(physStart), end: hex(physEnd) });
      yield* this.arch.accept(physStart, physEnd, 'runtime', cause);
      this.sim.opEnd(id);
      if (dropLock) yield lock.acquire();
      if (t.find_next_zero_bit(run.start, run.end) !== run.end) assert(false, 'bits of a range being accepted changed under accepting_list', { start: run.start, end: run.end });
      t.bitmap_clear(run.start, run.end - run.start);
      from = run.end;
    }
  }

  /** range_contains_unaccepted_memory(start, end), with the same +1 unit extension. */
  *range_contains_unaccepted_memory(start: number, end: number): Proc<boolean> {
    const range = this.unitRange(start, end - start);
    if (range === null) return false;
    yield this.unaccepted_memory_lock.acquire({ irqsave: true });
    yield this.sim.compute(this.costs.acceptBookkeepingNs);
    const ret = this.table!.anySet(range.start, range.end);
    this.unaccepted_memory_lock.release({ irqrestore: true });
    return ret;
  }

  /** Lockless peek for invariants and tests (not a kernel path). */
  containsUnaccepted(start: number, end: number): boolean {
    const range = this.unitRange(start, end - start);
    return range !== null && this.table!.anySet(range.start, range.end);
  }
}
