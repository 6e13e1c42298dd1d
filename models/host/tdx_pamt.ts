import { Spinlock, countMetric, measureMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGE_SIZE, SIZE_2M, hex } from '../arch/units.ts';
import { TDX_HPA_RANGE_NOT_FREE, TDX_MISSING_PAMT_PAGE_PAIR, TDX_NO_PAMT_PAGE_PAIR, TDX_PAMT_PAGE_NOT_EMPTY, TDX_SUCCESS, statusClass, tdxOperandBusy, tdxStatusName } from '../tdx/arch.ts';
import { tdh_phymem_pamt_add, tdh_phymem_pamt_add_now } from '../tdx/leaves/tdh_phymem_pamt_add.ts';
import { tdh_phymem_pamt_remove } from '../tdx/leaves/tdh_phymem_pamt_remove.ts';
import type { TdxModule } from '../tdx/tdx_module.ts';
import type { HostMemory, OwnerId } from './host_memory.ts';

/**
 * How the host kernel manages the TDX module's PAMT ([dpamt-v6-2026-05], [dpamt-v2-2025-06]):
 * - 'static': PAMT_4K allocated for all TDMR memory at module initialisation (upstream today);
 * - 'refcount': Dynamic PAMT as the v6 series does it (arch/x86/virt/vmx/tdx/tdx.c):
 *   pamt_refcounts[] per 2M of host physical address space, tdx_pamt_get()/tdx_pamt_put(), a
 *   global pamt_lock spinlock around TDH.PHYMEM.PAMT.ADD/REMOVE;
 * - 'lazy': the abandoned pre-RFC scheme: PAMT.ADD only after a SEAMCALL failed with
 *   TDX_MISSING_PAMT_PAGE_PAIR, no refcounts, no lock; races answer BUSY or
 *   TDX_HPA_RANGE_NOT_FREE and are counted;
 * - 'hashed': refcount with PAMT_HASHED_LOCKS spinlocks picked by 2M range instead of the one
 *   pamt_lock (the rejected alternative, "deferred until contention is shown", [dpamt-v2-2025-06]).
 */
export const PAMT_POLICIES = ['static', 'refcount', 'lazy', 'hashed'] as const;
export type PamtPolicy = (typeof PAMT_POLICIES)[number];

/**
 * Pages per-vCPU tdx_pamt_cache is topped up to before the fault path takes mmu_lock:
 * 2 pages x PT64_ROOT_MAX_LEVEL (5) ([dpamt-v6-2026-05], patch 09/11).
 */
export const PAMT_CACHE_PAGES = 2 * 5;

/** policy=hashed: spinlocks in the array. ESTIMATE [estimate:pamt-hashed-locks]. */
export const PAMT_HASHED_LOCKS = 64;

/** Bytes of one kernel refcount (atomic_t) per 2 MiB. */
export const PAMT_REFCOUNT_BYTES = 4;

/** alloc_page() for a PAMT page pair failed: the SEAMCALL's caller gets -ENOMEM and the VM stops. */
export class PamtOutOfMemory extends Error {
  override name = 'PamtOutOfMemory';
}

/** struct tdx_pamt_cache: pages set aside (here: per vCPU) for the pairs of the fault path. */
export class TdxPamtCache {
  readonly pages: number[] = [];
}

