import type { Schedulable } from './event_queue.ts';
import type { Sim } from './sim.ts';
import { SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { assert } from './assert.ts';

interface Transfer {
  id: number;
  p: Process<any>;
  remaining: number; // bytes
  cap: number; // bytes per ns
  rate: number; // bytes per ns
  finishAt: number;
}

export interface BandwidthOptions {
  /** What one transfer can drive (one CPU's copy/clear rate), bytes per second. Default: no cap. */
  perTransferBytesPerSec?: number;
}

/**
 * Memory bandwidth: a fixed rate shared by concurrent transfers (processor sharing, max-min fair:
 * a transfer limited by its own cap leaves the rest to the others). Each arrival or departure
 * recomputes the rates and schedules the next completion.
 */
export class Bandwidth implements Schedulable, Blocker {
  readonly kindId: number;
  readonly bytesPerNs: number;
  readonly capPerNs: number;
  private active: Transfer[] = [];
  private lastUpdate = 0;
  private gen = 0;
  private nextId = 0;
  totalBytes = 0;
  /** Integral of the utilised rate, for mean utilisation. */
  private busyBytes = 0;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    bytesPerSec: number,
    options: BandwidthOptions = {},
  ) {
    assert(bytesPerSec > 0, 'bandwidth must be positive', { name, bytesPerSec });
    this.kindId = sim.registerKind(`bandwidth ${name}`);
    this.bytesPerNs = bytesPerSec / 1e9;
    this.capPerNs = (options.perTransferBytesPerSec ?? Infinity) / 1e9;
  }

  /**
   * Moves `bytes` through this bandwidth on behalf of the running process. A thread with a CPU
   * keeps it busy for the whole transfer (a CPU clearing or copying memory).
   */
  transfer(bytes: number, perTransferBytesPerSec?: number): Yield {
    const sim = this.sim;
    const p = sim.running();
    assert(bytes >= 0 && bytes < Infinity, 'transfer size must be finite and non-negative', bytes);
    if (bytes === 0) return sim.continueWith(undefined);
    const cap = Math.min(this.capPerNs, (perTransferBytesPerSec ?? Infinity) / 1e9);
    const start = () => {
      p.blockedOn = this;
      p.blockedSince = sim.now;
      this.add({ id: this.nextId++, p, remaining: bytes, cap, rate: 0, finishAt: 0 });
    };
    const cpu = p.cpu;
    if (cpu !== null) {
      cpu.ensureOnCpu(p, () => {
        cpu.setState('busy');
        start();
      });
    } else {
      start();
    }
    return SUSPEND;
  }

  /** Current rate of each active transfer in bytes per second, in arrival order (for tests). */
  rates(): number[] {
    return this.active.map((t) => t.rate * 1e9);
  }

  get activeCount(): number {
    return this.active.length;
  }

  /** Mean utilisation (0..1) from time 0 to now. */
  utilisation(): number {
    this.advance();
    return this.sim.now === 0 ? 0 : this.busyBytes / (this.bytesPerNs * this.sim.now);
  }

  fire(aux: number): boolean {
    if (aux !== this.gen) return false;
    this.advance();
    const now = this.sim.now;
    const active = this.active;
    const done: Transfer[] = [];
    let kept = 0;
    for (let i = 0; i < active.length; i++) {
      const t = active[i]!;
      if (t.finishAt <= now) done.push(t);
      else active[kept++] = t;
    }
    active.length = kept;
    this.reschedule();
    for (const t of done) this.sim.wake(t.p);
    return true;
  }

  private add(t: Transfer): void {
    this.advance();
    this.totalBytes += t.remaining;
    this.active.push(t);
    this.reschedule();
  }

  /** Brings every active transfer's remaining bytes up to now. */
  private advance(): void {
    const now = this.sim.now;
    const dt = now - this.lastUpdate;
    if (dt > 0) {
      for (const t of this.active) {
        const moved = Math.min(t.remaining, t.rate * dt);
        t.remaining -= moved;
        this.busyBytes += moved;
      }
    }
    this.lastUpdate = now;
  }

  /** Max-min fair rates, then one event for the earliest completion. */
  private reschedule(): void {
    const active = this.active;
    this.gen++;
    if (active.length === 0) return;
    const cap0 = active[0]!.cap;
    if (active.every((t) => t.cap === cap0)) {
      // The common case, every transfer with the same cap: an equal share, no sort.
      const rate = Math.min(cap0, this.bytesPerNs / active.length);
      for (const t of active) t.rate = rate;
    } else {
      const byCap = [...active].sort((a, b) => a.cap - b.cap || a.id - b.id);
      let left = this.bytesPerNs;
      let n = byCap.length;
      for (const t of byCap) {
        const share = left / n;
        t.rate = Math.min(t.cap, share);
        left -= t.rate;
        n--;
      }
    }
    const now = this.sim.now;
    let next = Infinity;
    for (const t of active) {
      t.finishAt = now + Math.max(1, Math.ceil(t.remaining / t.rate - 1e-9));
      if (t.finishAt < next) next = t.finishAt;
    }
    this.sim.queue.push(next, this, this.gen);
  }

  cancelWait(p: Process<any>): void {
    this.advance();
    this.active = this.active.filter((t) => t.p !== p);
    this.reschedule();
  }

  describe(): string {
    return `bandwidth ${this.name} (${this.active.length} transfers)`;
  }
}
