import type { Schedulable } from './event_queue.ts';
import type { Sim } from './sim.ts';
import { Priority, type Process } from './process.ts';
import { assert } from './assert.ts';

export interface CpuOptions {
  /**
   * Round-robin time slice between runnable threads of the same class. Default 4 ms: one tick
   * at CONFIG_HZ=250, the order of CFS's scheduling latency.
   */
  sliceNs?: number;
  /**
   * Share of the CPU guaranteed to background threads while normal threads want it, in [0, 1).
   * 0 (the default) gives background threads only idle time, like SCHED_IDLE.
   */
  backgroundShare?: number;
}

export type CpuState = 'idle' | 'busy' | 'spin' | 'stall';

export interface CpuAccounting {
  busyNs: number;
  spinNs: number;
  stallNs: number;
  idleNs: number;
}

/**
 * A CPU (a guest vCPU or a host CPU) runs one thread at a time. A thread owns its CPU from the
 * moment it gets it until it blocks (sleep, event, mutex); computing, spinning on a spinlock,
 * stalling in a VM exit and driving a memory transfer keep it. Normal threads share the CPU in
 * round-robin slices; background threads run when no normal thread wants the CPU, or for their
 * configured share. A thread with preemption or interrupts disabled is never preempted, and a
 * stretch like that longer than the soft-lockup threshold is reported.
 */
export class Cpu implements Schedulable {
  readonly kindId: number;
  owner: Process<any> | null = null;
  readonly sliceNs: number;
  readonly backgroundShare: number;

  private readonly normalQueue: Process<any>[] = [];
  private readonly backgroundQueue: Process<any>[] = [];
  private readonly idleQueue: Process<any>[] = [];
  private gen = 0;
  private bursting = false;
  private burstStart = 0;
  private burstEnd = 0;
  private sliceStart = 0;
  private preferBackground = false;

