import { Cpu, Mutex, SimEvent, countMetric, measureMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGE_SIZE, SIZE_1G, hex } from '../arch/units.ts';
import { TDX_SUCCESS, tdxStatusName } from '../tdx/arch.ts';
import { tdh_sys_config, type TdmrInfo } from '../tdx/leaves/tdh_sys_config.ts';
import { tdh_sys_tdmr_init } from '../tdx/leaves/tdh_sys_tdmr_init.ts';
import { tdmrPamtBytes, type PamtMode, type ReservedArea } from '../tdx/pamt.ts';
import { TdxModule } from '../tdx/tdx_module.ts';
import { TdxSys, type TdxSysInfo } from '../tdx/tdx_sys.ts';
import type { TdxInitCosts } from '../tdx/tdx_init_costs.ts';
import { EIO, ENOMEM, ENOSPC, EPERM, NOTIFY_BAD, NOTIFY_OK, type MemoryMap } from './memory_map.ts';

/**
 * How memory hot-add and TDX module initialisation are kept apart (`policy=`):
 * - 'none': the seed era (RFC v1, [tdx-host-rfc-2022-02]): the TDX memory is the e820 RAM at
 *   boot, nothing checks a hot-add ("first-generation TDX platforms don't support ACPI memory
 *   hotplug");
 * - 'reject_all': every hot-add refused in __add_memory_resource() on a TDX host (the first
 *   approach of [tdx-host-v3-2022-04]);
 * - 'cmr_check': tdx_init_disable() (the tdx_module_lock, like cpu_hotplug_disable()) around
 *   the hot-add: refused once the module is initialised, before that refused only outside the
 *   CMRs (the second approach of [tdx-host-v3-2022-04]); the TDX memory is memblock at init;
 * - 'merged': upstream ([linux:arch/x86/virt/vmx/tdx/tdx.c]): the TDX memory is memblock at
 *   init (build_tdx_memlist() under get_online_mems()); tdx_memory_notifier answers NOTIFY_BAD
 *   to MEM_GOING_ONLINE of any block not inside one tdx_memlist entry; an empty list (not
 *   initialised) allows everything.
 */
export const HOTPLUG_POLICIES = ['none', 'reject_all', 'cmr_check', 'merged'] as const;
export type HotplugPolicy = (typeof HOTPLUG_POLICIES)[number];

/** Why initialisation failed (the module is then in TDX_MODULE_ERROR; no retry). */
export const INIT_FAILURES = ['tdmrs_exhausted', 'rsvd_exhausted', 'pamt_enomem', 'config'] as const;
export type InitFailure = (typeof INIT_FAILURES)[number];

export type TdxModuleStatus = 'uninitialized' | 'initialized' | 'error';

/** A tdx_memlist entry (struct tdx_memblock). */
export interface TdxMemblock {
  start: number;
  end: number;
  nid: number;
}

/** What one hot-add came to. */
export interface HotAddOutcome {
  /** Refused before memblock_add (reject_all, cmr_check). */
  refusedAdd: boolean;
  onlinedBytes: number;
  refusedBytes: number;
  /** Initialisation was running when the hot-add arrived. */
  raced: boolean;
  /** Time the hot-add waited for a lock the initialisation held. */
  waitNs: number;
  /** Where the add landed relative to initialisation: before its memory list, while it ran, after. */
  order: 'before_init' | 'during_init' | 'after_init';
}