/** What TdxPamtKernel.metrics() writes (`host.tdx_pamt`). */
export const TDX_PAMT_KERNEL_METRICS: MetricSpecs = {
  refcount_bytes: countMetric('bytes', 'policy=refcount: pamt_refcounts[], 4 B per 2 MiB from 0 to max_pfn (v6: one vmalloc)'),
  pamt_pages_bytes: countMetric('bytes', 'host memory of kind pamt at the end: pairs in the module and pages in vCPU caches'),
  cached_pages: countMetric('pages', 'pages left in the per-vCPU tdx_pamt_caches at the end'),
  gets: countMetric('calls', 'tdx_pamt_get() (one per TD page, S-EPT page or control page; an aggregated step counts its pages)'),
  gets_fast: countMetric('calls', 'tdx_pamt_get() that took the atomic_inc_not_zero() fast path'),
  gets_slow: countMetric('calls', 'tdx_pamt_get() slow paths (refcount 0, pamt_lock taken)'),
  gets_recheck: countMetric('calls', 'slow paths that found the refcount raised by another get under pamt_lock (pair freed unused)'),
  puts: countMetric('calls', 'tdx_pamt_put()'),
  puts_to_zero: countMetric('calls', 'tdx_pamt_put() 1->0 transitions (pamt_lock, PAMT.REMOVE)'),
  remove_failed: countMetric('calls', 'PAMT.REMOVE failures on put (WARN; refcount back to 1; pair leaked)'),
  leaked_pairs: countMetric('pairs', 'pairs the kernel lost track of (remove failures, lazy races)'),
  cache_empty: countMetric('calls', 'pair takes in the fault path that found the vCPU cache short and fell back to alloc_page'),
  'pamt_lock.acquisitions': countMetric('acquisitions', 'global pamt_lock acquisitions (hashed: all locks of the array)'),
  'pamt_lock.contended': countMetric('acquisitions', 'pamt_lock acquisitions that spun'),
  'pamt_lock.wait_ns': measureMetric('ns', 'total pamt_lock spin time'),
  'pamt_lock.wait_max_ns': measureMetric('ns', 'the longest pamt_lock spin'),
  lazy_adds: countMetric('SEAMCALLs', 'policy=lazy: PAMT.ADD after a TDX_MISSING_PAMT_PAGE_PAIR'),
  lazy_range_not_free: countMetric('answers', 'policy=lazy: PAMT.ADD answered TDX_HPA_RANGE_NOT_FREE (another CPU added the pair first; pages freed)'),
  lazy_busy_retries: countMetric('answers', 'policy=lazy: PAMT.ADD answered TDX_OPERAND_BUSY (the 2M entry held by a racing SEAMCALL) and was retried'),
  // Runs that stop TDs only (pamt-churn):
  teardowns: countMetric('TDs', 'TD teardowns the kernel ran (PAMT puts of their pages)'),
  lazy_hints: countMetric('hints', 'policy=lazy: "can remove" hints from TDH.PHYMEM.PAGE.RECLAIM (a 2M node\'s count reached 0)'),
  lazy_removes: countMetric('SEAMCALLs', 'policy=lazy: PAMT.REMOVE on a hint that took the pair back'),
  lazy_remove_not_empty: countMetric('answers', 'policy=lazy: PAMT.REMOVE on a hint answered TDX_PAMT_PAGE_NOT_EMPTY (the range was reused before the REMOVE: the pair stays, in use)'),
  lazy_remove_no_pair: countMetric('answers', 'policy=lazy: PAMT.REMOVE on a hint answered TDX_NO_PAMT_PAGE_PAIR (another REMOVE took it first)'),
  lazy_remove_busy: countMetric('answers', 'policy=lazy: PAMT.REMOVE on a hint answered TDX_OPERAND_BUSY (a SEAMCALL of a new TD walked the range) and was retried'),
  lazy_pair_lost: countMetric('races', 'policy=lazy: a hint\'s PAMT.REMOVE took the pair of a range a new TD was adding pages to (its AUG met TDX_MISSING_PAMT_PAGE_PAIR and the pair was added again)'),
  idle_pairs: countMetric('pairs', 'pairs at the end of the run under which no page is in use: leaks under lazy (a lost hint) or refcount\'s WARN path; 0 is the balance'),
};

/**
 * The host kernel's side of the PAMT (arch/x86/virt/vmx/tdx/tdx.c with the DPAMT series), one
 * per host: the policy, the per-2M refcounts and the global pamt_lock, and where PAMT pages come
 * from (host memory of kind 'pamt', owner `tdx-pamt`). KVM (models/kvm/tdx.ts) calls it around
 * every SEAMCALL that hands the module a 4K page.
 */
export class TdxPamtKernel {
  /** pamt_refcounts[]: per 2M of host physical address space up to max_pfn (refcount only). */
  readonly refcounts: Int32Array;
  /** The global pamt_lock (refcount), or the hashed array (hashed); empty otherwise. */
  readonly pamtLocks: Spinlock[];
  readonly owner: OwnerId;
  readonly counters = {
    gets: 0, getsFast: 0, getsSlow: 0, getsRecheck: 0, puts: 0, putsToZero: 0, removeFailed: 0, leakedPairs: 0,
    cacheEmpty: 0, lazyAdds: 0, lazyRangeNotFree: 0, lazyBusyRetries: 0,
    teardowns: 0, lazyHints: 0, lazyRemoves: 0, lazyRemoveNotEmpty: 0, lazyRemoveNoPair: 0, lazyRemoveBusy: 0, lazyPairLost: 0,
  };
  private readonly caches: TdxPamtCache[] = [];

