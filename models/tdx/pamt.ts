import type { LockMode } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, PAGE_SIZE, SIZE_1G, SIZE_2M, hex } from '../arch/units.ts';
import { OPERAND_ID_RCX, TDX_MISSING_PAMT_PAGE_PAIR, TDX_OPERAND_BUSY, withOperand } from './arch.ts';

/**
 * The PAMT (Physical Address Metadata Table) of one TDX module, per host
 * ([tdx-module:src/common/memory_handlers/pamt_manager.c], [dpamt-v6-2026-05]):
 *
 * - Per TDMR a radix tree indexed by host physical address: a 1G entry per 1 GiB, a 2M entry per
 *   2 MiB, a 4K entry per 4 KiB, 16 bytes each (PAMT_ENTRY_SIZE). Each entry carries a
 *   host-priority shared/exclusive try-lock (acquire_sharex_lock_hp_sh/_ex with is_guest=false:
 *   only SEAMCALLs walk the PAMT, TDCALLs take no PAMT lock).
 * - 'static': PAMT_1G, PAMT_2M and PAMT_4K of every TDMR are allocated by the kernel at module
 *   initialisation (tdmr_set_up_pamt()).
 * - 'dynamic' (DPAMT): PAMT_1G and PAMT_2M static, PAMT_4K replaced by PAMT_PAGE_BITMAP (one bit
 *   per 4K, set on pages used as DPAMT pages); a 2M entry becomes a PT_PAMT node holding two 4K
 *   pages (page0: 4K entries 0-255, page1: 256-511) and a count of its 4K entries in use, added by
 *   TDH.PHYMEM.PAMT.ADD and removed by TDH.PHYMEM.PAMT.REMOVE.
 *
 * What is kept: per 4K whether its PAMT entry is in use (not PT_NDA: a TD page, a TD control
 * page, an S-EPT page), per 2M the node and its count, the pair, and the locks currently held (a
 * sparse map: only entries locked or carrying the host-priority bit are stored). The page types
 * beyond NDA / in use, the owner TD of each page and the 1G/2M leaf pages (2M and 1G private
 * mappings keep their PAMT at the 2M/1G entry and need no pair) are not kept.
 */

export const PAMT_MODES = ['static', 'dynamic'] as const;
export type PamtMode = (typeof PAMT_MODES)[number];

/** Bytes of one PAMT entry at any level (tdx-module PAMT_ENTRY_SIZE; "16 bytes per 4K", [dpamt-rfc-2025-05]). */
export const PAMT_ENTRY_SIZE = 16;
/** Pages of a DPAMT pair per 2M (v6: fixed at 2; 512 x 16 B = 8 KiB). */
export const PAMT_PAIR_PAGES = 2;

/** A reserved area of a TDMR (struct tdmr_reserved_area): 4K aligned offset and size. */
export interface ReservedArea {
  offset: number;
  size: number;
}

/**
 * A TD Memory Region: 1 GiB aligned, the unit the PAMT is laid out for (TDMR_ALIGNMENT SZ_1G);
 * with its reserved areas (holes and PAMTs inside it) when the kernel's initialisation built
 * it from a memory list (models/host/tdx_init.ts), none otherwise.
 */
export interface Tdmr {
  base: number;
  size: number;
  reserved?: readonly ReservedArea[];
}

/** Is `hpa` TDX memory of `tdmrs`: inside a TDMR and outside its reserved areas? */
export function tdmrsCover(tdmrs: readonly Tdmr[], hpa: number): boolean {
  for (const t of tdmrs) {
    if (hpa < t.base || hpa >= t.base + t.size) continue;
    for (const r of t.reserved ?? []) if (hpa >= t.base + r.offset && hpa < t.base + r.offset + r.size) return false;
    return true;
  }
  return false;
}

/** The TDMRs covering host RAM ranges: each range rounded out to 1 GiB, one TDMR per range. */
export function tdmrsFor(ranges: readonly { start: number; bytes: number }[]): Tdmr[] {
  return ranges.map(({ start, bytes }) => {
    const base = Math.floor(start / SIZE_1G) * SIZE_1G;
    const end = Math.ceil((start + bytes) / SIZE_1G) * SIZE_1G;
    return { base, size: end - base };
  });
}