/** What TdxHostInit.metrics() writes (`tdx_init`). */
export const TDX_INIT_METRICS: MetricSpecs = {
  initialized: countMetric('flag', '1 if the module reached TDX_MODULE_INITIALIZED'),
  failed: countMetric('flag', '1 if initialisation failed (module in error, no retry)'),
  'failed.*': countMetric('flag', 'initialisation failure by cause: tdmrs_exhausted, rsvd_exhausted (-ENOSPC), pamt_enomem (-ENOMEM), config (TDH.SYS.CONFIG)'),
  init_ns: measureMetric('ns', 'tdx_enable() from the tdx_module_lock to the end'),
  tdmr_init_ns: measureMetric('ns', 'init_tdmrs(): every TDH.SYS.TDMR.INIT call'),
  tdmrs: countMetric('TDMRs', 'TDMRs built'),
  reserved_areas: countMetric('areas', 'reserved areas over all TDMRs'),
  reserved_areas_max: countMetric('areas', 'the most reserved areas in one TDMR'),
  tdmr_bytes: countMetric('bytes', 'memory the TDMRs span'),
  tdx_memory_bytes: countMetric('bytes', 'tdx_memlist: memory the module covers'),
  pamt_bytes: countMetric('bytes', 'PAMT allocated at initialisation (taken from host memory)'),
  tdmr_init_calls: countMetric('SEAMCALLs', 'TDH.SYS.TDMR.INIT calls'),
  key_configs: countMetric('SEAMCALLs', 'TDH.SYS.KEY.CONFIG, one per package'),
  hot_adds: countMetric('events', 'hot-add events'),
  refused_add: countMetric('events', 'hot-adds refused before memblock_add'),
  refused_bytes: countMetric('bytes', 'hot-added memory refused (at add or at online)'),
  false_refused_bytes: countMetric('bytes', 'refused memory that is convertible (safe memory refused)'),
  onlined_bytes: countMetric('bytes', 'hot-added memory onlined into the page allocator'),
  races: countMetric('events', 'hot-adds that arrived while initialisation ran'),
  race_wait_ns: measureMetric('ns', 'time hot-adds waited for a lock initialisation held'),
};

export interface TdxHostInitOptions {
  policy: HotplugPolicy;
  pamtMode: PamtMode;
  cpus: number;
  packages: number;
  sysinfo: TdxSysInfo;
  costs?: Partial<TdxInitCosts>;
  tdxModule?: '1.5' | '1.0';
}

/**
 * The host kernel's TDX code around module initialisation ([linux:arch/x86/virt/vmx/tdx/tdx.c],
 * [linux:Documentation/arch/x86/tdx.rst]): tdx_enable() as it runs (on demand, when KVM first
 * needs it), tdx_memlist, the hot-add policy and the memory notifier. Owns the module's TdxSys
 * (initialisation state) and, once initialised, a TdxModule whose PAMT (models/tdx/pamt.ts) is
 * built from the TDMRs made here.
 */
export class TdxHostInit {
  status: TdxModuleStatus = 'uninitialized';
  failure: InitFailure | null = null;
  errno = 0;
  running = false;
  readonly sys: TdxSys;
  /** tdx_module_lock (tdx_enable()); cmr_check's tdx_init_disable() takes it too. */
  readonly moduleLock: Mutex;
  memlist: TdxMemblock[] = [];
  tdmrs: TdmrInfo[] = [];
  module: TdxModule | null = null;
  readonly pamtOwner: number;
  /** (step, virtual time): the initialisation as it ran. */
  readonly log: { step: string; t: number }[] = [];
  readonly cpu: Cpu;
  readonly hotAdds: HotAddOutcome[] = [];
  private readonly hotAddConvertible: boolean[] = [];
  private initStart = 0;
  private initEnd = 0;
  private tdmrInitNs = 0;
  private memlistBuiltAt = -1;
  /** Fires when TDH.SYS.TDMR.INIT starts, or when initialisation ends without reaching it. */
  readonly tdmrInitStarted: SimEvent<void>;

  constructor(
    readonly sim: Sim,
    readonly map: MemoryMap,
    readonly options: TdxHostInitOptions,
  ) {
    this.sys = new TdxSys(options.sysinfo, options.costs ?? {});
    this.sys.dynamicPamt = options.pamtMode === 'dynamic';
    this.moduleLock = new Mutex(sim, 'tdx_module_lock');
    this.pamtOwner = map.memory.registerOwner('tdx-pamt-static');
    this.cpu = new Cpu(sim, 'host/kvm_tdx_init');
    this.tdmrInitStarted = sim.event<void>('tdmr_init_started');
    if (options.policy === 'merged') map.registerNotifier('tdx_memory_notifier', (event, start, bytes) => this.tdxMemoryNotifier(event, start, bytes));
  }

  get policy(): HotplugPolicy {
    return this.options.policy;
  }

  private step(name: string): void {
    this.log.push({ step: name, t: this.sim.now });
  }

