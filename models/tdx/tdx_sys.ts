import { assert } from '../../sim/assert.ts';
import { SIZE_1G, hex } from '../arch/units.ts';
import type { ReservedArea, Tdmr } from './pamt.ts';
import { TDX_INIT_COSTS, type TdxInitCosts } from './tdx_init_costs.ts';

/** A Convertible Memory Range the module reports (TDH.SYS.RD of the CMR fields). */
export interface Cmr {
  base: number;
  size: number;
}

/**
 * What the kernel reads from the module before building TDMRs (get_tdx_sys_info():
 * struct tdx_sys_info_tdmr and the CMRs): "at least 64 TDMRs" and 16 reserved areas per TDMR
 * in early modules ([tdx-host-rfc-2022-02], [linux:arch/x86/virt/vmx/tdx/tdx.c]), PAMT entries of
 * 16 bytes at every level.
 */
export interface TdxSysInfo {
  cmrs: readonly Cmr[];
  maxTdmrs: number;
  maxReservedPerTdmr: number;
}

/** One entry of the module's TDMR table after TDH.SYS.CONFIG (tdmr_entry_t). */
export interface TdmrEntry extends Tdmr {
  reserved: readonly ReservedArea[];
  /** The PAMT of this TDMR: one contiguous allocation (tdmr_set_up_pamt()). */
  pamtBase: number;
  pamtSize: number;
  /** The next-to-initialize address (last_initialized). */
  lastInitialized: number;
  /** The TDMR entry's mutex (acquire_mutex_lock(&tdmr_entry->lock); busy answers TDX_OPERAND_BUSY). */
  locked: boolean;
}

/** The module's global initialisation state (sys_state), as the SYS leaves move it. */
export const TDX_SYS_STATES = ['uninitialized', 'sysinit_done', 'config_done', 'key_config_done', 'ready'] as const;
export type TdxSysState = (typeof TDX_SYS_STATES)[number];

/**
 * The TDX module's global state while the host initialises it ([tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_config.c],
 * [tdx-module:src/vmm_dispatcher/api_calls/tdh_sys_tdmr_init.c]): the sysinfo it reports, which
 * CPUs ran TDH.SYS.LP.INIT, the TDMR table TDH.SYS.CONFIG copied in, which packages have the
 * global key, and each TDMR's initialisation progress. The leaves in leaves/ (tdh_sys_config.ts,
 * tdh_sys_tdmr_init.ts) check and change it; TDH.SYS.INIT, LP.INIT and KEY.CONFIG are plain
 * state steps here.
 */
export class TdxSys {
  state: TdxSysState = 'uninitialized';
  readonly costs: TdxInitCosts;
  readonly lpInitialised = new Set<number>();
  readonly packagesKeyed = new Set<number>();
  tdmrs: TdmrEntry[] = [];
  /** Dynamic PAMT: TDH.SYS.TDMR.INIT initialises 4x the entries per call. */
  dynamicPamt = false;
  readonly counters = { sysRd: 0, tdmrInitCalls: 0, tdmrInitBusy: 0 };

  constructor(
    readonly sysinfo: TdxSysInfo,
    costs: Partial<TdxInitCosts> = {},
  ) {
    assert(sysinfo.maxTdmrs >= 1 && sysinfo.maxReservedPerTdmr >= 1, 'TDX sysinfo: at least one TDMR and one reserved area', sysinfo);
    this.costs = { ...TDX_INIT_COSTS, ...costs };
  }

  /** TDH.SYS.INIT (once; the kernel's sysinit_lock makes later callers reuse its result). */
  sysInit(): void {
    assert(this.state === 'uninitialized', 'TDH.SYS.INIT twice', this.state);
    this.state = 'sysinit_done';
  }

  /** TDH.SYS.LP.INIT on `cpu`. */
  lpInit(cpu: number): void {
    assert(this.state !== 'uninitialized', 'TDH.SYS.LP.INIT before TDH.SYS.INIT', cpu);
    this.lpInitialised.add(cpu);
  }

  /** TDH.SYS.KEY.CONFIG on one CPU of `pkg` (the kernel never calls it twice per package). */
  keyConfig(pkg: number): void {
    assert(this.state === 'config_done' || this.state === 'key_config_done', 'TDH.SYS.KEY.CONFIG before TDH.SYS.CONFIG', this.state);
    assert(!this.packagesKeyed.has(pkg), 'TDH.SYS.KEY.CONFIG twice on a package (TDX_KEY_CONFIGURED)', pkg);
    this.packagesKeyed.add(pkg);
    this.state = 'key_config_done';
  }

  /** Is [base, end) inside one CMR (CMRs back to back count as one, is_area_in_cmr())? */
  inCmr(base: number, end: number): boolean {
    let runBase = -1;
    let runEnd = -1;
    for (const c of this.sysinfo.cmrs) {
      if (c.base === runEnd) runEnd = c.base + c.size;
      else {
        runBase = c.base;
        runEnd = c.base + c.size;
      }
      if (base >= runBase && end <= runEnd) return true;
    }
    return false;
  }

  /** Every TDMR is initialised: the module is ready (TDX_SYS_READY). */
  get allTdmrsInitialised(): boolean {
    return this.tdmrs.length > 0 && this.tdmrs.every((t) => t.lastInitialized >= t.base + t.size);
  }

  /**
   * The TDMR table keeps the architecture's rules: 1 GiB aligned, at most maxTdmrs, at most
   * maxReservedPerTdmr reserved areas each, in address order and inside the TDMR; no TDMR
   * lock held at the end.
   */
  checkInvariants(): void {
    assert(this.tdmrs.length <= this.sysinfo.maxTdmrs, 'more TDMRs than the module allows', { tdmrs: this.tdmrs.length, max: this.sysinfo.maxTdmrs });
    for (const t of this.tdmrs) {
      if (t.base % SIZE_1G !== 0 || t.size % SIZE_1G !== 0 || t.size <= 0) assert(false, 'a TDMR is not 1 GiB aligned', { base: hex(t.base), size: t.size });
      if (t.reserved.length > this.sysinfo.maxReservedPerTdmr) assert(false, 'a TDMR has more reserved areas than the module allows', { base: hex(t.base), reserved: t.reserved.length });
      let prev = 0;
      for (const r of t.reserved) {
        if (r.offset < prev || r.offset + r.size > t.size) assert(false, 'TDMR reserved areas out of order or outside the TDMR', { base: hex(t.base), r });
        prev = r.offset + r.size;
      }
      assert(!t.locked, 'a TDMR entry lock held at the end of the run', hex(t.base));
    }
  }
}