  constructor(
    readonly sim: Sim,
    readonly policy: PamtPolicy,
    readonly module: TdxModule,
    readonly memory: HostMemory,
    /** max_pfn in bytes: the end of the highest RAM range. */
    readonly maxPaBytes: number,
  ) {
    assert((policy === 'static') === (module.pamt.mode === 'static'), 'the PAMT policy and the module\'s PAMT mode disagree', { policy, mode: module.pamt.mode });
    this.refcounts = new Int32Array(this.refcounted ? Math.ceil(maxPaBytes / SIZE_2M) : 0);
    this.pamtLocks = policy === 'refcount' ? [new Spinlock(sim, 'pamt_lock')]
      : policy === 'hashed' ? Array.from({ length: PAMT_HASHED_LOCKS }, (_, i) => new Spinlock(sim, `pamt_lock/${i}`))
        : [];
    this.owner = policy === 'static' ? 0 : memory.registerOwner('tdx-pamt');
  }

  get dynamic(): boolean {
    return this.policy !== 'static';
  }

  /** Kernel refcounts per 2M (refcount, hashed). */
  get refcounted(): boolean {
    return this.policy === 'refcount' || this.policy === 'hashed';
  }

  /** The lock that orders PAMT.ADD/REMOVE of 2M range `r`. */
  private lockFor(r: number): Spinlock {
    return this.pamtLocks[this.pamtLocks.length === 1 ? 0 : r % this.pamtLocks.length]!;
  }

  /** A new per-vCPU cache (kept to count the pages left in caches). */
  newCache(): TdxPamtCache {
    const c = new TdxPamtCache();
    this.caches.push(c);
    return c;
  }

  /** mmu_topup_memory_caches() -> topup_external_cache(): fill `cache` to PAMT_CACHE_PAGES. */
  topup(cache: TdxPamtCache): void {
    if (!this.dynamic) return;
    while (cache.pages.length < PAMT_CACHE_PAGES) cache.pages.push(this.allocPage());
  }

  private allocPage(): number {
    const hpa = this.memory.allocPage(this.owner, 'pamt');
    if (hpa === null) throw new PamtOutOfMemory(`host out of memory: no 4K page for a PAMT page pair (host memory ${this.memory.totalBytes() / 2 ** 30} GiB, ${this.memory.usedBytes() / 2 ** 30} GiB in use)`);
    return hpa;
  }

  private freePage(hpa: number): void {
    this.memory.freePage(hpa, this.owner);
  }

  /** Two pages for a pair: from the cache (fault path), or alloc_page() (sleepable callers). */
  private takePair(cache: TdxPamtCache | null): [number, number] {
    if (cache !== null && cache.pages.length < 2) this.counters.cacheEmpty++;
    const take = () => (cache !== null && cache.pages.length > 0 ? cache.pages.pop()! : this.allocPage());
    return [take(), take()];
  }

  // ---- policy=refcount: tdx_pamt_get() / tdx_pamt_put() ------------------------------------

