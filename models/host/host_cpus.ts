import { LockStats, SUSPEND, type Blocker, type Process, type Sim, type Yield } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';

/**
 * The host CPUs that run vCPU threads while they are out of the guest: KVM's exit handling,
 * SEAMCALLs, host page clearing. A vCPU taking an exit needs one; with fewer host CPUs than
 * vCPUs in exits at once, exits queue for them (FIFO) and the waiting vCPU stays stalled (it
 * keeps its vCPU: sim.park(..., 'stall')). Guest-mode execution is the guest model's CPUs and is
 * not charged here. (The engine's Semaphore would do, were its waiters able to keep their CPU.)
 */
export class HostCpus implements Blocker {
  readonly name = 'host_cpus';
  inUse = 0;
  readonly stats: LockStats;
  private readonly waiters: Process<any>[] = [];
  private busyArea = 0;
  private since = 0;

  constructor(
    readonly sim: Sim,
    readonly capacity: number,
  ) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'hostCpus must be a positive integer', capacity);
    this.stats = new LockStats(this.name);
  }

  /** Takes a host CPU for the calling vCPU thread, stalling it while none is free (yield it). */
  acquire(): Yield {
    const sim = this.sim;
    if (this.inUse < this.capacity && this.waiters.length === 0) {
      this.grant(0);
      return sim.continueWith(undefined);
    }
    this.stats.contended++;
    this.waiters.push(sim.park(this, 'stall'));
    return SUSPEND;
  }

  release(): void {
    assert(this.inUse > 0, 'host CPU released while none is in use', this.inUse);
    this.account();
    this.inUse--;
    const next = this.waiters.shift();
    if (next !== undefined) {
      this.grant(this.sim.now - next.blockedSince);
      this.sim.unpark(next);
    }
  }

  cancelWait(p: Process<any>): void {
    const i = this.waiters.indexOf(p);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  /** Mean fraction of host CPUs busy with exits over [0, now]. */
  utilisation(): number {
    this.account();
    return this.sim.now === 0 ? 0 : this.busyArea / (this.sim.now * this.capacity);
  }

  /** Host CPU time spent in exits so far, ns. */
  busyNs(): number {
    this.account();
    return this.busyArea;
  }

  private grant(waited: number): void {
    this.account();
    this.inUse++;
    this.stats.acquisitions++;
    this.stats.wait.record(waited);
  }

  private account(): void {
    const now = this.sim.now;
    this.busyArea += this.inUse * (now - this.since);
    this.since = now;
  }
}