  /** tdx_memory_notifier(): MEM_GOING_ONLINE of a range not inside one tdx_memlist entry is NOTIFY_BAD. */
  private tdxMemoryNotifier(event: string, start: number, bytes: number): number {
    if (event !== 'MEM_GOING_ONLINE') return NOTIFY_OK;
    if (this.memlist.length === 0) return NOTIFY_OK;
    return this.isTdxMemory(start, start + bytes) ? NOTIFY_OK : NOTIFY_BAD;
  }

  /** is_tdx_memory(): [start, end) inside one tdx_memlist entry. */
  isTdxMemory(start: number, end: number): boolean {
    return this.memlist.some((m) => start >= m.start && end <= m.end);
  }

  // ---- tdx_enable() -------------------------------------------------------------------------

  /** tdx_enable(): 0, or -errno (the module stays in error; later calls answer -EINVAL). */
  *tdxEnable(): Proc<number> {
    yield this.moduleLock.acquire();
    let ret = 0;
    if (this.status === 'uninitialized') {
      this.running = true;
      this.initStart = this.sim.now;
      ret = yield* this.initTdxModule();
      this.initEnd = this.sim.now;
      this.running = false;
      if (!this.tdmrInitStarted.triggered) this.tdmrInitStarted.succeed();
      if (ret !== 0) {
        this.status = 'error';
        this.errno = ret;
        this.step(`module initialization failed (${ret}): ${this.failure}`);
      } else {
        this.status = 'initialized';
        this.step('module initialized');
      }
    } else if (this.status === 'error') {
      ret = -22;
    }
    this.moduleLock.release();
    return ret;
  }

  private *initTdxModule(): Proc<number> {
    const sim = this.sim;
    const sys = this.sys;
    const c = sys.costs;
    // KVM's hardware enable: TDH.SYS.INIT once, TDH.SYS.LP.INIT on every CPU in parallel (IPIs).
    yield sim.stallFor(c.sysInitNs);
    sys.sysInit();
    this.step('TDH.SYS.INIT');
    yield sim.stallFor(c.ipiNs + c.lpInitNs);
    for (let cpu = 0; cpu < this.options.cpus; cpu++) sys.lpInit(cpu);
    this.step(`TDH.SYS.LP.INIT x${this.options.cpus}`);
    yield sim.stallFor(c.sysRdFields * c.sysRdNs);
    sys.counters.sysRd += c.sysRdFields;
    this.step('get_tdx_sys_info');
    // The seed era read e820 and took no hotplug lock; the memblock policies hold mem_hotplug_lock for read.
    const locks = this.policy !== 'none';
    if (locks) {
      yield this.map.getOnlineMems();
      this.step('get_online_mems');
    }
    let ret = 0;
    try {
      this.memlist = this.buildTdxMemlist();
      this.memlistBuiltAt = sim.now;
      this.step(`build_tdx_memlist: ${this.memlist.length} regions`);
      ret = this.fillOutTdmrs();
      if (ret !== 0) return this.fail(ret, 'tdmrs_exhausted');
      this.step(`fill_out_tdmrs: ${this.tdmrs.length} TDMRs`);
      ret = yield* this.setUpPamtAll();
      if (ret !== 0) return this.fail(ret, 'pamt_enomem');
      ret = this.populateRsvdAreasAll();
      if (ret !== 0) {
        this.freePamts();
        return this.fail(ret, 'rsvd_exhausted');
      }
      this.step('tdmrs_populate_rsvd_areas_all');
      const status = yield* tdh_sys_config(sim, sys, this.tdmrs);
      if (status !== TDX_SUCCESS) {
        this.step(`TDH.SYS.CONFIG: ${tdxStatusName(status)} (TDMR ${Number(status & 0xffn)})`);
        this.freePamts();
        return this.fail(-EIO, 'config');
      }
      this.step('TDH.SYS.CONFIG');
      // config_global_keyid(): flush the PAMT's KeyID-0 cache lines, then one package at a time.
      yield sim.stallFor(c.wbinvdNs);
      this.step('wbinvd_on_all_cpus');
      for (let pkg = 0; pkg < this.options.packages; pkg++) {
        yield sim.stallFor(c.ipiNs + c.keyConfigNs);
        sys.keyConfig(pkg);
        this.step(`TDH.SYS.KEY.CONFIG package ${pkg}`);
      }
      const t0 = sim.now;
      this.tdmrInitStarted.succeed();
      for (const t of this.tdmrs) {
        let next = 0;
        do {
          const r = yield* tdh_sys_tdmr_init(sim, sys, t.base);
          assert(r.status === TDX_SUCCESS, `TDH.SYS.TDMR.INIT failed: ${tdxStatusName(r.status)}`, hex(t.base));
          next = r.next;
          yield sim.stallFor(c.condReschedNs);
          yield sim.condResched();
        } while (next < t.base + t.size);
        this.step(`TDH.SYS.TDMR.INIT ${hex(t.base)} done`);
      }
      this.tdmrInitNs = sim.now - t0;
      assert(sys.state === 'ready', 'every TDMR initialised but the module is not ready', sys.state);
      const reservedTdmrs = this.tdmrs.map((t) => ({ base: t.base, size: t.size, reserved: t.reserved }));
      this.module = new TdxModule(sim, this.options.tdxModule ?? '1.5', {}, { mode: this.options.pamtMode, tdmrs: reservedTdmrs });
      this.checkPamtCoversTdmrs();
      return 0;
    } finally {
      if (locks) this.map.putOnlineMems();
    }
  }