  /**
   * tdx_pamt_get(hpa) for `n` users of the 2M range of `hpa` (n > 1 only for an aggregated
   * step's AUGs). Fast path: atomic_inc_not_zero(). Slow path: a pair from `cache` (or
   * alloc_page), spin on pamt_lock, re-check, TDH.PHYMEM.PAMT.ADD, set the refcount. Returns
   * the PAMT.ADD status (TDX_SUCCESS on every path but a failed ADD).
   */
  *get(hpa: number, n: number, cache: TdxPamtCache | null): Proc<bigint> {
    if (!this.refcounted) return TDX_SUCCESS;
    assert(n >= 1, 'tdx_pamt_get() of no users', n);
    const r = this.region(hpa);
    this.counters.gets += n;
    if (this.refcounts[r]! > 0) {
      this.refcounts[r]! += n;
      this.counters.getsFast += n;
      return TDX_SUCCESS;
    }
    const sim = this.sim;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('tdx_pamt_get', { hpa: hex(hpa), users: n }, 0, 'kvm') : 0;
    this.counters.getsSlow++;
    const [page0, page1] = this.takePair(cache);
    const lock = this.lockFor(r);
    yield lock.acquire();
    let status = TDX_SUCCESS;
    if (this.refcounts[r]! > 0) {
      // Another get did 0->1 while this one spun: the pair is not needed.
      this.counters.getsRecheck++;
      this.refcounts[r]! += n;
      this.freePage(page0);
      this.freePage(page1);
    } else {
      status = yield* tdh_phymem_pamt_add(this.module, r * SIZE_2M, page0, page1, 0);
      if (status === TDX_SUCCESS) {
        this.refcounts[r] = n;
      } else {
        // The global lock orders every ADD and REMOVE of a range: any failure is a bug (WARN).
        assert(false, `tdx_pamt_get: TDH.PHYMEM.PAMT.ADD failed under pamt_lock: ${tdxStatusName(status)}`, hex(hpa));
      }
    }
    lock.release();
    if (traced) sim.opEnd(id, { status: hex(status) });
    return status;
  }

  /** tdx_pamt_get() of a sleepable caller with no simulated time (TD build: control pages). */
  getNow(hpa: number): void {
    if (!this.refcounted) return;
    const r = this.region(hpa);
    this.counters.gets++;
    if (this.refcounts[r]! > 0) {
      this.refcounts[r]!++;
      this.counters.getsFast++;
      return;
    }
    this.counters.getsSlow++;
    assert(this.lockFor(r).holder === null, 'an untimed tdx_pamt_get() while pamt_lock is held', hex(hpa));
    this.lockFor(r).stats.acquisitions++;
    const [page0, page1] = this.takePair(null);
    const status = tdh_phymem_pamt_add_now(this.module, r * SIZE_2M, page0, page1);
    assert(status === TDX_SUCCESS, `tdx_pamt_get: TDH.PHYMEM.PAMT.ADD failed: ${tdxStatusName(status)}`, hex(hpa));
    this.refcounts[r] = 1;
  }

  /**
   * tdx_pamt_put(hpa) for `n` users: atomic_dec_and_lock(), so only the 1->0 transition takes
   * pamt_lock and runs TDH.PHYMEM.PAMT.REMOVE; a failed REMOVE WARNs, sets the refcount back to
   * 1 and leaks the pair.
   */
  *put(hpa: number, n: number): Proc<void> {
    if (!this.refcounted) return;
    const r = this.region(hpa);
    this.counters.puts += n;
    const count = this.refcounts[r]!;
    assert(count >= n, 'tdx_pamt_put() below zero', { hpa: hex(hpa), count, n });
    if (count > n) {
      this.refcounts[r] = count - n;
      return;
    }
    const lock = this.lockFor(r);
    yield lock.acquire();
    this.refcounts[r] = 0;
    this.counters.putsToZero++;
    const { status, pages } = yield* tdh_phymem_pamt_remove(this.module, r * SIZE_2M, 0);
    if (status === TDX_SUCCESS) {
      this.freePage(pages![0]);
      this.freePage(pages![1]);
    } else {
      this.counters.removeFailed++;
      this.counters.leakedPairs++;
      this.refcounts[r] = 1;
    }
    lock.release();
  }

  // ---- policy=lazy ----------------------------------------------------------------------------

