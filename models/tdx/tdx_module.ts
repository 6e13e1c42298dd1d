import { TryLock, type LockMode, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { WriteRate, type Host } from '../host/host.ts';
import {
  OPERAND_ID_RCX, OPERAND_ID_SEPT_TREE, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_BUSY,
  TDX_OPERAND_BUSY_HOST_PRIORITY, TDX_OPERAND_INVALID, TDX_PAGE_ALREADY_ACCEPTED, TDX_PAGE_SIZE_MISMATCH,
  TDX_PS_1G, TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, tdxStatusName, withOperand, type TdxPageLevel,
} from './arch.ts';
import { SIZE_1G, SIZE_2M, hex } from '../host/units.ts';
import { Region, SecureEpt, type SeptPageKind } from './secure_ept.ts';
import { SeptEntryLocks } from './sept_entry_locks.ts';
import { TDX_COSTS, type TdxCosts } from './tdx_costs.ts';

/**
 * Which TDX module's locking to model (read from the sources):
 * - '1.5' (intel/tdx-module, branch tdx_1.5, and later): TDH.MEM.PAGE.AUG and TDH.MEM.SEPT.ADD
 *   take the TD's secure_ept_lock SHARED (lock_sept_check_and_walk_private_gpa(...,
 *   TDX_LOCK_SHARED)) plus the target entry's host-side lock (sept_lock_acquire_host());
 *   TDG.MEM.PAGE.ACCEPT takes only the entry's guest-side lock (sept_lock_acquire_guest()).
 * - '1.0' (TDX 1.0 sources, mirrored as qizhangz/tdx-module): AUG and SEPT.ADD take the
 *   secure_ept_lock EXCLUSIVE, so one TD's AUGs are serialised; ACCEPT locks its entry with a
 *   guest-side CAS (no host-priority bit).
 * Upstream KVM requires a 1.5+ module (it sets TDX_CONFIG_FLAGS_NO_RBP_MOD in setup_tdparams()).
 */
export type TdxModuleVersion = '1.0' | '1.5';

/** Not a status: the TDCALL did not complete, the vCPU took an EPT-violation TD exit. */
export const TD_EXIT_EPT_VIOLATION = -1n;

const MODULE = 'tdx-module';

/**
 * The TDX module's side of acceptance for one TD: the Secure EPT, its locks, and the leaves
 * TDG.MEM.PAGE.ACCEPT (guest TDCALL), TDH.MEM.PAGE.AUG and TDH.MEM.SEPT.ADD (SEAMCALLs from KVM).
 * Each leaf runs on the calling CPU; SEAMCALLs are host context (the vCPU is stalled in an exit),
 * the TDCALL is guest context. Expected outcomes (BUSY, SIZE_MISMATCH, ...) are return values.
 */
export class TdxModule {
  readonly sept: SecureEpt;
  /**
   * tdcs.executions_ctl_fields.secure_ept_lock: a sharex try-lock taken with
   * acquire_sharex_lock() (lock_sept_check_and_walk_private_gpa()), not the *_hp_* variants, so
   * a refused acquire sets no host-priority bit.
   */
  readonly secureEptLock: TryLock;
  readonly entryLocks: SeptEntryLocks;
  readonly costs: TdxCosts;
  readonly zeroRate: WriteRate;
  /** The mode AUG and SEPT.ADD take the secure_ept_lock in. */
  readonly treeLockMode: LockMode;

  augs4k = 0;
  augs2m = 0;
  septAdds = 0;
  tdcalls = 0;
  accepted4k = 0;
  accepted2m = 0;
  sizeMismatch = 0;
  operandInvalid = 0;
  alreadyAccepted = 0;
  bytesZeroed = 0;
  /** The op id of the last TDG.MEM.PAGE.ACCEPT span (0 untraced): the exit it causes links to it. */
  lastAcceptOp = 0;
  /** BUSY answers by status name, e.g. TDX_OPERAND_BUSY. */
  readonly busy = new Map<string, number>();
  private readonly frozen = new Set<number>();

  constructor(
    readonly sim: Sim,
    readonly host: Host,
    gpaBytes: number,
    readonly version: TdxModuleVersion,
    costs: Partial<TdxCosts> = {},
  ) {
    this.sept = new SecureEpt(gpaBytes);
    this.secureEptLock = new TryLock(sim, 'secure_ept_lock', false);
    this.entryLocks = new SeptEntryLocks(version === '1.5');
    this.costs = { ...TDX_COSTS, ...costs };
    this.zeroRate = new WriteRate(this.costs.zeroBytesPerSec);
    this.treeLockMode = version === '1.0' ? 'exclusive' : 'shared';
  }

  /** Half of a SEAMCALL's transitions: entry before the body, exit after it. */
  get seamcallHalfNs(): number {
    return this.costs.seamcallNs / 2;
  }

  // ---- TDG.MEM.PAGE.ACCEPT (guest TDCALL) ----------------------------------------------------

  /**
   * TDG.MEM.PAGE.ACCEPT(gpa | level) on the calling vCPU. Returns the status, or
   * TD_EXIT_EPT_VIOLATION when the entry is not PENDING at the requested level (the guest's
   * TDCALL does not complete; its cost is the exit's, charged by the exit path).
   */
  *tdg_mem_page_accept(gpa: number, level: TdxPageLevel, link: number): Proc<bigint> {
    const sim = this.sim;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: hex(gpa), size: levelBytes(level), level }, link) : 0;
    this.lastAcceptOp = id;
    const status = yield* this.accept(gpa, level);
    if (traced) sim.opEnd(id, { status: status === TD_EXIT_EPT_VIOLATION ? 'EPT_VIOLATION' : hex(status) });
    return status;
  }

  private *accept(gpa: number, level: TdxPageLevel): Proc<bigint> {
    if (level === TDX_PS_1G) {
      // verify_page_info_input(gpa_mappings, LVL_PT, LVL_PD): 1G accepts are not supported.
      this.operandInvalid++;
      yield* this.tdcall();
      return withOperand(TDX_OPERAND_INVALID, OPERAND_ID_RCX);
    }
    const sept = this.sept;
    const page = gpa / 4096;
    const region = sept.region(page);
    const state = sept.regionState(region);
    if (level === TDX_PS_4K) {
      if (state === Region.LeafMapped) return yield* this.answer(TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_2M);
      // A 4K ACCEPT under a PENDING 2M leaf needs TDH.MEM.PAGE.DEMOTE by the host: not modelled.
      assert(state !== Region.LeafPending, 'TDG.MEM.PAGE.ACCEPT(4K) inside a PENDING 2M leaf (DEMOTE path not modelled)', hex(gpa));
      if (state === Region.Free) return TD_EXIT_EPT_VIOLATION;
      if (!sept.aug4k.test(page)) return TD_EXIT_EPT_VIOLATION;
      if (sept.accepted4k.test(page)) return yield* this.answer(TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_4K);
      const lock = this.entryLocks.acquireGuest(page);
      if (lock !== 'acquired') return yield* this.refuseGuest(lock, gpa);
      yield* this.tdcall();
      yield* this.zero(4096);
      sept.accepted4k.set(page);
      this.accepted4k++;
      this.entryLocks.release(page, 'guest');
      return TDX_SUCCESS;
    }
    if (state === Region.PageTable) {
      this.sizeMismatch++;
      return yield* this.answer(TDX_PAGE_SIZE_MISMATCH, TDX_PS_2M);
    }
    if (state === Region.LeafMapped) return yield* this.answer(TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_2M);
    if (state === Region.Free) return TD_EXIT_EPT_VIOLATION;
    const entry = SeptEntryLocks.entry2m(region);
    const lock = this.entryLocks.acquireGuest(entry);
    if (lock !== 'acquired') return yield* this.refuseGuest(lock, gpa);
    // The 2M accept zeroes 512 4K pages (accept_counter loop); interruptions are not modelled.
    yield* this.tdcall();
    yield* this.zero(SIZE_2M);
    sept.regions[region] = Region.LeafMapped;
    sept.accepted2m++;
    this.accepted2m++;
    this.entryLocks.release(entry, 'guest');
    return TDX_SUCCESS;
  }

  private *answer(status: bigint, eptLevel: number): Proc<bigint> {
    if (status === TDX_PAGE_ALREADY_ACCEPTED) this.alreadyAccepted++;
    yield* this.tdcall();
    return withOperand(status, BigInt(eptLevel));
  }

  private *refuseGuest(answer: 'busy' | 'busy_host_priority', gpa: number): Proc<bigint> {
    const status = withOperand(answer === 'busy' ? TDX_OPERAND_BUSY : TDX_OPERAND_BUSY_HOST_PRIORITY, OPERAND_ID_RCX);
    this.countBusy(status, 'TDG.MEM.PAGE.ACCEPT', gpa);
    yield* this.tdcall();
    return status;
  }

  private *tdcall(): Proc<void> {
    this.tdcalls++;
    yield this.sim.compute(this.costs.tdcallNs);
  }

  /** zero_area_cacheline() with the TD's key, one CPU's rate, through host memory bandwidth. */
  *zero(bytes: number): Proc<void> {
    this.bytesZeroed += bytes;
    yield* this.host.write(bytes, this.zeroRate);
  }

  // ---- TDH.MEM.PAGE.AUG (SEAMCALL) -----------------------------------------------------------

  /**
   * TDH.MEM.PAGE.AUG(gpa | level): add a PENDING page to the Secure EPT. Called by KVM on the
   * stalled vCPU thread. Charges the entry transition and the body; the caller charges
   * seamcallHalfNs for the exit transition (merged with its next stall).
   */
  *tdh_mem_page_aug(gpa: number, level: TdxPageLevel, link: number): Proc<bigint> {
    const sim = this.sim;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('TDH.MEM.PAGE.AUG', { gpa: hex(gpa), size: levelBytes(level), level }, link, MODULE) : 0;
    yield sim.stallFor(this.seamcallHalfNs);
    const status = yield* this.augLocked(gpa, level);
    if (traced) sim.opEnd(id, { status: hex(status) });
    return status;
  }

  private *augLocked(gpa: number, level: TdxPageLevel): Proc<bigint> {
    const sim = this.sim;
    const tree = this.secureEptLock.tryAcquire(this.treeLockMode, 'host');
    if (tree !== 'acquired') return this.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), 'TDH.MEM.PAGE.AUG', gpa);
    const page = gpa / 4096;
    const region = this.sept.region(page);
    const entry = level === TDX_PS_4K ? page : SeptEntryLocks.entry2m(region);
    if (this.entryLocks.acquireHost(entry) !== 'acquired') {
      this.secureEptLock.release(this.treeLockMode);
      return this.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_RCX), 'TDH.MEM.PAGE.AUG', gpa);
    }
    // sept_state_is_seamcall_leaf_allowed(TDH_MEM_PAGE_AUG): only a FREE leaf entry; KVM never
    // AUGs a mapped GPA (it would KVM_BUG_ON the error), so anything else is a model bug.
    const state = this.sept.regionState(region);
    if (level === TDX_PS_4K) {
      if (state !== Region.PageTable || this.sept.aug4k.test(page)) assert(false, `TDH.MEM.PAGE.AUG(4K) on a non-FREE entry: ${tdxStatusName(TDX_EPT_ENTRY_STATE_INCORRECT)}`, hex(gpa));
    } else {
      if (state !== Region.Free) assert(false, `TDH.MEM.PAGE.AUG(2M) on a non-FREE entry: ${tdxStatusName(TDX_EPT_ENTRY_STATE_INCORRECT)}`, hex(gpa));
    }
    yield sim.stallFor(this.costs.augBodyNs);
    if (level === TDX_PS_4K) {
      this.sept.aug4k.set(page);
      this.augs4k++;
    } else {
      this.sept.regions[region] = Region.LeafPending;
      this.sept.leaves2m++;
      this.augs2m++;
    }
    this.entryLocks.release(entry, 'host');
    this.secureEptLock.release(this.treeLockMode);
    return TDX_SUCCESS;
  }

  // ---- TDH.MEM.SEPT.ADD (SEAMCALL) -----------------------------------------------------------

  /**
   * TDH.MEM.SEPT.ADD: add the S-EPT page of `kind` above 2 MiB region `region` (a PT page under
   * its PD entry, the PD page of its 1 GiB, or the PDPT page of its 512 GiB); the module fills
   * the new page (fill_area_cacheline, 4 KiB). Same locks as AUG on the parent entry.
   */
  *tdh_mem_sept_add(region: number, kind: SeptPageKind, link: number): Proc<bigint> {
    const sim = this.sim;
    const gpa = region * SIZE_2M;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin('TDH.MEM.SEPT.ADD', { gpa: hex(gpa), page: kind }, link, MODULE) : 0;
    yield sim.stallFor(this.seamcallHalfNs);
    let status: bigint;
    const tree = this.secureEptLock.tryAcquire(this.treeLockMode, 'host');
    if (tree !== 'acquired') {
      status = this.countBusy(withOperand(TDX_OPERAND_BUSY, OPERAND_ID_SEPT_TREE), 'TDH.MEM.SEPT.ADD', gpa);
    } else {
      yield sim.stallFor(this.costs.septAddBodyNs);
      yield* this.zero(4096);
      this.commitSeptAdd(region, kind);
      this.secureEptLock.release(this.treeLockMode);
      status = TDX_SUCCESS;
    }
    if (traced) sim.opEnd(id, { status: hex(status) });
    return status;
  }

  /**
   * KVM's mirror SPTE of an S-EPT page being added is frozen (FROZEN_SPTE) while its
   * TDH.MEM.SEPT.ADD runs; another vCPU's fault that meets it retries. Kept here, keyed by page.
   */
  septPageFrozen(region: number, kind: SeptPageKind): boolean {
    return this.frozen.has(SecureEpt.pageKey(region, kind));
  }

  freezeSeptPage(region: number, kind: SeptPageKind): void {
    const key = SecureEpt.pageKey(region, kind);
    assert(!this.frozen.has(key), 'mirror SPTE frozen twice', { region, kind });
    this.frozen.add(key);
  }

  thawSeptPage(region: number, kind: SeptPageKind): void {
    assert(this.frozen.delete(SecureEpt.pageKey(region, kind)), 'thawing a mirror SPTE that is not frozen', { region, kind });
  }

  get frozenCount(): number {
    return this.frozen.size;
  }

  /** The state change of a successful TDH.MEM.SEPT.ADD (also used by the aggregated path). */
  commitSeptAdd(region: number, kind: SeptPageKind): void {
    this.sept.addPage(region, kind);
    this.septAdds++;
  }

  private countBusy(status: bigint, leaf: string, gpa: number): bigint {
    const name = tdxStatusName(status);
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
    const sim = this.sim;
    if (sim.observer !== null) sim.instant(name, { status: hex(status), 'status.name': name, leaf, gpa: hex(gpa) });
    return status;
  }

  busyTotal(): number {
    let n = 0;
    for (const v of this.busy.values()) n += v;
    return n;
  }
}

export function levelBytes(level: TdxPageLevel): number {
  return level === TDX_PS_4K ? 4096 : level === TDX_PS_2M ? SIZE_2M : SIZE_1G;
}