  private fail(ret: number, cause: InitFailure): number {
    // Every error path ends in free_tdx_memlist(): the notifier then allows everything again.
    this.failure = cause;
    this.memlist = [];
    return ret;
  }

  /**
   * build_tdx_memlist(): every memblock.memory region above 1 MiB (merged, cmr_check); the seed
   * era's e820 RAM instead (none); reject_all has no hot-added memory in memblock anyway.
   */
  private buildTdxMemlist(): TdxMemblock[] {
    const source = this.policy === 'none'
      ? this.map.e820.map((r) => ({ start: r.start, end: r.start + r.bytes, nid: r.node }))
      : this.map.memblock.map((r) => ({ start: r.start, end: r.end, nid: r.nid }));
    const out: TdxMemblock[] = [];
    for (const r of source) {
      const start = Math.max(r.start, 2 ** 20);
      if (start >= r.end) continue;
      out.push({ start, end: r.end, nid: r.nid });
    }
    return out;
  }

  /** fill_out_tdmrs(): one TDMR per region, 1 GiB aligned, skipping what the previous one covers. -ENOSPC past max TDMRs. */
  private fillOutTdmrs(): number {
    const tdmrs: { base: number; size: number }[] = [];
    for (const m of this.memlist) {
      let start = Math.floor(m.start / SIZE_1G) * SIZE_1G;
      const end = Math.ceil(m.end / SIZE_1G) * SIZE_1G;
      const last = tdmrs[tdmrs.length - 1];
      if (last !== undefined) {
        if (end <= last.base + last.size) continue;
        if (start < last.base + last.size) start = last.base + last.size;
        if (tdmrs.length >= this.sys.sysinfo.maxTdmrs) return -ENOSPC;
      }
      tdmrs.push({ base: start, size: end - start });
    }
    this.tdmrs = tdmrs.map((t) => ({ ...t, reserved: [], pamtBase: 0, pamtSize: 0 }));
    return 0;
  }

  /** PAMT bytes of one TDMR: 4K + 2M + 1G levels (static), or bitmap + 2M + 1G (Dynamic PAMT). */
  pamtSizeOf(t: { base: number; size: number }): number {
    const b = tdmrPamtBytes(t);
    return b.pamt1g + b.pamt2m + (this.options.pamtMode === 'static' ? b.pamt4k : b.bitmap);
  }

  /** tdmrs_set_up_pamt_all(): one alloc_contig_pages() per TDMR on its node; -ENOMEM frees them all. */
  private *setUpPamtAll(): Proc<number> {
    for (const t of this.tdmrs) {
      const nid = this.memlist.find((m) => m.end > t.base)?.nid ?? 0;
      const size = this.pamtSizeOf(t);
      yield this.sim.stallFor((size / PAGE_SIZE) * this.sys.costs.contigPerPageNs);
      const hpa = this.map.memory.allocContig(this.pamtOwner, 'pamt', size, nid);
      if (hpa === null) {
        this.step(`alloc_contig_pages(${size} bytes, node ${nid}) failed`);
        this.freePamts();
        return -ENOMEM;
      }
      t.pamtBase = hpa;
      t.pamtSize = size;
    }
    this.step(`tdmrs_set_up_pamt_all: ${this.pamtBytes} bytes`);
    return 0;
  }

