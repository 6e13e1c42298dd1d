import { countMetric, type Bandwidth, type LockMode, type MetricSpecs, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { WriteRate } from '../arch/write_rate.ts';
import { SIZE_1G, SIZE_2M } from '../arch/units.ts';
import { TDX_PS_2M, TDX_PS_4K, type TdxPageLevel } from './arch.ts';
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
};

/**
 * The TDX module of one host (SEAM firmware): its version and costs, and the TDs it runs, by
 * HKID. Every TD's state lives in its Td; the leaves (models/tdx/leaves/, one file per leaf, in
 * the module's check-lock / commit / release shape) run on the calling CPU: SEAMCALLs in host
 * context (the vCPU is stalled in an exit), TDCALLs in guest context. Expected outcomes (BUSY,
 * SIZE_MISMATCH, ...) are return values. PAMT and TDMRs arrive with the Dynamic PAMT work.
 */
export class TdxModule {
  readonly costs: TdxCosts;
  readonly zeroRate: WriteRate;
  /** The mode AUG and SEPT.ADD take the secure_ept_lock in. */
  readonly treeLockMode: LockMode;
  private readonly tds = new Map<number, Td>();

  constructor(
    readonly sim: Sim,
    readonly version: TdxModuleVersion,
    costs: Partial<TdxCosts> = {},
  ) {
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
    const td = new Td(this, this.sim, name, hkid, gpaBytes, memory);
    this.tds.set(hkid, td);
    return td;
  }

  /** Half of a SEAMCALL's transitions: entry before the body, exit after it. */
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
    out[`${prefix}.tds`] = this.tds.size;
    out[`${prefix}.busy.total`] = busy;
    out[`${prefix}.aug.total`] = augs;
  }

  checkInvariants(): void {
    for (const td of this.tds.values()) td.checkInvariants();
  }
}

export function levelBytes(level: TdxPageLevel): number {
  return level === TDX_PS_4K ? 4096 : level === TDX_PS_2M ? SIZE_2M : SIZE_1G;
}
