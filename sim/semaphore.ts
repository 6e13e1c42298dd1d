import type { Sim } from './sim.ts';
import { CONTINUE, SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { ObservedLock } from './observer.ts';

/**
 * A counting resource with `capacity` units, FIFO waiters that sleep (a pool of host worker
 * threads, the servers of an M/M/c queue). Keeps the same statistics as a lock.
 */
export class Semaphore implements Blocker, ObservedLock {
  readonly kind = 'semaphore' as const;
  inUse = 0;
  private readonly waiters: Process<any>[] = [];
  private readonly holders = new Map<Process<any>, number>();
  readonly stats: LockStats;
  /** Integral of units in use over time, for utilisation. */
  private busyArea = 0;
  private since = 0;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly capacity: number,
  ) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'semaphore capacity must be a positive integer', { name, capacity });
    this.stats = new LockStats(name);
    sim.blockers.push(this);
  }

  acquire(): Yield {
    const sim = this.sim;
    const p = sim.running();
    if (this.inUse < this.capacity && this.waiters.length === 0) {
      this.grant(p, 0);
      return CONTINUE;
    }
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, 'shared', this.holderNames());
    sim.block(this);
    this.waiters.push(p);
    return SUSPEND;
  }

  release(): void {
    const sim = this.sim;
    const p = sim.running();
    const since = this.holders.get(p);
    assert(since !== undefined, 'semaphore released by a process that holds no unit', this);
    this.holders.delete(p);
    this.stats.hold.record(sim.now - since);
    if (sim.observer !== null) sim.observer.lockRelease(p, this, 'shared', sim.now - since);
    this.account();
    this.inUse--;
    if (this.waiters.length > 0) {
      const next = this.waiters.shift()!;
      this.grant(next, sim.now - next.blockedSince);
      sim.wake(next);
    }
  }

  /** Mean number of units in use over [0, now] divided by capacity. */
  utilisation(): number {
    this.account();
    return this.sim.now === 0 ? 0 : this.busyArea / (this.sim.now * this.capacity);
  }

  private grant(p: Process<any>, waited: number): void {
    this.account();
    this.inUse++;
    this.holders.set(p, this.sim.now);
    this.stats.acquisitions++;
    this.stats.wait.record(waited);
    if (this.sim.observer !== null) this.sim.observer.lockAcquire(p, this, 'shared', waited);
  }

  private account(): void {
    const now = this.sim.now;
    this.busyArea += this.inUse * (now - this.since);
    this.since = now;
  }

  cancelWait(p: Process<any>): void {
    const i = this.waiters.indexOf(p);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  holderNames(): string[] {
    return [...this.holders.keys()].map((p) => p.name);
  }
}
