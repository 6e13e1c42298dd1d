import type { Sim } from './sim.ts';
import { CONTINUE, SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';
import type { ObservedLock } from './observer.ts';

export interface SpinOptions {
  /** spin_lock_irqsave(): interrupts off as well as preemption. */
  irqsave?: boolean;
}

export interface SpinReleaseOptions {
  /** spin_unlock_irqrestore(): re-enable the interrupts the matching irqsave disabled. */
  irqrestore?: boolean;
}

/**
 * A spinlock. Holding or waiting for it disables preemption; a waiter spins on its CPU (the CPU
 * is busy but does no work) and waiters are served in FIFO order, as with the kernel's queued
 * spinlock. Threads without a CPU (plain processes in tests) wait without burning a CPU.
 */
export class Spinlock implements Blocker, ObservedLock {
  readonly kind = 'spinlock' as const;
  holder: Process<any> | null = null;
  private heldSince = 0;
  private readonly waiters: Process<any>[] = [];
  private readonly irqsaveOf = new Map<Process<any>, boolean>();
  readonly stats: LockStats;

  constructor(
    readonly sim: Sim,
    readonly name: string,
  ) {
    this.stats = new LockStats(name);
    sim.blockers.push(this);
  }

  acquire(options?: SpinOptions): Yield {
    const sim = this.sim;
    const p = sim.running();
    const irqsave = options?.irqsave === true;
    const cpu = p.cpu;
    if (cpu !== null && cpu.owner !== p) {
      // Get onto the CPU first; spinning needs one.
      p.blockedOn = this;
      p.blockedSince = sim.now;
      cpu.ensureOnCpu(p, () => {
        this.enter(p, irqsave);
        if (this.tryTake(p)) sim.wake(p);
      });
      return SUSPEND;
    }
    this.enter(p, irqsave);
    return this.tryTake(p) ? CONTINUE : SUSPEND;
  }

  release(options?: SpinReleaseOptions): void {
    const sim = this.sim;
    const p = this.holder;
    assert(p !== null && p === sim.current, 'spinlock released by a process that does not hold it', this);
    const held = sim.now - this.heldSince;
    this.stats.hold.record(held);
    if (sim.observer !== null) sim.observer.lockRelease(p, this, 'exclusive', held);
    if (this.waiters.length > 0) {
      const next = this.waiters.shift()!;
      this.irqsaveOf.delete(next);
      this.grant(next, sim.now - next.blockedSince);
      sim.unpark(next); // its CPU stops spinning (or, preempted by the host, resumes it later)
    } else {
      this.holder = null;
    }
    sim.preemptEnable();
    if (options?.irqrestore === true) sim.localIrqEnable();
  }

  /** spin_lock(_irqsave)'s entry for p, who may not be the running process (granted a CPU later). */
  private enter(p: Process<any>, irqsave: boolean): void {
    if (irqsave) this.sim.localIrqDisable(p);
    this.sim.preemptDisable(p);
    if (irqsave) this.irqsaveOf.set(p, true);
  }

  private tryTake(p: Process<any>): boolean {
    const sim = this.sim;
    if (this.holder === null) {
      this.irqsaveOf.delete(p);
      this.grant(p, 0);
      return true;
    }
    assert(this.holder !== p, 'recursive acquire of a spinlock (self-deadlock)', this);
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, 'exclusive', [this.holder.name]);
    p.blockedOn = this;
    p.blockedSince = sim.now;
    this.waiters.push(p);
    if (p.cpu !== null) p.cpu.setState('spin');
    return false;
  }

  private grant(p: Process<any>, waited: number): void {
    this.holder = p;
    this.heldSince = this.sim.now;
    this.stats.acquisitions++;
    this.stats.wait.record(waited);
    if (this.sim.observer !== null) this.sim.observer.lockAcquire(p, this, 'exclusive', waited);
  }

  /** An interrupted waiter stops spinning and undoes its preempt/irq disabling. */
  cancelWait(p: Process<any>): void {
    const i = this.waiters.indexOf(p);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    this.sim.preemptEnable(p);
    if (this.irqsaveOf.get(p) === true) this.sim.localIrqEnable(p);
    this.irqsaveOf.delete(p);
  }

  holderNames(): string[] {
    return this.holder === null ? [] : [this.holder.name];
  }

  describe(): string {
    return `spinlock ${this.name} (holder ${this.holder?.name ?? 'none'}, ${this.waiters.length} spinning)`;
  }
}