  /**
   * The lazy scheme's answer to RECLAIM's "can remove" hint for the 2M range of `hpa`:
   * TDH.PHYMEM.PAMT.REMOVE with no lock and no refcount. It runs after the reclaimed pages went
   * back to host memory (nothing holds the range for the kernel), so a new TD may have taken the
   * block meanwhile: TDX_PAMT_PAGE_NOT_EMPTY (its AUG found the pair: it stays, in use),
   * TDX_NO_PAMT_PAGE_PAIR (nothing to remove), TDX_OPERAND_BUSY (a racing SEAMCALL holds an
   * entry: retried). Each answer counted.
   */
  *lazyRemoveOnHint(hpa: number): Proc<void> {
    assert(this.policy === 'lazy', 'lazyRemoveOnHint() under another policy', this.policy);
    this.counters.lazyHints++;
    for (;;) {
      const { status, pages } = yield* tdh_phymem_pamt_remove(this.module, this.region(hpa) * SIZE_2M, 0);
      if (status === TDX_SUCCESS) {
        this.counters.lazyRemoves++;
        this.freePage(pages![0]);
        this.freePage(pages![1]);
        return;
      }
      if (tdxOperandBusy(status)) {
        this.counters.lazyRemoveBusy++;
        yield this.sim.stallFor(this.module.seamcallHalfNs);
        continue;
      }
      const c = statusClass(status);
      if (c === TDX_PAMT_PAGE_NOT_EMPTY) this.counters.lazyRemoveNotEmpty++;
      else if (c === TDX_NO_PAMT_PAGE_PAIR) this.counters.lazyRemoveNoPair++;
      else assert(false, `lazy PAMT.REMOVE failed: ${tdxStatusName(status)}`, hex(hpa));
      return;
    }
  }

  /** A TD teardown starts (counted; its puts and hints follow). */
  noteTeardown(): void {
    this.counters.teardowns++;
  }

  /** Pairs in the module under which no page is in use (leaks at the end of a run). */
  idlePairs(): number {
    const pamt = this.module.pamt;
    let n = 0;
    for (let r = 0; r * SIZE_2M < pamt.end; r++) if (pamt.hasPair(r * SIZE_2M) && pamt.countOf(r * SIZE_2M) === 0) n++;
    return n;
  }

  /**
   * The lazy scheme's answer to TDX_MISSING_PAMT_PAGE_PAIR for `hpa`: take a pair, PAMT.ADD,
   * no lock. TDX_HPA_RANGE_NOT_FREE (another CPU won the race) frees the pages and counts as
   * done; TDX_OPERAND_BUSY (a racing SEAMCALL holds the 2M entry) frees them and is returned for
   * the caller's retry loop.
   */
  *lazyAdd(hpa: number, cache: TdxPamtCache | null): Proc<bigint> {
    assert(this.policy === 'lazy', 'lazyAdd() under another policy', this.policy);
    const [page0, page1] = this.takePair(cache);
    const status = yield* tdh_phymem_pamt_add(this.module, this.region(hpa) * SIZE_2M, page0, page1, 0);
    if (status === TDX_SUCCESS) {
      this.counters.lazyAdds++;
      return status;
    }
    this.freePage(page0);
    this.freePage(page1);
    if (statusClass(status) === TDX_HPA_RANGE_NOT_FREE) {
      this.counters.lazyRangeNotFree++;
      return TDX_SUCCESS;
    }
    if (tdxOperandBusy(status)) {
      this.counters.lazyBusyRetries++;
      return status;
    }
    return assert(false, `lazy PAMT.ADD failed: ${tdxStatusName(status)}`, hex(hpa)) as never;
  }

  /** The lazy scheme at TD build: PAMT.ADD at once if the range has no pair (nothing races). */
  lazyAddNow(hpa: number): void {
    const [page0, page1] = this.takePair(null);
    const status = tdh_phymem_pamt_add_now(this.module, this.region(hpa) * SIZE_2M, page0, page1);
    assert(status === TDX_SUCCESS, `lazy PAMT.ADD at build failed: ${tdxStatusName(status)}`, hex(hpa));
    this.counters.lazyAdds++;
  }

  /** Is `status` the module asking for a pair (lazy's trigger)? */
  static missingPair(status: bigint): boolean {
    return statusClass(status) === TDX_MISSING_PAMT_PAGE_PAIR;
  }

  private region(hpa: number): number {
    if (!(hpa >= 0 && hpa < this.maxPaBytes && hpa % PAGE_SIZE === 0)) assert(false, 'a PAMT refcount for an HPA beyond max_pfn', hex(hpa));
    return Math.floor(hpa / SIZE_2M);
  }

