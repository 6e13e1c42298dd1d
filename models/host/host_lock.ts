import { LockStats, type LockMode, type ObservedLock, type Proc, type Process, type Sim, type SimEvent } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';

interface Waiter {
  p: Process<any>;
  mode: LockMode;
  since: number;
  granted: SimEvent<void>;
}

/**
 * A host kernel lock taken by a vCPU thread while it is out of the guest (in a VM exit): KVM's
 * mmu_lock (an rwlock_t, whose waiters spin) or a mutex such as kvm->slots_lock. Waiting keeps
 * the vCPU's CPU (sim.stall): no guest thread can run on a vCPU that is inside KVM, which the
 * engine's sleeping locks would allow. Queued fairly, as the kernel's qrwlock: an arrival waits
 * behind any queued waiter, and consecutive readers at the head of the queue enter together.
 */
export class HostLock implements ObservedLock {
  readonly kind: 'rwlock' | 'mutex';
  readonly stats: LockStats;
  private writer: Process<any> | null = null;
  private writerSince = 0;
  private readonly readers = new Map<Process<any>, number>();
  private readonly queue: Waiter[] = [];

  constructor(
    readonly sim: Sim,
    readonly name: string,
    kind: 'rwlock' | 'mutex',
  ) {
    this.kind = kind;
    this.stats = new LockStats(name);
  }

  get held(): boolean {
    return this.writer !== null || this.readers.size > 0;
  }

  /** Acquires in mode, stalling the calling vCPU while it waits. */
  *acquire(mode: LockMode): Proc<void> {
    const sim = this.sim;
    const p = sim.running();
    assert(this.kind === 'rwlock' || mode === 'exclusive', 'a mutex is taken exclusive only', this);
    assert(this.writer !== p && !this.readers.has(p), 'recursive acquire of a host lock', this);
    if (this.queue.length === 0 && this.compatible(mode)) {
      this.grant(p, mode, 0);
      return;
    }
    this.stats.contended++;
    if (sim.observer !== null) sim.observer.lockWait(p, this, mode, this.holderNames());
    const granted = sim.event(`${this.name} granted`);
    this.queue.push({ p, mode, since: sim.now, granted });
    yield sim.stall(granted);
  }

  release(mode: LockMode): void {
    const sim = this.sim;
    const p = sim.running();
    let held: number;
    if (mode === 'exclusive') {
      assert(this.writer === p, 'host lock released exclusive by a non-holder', this);
      held = sim.now - this.writerSince;
      this.writer = null;
    } else {
      const since = this.readers.get(p);
      assert(since !== undefined, 'host lock released shared by a non-holder', this);
      held = sim.now - since;
      this.readers.delete(p);
    }
    this.stats.hold.record(held);
    if (sim.observer !== null) sim.observer.lockRelease(p, this, mode, held);
    while (this.queue.length > 0 && this.compatible(this.queue[0]!.mode)) {
      const w = this.queue.shift()!;
      this.grant(w.p, w.mode, sim.now - w.since);
      w.granted.succeed();
    }
  }

  private compatible(mode: LockMode): boolean {
    if (this.writer !== null) return false;
    return mode === 'shared' || this.readers.size === 0;
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

  holderNames(): string[] {
    if (this.writer !== null) return [this.writer.name];
    return [...this.readers.keys()].map((q) => q.name);
  }

  describe(): string {
    return `${this.kind} ${this.name} (holders ${this.holderNames().join(',') || 'none'}, ${this.queue.length} waiting)`;
  }
}