/** ALIGN(x, PAGE_SIZE). */
function pageAlign(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * The kernel's tdmr_get_pamt_sz() for one TDMR and level: entries x 16 B, 4K aligned; and the
 * DPAMT page bitmap, one bit per 4K, 4K aligned (PAMT_PAGE_BITMAP).
 */
export function tdmrPamtBytes(tdmr: Tdmr): { pamt1g: number; pamt2m: number; pamt4k: number; bitmap: number } {
  return {
    pamt1g: pageAlign((tdmr.size / SIZE_1G) * PAMT_ENTRY_SIZE),
    pamt2m: pageAlign((tdmr.size / SIZE_2M) * PAMT_ENTRY_SIZE),
    pamt4k: pageAlign((tdmr.size / PAGE_SIZE) * PAMT_ENTRY_SIZE),
    bitmap: pageAlign(tdmr.size / PAGE_SIZE / 8),
  };
}

/** PAMT memory the kernel reserves at module initialisation for `tdmrs` in `mode`. */
export function staticPamtBytes(tdmrs: readonly Tdmr[], mode: PamtMode): number {
  let bytes = 0;
  for (const t of tdmrs) {
    const b = tdmrPamtBytes(t);
    bytes += b.pamt1g + b.pamt2m + (mode === 'static' ? b.pamt4k : b.bitmap);
  }
  return bytes;
}

/** The 2M node of a PAMT 2M entry in dynamic mode. */
export const PT_NDA = 0;
export const PT_PAMT = 1;

/** A PAMT entry's lock, stored only while held or flagged. */
interface EntryLock {
  shared: number;
  exclusive: boolean;
  hostPriority: boolean;
}

const LEVEL_4K = 0;
const LEVEL_2M = 1;
const LEVEL_1G = 2;
const LEVEL_STRIDE = 2 ** 40;

/** The locks one pamt_walk() took, released by pamt_unwalk() in reverse order. */
export interface PamtWalk {
  readonly hpa: number;
  /** Lock keys and modes, outermost first. */
  readonly keys: number[];
  readonly modes: LockMode[];
}

/** What the PAMT has seen, for metrics. */
export interface PamtCounters {
  walks: number;
  busy: number;
  missingPair: number;
  pairsAdded: number;
  pairsRemoved: number;
  pairsPeak: number;
}

export class Pamt {
  readonly tdmrs: readonly Tdmr[];
  /** The end of the highest TDMR: the PAMT covers [0, end). */
  readonly end: number;
  /** Per 2M: PT_NDA or PT_PAMT (dynamic); every 2M is a node in static mode (PAMT_4K exists). */
  private readonly node: Uint8Array;
  /** Per 2M: 4K entries not PT_NDA (pamt_inc/dec_nl_page_count in dynamic mode; kept in both). */
  readonly count: Uint16Array;
  /** Per 2M: the pair's page0 and page1 host page numbers (-1 none). */
  private readonly pair: Float64Array;
  /** Per 4K: its PAMT entry is in use (a TD page). */
  private readonly used: Uint32Array;
  /** PAMT_PAGE_BITMAP: pages used as DPAMT pages. */
  private readonly pamtPages: Uint32Array;
  private readonly locks = new Map<number, EntryLock>();
  pairs = 0;
  usedPages = 0;
  readonly counters: PamtCounters = { walks: 0, busy: 0, missingPair: 0, pairsAdded: 0, pairsRemoved: 0, pairsPeak: 0 };

  constructor(
    readonly mode: PamtMode,
    tdmrs: readonly Tdmr[],
  ) {
    assert(tdmrs.length > 0, 'the PAMT needs at least one TDMR', tdmrs);
    for (const t of tdmrs) assert(t.base % SIZE_1G === 0 && t.size > 0 && t.size % SIZE_1G === 0, 'a TDMR is 1 GiB aligned', t);
    this.tdmrs = tdmrs;
    this.end = Math.max(...tdmrs.map((t) => t.base + t.size));
    const regions = this.end / SIZE_2M;
    this.node = new Uint8Array(regions).fill(mode === 'static' ? PT_PAMT : PT_NDA);
    this.count = new Uint16Array(regions);
    this.pair = new Float64Array(2 * regions).fill(-1);
    this.used = new Uint32Array(Math.ceil((regions * PAGES_PER_2M) / 32));
    this.pamtPages = new Uint32Array(mode === 'dynamic' ? this.used.length : 0);
  }

  /** Is `hpa` TDX memory: in a TDMR, outside its reserved areas (tdmrsCover). */
  covers(hpa: number): boolean {
    return tdmrsCover(this.tdmrs, hpa);
  }

  /** Memory reserved at module initialisation (static PAMT levels, or PAMT_1G/2M + bitmap). */
  get staticBytes(): number {
    return staticPamtBytes(this.tdmrs, this.mode);
  }

  /** DPAMT pair memory in use now. */
  get dynamicBytes(): number {
    return this.pairs * PAMT_PAIR_PAGES * PAGE_SIZE;
  }

  // ---- pamt_walk / pamt_unwalk -------------------------------------------------------------

  /**
   * pamt_walk(hpa, leaf_size=4K, leaf_lock): shared on the 1G and 2M entries, `leafMode` on the
   * 4K entry. Returns the walk, or TDX_OPERAND_BUSY (a lock refused; the host-priority bit is
   * set on it) or TDX_MISSING_PAMT_PAGE_PAIR (dynamic: the 2M entry has no PT_PAMT node), with
   * nothing held.
   */
  walk4k(hpa: number, leafMode: LockMode): PamtWalk | bigint {
    this.checkHpa(hpa);
    this.counters.walks++;
    const r = Math.floor(hpa / SIZE_2M);
    const w: PamtWalk = { hpa, keys: [], modes: [] };
    if (!this.lock(w, LEVEL_1G, Math.floor(hpa / SIZE_1G), 'shared')) return this.busy(w);
    if (!this.lock(w, LEVEL_2M, r, 'shared')) return this.busy(w);
    if (this.node[r] !== PT_PAMT) {
      this.unwalk(w);
      this.counters.missingPair++;
      return TDX_MISSING_PAMT_PAGE_PAIR;
    }
    if (!this.lock(w, LEVEL_4K, hpa / PAGE_SIZE, leafMode)) return this.busy(w);
    return w;
  }

  /** pamt_walk() to the 2M entry itself, locked `mode` (TDH.PHYMEM.PAMT.ADD/REMOVE: exclusive). */
  walk2m(hpa: number, mode: LockMode): PamtWalk | bigint {
    this.checkHpa(hpa);
    this.counters.walks++;
    const w: PamtWalk = { hpa, keys: [], modes: [] };
    if (!this.lock(w, LEVEL_1G, Math.floor(hpa / SIZE_1G), 'shared')) return this.busy(w);
    if (!this.lock(w, LEVEL_2M, Math.floor(hpa / SIZE_2M), mode)) return this.busy(w);
    return w;
  }

  /** pamt_unwalk(): releases the walk's locks, innermost first. */
  unwalk(w: PamtWalk): void {
    for (let i = w.keys.length - 1; i >= 0; i--) this.unlock(w.keys[i]!, w.modes[i]!);
    w.keys.length = 0;
    w.modes.length = 0;
  }

  private busy(w: PamtWalk): bigint {
    this.unwalk(w);
    this.counters.busy++;
    return withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RCX);
  }

  private lock(w: PamtWalk, level: number, index: number, mode: LockMode): boolean {
    const key = level * LEVEL_STRIDE + index;
    let l = this.locks.get(key);
    if (l === undefined) {
      l = { shared: 0, exclusive: false, hostPriority: false };
      this.locks.set(key, l);
    }
    const free = mode === 'exclusive' ? !l.exclusive && l.shared === 0 : !l.exclusive;
    if (!free) {
      // Host side refused: the host-priority bit makes later guest-side acquires back off.
      l.hostPriority = true;
      return false;
    }
    l.hostPriority = false;
    if (mode === 'exclusive') l.exclusive = true;
    else l.shared++;
    w.keys.push(key);
    w.modes.push(mode);
    return true;
  }

  private unlock(key: number, mode: LockMode): void {
    const l = this.locks.get(key);
    if (l === undefined) return assert(false, 'PAMT entry unlocked while not locked', key) as never;
    if (mode === 'exclusive') {
      assert(l.exclusive, 'PAMT entry released exclusive while not held exclusive', key);
      l.exclusive = false;
    } else {
      assert(l.shared > 0, 'PAMT entry released shared while not held shared', key);
      l.shared--;
    }
    if (!l.exclusive && l.shared === 0 && !l.hostPriority) this.locks.delete(key);
  }

  /** PAMT entry locks held now (0 at the end of a run). */
  get heldLocks(): number {
    let n = 0;
    for (const l of this.locks.values()) if (l.exclusive || l.shared > 0) n++;
    return n;
  }

  /** Is the 2M entry of `hpa` held exclusive (a PAMT.ADD/REMOVE in flight)? */
  exclusiveHeld2m(hpa: number): boolean {
    const l = this.locks.get(LEVEL_2M * LEVEL_STRIDE + Math.floor(hpa / SIZE_2M));
    return l !== undefined && l.exclusive;
  }

  // ---- State the leaves commit --------------------------------------------------------------

  hasPair(hpa: number): boolean {
    return this.node[Math.floor(hpa / SIZE_2M)] === PT_PAMT;
  }

  /** Is the 4K entry of `hpa` in use (not PT_NDA)? */
  inUse(hpa: number): boolean {
    const p = hpa / PAGE_SIZE;
    return (this.used[p >>> 5]! & (1 << (p & 31))) !== 0;
  }

  isPamtPage(hpa: number): boolean {
    if (this.mode !== 'dynamic') return false;
    const p = hpa / PAGE_SIZE;
    return (this.pamtPages[p >>> 5]! & (1 << (p & 31))) !== 0;
  }

  /** A SEAMCALL's commit: the 4K entry of `hpa` becomes a TD page (pamt_inc_nl_page_count). */
  setInUse(hpa: number): void {
    const p = hpa / PAGE_SIZE;
    const r = Math.floor(hpa / SIZE_2M);
    if (this.node[r] !== PT_PAMT) assert(false, 'a TD page without PAMT backing', hex(hpa));
    if (this.inUse(hpa)) assert(false, 'a PAMT 4K entry set in use twice', hex(hpa));
    if (this.isPamtPage(hpa)) assert(false, 'a DPAMT page handed to a TD', hex(hpa));
    this.used[p >>> 5] = this.used[p >>> 5]! | (1 << (p & 31));
    this.count[r]!++;
    this.usedPages++;
  }

  /**
   * The commit of a SEAMCALL that takes a page back from a TD (TDH.MEM.PAGE.REMOVE,
   * TDH.PHYMEM.PAGE.RECLAIM): its 4K entry becomes PT_NDA (pamt_dec_nl_page_count). Returns the
   * module's "can remove" hint: the node's count reached 0 (dynamic).
   */
  clearInUse(hpa: number): boolean {
    const p = hpa / PAGE_SIZE;
    const r = Math.floor(hpa / SIZE_2M);
    if (!this.inUse(hpa)) assert(false, 'a PAMT 4K entry freed while PT_NDA', hex(hpa));
    this.used[p >>> 5] = this.used[p >>> 5]! & ~(1 << (p & 31));
    this.count[r]!--;
    this.usedPages--;
    return this.mode === 'dynamic' && this.count[r] === 0;
  }

  /** The aggregated accept step's commit of `n` 4K entries from `hpa` (one 2M range). */
  setRangeInUse(hpa: number, n: number): void {
    const r = Math.floor(hpa / SIZE_2M);
    assert(r === Math.floor((hpa + (n - 1) * PAGE_SIZE) / SIZE_2M), 'a PAMT range commit stays in one 2M range', { hpa: hex(hpa), n });
    if (this.node[r] !== PT_PAMT) assert(false, 'a TD page without PAMT backing', hex(hpa));
    // Word by word (32 entries at a time): the same checks and commits as setInUse() per page.
    const first = hpa / PAGE_SIZE;
    const end = first + n;
    for (let p = first; p < end; ) {
      const w = p >>> 5;
      const hi = Math.min(end, (w + 1) << 5);
      const bits = hi - p === 32 ? 0xffffffff | 0 : ((1 << (hi - p)) - 1) << (p & 31);
      if ((this.used[w]! & bits) !== 0) assert(false, 'a PAMT 4K entry set in use twice', hex(hpa));
      if (this.mode === 'dynamic' && (this.pamtPages[w]! & bits) !== 0) assert(false, 'a DPAMT page handed to a TD', hex(hpa));
      this.used[w] = this.used[w]! | bits;
      p = hi;
    }
    this.count[r]! += n;
    this.usedPages += n;
  }

  /** TDH.PHYMEM.PAMT.ADD's commit: set the pair's bitmap bits, make the 2M entry a PT_PAMT node. */
  commitPairAdd(hpa2m: number, page0: number, page1: number): void {
    const r = Math.floor(hpa2m / SIZE_2M);
    assert(this.mode === 'dynamic' && this.node[r] === PT_NDA, 'PAMT.ADD commit on a 2M entry that is not PT_NDA', hex(hpa2m));
    for (const hpa of [page0, page1]) {
      const p = hpa / PAGE_SIZE;
      this.pamtPages[p >>> 5] = this.pamtPages[p >>> 5]! | (1 << (p & 31));
    }
    this.node[r] = PT_PAMT;
    this.pair[2 * r] = page0;
    this.pair[2 * r + 1] = page1;
    this.pairs++;
    this.counters.pairsAdded++;
    this.counters.pairsPeak = Math.max(this.counters.pairsPeak, this.pairs);
  }

  /** TDH.PHYMEM.PAMT.REMOVE's commit: the node becomes PT_NDA; returns the pair's pages. */
  commitPairRemove(hpa2m: number): [number, number] {
    const r = Math.floor(hpa2m / SIZE_2M);
    assert(this.node[r] === PT_PAMT && this.count[r] === 0, 'PAMT.REMOVE commit on a node in use', hex(hpa2m));
    const pages: [number, number] = [this.pair[2 * r]!, this.pair[2 * r + 1]!];
    for (const hpa of pages) {
      const p = hpa / PAGE_SIZE;
      this.pamtPages[p >>> 5] = this.pamtPages[p >>> 5]! & ~(1 << (p & 31));
    }
    this.node[r] = PT_NDA;
    this.pair[2 * r] = -1;
    this.pair[2 * r + 1] = -1;
    this.pairs--;
    this.counters.pairsRemoved++;
    return pages;
  }

  /** 4K entries in use under the 2M entry of `hpa` (the node's count). */
  countOf(hpa: number): number {
    return this.count[Math.floor(hpa / SIZE_2M)]!;
  }

  private checkHpa(hpa: number): void {
    if (!(hpa >= 0 && hpa < this.end && hpa % PAGE_SIZE === 0)) assert(false, 'an HPA outside every TDMR or not 4K aligned', hex(hpa));
  }

  /**
   * The PAMT balances: every node's count equals its 4K entries in use; no TD page under a 2M
   * entry without a node (dynamic); pairs and the page bitmap agree; no TD page is a PAMT page;
   * no entry lock held.
   */
  checkInvariants(): void {
    let pairs = 0;
    let used = 0;
    const regions = this.node.length;
    for (let r = 0; r < regions; r++) {
      let n = 0;
      for (let w = r * 16; w < r * 16 + 16; w++) n += popcount(this.used[w]!);
      used += n;
      if (n !== this.count[r]) assert(false, 'a 2M PAMT node\'s count and its 4K entries in use disagree', { hpa: hex(r * SIZE_2M), count: this.count[r], used: n });
      if (n > 0 && this.node[r] !== PT_PAMT) assert(false, 'TD pages under a 2M PAMT entry without a page pair', { hpa: hex(r * SIZE_2M), used: n });
      if (this.mode === 'dynamic' && this.node[r] === PT_PAMT) pairs++;
    }
    assert(used === this.usedPages, 'PAMT 4K entries in use and their count disagree', { used, counted: this.usedPages });
    if (this.mode === 'dynamic') {
      assert(pairs === this.pairs, 'PAMT nodes and the pair count disagree', { nodes: pairs, pairs: this.pairs });
      let bits = 0;
      for (let w = 0; w < this.pamtPages.length; w++) {
        bits += popcount(this.pamtPages[w]!);
        if ((this.pamtPages[w]! & this.used[w]!) !== 0) assert(false, 'a DPAMT page is also a TD page', { page: hex(w * 32 * PAGE_SIZE) });
      }
      assert(bits === PAMT_PAIR_PAGES * this.pairs, 'PAMT_PAGE_BITMAP and the pairs disagree', { bits, pairs: this.pairs });
    }
    assert(this.heldLocks === 0, 'PAMT entry locks still held at the end of the run', this.heldLocks);
  }
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