  state: CpuState = 'idle';
  private stateSince = 0;
  private readonly spent: CpuAccounting = { busyNs: 0, spinNs: 0, stallNs: 0, idleNs: 0 };
  /** Start of the current non-preemptible stretch, or -1. */
  private atomicSince = -1;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    options: CpuOptions = {},
  ) {
    this.kindId = sim.registerKind(`cpu ${name}`);
    this.sliceNs = options.sliceNs ?? 4_000_000;
    this.backgroundShare = options.backgroundShare ?? 0;
    assert(this.backgroundShare >= 0 && this.backgroundShare < 1, 'backgroundShare must be in [0, 1)', this.backgroundShare);
    this.stateSince = sim.now;
    sim.cpus.push(this);
  }

  // ---- Threads -------------------------------------------------------------------------------

  attach(p: Process<any>): void {
    assert(p.cpu === this, 'thread attached to another CPU', p);
  }

  detach(p: Process<any>): void {
    this.removeFromQueues(p);
    if (this.owner === p) {
      assert(p.preemptCount === 0 && p.irqsOff === 0, 'thread exited with preemption or interrupts disabled', p);
      this.release(p);
    }
  }

  /**
   * Gets p onto this CPU, then runs `then` (or starts p's compute burst when `then` is null).
   * p may have to queue behind the owner; a background owner is preempted by a normal thread.
   */
  ensureOnCpu(p: Process<any>, then: (() => void) | null): void {
    p.onCpuGranted = then;
    if (this.owner === p) {
      if (this.mustYield(p)) {
        this.queueOf(p).push(p);
        this.owner = null;
        this.dispatch();
      } else {
        this.grant(p);
      }
    } else if (this.owner === null) {
      this.take(p);
    } else {
      this.queueOf(p).push(p);
      this.considerPreempting(p);
    }
  }

  /**
   * cond_resched(): if p should give way (a more urgent thread waits, or p's slice is over while
   * an equal waits), p goes back to the run queue and the yield resumes it when it next gets the
   * CPU; otherwise it continues at once. Returns whether p gave the CPU up.
   */
  condResched(p: Process<any>): boolean {
    if (this.owner !== p || !this.mustYield(p)) return false;
    p.onCpuGranted = () => this.sim.wake(p);
    this.queueOf(p).push(p);
    this.owner = null;
    this.dispatch();
    return true;
  }

  /** The owner blocks (or exits): the CPU goes to the next runnable thread. */
  release(p: Process<any>): void {
    assert(this.owner === p, 'releasing a CPU the thread does not own', p);
    assert(!this.bursting, 'releasing a CPU in the middle of a compute burst', p);
    this.owner = null;
    this.dispatch();
  }

  /** Interrupt support: forget any CPU wait or burst of p. */
  cancelFor(p: Process<any>): void {
    this.removeFromQueues(p);
    p.onCpuGranted = null;
    if (this.owner === p && this.bursting) this.stopBurst(p);
    if (this.owner === p) this.setState('busy');
  }

  // ---- Accounting ----------------------------------------------------------------------------

  setState(s: CpuState): void {
    const now = this.sim.now;
    const d = now - this.stateSince;
    switch (this.state) {
      case 'idle': this.spent.idleNs += d; break;
      case 'busy': this.spent.busyNs += d; break;
      case 'spin': this.spent.spinNs += d; break;
      case 'stall': this.spent.stallNs += d; break;
    }
    this.state = s;
    this.stateSince = now;
  }

  accounting(): CpuAccounting {
    this.setState(this.state);
    return { ...this.spent };
  }

  closeAccounting(): void {
    this.setState(this.state);
    if (this.atomicSince >= 0 && this.owner !== null) this.checkSoftLockup(this.owner);
  }

  // ---- Preemption and the soft-lockup watchdog ----------------------------------------------

  /** p enters a non-preemptible stretch (preempt_disable or local_irq_disable). */
  enterAtomic(p: Process<any>): void {
    if (this.atomicSince < 0 && this.owner === p) this.atomicSince = this.sim.now;
  }

  /** p may have left its non-preemptible stretch. */
  exitAtomic(p: Process<any>): void {
    if (p.preemptCount > 0 || p.irqsOff > 0 || this.atomicSince < 0) return;
    this.checkSoftLockup(p);
    this.atomicSince = -1;
  }

  /** touch_softlockup_watchdog(): the stretch restarts now. */
  touchWatchdog(): void {
    if (this.atomicSince >= 0) this.atomicSince = this.sim.now;
  }

  private checkSoftLockup(p: Process<any>): void {
    const stuck = this.sim.now - this.atomicSince;
    if (stuck > this.sim.softLockupNs) {
      this.sim.reportSoftLockup({ cpu: this.name, thread: p.name, at: this.atomicSince + this.sim.softLockupNs, stuckNs: stuck });
    }
  }

  // ---- Scheduling internals ------------------------------------------------------------------

  fire(aux: number): boolean {
    if (aux !== this.gen) return false;
    const p = this.owner!;
    this.stopBurst(p);
    if (p.computeRemaining <= 0) {
      p.computeRemaining = 0;
      this.sim.resume(p);
      return true;
    }
    // The slice ended with work left: round robin.
    if (p.priority === Priority.Normal && this.backgroundQueue.length > 0 && this.backgroundShare > 0) {
      this.preferBackground = true;
    }
    this.queueOf(p).push(p);
    this.owner = null;
    this.dispatch();
    return true;
  }

  private take(p: Process<any>): void {
    this.owner = p;
    this.sliceStart = this.sim.now;
    this.setState('busy');
    this.grant(p);
  }

  private grant(p: Process<any>): void {
    const then = p.onCpuGranted;
    p.onCpuGranted = null;
    if (then !== null) then();
    else this.startBurst(p);
  }

  private dispatch(): void {
    const next = this.pick();
    if (next === null) {
      this.setState('idle');
      return;
    }
    this.take(next);
  }

  private pick(): Process<any> | null {
    if (this.preferBackground && this.backgroundQueue.length > 0) {
      this.preferBackground = false;
      return this.backgroundQueue.shift()!;
    }
    if (this.normalQueue.length > 0) return this.normalQueue.shift()!;
    if (this.backgroundQueue.length > 0) return this.backgroundQueue.shift()!;
    if (this.idleQueue.length > 0) return this.idleQueue.shift()!;
    return null;
  }

  private startBurst(p: Process<any>): void {
    const now = this.sim.now;
    this.setState('busy');
    let end = now + p.computeRemaining;
    if (this.preemptible(p) && this.hasCompetitor(p)) end = Math.min(end, Math.max(now, this.sliceEnd(p)));
    this.bursting = true;
    this.burstStart = now;
    this.burstEnd = end;
    this.sim.queue.push(end, this, ++this.gen);
  }

  private stopBurst(p: Process<any>): void {
    const elapsed = this.sim.now - this.burstStart;
    p.computeRemaining -= elapsed;
    p.cpuTimeNs += elapsed;
    this.bursting = false;
    this.gen++;
  }

  private considerPreempting(newcomer: Process<any>): void {
    const owner = this.owner!;
    if (!this.bursting || !this.preemptible(owner)) return;
    const now = this.sim.now;
    const inShare = owner.priority === Priority.Background && this.backgroundShare > 0 && now < this.sliceEnd(owner);
    if (newcomer.priority < owner.priority && !inShare) {
      this.stopBurst(owner);
      this.queueOf(owner).unshift(owner);
      this.owner = null;
      this.dispatch();
      return;
    }
    const end = Math.max(now, this.sliceEnd(owner));
    if (this.hasCompetitor(owner) && this.burstEnd > end) {
      this.burstEnd = end;
      this.sim.queue.push(end, this, ++this.gen);
    }
  }

  private mustYield(p: Process<any>): boolean {
    if (!this.preemptible(p) || !this.hasCompetitor(p)) return false;
    if (p.priority === Priority.Idle) return true;
    if (p.priority === Priority.Background && this.normalQueue.length > 0 && this.backgroundShare === 0) return true;
    return this.sim.now >= this.sliceEnd(p);
  }

  /** Is a thread waiting that may take the CPU from p when p's slice ends (or at once)? */
  private hasCompetitor(p: Process<any>): boolean {
    if (this.normalQueue.length > 0) return true;
    if (this.backgroundQueue.length > 0) return p.priority !== Priority.Normal || this.backgroundShare > 0;
    return this.idleQueue.length > 0 && p.priority === Priority.Idle;
  }

  private sliceEnd(p: Process<any>): number {
    const share = this.backgroundShare;
    const slice = p.priority === Priority.Background && share > 0 ? (this.sliceNs * share) / (1 - share) : this.sliceNs;
    return this.sliceStart + Math.round(slice);
  }

  private preemptible(p: Process<any>): boolean {
    return p.preemptCount === 0 && p.irqsOff === 0;
  }

  private queueOf(p: Process<any>): Process<any>[] {
    if (p.priority === Priority.Normal) return this.normalQueue;
    return p.priority === Priority.Background ? this.backgroundQueue : this.idleQueue;
  }

  private removeFromQueues(p: Process<any>): void {
    for (const q of [this.normalQueue, this.backgroundQueue, this.idleQueue]) {
      const i = q.indexOf(p);
      if (i >= 0) q.splice(i, 1);
    }
  }

  /** Threads waiting for this CPU, for reports. */
  waiting(): string[] {
    return [...this.normalQueue, ...this.backgroundQueue, ...this.idleQueue].map((p) => p.name);
  }

  describe(): string {
    return `cpu ${this.name} (owner ${this.owner?.name ?? 'none'})`;
  }
}
