import type { Sim, WaitStyle } from './sim.ts';
import { CONTINUE, SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { ObservedLock } from './observer.ts';

/**
 * A mutual-exclusion lock with FIFO hand-over. Waiters sleep (leave their CPU) by default;
 * `waiters: 'stall'` keeps a waiter's CPU, as a vCPU waiting on a host mutex inside a VM exit.
 */
export class Mutex implements Blocker, ObservedLock {
  readonly kind = 'mutex' as const;
  holder: Process<any> | null = null;
  private heldSince = 0;
  private readonly queue: Process<any>[] = [];
  readonly stats: LockStats;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly waiters: WaitStyle = 'sleep',
  ) {
    this.stats = new LockStats(name);
    sim.blockers.push(this);
  }

  acquire(): Yield {
    const sim = this.sim;
    const p = sim.current;
    if (p === null) return sim.running() as never; // asserts: outside a process
    if (this.holder === null) {
      this.grant(p, 0);
      return CONTINUE;
    }
    assert(this.holder !== p, 'recursive acquire of a mutex', this);
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, 'exclusive', [this.holder.name]);
    sim.park(this, this.waiters);
    this.queue.push(p);
    return SUSPEND;
  }

  release(): void {
    const sim = this.sim;
    const p = this.holder;
    assert(p !== null && p === sim.current, 'mutex released by a process that does not hold it', this);
    const held = sim.now - this.heldSince;
    this.stats.hold.record(held);
    if (sim.observer !== null) sim.observer.lockRelease(p, this, 'exclusive', held);
    if (this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.grant(next, sim.now - next.blockedSince);
      sim.unpark(next);
    } else {
      this.holder = null;
    }
  }

  private grant(p: Process<any>, waited: number): void {
    this.holder = p;
    this.heldSince = this.sim.now;
    this.stats.acquisitions++;
    this.stats.wait.record(waited);
    if (this.sim.observer !== null) this.sim.observer.lockAcquire(p, this, 'exclusive', waited);
  }

  cancelWait(p: Process<any>): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
  }

  holderNames(): string[] {
    return this.holder === null ? [] : [this.holder.name];
  }

  describe(): string {
    return `mutex ${this.name} (holder ${this.holder?.name ?? 'none'}, ${this.queue.length} waiting)`;
  }
}
