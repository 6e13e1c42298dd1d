import { CacheLines, TryLock, countMetric, prefixedMetrics, type Bandwidth, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { CACHE_LINE_METRICS, cacheLineMetrics } from '../arch/cache_lines.ts';
import { assert } from '../../sim/assert.ts';
import { writeMemory } from '../arch/write_rate.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import { tdxStatusName } from './arch.ts';
import { Region, SecureEpt, type SeptPageKind } from './secure_ept.ts';
import { SeptEntryLocks } from './sept_entry_locks.ts';
import type { TdxModule } from './tdx_module.ts';

/**
 * TDR.LIFECYCLE_STATE from the kernel's view of teardown: keys configured while the TD runs,
 * TD_BLOCKED after TDH.MNG.VPFLUSHDONE, TD_TEARDOWN after TDH.MNG.KEY.FREEID (only then may
 * TDH.PHYMEM.PAGE.RECLAIM take its pages back), 'reclaimed' once its TDR is reclaimed.
 */
export type TdLifecycle = 'keys_configured' | 'blocked' | 'teardown' | 'reclaimed';

/**
 * TDCS.OP_STATE: 'initialized' after TDH.MNG.INIT, when TDH.MEM.PAGE.ADD and TDH.MR.EXTEND
 * build the initial image; 'runnable' after TDH.MR.FINALIZE (the TD may enter). A TD whose
 * build is not simulated (vm_setup=false) is runnable from its creation.
 */
export type TdOpState = 'initialized' | 'runnable';

/** What a TD's leaves have done, for metrics and the end-of-run balance. */
export interface TdCounters {
  augs4k: number;
  augs2m: number;
  septAdds: number;
  tdcalls: number;
  accepted4k: number;
  accepted2m: number;
  sizeMismatch: number;
  operandInvalid: number;
  alreadyAccepted: number;
  bytesZeroed: number;
}

/** What Td.metrics() writes, under the VM's prefix (`vm1.tdx`). */
/**
 * The TD-wide words every SEAMCALL of an accept touches with atomics, one cache line each
 * ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c], [tdx-module:src/td_transitions/tdh_vp_enter.c]):
 * the TDR page's PAMT entry (check_lock_and_map_explicit_tdr(), shared), TDCS op_state_lock
 * (shared, host priority), secure_ept_lock (sharex), TDR.CHLDCNT (_lock_xadd_64b() after each AUG
 * and SEPT.ADD) and the TD epoch lock (TDH.VP.ENTER, shared). A shared lock is still an atomic on
 * its word: every acquisition and release writes the line.
 */
export const TD_WORDS = ['tdr_pamt', 'op_state', 'secure_ept_lock', 'chldcnt', 'epoch'] as const;
export const TDR_PAMT = 0;
export const OP_STATE = 1;
export const SECURE_EPT = 2;
export const CHLDCNT = 3;
export const EPOCH = 4;

export const TD_METRICS: MetricSpecs = {
  ...prefixedMetrics('lines', CACHE_LINE_METRICS),
  tdcalls: countMetric('TDCALLs', 'TDG.MEM.PAGE.ACCEPT calls the module completed'),
  'accept.4k': countMetric('accepts', 'successful 4K TDG.MEM.PAGE.ACCEPT'),
  'accept.2m': countMetric('accepts', 'successful 2M TDG.MEM.PAGE.ACCEPT'),
  'accept.size_mismatch': countMetric('answers', 'accepts answered TDX_PAGE_SIZE_MISMATCH'),
  'accept.operand_invalid': countMetric('answers', '1G accepts answered TDX_OPERAND_INVALID'),
  'aug.4k': countMetric('SEAMCALLs', 'successful TDH.MEM.PAGE.AUG at 4K'),
  'aug.2m': countMetric('SEAMCALLs', 'successful TDH.MEM.PAGE.AUG at 2M'),
  sept_add: countMetric('SEAMCALLs', 'successful TDH.MEM.SEPT.ADD'),
  'busy.*': countMetric('answers', 'TDX_OPERAND_BUSY answers by status name, and in total'),
  'secure_ept_lock.acquisitions': countMetric('acquisitions', 'secure_ept_lock acquisitions'),
  'secure_ept_lock.busy': countMetric('answers', 'secure_ept_lock acquisitions refused'),
  bytes_zeroed: countMetric('bytes', 'bytes the module zeroed with the TD key (accepted pages, new S-EPT pages)'),
  'remove.*': countMetric('SEAMCALLs', 'private page removal: TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE, TDH.PHYMEM.PAGE.WBINVD'),
};

/**
 * One TD inside the TDX module (its TDR/TDCS state), keyed by its HKID: the Secure EPT, the
 * TDCS secure_ept_lock and the per-entry S-EPT locks, and what its leaves did. The module's
 * per-host state (costs, version, the TDs) is TdxModule; the leaves (models/tdx/leaves/) change a
 * TD only through these methods.
 */
export class Td {
  readonly sept: SecureEpt;
  /**
   * tdcs.executions_ctl_fields.secure_ept_lock: a sharex try-lock taken with
   * acquire_sharex_lock() (lock_sept_check_and_walk_private_gpa()), not the *_hp_* variants, so
   * a refused acquire sets no host-priority bit. Named after its VM (`vm1/secure_ept_lock`).
   */
  readonly secureEptLock: TryLock;
  readonly entryLocks: SeptEntryLocks;
  readonly counters: TdCounters = {
    augs4k: 0, augs2m: 0, septAdds: 0, tdcalls: 0, accepted4k: 0, accepted2m: 0,
    sizeMismatch: 0, operandInvalid: 0, alreadyAccepted: 0, bytesZeroed: 0,
  };
  /** BUSY answers by status name, e.g. TDX_OPERAND_BUSY. */
  readonly busy = new Map<string, number>();
  /**
   * Private page removal (TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE,
   * TDH.PHYMEM.PAGE.WBINVD; models/tdx/leaves/): the TD epoch TRACK advances, the epoch whose
   * vCPUs have all left the guest since (KVM's kick), each blocked 4K leaf's BEPOCH, and counts.
   */
  readonly removal = { epoch: 0, drainedEpoch: 0, blocks: 0, tracks: 0, removed4k: 0, removedAccepted4k: 0, wbinvd: 0 };
  readonly blockedEpoch = new Map<number, number>();
  /** The op id of the last TDG.MEM.PAGE.ACCEPT span (0 untraced): the exit it causes links to it. */
  lastAcceptOp = 0;
  /** TDR.LIFECYCLE_STATE (teardown, models/tdx/leaves/tdh_mng_vpflushdone.ts and after). */
  lifecycle: TdLifecycle = 'keys_configured';
  /** TDCS.OP_STATE (the build: models/kvm/tdx_td_build.ts). */
  opState: TdOpState = 'runnable';
  /**
   * The initial image: pages TDH.MEM.PAGE.ADD mapped (TD children, not guest RAM: they sit in
   * the firmware's memslot), their host addresses (reclaimed at teardown), and the 256-byte
   * chunks TDH.MR.EXTEND measured into MRTD.
   */
  readonly image = {
    chunksMeasured: 0,
    hpas: [] as number[],
    get pagesAdded(): number {
      return this.hpas.length;
    },
  };
  /** Control pages besides the TDR added by TDH.MNG.ADDCX, TDH.VP.CREATE, TDH.VP.ADDCX. */
  controlChildren = 0;
  /** TD pages taken back by TDH.PHYMEM.PAGE.RECLAIM (4K units), the TDR excluded. */
  reclaimedChildren = 0;

  constructor(
    readonly module: TdxModule,
    readonly sim: Sim,
    /** The VM's name, for lock names and messages. */
    readonly name: string,
    readonly hkid: number,
    gpaBytes: number,
    /** The memory bandwidth of the socket the TD's memory is on (the module's zeroing shares it). */
    readonly memory: Bandwidth,
  ) {
    this.sept = new SecureEpt(gpaBytes);
    this.secureEptLock = new TryLock(sim, `${name}/secure_ept_lock`, false);
    this.entryLocks = new SeptEntryLocks(module.version === '1.5');
    this.words = new CacheLines(sim, `${name}/td_words`, { ...module.lineOptions, lines: TD_WORDS.length });
  }

  /** The TD-wide words (TD_WORDS) as cache lines shared by the CPUs running its SEAMCALLs. */
  readonly words: CacheLines;

  /**
   * The lines a SEAMCALL of this TD that takes the TDR, op_state and the secure_ept_lock (AUG,
   * SEPT.ADD) touches when it takes them: ns to stall. The releases are releaseWords().
   */
  lockWords(): number {
    const w = this.words;
    return w.touch(TDR_PAMT) + w.touch(OP_STATE) + w.touch(SECURE_EPT);
  }

  /** The releases of lockWords() after the body, and TDR.CHLDCNT's atomic add before them. */
  releaseWords(): number {
    const w = this.words;
    return w.touch(CHLDCNT) + w.touch(SECURE_EPT) + w.touch(OP_STATE) + w.touch(TDR_PAMT);
  }

  /** TDH.VP.ENTER's TDR, op_state and epoch (each taken and dropped on the entry path). */
  enterWords(): number {
    const w = this.words;
    return w.touch(TDR_PAMT) + w.touch(OP_STATE) + w.touch(EPOCH);
  }

  /**
   * TDR.CHLDCNT: 4K pages the TD holds besides its TDR (control pages, S-EPT pages, private
   * pages; a 2M leaf counts 512), less those reclaimed.
   */
  get childPages(): number {
    const c = this.counters;
    return this.controlChildren + this.image.pagesAdded + c.septAdds + c.augs4k + 512 * c.augs2m - this.reclaimedChildren;
  }

  /** A TDCALL completed in the module: its cost on the calling vCPU. */
  *tdcall(): Proc<void> {
    this.counters.tdcalls++;
    yield this.sim.compute(this.module.costs.tdcallNs);
  }

  /** zero_area_cacheline() with the TD's key, one CPU's rate, through the socket's bandwidth. */
  *zero(bytes: number): Proc<void> {
    this.counters.bytesZeroed += bytes;
    yield* writeMemory(this.memory, bytes, this.module.zeroRate);
  }

  /** A BUSY answer: counted by status name, and an event when traced. Returns the status. */
  countBusy(status: bigint, leaf: string, gpa: number): bigint {
    const name = tdxStatusName(status);
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
    const sim = this.sim;
    if (sim.observer !== null) sim.instant(name, { status: hex(status), 'status.name': name, leaf, gpa: hex(gpa), td: this.name });
    return status;
  }

  busyTotal(): number {
    let n = 0;
    for (const v of this.busy.values()) n += v;
    return n;
  }

  /** The state change of a successful TDH.MEM.SEPT.ADD. */
  commitSeptAdd(region: number, kind: SeptPageKind): void {
    this.sept.addPage(region, kind);
    this.counters.septAdds++;
  }

  // ---- The aggregated accept step (models/vm/tdx_accept_memory.ts) commits through these ------

  /** `augs` TDH.MEM.PAGE.AUG(4K) of the not yet AUGed pages of [first, first + n). */
  commitAug4kRun(first: number, n: number, augs: number): void {
    const added = this.sept.aug4k.fillRange(first, n);
    assert(added === augs, 'aggregated AUG count and the pages it added disagree', { td: this.name, first, added, augs });
    this.counters.augs4k += augs;
  }

  /**
   * The TDCALLs of an aggregated run of 4K accepts over [first, first + n): the 1G and 2M
   * attempts that answered OPERAND_INVALID / SIZE_MISMATCH, then n successful 4K accepts.
   */
  commitAccept4kRun(first: number, n: number, tried1G: boolean, tried2M: boolean): void {
    this.sept.accepted4k.setRange(first, n);
    this.counters.tdcalls += (tried1G ? 1 : 0) + (tried2M ? 1 : 0) + n;
    this.counters.accepted4k += n;
    if (tried1G) this.counters.operandInvalid++;
    if (tried2M) this.counters.sizeMismatch++;
  }

  /** Bytes the module zeroed inside an aggregated step's memory stream (the stream is the caller's). */
  countZeroed(bytes: number): void {
    this.counters.bytesZeroed += bytes;
  }

  /** TDX metrics of this TD under `prefix` (e.g. `vm1.tdx`). */
  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.tdcalls`] = c.tdcalls;
    out[`${prefix}.accept.4k`] = c.accepted4k;
    out[`${prefix}.accept.2m`] = c.accepted2m;
    out[`${prefix}.accept.size_mismatch`] = c.sizeMismatch;
    out[`${prefix}.accept.operand_invalid`] = c.operandInvalid;
    out[`${prefix}.aug.4k`] = c.augs4k;
    out[`${prefix}.aug.2m`] = c.augs2m;
    out[`${prefix}.sept_add`] = c.septAdds;
    out[`${prefix}.busy.total`] = this.busyTotal();
    for (const [name, n] of this.busy) out[`${prefix}.busy.${name}`] = n;
    out[`${prefix}.secure_ept_lock.acquisitions`] = this.secureEptLock.stats.acquisitions;
    out[`${prefix}.secure_ept_lock.busy`] = this.secureEptLock.stats.busy;
    out[`${prefix}.bytes_zeroed`] = c.bytesZeroed;
    if (this.words.enabled) cacheLineMetrics(`${prefix}.lines`, out, this.words, TD_WORDS);
    const rm = this.removal;
    if (rm.blocks > 0) {
      out[`${prefix}.remove.block`] = rm.blocks;
      out[`${prefix}.remove.track`] = rm.tracks;
      out[`${prefix}.remove.page_remove`] = rm.removed4k;
      out[`${prefix}.remove.wbinvd`] = rm.wbinvd;
    }
  }

  /**
   * The module's balance after a run: every accepted 4K was AUGed once, counters agree with the
   * S-EPT, no module lock held. (That every AUGed page has host memory behind it is the VM's
   * check: the module does not know guest_memfd.)
   */
  checkInvariants(): void {
    const { sept, counters: c } = this;
    assert(sept.aug4k.recount() === sept.aug4k.count, 'S-EPT AUG bitmap and its count disagree', { td: this.name, count: sept.aug4k.count });
    assert(sept.accepted4k.recount() === sept.accepted4k.count, 'S-EPT accepted bitmap and its count disagree', { td: this.name, count: sept.accepted4k.count });
    const aug = sept.aug4k.words;
    const acc = sept.accepted4k.words;
    for (let i = 0; i < acc.length; i++) {
      if ((acc[i]! & ~aug[i]!) !== 0) assert(false, 'a 4K page was accepted without TDH.MEM.PAGE.AUG', { td: this.name, page: i * 32 });
    }
    let pt = 0;
    let leaves = 0;
    let mapped = 0;
    for (let r = 0; r < sept.regions.length; r++) {
      const state = sept.regions[r] as Region;
      if (state === Region.PageTable) pt++;
      if (state === Region.LeafPending || state === Region.LeafMapped) {
        leaves++;
        assert(sept.aug4k.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === 0, '4K leaves under a 2M leaf', { td: this.name, region: r });
      }
      if (state === Region.LeafMapped) mapped++;
      if (state === Region.Free) assert(sept.aug4k.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === 0, 'a 4K leaf in a region with no PT page', { td: this.name, region: r });
    }
    const rm = this.removal;
    assert(this.blockedEpoch.size === 0, 'S-EPT leaves still BLOCKED at the end of the run', { td: this.name, blocked: this.blockedEpoch.size });
    assert(c.augs4k - rm.removed4k === sept.aug4k.count, 'TDH.MEM.PAGE.AUG(4K) count and S-EPT 4K leaves disagree', { td: this.name, augs: c.augs4k, leaves: sept.aug4k.count });
    assert(c.augs2m === leaves && sept.leaves2m === leaves, 'TDH.MEM.PAGE.AUG(2M) count and S-EPT 2M leaves disagree', { td: this.name, augs: c.augs2m, leaves });
    assert(c.accepted4k - rm.removedAccepted4k === sept.accepted4k.count, '4K accepts and MAPPED 4K leaves disagree', { td: this.name, accepts: c.accepted4k, mapped: sept.accepted4k.count });
    assert(c.accepted2m === mapped && sept.accepted2m === mapped, '2M accepts and MAPPED 2M leaves disagree', { td: this.name, accepts: c.accepted2m, mapped });
    let upper = 0;
    for (const v of sept.pdPresent) upper += v;
    for (const v of sept.pdptPresent) upper += v;
    assert(c.septAdds === pt + upper && sept.septPagesAdded === pt + upper, 'TDH.MEM.SEPT.ADD count and S-EPT pages disagree', { td: this.name, adds: c.septAdds, pages: pt + upper });
    assert(!this.secureEptLock.exclusive && this.secureEptLock.sharedCount === 0, 'secure_ept_lock still held at the end of the run', this.secureEptLock.describe());
    assert(this.entryLocks.heldCount === 0, 'S-EPT entry locks still held at the end of the run', { td: this.name, held: this.entryLocks.heldCount });
  }
}