  private freePamts(): void {
    for (const t of this.tdmrs) {
      if (t.pamtSize === 0) continue;
      // alloc_contig_pages() took whole 2 MiB blocks here: free what was taken.
      this.map.memory.freeRange(t.pamtBase, Math.ceil(t.pamtSize / (2 * 2 ** 20)) * 2 * 2 ** 20, this.pamtOwner);
      t.pamtSize = 0;
      t.pamtBase = 0;
    }
  }

  get pamtBytes(): number {
    return this.tdmrs.reduce((n, t) => n + t.pamtSize, 0);
  }

  /** tdmr_populate_rsvd_holes() + tdmr_populate_rsvd_pamts(), sorted; -ENOSPC past the per-TDMR limit. */
  private populateRsvdAreasAll(): number {
    const max = this.sys.sysinfo.maxReservedPerTdmr;
    for (const t of this.tdmrs) {
      const end = t.base + t.size;
      const areas: ReservedArea[] = [];
      const add = (addr: number, size: number): boolean => {
        if (areas.length >= max) return false;
        areas.push({ offset: addr - t.base, size });
        return true;
      };
      let prevEnd = t.base;
      for (const m of this.memlist) {
        if (m.start >= end) break;
        if (m.end < t.base) continue;
        if (m.start <= prevEnd) {
          prevEnd = m.end;
          continue;
        }
        if (!add(prevEnd, m.start - prevEnd)) return -ENOSPC;
        prevEnd = m.end;
      }
      if (prevEnd < end && !add(prevEnd, end - prevEnd)) return -ENOSPC;
      for (const o of this.tdmrs) {
        let pb = o.pamtBase;
        let pe = o.pamtBase + o.pamtSize;
        if (pe <= t.base || pb >= end) continue;
        pb = Math.max(pb, t.base);
        pe = Math.min(pe, end);
        if (!add(pb, pe - pb)) return -ENOSPC;
      }
      areas.sort((a, b) => a.offset - b.offset);
      t.reserved = areas;
    }
    return 0;
  }

  /** The invariant: the PAMT the module runs covers every TDMR exactly (its size is tdmr_get_pamt_sz's). */
  private checkPamtCoversTdmrs(): void {
    const m = this.module!;
    assert(m.pamt.tdmrs.length === this.tdmrs.length, 'the PAMT has not one TDMR per TDMR built', { pamt: m.pamt.tdmrs.length, tdmrs: this.tdmrs.length });
    for (const t of this.tdmrs) {
      assert(t.pamtSize === this.pamtSizeOf(t), 'a TDMR\'s PAMT is not the size its TDMR needs', { base: hex(t.base), pamt: t.pamtSize });
      assert(this.map.memory.ownerOf(t.pamtBase) === this.pamtOwner, 'a TDMR\'s PAMT is not host memory the PAMT owns', hex(t.pamtBase));
    }
    assert(m.pamt.staticBytes === this.pamtBytes, 'the module\'s PAMT and the memory allocated for it disagree', { module: m.pamt.staticBytes, allocated: this.pamtBytes });
  }

  // ---- Hot-add under each policy ------------------------------------------------------------

