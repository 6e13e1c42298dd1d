import type { Schedulable } from './event_queue.ts';
import type { Sim, Timer } from './sim.ts';
import type { HostCpus } from './host_cpus.ts';
import type { Duration } from './clock.ts';
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
  /**
   * The host CPUs this CPU runs on: a guest vCPU (or a host thread's own CPU) is a thread of the
   * host and holds one of them whenever it is not idle. Waiting for one is `steal` time. Without
   * it (the default) the CPU is hardware, or its host is not modelled.
   */
  host?: HostCpus;
  /**
   * Called when the CPU gets a host CPU other than the one it last ran on (only for from >= 0
   * and from !== to); returns ns the thread pays on the new host CPU before it continues,
   * accounted as stall: TDX's tdx_vcpu_load() flushing the vCPU off its previous CPU
   * (TDH.VP.FLUSH by IPI), for instance.
   */
  onHostCpuChange?: (from: number, to: number) => Duration;
}

/** 'steal': the CPU has a thread to run but waits for a host CPU (see CpuOptions.host). */
export type CpuState = 'idle' | 'busy' | 'spin' | 'stall' | 'steal';

/** Time in each state since the CPU was made; the five add up to the elapsed time. */
export interface CpuAccounting {
  busyNs: number;
  spinNs: number;
  stallNs: number;
  idleNs: number;
  stealNs: number;
}

/**
 * A CPU (a guest vCPU or a host CPU) runs one thread at a time. A thread owns its CPU from the
 * moment it gets it until it blocks (sleep, event, mutex); computing, spinning on a spinlock,
 * stalling in a VM exit and driving a memory transfer keep it. Normal threads share the CPU in
 * round-robin slices; background threads run when no normal thread wants the CPU, or for their
 * configured share. A thread with preemption or interrupts disabled is never preempted, and a
 * stretch like that longer than the soft-lockup threshold is reported.
 *
 * With `host` set the CPU is itself a thread of the host (a vCPU): it needs a host CPU from the
 * pool to run anything, asks for one when it goes from idle to running a thread and gives it
 * back as soon as it goes idle. While it waits (state 'steal') its owner stays its owner but
 * does not run; the pool may also take the host CPU back in the middle of a compute burst, which
 * resumes when the CPU gets one again (see HostCpus for the policy). Guest time slices are
 * measured in task-clock time, which excludes steal (CONFIG_PARAVIRT_TIME_ACCOUNTING).
 */
