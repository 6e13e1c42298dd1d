import { CACHE_LINE_METRICS, DEFAULT_LINE_OPTIONS, cacheLineMetrics, type LineOptions } from '../arch/cache_lines.ts';
import { CacheLines, countMetric, prefixedMetrics, type Bandwidth, type LockMode, type MetricSpecs, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { WriteRate } from '../arch/write_rate.ts';
import { SIZE_1G, SIZE_2M } from '../arch/units.ts';
import { TDX_MISSING_PAMT_PAGE_PAIR, TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, tdxStatusName, type TdxPageLevel } from './arch.ts';
import { PAMT_MODES, Pamt, type PamtMode, type Tdmr } from './pamt.ts';
import { Td } from './td.ts';
import { TDX_COSTS, type TdxCosts } from './tdx_costs.ts';

/**
 * Which TDX module's locking to model (read from the sources):
 * - '1.5' (intel/tdx-module, branch tdx_1.5, and later): TDH.MEM.PAGE.AUG and TDH.MEM.SEPT.ADD
 *   take the TD's secure_ept_lock SHARED (lock_sept_check_and_walk_private_gpa(...,
 *   TDX_LOCK_SHARED)) plus the target entry's host-side lock (sept_lock_acquire_host());
 *   TDG.MEM.PAGE.ACCEPT takes only the entry's guest-side lock (sept_lock_acquire_guest())
 *   ([tdx-module:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c],
 *   [tdx-module:src/td_dispatcher/vm_exits/tdg_mem_page_accept.c]).
 * - '1.0' (TDX 1.0 sources, [tdx-module-1.0:src/vmm_dispatcher/api_calls/tdh_mem_page_aug.c]): AUG
 *   and SEPT.ADD take the secure_ept_lock EXCLUSIVE, so one TD's AUGs are serialised; ACCEPT locks
 *   its entry with a guest-side CAS (no host-priority bit).
 * Upstream KVM requires a 1.5+ module (it sets TDX_CONFIG_FLAGS_NO_RBP_MOD in setup_tdparams(),
 * [linux:arch/x86/kvm/vmx/tdx.c]).
 */
export const TDX_MODULE_VERSIONS = ['1.5', '1.0'] as const;
export type TdxModuleVersion = (typeof TDX_MODULE_VERSIONS)[number];

/** Not a status: the TDCALL did not complete, the vCPU took an EPT-violation TD exit. */
export const TD_EXIT_EPT_VIOLATION = -1n;

/** The service name of spans of work inside the module. */
export const TDX_MODULE_SERVICE = 'tdx-module';

/** What TdxModule.metrics() writes (`tdx`). */
export const TDX_MODULE_METRICS: MetricSpecs = {
  tds: countMetric('TDs', 'TDs created in the module'),
  'busy.total': countMetric('answers', 'TDX_OPERAND_BUSY answers to every TD'),
  'aug.total': countMetric('SEAMCALLs', 'successful TDH.MEM.PAGE.AUG of every TD'),
  ...prefixedMetrics('lines', CACHE_LINE_METRICS),
  'pamt.dynamic': countMetric('flag', '1 if the module runs Dynamic PAMT (PAMT_4K replaced by page pairs), 0 static'),
  'pamt.static_bytes': countMetric('bytes', 'PAMT reserved at module initialisation: PAMT_1G + PAMT_2M + PAMT_4K (static) or the page bitmap (dynamic), per TDMR, 4K aligned'),
  'pamt.dynamic_bytes': countMetric('bytes', 'DPAMT page pairs in use at the end of the run (8 KiB per 2M range with TD 4K pages)'),
  'pamt.dynamic_bytes_peak': countMetric('bytes', 'the most DPAMT page-pair memory in use at any time'),
  'pamt.pairs_added': countMetric('SEAMCALLs', 'successful TDH.PHYMEM.PAMT.ADD'),
  'pamt.pairs_removed': countMetric('SEAMCALLs', 'successful TDH.PHYMEM.PAMT.REMOVE'),
  'pamt.td_pages': countMetric('pages', 'PAMT 4K entries in use at the end (TD pages, S-EPT pages, TD control pages)'),
  'pamt.walks': countMetric('walks', 'pamt_walk() calls by SEAMCALLs'),
  'pamt.busy': countMetric('answers', 'TDX_OPERAND_BUSY from a PAMT entry lock, all leaves'),
  'pamt.busy.*': countMetric('answers', 'TDX_OPERAND_BUSY from a PAMT entry lock, by leaf'),
  'pamt.missing_pair': countMetric('answers', 'TDX_MISSING_PAMT_PAGE_PAIR answers, all leaves'),
  'pamt.missing_pair.*': countMetric('answers', 'TDX_MISSING_PAMT_PAGE_PAIR answers, by leaf'),
  tds_torn_down: countMetric('TDs', 'TDs whose TDR was reclaimed (they left the module); only in runs that stop TDs'),
};

/** The PAMT of a module: its mode and the TDMRs it covers. */
export interface PamtConfig {
  mode: PamtMode;
  tdmrs: readonly Tdmr[];
}

/**
 * The TDX module of one host (SEAM firmware): its version and costs, and the TDs it runs, by
 * HKID. Every TD's state lives in its Td; the leaves (models/tdx/leaves/, one file per leaf, in
 * the module's check-lock / commit / release shape) run on the calling CPU: SEAMCALLs in host
 * context (the vCPU is stalled in an exit), TDCALLs in guest context. Expected outcomes (BUSY,
 * SIZE_MISMATCH, ...) are return values. The PAMT of the host's TDMRs (pamt.ts, static or
 * Dynamic PAMT) is walked by every SEAMCALL that takes a host physical address.
 */
export class TdxModule {
  readonly costs: TdxCosts;
  readonly zeroRate: WriteRate;
  /** The mode AUG and SEPT.ADD take the secure_ept_lock in. */
  readonly treeLockMode: LockMode;
  /** The PAMT of every TDMR of the host (pamt.ts). */
  readonly pamt: Pamt;
  /** PAMT answers (BUSY, MISSING_PAMT_PAGE_PAIR) by leaf, e.g. `busy.TDH_MEM_PAGE_AUG`. */
  readonly pamtAnswers = new Map<string, number>();
  private readonly tds = new Map<number, Td>();
  /**
   * The KOT (key ownership table): the state of each HKID a TD was created with ('assigned',
   * 'flushed' after TDH.MNG.VPFLUSHDONE, 'free' after TDH.MNG.KEY.FREEID) and, while flushed, the
   * packages whose caches TDH.PHYMEM.CACHE.WB has still to write back (a bitmap).
   */
  readonly kot = new Map<number, { state: 'assigned' | 'flushed' | 'free'; wbinvd: number }>();
  /** How the host's cache lines behave (costs, sockets, on/off); every TD's words use them. */
  readonly lineOptions: LineOptions;
  /**
   * The lock words of the PAMT's 1G entries, one line per GiB of host physical address: every
   * AUG and SEPT.ADD walks its page's 1G entry shared (pamt_walk(): acquire and release), so
   * vCPUs adding pages in one host GiB share the line.
   */
  readonly pamt1gLines: CacheLines;
  /** CPU packages (sockets) whose caches CACHE.WB writes back; the host sets it. */
  packages = 1;
  /** TDs whose TDR was reclaimed (their Td left the module). */
  tdsTornDown = 0;

  constructor(
    readonly sim: Sim,
    readonly version: TdxModuleVersion,
    costs: Partial<TdxCosts> = {},
    /** Default: static PAMT over one 64 GiB TDMR (tests that build a module alone). */
    pamt: PamtConfig = { mode: 'static', tdmrs: [{ base: 0, size: 64 * SIZE_1G }] },
    lineOptions: LineOptions = DEFAULT_LINE_OPTIONS,
  ) {
    this.lineOptions = lineOptions;
    const end = pamt.tdmrs.reduce((e, t) => Math.max(e, t.base + t.size), 0);
    this.pamt1gLines = new CacheLines(sim, 'pamt_1g', { ...lineOptions, lines: Math.max(1, Math.ceil(end / SIZE_1G)) });
    assert((PAMT_MODES as readonly string[]).includes(pamt.mode), 'unknown PAMT mode', pamt.mode);
    this.pamt = new Pamt(pamt.mode, pamt.tdmrs);
    this.costs = { ...TDX_COSTS, ...costs };
    this.zeroRate = new WriteRate(this.costs.zeroBytesPerSec);
    this.treeLockMode = version === '1.0' ? 'exclusive' : 'shared';
  }

  /**
   * TDH.MNG.CREATE / TDH.MNG.INIT for a new TD with key `hkid` (the kernel allocates it): the
   * TD's state in the module. The build SEAMCALLs' time is not modelled yet.
   */
  createTd(name: string, hkid: number, gpaBytes: number, memory: Bandwidth): Td {
    assert(!this.tds.has(hkid), 'TDH.MNG.CREATE with an HKID already in use', { hkid, name });
    const kot = this.kot.get(hkid);
    assert(kot === undefined || kot.state === 'free', 'TDH.MNG.CREATE with an HKID not free in the KOT', { hkid, name, state: kot?.state });
    const td = new Td(this, this.sim, name, hkid, gpaBytes, memory);
    this.tds.set(hkid, td);
    this.kot.set(hkid, { state: 'assigned', wbinvd: 0 });
    return td;
  }

  /** The TD with key `hkid`, if it is still in the module. */
  tdOf(hkid: number): Td | undefined {
    return this.tds.get(hkid);
  }

  /** TDH.PHYMEM.PAGE.RECLAIM of the TDR took the last page: the TD leaves the module. */
  removeTd(td: Td): void {
    assert(this.tds.get(td.hkid) === td && td.lifecycle === 'reclaimed' && td.childPages === 0, 'a TD left the module before its TDR was reclaimed', { td: td.name, lifecycle: td.lifecycle, children: td.childPages });
    this.tds.delete(td.hkid);
    this.tdsTornDown++;
  }

  /**
   * A PAMT answer of `leaf` (TDX_OPERAND_BUSY from an entry lock, TDX_MISSING_PAMT_PAGE_PAIR):
   * counted by leaf, and an event when traced. Returns the status.
   */
  countPamtAnswer(status: bigint, leaf: string, hpa: number): bigint {
    const name = tdxStatusName(status);
    // The leaf with underscores (TDH_MEM_PAGE_AUG): a metric family matches one dot-free name.
    const key = `${name === 'TDX_MISSING_PAMT_PAGE_PAIR' ? 'missing_pair' : 'busy'}.${leaf.replaceAll('.', '_')}`;
    this.pamtAnswers.set(key, (this.pamtAnswers.get(key) ?? 0) + 1);
    const sim = this.sim;
    if (sim.observer !== null) sim.instant(name, { status: `0x${status.toString(16).padStart(16, '0')}`, 'status.name': name, leaf, hpa: `0x${hpa.toString(16)}`, 'pamt.entry': 'PAMT' });
    return status;
  }

  /**
   * TDH.MNG.CREATE / TDH.MNG.ADDCX / TDH.VP.CREATE / TDH.VP.ADDCX of one control page at `hpa`
   * (untimed, as the build SEAMCALLs are): the PAMT walk of the page and its commit as a TD
   * page. TDX_MISSING_PAMT_PAGE_PAIR in dynamic mode without a pair; never BUSY (nothing runs
   * at build time beside it).
   */
  addControlPage(hpa: number, leaf: string, td?: Td): bigint {
    const w = this.pamt.walk4k(hpa, 'exclusive');
    if (typeof w === 'bigint') {
      assert(w === TDX_MISSING_PAMT_PAGE_PAIR, `${leaf} met a busy PAMT entry at build time`, tdxStatusName(w));
      return this.countPamtAnswer(w, leaf, hpa);
    }
    this.pamt.setInUse(hpa);
    this.pamt.unwalk(w);
    if (td !== undefined && leaf !== 'TDH.MNG.CREATE') td.controlChildren++;
    return TDX_SUCCESS;
  }

  /** Half of a SEAMCALL's transitions: entry before the body, exit after it. */
  /**
   * The 1G PAMT entry of `hpa` walked shared (pamt_walk() and pamt_unwalk(): an acquire and a
   * release, counted as one touch of its line): ns to stall.
   */
  pamt1gTouch(hpa: number): number {
    return this.pamt1gLines.touch(Math.floor(hpa / SIZE_1G));
  }

  get seamcallHalfNs(): number {
    return this.costs.seamcallNs / 2;
  }

  /** Host-wide totals under `prefix` (e.g. `tdx`): TDs and BUSY answers over all of them. */
  metrics(prefix: string, out: Record<string, number>): void {
    let busy = 0;
    let augs = 0;
    for (const td of this.tds.values()) {
      busy += td.busyTotal();
      augs += td.counters.augs4k + td.counters.augs2m;
    }
    out[`${prefix}.tds`] = this.tds.size + this.tdsTornDown;
    out[`${prefix}.busy.total`] = busy;
    out[`${prefix}.aug.total`] = augs;
    if (this.pamt1gLines.enabled) cacheLineMetrics(`${prefix}.lines`, out, this.pamt1gLines, 'pamt_1g');
    const pamt = this.pamt;
    out[`${prefix}.pamt.dynamic`] = pamt.mode === 'dynamic' ? 1 : 0;
    out[`${prefix}.pamt.static_bytes`] = pamt.staticBytes;
    out[`${prefix}.pamt.dynamic_bytes`] = pamt.dynamicBytes;
    out[`${prefix}.pamt.dynamic_bytes_peak`] = pamt.counters.pairsPeak * 2 * 4096;
    out[`${prefix}.pamt.pairs_added`] = pamt.counters.pairsAdded;
    out[`${prefix}.pamt.pairs_removed`] = pamt.counters.pairsRemoved;
    out[`${prefix}.pamt.td_pages`] = pamt.usedPages;
    out[`${prefix}.pamt.walks`] = pamt.counters.walks;
    out[`${prefix}.pamt.busy`] = pamt.counters.busy;
    out[`${prefix}.pamt.missing_pair`] = pamt.counters.missingPair;
    for (const [key, n] of [...this.pamtAnswers].sort(([a], [b]) => (a < b ? -1 : 1))) out[`${prefix}.pamt.${key}`] = n;
    // Runs that tear TDs down (pamt-churn); absent otherwise, as their family is.
    if (this.tdsTornDown > 0) out[`${prefix}.tds_torn_down`] = this.tdsTornDown;
  }

  checkInvariants(): void {
    for (const td of this.tds.values()) td.checkInvariants();
    for (const [hkid, k] of this.kot) {
      const td = this.tds.get(hkid);
      if (k.state === 'free' && td !== undefined && td.lifecycle === 'keys_configured') assert(false, 'a running TD whose HKID is free in the KOT', { hkid, td: td.name });
      if (k.state !== 'free' && td === undefined) assert(false, 'an HKID held in the KOT by no TD', { hkid, state: k.state });
    }
    this.pamt.checkInvariants();
  }
}

export function levelBytes(level: TdxPageLevel): number {
  return level === TDX_PS_4K ? 4096 : level === TDX_PS_2M ? SIZE_2M : SIZE_1G;
}
