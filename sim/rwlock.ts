import type { Sim, WaitStyle } from './sim.ts';
import { CONTINUE, SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { LockMode, ObservedLock } from './observer.ts';

/**
 * Who goes first when both readers and writers wait:
 * - writer-preferring (default): a waiting writer blocks new readers; on release a waiting
 *   writer goes before waiting readers (the kernel's rwsem hand-off is close to this);
 * - reader-preferring: readers enter whenever no writer holds the lock (writers can starve);
 * - fifo: strict arrival order; consecutive readers at the head enter together.
 */
export type RwPolicy = 'writer-preferring' | 'reader-preferring' | 'fifo';

interface Waiter {
  p: Process<any>;
  mode: LockMode;
}

/**
 * A reader/writer lock (shared/exclusive). Waiters sleep by default (an rw_semaphore);
 * `waiters: 'spin'` keeps them spinning on their CPU (an rwlock_t such as KVM's mmu_lock), and
 * `'stall'` keeps a vCPU waiting inside a VM exit.
 */
export class RwLock implements Blocker, ObservedLock {
  readonly kind = 'rwlock' as const;
  writer: Process<any> | null = null;
  readonly readers = new Map<Process<any>, number>();
  private writerSince = 0;
  private readonly queue: Waiter[] = [];
  readonly stats: LockStats;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly policy: RwPolicy = 'writer-preferring',
    readonly waiters: WaitStyle = 'sleep',
  ) {
    this.stats = new LockStats(name);
    sim.blockers.push(this);
  }

  acquire(mode: LockMode): Yield {
    const sim = this.sim;
    const p = sim.running();
    assert(this.writer !== p && !this.readers.has(p), 'recursive acquire of an rwlock', this);
    if (this.mayEnter(mode)) {
      this.grant(p, mode, 0);
      return CONTINUE;
    }
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, mode, this.holderNames());
    sim.park(this, this.waiters);
    this.queue.push({ p, mode });
    return SUSPEND;
  }

  release(mode: LockMode): void {
    const sim = this.sim;
    const p = sim.running();
    let held: number;
    if (mode === 'exclusive') {
      assert(this.writer === p, 'rwlock released exclusive by a non-holder', this);
      held = sim.now - this.writerSince;
      this.writer = null;
    } else {
      const since = this.readers.get(p);
      assert(since !== undefined, 'rwlock released shared by a non-holder', this);
      held = sim.now - since;
      this.readers.delete(p);
    }
    this.stats.hold.record(held);
    if (sim.observer !== null) sim.observer.lockRelease(p, this, mode, held);
    this.grantWaiters();
  }

  /** May a new arrival enter at once? */
  private mayEnter(mode: LockMode): boolean {
    if (this.policy === 'fifo' && this.queue.length > 0) return false;
    if (mode === 'exclusive') return this.writer === null && this.readers.size === 0;
    if (this.writer !== null) return false;
    if (this.policy === 'writer-preferring') return !this.queue.some((w) => w.mode === 'exclusive');
    return true;
  }

  private grantWaiters(): void {
    const q = this.queue;
    if (this.writer !== null) return;
    if (this.policy === 'fifo') {
      while (q.length > 0 && this.compatible(q[0]!.mode)) this.wakeWaiter(0);
      return;
    }
    const firstWriter = q.findIndex((w) => w.mode === 'exclusive');
    if (this.policy === 'writer-preferring' && firstWriter >= 0) {
      if (this.readers.size === 0) this.wakeWaiter(firstWriter);
      return;
    }
    for (let i = 0; i < q.length; ) {
      if (q[i]!.mode === 'shared') this.wakeWaiter(i);
      else i++;
    }
    const writerIndex = q.findIndex((w) => w.mode === 'exclusive');
    if (writerIndex >= 0 && this.readers.size === 0) this.wakeWaiter(writerIndex);
  }

  private compatible(mode: LockMode): boolean {
    return mode === 'shared' ? this.writer === null : this.writer === null && this.readers.size === 0;
  }

  private wakeWaiter(index: number): void {
    const [w] = this.queue.splice(index, 1);
    this.grant(w!.p, w!.mode, this.sim.now - w!.p.blockedSince);
    this.sim.unpark(w!.p);
  }

  private grant(p: Process<any>, mode: LockMode, waited: number): void {
    if (mode === 'exclusive') {
      this.writer = p;
      this.writerSince = this.sim.now;
    } else {
      this.readers.set(p, this.sim.now);
    }
    this.stats.acquisitions++;
    this.stats.wait.record(waited);
    if (this.sim.observer !== null) this.sim.observer.lockAcquire(p, this, mode, waited);
  }

  cancelWait(p: Process<any>): void {
    const i = this.queue.findIndex((w) => w.p === p);
    if (i >= 0) this.queue.splice(i, 1);
    this.grantWaiters();
  }

  holderNames(): string[] {
    if (this.writer !== null) return [this.writer.name];
    return [...this.readers.keys()].map((p) => p.name);
  }

  describe(): string {
    return `rwlock ${this.name} (${this.policy}, holders ${this.holderNames().join(',') || 'none'}, ${this.queue.length} waiting)`;
  }
}