export class Cpu implements Schedulable {
  readonly kindId: number;
  /** Position in sim.cpus (the order CPUs were made). */
  readonly index: number;
  owner: Process<any> | null = null;
  readonly sliceNs: number;
  readonly backgroundShare: number;
  readonly host: HostCpus | null;
  /** The host CPU held, or -1. Written by this CPU only, in the hooks HostCpus calls. */
  hostCpu = -1;
  /** The host CPU last held, or -1 before the first. */
  lastHostCpu = -1;
  /**
   * The owner cannot run yet: the CPU waits for a host CPU (steal), or pays onHostCpuChange's
   * stall on the one it just got.
   */
  awaitingHost = false;
  /** Since when the CPU has waited in the host's run queue (valid while it waits). */
  hostWaitSince = 0;
  private readonly onHostCpuChange: ((from: number, to: number) => Duration) | null;
  private hostChangeTimer: Timer | null = null;
  /** The host slice end of a spinning owner, made on first use (see armSpinSliceEnd). */
  private spinSliceEnd: SpinSliceEnd | null = null;
  private readonly resumeSpin = (): void => this.setState('spin');

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
  private readonly spent: CpuAccounting = { busyNs: 0, spinNs: 0, stallNs: 0, idleNs: 0, stealNs: 0 };
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
    this.host = options.host ?? null;
    this.onHostCpuChange = options.onHostCpuChange ?? null;
    assert(this.onHostCpuChange === null || this.host !== null, 'onHostCpuChange needs a host', name);
    this.stateSince = sim.now;
    this.index = sim.cpus.length;
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
      assert(!this.awaitingHost, 'a thread ran while its CPU waited for a host CPU', p);
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
    if (this.owner !== p) return;
    if (this.awaitingHost) {
      // p has not run since it took the CPU: it leaves it as a queued thread would, and the next
      // thread inherits the host CPU (or the place in the host's run queue).
      if (this.hostChangeTimer !== null) {
        this.hostChangeTimer.cancel();
        this.hostChangeTimer = null;
        this.awaitingHost = false;
      }
      this.owner = null;
      this.dispatch();
      return;
    }
    if (this.bursting) this.stopBurst(p);
    this.setState('busy');
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
      case 'steal': this.spent.stealNs += d; break;
    }
    const spinStarts = s === 'spin' && this.state !== 'spin';
    this.state = s;
    this.stateSince = now;
    if (spinStarts && this.host !== null) this.armSpinSliceEnd();
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
    if (this.host !== null && !this.guestSliceOver(p)) {
      // The burst was cut at a host slice end: startBurst yields the host CPU or carries on.
      this.startBurst(p);
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
    if (this.host !== null && this.hostCpu < 0) {
      this.awaitHost();
      return;
    }
    this.setState('busy');
    this.grant(p);
  }

  // ---- Host CPUs (CpuOptions.host) -----------------------------------------------------------

  /** The owner needs a host CPU: it gets one now (hostGranted runs first) or waits for one. */
  private awaitHost(): void {
    if (this.awaitingHost) return; // already in the run queue: the new owner waits in its place
    this.awaitingHost = true;
    this.hostWaitSince = this.sim.now;
    this.host!.request(this);
    if (this.hostCpu < 0) this.setState('steal');
  }

  /** HostCpus gives this CPU host CPU `to`; it last ran on `from` (-1: never). */
  hostGranted(to: number, from: number): void {
    assert(this.awaitingHost && this.hostCpu < 0 && this.owner !== null, 'host CPU granted to a CPU that did not ask', this);
    // Guest slices run in task-clock time, which excludes steal (the owner's share of it: it
    // may have taken the CPU while the CPU already waited).
    if (this.state === 'steal') this.sliceStart += this.sim.now - Math.max(this.hostWaitSince, this.sliceStart);
    this.hostCpu = to;
    this.lastHostCpu = to;
    const change = this.onHostCpuChange;
    if (change !== null && from >= 0 && from !== to) {
      const ns = Math.round(change(from, to));
      if (!(ns >= 0 && ns < Infinity)) assert(false, 'onHostCpuChange must return finite, non-negative ns', { cpu: this.name, ns });
      if (ns > 0) {
        this.setState('stall');
        this.hostChangeTimer = this.sim.schedule(ns, () => {
          this.hostChangeTimer = null;
          this.runOwner(true);
        }, `host cpu change ${this.name}`);
        return;
      }
    }
    // Granted at once (from idle), nothing queued on this CPU can outrank the owner it just took.
    this.runOwner(this.state === 'steal');
  }

  /**
   * HostCpus takes the host CPU back: a slice ended during a compute burst, or the burst about
   * to start yields it. The owner stays the owner; its burst resumes when a host CPU comes back
   * (onCpuGranted is null, so grant() restarts it).
   */
  hostPreempted(): void {
    const p = this.owner!;
    assert(!this.awaitingHost && this.hostCpu >= 0, 'host preemption of a CPU without a host CPU', this);
    assert(this.state === 'busy' || this.state === 'spin', 'host preemption of a stalled CPU', this);
    if (this.bursting) this.stopBurst(p);
    // A spinner spins again when it is back, unless its wait ends meanwhile (unpark replaces this).
    if (this.state === 'spin') p.onCpuGranted = this.resumeSpin;
    this.hostCpu = -1;
    this.awaitingHost = true;
    this.hostWaitSince = this.sim.now;
    this.setState('steal');
  }

  /** The CPU holds a host CPU again: its owner runs, unless a more urgent thread queued meanwhile. */
  private runOwner(waited: boolean): void {
    this.awaitingHost = false;
    const p = this.owner!;
    if (waited && this.outranked(p)) {
      this.queueOf(p).unshift(p);
      this.owner = null;
      this.dispatch();
      return;
    }
    this.setState('busy');
    this.grant(p);
  }

  /** Idle: the host CPU goes back at once (or the CPU leaves the run queue). */
  private leaveHost(): void {
    if (this.hostChangeTimer !== null) {
      this.hostChangeTimer.cancel();
      this.hostChangeTimer = null;
    }
    const i = this.hostCpu;
    if (i < 0 && !this.awaitingHost) return;
    this.hostCpu = -1;
    this.awaitingHost = false;
    this.host!.release(this, i);
  }

  /** A thread that queued while p's CPU waited for a host CPU would have preempted p. */
  private outranked(p: Process<any>): boolean {
    if (p.priority === Priority.Normal || !this.preemptible(p)) return false;
    if (this.normalQueue.length > 0) return p.priority === Priority.Idle || this.backgroundShare === 0;
    return p.priority === Priority.Idle && this.backgroundQueue.length > 0;
  }

  /**
   * A Cpu began to wait for a host CPU: a burst started with nobody waiting ends at the host
   * slice end, and a spinning owner gets a slice end too.
   */
  hostSliceCut(): void {
    if (this.state === 'spin') this.armSpinSliceEnd();
    if (!this.bursting) return;
    const end = this.host!.sliceEndOf(this);
    if (end < this.burstEnd) {
      this.burstEnd = end;
      this.sim.queue.push(end, this, ++this.gen);
    }
  }

  /**
   * While the owner spins and a Cpu waits, an event at the owner's host slice end. Spinning is
   * guest code to the host, preempted like a burst; without this, vCPUs spinning on a lock whose
   * holder's vCPU was preempted could hold every host CPU forever. An event left behind by a
   * spin that ended early does nothing (it still moves the clock if it is the run's last).
   */
  private armSpinSliceEnd(): void {
    const host = this.host!;
    if (host.waiting === 0 || this.hostCpu < 0) return;
    const at = host.sliceEndOf(this);
    let cut = this.spinSliceEnd;
    if (cut === null) cut = this.spinSliceEnd = new SpinSliceEnd(this.sim.registerKind(`host slice end ${this.name}`), (aux) => this.spinSliceEnded(aux));
    if (at >= cut.at) return;
    cut.at = at;
    this.sim.queue.push(at, cut, ++cut.gen);
  }

  private spinSliceEnded(aux: number): boolean {
    const cut = this.spinSliceEnd!;
    if (aux !== cut.gen) return false;
    cut.at = Infinity;
    if (this.state !== 'spin' || this.hostCpu < 0) return false;
    const host = this.host!;
    // Spinners taking turns with nothing else left to happen would do so forever: stop, and
    // the run ends with the deadlock reported.
    if (host.onlySpinnersLeft()) return true;
    if (host.mustYield(this)) host.preempt(this);
    else this.armSpinSliceEnd();
    return true;
  }

  /** The owner can only go on spinning: it spins on its host CPU, or waits for one to spin again. */
  onlySpins(): boolean {
    const p = this.owner;
    if (p === null) return false;
    if (this.hostCpu >= 0) return this.state === 'spin';
    return this.awaitingHost && p.onCpuGranted === this.resumeSpin && !this.outranked(p);
  }

  /** Is a host slice end of a spinning owner scheduled (perhaps left behind by a spin that ended)? */
  spinSliceEndPending(): boolean {
    return this.spinSliceEnd !== null && this.spinSliceEnd.at !== Infinity;
  }

  /** Did p's burst reach a guest slice end (the only cut a CPU without a host makes)? */
  private guestSliceOver(p: Process<any>): boolean {
    return this.preemptible(p) && this.hasCompetitor(p) && this.sim.now >= this.sliceEnd(p);
  }

  /** Is the owner in a compute burst (guest code running)? */
  get computing(): boolean {
    return this.bursting;
  }

  /** For deadlock reports: p owns this CPU, which waits for a host CPU. */
  hostWaitOf(p: Process<any>): string | null {
    if (this.host === null || this.owner !== p || this.hostCpu >= 0 || !this.awaitingHost) return null;
    return `its CPU ${this.name} waits since t=${this.hostWaitSince}ns for ${this.host.describe()}`;
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
      if (this.host !== null) this.leaveHost();
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
    const host = this.host;
    if (host !== null && host.waiting > 0) {
      if (host.mustYield(this)) {
        host.preempt(this);
        return;
      }
      end = Math.min(end, host.sliceEndOf(this));
    }
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
    const host = this.host === null ? ''
      : this.hostCpu >= 0 ? `, on host CPU ${this.hostCpu} of ${this.host.name}`
        : this.awaitingHost ? `, waiting for a host CPU of ${this.host.name} since t=${this.hostWaitSince}ns` : '';
    return `cpu ${this.name} (owner ${this.owner?.name ?? 'none'}${host})`;
  }
}

/** The host slice end of a spinning CPU: an event apart from the CPU's bursts, with its own generation. */
class SpinSliceEnd implements Schedulable {
  gen = 0;
  /** When the pending event fires, or Infinity. */
  at = Infinity;
  constructor(
    readonly kindId: number,
    readonly fire: (aux: number) => boolean,
  ) {}
}
