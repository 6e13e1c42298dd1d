import { Mutex, RwLock, type Sim } from '../../sim/index.ts';
import type { Host } from '../host/host.ts';
import { ExitStats } from './exit_stats.ts';
import { KVM_COSTS, type KvmCosts } from './kvm_costs.ts';

/**
 * What KVM does on RET_PF_RETRY for a TD's private fault (a SEAMCALL answered BUSY):
 * - 'local': upstream (tdx_handle_ept_violation() loops __vmx_handle_ept_violation() while no
 *   signal/interrupt is pending, with cond_resched(); Yan Zhao, "KVM: TDX: Retry locally in TDX
 *   EPT violation handler on RET_PF_RETRY", merged with the TDX MMU series);
 * - 'reenter': the earlier tree (2024 intel/tdx): return to the guest, which re-executes the
 *   TDCALL and takes the EPT violation again.
 */
export type KvmRetry = 'local' | 'reenter';

export interface KvmConfig {
  retry?: KvmRetry;
  costs?: Partial<KvmCosts>;
}

/** KVM for one guest: its locks, its exit accounting and its costs. */
export class Kvm {
  /**
   * kvm->mmu_lock, an rwlock_t on x86: the TDP MMU fault path takes it for read
   * (kvm_tdp_mmu_page_fault(): read_lock), zaps and attribute changes for write. A queued
   * rwlock (qrwlock): fair, an arrival waits behind any queued waiter and consecutive readers at
   * the head enter together. Its waiters spin on the host CPU the exit already holds
   * (Host.cpus); the vCPU they run for is inside a VM exit, so its wait is stall time.
   */
  readonly mmuLock: RwLock;
  /**
   * kvm->slots_lock, a mutex: memslot and memory-attribute updates. Its waiter (the VMM's
   * ioctl on the vCPU thread) sleeps in the host, but the vCPU stays in its exit: stall time.
   */
  readonly slotsLock: Mutex;
  readonly exits = new ExitStats();
  readonly costs: KvmCosts;
  readonly retry: KvmRetry;
  /** RET_PF_RETRY rounds taken after a BUSY SEAMCALL. */
  retries = 0;

  constructor(
    readonly sim: Sim,
    readonly host: Host,
    config: KvmConfig = {},
  ) {
    this.mmuLock = new RwLock(sim, 'kvm->mmu_lock', 'fifo', 'stall');
    this.slotsLock = new Mutex(sim, 'kvm->slots_lock', 'stall');
    this.costs = { ...KVM_COSTS, ...config.costs };
    this.retry = config.retry ?? 'local';
  }

  /** Whether a vCPU still holds one of KVM's locks (none may at the end of a run). */
  get locksHeld(): boolean {
    const mmu = this.mmuLock;
    return mmu.writer !== null || mmu.readers.size > 0 || this.slotsLock.holder !== null;
  }

  metrics(out: Record<string, number>): void {
    this.exits.metrics(out);
    const mmu = this.mmuLock.stats;
    out['kvm.mmu_lock.acquisitions'] = mmu.acquisitions;
    out['kvm.mmu_lock.waits'] = mmu.contended;
    out['kvm.mmu_lock.wait_ns'] = mmu.wait.sum;
    out['kvm.slots_lock.acquisitions'] = this.slotsLock.stats.acquisitions;
    out['kvm.slots_lock.waits'] = this.slotsLock.stats.contended;
    out['kvm.slots_lock.wait_ns'] = this.slotsLock.stats.wait.sum;
    out['kvm.ret_pf_retry'] = this.retries;
  }
}
