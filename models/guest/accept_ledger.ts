import { assert } from '../../sim/index.ts';
import { EFI_UNACCEPTED_UNIT_SIZE, PAGE_SIZE, PAGES_PER_UNIT, hex } from './constants.ts';

/**
 * The ground truth of what the guest has accepted, kept beside the bitmap to check it: every
 * arch_accept_memory() call is recorded here at the moment it starts (begin), so that a page
 * accepted twice is caught even when the two accepts overlap in time (a second PVALIDATE of a
 * validated page is fatal on SNP; on TDX it answers TDX_PAGE_ALREADY_ACCEPTED), and counts as
 * accepted only once the call has returned (complete): accept_memory() clears the bitmap after
 * arch_accept_memory(), and memory handed out before that is a bug the allocation check must see.
 * Whole 2 MiB units are one counter; units accepted piecewise (the unaligned edges
 * process_unaccepted_memory() accepts up front) keep a per-4K map.
 */
export class AcceptLedger {
  /** Accepted 4K pages per 2 MiB unit (index = address / 2 MiB), in flight included. */
  private readonly acceptedPages: Uint16Array;
  /** Units accepted in pieces: which 4K pages. */
  private readonly partial = new Map<number, Uint8Array>();
  /** arch_accept_memory() calls under way, as [start, end) pairs (at most a few: one per vCPU). */
  private readonly inFlightRanges: number[] = [];
  acceptedBytes = 0;

  constructor(readonly maxAddr: number) {
    this.acceptedPages = new Uint16Array(Math.ceil(maxAddr / EFI_UNACCEPTED_UNIT_SIZE));
  }

  /** arch_accept_memory() calls that have begun and not completed. */
  get inFlight(): number {
    return this.inFlightRanges.length / 2;
  }

  /** Records [start, end) as accepted at once (begin and complete). */
  record(start: number, end: number, now: number): void {
    this.begin(start, end, now);
    this.complete(start, end);
  }

  /** An accept of [start, end) starts; asserts no page of it was accepted (or is being accepted) before. */
  begin(start: number, end: number, now: number): void {
    this.mark(start, end, now);
    this.inFlightRanges.push(start, end);
  }

  /** The accept of [start, end) that begin() recorded has returned: its pages are accepted now. */
  complete(start: number, end: number): void {
    const r = this.inFlightRanges;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] === start && r[i + 1] === end) {
        r.splice(i, 2);
        return;
      }
    }
    assert(false, 'arch_accept_memory completed without having begun', { start: hex(start), end: hex(end) });
  }

  private mark(start: number, end: number, now: number): void {
    // The subjects are built only on failure: this runs for every accept.
    if (!(start % PAGE_SIZE === 0 && end % PAGE_SIZE === 0 && start < end)) assert(false, 'arch_accept_memory range must be 4K aligned and non-empty', { start: hex(start), end: hex(end) });
    if (end > this.maxAddr) assert(false, 'arch_accept_memory beyond guest RAM', { end: hex(end), maxAddr: hex(this.maxAddr) });
    let addr = start;
    while (addr < end) {
      const unit = Math.floor(addr / EFI_UNACCEPTED_UNIT_SIZE);
      const unitEnd = Math.min(end, (unit + 1) * EFI_UNACCEPTED_UNIT_SIZE);
      const pages = (unitEnd - addr) / PAGE_SIZE;
      if (pages === PAGES_PER_UNIT) {
        if (this.acceptedPages[unit] !== 0) assert(false, 'a 2M unit accepted twice', { unit: hex(unit * EFI_UNACCEPTED_UNIT_SIZE), t: now });
        this.acceptedPages[unit] = PAGES_PER_UNIT;
      } else {
        this.recordPartial(unit, addr, unitEnd, now);
      }
      addr = unitEnd;
    }
    this.acceptedBytes += end - start;
  }

  private recordPartial(unit: number, start: number, end: number, now: number): void {
    let map = this.partial.get(unit);
    if (map === undefined) {
      assert(this.acceptedPages[unit] === 0, 'a page of a fully accepted 2M unit accepted again', { addr: hex(start), t: now });
      map = new Uint8Array(PAGES_PER_UNIT);
      this.partial.set(unit, map);
    }
    const base = unit * EFI_UNACCEPTED_UNIT_SIZE;
    for (let a = start; a < end; a += PAGE_SIZE) {
      const i = (a - base) / PAGE_SIZE;
      if (map[i] !== 0) assert(false, 'a 4K page accepted twice', { addr: hex(a), t: now });
      map[i] = 1;
    }
    this.acceptedPages[unit]! += (end - start) / PAGE_SIZE;
  }

  /** Is every page of [start, end) accepted, with no accept of it still under way? */
  isAccepted(start: number, end: number): boolean {
    const r = this.inFlightRanges;
    for (let i = 0; i < r.length; i += 2) if (r[i]! < end && r[i + 1]! > start) return false;
    let addr = start;
    while (addr < end) {
      const unit = Math.floor(addr / EFI_UNACCEPTED_UNIT_SIZE);
      const unitEnd = Math.min(end, (unit + 1) * EFI_UNACCEPTED_UNIT_SIZE);
      const count = this.acceptedPages[unit]!;
      if (count !== PAGES_PER_UNIT) {
        const map = this.partial.get(unit);
        if (map === undefined) return false;
        const base = unit * EFI_UNACCEPTED_UNIT_SIZE;
        for (let a = addr; a < unitEnd; a += PAGE_SIZE) if (map[(a - base) / PAGE_SIZE] === 0) return false;
      }
      addr = unitEnd;
    }
    return true;
  }

  /** Accepted pages of the 2 MiB unit at global index `unit` (address / 2 MiB). */
  pagesInUnit(unit: number): number {
    return this.acceptedPages[unit]!;
  }
}
