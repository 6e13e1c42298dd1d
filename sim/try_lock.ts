import type { Sim } from './sim.ts';
import type { Process } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { LockMode, ObservedLock } from './observer.ts';

/**
 * The answer of a try-lock. 'busy' is the TDX module's TDX_OPERAND_BUSY; 'busy_host_priority'
 * its TDX_OPERAND_BUSY_HOST_PRIORITY (a guest-side acquire refused because the host side failed
 * to get the lock and now has priority).
 */
export type TryLockAnswer = 'acquired' | 'busy' | 'busy_host_priority';

/** Which side asks: the host (a SEAMCALL from the VMM) or the guest (a TDCALL). */
export type LockSide = 'host' | 'guest';

interface Holding {
  who: Process<any> | null;
  mode: LockMode;
  since: number;
}

/**
 * The TDX module's shared/exclusive try-lock ([tdx-module:src/common/helpers/tdx_locks.h], acquire_sharex_lock_hp_*):
 * it never waits. A refused host-side acquire sets the host-priority bit; while it is set,
 * guest-side acquires are refused, until a host-side acquire succeeds and clears it. The caller
 * decides whether to retry; the answer is a return value, never an assertion.
 */
export class TryLock implements ObservedLock {
  readonly kind = 'trylock' as const;
  hostPriority = false;
  private readonly holdings: Holding[] = [];
  readonly stats: LockStats;

  /**
   * hostPriority: whether a refused host-side acquire blocks guest-side acquires until the host
   * gets the lock (the module's *_hp_* locks); false for locks without that rule.
   */
  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly withHostPriority = true,
  ) {
    this.stats = new LockStats(name);
  }

  get exclusive(): boolean {
    return this.holdings.length === 1 && this.holdings[0]!.mode === 'exclusive';
  }

  get sharedCount(): number {
    return this.holdings.length > 0 && this.holdings[0]!.mode === 'shared' ? this.holdings.length : 0;
  }

  tryAcquire(mode: LockMode, side: LockSide = 'host'): TryLockAnswer {
    const sim = this.sim;
    if (side === 'guest' && this.hostPriority) return this.refuse(mode, 'busy_host_priority');
    const free = mode === 'exclusive' ? this.holdings.length === 0 : !this.exclusive;
    if (!free) {
      if (side === 'host' && this.withHostPriority) this.hostPriority = true;
      return this.refuse(mode, 'busy');
    }
    if (side === 'host') this.hostPriority = false;
    this.holdings.push({ who: sim.current, mode, since: sim.now });
    this.stats.acquisitions++;
    this.stats.wait.record(0);
    if (sim.observer !== null && sim.current !== null) sim.observer.lockAcquire(sim.current, this, mode, 0);
    return 'acquired';
  }

  release(mode: LockMode): void {
    const sim = this.sim;
    let i = this.holdings.findIndex((h) => h.mode === mode && h.who === sim.current);
    if (i < 0) i = this.holdings.findIndex((h) => h.mode === mode);
    assert(i >= 0, `try-lock released ${mode} while not held that way`, this);
    const [h] = this.holdings.splice(i, 1);
    const held = sim.now - h!.since;
    this.stats.hold.record(held);
    if (sim.observer !== null && sim.current !== null) sim.observer.lockRelease(sim.current, this, mode, held);
  }

  private refuse(mode: LockMode, answer: TryLockAnswer): TryLockAnswer {
    this.stats.busy++;
    const sim = this.sim;
    if (sim.observer !== null) sim.observer.lockBusy(sim.current, this, mode, answer);
    return answer;
  }

  holderNames(): string[] {
    return this.holdings.map((h) => h.who?.name ?? 'engine');
  }

  describe(): string {
    return `try-lock ${this.name} (${this.holdings.length} holders${this.hostPriority ? ', host priority' : ''})`;
  }
}