  /** A hot-add of range `i` on the hotplug thread: the policy's check, add_memory(), auto-online. */
  *hotAdd(i: number): Proc<HotAddOutcome> {
    const sim = this.sim;
    const r = this.map.hotpluggable(i);
    const arrived = sim.now;
    const raced = this.running;
    const out: HotAddOutcome = { refusedAdd: false, onlinedBytes: 0, refusedBytes: 0, raced, waitNs: 0, order: 'before_init' };
    this.hotAddConvertible.push(r.convertible);
    this.hotAdds.push(out);
    const policy = this.policy;
    if (policy === 'reject_all') {
      out.refusedAdd = true;
      out.refusedBytes = r.bytes;
      out.order = this.orderNow();
      if (sim.observer !== null) sim.instant('hot-add refused', { policy, start: hex(r.start), errno: -EPERM });
      return out;
    }
    let held = false;
    if (policy === 'cmr_check') {
      // tdx_init_disable(): waits for an initialisation in progress.
      yield this.moduleLock.acquire();
      held = true;
      out.waitNs += sim.now - arrived;
      if (this.status === 'initialized' || !r.convertible) {
        out.refusedAdd = true;
        out.refusedBytes = r.bytes;
        out.order = this.orderNow();
        this.moduleLock.release();
        return out;
      }
    }
    // Waits on mem_hotplug_lock, which get_online_mems() holds for read through initialisation.
    out.waitNs += yield* this.map.addMemory(i);
    out.order = this.orderNow();
    const online = yield* this.map.onlineRange(i);
    out.waitNs += online.waitNs;
    out.onlinedBytes = online.onlined;
    out.refusedBytes = online.refused * 128 * 2 ** 20;
    if (held) this.moduleLock.release();
    return out;
  }

  /** Where an add happening now stands against initialisation. */
  private orderNow(): HotAddOutcome['order'] {
    if (this.status !== 'uninitialized') return 'after_init';
    if (this.running && this.memlistBuiltAt >= 0) return 'during_init';
    return 'before_init';
  }

  /**
   * A TD page at `hpa` about to be handed to the module: TDX memory (in a TDMR with PAMT,
   * outside reserved areas) or not. Never not under `merged` (asserted: the upstream guarantee).
   */
  tdPageSafe(hpa: number): boolean {
    const ok = this.module !== null && this.module.pamt.covers(hpa);
    if (!ok && this.policy === 'merged') assert(false, 'merged policy: a TD page outside the TDMRs', { hpa: hex(hpa), t: this.sim.now });
    return ok;
  }

  get initNs(): number {
    return this.initEnd - this.initStart;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.initialized`] = this.status === 'initialized' ? 1 : 0;
    out[`${prefix}.failed`] = this.status === 'error' ? 1 : 0;
    for (const f of INIT_FAILURES) out[`${prefix}.failed.${f}`] = this.failure === f ? 1 : 0;
    out[`${prefix}.init_ns`] = this.initNs;
    out[`${prefix}.tdmr_init_ns`] = this.tdmrInitNs;
    out[`${prefix}.tdmrs`] = this.tdmrs.length;
    out[`${prefix}.reserved_areas`] = this.tdmrs.reduce((n, t) => n + t.reserved.length, 0);
    out[`${prefix}.reserved_areas_max`] = this.tdmrs.reduce((n, t) => Math.max(n, t.reserved.length), 0);
    out[`${prefix}.tdmr_bytes`] = this.tdmrs.reduce((n, t) => n + t.size, 0);
    out[`${prefix}.tdx_memory_bytes`] = this.memlist.reduce((n, m) => n + m.end - m.start, 0);
    out[`${prefix}.pamt_bytes`] = this.status === 'initialized' ? this.pamtBytes : 0;
    out[`${prefix}.tdmr_init_calls`] = this.sys.counters.tdmrInitCalls;
    out[`${prefix}.key_configs`] = this.sys.packagesKeyed.size;
    out[`${prefix}.hot_adds`] = this.hotAdds.length;
    out[`${prefix}.refused_add`] = this.hotAdds.filter((h) => h.refusedAdd).length;
    out[`${prefix}.refused_bytes`] = this.hotAdds.reduce((n, h) => n + h.refusedBytes, 0);
    out[`${prefix}.false_refused_bytes`] = this.hotAdds.reduce((n, h, i) => n + (this.hotAddConvertible[i] ? h.refusedBytes : 0), 0);
    out[`${prefix}.onlined_bytes`] = this.hotAdds.reduce((n, h) => n + h.onlinedBytes, 0);
    out[`${prefix}.races`] = this.hotAdds.filter((h) => h.raced).length;
    out[`${prefix}.race_wait_ns`] = this.hotAdds.reduce((n, h) => n + h.waitNs, 0);
  }

  checkInvariants(): void {
    this.sys.checkInvariants();
    assert(this.moduleLock.holderNames().length === 0, 'tdx_module_lock held at the end of the run', this.moduleLock.describe());
    if (this.status === 'initialized') this.module!.checkInvariants();
  }
}