  /** Pages waiting in vCPU caches. */
  get cachedPages(): number {
    let n = 0;
    for (const c of this.caches) n += c.pages.length;
    return n;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.refcount_bytes`] = this.refcounts.length * PAMT_REFCOUNT_BYTES;
    out[`${prefix}.pamt_pages_bytes`] = this.memory.usedBytesBy(this.owner);
    out[`${prefix}.cached_pages`] = this.cachedPages;
    out[`${prefix}.gets`] = c.gets;
    out[`${prefix}.gets_fast`] = c.getsFast;
    out[`${prefix}.gets_slow`] = c.getsSlow;
    out[`${prefix}.gets_recheck`] = c.getsRecheck;
    out[`${prefix}.puts`] = c.puts;
    out[`${prefix}.puts_to_zero`] = c.putsToZero;
    out[`${prefix}.remove_failed`] = c.removeFailed;
    out[`${prefix}.leaked_pairs`] = c.leakedPairs;
    out[`${prefix}.cache_empty`] = c.cacheEmpty;
    // Over the one pamt_lock, or every lock of the hashed array.
    let acquisitions = 0;
    let contended = 0;
    let waitNs = 0;
    let waitMax = 0;
    for (const l of this.pamtLocks) {
      acquisitions += l.stats.acquisitions;
      contended += l.stats.contended;
      waitNs += l.stats.wait.sum;
      if (l.stats.contended > 0) waitMax = Math.max(waitMax, l.stats.wait.max);
    }
    out[`${prefix}.pamt_lock.acquisitions`] = acquisitions;
    out[`${prefix}.pamt_lock.contended`] = contended;
    out[`${prefix}.pamt_lock.wait_ns`] = waitNs;
    out[`${prefix}.pamt_lock.wait_max_ns`] = waitMax;
    out[`${prefix}.lazy_adds`] = c.lazyAdds;
    out[`${prefix}.lazy_range_not_free`] = c.lazyRangeNotFree;
    out[`${prefix}.lazy_busy_retries`] = c.lazyBusyRetries;
    if (c.teardowns > 0) {
      out[`${prefix}.teardowns`] = c.teardowns;
      out[`${prefix}.lazy_hints`] = c.lazyHints;
      out[`${prefix}.lazy_removes`] = c.lazyRemoves;
      out[`${prefix}.lazy_remove_not_empty`] = c.lazyRemoveNotEmpty;
      out[`${prefix}.lazy_remove_no_pair`] = c.lazyRemoveNoPair;
      out[`${prefix}.lazy_remove_busy`] = c.lazyRemoveBusy;
      out[`${prefix}.lazy_pair_lost`] = c.lazyPairLost;
      out[`${prefix}.idle_pairs`] = this.idlePairs();
    }
  }

  /**
   * The kernel's refcounts against the module (refcount): every 2M range with a non-zero
   * refcount has a pair and its refcount equals the PAMT 4K entries in use under it (each user is
   * one TD page, S-EPT page or control page); no refcount below zero; a pair without users is a
   * leak (counted, not asserted: the WARN path makes them). Host memory of kind 'pamt' is the
   * pairs plus the cached pages plus leaks.
   */
  checkInvariants(): void {
    const pamt = this.module.pamt;
    if (this.refcounted) {
      for (const l of this.pamtLocks) assert(l.holder === null, 'pamt_lock held at the end of the run', l.describe());
      for (let r = 0; r < this.refcounts.length; r++) {
        const count = this.refcounts[r]!;
        if (count < 0) assert(false, 'a PAMT refcount below zero', { hpa: hex(r * SIZE_2M), count });
        const users = r * SIZE_2M < pamt.end ? pamt.countOf(r * SIZE_2M) : 0;
        if (count !== users) assert(false, 'a PAMT refcount is not the users of its 2M range', { hpa: hex(r * SIZE_2M), count, users });
        if (count > 0 && !pamt.hasPair(r * SIZE_2M)) assert(false, 'a PAMT refcount without a page pair', { hpa: hex(r * SIZE_2M), count });
      }
    }
    if (this.dynamic) {
      const pairBytes = pamt.dynamicBytes;
      const cached = this.cachedPages * PAGE_SIZE;
      // The kernel's own PAMT pages (the module's static part at initialisation is the host's).
      assert(this.memory.usedBytesBy(this.owner) === pairBytes + cached, 'host pamt pages are not the pairs plus the cached pages', { pamt: this.memory.usedBytesBy(this.owner), pairBytes, cached });
    }
  }
}
