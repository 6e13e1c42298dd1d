import type { Sim, WaitStyle } from './sim.ts';
import { CONTINUE, SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { ObservedLock } from './observer.ts';

/**
 * A counting resource with `capacity` units and FIFO waiters (a pool of host worker threads or
 * host CPUs, the servers of an M/M/c queue). Waiters sleep by default; `waiters: 'stall'` keeps
 * a waiter's CPU (a vCPU inside a VM exit waiting for a host CPU). Keeps a lock's statistics.
 */
export class Semaphore implements Blocker, ObservedLock {
  readonly kind = 'semaphore' as const;
  inUse = 0;
  private readonly queue: Process<any>[] = [];
  private readonly holders = new Map<Process<any>, number>();
  readonly stats: LockStats;
  /** Integral of units in use over time, for utilisation. */
  private busyArea = 0;
  private since = 0;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly capacity: number,
    readonly waiters: WaitStyle = 'sleep',
  ) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'semaphore capacity must be a positive integer', { name, capacity });
    this.stats = new LockStats(name);
    sim.blockers.push(this);
  }

  acquire(): Yield {
    const sim = this.sim;
    const p = sim.running();
    if (this.inUse < this.capacity && this.queue.length === 0) {
      this.grant(p, 0);
      return CONTINUE;
    }
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, 'shared', this.holderNames());
    this.queue.push(sim.park(this, this.waiters));
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
    if (this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.grant(next, sim.now - next.blockedSince);
      sim.unpark(next);
    }
  }

  /** Mean number of units in use over [0, now] divided by capacity. */
  utilisation(): number {
    this.account();
    return this.sim.now === 0 ? 0 : this.busyArea / (this.sim.now * this.capacity);
  }

  /** Unit-nanoseconds in use over [0, now] (host CPU time, for a pool of CPUs). */
  busyNs(): number {
    this.account();
    return this.busyArea;
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
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
  }

  holderNames(): string[] {
    return [...this.holders.keys()].map((p) => p.name);
  }
}
